"""The notices repository on SQLite: every statement of store/notices.py's Notices service.

store/notices.py holds the rules (channels, languages, lengths, who may add a version, what is
audited); this module holds the SQL. Reads go to the reader connection; writes take the caller's
`Transaction`, which the audit entry joins.
"""

from __future__ import annotations

from typing import Any

from .database import Repository, Transaction


class NoticesRepository(Repository):
    """The SQL of store/notices.py's Notices service."""

    async def latest_version(self, channel: str) -> int | None:
        row = await self.db.fetchone("SELECT max(version) AS v FROM notices WHERE channel = ?", (channel,))
        return None if row is None else row["v"]

    async def version_rows(self, channel: str, version: int | None, lang: str) -> list[Any]:
        """The rows of one version in `lang` and in Polish."""
        return await self.db.fetchall(
            "SELECT * FROM notices WHERE channel = ? AND version = ? AND lang IN (?, 'pl')",
            (channel, version, lang),
        )

    async def by_id(self, notice_id: int) -> Any:
        return await self.db.fetchone("SELECT * FROM notices WHERE id = ?", (notice_id,))

    async def history(self, channel: str) -> list[Any]:
        return await self.db.fetchall("SELECT * FROM notices WHERE channel = ? ORDER BY version, lang", (channel,))

    async def add_version(
        self, tx: Transaction, channel: str, texts: dict[str, str], created_at: str, created_by: str
    ) -> int:
        """Insert the texts as the channel's next version (the one after its newest) and return that version."""
        row = await (
            await tx.connection.execute("SELECT max(version) FROM notices WHERE channel = ?", (channel,))
        ).fetchone()
        version = ((row[0] if row is not None else None) or 0) + 1
        for lang, text in texts.items():
            await tx.connection.execute(
                "INSERT INTO notices(channel, version, lang, text, legal, created_at, created_by) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (channel, version, lang, text, int(lang == "pl"), created_at, created_by),
            )
        return version
