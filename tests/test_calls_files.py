"""The files real PBXs write: every cdr.conf / cdr_custom layout, compiled defaults and CEL refused with the cdr.conf
lines to set, raw GSM / wav16 / wav49 recordings, one-touch and systemname names, durable batches and hard links."""

from __future__ import annotations

import json
import os
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner

from cim.cli import cli
from store.audio import AudioError, probe_file
from store.calls import ASTERISK_FIXED, CdrParser, CdrRecord, Rejection, make_durable, parse_columns
from store.errors import InvalidInput
from store.models import Actor
from tests.fixtures.calls import FakePbx, asterisk_row, call_details, cdr_csv_line, freepbx_csv, freepbx_row
from tests.fixtures.pbx_scenarios import (
    CDR_CUSTOM_SAMPLE,
    CDR_CUSTOM_SAMPLE_MAPPING,
    CSV_18,
    CSV_21,
    asterisk_sound,
    leg,
    queue_member_attempts,
)

SYSTEM = Actor.system("tests")
WARSAW = ZoneInfo("Europe/Warsaw")


async def ingest(store, pbx: FakePbx, kind: str = "asterisk", **kwargs):
    return await store.calls.ingest(SYSTEM, store.calls.source(kind, pbx.cdr, pbx.monitor, **kwargs))


def custom_line(values: dict, columns: tuple[str, ...]) -> str:
    """cdr_custom's legacy mapping: CSV_QUOTE around every field but the sequence."""
    return ",".join(
        str(values.get(c, "")) if c == "sequence" else '"' + str(values.get(c, "")).replace('"', '""') + '"'
        for c in columns
    )


# -- layouts ----------------------------------------------------------------------------------


def test_without_columns_the_layout_follows_each_lines_column_count() -> None:
    parser = CdrParser("asterisk", WARSAW)
    row = asterisk_row("1772442000.1", linkedid="1772442000.1", sequence="7")
    for columns in (
        ASTERISK_FIXED + ("uniqueid",),
        CSV_18,
        ASTERISK_FIXED + ("uniqueid", "peeraccount", "linkedid", "sequence"),
        CSV_21,
    ):
        parsed = parser.parse_line(1, cdr_csv_line(row, columns).encode())
        assert isinstance(parsed, CdrRecord) and parsed.uniqueid == "1772442000.1", (columns, parsed)
        assert parsed.linkedid == ("1772442000.1" if "linkedid" in columns else None)


def test_compiled_defaults_are_refused_with_the_cdr_conf_lines_to_set() -> None:
    parser = CdrParser("asterisk", WARSAW)
    parsed = parser.parse_line(3, cdr_csv_line(asterisk_row("1.1"), ASTERISK_FIXED).encode())
    assert isinstance(parsed, Rejection)
    assert "loguniqueid=no" in parsed.reason and "loguniqueid=yes" in parsed.reason
    assert "loguserfield=yes" in parsed.reason and "cdr.conf" in parsed.reason and "[csv]" in parsed.reason


def test_a_cel_file_is_refused_with_a_sentence_naming_cdr_conf() -> None:
    cel = (
        '"CHAN_START","2026-03-02 10:00:00","Jan","601234567","","","","800","from-trunk",'
        '"PJSIP/trunk-00000001","","","3","","1772442000.1","1772442000.1","","","",""'
    )
    with pytest.raises(InvalidInput) as caught:
        CdrParser("asterisk", WARSAW).parse_line(1, cel.encode())
    assert "CEL" in caught.value.message and "cdr.conf" in caught.value.message
    assert "loguniqueid=yes" in caught.value.message
    # cel.conf's default eventtime (seconds.microseconds), and the sample mapping's literal second field
    for line in ('"HANGUP","1772442000.123456","Jan","601234567"', '"ANSWER","My Literal","2026-03-02 10:00:05"'):
        with pytest.raises(InvalidInput, match="CEL"):
            CdrParser("asterisk", WARSAW).parse_line(1, line.encode())


@pytest.mark.parametrize(
    "spec",
    [
        CDR_CUSTOM_SAMPLE_MAPPING,
        ",".join(CDR_CUSTOM_SAMPLE),
        ",".join(CDR_CUSTOM_SAMPLE).replace("uniqueid", "uniqueid(noquote)"),
    ],
    ids=["pasted-mapping", "names", "advanced-qualifiers"],
)
def test_cdr_custom_sample_layout_with_clid_first(spec: str) -> None:
    columns = parse_columns(spec, "asterisk")
    assert columns == CDR_CUSTOM_SAMPLE
    line = custom_line(asterisk_row("1772442000.5", sequence="3"), CDR_CUSTOM_SAMPLE)
    parsed = CdrParser("asterisk", WARSAW, columns).parse_line(1, line.encode())
    assert isinstance(parsed, CdrRecord)
    assert (parsed.uniqueid, parsed.sequence, parsed.duration, parsed.billsec) == ("1772442000.5", "3", 125, 120)
    # and recognised without --columns (the sample's 19 columns, clid first)
    auto = CdrParser("asterisk", WARSAW).parse_line(1, line.encode())
    assert isinstance(auto, CdrRecord) and auto.leg_key == "1772442000.5#3"


