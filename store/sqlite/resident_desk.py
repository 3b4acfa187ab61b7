"""The resident desk's repository on SQLite: every statement of store/resident_desk.py's ResidentDesk service.

store/resident_desk.py holds the rules (what an offline message, a receipt, a copy and a rating may be,
the receipt's secret and its rate limit, what is sealed and what is audited); this module holds the SQL.
Reads go to the reader connection; writes take the caller's `Transaction`, which the audit entry joins.
"""

from __future__ import annotations

import sqlite3
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, AsyncIterator, Iterable, Sequence

from ..resident_desk import RecordConflict
from .database import Database, Transaction

if TYPE_CHECKING:
    from ..keys import DataKey, Keys

# an offline message with its text (the resident's line) and who answered it
_OFFLINE_SQL = (
    "SELECT o.*, c.created_at, c.lang, c.receipt_reference, s.name AS answered_by_name, "
    "(SELECT m.text FROM messages m WHERE m.conversation_id = c.id AND m.sender = 'resident' "
    " ORDER BY m.seq LIMIT 1) AS text, "
    "(SELECT m.seq FROM messages m WHERE m.conversation_id = c.id AND m.sender = 'resident' "
    " ORDER BY m.seq LIMIT 1) AS text_seq "
    "FROM offline_messages o JOIN conversations c ON c.id = o.conversation_id "
    "LEFT JOIN staff s ON s.id = o.answered_by"
)


