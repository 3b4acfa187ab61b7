"""The CIM manager's canned-responses screen: refusals, validation in place, literal text, add/edit/delete through the store."""

from __future__ import annotations

import pytest
from textual.widgets import DataTable, Input, Static, TextArea

from store.chats import MAX_CANNED_TITLE
from store.errors import MessageTooLong, NotPermitted
from tests.fixtures.audit_log import audit_log
from tests.fixtures.store import PASSWORD, SYSTEM
from tests.fixtures.tui import SIZE, notifications, sign_in, wait_until
from tui.screens.canned import CannedEditModal, CannedScreen, DeleteCannedModal
from tui.screens.home import HomeScreen


async def _canned_screen(pilot, app) -> DataTable:
    await pilot.press("f10")
    await wait_until(pilot, lambda: isinstance(app.screen, CannedScreen), what="the canned responses screen")
    return app.screen.query_one("#canned-table", DataTable)


async def _open_editor(pilot, app, key: str) -> CannedEditModal:
    await pilot.press(key)
    return await wait_until(
        pilot, lambda: isinstance(app.screen, CannedEditModal) and app.screen, what="the canned response editor"
    )


def _fill(modal: CannedEditModal, title: str, text: str) -> None:
    modal.query_one("#canned-title", Input).value = title
    modal.query_one("#canned-text", TextArea).text = text


def _error(modal: CannedEditModal, which: str) -> str:
    return str(modal.query_one(f"#err-canned-{which}", Static).render())


async def _audit(store, prefix: str) -> list[tuple[str, str]]:
    return [(r.action, r.outcome) for r in await audit_log(store, action_prefix=prefix)]


# -- refusals first -------------------------------------------------------------------------------------


@pytest.mark.ordinance("§5")
async def test_a_consultant_has_neither_area_nor_its_keys(tui_app, make_staff) -> None:
    await make_staff("anna", "consultant")
    app = tui_app()
    async with app.run_test(size=SIZE) as pilot:
        await sign_in(pilot, "anna", PASSWORD)
        shown = [a.key for a in app.screen.areas]
        assert "canned" not in shown and "notices" not in shown
        await pilot.press("f10", "f11")
        await pilot.pause()
        assert isinstance(app.screen, HomeScreen)


@pytest.mark.ordinance("§5")
async def test_the_store_refuses_a_consultant_adding_a_canned_response_and_audits_it(store, make_staff) -> None:
    anna = (await make_staff("anna", "consultant")).as_actor()
    with pytest.raises(NotPermitted):
        await store.chats.add_canned(anna, "Godziny", "Urząd jest czynny w dni robocze.")
    assert await _audit(store, "canned.") == [("canned.add", "refused")]
    assert await store.chats.canned(anna) == []


async def test_an_oversized_text_is_refused_by_the_store_itself(store, make_staff, settings) -> None:
    manager = (await make_staff("kierownik", "cim_manager")).as_actor()
    with pytest.raises(MessageTooLong):
        await store.chats.add_canned(manager, "Długi", "x" * (settings.max_message_length + 1))
    assert await store.chats.canned(manager) == []


async def test_the_manager_lists_canned_responses_without_handling_chats(store, make_staff) -> None:
    manager = (await make_staff("kierownik", "cim_manager")).as_actor()
    await store.chats.add_canned(manager, "Godziny", "Pn–Pt 7:30–15:30.")
    assert [c.title for c in await store.chats.canned(manager)] == ["Godziny"]
    assert not [a for a in await _audit(store, "canned.") if a[1] == "refused"]


async def test_empty_and_too_long_fields_are_explained_in_place_and_nothing_is_saved(
    tui_app, make_staff, store, settings
) -> None:
    await make_staff("kierownik", "cim_manager")
    app = tui_app()
    async with app.run_test(size=SIZE) as pilot:
        await sign_in(pilot, "kierownik", PASSWORD)
        await _canned_screen(pilot, app)
        modal = await _open_editor(pilot, app, "a")

        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: "Enter a title." in _error(modal, "title"), what="the empty-title message")
        assert "Enter the text" in _error(modal, "text")

        _fill(modal, "t" * (MAX_CANNED_TITLE + 1), "x" * (settings.max_message_length + 1))
        await pilot.press("ctrl+s")
        await wait_until(
            pilot, lambda: f"at most {MAX_CANNED_TITLE}" in _error(modal, "title"), what="the too-long title message"
        )
        assert f"at most {settings.max_message_length}" in _error(modal, "text")

        # blank-looking text is empty too; the typed title stays where it was
        _fill(modal, "Godziny", " \n\t ")
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: "Enter the text" in _error(modal, "text"), what="the empty-text message")
        assert _error(modal, "title") == ""
        assert modal.query_one("#canned-title", Input).value == "Godziny"
        assert app.screen is modal

        await pilot.press("escape")
        await wait_until(pilot, lambda: isinstance(app.screen, CannedScreen), what="the list again")
    manager = (await store.accounts.get("kierownik")).as_actor()
    assert await store.chats.canned(manager) == []
    assert not [a for a in await _audit(store, "canned.") if a[0] != "canned.list"]


async def test_a_store_refusal_is_shown_in_the_editor_with_the_text_kept(tui_app, make_staff, store) -> None:
    await make_staff("kierownik", "cim_manager")
    app = tui_app()
    async with app.run_test(size=SIZE) as pilot:
        await sign_in(pilot, "kierownik", PASSWORD)
        await _canned_screen(pilot, app)
        modal = await _open_editor(pilot, app, "a")
        _fill(modal, "Godziny", "Pn–Pt 7:30–15:30.")
        # the editor saves through whatever the store says: here the store is asked by someone without the
        # permission (as if the roles had changed), and its refusal must appear in place, the text kept
        anna = (await make_staff("anna", "consultant")).as_actor()
        modal.save = lambda title, text: store.chats.add_canned(anna, title, text)
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: "not permitted" in _error(modal, "text"), what="the refusal in place")
        assert app.screen is modal
        assert modal.query_one("#canned-text", TextArea).text == "Pn–Pt 7:30–15:30."
    assert ("canned.add", "refused") in await _audit(store, "canned.add")


