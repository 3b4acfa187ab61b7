"""Formats of call ingestion: WAV PCM/GSM parsing, §4.7 numbers, cdr_csv and FreePBX lines, notice stamps."""

from __future__ import annotations

import struct
from datetime import datetime, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from store.audio import AudioError, level_envelope, probe_file
from store.calls import (
    ASTERISK_FIXED,
    CdrParser,
    CdrRecord,
    Rejection,
    channel_extension,
    freepbx_recording_type,
    id_tokens,
    normalise_number,
    parse_columns,
    parse_notice_stamp,
    resolve_recordingfile,
    split_lines,
)
from store.errors import InvalidInput
from tests.fixtures.calls import (
    asterisk_row,
    cdr_csv_line,
    freepbx_csv,
    freepbx_row,
    write_empty_wav,
    write_gsm_wav,
    write_pcm_wav,
)

WARSAW = ZoneInfo("Europe/Warsaw")
COLUMNS = ASTERISK_FIXED + ("uniqueid", "userfield")


def parse(line: str | bytes, columns=COLUMNS) -> CdrRecord | Rejection | None:
    raw = line if isinstance(line, bytes) else line.encode("utf-8")
    return CdrParser("asterisk", WARSAW, columns).parse_line(7, raw)


# -- audio -------------------------------------------------------------------------------------


def test_truncated_wav_is_refused(tmp_path: Path) -> None:
    path = write_pcm_wav(tmp_path / "a.wav", 1.0)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(AudioError, match="truncated"):
        probe_file(path)


def test_file_that_is_not_audio_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "x.wav"
    path.write_text("root:x:0:0:root:/root:/bin/bash\n")
    with pytest.raises(AudioError, match="not a WAV"):
        probe_file(path)


def test_header_only_riff_without_data_chunk_is_truncated(tmp_path: Path) -> None:
    path = tmp_path / "x.wav"
    fmt = struct.pack("<HHIIHH", 1, 1, 8000, 16000, 2, 16)
    path.write_bytes(b"RIFF" + struct.pack("<I", 28) + b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt)
    with pytest.raises(AudioError, match="no data chunk"):
        probe_file(path)


def test_unknown_wave_format_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "x.wav"
    fmt = struct.pack("<HHIIHH", 0x0055, 1, 8000, 2000, 1, 0)  # mp3-in-wav
    body = b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt + b"data" + struct.pack("<I", 4) + b"\0\0\0\0"
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    with pytest.raises(AudioError, match="0x0055"):
        probe_file(path)


def test_unfinished_header_of_a_recording_in_progress_is_refused(tmp_path: Path) -> None:
    path = write_pcm_wav(tmp_path / "a.wav", 0.5)
    data = bytearray(path.read_bytes())
    data[40:44] = b"\0\0\0\0"  # data size not yet written by the PBX
    path.write_bytes(bytes(data))
    with pytest.raises(AudioError, match="unfinished"):
        probe_file(path)


def test_pcm_wav_duration_and_format(tmp_path: Path) -> None:
    info = probe_file(write_pcm_wav(tmp_path / "a.wav", 1.5))
    assert (info.format, info.duration_s, info.is_empty) == ("wav-pcm", 1.5, False)
    assert (info.channels, info.sample_rate, info.bits_per_sample) == (1, 8000, 16)


def test_gsm_wav_is_parsed_from_its_chunks(tmp_path: Path) -> None:
    info = probe_file(write_gsm_wav(tmp_path / "a.WAV", 2.0))
    assert (info.format, info.duration_s) == ("wav-gsm", 2.0)
    without_fact = probe_file(write_gsm_wav(tmp_path / "b.wav", 4.0, with_fact=False))
    assert without_fact.duration_s == 4.0


def test_empty_44_byte_wav_is_flagged(tmp_path: Path) -> None:
    info = probe_file(write_empty_wav(tmp_path / "e.wav"))
    assert info.is_empty and info.duration_s == 0


def test_mp3_is_checked_by_content_not_by_extension(tmp_path: Path) -> None:
    # an ID3 tag with nothing after it used to pass by its name; the content check refuses it
    # (real MP3s from lame: tests/test_hardening_files.py)
    (tmp_path / "a.mp3").write_bytes(b"ID3\x03\x00" + b"\0" * 100)
    with pytest.raises(AudioError, match="not an MP3 recording"):
        probe_file(tmp_path / "a.mp3")
    (tmp_path / "b.mp3").write_bytes(b"")
    with pytest.raises(AudioError, match="empty"):
        probe_file(tmp_path / "b.mp3")


def test_level_envelope_shows_silence_then_sound(tmp_path: Path) -> None:
    levels = level_envelope(write_pcm_wav(tmp_path / "a.wav", 1.0, silent_first_half=True), buckets=10)
    assert len(levels) == 10
    assert max(levels[:4]) == 0 and min(levels[6:]) > 0.3
    assert level_envelope(write_gsm_wav(tmp_path / "g.wav")) == []


# -- numbers (§4.7) ----------------------------------------------------------------------------


