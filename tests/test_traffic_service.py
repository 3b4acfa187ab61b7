"""The service report (§1.2) on a fixture whose every figure was worked out by hand, before and after the purge.

The day (2026-03-02, Europe/Warsaw = UTC+1) — calls from tests/fixtures/traffic/queue_log_service.txt:

  call  local  queue     outcome           wait  talk  consultant
  C1    10:00  cim       answered            15   120  ewa (202)
  C2    10:05  cim       abandoned            3     -  -          (short: ≤ 5 s)
  C3    10:10  cim       answered            25   200  jan (201)
  C4    10:20  cim       abandoned           40     -  -
  C5    11:00  wydzialy  answered (transfer)  5    60  ewa
  C6    11:10  wydzialy  timeout             60     -  -          (other)
  C7    11:30  cim       answered            11    90  jan
  C8    11:40  cim       abandoned            5     -  -          (short: exactly 5 s)
  C9    12:00  cim       still waiting: not offered

  calls: offered 8, answered 4, abandoned 3, short 2, other 1; answer rate 4/8 = 0.5;
  answered waits 5, 11, 15, 25: avg 56/4 = 14.0, p90 (nearest rank ceil(3.6) = 4th) = 25;
  service level: within 20 s {5, 11, 15} = 3 / (8 − 2) = 0.5; handle (120+200+60+90)/4 = 117.5.

Chats through the real store (UTC times; local = +1 h):

  chat  opened  taken        ended        outcome            wait  handle  consultant  category
  H1    09:00   09:00:30     09:10:30     answered             30     600  ewa         information_given
  H2    09:15   -            09:15:04     abandoned             4       -  -           (short)
  H3    10:00   10:00:10     10:05:10     answered             10     300  jan         referred
  H4    10:30   -            10:32:00     abandoned           120       -  -
  H5    10:40   still queued: not offered
  H6    10:45   10:45:20     still active answered             20       -  ewa

  chats: offered 5, answered 3, abandoned 2, short 1; answer rate 3/5 = 0.6;
  answered waits 10, 20, 30: avg 20.0, p90 (ceil(2.7) = 3rd) = 30;
  service level: within 20 s {10, 20} = 2 / (5 − 1) = 0.5; handle (600+300)/2 = 450.0.

By hour (local): 10:00 calls C1–C4: offered 4, answered 2, abandoned 2, short 1, waits 15, 25 ->
avg 20.0, p90 25, SL 1/3 = 0.3333, handle 160.0; chats H1, H2: offered 2, answered 1, abandoned 1,
short 1, wait 30, SL 0/1 = 0.0, handle 600.0. 11:00 calls C5–C8: offered 4, answered 2, abandoned 1,
short 1, other 1, waits 5, 11 -> avg 8.0, p90 11, SL 2/3 = 0.6667, handle 75.0; chats H3, H4, H6:
offered 3, answered 2, abandoned 1 (120 s), waits 10, 20 -> avg 15.0, p90 20, SL 2/3 = 0.6667, handle 300.0.
"""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from click.testing import CliRunner

from cim.cli import cli
from store.errors import InvalidInput, NotPermitted
from store.models import Actor
from store.service_report import percentile
from tests.fixtures.audit_log import audit_log

SYSTEM = Actor.system("tests")
CALLS = Path(__file__).parent / "fixtures" / "traffic" / "queue_log_service.txt"
DAY = date(2026, 3, 2)


def figures(offered, answered, abandoned, short, other, rate, wait_avg, wait_p90, sl, handle) -> dict:
    return {
        "offered": offered,
        "answered": answered,
        "abandoned": abandoned,
        "abandoned_short": short,
        "unanswered_other": other,
        "answer_rate": rate,
        "wait_avg_s": wait_avg,
        "wait_p90_s": wait_p90,
        "service_level": sl,
        "handle_avg_s": handle,
    }


CALLS_ALL = figures(8, 4, 3, 2, 1, 0.5, 14.0, 25, 0.5, 117.5)
CHATS_ALL = figures(5, 3, 2, 1, 0, 0.6, 20.0, 30, 0.5, 450.0)
CALLS_10 = figures(4, 2, 2, 1, 0, 0.5, 20.0, 25, 0.3333, 160.0)
CHATS_10 = figures(2, 1, 1, 1, 0, 0.5, 30.0, 30, 0.0, 600.0)
CALLS_11 = figures(4, 2, 1, 1, 1, 0.5, 8.0, 11, 0.6667, 75.0)
CHATS_11 = figures(3, 2, 1, 0, 0, 0.6667, 15.0, 20, 0.6667, 300.0)


