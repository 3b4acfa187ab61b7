"""Directory sign-in (ldap3): find a person in the city's LDAP/Active Directory, bind as them, map groups to roles.

The directory is only ever read: every connection is opened `read_only`, and the only operations are
binds and searches. The service account (`ldap_bind_dn`, password in `ldap_bind_secret_file`) finds
the person's entry and groups; the person's own password is checked by binding as their entry's DN.
User names are escaped into the filter (RFC 4515) and must also pass CIM's own name rule first.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import ssl
from dataclasses import dataclass
import warnings
from pathlib import Path
from typing import Any, AsyncIterator, Callable

with warnings.catch_warnings():  # ldap3 2.9.1 imports names pyasn1 has deprecated; nothing to act on here
    warnings.simplefilter("ignore", DeprecationWarning)
    import ldap3  # noqa: F401

from ldap3 import NONE, SUBTREE, Connection, Server, Tls  # noqa: E402  (see the warnings filter above)
from ldap3.core.exceptions import LDAPException, LDAPSocketOpenError, LDAPStartTLSError
from ldap3.utils.conv import escape_filter_chars

from .errors import CimError, ConfigError, DirectoryUnavailable
from .i18n import N_
from .models import Role
from .settings import Settings

log = logging.getLogger(__name__)

_NAME = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


@dataclass(frozen=True)
class Grant:
    """What one mapped group gives: roles and perhaps a department."""

    roles: frozenset[Role]
    department: str | None


@dataclass(frozen=True)
class DirectoryUser:
    dn: str
    name: str
    full_name: str
    groups: tuple[str, ...]
    roles: frozenset[Role]
    department: str | None


@dataclass(frozen=True)
class DirectoryAnswer:
    """`ok` (the password bound), `wrong_password`, or `not_found` (no entry, or more than one)."""

    outcome: str
    user: DirectoryUser | None = None


def normalise_dn(dn: str) -> str:
    """Case and the spaces around separators do not make DNs differ (good enough for group matching)."""
    return re.sub(r"\s*([,=+])\s*", r"\1", dn.strip()).lower()


def parse_role_map(text: str) -> dict[str, Grant]:
    """`{"<group DN>": "role" | ["role", "department:CODE", ...]}` → normalised DN → Grant. ConfigError if wrong."""
    if not text.strip():
        return {}
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            N_("CIM_LDAP_ROLE_MAP is not a table (TOML) or object (JSON) of group DN -> roles: {exc}"), exc=exc
        ) from exc
    if not isinstance(raw, dict):
        raise ConfigError(N_("CIM_LDAP_ROLE_MAP must map group DNs to roles"))
    grants: dict[str, Grant] = {}
    for dn, value in raw.items():
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not all(isinstance(i, str) for i in items) or not items:
            raise ConfigError(
                N_("CIM_LDAP_ROLE_MAP: {dn!r} must map to a role or a list of roles and department:CODE"), dn=dn
            )
        roles, departments = set(), set()
        for item in items:
            if item.startswith("department:"):
                departments.add(item.split(":", 1)[1].strip())
                continue
            try:
                roles.add(Role(item.strip()))
            except ValueError:
                raise ConfigError(
                    N_("CIM_LDAP_ROLE_MAP: {item!r} (for {dn!r}) is not a role"), item=item, dn=dn
                ) from None
        if len(departments) > 1:
            raise ConfigError(N_("CIM_LDAP_ROLE_MAP: {dn!r} names more than one department"), dn=dn)
        department = departments.pop() if departments else None
        if Role.DEPARTMENT_HEAD in roles and not department:
            raise ConfigError(N_("CIM_LDAP_ROLE_MAP: {dn!r} gives department_head without department:CODE"), dn=dn)
        grants[normalise_dn(dn)] = Grant(frozenset(roles), department)
    return grants


class Directory:
    """Read-only access to the configured directory; every call runs ldap3 in a worker thread."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.role_map = parse_role_map(settings.ldap_role_map)
        if self.configured:
            if not settings.ldap_url.startswith(("ldap://", "ldaps://")):
                raise ConfigError(N_("CIM_LDAP_URL must start with ldap:// or ldaps://"))
            if not settings.ldap_user_base:
                raise ConfigError(N_("CIM_LDAP_USER_BASE is required with CIM_LDAP_URL"))
            if "{name}" not in settings.ldap_user_filter:
                raise ConfigError(N_("CIM_LDAP_USER_FILTER must contain {name}"))
            if not self.role_map:
                raise ConfigError(N_("CIM_LDAP_ROLE_MAP is required with CIM_LDAP_URL: no group would give a role"))

    @property
    def configured(self) -> bool:
        return bool(self.settings.ldap_url)

    async def authenticate(self, name: str, password: str) -> DirectoryAnswer:
        """Find `name` and bind as them with `password`. Raises DirectoryUnavailable."""
        if not _NAME.match(name) or not password:
            return DirectoryAnswer("not_found")
        return await asyncio.to_thread(self._authenticate, name, password)

    async def lookup(self, name: str) -> DirectoryUser | None:
        """The person's entry and mapped groups as the directory says now (service bind only)."""
        if not _NAME.match(name):
            return None
        return await asyncio.to_thread(self._lookup, name)

    # -- in the worker thread ------------------------------------------------------------------

    def _server(self) -> Server:
        s = self.settings
        tls = None
        if s.ldap_url.startswith("ldaps://") or s.ldap_tls == "starttls":
            tls = Tls(validate=ssl.CERT_REQUIRED, version=ssl.PROTOCOL_TLS_CLIENT, ca_certs_file=s.ldap_ca_file or None)
        return Server(
            s.ldap_url,
            use_ssl=s.ldap_url.startswith("ldaps://"),
            tls=tls,
            get_info=NONE,
            connect_timeout=s.ldap_timeout_seconds,
        )

    def _connect(self, user: str | None, password: str | None) -> Connection:
        """An open, read-only connection (StartTLS done when configured), not yet bound."""
        conn = Connection(
            self._server(),
            user=user,
            password=password,
            read_only=True,
            auto_bind=False,
            receive_timeout=self.settings.ldap_timeout_seconds,
            raise_exceptions=False,
        )
        try:
            conn.open()
            if self.settings.ldap_tls == "starttls" and not self.settings.ldap_url.startswith("ldaps://"):
                if not conn.start_tls():
                    raise DirectoryUnavailable(
                        N_("the directory refused StartTLS ({description})"), description=conn.result.get("description")
                    )
        except LDAPStartTLSError as exc:
            raise DirectoryUnavailable(
                N_("the directory's TLS certificate was not accepted ({reason})"), reason=_reason(exc)
            ) from exc
        except (LDAPSocketOpenError, LDAPException, OSError) as exc:
            raise DirectoryUnavailable(
                N_("the city directory at {ldap_url} cannot be reached ({reason})"),
                ldap_url=self.settings.ldap_url,
                reason=_reason(exc),
            ) from exc
        return conn

    def _service(self) -> Connection:
        s = self.settings
        secret = None
        if s.ldap_bind_dn:
            try:
                secret = Path(s.ldap_bind_secret_file).read_text(encoding="utf-8").rstrip("\r\n")
            except OSError as exc:
                raise ConfigError(
                    N_("CIM_LDAP_BIND_SECRET_FILE {file!r} cannot be read: {strerror}"),
                    file=s.ldap_bind_secret_file,
                    strerror=exc.strerror,
                ) from exc
        conn = self._connect(s.ldap_bind_dn or None, secret)
        try:
            bound = conn.bind()
        except LDAPException as exc:
            conn.unbind()
            raise DirectoryUnavailable(
                N_("the city directory cannot be reached ({reason})"), reason=_reason(exc)
            ) from exc
        if not bound:
            description = conn.result.get("description") if conn.result else "no answer"
            conn.unbind()
            raise DirectoryUnavailable(
                N_("the directory refused CIM's service account ({description})"), description=description
            )
        return conn

    def _find(self, conn: Connection, name: str) -> tuple[str, str] | None:
        s = self.settings
        query = s.ldap_user_filter.replace("{name}", escape_filter_chars(name))
        attribute = s.ldap_full_name_attribute
        if not conn.search(s.ldap_user_base, query, search_scope=SUBTREE, attributes=[attribute], size_limit=2):
            if conn.result.get("result") not in (0, 4, 32):  # success, size limit, no such object
                raise DirectoryUnavailable(
                    N_("the directory search failed ({description})"), description=conn.result.get("description")
                )
        entries = conn.entries
        if len(entries) != 1:
            return None  # nobody, or an ambiguous filter: never guess who signs in
        entry = entries[0]
        full_name = entry[attribute].value if attribute in entry.entry_attributes else ""
        if isinstance(full_name, list):
            full_name = full_name[0] if full_name else ""
        return entry.entry_dn, str(full_name or "")

    def _groups(self, conn: Connection, dn: str) -> tuple[str, ...]:
        base = self.settings.ldap_group_base or self.settings.ldap_user_base
        value = escape_filter_chars(dn)
        conn.search(base, f"(|(member={value})(uniqueMember={value}))", search_scope=SUBTREE, attributes=[])
        if conn.result.get("result") not in (0, 32):
            raise DirectoryUnavailable(
                N_("the directory group search failed ({description})"), description=conn.result.get("description")
            )
        return tuple(sorted(normalise_dn(e.entry_dn) for e in conn.entries))

    def _user(self, conn: Connection, name: str, dn: str, full_name: str) -> DirectoryUser:
        groups = self._groups(conn, dn)
        roles: set[Role] = set()
        departments = set()
        for group in groups:
            grant = self.role_map.get(group)
            if grant:
                roles |= grant.roles
                if grant.department:
                    departments.add(grant.department)
        return DirectoryUser(
            dn=dn,
            name=name,
            full_name=full_name,
            groups=groups,
            roles=frozenset(roles),
            department=min(departments) if departments else None,
        )

    def _lookup(self, name: str) -> DirectoryUser | None:
        conn = self._service()
        try:
            found = self._find(conn, name)
            return self._user(conn, name, *found) if found else None
        except LDAPException as exc:
            raise DirectoryUnavailable(
                N_("the city directory cannot be reached ({reason})"), reason=_reason(exc)
            ) from exc
        finally:
            conn.unbind()

    def _authenticate(self, name: str, password: str) -> DirectoryAnswer:
        conn = self._service()
        try:
            found = self._find(conn, name)
            if found is None:
                return DirectoryAnswer("not_found")
            dn, full_name = found
            # the person's own bind, on its own connection; an empty password would be an
            # unauthenticated bind that "succeeds" (RFC 4513 5.1.2), so it never gets here
            person = self._connect(dn, password)
            try:
                if not person.bind():
                    return DirectoryAnswer("wrong_password")
            finally:
                person.unbind()
            return DirectoryAnswer("ok", self._user(conn, name, dn, full_name))
        except LDAPException as exc:
            raise DirectoryUnavailable(
                N_("the city directory cannot be reached ({reason})"), reason=_reason(exc)
            ) from exc
        finally:
            conn.unbind()


def _reason(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text[:200]


def directory_check_context(store: Any) -> Callable[[object], AsyncIterator[None]]:
    """A cleanup context for `cim serve`: directory accounts with open sessions are re-checked every
    `directory_check_seconds`; one removed from the directory or its mapped groups loses its sessions."""

    async def loop() -> None:
        while True:
            await asyncio.sleep(store.settings.directory_check_seconds)
            try:
                await store.accounts.recheck_directory_accounts()
            except CimError as exc:
                log.warning("directory.check_failed reason=%r", exc.message)

    async def context(_app: object) -> AsyncIterator[None]:
        task = asyncio.create_task(loop(), name="cim-directory-check") if store.settings.ldap_url else None
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    return context
