"""The live-supervision repository on SQLite: every statement of store/supervision.py's Supervision service.

store/supervision.py holds the rules (who may watch or whisper, the purpose, what is audited, the
supervision report's reading of the audit log); this module holds the SQL. Reads go to the reader
connection; writes take the caller's `Transaction`, which the audit entry joins.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

from ..supervision import HANDOVER_EVENTS, MONITOR, MONITOR_END, TAKE_OVER, WHISPER, SupervisionActivity, activity_of
from .database import Database, Repository, Transaction

if TYPE_CHECKING:
    from ..keys import DataKey, Keys

_NOTE_SELECT = (
    "SELECT n.*, coalesce(nullif(trim(s.full_name), ''), s.name) AS author FROM chat_staff_notes n "
    "LEFT JOIN staff s ON s.id = n.staff_id"
)

_LIVE_CHATS_SQL = (
    "SELECT c.id, c.status, c.lang, c.created_at, c.consultant_id,"
    " coalesce(nullif(trim(s.full_name), ''), s.name) AS consultant_name,"
    " (SELECT m.at FROM messages m WHERE m.conversation_id = c.id ORDER BY m.seq DESC LIMIT 1) AS last_line_at,"
    " (SELECT count(*) FROM messages m WHERE m.conversation_id = c.id) AS lines,"
    " (SELECT m.at FROM messages m WHERE m.conversation_id = c.id AND m.event IN"
    f"  ({', '.join('?' * len(HANDOVER_EVENTS))}) ORDER BY m.seq DESC LIMIT 1) AS handed_at,"
    " (SELECT m.at FROM messages m WHERE m.conversation_id = c.id AND m.sender = 'resident' AND m.seq >"
    "  coalesce((SELECT max(k.seq) FROM messages k WHERE k.conversation_id = c.id"
    "            AND k.sender = 'consultant'), 0) ORDER BY m.seq LIMIT 1) AS unanswered_since,"
    " c.queue_front, c.topic_id, t.label_pl, t.label_en"
    " FROM conversations c LEFT JOIN staff s ON s.id = c.consultant_id"
    " LEFT JOIN chat_topics t ON t.id = c.topic_id"
    " WHERE c.channel = 'chat' AND c.status IN ('queued', 'active') ORDER BY c.created_at, c.id"
)


class SupervisionRepository(Repository):
    """The SQL of store/supervision.py's Supervision service."""

    async def staff_names(self, staff_id: int | None) -> Any:
        """The staff member's `name` and `full_name`, or None."""
        return await self.db.fetchone("SELECT name, full_name FROM staff WHERE id = ?", (staff_id,))

    async def live_chats(self) -> list[Any]:
        """Every queued and active chat, oldest first, with its consultant's name, line times and topic labels."""
        return await self.db.fetchall(_LIVE_CHATS_SQL, HANDOVER_EVENTS)

    async def chat(self, chat_id: int) -> Any:
        """A chat's status, language and consultant (with their full name as `name`), or None."""
        return await self.db.fetchone(
            "SELECT c.id, c.status, c.lang, c.consultant_id, coalesce(nullif(trim(s.full_name), ''), s.name) AS name "
            "FROM conversations c LEFT JOIN staff s ON s.id = c.consultant_id WHERE c.id = ? AND c.channel = 'chat'",
            (chat_id,),
        )

    async def request_id(self, number: str) -> int | None:
        """The access request with this number, if any."""
        row = await self.db.fetchone("SELECT id FROM access_requests WHERE number = ?", (number,))
        return row["id"] if row else None

    async def lines_after(self, chat_id: int, seq: int) -> list[Any]:
        return await self.db.fetchall(
            "SELECT * FROM messages WHERE conversation_id = ? AND seq > ? ORDER BY seq", (chat_id, seq)
        )

    async def staff_holding(self, staff_ids: Sequence[int], roles: Sequence[str]) -> set[int]:
        """Which of these staff members hold at least one of `roles` (one query)."""
        rows = await self.db.fetchall(
            f"SELECT DISTINCT staff_id FROM staff_roles WHERE staff_id IN ({','.join('?' * len(staff_ids))}) "
            f"AND role IN ({','.join('?' * len(roles))})",
            (*staff_ids, *roles),
        )
        return {r["staff_id"] for r in rows}

    async def notes(self, chat_id: int) -> list[Any]:
        """The chat's staff notes in order, each with its author's name as `author`."""
        return await self.db.fetchall(
            f"{_NOTE_SELECT} WHERE n.conversation_id = ? ORDER BY n.after_seq, n.id", (chat_id,)
        )

    async def note(self, note_id: int) -> Any:
        return await self.db.fetchone(f"{_NOTE_SELECT} WHERE n.id = ?", (note_id,))

    # -- a whisper, inside the caller's transaction -------------------------------------------------

    async def chat_for_note(self, tx: Transaction, chat_id: Any) -> Any:
        """The chat's status, next transcript line and consultant, or None (no such chat)."""
        cur = await tx.connection.execute(
            "SELECT status, next_seq, consultant_id FROM conversations WHERE id = ? AND channel = 'chat'",
            (chat_id,),
        )
        return await cur.fetchone()

    async def note_by_client_id(self, tx: Transaction, chat_id: Any, client_msg_id: str) -> int | None:
        """The note already stored under this client_msg_id in the chat, if any."""
        cur = await tx.connection.execute(
            "SELECT id FROM chat_staff_notes WHERE conversation_id = ? AND client_msg_id = ?",
            (chat_id, client_msg_id),
        )
        row = await cur.fetchone()
        return None if row is None else row["id"]

    async def data_key(self, tx: Transaction, keys: "Keys", chat_id: int, create_at: str) -> "DataKey | None":
        """The chat's data key inside the transaction (made now if it has none); None once the purge destroyed it."""
        return await keys.get(tx.connection, chat_id, create_at=create_at)

    async def next_note_id(self, tx: Transaction) -> int:
        """The id the next note gets (chosen inside the write transaction: the seal's associated data holds it)."""
        cur = await tx.connection.execute("SELECT coalesce(max(id), 0) + 1 FROM chat_staff_notes")
        row = await cur.fetchone()
        assert row is not None  # an aggregate always answers one row
        return int(row[0])

    async def insert_note(
        self,
        tx: Transaction,
        *,
        note_id: int,
        chat_id: int,
        after_seq: int,
        staff_id: int,
        to_staff_id: int,
        text: bytes,
        at: str,
        client_msg_id: str | None,
    ) -> None:
        await tx.connection.execute(
            "INSERT INTO chat_staff_notes(id, conversation_id, after_seq, staff_id, to_staff_id, text, at, "
            "client_msg_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (note_id, chat_id, after_seq, staff_id, to_staff_id, text, at, client_msg_id),
        )


async def supervision_activity(db: Database, since: str, until: str) -> SupervisionActivity:
    """The supervision report's monitoring from the audit log between two stored times (UTC ISO): the
    entries of watches, whispers, take-overs and audit restores, read by store/supervision.py's `activity_of`."""
    from ..audit import RESTORE_ACKNOWLEDGED

    actions = (MONITOR, MONITOR_END, WHISPER, TAKE_OVER, RESTORE_ACKNOWLEDGED)
    rows = await db.fetchall(
        f"SELECT * FROM audit WHERE at >= ? AND at < ? AND outcome = 'ok' AND action IN ({', '.join('?' * len(actions))})"
        " ORDER BY id",
        (since, until, *actions),
    )
    staff = await db.fetchall("SELECT id, name, full_name FROM staff")
    return activity_of(rows, staff)
