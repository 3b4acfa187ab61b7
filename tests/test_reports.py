"""Supervision reports (§3, §7): the numbers come from the audit, the requests and the purge runs."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from collections import Counter
from datetime import date, datetime, timezone

import pytest
from pypdf import PdfReader

from store.errors import InvalidInput, NotPermitted
from store.models import Actor
from store.reports import ACCESS_ACTION_PREFIXES, parse_period, write_csv, write_pdf
from tests.fixtures.audit_log import audit_log

SYSTEM = Actor.system("tests")
OLD = datetime(2025, 8, 31, 10, 0, tzinfo=timezone.utc)


async def _append(store, actor, action, *, outcome="ok", purpose=None):
    async with store.db.write() as tx:
        await store.audit.append(
            tx, actor, action, outcome=outcome, target_kind="conversation", target_id=1, purpose=purpose
        )


@pytest.mark.parametrize("roles", [("consultant",), ("designated",), ("it_admin",), ("department_head",)])
async def test_reports_refused_to_roles_without_view_reports(store, make_staff, roles):
    someone = (await make_staff(None, *roles, department="OC")).as_actor()
    with pytest.raises(NotPermitted):
        await store.reports.supervision(someone, date(2026, 3, 1), date(2026, 3, 31))
    last = (await audit_log(store))[-1]
    assert (last.action, last.outcome) == ("reports.view", "refused")


async def test_bad_periods_are_refused(store):
    with pytest.raises(InvalidInput, match="ends"):
        await store.reports.supervision(SYSTEM, date(2026, 3, 2), date(2026, 3, 1))
    with pytest.raises(InvalidInput, match="YYYY-MM-DD"):
        parse_period("2026-13-01", "2026-03-01")
    with pytest.raises(InvalidInput, match="YYYY-MM-DD"):
        parse_period("yesterday", "2026-03-01")


@pytest.mark.ordinance("§3")
@pytest.mark.ordinance("§7")
@pytest.mark.parametrize("role", ["boi_director", "dpo", "secretary", "cim_manager"])
async def test_report_numbers_match_the_audit(store, clock, make_staff, retention_data, role):
    anna = (await make_staff("anna", "designated")).as_actor()
    piotr = (await make_staff("piotr", "cim_manager")).as_actor()
    reader = (await make_staff("czytelnik", role)).as_actor()
    clock.now = datetime(2026, 3, 10, 9, 0, tzinfo=timezone.utc)
    await _append(store, anna, "archive.open_transcript", purpose="R/2026/1")
    await _append(store, anna, "archive.open_transcript", purpose="R/2026/1")
    await _append(store, anna, "archive.open_recording", purpose="skarga mieszkańca — Łódź")
    await _append(store, piotr, "archive.search")
    await _append(store, piotr, "requests.session_playback", purpose="R/2026/2")
    await _append(store, piotr, "notices.add_version")  # not an access
    await _append(store, anna, "archive.open_recording", outcome="refused")  # a refusal, reported apart
    clock.now = datetime(2026, 3, 20, 9, 0, tzinfo=timezone.utc)
    await retention_data.chat(OLD)
    purge = await store.retention.purge(SYSTEM)
    clock.now = datetime(2026, 4, 2, 9, 0, tzinfo=timezone.utc)
    await _append(store, anna, "archive.open_transcript", purpose="poza okresem")  # outside the period
    clock.now = datetime(2026, 4, 3, 9, 0, tzinfo=timezone.utc)

    report = await store.reports.supervision(reader, date(2026, 3, 1), date(2026, 3, 31))

    # the same numbers, counted independently from the audit entries themselves
    entries = await store.audit.entries(SYSTEM, since="2026-03-01T00:00", until="2026-04-01T00:00", limit=10_000)
    expected = Counter(
        (e.actor_name, e.action, e.purpose or "")
        for e in entries
        if e.outcome == "ok" and e.action.startswith(ACCESS_ACTION_PREFIXES)
    )
    got = Counter({(a.person, a.action, a.purpose): a.count for a in report.accesses})
    assert got == expected
    assert got[("anna", "archive.open_transcript", "R/2026/1")] == 2
    assert got[("anna", "archive.open_recording", "skarga mieszkańca — Łódź")] == 1
    assert report.total_accesses == 5
    assert [(r.person, r.action, r.count) for r in report.refusals] == [("anna", "archive.open_recording", 1)]
    assert [(p.run_id, p.chats) for p in report.purges] == [(purge.run_id, 1)]
    viewed = (await audit_log(store, action="reports.view", outcome="ok"))[-1]
    assert viewed.actor_name == "czytelnik" and viewed.details["accesses"] == 5


@pytest.mark.ordinance("§7")
@pytest.mark.ordinance("GDPR 12(3)")
async def test_requests_by_outcome_and_days_to_answer(store, clock, make_staff, retention_data):
    staff = await make_staff("rejestr", "designated")
    chat = await retention_data.chat(OLD)
    d = lambda m, day: datetime(2026, m, day, 12, 0, tzinfo=timezone.utc)  # noqa: E731
    await retention_data.request(
        chat, staff.id, received=date(2026, 3, 2), closed=True, decision="granted", decided_at=d(3, 12)
    )
    await retention_data.request(
        chat, staff.id, received=date(2026, 3, 3), closed=True, decision="granted", decided_at=d(3, 7)
    )
    await retention_data.request(
        chat, staff.id, received=date(2026, 3, 5), closed=True, decision="refused", decided_at=d(4, 20)
    )  # after the one-month due date
    await retention_data.request(chat, staff.id, received=date(2026, 3, 6), closed=True, withdrawn_at=d(3, 8))
    await retention_data.request(chat, staff.id, received=date(2026, 3, 9))  # still open
    await retention_data.request(chat, staff.id, received=date(2026, 5, 9))  # outside the period
    clock.now = d(4, 25)  # the open one is past its due date 2026-04-09
    report = await store.reports.supervision(SYSTEM, date(2026, 3, 1), date(2026, 3, 31))
    got = {q.outcome: (q.count, q.answered, q.average_days, q.max_days, q.late) for q in report.requests}
    assert got == {
        "granted": (2, 2, 7.0, 10, 0),
        "refused": (1, 1, 46.0, 46, 1),
        "withdrawn": (1, 1, 2.0, 2, 0),
        "open": (1, 0, None, None, 1),
    }


async def test_csv_and_pdf_carry_the_same_numbers_and_polish_letters(store, make_staff, tmp_path, clock):
    anna = (await make_staff("żaneta", "designated")).as_actor()
    for purpose in ("skarga — Świnoujście", '=HYPERLINK("http://evil")'):
        await _append(store, anna, "archive.open_transcript", purpose=purpose)
    report = await store.reports.supervision(SYSTEM, date(2026, 3, 1), date(2026, 3, 31))
    csv_path = await write_csv(report, tmp_path / "r.csv")
    rows = list(csv.reader(csv_path.open(encoding="utf-8-sig")))
    access_rows = [r for r in rows if r[0] == "access"]
    assert ["access", "żaneta", "archive.open_transcript", "skarga — Świnoujście", "1", ""] in access_rows
    assert any(r[3].startswith("'=HYPERLINK") for r in access_rows)  # a formula stays text
    pdf_path = await write_pdf(report, tmp_path / "r.pdf", "Urząd Miasta Szczecin")
    text = "".join(page.extract_text() for page in PdfReader(pdf_path).pages)
    assert "żaneta" in text and "Świnoujście" in text and "Urząd Miasta Szczecin" in text


def test_cli_report_writes_csv_and_pdf_and_refuses_bad_dates(tmp_path):
    env = {**os.environ, "CIM_DATA_DIR": str(tmp_path / "d")}
    subprocess.run([sys.executable, "-m", "cim", "init"], env=env, check=True, capture_output=True)
    ok = subprocess.run(
        [
            sys.executable,
            "-m",
            "cim",
            "report",
            "--from",
            "2026-01-01",
            "--to",
            "2026-12-31",
            "--csv",
            str(tmp_path / "r.csv"),
            "--pdf",
            str(tmp_path / "r.pdf"),
            "--json",
        ],
        env=env,
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["from"] == "2026-01-01"
    assert (tmp_path / "r.pdf").read_bytes().startswith(b"%PDF")
    assert (tmp_path / "r.csv").stat().st_size > 0
    bad = subprocess.run(
        [sys.executable, "-m", "cim", "report", "--from", "jutro", "--to", "2026-12-31"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 1 and bad.stderr.strip() == "cim: --from must be a date YYYY-MM-DD, not 'jutro'"
