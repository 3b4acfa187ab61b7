"""A store refusal in a form dialog lands next to the field it is about in Polish too (the default staff language).

`SubmitsInPlace.ERROR_FIELDS` names fields by English words; the sentence shown is Polish, so the words are
looked for in the refusal's English rendering (and a `refusal_reason`, when the store gives one, wins).
Real store, real app, Pilot.
"""

from __future__ import annotations

import pytest
from textual.widgets import Input, Static

from tests.fixtures.store import PASSWORD
from tests.fixtures.tui import SIZE, sign_in, wait_until
from tui.screens.account import ChangePasswordModal


@pytest.mark.staff_lang("pl")
async def test_a_wrong_current_password_is_shown_under_its_field_in_polish(tui_app, make_staff) -> None:
    await make_staff("anna", "consultant")
    app = tui_app()
    async with app.run_test(size=SIZE) as pilot:
        await sign_in(pilot, "anna", PASSWORD)
        await pilot.press("ctrl+u")
        await wait_until(pilot, lambda: type(app.screen).__name__ == "AccountScreen", what="Moje konto")
        await pilot.press("p")
        modal = await wait_until(pilot, lambda: isinstance(app.screen, ChangePasswordModal) and app.screen)
        typed = {"#current": "nie-to-haslo", "#new": "zupelnie-nowe-haslo-9", "#again": "zupelnie-nowe-haslo-9"}
        for field, value in typed.items():
            modal.query_one(field, Input).value = value
        modal.query_one("#again", Input).focus()
        await pilot.press("enter")
        await wait_until(pilot, lambda: modal.error, what="the refusal in the dialog")
        assert "Obecne hasło jest błędne" in modal.error, modal.error
        note = modal.query_one("#err-current", Static)
        assert str(note.render()) == modal.error and note.display
        assert modal.focused is modal.query_one("#current", Input)
        assert modal.query_one("#new", Input).value == "zupelnie-nowe-haslo-9"