async def build_day(store, clock, make_staff) -> None:
    ewa = (await make_staff("ewa", "consultant", extensions=("202",))).as_actor()
    jan = (await make_staff("jan", "consultant", extensions=("201",))).as_actor()
    await store.queue_log.ingest(SYSTEM, store.queue_log.source(CALLS))
    notice = await store.notices.current("chat", "pl")
    start = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)

    def at(h: int, m: int, s: int = 0) -> None:
        clock.now = start.replace(hour=h, minute=m, second=s)

    at(9, 0)
    h1 = (await store.chats.open(notice.id)).chat.id
    at(9, 0, 30)
    await store.chats.accept(ewa, h1)
    at(9, 10, 30)
    await store.chats.close(ewa, h1, "information_given")
    at(9, 15)
    h2 = (await store.chats.open(notice.id)).chat.id
    at(9, 15, 4)
    await store.chats.end_by_resident(h2)
    at(10, 0)
    h3 = (await store.chats.open(notice.id)).chat.id
    at(10, 0, 10)
    await store.chats.accept(jan, h3)
    at(10, 5, 10)
    await store.chats.close(jan, h3, "referred")
    at(10, 30)
    h4 = (await store.chats.open(notice.id)).chat.id
    at(10, 32)
    await store.chats.end_by_resident(h4)
    at(10, 40)
    await store.chats.open(notice.id)  # H5 stays queued
    at(10, 45)
    h6 = (await store.chats.open(notice.id)).chat.id
    at(10, 45, 20)
    await store.chats.accept(ewa, h6)  # H6 stays active
    at(13, 0)


def test_percentile_is_the_nearest_rank() -> None:
    assert percentile([], 90) is None
    assert percentile([7], 90) == 7
    assert percentile([5, 11, 15, 25], 90) == 25 and percentile(range(1, 11), 90) == 9
    assert percentile(range(1, 101), 90) == 90


async def test_every_figure_matches_the_hand_computation(store, clock, make_staff) -> None:
    await build_day(store, clock, make_staff)
    report = (await store.service.report(SYSTEM, DAY, DAY)).as_json()
    assert report["calls"] == CALLS_ALL
    assert report["chats"] == CHATS_ALL
    assert [(h["hour"], h["calls"], h["chats"]) for h in report["hours"]] == [
        (10, CALLS_10, CHATS_10),
        (11, CALLS_11, CHATS_11),
    ]
    assert report["close_categories"] == {"information_given": 1, "referred": 1}
    assert report["chats_per_consultant"] == {"ewa": 2, "jan": 1}
    assert report["calls_per_consultant"] == {"ewa": 2, "jan": 2}
    assert report["by"] == []
    # C2, C6 and C8 came from identifiable numbers and were not answered; C4 was anonymous (§4.7)
    assert report["callbacks"] == {"done": 0, "open": 3}


async def test_grouped_by_hour_consultant_and_queue(store, clock, make_staff) -> None:
    await build_day(store, clock, make_staff)
    by_hour = (await store.service.report(SYSTEM, DAY, DAY, by="hour")).as_json()["by"]
    assert by_hour == [
        {"key": "10:00", "calls": CALLS_10, "chats": CHATS_10},
        {"key": "11:00", "calls": CALLS_11, "chats": CHATS_11},
    ]
    by_consultant = {
        g["key"]: g for g in (await store.service.report(SYSTEM, DAY, DAY, by="consultant")).as_json()["by"]
    }
    assert list(by_consultant) == ["ewa", "jan", ""]
    # ewa: C1 (15 s, 120 s) and C5 (5 s, 60 s); chats H1 (30 s, 600 s) and H6 (20 s, active)
    assert by_consultant["ewa"]["calls"] == figures(2, 2, 0, 0, 0, 1.0, 10.0, 15, 1.0, 90.0)
    assert by_consultant["ewa"]["chats"] == figures(2, 2, 0, 0, 0, 1.0, 25.0, 30, 0.5, 600.0)
    # nobody: the unanswered C2, C4, C6, C8 and H2, H4
    assert by_consultant[""]["calls"] == figures(4, 0, 3, 2, 1, 0.0, None, None, 0.0, None)
    assert by_consultant[""]["chats"] == figures(2, 0, 2, 1, 0, 0.0, None, None, 0.0, None)
    by_queue = {g["key"]: g for g in (await store.service.report(SYSTEM, DAY, DAY, by="queue")).as_json()["by"]}
    # wydzialy: C5 answered 5 s / 60 s, C6 timeout
    assert by_queue["wydzialy"]["calls"] == figures(2, 1, 0, 0, 1, 0.5, 5.0, 5, 0.5, 60.0)
    assert by_queue["czat"]["chats"] == CHATS_ALL and by_queue["czat"]["calls"]["offered"] == 0


