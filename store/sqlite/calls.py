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

import sqlite3
from typing import Any, Callable, Iterable, TypeVar

from .database import Repository, Transaction, run_on_thread

T = TypeVar("T")

#: Ids looked up per statement (a statement's bound values stay well under SQLite's limit).
_CHUNK = 400

#: The columns of a call leg, in the order of the tuples `insert_legs` takes.
LEG_COLUMNS = (
    "leg_key",
    "uniqueid",
    "conversation_id",
    "fingerprint",
    "imported_at",
    "linkedid",
    "sequence",
    "start_at",
    "answer_at",
    "end_at",
    "duration_s",
    "billsec_s",
    "src",
    "dst",
    "clid",
    "channel",
    "dstchannel",
    "dcontext",
    "lastapp",
    "disposition",
    "userfield",
    "did",
    "recordingfile",
)
_INSERT_LEGS = f"INSERT INTO call_legs({', '.join(LEG_COLUMNS)}) VALUES ({', '.join('?' * len(LEG_COLUMNS))})"


def _chunks(items: list[Any], size: int = _CHUNK) -> Iterable[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class CallsRepository(Repository):
    """The SQL of store/calls.py's Calls service."""

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

    # -- the ingestion path: whole batches in one call on the writer's thread --------------------------

    async def run(self, tx: Transaction, fn: Callable[..., T], *args: Any) -> T:
        """`fn(conn, *args)` inside the caller's transaction, in ONE call on the writer's thread (blocking work
        such as registering a batch of CDR rows: awaiting each statement would cost a thread hand-off each)."""
        return await run_on_thread(tx.connection, fn, *args)

    async def write_call(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(conn, *args)` as a whole short write transaction of its own (BEGIN IMMEDIATE … COMMIT) in ONE call
        on the writer's thread: planning a chunk of recordings, their data keys, registering their rows."""
        return await self.db.write_call(fn, *args)

    # The synchronous methods below take that thread's connection and run in the transaction it holds.

    def known_legs(self, conn: sqlite3.Connection, leg_keys: list[str]) -> dict[str, str]:
        """leg_key -> fingerprint of the legs registered under these keys."""
        known: dict[str, str] = {}
        for chunk in _chunks(leg_keys):
            for row in conn.execute(
                f"SELECT leg_key, fingerprint FROM call_legs WHERE leg_key IN ({','.join('?' * len(chunk))})", chunk
            ):
                known[row[0]] = row[1]
        return known

    def calls_by_ids(self, conn: sqlite3.Connection, ids: list[str]) -> list[tuple[str, int]]:
        """(id, call) for every registered leg whose uniqueid or linkedid is one of `ids`, and every call
        registered under one of them (its pbx_uniqueid)."""
        found: list[tuple[str, int]] = []
        for chunk in _chunks(ids):
            marks = ",".join("?" * len(chunk))
            found += conn.execute(
                f"SELECT uniqueid, conversation_id FROM call_legs WHERE uniqueid IN ({marks}) UNION "
                f"SELECT linkedid, conversation_id FROM call_legs WHERE linkedid IN ({marks}) UNION "
                f"SELECT pbx_uniqueid, id FROM conversations WHERE channel = 'call' AND pbx_uniqueid IN ({marks})",
                chunk * 3,
            ).fetchall()
        return found

    def legs_on_channels(self, conn: sqlite3.Connection, names: list[str]) -> list[tuple[str, int, Any, Any]]:
        """(channel name, call, start_at, end_at) for every registered leg on one of these channels (either side)."""
        found: list[tuple[str, int, Any, Any]] = []
        for chunk in _chunks(names):
            marks = ",".join("?" * len(chunk))
            found += conn.execute(
                f"SELECT channel, conversation_id, start_at, end_at FROM call_legs WHERE channel IN ({marks}) "
                f"UNION ALL SELECT dstchannel, conversation_id, start_at, end_at FROM call_legs "
                f"WHERE dstchannel IN ({marks})",
                chunk * 2,
            ).fetchall()
        return found

    def extension_staff(self, conn: sqlite3.Connection) -> dict[str, tuple[int, int | None]]:
        """extension -> (staff id, department id) of every staff member's extension."""
        return {
            r[0]: (r[1], r[2])
            for r in conn.execute(
                "SELECT e.extension, s.id, s.department_id FROM staff_extensions e JOIN staff s ON s.id = e.staff_id"
            )
        }

    def route_departments(self, conn: sqlite3.Connection) -> dict[str, int]:
        """dialled number -> department id of every route."""
        return {r[0]: r[1] for r in conn.execute("SELECT number, department_id FROM call_routes")}

    def phone_notices(self, conn: sqlite3.Connection) -> dict[int, int]:
        """version -> id of the phone notice's (Polish) versions."""
        return {
            r[0]: r[1] for r in conn.execute("SELECT version, id FROM notices WHERE channel = 'phone' AND lang = 'pl'")
        }

    def conversation(self, conn: sqlite3.Connection, conversation_id: int) -> sqlite3.Row:
        return conn.execute("SELECT * FROM conversations WHERE id = ?", (conversation_id,)).fetchone()

    def legs_of(self, conn: sqlite3.Connection, conversation_id: int) -> list[sqlite3.Row]:
        """A registered call's legs, in the order they were registered."""
        return conn.execute(
            "SELECT * FROM call_legs WHERE conversation_id = ? ORDER BY rowid", (conversation_id,)
        ).fetchall()

    def insert_call(self, conn: sqlite3.Connection, values: dict[str, Any]) -> int:
        """A new call's row (`values`: column -> value); its id."""
        cur = conn.execute(
            f"INSERT INTO conversations({', '.join(values)}) VALUES ({', '.join('?' * len(values))})",
            tuple(values.values()),
        )
        assert cur.lastrowid is not None  # an INSERT's row id
        return cur.lastrowid

    def update_call(self, conn: sqlite3.Connection, conversation_id: int, changed: dict[str, Any]) -> None:
        """Set the `changed` columns of a registered call."""
        conn.execute(
            f"UPDATE conversations SET {', '.join(f'{k} = ?' for k in changed)} WHERE id = ?",
            (*changed.values(), conversation_id),
        )

    def insert_legs(self, conn: sqlite3.Connection, rows: list[tuple[Any, ...]]) -> None:
        """New legs' rows, each a tuple in LEG_COLUMNS order."""
        conn.executemany(_INSERT_LEGS, rows)

    def call_of_token(self, conn: sqlite3.Connection, token: str) -> int | None:
        """The call a recording's uniqueid/linkedid token names: a leg's uniqueid, else a call's own id, else
        a leg's linkedid; None when none does."""
        row = conn.execute("SELECT conversation_id FROM call_legs WHERE uniqueid = ? LIMIT 1", (token,)).fetchone()
        if row is None:
            row = conn.execute(
                "SELECT id FROM conversations WHERE pbx_uniqueid = ? AND channel = 'call'", (token,)
            ).fetchone()
        if row is None:
            row = conn.execute("SELECT conversation_id FROM call_legs WHERE linkedid = ? LIMIT 1", (token,)).fetchone()
        return None if row is None else row[0]

    def legs_in_progress(
        self, conn: sqlite3.Connection, started_from: str, started_by: str, ended_by: str
    ) -> list[tuple[int, str, str, str, str, str]]:
        """(call, src, dst, clid, channel, dstchannel) of the legs that started between `started_from` and
        `started_by` and had not ended before `ended_by`."""
        return conn.execute(
            "SELECT conversation_id, src, dst, clid, channel, dstchannel FROM call_legs "
            "WHERE start_at BETWEEN ? AND ? AND end_at >= ?",
            (started_from, started_by, ended_by),
        ).fetchall()

    def call_key(self, conn: sqlite3.Connection, conversation_id: int) -> str:
        """The id a call is registered under (its pbx_uniqueid)."""
        return conn.execute("SELECT pbx_uniqueid FROM conversations WHERE id = ?", (conversation_id,)).fetchone()[0]

    def recording_paths(self, conn: sqlite3.Connection, keys: tuple[str, str]) -> list[str]:
        """The managed paths of the recordings registered under either key."""
        return [r[0] for r in conn.execute("SELECT path FROM recordings WHERE pbx_uniqueid IN (?, ?)", keys)]

    def call_created_at(self, conn: sqlite3.Connection, conversation_id: int) -> str:
        return conn.execute("SELECT created_at FROM conversations WHERE id = ?", (conversation_id,)).fetchone()[0]

    def recording_path_taken(self, conn: sqlite3.Connection, path: str) -> bool:
        return conn.execute("SELECT 1 FROM recordings WHERE path = ?", (path,)).fetchone() is not None

    def insert_recording(
        self,
        conn: sqlite3.Connection,
        *,
        conversation_id: int,
        pbx_uniqueid: str,
        path: str,
        sha256: str,
        size_bytes: int,
        duration_s: Any,
        format: str,
        is_empty: bool,
        imported_at: str,
    ) -> None:
        conn.execute(
            "INSERT INTO recordings(conversation_id, pbx_uniqueid, path, sha256, size_bytes, duration_s, format, "
            "is_empty, imported_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (conversation_id, pbx_uniqueid, path, sha256, size_bytes, duration_s, format, int(is_empty), imported_at),
        )
