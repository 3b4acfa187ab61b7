"""Property-based fuzzing of the CDR parsers and recording paths: arbitrary lines never crash, only reject with a reason."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from store.calls import (
    ASTERISK_DEFAULT_EXTRA,
    ASTERISK_FIXED,
    FREEPBX_REQUIRED,
    CdrParser,
    CdrRecord,
    Rejection,
    resolve_recordingfile,
    split_lines,
)
from store.errors import InvalidInput
from tests.fixtures.calls import FREEPBX_HEADER, asterisk_row, cdr_csv_line
from tests.fixtures.reliability import FUZZ

ZONE = ZoneInfo("Europe/Warsaw")
ASTERISK_COLUMNS = ASTERISK_FIXED + ASTERISK_DEFAULT_EXTRA
FUZZ_SETTINGS = settings(
    FUZZ, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)

#: Field values a PBX (or a broken export) might write: plausible ones, edge cases and garbage.
field_values = st.one_of(
    st.text(max_size=30),
    st.sampled_from(
        [
            "",
            "0",
            "-1",
            "604800",
            "604801",
            "99999999999999999999",
            "1.5",
            " 12 ",
            "NaN",
            "2026-03-02 10:00:00",
            "2026-02-30 10:00:00",
            "2026-03-29 02:30:00",
            "0000-00-00 00:00:00",
            "1772442000.1",
            "../../etc/passwd",
            "a/b",
            "x\\y",
            "#1",
            "ANSWERED",
            "NO ANSWER",
            '"Jan" <601234567>',
            "anonymous",
            "\x00",
            "\u202e",
            "é" * 200,
        ]
    ),
    st.integers().map(str),
)


def check(parsed: object, number: int) -> None:
    assert parsed is None or isinstance(parsed, (CdrRecord, Rejection)), parsed
    if isinstance(parsed, Rejection):
        assert parsed.line == number and isinstance(parsed.reason, str) and parsed.reason.strip()
    if isinstance(parsed, CdrRecord):
        assert parsed.uniqueid and parsed.duration >= parsed.billsec >= 0
        assert parsed.start.tzinfo is not None
        assert parsed.end is None or parsed.end >= parsed.start


@FUZZ_SETTINGS
@given(st.binary(max_size=600))
def test_arbitrary_bytes_are_parsed_or_rejected_never_raised_asterisk(raw: bytes) -> None:
    parser = CdrParser("asterisk", ZONE)
    for number, line in split_lines(raw + b"\n", 1)[0]:
        check(parser.parse_line(number, line), number)


@FUZZ_SETTINGS
@given(st.dictionaries(st.sampled_from(ASTERISK_COLUMNS), field_values))
def test_csv_lines_with_arbitrary_fields_are_parsed_or_rejected_asterisk(changes: dict) -> None:
    values = {**asterisk_row("1772442000.1"), **changes}
    line = cdr_csv_line(values, ASTERISK_COLUMNS).encode("utf-8")
    check(CdrParser("asterisk", ZONE).parse_line(7, line), 7)


@FUZZ_SETTINGS
@given(st.dictionaries(st.sampled_from(FREEPBX_HEADER), field_values), st.binary(max_size=200))
def test_freepbx_lines_after_a_header_are_parsed_or_rejected(changes: dict, garbage: bytes) -> None:
    parser = CdrParser("freepbx", ZONE)
    header = ",".join(FREEPBX_HEADER).encode()
    assert parser.parse_line(1, header) is None
    values = {c: "" for c in FREEPBX_HEADER}
    values.update(
        {
            "calldate": "2026-03-02 10:00:00",
            "src": "601234567",
            "dst": "201",
            "duration": "60",
            "billsec": "50",
            "disposition": "ANSWERED",
            "uniqueid": "1772442000.1",
        },
        **changes,
    )
    line = ",".join('"' + str(values[c]).replace('"', '""') + '"' for c in FREEPBX_HEADER).encode("utf-8")
    check(parser.parse_line(2, line), 2)
    check(parser.parse_line(3, garbage.replace(b"\n", b"")), 3)


@FUZZ_SETTINGS
@given(st.binary(max_size=300))
def test_a_freepbx_file_without_a_proper_header_is_refused_with_a_reason(first_line: bytes) -> None:
    parser = CdrParser("freepbx", ZONE)
    try:
        parsed = parser.parse_line(1, first_line.replace(b"\n", b""))
    except InvalidInput as exc:  # the whole file: "no header with ..."
        assert "header" in exc.message
        return
    check(parsed, 1)
    if parsed is None and parser.columns is not None:
        assert set(FREEPBX_REQUIRED) <= set(parser.columns)


@FUZZ_SETTINGS
@given(st.text(max_size=80))
def test_recordingfile_values_resolve_inside_the_folder_or_are_refused(tmp_path_factory, value: str) -> None:
    root = tmp_path_factory.getbasetemp() / "pbx-monitor"
    root.mkdir(exist_ok=True)
    start = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)
    try:
        path = resolve_recordingfile(root, value, start, ZONE)
    except InvalidInput as exc:
        assert exc.message
        return
    resolved = path.resolve()
    assert resolved == root.resolve() or root.resolve() in resolved.parents, (value, path)


@pytest.mark.parametrize(
    "value", ["../../etc/passwd", "/etc/passwd", "2026/03/../../../x.wav", "a/../../b.wav", "..", "\x00.wav"]
)
def test_known_escapes_are_refused(tmp_path: Path, value: str) -> None:
    with pytest.raises(InvalidInput):
        resolve_recordingfile(tmp_path, value, datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc), ZONE)


@settings(
    FUZZ,
    max_examples=min(FUZZ.max_examples, 15),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    st.lists(
        st.one_of(
            st.binary(max_size=120),
            st.builds(
                lambda changes: cdr_csv_line({**asterisk_row("1772442000.1"), **changes}, ASTERISK_COLUMNS).encode(),
                st.dictionaries(st.sampled_from(ASTERISK_COLUMNS), field_values, max_size=3),
            ),
        ),
        max_size=12,
    )
)
def test_a_whole_fuzzed_file_is_ingested_with_every_line_accounted_for(tmp_path_factory, lines: list[bytes]) -> None:
    """Through the real store: imported + already present + rejected covers every non-blank line."""
    from store import Store
    from store.archive import SearchFilters
    from store.models import Actor
    from store.settings import Settings

    base = tmp_path_factory.mktemp("ingest")
    cdr = base / "Master.csv"
    cleaned = [line.replace(b"\n", b" ").replace(b"\r", b" ") for line in lines]
    cdr.write_bytes(b"".join(line + b"\n" for line in cleaned))
    (base / "monitor").mkdir()

    async def run() -> None:
        store = await Store.open(Settings.load(base / "data", env={}, password_profile="fast"), create=True)
        try:
            report = await store.calls.ingest(
                Actor.system("fuzz"), store.calls.source("asterisk", cdr, base / "monitor")
            )
            doc = report.as_json()
            blank = sum(1 for line in cleaned if not line.strip() or not line.decode("utf-8", "replace").strip())
            assert all(r["reason"] and r["line"] >= 1 for r in doc["rejected"])
            assert len({r["line"] for r in doc["rejected"]}) == len(doc["rejected"])
            assert doc["imported"] + doc["already_present"] + len(doc["rejected"]) <= len(cleaned) - blank + 1
            calls = await store.archive.search(Actor.system("fuzz"), SearchFilters(channel="call"), page_size=500)
            assert calls.next_cursor is None  # one page holds every call of a file this short
            assert len(calls.items) <= doc["imported"] + doc["already_present"]
            assert (await store.audit.verify()).ok
        finally:
            await store.close()

    asyncio.run(run())
