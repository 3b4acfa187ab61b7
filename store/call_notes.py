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

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .chats import CLOSE_CATEGORIES, clean_text
from .clock import to_iso
from .errors import InvalidInput, NotPermitted
from .i18n import N_
from .keys import ContentDeleted, sealed_of
from .models import Actor
from .policy import Permission

if TYPE_CHECKING:  # the service names the repository's type only; its SQL is the backend's (store/sqlite/)
    from . import Store
    from .sqlite.call_notes import CallNotesRepository

#: The categories of a call: the same as a chat's close categories, so the report compares them.
CALL_CATEGORIES = CLOSE_CATEGORIES
MAX_NOTE = 500


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
    """A call's category and note: who may write it, its checks, what is audited.

    The SQL is the repository's (store/sqlite/call_notes.py); a note is written in its unit of work,
    which the audit entry joins.
    """

    def __init__(self, store: "Store", repo: "CallNotesRepository") -> None:
        self.store = store
        self.repo = repo

    async def annotate(
        self, actor: Actor, linkedid: Any, category: Any, note: Any = "", *, uniqueid: Any = None
    ) -> CallNote:
        """Set (or, for its author, change) the category and note of a call; audited without the note's text."""
        await self.store.audit.guard(
            actor, Permission.ANNOTATE_CALLS, "calls.annotate", target_kind="call", target_id=str(linkedid)[:40]
        )
        if not isinstance(linkedid, str) or not linkedid.strip() or len(linkedid) > 64 or _unencodable(linkedid):
            raise InvalidInput(N_("the call is named by the PBX's linkedid (a short text)"))
        if category not in CALL_CATEGORIES:
            raise InvalidInput(N_("the category must be one of: {choices}"), choices=", ".join(CALL_CATEGORIES))
        text = clean_text(note, MAX_NOTE) if note else ""
        if uniqueid is not None and (not isinstance(uniqueid, str) or len(uniqueid) > 64):
            raise InvalidInput(N_("the uniqueid is a short text"))
        now = self.store.clock()
        purge_after = to_iso(self.store.settings.retention_duration.after(now))
        linkedid = linkedid.strip()
        async with self.repo.transaction() as tx:
            row = await self.repo.note_for_update(tx, linkedid)
            if row and row["staff_id"] not in (None, actor.staff_id):
                raise NotPermitted(N_("another consultant has already described this call"))
            key = await self.repo.note_key(
                tx,
                self.store.keys,
                linkedid,
                uniqueid or (row["uniqueid"] if row else None),
                row["key_id"] if row else None,
                to_iso(now),
            )
            if key is None:  # a restored backup's call whose key the purge destroyed: nothing is written
                raise ContentDeleted(
                    N_("call {linkedid} was deleted (§6): its key was destroyed by the purge"), linkedid=linkedid
                )
            await self.repo.upsert(
                tx,
                linkedid=linkedid,
                uniqueid=uniqueid,
                staff_id=actor.staff_id,
                category=category,
                note=key.seal_call_note(linkedid, text) if text else "",
                at=to_iso(now),
                purge_after=purge_after,
                key_id=key.key_id,
            )
            await self.store.audit.append(
                tx,
                actor,
                "calls.annotate",
                target_kind="call",
                target_id=linkedid,
                details={"category": category, "note_length": len(text)},
            )
        await self.link()
        return await self.get(linkedid)

    async def get(self, linkedid: str) -> CallNote:
        row = await self.repo.note(linkedid)
        if row is None:
            raise InvalidInput(N_("no note on call {linkedid}"), linkedid=linkedid)
        note = row["note"]
        if not isinstance(note, str):  # sealed (store/keys.py); `deleted (§6)` once the purge destroyed its key
            key = await self.store.keys.read_key_id(row["key_id"])
            note = sealed_of(note, key, lambda k, blob: k.open_call_note(row["linkedid"], blob))
        return CallNote(
            row["linkedid"], row["uniqueid"], row["conversation_id"], row["staff_id"], row["category"], note
        )

    async def of_conversation(self, conversation_id: int) -> CallNote | None:
        linkedid = await self.repo.linkedid_of(conversation_id)
        return None if linkedid is None else await self.get(linkedid)

    async def link(self) -> int:
        """Attach waiting notes to the call records that now exist (by linkedid, else by a leg's uniqueid)."""
        return await self.repo.link()
