"""Ingesting a PBX's calls and recordings into a real store: bad input first, then grouping, idempotency, §1.3/§1.4/§6."""

from __future__ import annotations

import asyncio
import hashlib
import json
import stat
from pathlib import Path

import pytest

from store.keys import sha256_plain
from click.testing import CliRunner

from cim.cli import cli
from store.calls import ASTERISK_FIXED
from store.models import Actor
from tests.fixtures.audit_log import audit_log
from tests.fixtures.calls import (
    FakePbx,
    asterisk_row,
    cdr_csv_line,
    freepbx_csv,
    freepbx_row,
    write_empty_wav,
    write_gsm_wav,
    write_pcm_wav,
)

SYSTEM = Actor.system("tests")
COLUMNS = ASTERISK_FIXED + ("uniqueid", "userfield")
LINKED = ASTERISK_FIXED + ("uniqueid", "userfield", "peeraccount", "linkedid", "sequence")


async def ingest(store, pbx: FakePbx, kind: str = "asterisk", **kwargs):
    return await store.calls.ingest(SYSTEM, store.calls.source(kind, pbx.cdr, pbx.monitor, **kwargs))


async def calls(store) -> list[dict]:
    return [dict(r) for r in await store.db.fetchall("SELECT * FROM conversations WHERE channel = 'call' ORDER BY id")]


async def recordings(store) -> list[dict]:
    return [dict(r) for r in await store.db.fetchall("SELECT * FROM recordings ORDER BY id")]


# -- bad input: each reported with its line and skipped, the rest imported -----------------------


async def test_every_kind_of_bad_line_is_reported_and_the_rest_imported(store, pbx: FakePbx) -> None:
    good = [asterisk_row("1772442000.1"), asterisk_row("1772442000.2", src="512345678")]
    pbx.add_rows(good[:1])  # line 1
    pbx.append(cdr_csv_line(asterisk_row("1772442000.3"), COLUMNS) + ',"x"\n')  # 2 wrong column count
    pbx.append('"","601234567","800","from-trunk,"oops\n')  # 3 broken quoting
    pbx.add_rows([asterisk_row("1772442000.4", start="2026-02-30 10:00:00")])  # 4 impossible date
    pbx.add_rows([asterisk_row("1772442000.5", duration=-3)])  # 5 negative duration
    pbx.append(cdr_csv_line(asterisk_row("1772442000.6"), COLUMNS).encode().replace(b"Jan", b"J\xf3n") + b"\n")  # 6
    pbx.add_rows(good[1:])  # line 7
    pbx.add_rows([asterisk_row("1772442000.2", src="512345678", duration=999, billsec=10)])  # 8 same id, other data
    pbx.append("\n")  # 9 blank: ignored
    report = await ingest(store, pbx)
    by_line = {r.line: r.reason for r in report.rejected}
    assert sorted(by_line) == [2, 3, 4, 5, 8]
    assert "columns" in by_line[2] and "quoting" in by_line[3] and "impossible" in by_line[4]
    assert "negative" in by_line[5] and "different data" in by_line[8]
    # line 6 is not UTF-8: read with the documented fallback (ISO-8859-2), not lost
    assert report.imported == 3 and report.already_present == 0
    assert [c["pbx_uniqueid"] for c in await calls(store)] == ["1772442000.1", "1772442000.6", "1772442000.2"]
    strict = await ingest(store, pbx, encoding="utf-8")
    assert [r.line for r in strict.rejected if "UTF-8" in r.reason or "utf-8" in r.reason] == [6]


async def test_recordingfile_pointing_outside_the_folder_is_refused(store, pbx: FakePbx, tmp_path: Path) -> None:
    secret = tmp_path / "etc" / "passwd"
    secret.parent.mkdir()
    write_pcm_wav(secret)  # even real audio is not taken from outside the recordings folder
    pbx.cdr.write_text(
        freepbx_csv(
            [
                freepbx_row("1772442000.1", recordingfile="../../etc/passwd"),
                freepbx_row("1772442000.2", recordingfile=str(secret)),
            ]
        )
    )
    report = await ingest(store, pbx, "freepbx")
    assert [(r.line, "outside the recordings folder" in r.reason) for r in report.rejected] == [(2, True), (3, True)]
    assert report.imported == 2 and await recordings(store) == []
    assert not any(store.settings.recordings_dir.rglob("passwd*"))


