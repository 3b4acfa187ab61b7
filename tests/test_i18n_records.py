"""Polish by default where staff read records: the request register, the archive, the audit viewer, the supervision
report (screen, PDF, CSV) and the `cim` command's human output; English when CIM_STAFF_LANG=en."""

from __future__ import annotations

import asyncio
import csv
import os
import re
import subprocess
import sys
from datetime import date, datetime, timezone

import pytest
from pypdf import PdfReader
from textual.app import App
from textual.widgets import DataTable, Input, Static

from store import Store
from store.chats import CLOSE_CATEGORIES, category_label, render_event
from store.models import Actor
from store.reports import write_csv, write_pdf
from tests.fixtures.requests import call_request
from tests.fixtures.store import PASSWORD, SYSTEM
from tui.context import TuiContext
from tui.screens.archive import ArchiveDetailScreen, ArchiveScreen
from tui.screens.audit import AuditScreen
from tui.screens.reports import ReportsScreen
from tui.screens.requests import RequestDetailScreen, RequestsScreen
from tui.widgets.purpose import PurposeModal

SIZE = (100, 32)
#: a Polish abbreviated month as babel writes it (sty, lut, mar, kwi, maj, cze, lip, sie, wrz, paź, lis, gru)
PL_SHORT_DATE = re.compile(r"\b\d{1,2} (sty|lut|mar|kwi|maj|cze|lip|sie|wrz|paź|lis|gru) 20\d\d\b")


class ScreenApp(App[None]):
    """A bare app showing one screen the way the shell does: pushed with a TuiContext."""

    def __init__(self, ctx: TuiContext, screen_class) -> None:
        super().__init__()
        self.ctx = ctx
        self.screen_class = screen_class

    async def on_mount(self) -> None:
        await self.push_screen(self.screen_class(self.ctx))


def ctx_for(store, actor: Actor) -> TuiContext:
    return TuiContext(store=store, settings=store.settings, actor=actor, token="")


async def settle(app: App, pilot) -> None:
    """Let the workers finish (not one waiting on the purpose dialog, which waits for us)."""
    for _ in range(5):
        if not isinstance(app.screen, PurposeModal):
            try:
                await asyncio.wait_for(asyncio.shield(app.workers.wait_for_complete()), 5)
            except asyncio.TimeoutError:
                pass
        await pilot.pause()


def cells(table: DataTable) -> list[list[str]]:
    return [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]


def text(widget: Static) -> str:
    return str(widget.render())


# -- the request register --------------------------------------------------------------------------------------


@pytest.mark.staff_lang("pl")
async def test_the_request_register_speaks_polish_by_default(store, make_staff):
    registrar = (await make_staff("rejestr", "designated")).as_actor()
    created = await store.requests.register(registrar, call_request())
    app = ScreenApp(ctx_for(store, registrar), RequestsScreen)
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        table = screen.query_one("#requests-table", DataTable)
        for _ in range(50):
            await pilot.pause()
            if table.row_count:
                break
        assert [str(c.label) for c in table.columns.values()] == [
            "Numer",
            "Żąda",
            "Stan",
            "Termin",
            "Osoba wnioskująca",
        ]
        (row,) = cells(table)
        assert row[0] == created.number and row[1] == "odsłuch" and row[2] == "zarejestrowany"
        assert PL_SHORT_DATE.search(row[3]) and "-" not in row[3], row[3]  # "1 kwi 2026", never 2026-04-01
        assert "Wnioski — rejestr (wszystkie stany, 1)" in str(screen.query_one("#requests-title").render())
        assert [b.description for b in screen._bindings.key_to_bindings["n"]] == ["Nowy wniosek"]  # the footer
        table.focus()
        await pilot.press("enter")
        await settle(app, pilot)
        assert isinstance(app.screen, RequestDetailScreen)
        summary = text(app.screen.query_one("#summary", Static))
        assert "Osoba wnioskująca: Zażółć Gęślą-Jaźń" in summary
        assert "udostępnienie z §4" in summary and "żąda: odsłuch" in summary
        assert re.search(r"Wpłynął 1 mar 2026 · termin \d{1,2} (mar|kwi) 2026", summary), summary
        assert "Requester" not in summary and "registered" not in summary


