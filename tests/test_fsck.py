"""`fsck`: every kind of damage between the recordings folder and the database is found."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import datetime, timezone

import pytest

from store.errors import NotPermitted
from store.models import Actor

WHEN = datetime(2026, 2, 10, 9, 0, tzinfo=timezone.utc)
SYSTEM = Actor.system("tests")


async def kinds(store) -> list[str]:
    return sorted(p.kind for p in (await store.retention.fsck(SYSTEM)).problems)


async def test_fsck_needs_the_integrity_permission(store, make_staff):
    manager = (await make_staff("kier", "cim_manager")).as_actor()
    with pytest.raises(NotPermitted):
        await store.retention.fsck(manager)
    admin = (await make_staff("admin", "it_admin")).as_actor()
    assert (await store.retention.fsck(admin)).ok


async def test_clean_store_is_ok(store, retention_data):
    await retention_data.call(WHEN)
    await retention_data.chat(WHEN)
    report = await store.retention.fsck(SYSTEM)
    assert report.ok and report.recordings_checked == 1 and report.files_seen == 1


async def test_orphan_file(store, retention_data):
    _, path = await retention_data.call(WHEN)
    shutil.copy(path, path.with_name("stray.wav"))
    report = await store.retention.fsck(SYSTEM)
    assert [(p.kind, "stray.wav" in p.detail) for p in report.problems] == [("orphan_file", True)]


async def test_missing_file_deleted_behind_cims_back(store, retention_data):
    call, path = await retention_data.call(WHEN)
    path.unlink()
    report = await store.retention.fsck(SYSTEM)
    assert [p.kind for p in report.problems] == ["missing_file"]
    assert "recording" in report.problems[0].detail


async def test_checksum_mismatch_same_size(store, retention_data):
    _, path = await retention_data.call(WHEN)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    assert await kinds(store) == ["tampered_file"]  # a sealed file: its segment no longer opens


async def test_checksum_mismatch_truncated(store, retention_data):
    _, path = await retention_data.call(WHEN)
    path.write_bytes(path.read_bytes()[:100])
    report = await store.retention.fsck(SYSTEM)
    assert [p.kind for p in report.problems] == ["tampered_file"]  # cut inside a sealed segment
    assert path.name in report.problems[0].detail


async def test_checksum_mismatch_of_a_plain_file(store, retention_data):
    retention_data.seal = False  # a recording from before crypto-shredding, not migrated yet
    _, path = await retention_data.call(WHEN)
    path.write_bytes(path.read_bytes()[:100])
    report = await store.retention.fsck(SYSTEM)
    assert sorted(p.kind for p in report.problems) == ["checksum_mismatch", "unsealed_file"]
    assert any("100 bytes on disk" in p.detail for p in report.problems)


async def test_empty_recording(store, retention_data):
    await retention_data.call(WHEN, empty=True)
    assert await kinds(store) == ["empty_recording"]


async def test_zero_byte_file_not_flagged_empty(store, retention_data):
    _, path = await retention_data.call(WHEN)
    path.write_bytes(b"")
    assert await kinds(store) == ["checksum_mismatch", "empty_recording"]


async def test_recording_path_escaping_the_folder(store, retention_data):
    call, _ = await retention_data.call(WHEN)
    async with store.db.write() as tx:
        await tx.execute("UPDATE recordings SET path = '../cim.sqlite3' WHERE conversation_id = ?", (call,))
    assert await kinds(store) == ["invalid_path", "orphan_file"]


async def test_missing_and_unreadable_folder(store, retention_data):
    await retention_data.call(WHEN)
    folder = store.settings.recordings_dir
    shutil.rmtree(folder)
    assert await kinds(store) == ["missing_folder"]
    folder.write_text("not a folder")
    assert await kinds(store) == ["unreadable_folder"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any folder regardless of its mode")
async def test_unreadable_subfolder(store, retention_data):
    _, path = await retention_data.call(WHEN)
    path.parent.chmod(0)
    try:
        assert "unreadable_folder" in await kinds(store)
    finally:
        path.parent.chmod(0o700)


def test_cli_fsck_json_and_exit_status(tmp_path):
    env = {**os.environ, "CIM_DATA_DIR": str(tmp_path / "d")}
    subprocess.run([sys.executable, "-m", "cim", "init"], env=env, check=True, capture_output=True)
    ok = subprocess.run([sys.executable, "-m", "cim", "fsck", "--json"], env=env, capture_output=True, text=True)
    assert ok.returncode == 0 and json.loads(ok.stdout)["ok"] is True
    (tmp_path / "d" / "recordings" / "lost.wav").write_bytes(b"RIFF")
    bad = subprocess.run([sys.executable, "-m", "cim", "fsck", "--json"], env=env, capture_output=True, text=True)
    document = json.loads(bad.stdout)
    assert bad.returncode == 1 and document["ok"] is False
    assert document["problems"] == [
        {"kind": "orphan_file", "detail": "lost.wav: a file in the recordings folder without a recording row"}
    ]
    text = subprocess.run([sys.executable, "-m", "cim", "fsck"], env=env, capture_output=True, text=True)
    assert text.returncode == 1 and "file without a recording: lost.wav" in text.stdout  # CIM_STAFF_LANG=en here