async def test_symlinked_recording_is_refused(store, pbx: FakePbx, tmp_path: Path) -> None:
    outside = write_pcm_wav(tmp_path / "elsewhere.wav")
    (pbx.monitor / "1772442000.1.wav").symlink_to(outside)
    pbx.add_rows([asterisk_row("1772442000.1")])
    report = await ingest(store, pbx)
    assert len(report.rejected) == 1
    assert report.rejected[0].line == 1 and "symbolic link" in report.rejected[0].reason
    assert report.rejected[0].file == "1772442000.1.wav"
    assert await recordings(store) == [] and report.calls_without_recording == 1


async def test_truncated_and_non_audio_recordings_are_refused_but_the_calls_kept(store, pbx: FakePbx) -> None:
    truncated = write_pcm_wav(pbx.monitor / "1772442000.1.wav", 1.0)
    truncated.write_bytes(truncated.read_bytes()[:3000])
    (pbx.monitor / "1772442000.2.wav").write_text("this is a text file, not audio\n")
    pbx.add_rows([asterisk_row("1772442000.1"), asterisk_row("1772442000.2")])
    report = await ingest(store, pbx)
    reasons = {r.file: (r.line, r.reason) for r in report.rejected}
    assert reasons["1772442000.1.wav"][0] == 1 and "truncated" in reasons["1772442000.1.wav"][1]
    assert reasons["1772442000.2.wav"][0] == 2 and "not a WAV" in reasons["1772442000.2.wav"][1]
    assert report.imported == 2 and report.calls_without_recording == 2
    assert list(store.settings.recordings_dir.rglob("*.wav")) == []
    assert not [p for p in store.settings.recordings_dir.rglob("*") if p.name.startswith(".incoming")]


async def test_file_growing_while_read(store, pbx: FakePbx) -> None:
    full = cdr_csv_line(asterisk_row("1772442000.2", userfield="cim:notice=1;full=1"), COLUMNS) + "\n"
    pbx.add_rows([asterisk_row("1772442000.1")])
    pbx.append(full[:40])  # the PBX is half-way through writing line 2
    first = await ingest(store, pbx)
    assert first.imported == 1
    assert [(r.line, "no line end" in r.reason) for r in first.rejected] == [(2, True)]
    pbx.append(full[40:])
    second = await ingest(store, pbx)
    assert (second.imported, second.already_present, second.rejected) == (1, 1, [])
    assert (await calls(store))[1]["full_info_requested"] == 1  # not a truncated userfield


# -- idempotency ------------------------------------------------------------------------------


async def test_ingesting_the_same_files_again_adds_nothing(store, pbx: FakePbx) -> None:
    pbx.add_rows([asterisk_row("1772442000.1"), asterisk_row("1772442000.2", src="anonymous")])
    write_pcm_wav(pbx.monitor / "2026/03/02/1772442000.1.wav")
    first = await ingest(store, pbx)
    assert (first.imported, first.calls, first.recordings) == (2, 2, 1)
    before = (await calls(store), await recordings(store), sorted(store.settings.recordings_dir.rglob("*")))
    audit_before = await audit_log(store)
    again = await ingest(store, pbx)
    assert (again.imported, again.already_present, again.rejected, again.recordings) == (0, 2, [], 0)
    assert again.recordings_already_present == 1
    assert (await calls(store), await recordings(store), sorted(store.settings.recordings_dir.rglob("*"))) == before
    assert await audit_log(store) == audit_before


async def test_duplicate_uniqueid_with_different_data_in_a_later_file(store, pbx: FakePbx) -> None:
    pbx.add_rows([asterisk_row("1772442000.1", src="601234567")])
    await ingest(store, pbx)
    pbx.cdr.write_text("")
    pbx.add_rows([asterisk_row("1772442000.1", src="700000000")])
    report = await ingest(store, pbx)
    assert report.imported == 0 and "different data" in report.rejected[0].reason
    assert (await calls(store))[0]["resident_number"] == "+48601234567"


# -- what a call records --------------------------------------------------------------------------