@pytest.mark.ordinance("§4.7")
@pytest.mark.parametrize(
    "raw",
    [
        "anonymous",
        "Anonymous",
        "unknown",
        "restricted",
        "private",
        "unavailable",
        "",
        "  ",
        "abc",
        "60123456x",
        "s",
        "0",
        "12",
        "1234567890123456789",
    ],
)
def test_withheld_empty_and_non_numeric_numbers_are_not_identifiable(raw: str) -> None:
    info = normalise_number(raw)
    assert not info.identifiable and info.normalised is None and info.reversed_digits is None


@pytest.mark.ordinance("§4.7")
@pytest.mark.parametrize(
    "raw",
    ["601234567", "+48601234567", "0048601234567", "48601234567", "0601234567", "+48 601-234-567", "(60) 123 45 67"],
)
def test_national_and_international_forms_normalise_to_one_number(raw: str) -> None:
    info = normalise_number(raw)
    assert info.identifiable and info.stored == "+48601234567"
    assert info.reversed_digits == "76543210684"


def test_foreign_numbers_keep_their_country_code() -> None:
    assert normalise_number("+4930123456").stored == "+4930123456"
    assert normalise_number("004930123456").stored == "+4930123456"


# -- cdr_csv lines -----------------------------------------------------------------------------


def test_wrong_column_count_is_rejected() -> None:
    line = cdr_csv_line(asterisk_row("1.1"), COLUMNS)
    result = parse(line + ',"extra"')
    assert isinstance(result, Rejection) and result.line == 7 and "expected 18 columns, found 19" in result.reason


def test_broken_quoting_is_rejected() -> None:
    result = parse('"","601234567","800","from-trunk,"clid"')
    assert isinstance(result, Rejection) and "quoting" in result.reason


@pytest.mark.parametrize(
    "start,reason",
    [
        ("2026-02-30 10:00:00", "impossible start"),
        ("2026-03-02 25:00:00", "impossible start"),
        ("yesterday", "impossible start"),
        ("", "start time is missing"),
    ],
)
def test_impossible_dates_are_rejected(start: str, reason: str) -> None:
    result = parse(cdr_csv_line(asterisk_row("1.1", start=start), COLUMNS))
    assert isinstance(result, Rejection) and reason in result.reason


@pytest.mark.parametrize(
    "kwargs,reason",
    [
        ({"duration": -5}, "negative duration"),
        ({"billsec": -1}, "negative billsec"),
        ({"duration": "ten"}, "not a whole number"),
        ({"billsec": 500, "duration": 20}, "longer than the duration"),
        ({"end": "2026-03-02 09:00:00"}, "ends before it starts"),
        ({"uniqueid": ""}, "no uniqueid"),
        ({"uniqueid": "../../x"}, "malformed uniqueid"),
    ],
)
def test_negative_and_inconsistent_durations_are_rejected(kwargs: dict, reason: str) -> None:
    kwargs = dict(kwargs)
    row = asterisk_row(kwargs.pop("uniqueid", "1.1"), **kwargs)
    result = parse(cdr_csv_line(row, COLUMNS))
    assert isinstance(result, Rejection) and reason in result.reason, result


def test_non_utf8_line_is_read_with_the_fallback_or_rejected_under_an_explicit_encoding() -> None:
    good = cdr_csv_line(asterisk_row("1.1", src="601234567"), COLUMNS)
    # an ISDN gateway's ISO-8859-2 caller name: "Łukasz Wójcik"
    latin2 = good.replace("Jan Kowalski", "Łukasz Wójcik").encode("iso-8859-2")
    result = CdrParser("asterisk", WARSAW, COLUMNS).parse_line(7, latin2)
    assert isinstance(result, CdrRecord) and "Łukasz Wójcik" in result.clid
    # Windows-1250 (bytes 0x80-0x9F, e.g. ś = 0x9c) falls back to cp1250
    cp1250 = good.replace("Jan Kowalski", "Świętosław Źdźbło").encode("cp1250")
    result = CdrParser("asterisk", WARSAW, COLUMNS).parse_line(7, cp1250)
    assert isinstance(result, CdrRecord) and "Świętosław Źdźbło" in result.clid
    strict = CdrParser("asterisk", WARSAW, COLUMNS, encoding="utf-8").parse_line(7, latin2)
    assert isinstance(strict, Rejection) and "utf-8" in strict.reason and "0xa3" in strict.reason
    named = CdrParser("asterisk", WARSAW, COLUMNS, encoding="iso-8859-2").parse_line(7, latin2)
    assert isinstance(named, CdrRecord) and "Łukasz" in named.clid
    with pytest.raises(InvalidInput, match="unknown encoding"):
        CdrParser("asterisk", WARSAW, COLUMNS, encoding="klingon")


