"""Staff accounts: argon2id passwords, roles, departments, lockout, and session tokens."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Iterable

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from . import mfa
from .audit import AuditLog
from .clock import Clock, from_iso, to_iso
from .i18n import N_, STAFF_LANGS, normalise_language
from .chats import clean_display_name
from .directory import Directory, DirectoryUser
from .errors import Text
from .errors import (
    AccountLocked,
    AlreadyExists,
    AuthenticationFailed,
    CimError,
    ConfigError,
    DirectoryUnavailable,
    InvalidInput,
    NoMappedRole,
    NotPermitted,
    PasswordChangeRequired,
    SecondFactorEnrolmentRequired,
    SecondFactorRequired,
    SessionExpired,
    StaffNotFound,
)
from .models import Actor, Department, Role, Session, SignInCheck, Staff
from .passwords import MAX_PASSWORD, check_length, check_new_password
from .policy import Permission
from .session_watch import DISABLED, PASSWORD_CHANGED, ROLE_REMOVED, SIGNED_OUT, AccountChange, AccountChanges
from .settings import Settings

if TYPE_CHECKING:  # the service names the repository's type only; its SQL is the backend's (store/sqlite/)
    from .sqlite.accounts import AccountsRepository

log = logging.getLogger(__name__)

MAX_NAME = 64
_LOGIN_FAILED = N_("wrong user name or password")


def make_hasher(profile: str) -> PasswordHasher:
    if profile == "fast":  # tests only: cheap, still argon2id
        return PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    return PasswordHasher()  # argon2-cffi's default: RFC 9106 low-memory profile, argon2id


def parse_roles(names: Iterable[str]) -> frozenset[Role]:
    roles = set()
    for name in names:
        try:
            roles.add(Role(name.strip()))
        except ValueError:
            raise InvalidInput(
                N_("{name!r} is not a role; roles are: {roles}"), name=name, roles=", ".join(r.value for r in Role)
            ) from None
    if not roles:
        raise InvalidInput(N_("a staff member needs at least one role"))
    return frozenset(roles)


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


#: Stored as the password hash of directory accounts: not an argon2 hash, so it never verifies.
DIRECTORY_PASSWORD = "!directory"


class _Refusal(Exception):
    """A dry-run sign-in (`verify_sign_in`) stopped here, for this reason."""

    def __init__(self, reason: str, error: CimError) -> None:
        super().__init__(reason)
        self.reason = reason
        self.error = error


def _check_signature(full_name: str, job_title: str) -> tuple[str, str]:
    """A full name and title as letters print them: one line each, no control characters, of sane length."""
    out = []
    for label, value in ((N_("full name"), full_name), (N_("title"), job_title)):
        value = " ".join((value or "").split())
        if any(ord(ch) < 32 or 0x7F <= ord(ch) < 0xA0 for ch in value):
            raise InvalidInput(N_("the {label} has control characters"), label=Text(label))
        if len(value) > 200:
            raise InvalidInput(N_("the {label} is longer than 200 characters"), label=Text(label))
        out.append(value)
    return out[0], out[1]


def _check_name(name: str, what: str = N_("user name")) -> str:
    name = name.strip()
    if not name or len(name) > MAX_NAME or not all(c.isalnum() or c in "._-" for c in name):
        raise InvalidInput(
            N_("{what} {name!r} must be 1-{max} letters, digits, dots, dashes or underscores"),
            what=Text(what),
            name=name[:MAX_NAME],
            max=MAX_NAME,
        )
    return name


class Accounts:
    """Staff accounts' rules: permissions, name and password checks, the steps of a sign-in, lockout, sessions.

    The SQL is the repository's (store/sqlite/accounts.py); every change runs in its unit of work,
    which the audit entry joins.
    """

    def __init__(self, repo: AccountsRepository, audit: AuditLog, settings: Settings, clock: Clock) -> None:
        self.repo = repo
        self.audit = audit
        self.settings = settings
        self.clock = clock
        self.hasher = make_hasher(settings.password_profile)
        self.directory = Directory(settings)
        self.secret_box = mfa.SecretBox(settings.mfa_key_path)
        # Verified against when the name is unknown, so both paths cost one argon2 verification.
        self._dummy_hash = self.hasher.hash(secrets.token_hex(16))
        self._name_key: bytes | None = None  # store_keys.login_name, read on the first sign-in
        #: Told after the COMMIT of anything that ends sessions (the chat server ends live sockets on it).
        self.changes = AccountChanges()

    # -- departments ---------------------------------------------------------------------------

    async def add_department(self, actor: Actor, code: str, name: str) -> Department:
        await self.audit.guard(actor, Permission.MANAGE_ACCOUNTS, "department.add")
        code = _check_name(code, N_("department code"))
        if not name.strip():
            raise InvalidInput(N_("the department needs a name"))
        async with self.repo.transaction() as tx:
            if await self.repo.department_exists(tx, code):
                raise AlreadyExists(N_("department {code!r} already exists"), code=code)
            department_id = await self.repo.insert_department(tx, code, name.strip())
            await self.audit.append(tx, actor, "department.add", target_kind="department", target_id=code)
        return Department(id=department_id, code=code, name=name.strip())

    async def departments(self) -> list[Department]:
        rows = await self.repo.departments()
        return [Department(id=r["id"], code=r["code"], name=r["name"]) for r in rows]

    # -- staff ---------------------------------------------------------------------------------

    async def add_staff(
        self,
        actor: Actor,
        name: str,
        roles: Iterable[str | Role],
        password: str,
        *,
        department: str | None = None,
        full_name: str = "",
        extensions: Iterable[str] = (),
        job_title: str = "",
        temporary: bool = False,
    ) -> Staff:
        """A local account. With `temporary` the person must change the password at their first sign-in."""
        await self.audit.guard(actor, Permission.MANAGE_ACCOUNTS, "staff.add")
        name = _check_name(name)
        role_set = parse_roles(roles)
        check_new_password(password, name=name, full_name=full_name)
        full_name, job_title = _check_signature(full_name, job_title)
        if Role.DEPARTMENT_HEAD in role_set and not department:
            raise InvalidInput(N_("a department head needs --department"))
        password_hash = await asyncio.to_thread(self.hasher.hash, password)
        async with self.repo.transaction() as tx:
            if await self.repo.name_taken(tx, name):
                raise AlreadyExists(N_("user {name!r} already exists"), name=name)
            department_id = await self._department_id(tx, department)
            staff_id = await self.repo.insert_staff(
                tx,
                name=name,
                full_name=full_name,
                password_hash=password_hash,
                department_id=department_id,
                created_at=to_iso(self.clock()),
                job_title=job_title,
                must_change=temporary,
            )
            await self.repo.add_roles(tx, staff_id, [r.value for r in role_set])
            for ext in extensions:
                await self._add_extension(tx, staff_id, ext)
            await self.audit.append(
                tx,
                actor,
                "staff.add",
                target_kind="staff",
                target_id=staff_id,
                details={
                    "name": name,
                    "roles": sorted(r.value for r in role_set),
                    "department": department,
                    "temporary": temporary,
                },
            )
        return await self.get(name)

    async def _department_id(self, tx, code: str | None) -> int | None:
        if not code:
            return None
        department_id = await self.repo.department_id(code, tx)
        if department_id is None:
            # the CLI's sentence; the TUI words it from the reason (tui/refusals.py), for its own way to add one
            raise InvalidInput(
                N_("department {code!r} does not exist; add it with `cim departments add`"),
                code=code,
                refusal_reason="department_missing",
            )
        return department_id

    async def _add_extension(self, tx, staff_id: int, extension: str) -> None:
        extension = extension.strip()
        if not extension.isdigit() or len(extension) > 16:
            raise InvalidInput(N_("extension {extension!r} must be digits only"), extension=extension)
        owner = await self.repo.extension_owner(tx, extension)
        if owner is not None and owner != staff_id:
            raise AlreadyExists(N_("extension {extension} already belongs to someone else"), extension=extension)
        await self.repo.add_extension(tx, staff_id, extension)

    async def set_extensions(self, actor: Actor, name: str, extensions: Iterable[str]) -> Staff:
        await self.audit.guard(actor, Permission.MANAGE_ACCOUNTS, "staff.extensions")
        staff = await self.get(name)
        exts = list(extensions)
        async with self.repo.transaction() as tx:
            await self.repo.clear_extensions(tx, staff.id)
            for ext in exts:
                await self._add_extension(tx, staff.id, ext)
            await self.audit.append(
                tx, actor, "staff.extensions", target_kind="staff", target_id=staff.id, details={"extensions": exts}
            )
        return await self.get(name)

    async def set_signature(
        self, actor: Actor, name: str, *, full_name: str | None = None, job_title: str | None = None
    ) -> Staff:
        """The full name and title a person signs letters with (None leaves a value as it is)."""
        await self.audit.guard(actor, Permission.MANAGE_ACCOUNTS, "staff.signature")
        staff = await self.get(name)
        new_name, new_title = _check_signature(
            staff.full_name if full_name is None else full_name, staff.job_title if job_title is None else job_title
        )
        async with self.repo.transaction() as tx:
            await self.repo.set_signature(tx, staff.id, new_name, new_title)
            await self.audit.append(
                tx,
                actor,
                "staff.signature",
                target_kind="staff",
                target_id=staff.id,
                details={"full_name": new_name, "job_title": new_title},
            )
        return await self.get(name)

    async def get(self, name: str) -> Staff:
        row = await self.repo.staff_by_name(name.strip())
        if row is None:
            raise StaffNotFound(N_("no user named {name!r}"), name=name)
        return await self._staff(row)

    async def get_by_id(self, staff_id: int) -> Staff:
        row = await self.repo.staff_by_id(staff_id)
        if row is None:
            raise StaffNotFound(N_("no user with id {staff_id}"), staff_id=staff_id)
        return await self._staff(row)

    async def _staff(self, row) -> Staff:
        roles, exts, totp = await self.repo.staff_details(row["id"])
        return Staff(
            id=row["id"],
            name=row["name"],
            full_name=row["full_name"],
            job_title=row["job_title"],
            roles=frozenset(Role(r) for r in roles),
            department=row["department"],
            disabled=bool(row["disabled"]),
            created_at=from_iso(row["created_at"]),
            extensions=tuple(exts),
            source=row["source"],
            must_change_password=bool(row["must_change_password"]),
            second_factor="none" if totp is None else ("active" if totp["confirmed_at"] else "pending"),
            language=row["staff_lang"],
            display_name=row["display_name"],
        )

    async def list_staff(self, actor: Actor | None = None) -> list[Staff]:
        """All accounts. Names and roles are not resident data; any signed-in staff member may list them."""
        return [await self._staff(r) for r in await self.repo.all_staff()]

    async def set_disabled(self, actor: Actor, name: str, disabled: bool) -> Staff:
        action = "staff.disable" if disabled else "staff.enable"
        await self.audit.guard(actor, Permission.MANAGE_ACCOUNTS, action)
        staff = await self.get(name)
        async with self.repo.transaction() as tx:
            await self.repo.set_disabled(tx, staff.id, disabled)
            if disabled:
                await self.repo.revoke_sessions(tx, staff.id, to_iso(self.clock()))
            await self.audit.append(tx, actor, action, target_kind="staff", target_id=staff.id)
        if disabled:
            self.changes.notify(AccountChange(staff.id, DISABLED))
        return await self.get(name)

    async def set_password(self, actor: Actor, name: str, password: str, *, temporary: bool = False) -> None:
        """Set a local account's password (an administrator, or the person); `temporary` forces a change at sign-in."""
        is_self = actor.staff_id is not None and actor.name.lower() == name.strip().lower()
        if not is_self:
            await self.audit.guard(actor, Permission.MANAGE_ACCOUNTS, "staff.password")
        staff = await self.get(name)
        if staff.source == "directory":
            raise InvalidInput(
                N_("{name} signs in with the city directory; the password is changed there"), name=staff.name
            )
        check_new_password(password, name=staff.name, full_name=staff.full_name)
        password_hash = await asyncio.to_thread(self.hasher.hash, password)
        async with self.repo.transaction() as tx:
            await self.repo.set_password_hash(tx, staff.id, password_hash, must_change=temporary and not is_self)
            await self.repo.revoke_sessions(tx, staff.id, to_iso(self.clock()))
            await self.audit.append(tx, actor, "staff.password", target_kind="staff", target_id=staff.id)
        self.changes.notify(AccountChange(staff.id, PASSWORD_CHANGED))

    async def set_roles(self, actor: Actor, name: str, roles: Iterable[str | Role]) -> Staff:
        await self.audit.guard(actor, Permission.MANAGE_ACCOUNTS, "staff.roles")
        role_set = parse_roles(roles)
        staff = await self.get(name)
        if Role.DEPARTMENT_HEAD in role_set and not staff.department:
            raise InvalidInput(N_("a department head needs a department"))
        async with self.repo.transaction() as tx:
            await self.repo.clear_roles(tx, staff.id)
            await self.repo.add_roles(tx, staff.id, [r.value for r in role_set])
            await self.audit.append(
                tx,
                actor,
                "staff.roles",
                target_kind="staff",
                target_id=staff.id,
                details={"roles": sorted(r.value for r in role_set)},
            )
        if Role.CONSULTANT in staff.roles and Role.CONSULTANT not in role_set:
            self.changes.notify(AccountChange(staff.id, ROLE_REMOVED))
        return await self.get(name)

    # -- login and sessions --------------------------------------------------------------------

    async def login(
        self, name: str, password: str, *, otp: str | None = None, new_password: str | None = None
    ) -> Session:
        """Sign in. Unknown name and wrong password give the same error after the same work.

        The steps a person may be asked for are errors carrying what to ask: PasswordChangeRequired
        (sign in again with `new_password`), SecondFactorRequired (again with `otp`, a TOTP or a
        recovery code) and SecondFactorEnrolmentRequired (its `enrolment` is a new secret to show;
        again with `otp`, a code of that secret, which confirms it). Nothing is kept between the
        calls: each repeats the whole check, and the new password is stored only when the session is.
        """
        session = await self._sign_in(name, password, otp=otp, new_password=new_password, dry_run=False)
        assert session is not None
        return session

    async def verify_sign_in(self, actor: Actor, name: str, password: str, *, otp: str | None = None) -> SignInCheck:
        """Would this sign-in succeed? Creates no session, counts no failure and spends no code; audited."""
        await self.audit.guard(actor, Permission.MANAGE_ACCOUNTS, "staff.verify_sign_in")
        reason: str | None = None
        message = "the sign-in would succeed"
        error: CimError | None = None
        try:
            await self._sign_in(name, password, otp=otp, new_password=None, dry_run=True)
        except _Refusal as refusal:
            reason, message, error = refusal.reason, refusal.error.message_in("en"), refusal.error
        except (
            DirectoryUnavailable,
            NoMappedRole,
            PasswordChangeRequired,
            SecondFactorRequired,
            SecondFactorEnrolmentRequired,
            AccountLocked,
            ConfigError,
        ) as exc:
            reason, message, error = _VERIFY_REASONS[type(exc)], exc.message_in("en"), exc
        async with self.repo.transaction() as tx:
            await self.audit.append(
                tx,
                actor,
                "staff.verify_sign_in",
                target_kind="staff",
                target_id=name.strip()[:MAX_NAME],
                outcome="ok" if reason is None else "refused",
                details={"reason": reason},
            )
        return SignInCheck(ok=reason is None, reason=reason, message=message, error=error)

    async def _failure_identity(self, name: str) -> tuple[str, str]:
        """(lockout key, audit name) of a typed sign-in name, neither of them the typed text when it is no account's.

        A password typed into the name field must not reach the audit log or login_failures: the
        lockout is keyed by an HMAC of the name (key in store_keys), and an unknown name is audited
        as `unknown-name#` + 12 hex digits of that HMAC, so repeated attempts still correlate.
        """
        if self._name_key is None:
            self._name_key = await self.repo.login_name_key()
        typed = name.strip()[: MAX_NAME * 4]
        digest = hmac.new(self._name_key, typed.lower().encode("utf-8", "replace"), hashlib.sha256).hexdigest()
        known = await self.repo.exact_name(typed) if typed else None
        return digest, known if known else f"unknown-name#{digest[:12]}"

    async def _sign_in(
        self, name: str, password: str, *, otp: str | None, new_password: str | None, dry_run: bool
    ) -> Session | None:
        name_key, audit_name = await self._failure_identity(name)
        now = self.clock()
        await self._refuse_if_locked(name_key, audit_name, now, dry_run)
        row = await self._checked_credentials(name, password, (name_key, audit_name), dry_run)
        staff = await self.get_by_id(row["id"])
        if staff.must_change_password:
            self._check_password_change(staff, password, new_password)
        second = await self._second_factor(staff, otp, now, (name_key, audit_name), dry_run)
        if dry_run:
            return None
        new_hash = await self._new_password_hash(staff, row, password, new_password)
        token = secrets.token_urlsafe(32)
        expires = now + timedelta(hours=self.settings.session_hours)
        recovery_codes: list[str] = []
        async with self.repo.transaction() as tx:
            if second is not None:
                spent = await self._spend_second_factor(tx, staff, second, now)
                if spent is None:  # another sign-in spent the same code a moment ago
                    raise AuthenticationFailed(N_("wrong or already used code"))
                recovery_codes = spent
            if new_hash:
                await self.repo.set_password_hash(tx, row["id"], new_hash, must_change=False)
            await self.repo.clear_failures(tx, name_key)
            await self.repo.insert_session(
                tx, _token_hash(token), row["id"], created_at=to_iso(now), expires_at=to_iso(expires)
            )
            await self.audit.append(
                tx,
                staff.as_actor(),
                "login",
                target_kind="staff",
                target_id=row["id"],
                details={
                    "rehashed": bool(new_hash) and new_password is None,
                    "password_changed": new_password is not None,
                    "second_factor": second[0] if second else None,
                    "source": staff.source,
                },
            )
        staff = await self.get_by_id(row["id"])  # after the commit: the reader sees the changed password flag
        return Session(token=token, staff=staff, expires_at=expires, recovery_codes=tuple(recovery_codes))

    async def _refuse_if_locked(self, name_key: str, audit_name: str, now: datetime, dry_run: bool) -> None:
        """Raise AccountLocked (audited unless a dry run) while the name has too many recent failures."""
        window_start = to_iso(now - timedelta(minutes=self.settings.lockout_window_minutes))
        failures = await self.repo.failures_since(name_key, window_start)
        if len(failures) >= self.settings.lockout_failures:
            locked_until = from_iso(failures[0]) + timedelta(minutes=self.settings.lockout_minutes)
            if now < locked_until:
                locked = AccountLocked(
                    N_("too many failed sign-ins; try again after {time}"),
                    time=locked_until.astimezone().strftime("%H:%M"),
                )
                if dry_run:
                    raise _Refusal("locked", locked)
                async with self.repo.transaction() as tx:
                    await self.audit.append(
                        tx,
                        Actor(None, audit_name, frozenset()),
                        "login",
                        outcome="refused",
                        details={"reason": "locked"},
                    )
                raise locked

    async def _checked_credentials(self, name: str, password: str, identity: tuple[str, str], dry_run: bool):
        """The staff row of a good name and password (local or directory); refuses (and counts) any other."""
        row = await self._sign_in_row(name.strip())
        if self.directory.configured and (row is None or row["source"] == "directory"):
            row, reason = await self._directory_sign_in(name.strip(), password, row, identity, dry_run)
            ok = reason is None
        else:
            stored_hash = row["password_hash"] if row else self._dummy_hash
            ok = await asyncio.to_thread(self._verify, stored_hash, password[: MAX_PASSWORD * 4])
            reason = "unknown_user" if row is None else (None if ok else "wrong_password")
        if not ok or row is None or row["disabled"]:
            await self._refuse(
                identity, row["id"] if row else None, reason or "disabled", AuthenticationFailed(_LOGIN_FAILED), dry_run
            )
        return row

    @staticmethod
    def _check_password_change(staff: Staff, password: str, new_password: str | None) -> None:
        """A temporary password: the sign-in needs a new, acceptable one that differs from it."""
        if new_password is None:
            raise PasswordChangeRequired(N_("your password was temporary; choose a new one"))
        check_new_password(new_password, name=staff.name, full_name=staff.full_name)
        if new_password == password:
            raise InvalidInput(N_("the new password must differ from the temporary one"))

    async def _new_password_hash(self, staff: Staff, row, password: str, new_password: str | None) -> str | None:
        """The hash to store at sign-in: of the new password, or of the old one when its parameters are outdated."""
        if staff.source == "local" and new_password is not None:
            return await asyncio.to_thread(self.hasher.hash, new_password)
        if staff.source == "local" and self.hasher.check_needs_rehash(row["password_hash"]):
            return await asyncio.to_thread(self.hasher.hash, password)
        return None

    def _verify(self, stored_hash: str, password: str) -> bool:
        try:
            return self.hasher.verify(stored_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    async def authenticate(self, token: str) -> Actor:
        """The actor behind a session token; refreshes the idle timer. Raises SessionExpired."""
        if not isinstance(token, str) or not token or len(token) > 200:
            raise SessionExpired(N_("not signed in"))
        row = await self.repo.session(_token_hash(token))
        now = self.clock()
        if row is None or row["revoked_at"]:
            raise SessionExpired(N_("the session has ended; sign in again"))
        idle_limit = from_iso(row["last_seen_at"]) + timedelta(minutes=self.settings.session_idle_minutes)
        if now >= from_iso(row["expires_at"]) or now >= idle_limit:
            raise SessionExpired(N_("the session has expired; sign in again"))
        staff = await self.get_by_id(row["staff_id"])
        if staff.disabled:
            raise SessionExpired(N_("the account is disabled"))
        if staff.source == "directory":
            if not self.directory.configured:
                raise SessionExpired(N_("directory sign-in is switched off"))
            if await self._directory_check_due(staff.id) and await self.recheck_directory_account(staff):
                raise SessionExpired(N_("your directory account no longer gives the same access; sign in again"))
            staff = await self.get_by_id(row["staff_id"])
        async with self.repo.transaction() as tx:
            await self.repo.touch_session(tx, row["token_hash"], to_iso(now))
        return staff.as_actor()

    async def logout(self, token: str) -> None:
        row = await self.repo.session(_token_hash(token))
        if row is None:
            return
        staff = await self.get_by_id(row["staff_id"])
        async with self.repo.transaction() as tx:
            await self.repo.revoke_session(tx, _token_hash(token), to_iso(self.clock()))
            await self.audit.append(tx, staff.as_actor(), "logout", target_kind="staff", target_id=staff.id)
        self.changes.notify(AccountChange(staff.id, SIGNED_OUT, _token_hash(token)))

    # -- sign-in steps: directory, temporary passwords, second factor ---------------------------

    def mfa_required(self, staff: Staff) -> bool:
        """Whether this person's roles need a second factor (CIM_MFA_ROLES)."""
        return any(r.value in self.settings.mfa_role_names for r in staff.roles)

    async def _sign_in_row(self, name: str):
        return await self.repo.sign_in_row(name)

    async def _refuse(
        self,
        identity: tuple[str, str],
        staff_id: int | None,
        reason: str,
        error: CimError,
        dry_run: bool,
        details: dict | None = None,
    ) -> None:
        """Count a failed sign-in towards the lockout, audit it, raise `error` (a dry run only raises).

        `identity` is `_failure_identity`'s (lockout key, audit name) of the name typed."""
        if dry_run:
            raise _Refusal(reason, error)
        name_key, audit_name = identity
        async with self.repo.transaction() as tx:
            await self.repo.add_failure(tx, name_key, to_iso(self.clock()))
            await self.audit.append(
                tx, Actor(staff_id, audit_name, frozenset()), "login", outcome="refused", details=details
            )
        raise error

    async def _refused_without_count(
        self, identity: tuple[str, str], staff_id: int | None, reason: str, dry_run: bool
    ) -> None:
        if not dry_run:
            async with self.repo.transaction() as tx:
                await self.audit.append(
                    tx,
                    Actor(staff_id, identity[1], frozenset()),
                    "login",
                    outcome="refused",
                    details={"reason": reason},
                )

    async def _directory_sign_in(self, name: str, password: str, row, identity: tuple[str, str], dry_run: bool):
        """(row, None) after a good directory bind with the account synced; (row, reason) otherwise."""
        try:
            answer = await self.directory.authenticate(name, password[: MAX_PASSWORD * 4])
        except DirectoryUnavailable:
            await self._refused_without_count(identity, row["id"] if row else None, "directory_unavailable", dry_run)
            raise
        if answer.outcome == "not_found":
            if row is None:  # about the work of a wrong password, so the answer's timing says little
                await asyncio.to_thread(self._verify, self._dummy_hash, password[: MAX_PASSWORD * 4])
            return row, "unknown_user"
        if answer.outcome != "ok" or answer.user is None:
            return row, "wrong_password"
        user = answer.user
        if not user.roles:
            if row is not None:
                await self._directory_lost(row["id"], "no_mapped_role")
            await self._refused_without_count(identity, row["id"] if row else None, "no_mapped_role", dry_run)
            raise NoMappedRole(N_("your directory account is in no group that gives a CIM role; ask the IT department"))
        staff_id, _changed = await self._sync_directory_account(user, row)
        return await self.repo.sign_in_row_by_id(staff_id), None

    async def _sync_directory_account(self, user: DirectoryUser, row) -> tuple[int, bool]:
        """Create or update the local record of a directory account; a change of roles ends its sessions."""
        department_id = None
        if user.department:
            department_id = await self.repo.department_id(user.department)
            if department_id is None:
                raise ConfigError(
                    N_(
                        "CIM_LDAP_ROLE_MAP names department {department!r}, which does not exist; add "
                        "it with `cim departments add`"
                    ),
                    department=user.department,
                )
        now = to_iso(self.clock())
        roles = sorted(r.value for r in user.roles)
        async with self.repo.transaction() as tx:
            if row is None:
                staff_id = await self.repo.insert_directory_staff(
                    tx,
                    name=user.name.lower(),
                    full_name=user.full_name[:200],
                    password_hash=DIRECTORY_PASSWORD,
                    department_id=department_id,
                    at=now,
                    dn=user.dn,
                )
                await self.repo.add_roles(tx, staff_id, roles)
                await self.audit.append(
                    tx,
                    _DIRECTORY,
                    "staff.add",
                    target_kind="staff",
                    target_id=staff_id,
                    details={
                        "name": user.name.lower(),
                        "roles": roles,
                        "department": user.department,
                        "source": "directory",
                    },
                )
                return staff_id, True
            staff_id = row["id"]
            old_roles, old_department = await self.repo.roles_and_department(tx, staff_id)
            changed = old_roles != roles or old_department != department_id
            await self.repo.update_directory_staff(
                tx, staff_id, full_name=user.full_name[:200], department_id=department_id, dn=user.dn, checked_at=now
            )
            if changed:
                await self.repo.clear_roles(tx, staff_id)
                await self.repo.add_roles(tx, staff_id, roles)
                await self._end_sessions(tx, staff_id)
                await self.audit.append(
                    tx,
                    _DIRECTORY,
                    "staff.roles",
                    target_kind="staff",
                    target_id=staff_id,
                    details={"roles": roles, "department": user.department, "source": "directory"},
                )
            return staff_id, changed

    async def _directory_lost(self, staff_id: int, reason: str) -> None:
        """Gone from the directory or from every mapped group: no roles, no sessions (live sockets follow)."""
        async with self.repo.transaction() as tx:
            await self.repo.clear_roles(tx, staff_id)
            await self.repo.mark_directory_checked(tx, staff_id, to_iso(self.clock()))
            await self._end_sessions(tx, staff_id)
            await self.audit.append(
                tx,
                _DIRECTORY,
                "staff.directory_removed",
                target_kind="staff",
                target_id=staff_id,
                details={"reason": reason},
            )

    async def _end_sessions(self, tx, staff_id: int, *, keep_token_hash: str | None = None) -> None:
        """Revoke every open session of a staff member (but `keep_token_hash`); /staff sockets follow the revocation."""
        await self.repo.revoke_sessions(tx, staff_id, to_iso(self.clock()), keep_token_hash=keep_token_hash)

    async def recheck_directory_account(self, staff: Staff) -> str | None:
        """Ask the directory about a signed-in directory account now; the reason its sessions ended, or None.

        An unreachable directory ends nothing (a directory outage must not sign out the whole office);
        the check is repeated at the next interval and every sign-in asks the directory anyway.
        """
        try:
            user = await self.directory.lookup(staff.name)
        except (DirectoryUnavailable, ConfigError) as exc:
            log.warning("directory.recheck_unavailable staff_id=%s reason=%r", staff.id, exc.message_in("en"))
            return None
        if user is None or not user.roles:
            reason = "not_in_directory" if user is None else "no_mapped_role"
            await self._directory_lost(staff.id, reason)
            return reason
        row = await self.repo.staff_exists(staff.id)
        try:
            _staff_id, changed = await self._sync_directory_account(user, row)
        except ConfigError as exc:
            log.warning("directory.recheck_failed staff_id=%s reason=%r", staff.id, exc.message_in("en"))
            return None
        return "roles_changed" if changed else None

    async def recheck_directory_accounts(self) -> dict[str, str]:
        """Re-check every directory account that has an open session: name -> why its sessions ended."""
        now = to_iso(self.clock())
        ended = {}
        for name in await self.repo.directory_names_with_sessions(now):
            reason = await self.recheck_directory_account(await self.get(name))
            if reason:
                ended[name] = reason
        return ended

    async def _directory_check_due(self, staff_id: int) -> bool:
        checked_at = await self.repo.directory_checked_at(staff_id)
        if not checked_at:
            return True
        due = from_iso(checked_at) + timedelta(seconds=self.settings.directory_check_seconds)
        return self.clock() >= due

    async def _second_factor(self, staff: Staff, otp: str | None, now, identity: tuple[str, str], dry_run: bool):
        """None when no second factor applies; else what to spend: (kind, step or code id, sealed secret)."""
        totp = await self.repo.totp(staff.id)
        active = totp is not None and totp["confirmed_at"] is not None
        if not active and not self.mfa_required(staff):
            return None
        if not otp:
            if active:
                raise SecondFactorRequired(N_("enter the 6-digit code from your authenticator app, or a recovery code"))
            if dry_run:
                raise _Refusal(
                    "second_factor_not_enrolled",
                    SecondFactorEnrolmentRequired(
                        N_(
                            "the roles need a second factor that is not set up yet; it is set up at the next sign-in in "
                            "the TUI"
                        )
                    ),
                )
            enrolment = await self._start_enrolment(staff)
            raise SecondFactorEnrolmentRequired(
                N_("your roles need a second factor: add the key to your authenticator app and enter its code"),
                enrolment,
            )
        wrong = AuthenticationFailed(N_("wrong or already used code"))
        if totp is not None:
            secret = self.secret_box.open(staff.id, totp["secret_sealed"])
            step = mfa.matching_step(secret, otp, now, totp["last_step"])
            if step is not None:
                return ("totp" if active else "enrolment", step, totp["secret_sealed"])
            if active and mfa.looks_like_recovery_code(otp):
                code_id = await self.repo.unused_recovery_code(staff.id, mfa.recovery_code_hash(otp))
                if code_id is not None:
                    return ("recovery", code_id, totp["secret_sealed"])
        await self._refuse(
            identity, staff.id, "second_factor_wrong", wrong, dry_run, details={"reason": "second_factor"}
        )

    async def _spend_second_factor(self, tx, staff: Staff, second, now) -> list[str] | None:
        """Spend the code inside the sign-in's transaction; None if someone spent it first (a replay race)."""
        kind, value, sealed = second
        staff_id = staff.id
        if kind == "recovery":
            return [] if await self.repo.spend_recovery_code(tx, value, to_iso(now)) else None
        if not await self.repo.advance_totp(tx, staff_id, value, to_iso(now), sealed):
            return None
        if kind != "enrolment":
            return []
        return await self._new_recovery_codes(tx, staff)

    async def _new_recovery_codes(self, tx, staff: Staff) -> list[str]:
        staff_id = staff.id
        codes = mfa.new_recovery_codes()
        await self.repo.replace_recovery_codes(tx, staff_id, [mfa.recovery_code_hash(c) for c in codes])
        await self.audit.append(
            tx,
            staff.as_actor(),
            "staff.second_factor_enrolled",
            target_kind="staff",
            target_id=staff_id,
            details={"recovery_codes": len(codes)},
        )
        return codes

    async def _start_enrolment(self, staff: Staff) -> mfa.Enrolment:
        """A new pending secret (replacing an unconfirmed one); an active second factor is never replaced here."""
        enrolment = mfa.new_enrolment(staff.name, self.settings.mfa_issuer)
        sealed = self.secret_box.seal(staff.id, enrolment.secret)
        async with self.repo.transaction() as tx:
            if not await self.repo.start_totp(tx, staff.id, sealed, to_iso(self.clock())):
                raise InvalidInput(N_("a second factor is already set up; the IT department can reset it"))
            await self.audit.append(
                tx, staff.as_actor(), "staff.second_factor_started", target_kind="staff", target_id=staff.id
            )
        return enrolment

    # -- a person's own password and second factor ----------------------------------------------

    async def change_own_password(self, actor: Actor, current: str, new: str, *, keep_token: str | None = None) -> None:
        """The person changes their own local password, proving the current one; their other sessions end."""
        if actor.staff_id is None:
            raise NotPermitted(N_("only a signed-in person changes their own password"))
        staff = await self.get_by_id(actor.staff_id)
        if staff.source == "directory":
            raise InvalidInput(N_("you sign in with the city directory; change your password there"))
        check_length(current)
        stored_hash = await self.repo.password_hash(staff.id)
        if not await asyncio.to_thread(self._verify, stored_hash, current[: MAX_PASSWORD * 4]):
            await self._refuse(
                await self._failure_identity(staff.name),
                staff.id,
                "wrong_password",
                AuthenticationFailed(N_("the current password is wrong")),
                False,
            )
        check_new_password(new, name=staff.name, full_name=staff.full_name)
        if new == current:
            raise InvalidInput(N_("the new password must differ from the current one"))
        password_hash = await asyncio.to_thread(self.hasher.hash, new)
        async with self.repo.transaction() as tx:
            await self.repo.set_password_hash(tx, staff.id, password_hash, must_change=False)
            await self._end_sessions(tx, staff.id, keep_token_hash=_token_hash(keep_token) if keep_token else None)
            await self.audit.append(
                tx, actor, "staff.password", target_kind="staff", target_id=staff.id, details={"self": True}
            )

    async def set_own_language(self, actor: Actor, language: str | None) -> Staff:
        """The person chooses the staff language of their screens ('pl', 'en'; None: the office default)."""
        if actor.staff_id is None:
            raise NotPermitted(N_("only a signed-in person chooses their own language"))
        chosen = None
        if language is not None and str(language).strip():
            chosen = normalise_language(str(language))
            if chosen is None or chosen != str(language).strip().lower():
                raise InvalidInput(
                    N_("unknown staff language {language!r}; languages are: {languages}"),
                    language=str(language)[:20],
                    languages=", ".join(STAFF_LANGS),
                )
        staff = await self.get_by_id(actor.staff_id)
        async with self.repo.transaction() as tx:
            await self.repo.set_language(tx, staff.id, chosen)
            await self.audit.append(
                tx,
                actor,
                "staff.language",
                target_kind="staff",
                target_id=staff.id,
                details={"self": True, "language": chosen},
            )
        return await self.get_by_id(staff.id)

    async def set_own_display_name(self, actor: Actor, text: str | None) -> Staff:
        """The person sets the name residents see for them in the chat (`display_name`); None goes back to the
        default (the full name's first word, else the generic "Konsultant CIM"). An empty or blank text is
        refused, not taken for the default: clearing is asked for by None. Audited like `staff.display_name`
        set by an administrator (store.chats.set_display_name), with `self: true`."""
        if actor.staff_id is None:
            raise NotPermitted(N_("only a signed-in person sets their own display name"))
        chosen = None
        if text is not None:
            chosen = clean_display_name(text)
            if not chosen:
                raise InvalidInput(
                    N_("enter the name residents see, or choose the default"), refusal_reason="display_name_missing"
                )
        staff = await self.get_by_id(actor.staff_id)
        async with self.repo.transaction() as tx:
            await self.repo.set_display_name(tx, staff.id, chosen)
            await self.audit.append(
                tx,
                actor,
                "staff.display_name",
                target_kind="staff",
                target_id=staff.id,
                details={"self": True, "display_name": chosen},
            )
        return await self.get_by_id(staff.id)

    async def begin_enrolment(self, actor: Actor) -> mfa.Enrolment:
        """A signed-in person sets up a second factor: a new secret to show once, confirmed by `confirm_enrolment`."""
        if actor.staff_id is None:
            raise NotPermitted(N_("only a signed-in person sets up their own second factor"))
        return await self._start_enrolment(await self.get_by_id(actor.staff_id))

    async def confirm_enrolment(self, actor: Actor, code: str) -> list[str]:
        """Confirm the pending secret with a code of it; returns the recovery codes (shown once)."""
        if actor.staff_id is None:
            raise NotPermitted(N_("only a signed-in person sets up their own second factor"))
        totp = await self.repo.totp(actor.staff_id)
        if totp is None or totp["confirmed_at"] is not None:
            raise InvalidInput(N_("no second-factor set-up is in progress"))
        now = self.clock()
        step = mfa.matching_step(
            self.secret_box.open(actor.staff_id, totp["secret_sealed"]), code, now, totp["last_step"]
        )
        if step is None:
            await self._refuse(
                await self._failure_identity(actor.name),
                actor.staff_id,
                "second_factor_wrong",
                AuthenticationFailed(N_("wrong or already used code")),
                False,
                details={"reason": "second_factor"},
            )
        async with self.repo.transaction() as tx:
            staff = await self.get_by_id(actor.staff_id)
            codes = await self._spend_second_factor(tx, staff, ("enrolment", step, totp["secret_sealed"]), now)
            if codes is None:
                raise AuthenticationFailed(N_("wrong or already used code"))
        return codes

    async def reset_second_factor(self, actor: Actor, name: str) -> Staff:
        """IT removes a person's second factor (lost phone); they set up a new one at their next sign-in."""
        await self.audit.guard(actor, Permission.MANAGE_ACCOUNTS, "staff.second_factor_reset")
        staff = await self.get(name)
        async with self.repo.transaction() as tx:
            await self.repo.remove_second_factor(tx, staff.id)
            await self._end_sessions(tx, staff.id)
            await self.audit.append(tx, actor, "staff.second_factor_reset", target_kind="staff", target_id=staff.id)
        return await self.get(name)

    async def unused_recovery_codes(self, actor: Actor) -> int:
        if actor.staff_id is None:
            return 0
        return await self.repo.unused_recovery_code_count(actor.staff_id)


_DIRECTORY = Actor.system("directory")

#: `cim users verify`'s reason codes for the steps a sign-in can stop at.
_VERIFY_REASONS: dict[type, str] = {
    DirectoryUnavailable: "directory_unreachable",
    NoMappedRole: "no_mapped_role",
    PasswordChangeRequired: "password_change_required",
    SecondFactorRequired: "second_factor_missing",
    SecondFactorEnrolmentRequired: "second_factor_not_enrolled",
    AccountLocked: "locked",
    ConfigError: "configuration",
}
