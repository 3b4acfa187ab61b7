"""Crypto-shredding (store/keys.py): sealed transcripts and recordings, the purge destroying keys, backups
that become unreadable for purged conversations, fsck, the resumable migration, hostile key files."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from store import Store
from store.archive import SearchFilters
from store.errors import CimError, ConfigError, NotFound
from store.keys import DELETED_MARK, ContentDeleted, open_plain
from store.models import Actor
from store.sealing import PAUSE_ENV
from store.settings import Settings
from tests.fixtures.retention import RetentionData

SYSTEM = Actor.system("tests")
OLD = datetime(2025, 8, 1, 9, 0, tzinfo=timezone.utc)  # past its purge date on the fixture clock
RECENT = datetime(2026, 2, 20, 9, 0, tzinfo=timezone.utc)


def raw_bytes(folder: Path) -> bytes:
    """Every byte of every file under `folder` (database, -wal, -shm, recordings, manifest)."""
    return b"".join(p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file())


def restored_settings(settings: Settings, backup: Path, into: Path) -> Settings:
    """A backup copied into a fresh data directory, run with the live key ring and master key (a restore)."""
    shutil.copytree(backup, into)
    os.chmod(into, 0o700)
    return Settings.load(
        into,
        env={},
        password_profile="fast",
        opening_hours="always",
        keyring_file=str(settings.keyring_path),
        master_key_file=str(settings.master_key_path),
        audit_key_file=str(settings.audit_key_path),
        audit_anchors_file=str(settings.audit_anchors_path),
    )


async def designated(store: Store, make_staff) -> Actor:
    return (await make_staff("maria", "designated")).as_actor()


@pytest.mark.ordinance("§6")
@pytest.mark.ordinance("GDPR 5(1)(e)")
async def test_a_backup_made_before_the_purge_yields_no_readable_byte_after_it(
    store, settings, clock, tmp_path, make_staff
):
    maker = RetentionData(store)
    marker = "TAJNE-PESEL-85010112345-rozmowa"
    chat = await maker.chat(OLD, texts=(marker, "Dzień dobry"))
    call, wav = await maker.call(OLD)
    kept = await maker.chat(RECENT, texts=("ZOSTAJE-nowa-rozmowa",))
    with open_plain(wav) as fh:
        pcm = fh.read()[44 : 44 + 64]  # a known stretch of the recording's samples (a 440 Hz tone)
    assert len(pcm) == 64 and pcm != bytes(64)
    actor = await designated(store, make_staff)

    backup = tmp_path / "bk"
    await store.retention.backup(SYSTEM, backup)
    raw = raw_bytes(backup)
    # sealed at rest: neither the text nor the samples are in the copy's bytes, not even before the purge
    assert marker.encode() not in raw and pcm not in raw and b"ZOSTAJE" not in raw

    before = restored_settings(settings, backup, tmp_path / "restored-before")
    copy = await Store.open(before, clock=clock)
    try:  # the copy is readable while the key lives: the test can tell readable from destroyed
        transcript = await copy.archive.open_transcript(actor, chat, "kontrola kopii")
        assert transcript.lines[0].text == marker
    finally:
        await copy.close()

    assert (await store.db.fetchone("SELECT count(*) AS n FROM message_words WHERE conversation_id = ?", (chat,)))[
        "n"
    ] > 0  # the blind index of its residents' words
    wrapped = [
        bytes(r["wrapped"])
        for r in await store.db.fetchall(
            "SELECT k.wrapped FROM keyring.data_keys k JOIN conversations c ON c.key_id = k.key_id WHERE c.id IN (?, ?)",
            (chat, call),
        )
    ]
    assert len(wrapped) == 2
    result = await store.retention.purge(SYSTEM)
    assert result.chats == 1 and result.calls == 1 and result.remnants_cleared
    ring = b"".join(p.read_bytes() for p in settings.keyring_path.parent.glob("keyring.sqlite3*"))
    for w in wrapped:  # destroyed, not merely unlinked: no page of the key ring or its WAL keeps it
        assert w not in ring and w[12:28] not in ring
    assert (await store.db.fetchone("SELECT count(*) AS n FROM keyring.shredded"))["n"] == 2
    assert (
        await store.db.fetchone(
            "SELECT count(*) AS n FROM keyring.data_keys k JOIN keyring.shredded s ON s.key_id = k.key_id"
        )
    )["n"] == 0  # the keys themselves are gone
    assert (await store.db.fetchone("SELECT count(*) AS n FROM message_words WHERE conversation_id = ?", (chat,)))[
        "n"
    ] == 0

    after = restored_settings(settings, backup, tmp_path / "restored-after")
    restored = await Store.open(after, clock=clock)
    try:
        page = await restored.archive.search(actor, SearchFilters())
        shown = {s.id: s.deleted for s in page.items}
        assert shown[chat] and shown[call] and not shown[kept]
        with pytest.raises(ContentDeleted, match="deleted \\(§6\\)"):
            await restored.archive.open_transcript(actor, chat, "po przywróceniu")
        with pytest.raises(ContentDeleted, match="deleted \\(§6\\)"):
            await restored.archive.open_recording(actor, call, "po przywróceniu")
        assert (await restored.archive.open_transcript(actor, kept, "po przywróceniu")).lines[
            0
        ].text == "ZOSTAJE-nowa-rozmowa"
        # every reader of the store refuses or marks it; none shows a byte of it
        rows = await restored.db.fetchall("SELECT seq, text FROM messages WHERE conversation_id = ?", (chat,))
        assert await restored.keys.texts(chat, rows, deleted=DELETED_MARK) == [DELETED_MARK, DELETED_MARK]
        fsck = await restored.retention.fsck(SYSTEM)
        assert {p.kind for p in fsck.problems} == {"deleted_content"}
        refused = await restored.db.fetchall(
            "SELECT outcome, details FROM audit WHERE action = 'archive.open_transcript' AND outcome = 'refused'"
        )
        assert refused and json.loads(refused[0]["details"])["reason"] == "deleted"
    finally:
        await restored.close()
    # the restored copy's sealed recording cannot be opened by hand either: its key is gone
    rel = next((tmp_path / "restored-after" / "recordings").rglob("*.wav"))
    with pytest.raises(ContentDeleted):
        open_plain(rel)


@pytest.mark.ordinance("GDPR 32")
async def test_new_chat_lines_never_reach_the_database_file_or_wal_in_plaintext(store, settings, make_staff):
    consultant = (await make_staff("kasia", "consultant")).as_actor()
    notice = await store.notices.current("chat", "pl")
    opened = await store.chats.open(notice.id, "pl")
    chat = opened.chat.id
    marker = "Mój-adres-ul.Tajna-7-m.3"
    await store.chats.post_resident(chat, marker, "c1")
    await store.chats.accept(consultant, chat)
    await store.chats.post_consultant(consultant, chat, "Odpowiedź-KONSULTANTA-xyz")
    texts = [m.text for m in await store.chats.history(chat)]
    assert marker in texts and "Odpowiedź-KONSULTANTA-xyz" in texts
    wal = Path(f"{settings.db_path}-wal")
    raw = settings.db_path.read_bytes() + (wal.read_bytes() if wal.exists() else b"")
    for plain in (marker, "Odpowiedź-KONSULTANTA-xyz", "Połączono z konsultantem"):
        assert plain.encode() not in raw, plain
    assert wal.exists() and wal.stat().st_size > 0  # the lines were in the WAL when it was read
    # the key ring holds the key wrapped, never the raw key; nor does the data directory hold any key file
    assert not any(p.name.endswith(".key") and "master" in p.name for p in settings.data_dir.rglob("*"))
    assert settings.master_key_path.parent != settings.data_dir


async def test_the_group_commit_seals_a_batch_and_a_closed_chat_indexes_residents_words(store):
    notice = await store.notices.current("chat", "pl")
    chats = [(await store.chats.open(notice.id, "pl")).chat.id for _ in range(5)]
    await asyncio.gather(
        *(store.chats.post_resident(c, f"Nazywam się Józef{i} Ślązak", f"m{i}") for i, c in enumerate(chats))
    )
    rows = await store.db.fetchall("SELECT typeof(text) AS t FROM messages")
    assert {r["t"] for r in rows} == {"blob"}
    assert (await store.db.fetchone("SELECT count(*) AS n FROM message_words"))["n"] == 0  # not on the relay path
    await store.chats.end_by_resident(chats[2])
    key = await store.keys.read_key(chats[2])
    tokens = {
        bytes(r["token"])
        for r in await store.db.fetchall("SELECT token FROM message_words WHERE conversation_id = ?", (chats[2],))
    }
    assert key.token("józef2") in tokens and key.token("ślązak") in tokens and key.token("józef1") not in tokens


@pytest.mark.ordinance("GDPR 32")
async def test_fsck_reports_a_missing_key_and_a_tampered_line(store, settings):
    maker = RetentionData(store)
    chat = await maker.chat(RECENT, texts=("pierwsza", "druga"))
    other = await maker.chat(RECENT, texts=("trzecia",))
    assert (await store.retention.fsck(SYSTEM)).ok
    async with store.db.write() as tx:  # a line changed behind CIM's back: one bit
        row = await (
            await tx.execute("SELECT id, text FROM messages WHERE conversation_id = ? AND seq = 2", (chat,))
        ).fetchone()
        blob = bytearray(row["text"])
        blob[-1] ^= 1
        await tx.execute("UPDATE messages SET text = ? WHERE id = ?", (bytes(blob), row["id"]))
    key_id = (await store.db.fetchone("SELECT key_id FROM conversations WHERE id = ?", (other,)))["key_id"]
    keyring = sqlite3.connect(settings.keyring_path)  # a key lost from the key ring (not by a purge)
    with keyring:
        keyring.execute("DELETE FROM data_keys WHERE key_id = ?", (key_id,))
    keyring.close()
    report = await store.retention.fsck(SYSTEM)
    kinds = sorted(p.kind for p in report.problems)
    assert kinds == ["missing_key", "tampered_line"]
    assert any(f"conversation {other}" in p.detail for p in report.problems if p.kind == "missing_key")
    assert report.as_json()["lines_checked"] == 2


def _cim(env: dict, *args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cim", *args], env=env, capture_output=True, text=True, **kwargs)


@pytest.mark.ordinance("§6")
def test_the_migration_seals_existing_data_in_place_and_a_killed_run_continues(tmp_path):
    data = tmp_path / "data"
    env = {**os.environ, "CIM_DATA_DIR": str(data), "CIM_PASSWORD_PROFILE": "fast"}
    assert _cim(env, "init").returncode == 0
    marker = "STARE-DANE-sprzed-szyfrowania"

    async def seed() -> tuple[list[int], Path]:
        st = await Store.open(Settings.load(data, env={}))
        try:
            maker = RetentionData(st)
            maker.seal = False  # as a version before crypto-shredding left them
            now = datetime.now(timezone.utc)  # the subprocesses run on the real clock: not due for the purge
            chats = [await maker.chat(now, texts=tuple(f"{marker} {i}-{j}" for j in range(10))) for i in range(30)]
            _, wav = await maker.call(now)
            return chats, wav
        finally:
            await st.close()

    chats, wav = asyncio.run(seed())
    pcm = wav.read_bytes()[44:108]
    assert marker.encode() in raw_bytes(data)  # plaintext, as it was
    fsck = json.loads(_cim(env, "fsck", "--json").stdout)
    assert {"unsealed_lines", "unsealed_file"} <= {p["kind"] for p in fsck["problems"]}

    pause = tmp_path / "paused"
    proc = subprocess.Popen(
        [sys.executable, "-m", "cim", "keys", "encrypt-existing", "--batch", "40"],
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
        kinds = dict(conn.execute("SELECT typeof(text), count(*) FROM messages GROUP BY 1").fetchall())
    finally:
        conn.close()
    assert kinds == {"blob": 40, "text": 260}  # killed after its first batch: part sealed, nothing lost

    again = _cim(env, "keys", "encrypt-existing", "--json")
    assert again.returncode == 0, again.stderr
    result = json.loads(again.stdout)
    assert result["lines_sealed"] == 260 and result["files_sealed"] == 1 and result["rows_per_second"] > 0
    assert "transcript lines: 260 of 260" in again.stderr  # progress
    fsck = _cim(env, "fsck", "--json")
    assert fsck.returncode == 0, fsck.stdout
    assert json.loads(fsck.stdout)["lines_checked"] == 300
    assert _cim(env, "purge").returncode == 0  # nothing due; scrubs the WAL of the plaintext pages
    raw = raw_bytes(data)
    assert marker.encode() not in raw and pcm not in raw

    async def check() -> tuple[str, set[int]]:
        st = await Store.open(Settings.load(data, env={}))
        try:
            rows = await st.db.fetchall(
                "SELECT seq, text FROM messages WHERE conversation_id = ? ORDER BY seq", (chats[7],)
            )
            first = (await st.keys.texts(chats[7], rows))[0]
            return first, await st.requests._blind_match(chats, f"{marker.lower()} 7-3")
        finally:
            await st.close()

    first, matched = asyncio.run(check())
    assert first == f"{marker} 7-0" and matched == {chats[7]}  # the blind index was built as it sealed
    status = json.loads(_cim(env, "keys", "status", "--json").stdout)
    assert status["unsealed_lines"] == 0 and status["keys_held"] == 31 and 'key":' not in json.dumps(status)


@pytest.mark.ordinance("GDPR 32")
@pytest.mark.parametrize("damage", ["wrong", "missing", "open_to_others", "malformed"])
async def test_a_bad_master_key_file_is_refused_at_start_and_nothing_is_lost(settings, clock, damage, tmp_path):
    st = await Store.open(settings, create=True, clock=clock)
    try:
        chat = await RetentionData(st).chat(RECENT, texts=("nic nie ginie",))
    finally:
        await st.close()
    key_file = settings.master_key_path
    saved = key_file.read_bytes()
    if damage == "wrong":
        other = tmp_path / "other-keys" / "master.key"
        other_settings = Settings.load(
            tmp_path / "other",
            env={},
            master_key_file=str(other),
            keyring_file=str(tmp_path / "other-keys" / "ring.sqlite3"),
        )
        await (await Store.open(other_settings, create=True, clock=clock)).close()
        key_file.write_bytes(other.read_bytes())
    elif damage == "missing":
        key_file.unlink()
    elif damage == "open_to_others":
        os.chmod(key_file, 0o644)
    else:
        key_file.write_text("{not json", encoding="utf-8")
    db_before = settings.db_path.read_bytes()
    with pytest.raises(ConfigError) as refused:
        await Store.open(settings, clock=clock)
    message = refused.value.message
    assert (
        str(key_file) in message
        and {
            "wrong": "not the key of this key ring",
            "missing": "escrow",
            "open_to_others": "chmod 600",
            "malformed": "not a CIM master key",
        }[damage]
        in message
    )
    assert settings.db_path.read_bytes() == db_before  # nothing written
    if damage == "missing":  # no new key was made in its place
        assert not key_file.exists()
    env = {**os.environ, "CIM_DATA_DIR": str(settings.data_dir)}
    cli = _cim(env, "fsck")
    assert cli.returncode == 1 and cli.stderr.startswith("cim: ") and "Traceback" not in cli.stderr
    key_file.write_bytes(saved)  # the escrow copy put back: everything reads again
    os.chmod(key_file, 0o600)
    st = await Store.open(settings, clock=clock)
    try:
        rows = await st.db.fetchall("SELECT seq, text FROM messages WHERE conversation_id = ?", (chat,))
        assert await st.keys.texts(chat, rows) == ["nic nie ginie"]
    finally:
        await st.close()


@pytest.mark.parametrize("damage", ["garbage", "lost"])
async def test_a_damaged_or_lost_key_ring_is_refused_at_start(settings, clock, damage):
    st = await Store.open(settings, create=True, clock=clock)
    try:
        await RetentionData(st).chat(RECENT, texts=("pęk kluczy",))
    finally:
        await st.close()
    ring = settings.keyring_path
    for extra in (Path(f"{ring}-wal"), Path(f"{ring}-shm")):
        extra.unlink(missing_ok=True)
    if damage == "garbage":
        ring.write_bytes(b"this is not a key ring" * 100)
    else:
        ring.unlink()
    db_before = settings.db_path.read_bytes()
    with pytest.raises(CimError) as refused:
        await Store.open(settings, clock=clock)
    assert str(ring) in refused.value.message
    assert ("not a usable" if damage == "garbage" else "put the key ring back") in refused.value.message
    assert settings.db_path.read_bytes() == db_before


async def test_the_master_key_can_be_rotated_and_backups_name_the_generation(store, settings, tmp_path):
    chat = await RetentionData(store).chat(RECENT, texts=("przed rotacją",))
    old_id = store.keys.describe()["master_key_id"]
    generation, count = await store.keys.rotate_master()
    assert (generation, count) == (2, 1)
    assert await store.keys.retire_master(generation) == [1]
    assert sorted(json.loads(settings.master_key_path.read_text())["keys"][0].keys()) == [
        "created_at",
        "generation",
        "key",
    ]
    rows = await store.db.fetchall("SELECT seq, text FROM messages WHERE conversation_id = ?", (chat,))
    assert await store.keys.texts(chat, rows) == ["przed rotacją"]
    result = await store.retention.backup(SYSTEM, tmp_path / "bk")
    assert result.keys["master_key_generation"] == 2 and result.keys["master_key_id"] != old_id
    assert (settings.master_key_path.stat().st_mode & 0o077) == 0


async def test_an_art15_export_and_the_listening_path_read_sealed_recordings(store, tmp_path):
    maker = RetentionData(store)
    call, wav = await maker.call(RECENT)
    assert wav.read_bytes()[:8] == b"CIMSEAL1"
    from store.audio import level_envelope, probe_file

    info = probe_file(wav)
    assert info.format == "wav-pcm" and info.duration_s == pytest.approx(0.2)
    assert max(level_envelope(wav, 10)) > 0.1
    with open_plain(wav) as fh:  # a range read in the middle decrypts one segment
        fh.seek(1000)
        middle = fh.read(100)
    with open_plain(wav) as fh:
        assert fh.read()[1000:1100] == middle


async def test_opening_a_missing_conversation_is_still_not_found(store, make_staff):
    actor = await designated(store, make_staff)
    with pytest.raises(NotFound):
        await store.archive.open_transcript(actor, 424242, "kontrola")


async def test_key_material_never_shows_in_a_repr_a_log_or_a_backup(store, settings, tmp_path, caplog):
    chat = await RetentionData(store).chat(RECENT, texts=("klucz",))
    key = await store.keys.read_key(chat)
    master = store.keys.master
    raw_master = master.keys[master.current]
    assert (
        raw_master.hex() not in repr(master)
        and "bytes" not in repr(key)
        and repr(key) == f"DataKey(conversation {chat})"
    )
    await store.retention.backup(SYSTEM, tmp_path / "bk")
    await store.retention.fsck(SYSTEM)
    backup = raw_bytes(tmp_path / "bk")
    assert raw_master not in backup and raw_master.hex().encode() not in backup
    wrapped = (await store.db.fetchone("SELECT wrapped FROM keyring.data_keys"))["wrapped"]
    assert bytes(wrapped)[12:44] not in backup  # not even the wrapped key: the key ring stays outside
    audit = "".join(str(dict(r)) for r in await store.db.fetchall("SELECT * FROM audit"))
    assert raw_master.hex() not in audit and "wrapped" not in audit
    assert raw_master.hex() not in caplog.text


@pytest.mark.ordinance("§6")
async def test_keys_of_conversations_a_restore_lost_are_destroyed_once_past_the_cutoff(store, settings, clock):
    """A restore of an older backup loses later conversations from the database, not their keys: the
    purge destroys such orphan keys once they are older than its cutoff, so newer backups die too."""
    maker = RetentionData(store)
    lost = await maker.chat(RECENT, texts=("w nowszej kopii",))
    kept = await maker.chat(RECENT, texts=("zostaje",))
    key_id = (await store.db.fetchone("SELECT key_id FROM conversations WHERE id = ?", (lost,)))["key_id"]
    async with store.db.write() as tx:  # as if the database were restored from before `lost` existed
        await tx.execute("DELETE FROM messages WHERE conversation_id = ?", (lost,))
        await tx.execute("DELETE FROM message_words WHERE conversation_id = ?", (lost,))
        await tx.execute("DELETE FROM conversations WHERE id = ?", (lost,))
    young = await store.retention.purge(SYSTEM)  # younger than a retention period: kept for now
    assert young.remnants_cleared
    assert (await store.db.fetchone("SELECT count(*) AS n FROM keyring.data_keys WHERE key_id = ?", (key_id,)))["n"]
    async with store.db.write() as tx:  # over six months later (the key's age is what counts)
        await tx.execute("UPDATE keyring.data_keys SET created_at = '2025-08-30T00:00:00.000000Z'")
        await tx.execute("UPDATE conversations SET purge_after = '2030-01-01T00:00:00.000000Z'")
    await store.retention.purge(SYSTEM)
    assert not (await store.db.fetchone("SELECT count(*) AS n FROM keyring.data_keys WHERE key_id = ?", (key_id,)))["n"]
    assert (await store.db.fetchone("SELECT count(*) AS n FROM keyring.shredded WHERE key_id = ?", (key_id,)))["n"]
    rows = await store.db.fetchall("SELECT seq, text FROM messages WHERE conversation_id = ?", (kept,))
    assert await store.keys.texts(kept, rows) == ["zostaje"]  # a key whose conversation exists is never touched
    details = json.loads(
        (
            await store.db.fetchone(
                "SELECT details FROM audit WHERE action = 'retention.purge' ORDER BY id DESC LIMIT 1"
            )
        )["details"]
    )
    assert details["orphan_keys"] == 1


@pytest.mark.ordinance("GDPR 32")
async def test_an_offline_message_is_sealed_at_rest_and_read_through_the_store(store, settings, make_staff):
    consultant = (await make_staff("ola", "consultant")).as_actor()
    notice = await store.notices.current("chat", "pl")
    body = "Proszę o kontakt w sprawie decyzji 123-TAJNE"
    await store.resident_desk.leave_message(notice.id, "pl", "Jan Tajny", "jan.tajny@example.pl", body)
    (message,) = await store.resident_desk.offline_messages(consultant)
    assert message.text == body
    assert message.conversation_id in await store.requests._blind_match([message.conversation_id], "decyzji")
    copy = await store.resident_desk.transcript_text(message.conversation_id)
    assert body in copy
    await store.db.checkpoint_truncate()
    wal = Path(f"{settings.db_path}-wal")
    raw = settings.db_path.read_bytes() + (wal.read_bytes() if wal.exists() else b"")
    assert body.encode() not in raw and b"123-TAJNE" not in raw
