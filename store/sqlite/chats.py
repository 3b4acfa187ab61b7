"""The chats repository on SQLite: every statement of store/chats.py's Chats service and its group commit.

store/chats.py holds the rules (who may accept, transfer, take over or close a chat, the system lines,
the batches of the group commit, what is audited); this module holds the SQL. Reads go to the reader
connection; writes take the caller's `Transaction`, which the audit entry joins.
"""

from __future__ import annotations

import sqlite3
from contextlib import asynccontextmanager
from typing import AsyncIterator

from .database import Database, Transaction

_CHAT = "SELECT * FROM conversations "


class ChatsRepository:
    """The SQL of store/chats.py's Chats service."""

    def __init__(self, db: Database) -> None:
        self.db = db

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        """One short write transaction (the unit of work) that the repository's writes and the audit entry share."""
        async with self.db.transaction() as tx:
            yield tx

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

    async def queued(self) -> list[sqlite3.Row]:
        """The queued chats in queue order: re-queued chats first (store/desk.py), then by age."""
        return await self.db.fetchall(
            "SELECT id, lang, created_at, topic_id FROM conversations WHERE channel = 'chat' AND status = 'queued' "
            "ORDER BY queue_front IS NULL, created_at, id"
        )

    async def active_chats_of(self, staff_id: int | None) -> list[sqlite3.Row]:
        return await self.db.fetchall(
            _CHAT + "WHERE channel = 'chat' AND status = 'active' AND consultant_id = ? ORDER BY id", (staff_id,)
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

    async def canned(self) -> list[sqlite3.Row]:
        return await self.db.fetchall("SELECT * FROM canned_responses ORDER BY title, id")

    async def canned_by_id(self, canned_id: int) -> sqlite3.Row | None:
        return await self.db.fetchone("SELECT * FROM canned_responses WHERE id = ?", (canned_id,))
