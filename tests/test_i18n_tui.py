"""The staff TUI's language (issue 16): Polish by default, English with CIM_STAFF_LANG=en, and a person's own
choice kept with their account (My account, L) winning over both; snapshots of every area at 80x24 in both."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone
from pathlib import Path

import pytest
from textual.widgets import OptionList, Static

from store import Store
from store.clock import ManualClock
from store.errors import InvalidInput
from store.i18n import current_language
from store.models import Role
from store.settings import Settings
from tests.fixtures.audit_log import audit_log
from tests.fixtures.store import PASSWORD, SYSTEM
from tests.fixtures.tui import SIZE, settled, sign_in, wait_until
from tui.app import make_app
from tui.areas import AREAS

START = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)
ALL_ROLES = [r.value for r in Role]


def screen_text(app) -> str:
    """Every label, static and option of the current screen, and the footer's key descriptions."""
    parts = [str(w.render()) for w in app.screen.query("Label, Static, Button")]
    for options in app.screen.query(OptionList):
        parts += [str(options.get_option_at_index(i).prompt) for i in range(options.option_count)]
    parts += [b.binding.description for b in app.active_bindings.values() if b.binding.description]
    return "\n".join(parts)


# -- the store: a person's own language -------------------------------------------------------------


async def test_a_person_sets_their_own_language_and_it_is_audited(store, make_staff) -> None:
    anna = await make_staff("anna", "consultant")
    assert anna.language is None  # NULL: the office's language
    changed = await store.accounts.set_own_language(anna.as_actor(), "en")
    assert changed.language == "en" and (await store.accounts.get("anna")).language == "en"
    back = await store.accounts.set_own_language(anna.as_actor(), None)
    assert back.language is None
    rows = await audit_log(store, action="staff.language")
    assert [r.actor_name for r in rows] == ["anna", "anna"]
    assert rows[0].details == {"language": "en", "self": True}
    for bad in ("klingon", "pl_PL", "EN; DROP TABLE staff", "x" * 500):
        with pytest.raises(InvalidInput):
            await store.accounts.set_own_language(anna.as_actor(), bad)
    assert (await store.accounts.get("anna")).language is None  # nothing half-stored


# -- which language the TUI speaks ------------------------------------------------------------------


@pytest.mark.staff_lang(None)  # no CIM_STAFF_LANG at all: what `cim tui` and `cim demo` do in the office
async def test_the_tui_speaks_polish_by_default(tui_app, make_staff, store) -> None:
    from tui.demo import seed_demo

    await seed_demo(store)
    app = tui_app()
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: type(app.screen).__name__ == "LoginScreen", what="the login screen")
        text = screen_text(app)
        assert "Zaloguj się własnym kontem CIM." in text and "Zaloguj" in text, text
        assert "Sign in" not in text
        await sign_in(pilot, "kierownik", "demo-3-szczecin")
        text = screen_text(app)
        assert "Zalogowano jako" in text and "Kierownik CIM" in text and "konsultant" in text, text
        assert "Gotowe odpowiedzi" in text and "Czaty na żywo" in text and "Wyloguj" in text, text
        assert "cim_manager" not in text and "Signed in" not in text and "Canned responses" not in text
        await pilot.press("f10")
        await wait_until(pilot, lambda: type(app.screen).__name__ == "CannedScreen", what="the canned responses")
        await wait_until(pilot, lambda: app.screen.query_one("#canned-table").row_count, what="the rows")
        table = app.screen.query_one("#canned-table")
        assert [str(c.label) for c in table.columns.values()] == ["Tytuł", "Treść", "Zmieniono"]
        updated = str(table.get_row_at(0)[2])
        assert updated == "2 mar 2026, 10:00", updated  # local (CET) time, Polish month, no 'Z'


async def test_the_tui_speaks_english_with_cim_staff_lang_en(tui_app, make_staff) -> None:
    await make_staff("anna", "consultant")
    app = tui_app()
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: type(app.screen).__name__ == "LoginScreen", what="the login screen")
        assert "Sign in with your own CIM account." in screen_text(app)
        await sign_in(pilot, "anna", PASSWORD)
        text = screen_text(app)
        assert "Signed in as" in text and "roles: consultant" in text and "Live chats" in text, text
        assert "Zalogowano" not in text