async def test_the_service_level_threshold_is_a_setting(store, clock, make_staff) -> None:
    await build_day(store, clock, make_staff)
    store.settings = store.settings.with_(service_level_seconds=10)
    report = (await store.service.report(SYSTEM, DAY, DAY)).as_json()
    assert report["service_level_seconds"] == 10
    assert report["calls"]["service_level"] == round(1 / 6, 4)  # only C5 (5 s) within 10 s
    assert report["chats"]["service_level"] == round(1 / 4, 4)  # only H3 (10 s)


@pytest.mark.ordinance("§6")
async def test_the_figures_survive_the_purge_and_keep_no_personal_data(store, clock, make_staff, tmp_path) -> None:
    await build_day(store, clock, make_staff)
    # C1's CDR too, so one stay goes with its call and the others as unlinked stays
    from store.calls import ASTERISK_FIXED
    from tests.fixtures.calls import asterisk_row, cdr_csv_line

    cdr = tmp_path / "Master.csv"
    cdr.write_text(cdr_csv_line(asterisk_row("1772442000.1"), ASTERISK_FIXED + ("uniqueid", "userfield")) + "\n")
    await store.calls.ingest(SYSTEM, store.calls.source("asterisk", cdr, None))
    before = (await store.service.report(SYSTEM, DAY, DAY, by="consultant")).as_json()
    assert before["callbacks"] == {"done": 0, "open": 3}
    clock.advance(days=200)
    result = await store.retention.purge(SYSTEM)
    assert result.chats == 4 and result.calls == 1
    assert (await store.db.fetchone("SELECT count(*) AS n FROM queue_calls"))["n"] == 0
    assert (await store.db.fetchone("SELECT count(*) AS n FROM queue_log_lines"))["n"] == 0
    assert (await store.db.fetchone("SELECT count(*) AS n FROM callbacks"))["n"] == 0
    assert (await store.db.fetchone("SELECT count(*) AS n FROM callback_sources"))["n"] == 0
    after = (await store.service.report(SYSTEM, DAY, DAY, by="consultant")).as_json()
    assert after == before
    again = await store.retention.purge(SYSTEM)  # a second run counts nothing twice
    assert again.chats == 0
    assert (await store.service.report(SYSTEM, DAY, DAY, by="consultant")).as_json() == before
    dump = "\n".join(str(tuple(r)) for r in await store.db.fetchall("SELECT * FROM service_daily"))
    assert "601234" not in dump and "512345" not in dump and "1772442000.1" not in dump
    # the lines, now past retention, are not brought back by reading the old file again
    again_ingest = await store.queue_log.ingest(SYSTEM, store.queue_log.source(CALLS))
    assert again_ingest.imported == 0 and again_ingest.expired == 22
    assert (await store.service.report(SYSTEM, DAY, DAY, by="consultant")).as_json() == before


async def test_refused_without_the_reports_permission_and_bad_periods(store, make_staff) -> None:
    anna = (await make_staff("anna", "consultant")).as_actor()
    with pytest.raises(NotPermitted):
        await store.service.report(anna, DAY, DAY)
    with pytest.raises(InvalidInput):
        await store.service.report(SYSTEM, DAY, DAY - timedelta(days=1))
    with pytest.raises(InvalidInput):
        await store.service.report(SYSTEM, DAY, DAY, by="weather")
    refused = await audit_log(store, action="reports.service", outcome="refused")
    assert refused and refused[0].actor_name == "anna"


