"""The one settings object: typed fields read from `<data dir>/cim.toml` and `CIM_*` variables (which win)."""

from __future__ import annotations

import json
import os
import tomllib
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Mapping, SupportsIndex, SupportsInt

from .backend import DatabaseUrl, parse_database_url
from .clock import Duration
from .errors import ConfigError, Text
from .i18n import N_
from .models import Role

DEFAULT_OPENING_HOURS = "mon 07:30-18:00; tue-fri 07:30-15:30; holidays closed"
#: Roles that must sign in with a second factor when `mfa_roles` is `default` (GDPR 32: the roles
#: that open recordings, hold accounts or read the audit).
DEFAULT_MFA_ROLES = "designated,cim_manager,it_admin,boi_director,dpo"


def default_data_dir(env: Mapping[str, str] = os.environ) -> Path:
    """`$CIM_DATA_DIR`, else `$XDG_DATA_HOME/cim`, else `~/.local/share/cim`."""
    if env.get("CIM_DATA_DIR"):
        return Path(env["CIM_DATA_DIR"])
    base = env.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "cim"


@dataclass(frozen=True)
class Settings:
    """Every setting of CIM. The TOML key is the field name; the variable is `CIM_` + its upper-case name."""

    data_dir: Path
    #: Which database backend and database (store/backend.py): `sqlite:` (empty: the same) is the data
    #: directory's cim.sqlite3; `sqlite:NAME` another file directly in the data directory. Only `sqlite:` exists.
    database_url: str = ""
    #: Weekly schedule in Europe/Warsaw time (see README), or `always`.
    opening_hours: str = DEFAULT_OPENING_HOURS
    #: ISO 8601 duration fixed into each conversation's purge_after when it is created (§6).
    retention: str = "P6M"
    #: Messages per resident as `N/SECONDS`, or `off`.
    resident_rate_limit: str = "10/10"
    #: Socket connections allowed from one address at once, or `off`.
    max_connections_per_address: str = "50"
    #: Messages from one client address, all its sockets and chats together, as `N/SECONDS`, or `off`.
    resident_address_rate_limit: str = "60/10"
    #: Chats one socket may open (accept_notice) as `N/SECONDS`, or `off`.
    chat_open_rate_limit: str = "5/600"
    #: Chats one client address may open as `N/SECONDS`, or `off`.
    chat_open_address_rate_limit: str = "30/600"
    #: Chats opened from one address that may wait in the queue at once, or `off`.
    max_queued_chats_per_address: str = "20"
    #: Seconds a Socket.IO (Engine.IO) session may stay without joining /resident or /staff.
    socket_join_grace_seconds: int = 10
    #: Seconds `cim serve` waits for a request's headers (and keeps an idle connection) before dropping it.
    http_header_timeout_seconds: int = 5
    #: Origins (scheme://host[:port]) allowed to open the resident socket, comma-separated.
    #: The server's own origin is always allowed.
    allowed_origins: str = ""
    #: Longest chat message, in characters.
    max_message_length: int = 2000
    #: Time zone of the office (opening hours, PBX local times, letters).
    timezone: str = "Europe/Warsaw"
    host: str = "127.0.0.1"
    port: int = 8080
    #: Staff session lifetime and idle timeout, in minutes.
    session_hours: int = 12
    session_idle_minutes: int = 30
    #: Failed logins within the window that lock an account, and for how long.
    lockout_failures: int = 5
    lockout_window_minutes: int = 15
    lockout_minutes: int = 15
    #: Argon2id cost profile: `default` (argon2-cffi's RFC 9106 low-memory profile) or `fast` (tests only).
    password_profile: str = "default"
    #: The office's phone number the chat widget shows outside opening hours (empty: none shown).
    office_phone: str = ""
    #: The office named in letters and notices.
    office_name: str = "Urząd Miasta Szczecin, Biuro Obsługi Interesantów"
    office_address: str = "pl. Armii Krajowej 1, 70-456 Szczecin"
    #: Command that plays a recording file in the TUI on a desk machine ({path} is replaced), e.g.
    #: `aplay {path}`. Empty (the default): recordings are heard in the browser through a listening link.
    player_command: str = ""
    #: Listening links: minutes a link stays valid (plus the recording's own length), how many live
    #: links one person may hold at once, and the base URL staff browsers reach `cim serve` at (empty:
    #: the TUI's server URL, else http://HOST:PORT).
    listen_minutes: int = 10
    listen_max_links: int = 3
    listen_base_url: str = ""
    #: Daily purge time inside `cim serve` (HH:MM local), or `off`.
    purge_daily_at: str = "02:30"
    #: Requests (§4): minutes either side of the approximate time given by the requester in
    #: which calls and chats are suggested as candidates.
    request_match_window_minutes: int = 60
    #: Requests: an open request whose answer is due within this many days is flagged "due soon".
    request_due_soon_days: int = 7
    #: Requests: the act cited in letters as the basis of the access procedure.
    ordinance_reference: str = "zarządzenia nr 308/18 Prezydenta Miasta Szczecin z dnia 13 lipca 2018 r."
    #: Conversations deleted per purge transaction: small, so live chat writes are not held up.
    purge_batch_size: int = 100
    #: Purge: the write-lock time (ms) one batch aims at; the batch size adapts (1 … purge_batch_size)
    #: so that live chat commits queued behind a batch wait about this long at most.
    purge_batch_ms: int = 3
    #: Purge: seconds the final scrub (WAL checkpoint TRUNCATE) waits for other connections' read
    #: transactions (a long report, a backup, a sqlite3 shell) to end before it reports remnants.
    purge_scrub_wait_seconds: int = 30
    #: How long a `cim backup` may be kept (ISO 8601), written into its backup.json as destroy_by (§6).
    backup_keep: str = "P30D"
    #: Chat: minutes after a chat ended during which its resume token still shows the transcript.
    chat_resume_minutes: int = 30
    #: Chat desk (README "Topics, routing and capacity"): `pick` (consultants accept from the queue) or `auto`
    #: (the longest-waiting chat goes to the least-busy available consultant with the topic's skill).
    chat_assignment: str = "pick"
    #: Chat desk: the most chats a consultant handles at once unless their account says otherwise.
    chat_max_concurrent: int = 3
    #: Chat desk: seconds a consultant's dropped connection may stay away before their chats go back to the
    #: front of the queue.
    staff_reconnect_grace_seconds: int = 60
    #: Chat desk: minutes of a resident's silence before "are you still there?", and as many again before the
    #: chat closes as `abandoned`; 0 = off.
    chat_idle_minutes: int = 10
    #: Chat desk: minutes a chat may wait in the queue with nobody free before it closes (the resident is
    #: offered the offline message form); 0 = off.
    chat_queue_limit_minutes: int = 20
    #: Chat server on two or more nodes (docs/DEPLOY.md "Two or more nodes (in progress)"): the Redis that carries
    #: Socket.IO events between them, as `redis://[:password@]host[:port][/db]`, `rediss://...` (TLS) or
    #: `unix:///path/to/redis.sock`; empty = one node, events stay in the process.
    redis_url: str = ""
    #: Chat server on two or more nodes: seconds between a node's presence heartbeats in Redis (webchat/presence.py
    #: `RedisPresence`); a node that stops beating loses its consultants from the others' view three heartbeats later.
    presence_heartbeat_seconds: int = 5
    #: Chat server on two or more nodes: seconds a node's lease on a job meant for one node (the daily purge, the
    #: AMI connection; store/leases.py) lasts; renewed every third of it, taken over by another node once expired.
    #: Longer than purge_scrub_wait_seconds, so a purge's final scrub never outlasts its lease.
    leader_lease_seconds: int = 60
    #: Chat server: addresses of reverse proxies (comma-separated IPs) whose X-Forwarded-For and
    #: X-Forwarded-Proto are believed; empty = the socket's peer address is the resident's address.
    trusted_proxies: str = ""
    #: Audit (docs/SECURITY.md, Anchored audit): the MAC key file, outside the data directory, 0600;
    #: empty = `<data dir>-audit/audit.key`. Created when missing by `cim init` (and at the first
    #: start of a database whose log has no MACed entry yet).
    audit_key_file: str = ""
    #: Audit: the append-only anchors file, outside the data directory; empty = `<data dir>-audit/anchors.jsonl`.
    audit_anchors_file: str = ""
    #: Crypto-shredding (docs/SECURITY.md): the master key file that wraps every conversation's data key,
    #: outside the data directory, 0600; empty = `$CREDENTIALS_DIRECTORY/cim-master-key` when systemd passes
    #: that credential, else `<data dir>-keys/master.key` (created when missing on a new key ring).
    master_key_file: str = ""
    #: Crypto-shredding: the key ring (SQLite) holding the wrapped data keys, outside the data directory so a
    #: backup of the data directory never carries a key; empty = `<data dir>-keys/keyring.sqlite3`.
    keyring_file: str = ""
    #: Audit: where anchor lines go to the system log: `auto` (/dev/log when present), `off`, or a Unix socket path.
    audit_syslog: str = "auto"
    #: Audit: `cim serve` anchors the chain head at least this often (minutes) when it moved; 0 = only at
    #: start, stop, purges, backups and reports.
    audit_anchor_minutes: int = 15
    #: Calls: a dialled or calling number with at most this many digits is a PBX extension (internal).
    pbx_extension_max_digits: int = 5
    #: Letters: the case mark (znak sprawy) printed on letters, from the register number CIM/<yyyy>/<nnnn>:
    #: {number} the register number, {n} its sequence in the year, {nnnn} the same zero-padded, {yyyy} the
    #: year; e.g. `BOI-CIM.1510.{n}.{yyyy}` for a JRWA symbol (README, Letters).
    case_mark: str = "{number}"
    #: Letters: the PKCS#12 file of the office's seal certificate (PAdES); empty = letters go out unsigned.
    #: Outside the data directory, not readable by every user (docs/DEPLOY.md, Letter seal).
    letter_seal_p12: str = ""
    #: Letters: a file holding the PKCS#12 file's password (first line), same rules as the file itself.
    letter_seal_password_file: str = ""
    #: Letters: the controller (administrator danych, GDPR Art. 4(7)) named in the copy's cover letter.
    controller: str = "Prezydent Miasta Szczecin, pl. Armii Krajowej 1, 70-456 Szczecin"
    #: Letters: the recipients of the contact records, for the copy's cover letter (GDPR Art. 15(1)(c)).
    data_recipients: str = (
        "podmioty uprawnione na podstawie przepisów prawa (np. sądy, prokuratura, Policja) "
        "oraz podmioty przetwarzające dane na zlecenie administratora w zakresie obsługi "
        "systemów teleinformatycznych urzędu; dane nie są przekazywane do państw trzecich"
    )
    #: Service report: a contact answered within this many seconds counts towards the service level.
    service_level_seconds: int = 20
    #: Service report: an abandonment within this many seconds of joining the queue is reported apart.
    short_abandon_seconds: int = 5
    #: Live phone traffic: the PBX's Manager Interface as ami://user:secret@host:5038 (empty: none).
    ami_url: str = ""
    #: A file holding the AMI secret instead of the URL (readable by the service account only).
    ami_secret_file: str = ""
    #: Directory sign-in (README "Signing in with the city directory"): `ldap://host[:port]` or
    #: `ldaps://host[:port]` of the directory (Active Directory, OpenLDAP); empty = local accounts only.
    ldap_url: str = ""
    #: DN the service binds with to search for users and groups, and the file holding its password.
    ldap_bind_dn: str = ""
    ldap_bind_secret_file: str = ""
    #: Where users are searched, and the filter; `{name}` is replaced by the escaped user name.
    ldap_user_base: str = ""
    ldap_user_filter: str = "(&(objectClass=inetOrgPerson)(uid={name}))"
    #: Where groups are searched (empty: ldap_user_base); a group lists members by `member` or `uniqueMember`.
    ldap_group_base: str = ""
    #: `starttls` upgrades an ldap:// connection; ldaps:// is TLS from the start; `off` sends in the clear.
    ldap_tls: str = "off"
    #: CA certificate file (PEM) that the directory's certificate must chain to; empty = the system's CAs.
    ldap_ca_file: str = ""
    #: Seconds to wait for the directory before a sign-in says it is unreachable.
    ldap_timeout_seconds: int = 5
    #: Attribute holding the person's full name.
    ldap_full_name_attribute: str = "cn"
    #: Group DN -> CIM roles and department: a TOML table (in cim.toml) or JSON (in the variable) whose
    #: values are a role, or a list of roles and `department:CODE` items.
    ldap_role_map: str = ""
    #: Seconds between re-checks of a signed-in directory account against the directory.
    directory_check_seconds: int = 60
    #: Roles that must sign in with a TOTP second factor: `default` (see DEFAULT_MFA_ROLES), a
    #: comma-separated list, or `none`.
    mfa_roles: str = "default"
    #: File holding the key that encrypts TOTP secrets at rest (created 0600 on first use);
    #: empty = `<data dir>/mfa.key`. Keep it out of database backups (docs/DEPLOY.md).
    mfa_key_file: str = ""
    #: Issuer shown in the authenticator app.
    mfa_issuer: str = "CIM"

    @property
    def database(self) -> DatabaseUrl:
        """The backend and database CIM_DATABASE_URL names (a ConfigError for anything unsupported)."""
        return parse_database_url(self.database_url, self.data_dir)

    @property
    def db_path(self) -> Path:
        return self.database.path

    @property
    def recordings_dir(self) -> Path:
        return self.data_dir / "recordings"

    @property
    def letters_dir(self) -> Path:
        return self.data_dir / "letters"

    @property
    def audit_key_path(self) -> Path:
        return Path(self.audit_key_file) if self.audit_key_file else _audit_dir(self.data_dir) / "audit.key"

    @property
    def master_key_path(self) -> Path:
        if self.master_key_file:
            return Path(self.master_key_file)
        credentials = os.environ.get("CREDENTIALS_DIRECTORY")
        if credentials and (Path(credentials) / "cim-master-key").exists():
            return Path(credentials) / "cim-master-key"
        return _keys_dir(self.data_dir) / "master.key"

    @property
    def keyring_path(self) -> Path:
        return Path(self.keyring_file) if self.keyring_file else _keys_dir(self.data_dir) / "keyring.sqlite3"

    @property
    def audit_anchors_path(self) -> Path:
        return Path(self.audit_anchors_file) if self.audit_anchors_file else _audit_dir(self.data_dir) / "anchors.jsonl"

    @property
    def mfa_key_path(self) -> Path:
        return Path(self.mfa_key_file) if self.mfa_key_file else self.data_dir / "mfa.key"

    @property
    def mfa_role_names(self) -> frozenset[str]:
        """The role names that need a second factor (`default` resolved at call time)."""
        value = DEFAULT_MFA_ROLES if self.mfa_roles.strip() == "default" else self.mfa_roles
        if value.strip().lower() in ("", "none", "off"):
            return frozenset()
        return frozenset(part.strip() for part in value.split(",") if part.strip())

    @property
    def retention_duration(self) -> Duration:
        return Duration.parse(self.retention)

    @classmethod
    def load(
        cls,
        data_dir: str | Path | None = None,
        env: Mapping[str, str] = os.environ,
        **overrides: object,
    ) -> "Settings":
        """Settings for a data directory: defaults < cim.toml < CIM_* variables < overrides."""
        directory = Path(data_dir) if data_dir else default_data_dir(env)
        values: dict[str, object] = {}
        toml_path = directory / "cim.toml"
        if toml_path.is_file():
            try:
                values.update(tomllib.loads(toml_path.read_text(encoding="utf-8")))
            except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
                raise ConfigError(N_("{toml_path} is not valid TOML: {exc}"), toml_path=toml_path, exc=exc) from exc
        known = {f.name: f for f in fields(cls) if f.name != "data_dir"}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ConfigError(
                N_("{toml_path} has unknown settings: {unknown}"), toml_path=toml_path, unknown=", ".join(unknown)
            )
        for name in known:
            if f"CIM_{name.upper()}" in env:
                values[name] = env[f"CIM_{name.upper()}"]
        values.update({k: v for k, v in overrides.items() if v is not None})
        typed: dict[str, object] = {}
        for name, value in values.items():
            if name not in known:
                raise ConfigError(N_("unknown setting {name!r}"), name=name)
            typed[name] = _coerce(name, known[name].type, value)
        settings = cls(data_dir=directory, **typed)  # type: ignore[arg-type]
        _ = settings.database  # an unsupported CIM_DATABASE_URL fails here, naming the supported schemes
        settings._check_audit_paths()
        _ = settings.retention_duration  # fail loudly on a bad duration now, not at the first chat
        if settings.password_profile not in ("default", "fast"):
            raise ConfigError(N_("CIM_PASSWORD_PROFILE must be 'default' or 'fast'"))
        if settings.ldap_tls not in ("off", "starttls"):
            raise ConfigError(
                N_("CIM_LDAP_TLS must be 'off' or 'starttls' (use an ldaps:// URL for TLS from the start)")
            )
        if settings.chat_assignment not in ("pick", "auto"):
            raise ConfigError(N_("CIM_CHAT_ASSIGNMENT must be 'pick' or 'auto'"))
        if not 1 <= settings.chat_max_concurrent <= 1000:
            raise ConfigError(N_("CIM_CHAT_MAX_CONCURRENT must be from 1 to 1000"))
        if (
            min(settings.staff_reconnect_grace_seconds, settings.chat_idle_minutes, settings.chat_queue_limit_minutes)
            < 0
        ):
            raise ConfigError(
                N_(
                    "CIM_STAFF_RECONNECT_GRACE_SECONDS, CIM_CHAT_IDLE_MINUTES and "
                    "CIM_CHAT_QUEUE_LIMIT_MINUTES must be 0 or more"
                )
            )
        check_redis_url(settings.redis_url)
        if settings.presence_heartbeat_seconds < 1:
            raise ConfigError(N_("CIM_PRESENCE_HEARTBEAT_SECONDS must be at least 1"))
        if settings.leader_lease_seconds < 1:
            raise ConfigError(N_("CIM_LEADER_LEASE_SECONDS must be at least 1"))
        unknown_roles = sorted(settings.mfa_role_names - {r.value for r in Role})
        if unknown_roles:
            raise ConfigError(
                N_("CIM_MFA_ROLES names unknown roles: {unknown_roles}"), unknown_roles=", ".join(unknown_roles)
            )
        return settings

    def _check_audit_paths(self) -> None:
        data_dir = self.data_dir.absolute()
        for name, path in (
            ("CIM_AUDIT_KEY_FILE", self.audit_key_path),
            ("CIM_AUDIT_ANCHORS_FILE", self.audit_anchors_path),
            ("CIM_MASTER_KEY_FILE", self.master_key_path),
            ("CIM_KEYRING_FILE", self.keyring_path),
        ):
            if data_dir in path.absolute().parents:
                raise ConfigError(
                    N_(
                        "{name} ({path}) must be outside the data directory {data_dir}: a copy or "
                        "restore of the data directory must not carry it"
                    ),
                    name=name,
                    path=path,
                    data_dir=self.data_dir,
                )
        if self.audit_anchor_minutes < 0:
            raise ConfigError(N_("CIM_AUDIT_ANCHOR_MINUTES must be 0 or more"))
        check_case_mark(self.case_mark)

    def with_(self, **changes: object) -> "Settings":
        return replace(self, **changes)  # type: ignore[arg-type]


