"""The staff's side of issue 17's resident parts: the §4.2 annex (register order, blank form, CLI), the offline
messages in the TUI, satisfaction in the service report, the receipt check on the command line."""

from __future__ import annotations

import asyncio
import io
import json
import stat

import pytest
from click.testing import CliRunner
from pypdf import PdfReader
from textual.app import App
from textual.widgets import DataTable, Static

from cim.cli import cli
from store import Store, pdfa
from store.archive import SearchFilters
from store.request_form import ANNEX_FIELDS, annex_order, blank_form_pdf
from tests.fixtures.audit_log import audit_log
from tests.fixtures.store import SYSTEM
from tests.fixtures.tui import wait_until
from tui.context import TuiContext
from tui.screens.chats import ChatsScreen
from tui.screens.offline import OfflineMessagesScreen
from tui.screens.requests import register_form
from tui.widgets.request_forms import FormModal


def invoke(*args, stdin: str | None = None):
    return CliRunner().invoke(cli, list(args), input=stdin, catch_exceptions=False)


async def notice_id(store: Store) -> int:
    return (await store.notices.current("chat", "pl")).id


# ---------------------------------------------------------------- §4.2: the annex form


@pytest.mark.ordinance("§4.2")
async def test_the_register_form_follows_the_annex_order(store, make_staff):
    clerk = (await make_staff("ewa", "designated")).as_actor()
    form = register_form(TuiContext(store=store, settings=store.settings, actor=clerk, token=""))
    ids = [f.id for f in form.fields]
    named = [i for i in ids if i in annex_order()]
    assert named == annex_order()
    assert {"conversation_reference", "receipt_secret", "justification", "delivery"} <= set(ids)
    assert next(f for f in form.fields if f.id == "receipt_secret").password  # not shown over a shoulder


@pytest.mark.ordinance("§4.2")
def test_the_blank_annex_form_is_one_printable_polish_page_with_every_field_in_order():
    data = blank_form_pdf("Urząd Miasta Szczecin, Biuro Obsługi Interesantów", "pl. Armii Krajowej 1, 70-456 Szczecin")
    assert pdfa.check(data) == []  # PDF/A-2b, the font embedded
    reader = PdfReader(io.BytesIO(data))
    assert len(reader.pages) == 1
    text = " ".join(reader.pages[0].extract_text().split())
    assert "Wniosek o udostępnienie nagrania połączenia telefonicznego lub zapisu czatu" in text
    positions = [text.find(" ".join(f.label.split())[:40]) for f in ANNEX_FIELDS]
    assert -1 not in positions and positions == sorted(positions)
    assert "Biuro Obsługi Interesantów" in text and "podpis" in text


@pytest.mark.ordinance("§4.2")
def test_cim_requests_blank_form_writes_a_private_file_and_keeps_an_existing_one(settings, tmp_path):
    asyncio.run(_init(settings))
    out = tmp_path / "wniosek.pdf"
    result = invoke("requests", "blank-form", str(out), "--data-dir", str(settings.data_dir))
    assert result.exit_code == 0, result.stderr
    assert out.read_bytes().startswith(b"%PDF-") and stat.S_IMODE(out.stat().st_mode) == 0o600
    out.write_bytes(b"keep me")
    result = invoke("requests", "blank-form", str(out), "--data-dir", str(settings.data_dir))
    assert result.exit_code == 1 and "already exists" in result.stderr and out.read_bytes() == b"keep me"


async def _init(settings):
    st = await Store.open(settings, create=True)
    await st.close()


