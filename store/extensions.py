"""Which staff member answers at which PBX extension (staff_extensions), as the live traffic needs it.

Extensions and staff names are not residents' data: any part of CIM may read them (the wallboard
names queue members, the call card finds the consultant's own calls).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

from .audit import AuditLog
from .errors import NotPermitted
from .i18n import N_
from .models import Actor
from .policy import Permission

if TYPE_CHECKING:  # the service names the repository's type only; its SQL is the backend's (store/sqlite/)
    from .sqlite.extensions import ExtensionsRepository


class Extensions:
    """Extensions as the live traffic needs them; pausing is the consultant's own, audited.

    The SQL is the repository's (store/sqlite/extensions.py).
    """

    def __init__(self, repo: "ExtensionsRepository", audit: AuditLog) -> None:
        self.repo = repo
        self.audit = audit

    async def names(self) -> dict[str, str]:
        """Extension -> the staff member's name."""
        return await self.repo.names()

    async def of_staff(self, staff_id: int | None) -> set[str]:
        """The extensions of one staff member (none for the system actor)."""
        if staff_id is None:
            return set()
        return await self.repo.of_staff(staff_id)

    async def pausable(self, actor: Actor) -> set[str]:
        """The extensions a consultant may pause in the PBX's queues (their own); refused and audited otherwise."""
        await self.audit.guard(actor, Permission.PAUSE_QUEUE, "traffic.queue_pause")
        if actor.staff_id is None:
            raise NotPermitted(N_("only a consultant pauses themselves in a queue"))
        return await self.of_staff(actor.staff_id)

    async def record_pause(
        self, actor: Actor, *, paused: bool, queue: str | None, reason: str, interfaces: Sequence[str], outcome: str
    ) -> None:
        """The audit entry (a transaction of its own) of a QueuePause sent or failed for the actor's interfaces."""
        await self.audit.record(
            actor,
            "traffic.queue_pause",
            outcome=outcome,
            details={"paused": paused, "queue": queue, "reason": reason, "interfaces": sorted(interfaces)},
        )
