"""Sealing what was stored before crypto-shredding (`cim keys encrypt-existing`): in place, resumable, with progress.

Four passes, each in short transactions: (1) every conversation gets a data key; (2) every transcript line
still stored as TEXT is sealed (and residents' words go into the blind index) in batches of rows, by
ascending id; (3) every staff note still stored as TEXT — supervisors' whispers with their chat's key,
consultants' call notes with their call's key (or, for a note not linked to a call record, a key of its
own: store/call_notes.py) — likewise; (4) every plain recording file is sealed in place (a temporary file,
fsynced, renamed over it). Every step commits by itself and what is sealed is recognised as such (a BLOB
line or note, a file with the sealed header), so a killed run simply continues where it stopped when
started again.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from .clock import to_iso
from .keys import DataKey, seal_file_in_place

if TYPE_CHECKING:
    from . import Store

#: Test hook (like the purge's): after the first committed batch of lines (or of notes, when no line was
#: plain), write this file and wait for SIGKILL.
PAUSE_ENV = "CIM_TEST_SEALING_PAUSE"
ROW_BATCH = 500


@dataclass
class SealingProgress:
    phase: str  # keys / lines / notes / files
    done: int
    total: int


@dataclass
class SealingResult:
    keys_created: int = 0
    lines_sealed: int = 0
    notes_sealed: int = 0
    files_sealed: int = 0
    files_missing: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def rows_per_second(self) -> float:
        return self.lines_sealed / self.seconds if self.seconds > 0 else 0.0

    def as_json(self) -> dict[str, Any]:
        return {
            "keys_created": self.keys_created,
            "lines_sealed": self.lines_sealed,
            "notes_sealed": self.notes_sealed,
            "files_sealed": self.files_sealed,
            "files_missing": self.files_missing,
            "seconds": round(self.seconds, 3),
            "rows_per_second": round(self.rows_per_second, 1),
        }


def _create_keys(conn: sqlite3.Connection, keys: Any, now: str, limit: int) -> int:
    ids = [
        r[0] for r in conn.execute("SELECT id FROM conversations WHERE key_id IS NULL ORDER BY id LIMIT ?", (limit,))
    ]
    for conversation_id in ids:
        keys.create_sync(conn, conversation_id, now)
    return len(ids)


def _seal_lines(conn: sqlite3.Connection, keys: Any, after: int, limit: int) -> tuple[int, int]:
    """Seal up to `limit` plain lines with an id above `after`; returns (count, last id seen)."""
    rows = conn.execute(
        "SELECT id, conversation_id, seq, sender, text FROM messages WHERE id > ? "
        "AND typeof(text) = 'text' ORDER BY id LIMIT ?",
        (after, limit),
    ).fetchall()
    found: dict[int, DataKey | None] = {}
    updates, tokens = [], []
    now = to_iso_now()
    for row_id, conversation_id, seq, sender, text in rows:
        if conversation_id not in found:
            found[conversation_id] = keys.get_sync(conn, conversation_id, create_at=now)
        key = found[conversation_id]
        if key is None:  # sealed under a destroyed key: a purged conversation of a restored backup
            continue
        updates.append((key.seal_text(seq, text), row_id))
        if sender == "resident":
            tokens.extend((conversation_id, t) for t in key.tokens(text))
    conn.executemany("UPDATE messages SET text = ? WHERE id = ?", updates)
    conn.executemany("INSERT OR IGNORE INTO message_words(conversation_id, token) VALUES (?, ?)", tokens)
    return len(updates), (rows[-1][0] if rows else after)


def _seal_notes(conn: sqlite3.Connection, keys: Any, after: tuple[int, int], limit: int) -> tuple[int, tuple[int, int]]:
    """Seal up to `limit` plain staff notes after position `after` = (table, id): whispers (0) then call
    notes (1), by ascending id; returns (count, last position seen)."""
    table, after_id = after
    now = to_iso_now()
    if table == 0:
        rows = conn.execute(
            "SELECT id, conversation_id, text FROM chat_staff_notes WHERE id > ? AND "
            "typeof(text) = 'text' ORDER BY id LIMIT ?",
            (after_id, limit),
        ).fetchall()
        if not rows:
            return 0, (1, 0)
        found: dict[int, DataKey | None] = {}
        updates = []
        for note_id, conversation_id, text in rows:
            if conversation_id not in found:
                found[conversation_id] = keys.get_sync(conn, conversation_id, create_at=now)
            key = found[conversation_id]
            if key is not None:  # None: a purged conversation of a restored backup (fsck reports it)
                updates.append((key.seal_staff_note(note_id, text), note_id))
        conn.executemany("UPDATE chat_staff_notes SET text = ? WHERE id = ?", updates)
        return len(updates), (0, rows[-1][0])
    rows = conn.execute(
        "SELECT id, linkedid, conversation_id, note FROM call_notes WHERE id > ? AND "
        "typeof(note) = 'text' AND note <> '' ORDER BY id LIMIT ?",
        (after_id, limit),
    ).fetchall()
    if not rows:
        return 0, (2, 0)
    notes = []
    for note_id, linkedid, conversation_id, text in rows:
        key = (
            keys.get_sync(conn, conversation_id, create_at=now)
            if conversation_id is not None
            else keys.create_pending_sync(conn, now)
        )  # store/call_notes.py: adopted by its call when linked
        if key is not None:
            notes.append((key.seal_call_note(linkedid, text), key.key_id, note_id))
    conn.executemany("UPDATE call_notes SET note = ?, key_id = ? WHERE id = ?", notes)
    return len(notes), (1, rows[-1][0])


def to_iso_now() -> str:
    from .clock import system_clock

    return to_iso(system_clock())


async def encrypt_existing(
    store: "Store", progress: Callable[[SealingProgress], None] | None = None, *, batch: int = ROW_BATCH
) -> SealingResult:
    """Seal every conversation's lines and files that are not sealed yet (see the module's docstring)."""
    keys = store.keys
    result = SealingResult()
    started = time.monotonic()
    report = progress or (lambda p: None)

    total = (await store.db.fetchone("SELECT count(*) AS n FROM conversations WHERE key_id IS NULL"))["n"]
    while True:
        made = await store.db.write_call(_create_keys, keys, to_iso(store.clock()), batch)
        if not made:
            break
        result.keys_created += made
        report(SealingProgress("keys", result.keys_created, total))

    total = (await store.db.fetchone("SELECT count(*) AS n FROM messages WHERE typeof(text) = 'text'"))["n"]
    after, paused = 0, False
    lines_started = time.monotonic()
    while True:
        sealed, last = await store.db.write_call(_seal_lines, keys, after, batch)
        if last == after:
            break
        after = last
        result.lines_sealed += sealed
        report(SealingProgress("lines", result.lines_sealed, total))
        if not paused and os.environ.get(PAUSE_ENV):
            paused = True
            from .retention import _pause_for_test

            _pause_for_test(os.environ[PAUSE_ENV])
    lines_seconds = time.monotonic() - lines_started

    total = (
        await store.db.fetchone(
            "SELECT (SELECT count(*) FROM chat_staff_notes WHERE typeof(text) = 'text') + "
            "(SELECT count(*) FROM call_notes WHERE typeof(note) = 'text' AND note <> '') "
            "AS n"
        )
    )["n"]
    position = (0, 0)
    while position[0] < 2:
        sealed, position = await store.db.write_call(_seal_notes, keys, position, batch)
        result.notes_sealed += sealed
        if sealed:
            report(SealingProgress("notes", result.notes_sealed, total))
            if not paused and os.environ.get(PAUSE_ENV):
                paused = True
                from .retention import _pause_for_test

                _pause_for_test(os.environ[PAUSE_ENV])

    rows = await store.db.fetchall("SELECT conversation_id, path FROM recordings ORDER BY id")
    root = store.settings.recordings_dir
    done = 0
    for row in rows:
        path = root / row["path"]
        key = await keys.read_key(row["conversation_id"])
        done += 1
        if key is None:
            continue
        try:
            if await asyncio.to_thread(seal_file_in_place, path, key):
                result.files_sealed += 1
        except FileNotFoundError:
            result.files_missing.append(row["path"])
        report(SealingProgress("files", done, len(rows)))
    result.seconds = lines_seconds if result.lines_sealed else time.monotonic() - started
    return result


async def seal_conversation(store: "Store", conversation_id: int) -> None:
    """Seal one conversation's plain lines and files now (what ingestion and the chat server do as they write;
    used where rows are written straight into the database, as the test fixtures and bench/ do)."""
    await store.db.write_call(_create_one, store.keys, conversation_id, to_iso(store.clock()))
    rows = await store.db.fetchall(
        "SELECT id FROM messages WHERE conversation_id = ? AND typeof(text) = 'text' ORDER BY id", (conversation_id,)
    )
    if rows:
        await store.db.write_call(_seal_lines_of, store.keys, conversation_id)
    key = await store.keys.read_key(conversation_id)
    if key is not None:
        for rec in await store.db.fetchall("SELECT path FROM recordings WHERE conversation_id = ?", (conversation_id,)):
            path: Path = store.settings.recordings_dir / rec["path"]
            if path.exists():
                await asyncio.to_thread(seal_file_in_place, path, key)


def _create_one(conn: sqlite3.Connection, keys: Any, conversation_id: int, now: str) -> None:
    keys.get_sync(conn, conversation_id, create_at=now)


def _seal_lines_of(conn: sqlite3.Connection, keys: Any, conversation_id: int) -> None:
    key = keys.get_sync(conn, conversation_id)
    if key is None:
        return
    rows = conn.execute(
        "SELECT id, seq, sender, text FROM messages WHERE conversation_id = ? AND typeof(text) = 'text'",
        (conversation_id,),
    ).fetchall()
    conn.executemany(
        "UPDATE messages SET text = ? WHERE id = ?", [(key.seal_text(seq, text), i) for i, seq, _, text in rows]
    )
    conn.executemany(
        "INSERT OR IGNORE INTO message_words(conversation_id, token) VALUES (?, ?)",
        [(conversation_id, t) for _, _, sender, text in rows if sender == "resident" for t in key.tokens(text)],
    )