@pytest.mark.ordinance("§4.1")
def test_cim_requests_check_receipt_names_the_chat_or_refuses_in_one_sentence(settings, clock):
    async def seed():
        st = await Store.open(settings, create=True, clock=clock)
        try:
            opened = await st.chats.open(await notice_id(st), "pl")
            await st.chats.end_by_resident(opened.chat.id)
            return opened.chat.id, await st.resident_desk.issue_receipt(opened.chat.id)
        finally:
            await st.close()

    chat_id, receipt = asyncio.run(seed())
    data_dir = str(settings.data_dir)
    bad = invoke(
        "requests",
        "check-receipt",
        receipt.reference,
        "--code-stdin",
        "--data-dir",
        data_dir,
        stdin="0000-0000-0000-0000\n",
    )
    assert bad.exit_code == 1 and bad.stderr.strip() == "cim: the chat reference and code do not match a chat"
    good = invoke(
        "requests",
        "check-receipt",
        receipt.reference,
        "--code-stdin",
        "--json",
        "--data-dir",
        data_dir,
        stdin=receipt.secret + "\n",
    )
    assert good.exit_code == 0, good.stderr
    assert json.loads(good.stdout) == {"valid": True, "conversation_id": chat_id}


# ---------------------------------------------------------------- offline messages in the TUI


class ScreenApp(App[None]):
    def __init__(self, screen) -> None:
        super().__init__()
        self.first = screen

    async def on_mount(self) -> None:
        await self.push_screen(self.first)


async def test_the_chats_screen_counts_offline_messages_and_the_list_records_the_answer(store, make_staff):
    anna = (await make_staff("anna", "consultant")).as_actor()
    ctx = TuiContext(store=store, settings=store.settings, actor=anna, token="")
    reference = await store.resident_desk.leave_message(
        await notice_id(store), "pl", "[b]Jan[/b]", "jan@example.pl", "Proszę o oddzwonienie [red]pilnie[/red]."
    )
    app = ScreenApp(ChatsScreen(ctx))
    async with app.run_test(size=(100, 32)) as pilot:
        count = await wait_until(
            pilot,
            lambda: (
                app.screen.query_one("#offline-count", Static)
                if str(app.screen.query_one("#offline-count", Static).render())
                else None
            ),
            what="the offline count",
        )
        assert str(count.render()) == "1 offline message (Ctrl+O)"
        await pilot.press("ctrl+o")
        screen = await wait_until(
            pilot,
            lambda: app.screen if isinstance(app.screen, OfflineMessagesScreen) and app.screen.items else None,
            what="the offline list",
        )
        table = screen.query_one(DataTable)
        row = [str(c) for c in table.get_row_at(0)]
        assert row[0] == reference and row[2] == "[b]Jan[/b]" and row[3] == "jan@example.pl"  # shown as text
        assert "[red]pilnie[/red]" in str(screen.query_one("#offline-text", Static).render())
        await pilot.press("a")
        form = await wait_until(
            pilot, lambda: app.screen if isinstance(app.screen, FormModal) else None, what="the answer form"
        )
        assert form.values()["how"] == "email"  # the contact is an e-mail address
        form.set_value("note", "odpowiedziano tego samego dnia")
        await pilot.press("ctrl+s")
        await wait_until(
            pilot,
            lambda: isinstance(app.screen, OfflineMessagesScreen) and not app.screen.items,
            what="the list to empty",
        )
        await pilot.press("escape")
        await wait_until(
            pilot,
            lambda: isinstance(app.screen, ChatsScreen) and not app.screen.query_one("#offline-count", Static).display,
            what="the count to go",
        )
    [answered] = await store.resident_desk.offline_messages(anna, include_answered=True)
    assert (answered.answered_by, answered.answered_how, answered.answer_note) == (
        "anna",
        "email",
        "odpowiedziano tego samego dnia",
    )


async def test_a_role_without_chats_cannot_read_offline_messages(store, make_staff):
    from store.errors import NotPermitted

    clerk = (await make_staff("ewa", "designated")).as_actor()
    with pytest.raises(NotPermitted):
        await store.resident_desk.answer(clerk, 1, "phone")
    refused = await audit_log(store, outcome="refused")
    assert [r.action for r in refused] == ["offline.answer"]


