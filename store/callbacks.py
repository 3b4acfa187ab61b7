"""The callback worklist: missed and abandoned calls from identifiable numbers (§4.7), to be called back.

Sources: queue stays that ended without an answer (queue_log: ABANDON, EXITWITHTIMEOUT,
EXITWITHKEY, EXITEMPTY) and incoming call records not answered (CDR disposition other than
ANSWERED). One item per number and office day, oldest first; a consultant takes an item, the
outgoing call to that number made after taking it is linked when its CDR arrives, and the item is
closed with an outcome. Items share the calls' retention (§6).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from .clock import from_iso, to_iso
from .errors import Conflict, InvalidInput, NotFound, NotPermitted
from .models import Actor
from .policy import Permission

if TYPE_CHECKING:
    from . import Store

OUTCOMES = ("reached", "no_answer", "wrong_number", "resolved_otherwise")
_LINK_STAYS = (  # as QueueLog.link_calls: a stay whose call's CDR has arrived belongs to that call
    "UPDATE queue_calls SET conversation_id = (SELECT l.conversation_id FROM call_legs l "
    " WHERE l.uniqueid = queue_calls.callid LIMIT 1) WHERE conversation_id IS NULL "
    "AND EXISTS (SELECT 1 FROM call_legs l WHERE l.uniqueid = queue_calls.callid)")


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
    return Callback(r["id"], r["number"], r["day"], from_iso(r["first_missed_at"]), from_iso(r["last_missed_at"]),
                    r["missed"], r["queue"], r["status"], r["taken_by"], r["outcome"], r["conversation_id"])


class Callbacks:
    def __init__(self, store: "Store") -> None:
        self.store = store

    async def refresh(self) -> int:
        """Put new missed calls on the list and link taken items to the call back made; returns items added/grown."""
        zone = ZoneInfo(self.store.settings.timezone)
        return await self.store.db.write_call(_refresh, zone)

    async def worklist(self, actor: Actor, *, include_done: bool = False) -> list[Callback]:
        """Open and taken items, oldest first (numbers in full: this is the consultant's work)."""
        await self.store.audit.guard(actor, Permission.HANDLE_CALLBACKS, "callbacks.list")
        await self.refresh()
        where = "" if include_done else "WHERE status != 'done'"
        rows = await self.store.db.fetchall(f"SELECT * FROM callbacks {where} ORDER BY first_missed_at, id")
        return [_callback(r) for r in rows]

    async def take(self, actor: Actor, callback_id: int) -> Callback:
        await self.store.audit.guard(actor, Permission.HANDLE_CALLBACKS, "callbacks.take", target_kind="callback",
                                     target_id=callback_id)
        now = to_iso(self.store.clock())
        async with self.store.db.write() as tx:
            rows = await tx.execute_fetchall("SELECT status, taken_by FROM callbacks WHERE id = ?", (callback_id,))
            if not rows:
                raise NotFound(f"no callback {callback_id}")
            if rows[0]["status"] == "done":
                raise Conflict("this callback is already closed")
            if rows[0]["status"] == "taken" and rows[0]["taken_by"] != actor.staff_id:
                raise Conflict("another consultant has already taken this callback")
            await tx.execute("UPDATE callbacks SET status = 'taken', taken_by = ?, taken_at = ? WHERE id = ?",
                             (actor.staff_id, now, callback_id))
            await self.store.audit.append(tx, actor, "callbacks.take", target_kind="callback", target_id=callback_id)
        return await self.get(callback_id)

    async def close(self, actor: Actor, callback_id: int, outcome: Any) -> Callback:
        await self.store.audit.guard(actor, Permission.HANDLE_CALLBACKS, "callbacks.close", target_kind="callback",
                                     target_id=callback_id)
        if outcome not in OUTCOMES:
            raise InvalidInput(f"the outcome must be one of: {', '.join(OUTCOMES)}")
        await self.refresh()  # the call back may just have arrived
        now = to_iso(self.store.clock())
        async with self.store.db.write() as tx:
            rows = await tx.execute_fetchall("SELECT status, taken_by FROM callbacks WHERE id = ?", (callback_id,))
            if not rows:
                raise NotFound(f"no callback {callback_id}")
            if rows[0]["status"] != "taken":
                raise Conflict("take the callback first" if rows[0]["status"] == "open"
                               else "this callback is already closed")
            if rows[0]["taken_by"] != actor.staff_id:
                raise NotPermitted("this callback was taken by another consultant")
            await tx.execute("UPDATE callbacks SET status = 'done', outcome = ?, closed_by = ?, closed_at = ? "
                             "WHERE id = ?", (outcome, actor.staff_id, now, callback_id))
            await self.store.audit.append(tx, actor, "callbacks.close", target_kind="callback",
                                          target_id=callback_id, details={"outcome": outcome})
        return await self.get(callback_id)

    async def get(self, callback_id: int) -> Callback:
        row = await self.store.db.fetchone("SELECT * FROM callbacks WHERE id = ?", (callback_id,))
        if row is None:
            raise NotFound(f"no callback {callback_id}")
        return _callback(row)


def _refresh(conn: sqlite3.Connection, zone: ZoneInfo) -> int:
    conn.execute(_LINK_STAYS)
    stays: dict[int, list[str]] = {}  # conversation id -> keys of its unanswered stays
    missed: list[tuple[list[str], str, str, str | None, str]] = []
    for r in conn.execute(
            "SELECT s.callid, s.queue, s.entered_at, s.caller, s.purge_after, s.conversation_id, c.pbx_uniqueid "
            "FROM queue_calls s LEFT JOIN conversations c ON c.id = s.conversation_id WHERE s.caller IS NOT NULL "
            "AND s.outcome IN ('abandoned', 'timeout', 'exitkey', 'exitempty')"):
        key = f"stay:{r['callid']}:{r['queue']}:{r['entered_at']}"
        keys = [key] + ([f"call:{r['pbx_uniqueid']}"] if r["pbx_uniqueid"] else [])
        if r["conversation_id"] is not None:
            stays.setdefault(r["conversation_id"], []).append(key)
        missed.append((keys, r["caller"], r["entered_at"], r["queue"], r["purge_after"]))
    for r in conn.execute(
            "SELECT id, pbx_uniqueid, resident_number, created_at, purge_after FROM conversations "
            "WHERE channel = 'call' AND direction = 'incoming' AND number_identifiable = 1 "
            "AND coalesce(disposition, '') != 'ANSWERED' AND resident_number IS NOT NULL"):
        missed.append(([f"call:{r['pbx_uniqueid']}", *stays.get(r["id"], [])], r["resident_number"],
                       r["created_at"], None, r["purge_after"]))
    added = 0
    for keys, number, at, queue, purge_after in sorted(missed, key=lambda m: m[2]):
        known = [row["callback_id"] for k in keys for row in
                 conn.execute("SELECT callback_id FROM callback_sources WHERE source = ?", (k,))]
        if known:  # the same missed call seen from the other source (queue_log and CDR): once only
            for k in keys:
                conn.execute("INSERT OR IGNORE INTO callback_sources(source, callback_id, purge_after) "
                             "VALUES (?, ?, ?)", (k, known[0], purge_after))
            continue
        day = from_iso(at).astimezone(zone).date().isoformat()
        row = conn.execute("SELECT id FROM callbacks WHERE number = ? AND day = ?", (number, day)).fetchone()
        if row is None:
            cur = conn.execute(
                "INSERT INTO callbacks(number, day, first_missed_at, last_missed_at, queue, purge_after) "
                "VALUES (?, ?, ?, ?, ?, ?)", (number, day, at, at, queue, purge_after))
            callback_id = cur.lastrowid
        else:
            callback_id = row["id"]
            conn.execute("UPDATE callbacks SET missed = missed + 1, first_missed_at = min(first_missed_at, ?), "
                         "last_missed_at = max(last_missed_at, ?), queue = coalesce(queue, ?) WHERE id = ?",
                         (at, at, queue, callback_id))
        for k in keys:
            conn.execute("INSERT OR IGNORE INTO callback_sources(source, callback_id, purge_after) VALUES (?, ?, ?)",
                         (k, callback_id, purge_after))
        added += 1
    # a taken item's call back: the first outgoing call to the number made after it was taken
    conn.execute(
        "UPDATE callbacks SET conversation_id = (SELECT c.id FROM conversations c WHERE c.channel = 'call' "
        " AND c.direction = 'outgoing' AND c.resident_number = callbacks.number AND c.created_at >= callbacks.taken_at "
        " ORDER BY c.created_at LIMIT 1) WHERE conversation_id IS NULL AND taken_at IS NOT NULL")
    return added
