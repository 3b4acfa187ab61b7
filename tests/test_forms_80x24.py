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
