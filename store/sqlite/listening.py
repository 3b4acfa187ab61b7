"""The listening-links repository on SQLite: every statement of store/listening.py's Listening service.

store/listening.py holds the rules (who may create a link, its life, the pin, the checks at every
open, what is audited); this module holds the SQL. Reads go to the reader connection; writes take
the caller's `Transaction`, which the audit entry joins.
"""

from __future__ import annotations

from typing import Any

from .archive import _SUMMARY_SQL
from .database import Repository, Transaction

Row = dict[str, Any]


class ListeningRepository(Repository):
    """The SQL of store/listening.py's Listening service."""

    async def request_number(self, request_id: int) -> str | None:
        row = await self.db.fetchone("SELECT number FROM access_requests WHERE id = ?", (request_id,))
        return None if row is None else row["number"]

    async def request_state(self, request_id: int | None) -> str | None:
        row = await self.db.fetchone("SELECT state FROM access_requests WHERE id = ?", (request_id,))
        return None if row is None else row["state"]

    async def insert_link(
        self,
        tx: Transaction,
        *,
        token_hash: str,
        kind: str,
        code: str,
        staff_id: int | None,
        actor_name: str,
        session_hash: str | None,
        conversation_id: int,
        recording_id: int,
        recording_sha256: str,
        purpose: str,
        request_id: int | None,
        created_at: str,
        expires_at: str,
    ) -> int:
        cur = await tx.connection.execute(
            "INSERT INTO listen_links(token_hash, kind, code, staff_id, actor_name, session_hash, conversation_id, "
            "recording_id, recording_sha256, purpose, request_id, created_at, expires_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                token_hash,
                kind,
                code,
                staff_id,
                actor_name,
                session_hash,
                conversation_id,
                recording_id,
                recording_sha256,
                purpose,
                request_id,
                created_at,
                expires_at,
            ),
        )
        assert cur.lastrowid is not None  # an INSERT sets it
        return cur.lastrowid

    async def live_links(
        self, actor_name: str, now: str, *, conversation_id: int | None, request_id: int | None
    ) -> list[Any]:
        """The actor's links not revoked and not expired at `now`, in id order."""
        where = ["actor_name = ?", "revoked_at IS NULL", "expires_at > ?"]
        params: list[Any] = [actor_name, now]
        if conversation_id is not None:
            where.append("conversation_id = ?")
            params.append(conversation_id)
        if request_id is not None:
            where.append("request_id = ?")
            params.append(request_id)
        return await self.db.fetchall(
            f"SELECT id, code, conversation_id, request_id, expires_at, opened_at, session_hash FROM listen_links "
            f"WHERE {' AND '.join(where)} ORDER BY id",
            params,
        )

    async def revoke_own(self, tx: Transaction, link_id: int, actor_name: str, at: str, reason: str) -> Any:
        """Revoke one of the actor's live links: its (conversation_id, purpose, request_id), None if it was not live."""
        cur = await tx.connection.execute(
            "UPDATE listen_links SET revoked_at = ?, revoked_reason = ? WHERE id = ? AND actor_name = ? "
            "AND revoked_at IS NULL",
            (at, reason, link_id, actor_name),
        )
        if not cur.rowcount:
            return None
        return await (
            await tx.connection.execute(
                "SELECT conversation_id, purpose, request_id FROM listen_links WHERE id = ?", (link_id,)
            )
        ).fetchone()

    async def revoke(self, link_id: int, at: str, reason: str) -> None:
        """Revoke a live link in a transaction of its own (no audit entry: the refusal that follows is audited)."""
        async with self.db.write() as tx:
            await tx.execute(
                "UPDATE listen_links SET revoked_at = ?, revoked_reason = ? WHERE id = ? AND revoked_at IS NULL",
                (at, reason, link_id),
            )

    async def pin(self, tx: Transaction, link_id: int, pin_hash: str, at: str) -> bool:
        """Pin an unpinned link to a browser; False when another browser pinned it first."""
        cur = await tx.connection.execute(
            "UPDATE listen_links SET pin_hash = ?, opened_at = ? WHERE id = ? AND pin_hash IS NULL",
            (pin_hash, at, link_id),
        )
        return cur.rowcount != 0

    async def link_by_token(self, token_hash: str) -> Any:
        return await self.db.fetchone("SELECT * FROM listen_links WHERE token_hash = ?", (token_hash,))

    async def staff_disabled(self, staff_id: int) -> bool | None:
        """Whether the staff member is disabled; None when there is no such staff member."""
        row = await self.db.fetchone("SELECT disabled FROM staff WHERE id = ?", (staff_id,))
        return None if row is None else bool(row["disabled"])

    async def roles(self, staff_id: int) -> list[str]:
        return [
            r["role"] for r in await self.db.fetchall("SELECT role FROM staff_roles WHERE staff_id = ?", (staff_id,))
        ]

    async def recording_unchanged(self, recording_id: int, conversation_id: int, sha256: str) -> bool:
        return (
            await self.db.fetchone(
                "SELECT id FROM recordings WHERE id = ? AND conversation_id = ? AND sha256 = ?",
                (recording_id, conversation_id, sha256),
            )
            is not None
        )

    async def was_purged(self, conversation_id: int) -> bool:
        return await self.db.fetchone("SELECT 1 FROM purged_conversations WHERE id = ?", (conversation_id,)) is not None

    async def session(self, session_hash: str) -> Any:
        return await self.db.fetchone(
            "SELECT expires_at, last_seen_at, revoked_at FROM sessions WHERE token_hash = ?", (session_hash,)
        )

    async def summary(self, conversation_id: int) -> Any:
        return await self.db.fetchone(_SUMMARY_SQL + " WHERE c.id = ?", (conversation_id,))

    async def recording(self, recording_id: int) -> Any:
        return await self.db.fetchone("SELECT * FROM recordings WHERE id = ?", (recording_id,))
