"""The requests screens driven with Pilot: the register form's errors, each role's inbox, both request kinds end to end."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from textual.app import App
from textual.widgets import DataTable, Static

from store.models import Actor
from tests.fixtures.audit_log import audit_log
from tests.fixtures.requests import CALL_AT, PHONE, call_request, insert_call, insert_chat
from tests.fixtures.store import PASSWORD
from tests.fixtures.tui import SIZE, notifications, sign_in, wait_until
from tui.context import TuiContext
from tui.screens.requests import RequestDetailScreen, RequestsScreen
from tui.widgets.listen_link import ListenLinkModal
from tui.widgets.request_forms import FormModal


class RequestsApp(App[None]):
    """The smallest app that shows the screen the way the real shell does: pushed with a TuiContext."""

    def __init__(self, ctx: TuiContext) -> None:
        super().__init__()
        self.ctx = ctx

    async def on_mount(self) -> None:
        await self.push_screen(RequestsScreen(self.ctx))


def app_for(store, actor: Actor) -> RequestsApp:
    return RequestsApp(TuiContext(store=store, settings=store.settings, actor=actor, token=""))


def rows(app, table_id: str) -> list[list[str]]:
    table = app.screen.query_one(f"#{table_id}", DataTable)
    return [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]


def text_of(app, widget_id: str) -> str:
    return str(app.screen.query_one(f"#{widget_id}", Static).render())


async def open_first(pilot) -> RequestDetailScreen:
    app = pilot.app
    await wait_until(
        pilot,
        lambda: isinstance(app.screen, RequestsScreen) and rows(app, "requests-table"),
        what="a request in the list",
    )
    app.screen.query_one("#requests-table").focus()
    await pilot.press("enter")
    await wait_until(
        pilot,
        lambda: isinstance(app.screen, RequestDetailScreen) and app.screen.detail is not None,
        what="the request's detail",
    )
    return app.screen


async def fill_form(pilot, values: dict, *, expect_close: bool = True) -> FormModal:
    app = pilot.app
    form = await wait_until(pilot, lambda: app.screen if isinstance(app.screen, FormModal) else None, what="the form")
    for key, value in values.items():
        form.set_value(key, value)
    await pilot.press("ctrl+s")
    if expect_close:
        await wait_until(pilot, lambda: not isinstance(app.screen, FormModal), what="the form to close")
    return form


async def state_is(pilot, state: str) -> None:
    await wait_until(
        pilot, lambda: pilot.app.screen.detail and pilot.app.screen.detail.request.state == state, what=f"state {state}"
    )


# -- bad input first --------------------------------------------------------------------------------------


async def test_register_form_shows_the_stores_message_and_stays_open(store, people):
    app = app_for(store, people.registrar)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, RequestsScreen), what="the requests screen")
        await pilot.press("n")
        form = await fill_form(pilot, {"requester_name": "  "}, expect_close=False)
        await wait_until(pilot, lambda: "requester's name is required" in form.error, what="the name error")
        await fill_form(
            pilot,
            {
                "requester_name": "Jan Kowalski",
                "requester_address": "ul. Polna 1",
                "requester_phone": "601 234",
                "justification": "Powód.",
                "date": "2026-02-24",
            },
            expect_close=False,
        )
        await wait_until(pilot, lambda: "not a phone number" in form.error, what="the phone error")
        await fill_form(pilot, {"requester_phone": "601 234 567", "received_on": "2099-01-01"}, expect_close=False)
        await wait_until(pilot, lambda: "in the future" in form.error, what="the date error")
        assert isinstance(app.screen, FormModal)
        assert await store.requests.list(Actor.system("tests")) == []
        await fill_form(pilot, {"received_on": "2026-03-01"})
        await wait_until(pilot, lambda: rows(app, "requests-table"), what="the new request")
        assert rows(app, "requests-table")[0][0] == "CIM/2026/0001"


async def test_markup_in_a_requesters_name_is_shown_literally_and_overdue_stands_out(store, people, clock):
    await store.requests.register(
        people.registrar,
        call_request(
            requester_name="[b]Zbyszek[/b] [link=http://x]y[/link]",
            received_on=date(2026, 1, 2),
            hint={"date": "2026-01-02"},
        ),
    )
    app = app_for(store, people.director)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, RequestsScreen), what="the requests screen")
        await pilot.press("i")  # the director's inbox is empty: switch to the register
        await wait_until(pilot, lambda: rows(app, "requests-table"), what="the register")
        (row,) = rows(app, "requests-table")
        assert row[4] == "[b]Zbyszek[/b] [link=http://x]y[/link]"
        assert "overdue" in row[3]


async def test_head_of_another_department_sees_nothing_and_cannot_register(store, people):
    req = await store.requests.register(people.registrar, call_request())
    await store.requests.link(
        people.registrar, req.id, await insert_call(store, at=CALL_AT, number=PHONE, department="WO")
    )
    app = app_for(store, people.other_head)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(
            pilot,
            lambda: "inbox (0 waiting)" in str(app.screen.query_one("#requests-title").render()),
            what="the empty inbox",
        )
        await pilot.press("n")
        await pilot.pause()
        assert isinstance(app.screen, RequestsScreen)  # the key is not offered to a department head


# -- §4 access, end to end through each role's screen ------------------------------------------------------


@pytest.mark.ordinance("§4.3", "§4.4", "§4.6")
async def test_access_request_walks_through_every_role(store, people, clock):
    req = await store.requests.register(people.registrar, call_request())
    await insert_call(store, at=CALL_AT + timedelta(minutes=3), number="+48700000000", department="WO")
    mine = await insert_call(store, at=CALL_AT, number=PHONE, department="WO")

    async with app_for(store, people.registrar).run_test(size=SIZE) as pilot:
        detail = await open_first(pilot)
        await wait_until(pilot, lambda: rows(pilot.app, "candidates"), what="candidates")
        assert rows(pilot.app, "candidates")[0][3] == "number"
        detail.query_one("#candidates").focus()
        await pilot.press("l")
        await wait_until(pilot, lambda: rows(pilot.app, "linked"), what="the linked call")
        assert rows(pilot.app, "linked")[0][0] == str(mine)
        assert "no obstacle" in text_of(pilot.app, "eligibility")

    for actor, opinion_kind in ((people.dpo, "dpo"), (people.head, "department")):
        async with app_for(store, actor).run_test(size=SIZE) as pilot:
            await open_first(pilot)  # the request is in this person's inbox
            await pilot.press("o")
            await fill_form(pilot, {"kind": opinion_kind, "verdict": "favourable", "text": "Bez zastrzeżeń."})
            await wait_until(
                pilot, lambda: opinion_kind in pilot.app.screen.detail.request.opinions_given, what="the opinion"
            )

    async with app_for(store, people.director).run_test(size=SIZE) as pilot:
        await open_first(pilot)
        await state_is(pilot, "awaiting_decision")
        await pilot.press("g")
        form = await fill_form(
            pilot,
            {"date": "2026-03-01", "time": "10:00", "place": "Sala 12", "attendees": [people.attendee.staff_id]},
            expect_close=False,
        )
        await wait_until(pilot, lambda: "in the past" in form.error, what="the past-date error")
        await fill_form(pilot, {"date": "2026-03-20", "time": "10:30"})
        await state_is(pilot, "granted")
        assert "grant:" in text_of(pilot.app, "letters")
        assert "20 Mar 2026, 10:30" in text_of(pilot.app, "session")  # local, in the staff language

    clock.now = clock.now.replace(day=20)
    async with app_for(store, people.attendee).run_test(size=SIZE) as pilot:
        await open_first(pilot)  # the designated attendee finds the session in their inbox
        await pilot.press("s")
        await state_is(pilot, "session_in_progress")
        pilot.app.screen.query_one("#linked").focus()
        await pilot.press("v")
        # no player command (the default): the recording is heard in the browser through a listening link
        modal = await wait_until(
            pilot,
            lambda: pilot.app.screen if isinstance(pilot.app.screen, ListenLinkModal) else None,
            what="the listening link",
        )
        assert "/listen/" in modal.url
        await pilot.press("escape")
        await wait_until(
            pilot, lambda: "Listening in the browser" in text_of(pilot.app, "listening"), what="the listening line"
        )
        await pilot.press("f")
        await fill_form(
            pilot,
            {
                "present": [people.attendee.staff_id],
                "notes": "Odsłuch bez uwag.",
                "others": "Zażółć Gęślą-Jaźń",
                "outcome": "completed",
            },
        )
        await state_is(pilot, "session_held")
        await pilot.press("c")  # closing is the director's step
        await pilot.pause()
        assert pilot.app.screen.detail.request.state == "session_held"

    async with app_for(store, people.director).run_test(size=SIZE) as pilot:
        await open_first(pilot)
        assert "Also present: Zażółć Gęślą-Jaźń" in text_of(pilot.app, "session")
        await pilot.press("r")  # the director signs off the session record
        await wait_until(pilot, lambda: "session_record:" in text_of(pilot.app, "letters"), what="the record")
        await pilot.press("c")
        await state_is(pilot, "closed")
    playback = await audit_log(store, action="requests.session_playback")
    assert [(p.request_id, p.actor_name) for p in playback] == [(req.id, "swiadek")]


@pytest.mark.ordinance("§4.5", "§4.7")
async def test_ineligible_call_offers_only_refusal(store, people):
    req = await store.requests.register(people.registrar, call_request())
    call = await insert_call(store, at=CALL_AT, number="anonymous", identifiable=False, department="WO")
    await store.requests.link(people.registrar, req.id, call)
    await store.requests.give_opinion(people.dpo, req.id, "dpo", "favourable", "Tak.")
    await store.requests.give_opinion(people.head, req.id, "department", "favourable", "Tak.")
    async with app_for(store, people.director).run_test(size=SIZE) as pilot:
        detail = await open_first(pilot)
        assert "Only refusal is possible" in text_of(pilot.app, "eligibility")
        await pilot.press("g")
        await fill_form(
            pilot,
            {"date": "2026-03-20", "time": "10:30", "place": "Sala 12", "attendees": [people.attendee.staff_id]},
            expect_close=False,
        )
        form = pilot.app.screen
        await wait_until(pilot, lambda: "can only be refused" in form.error, what="the §4.7 error")
        await pilot.press("escape")
        await pilot.press("x")
        await fill_form(pilot, {"reasons": "Numer zastrzeżony (§ 4 ust. 7)."})
        await state_is(pilot, "refused")
        assert "refusal:" in text_of(pilot.app, "letters")
        assert "not sealed" in text_of(pilot.app, "letters")  # no seal configured: the register says so
        assert detail.check_action("grant", ()) is False


# -- GDPR Art. 15 copy, end to end by the DPO -----------------------------------------------------------


@pytest.mark.ordinance("GDPR 15")
async def test_copy_request_by_the_dpo_from_registration_to_export(store, people, tmp_path):
    chat = await insert_chat(
        store, at=CALL_AT, lines=[("resident", "Tu Józef, jozef@example.pl"), ("consultant", "Dzień dobry")]
    )
    app = app_for(store, people.dpo)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, RequestsScreen), what="the requests screen")
        await pilot.press("n")
        await fill_form(
            pilot,
            {
                "kind": "copy",
                "channel": "chat",
                "received_on": "2026-03-01",
                "requester_name": "Józef Ślązak",
                "requester_address": "ul. Źródlana 1",
                "requester_email": "jozef@example.pl",
                "delivery": "email",
                "addressed_as": "pan",
                "date": "2026-02-24",
                "time": "10:15",
                "name_or_email": "jozef@example.pl",
            },
        )
        detail = await open_first(pilot)
        assert detail.detail.request.addressed_as == "pan"
        await wait_until(pilot, lambda: rows(app, "candidates"), what="candidates")
        # the DPO cannot search the archive: matching shows times and masked numbers, no search in chat text
        assert rows(app, "candidates")[0][3] == ""
        detail.query_one("#candidates").focus()
        await pilot.press("l")
        await wait_until(pilot, lambda: rows(app, "linked"), what="the linked chat")
        await pilot.press("g")
        await fill_form(pilot, {})
        await state_is(pilot, "granted")
        assert detail.check_action("export", ()) is False  # two people for a copy
        await pilot.press("p")
        await fill_form(pilot, {"why": "Adres e-mail z wniosku podany w czacie."})
        await state_is(pilot, "export_prepared")
        assert detail.check_action("confirm_copy", ()) is False  # not by the one who prepared it
    second = app_for(store, people.director)
    async with second.run_test(size=SIZE) as pilot:
        await open_first(pilot)
        assert "Awaiting the second person" in text_of(second, "session")
        await pilot.press("a")
        await fill_form(pilot, {"why": "Godzina i adres się zgadzają."})
        await state_is(pilot, "export_confirmed")
    app = app_for(store, people.dpo)
    async with app.run_test(size=SIZE) as pilot:
        await open_first(pilot)
        await pilot.press("k")
        await fill_form(pilot, {"folder": str(tmp_path), "zip": False})
        await state_is(pilot, "exported")
        await pilot.press("c")
        await state_is(pilot, "closed")
    exported = tmp_path / "CIM-2026-0001"
    assert sorted(p.name for p in exported.iterdir()) == [
        "SHA256SUMS",
        f"chat-{chat}.json",
        f"chat-{chat}.txt",
        "manifest.json",
    ]


# -- through the real app ---------------------------------------------------------------------------------


async def test_the_real_app_opens_requests_with_f4_for_the_director(tui_app, make_staff, store):
    await make_staff("dyr", "boi_director")
    await make_staff("kons", "consultant")
    app = tui_app()
    async with app.run_test(size=SIZE) as pilot:
        await sign_in(pilot, "kons", PASSWORD)
        await pilot.press("f4")
        await pilot.pause()
        assert not isinstance(app.screen, RequestsScreen)  # a consultant has no requests area
        await pilot.press("f12")
        await sign_in(pilot, "dyr", PASSWORD)
        await pilot.press("f4")
        await wait_until(pilot, lambda: isinstance(app.screen, RequestsScreen), what="the requests screen")
        assert not [n for n in notifications(app) if "Cannot" in n]