@pytest.mark.ordinance("§1.3")
async def test_incoming_and_outgoing_calls_are_registered_with_recordings(store, pbx: FakePbx, make_staff) -> None:
    anna = await make_staff("anna", "consultant", department="OC", extensions=("201",))
    pbx.add_rows(
        [
            asterisk_row("1772442000.1", src="601234567", dst="800", dstchannel="PJSIP/201-0000001a"),
            asterisk_row(
                "1772442000.2",
                src="201",
                dst="0048512345678",
                channel="PJSIP/201-0000001b",
                dstchannel="PJSIP/trunk-0000001c",
                dcontext="from-internal",
                clid='"Anna" <201>',
            ),
        ]
    )
    write_pcm_wav(pbx.monitor / "q-800-601234567-20260302-100000-1772442000.1.wav")
    write_gsm_wav(pbx.monitor / "out-0048512345678-201-20260302-100000-1772442000.2.WAV")
    report = await ingest(store, pbx)
    assert report.recordings == 2 and report.calls_without_recording == 0
    incoming, outgoing = await calls(store)
    assert (incoming["direction"], incoming["resident_number"], incoming["number_identifiable"]) == (
        "incoming",
        "+48601234567",
        1,
    )
    assert (outgoing["direction"], outgoing["resident_number"]) == ("outgoing", "+48512345678")
    assert incoming["consultant_id"] == outgoing["consultant_id"] == anna.id
    dept = await store.db.fetchone("SELECT id FROM departments WHERE code = 'OC'")
    assert incoming["department_id"] == dept["id"]
    recs = {r["conversation_id"]: r for r in await recordings(store)}
    assert recs[incoming["id"]]["format"] == "wav-pcm" and recs[outgoing["id"]]["format"] == "wav-gsm"


@pytest.mark.ordinance("§4.7")
async def test_withheld_caller_is_registered_as_not_identifiable(store, pbx: FakePbx) -> None:
    pbx.add_rows(
        [
            asterisk_row("1.1", src="anonymous", clid='"Anonymous" <anonymous>'),
            asterisk_row("1.2", src="", clid='"" <>'),
            asterisk_row("1.3", src="", clid='"Jan" <601234567>'),
        ]
    )
    await ingest(store, pbx)
    rows = await calls(store)
    assert [(r["resident_number"], r["number_identifiable"]) for r in rows] == [
        ("anonymous", 0),
        (None, 0),
        ("+48601234567", 1),
    ]


@pytest.mark.ordinance("§6")
async def test_created_at_is_the_call_start_and_purge_after_six_months_later(store, pbx: FakePbx) -> None:
    pbx.add_rows(
        [asterisk_row("1.1", start="2026-08-31 10:00:00", answer="2026-08-31 10:00:05", end="2026-08-31 10:02:05")]
    )
    await ingest(store, pbx)
    row = (await calls(store))[0]
    assert row["created_at"] == "2026-08-31T08:00:00.000000Z"  # CEST, not the import time
    assert row["purge_after"] == "2027-02-28T08:00:00.000000Z"  # month-end clamped
    assert row["ended_at"] == "2026-08-31T08:02:05.000000Z"


@pytest.mark.ordinance("§1.4")
async def test_notice_stamp_is_read_back(store, pbx: FakePbx) -> None:
    pbx.add_rows(
        [
            asterisk_row("1.1", userfield="cim:notice=1;full=1"),
            asterisk_row("1.2", userfield="cim:notice=1;full=0"),
            asterisk_row("1.3", userfield=""),
        ]
    )
    await ingest(store, pbx)
    rows = await calls(store)
    v1 = await store.db.fetchone("SELECT id FROM notices WHERE channel = 'phone' AND version = 1 AND lang = 'pl'")
    assert [(r["notice_played"], r["full_info_requested"], r["notice_id"]) for r in rows] == [
        (1, 1, v1["id"]),
        (1, 0, v1["id"]),
        (0, 0, None),
    ]