def test_literal_and_user_variable_columns_are_skipped_and_unknown_names_refused() -> None:
    spec = (
        'clid,"Some Literal",src,dst,dcontext,channel,dstchannel,lastapp,lastdata,start,answer,end,duration,'
        "billsec,disposition,amaflags,accountcode,uniqueid(noquote),userfield,sequence,ds_type(uservar)"
    )
    columns = parse_columns(spec, "asterisk")
    assert columns[1] == "-" and columns[-1] == "-" and "uniqueid" in columns
    with pytest.raises(InvalidInput, match="unknown CDR column"):
        parse_columns("uniqueid,colour", "asterisk")
    with pytest.raises(InvalidInput, match="loguniqueid=yes"):
        parse_columns("clid,src,dst,start", "asterisk")


async def test_a_file_of_the_compiled_defaults_imports_nothing_and_says_what_to_set(store, pbx) -> None:
    pbx.add_rows([asterisk_row("1.1")], ASTERISK_FIXED)
    pbx.add_rows(queue_member_attempts(), CSV_18)  # after cdr.conf was fixed: imported
    report = await ingest(store, pbx)
    assert report.imported == 2 and [r.line for r in report.rejected] == [1]
    assert "loguniqueid=yes" in report.rejected[0].reason


def test_cli_refuses_a_cel_file_in_one_sentence(tmp_path: Path) -> None:
    cdr = tmp_path / "Master.csv"
    cdr.write_text(
        '"ANSWER","2026-03-02 10:00:05","Jan","601234567","","","","800","from-trunk",'
        '"PJSIP/trunk-00000001","Queue","cim","3","","1772442000.1","1772442000.1","","","",""\n'
    )
    env = {"CIM_DATA_DIR": str(tmp_path / "data")}
    runner = CliRunner()
    assert runner.invoke(cli, ["init"], env=env).exit_code == 0
    result = runner.invoke(cli, ["ingest", "asterisk", "--cdr", str(cdr)], env=env)
    assert result.exit_code == 1 and "CEL" in result.stderr and "cdr.conf" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_cli_encoding_option_decodes_iso_8859_2_names(tmp_path: Path) -> None:
    pbx = FakePbx(tmp_path / "pbx")
    line = cdr_csv_line(asterisk_row("1772442000.1", clid='"Łucja Śliwińska" <601234567>'), CSV_18)
    pbx.append(line.encode("iso-8859-2") + b"\n")
    env = {"CIM_DATA_DIR": str(tmp_path / "data")}
    runner = CliRunner()
    assert runner.invoke(cli, ["init"], env=env).exit_code == 0
    args = ["ingest", "asterisk", "--cdr", str(pbx.cdr), "--json"]
    strict = runner.invoke(cli, args + ["--encoding", "utf-8"], env=env)
    assert strict.exit_code == 3 and "utf-8" in json.loads(strict.stdout)["rejected"][0]["reason"]
    named = runner.invoke(cli, args + ["--encoding", "iso-8859-2"], env=env)
    assert named.exit_code == 0 and json.loads(named.stdout)["imported"] == 1


# -- recordings as real PBXs name and write them ----------------------------------------------


def test_raw_gsm_duration_comes_from_its_33_byte_frames(tmp_path: Path) -> None:
    gsm = asterisk_sound(tmp_path / "1772442000.1.gsm", "vm-intro", "gsm")
    info = probe_file(gsm)
    frames = gsm.stat().st_size // 33
    assert (info.format, info.duration_s, info.is_empty) == ("gsm", round(frames * 0.02, 3), False)
    broken = tmp_path / "cut.gsm"
    broken.write_bytes(gsm.read_bytes()[:-5])
    with pytest.raises(AudioError, match="33-byte"):
        probe_file(broken)
    fake = tmp_path / "fake.gsm"
    fake.write_bytes(b"\x00" * 33 * 10)
    with pytest.raises(AudioError, match="signature"):
        probe_file(fake)


