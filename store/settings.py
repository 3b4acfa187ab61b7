"""The one settings object: typed fields read from `<data dir>/cim.toml` and `CIM_*` variables (which win)."""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Mapping

from .clock import Duration
from .errors import ConfigError

DEFAULT_OPENING_HOURS = "mon 07:30-18:00; tue-fri 07:30-15:30; holidays closed"


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
    #: Weekly schedule in Europe/Warsaw time (see README), or `always`.
    opening_hours: str = DEFAULT_OPENING_HOURS
    #: ISO 8601 duration fixed into each conversation's purge_after when it is created (§6).
    retention: str = "P6M"
    #: Messages per resident as `N/SECONDS`, or `off`.
    resident_rate_limit: str = "10/10"
    #: Socket connections allowed from one address at once, or `off`.
    max_connections_per_address: str = "50"
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
    #: How long a `cim backup` may be kept (ISO 8601), written into its backup.json as destroy_by (§6).
    backup_keep: str = "P30D"
    #: Chat: minutes after a chat ended during which its resume token still shows the transcript.
    chat_resume_minutes: int = 30
    #: Chat server: addresses of reverse proxies (comma-separated IPs) whose X-Forwarded-For and
    #: X-Forwarded-Proto are believed; empty = the socket's peer address is the resident's address.
    trusted_proxies: str = ""
    #: Calls: a dialled or calling number with at most this many digits is a PBX extension (internal).
    pbx_extension_max_digits: int = 5

    @property
    def db_path(self) -> Path:
        return self.data_dir / "cim.sqlite3"

    @property
    def recordings_dir(self) -> Path:
        return self.data_dir / "recordings"

    @property
    def letters_dir(self) -> Path:
        return self.data_dir / "letters"

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
                raise ConfigError(f"{toml_path} is not valid TOML: {exc}") from exc
        known = {f.name: f for f in fields(cls) if f.name != "data_dir"}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ConfigError(f"{toml_path} has unknown settings: {', '.join(unknown)}")
        for name in known:
            if f"CIM_{name.upper()}" in env:
                values[name] = env[f"CIM_{name.upper()}"]
        values.update({k: v for k, v in overrides.items() if v is not None})
        typed: dict[str, object] = {}
        for name, value in values.items():
            if name not in known:
                raise ConfigError(f"unknown setting {name!r}")
            typed[name] = _coerce(name, known[name].type, value)
        settings = cls(data_dir=directory, **typed)  # type: ignore[arg-type]
        settings.retention_duration  # fail loudly on a bad duration now, not at the first chat
        if settings.password_profile not in ("default", "fast"):
            raise ConfigError("CIM_PASSWORD_PROFILE must be 'default' or 'fast'")
        return settings

    def with_(self, **changes: object) -> "Settings":
        return replace(self, **changes)  # type: ignore[arg-type]


def _coerce(name: str, kind: object, value: object) -> object:
    if kind in (int, "int"):
        try:
            return int(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise ConfigError(f"setting {name} must be a whole number, not {value!r}") from None
    if not isinstance(value, (str, int, float)):
        raise ConfigError(f"setting {name} must be text, not {type(value).__name__}")
    return str(value)
