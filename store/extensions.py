"""Which staff member answers at which PBX extension (staff_extensions), as the live traffic needs it.

Extensions and staff names are not residents' data: any part of CIM may read them (the wallboard
names queue members, the call card finds the consultant's own calls).
"""

from __future__ import annotations

from typing import Sequence

from .audit import AuditLog
from .db import Database
from .errors import NotPermitted
from .models import Actor
from .policy import Permission


class Extensions:
    def __init__(self, db: Database, audit: AuditLog) -> None:
        self.db = db
        self.audit = audit

    async def names(self) -> dict[str, str]:
        """Extension -> the staff member's name."""
        rows = await self.db.fetchall(
            "SELECT e.extension, s.name FROM staff_extensions e JOIN staff s ON s.id = e.staff_id")
        return {r["extension"]: r["name"] for r in rows}

    async def of_staff(self, staff_id: int | None) -> set[str]:
        """The extensions of one staff member (none for the system actor)."""
        if staff_id is None:
            return set()
        rows = await self.db.fetchall("SELECT extension FROM staff_extensions WHERE staff_id = ?", (staff_id,))
        return {r["extension"] for r in rows}

    async def pausable(self, actor: Actor) -> set[str]:
        """The extensions a consultant may pause in the PBX's queues (their own); refused and audited otherwise."""
        await self.audit.guard(actor, Permission.PAUSE_QUEUE, "traffic.queue_pause")
        if actor.staff_id is None:
            raise NotPermitted("only a consultant pauses themselves in a queue")
        return await self.of_staff(actor.staff_id)

    async def record_pause(self, actor: Actor, *, paused: bool, queue: str | None, reason: str,
                           interfaces: Sequence[str], outcome: str) -> None:
        """The audit entry of a QueuePause sent (or failed) for the actor's own interfaces."""
        async with self.db.write() as tx:
            await self.audit.append(tx, actor, "traffic.queue_pause", outcome=outcome, details={
                "paused": paused, "queue": queue, "reason": reason, "interfaces": sorted(interfaces)})
