"""The chat desk's repository on SQLite: every statement of store/desk.py's Desk service.

store/desk.py holds the rules (who may manage topics and skills, the labels, capacity, the idle and
queue limits, the estimated wait, what is audited); this module holds the SQL. Reads go to the reader
connection; writes take the caller's `Transaction`, which the audit entry joins.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

from .database import Database, Repository, Transaction

if TYPE_CHECKING:
    from ..chats import Chats
    from ..keys import DataKey

_TOPIC_SQL = "SELECT t.*, d.code AS department FROM chat_topics t LEFT JOIN departments d ON d.id = t.department_id "


async def active_topic_ids(db: Database) -> set[int]:
    """The ids of the topics offered to residents now (store/desk.py's `check_topic`)."""
    return {r["id"] for r in await db.fetchall("SELECT id FROM chat_topics WHERE active = 1")}


class DeskRepository(Repository):
    """The SQL of store/desk.py's Desk service."""

    # -- topics ------------------------------------------------------------------------------------

    async def topics(self, *, include_inactive: bool) -> list[Any]:
        """Topics (with their department's code as `department`) in their order."""
        where = "" if include_inactive else "WHERE t.active = 1 "
        return await self.db.fetchall(_TOPIC_SQL + where + "ORDER BY t.position, t.id")

    async def topic(self, topic_id: int) -> Any:
        return await self.db.fetchone(_TOPIC_SQL + "WHERE t.id = ?", (topic_id,))

    async def active_topic_ids(self) -> set[int]:
        return await active_topic_ids(self.db)

    async def department_id(self, tx: Transaction, code: str) -> int | None:
        cur = await tx.connection.execute("SELECT id FROM departments WHERE code = ?", (code,))
        row = await cur.fetchone()
        return None if row is None else row["id"]

    async def insert_topic(
        self, tx: Transaction, label_pl: str, label_en: str, department_id: int | None, updated_at: str
    ) -> int:
        """A new topic, placed after every other; its id."""
        cur = await tx.connection.execute("SELECT coalesce(max(position), 0) + 1 AS p FROM chat_topics")
        row = await cur.fetchone()
        assert row is not None  # an aggregate always answers one row
        cur = await tx.connection.execute(
            "INSERT INTO chat_topics(label_pl, label_en, department_id, position, updated_at) VALUES (?, ?, ?, ?, ?)",
            (label_pl, label_en, department_id, row["p"], updated_at),
        )
        assert cur.lastrowid is not None
        return cur.lastrowid

    async def update_topic(
        self,
        tx: Transaction,
        topic_id: int,
        label_pl: str,
        label_en: str,
        department_id: int | None,
        active: int | None,
        updated_at: str,
    ) -> bool:
        """Change a topic (`active` None: as it was); False when there is no such topic."""
        cur = await tx.connection.execute(
            "UPDATE chat_topics SET label_pl = ?, label_en = ?, department_id = ?, active = coalesce(?, active), "
            "updated_at = ? WHERE id = ?",
            (label_pl, label_en, department_id, active, updated_at, topic_id),
        )
        return cur.rowcount == 1

    async def any_topic(self, tx: Transaction) -> bool:
        """Whether a topic was ever defined (active or not)."""
        cur = await tx.connection.execute("SELECT count(*) AS n FROM chat_topics")
        row = await cur.fetchone()
        return bool(row and row["n"])

    async def insert_topics(self, tx: Transaction, topics: Sequence[tuple[str, str, int, str]]) -> None:
        """Topics as (label_pl, label_en, position, updated_at)."""
        await tx.connection.executemany(
            "INSERT INTO chat_topics(label_pl, label_en, position, updated_at) VALUES (?, ?, ?, ?)", topics
        )

    async def known_topics(self, tx: Transaction, topic_ids: Sequence[int]) -> set[int]:
        """Which of these topic ids exist."""
        rows = await tx.connection.execute_fetchall(
            f"SELECT id FROM chat_topics WHERE id IN ({','.join('?' * len(topic_ids))})", topic_ids
        )
        return {r["id"] for r in rows}

    # -- skills and capacity -----------------------------------------------------------------------

    async def staff_id(self, tx: Transaction, name: str) -> int | None:
        cur = await tx.connection.execute("SELECT id FROM staff WHERE name = ?", (name,))
        row = await cur.fetchone()
        return None if row is None else row["id"]

    async def set_max_chats(self, tx: Transaction, staff_id: int, max_chats: int | None) -> None:
        await tx.connection.execute("UPDATE staff SET max_chats = ? WHERE id = ?", (max_chats, staff_id))

    async def replace_skills(self, tx: Transaction, staff_id: int, topic_ids: Sequence[int]) -> None:
        await tx.connection.execute("DELETE FROM staff_topics WHERE staff_id = ?", (staff_id,))
        await tx.connection.executemany(
            "INSERT INTO staff_topics(staff_id, topic_id) VALUES (?, ?)", [(staff_id, t) for t in topic_ids]
        )

    async def consultants(self, staff_ids: Sequence[int] | None) -> list[Any]:
        """Enabled consultants (all, or these) with their id, name and max_chats, by name."""
        where, params = "WHERE r.role = 'consultant' AND s.disabled = 0", []
        if staff_ids is not None:
            where += f" AND s.id IN ({','.join('?' * len(staff_ids))})"
            params = list(staff_ids)
        return await self.db.fetchall(
            f"SELECT s.id, s.name, s.max_chats FROM staff s JOIN staff_roles r ON r.staff_id = s.id {where} "
            "ORDER BY s.name",
            params,
        )

    async def skills(self) -> list[Any]:
        """Every (staff_id, topic_id) skill."""
        return await self.db.fetchall("SELECT staff_id, topic_id FROM staff_topics")

    async def load(self) -> list[Any]:
        """Active chats per consultant: (consultant_id, n)."""
        return await self.db.fetchall(
            "SELECT consultant_id, count(*) AS n FROM conversations WHERE status = 'active' AND channel = 'chat' "
            "AND consultant_id IS NOT NULL GROUP BY consultant_id"
        )

    # -- availability ------------------------------------------------------------------------------

    async def availability(self, staff_ids: Sequence[int]) -> dict[int, str]:
        """The availability these staff members last set (those who never set it are left out)."""
        rows = await self.db.fetchall(
            f"SELECT staff_id, status FROM staff_availability WHERE staff_id IN ({','.join('?' * len(staff_ids))})",
            staff_ids,
        )
        return {r["staff_id"]: r["status"] for r in rows}

    async def set_availability(self, tx: Transaction, staff_id: int, status: str, updated_at: str) -> None:
        await tx.connection.execute(
            "INSERT INTO staff_availability(staff_id, status, updated_at) VALUES (?, ?, ?) "
            "ON CONFLICT(staff_id) DO UPDATE SET status = excluded.status, "
            "updated_at = excluded.updated_at",
            (staff_id, status, updated_at),
        )

    # -- a chat's lines, inside the caller's transaction --------------------------------------------

    async def chat_state(self, tx: Transaction, chat_id: int) -> Any:
        """A chat's status, next transcript line and consultant, or None (no such chat)."""
        cur = await tx.connection.execute(
            "SELECT status, next_seq, consultant_id FROM conversations WHERE id = ? AND channel = 'chat'",
            (chat_id,),
        )
        return await cur.fetchone()

    async def conversation_state(self, tx: Transaction, chat_id: int) -> Any:
        """A conversation's status and next transcript line, or None."""
        cur = await tx.connection.execute("SELECT status, next_seq FROM conversations WHERE id = ?", (chat_id,))
        return await cur.fetchone()

    async def data_key(self, tx: Transaction, chats: "Chats", chat_id: int) -> "DataKey | None":
        """The chat's data key inside the transaction (store/chats.py's, the group commit's while it holds one)."""
        return await chats._key(tx.connection, chat_id)

    async def requeue_at_front(self, tx: Transaction, chat_id: int, queue_front: str, next_seq: int) -> None:
        """The chat goes back to the queue, unassigned, waiting at the front since `queue_front`."""
        await tx.connection.execute(
            "UPDATE conversations SET status = 'queued', consultant_id = NULL, queue_front = ?, "
            "next_seq = ? WHERE id = ?",
            (queue_front, next_seq, chat_id),
        )

    async def set_next_seq(self, tx: Transaction, chat_id: int, next_seq: int) -> None:
        await tx.connection.execute("UPDATE conversations SET next_seq = ? WHERE id = ?", (next_seq, chat_id))

    async def insert_system_line(
        self,
        tx: Transaction,
        chat_id: int,
        seq: int,
        staff_id: int | None,
        text: Any,
        at: str,
        event: str,
    ) -> None:
        """A system line of the transcript (`text` as sealed) with no parameters."""
        await tx.connection.execute(
            "INSERT INTO messages(conversation_id, seq, sender, staff_id, text, at, event, params) "
            "VALUES (?, ?, 'system', ?, ?, ?, ?, '{}')",
            (chat_id, seq, staff_id, text, at, event),
        )

    # -- idle chats, the queue's limit and the estimated wait --------------------------------------

    async def idle_candidates(self) -> list[Any]:
        """Per active chat, the last line that shows the resident (or a consultant taking the chat) and the
        last warning, each as "seq at" (index messages(conversation_id, seq) and migration 1200's)."""
        return await self.db.fetchall(
            "SELECT c.id, "
            "(SELECT m.seq || ' ' || m.at FROM messages m WHERE m.conversation_id = c.id AND (m.sender = 'resident' "
            " OR m.event IN ('accepted', 'transferred')) ORDER BY m.seq DESC LIMIT 1) AS seen, "
            "(SELECT m.seq || ' ' || m.at FROM messages m WHERE m.conversation_id = c.id AND m.event = 'idle_warning' "
            " ORDER BY m.seq DESC LIMIT 1) AS warned "
            "FROM conversations c WHERE c.status = 'active' AND c.channel = 'chat'"
        )

    async def queued_since(self, since: str) -> list[int]:
        """Queued chats waiting (from their creation or return to the queue) since `since` or longer, oldest first."""
        rows = await self.db.fetchall(
            "SELECT id FROM conversations WHERE status = 'queued' AND channel = 'chat' "
            "AND coalesce(queue_front, created_at) <= ? ORDER BY created_at, id",
            (since,),
        )
        return [r["id"] for r in rows]

    async def accepted_waits(self, since: str, until: str) -> list[Any]:
        """The chats accepted in [since, until]: when, and when they last entered the queue (`queued_at`)."""
        return await self.db.fetchall(
            "SELECT a.at AS accepted_at, (SELECT max(q.at) FROM messages q WHERE q.conversation_id = a.conversation_id "
            " AND q.event IN ('queued', 'requeued', 'declined') AND q.seq < a.seq) AS queued_at "
            "FROM messages a WHERE a.event = 'accepted' AND a.sender = 'system' AND a.at >= ? AND a.at <= ?",
            (since, until),
        )