@pytest.mark.staff_lang("pl")
async def test_a_persons_own_language_wins_over_the_environment_until_sign_out(tui_app, make_staff, store) -> None:
    anna = await make_staff("anna", "consultant")
    await store.accounts.set_own_language(anna.as_actor(), "en")
    await make_staff("piotr", "consultant")
    app = tui_app()
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: type(app.screen).__name__ == "LoginScreen", what="the login screen")
        assert "Zaloguj się własnym kontem CIM." in screen_text(app)  # before sign-in: the office's language
        await sign_in(pilot, "anna", PASSWORD)
        assert current_language() == "en"
        text = screen_text(app)
        assert "Signed in as" in text and "Sign out" in text and "Live chats" in text, text
        await pilot.press("f12")
        await wait_until(pilot, lambda: type(app.screen).__name__ == "LoginScreen", what="the login screen")
        assert current_language() == "pl"
        assert "Zaloguj się własnym kontem CIM." in screen_text(app)
        await sign_in(pilot, "piotr", PASSWORD)  # the next person: the office's language again
        text = screen_text(app)
        assert "Zalogowano jako" in text and "Wyloguj" in text, text


@pytest.mark.staff_lang("pl")
async def test_my_account_switches_the_language_and_rebuilds_the_screens(tui_app, make_staff, store) -> None:
    await make_staff("anna", "consultant")
    app = tui_app()
    async with app.run_test(size=SIZE) as pilot:
        await sign_in(pilot, "anna", PASSWORD)
        await pilot.press("ctrl+u")
        await wait_until(pilot, lambda: type(app.screen).__name__ == "AccountScreen", what="My account")
        await wait_until(
            pilot,
            lambda: "Język: polski" in str(app.screen.query_one("#account-facts").render()),
            what="the language line",
        )
        assert "Moje konto" in screen_text(app) and "Język" in screen_text(app)
        await pilot.press("l")
        await wait_until(pilot, lambda: type(app.screen).__name__ == "PickModal", what="the language choice")
        assert "Język Twoich ekranów CIM" in screen_text(app)
        await pilot.press("down", "enter")  # polski, English, office default
        await wait_until(
            pilot,
            lambda: (
                type(app.screen).__name__ == "AccountScreen"
                and "Language: English" in str(app.screen.query_one("#account-facts").render())
            ),
            what="My account in English",
        )
        text = screen_text(app)
        assert "My account" in text and "Change password" in text and "Moje konto" not in text, text
        assert (await store.accounts.get("anna")).language == "en"
        # the screen under it (home) was built again too
        assert [type(s).__name__ for s in app.screen_stack][-2:] == ["HomeScreen", "AccountScreen"]
        home = app.screen_stack[-2]
        assert "Signed in as" in str(home.query_one("#whoami", Static).render())
        # back to the office default: Polish again, stored as NULL
        await pilot.press("l")
        await wait_until(pilot, lambda: type(app.screen).__name__ == "PickModal", what="the language choice")
        await pilot.press("down", "down", "enter")
        await wait_until(
            pilot,
            lambda: (
                type(app.screen).__name__ == "AccountScreen"
                and "Język: polski" in str(app.screen.query_one("#account-facts").render())
            ),
            what="My account in Polish",
        )
        assert (await store.accounts.get("anna")).language is None
        await pilot.press("f1")
        await wait_until(pilot, lambda: type(app.screen).__name__ == "HomeScreen", what="home")
        assert "Zalogowano jako" in screen_text(app)


# -- snapshots: every area, login, home and My account, in both languages, at 80x24 ---------------------

LANGS = [pytest.param("en", id="en"), pytest.param("pl", id="pl", marks=pytest.mark.staff_lang("pl"))]


