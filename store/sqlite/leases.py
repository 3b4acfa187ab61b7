"""The leader-leases repository on SQLite: every statement of store/leases.py's Leases service.

store/leases.py holds the rules (who may take a lease, when it is free, how long it lasts); this module
holds the SQL: the conditional UPDATE and the first INSERT of a take run in one write transaction.
"""

from __future__ import annotations

from typing import Any

from .database import Database


class LeasesRepository:
    """The SQL of store/leases.py's Leases service (table `leases`, migration 1600_leases.sql)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def take(self, name: str, holder: str, *, now: str, expires_at: str) -> bool:
        """In one transaction: renew the lease when `holder` holds it or it expired by `now`, else create it
        when nobody has; True when `holder` holds it until `expires_at` afterwards."""
        async with self.db.transaction() as tx:
            cursor = await tx.connection.execute(
                "UPDATE leases SET holder = ?, expires_at = ? WHERE name = ? AND (holder = ? OR expires_at <= ?)",
                (holder, expires_at, name, holder, now),
            )
            if cursor.rowcount:
                return True
            cursor = await tx.connection.execute(
                "INSERT INTO leases(name, holder, expires_at) VALUES (?, ?, ?) ON CONFLICT(name) DO NOTHING",
                (name, holder, expires_at),
            )
            return bool(cursor.rowcount)

    async def release(self, name: str, holder: str) -> None:
        async with self.db.transaction() as tx:
            await tx.connection.execute("DELETE FROM leases WHERE name = ? AND holder = ?", (name, holder))

    async def lease(self, name: str) -> dict[str, Any] | None:
        row = await self.db.fetchone("SELECT name, holder, expires_at FROM leases WHERE name = ?", (name,))
        return None if row is None else dict(row)
