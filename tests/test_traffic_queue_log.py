"""Ingesting Asterisk's queue_log into a real store: malformed lines by number, idempotency, linking to CDR calls."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from cim.cli import cli
from store.calls import ASTERISK_FIXED
from store.models import Actor
from tests.fixtures.calls import asterisk_row, call_by_pbx_ids, cdr_csv_line

SYSTEM = Actor.system("tests")
DAY = Path(__file__).parent / "fixtures" / "traffic" / "queue_log_day.txt"


async def stays(store) -> list[dict]:
    return [dict(r) for r in await store.db.fetchall("SELECT * FROM queue_calls ORDER BY entered_at, id")]


async def ingest(store, path: Path):
    return await store.queue_log.ingest(SYSTEM, store.queue_log.source(path))


# -- bad input first --------------------------------------------------------------------------------


async def test_every_kind_of_bad_line_is_reported_by_number_and_the_rest_registered(store, tmp_path: Path) -> None:
    log = tmp_path / "queue_log"
    log.write_bytes(
        b"1772442000|1772442000.1|cim|NONE|ENTERQUEUE||601234567|1\n"  # 1 good
        b"1772442001|1772442000.1|cim\n"  # 2 too few fields
        b"yesterday|1772442000.2|cim|NONE|ENTERQUEUE||601234567|1\n"  # 3 bad epoch
        b"1772442002|1772442000.2|cim|NONE|enter queue||601234567|1\n"  # 4 not an event name
        b"1772442003|1772442000.1|cim|PJSIP/201|CONNECT|soon|1772442003.9|2\n"  # 5 holdtime not a number
        b"1772442004|1772442000.3|cim|NONE|ABANDON|1|1|-4\n"  # 6 negative wait
        b"1772442005|1772442000.4|cim|NONE|ENTERQUEUE||60\xff1234567|1\n"  # 7 not UTF-8
        b"1772442006|NONE|cim|NONE|PAUSE|Lunch\n"  # 8 pause of no member
        b"1772442007|NONE|cim|NONE|ABANDON|1|1|4\n"  # 9 call event without call id
        b"\n"  # 10 blank: ignored
        b"1772442015|1772442000.1|cim|PJSIP/201|CONNECT|15|1772442012.5|3\n"  # 11 good
        b"1772442016|1772442000.9|cim|NONE|ENTERQUEUE||601234567"
    )  # 12 no line end
    report = await ingest(store, log)
    by_line = {r.line: r.reason for r in report.rejected}
    assert sorted(by_line) == [2, 3, 4, 5, 6, 7, 8, 9, 12]
    assert "at least 5 fields" in by_line[2] and "epoch" in by_line[3] and "event name" in by_line[4]
    assert "whole number" in by_line[5] and "negative" in by_line[6] and "UTF-8" in by_line[7]
    assert "no queue member" in by_line[8] and "no call id" in by_line[9] and "no line end" in by_line[12]
    assert report.imported == 2
    [stay] = await stays(store)
    assert (stay["callid"], stay["outcome"], stay["wait_s"], stay["caller"]) == (
        "1772442000.1",
        "answered",
        15,
        "+48601234567",
    )
    # the rejected lines left nothing behind, and a second run rejects them again rather than forgetting them
    again = await ingest(store, log)
    assert (
        again.imported == 0 and again.already_present == 2 and sorted(r.line for r in again.rejected) == sorted(by_line)
    )


def test_a_missing_file_is_one_clear_error(tmp_path: Path) -> None:
    data = tmp_path / "data"
    runner = CliRunner()
    assert runner.invoke(cli, ["init", "--data-dir", str(data)]).exit_code == 0
    result = runner.invoke(cli, ["ingest", "queue-log", str(tmp_path / "nope"), "--data-dir", str(data)])
    assert result.exit_code != 0 and "no queue_log file" in result.output


async def test_a_consultant_may_not_ingest(store, make_staff) -> None:
    from store.errors import NotPermitted

    anna = await make_staff("anna", "consultant")
    with pytest.raises(NotPermitted):
        await store.queue_log.ingest(anna.as_actor(), store.queue_log.source(DAY))


# -- the facts of a day ------------------------------------------------------------------------------


async def test_a_day_of_queue_log_becomes_stays_with_waits_outcomes_and_members(store, make_staff) -> None:
    await make_staff("ewa", "consultant", extensions=("202",))
    report = await ingest(store, DAY)
    assert report.rejected == [] and report.imported == 20 and report.queue_calls == 5
    assert report.member_events == 5 and report.ignored == 2 and report.unknown_events == {}
    rows = {r["callid"]: r for r in await stays(store)}
    answered = rows["1772442000.1"]
    assert (answered["outcome"], answered["wait_s"], answered["talk_s"], answered["ended_by"]) == (
        "answered",
        15,
        120,
        "caller",
    )
    assert (answered["agent"], answered["extension"], answered["ring_no_answer"]) == ("PJSIP/202", "202", 1)
    assert answered["consultant_id"] is not None
    abandoned = rows["1772442100.3"]
    assert (abandoned["outcome"], abandoned["wait_s"], abandoned["caller"]) == ("abandoned", 3, None)  # §4.7
    assert rows["1772442200.4"]["outcome"] == "timeout" and rows["1772442200.4"]["wait_s"] == 60
    transferred = rows["1772442400.6"]
    assert (transferred["outcome"], transferred["talk_s"], transferred["ended_by"], transferred["caller"]) == (
        "answered",
        60,
        "transfer",
        "+48601234568",
    )
    assert rows["1772442600.8"]["outcome"] == "exitkey" and rows["1772442600.8"]["wait_s"] == 7
    members = [
        (r["agent"], r["event"], r["reason"])
        for r in await store.db.fetchall("SELECT * FROM queue_member_events ORDER BY at")
    ]
    assert members == [
        ("PJSIP/201", "ADDMEMBER", None),
        ("PJSIP/202", "ADDMEMBER", None),
        ("PJSIP/201", "PAUSE", "Przerwa"),
        ("PJSIP/201", "UNPAUSE", None),
        ("PJSIP/202", "REMOVEMEMBER", None),
    ]


async def test_running_again_adds_nothing_and_a_grown_file_adds_only_its_new_lines(store, tmp_path: Path) -> None:
    log = tmp_path / "queue_log"
    lines = DAY.read_text().splitlines(keepends=True)
    log.write_text("".join(lines[:8]))
    first = await ingest(store, log)
    again = await ingest(store, log)
    assert (first.imported, again.imported, again.already_present) == (8, 0, 8)
    before = await stays(store)
    log.write_text("".join(lines))
    grown = await ingest(store, log)
    assert (grown.imported, grown.already_present) == (12, 8)
    assert [r for r in await stays(store) if r["callid"] == "1772442000.1"] == [
        r for r in before if r["callid"] == "1772442000.1"
    ]
    assert len(await stays(store)) == 5


@pytest.mark.ordinance("§6")
async def test_lines_already_past_their_retention_are_not_registered(store, clock, tmp_path: Path) -> None:
    clock.advance(days=200)  # the fixture's day is now more than six months old
    report = await ingest(store, DAY)
    assert (report.imported, report.expired, report.rejected) == (0, 20, []) and await stays(store) == []


async def test_an_unknown_event_is_counted_not_rejected(store, tmp_path: Path) -> None:
    log = tmp_path / "queue_log"
    log.write_text(
        "1772442000|1772442000.1|cim|NONE|ENTERQUEUE||601234567|1\n1772442001|1772442000.1|cim|NONE|SOMETHINGNEW|a|b\n"
    )
    report = await ingest(store, log)
    assert report.rejected == [] and report.unknown_events == {"SOMETHINGNEW": 1} and report.imported == 2


async def test_a_stay_whose_enterqueue_was_rotated_away_begins_its_wait_earlier(store, tmp_path: Path) -> None:
    log = tmp_path / "queue_log"
    log.write_text(
        "1772442015|1772442000.1|cim|PJSIP/202|CONNECT|15|1772442012.5|3\n"
        "1772442135|1772442000.1|cim|PJSIP/202|COMPLETEAGENT|15|120|1\n"
    )
    await ingest(store, log)
    [stay] = await stays(store)
    assert stay["entered_at"].startswith("2026-03-02T09:00:00") and stay["ended_by"] == "agent"
    assert (stay["wait_s"], stay["talk_s"]) == (15, 120)


async def test_stays_link_to_their_call_by_uniqueid_whichever_is_ingested_first(store, tmp_path: Path) -> None:
    columns = ASTERISK_FIXED + ("uniqueid", "userfield")
    cdr = tmp_path / "Master.csv"
    cdr.write_text(cdr_csv_line(asterisk_row("1772442000.1", start="2026-03-02 10:00:00"), columns) + "\n")
    await ingest(store, DAY)  # queue_log first: nothing to link yet
    assert all(r["conversation_id"] is None for r in await stays(store))
    await store.calls.ingest(SYSTEM, store.calls.source("asterisk", cdr, None))
    linked = await store.queue_log.link_calls()
    call = (await call_by_pbx_ids(store, uniqueid="1772442000.1")).summary
    rows = {r["callid"]: r["conversation_id"] for r in await stays(store)}
    assert linked == 1 and rows["1772442000.1"] == call.id and rows["1772442100.3"] is None
    # and the other way round: a queue_log read after the CDR links at once
    log = tmp_path / "queue_log"
    cdr.write_text(
        cdr.read_text()
        + cdr_csv_line(
            asterisk_row(
                "1772443000.1", start="2026-03-02 10:16:40", answer="2026-03-02 10:16:45", end="2026-03-02 10:18:45"
            ),
            columns,
        )
        + "\n"
    )
    assert (await store.calls.ingest(SYSTEM, store.calls.source("asterisk", cdr, None))).imported == 1
    log.write_text("1772443000|1772443000.1|cim|NONE|ENTERQUEUE||601234567|1\n")
    assert (await ingest(store, log)).linked_to_calls == 1


async def test_watch_reads_appended_lines_and_waits_for_a_half_written_one(store, tmp_path: Path) -> None:
    log = tmp_path / "queue_log"
    log.write_text("")
    src = store.queue_log.source(log)
    stop = asyncio.Event()
    polls: list = []
    task = asyncio.create_task(store.queue_log.watch(SYSTEM, src, stop, interval=0.05, on_poll=polls.append))
    line = "1772442000|1772442000.1|cim|NONE|ENTERQUEUE||601234567|1\n"
    with log.open("a") as fh:
        fh.write(line[:20])
    await _until(lambda: len(polls) >= 2)
    assert await stays(store) == [] and all(p.rejected == [] for p in polls)
    with log.open("a") as fh:
        fh.write(line[20:])
    for _ in range(400):
        if await stays(store):
            break
        await asyncio.sleep(0.02)
    stop.set()
    total = await asyncio.wait_for(task, 10)
    assert (total.imported, total.rejected) == (1, []) and len(await stays(store)) == 1


async def _until(predicate, limit: int = 400) -> None:
    for _ in range(limit):
        if predicate():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not reached")


def test_the_command_prints_the_json_document_and_is_idempotent(tmp_path: Path) -> None:
    data = tmp_path / "data"
    runner = CliRunner(env={"CIM_RETENTION": "P100Y"})  # the fixture's day stays within retention
    assert runner.invoke(cli, ["init", "--data-dir", str(data)]).exit_code == 0
    args = ["ingest", "queue-log", str(DAY), "--data-dir", str(data), "--json"]
    first = json.loads(runner.invoke(cli, args).output)
    second = json.loads(runner.invoke(cli, args).output)
    assert (first["imported"], first["already_present"], first["rejected"], first["queue_calls"]) == (20, 0, [], 5)
    assert (second["imported"], second["already_present"]) == (0, 20)
    text = runner.invoke(cli, args[:-1])
    assert text.exit_code == 0 and "already present" in text.output