@pytest.fixture
def every_area_app(tmp_path: Path):
    """A data dir with one person holding every role, a second account, a department and a canned response."""
    settings = Settings.load(tmp_path / "data", env={}, password_profile="fast", opening_hours="always")
    clock = ManualClock(START)

    async def prepare() -> None:
        store = await Store.open(settings, create=True, clock=clock)
        try:
            await store.accounts.add_department(SYSTEM, "WGK", "Wydział Gospodarki Komunalnej")
            await store.accounts.add_staff(
                SYSTEM, "ewa", ALL_ROLES, PASSWORD, full_name="Ewa Kowalska", department="WGK"
            )
            await store.accounts.add_staff(SYSTEM, "anna", ["consultant"], PASSWORD, full_name="Anna Nowak")
            manager = (await store.accounts.get("ewa")).as_actor()
            await store.chats.add_canned(manager, "Powitanie", "Dzień dobry, w czym mogę pomóc?")
        finally:
            await store.close()

    asyncio.run(prepare())
    return make_app(settings, clock=clock, session_check_seconds=3600)


async def _settle(pilot) -> None:
    """Until the screen's loading workers (and any they started) are done and drawn; no notifications."""
    for _ in range(3):
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
    pilot.app.clear_notifications()
    _still_cursors(pilot.app)
    await pilot.pause()
    await pilot.wait_for_scheduled_animations()
    await pilot.pause()  # a table measures its columns on the refresh after its rows arrive


def _still_cursors(app) -> None:
    """A blinking cursor is drawn or not by the time of the snapshot: keep it steady (shown)."""
    for widget in app.screen.query("Input, TextArea"):
        widget.cursor_blink = False


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("area", [a.key for a in AREAS])
def test_every_area_at_80x24(snap_compare, every_area_app, area, lang) -> None:
    app = every_area_app

    async def run_before(pilot) -> None:
        await sign_in(pilot, "ewa", PASSWORD)
        await app.action_open_area(area)
        await wait_until(pilot, lambda: type(app.screen).__name__ != "HomeScreen", what=f"the {area} screen")
        await _settle(pilot)
        if area == "audit":  # the chain check races the audited read of the list: check again after it
            await pilot.press("ctrl+t")
            await _settle(pilot)

    assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("screen", ["login", "home", "account"])
def test_sign_in_home_and_my_account_at_80x24(snap_compare, every_area_app, screen, lang) -> None:
    app = every_area_app

    async def run_before(pilot) -> None:
        if screen == "login":
            await wait_until(pilot, lambda: type(app.screen).__name__ == "LoginScreen", what="the login screen")
            await sign_in(pilot, "ewa", "wrong password", expect_home=False)
            await wait_until(pilot, lambda: app.screen.query_one("#login-message").has_class("error"), what="the error")
        else:
            await sign_in(pilot, "ewa", PASSWORD)
            if screen == "account":
                await pilot.press("ctrl+u")
                await wait_until(pilot, lambda: type(app.screen).__name__ == "AccountScreen", what="My account")
        await _settle(pilot)

    assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)


#: Fixed so that the snapshot does not change with each run (begin_enrolment makes a new random key).
ENROLMENT_SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"


def _enrolment(app):
    from tui.widgets.modals import EnrolmentModal

    return EnrolmentModal(ENROLMENT_SECRET, f"otpauth://totp/CIM:ewa?secret={ENROLMENT_SECRET}&issuer=CIM")


def _call_note(app):
    from store.call_notes import CALL_CATEGORIES
    from store.i18n import _
    from tui.widgets.call_note import CallNoteModal

    return CallNoteModal(_("Call {number}: category and note").format(number="•••678"), CALL_CATEGORIES)


def _purpose(app):
    from store.i18n import _
    from tui.widgets.purpose import PurposeModal

    return PurposeModal(_("the recording"))


def _skills(app):
    from store.desk import Topic
    from tui.screens.desk import SkillsModal

    topics = [
        Topic(1, "Podatki i opłaty", "Taxes and fees", None, 1, True),
        Topic(2, "Odpady", "Waste", "WGK", 2, True),
    ]
    person = next(p for p in app.screen.people if p.name == "anna")

    async def save(ids):
        return None

    return SkillsModal(person, topics, save)