class ResidentDeskRepository:
    """The SQL of store/resident_desk.py's ResidentDesk service."""

    def __init__(self, db: Database) -> None:
        self.db = db

    @asynccontextmanager
    async def transaction(self, *, conflict: bool = False) -> AsyncIterator[Transaction]:
        """One short write transaction (the unit of work) that the repository's writes and the audit entry share.

        With `conflict`, a write the records' constraints refuse (a reference drawn twice, a second rating)
        rolls the unit back and raises `RecordConflict` for the service to handle."""
        try:
            async with self.db.transaction() as tx:
                yield tx
        except sqlite3.IntegrityError as exc:
            if not conflict:
                raise
            raise RecordConflict(str(exc)) from exc

    async def data_key(self, tx: Transaction, keys: "Keys", conversation_id: int, create_at: str) -> "DataKey | None":
        """The conversation's data key inside the transaction (made now if it has none; store/keys.py)."""
        return await keys.get(tx.connection, conversation_id, create_at=create_at)

    async def receipt_key(self) -> bytes:
        """The HMAC key of receipt secrets (store_keys 'receipt', made by the migrations)."""
        row = await self.db.fetchone("SELECT value FROM store_keys WHERE name = 'receipt'")
        assert row is not None, "store_keys has no 'receipt' key"
        return bytes(row["value"])

    # -- offline messages ----------------------------------------------------------------------------

    async def notice(self, notice_id: int) -> Any:
        return await self.db.fetchone("SELECT id, channel, version, lang FROM notices WHERE id = ?", (notice_id,))

    async def current_chat_notice_version(self) -> int | None:
        row = await self.db.fetchone("SELECT max(version) AS v FROM notices WHERE channel = 'chat'")
        return None if row is None else row["v"]

    async def insert_offline_conversation(
        self,
        tx: Transaction,
        *,
        created_at: str,
        purge_after: str,
        lang: str,
        notice_id: int,
        reference: str,
    ) -> int:
        """A conversation for an offline message (its notice accepted when it was left; lines 1 and 2 follow)."""
        cur = await tx.connection.execute(
            "INSERT INTO conversations(channel, status, created_at, purge_after, lang, notice_id, "
            "notice_accepted_at, receipt_reference, next_seq) "
            "VALUES ('chat', 'offline_message', ?, ?, ?, ?, ?, ?, 3)",
            (created_at, purge_after, lang, notice_id, created_at, reference),
        )
        assert cur.lastrowid is not None
        return cur.lastrowid

    async def insert_lines(
        self, tx: Transaction, lines: Sequence[tuple[int, int, str, Any, str, str | None, str | None]]
    ) -> None:
        """Transcript lines as (conversation_id, seq, sender, text, at, event, params)."""
        await tx.connection.executemany(
            "INSERT INTO messages(conversation_id, seq, sender, text, at, event, params) VALUES (?, ?, ?, ?, ?, ?, ?)",
            lines,
        )

    async def insert_words(self, tx: Transaction, conversation_id: int, tokens: Iterable[str]) -> None:
        """The blind index of the resident's words (request matching)."""
        await tx.connection.executemany(
            "INSERT OR IGNORE INTO message_words(conversation_id, token) VALUES (?, ?)",
            [(conversation_id, t) for t in tokens],
        )

    async def insert_offline_message(
        self, tx: Transaction, conversation_id: int, name: Any, contact: Any, contact_kind: str
    ) -> None:
        await tx.connection.execute(
            "INSERT INTO offline_messages(conversation_id, name, contact, contact_kind) VALUES (?, ?, ?, ?)",
            (conversation_id, name, contact, contact_kind),
        )

    async def waiting_count(self) -> int:
        row = await self.db.fetchone("SELECT count(*) AS n FROM offline_messages WHERE answered_at IS NULL")
        assert row is not None  # an aggregate always answers one row
        return int(row["n"])

    async def offline_messages(self, *, include_answered: bool) -> list[Any]:
        """Offline messages (unanswered only, or all), the oldest first, as stored (sealed)."""
        where = "1" if include_answered else "o.answered_at IS NULL"
        return await self.db.fetchall(f"{_OFFLINE_SQL} WHERE {where} ORDER BY c.created_at, c.id")

    async def offline_message(self, conversation_id: int) -> Any:
        return await self.db.fetchone(f"{_OFFLINE_SQL} WHERE o.conversation_id = ?", (conversation_id,))

    async def offline_state(self, tx: Transaction, conversation_id: Any) -> Any:
        """An offline message's answered_at and its conversation's next_seq, or None."""
        cur = await tx.connection.execute(
            "SELECT o.answered_at, c.next_seq FROM offline_messages o JOIN conversations c "
            "ON c.id = o.conversation_id WHERE o.conversation_id = ?",
            (conversation_id,),
        )
        return await cur.fetchone()

    async def record_answer(
        self, tx: Transaction, conversation_id: int, *, at: str, staff_id: int, how: str, note: Any
    ) -> None:
        await tx.connection.execute(
            "UPDATE offline_messages SET answered_at = ?, answered_by = ?, answered_how = ?, "
            "answer_note = ? WHERE conversation_id = ?",
            (at, staff_id, how, note, conversation_id),
        )

    async def insert_staff_line(
        self, tx: Transaction, conversation_id: int, seq: int, staff_id: int, text: Any, at: str
    ) -> None:
        """A system line a staff member's act wrote (no event code)."""
        await tx.connection.execute(
            "INSERT INTO messages(conversation_id, seq, sender, staff_id, text, at) VALUES (?, ?, 'system', ?, ?, ?)",
            (conversation_id, seq, staff_id, text, at),
        )

    async def close_answered(
        self, tx: Transaction, conversation_id: int, *, at: str, staff_id: int, next_seq: int
    ) -> None:
        """The answered offline message's conversation is closed as `information_given`."""
        await tx.connection.execute(
            "UPDATE conversations SET status = 'closed', ended_at = ?, consultant_id = ?, "
            "close_category = 'information_given', next_seq = ? WHERE id = ?",
            (at, staff_id, next_seq, conversation_id),
        )

    # -- receipts and the resident's copy ------------------------------------------------------------

    async def set_receipt(self, tx: Transaction, chat_id: int, reference: str, secret_hash: str) -> bool:
        """Give an ended chat without one its receipt; False when it has one (or is no ended chat)."""
        cur = await tx.connection.execute(
            "UPDATE conversations SET receipt_reference = ?, receipt_secret_hash = ? WHERE id = ? "
            "AND channel = 'chat' AND status = 'closed' AND receipt_reference IS NULL",
            (reference, secret_hash, chat_id),
        )
        return cur.rowcount == 1

    async def chat_by_resume_token(self, token_hash: str) -> Any:
        return await self.db.fetchone(
            "SELECT id, status, ended_at FROM conversations WHERE resume_token_hash = ? AND channel = 'chat'",
            (token_hash,),
        )

    async def receipt_reference(self, chat_id: int) -> str | None:
        row = await self.db.fetchone(
            "SELECT receipt_reference FROM conversations WHERE id = ? AND channel = 'chat'", (chat_id,)
        )
        return row["receipt_reference"] if row is not None else None

    async def chat(self, chat_id: int) -> Any:
        """The chat's conversation row, or None (no such chat)."""
        return await self.db.fetchone("SELECT * FROM conversations WHERE id = ? AND channel = 'chat'", (chat_id,))

    async def lines(self, chat_id: int) -> list[Any]:
        """The chat's transcript lines in order, as stored (sealed)."""
        return await self.db.fetchall("SELECT * FROM messages WHERE conversation_id = ? ORDER BY seq", (chat_id,))

    async def conversation_lang(self, conversation_id: int) -> Any:
        """The conversation's `lang` (a row), or None."""
        return await self.db.fetchone("SELECT lang FROM conversations WHERE id = ?", (conversation_id,))

    async def receipt_failures(self, reference: str, staff_id: int | None, since: str) -> Any:
        """Wrong tries since `since`: `per_ref` for the reference, `per_staff` by the staff member."""
        return await self.db.fetchone(
            "SELECT (SELECT count(*) FROM receipt_failures WHERE reference = ? AND at >= ?) AS per_ref, "
            "(SELECT count(*) FROM receipt_failures WHERE staff_id IS ? AND at >= ?) AS per_staff",
            (reference, since, staff_id, since),
        )

    async def chat_by_reference(self, reference: str) -> Any:
        return await self.db.fetchone(
            "SELECT id, receipt_secret_hash FROM conversations WHERE receipt_reference = ? AND channel = 'chat'",
            (reference,),
        )

    async def record_receipt_failure(
        self, tx: Transaction, reference: str, staff_id: int | None, at: str, forget_before: str
    ) -> None:
        """Count one wrong try; tries older than `forget_before` are forgotten."""
        await tx.connection.execute("DELETE FROM receipt_failures WHERE at < ?", (forget_before,))
        await tx.connection.execute(
            "INSERT INTO receipt_failures(reference, staff_id, at) VALUES (?, ?, ?)", (reference, staff_id, at)
        )

    # -- satisfaction --------------------------------------------------------------------------------

    async def staff_name(self, staff_id: int) -> str | None:
        row = await self.db.fetchone("SELECT name FROM staff WHERE id = ?", (staff_id,))
        return row["name"] if row else None

    async def topic_label(self, topic_id: int) -> str | None:
        """The topic's Polish label (chat_topics.label_pl, migration 1200), or None."""
        row = await self.db.fetchone("SELECT label_pl FROM chat_topics WHERE id = ?", (topic_id,))
        return row["label_pl"] if row else None

    async def insert_rating(
        self,
        tx: Transaction,
        chat_id: int,
        *,
        day: str,
        consultant_id: int | None,
        consultant: str,
        topic: str | None,
        rating: int,
        comment: Any,
    ) -> None:
        """One rating per chat (a second is refused by the table's constraint)."""
        await tx.connection.execute(
            "INSERT INTO chat_ratings(conversation_id, day, consultant_id, consultant, topic, "
            "rating, comment) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (chat_id, day, consultant_id, consultant, topic, rating, comment),
        )

    async def rating_comment(self, chat_id: int) -> Any:
        """The chat's rating's `comment` (a row, the comment sealed), or None (not rated)."""
        return await self.db.fetchone("SELECT comment FROM chat_ratings WHERE conversation_id = ?", (chat_id,))

    async def ratings(self, first_day: str, last_day: str) -> list[Any]:
        """(consultant, topic, rating) of the ratings of office days first_day..last_day (inclusive)."""
        return await self.db.fetchall(
            "SELECT consultant, topic, rating FROM chat_ratings WHERE day >= ? AND day <= ?", (first_day, last_day)
        )
