"""Forms and modals at 80x24: a failed save keeps the dialog open, keeps what was typed, and the error is on screen.

Each test types into a dialog of the real app (make_app, real store), triggers the store's refusal
(or the dialog's own check) and proves: the same dialog is still open, every typed value is still
there, and the message is visible inside the 80x24 terminal (the docked error line, the buttons).
"""

from __future__ import annotations

from datetime import datetime, timezone

from textual.containers import VerticalScroll
from textual.geometry import Region
from textual.widgets import Input, Static

from store.models import Actor
from tests.fixtures.store import PASSWORD
from tests.fixtures.tui import sign_in, wait_until
from tui.screens.requests import RequestsScreen
from tui.screens.retention import HoldModal, RetentionScreen
from tui.widgets.modals import NewStaffModal, PasswordModal, RolesModal
from tui.widgets.request_forms import FormModal

SMALL = (80, 24)
SCREEN = Region(0, 0, *SMALL)
OLD = datetime(2025, 8, 31, 10, 0, tzinfo=timezone.utc)
SYSTEM = Actor.system("tests")


def on_screen(widget) -> bool:
    """Shown, not empty, and wholly inside the 80x24 terminal."""
    region = widget.region
    return bool(widget.display and region.height > 0 and SCREEN.contains_region(region))


def in_view(screen, widget) -> bool:
    """Inside the visible part of the dialog's scrolling body (and of the terminal)."""
    body = screen.query_one(".dialog-body", VerticalScroll)
    return on_screen(widget) and body.region.contains_region(widget.region)


def text(widget: Static) -> str:
    return str(widget.render())


async def open_area(pilot, key: str, name: str):
    await pilot.press(key)
    return await wait_until(pilot, lambda: type(pilot.app.screen).__name__ == name and pilot.app.screen, what=name)


async def test_register_form_fits_80x24_and_a_failing_save_says_why_on_screen(tui_app, make_staff, store):
    await make_staff("rejestr", "designated")
    app = tui_app()
    async with app.run_test(size=SMALL) as pilot:
        await sign_in(pilot, "rejestr", PASSWORD)
        await open_area(pilot, "f4", "RequestsScreen")
        await pilot.press("n")
        form = await wait_until(pilot, lambda: isinstance(app.screen, FormModal) and app.screen, what="the form")
        await pilot.pause()
        for button in ("#form-save", "#form-cancel"):
            assert on_screen(form.query_one(button)), f"{button} is cut off at 80x24"
        # type into fields at the top and at the very bottom, then save without a name
        form.query_one("#f-requester_address", Input).focus()
        await pilot.press(*"ul. Polna 1")
        last = form.query_one("#f-name_or_email", Input)
        last.focus()
        await wait_until(pilot, lambda: in_view(form, last), what="the focused field scrolled into view")
        await pilot.press(*"jan@example.pl")
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: "name is required" in form.error, what="the name error")
        assert app.screen is form
        assert on_screen(form.query_one("#form-error")) and on_screen(form.query_one("#form-save"))
        # next to the field too, and the field focused and scrolled into view
        note = form.query_one("#err-requester_name", Static)
        assert "name is required" in text(note)
        await wait_until(
            pilot,
            lambda: in_view(form, note) and form.focused is form.query_one("#f-requester_name"),
            what="the field's own error in view",
        )
        values = form.values()
        assert values["requester_address"] == "ul. Polna 1" and values["name_or_email"] == "jan@example.pl"
        assert await store.requests.list(SYSTEM) == []
        # the first field can be reached again: the body scrolls back
        first = form.query_one("#f-kind")
        first.focus()
        await wait_until(pilot, lambda: in_view(form, first), what="the first field scrolled back into view")
        assert isinstance(app.screen, FormModal) and isinstance(app.screen_stack[-2], RequestsScreen)