def test_cdr_csv_line_with_escaped_quotes_and_empty_answer_time() -> None:
    row = asterisk_row(
        "1772442000.17",
        disposition="NO ANSWER",
        answer="",
        billsec=0,
        clid='"Kowalski ""Janek""" <601234567>',
        userfield="cim:notice=1;full=0",
    )
    result = parse(cdr_csv_line(row, COLUMNS))
    assert isinstance(result, CdrRecord)
    assert result.answer is None and result.clid == '"Kowalski ""Janek""" <601234567>'
    assert result.start == datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)  # 10:00 CET
    assert result.end == datetime(2026, 3, 2, 9, 2, 5, tzinfo=timezone.utc)
    assert result.uniqueid == "1772442000.17" and result.disposition == "NO ANSWER"


def test_summer_time_is_converted_with_the_zone() -> None:
    row = asterisk_row("1.1", start="2026-07-01 10:00:00", answer="", end="2026-07-01 10:01:00", duration=60, billsec=0)
    result = parse(cdr_csv_line(row, COLUMNS))
    assert result.start == datetime(2026, 7, 1, 8, 0, tzinfo=timezone.utc)  # 10:00 CEST


def test_optional_columns_as_configured() -> None:
    columns = parse_columns("uniqueid,userfield,peeraccount,linkedid,sequence", "asterisk")
    assert columns[:16] == ASTERISK_FIXED and columns[16:] == (
        "uniqueid",
        "userfield",
        "peeraccount",
        "linkedid",
        "sequence",
    )
    row = asterisk_row("1.2", linkedid="1.1", sequence="4")
    result = parse(cdr_csv_line(row, columns), columns)
    assert (result.linkedid, result.sequence, result.leg_key, result.group_key) == ("1.1", "4", "1.2#4", "1.1")
    with pytest.raises(InvalidInput, match="unknown"):
        parse_columns("uniqueid,colour", "asterisk")
    with pytest.raises(InvalidInput, match="uniqueid"):
        parse_columns("userfield", "asterisk")


def test_split_lines_leaves_a_partial_tail() -> None:
    lines, consumed = split_lines(b"a\nb\npart", 10)
    assert lines == [(10, b"a"), (11, b"b")] and consumed == 4


# -- FreePBX -----------------------------------------------------------------------------------


def test_freepbx_header_then_rows() -> None:
    text = freepbx_csv(
        [freepbx_row("1772442000.5", recordingfile="in-914245000-601234567-20260302-100000-1772442000.5.wav")]
    )
    parser = CdrParser("freepbx", WARSAW)
    lines, _ = split_lines(text.encode(), 1)
    assert parser.parse_line(*lines[0]) is None
    rec = parser.parse_line(*lines[1])
    assert isinstance(rec, CdrRecord) and rec.did == "914245000"
    assert rec.end == datetime(2026, 3, 2, 9, 2, 5, tzinfo=timezone.utc)
    assert freepbx_recording_type(rec.recordingfile) == "in"


def test_freepbx_export_without_the_needed_columns_fails_clearly() -> None:
    parser = CdrParser("freepbx", WARSAW)
    with pytest.raises(InvalidInput, match="calldate"):
        parser.parse_line(1, b"foo,bar\n")


@pytest.mark.parametrize(
    "name,kind",
    [
        ("in-914245000-601234567-20260302-100000-1772442000.5.wav", "in"),
        ("out-601234567-201-20260302-100000-1772442000.6.wav", "out"),
        ("internal-202-201-20260302-100000-1772442000.7.wav", "internal"),
        ("external-201-601234567-20260302-100000-1772442000.8.wav", "external"),
        ("q-800-601234567-20260302-100000-1772442000.9.wav", "q"),
        ("rg-600-601234567-20260302-100000-1772442000.10.wav", "rg"),
        ("1772442000.11.wav", None),
    ],
)
def test_freepbx_recording_names(name: str, kind: str | None) -> None:
    assert freepbx_recording_type(name) == kind
    assert id_tokens(name)[0] == name.rsplit("-", 1)[-1].removesuffix(".wav")


def test_recordingfile_outside_the_folder_is_refused(tmp_path: Path) -> None:
    start = datetime(2026, 3, 2, 9, tzinfo=timezone.utc)
    for hostile in ("../../etc/passwd", "/etc/passwd", "2026/../../../etc/passwd"):
        with pytest.raises(InvalidInput, match="outside"):
            resolve_recordingfile(tmp_path, hostile, start, WARSAW)
    found = resolve_recordingfile(tmp_path, "x-1.2.wav", start, WARSAW)
    assert found == tmp_path / "2026/03/02/x-1.2.wav"


def test_channel_extension() -> None:
    assert channel_extension("PJSIP/201-0000002a") == "201"
    assert channel_extension("SIP/202-00000001") == "202"
    assert channel_extension("Local/203@from-queue-00000004;2") == "203"
    assert channel_extension("") is None


@pytest.mark.ordinance("§1.4")
def test_notice_stamp_parsing() -> None:
    assert parse_notice_stamp("cim:notice=1;full=1") == (1, True)
    assert parse_notice_stamp("x|cim:notice=3;full=0") == (3, False)
    assert parse_notice_stamp("cim:notice=2") == (2, False)
    assert parse_notice_stamp("") == (None, None)
    assert parse_notice_stamp("notice=1") == (None, None)