@pytest.mark.parametrize(
    "kind,suffix,fmt,rate",
    [("wav16", ".wav16", "wav-pcm", 16000), ("wav49", ".WAV", "wav-gsm", 8000), ("wav", ".wav", "wav-pcm", 8000)],
)
def test_asterisk_wav_formats(tmp_path: Path, kind: str, suffix: str, fmt: str, rate: int) -> None:
    info = probe_file(asterisk_sound(tmp_path / f"x{suffix}", "vm-intro", kind))
    assert (info.format, info.sample_rate) == (fmt, rate)
    assert 5.0 < info.duration_s < 6.5  # vm-intro is about 5.7 s


async def test_raw_gsm_recordings_are_accepted_in_asterisk_and_freepbx_mode(store, pbx, tmp_path: Path) -> None:
    pbx.add_rows(queue_member_attempts("1772442000.10"), CSV_18)
    asterisk_sound(pbx.monitor / "1772442000.10.gsm")
    report = await ingest(store, pbx)
    assert (report.recordings, report.rejected) == (1, [])
    other = FakePbx(tmp_path / "freepbx")
    name = "in-914245000-601234567-20260302-110000-1772445600.3.gsm"
    other.cdr.write_text(freepbx_csv([freepbx_row("1772445600.3", calldate="2026-03-02 11:00:00", recordingfile=name)]))
    asterisk_sound(other.monitor / "2026/03/02" / name)
    report = await ingest(store, other, "freepbx")
    assert (report.recordings, report.rejected) == (1, [])
    recordings = sorted((r for call in await call_details(store) for r in call.recordings), key=lambda r: r.id)
    formats = [r.format for r in recordings]
    assert formats == ["gsm", "gsm"]


async def test_systemname_uniqueids_match_their_recordings(store, pbx) -> None:
    pbx.add_rows(
        [
            leg(
                "pbx1-1772442000.7",
                channel="PJSIP/trunk-00000300",
                dstchannel="PJSIP/201-00000301",
                start="2026-03-02 10:00:00",
                answer="2026-03-02 10:00:05",
                end="2026-03-02 10:01:00",
                duration=60,
                billsec=55,
                disposition="ANSWERED",
            )
        ],
        CSV_18,
    )
    asterisk_sound(pbx.monitor / "pbx1-1772442000.7.wav", kind="wav")
    asterisk_sound(pbx.monitor / "q-800-601234567-20260302-100000-pbx1-1772442000.7.gsm")
    report = await ingest(store, pbx)
    assert (report.recordings, report.recordings_without_call, report.rejected) == (2, 0, [])


async def test_one_touch_recording_is_matched_by_time_and_parties(store, pbx, make_staff) -> None:
    await make_staff("anna", "consultant", extensions=("201",))
    pbx.add_rows(
        [
            leg(
                "1772442000.11",
                channel="PJSIP/trunk-00000310",
                dstchannel="PJSIP/201-00000311",
                start="2026-03-02 10:00:00",
                answer="2026-03-02 10:00:05",
                end="2026-03-02 10:05:00",
                duration=300,
                billsec=295,
                disposition="ANSWERED",
            ),
            leg(
                "1772442000.12",
                src="512345678",
                channel="PJSIP/trunk-00000312",
                dstchannel="PJSIP/202-00000313",
                start="2026-03-02 10:00:30",
                answer="2026-03-02 10:00:35",
                end="2026-03-02 10:04:00",
                duration=210,
                billsec=205,
                disposition="ANSWERED",
            ),
        ],
        CSV_18,
    )
    # automixmon started 10:01:00 local = 09:01:00Z by 201 talking with 601234567
    asterisk_sound(pbx.monitor / "auto-1772442060-601234567-201.wav", kind="wav")
    report = await ingest(store, pbx)
    assert (report.recordings, report.ambiguous_recordings) == (1, [])
    assert [call.pbx_uniqueid for call in await call_details(store) if call.recordings] == ["1772442000.11"]


async def test_an_ambiguous_one_touch_recording_is_reported_not_attached(store, pbx) -> None:
    # the same resident on two calls at once (two lines of the office), both answered by 201
    for n, uid in enumerate(("1772442000.21", "1772442000.22")):
        pbx.add_rows(
            [
                leg(
                    uid,
                    channel=f"PJSIP/trunk-0000032{n}",
                    dstchannel=f"PJSIP/201-0000033{n}",
                    start="2026-03-02 10:00:00",
                    answer="2026-03-02 10:00:05",
                    end="2026-03-02 10:05:00",
                    duration=300,
                    billsec=295,
                    disposition="ANSWERED",
                )
            ],
            CSV_18,
        )
    asterisk_sound(pbx.monitor / "auto-1772442060-601234567-201.wav", kind="wav")
    report = await ingest(store, pbx)
    assert report.recordings == 0 and report.recordings_without_call == 1
    (ambiguous,) = report.ambiguous_recordings
    assert ambiguous["file"] == "auto-1772442060-601234567-201.wav" and len(ambiguous["calls"]) == 2
    assert report.as_json()["ambiguous_recordings"] == [ambiguous]


