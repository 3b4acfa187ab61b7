"""The calls' repository on SQLite: every statement of store/calls.py's Calls service.

store/calls.py holds the rules (who may configure routes and ingest, parsing the CDR, grouping legs into
calls and summarising them, matching and copying recordings, what is audited); this module holds the SQL.

Two kinds of methods:

- async ones for the service's own work (routes, the demo's extensions, the counts read back after an
  ingest): reads go to the reader connection; writes take the caller's `Transaction` from
  `transaction()`, which the audit entry joins;
- synchronous ones for the ingestion path, which runs whole batches in ONE call on the writer's thread
  (`run` inside the caller's transaction, `write_call` as a transaction of its own): they take that
  thread's sqlite3 connection and run inside the transaction the caller holds.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Iterable

from .database import Database, Transaction


class CallsRepository:
    """The SQL of store/calls.py's Calls service."""

    def __init__(self, db: Database) -> None:
        self.db = db

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        """One short write transaction (the unit of work) that the repository's writes and the audit entry share."""
        async with self.db.transaction() as tx:
            yield tx

    # -- routes -------------------------------------------------------------------------------------

    async def department_id(self, tx: Transaction, code: str) -> int | None:
        """The department with this code, read in the caller's transaction; None when there is none."""
        row = await (await tx.connection.execute("SELECT id FROM departments WHERE code = ?", (code,))).fetchone()
        return None if row is None else row["id"]

    async def set_route(self, tx: Transaction, number: str, department_id: int) -> None:
        await tx.connection.execute(
            "INSERT INTO call_routes(number, department_id) VALUES (?, ?) "
            "ON CONFLICT(number) DO UPDATE SET department_id = excluded.department_id",
            (number, department_id),
        )

    async def remove_route(self, tx: Transaction, number: str) -> bool:
        """Remove the route of a dialled number; False when it had none."""
        cur = await tx.connection.execute("DELETE FROM call_routes WHERE number = ?", (number,))
        return cur.rowcount != 0

    async def routes(self) -> list[Any]:
        """(number, code) of every route, by number."""
        return await self.db.fetchall(
            "SELECT r.number, d.code FROM call_routes r JOIN departments d ON d.id = r.department_id ORDER BY r.number"
        )

    # -- the demo's extensions ------------------------------------------------------------------------

    async def extension_taken(self, extension: str) -> bool:
        return await self.db.fetchone("SELECT 1 FROM staff_extensions WHERE extension = ?", (extension,)) is not None

    async def staff_id(self, name: str) -> int | None:
        row = await self.db.fetchone("SELECT id FROM staff WHERE name = ?", (name,))
        return None if row is None else row["id"]

    async def add_extension(self, tx: Transaction, extension: str, staff_id: int) -> None:
        await tx.connection.execute(
            "INSERT INTO staff_extensions(extension, staff_id) VALUES (?, ?)", (extension, staff_id)
        )

    # -- after an ingest ------------------------------------------------------------------------------

    async def calls_without_recording(self, conversation_ids: Iterable[int]) -> int:
        """How many of these calls have no recording."""
        ids = tuple(conversation_ids)
        marks = ",".join("?" * len(ids))
        row = await self.db.fetchone(
            f"SELECT count(*) AS n FROM conversations c WHERE c.id IN ({marks}) "
            "AND NOT EXISTS (SELECT 1 FROM recordings r WHERE r.conversation_id = c.id)",
            ids,
        )
        assert row is not None  # count(*) always answers one row
        return row["n"]
