"""The archive repository on SQLite: every statement of store/archive.py's Archive service.

store/archive.py holds the rules (who may search and open, the filters' meaning, the stated purpose,
what is audited); this module holds the SQL, the search's conditions included. Reads go to the reader
connection; writes take the caller's `Transaction`, which the audit entry joins.
"""

from __future__ import annotations

from typing import Any

from .database import Repository

#: One conversation's summary row, in the column order store/archive.py's `_summary` unpacks.
_SUMMARY_SQL = (
    "SELECT c.id, c.channel, c.status, c.created_at, c.ended_at, c.direction, c.resident_number, "
    "c.number_identifiable, s.name AS consultant, d.code AS department, c.duration_s, c.disposition, "
    "c.notice_played, c.full_info_requested, "
    "EXISTS (SELECT 1 FROM recordings r WHERE r.conversation_id = c.id) AS has_recording, "
    "t.label_pl, t.label_en, "
    # crypto-shredding: sealed under a key the purge destroyed (a restored backup's purged conversation)
    "(c.key_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM keyring.data_keys k WHERE k.key_id = c.key_id)) AS deleted "
    "FROM conversations c LEFT JOIN staff s ON s.id = c.consultant_id "
    "LEFT JOIN departments d ON d.id = c.department_id LEFT JOIN chat_topics t ON t.id = c.topic_id"
)

#: The condition of each kind of number search (store/archive.py `number_match`), on its values in order.
_NUMBER_CONDITIONS = {
    "full": "c.resident_number = ?",
    # ':' sorts right after '9', so [p, p + ':') is every text starting with p: both index range scans
    "partial": "((c.resident_number >= ? AND c.resident_number < ?) OR (c.number_rev >= ? AND c.number_rev < ?))",
    "raw": "c.resident_number = ?",
}


class ArchiveRepository(Repository):
    """The SQL of store/archive.py's Archive service."""

    async def search(
        self,
        *,
        number: tuple[str, list[Any]] | None,
        created_from: str | None,
        created_before: str | None,
        direction: str | None,
        channel: str | None,
        consultant_id: int | None,
        department_id: int | None,
        after: tuple[str, int] | None,
        limit: int,
    ) -> list[Any]:
        """Summary rows matching every filter given, newest first; `after` is (created_at, id) of the last row seen."""
        where: list[str] = []
        params: list[Any] = []
        if number is not None:
            kind, values = number
            where.append(_NUMBER_CONDITIONS[kind])
            params += values
        for condition, value in (
            ("c.created_at >= ?", created_from),
            ("c.created_at < ?", created_before),
            ("c.direction = ?", direction),
            ("c.channel = ?", channel),
            ("c.consultant_id = ?", consultant_id),
            ("c.department_id = ?", department_id),
        ):
            if value is not None:
                where.append(condition)
                params.append(value)
        if after is not None:
            created, conv_id = after
            where.append("(c.created_at < ? OR (c.created_at = ? AND c.id < ?))")
            params += [created, created, conv_id]
        sql = _SUMMARY_SQL + (" WHERE " + " AND ".join(where) if where else "")
        sql += " ORDER BY c.created_at DESC, c.id DESC LIMIT ?"
        return await self.db.fetchall(sql, (*params, limit))

    async def staff_id(self, name: str) -> int | None:
        row = await self.db.fetchone("SELECT id FROM staff WHERE name = ?", (name,))
        return None if row is None else row["id"]

    async def department_id(self, code: str) -> int | None:
        row = await self.db.fetchone("SELECT id FROM departments WHERE code = ?", (code,))
        return None if row is None else row["id"]

    async def summary(self, conversation_id: int) -> Any:
        return await self.db.fetchone(_SUMMARY_SQL + " WHERE c.id = ?", (conversation_id,))

    async def detail(self, conversation_id: int) -> Any:
        """A conversation's metadata beyond its summary: PBX ids, purge date, notice version, message count, held."""
        return await self.db.fetchone(
            "SELECT c.extension, c.pbx_uniqueid, c.pbx_linkedid, c.billsec_s, c.purge_after, c.lang, n.version, "
            "(SELECT count(*) FROM messages m WHERE m.conversation_id = c.id) AS messages, "
            "EXISTS (SELECT 1 FROM holds h WHERE h.conversation_id = c.id AND h.released_at IS NULL) AS held "
            "FROM conversations c LEFT JOIN notices n ON n.id = c.notice_id WHERE c.id = ?",
            (conversation_id,),
        )

    async def recordings(self, conversation_id: int) -> list[Any]:
        return await self.db.fetchall(
            "SELECT * FROM recordings WHERE conversation_id = ? ORDER BY id", (conversation_id,)
        )

    async def recording(self, conversation_id: int, recording_id: int | None) -> Any:
        """The conversation's recording `recording_id`, or its first one when None; None when there is none."""
        if recording_id is None:
            return await self.db.fetchone(
                "SELECT * FROM recordings WHERE conversation_id = ? ORDER BY id LIMIT 1", (conversation_id,)
            )
        return await self.db.fetchone(
            "SELECT * FROM recordings WHERE id = ? AND conversation_id = ?", (recording_id, conversation_id)
        )

    async def request_id(self, number: str) -> int | None:
        """The id of the access request with this number, if there is one."""
        row = await self.db.fetchone("SELECT id FROM access_requests WHERE number = ?", (number,))
        return None if row is None else row["id"]

    async def transcript(self, conversation_id: int) -> list[Any]:
        """A chat's lines in order, each with its staff member's name and full name."""
        return await self.db.fetchall(
            "SELECT m.seq, m.sender, m.text, m.at, m.event, m.params, s.name AS staff_name, s.full_name "
            "FROM messages m "
            "LEFT JOIN staff s ON s.id = m.staff_id WHERE m.conversation_id = ? ORDER BY m.seq",
            (conversation_id,),
        )

    async def close_category(self, conversation_id: int) -> str | None:
        row = await self.db.fetchone("SELECT close_category FROM conversations WHERE id = ?", (conversation_id,))
        return None if row is None else row["close_category"]