async def test_hold_modal_keeps_the_input_and_shows_the_stores_refusal(tui_app, make_staff, retention_data, store):
    await make_staff("kierownik", "cim_manager")
    gone = await retention_data.chat(OLD)
    await store.retention.purge(SYSTEM)
    app = tui_app()
    async with app.run_test(size=SMALL) as pilot:
        await sign_in(pilot, "kierownik", PASSWORD)
        await open_area(pilot, "f5", "RetentionScreen")
        await pilot.press("a")
        modal = await wait_until(
            pilot, lambda: isinstance(app.screen, HoldModal) and app.screen, what="the hold dialog"
        )
        typed = {
            "#hold-ids": str(gone),
            "#hold-basis": "KPA art. 73",
            "#hold-case": "SO.9/2026",
            "#hold-review": "2026-09-01",
        }
        for field, value in typed.items():
            modal.query_one(field, Input).focus()
            await pilot.press(*value)
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: "purged" in modal.error, what="the store's refusal in the dialog")
        assert app.screen is modal
        assert {f: modal.query_one(f, Input).value for f in typed} == typed
        assert on_screen(modal.query_one("#dialog-error")) and on_screen(modal.query_one("#save"))
        note = modal.query_one("#err-hold-ids", Static)
        assert "purged" in text(note) and in_view(modal, note)
        assert await store.retention.holds(SYSTEM, include_released=True) == []
        # the dialog's own check: also in place, next to the field it is about
        modal.query_one("#hold-review", Input).value = "1 września"
        modal.query_one("#hold-ids", Input).value = "abc"
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: "digits" in modal.error)
        assert "digits" in text(modal.query_one("#err-hold-ids", Static))
        assert modal.query_one("#hold-case", Input).value == "SO.9/2026"
        await pilot.press("escape")
        await wait_until(pilot, lambda: isinstance(app.screen, RetentionScreen))


async def test_new_account_modal_keeps_the_input_and_offers_the_department_in_the_tui(tui_app, make_staff, store):
    await make_staff("root", "it_admin")
    app = tui_app()
    async with app.run_test(size=SMALL) as pilot:
        await sign_in(pilot, "root", PASSWORD)
        accounts = await open_area(pilot, "f9", "AccountsScreen")
        await pilot.press("a")
        modal = await wait_until(pilot, lambda: isinstance(app.screen, NewStaffModal) and app.screen)
        typed = {"#name": "ewa", "#full-name": "Ewa Nowak", "#department": "USC", "#password": "ewa-password-1"}
        for field, value in typed.items():
            modal.query_one(field, Input).focus()
            await pilot.press(*value)
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: "does not exist" in modal.error, what="the department error in the dialog")
        assert app.screen is modal
        assert {f: modal.query_one(f, Input).value for f in typed} == typed
        assert "F9" in modal.error and "cim departments" not in modal.error
        assert on_screen(modal.query_one("#dialog-error")) and on_screen(modal.query_one("#save"))
        note = modal.query_one("#err-department", Static)
        assert "does not exist" in text(note) and in_view(modal, note)
        # what the message says: N in F9 adds the department, in the TUI
        await pilot.press("escape")
        await wait_until(pilot, lambda: app.screen is accounts)
        await pilot.press("n")
        form = await wait_until(pilot, lambda: isinstance(app.screen, FormModal) and app.screen)
        form.set_value("code", "USC")
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: "name" in form.error, what="the missing name refused in place")
        assert app.screen is form and form.values()["code"] == "USC"
        form.set_value("name", "Urząd Stanu Cywilnego")
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: app.screen is accounts, what="the department added")
        assert [d.code for d in await store.accounts.departments()] == ["USC"]
        await pilot.press("a")
        modal = await wait_until(pilot, lambda: isinstance(app.screen, NewStaffModal) and app.screen)
        for field, value in typed.items():
            modal.query_one(field, Input).value = value
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: app.screen is accounts, what="the account added")
        assert (await store.accounts.get("ewa")).department == "USC"


