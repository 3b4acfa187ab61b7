"""The single owner of SQLite connections: opening, migrations, the write lock and transactions."""

from __future__ import annotations

import asyncio
import importlib
import os
import sqlite3
import stat
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, AsyncIterator, Callable, Iterable, TypeVar

import aiosqlite

from ..clock import Clock, to_iso
from ..errors import StoreUnavailable
from ..i18n import N_

if TYPE_CHECKING:
    from .hooks import SqliteHooks

T = TypeVar("T")

MIGRATIONS_DIR = Path(__file__).parent.parent / "migrations"
#: PRAGMA application_id of a CIM database ("CIM1"), so a foreign SQLite file is refused.
APPLICATION_ID = 0x43494D31
#: How long a connection waits for SQLite's locks before it reports "database is locked".
BUSY_TIMEOUT_MS = 10000


def migration_names() -> list[str]:
    """Ordered names of the migrations shipped with this version (.sql scripts and .py modules)."""
    return sorted(p.name for p in MIGRATIONS_DIR.iterdir() if p.suffix in (".sql", ".py") and p.stem[:4].isdigit())


def check_data_dir(path: Path, *, create: bool) -> None:
    """Create the data directory 0700, or refuse one that others can read or that is not writable."""
    if not path.exists():
        if not create:
            raise StoreUnavailable(N_("data directory {path} does not exist; run `cim init` first"), path=path)
        try:
            path.mkdir(mode=0o700, parents=True)
        except OSError as exc:
            raise StoreUnavailable(
                N_("cannot create data directory {path}: {strerror}"), path=path, strerror=exc.strerror
            ) from exc
    if not path.is_dir():
        raise StoreUnavailable(N_("data directory {path} is not a directory"), path=path)
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise StoreUnavailable(
            N_("data directory {path} is open to other users (mode {mode:o}); run `chmod 700 {path}`"),
            path=path,
            mode=stat.S_IMODE(mode),
        )
    if not os.access(path, os.W_OK | os.X_OK):
        raise StoreUnavailable(N_("data directory {path} is not writable by this user"), path=path)


class Transaction:
    """One short write transaction on the writer (BEGIN IMMEDIATE … COMMIT): the unit of work.

    A service opens it (through its repository), the repository's writes run in it and the audit
    entry joins it (AuditLog.append), so a change and the entry that records it commit or roll back
    together. `connection` is for the repositories and the audit in store/ only.
    """

    __slots__ = ("connection",)

    def __init__(self, connection: aiosqlite.Connection) -> None:
        self.connection = connection


class Repository:
    """A domain area's SQL on one Database: reads on its reader, writes in the caller's `Transaction`."""

    def __init__(self, db: "Database") -> None:
        self.db = db

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        """One short write transaction (the unit of work) that the repository's writes and the audit entry share."""
        async with self.db.transaction() as tx:
            yield tx