REDIS_SCHEMES = ("redis", "rediss", "unix")


def redis_url_shown(url: str) -> str:
    """`url` fit for a log line or an error: scheme, host, port and path, never the user or password."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url.strip())
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port is not None else ""
    except ValueError:
        return f"{url.split(':', 1)[0]}://…"
    host = f"[{host}]" if ":" in host else host
    return f"{parts.scheme}://{host}{port}{parts.path}"


def check_redis_url(url: str) -> None:
    """CIM_REDIS_URL is empty or a redis://, rediss:// or unix:// URL python-socketio's Redis manager can use."""
    import re
    from urllib.parse import urlsplit

    if not url.strip():
        return
    match = re.match(r"([A-Za-z][A-Za-z0-9+.-]*)://", url.strip())  # "user:password@host" names no scheme
    scheme = match.group(1).lower() if match else ""
    if scheme not in REDIS_SCHEMES:
        raise ConfigError(
            N_("CIM_REDIS_URL must be a redis://, rediss:// or unix:// URL (it has {scheme})"),
            scheme=f"{scheme}://" if scheme else Text(N_("no scheme")),
        )
    try:
        parts = urlsplit(url.strip())
        parts.port  # noqa: B018 (raises ValueError for a port that is not a number up to 65535)
        db = parts.path.strip("/")
    except ValueError:
        raise ConfigError(
            N_("CIM_REDIS_URL {url} has a port that is not a number from 1 to 65535"), url=redis_url_shown(url)
        ) from None
    if scheme == "unix":
        if not parts.path.startswith("/"):
            raise ConfigError(
                N_("CIM_REDIS_URL unix:// needs the socket's absolute path (unix:///run/redis/redis.sock)")
            )
    elif not parts.hostname:
        raise ConfigError(N_("CIM_REDIS_URL {url} names no host (redis://host:6379/0)"), url=redis_url_shown(url))
    elif db and not db.isdigit():
        raise ConfigError(N_("CIM_REDIS_URL {url}: the path must be a database number (/0)"), url=redis_url_shown(url))


