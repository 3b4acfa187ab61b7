"""The request register's repository on SQLite: every SQL statement of store/requests/, and nothing else.

store/requests/service.py (`Requests`) holds the rules, the permissions and the audit; this module
holds the SQL only: no permission, no audit, no rule.

Reads go through the store's reader (`self.db`) or, where the caller needs them inside its write
transaction, through that transaction (`conn`). Writes always take the caller's transaction, so the
service keeps each change and its audit entry in one.
"""

from __future__ import annotations

import json
from datetime import date
from typing import Any, Iterable

import aiosqlite

from ..errors import RequestNotFound
from ..i18n import N_
from ..requests.lifecycle import Facts
from ..requests.model import HOLD_BASIS, REGISTERED
from .database import Database

#: The department a conversation concerns (§4.3: whose head gives the opinion): a chat's topic's department
#: when its topic names one (store/desk.py), else the conversation's own (a call's route or extension).
DEPARTMENT_OF = "coalesce((SELECT t.department_id FROM chat_topics t WHERE t.id = c.topic_id), c.department_id)"

#: The columns `update` may set (a name outside this list is a programming error, never user input).
_COLUMNS = frozenset(
    {
        "state",
        "conversation_reference",
        "receipt_verified_at",
        "ineligible_reason",
        "decision",
        "decision_reasons",
        "decided_by",
        "decided_at",
        "session_at",
        "session_place",
        "extended_until",
        "extension_reason",
        "withdrawn_at",
        "withdrawal_note",
        "closed_at",
        "session_started_at",
        "session_ended_at",
        "session_notes",
        "session_others",
        "session_outcome",
        "exported_at",
        "export_path",
    }
)


async def _one(conn: Any, sql: str, params: Iterable[Any] = ()) -> Any:
    if isinstance(conn, Database):
        return await conn.fetchone(sql, params)
    async with conn.execute(sql, tuple(params)) as cur:
        return await cur.fetchone()


async def _all(conn: Any, sql: str, params: Iterable[Any] = ()) -> list[Any]:
    if isinstance(conn, Database):
        return await conn.fetchall(sql, params)
    async with conn.execute(sql, tuple(params)) as cur:
        return list(await cur.fetchall())


def _marks(values: list[Any] | tuple[Any, ...]) -> str:
    return ",".join("?" * len(values))


