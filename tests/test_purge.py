"""The §6 purge: permissions, concurrency, holds, crash safety and no readable remnant."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from datetime import date, datetime, timezone
from pathlib import Path

import pytest

from store import Store
from store.clock import Duration
from store.keys import plain_size
from store.errors import ClockJumped, Conflict, NotPermitted, StoreUnavailable
from store.models import Actor
from store.retention import PAUSE_AFTER_COMMIT_ENV

OLD = datetime(2025, 8, 31, 10, 0, tzinfo=timezone.utc)  # purge_after 2026-02-28: due at the fixture clock
RECENT = datetime(2026, 2, 1, 10, 0, tzinfo=timezone.utc)  # purge_after 2026-08-01: kept
SYSTEM = Actor.system("tests")


async def _count(store: Store, sql: str, params=()) -> int:
    row = await store.db.fetchone(sql, params)
    return row[0]


# ------------------------------------------------------------------ unhappy paths first


@pytest.mark.parametrize("roles", [("consultant",), ("designated",), ("boi_director",), ("dpo",), ("secretary",)])
async def test_purge_by_a_role_without_permission_is_refused_and_audited(store, make_staff, retention_data, roles):
    chat = await retention_data.chat(OLD)
    someone = (await make_staff(None, *roles)).as_actor()
    with pytest.raises(NotPermitted):
        await store.retention.purge(someone)
    assert await _count(store, "SELECT count(*) FROM conversations WHERE id = ?", (chat,)) == 1
    refused = await store.db.fetchone(
        "SELECT actor_name, outcome FROM audit WHERE action = 'retention.purge' ORDER BY id DESC LIMIT 1"
    )
    assert (refused["actor_name"], refused["outcome"]) == (someone.name, "refused")
    assert await _count(store, "SELECT count(*) FROM purge_runs") == 0


async def test_two_purges_at_once_one_refuses_with_conflict(store, retention_data):
    for _ in range(5):
        await retention_data.chat(OLD)
    results = await asyncio.gather(
        store.retention.purge(SYSTEM, batch_size=1), store.retention.purge(SYSTEM, batch_size=1), return_exceptions=True
    )
    conflicts = [r for r in results if isinstance(r, Conflict)]
    done = [r for r in results if not isinstance(r, BaseException)]
    assert len(conflicts) == 1 and len(done) == 1
    assert done[0].chats == 5


async def test_a_purge_in_another_process_makes_this_one_refuse(store, settings, clock, retention_data):
    """Two processes: the second store (another `cim purge`) holds the cross-process lock."""
    await retention_data.chat(OLD)
    from store.retention import _FileLock

    with _FileLock(settings.data_dir / "purge.lock"):
        with pytest.raises(Conflict, match="another purge is running"):
            await store.retention.purge(SYSTEM)
    assert (await store.retention.purge(SYSTEM)).chats == 1


async def test_read_only_recordings_folder_refuses_before_deleting_anything(store, retention_data, read_only_folder):
    call, path = await retention_data.call(OLD)
    chat = await retention_data.chat(OLD)
    read_only_folder(store.settings.recordings_dir)
    with pytest.raises(StoreUnavailable, match="not writable.*nothing was purged"):
        await store.retention.purge(SYSTEM)
    assert await _count(store, "SELECT count(*) FROM conversations WHERE id IN (?, ?)", (call, chat)) == 2
    assert path.exists()
    assert await _count(store, "SELECT count(*) FROM pending_unlinks") == 0
    assert (await store.retention.fsck(SYSTEM)).ok


async def test_folder_gone_read_only_mid_purge_leaves_rows_gone_and_files_pending(
    store, retention_data, read_only_folder
):
    """The top folder passes the probe, the month folder refuses: the store stays consistent, the next run finishes."""
    call, path = await retention_data.call(OLD)
    read_only_folder(path.parent)
    with pytest.raises(StoreUnavailable, match="refused a deletion"):
        await store.retention.purge(SYSTEM)
    assert await _count(store, "SELECT count(*) FROM conversations WHERE id = ?", (call,)) == 0
    assert await _count(store, "SELECT count(*) FROM pending_unlinks") == 1
    assert (await store.db.fetchone("SELECT status FROM purge_runs ORDER BY id DESC LIMIT 1"))["status"] == "failed"
    kinds = {p.kind for p in (await store.retention.fsck(SYSTEM)).problems}
    assert kinds == {"pending_unlink"}
    from tests.fixtures.retention import _immutable

    _immutable(path.parent, False)
    result = await store.retention.purge(SYSTEM)
    assert result.resumed_files == 1 and not path.exists()
    assert (await store.retention.fsck(SYSTEM)).ok


async def test_clock_that_jumped_back_refuses_the_purge(store, clock, retention_data):
    await retention_data.chat(OLD)
    await store.retention.purge(SYSTEM, dry_run=True)  # leaves an audit entry at "now"
    clock.advance(days=-3)
    with pytest.raises(ClockJumped, match="earlier than the last audit entry"):
        await store.retention.purge(SYSTEM)
    assert await _count(store, "SELECT count(*) FROM conversations") == 1


async def test_file_deleted_behind_cims_back_is_still_purged_cleanly(store, retention_data):
    call, path = await retention_data.call(OLD)
    path.unlink()
    assert [p.kind for p in (await store.retention.fsck(SYSTEM)).problems] == ["missing_file"]
    result = await store.retention.purge(SYSTEM)
    assert (result.calls, result.files) == (1, 1)
    assert (await store.retention.fsck(SYSTEM)).ok


# ------------------------------------------------------------------ what is purged and what is not


@pytest.mark.ordinance("§6")
def test_purge_after_is_six_calendar_months_clamped_to_month_end():
    six = Duration.parse("P6M")
    at = lambda y, m, d: datetime(y, m, d, 12, 0, tzinfo=timezone.utc)  # noqa: E731
    assert six.after(at(2025, 8, 31)) == at(2026, 2, 28)
    assert six.after(at(2027, 8, 31)) == at(2028, 2, 29)  # leap year
    assert six.after(at(2026, 8, 30)) == at(2027, 2, 28)
    assert six.after(at(2026, 3, 31)) == at(2026, 9, 30)
    assert six.after(at(2026, 1, 15)) == at(2026, 7, 15)
    assert six.after(at(2025, 12, 31)) == at(2026, 6, 30)
    assert Duration.parse("P3M").after(at(2026, 11, 30)) == at(2027, 2, 28)
    assert Duration.parse("PT0S").after(at(2026, 1, 1)) == at(2026, 1, 1)


@pytest.mark.ordinance("§6")
async def test_only_ended_conversations_past_purge_after_and_not_held_are_purged(
    store, clock, retention_data, make_staff
):
    manager = (await make_staff("kierownik", "cim_manager")).as_actor()
    due_chat = await retention_data.chat(OLD)
    due_call, due_file = await retention_data.call(OLD)
    recent_chat = await retention_data.chat(RECENT)
    recent_call, recent_file = await retention_data.call(RECENT)
    live_chat = await retention_data.chat(OLD, status="active")
    held_chat = await retention_data.chat(OLD)
    held_call, held_file = await retention_data.call(OLD)
    request_call, request_file = await retention_data.call(OLD)
    await retention_data.request(request_call, manager.staff_id, received=date(2026, 2, 20))
    await store.retention.add_hold(
        manager,
        [held_chat, held_call],
        legal_basis="art. 6 ust. 1 lit. c RODO",
        case_reference="SO-II.1/2026",
        review_on=date(2026, 6, 1),
    )

    preview = await store.retention.preview(manager)
    assert (preview.calls, preview.chats, preview.files, preview.held) == (1, 1, 1, 3)
    assert preview.bytes == plain_size(due_file)  # the recorded (plaintext) size
    reasons = {h.conversation_id: h.reasons for h in preview.held_items}
    assert "SO-II.1/2026" in reasons[held_chat][0]
    assert "open request" in reasons[request_call][0]

    progress = []
    result = await store.retention.purge(manager, progress=progress.append, batch_size=1)
    assert (result.calls, result.chats, result.files, result.held) == (1, 1, 1, 3)
    assert progress[0].done == 0 and progress[-1].done == progress[-1].total == 2
    remaining = {r[0] for r in await store.db.fetchall("SELECT id FROM conversations")}
    assert remaining == {recent_chat, recent_call, live_chat, held_chat, held_call, request_call}
    assert not due_file.exists()
    assert recent_file.exists() and held_file.exists() and request_file.exists()
    assert await _count(store, "SELECT count(*) FROM messages WHERE conversation_id = ?", (due_chat,)) == 0
    assert await _count(store, "SELECT count(*) FROM recordings WHERE conversation_id = ?", (due_call,)) == 0


@pytest.mark.ordinance("§6")
async def test_released_hold_lets_the_next_purge_delete(store, retention_data, make_staff):
    director = (await make_staff("dyrektor", "boi_director")).as_actor()
    chat = await retention_data.chat(OLD)
    (hold,) = await store.retention.add_hold(director, [chat], legal_basis="KPA art. 73", case_reference="C-7")
    assert (await store.retention.purge(SYSTEM)).chats == 0
    await store.retention.release_hold(director, hold.id)
    assert (await store.retention.purge(SYSTEM)).chats == 1
    assert await _count(store, "SELECT count(*) FROM holds") == 0  # the released hold went with its conversation


async def test_dry_run_changes_nothing_and_is_recorded(store, retention_data):
    await retention_data.chat(OLD)
    _, path = await retention_data.call(OLD)
    result = await store.retention.purge(SYSTEM, dry_run=True)
    assert result.as_json()["purged"] == {"calls": 1, "chats": 1, "files": 1, "bytes": plain_size(path)}
    assert result.dry_run and path.exists()
    assert await _count(store, "SELECT count(*) FROM conversations") == 2
    run = await store.db.fetchone("SELECT * FROM purge_runs")
    assert (run["dry_run"], run["status"], run["chats"]) == (1, "finished", 1)


@pytest.mark.ordinance("§6")
async def test_each_run_is_recorded_with_counts_in_purge_runs_and_the_audit_chain(store, retention_data):
    await retention_data.chat(OLD, texts=("PESEL 85010112345 mój",))
    _, path = await retention_data.call(OLD, number="+48600999888")
    size = plain_size(path)
    result = await store.retention.purge(SYSTEM)
    run = await store.db.fetchone("SELECT * FROM purge_runs WHERE id = ?", (result.run_id,))
    assert (run["status"], run["calls"], run["chats"], run["files"], run["bytes"], run["dry_run"]) == (
        "finished",
        1,
        1,
        1,
        size,
        0,
    )
    assert run["cutoff"] == "2026-03-02T09:00:00.000000Z"
    entry = await store.db.fetchone(
        "SELECT details FROM audit WHERE action = 'retention.purge' AND outcome = 'ok' ORDER BY id DESC LIMIT 1"
    )
    details = json.loads(entry["details"])
    assert (details["calls"], details["chats"], details["files"], details["bytes"]) == (1, 1, 1, size)
    every_audit_text = " ".join(r[0] for r in await store.db.fetchall("SELECT details FROM audit"))
    assert "85010112345" not in every_audit_text and "600999888" not in every_audit_text
    assert (await store.audit.verify()).ok


async def test_purged_ids_leave_a_tombstone_without_content(store, retention_data):
    chat = await retention_data.chat(OLD)
    await store.retention.purge(SYSTEM)
    row = await store.db.fetchone("SELECT * FROM purged_conversations WHERE id = ?", (chat,))
    assert set(row.keys()) == {"id", "purged_at", "purge_run"}


# ------------------------------------------------------------------ permanent means permanent


@pytest.mark.ordinance("§6")
async def test_purged_chat_text_is_not_in_the_raw_bytes_of_any_database_file(store, settings, retention_data):
    retention_data.seal = False  # plaintext from before crypto-shredding: the purge itself must leave no remnant
    marker = "ZNACZNIK-7f3a9c-Żółć-unikalny-tekst-mieszkańca"
    kept = "ZOSTAJE-4b1e-nowszy-czat"
    for _ in range(3):
        await retention_data.chat(OLD, texts=(marker, marker + " drugi raz", "zwykły tekst"))
    await retention_data.chat(RECENT, texts=(kept,))
    files = [settings.db_path, Path(f"{settings.db_path}-wal"), Path(f"{settings.db_path}-shm")]
    before = b"".join(p.read_bytes() for p in files if p.exists())
    assert marker.encode() in before  # the test can fail: the text was really there

    result = await store.retention.purge(SYSTEM)
    assert result.chats == 3 and result.wal_truncated

    for path in files:
        if path.exists():
            raw = path.read_bytes()
            assert marker.encode("utf-8") not in raw, path.name
            assert "7f3a9c".encode() not in raw, path.name
    assert kept.encode() in settings.db_path.read_bytes()


# ------------------------------------------------------------------ crash safety


@pytest.mark.ordinance("§6")
async def test_interrupted_purge_state_is_finished_by_the_next_run(store, retention_data):
    """The state a kill -9 leaves between commit and unlink: rows gone, the paths pending, files on disk."""
    call, path = await retention_data.call(OLD)
    relative = path.relative_to(store.settings.recordings_dir).as_posix()
    async with store.db.write() as tx:
        await tx.execute("DELETE FROM recordings WHERE conversation_id = ?", (call,))
        await tx.execute("DELETE FROM conversations WHERE id = ?", (call,))
        await tx.execute("INSERT INTO pending_unlinks(path) VALUES (?)", (relative,))
    assert [p.kind for p in (await store.retention.fsck(SYSTEM)).problems] == ["pending_unlink"]
    result = await store.retention.purge(SYSTEM)
    assert result.resumed_files == 1 and not path.exists()
    assert await _count(store, "SELECT count(*) FROM pending_unlinks") == 0
    assert (await store.retention.fsck(SYSTEM)).ok


@pytest.mark.ordinance("§6")
def test_purge_killed_between_commit_and_unlink_is_finished_by_the_next_run(tmp_path):
    """A real `cim purge` process, SIGKILLed right after its first commit; the next one finishes."""
    data = tmp_path / "data"
    env = {**os.environ, "CIM_DATA_DIR": str(data), "CIM_PASSWORD_PROFILE": "fast"}
    subprocess.run([sys.executable, "-m", "cim", "init"], env=env, check=True, capture_output=True)

    async def seed() -> list[Path]:
        from tests.fixtures.retention import RetentionData
        from store.settings import Settings

        st = await Store.open(Settings.load(data, env={}))
        try:
            maker = RetentionData(st)
            return [(await maker.call(OLD))[1] for _ in range(3)]
        finally:
            await st.close()

    paths = asyncio.run(seed())
    marker = tmp_path / "paused"
    proc = subprocess.Popen(
        [sys.executable, "-m", "cim", "purge", "--json"],
        env={**env, PAUSE_AFTER_COMMIT_ENV: str(marker), "CIM_PURGE_BATCH_SIZE": "2"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        for _ in range(600):
            if marker.exists() or proc.poll() is not None:
                break
            time.sleep(0.05)
        assert marker.exists(), proc.stderr.read().decode() if proc.poll() is not None else "never paused"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert sum(p.exists() for p in paths) == 3  # committed, not yet unlinked

    fsck = subprocess.run([sys.executable, "-m", "cim", "fsck", "--json"], env=env, capture_output=True, text=True)
    assert fsck.returncode != 0
    assert {p["kind"] for p in json.loads(fsck.stdout)["problems"]} == {"pending_unlink"}

    again = subprocess.run([sys.executable, "-m", "cim", "purge", "--json"], env=env, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    document = json.loads(again.stdout)
    assert document["resumed_files"] == 2 and document["purged"]["calls"] == 1
    assert not any(p.exists() for p in paths)
    fsck = subprocess.run([sys.executable, "-m", "cim", "fsck", "--json"], env=env, capture_output=True, text=True)
    assert fsck.returncode == 0, fsck.stdout
    verify = subprocess.run(
        [sys.executable, "-m", "cim", "audit", "verify", "--json"], env=env, capture_output=True, text=True
    )
    assert json.loads(verify.stdout)["ok"]


async def test_stale_running_run_is_marked_failed_and_audited_by_the_next(store, retention_data):
    async with store.db.write() as tx:
        await tx.execute(
            "INSERT INTO purge_runs(started_at, cutoff, dry_run, started_by, status)"
            " VALUES ('2026-03-01T02:30:00.000000Z', '2026-03-01T02:30:00.000000Z', 0, 'x', 'running')"
        )
    await store.retention.purge(SYSTEM)
    assert (await store.db.fetchone("SELECT status FROM purge_runs WHERE id = 1"))["status"] == "failed"
    assert await _count(store, "SELECT count(*) FROM audit WHERE action = 'retention.purge_recovered'") == 1


@pytest.mark.ordinance("§6")
async def test_rows_of_other_areas_and_a_full_text_index_leave_no_remnant(store, settings, retention_data):
    """Another area's table referring to conversations, and an FTS5 index over messages (as an archive
    search might add): the purge removes their rows and merges the index, so the text is gone from the bytes."""
    retention_data.seal = False  # plaintext from before crypto-shredding: the purge itself must leave no remnant
    marker = "FTSZNACZNIK9q8w7e"
    async with store.db.write() as tx:
        await tx.execute(
            "CREATE TABLE other_area_notes (conversation_id INTEGER NOT NULL REFERENCES conversations(id), note TEXT)"
        )
        await tx.execute("CREATE VIRTUAL TABLE messages_fts USING fts5(text, content='messages', content_rowid='id')")
        await tx.execute(
            "CREATE TRIGGER messages_fts_ai AFTER INSERT ON messages BEGIN"
            " INSERT INTO messages_fts(rowid, text) VALUES (new.id, new.text); END"
        )
        await tx.execute(
            "CREATE TRIGGER messages_fts_ad AFTER DELETE ON messages BEGIN"
            " INSERT INTO messages_fts(messages_fts, rowid, text) VALUES ('delete', old.id, old.text); END"
        )
    chats = [await retention_data.chat(OLD, texts=(f"{marker} numer {i}",)) for i in range(20)]
    await retention_data.chat(RECENT, texts=("zostaje",))
    async with store.db.write() as tx:
        await tx.executemany("INSERT INTO other_area_notes VALUES (?, ?)", [(c, marker) for c in chats])
    await store.db.checkpoint_truncate()
    assert marker.encode() in settings.db_path.read_bytes()

    result = await store.retention.purge(SYSTEM, batch_size=7)
    assert result.chats == 20
    assert await _count(store, "SELECT count(*) FROM other_area_notes") == 0
    assert await _count(store, "SELECT count(*) FROM messages_fts WHERE messages_fts MATCH 'zostaje'") == 1
    for path in (settings.db_path, Path(f"{settings.db_path}-wal")):
        if path.exists():
            assert marker.encode() not in path.read_bytes(), path.name
            assert marker.lower().encode() not in path.read_bytes(), path.name
