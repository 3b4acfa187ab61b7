"""Smaller hardening items: written files 0600 and never clobbered without --force, letters that cannot
silently lose characters, MP3 recordings checked by content, no typed password in the audit log, and
CLI errors that name the right thing (an empty --data-dir, a backup onto a missing volume, wrong dates)."""

from __future__ import annotations

import os
import json
import shutil
import socket
import sqlite3
import stat
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest
from pypdf import PdfReader

from store.audio import AudioError, probe_file
from store.errors import AccountLocked, AlreadyExists, AuthenticationFailed, InvalidInput
from store.letters import missing_glyphs
from store.models import Actor
from store.reports import write_csv, write_pdf
from tests.fixtures.audit_log import audit_log
from tests.fixtures.calls import FakePbx, freepbx_csv, freepbx_row, write_pcm_wav
from tests.fixtures.requests import CALL_AT, PHONE, call_request, insert_call
from tests.fixtures.retention import write_wav
from tests.fixtures.store import PASSWORD
from tests.fixtures.tui import notifications, sign_in, wait_until
from cim.commands.tui import demo_socket
from tui.demo import DEMO_STAFF
from tui.screens.reports import ReportsScreen
from tui.widgets.modals import ConfirmModal

ROOT = Path(__file__).resolve().parents[1]
SYSTEM = Actor.system("tests")


