"""A consultant's category and short note on a call, attached to the call record by linkedid/uniqueid.

The note can be written while the call is still going (from the live state, before any CDR); it is
linked to the call record when the CDR arrives (`link()`, run after every CDR and queue_log ingest)
and shares the call's retention: it goes with the call, or by its own purge_after when no CDR ever
came.

The note's text is sealed at rest (crypto-shredding, store/keys.py), with the data key `key_id` names:
the call's own key when its record already exists as the note is written; otherwise a key made for the
note alone (kept in the key ring under conversation 0), which the call adopts when the note is linked
to it. The note is never re-sealed: the purge of the call destroys its key and every adopted note key
with it (`Keys.shred_sync`), an unlinked note's key goes with the note at its purge date, so a note in
any backup becomes unreadable exactly when its call does.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .chats import CLOSE_CATEGORIES, clean_text
from .clock import to_iso
from .db import run_on_thread
from .errors import InvalidInput, NotPermitted
from .keys import ContentDeleted, DataKey, sealed_of
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
#: The call record a note belongs to, if it exists already (the same matches as the two above).
_CALL_OF_SQL = (
    "SELECT id FROM (SELECT c.id, 0 AS o FROM conversations c WHERE c.channel = 'call' AND "
    " (c.pbx_uniqueid = :linkedid OR c.pbx_linkedid = :linkedid) UNION ALL "
    " SELECT l.conversation_id, 1 FROM call_legs l WHERE l.uniqueid IN (:linkedid, :uniqueid)) ORDER BY o, id LIMIT 1")


def _unencodable(text: str) -> bool:
    try:
        text.encode("utf-8")  # a lone surrogate cannot be stored, nor bound into a note's seal
    except UnicodeEncodeError:
        return True
    return False


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
        if not isinstance(linkedid, str) or not linkedid.strip() or len(linkedid) > 64 or _unencodable(linkedid):
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
            rows = await tx.execute_fetchall("SELECT staff_id, key_id, uniqueid FROM call_notes WHERE linkedid = ?",
                                             (linkedid,))
            if rows and rows[0]["staff_id"] not in (None, actor.staff_id):
                raise NotPermitted("another consultant has already described this call")
            key = await run_on_thread(tx, self._key_sync, linkedid, uniqueid or (rows[0]["uniqueid"] if rows else None),
                                      rows[0]["key_id"] if rows else None, to_iso(now))
            await tx.execute(
                "INSERT INTO call_notes(linkedid, uniqueid, staff_id, category, note, created_at, updated_at, "
                "purge_after, key_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(linkedid) DO UPDATE SET "
                "category = excluded.category, note = excluded.note, updated_at = excluded.updated_at, "
                "uniqueid = coalesce(excluded.uniqueid, call_notes.uniqueid), key_id = excluded.key_id",
                (linkedid, uniqueid, actor.staff_id, category, key.seal_call_note(linkedid, text) if text else "",
                 to_iso(now), to_iso(now), purge_after, key.key_id))
            await self.store.audit.append(tx, actor, "calls.annotate", target_kind="call", target_id=linkedid,
                                          details={"category": category, "note_length": len(text)})
        await self.link()
        return await self.get(linkedid)

    def _key_sync(self, conn: sqlite3.Connection, linkedid: str, uniqueid: str | None, key_id: bytes | None,
                  now: str) -> DataKey:
        """The key a note is sealed with (see the module's docstring), in the note's write transaction."""
        keys = self.store.keys
        if key_id is not None:  # a note being changed keeps its key
            key = keys.by_id_sync(conn, key_id)
        else:
            call = conn.execute(_CALL_OF_SQL, {"linkedid": linkedid, "uniqueid": uniqueid}).fetchone()
            key = keys.get_sync(conn, call[0], create_at=now) if call else keys.create_pending_sync(conn, now)
        if key is None:  # a restored backup's call whose key the purge destroyed: nothing is written
            raise ContentDeleted(f"call {linkedid} was deleted (§6): its key was destroyed by the purge")
        return key

    async def get(self, linkedid: str) -> CallNote:
        row = await self.store.db.fetchone("SELECT * FROM call_notes WHERE linkedid = ?", (linkedid,))
        if row is None:
            raise InvalidInput(f"no note on call {linkedid}")
        note = row["note"]
        if not isinstance(note, str):  # sealed (store/keys.py); `deleted (§6)` once the purge destroyed its key
            key = await self.store.keys.read_key_id(row["key_id"])
            note = sealed_of(note, key, lambda k, blob: k.open_call_note(row["linkedid"], blob))
        return CallNote(row["linkedid"], row["uniqueid"], row["conversation_id"], row["staff_id"], row["category"],
                        note)

    async def of_conversation(self, conversation_id: int) -> CallNote | None:
        row = await self.store.db.fetchone("SELECT linkedid FROM call_notes WHERE conversation_id = ?",
                                           (conversation_id,))
        return None if row is None else await self.get(row["linkedid"])

    async def link(self) -> int:
        """Attach waiting notes to the call records that now exist (by linkedid, else by a leg's uniqueid)."""
        def link(conn: sqlite3.Connection) -> int:
            waiting = [r[0] for r in conn.execute("SELECT id FROM call_notes WHERE conversation_id IS NULL")]
            if not waiting:
                return 0
            linked = conn.execute(_LINK_SQL).rowcount + conn.execute(_LINK_BY_LEG_SQL).rowcount
            if linked:
                adopt_note_keys_sync(conn, waiting)
            return linked
        return await self.store.db.write_call(link)


def adopt_note_keys_sync(conn: sqlite3.Connection, note_ids: list[int]) -> int:
    """The keys made for these notes while they waited now belong to the call each was linked to (the
    key ring's bookkeeping; `Keys.shred_sync` destroys them with the call through call_notes.key_id)."""
    rows = []
    for start in range(0, len(note_ids), 500):
        part = note_ids[start:start + 500]
        rows += conn.execute(f"SELECT key_id, conversation_id FROM call_notes WHERE id IN ({','.join('?' * len(part))}) "
                             "AND conversation_id IS NOT NULL AND key_id IS NOT NULL", part).fetchall()
    conn.executemany("UPDATE keyring.data_keys SET conversation_id = ? WHERE key_id = ?", [(r[1], r[0]) for r in rows])
    return len(rows)