_CASE_MARK_FIELDS = {"number", "n", "nnnn", "yyyy"}


def check_case_mark(pattern: str) -> None:
    """A case mark pattern names only known fields and tells requests apart ({number}, {n} or {nnnn})."""
    import string

    try:
        names = {name for _, name, _, _ in string.Formatter().parse(pattern) if name is not None}
    except ValueError as exc:
        raise ConfigError(
            N_("CIM_CASE_MARK {pattern!r} is not a valid pattern: {exc}"), pattern=pattern, exc=exc
        ) from None
    unknown = sorted(names - _CASE_MARK_FIELDS)
    if unknown:
        raise ConfigError(
            N_("CIM_CASE_MARK {pattern!r} uses unknown fields {unknown}; known: {{number}}, {{n}}, {{nnnn}}, {{yyyy}}"),
            pattern=pattern,
            unknown=", ".join(unknown),
        )
    if not names & {"number", "n", "nnnn"}:
        raise ConfigError(
            N_("CIM_CASE_MARK {pattern!r} must contain {{number}}, {{n}} or {{nnnn}} so each case has its own mark"),
            pattern=pattern,
        )


def case_mark(pattern: str, number: str) -> str:
    """The case mark of the request numbered `number` (CIM/2026/0007), e.g. `BOI-CIM.1510.7.2026`."""
    _, year, seq = number.split("/")
    return pattern.format(number=number, n=int(seq), nnnn=seq, yyyy=year)


def _keys_dir(data_dir: Path) -> Path:
    """`<data dir>-keys`, beside the data directory (systemd: StateDirectory=cim cim-audit cim-keys)."""
    data_dir = data_dir.absolute()
    return data_dir.with_name(data_dir.name + "-keys")


def _audit_dir(data_dir: Path) -> Path:
    """`<data dir>-audit`, beside the data directory (systemd: StateDirectory=cim cim-audit)."""
    data_dir = data_dir.absolute()
    return data_dir.with_name(data_dir.name + "-audit")


def _coerce(name: str, kind: object, value: object) -> object:
    if kind in (int, "int"):
        try:
            if not isinstance(value, (str, bytes, bytearray, SupportsInt, SupportsIndex)):
                raise TypeError(value)  # what int() refuses too (a table, a list, a date)
            return int(value)
        except (TypeError, ValueError):
            raise ConfigError(
                N_("setting {name} must be a whole number, not {value!r}"), name=name, value=value
            ) from None
    if name == "ldap_role_map" and isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)  # kept as text: Settings is frozen
    if not isinstance(value, (str, int, float)):
        raise ConfigError(N_("setting {name} must be text, not {type}"), name=name, type=type(value).__name__)
    return str(value)
