"""The name residents see in the chat, set by its owner: store.accounts.set_own_display_name and My account (D).

Real store (tests/fixtures/store.py), the real app through Pilot. Hostile input is refused with a clear
message and nothing is stored; the dialog keeps what was typed and shows the refusal next to the field.
"""

from __future__ import annotations

import pytest
from textual.widgets import Input, Static

from store.chats import MAX_DISPLAY_NAME
from store.errors import InvalidInput, NotPermitted
from store.models import Actor
from tests.fixtures.audit_log import audit_log
from tests.fixtures.store import PASSWORD, SYSTEM
from tests.fixtures.tui import SIZE, notifications, sign_in, wait_until
from tui.screens.account import DisplayNameModal


async def test_a_person_sets_the_name_residents_see_and_it_is_audited(store, make_staff) -> None:
    anna = await make_staff("anna", "consultant")
    assert anna.display_name is None
    saved = await store.accounts.set_own_display_name(anna.as_actor(), "  Anna   z  BOI ")
    assert saved.display_name == "Anna z BOI" and (await store.accounts.get("anna")).display_name == "Anna z BOI"
    assert await store.chats.display_name_of(anna.id) == "Anna z BOI"  # what the chat tells residents
    back = await store.accounts.set_own_display_name(anna.as_actor(), None)
    assert back.display_name is None and await store.chats.display_name_of(anna.id) is None  # the generic name
    rows = await audit_log(store, action="staff.display_name")
    assert [(r.actor_name, r.target_id, r.details) for r in rows] == [
        ("anna", str(anna.id), {"self": True, "display_name": "Anna z BOI"}),
        ("anna", str(anna.id), {"self": True, "display_name": None}),
    ]
    # the administrator's CLI path shares the validation
    with pytest.raises(InvalidInput):
        await store.chats.set_display_name(SYSTEM, "anna", "Anna\u202e")


@pytest.mark.parametrize(
    "hostile, words",
    [
        ("", "enter the name"),
        ("   \t ", "enter the name"),
        ("A" * (MAX_DISPLAY_NAME + 1), f"longer than {MAX_DISPLAY_NAME}"),
        ("Anna\x1b[31m", "control characters"),
        ("Anna\x00", "control characters"),
        ("An\rna", "control characters"),
        ("Anna\x85", "control characters"),  # C1 NEL: Python calls it white space, it is a control
        ("\u202eannA", "direction"),  # RIGHT-TO-LEFT OVERRIDE: reads "Anna" reversed
        ("Anna\u2066x\u2069", "direction"),  # an isolate
        ("Anna \ud800", "not valid unicode"),
        (42, "must be text"),
    ],
)
async def test_hostile_display_names_are_refused_and_nothing_is_stored(store, make_staff, hostile, words) -> None:
    anna = await make_staff("anna", "consultant")
    await store.accounts.set_own_display_name(anna.as_actor(), "Anna")
    with pytest.raises(InvalidInput) as refused:
        await store.accounts.set_own_display_name(anna.as_actor(), hostile)
    assert words in refused.value.message_in("en").lower(), refused.value.message_in("en")
    assert refused.value.message_in("pl") != refused.value.message_in("en")  # worded in Polish too
    assert (await store.accounts.get("anna")).display_name == "Anna"
    assert len(await audit_log(store, action="staff.display_name")) == 1


async def test_only_a_signed_in_person_sets_their_own_display_name(store) -> None:
    with pytest.raises(NotPermitted):
        await store.accounts.set_own_display_name(Actor.system("cli"), "Anna")


async def test_my_account_sets_the_display_name_and_a_refusal_keeps_the_input(tui_app, make_staff, store) -> None:
    anna = await make_staff("anna", "consultant")
    app = tui_app()
    async with app.run_test(size=SIZE) as pilot:
        await sign_in(pilot, "anna", PASSWORD)
        await pilot.press("ctrl+u")
        await wait_until(pilot, lambda: type(app.screen).__name__ == "AccountScreen", what="My account")
        account = app.screen
        facts = account.query_one("#account-facts", Static)
        await wait_until(
            pilot,
            lambda: "Name residents see: none, the chat says “a consultant” (the default" in str(facts.render()),
            what="the default name on My account",
        )
        await pilot.press("d")
        modal = await wait_until(pilot, lambda: isinstance(app.screen, DisplayNameModal) and app.screen)
        field = modal.query_one("#display-name", Input)
        # refused by the store: a right-to-left override; the dialog stays, the text is kept, the error is shown
        await pilot.press(*"Anna")
        field.value += "\u202e"  # pasted: Pilot has no key for it
        await pilot.press("enter")
        await wait_until(pilot, lambda: "direction" in modal.error, what="the store's refusal in the dialog")
        assert app.screen is modal and field.value == "Anna\u202e"
        assert "direction" in str(modal.query_one("#err-display-name", Static).render())
        assert modal.focused is field
        # refused: too long
        field.value = "A" * (MAX_DISPLAY_NAME + 1)
        await pilot.press("enter")
        await wait_until(pilot, lambda: "longer than" in modal.error, what="the length refusal")
        assert app.screen is modal and field.value == "A" * (MAX_DISPLAY_NAME + 1)
        # the dialog's own check: empty
        field.value = "  "
        await pilot.press("enter")
        await wait_until(pilot, lambda: "Ctrl+R" in modal.error, what="the empty name refused")
        assert app.screen is modal and (await store.accounts.get("anna")).display_name is None
        # saved
        field.value = "Anna"
        await pilot.press("enter")
        await wait_until(pilot, lambda: app.screen is account, what="back on My account")
        assert (await store.accounts.get("anna")).display_name == "Anna"
        await wait_until(
            pilot, lambda: "Name residents see: Anna (your choice" in str(facts.render()), what="the name shown"
        )
        assert any("Anna" in n for n in notifications(app))
        # back to the default with Ctrl+R
        await pilot.press("d")
        modal = await wait_until(pilot, lambda: isinstance(app.screen, DisplayNameModal) and app.screen)
        assert modal.query_one("#display-name", Input).value == "Anna"
        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: app.screen is account, what="back on My account")
        assert (await store.accounts.get("anna")).display_name is None
        await wait_until(
            pilot, lambda: "none, the chat says “a consultant” (the default" in str(facts.render()), what="the default"
        )
        rows = await audit_log(store, action="staff.display_name")
        assert [r.details["display_name"] for r in rows] == ["Anna", None] and {r.target_id for r in rows} == {
            str(anna.id)
        }


@pytest.mark.staff_lang("pl")
async def test_my_account_display_name_in_polish(tui_app, make_staff, store) -> None:
    await make_staff("anna", "consultant")
    app = tui_app()
    async with app.run_test(size=SIZE) as pilot:
        await sign_in(pilot, "anna", PASSWORD)
        await pilot.press("ctrl+u")
        await wait_until(pilot, lambda: type(app.screen).__name__ == "AccountScreen", what="Moje konto")
        facts = app.screen.query_one("#account-facts", Static)
        await wait_until(pilot, lambda: "Nazwa widoczna dla mieszkańców:" in str(facts.render()), what="the line")
        await pilot.press("d")
        modal = await wait_until(pilot, lambda: isinstance(app.screen, DisplayNameModal) and app.screen)
        modal.query_one("#display-name", Input).value = "Anna\x1b[31m"
        await pilot.press("enter")
        await wait_until(pilot, lambda: "znaki sterujące" in modal.error, what="the refusal in Polish")
        assert modal.error.startswith("Wyświetlana nazwa")