# -- the archive ------------------------------------------------------------------------------------------------


@pytest.fixture
async def closed_chat(store, make_staff):
    anna = await make_staff("anna", "consultant")
    await store.accounts.set_signature(SYSTEM, "anna", full_name="Anna Nowak", job_title="")
    notice = await store.notices.current("chat", "pl")
    opened = await store.chats.open(notice.id, "pl")
    await store.chats.post_resident(opened.chat.id, "Dzień dobry, pytanie o podatek.")
    await store.chats.accept(anna.as_actor(), opened.chat.id)
    await store.chats.close(anna.as_actor(), opened.chat.id, "information_given")
    return opened.chat.id


async def open_transcript(app: App, pilot, chat_id: int) -> list[str]:
    await pilot.click("#consultant")
    await pilot.press(*"anna", "enter")
    await settle(app, pilot)
    table = app.screen.query_one("#results", DataTable)
    table.move_cursor(row=next(i for i, key in enumerate(table.rows) if key.value == str(chat_id)))
    table.focus()
    await pilot.press("enter")
    await settle(app, pilot)
    assert isinstance(app.screen, ArchiveDetailScreen)
    await pilot.press("t")
    await settle(app, pilot)
    await pilot.press(*"W/2026/0007", "enter")
    await settle(app, pilot)
    return [text(s) for s in app.screen.query(".transcript-line").results(Static)]


@pytest.mark.staff_lang("pl")
async def test_the_archive_speaks_polish_and_shows_staff_system_lines_in_words(store, make_staff, closed_chat):
    maria = (await make_staff("maria", "designated")).as_actor()
    app = ScreenApp(ctx_for(store, maria), ArchiveScreen)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.click("#consultant")
        await pilot.press(*"anna", "enter")
        await settle(app, pilot)
        table = app.screen.query_one("#results", DataTable)
        assert [str(c.label) for c in table.columns.values()][:4] == ["Kiedy", "Rodzaj", "Numer", "Konsultant"]
        (row,) = cells(table)
        assert row[1] == "czat" and PL_SHORT_DATE.search(row[0]) and "Z" not in row[0], row
        assert text(app.screen.query_one("#archive-status", Static)).startswith("strona 1 · pokazano 1")
        app.pop_screen()
        await app.push_screen(ArchiveScreen(app.ctx))
        lines = await open_transcript(app, pilot, closed_chat)
    joined = "\n".join(lines)
    assert "Osoba pisząca: Dzień dobry, pytanie o podatek." in joined
    assert "Rozmowę przyjmuje: Anna Nowak." in joined  # the full name, not the log-in name
    assert "Czat zakończony: Anna Nowak (kategoria: udzielono informacji)." in joined
    assert not any(code in joined for code in CLOSE_CATEGORIES), joined
    assert "przejął" not in joined and "zakończył " not in joined  # gender-neutral, not the stored masculine lines


async def test_the_archive_in_english_renders_the_same_lines_in_english(store, make_staff, closed_chat):
    maria = (await make_staff("maria", "designated")).as_actor()
    app = ScreenApp(ctx_for(store, maria), ArchiveScreen)
    async with app.run_test(size=SIZE) as pilot:
        lines = await open_transcript(app, pilot, closed_chat)
    joined = "\n".join(lines)
    assert "Chat taken: Anna Nowak." in joined
    assert "Chat closed: Anna Nowak (category: information given)." in joined
    assert "Rozmow" not in joined and "Czat zakończony" not in joined


@pytest.mark.parametrize("lang", ["pl", "en"])
def test_staff_system_lines_never_show_a_category_code(lang):
    for category in CLOSE_CATEGORIES:
        line = render_event("closed_by_consultant", {}, lang, staff=True, staff_name="Anna Nowak", category=category)
        assert "_" not in line and "Anna Nowak" in line and f": {category_label(category, lang)})." in line
        if lang == "pl":
            assert category not in line
    # the resident's variant keeps the resident's language and no category at all
    assert render_event("closed_by_consultant", {}, "en") == "The consultant ended the chat."