class Database:
    """One writer connection behind an asyncio lock (short BEGIN IMMEDIATE transactions) and one reader."""

    def __init__(self, path: Path, clock: Clock, keyring: Path | None = None) -> None:
        self.path = path
        self.clock = clock
        #: The key ring (store/keys.py), attached to every connection as `keyring` (outside the data directory).
        self.keyring = keyring
        self._writer: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._write_lock = asyncio.Lock()

    async def open(self, *, create: bool) -> None:
        if not create and not self.path.exists():
            raise StoreUnavailable(N_("no CIM database at {path}; run `cim init` first"), path=self.path)
        try:
            self._writer = await self._connect()
            await self._check_foreign(self._writer)
            await self._writer.execute("PRAGMA journal_mode=WAL")
            await self._migrate(self._writer)
            self._reader = await self._connect()
        except sqlite3.DatabaseError as exc:
            await self.close()
            raise StoreUnavailable(N_("{path} is not a usable CIM database ({exc})"), path=self.path, exc=exc) from exc
        except BaseException:
            await self.close()  # a foreign database, a failed migration: no worker thread left behind
            raise
        os.chmod(self.path, 0o600)

    async def _connect(self) -> aiosqlite.Connection:
        old_umask = os.umask(0o077)
        try:
            conn = await aiosqlite.connect(self.path, isolation_level=None)
        finally:
            os.umask(old_umask)
        conn.row_factory = sqlite3.Row
        try:
            for pragma in (
                "PRAGMA foreign_keys=ON",
                f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}",
                "PRAGMA synchronous=NORMAL",  # WAL + NORMAL: a committed write survives a killed process
                "PRAGMA secure_delete=ON",  # freed pages are zeroed: purged text leaves no remnant
            ):
                await conn.execute(pragma)
            # case-insensitive search beyond ASCII (Polish letters): SQLite's lower() folds only A-Z
            await conn.create_function("cim_fold", 1, _fold, deterministic=True)
            if self.keyring is not None:  # after secure_delete: an attached database takes main's setting
                await conn.execute("ATTACH DATABASE ? AS keyring", (str(self.keyring),))
        except BaseException:
            await conn.close()  # its worker thread would otherwise keep the process alive
            raise
        return conn

    async def _check_foreign(self, conn: aiosqlite.Connection) -> None:
        app_id = one_row(await (await conn.execute("PRAGMA application_id")).fetchone(), "PRAGMA application_id")[0]
        tables = one_row(await (await conn.execute("SELECT count(*) FROM sqlite_master")).fetchone(), "count(*)")[0]
        if app_id == 0 and tables == 0:
            await conn.execute(f"PRAGMA application_id={APPLICATION_ID}")
        elif app_id != APPLICATION_ID:
            raise StoreUnavailable(N_("{path} is an SQLite database of another application, not CIM's"), path=self.path)

    async def _migrate(self, conn: aiosqlite.Connection) -> None:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)"
        )
        applied = {row[0] for row in await conn.execute_fetchall("SELECT name FROM schema_migrations")}
        for name in migration_names():
            if name in applied:
                continue
            await conn.execute("BEGIN IMMEDIATE")
            try:
                for sql, params in _migration_steps(name):
                    await conn.execute(sql, params)
                await conn.execute(
                    "INSERT INTO schema_migrations(name, applied_at) VALUES (?, ?)",
                    (name, to_iso(self.clock())),
                )
                await conn.execute("COMMIT")
            except BaseException:
                await conn.execute("ROLLBACK")
                raise

    async def applied_migrations(self) -> list[str]:
        rows = await self.fetchall("SELECT name FROM schema_migrations ORDER BY name")
        return [r["name"] for r in rows]

    @asynccontextmanager
    async def write(self) -> AsyncIterator[aiosqlite.Connection]:
        """A short write transaction; commits on success, rolls back on any error."""
        assert self._writer is not None, "database is closed"
        async with self._write_lock:
            await self._writer.execute("BEGIN IMMEDIATE")
            try:
                yield self._writer
            except BaseException:
                await self._writer.execute("ROLLBACK")
                raise
            else:
                await self._writer.execute("COMMIT")

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        """`write()` as a unit of work for repositories: the same lock, BEGIN IMMEDIATE, COMMIT or ROLLBACK."""
        async with self.write() as conn:
            yield Transaction(conn)

    async def write_call(self, fn: Callable[..., T], *args: Any) -> T:
        """A whole short write transaction in ONE call on the writer's thread: BEGIN IMMEDIATE, fn(conn, *args), COMMIT.

        Same lock and same transaction as `write()`, without three thread hand-offs (BEGIN, the work,
        COMMIT) for a one-statement transaction such as the audit entry of an archive search (bench/).
        """
        assert self._writer is not None, "database is closed"
        async with self._write_lock:
            return await run_on_thread(self._writer, _in_transaction, fn, args)

    async def fetchall(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
        assert self._reader is not None, "database is closed"
        return list(await self._reader.execute_fetchall(sql, tuple(params)))

    async def fetchone(self, sql: str, params: Iterable[Any] = ()) -> sqlite3.Row | None:
        assert self._reader is not None, "database is closed"
        # Execute, fetch and close in ONE call on the reader's thread. A cursor left open across awaits
        # (execute … await fetchone … await close) keeps its statement, and so its read snapshot, alive
        # while other coroutines query the same connection; under concurrent reads the reader then
        # never moves past an old snapshot and misses rows committed a moment ago (found by bench/:
        # a chat just opened was "not found"). See run_on_thread.
        return await run_on_thread(self._reader, _first_row, sql, tuple(params))

    async def checkpoint_truncate(self, busy_ms: int | None = None) -> bool:
        """Fold the WAL into the database and truncate it, so no old page survives in `-wal`.

        True when SQLite reports the checkpoint complete; False when another connection's read
        transaction blocked it (the old pages then stay in the WAL and the database file). While
        it waits, SQLite also blocks writers, so `busy_ms` bounds one attempt (default: the busy timeout).
        """
        assert self._writer is not None
        async with self._write_lock:
            if busy_ms is not None:
                await self._writer.execute(f"PRAGMA busy_timeout={int(busy_ms)}")
            try:
                rows = await self._writer.execute_fetchall("PRAGMA wal_checkpoint(TRUNCATE)")
                if self.keyring is not None:  # a destroyed data key leaves no old page in the key ring's WAL
                    await self._writer.execute_fetchall("PRAGMA keyring.wal_checkpoint(TRUNCATE)")
            finally:
                if busy_ms is not None:
                    await self._writer.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        first = next(iter(rows), None)
        return first is not None and first[0] == 0

    def hooks(self) -> "SqliteHooks":
        """The engine's own mechanics the domain asks for (store/backend.py BackendHooks)."""
        from .hooks import SqliteHooks

        return SqliteHooks(self)

    @property
    def writer(self) -> aiosqlite.Connection:
        assert self._writer is not None, "database is closed"
        return self._writer

    async def close(self) -> None:
        for conn in (self._reader, self._writer):
            if conn is not None:
                await conn.close()
        self._reader = self._writer = None


def inserted_id(cursor: sqlite3.Cursor | aiosqlite.Cursor) -> int:
    """The row id the INSERT just run on `cursor` gave; an error, never None, when it reports none."""
    rowid = cursor.lastrowid
    if rowid is None:
        raise RuntimeError("an INSERT reported no row id")
    return rowid


def one_row(row: sqlite3.Row | None, query: str) -> sqlite3.Row:
    """The row of a query that always returns one (an aggregate, a PRAGMA); a clear error if it did not."""
    if row is None:
        raise RuntimeError(f"{query} returned no row")
    return row


def _in_transaction(conn: sqlite3.Connection, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
    conn.execute("BEGIN IMMEDIATE")
    try:
        result = fn(conn, *args)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return result


def _first_row(conn: sqlite3.Connection, sql: str, params: tuple[Any, ...]) -> sqlite3.Row | None:
    cursor = conn.execute(sql, params)
    try:
        return cursor.fetchone()
    finally:
        cursor.close()


async def run_on_thread(conn: aiosqlite.Connection, fn: Callable[..., T], *args: Any) -> T:
    """Run `fn(sqlite3_connection, *args)` on an aiosqlite connection's own thread, in one hop.

    Several statements in one call instead of one thread hand-off each (the audit append, a CDR
    batch, fetchone's execute-fetch-close). The only place that uses aiosqlite's private
    `_execute`/`_conn` (aiosqlite is pinned in pyproject.toml; tests/test_store_basics.py checks it).
    """
    return await conn._execute(fn, conn._conn, *args)


def _migration_steps(name: str) -> list[tuple[str, tuple[Any, ...]]]:
    path = MIGRATIONS_DIR / name
    if path.suffix == ".py":
        module = importlib.import_module(f"store.migrations.{path.stem}")
        return [(sql, tuple(params)) for sql, params in module.steps()]
    return [(statement, ()) for statement in _split_sql(path.read_text(encoding="utf-8"))]


def _split_sql(script: str) -> list[str]:
    """Split a migration script into statements (triggers' inner `;` kept together)."""
    statements, current = [], ""
    for line in script.splitlines(keepends=True):
        if line.lstrip().startswith("--") and not current.strip():
            continue
        current += line
        if sqlite3.complete_statement(current):
            statements.append(current.strip())
            current = ""
    if current.strip():
        statements.append(current.strip())
    return statements


def _fold(value: object) -> str | None:
    return value.casefold() if isinstance(value, str) else None