# ---------------------------------------------------------------- satisfaction in the service report


async def test_ratings_appear_per_consultant_in_the_service_report_after_the_purge(store, make_staff, clock):
    anna = (await make_staff("anna", "consultant")).as_actor()
    manager = (await make_staff("kierownik", "cim_manager")).as_actor()
    for mark in (5, 3):
        opened = await store.chats.open(await notice_id(store), "pl")
        await store.chats.accept(anna, opened.chat.id)
        await store.chats.close(anna, opened.chat.id, "information_given")
        await store.resident_desk.rate(opened.chat.id, mark, "dziękuję")
    clock.advance(days=200)
    await store.retention.purge(SYSTEM)
    assert (await store.archive.search(SYSTEM, SearchFilters())).items == ()
    from datetime import date

    report = await store.service.report(manager, date(2026, 3, 1), date(2026, 3, 31))
    ratings = report.as_json()["ratings"]
    assert ratings["all"] == {"key": "", "count": 2, "average": 4.0, "marks": [0, 0, 1, 0, 1]}
    assert [(g["key"], g["count"], g["average"]) for g in ratings["by_consultant"]] == [("anna", 2, 4.0)]
    assert report.rating_lines()[0] == "Satisfaction (1–5): 4.00 from 2 ratings; marks 1–5: 0 / 0 / 1 / 0 / 1"
    assert (  # no comment and no link back are left in the file: read raw
        await store.db.fetchone(
            "SELECT count(*) AS n FROM chat_ratings WHERE comment IS NOT NULL OR conversation_id IS NOT NULL"
        )
    )["n"] == 0


async def rated_chats_on_topics(store, make_staff) -> None:
    """Ratings on two topics by two consultants: Karta Mieszkańca 5 (anna) and 3 (bob), Podatki i opłaty 2 (anna)."""
    await store.desk.seed_default_topics(SYSTEM)
    card, taxes = (await store.desk.topics())[:2]
    anna = (await make_staff("anna", "consultant")).as_actor()
    bob = (await make_staff("bob", "consultant")).as_actor()
    for consultant, topic, mark in ((anna, card, 5), (bob, card, 3), (anna, taxes, 2)):
        opened = await store.chats.open(await notice_id(store), "pl", topic.id)
        await store.chats.accept(consultant, opened.chat.id)
        await store.chats.close(consultant, opened.chat.id, "information_given")
        await store.resident_desk.rate(opened.chat.id, mark)


async def test_the_rendered_service_report_shows_satisfaction_per_topic(store, make_staff, tmp_path):
    from datetime import date

    from store.service_report import write_pdf

    await rated_chats_on_topics(store, make_staff)
    manager = (await make_staff("kierownik", "cim_manager")).as_actor()
    report = await store.service.report(manager, date(2026, 3, 1), date(2026, 3, 31))
    assert report.as_json()["ratings"]["by_topic"] == [
        {"key": "Karta Mieszkańca", "count": 2, "average": 4.0, "marks": [0, 0, 1, 0, 1]},
        {"key": "Podatki i opłaty", "count": 1, "average": 2.0, "marks": [0, 1, 0, 0, 0]},
    ]
    # the lines the CLI, the TUI (F8) and the PDF show
    assert report.rating_lines() == [
        "Satisfaction (1–5): 3.33 from 3 ratings; marks 1–5: 0 / 1 / 1 / 0 / 1",
        "  by consultant: anna 3.50 from 2 ratings, bob 3.00 from 1 rating",
        "  by topic: Karta Mieszkańca 4.00 from 2 ratings, Podatki i opłaty 2.00 from 1 rating",
    ]
    pdf = await write_pdf(report, tmp_path / "service.pdf")
    text = " ".join("".join(page.extract_text() for page in PdfReader(pdf).pages).split())
    assert "by topic: Karta Mieszkańca 4.00 from 2 ratings, Podatki i opłaty 2.00 from 1 rating" in text


