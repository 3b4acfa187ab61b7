"""Files on disk: a private data directory, private database and recordings, refusal of an open directory."""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path

import pytest

from tests.fixtures.calls import FakePbx, asterisk_row, write_pcm_wav
from tests.fixtures.chat import connect_client
from tests.fixtures.reliability import cim


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def private_files(data_dir: Path) -> dict[str, int]:
    """Every file and folder under the data directory that others could read, with its mode."""
    exposed = {}
    for folder, dirs, files in os.walk(data_dir):
        for name in dirs + files:
            path = Path(folder) / name
            if path.is_symlink():
                continue
            if mode(path) & (stat.S_IRWXG | stat.S_IRWXO):
                exposed[str(path.relative_to(data_dir))] = oct(mode(path))
    return exposed


@pytest.mark.ordinance("GDPR 32")
@pytest.mark.parametrize("umask", [0o022, 0o002, 0o000])
def test_cim_serve_refuses_a_data_directory_others_can_read(tmp_path: Path, umask: int):
    data_dir = tmp_path / "data"
    assert cim(data_dir, "init").returncode == 0
    data_dir.chmod(0o777 & ~umask | 0o700)
    done = cim(data_dir, "serve", "--port", "0", timeout=30)
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "open to other users" in lines[0] and f"chmod 700 {data_dir}" in lines[0]
    assert "Traceback" not in done.stderr


@pytest.mark.ordinance("GDPR 32")
async def test_data_dir_db_and_recordings_stay_private_after_ingest_and_a_chat(tmp_path: Path, serve_process):
    # a permissive umask, as a careless service unit might leave
    old = os.umask(0o000)
    try:
        server = serve_process({"CIM_OPENING_HOURS": "always"})
        assert mode(server.data_dir) == 0o700
        pbx = FakePbx(tmp_path / "pbx")
        pbx.add_rows(
            [
                asterisk_row("1772442000.1"),
                asterisk_row(
                    "1772442100.2",
                    start="2026-03-02 10:05:00",
                    answer="2026-03-02 10:05:02",
                    end="2026-03-02 10:06:00",
                    duration=60,
                    billsec=58,
                ),
            ]
        )
        write_pcm_wav(pbx.monitor / "1772442000.1.wav")
        write_pcm_wav(pbx.monitor / "1772442100.2.wav")
        ingest = await asyncio.to_thread(
            cim,
            server.data_dir,
            "ingest",
            "asterisk",
            "--cdr",
            str(pbx.cdr),
            "--recordings",
            str(pbx.monitor),
            "--json",
        )
        assert ingest.returncode == 0, ingest.stderr
        url = await asyncio.to_thread(server.start)
        resident = await connect_client(url, "/resident", {"lang": "pl"})
        try:
            notice = await resident.wait_for("notice")
            from tests.fixtures.chat import notice_acceptance

            await resident.call("accept_notice", await notice_acceptance(resident.call, notice["notice_id"]))
            assert (await resident.call("send", {"text": "dzień dobry", "client_msg_id": "1"}))["ok"]
        finally:
            await resident.disconnect()
        assert await asyncio.to_thread(server.stop) == 0
    finally:
        os.umask(old)
    recordings = [p for p in (server.data_dir / "recordings").rglob("*") if p.is_file()]
    assert len(recordings) == 2
    assert mode(server.data_dir / "cim.sqlite3") == 0o600
    assert private_files(server.data_dir) == {}


async def test_the_store_creates_its_folders_private_under_any_umask(settings, clock):
    from store import Store

    old = os.umask(0o000)
    try:
        store = await Store.open(settings, create=True, clock=clock)
        notice = await store.notices.current("chat", "pl")
        opened = await store.chats.open(notice.id)
        await store.chats.post_resident(opened.chat.id, "tekst", "1")
        await store.close()
    finally:
        os.umask(old)
    assert mode(settings.data_dir) == 0o700
    assert private_files(settings.data_dir) == {}


def test_a_data_directory_that_is_a_file_or_missing_is_refused_clearly(tmp_path: Path):
    as_file = tmp_path / "file"
    as_file.write_text("x")
    done = cim(as_file, "serve", "--port", "0", timeout=30)
    assert done.returncode != 0 and "is a file" in done.stderr and "Traceback" not in done.stderr
    missing = cim(tmp_path / "missing", "serve", "--port", "0", timeout=30)
    assert missing.returncode != 0 and "cim init" in missing.stderr and "Traceback" not in missing.stderr