def test_the_command_prints_json_csv_and_pdf(tmp_path: Path) -> None:
    data = tmp_path / "data"
    runner = CliRunner(env={"CIM_RETENTION": "P100Y"})
    assert runner.invoke(cli, ["init", "--data-dir", str(data)]).exit_code == 0
    assert runner.invoke(cli, ["ingest", "queue-log", str(CALLS), "--data-dir", str(data)]).exit_code == 0
    out = runner.invoke(
        cli,
        [
            "report",
            "service",
            "--from",
            "2026-03-02",
            "--to",
            "2026-03-02",
            "--by",
            "hour",
            "--json",
            "--csv",
            str(tmp_path / "s.csv"),
            "--pdf",
            str(tmp_path / "s.pdf"),
            "--data-dir",
            str(data),
        ],
    )
    assert out.exit_code == 0, out.output
    doc = json.loads(out.output)
    assert set(doc["calls"]) >= {
        "offered",
        "answered",
        "abandoned",
        "abandoned_short",
        "wait_avg_s",
        "wait_p90_s",
        "service_level",
        "handle_avg_s",
    }
    assert (
        doc["calls"] == CALLS_ALL
        and doc["chats"]["offered"] == 0
        and [g["key"] for g in doc["by"]] == ["10:00", "11:00"]
    )
    assert (tmp_path / "s.pdf").read_bytes().startswith(b"%PDF")
    csv_text = (tmp_path / "s.csv").read_text(encoding="utf-8-sig")
    assert "10:00,calls,4,2,2,1,0,50.0%" in csv_text
    text = runner.invoke(
        cli, ["report", "service", "--from", "2026-03-02", "--to", "2026-03-02", "--data-dir", str(data)]
    )
    assert text.exit_code == 0 and "calls" in text.output and "117.5" in text.output
    bad = runner.invoke(
        cli, ["report", "service", "--from", "2026-03-02", "--to", "2026-03-01", "--data-dir", str(data)]
    )
    assert bad.exit_code != 0 and "before it starts" in bad.output
    # the supervision report keeps its own command line
    supervision = runner.invoke(
        cli, ["report", "--from", "2026-03-01", "--to", "2026-03-31", "--json", "--data-dir", str(data)]
    )
    assert supervision.exit_code == 0 and "accesses" in json.loads(supervision.output)


async def test_the_manager_sees_the_figures_and_the_chart_of_the_day_in_the_tui(
    tui_app, store, clock, make_staff, settings
) -> None:
    from textual.widgets import DataTable, Select

    from tests.fixtures.store import PASSWORD
    from tests.fixtures.tui import sign_in, wait_until
    from tui.screens.service import ServiceScreen
    from tui.widgets.hour_chart import HourChart

    await build_day(store, clock, make_staff)
    await make_staff("kierownik", "cim_manager")
    await make_staff("ola", "consultant")
    app = tui_app()
    async with app.run_test(size=(160, 50)) as pilot:
        await sign_in(pilot, "kierownik", PASSWORD)
        await pilot.press("f8")
        screen = await wait_until(
            pilot, lambda: isinstance(app.screen, ServiceScreen) and app.screen, what="the service screen"
        )
        await wait_until(pilot, lambda: screen.report is not None, what="the report")
        table = screen.query_one("#service-table", DataTable)
        rows = [[str(getattr(c, "plain", c)) for c in table.get_row_at(i)] for i in range(table.row_count)]
        assert ["all", "calls", "8", "4", "3", "2", "1", "50.0%", "14", "25", "50.0%", "117.5"] in rows
        assert ["all", "chats", "5", "3", "2", "1", "0", "60.0%", "20", "30", "50.0%", "450"] in rows
        chart = str(screen.query_one("#service-chart", HourChart).render())
        assert "10:00" in chart and "11:00" in chart and "20 s" in chart and "8 s" in chart
        screen.query_one("#service-by", Select).value = "hour"
        await wait_until(pilot, lambda: screen.report is not None and screen.report.by == "hour", what="grouped")
        await wait_until(pilot, lambda: table.row_count == 6, what="the grouped rows")
        await pilot.press("ctrl+s")
        await wait_until(
            pilot,
            lambda: (settings.data_dir / "reports" / "service-2026-03-02-2026-03-02.csv").exists(),
            what="the CSV",
        )
    # a consultant has no such area: F8 does nothing on their home screen
    app = tui_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await sign_in(pilot, "ola", PASSWORD)
        await pilot.press("f8")
        await pilot.pause()
        assert not isinstance(app.screen, ServiceScreen)
