"""The sealing repository on SQLite: every statement of store/sealing.py (`cim keys encrypt-existing`).

store/sealing.py holds the passes, their order, the progress and what sealing a line or a note means;
this module holds the SQL. Each batch is one short write transaction run in ONE call on the writer's
thread (`Database.write_call`): the rows are read, handed to the service's sealing function with a way
to the keys inside that transaction, and the sealed values written back, as before.
"""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING, Any, Callable

from .database import Database

if TYPE_CHECKING:
    from ..keys import DataKey, Keys

#: (conversation id) -> its data key inside the batch's transaction (None: destroyed, a purged conversation)
KeyOf = Callable[[int], "DataKey | None"]


class SealingRepository:
    """The SQL of store/sealing.py's Sealing service."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # -- the counts shown as progress ------------------------------------------------------------

    async def conversations_without_key(self) -> int:
        return await self._count("SELECT count(*) AS n FROM conversations WHERE key_id IS NULL")

    async def plain_lines(self) -> int:
        return await self._count("SELECT count(*) AS n FROM messages WHERE typeof(text) = 'text'")

    async def plain_notes(self) -> int:
        return await self._count(
            "SELECT (SELECT count(*) FROM chat_staff_notes WHERE typeof(text) = 'text') + "
            "(SELECT count(*) FROM call_notes WHERE typeof(note) = 'text' AND note <> '') "
            "AS n"
        )

    async def _count(self, sql: str) -> int:
        row = await self.db.fetchone(sql)
        assert row is not None  # an aggregate query always has its row
        return row["n"]

    # -- the passes, one batch a transaction -----------------------------------------------------

    async def create_keys(self, keys: "Keys", now: str, limit: int) -> int:
        """Give up to `limit` conversations without a data key one (by ascending id); returns how many."""

        def create(conn: sqlite3.Connection) -> int:
            ids = [
                r[0]
                for r in conn.execute("SELECT id FROM conversations WHERE key_id IS NULL ORDER BY id LIMIT ?", (limit,))
            ]
            for conversation_id in ids:
                keys.create_sync(conn, conversation_id, now)
            return len(ids)

        return await self.db.write_call(create)

    async def seal_lines(
        self, keys: "Keys", after: int, limit: int, now: str, seal: Callable[[list[Any], KeyOf], tuple[list, list]]
    ) -> tuple[int, int]:
        """Up to `limit` plain lines with an id above `after`, as (id, conversation_id, seq, sender, text), go
        to `seal`, which returns the (sealed text, id) updates and the (conversation_id, token) words of the
        blind index; returns (lines sealed, last id seen)."""

        def batch(conn: sqlite3.Connection) -> tuple[int, int]:
            rows = conn.execute(
                "SELECT id, conversation_id, seq, sender, text FROM messages WHERE id > ? "
                "AND typeof(text) = 'text' ORDER BY id LIMIT ?",
                (after, limit),
            ).fetchall()
            updates, tokens = seal(rows, _key_lookup(conn, keys, now))
            _write_lines(conn, updates, tokens)
            return len(updates), (rows[-1][0] if rows else after)

        return await self.db.write_call(batch)

    async def seal_whispers(
        self, keys: "Keys", after: int, limit: int, now: str, seal: Callable[[list[Any], KeyOf], list]
    ) -> tuple[int, int | None]:
        """Up to `limit` plain supervisors' whispers with an id above `after`, as (id, conversation_id, text),
        go to `seal`, which returns the (sealed text, id) updates; returns (notes sealed, last id seen), the
        id None when there was none left."""

        def batch(conn: sqlite3.Connection) -> tuple[int, int | None]:
            rows = conn.execute(
                "SELECT id, conversation_id, text FROM chat_staff_notes WHERE id > ? AND "
                "typeof(text) = 'text' ORDER BY id LIMIT ?",
                (after, limit),
            ).fetchall()
            if not rows:
                return 0, None
            updates = seal(rows, _key_lookup(conn, keys, now))
            conn.executemany("UPDATE chat_staff_notes SET text = ? WHERE id = ?", updates)
            return len(updates), rows[-1][0]

        return await self.db.write_call(batch)

    async def seal_call_notes(
        self,
        keys: "Keys",
        after: int,
        limit: int,
        now: str,
        seal: Callable[[list[Any], KeyOf, Callable[[], "DataKey"]], list],
    ) -> tuple[int, int | None]:
        """Up to `limit` plain consultants' call notes with an id above `after`, as (id, linkedid,
        conversation_id, note), go to `seal` with the conversation's key and a maker of a pending key (a
        note not linked to a call record yet, store/call_notes.py); it returns the (sealed note, key id, id)
        updates. Returns (notes sealed, last id seen), the id None when there was none left."""

        def batch(conn: sqlite3.Connection) -> tuple[int, int | None]:
            rows = conn.execute(
                "SELECT id, linkedid, conversation_id, note FROM call_notes WHERE id > ? AND "
                "typeof(note) = 'text' AND note <> '' ORDER BY id LIMIT ?",
                (after, limit),
            ).fetchall()
            if not rows:
                return 0, None
            updates = seal(
                rows,
                lambda conversation_id: keys.get_sync(conn, conversation_id, create_at=now),
                lambda: keys.create_pending_sync(conn, now),
            )
            conn.executemany("UPDATE call_notes SET note = ?, key_id = ? WHERE id = ?", updates)
            return len(updates), rows[-1][0]

        return await self.db.write_call(batch)

    async def recordings(self) -> list[sqlite3.Row]:
        """(conversation_id, path) of every recording, by ascending id."""
        return await self.db.fetchall("SELECT conversation_id, path FROM recordings ORDER BY id")

    # -- one conversation now ----------------------------------------------------------------------

    async def ensure_key(self, keys: "Keys", conversation_id: int, now: str) -> None:
        """The conversation's data key, created (at `now`) if it has none, in a transaction of its own."""

        def ensure(conn: sqlite3.Connection) -> None:
            keys.get_sync(conn, conversation_id, create_at=now)

        await self.db.write_call(ensure)

    async def has_plain_lines(self, conversation_id: int) -> bool:
        return bool(
            await self.db.fetchall(
                "SELECT id FROM messages WHERE conversation_id = ? AND typeof(text) = 'text' ORDER BY id",
                (conversation_id,),
            )
        )

    async def seal_lines_of(
        self, keys: "Keys", conversation_id: int, seal: Callable[[list[Any], KeyOf], tuple[list, list]]
    ) -> None:
        """`seal_lines` for every plain line of one conversation, under its existing key (none: nothing)."""

        def seal_all(conn: sqlite3.Connection) -> None:
            key = keys.get_sync(conn, conversation_id)
            if key is None:
                return
            rows = conn.execute(
                "SELECT id, conversation_id, seq, sender, text FROM messages WHERE conversation_id = ? "
                "AND typeof(text) = 'text'",
                (conversation_id,),
            ).fetchall()
            _write_lines(conn, *seal(rows, lambda _: key))

        await self.db.write_call(seal_all)

    async def recording_paths(self, conversation_id: int) -> list[str]:
        rows = await self.db.fetchall("SELECT path FROM recordings WHERE conversation_id = ?", (conversation_id,))
        return [r["path"] for r in rows]


def _key_lookup(conn: sqlite3.Connection, keys: "Keys", now: str) -> KeyOf:
    """Each conversation's key unwrapped (or created) once in the batch's transaction."""
    found: dict[int, DataKey | None] = {}

    def key_of(conversation_id: int) -> DataKey | None:
        if conversation_id not in found:
            found[conversation_id] = keys.get_sync(conn, conversation_id, create_at=now)
        return found[conversation_id]

    return key_of


def _write_lines(conn: sqlite3.Connection, updates: list, tokens: list) -> None:
    conn.executemany("UPDATE messages SET text = ? WHERE id = ?", updates)
    conn.executemany("INSERT OR IGNORE INTO message_words(conversation_id, token) VALUES (?, ?)", tokens)