def cim(
    *args: str, umask: int = 0o022, env: dict[str, str] | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess:
    """The real `cim` in a subprocess (under the given umask)."""
    return subprocess.run(
        [sys.executable, "-m", "cim", *args],
        cwd=ROOT,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=lambda: os.umask(umask),
        env={**os.environ, "PYTHONPATH": str(ROOT), "CIM_PASSWORD_PROFILE": "fast", **(env or {})},
    )


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "d"
    done = cim("init", "--data-dir", str(directory))
    assert done.returncode == 0, done.stderr
    return directory


# -- files with staff names are 0600 and never overwritten without --force ------------------------------------


@pytest.mark.ordinance("GDPR 32")
def test_report_files_are_0600_under_a_permissive_umask_and_existing_files_need_force(data_dir, tmp_path):
    csv_path, pdf_path = tmp_path / "r.csv", tmp_path / "r.pdf"
    period = ("report", "--from", "2026-01-01", "--to", "2026-12-31", "--data-dir", str(data_dir))
    first = cim(*period, "--csv", str(csv_path), "--pdf", str(pdf_path), umask=0o000)
    assert first.returncode == 0, first.stderr
    assert (mode(csv_path), mode(pdf_path)) == (0o600, 0o600)

    csv_path.write_text("someone else's spreadsheet\n")
    os.chmod(csv_path, 0o644)
    refused = cim(*period, "--csv", str(csv_path), umask=0o000)
    assert (
        refused.returncode == 1
        and refused.stderr.strip() == f"cim: {csv_path} already exists; use --force to replace it"
    )
    assert csv_path.read_text() == "someone else's spreadsheet\n"

    victim = tmp_path / "victim.txt"
    victim.write_text("not to be touched\n")
    link = tmp_path / "link.pdf"
    link.symlink_to(victim)
    assert cim(*period, "--pdf", str(link)).returncode == 1  # a symlink counts as an existing file
    forced = cim(*period, "--csv", str(csv_path), "--pdf", str(link), "--force", umask=0o000)
    assert forced.returncode == 0, forced.stderr
    assert csv_path.read_text(encoding="utf-8-sig").startswith("CIM supervision report")
    assert mode(csv_path) == 0o600  # replaced, not rewritten in place with the old mode
    assert not link.is_symlink() and link.read_bytes().startswith(b"%PDF") and mode(link) == 0o600
    assert victim.read_text() == "not to be touched\n"  # the link was replaced, never followed


def test_request_register_export_is_0600_and_replaced_only_with_force(data_dir, tmp_path):
    target = tmp_path / "rejestr.csv"
    args = ("requests", "export-csv", str(target), "--data-dir", str(data_dir))
    assert cim(*args, umask=0o000).returncode == 0 and mode(target) == 0o600
    target.write_text("keep me")
    os.chmod(target, 0o644)
    refused = cim(*args)
    assert refused.returncode == 1 and "use --force" in refused.stderr and target.read_text() == "keep me"
    assert cim(*args, "--force", umask=0o000).returncode == 0
    assert target.read_text(encoding="utf-8") != "keep me" and mode(target) == 0o600


async def test_store_report_writers_refuse_an_existing_file_unless_asked(store, tmp_path):
    report = await store.reports.supervision(SYSTEM, date(2026, 3, 1), date(2026, 3, 31))
    old_umask = os.umask(0)
    try:
        for writer in (write_csv, write_pdf):
            path = tmp_path / f"r.{writer.__name__[-3:]}"
            path.write_bytes(b"old")
            with pytest.raises(AlreadyExists, match="already exists"):
                await writer(report, path)
            assert path.read_bytes() == b"old"
            await writer(report, path, replace=True)
            assert path.read_bytes() != b"old" and mode(path) == 0o600
    finally:
        os.umask(old_umask)


async def test_tui_saves_reports_0600_and_asks_before_replacing(tui_app, make_staff, settings):
    await make_staff("sekretarz", "secretary")
    app = tui_app()
    old_umask = os.umask(0)
    try:
        async with app.run_test(size=(140, 40)) as pilot:
            await sign_in(pilot, "sekretarz", PASSWORD)
            await pilot.press("f7")
            screen = await wait_until(pilot, lambda: isinstance(app.screen, ReportsScreen) and app.screen)
            await wait_until(pilot, lambda: screen.report is not None, what="the report")
            path = settings.data_dir / "reports" / f"supervision-{screen.report.start}-{screen.report.end}.csv"
            await pilot.press("ctrl+s")
            await wait_until(pilot, lambda: path.exists(), what="the CSV")
            assert mode(path) == 0o600
            path.write_bytes(b"kept")
            await pilot.press("ctrl+s")
            await wait_until(pilot, lambda: isinstance(app.screen, ConfirmModal), what="the replace question")
            await pilot.press("n")
            await wait_until(pilot, lambda: app.screen is screen)
            assert path.read_bytes() == b"kept"
            await pilot.press("ctrl+s")
            await wait_until(pilot, lambda: isinstance(app.screen, ConfirmModal), what="the replace question")
            await pilot.press("y")
            await wait_until(pilot, lambda: path.read_bytes() != b"kept", what="the replaced CSV")
            assert mode(path) == 0o600
            assert any("Saved" in n for n in notifications(app))
    finally:
        os.umask(old_umask)


def test_backup_copies_recordings_0600_even_when_the_source_is_looser(data_dir, tmp_path):
    recording = data_dir / "recordings" / "2026" / "03" / "a.wav"
    write_wav(recording)
    os.chmod(recording, 0o644)
    with sqlite3.connect(data_dir / "cim.sqlite3") as conn:
        conn.execute(
            "INSERT INTO conversations(id, channel, status, created_at, purge_after) "
            "VALUES (1, 'call', 'ended', '2026-03-01T10:00:00.000000Z', '2026-09-01T10:00:00.000000Z')"
        )
        conn.execute(
            "INSERT INTO recordings(conversation_id, pbx_uniqueid, path, sha256, size_bytes, format, "
            "is_empty, imported_at) VALUES (1, 'u1', '2026/03/a.wav', 'x', 1, 'wav', 0, "
            "'2026-03-01T10:00:00.000000Z')"
        )
    done = cim("backup", str(tmp_path / "bk"), "--data-dir", str(data_dir), umask=0o000)
    assert done.returncode == 0, done.stderr
    copied = tmp_path / "bk" / "recordings" / "2026" / "03" / "a.wav"
    assert mode(copied) == 0o600 and mode(tmp_path / "bk" / "backup.json") == 0o600
    assert mode(tmp_path / "bk" / "cim.sqlite3") == 0o600


# -- letters never drop a character silently -------------------------------------------------------------------


async def test_a_letter_with_characters_the_font_lacks_is_refused_naming_them(store, people):
    assert missing_glyphs("王") == ["王"]  # the test can fail: DejaVu Sans really has no CJK glyphs
    request = await store.requests.register(people.registrar, call_request(requester_name="Wang 王小明"))
    await store.requests.link(
        people.registrar, request.id, await insert_call(store, at=CALL_AT, number=PHONE, department="WO")
    )
    await store.requests.give_opinion(people.dpo, request.id, "dpo", "unfavourable", "Brak podstaw.")
    await store.requests.give_opinion(people.head, request.id, "department", "unfavourable", "Brak podstaw.")
    with pytest.raises(InvalidInput) as refused:
        await store.requests.refuse(people.director, request.id, "Nagranie nie dotyczy wnioskodawcy ✓ ok.")
    message = refused.value.message
    assert "'王' (U+738B), '小' (U+5C0F), '明' (U+660E) in the addressee's name" in message
    detail = await store.requests.get(people.director, request.id)
    assert detail.request.state != "refused" and detail.letters == ()  # nothing was decided or written
    assert list(store.settings.letters_dir.rglob("*.pdf")) == []


async def test_the_report_pdf_prints_a_missing_character_as_its_code_point(store, make_staff, tmp_path):
    anna = (await make_staff("anna", "designated")).as_actor()
    async with store.db.write() as tx:
        await store.audit.append(tx, anna, "archive.open_transcript", purpose="skarga 王 Świnoujście")
    report = await store.reports.supervision(SYSTEM, date(2026, 3, 1), date(2026, 3, 31))
    path = await write_pdf(report, tmp_path / "r.pdf")
    text = "".join(page.extract_text() for page in PdfReader(path).pages)
    assert "[U+738B]" in text and "Świnoujście" in text


# -- MP3 recordings are checked by content -------------------------------------------------------------------


def lame(wav: Path, mp3: Path, *options: str) -> Path:
    encoder = shutil.which("lame")
    assert encoder, "the MP3 tests need `lame` (scripts/setup installs it)"
    subprocess.run([encoder, "--quiet", *options, str(wav), str(mp3)], check=True, timeout=60)
    return mp3


@pytest.mark.parametrize("options", [(), ("-V", "5"), ("--add-id3v2", "--tt", "Rozmowa 12"), ("-b", "16")])
def test_real_mp3_recordings_are_accepted(tmp_path, options):
    wav = write_pcm_wav(tmp_path / "call.wav", 1.0)  # 8 kHz mono, as a PBX records: MPEG 2.5 Layer III
    assert probe_file(lame(wav, tmp_path / "call.mp3", *options)).format == "mp3"


def test_files_named_mp3_that_are_not_mpeg_audio_are_refused(tmp_path):
    wav = write_pcm_wav(tmp_path / "call.wav", 0.5)
    real = lame(wav, tmp_path / "real.mp3", "--add-id3v2", "--tt", "x").read_bytes()
    tag_size = 10 + ((real[6] << 21) | (real[7] << 14) | (real[8] << 7) | real[9])
    cases = {
        "text.mp3": b"<html><body>404 Not Found</body></html>\n",
        "renamed-wav.mp3": wav.read_bytes(),
        "tag-only.mp3": real[:tag_size],
        "id3-and-zeros.mp3": b"ID3\x03\x00\x00\x00\x00\x00\x00" + bytes(100),
        "cut-after-one-header.mp3": real[: tag_size + 40],
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(AudioError, match="not an MP3 recording"):
            probe_file(tmp_path / name)
    (tmp_path / "empty.mp3").write_bytes(b"")
    with pytest.raises(AudioError, match="empty"):
        probe_file(tmp_path / "empty.mp3")


async def test_ingest_rejects_a_fake_mp3_and_keeps_a_real_one(store, tmp_path):
    pbx = FakePbx(tmp_path / "pbx")
    day = pbx.monitor / "2026/03/02"
    day.mkdir(parents=True)
    real, fake = "in-1-601234567-20260302-100000-1772442000.1.mp3", "in-1-601234567-20260302-101000-1772442000.2.mp3"
    lame(write_pcm_wav(tmp_path / "call.wav", 1.0), day / real)
    (day / fake).write_text("#!/bin/sh\necho not audio\n")
    pbx.cdr.write_text(
        freepbx_csv(
            [
                freepbx_row("1772442000.1", recordingfile=real),
                freepbx_row("1772442000.2", calldate="2026-03-02 10:10:00", recordingfile=fake),
            ]
        )
    )
    report = await store.calls.ingest(SYSTEM, store.calls.source("freepbx", pbx.cdr, pbx.monitor))
    reasons = {r.file: r.reason for r in report.rejected}
    assert fake in reasons and "not an MP3 recording" in reasons[fake]
    assert real not in reasons
    formats = [r["format"] for r in await store.db.fetchall("SELECT format FROM recordings")]
    assert formats == ["mp3"]


# -- a password typed into the name field is never stored --------------------------------------------------------


@pytest.mark.ordinance("GDPR 32")
async def test_a_password_typed_into_the_name_field_never_reaches_the_audit_log_or_the_database(
    store, make_staff, settings
):
    await make_staff("anna", "consultant")
    secret = "Tajne.Haslo-2026"
    for typed in (secret, f"anna\t{secret}", f"  {secret}  "):
        with pytest.raises(AuthenticationFailed):
            await store.accounts.login(typed, "")
    for _ in range(settings.lockout_failures):  # the lockout still counts attempts on that name
        with pytest.raises((AuthenticationFailed, AccountLocked)):
            await store.accounts.login(secret, "x")
    with pytest.raises(AccountLocked):
        await store.accounts.login(secret, "x")
    with pytest.raises(AuthenticationFailed):
        await store.accounts.login("anna", "wrong password")
    rows = await audit_log(store, action="login")
    names = [r.actor_name for r in rows]
    assert all(secret.lower() not in (r.actor_name + json.dumps(r.details, ensure_ascii=False)).lower() for r in rows)
    assert names[-1] == "anna"  # a real account is still named
    unknown = {n for n in names[:-1]}
    assert all(n.startswith("unknown-name#") for n in unknown) and len(unknown) == 2  # same name, same hash
    await store.db.checkpoint_truncate()
    for path in (settings.db_path, Path(f"{settings.db_path}-wal")):
        if path.exists():
            raw = path.read_bytes()
            assert secret.encode() not in raw and secret.lower().encode() not in raw, path.name


# -- CLI: errors that name the right thing ----------------------------------------------------------------------


def test_init_with_an_empty_data_dir_is_an_error_and_creates_nothing(tmp_path):
    home = tmp_path / "home"
    env = {"HOME": str(home), "XDG_DATA_HOME": str(home / "share"), "CIM_DATA_DIR": ""}
    for command in (("init",), ("purge", "--dry-run"), ("demo",)):
        for value in ("", "   "):
            done = cim(*command, "--data-dir", value, env=env)
            assert done.returncode == 1 and done.stderr.startswith("cim: the data directory path is empty"), done
    assert not home.exists()  # the default directory was not used instead


def test_the_demo_port_is_fixed_unless_taken():
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    free = probe.getsockname()[1]
    probe.close()
    first, moved = demo_socket("127.0.0.1", None, preferred=free)
    try:
        assert first.getsockname()[1] == free and moved is None
        second, moved = demo_socket("127.0.0.1", None, preferred=free)  # now taken by the first demo
        used = second.getsockname()[1]
        second.close()
        assert used != free and moved == f"port {free} is taken; the demo listens on {used} instead"
        with pytest.raises(OSError):
            demo_socket("127.0.0.1", free)  # an explicit --port that is taken stays an error
    finally:
        first.close()


def test_the_demo_has_a_designated_account_that_signs_in():
    assert [s[0] for s in DEMO_STAFF if s[2] == ("designated",)] == ["pracownik"]


def test_backup_onto_a_missing_volume_creates_nothing(data_dir, tmp_path):
    target = tmp_path / "not-mounted" / "cim" / "2026-03-02"
    done = cim("backup", str(target), "--data-dir", str(data_dir))
    assert done.returncode == 1
    assert done.stderr.strip() == (
        f"cim: the folder {target.parent} does not exist (is the backup volume mounted?); nothing was written"
    )
    assert not (tmp_path / "not-mounted").exists()
    (tmp_path / "mounted").mkdir()
    assert cim("backup", str(tmp_path / "mounted" / "b1"), "--data-dir", str(data_dir)).returncode == 0


def test_error_texts_name_what_was_typed_wrong(data_dir):
    dept = cim("departments", "add", "w g k", "Wydział Gospodarki Komunalnej", "--data-dir", str(data_dir))
    assert dept.returncode == 1 and dept.stderr.startswith("cim: department code 'w g k' must be"), dept.stderr
    user = cim(
        "users",
        "add",
        "a b",
        "--role",
        "consultant",
        "--password-stdin",
        "--data-dir",
        str(data_dir),
        stdin="long enough password\n",
    )
    assert user.returncode == 1 and user.stderr.startswith("cim: user name 'a b' must be")
    audit = cim("audit", "list", "--from", "yesterday", "--data-dir", str(data_dir))
    assert audit.returncode == 1 and audit.stderr.strip() == "cim: --from must be a date YYYY-MM-DD, not 'yesterday'"
    audit_to = cim("audit", "list", "--to", "2026-02-30", "--data-dir", str(data_dir))
    assert audit_to.stderr.strip() == "cim: --to must be a date YYYY-MM-DD, not '2026-02-30'"
    backwards = cim("audit", "list", "--from", "2026-03-02", "--to", "2026-03-01", "--data-dir", str(data_dir))
    assert backwards.returncode == 1 and backwards.stderr.strip() == "cim: --to 2026-03-01 is before --from 2026-03-02"
    assert (
        cim("audit", "list", "--from", "0001-01-01", "--to", "9999-12-31", "--data-dir", str(data_dir)).returncode == 0
    )  # the calendar's ends are no crash
    report = cim("report", "--from", "2026-01-01", "--to", "jutro", "--data-dir", str(data_dir))
    assert report.returncode == 1 and report.stderr.strip() == "cim: --to must be a date YYYY-MM-DD, not 'jutro'"


@pytest.mark.ordinance("GDPR 32")
def test_service_report_files_are_0600_and_existing_files_need_force(data_dir, tmp_path):
    csv_path, pdf_path = tmp_path / "s.csv", tmp_path / "s.pdf"
    period = ("report", "service", "--from", "2026-01-01", "--to", "2026-12-31", "--data-dir", str(data_dir))
    first = cim(*period, "--csv", str(csv_path), "--pdf", str(pdf_path), umask=0o000)
    assert first.returncode == 0, first.stderr
    assert (mode(csv_path), mode(pdf_path)) == (0o600, 0o600)
    csv_path.write_text("keep me\n")
    refused = cim(*period, "--csv", str(csv_path))
    assert (
        refused.returncode == 1
        and refused.stderr.strip() == f"cim: {csv_path} already exists; use --force to replace it"
    )
    assert csv_path.read_text() == "keep me\n"
    forced = cim(*period, "--csv", str(csv_path), "--force", umask=0o000)
    assert forced.returncode == 0, forced.stderr
    assert csv_path.read_text(encoding="utf-8-sig").startswith("CIM service report") and mode(csv_path) == 0o600