async def test_password_and_roles_modals_keep_the_input_on_a_refusal(tui_app, make_staff, store):
    await make_staff("root", "it_admin")
    await make_staff("anna", "consultant")
    app = tui_app()
    async with app.run_test(size=SMALL) as pilot:
        await sign_in(pilot, "root", PASSWORD)
        accounts = await open_area(pilot, "f9", "AccountsScreen")
        await wait_until(pilot, lambda: len(accounts.staff) == 2)
        table = accounts.query_one("#accounts-table")
        table.move_cursor(row=[s.name for s in accounts.staff].index("anna"))
        await pilot.press("p")
        modal = await wait_until(pilot, lambda: isinstance(app.screen, PasswordModal) and app.screen)
        for field in ("#password", "#again"):
            modal.query_one(field, Input).focus()
            await pilot.press(*"krótkie")
        await pilot.press("enter")
        await wait_until(pilot, lambda: modal.error, what="the password policy's message in the dialog")
        assert app.screen is modal and modal.query_one("#password", Input).value == "krótkie"
        assert on_screen(modal.query_one("#dialog-error"))
        await pilot.press("escape")
        await wait_until(pilot, lambda: app.screen is accounts)

        await pilot.press("r")
        modal = await wait_until(pilot, lambda: isinstance(app.screen, RolesModal) and app.screen)
        roles = modal.query_one("#roles")
        roles.deselect_all()
        roles.select("department_head")  # without a department: refused by the store
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: "department" in modal.error, what="the roles refusal in the dialog")
        assert app.screen is modal and list(roles.selected) == ["department_head"]
        assert on_screen(modal.query_one("#dialog-error")) and on_screen(modal.query_one("#save"))
        assert {r.value for r in (await store.accounts.get("anna")).roles} == {"consultant"}


# -- issue 16: the call note, the second factor's set-up, the desk's, canned, notice and purpose dialogs ------


def kept_and_shown(modal, note_id: str, words: str) -> bool:
    """The refusal is in the docked line and next to its field, both on screen; the dialog is still the top."""
    note = modal.query_one(f"#{note_id}", Static)
    return (
        modal.app.screen is modal
        and words in modal.error
        and words in text(note)
        and on_screen(modal.query_one("#dialog-error"))
        and in_view(modal, note)
    )


async def test_call_note_refused_by_the_store_stays_with_the_category_and_note(
    ami_server, make_chat_server, make_staff, store, tui_app
):
    from tests.fixtures.ami import read_transcript
    from tui.screens.traffic import TrafficScreen
    from tui.widgets.call_note import CallNoteModal

    server = await make_chat_server(ami_url=ami_server.url)
    await ami_server.wait_logged_in()
    await make_staff("ewa", "consultant", extensions=("202",))
    jan = await make_staff("jan", "consultant")
    app = tui_app(server_url=server.url)
    async with app.run_test(size=SMALL) as pilot:
        await sign_in(pilot, "ewa", PASSWORD)
        await app.run_action("open_area('traffic')")
        screen = await wait_until(pilot, lambda: isinstance(app.screen, TrafficScreen) and app.screen)
        await wait_until(pilot, lambda: screen.state is not None, what="the first traffic event")
        await ami_server.send(read_transcript("ami_morning.txt"))
        await wait_until(pilot, lambda: screen.my_call() is not None, what="the call card")
        # meanwhile another consultant describes the same call: the store refuses ewa's note
        await store.call_notes.annotate(jan.as_actor(), "1772442000.1", "information_given", "")
        await pilot.press("k")
        modal = await wait_until(pilot, lambda: isinstance(app.screen, CallNoteModal) and app.screen)
        await pilot.press("down")  # information_given -> referred
        await pilot.press("enter")  # to the note
        await pilot.press(*"Wydział Podatków")
        await pilot.press("enter")
        await wait_until(
            pilot, lambda: kept_and_shown(modal, "err-call-note", "already described"), what="the refusal in place"
        )
        assert modal.query_one("#call-note", Input).value == "Wydział Podatków"
        assert modal.categories[modal.query_one("#call-category").highlighted] == "referred"
        assert (await store.call_notes.get("1772442000.1")).note == ""  # jan's note, not overwritten
        await pilot.press("escape")
        await wait_until(pilot, lambda: app.screen is screen)