@pytest.mark.staff_lang("pl")
async def test_the_satisfaction_per_topic_speaks_polish(store, make_staff):
    from datetime import date

    await rated_chats_on_topics(store, make_staff)
    manager = (await make_staff("kierownik", "cim_manager")).as_actor()
    report = await store.service.report(manager, date(2026, 3, 1), date(2026, 3, 31))
    assert report.rating_lines()[2] == (
        "  według tematu: Karta Mieszkańca 4.00 z 2 ocen, Podatki i opłaty 2.00 z 1 oceny"
    )


@pytest.mark.staff_lang("pl")
async def test_the_satisfaction_section_speaks_polish(store, make_staff):
    from datetime import date

    manager = (await make_staff("kierownik", "cim_manager")).as_actor()
    report = await store.service.report(manager, date(2026, 3, 1), date(2026, 3, 31))
    assert report.rating_lines() == ["Zadowolenie (1–5): brak ocen w tym okresie"]


@pytest.mark.ordinance("§4.1")
async def test_a_receipt_brought_after_registering_links_the_chat_from_the_request_screen(store, make_staff):
    from tests.fixtures.requests import chat_request
    from tests.fixtures.tui import notifications
    from tests.test_requests_tui import app_for, open_first

    clerk = (await make_staff("ewa", "designated")).as_actor()
    opened = await store.chats.open(await notice_id(store), "pl")
    await store.chats.end_by_resident(opened.chat.id)
    receipt = await store.resident_desk.issue_receipt(opened.chat.id)
    req = await store.requests.register(clerk, chat_request(received_on="2026-03-02", hint={"date": "2026-03-02"}))
    app = app_for(store, clerk)
    async with app.run_test(size=(100, 32)) as pilot:
        await open_first(pilot)
        await pilot.press("b")
        form = await wait_until(
            pilot, lambda: app.screen if isinstance(app.screen, FormModal) else None, what="the receipt form"
        )
        form.set_value("reference", receipt.reference.lower())
        form.set_value("code", "0000-0000-0000-0000")
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: "do not match" in form.error, what="the refusal under the form")
        form.set_value("code", receipt.secret)
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: not isinstance(app.screen, FormModal), what="the form to close")
        await wait_until(pilot, lambda: any("linked and held" in n for n in notifications(app)), what="the notice")
    detail = await store.requests.get(clerk, req.id)
    assert [c.conversation_id for c in detail.conversations] == [opened.chat.id]
    assert detail.request.receipt_verified_at is not None
    assert detail.request.conversation_reference == receipt.reference


def test_cim_report_service_lists_satisfaction(settings, clock):
    async def seed():
        st = await Store.open(settings, create=True, clock=clock)
        try:
            anna = (await st.accounts.add_staff(SYSTEM, "anna", ["consultant"], "correct horse battery")).as_actor()
            opened = await st.chats.open(await notice_id(st), "pl")
            await st.chats.accept(anna, opened.chat.id)
            await st.chats.close(anna, opened.chat.id, "information_given")
            await st.resident_desk.rate(opened.chat.id, 4)
        finally:
            await st.close()

    asyncio.run(seed())
    data_dir = str(settings.data_dir)
    text = invoke("report", "service", "--from", "2026-03-01", "--to", "2026-03-31", "--data-dir", data_dir)
    assert text.exit_code == 0, text.stderr
    assert "Satisfaction (1–5): 4.00 from 1 rating" in text.stdout and "anna 4.00 from 1 rating" in text.stdout
    doc = json.loads(
        invoke(
            "report", "service", "--from", "2026-03-01", "--to", "2026-03-31", "--json", "--data-dir", data_dir
        ).stdout
    )
    assert doc["ratings"]["by_consultant"] == [{"key": "anna", "count": 1, "average": 4.0, "marks": [0, 0, 0, 1, 0]}]
