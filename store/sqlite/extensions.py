"""The extensions' repository on SQLite: which staff member answers at which PBX extension (staff_extensions).

store/extensions.py holds the rules (who may pause themselves, what is audited); this module holds
the SQL.
"""

from __future__ import annotations

from .database import Database


class ExtensionsRepository:
    """The SQL of store/extensions.py's Extensions service."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def names(self) -> dict[str, str]:
        """Extension -> the staff member's name."""
        rows = await self.db.fetchall(
            "SELECT e.extension, s.name FROM staff_extensions e JOIN staff s ON s.id = e.staff_id"
        )
        return {r["extension"]: r["name"] for r in rows}

    async def of_staff(self, staff_id: int) -> set[str]:
        rows = await self.db.fetchall("SELECT extension FROM staff_extensions WHERE staff_id = ?", (staff_id,))
        return {r["extension"] for r in rows}