#: The dialogs of these areas (and of My account), opened by their key, or pushed (a function of the app:
#: the dialog, for those whose data the app of these snapshots has not, such as a call or a random key):
#: (area or "account", keys or push, modal class).
DIALOGS = [
    ("canned", ("a",), "CannedEditModal"),
    ("notices", ("c",), "NoticeVersionModal"),
    ("accounts", ("a",), "NewStaffModal"),
    ("accounts", ("r",), "RolesModal"),
    ("accounts", ("n",), "FormModal"),
    ("account", ("p",), "ChangePasswordModal"),
    ("account", ("l",), "PickModal"),
    ("account", ("d",), "DisplayNameModal"),
    ("account", _enrolment, "EnrolmentModal"),
    ("traffic", _call_note, "CallNoteModal"),
    ("archive", _purpose, "PurposeModal"),
    ("desk", ("a",), "TopicModal"),
    ("desk", ("c",), "CapacityModal"),
    ("desk", _skills, "SkillsModal"),
]


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize(("area", "keys", "modal"), DIALOGS, ids=[f"{a}-{m}" for a, _k, m in DIALOGS])
def test_dialogs_at_80x24(snap_compare, every_area_app, area, keys, modal, lang) -> None:
    app = every_area_app

    async def run_before(pilot) -> None:
        await sign_in(pilot, "ewa", PASSWORD)
        if area == "account":
            await pilot.press("ctrl+u")
        else:
            await app.action_open_area(area)
        await wait_until(pilot, lambda: type(app.screen).__name__ != "HomeScreen", what=f"the {area} screen")
        await _settle(pilot)
        if callable(keys):
            app.push_screen(keys(app))
        else:
            await pilot.press(*keys)
        await wait_until(pilot, lambda: type(app.screen).__name__ == modal, what=f"the {modal}")
        await pilot.pause()  # not _settle: the worker that opened the dialog waits for it to close
        _still_cursors(app)
        await pilot.pause()
        await settled(pilot)  # the dialog's fitting done, its scroll still (under load it moved mid-picture)

    assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)


# -- the live-chat desk with a resident, in Polish (tests/test_tui_snapshots.py has it in English) ------

from tests.test_tui_snapshots import _resident, snapshot_setup  # noqa: E402,F401  (the fixture, reused)


@pytest.mark.staff_lang("pl")
def test_chat_screen_in_polish(snap_compare, snapshot_setup) -> None:  # noqa: F811
    app, clock, url = snapshot_setup

    async def run_before(pilot) -> None:
        await sign_in(pilot, "anna", PASSWORD)
        await pilot.press("f2")
        await wait_until(pilot, lambda: app.desk is not None and app.desk.state == "online", what="online")
        resident, chat_id = await _resident(url)
        waiting, _ = await _resident(url)
        await wait_until(pilot, lambda: len(app.desk.queue) == 2, what="the queued chats")
        clock.advance(seconds=40)
        await pilot.press("ctrl+g")
        await wait_until(pilot, lambda: chat_id in app.desk.chats, what="accepted")
        clock.advance(seconds=20)
        await resident.call(
            "send", {"text": "Dzień dobry, kiedy płacę podatek?", "client_msg_id": "m1"}, namespace="/resident"
        )
        await wait_until(pilot, lambda: len(app.desk.chats[chat_id].lines) >= 4, what="the resident's line")
        for char in "Do 15 marca.":
            await pilot.press("space" if char == " " else char)
        await pilot.press("enter")
        await wait_until(pilot, lambda: len(app.desk.chats[chat_id].lines) >= 5, what="the reply")
        await resident.emit("typing", {"active": True}, namespace="/resident")
        await wait_until(pilot, lambda: app.desk.chats[chat_id].resident_typing, what="typing")
        for client in (resident, waiting):
            await client.disconnect()
        await pilot.pause(0.2)
        app.clear_notifications()
        app.screen.refresh_desk()
        app.screen.query_one("#composer").cursor_blink = False  # the picture does not depend on the blink phase

    assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)