class RequestRepository:
    """The SQL of store/requests/service.py's Requests service."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # -- the request row ------------------------------------------------------------------------------

    async def row(self, conn: Any, request_id: int) -> Any:
        row = await _one(conn, "SELECT * FROM access_requests WHERE id = ?", (request_id,))
        if row is None:
            raise RequestNotFound(N_("no request with id {request_id}"), request_id=request_id)
        return row

    async def id_by_number(self, number: str) -> int:
        row = await self.db.fetchone("SELECT id FROM access_requests WHERE number = ?", (number.strip(),))
        if row is None:
            raise RequestNotFound(N_("no request numbered {number!r}"), number=number)
        return row["id"]

    async def opinion_kinds(self, conn: Any, request_ids: list[int]) -> dict[int, set[str]]:
        given: dict[int, set[str]] = {}
        if request_ids:
            for o in await _all(
                conn,
                f"SELECT request_id, kind FROM request_opinions WHERE request_id IN ({_marks(request_ids)})",
                request_ids,
            ):
                given.setdefault(o["request_id"], set()).add(o["kind"])
        return given

    async def facts_parts(self, conn: Any, request_id: int) -> dict[str, Any]:
        """What lifecycle.Facts holds besides the request itself."""
        departments = await self.departments(conn, request_id)
        attendees = {
            r["staff_id"]
            for r in await _all(conn, "SELECT staff_id FROM request_attendees WHERE request_id = ?", (request_id,))
        }
        linked = (
            await _one(conn, "SELECT count(*) AS n FROM request_conversations WHERE request_id = ?", (request_id,))
        )["n"]
        approval = await _one(
            conn, "SELECT prepared_by, confirmed_by FROM copy_approvals WHERE request_id = ?", (request_id,)
        )
        recorded = await _one(
            conn, "SELECT 1 FROM letters WHERE request_id = ? AND kind = 'session_record'", (request_id,)
        )
        return {
            "departments": frozenset(departments),
            "attendees": frozenset(attendees),
            "linked": linked,
            "prepared_by": approval["prepared_by"] if approval else None,
            "confirmed_by": approval["confirmed_by"] if approval else None,
            "session_recorded": recorded is not None,
        }

    async def departments(self, conn: Any, request_id: int) -> set[str]:
        rows = await _all(
            conn,
            "SELECT DISTINCT d.code FROM request_conversations rc JOIN conversations c "
            "ON c.id = rc.conversation_id JOIN departments d ON d.id = " + DEPARTMENT_OF + " WHERE rc.request_id = ?",
            (request_id,),
        )
        return {r["code"] for r in rows}

    async def next_number(self, tx: aiosqlite.Connection, year: str) -> str:
        """CIM/<year>/<nnnn>, counted per year of receipt."""
        prefix = f"CIM/{year}/"
        row = await _one(
            tx, "SELECT number FROM access_requests WHERE number LIKE ? ORDER BY number DESC LIMIT 1", (prefix + "%",)
        )
        seq = int(row["number"].rsplit("/", 1)[1]) + 1 if row else 1
        return f"{prefix}{seq:04d}"

    async def insert(
        self, tx: aiosqlite.Connection, number: str, clean: dict[str, Any], staff_id: int, now: str
    ) -> int:
        cur = await tx.execute(
            "INSERT INTO access_requests(number, kind, state, received_on, due_on, requester_name, "
            "requester_address, requester_email, requester_phone, channel, conversation_hint, justification, "
            "asked, delivery, registered_by, registered_at, updated_at, addressed_as) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                number,
                clean["kind"],
                REGISTERED.value,
                clean["received_on"],
                clean["due_on"],
                clean["requester_name"],
                clean["requester_address"],
                clean["requester_email"],
                clean["requester_phone"],
                clean["channel"],
                json.dumps(clean["hint"], ensure_ascii=False, sort_keys=True),
                clean["justification"],
                clean["asked"],
                clean["delivery"],
                staff_id,
                now,
                now,
                clean["addressed_as"],
            ),
        )
        assert cur.lastrowid is not None  # an INSERT's row id
        return int(cur.lastrowid)

    async def update(self, tx: aiosqlite.Connection, request_id: int, now: str, **columns: Any) -> None:
        """Set `columns` (and updated_at) on the request."""
        unknown = set(columns) - _COLUMNS
        assert not unknown, unknown
        names = list(columns)
        await tx.execute(
            "UPDATE access_requests SET " + "".join(f"{n} = ?, " for n in names) + "updated_at = ? WHERE id = ?",
            (*(columns[n] for n in names), now, request_id),
        )

    # -- register views --------------------------------------------------------------------------------

    async def rows(
        self,
        *,
        state: str | None,
        open_only: bool,
        kind: str | None,
        channel: str | None,
        due_before: date | None,
        final_states: Iterable[str],
    ) -> list[Any]:
        where, params = [], []
        if open_only:
            final = list(final_states)
            where.append(f"state NOT IN ({_marks(final)})")
            params.extend(final)
        for column, value in (("state", state), ("kind", kind), ("channel", channel)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        if due_before is not None:
            where.append("coalesce(extended_until, due_on) < ?")
            params.append(due_before.isoformat())
        sql = "SELECT * FROM access_requests" + (" WHERE " + " AND ".join(where) if where else "")
        return await self.db.fetchall(sql + " ORDER BY coalesce(extended_until, due_on), number", params)

    async def awaiting_opinion(self, kind: str, states: tuple[str, ...]) -> list[Any]:
        """Access requests in `states` without the `kind` opinion."""
        return await self.db.fetchall(
            f"SELECT * FROM access_requests a WHERE kind = 'access' AND state IN ({_marks(states)}) AND NOT EXISTS "
            "(SELECT 1 FROM request_opinions o WHERE o.request_id = a.id AND o.kind = ?)",
            (*states, kind),
        )

    async def awaiting_department(
        self, states: tuple[str, ...], department: str | None, every_department: bool
    ) -> list[Any]:
        """Linked access requests without the department opinion whose conversations concern `department`
        (or name no department at all: then every head sees them, whoever answers first gives it)."""
        return await self.db.fetchall(
            f"SELECT * FROM access_requests a WHERE kind = 'access' AND state IN ({_marks(states)}) "
            "AND EXISTS (SELECT 1 FROM request_conversations rc WHERE rc.request_id = a.id) "
            "AND NOT EXISTS (SELECT 1 FROM request_opinions o WHERE o.request_id = a.id AND o.kind = 'department') "
            "AND (? OR EXISTS (SELECT 1 FROM request_conversations rc JOIN conversations c "
            "ON c.id = rc.conversation_id JOIN departments d ON d.id = " + DEPARTMENT_OF + " "
            "WHERE rc.request_id = a.id AND d.code = ?) OR NOT EXISTS (SELECT 1 FROM request_conversations rc "
            "JOIN conversations c ON c.id = rc.conversation_id WHERE rc.request_id = a.id "
            "AND " + DEPARTMENT_OF + " IS NOT NULL))",
            (*states, int(every_department), department),
        )

    async def in_states(self, kind: str | None, states: tuple[str, ...]) -> list[Any]:
        return await self.db.fetchall(
            f"SELECT * FROM access_requests WHERE (? IS NULL OR kind = ?) AND state IN ({_marks(states)})",
            (kind, kind, *states),
        )

    async def unlinked(self, states: tuple[str, ...]) -> list[Any]:
        return await self.db.fetchall(
            f"SELECT * FROM access_requests a WHERE state IN ({_marks(states)}) AND NOT EXISTS "
            "(SELECT 1 FROM request_conversations rc WHERE rc.request_id = a.id)",
            states,
        )

    async def prepared_by_others(self, staff_id: int, states: tuple[str, ...]) -> list[Any]:
        return await self.db.fetchall(
            f"SELECT a.* FROM access_requests a JOIN copy_approvals p ON p.request_id = a.id WHERE a.state IN "
            f"({_marks(states)}) AND p.prepared_by <> ?",
            (*states, staff_id),
        )

    async def attending(self, staff_id: int, states: tuple[str, ...]) -> list[Any]:
        return await self.db.fetchall(
            "SELECT a.* FROM access_requests a JOIN request_attendees t ON t.request_id = a.id "
            f"WHERE t.staff_id = ? AND a.state IN ({_marks(states)})",
            (staff_id, *states),
        )

    # -- what is linked ---------------------------------------------------------------------------------

    async def linked_detail(self, request_id: int) -> list[Any]:
        return await self.db.fetchall(
            "SELECT c.id, c.channel, c.created_at, c.resident_number, c.number_identifiable, d.code AS department, "
            "rc.linked_at, (SELECT count(*) FROM recordings r WHERE r.conversation_id = c.id) AS recordings "
            "FROM request_conversations rc JOIN conversations c ON c.id = rc.conversation_id "
            "LEFT JOIN departments d ON d.id = " + DEPARTMENT_OF + " WHERE rc.request_id = ? ORDER BY c.created_at",
            (request_id,),
        )

    async def linked_ids(self, request_id: int) -> set[int]:
        return {
            r["conversation_id"]
            for r in await self.db.fetchall(
                "SELECT conversation_id FROM request_conversations WHERE request_id = ?", (request_id,)
            )
        }

    async def linked_numbers(self, conn: Any, request_id: int) -> list[Any]:
        """The linked conversations with what §4.7 looks at (channel, caller's number, identifiable)."""
        return await _all(
            conn,
            "SELECT c.id, c.channel, c.resident_number, c.number_identifiable FROM request_conversations rc "
            "JOIN conversations c ON c.id = rc.conversation_id WHERE rc.request_id = ? ORDER BY c.id",
            (request_id,),
        )

    async def linked_times(self, request_id: int) -> list[Any]:
        return await self.db.fetchall(
            "SELECT c.id, c.channel, c.created_at FROM request_conversations rc JOIN conversations c "
            "ON c.id = rc.conversation_id WHERE rc.request_id = ? ORDER BY c.created_at",
            (request_id,),
        )

    async def is_linked(self, conn: Any, request_id: int, conversation_id: int) -> bool:
        return (
            await _one(
                conn,
                "SELECT 1 FROM request_conversations WHERE request_id = ? AND conversation_id = ?",
                (request_id, conversation_id),
            )
            is not None
        )

    async def conversation(self, conn: Any, conversation_id: int) -> Any:
        return await _one(conn, "SELECT id, channel, created_at FROM conversations WHERE id = ?", (conversation_id,))

    async def link(
        self, tx: aiosqlite.Connection, request_id: int, number: str, conversation_id: int, staff_id: int, now: str
    ) -> None:
        """Link the conversation and hold it against the purge until the request ends."""
        await tx.execute(
            "INSERT INTO request_conversations(request_id, conversation_id, linked_by, linked_at) VALUES (?, ?, ?, ?)",
            (request_id, conversation_id, staff_id, now),
        )
        await tx.execute(
            "INSERT INTO holds(conversation_id, legal_basis, case_reference, request_id, set_by, set_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (conversation_id, HOLD_BASIS, number, request_id, staff_id, now),
        )

    async def unlink(
        self, tx: aiosqlite.Connection, request_id: int, conversation_id: int, staff_id: int | None, now: str
    ) -> bool:
        """Undo a link and release its hold; False when it was not linked."""
        cur = await tx.execute(
            "DELETE FROM request_conversations WHERE request_id = ? AND conversation_id = ?",
            (request_id, conversation_id),
        )
        if cur.rowcount == 0:
            return False
        await tx.execute(
            "UPDATE holds SET released_at = ?, released_by = ? WHERE request_id = ? AND "
            "conversation_id = ? AND released_at IS NULL",
            (now, staff_id, request_id, conversation_id),
        )
        return True

    async def release_holds(self, tx: aiosqlite.Connection, request_id: int, staff_id: int | None, now: str) -> int:
        cur = await tx.execute(
            "UPDATE holds SET released_at = ?, released_by = ? WHERE request_id = ? AND released_at IS NULL",
            (now, staff_id, request_id),
        )
        return cur.rowcount

    # -- matching (§4.7) ---------------------------------------------------------------------------------

    _CANDIDATES = (
        "SELECT c.*, d.code AS department, s.name AS consultant FROM conversations c "
        "LEFT JOIN departments d ON d.id = " + DEPARTMENT_OF + " LEFT JOIN staff s ON s.id = c.consultant_id "
    )

    async def calls_near(self, start: str, end: str, number: str | None, day_start: str, day_end: str) -> list[Any]:
        """Calls within the window, or from the requester's number on that day (people misremember the hour)."""
        return await self.db.fetchall(
            self._CANDIDATES + "WHERE c.channel = 'call' AND ((c.created_at >= ? AND c.created_at < ?) OR "
            "(c.resident_number = ? AND c.created_at >= ? AND c.created_at < ?)) ORDER BY c.created_at LIMIT 500",
            (start, end, number, day_start, day_end),
        )

    async def chats_between(self, start: str, end: str) -> list[Any]:
        return await self.db.fetchall(
            self._CANDIDATES + "WHERE c.channel = 'chat' AND c.created_at >= ? AND c.created_at < ? "
            "ORDER BY c.created_at LIMIT 500",
            (start, end),
        )

    async def tokens_found(self, conversation_id: int, tokens: list[Any]) -> int:
        row = await self.db.fetchone(
            f"SELECT count(*) AS n FROM message_words WHERE conversation_id = ? AND token IN ({_marks(tokens)})",
            (conversation_id, *tokens),
        )
        assert row is not None  # count(*) always answers one row
        return row["n"]

    # -- opinions, decisions, attendees ------------------------------------------------------------------

    async def opinions(self, request_id: int) -> list[Any]:
        return await self.db.fetchall(
            "SELECT o.*, s.name FROM request_opinions o JOIN staff s ON s.id = o.staff_id WHERE request_id = ? "
            "ORDER BY o.at",
            (request_id,),
        )

    async def add_opinion(
        self, tx: aiosqlite.Connection, request_id: int, kind: str, staff_id: int, verdict: str, text: str, now: str
    ) -> None:
        await tx.execute(
            "INSERT INTO request_opinions(request_id, kind, staff_id, verdict, text, at) VALUES (?, ?, ?, ?, ?, ?)",
            (request_id, kind, staff_id, verdict, text, now),
        )

    async def staff(self, ids: list[int]) -> list[Any]:
        return await self.db.fetchall(
            f"SELECT id, name, full_name, disabled FROM staff WHERE id IN ({_marks(ids)}) ORDER BY name", ids
        )

    async def signer(self, staff_id: int | None) -> Any:
        return await self.db.fetchone("SELECT name, full_name, job_title FROM staff WHERE id = ?", (staff_id,))

    async def attendees(self, request_id: int) -> list[Any]:
        return await self.db.fetchall(
            "SELECT a.staff_id, a.present, s.name, s.full_name FROM request_attendees a JOIN staff s "
            "ON s.id = a.staff_id WHERE a.request_id = ? ORDER BY s.name",
            (request_id,),
        )

    async def add_attendees(self, tx: aiosqlite.Connection, request_id: int, staff_ids: Iterable[int]) -> None:
        for staff_id in staff_ids:
            await tx.execute(
                "INSERT INTO request_attendees(request_id, staff_id) VALUES (?, ?)", (request_id, staff_id)
            )

    async def mark_present(
        self, tx: aiosqlite.Connection, request_id: int, designated: Iterable[int], present: set[int]
    ) -> None:
        for staff_id in designated:
            await tx.execute(
                "UPDATE request_attendees SET present = ? WHERE request_id = ? AND staff_id = ?",
                (int(staff_id in present), request_id, staff_id),
            )

    # -- content ----------------------------------------------------------------------------------------

    async def recordings(self, conversation_id: int) -> list[Any]:
        return await self.db.fetchall(
            "SELECT path, format FROM recordings WHERE conversation_id = ? ORDER BY id", (conversation_id,)
        )

    async def messages(self, conversation_id: int) -> list[Any]:
        return await self.db.fetchall(
            "SELECT seq, sender, text, at, event, params FROM messages WHERE conversation_id = ? ORDER BY seq",
            (conversation_id,),
        )

    async def played(self, request_id: int) -> list[Any]:
        """What the audit log says was opened or played under the request, with the conversation's channel."""
        return await self.db.fetchall(
            "SELECT a.action, a.at, a.actor_name, a.target_id, c.channel, c.created_at FROM audit a "
            "LEFT JOIN conversations c ON c.id = CAST(a.target_id AS INTEGER) WHERE a.request_id = ? "
            "AND a.outcome = 'ok' AND a.action IN ('requests.session_playback', 'listen.audio') ORDER BY a.id",
            (request_id,),
        )

    # -- letters -----------------------------------------------------------------------------------------

    async def letters(self, request_id: int) -> list[Any]:
        return await self.db.fetchall("SELECT * FROM letters WHERE request_id = ? ORDER BY id", (request_id,))

    async def letter_count(self, tx: aiosqlite.Connection, request_id: int) -> int:
        return (await _one(tx, "SELECT count(*) AS n FROM letters WHERE request_id = ?", (request_id,)))["n"]

    async def add_letter(
        self,
        tx: aiosqlite.Connection,
        request_id: int,
        kind: str,
        relative: str,
        sha256: str,
        now: str,
        staff_id: int | None,
        sealed_by: str | None,
    ) -> None:
        await tx.execute(
            "INSERT INTO letters(request_id, kind, path, sha256, created_at, created_by, sealed, "
            "sealed_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (request_id, kind, relative, sha256, now, staff_id, int(sealed_by is not None), sealed_by),
        )

    # -- two people for a copy ------------------------------------------------------------------------------

    async def approval(self, request_id: int) -> Any:
        return await self.db.fetchone(
            "SELECT a.*, p.name AS preparer, c.name AS confirmer FROM copy_approvals a JOIN staff p ON p.id = "
            "a.prepared_by LEFT JOIN staff c ON c.id = a.confirmed_by WHERE a.request_id = ?",
            (request_id,),
        )

    async def prepare(
        self, tx: aiosqlite.Connection, request_id: int, staff_id: int, now: str, basis: str, justification: str | None
    ) -> None:
        await tx.execute(
            "INSERT INTO copy_approvals(request_id, prepared_by, prepared_at, basis, "
            "prepare_justification) VALUES (?, ?, ?, ?, ?)",
            (request_id, staff_id, now, basis, justification),
        )

    async def confirm(
        self, tx: aiosqlite.Connection, request_id: int, staff_id: int, now: str, justification: str | None
    ) -> None:
        await tx.execute(
            "UPDATE copy_approvals SET confirmed_by = ?, confirmed_at = ?, confirm_justification = ? "
            "WHERE request_id = ?",
            (staff_id, now, justification, request_id),
        )

    async def cancel(self, tx: aiosqlite.Connection, request_id: int) -> None:
        await tx.execute("DELETE FROM copy_approvals WHERE request_id = ?", (request_id,))


async def build_facts(repo: RequestRepository, conn: Any, request: Any) -> Facts:
    """lifecycle.Facts for `request` (an AccessRequest), read through `conn`."""
    return Facts(request=request, **await repo.facts_parts(conn, request.id))