async def test_legs_sharing_a_linkedid_make_one_call(store, pbx: FakePbx, make_staff) -> None:
    bob = await make_staff("bob", "consultant", extensions=("202",))
    legs = [
        asterisk_row(
            "1772442000.1",
            linkedid="1772442000.1",
            sequence="1",
            dstchannel="PJSIP/201-01",
            disposition="NO ANSWER",
            answer="",
            billsec=0,
            end="2026-03-02 10:00:20",
            duration=20,
        ),
        asterisk_row(
            "1772442000.1",
            linkedid="1772442000.1",
            sequence="2",
            dstchannel="PJSIP/202-02",
            start="2026-03-02 10:00:20",
            answer="2026-03-02 10:00:25",
            end="2026-03-02 10:03:00",
            duration=160,
            billsec=155,
            userfield="cim:notice=1;full=1",
        ),
        asterisk_row(
            "1772442000.3",
            linkedid="1772442000.1",
            sequence="3",
            src="202",
            dst="203",
            channel="PJSIP/202-03",
            dstchannel="PJSIP/203-04",
            start="2026-03-02 10:02:00",
            answer="2026-03-02 10:02:02",
            end="2026-03-02 10:04:00",
            duration=120,
            billsec=118,
        ),
    ]
    pbx.add_rows(legs, LINKED)
    write_pcm_wav(pbx.monitor / "2026/03/02/q-800-601234567-20260302-100000-1772442000.1.wav")
    report = await ingest(store, pbx, columns="uniqueid,userfield,peeraccount,linkedid,sequence")
    assert (report.imported, report.calls, report.recordings, report.rejected) == (3, 1, 1, [])
    (call,) = await calls(store)
    assert call["pbx_uniqueid"] == call["pbx_linkedid"] == "1772442000.1"
    assert call["created_at"] == "2026-03-02T09:00:00.000000Z" and call["ended_at"] == "2026-03-02T09:04:00.000000Z"
    assert (call["disposition"], call["extension"], call["consultant_id"]) == ("ANSWERED", "202", bob.id)
    assert (call["notice_played"], call["full_info_requested"], call["resident_number"]) == (1, 1, "+48601234567")
    assert call["duration_s"] == 240
    legs_rows = await store.db.fetchall("SELECT leg_key FROM call_legs ORDER BY leg_key")
    assert [r["leg_key"] for r in legs_rows] == ["1772442000.1#1", "1772442000.1#2", "1772442000.3#3"]
    # a leg arriving in a later run joins the same call
    pbx.add_rows(
        [
            asterisk_row(
                "1772442000.9",
                linkedid="1772442000.1",
                sequence="4",
                start="2026-03-02 09:59:50",
                answer="",
                billsec=0,
                end="2026-03-02 10:00:00",
                duration=10,
                disposition="NO ANSWER",
            )
        ],
        LINKED,
    )
    later = await ingest(store, pbx, columns="uniqueid,userfield,peeraccount,linkedid,sequence")
    assert (later.imported, later.calls, later.already_present) == (1, 0, 3)
    (call,) = await calls(store)
    assert call["created_at"] == "2026-03-02T08:59:50.000000Z"
    assert call["purge_after"] == "2026-09-02T08:59:50.000000Z"


async def test_recording_files_are_private_hashed_and_relative(store, pbx: FakePbx) -> None:
    src = write_pcm_wav(pbx.monitor / "2026/03/02/in-914245000-601234567-20260302-100000-1772442000.1.wav", 2.0)
    write_empty_wav(pbx.monitor / "2026/03/02/in-914245000-512000000-20260302-100500-1772442000.2.wav")
    pbx.add_rows([asterisk_row("1772442000.1"), asterisk_row("1772442000.2", src="512000000")])
    await ingest(store, pbx)
    full, empty = sorted(await recordings(store), key=lambda r: r["conversation_id"])
    managed = store.settings.recordings_dir / full["path"]
    assert not Path(full["path"]).is_absolute() and managed.is_file()
    assert stat.S_IMODE(managed.stat().st_mode) == 0o600
    assert full["sha256"] == hashlib.sha256(src.read_bytes()).hexdigest() == sha256_plain(managed)
    raw = managed.read_bytes()  # sealed at rest with the call's data key: no PCM byte in the clear
    assert raw[:8] == b"CIMSEAL1" and src.read_bytes()[44:4000] not in raw
    assert (full["size_bytes"], full["duration_s"], full["is_empty"]) == (src.stat().st_size, 2.0, 0)
    assert (empty["size_bytes"], empty["is_empty"]) == (44, 1)
    assert src.exists()  # copied, not moved


async def test_move_removes_the_source_only_after_registering(store, pbx: FakePbx) -> None:
    src = write_pcm_wav(pbx.monitor / "1772442000.1.wav")
    stray = write_pcm_wav(pbx.monitor / "1772449999.9.wav")
    pbx.add_rows([asterisk_row("1772442000.1")])
    report = await ingest(store, pbx, move=True)
    assert report.recordings == 1 and report.recordings_without_call == 1
    assert not src.exists() and stray.exists()
    assert len(await recordings(store)) == 1