# -- the audit viewer -------------------------------------------------------------------------------------------


@pytest.mark.staff_lang("pl")
@pytest.mark.ordinance("§3")
async def test_the_audit_viewer_shows_actions_in_words_and_still_filters_by_code(store, make_staff):
    director = (await make_staff("dyrektor", "boi_director")).as_actor()
    anna = (await make_staff("anna", "designated")).as_actor()
    async with store.db.write() as tx:
        await store.audit.append(
            tx, anna, "requests.session_playback", target_kind="conversation", target_id=7, purpose="CIM/2026/0007"
        )
        await store.audit.append(
            tx, anna, "archive.open_recording", target_kind="conversation", target_id=8, purpose="kontrola jakości"
        )
        await store.audit.append(tx, anna, "future.unknown_action", purpose="nowa czynność")
    app = ScreenApp(ctx_for(store, director), AuditScreen)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        screen = app.screen
        table = screen.query_one("#audit-table", DataTable)
        assert [str(c.label) for c in table.columns.values()][:5] == ["#", "Kiedy", "Kto", "Czynność", "Cel"]
        actions = {r[4]: r[3] for r in cells(table)}
        assert actions["CIM/2026/0007"] == "odsłuch: odtworzenie"
        assert actions["kontrola jakości"] == "archiwum: odsłuch nagrania"
        assert actions["nowa czynność"] == "future.unknown_action"  # an unknown code is shown as it is
        assert not any("requests.session_playback" == a for a in actions.values())
        assert "Łańcuch rejestru zdarzeń sprawdzony: nienaruszony" in text(screen.query_one("#chain", Static))
        assert re.search(r"\d+ wpis(y|ów)? · Enter: cały wpis", text(screen.query_one("#audit-count", Static)))
        screen.query_one("#audit-action", Input).value = "requests."
        screen.query_one("#audit-action", Input).focus()
        await pilot.press("enter")
        await settle(app, pilot)
        assert [r[3] for r in cells(table)] == ["odsłuch: odtworzenie"]


# -- the supervision report -------------------------------------------------------------------------------------


async def _accesses(store, make_staff, clock):
    anna = (await make_staff("żaneta", "designated")).as_actor()
    clock.now = datetime(2026, 3, 10, 9, 0, tzinfo=timezone.utc)
    async with store.db.write() as tx:
        for purpose in ("R/2026/1", "R/2026/1", "skarga — Świnoujście"):
            await store.audit.append(
                tx, anna, "archive.open_transcript", target_kind="conversation", target_id=1, purpose=purpose
            )
        for _ in range(2):
            await store.audit.append(tx, anna, "archive.open_recording", outcome="refused")
    clock.now = datetime(2026, 4, 2, 9, 0, tzinfo=timezone.utc)
    return await store.reports.supervision(SYSTEM, date(2026, 3, 1), date(2026, 3, 31))


@pytest.mark.staff_lang("pl")
@pytest.mark.ordinance("§3")
async def test_the_supervision_report_pdf_and_csv_are_polish_by_default(store, make_staff, clock, tmp_path):
    report = await _accesses(store, make_staff, clock)
    pdf = await write_pdf(report, tmp_path / "r.pdf", "Urząd Miasta Szczecin")
    content = " ".join(" ".join(page.extract_text().split()) for page in PdfReader(pdf).pages)
    assert "CIM — raport z nadzoru (§3, §7)" in content
    assert "Okres 1 marca 2026 – 31 marca 2026" in content  # Polish dates, the genitive month
    assert "2 kwi 2026" in content and "Z " not in content.replace("ZAK", "")  # local time, no UTC Z
    assert "3 dostępy" in content and "2 odmowy dostępu" in content and "0 wniosków" in content  # plurals
    assert "Dostępy według osób i celów" in content and "archiwum: odczyt zapisu czatu" in content
    assert "archive.open_transcript" not in content and "Świnoujście" in content
    rows = list(csv.reader((await write_csv(report, tmp_path / "r.csv")).open(encoding="utf-8-sig")))
    assert rows[0][0] == "Raport z nadzoru CIM" and rows[0][1:3] == ["2026-03-01", "2026-03-31"]
    assert rows[1] == ["sekcja", "kto / rodzaj", "co", "cel / wynik", "liczba", "szczegóły"]
    # the CSV keeps the action codes (the same in every language, for whoever processes it)
    assert ["dostęp", "żaneta", "archive.open_transcript", "R/2026/1", "2", ""] in rows
    assert ["odmowa", "żaneta", "archive.open_recording", "", "2", ""] in rows
    english = list(csv.reader((await write_csv(report, tmp_path / "e.csv", lang="en")).open(encoding="utf-8-sig")))
    assert english[1][0] == "section"
    assert ["access", "żaneta", "archive.open_transcript", "R/2026/1", "2", ""] in english


