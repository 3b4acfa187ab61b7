"""The chats repository on SQLite: every statement of store/chats.py's Chats service and its group commit.

store/chats.py holds the rules (who may accept, transfer, take over or close a chat, the system lines,
the batches of the group commit, what is audited); this module holds the SQL. Reads go to the reader
connection; writes take the caller's `Transaction`, which the audit entry joins.
"""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING, Any, Callable

import aiosqlite

from ..chats import LineRefused
from .database import Repository, Transaction, run_on_thread

if TYPE_CHECKING:
    from ..keys import DataKey, Keys

_CHAT = "SELECT * FROM conversations "


class ChatsRepository(Repository):
    """The SQL of store/chats.py's Chats service."""

    # -- reading (the reader connection) -------------------------------------------------------

    async def notice(self, notice_id: int) -> sqlite3.Row | None:
        return await self.db.fetchone("SELECT id, channel, version, lang FROM notices WHERE id = ?", (notice_id,))

    async def latest_chat_notice_version(self) -> int | None:
        row = await self.db.fetchone("SELECT max(version) AS v FROM notices WHERE channel = 'chat'")
        return None if row is None else row["v"]

    async def declined_count(self, day: str) -> int:
        row = await self.db.fetchone("SELECT count FROM declined_notices WHERE day = ?", (day,))
        return row["count"] if row else 0

    async def chat_by_token(self, token_hash: str) -> sqlite3.Row | None:
        return await self.db.fetchone(_CHAT + "WHERE resume_token_hash = ? AND channel = 'chat'", (token_hash,))

    async def chat(self, chat_id: int) -> sqlite3.Row | None:
        return await self.db.fetchone(_CHAT + "WHERE id = ? AND channel = 'chat'", (chat_id,))

    async def messages(self, chat_id: int) -> list[sqlite3.Row]:
        """The chat's transcript lines as stored (sealed text is opened by the service), in seq order."""
        return await self.db.fetchall("SELECT * FROM messages WHERE conversation_id = ? ORDER BY seq", (chat_id,))

    async def has_line(self, chat_id: int, event: str) -> bool:
        """Whether the chat has a system line of `event` (e.g. `queue_timeout`: closed by the queue's time limit)."""
        row = await self.db.fetchone(
            "SELECT 1 FROM messages WHERE conversation_id = ? AND event = ? LIMIT 1", (chat_id, event)
        )
        return row is not None

    async def queued(self, limit: int | None = None) -> list[sqlite3.Row]:
        """The queued chats in queue order: re-queued chats first (store/desk.py), then by age; `limit`: the front."""
        return await self.db.fetchall(
            "SELECT id, lang, created_at, topic_id FROM conversations WHERE channel = 'chat' AND status = 'queued' "
            "ORDER BY queue_front IS NULL, created_at, id" + ("" if limit is None else " LIMIT ?"),
            () if limit is None else (int(limit),),
        )

    async def queue_position(self, chat_id: int) -> int | None:
        """A queued chat's place in the queue (1 at the front), None when it is not queued: a count over the index."""
        row = await self.db.fetchone(
            "SELECT count(*) AS n FROM conversations o WHERE o.channel = 'chat' AND o.status = 'queued' "
            "AND (o.queue_front IS NULL, o.created_at, o.id) <= (SELECT c.queue_front IS NULL, c.created_at, c.id "
            "FROM conversations c WHERE c.id = ? AND c.channel = 'chat' AND c.status = 'queued')",
            (chat_id,),
        )
        return (row["n"] or None) if row is not None else None

    async def active_chats_of(self, staff_id: int | None) -> list[sqlite3.Row]:
        return await self.db.fetchall(
            _CHAT + "WHERE channel = 'chat' AND status = 'active' AND consultant_id = ? ORDER BY id", (staff_id,)
        )

    async def left_uncategorised_of(self, staff_id: int | None, limit: int) -> list[sqlite3.Row]:
        """The consultant's chats the resident ended that still have no close category, the oldest first
        (at most `limit`); the partial index of migration 1700 serves it."""
        return await self.db.fetchall(
            _CHAT + "WHERE channel = 'chat' AND status = 'closed' AND close_category IS NULL AND consultant_id = ? "
            "ORDER BY id LIMIT ?",
            (staff_id, int(limit)),
        )

    async def consultants_holding_chats(self) -> set[int]:
        rows = await self.db.fetchall(
            "SELECT DISTINCT consultant_id FROM conversations "
            "WHERE channel = 'chat' AND status = 'active' AND consultant_id IS NOT NULL"
        )
        return {r["consultant_id"] for r in rows}

    async def staff_names(self, staff_id: int | None) -> sqlite3.Row | None:
        """The staff member's display name and full name (what residents call a consultant)."""
        return await self.db.fetchone("SELECT display_name, full_name FROM staff WHERE id = ?", (staff_id,))

    async def staff_of(self, staff_ids: list[int]) -> list[sqlite3.Row]:
        """Each of these staff members' id, log-in name, full name and display name (for staff-side lines)."""
        if not staff_ids:
            return []
        marks = ", ".join("?" for _ in staff_ids)
        return await self.db.fetchall(
            f"SELECT id, name, full_name, display_name FROM staff WHERE id IN ({marks})", list(staff_ids)
        )

    async def canned(self) -> list[sqlite3.Row]:
        return await self.db.fetchall("SELECT * FROM canned_responses ORDER BY title, id")

    async def canned_by_id(self, canned_id: int) -> sqlite3.Row | None:
        return await self.db.fetchone("SELECT * FROM canned_responses WHERE id = ?", (canned_id,))

    # -- writing (in the caller's transaction) --------------------------------------------------

    async def count_decline(self, tx: Transaction, day: str) -> None:
        await tx.connection.execute(
            "INSERT INTO declined_notices(day, count) VALUES (?, 1) ON CONFLICT(day) DO UPDATE SET count = count + 1",
            (day,),
        )

    async def insert_chat(
        self,
        tx: Transaction,
        *,
        created_at: str,
        purge_after: str,
        lang: str,
        notice_id: int,
        resume_token_hash: str,
        topic_id: int | None,
    ) -> int:
        """A queued chat opened on an accepted notice (at `created_at`); its first two lines follow (next_seq 3)."""
        cur = await tx.connection.execute(
            "INSERT INTO conversations(channel, status, created_at, purge_after, lang, notice_id, "
            "notice_accepted_at, resume_token_hash, next_seq, topic_id) VALUES ('chat', 'queued', ?, ?, ?, ?, ?, ?, 3, ?)",
            (created_at, purge_after, lang, notice_id, created_at, resume_token_hash, topic_id),
        )
        return _rowid(cur)

    async def insert_system_lines(self, tx: Transaction, lines: list[tuple[Any, ...]]) -> None:
        """System lines, each (conversation_id, seq, staff_id, text, at, event, params as JSON)."""
        await tx.connection.executemany(
            "INSERT INTO messages(conversation_id, seq, sender, staff_id, text, at, event, params) "
            "VALUES (?, ?, 'system', ?, ?, ?, ?, ?)",
            lines,
        )

    async def insert_system_line(
        self,
        tx: Transaction,
        chat_id: int,
        seq: int,
        staff_id: int | None,
        text: str | bytes,
        at: str,
        event: str,
        params: str = "{}",
    ) -> None:
        await self.insert_system_lines(tx, [(chat_id, seq, staff_id, text, at, event, params)])

    async def chat_position(self, tx: Transaction, chat_id: int) -> sqlite3.Row | None:
        """A chat's status, next sequence number and consultant, read in the transaction that changes them."""
        return await _one(
            tx,
            "SELECT status, next_seq, consultant_id FROM conversations WHERE id = ? AND channel = 'chat'",
            (chat_id,),
        )

    async def conversation_position(self, tx: Transaction, conversation_id: int) -> sqlite3.Row | None:
        """`chat_position` of any conversation (closing does not look at the channel)."""
        return await _one(
            tx, "SELECT status, next_seq, consultant_id FROM conversations WHERE id = ?", (conversation_id,)
        )

    async def consultant_load(self, tx: Transaction, staff_id: int | None) -> sqlite3.Row:
        """The consultant's own maximum of concurrent chats (`max_chats`, None: the setting) and their active chats (`n`)."""
        row = await _one(
            tx,
            "SELECT (SELECT max_chats FROM staff WHERE id = ?) AS max_chats, (SELECT count(*) FROM conversations "
            "WHERE status = 'active' AND channel = 'chat' AND consultant_id = ?) AS n",
            (staff_id, staff_id),
        )
        assert row is not None  # an aggregate query always has its row
        return row

    async def mark_accepted(self, tx: Transaction, chat_id: int, staff_id: int | None, next_seq: int) -> None:
        await tx.connection.execute(
            "UPDATE conversations SET status = 'active', consultant_id = ?, next_seq = ?, "
            "queue_front = NULL WHERE id = ? AND status = 'queued'",
            (staff_id, next_seq, chat_id),
        )

    async def reassign(self, tx: Transaction, chat_id: int, staff_id: int | None, next_seq: int) -> None:
        await tx.connection.execute(
            "UPDATE conversations SET consultant_id = ?, next_seq = ? WHERE id = ?", (staff_id, next_seq, chat_id)
        )

    async def take_over_position(self, tx: Transaction, chat_id: int) -> sqlite3.Row | None:
        """`chat_position` with the log-in name of the consultant answering (`name`)."""
        return await _one(
            tx,
            "SELECT c.status, c.next_seq, c.consultant_id, s.name FROM conversations c "
            "LEFT JOIN staff s ON s.id = c.consultant_id WHERE c.id = ? AND c.channel = 'chat'",
            (chat_id,),
        )

    async def take_over(
        self, tx: Transaction, chat_id: int, staff_id: int | None, next_seq: int, previous: int
    ) -> bool:
        """Give the active chat to `staff_id` if `previous` still answers it (a compare-and-swap on the
        handler); False, with nothing changed, when someone else answers it by now."""
        cur = await tx.connection.execute(
            "UPDATE conversations SET consultant_id = ?, next_seq = ? WHERE id = ? "
            "AND status = 'active' AND consultant_id = ?",
            (staff_id, next_seq, chat_id, previous),
        )
        return cur.rowcount == 1

    async def set_close_category(self, tx: Transaction, chat_id: int, category: str) -> bool:
        """Give a closed chat without a category its category; False when it already had one."""
        cur = await tx.connection.execute(
            "UPDATE conversations SET close_category = ? WHERE id = ? AND close_category IS NULL", (category, chat_id)
        )
        return cur.rowcount == 1

    async def active_chats_for_requeue(self, tx: Transaction, staff_id: int) -> list[sqlite3.Row]:
        """The consultant's active chats (id, next_seq and the consultant's log-in name `name`), in id order."""
        return list(
            await tx.connection.execute_fetchall(
                "SELECT c.id, c.next_seq, s.name FROM conversations c JOIN staff s ON s.id = c.consultant_id "
                "WHERE c.channel = 'chat' AND c.status = 'active' AND c.consultant_id = ? ORDER BY c.id",
                (staff_id,),
            )
        )

    async def requeue(self, tx: Transaction, chat_id: int, next_seq: int, queue_front: str) -> None:
        await tx.connection.execute(
            "UPDATE conversations SET status = 'queued', consultant_id = NULL, next_seq = ?, "
            "queue_front = ? WHERE id = ?",
            (next_seq, queue_front, chat_id),
        )

    async def mark_closed(
        self, tx: Transaction, conversation_id: int, ended_at: str, category: str | None, next_seq: int
    ) -> None:
        await tx.connection.execute(
            "UPDATE conversations SET status = 'closed', ended_at = ?, close_category = ?, next_seq = ? WHERE id = ?",
            (ended_at, category, next_seq, conversation_id),
        )

    async def index_resident_words(
        self, tx: Transaction, chat_id: int, tokens_of: Callable[[list[tuple[int, Any]]], set[bytes]]
    ) -> None:
        """The blind index of the residents' words: `tokens_of` turns the (seq, stored text) of the chat's
        resident lines into its tokens; read, computed and written in one hop on the writer's thread."""

        def index(conn: sqlite3.Connection) -> None:
            lines = conn.execute(
                "SELECT seq, text FROM messages WHERE conversation_id = ? AND sender = 'resident'", (chat_id,)
            ).fetchall()
            conn.executemany(
                "INSERT OR IGNORE INTO message_words(conversation_id, token) VALUES (?, ?)",
                [(chat_id, t) for t in tokens_of([(seq, text) for seq, text in lines])],
            )

        await run_on_thread(tx.connection, index)

    async def data_key(
        self, tx: Transaction | aiosqlite.Connection, keys: Keys, chat_id: int, create_at: str
    ) -> DataKey | None:
        """The chat's data key (created now for a chat that never had one) inside the write transaction `tx`:
        a repository's unit of work, or the connection `Database.write()` yields (store/desk.py)."""
        return await keys.get(_connection(tx), chat_id, create_at=create_at)

    async def staff_id_by_name(self, tx: Transaction, name: str) -> int | None:
        row = await _one(tx, "SELECT id FROM staff WHERE name = ?", (name,))
        return None if row is None else row["id"]

    async def set_display_name(self, tx: Transaction, staff_id: int, display_name: str | None) -> None:
        await tx.connection.execute("UPDATE staff SET display_name = ? WHERE id = ?", (display_name, staff_id))

    async def insert_canned(
        self, tx: Transaction, title: str, text: str, updated_at: str, updated_by: int | None
    ) -> int:
        cur = await tx.connection.execute(
            "INSERT INTO canned_responses(title, text, updated_at, updated_by) VALUES (?, ?, ?, ?)",
            (title, text, updated_at, updated_by),
        )
        return _rowid(cur)

    async def update_canned(
        self, tx: Transaction, canned_id: int, title: str, text: str, updated_at: str, updated_by: int | None
    ) -> bool:
        """False when there is no such canned response."""
        cur = await tx.connection.execute(
            "UPDATE canned_responses SET title = ?, text = ?, updated_at = ?, updated_by = ? WHERE id = ?",
            (title, text, updated_at, updated_by, canned_id),
        )
        return cur.rowcount == 1

    async def delete_canned(self, tx: Transaction, canned_id: int) -> bool:
        """False when there is no such canned response."""
        cur = await tx.connection.execute("DELETE FROM canned_responses WHERE id = ?", (canned_id,))
        return cur.rowcount == 1

    # -- the group commit of messages (store/chats.py _GroupCommit) ------------------------------

    async def chat_states(self, tx: Transaction, chat_ids: list[int]) -> list[sqlite3.Row]:
        """(id, status, next_seq, consultant_id) of those of `chat_ids` that are chats."""
        return list(
            await tx.connection.execute_fetchall(
                f"SELECT id, status, next_seq, consultant_id FROM conversations "
                f"WHERE id IN ({_marks(chat_ids)}) AND channel = 'chat'",
                chat_ids,
            )
        )

    async def client_msg_ids(self, tx: Transaction, chat_ids: list[int]) -> list[sqlite3.Row]:
        """(conversation_id, client_msg_id, seq) of every line of `chat_ids` stored with a client_msg_id."""
        return list(
            await tx.connection.execute_fetchall(
                f"SELECT conversation_id, client_msg_id, seq FROM messages "
                f"WHERE conversation_id IN ({_marks(chat_ids)}) AND client_msg_id IS NOT NULL",
                chat_ids,
            )
        )

    async def data_keys(
        self, tx: Transaction, keys: Keys, chat_ids: list[int], create_at: str
    ) -> dict[int, DataKey | None]:
        """`data_key` of each chat, unwrapped (or created) in one hop on the writer's thread."""

        def unwrap(conn: sqlite3.Connection) -> dict[int, DataKey | None]:
            return {chat_id: keys.get_sync(conn, chat_id, create_at=create_at) for chat_id in chat_ids}

        return await run_on_thread(tx.connection, unwrap)

    async def insert_messages(self, tx: Transaction, rows: list[tuple[Any, ...]]) -> None:
        """A batch of residents' and consultants' lines, each (conversation_id, seq, sender, staff_id, text, at,
        client_msg_id), in ONE statement; conversations.next_seq follows by the trigger of migration
        0100_chat_next_seq. A constraint that refuses a line (another writer took its seq) is `LineRefused`."""
        try:
            await tx.connection.executemany(
                "INSERT INTO messages(conversation_id, seq, sender, staff_id, text, at, client_msg_id) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
        except sqlite3.IntegrityError as exc:
            raise LineRefused(str(exc)) from exc

    async def message(self, tx: Transaction, chat_id: int, seq: int) -> sqlite3.Row | None:
        return await _one(tx, "SELECT * FROM messages WHERE conversation_id = ? AND seq = ?", (chat_id, seq))


def _rowid(cursor: aiosqlite.Cursor) -> int:
    assert cursor.lastrowid is not None  # an INSERT of one row has its rowid
    return cursor.lastrowid


def _connection(tx: Transaction | aiosqlite.Connection) -> aiosqlite.Connection:
    return tx.connection if isinstance(tx, Transaction) else tx


async def _one(tx: Transaction, sql: str, params: tuple[Any, ...]) -> sqlite3.Row | None:
    cursor = await tx.connection.execute(sql, params)
    try:
        return await cursor.fetchone()
    finally:
        await cursor.close()


def _marks(values: list[Any]) -> str:
    return ",".join("?" * len(values))
