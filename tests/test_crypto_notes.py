"""Crypto-shredding of staff notes (store/keys.py): supervisors' whispers (store/supervision.py) and consultants'
call notes (store/call_notes.py) are sealed at rest like transcript lines, die with their conversation's key
in every backup, are sealed by `cim keys encrypt-existing` when older, and are checked by fsck."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from store import Store
from store.errors import InvalidInput, MessageTooLong
from store.keys import DELETED_MARK, ContentDeleted
from store.sealing import PAUSE_ENV
from store.settings import Settings
from tests.fixtures.retention import RetentionData
from tests.test_crypto_shredding import OLD, SYSTEM, raw_bytes, restored_settings

WHISPER = "SZEPT-nadzoru-PESEL-90010112345"
PENDING = "NOTATKA-przed-CDR-Kowalska-ul.Lipowa"
LINKED = "NOTATKA-po-CDR-Nowak-tel.600700800"
UNLINKED = "NOTATKA-bez-rekordu-Wiśniewski"


def _cim(env: dict, *args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cim", *args], env=env, capture_output=True, text=True, **kwargs)


def _db_and_wal(settings: Settings) -> bytes:
    """The live database file and its WAL, read by another process: closing a descriptor of the database
    file in this process would drop every POSIX lock SQLite holds on it here (fcntl locks are per process),
    and a second process would then take itself for the last connection and remove the WAL under us."""
    wal = Path(f"{settings.db_path}-wal")
    read = [
        sys.executable,
        "-c",
        "import sys; [sys.stdout.buffer.write(open(p, 'rb').read()) for p in sys.argv[1:]]",
        str(settings.db_path),
        *([str(wal)] if wal.exists() else []),
    ]
    return subprocess.run(read, capture_output=True, check=True).stdout


async def _live_chat(store: Store, make_staff):
    consultant = (await make_staff("anna", "consultant")).as_actor()
    boss = (await make_staff("kierownik", "cim_manager")).as_actor()
    notice = await store.notices.current("chat", "pl")
    chat = (await store.chats.open(notice.id, "pl")).chat.id
    await store.chats.post_resident(chat, "Dzień dobry", "c1")
    await store.chats.accept(consultant, chat)
    return consultant, boss, chat


async def _key_row(store: Store, key_id) -> dict | None:
    row = await store.db.fetchone("SELECT conversation_id FROM keyring.data_keys WHERE key_id = ?", (key_id,))
    return dict(row) if row else None


@pytest.mark.ordinance("§6")
@pytest.mark.ordinance("GDPR 5(1)(e)")
async def test_notes_are_sealed_at_rest_and_a_backup_made_before_the_purge_reads_them_as_deleted(
    store, settings, clock, tmp_path, make_staff
):
    consultant, boss, chat = await _live_chat(store, make_staff)
    whispered = await store.supervision.whisper(boss, chat, WHISPER, "w1")
    assert whispered.note.text == WHISPER and [n.text for n in await store.supervision.notes(chat)] == [WHISPER]

    maker = RetentionData(store)
    # a note written during the call, before its record exists: a key of its own, adopted by the call
    await store.call_notes.annotate(consultant, "1772442000.1", "referred", PENDING)
    pending = await store.db.fetchone("SELECT key_id, conversation_id FROM call_notes WHERE linkedid = '1772442000.1'")
    assert pending["conversation_id"] is None and await _key_row(store, pending["key_id"]) == {"conversation_id": 0}
    early, _ = await maker.call(OLD)
    async with store.db.write() as tx:
        await tx.execute("UPDATE conversations SET pbx_linkedid = '1772442000.1' WHERE id = ?", (early,))
    assert await store.call_notes.link() == 1
    linked = await store.call_notes.of_conversation(early)
    assert linked is not None and linked.note == PENDING
    assert await _key_row(store, pending["key_id"]) == {"conversation_id": early}  # adopted, not re-sealed
    call_key = (await store.db.fetchone("SELECT key_id FROM conversations WHERE id = ?", (early,)))["key_id"]
    assert bytes(call_key) != bytes(pending["key_id"])
    # a note on a call whose record is there already: the call's own key
    later, _ = await maker.call(OLD)
    async with store.db.write() as tx:
        await tx.execute("UPDATE conversations SET pbx_linkedid = '1772442999.7' WHERE id = ?", (later,))
    assert (await store.call_notes.annotate(consultant, "1772442999.7", "information_given", LINKED)).note == LINKED
    assert (
        await store.db.fetchone(
            "SELECT n.key_id = c.key_id AS same FROM call_notes n JOIN conversations c "
            "ON c.id = n.conversation_id WHERE n.linkedid = '1772442999.7'"
        )
    )["same"]
    # a note whose call record never came, past its own purge date
    await store.call_notes.annotate(consultant, "1772449999.9", "other", UNLINKED)
    unlinked_key = (await store.db.fetchone("SELECT key_id FROM call_notes WHERE linkedid = '1772449999.9'"))["key_id"]

    await store.chats.end_by_resident(chat)
    async with store.db.write() as tx:  # every one of them due for the purge
        await tx.execute("UPDATE conversations SET purge_after = ? WHERE id = ?", ("2026-01-01T00:00:00.000000Z", chat))
        await tx.execute(
            "UPDATE call_notes SET purge_after = ? WHERE linkedid = '1772449999.9'", ("2026-01-01T00:00:00.000000Z",)
        )
    markers = [m.encode() for m in (WHISPER, PENDING, LINKED, UNLINKED)]
    raw = _db_and_wal(settings)
    assert Path(f"{settings.db_path}-wal").stat().st_size > 0  # what was just written is in the WAL
    for marker in markers:  # neither the database file nor its WAL holds a byte of a note's text
        assert marker not in raw, marker
        assert marker[:12] not in raw, marker

    env = {**os.environ, "CIM_DATA_DIR": str(settings.data_dir), "CIM_PASSWORD_PROFILE": "fast"}
    made = _cim(env, "backup", str(tmp_path / "bk"), "--json")
    assert made.returncode == 0, made.stderr
    backup = tmp_path / "bk"
    assert json.loads((backup / "backup.json").read_text())["keys"]["unsealed_notes"] == 0
    raw = raw_bytes(backup)
    for marker in markers:
        assert marker not in raw and marker[:12] not in raw, marker

    designated = (await make_staff("maria", "designated")).as_actor()
    before = await Store.open(restored_settings(settings, backup, tmp_path / "restored-before"), clock=clock)
    try:  # readable while the keys live: the test tells readable from destroyed
        transcript = await before.archive.open_transcript(designated, chat, "kontrola kopii")
        assert [line.text for line in transcript.lines if line.sender == "note"] == [WHISPER]
        assert [(await before.call_notes.get(i)).note for i in ("1772442000.1", "1772442999.7", "1772449999.9")] == [
            PENDING,
            LINKED,
            UNLINKED,
        ]
    finally:
        await before.close()

    result = await store.retention.purge(SYSTEM)
    assert (result.chats, result.calls) == (1, 2) and result.remnants_cleared
    held = {bytes(r["key_id"]) for r in await store.db.fetchall("SELECT key_id FROM keyring.data_keys")}
    assert not held & {bytes(pending["key_id"]), bytes(call_key), bytes(unlinked_key)}
    shredded = {bytes(r["key_id"]) for r in await store.db.fetchall("SELECT key_id FROM keyring.shredded")}
    assert {bytes(pending["key_id"]), bytes(call_key), bytes(unlinked_key)} <= shredded
    assert (await store.db.fetchone("SELECT count(*) AS n FROM call_notes"))["n"] == 0

    after = await Store.open(restored_settings(settings, backup, tmp_path / "restored-after"), clock=clock)
    try:
        assert [n.text for n in await after.supervision.notes(chat)] == [DELETED_MARK]
        assert [(await after.call_notes.get(i)).note for i in ("1772442000.1", "1772442999.7", "1772449999.9")] == [
            DELETED_MARK
        ] * 3
        with pytest.raises(ContentDeleted):
            await after.archive.open_transcript(designated, chat, "po przywróceniu")
        fsck = await after.retention.fsck(SYSTEM)
        assert {p.kind for p in fsck.problems} == {"deleted_content"}
        assert any("the note on call 1772449999.9" in p.detail for p in fsck.problems)
        with pytest.raises(ContentDeleted):  # nothing new is written in the clear under a destroyed key
            await after.call_notes.annotate(consultant, "1772442999.7", "other", "nowa")
    finally:
        await after.close()
    assert not any(m in raw_bytes(tmp_path / "restored-after") for m in markers)


@pytest.mark.ordinance("GDPR 32")
async def test_hostile_notes_are_handled_as_before_and_stay_sealed(store, settings, make_staff):
    consultant, boss, chat = await _live_chat(store, make_staff)
    cleaned = await store.supervision.whisper(boss, chat, "Uwaga\x00\x1b[31m-czerwony\x07 tekst\u200b", "h1")
    assert cleaned.note.text == "Uwaga[31m-czerwony tekst\u200b"  # control characters removed, the rest verbatim
    assert [n.text for n in await store.supervision.notes(chat)] == [cleaned.note.text]
    limit = settings.max_message_length
    with pytest.raises(MessageTooLong):
        await store.supervision.whisper(boss, chat, "x" * (limit + 1), "h2")
    with pytest.raises(InvalidInput):
        await store.supervision.whisper(boss, chat, "zły \ud800 znak", "h3")
    assert (await store.supervision.whisper(boss, chat, "y" * limit, "h4")).note.text == "y" * limit
    again = await store.supervision.whisper(boss, chat, "inna treść", "h1")  # a repeated client_msg_id
    assert again.new is False and again.note.text == cleaned.note.text
    rows = await store.db.fetchall("SELECT typeof(text) AS t FROM chat_staff_notes")
    assert [r["t"] for r in rows] == ["blob", "blob"]

    note = await store.call_notes.annotate(consultant, "1772442000.5", "other", "Pan\x1b]0;tytuł\x07 Kowalski\r\nul. X")
    assert note.note == "Pan]0;tytuł Kowalski\nul. X"
    with pytest.raises(MessageTooLong):
        await store.call_notes.annotate(consultant, "1772442000.5", "other", "z" * 501)
    assert (await store.call_notes.get("1772442000.5")).note == note.note  # the refused change left it as it was
    assert (await store.call_notes.annotate(consultant, "1772442000.5", "referred", "")).note == ""
    assert (await store.call_notes.annotate(consultant, "1772442000.5", "referred", "ż" * 500)).note == "ż" * 500
    assert (await store.db.fetchone("SELECT typeof(note) AS t FROM call_notes"))["t"] == "blob"
    for linkedid in ("1772442000.\ud800", "9" * 65, " "):  # the call's name is bound into the seal
        with pytest.raises(InvalidInput):
            await store.call_notes.annotate(consultant, linkedid, "other", "x")
    assert (await store.db.fetchone("SELECT count(*) AS n FROM call_notes"))["n"] == 1
    raw = _db_and_wal(settings)
    assert b"czerwony" not in raw and b"Kowalski" not in raw


@pytest.mark.ordinance("GDPR 32")
async def test_fsck_reports_a_tampered_or_moved_note_and_a_call_notes_missing_key(store, settings, make_staff):
    consultant, boss, chat = await _live_chat(store, make_staff)
    first = (await store.supervision.whisper(boss, chat, "pierwsza notatka", "t1")).note
    second = (await store.supervision.whisper(boss, chat, "druga notatka", "t2")).note
    await store.call_notes.annotate(consultant, "1772442000.1", "other", "notatka rozmowy")
    await store.call_notes.annotate(consultant, "1772442000.2", "other", "druga rozmowa")
    assert (await store.retention.fsck(SYSTEM)).ok
    async with store.db.write() as tx:  # a whisper moved onto another: the seal names the note
        blob = (await (await tx.execute("SELECT text FROM chat_staff_notes WHERE id = ?", (first.id,))).fetchone())[0]
        await tx.execute("UPDATE chat_staff_notes SET text = ? WHERE id = ?", (blob, second.id))
        note = bytearray(
            (await (await tx.execute("SELECT note FROM call_notes WHERE linkedid = '1772442000.1'")).fetchone())[0]
        )
        note[-1] ^= 1  # one bit of a call note
        await tx.execute("UPDATE call_notes SET note = ? WHERE linkedid = '1772442000.1'", (bytes(note),))
    key_id = (await store.db.fetchone("SELECT key_id FROM call_notes WHERE linkedid = '1772442000.2'"))["key_id"]
    ring = sqlite3.connect(settings.keyring_path)  # a note's key lost from the key ring (not by a purge)
    with ring:
        ring.execute("DELETE FROM data_keys WHERE key_id = ?", (key_id,))
    ring.close()
    report = await store.retention.fsck(SYSTEM)
    assert sorted(p.kind for p in report.problems) == ["missing_key", "tampered_note", "tampered_note"]
    assert any("1772442000.2" in p.detail for p in report.problems if p.kind == "missing_key")
    with pytest.raises(InvalidInput):  # read through the store, a tampered note is refused, never shown wrong
        await store.supervision.notes(chat)


@pytest.mark.ordinance("§6")
def test_encrypt_existing_seals_plain_notes_and_a_killed_run_continues(tmp_path):
    data = tmp_path / "data"
    env = {**os.environ, "CIM_DATA_DIR": str(data), "CIM_PASSWORD_PROFILE": "fast"}
    assert _cim(env, "init").returncode == 0
    marker = "STARA-NOTATKA-sprzed-szyfrowania"

    async def seed() -> tuple[int, list[int]]:
        st = await Store.open(Settings.load(data, env={}))
        try:
            maker = RetentionData(st)
            now = datetime.now(timezone.utc)  # the subprocesses run on the real clock: not due for the purge
            chat = await maker.chat(now, texts=("sealed already",))
            calls = [(await maker.call(now))[0] for _ in range(2)]
            iso = now.strftime("%Y-%m-%dT%H:%M:%S.000000Z")
            async with (
                st.db.write() as tx
            ):  # as a version before sealed notes wrote them (migration 1400's prior state)
                await tx.executemany(
                    "INSERT INTO chat_staff_notes(conversation_id, after_seq, text, at) VALUES (?, 1, ?, ?)",
                    [(chat, f"{marker} szept {i}", iso) for i in range(25)],
                )
                await tx.executemany(
                    "INSERT INTO call_notes(linkedid, conversation_id, category, note, created_at, updated_at, "
                    "purge_after) VALUES (?, ?, 'other', ?, ?, ?, ?)",
                    [
                        (
                            f"1772442000.{i}",
                            calls[i % 2] if i < 10 else None,
                            f"{marker} rozmowa {i}" if i != 3 else "",
                            iso,
                            iso,
                            "2099-01-01T00:00:00.000000Z",
                        )
                        for i in range(15)
                    ],
                )
            return chat, calls
        finally:
            await st.close()

    chat, calls = asyncio.run(seed())
    assert marker.encode() in raw_bytes(data)  # plaintext, as it was
    fsck = json.loads(_cim(env, "fsck", "--json").stdout)
    assert [p for p in fsck["problems"] if p["kind"] == "unsealed_notes"], fsck
    assert json.loads(_cim(env, "keys", "status", "--json").stdout)["unsealed_notes"] == 39

    pause = tmp_path / "paused"
    proc = subprocess.Popen(
        [sys.executable, "-m", "cim", "keys", "encrypt-existing", "--batch", "10"],
        env={**env, PAUSE_ENV: str(pause)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        for _ in range(600):
            if pause.exists() or proc.poll() is not None:
                break
            time.sleep(0.05)
        assert pause.exists(), proc.stderr.read().decode() if proc.poll() is not None else "never paused"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    conn = sqlite3.connect(f"file:{data}/cim.sqlite3?mode=ro", uri=True)
    try:
        whispers = dict(conn.execute("SELECT typeof(text), count(*) FROM chat_staff_notes GROUP BY 1").fetchall())
        notes = dict(conn.execute("SELECT typeof(note), count(*) FROM call_notes GROUP BY 1").fetchall())
    finally:
        conn.close()
    assert whispers == {"blob": 10, "text": 15} and notes == {"text": 15}  # killed after its first batch

    again = _cim(env, "keys", "encrypt-existing", "--json")
    assert again.returncode == 0, again.stderr
    result = json.loads(again.stdout)
    assert result["notes_sealed"] == 29 and result["lines_sealed"] == 0
    assert "staff notes: 29 of 29" in again.stderr  # progress
    fsck = _cim(env, "fsck", "--json")
    assert fsck.returncode == 0, fsck.stdout
    assert json.loads(_cim(env, "keys", "status", "--json").stdout)["unsealed_notes"] == 0
    assert json.loads(_cim(env, "keys", "encrypt-existing", "--json").stdout)["notes_sealed"] == 0  # nothing left
    assert _cim(env, "purge").returncode == 0  # nothing due; scrubs the WAL of the plaintext pages
    assert marker.encode() not in raw_bytes(data)

    async def check() -> tuple[list[str], dict[str, str], dict[str, object]]:
        st = await Store.open(Settings.load(data, env={}))
        try:
            texts = [n.text for n in await st.supervision.notes(chat)]
            read = {i: (await st.call_notes.get(f"1772442000.{i}")).note for i in (0, 1, 3, 12)}
            keys = {
                r["linkedid"]: r["conversation_id"]
                for r in await st.db.fetchall(
                    "SELECT n.linkedid, k.conversation_id FROM call_notes n JOIN keyring.data_keys k ON k.key_id = n.key_id"
                )
            }
            return texts, read, keys
        finally:
            await st.close()

    texts, read, keys = asyncio.run(check())
    assert texts == [f"{marker} szept {i}" for i in range(25)]
    assert read == {0: f"{marker} rozmowa 0", 1: f"{marker} rozmowa 1", 3: "", 12: f"{marker} rozmowa 12"}
    # linked notes took their call's key; one without a call record a key of its own, waiting for the call
    assert keys["1772442000.0"] == calls[0] and keys["1772442000.1"] == calls[1] and keys["1772442000.12"] == 0
