"""The benchmarks' own connection to a CIM database file: beside the store's connections, never through them.

Two things the product has no public way to do use it: fixtures the store never writes (plain
transcript lines from before sealing, for the migration; a call row with its recording without an
ingest run) and the hand-written baseline queries the archive search is measured against. The
store's connection stays the store's (tests/test_persistence_boundary.py checks bench/ as well as
webchat/, cim/ and tui/). Like the store's reader it answers on one thread of its own, one hop per query.
"""

from __future__ import annotations

import asyncio
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Iterable, TypeVar

T = TypeVar("T")


class SqlFile:
    """A plain sqlite3 connection to `<data dir>/cim.sqlite3` (WAL: it reads and writes beside a running store)."""

    def __init__(self, path: Path, *, read_only: bool = False) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=10)
        self.conn.row_factory = sqlite3.Row
        self.conn.execute("PRAGMA foreign_keys=ON")
        if read_only:
            self.conn.execute("PRAGMA query_only=ON")
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bench-sql")

    async def rows(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
        """All rows of one query, fetched on the connection's thread."""
        return await asyncio.get_running_loop().run_in_executor(self._thread, _rows, self.conn, sql, tuple(params))

    async def write(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(connection, *args)` in one BEGIN IMMEDIATE … COMMIT (ROLLBACK on an error)."""
        return await asyncio.get_running_loop().run_in_executor(self._thread, _in_transaction, self.conn, fn, args)

    def close(self) -> None:
        self._thread.shutdown(wait=True)
        self.conn.close()

    def __enter__(self) -> "SqlFile":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _rows(conn: sqlite3.Connection, sql: str, params: tuple[Any, ...]) -> list[sqlite3.Row]:
    return conn.execute(sql, params).fetchall()


def _in_transaction(conn: sqlite3.Connection, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
    conn.execute("BEGIN IMMEDIATE")
    try:
        result = fn(conn, *args)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return result