async def test_a_wrong_enrolment_code_keeps_the_dialog_and_the_same_key(tui_app, make_staff, store, clock):
    import pyotp

    from tui.widgets.modals import EnrolmentModal, RecoveryCodesModal

    await make_staff("anna", "consultant")
    app = tui_app()
    async with app.run_test(size=SMALL) as pilot:
        await sign_in(pilot, "anna", PASSWORD)
        await pilot.press("ctrl+u")
        await wait_until(pilot, lambda: type(app.screen).__name__ == "AccountScreen")
        await pilot.press("t")
        modal = await wait_until(pilot, lambda: isinstance(app.screen, EnrolmentModal) and app.screen)
        secret = modal.secret
        right = pyotp.TOTP(secret).at(clock())
        wrong = f"{(int(right) + 1) % 1_000_000:06d}"
        code = modal.query_one("#enrolment-code", Input)
        assert modal.focused is code
        await pilot.press(*"12")  # the dialog's own check first
        await pilot.press("enter")
        await wait_until(pilot, lambda: kept_and_shown(modal, "err-enrolment-code", "6 digits"))
        assert code.value == "12"
        code.value = ""
        await pilot.press(*wrong)
        await pilot.press("enter")
        await wait_until(
            pilot, lambda: kept_and_shown(modal, "err-enrolment-code", "Wrong or already used code"), what="refusal"
        )
        assert modal.secret == secret and secret[:4] in text(modal.query_one("#enrolment-secret", Static))
        assert code.value == wrong and in_view(modal, code)
        assert (await store.accounts.get("anna")).second_factor == "pending"
        # the same key's code now: the key the app was given is the one being set up (no new key was made)
        code.value = right
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, RecoveryCodesModal), what="the recovery codes")
    assert (await store.accounts.get("anna")).second_factor == "active"


async def _desk(pilot, app):
    await app.action_open_area("desk")
    return await wait_until(pilot, lambda: type(app.screen).__name__ == "DeskScreen" and app.screen)


async def test_desk_dialogs_keep_the_input_on_a_refusal(tui_app, make_staff, store):
    from tui.screens.desk import CapacityModal, SkillsModal, TopicModal

    maria = await make_staff("maria", "cim_manager")
    await make_staff("anna", "consultant")
    await store.desk.add_topic(maria.as_actor(), "Podatki", "Taxes", None)
    app = tui_app()
    async with app.run_test(size=SMALL) as pilot:
        await sign_in(pilot, "maria", PASSWORD)
        desk = await _desk(pilot, app)
        await wait_until(pilot, lambda: desk.people and desk.topics, what="the desk loaded")
        await pilot.press("a")
        modal = await wait_until(pilot, lambda: isinstance(app.screen, TopicModal) and app.screen)
        assert modal.focused is modal.query_one("#label-pl")
        typed = {"#label-pl": "Dowody osobiste", "#label-en": "Identity cards", "#department": "NOPE"}
        for field, value in typed.items():
            modal.query_one(field, Input).focus()
            await pilot.press(*value)
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: kept_and_shown(modal, "err-department", "NOPE"), what="the unknown department")
        assert {f: modal.query_one(f, Input).value for f in typed} == typed
        assert on_screen(modal.query_one("#save")) and modal.focused is modal.query_one("#department")
        await pilot.press("escape")
        await wait_until(pilot, lambda: app.screen is desk)

        before = {p.name: p.max_chats for p in (await store.desk.people()).values()}
        await pilot.press("c")
        modal = await wait_until(pilot, lambda: isinstance(app.screen, CapacityModal) and app.screen)
        field = modal.query_one("#max-chats", Input)
        field.value = ""
        await pilot.press(*"x1")
        await pilot.press("enter")
        await wait_until(pilot, lambda: kept_and_shown(modal, "err-max-chats", "number"), what="the own check")
        assert field.value == "x1"
        field.value = ""
        await pilot.press(*"99")  # more than the store allows
        await pilot.press("enter")
        await wait_until(pilot, lambda: kept_and_shown(modal, "err-max-chats", "1 to 50"), what="the store's refusal")
        assert field.value == "99"
        assert {p.name: p.max_chats for p in (await store.desk.people()).values()} == before
        await pilot.press("escape")
        await wait_until(pilot, lambda: app.screen is desk)

        await pilot.press("s")
        modal = await wait_until(pilot, lambda: isinstance(app.screen, SkillsModal) and app.screen)
        skills = modal.query_one("#skills")
        skills.select(desk.topics[0].id)
        # the store asked by someone without the permission (as if maria's roles changed meanwhile)
        anna = (await store.accounts.get("anna")).as_actor()
        modal.save = lambda ids: store.desk.set_skills(anna, modal.person.name, ids)
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: kept_and_shown(modal, "err-skills", "not permitted"), what="the refusal")
        assert list(skills.selected) == [desk.topics[0].id]


