"""The persistence boundary: which database backend `CIM_DATABASE_URL` names, and the hooks the domain needs from it.

The domain services (store/retention.py, ...) hold the rules (permission, audit, transitions) and
call a repository for SQL; what is not SQL but an engine's own upkeep (folding its log, merging a
search index, scrubbing freed pages after a purge, copying the database for a backup) is asked of
the backend through `MaintenanceHooks`, named for what the domain needs. Only `sqlite:` exists
(store/sqlite/); a new backend is a new package that provides the same opener and hooks.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from .errors import ConfigError
from .i18n import N_

#: The database file in the data directory when CIM_DATABASE_URL is empty or just `sqlite:`.
DEFAULT_DATABASE_FILE = "cim.sqlite3"
#: Schemes CIM_DATABASE_URL may use, in the order the error message names them.
SUPPORTED_SCHEMES = ("sqlite",)
#: The package of each scheme's backend; it provides `open_database(settings, clock, *, create)`.
_BACKENDS = {"sqlite": "store.sqlite"}
#: Names in the data directory that belong to something else and may not be the database file.
_RESERVED_NAMES = {"cim.toml", "mfa.key", "purge.lock", "recordings", "letters"}


@dataclass(frozen=True)
class DatabaseUrl:
    """A parsed CIM_DATABASE_URL: the backend's scheme and, for `sqlite:`, the database file."""

    scheme: str
    path: Path

    def __str__(self) -> str:
        return f"{self.scheme}:{self.path}"


def parse_database_url(value: str, data_dir: Path) -> DatabaseUrl:
    """The backend and database that `value` names; a ConfigError that says why for anything else.

    Accepted: empty or `sqlite:` (the data directory's cim.sqlite3, as before this setting),
    `sqlite:NAME`, `sqlite:/abs/path/NAME` or `sqlite:///abs/path/NAME`, where the file is directly in
    the data directory: that directory's 0700 check, `cim backup` and the restore instructions are
    what protect and carry it. The message never repeats the URL: another scheme's URL may hold a
    password.
    """
    text = (value or "").strip()
    if not text:
        text = "sqlite:"
    scheme, sep, rest = text.partition(":")
    scheme = scheme.lower()
    if not sep or scheme not in SUPPORTED_SCHEMES:
        shown = scheme if sep and scheme.isascii() and scheme.replace("+", "").replace("-", "").isalnum() else "?"
        raise ConfigError(
            N_("CIM_DATABASE_URL names an unsupported database (scheme {shown!r}); supported: {supported}"),
            shown=shown,
            supported=", ".join(f"{s}:" for s in SUPPORTED_SCHEMES),
        )
    return _sqlite_url(rest, Path(data_dir))


def open_backend(scheme: str):
    """The backend package of a (parsed, so supported) scheme, imported only when it is used."""
    try:
        return importlib.import_module(_BACKENDS[scheme])
    except KeyError:
        raise ConfigError(
            N_("no backend for the database scheme {scheme!r}; supported: {supported}"),
            scheme=scheme,
            supported=", ".join(f"{s}:" for s in SUPPORTED_SCHEMES),
        ) from None


def _sqlite_url(rest: str, data_dir: Path) -> DatabaseUrl:
    if "\x00" in rest or any(ch in rest for ch in "?#"):
        raise ConfigError(N_("CIM_DATABASE_URL: an sqlite: URL takes a file name only (no query, fragment or NUL)"))
    if rest.startswith("//"):
        after = rest[2:]
        if not after.startswith("/"):  # sqlite://host/... : a host means nothing to a local file
            raise ConfigError(N_("CIM_DATABASE_URL: an sqlite: URL names a local file (sqlite:///path), not a host"))
        rest = after
    if rest in ("", "/"):
        return DatabaseUrl("sqlite", data_dir / DEFAULT_DATABASE_FILE)
    if rest == ":memory:" or rest.startswith("file:"):
        raise ConfigError(
            N_(
                "CIM_DATABASE_URL: CIM needs a database file (a second connection, the WAL, backups), "
                "not an in-memory or URI database"
            )
        )
    candidate = Path(rest)
    if not candidate.is_absolute():
        if len(candidate.parts) != 1:
            raise ConfigError(
                N_("CIM_DATABASE_URL: a relative sqlite: name must be a plain file name in the data directory")
            )
        candidate = data_dir / candidate
    parent = Path(_normal(candidate.parent))
    if parent != Path(_normal(data_dir)) or candidate.name in ("", ".", ".."):
        raise ConfigError(
            N_(
                "CIM_DATABASE_URL: the SQLite database must be a file directly in the data directory "
                "{data_dir} (its mode 0700 protects it; `cim backup` copies it from there)"
            ),
            data_dir=data_dir,
        )
    if candidate.name in _RESERVED_NAMES or candidate.name.endswith(("-wal", "-shm", "-journal")):
        raise ConfigError(
            N_("CIM_DATABASE_URL: {name!r} in the data directory belongs to something else"), name=candidate.name
        )
    return DatabaseUrl("sqlite", data_dir / candidate.name)


def _normal(path: Path) -> str:
    import os

    return os.path.normpath(os.path.abspath(path))


@runtime_checkable
class BackendHooks(Protocol):
    """What the domain asks of the database engine beyond its repositories' SQL (see the module docstring)."""

    async def begin_bulk_delete(self) -> None:
        """Before a long run of deleting transactions (a purge): no engine upkeep inside a commit."""

    def bulk_batch_committed(self) -> None:
        """After each committed batch of that run: fold the log beside the writer once it has grown."""

    async def end_bulk_delete(self) -> None:
        """After the run (also after a failure): wait for that upkeep, then the engine's own again."""

    async def checkpoint(self) -> None:
        """Fold the engine's log into the database now, beside the writer (so the scrub after it is short)."""

    async def optimise_search(self) -> None:
        """Merge the full-text indexes so no segment keeps the words of a deleted message."""

    async def scrub_after_purge(self, wait_seconds: int) -> bool:
        """Leave no page of deleted content in the database files; True when done, False when another
        connection's read kept old pages beyond `wait_seconds` (the next purge retries)."""

    def copy_database(self, destination: Path) -> "DatabaseCopy":
        """A consistent copy of the database into the folder `destination` (blocking: run it in a thread)."""

    async def ping(self) -> None:
        """Raise when the database does not answer (the server's /healthz)."""

    async def applied_migrations(self) -> list[str]:
        """Names of the migrations recorded in the database, in order."""


@dataclass(frozen=True)
class DatabaseCopy:
    """What a backup needs to know of the copied database, read from the copy itself."""

    path: Path
    recording_paths: tuple[str, ...]
    earliest_purge_after: str | None
    sealed_conversations: int
    unsealed_lines: int
    unsealed_notes: int = 0  # supervisors' whispers and call notes still in plaintext
