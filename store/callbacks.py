"""The callback worklist: missed and abandoned calls from identifiable numbers (§4.7), to be called back.

Sources: queue stays that ended without an answer (queue_log: ABANDON, EXITWITHTIMEOUT,
EXITWITHKEY, EXITEMPTY) and incoming call records not answered (CDR disposition other than
ANSWERED). One item per number and office day, oldest first; a consultant takes an item, the
outgoing call to that number made after taking it is linked when its CDR arrives, and the item is
closed with an outcome. Items share the calls' retention (§6).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from .clock import from_iso, to_iso
from .errors import Conflict, InvalidInput, NotFound, NotPermitted
from .i18n import N_
from .models import Actor
from .policy import Permission

if TYPE_CHECKING:  # the service names the repository's type only; its SQL is the backend's (store/sqlite/)
    from . import Store
    from .sqlite.callbacks import CallbacksRepository

OUTCOMES = ("reached", "no_answer", "wrong_number", "resolved_otherwise")


@dataclass(frozen=True)
class Callback:
    id: int
    number: str
    day: str
    first_missed_at: datetime
    last_missed_at: datetime
    missed: int
    queue: str | None
    status: str
    taken_by: int | None
    outcome: str | None
    conversation_id: int | None


def _callback(r: Any) -> Callback:
    return Callback(
        r["id"],
        r["number"],
        r["day"],
        from_iso(r["first_missed_at"]),
        from_iso(r["last_missed_at"]),
        r["missed"],
        r["queue"],
        r["status"],
        r["taken_by"],
        r["outcome"],
        r["conversation_id"],
    )


class Callbacks:
    """The worklist's rules: who may, the office day of a missed call, take and close.

    The SQL is the repository's (store/sqlite/callbacks.py); take and close run in its unit of work,
    which the audit entry joins.
    """

    def __init__(self, store: "Store", repo: "CallbacksRepository") -> None:
        self.store = store
        self.repo = repo

    async def refresh(self) -> int:
        """Put new missed calls on the list and link taken items to the call back made; returns items added/grown."""
        zone = ZoneInfo(self.store.settings.timezone)
        return await self.repo.refresh(lambda at: from_iso(at).astimezone(zone).date().isoformat())

    async def worklist(self, actor: Actor, *, include_done: bool = False) -> list[Callback]:
        """Open and taken items, oldest first (numbers in full: this is the consultant's work)."""
        await self.store.audit.guard(actor, Permission.HANDLE_CALLBACKS, "callbacks.list")
        await self.refresh()
        return [_callback(r) for r in await self.repo.callbacks(include_done=include_done)]

    async def take(self, actor: Actor, callback_id: int) -> Callback:
        await self.store.audit.guard(
            actor, Permission.HANDLE_CALLBACKS, "callbacks.take", target_kind="callback", target_id=callback_id
        )
        now = to_iso(self.store.clock())
        async with self.repo.transaction() as tx:
            item = await self.repo.state(tx, callback_id)
            if item is None:
                raise NotFound(N_("no callback {callback_id}"), callback_id=callback_id)
            if item["status"] == "done":
                raise Conflict(N_("this callback is already closed"))
            if item["status"] == "taken" and item["taken_by"] != actor.staff_id:
                raise Conflict(N_("another consultant has already taken this callback"))
            await self.repo.mark_taken(tx, callback_id, actor.staff_id, now)
            await self.store.audit.append(tx, actor, "callbacks.take", target_kind="callback", target_id=callback_id)
        return await self.get(callback_id)

    async def close(self, actor: Actor, callback_id: int, outcome: Any) -> Callback:
        await self.store.audit.guard(
            actor, Permission.HANDLE_CALLBACKS, "callbacks.close", target_kind="callback", target_id=callback_id
        )
        if outcome not in OUTCOMES:
            raise InvalidInput(N_("the outcome must be one of: {choices}"), choices=", ".join(OUTCOMES))
        await self.refresh()  # the call back may just have arrived
        now = to_iso(self.store.clock())
        async with self.repo.transaction() as tx:
            item = await self.repo.state(tx, callback_id)
            if item is None:
                raise NotFound(N_("no callback {callback_id}"), callback_id=callback_id)
            if item["status"] != "taken":
                raise Conflict(
                    "take the callback first" if item["status"] == "open" else "this callback is already closed"
                )
            if item["taken_by"] != actor.staff_id:
                raise NotPermitted(N_("this callback was taken by another consultant"))
            await self.repo.mark_done(tx, callback_id, outcome, actor.staff_id, now)
            await self.store.audit.append(
                tx,
                actor,
                "callbacks.close",
                target_kind="callback",
                target_id=callback_id,
                details={"outcome": outcome},
            )
        return await self.get(callback_id)

    async def get(self, callback_id: int) -> Callback:
        row = await self.repo.callback(callback_id)
        if row is None:
            raise NotFound(N_("no callback {callback_id}"), callback_id=callback_id)
        return _callback(row)
