"""A consultant's category and short note on a call, attached to the call record by linkedid/uniqueid.

The note can be written while the call is still going (from the live state, before any CDR); it is
linked to the call record when the CDR arrives (`link()`, run after every CDR and queue_log ingest)
and shares the call's retention: it goes with the call, or by its own purge_after when no CDR ever
came.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .chats import CLOSE_CATEGORIES, clean_text
from .clock import to_iso
from .errors import InvalidInput, NotPermitted
from .models import Actor
from .policy import Permission

if TYPE_CHECKING:
    from . import Store

#: The categories of a call: the same as a chat's close categories, so the report compares them.
CALL_CATEGORIES = CLOSE_CATEGORIES
MAX_NOTE = 500
_LINK_SQL = (
    "UPDATE call_notes SET conversation_id = (SELECT c.id FROM conversations c WHERE c.channel = 'call' AND "
    " (c.pbx_uniqueid = call_notes.linkedid OR c.pbx_linkedid = call_notes.linkedid) ORDER BY c.id LIMIT 1) "
    "WHERE conversation_id IS NULL AND EXISTS (SELECT 1 FROM conversations c WHERE c.channel = 'call' AND "
    " (c.pbx_uniqueid = call_notes.linkedid OR c.pbx_linkedid = call_notes.linkedid))")
_LINK_BY_LEG_SQL = (
    "UPDATE call_notes SET conversation_id = (SELECT l.conversation_id FROM call_legs l "
    " WHERE l.uniqueid IN (call_notes.linkedid, call_notes.uniqueid) LIMIT 1) "
    "WHERE conversation_id IS NULL AND EXISTS (SELECT 1 FROM call_legs l "
    " WHERE l.uniqueid IN (call_notes.linkedid, call_notes.uniqueid))")


@dataclass(frozen=True)
class CallNote:
    linkedid: str
    uniqueid: str | None
    conversation_id: int | None
    staff_id: int | None
    category: str
    note: str


class CallNotes:
    def __init__(self, store: "Store") -> None:
        self.store = store

    async def annotate(self, actor: Actor, linkedid: Any, category: Any, note: Any = "", *,
                       uniqueid: Any = None) -> CallNote:
        """Set (or, for its author, change) the category and note of a call; audited without the note's text."""
        await self.store.audit.guard(actor, Permission.ANNOTATE_CALLS, "calls.annotate", target_kind="call",
                                     target_id=str(linkedid)[:40])
        if not isinstance(linkedid, str) or not linkedid.strip() or len(linkedid) > 64:
            raise InvalidInput("the call is named by the PBX's linkedid (a short text)")
        if category not in CALL_CATEGORIES:
            raise InvalidInput(f"the category must be one of: {', '.join(CALL_CATEGORIES)}")
        text = clean_text(note, MAX_NOTE) if note else ""
        if uniqueid is not None and (not isinstance(uniqueid, str) or len(uniqueid) > 64):
            raise InvalidInput("the uniqueid is a short text")
        now = self.store.clock()
        purge_after = to_iso(self.store.settings.retention_duration.after(now))
        linkedid = linkedid.strip()
        async with self.store.db.write() as tx:
            rows = await tx.execute_fetchall("SELECT staff_id FROM call_notes WHERE linkedid = ?", (linkedid,))
            if rows and rows[0]["staff_id"] not in (None, actor.staff_id):
                raise NotPermitted("another consultant has already described this call")
            await tx.execute(
                "INSERT INTO call_notes(linkedid, uniqueid, staff_id, category, note, created_at, updated_at, "
                "purge_after) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(linkedid) DO UPDATE SET "
                "category = excluded.category, note = excluded.note, updated_at = excluded.updated_at, "
                "uniqueid = coalesce(excluded.uniqueid, call_notes.uniqueid)",
                (linkedid, uniqueid, actor.staff_id, category, text, to_iso(now), to_iso(now), purge_after))
            await self.store.audit.append(tx, actor, "calls.annotate", target_kind="call", target_id=linkedid,
                                          details={"category": category, "note_length": len(text)})
        await self.link()
        return await self.get(linkedid)

    async def get(self, linkedid: str) -> CallNote:
        row = await self.store.db.fetchone("SELECT * FROM call_notes WHERE linkedid = ?", (linkedid,))
        if row is None:
            raise InvalidInput(f"no note on call {linkedid}")
        return CallNote(row["linkedid"], row["uniqueid"], row["conversation_id"], row["staff_id"], row["category"],
                        row["note"])

    async def of_conversation(self, conversation_id: int) -> CallNote | None:
        row = await self.store.db.fetchone("SELECT linkedid FROM call_notes WHERE conversation_id = ?",
                                           (conversation_id,))
        return None if row is None else await self.get(row["linkedid"])

    async def link(self) -> int:
        """Attach waiting notes to the call records that now exist (by linkedid, else by a leg's uniqueid)."""
        def link(conn: sqlite3.Connection) -> int:
            return conn.execute(_LINK_SQL).rowcount + conn.execute(_LINK_BY_LEG_SQL).rowcount
        return await self.store.db.write_call(link)