@pytest.mark.staff_lang("pl")
async def test_the_supervision_report_screen_is_polish(store, make_staff, clock):
    await _accesses(store, make_staff, clock)
    director = (await make_staff("dyrektor", "boi_director")).as_actor()
    app = ScreenApp(ctx_for(store, director), ReportsScreen)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        screen = app.screen
        screen.query_one("#report-from", Input).value = "2026-03-01"
        screen.query_one("#report-to", Input).value = "2026-03-31"
        screen.query_one("#report-from", Input).focus()
        await pilot.press("enter")
        await settle(app, pilot)
        summary = text(screen.query_one("#report-summary", Static))
        assert summary == "1 marca 2026 – 31 marca 2026: 3 dostępy, 2 odmowy dostępu, 0 wniosków, 0 usunięć."
        table = screen.query_one("#report-table", DataTable)
        assert str(list(table.columns.values())[0].label) == "sekcja"
        assert ["dostęp", "żaneta", "archiwum: odczyt zapisu czatu", "R/2026/1", "2", ""] in cells(table)


# -- the command line -------------------------------------------------------------------------------------------


def _seeded_data_dir(tmp_path) -> str:
    from store.settings import Settings
    from tests.fixtures.store import ManualClock

    settings = Settings.load(tmp_path / "data", env={}, password_profile="fast", opening_hours="always")

    async def seed() -> None:
        st = await Store.open(settings, create=True, clock=ManualClock(datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)))
        try:
            registrar = (await st.accounts.add_staff(SYSTEM, "rejestr", ["designated"], PASSWORD)).as_actor()
            await st.requests.register(registrar, call_request())
        finally:
            await st.close()

    asyncio.run(seed())
    return str(settings.data_dir)


