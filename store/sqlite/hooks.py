"""SQLite's own mechanics behind store/backend.py's BackendHooks: WAL checkpoints, FTS5 optimise, the purge's scrub, backup copies.

`PRAGMA secure_delete=ON` (database.py, on every connection) zeroes the pages a DELETE frees;
what it cannot reach is old page images in the WAL and the tokens in FTS segments, which the
purge clears here: `optimise_search()` merges the segments, `scrub_after_purge()` checkpoints and
truncates the WAL so no frame of deleted text survives in `cim.sqlite3-wal`.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from pathlib import Path

from ..backend import DatabaseCopy
from .database import Database

log = logging.getLogger("store.retention")  # the purge's log lines keep the name operators grep for

#: SQLite's default wal_autocheckpoint (pages), restored on the writer after a bulk delete.
AUTOCHECKPOINT_PAGES = 1000
#: During a bulk delete, a PASSIVE checkpoint starts beside the writer once the WAL is this large.
CHECKPOINT_WAL_BYTES = 4 << 20
#: One scrub attempt (checkpoint TRUNCATE) waits at most this long for readers; SQLite blocks
#: writers meanwhile, so live chat commits wait no longer than this between attempts.
SCRUB_ATTEMPT_MS = 100


class SqliteHooks:
    """The BackendHooks of one SQLite database (store/backend.py)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._bulk: _Checkpointer | None = None

    # ----------------------------------------------------------------------------- bulk deletes

    async def begin_bulk_delete(self) -> None:
        """Turn the writer's automatic WAL checkpoint off while a purge runs; PASSIVE ones run beside it.

        An automatic checkpoint runs inside whichever COMMIT crosses the threshold and fsyncs the
        database file while the write lock is held; during a purge that stalled chat commits for
        hundreds of ms (bench/FINDINGS.md).
        """
        self._bulk = _Checkpointer(self.db.path)
        await self._autocheckpoint(0)

    def bulk_batch_committed(self) -> None:
        if self._bulk is not None:
            self._bulk.maybe_start()

    async def end_bulk_delete(self) -> None:
        bulk, self._bulk = self._bulk, None
        if bulk is not None:
            await bulk.wait()
        try:
            await self._autocheckpoint(AUTOCHECKPOINT_PAGES)
        except Exception:  # a failing store: the next connection starts with SQLite's default again
            log.exception("could not turn the automatic WAL checkpoint back on after the purge")

    async def _autocheckpoint(self, pages: int) -> None:
        async with self.db.write() as tx:
            await tx.execute(f"PRAGMA wal_autocheckpoint={int(pages)}")

    # ----------------------------------------------------------------------------- after a purge

    async def checkpoint(self) -> None:
        """Most of the WAL folded in beside the writer, so the TRUNCATE under the write lock is short."""
        await _Checkpointer(self.db.path).run()

    async def optimise_search(self) -> None:
        """Merge full-text indexes so no segment keeps tokens of a deleted message (secure_delete zeroes the rest)."""
        for t in await self.db.fetchall(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND sql LIKE '%USING fts%'"
        ):
            name = t["name"].replace('"', '""')
            try:
                async with self.db.write() as tx:
                    await tx.execute(f'INSERT INTO "{name}"("{name}") VALUES (\'optimize\')')
            except sqlite3.DatabaseError as exc:
                log.warning("could not optimise full-text index %s after the purge: %s", t["name"], exc)

    async def scrub_after_purge(self, wait_seconds: int) -> bool:
        """Checkpoint and truncate the WAL, so no page of purged text survives in the database or its -wal.

        Another connection's read transaction (a long report, a backup, an admin's sqlite3 shell)
        pins old pages: the checkpoint is retried in short attempts, the write lock free between
        them, for up to `wait_seconds`. True when a checkpoint TRUNCATE completed.
        """
        wal = Path(f"{self.db.path}-wal")
        deadline = time.monotonic() + max(0, wait_seconds)
        delay, first = 0.05, True
        while True:
            try:
                complete = await self.db.checkpoint_truncate(busy_ms=SCRUB_ATTEMPT_MS)
            except sqlite3.OperationalError as exc:  # "database is locked": another process is writing
                log.info("a scrub attempt was blocked: %s", exc)
                complete = False
            if complete:  # every frame folded in and the WAL reset (a later write of another process is new data)
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                try:
                    size = wal.stat().st_size
                except FileNotFoundError:
                    size = 0
                log.warning(
                    "the purge could not truncate the WAL (%d bytes left): another connection held a read"
                    " transaction for %ds; purged text may remain until the next purge",
                    size,
                    wait_seconds,
                )
                return False
            if first:
                first = False
                log.info("the purge waits up to %ds for another connection's read transaction to end", wait_seconds)
            await asyncio.sleep(min(delay, remaining))
            delay = min(delay * 2, 1.0)

    # ----------------------------------------------------------------------------- backups, health

    def copy_database(self, destination: Path) -> DatabaseCopy:
        """SQLite's online backup API in one step (a consistent snapshot; WAL lets writers carry on), then
        the copy switched to a rollback journal so it is one self-contained file, and read for the manifest."""
        target_db = destination / self.db.path.name
        source = sqlite3.connect(f"file:{self.db.path}?mode=ro", uri=True)
        target = sqlite3.connect(target_db)
        try:
            source.backup(target)
            target.execute("PRAGMA journal_mode=DELETE")
            paths = tuple(r[0] for r in target.execute("SELECT path FROM recordings ORDER BY id"))
            oldest = target.execute("SELECT min(purge_after) FROM conversations").fetchone()[0]
            sealed = target.execute("SELECT count(*) FROM conversations WHERE key_id IS NOT NULL").fetchone()[0]
            unsealed = target.execute("SELECT count(*) FROM messages WHERE typeof(text) = 'text'").fetchone()[0]
            unsealed_notes = target.execute(
                "SELECT (SELECT count(*) FROM chat_staff_notes WHERE typeof(text) = 'text') + (SELECT count(*) "
                "FROM call_notes WHERE typeof(note) = 'text' AND note <> '')"
            ).fetchone()[0]
        finally:
            source.close()
            target.close()
        return DatabaseCopy(target_db, paths, oldest, sealed, unsealed, unsealed_notes)

    async def ping(self) -> None:
        await self.db.fetchone("SELECT 1")

    async def applied_migrations(self) -> list[str]:
        return await self.db.applied_migrations()