# -- the happy path ---------------------------------------------------------------------------------------


@pytest.mark.ordinance("§5")
async def test_manager_adds_edits_and_deletes_and_a_consultant_sees_the_result(tui_app, make_staff, store) -> None:
    anna = (await make_staff("anna", "consultant")).as_actor()
    await make_staff("kierownik", "cim_manager")
    app = tui_app()
    async with app.run_test(size=SIZE) as pilot:
        await sign_in(pilot, "kierownik", PASSWORD)
        table = await _canned_screen(pilot, app)
        assert table.row_count == 0

        modal = await _open_editor(pilot, app, "a")
        _fill(modal, "Godziny pracy", "Urząd jest czynny\nw dni robocze.")
        await pilot.press("ctrl+s")
        await wait_until(
            pilot,
            lambda: isinstance(app.screen, CannedScreen) and table.row_count == 1,
            what="the new response in the list",
        )
        assert any("Godziny pracy" in n and "added" in n for n in notifications(app))
        assert [(c.title, c.text) for c in await store.chats.canned(anna)] == [
            ("Godziny pracy", "Urząd jest czynny\nw dni robocze.")
        ]

        modal = await _open_editor(pilot, app, "e")
        assert modal.query_one("#canned-title", Input).value == "Godziny pracy"
        _fill(modal, "Godziny", "Pn 8:00–17:00, wt–pt 7:30–15:30.")
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: isinstance(app.screen, CannedScreen), what="the list after editing")
        await wait_until(pilot, lambda: [c.title for c in app.screen.responses] == ["Godziny"], what="the edit")
        assert [(c.title, c.text) for c in await store.chats.canned(anna)] == [
            ("Godziny", "Pn 8:00–17:00, wt–pt 7:30–15:30.")
        ]

        await pilot.press("d")
        await wait_until(pilot, lambda: isinstance(app.screen, DeleteCannedModal), what="the confirmation")
        await pilot.press("n")  # no: nothing happens
        await wait_until(pilot, lambda: isinstance(app.screen, CannedScreen), what="the list again")
        assert len(await store.chats.canned(anna)) == 1
        await pilot.press("d")
        await wait_until(pilot, lambda: isinstance(app.screen, DeleteCannedModal), what="the confirmation")
        await pilot.press("y")
        await wait_until(
            pilot, lambda: isinstance(app.screen, CannedScreen) and table.row_count == 0, what="the empty list"
        )
    assert await store.chats.canned(anna) == []
    actions = [a for a in await _audit(store, "canned.") if a[0] != "canned.list"]
    assert actions == [("canned.add", "ok"), ("canned.update", "ok"), ("canned.delete", "ok")]
    assert (await store.audit.verify()).ok


async def test_markup_looking_text_is_saved_and_shown_exactly_as_typed(tui_app, make_staff, store) -> None:
    await make_staff("kierownik", "cim_manager")
    app = tui_app()
    async with app.run_test(size=SIZE) as pilot:
        await sign_in(pilot, "kierownik", PASSWORD)
        table = await _canned_screen(pilot, app)
        modal = await _open_editor(pilot, app, "a")
        _fill(modal, "[b]x[/b]", "[b]x[/b] [link=http://e]tu[/link]")
        await pilot.press("ctrl+s")
        await wait_until(
            pilot, lambda: isinstance(app.screen, CannedScreen) and table.row_count == 1, what="the saved response"
        )
        row = table.get_row_at(0)
        assert not row[0].spans and not row[1].spans  # no style came from the brackets
        cells = [str(cell) for cell in row]
        assert cells[0] == "[b]x[/b]"
        assert cells[1] == "[b]x[/b] [link=http://e]tu[/link]"
        preview = app.screen.query_one("#canned-preview", Static).render()
        assert "[b]x[/b]\n[b]x[/b] [link=http://e]tu[/link]" in str(preview)
        assert any("“[b]x[/b]” added" in n for n in notifications(app))
    saved = await store.chats.canned((await store.accounts.get("kierownik")).as_actor())
    assert [(c.title, c.text) for c in saved] == [("[b]x[/b]", "[b]x[/b] [link=http://e]tu[/link]")]


async def test_the_screen_fits_80x24_and_works_by_keyboard(tui_app, make_staff, store) -> None:
    manager = (await make_staff("kierownik", "cim_manager")).as_actor()
    for i in range(30):
        await store.chats.add_canned(SYSTEM if i % 2 else manager, f"Odpowiedź {i:02}", f"Treść {i} " * 40)
    app = tui_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await sign_in(pilot, "kierownik", PASSWORD)
        table = await _canned_screen(pilot, app)
        await wait_until(pilot, lambda: table.row_count == 30, what="all responses")
        await pilot.press("ctrl+end")
        await wait_until(
            pilot,
            lambda: "Odpowiedź 29" in str(app.screen.query_one("#canned-preview", Static).render()),
            what="the preview of the last response",
        )
        modal = await _open_editor(pilot, app, "enter")
        assert modal.query_one("#canned-title", Input).value == "Odpowiedź 29"
        save = modal.query_one("#save")
        assert save.region.bottom <= 24 and save.region.width > 0  # the Save button is on screen
        await pilot.press("escape")
        await wait_until(pilot, lambda: isinstance(app.screen, CannedScreen), what="the list again")
