"""The call notes' repository on SQLite: every statement of store/call_notes.py's CallNotes service.

store/call_notes.py holds the rules (who may describe a call, the categories, the note's length,
what is audited); this module holds the SQL: the note's row, the data key it is sealed with (the
call's, else one of its own that the call adopts when the note is linked) and the linking. Writes
take the caller's `Transaction`, which the audit entry joins.
"""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING, Any

from .database import Repository, Transaction, run_on_thread

if TYPE_CHECKING:
    from ..keys import DataKey, Keys

_LINK_SQL = (
    "UPDATE call_notes SET conversation_id = (SELECT c.id FROM conversations c WHERE c.channel = 'call' AND "
    " (c.pbx_uniqueid = call_notes.linkedid OR c.pbx_linkedid = call_notes.linkedid) ORDER BY c.id LIMIT 1) "
    "WHERE conversation_id IS NULL AND EXISTS (SELECT 1 FROM conversations c WHERE c.channel = 'call' AND "
    " (c.pbx_uniqueid = call_notes.linkedid OR c.pbx_linkedid = call_notes.linkedid))"
)
_LINK_BY_LEG_SQL = (
    "UPDATE call_notes SET conversation_id = (SELECT l.conversation_id FROM call_legs l "
    " WHERE l.uniqueid IN (call_notes.linkedid, call_notes.uniqueid) LIMIT 1) "
    "WHERE conversation_id IS NULL AND EXISTS (SELECT 1 FROM call_legs l "
    " WHERE l.uniqueid IN (call_notes.linkedid, call_notes.uniqueid))"
)
#: The call record a note belongs to, if it exists already (the same matches as the two above).
_CALL_OF_SQL = (
    "SELECT id FROM (SELECT c.id, 0 AS o FROM conversations c WHERE c.channel = 'call' AND "
    " (c.pbx_uniqueid = :linkedid OR c.pbx_linkedid = :linkedid) UNION ALL "
    " SELECT l.conversation_id, 1 FROM call_legs l WHERE l.uniqueid IN (:linkedid, :uniqueid)) ORDER BY o, id LIMIT 1"
)


class CallNotesRepository(Repository):
    """The SQL of store/call_notes.py's CallNotes service."""

    async def note_for_update(self, tx: Transaction, linkedid: str) -> Any:
        """(staff_id, key_id, uniqueid) of the call's note in the transaction, or None when it has none yet."""
        rows = await tx.connection.execute_fetchall(
            "SELECT staff_id, key_id, uniqueid FROM call_notes WHERE linkedid = ?", (linkedid,)
        )
        return next(iter(rows), None)

    async def note_key(
        self, tx: Transaction, keys: "Keys", linkedid: str, uniqueid: str | None, key_id: bytes | None, now: str
    ) -> "DataKey | None":
        """The key a note is sealed with, in the note's write transaction: a note being changed keeps its key;
        else the call's own key when its record exists, else a key made for the note alone. None when the key
        was destroyed by the purge (a restored backup's call)."""
        return await run_on_thread(tx.connection, _note_key_sync, keys, linkedid, uniqueid, key_id, now)

    async def upsert(
        self,
        tx: Transaction,
        *,
        linkedid: str,
        uniqueid: str | None,
        staff_id: int | None,
        category: str,
        note: Any,
        at: str,
        purge_after: str,
        key_id: bytes,
    ) -> None:
        await tx.connection.execute(
            "INSERT INTO call_notes(linkedid, uniqueid, staff_id, category, note, created_at, updated_at, "
            "purge_after, key_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(linkedid) DO UPDATE SET "
            "category = excluded.category, note = excluded.note, updated_at = excluded.updated_at, "
            "uniqueid = coalesce(excluded.uniqueid, call_notes.uniqueid), key_id = excluded.key_id",
            (linkedid, uniqueid, staff_id, category, note, at, at, purge_after, key_id),
        )

    async def note(self, linkedid: str) -> Any:
        return await self.db.fetchone("SELECT * FROM call_notes WHERE linkedid = ?", (linkedid,))

    async def linkedid_of(self, conversation_id: int) -> str | None:
        row = await self.db.fetchone("SELECT linkedid FROM call_notes WHERE conversation_id = ?", (conversation_id,))
        return None if row is None else row["linkedid"]

    async def link(self) -> int:
        """Attach waiting notes to the call records that now exist (by linkedid, else by a leg's uniqueid);
        the keys they waited with pass to those calls. One write transaction; the notes linked."""
        return await self.db.write_call(_link)


def _note_key_sync(
    conn: sqlite3.Connection, keys: "Keys", linkedid: str, uniqueid: str | None, key_id: bytes | None, now: str
) -> "DataKey | None":
    if key_id is not None:  # a note being changed keeps its key
        return keys.by_id_sync(conn, key_id)
    call = conn.execute(_CALL_OF_SQL, {"linkedid": linkedid, "uniqueid": uniqueid}).fetchone()
    return keys.get_sync(conn, call[0], create_at=now) if call else keys.create_pending_sync(conn, now)


def _link(conn: sqlite3.Connection) -> int:
    waiting = [r[0] for r in conn.execute("SELECT id FROM call_notes WHERE conversation_id IS NULL")]
    if not waiting:
        return 0
    linked = conn.execute(_LINK_SQL).rowcount + conn.execute(_LINK_BY_LEG_SQL).rowcount
    if linked:
        adopt_note_keys_sync(conn, waiting)
    return linked


def adopt_note_keys_sync(conn: sqlite3.Connection, note_ids: list[int]) -> int:
    """The keys made for these notes while they waited now belong to the call each was linked to (the
    key ring's bookkeeping; `Keys.shred_sync` destroys them with the call through call_notes.key_id)."""
    rows = []
    for start in range(0, len(note_ids), 500):
        part = note_ids[start : start + 500]
        rows += conn.execute(
            f"SELECT key_id, conversation_id FROM call_notes WHERE id IN ({','.join('?' * len(part))}) "
            "AND conversation_id IS NOT NULL AND key_id IS NOT NULL",
            part,
        ).fetchall()
    conn.executemany("UPDATE keyring.data_keys SET conversation_id = ? WHERE key_id = ?", [(r[1], r[0]) for r in rows])
    return len(rows)