class _Checkpointer:
    """PASSIVE WAL checkpoints on their own short-lived connection in a thread, one at a time.

    PASSIVE never takes the write lock nor waits for readers, so chat commits carry on while the
    database file is written and fsynced; the WAL is reset by a later write once it is fully copied.
    """

    def __init__(self, db_path: Path) -> None:
        self.db_path = db_path
        self.wal = Path(f"{db_path}-wal")
        self.task: asyncio.Task | None = None

    def maybe_start(self) -> None:
        if self.task is not None and not self.task.done():
            return
        if self.task is not None:
            self._collect(self.task)
        try:
            size = self.wal.stat().st_size
        except FileNotFoundError:
            return
        if size >= CHECKPOINT_WAL_BYTES:
            self.task = asyncio.ensure_future(asyncio.to_thread(_passive_checkpoint, self.db_path))

    async def run(self) -> None:
        """One PASSIVE checkpoint now, awaited (a failure is logged: the TRUNCATE that follows still runs)."""
        self.task = asyncio.ensure_future(asyncio.to_thread(_passive_checkpoint, self.db_path))
        await self.wait()

    async def wait(self) -> None:
        if self.task is not None:
            await asyncio.wait([self.task])
            self._collect(self.task)
            self.task = None

    @staticmethod
    def _collect(task: asyncio.Task) -> None:
        exc = task.exception()
        if exc is not None:  # the final TRUNCATE checkpoint (and SQLite's own) will still fold the WAL
            log.warning("a PASSIVE checkpoint during the purge failed: %s", exc)


def _passive_checkpoint(db_path: Path) -> None:
    conn = sqlite3.connect(db_path, timeout=10, isolation_level=None)
    try:
        conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
    finally:
        conn.close()