async def test_freepbx_export_and_recordings_tree(store, pbx: FakePbx, make_staff) -> None:
    await make_staff("ewa", "consultant", extensions=("201",))
    await store.accounts.add_department(SYSTEM, "USC", "Urząd Stanu Cywilnego")
    await store.calls.set_route(SYSTEM, "914245000", "USC")
    name_in = "in-914245000-601234567-20260302-100000-1772442000.1.wav"
    name_out = "out-512345678-201-20260302-101000-1772442000.2.wav"
    write_pcm_wav(pbx.monitor / "2026/03/02" / name_in)
    write_pcm_wav(pbx.monitor / "2026/03/02" / name_out)
    pbx.cdr.write_text(
        freepbx_csv(
            [
                freepbx_row("1772442000.1", recordingfile=name_in, userfield="cim:notice=1;full=0"),
                freepbx_row(
                    "1772442000.2",
                    calldate="2026-03-02 10:10:00",
                    src="201",
                    dst="512345678",
                    did="",
                    channel="PJSIP/201-0000001b",
                    dstchannel="PJSIP/trunk-1",
                    recordingfile=name_out,
                    dcontext="from-internal",
                ),
                freepbx_row(
                    "1772442000.3",
                    calldate="2026-03-02 10:20:00",
                    src="202",
                    dst="201",
                    did="",
                    channel="PJSIP/202-1",
                    recordingfile="internal-201-202-20260302-102000-1772442000.3.wav",
                ),
            ]
        )
    )
    report = await ingest(store, pbx, "freepbx")
    assert (report.imported, report.recordings, report.calls_without_recording) == (3, 2, 1)
    incoming, outgoing, internal = await calls(store)
    usc = await store.db.fetchone("SELECT id FROM departments WHERE code = 'USC'")
    assert (incoming["direction"], incoming["department_id"], incoming["notice_played"]) == ("incoming", usc["id"], 1)
    assert (outgoing["direction"], outgoing["resident_number"]) == ("outgoing", "+48512345678")
    assert internal["direction"] == "internal"


async def test_ingest_is_audited_without_resident_data(store, pbx: FakePbx) -> None:
    pbx.add_rows([asterisk_row("1772442000.1", src="601234567")])
    write_pcm_wav(pbx.monitor / "1772442000.1.wav")
    await ingest(store, pbx)
    rows = await audit_log(store, action_prefix="calls.")
    assert [r.action for r in rows] == ["calls.ingest", "calls.recording_ingest"]
    assert all("601234567" not in json.dumps(r.details, ensure_ascii=False) for r in rows)


async def test_consultant_cannot_ingest(store, pbx: FakePbx, make_staff) -> None:
    from store.errors import NotPermitted

    anna = await make_staff("anna", "consultant")
    pbx.add_rows([asterisk_row("1.1")])
    with pytest.raises(NotPermitted):
        await store.calls.ingest(anna.as_actor(), store.calls.source("asterisk", pbx.cdr, pbx.monitor))
    assert await calls(store) == []


# -- watch mode ---------------------------------------------------------------------------------


async def test_watch_picks_up_appended_lines_and_new_files(store, pbx: FakePbx) -> None:
    src = store.calls.source("asterisk", pbx.cdr, pbx.monitor)
    stop = asyncio.Event()
    polls: list = []
    task = asyncio.create_task(store.calls.watch(SYSTEM, src, stop, interval=0.05, on_poll=polls.append))
    full = cdr_csv_line(asterisk_row("1772442000.1"), COLUMNS) + "\n"
    pbx.append(full[:30])
    await _until(lambda: len(polls) >= 2)
    assert await calls(store) == [] and all(p.rejected == [] for p in polls)  # a partial line waits
    pbx.append(full[30:])
    await _until_async(lambda: calls(store), lambda rows: len(rows) == 1)
    write_pcm_wav(pbx.monitor / "1772442000.1.wav")
    await _until_async(lambda: recordings(store), lambda rows: len(rows) == 1)
    stop.set()
    total = await asyncio.wait_for(task, 10)
    assert (total.imported, total.recordings, total.rejected) == (1, 1, [])


async def _until(predicate, limit: int = 400) -> None:
    for _ in range(limit):
        if predicate():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not reached")


async def _until_async(fetch, predicate, limit: int = 400) -> None:
    for _ in range(limit):
        if predicate(await fetch()):
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not reached")


# -- the command line ---------------------------------------------------------------------------


