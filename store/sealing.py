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
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from .clock import to_iso
from .keys import DataKey, seal_file_in_place

if TYPE_CHECKING:  # the service names the repository's type only; its SQL is the backend's (store/sqlite/)
    from . import Store
    from .sqlite.sealing import KeyOf, SealingRepository

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


def _sealed_lines(rows: list[Any], key_of: "KeyOf") -> tuple[list[tuple[bytes, int]], list[tuple[int, bytes]]]:
    """Plain lines, (id, conversation_id, seq, sender, text) each, sealed under their conversation's key:
    the (sealed text, id) updates and the residents' words for the blind index, (conversation_id, token)."""
    updates: list[tuple[bytes, int]] = []
    tokens: list[tuple[int, bytes]] = []
    for row_id, conversation_id, seq, sender, text in rows:
        key = key_of(conversation_id)
        if key is None:  # sealed under a destroyed key: a purged conversation of a restored backup
            continue
        updates.append((key.seal_text(seq, text), row_id))
        if sender == "resident":
            tokens.extend((conversation_id, t) for t in key.tokens(text))
    return updates, tokens


def _sealed_whispers(rows: list[Any], key_of: "KeyOf") -> list[tuple[bytes, int]]:
    """Plain supervisors' whispers, (id, conversation_id, text) each: the (sealed text, id) updates."""
    updates = []
    for note_id, conversation_id, text in rows:
        key = key_of(conversation_id)
        if key is not None:  # None: a purged conversation of a restored backup (fsck reports it)
            updates.append((key.seal_staff_note(note_id, text), note_id))
    return updates


def _sealed_call_notes(
    rows: list[Any], key_of: "KeyOf", pending_key: Callable[[], DataKey]
) -> list[tuple[bytes, bytes, int]]:
    """Plain call notes, (id, linkedid, conversation_id, note) each: the (sealed note, key id, id) updates. A note
    not linked to a call record gets a key of its own, adopted by its call when linked (store/call_notes.py)."""
    notes = []
    for note_id, linkedid, conversation_id, text in rows:
        key = key_of(conversation_id) if conversation_id is not None else pending_key()
        if key is not None:
            notes.append((key.seal_call_note(linkedid, text), key.key_id, note_id))
    return notes


def to_iso_now() -> str:
    from .clock import system_clock

    return to_iso(system_clock())


class Sealing:
    """Seals what was stored in plain text before crypto-shredding; the SQL is the repository's
    (store/sqlite/sealing.py), each batch one short transaction of its own."""

    def __init__(self, store: "Store", repo: "SealingRepository") -> None:
        self.store = store
        self.repo = repo

    async def encrypt_existing(
        self, progress: Callable[[SealingProgress], None] | None = None, *, batch: int = ROW_BATCH
    ) -> SealingResult:
        """Seal every conversation's lines and files that are not sealed yet (see the module's docstring)."""
        store, repo = self.store, self.repo
        keys = store.keys
        result = SealingResult()
        started = time.monotonic()
        report = progress or (lambda p: None)

        total = await repo.conversations_without_key()
        while True:
            made = await repo.create_keys(keys, to_iso(store.clock()), batch)
            if not made:
                break
            result.keys_created += made
            report(SealingProgress("keys", result.keys_created, total))

        total = await repo.plain_lines()
        after, paused = 0, False
        lines_started = time.monotonic()
        while True:
            sealed, last = await repo.seal_lines(keys, after, batch, to_iso_now(), _sealed_lines)
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

        total = await repo.plain_notes()
        # whispers (table 0) then call notes (1), by ascending id; 2: done
        position = (0, 0)
        while position[0] < 2:
            table, after_id = position
            if table == 0:
                sealed, last_id = await repo.seal_whispers(keys, after_id, batch, to_iso_now(), _sealed_whispers)
            else:
                sealed, last_id = await repo.seal_call_notes(keys, after_id, batch, to_iso_now(), _sealed_call_notes)
            position = (table + 1, 0) if last_id is None else (table, last_id)
            result.notes_sealed += sealed
            if sealed:
                report(SealingProgress("notes", result.notes_sealed, total))
                if not paused and os.environ.get(PAUSE_ENV):
                    paused = True
                    from .retention import _pause_for_test

                    _pause_for_test(os.environ[PAUSE_ENV])

        rows = await repo.recordings()
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

    async def seal_conversation(self, conversation_id: int) -> None:
        """Seal one conversation's plain lines and files now (see the module function)."""
        store, repo = self.store, self.repo
        await repo.ensure_key(store.keys, conversation_id, to_iso(store.clock()))
        if await repo.has_plain_lines(conversation_id):
            await repo.seal_lines_of(store.keys, conversation_id, _sealed_lines)
        key = await store.keys.read_key(conversation_id)
        if key is not None:
            for name in await repo.recording_paths(conversation_id):
                path: Path = store.settings.recordings_dir / name
                if path.exists():
                    await asyncio.to_thread(seal_file_in_place, path, key)


async def encrypt_existing(
    store: "Store", progress: Callable[[SealingProgress], None] | None = None, *, batch: int = ROW_BATCH
) -> SealingResult:
    """Seal every conversation's lines and files that are not sealed yet (see the module's docstring)."""
    return await store.sealing.encrypt_existing(progress, batch=batch)


async def seal_conversation(store: "Store", conversation_id: int) -> None:
    """Seal one conversation's plain lines and files now (what ingestion and the chat server do as they write;
    used where rows are written straight into the database, as the test fixtures and bench/ do)."""
    await store.sealing.seal_conversation(conversation_id)