def _cim(data_dir: str, *args: str, lang: str | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "CIM_STAFF_LANG"}
    if lang is not None:
        env["CIM_STAFF_LANG"] = lang
    return subprocess.run(
        [sys.executable, "-m", "cim", *args, "--data-dir", data_dir],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.staff_lang(None)
def test_cim_requests_show_and_report_speak_polish_unless_told_english(tmp_path):
    data_dir = _seeded_data_dir(tmp_path)
    shown = _cim(data_dir, "requests", "show", "CIM/2026/0001", lang=None)
    assert shown.returncode == 0, shown.stderr
    assert "Osoba wnioskująca: Zażółć Gęślą-Jaźń" in shown.stdout and "Stan: zarejestrowany" in shown.stdout
    assert re.search(r"^Wpłynął: 1 mar 2026$", shown.stdout, re.M), shown.stdout
    assert "requester_name" not in shown.stdout and "Requester" not in shown.stdout
    english = _cim(data_dir, "requests", "show", "CIM/2026/0001", lang="en")
    assert "Requester: Zażółć Gęślą-Jaźń" in english.stdout and "State: registered" in english.stdout
    assert re.search(r"^Received: 1 Mar 2026$", english.stdout, re.M), english.stdout

    listed = _cim(data_dir, "requests", "list", lang=None)
    assert "zarejestrowany" in listed.stdout and re.search(r"termin \d{1,2} (mar|kwi) 2026", listed.stdout)
    report = _cim(data_dir, "report", "--from", "2026-03-01", "--to", "2026-03-31", lang=None)
    assert report.returncode == 0, report.stderr
    assert report.stdout.split()[:3] == ["sekcja", "kto", "/"]
    assert "wniosek" in report.stdout and "w toku" in report.stdout  # the open request, in words
    told = _cim(data_dir, "report", "--from", "2026-03-01", "--to", "2026-03-31", "--lang", "en", lang=None)
    assert told.stdout.split()[:1] == ["section"] and "request" in told.stdout and "open" in told.stdout
    bad = _cim(data_dir, "report", "--from", "2026-03-01", "--to", "2026-03-31", "--lang", "de", lang=None)
    assert bad.returncode == 2 and "--lang" in bad.stderr
    folder = _cim(
        data_dir,
        "report",
        "--from",
        "2026-03-01",
        "--to",
        "2026-03-31",
        "--csv",
        str(tmp_path / "nie-ma" / "r.csv"),
        lang=None,
    )
    assert folder.returncode == 1 and "nie istnieje" in folder.stderr


@pytest.mark.staff_lang("pl")
async def test_the_service_report_files_are_polish_by_default(store, tmp_path):
    from store.service_report import write_csv as service_csv, write_pdf as service_pdf

    report = await store.service.report(SYSTEM, date(2026, 3, 1), date(2026, 3, 2), "hour")
    rows = list(csv.reader((await service_csv(report, tmp_path / "s.csv")).open(encoding="utf-8-sig")))
    assert rows[0] == ["Wskaźniki jakości obsługi CIM", "2026-03-01", "2026-03-02", "według: godzina"]
    assert rows[1][:5] == ["grupa", "kanał", "przychodzące", "odebrane", "porzucone"]
    assert [r[:2] for r in rows[2:4]] == [["wszystkie", "połączenia"], ["wszystkie", "czaty"]]
    pdf = await service_pdf(report, tmp_path / "s.pdf")
    content = " ".join(" ".join(page.extract_text().split()) for page in PdfReader(pdf).pages)
    assert "Okres 1 marca 2026 – 2 marca 2026; według: godzina" in content
    assert "Kategorie zakończenia (czaty)" in content and "brak w tym okresie" in content
    english = list(csv.reader((await service_csv(report, tmp_path / "e.csv", lang="en")).open(encoding="utf-8-sig")))
    assert english[1][:3] == ["group", "channel", "offered"] and english[2][:2] == ["all", "calls"]


@pytest.mark.staff_lang("pl")
@pytest.mark.ordinance("§4.6")
async def test_a_chat_read_in_the_session_shows_the_residents_lines_without_codes(store, people, closed_chat):
    """During the §4.6 session the requester reads the chat as they saw it: no close category, no log-in name."""
    from tests.fixtures.requests import chat_request
    from tui.widgets.request_forms import ContentModal

    r = store.requests
    req = await r.register(people.registrar, chat_request(received_on=date(2026, 3, 2), hint={"date": "2026-03-02"}))
    await r.link(people.registrar, req.id, closed_chat)
    await r.give_opinion(people.dpo, req.id, "dpo", "favourable", "Brak przeszkód.")
    await r.give_opinion(people.head, req.id, "department", "favourable", "Zgoda.")
    await r.grant(
        people.director,
        req.id,
        session_at=datetime(2026, 3, 20, 9, 0, tzinfo=timezone.utc),
        place="Sala 12",
        attendee_ids=[people.attendee.staff_id],
    )
    await r.start_session(people.director, req.id)
    app = ScreenApp(ctx_for(store, people.director), lambda ctx: RequestDetailScreen(ctx, req.id))
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        app.screen.query_one("#linked", DataTable).focus()
        await pilot.press("v")
        await settle(app, pilot)
        assert isinstance(app.screen, ContentModal)
        lines = [text(s) for s in app.screen.query(".content-line").results(Static)]
    joined = "\n".join(lines)
    assert "osoba pisząca: Dzień dobry, pytanie o podatek." in joined
    assert "Połączono z konsultantem. Odpowiada: Anna." in joined and "Czat zakończony przez konsultanta." in joined
    assert not any(code in joined for code in CLOSE_CATEGORIES) and "anna" not in joined, joined