async def test_canned_and_notice_editors_keep_the_text_at_80x24(tui_app, make_staff, store):
    from tui.screens.canned import CannedEditModal
    from tui.screens.notices import NoticeVersionModal

    await make_staff("kierownik", "cim_manager")
    anna = (await make_staff("anna", "consultant")).as_actor()
    app = tui_app()
    async with app.run_test(size=SMALL) as pilot:
        await sign_in(pilot, "kierownik", PASSWORD)
        screen = await open_area(pilot, "f10", "CannedScreen")
        await pilot.press("a")
        modal = await wait_until(pilot, lambda: isinstance(app.screen, CannedEditModal) and app.screen)
        assert modal.focused is modal.query_one("#canned-title")
        await pilot.press(*"Godziny", "enter", *"Pn-Pt 7:30-15:30")
        modal.save = lambda title, body: store.chats.add_canned(anna, title, body)
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: kept_and_shown(modal, "err-canned-text", "not permitted"), what="refusal")
        assert modal.query_one("#canned-title", Input).value == "Godziny"
        assert modal.query_one("#canned-text").text == "Pn-Pt 7:30-15:30"
        assert on_screen(modal.query_one("#save"))
        await pilot.press("escape")
        await wait_until(pilot, lambda: app.screen is screen)

        screen = await open_area(pilot, "f11", "NoticesScreen")
        await pilot.press("c")
        modal = await wait_until(pilot, lambda: isinstance(app.screen, NoticeVersionModal) and app.screen)
        polish = modal.query_one("#notice-pl")
        polish.text = ""
        polish.focus()
        await pilot.press(*"Nowa klauzula.")
        english = modal.query_one("#notice-en")
        english.text = "x" * 5001
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: kept_and_shown(modal, "err-notice-en", "English text"), what="the own check")
        assert modal.focused is english
        english.text = "A new notice."
        modal.save = lambda texts: store.notices.add_version(anna, "chat", texts)
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: "not permitted" in modal.error and on_screen(modal.query_one("#dialog-error")))
        assert app.screen is modal and polish.text == "Nowa klauzula." and english.text == "A new notice."
        assert on_screen(modal.query_one("#save"))


async def test_purpose_dialog_keeps_a_too_short_purpose_and_says_why(tui_app, make_staff):
    from tui.widgets.purpose import PurposeModal

    await make_staff("anna", "consultant")
    app = tui_app()
    async with app.run_test(size=SMALL) as pilot:
        await sign_in(pilot, "anna", PASSWORD)
        opened: list[str | None] = []
        app.push_screen(PurposeModal("the recording"), opened.append)
        modal = await wait_until(pilot, lambda: isinstance(app.screen, PurposeModal) and app.screen)
        await pilot.pause()
        assert modal.focused is modal.query_one("#purpose")
        await pilot.press(*"ab", "enter")
        await wait_until(pilot, lambda: kept_and_shown(modal, "err-purpose", "at least 3"), what="the own check")
        assert modal.query_one("#purpose", Input).value == "ab"
        await pilot.press(*"c W/2026/0001", "enter")
        await wait_until(pilot, lambda: opened == ["abc W/2026/0001"])