# -- durability and --move ---------------------------------------------------------------------


async def test_move_seals_a_copy_and_removes_the_plain_source(store, pbx) -> None:
    """--move with crypto-shredding: the managed file is a sealed copy (a hard link would leave the
    plaintext readable under the managed name), and the PBX's plain file goes once the rows commit."""
    from store.keys import file_key_id, open_plain

    pbx.add_rows(queue_member_attempts("1772442000.10"), CSV_18)
    source = asterisk_sound(pbx.monitor / "1772442000.10.gsm")
    plain, inode = source.read_bytes(), os.stat(source).st_ino
    report = await ingest(store, pbx, move=True)
    assert report.recordings == 1 and not source.exists()
    ((recording,),) = [call.recordings for call in await call_details(store) if call.recordings]
    managed = store.settings.recordings_dir / recording.path
    assert oct(managed.stat().st_mode & 0o777) == "0o600"
    assert managed.stat().st_ino != inode and file_key_id(managed) is not None  # sealed, never linked
    assert plain not in managed.read_bytes()
    with open_plain(managed, 0) as fh:
        assert fh.read() == plain  # the sealed copy opens to exactly what the PBX wrote


def test_make_durable_with_parallel_fsyncs_and_with_syncfs(tmp_path: Path) -> None:
    root = tmp_path / "recordings"
    files = []
    for i in range(5):
        path = root / "2026/03/02" / f"{i}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x" * 100)
        files.append(path)
    make_durable(root, files, use_syncfs=False)
    make_durable(root, files)
    make_durable(root, [])
    with pytest.raises(FileNotFoundError):
        make_durable(root, [root / "missing" / "x.wav"], use_syncfs=False)


def test_usegmtime_yes_of_the_cdr_conf_sample_reads_with_timezone_utc() -> None:
    parsed = CdrParser("asterisk", ZoneInfo("UTC")).parse_line(1, cdr_csv_line(asterisk_row("1.1"), CSV_18).encode())
    assert isinstance(parsed, CdrRecord) and parsed.start.isoformat() == "2026-03-02T10:00:00+00:00"


def test_a_cdr_line_whose_accountcode_is_a_cel_word_is_still_a_cdr() -> None:
    row = asterisk_row("1772442000.1")
    row["accountcode"] = "ANSWER"
    parsed = CdrParser("asterisk", WARSAW).parse_line(1, cdr_csv_line(row, CSV_18).encode())
    assert isinstance(parsed, CdrRecord)


def test_a_hard_link_is_made_only_to_the_file_that_was_opened(tmp_path: Path) -> None:
    import hashlib
    import io

    from store.calls import _link_into

    opened = asterisk_sound(tmp_path / "spool" / "a.gsm")
    swapped = tmp_path / "spool" / "b.gsm"
    swapped.write_bytes(b"\xd0" * 33)
    dest = tmp_path / "managed" / "a.gsm"
    dest.parent.mkdir()
    with open(opened, "rb", buffering=0) as raw:
        # the name now points at another file than the descriptor parsed: no link, the caller copies
        assert _link_into(swapped, dest, raw, io.BytesIO(opened.read_bytes()), hashlib.sha256(), False) is False
        assert not dest.exists() and list(dest.parent.iterdir()) == []
        assert _link_into(opened, dest, raw, io.BytesIO(opened.read_bytes()), hashlib.sha256(), False) is True
    assert dest.stat().st_ino == opened.stat().st_ino


async def test_watch_waits_for_a_raw_gsm_recording_to_stop_growing(store, pbx) -> None:
    pbx.add_rows(queue_member_attempts("1772442000.10"), CSV_18)
    growing = asterisk_sound(pbx.monitor / "1772442000.10.gsm")
    src = store.calls.source("asterisk", pbx.cdr, pbx.monitor)
    poll = await store.calls.ingest(SYSTEM, src, final=False)  # --watch: just written, maybe still recording
    assert (poll.imported, poll.recordings, poll.recordings_without_call) == (2, 0, 0)
    old = growing.stat().st_mtime - 60
    os.utime(growing, (old, old))  # unchanged for a minute: finished
    poll = await store.calls.ingest(SYSTEM, src, final=False)
    assert (poll.recordings, poll.rejected) == (1, [])