def test_cli_json_report_and_clear_errors(tmp_path: Path) -> None:
    pbx = FakePbx(tmp_path / "pbx")
    pbx.add_rows([asterisk_row("1772442000.1")])
    pbx.append('"broken\n')
    write_pcm_wav(pbx.monitor / "1772442000.1.wav")
    write_pcm_wav(pbx.monitor / "1772440000.7.wav")
    env = {"CIM_DATA_DIR": str(tmp_path / "data")}
    runner = CliRunner()
    assert runner.invoke(cli, ["init"], env=env).exit_code == 0
    args = ["ingest", "asterisk", "--cdr", str(pbx.cdr), "--recordings", str(pbx.monitor), "--json"]
    result = runner.invoke(cli, args, env=env)
    assert result.exit_code == 3, result.output  # a line was rejected: cron can tell
    doc = json.loads(result.stdout)
    assert {
        k: doc[k] for k in ("imported", "already_present", "calls_without_recording", "recordings_without_call")
    } == {"imported": 1, "already_present": 0, "calls_without_recording": 0, "recordings_without_call": 1}
    assert doc["rejected"][0]["line"] == 2 and "quoting" in doc["rejected"][0]["reason"]
    again_run = runner.invoke(cli, args, env=env)
    again = json.loads(again_run.stdout)
    assert (again["imported"], again["already_present"], again_run.exit_code) == (0, 1, 3)
    pbx.cdr.write_text("")
    pbx.add_rows([asterisk_row("1772442000.1")])
    clean = runner.invoke(cli, args, env=env)
    assert clean.exit_code == 0 and json.loads(clean.stdout)["already_present"] == 1  # every line present
    watch = runner.invoke(cli, args + ["--watch", "--watch-iterations", "1"], env=env)
    assert watch.exit_code == 0 and json.loads(watch.stdout)["already_present"] == 1
    missing = runner.invoke(cli, ["ingest", "freepbx", "--cdr", str(tmp_path / "nope.csv")], env=env)
    assert missing.exit_code != 0 and "does not exist" in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1
    routes = runner.invoke(cli, ["calls", "routes", "add", "914245000", "NOPE"], env=env)
    assert routes.exit_code != 0 and "no department" in routes.stderr


async def test_freepbx_export_without_header_uses_the_given_columns(store, pbx: FakePbx) -> None:
    from tests.fixtures.calls import FREEPBX_HEADER

    columns = (
        "calldate",
        "clid",
        "src",
        "dst",
        "dcontext",
        "channel",
        "dstchannel",
        "lastapp",
        "lastdata",
        "duration",
        "billsec",
        "disposition",
        "amaflags",
        "accountcode",
        "uniqueid",
        "userfield",
        "did",
        "recordingfile",
        "linkedid",
        "sequence",
    )
    row = {**freepbx_row("1772442000.1"), "clid": '"Jan ""Janek"" K" <601234567>'}
    pbx.cdr.write_text(",".join('"' + str(row[c]).replace('"', '""') + '"' for c in columns) + "\n")
    report = await ingest(store, pbx, "freepbx", columns=",".join(columns))
    assert (report.imported, report.rejected) == (1, [])
    assert set(columns) <= set(FREEPBX_HEADER)


async def test_watch_reports_a_bad_recording_once_and_retries_it_when_it_changes(store, pbx: FakePbx) -> None:
    bad = pbx.monitor / "1772442000.1.wav"
    bad.write_text("not audio yet")
    pbx.add_rows([asterisk_row("1772442000.1")])
    src = store.calls.source("asterisk", pbx.cdr, pbx.monitor)
    first = await store.calls.ingest(SYSTEM, src, final=False)
    second = await store.calls.ingest(SYSTEM, src, final=False)
    assert [r.file for r in first.rejected] == ["1772442000.1.wav"] and second.rejected == []
    write_pcm_wav(bad, 0.3)  # the file changed: looked at again
    third = await store.calls.ingest(SYSTEM, src, final=False)
    assert (third.recordings, third.rejected) == (1, [])


async def test_recordings_registered_in_batches_keep_the_audit_chain_and_its_macs_intact(store, pbx: FakePbx) -> None:
    """The batched recording registration writes its audit entries itself: each must be chained and MACed."""
    pbx.add_rows([asterisk_row(f"1772442000.{n}") for n in range(1, 4)])
    for n in range(1, 4):
        write_pcm_wav(pbx.monitor / f"1772442000.{n}.wav", seconds=0.5)
    report = await ingest(store, pbx)
    assert report.imported == 3 and len(await recordings(store)) == 3
    check = await store.audit.verify()
    assert check.ok, check
