"""The CIM manager's notices screen: refusals, validation in place, a new version becoming current with history kept."""

from __future__ import annotations

import pytest
from textual.widgets import DataTable, Static, TextArea

from store.errors import NotPermitted
from store.notices import MAX_NOTICE
from tests.fixtures.audit_log import audit_log
from tests.fixtures.store import PASSWORD
from tests.fixtures.tui import SIZE, notifications, sign_in, wait_until
from tui.screens.home import HomeScreen
from tui.screens.notices import NoticesScreen, NoticeVersionModal


async def _notices_screen(pilot, app) -> DataTable:
    await pilot.press("f11")
    await wait_until(pilot, lambda: isinstance(app.screen, NoticesScreen), what="the notices screen")
    table = app.screen.query_one("#notices-table", DataTable)
    await wait_until(pilot, lambda: table.row_count > 0, what="the notice history")
    return table


async def _open_editor(pilot, app, key: str) -> NoticeVersionModal:
    await pilot.press(key)
    return await wait_until(
        pilot, lambda: isinstance(app.screen, NoticeVersionModal) and app.screen, what="the new-version editor"
    )


def _fill(modal: NoticeVersionModal, pl: str, en: str) -> None:
    modal.query_one("#notice-pl", TextArea).text = pl
    modal.query_one("#notice-en", TextArea).text = en


def _error(modal: NoticeVersionModal) -> str:
    return str(modal.query_one("#dialog-error", Static).render())


# -- refusals and bad input first ---------------------------------------------------------------------------


@pytest.mark.ordinance("§5")
async def test_the_store_refuses_a_consultant_a_new_notice_version_and_audits_it(store, make_staff) -> None:
    anna = (await make_staff("anna", "consultant")).as_actor()
    before = await store.notices.history("chat")
    with pytest.raises(NotPermitted):
        await store.notices.add_version(anna, "chat", {"pl": "Nowa klauzula."})
    assert await store.notices.history("chat") == before
    rows = await audit_log(store, action="notice.add")
    assert [(r.action, r.outcome) for r in rows] == [("notice.add", "refused")]


async def test_a_consultant_cannot_open_the_notices(tui_app, make_staff) -> None:
    await make_staff("anna", "consultant")
    app = tui_app()
    async with app.run_test(size=SIZE) as pilot:
        await sign_in(pilot, "anna", PASSWORD)
        assert "notices" not in [a.key for a in app.screen.areas]
        await pilot.press("f11")
        await pilot.pause()
        assert isinstance(app.screen, HomeScreen)


async def test_missing_polish_too_long_and_unchanged_texts_are_explained_in_place(tui_app, make_staff, store) -> None:
    await make_staff("kierownik", "cim_manager")
    before = await store.notices.history("chat")
    app = tui_app()
    async with app.run_test(size=SIZE) as pilot:
        await sign_in(pilot, "kierownik", PASSWORD)
        await _notices_screen(pilot, app)
        modal = await _open_editor(pilot, app, "c")
        assert "legally binding" in str(modal.query_one(".notice-warning", Static).render())

        await pilot.press("ctrl+s")  # the current texts, unchanged
        await wait_until(pilot, lambda: "same as the current version" in _error(modal), what="the unchanged message")

        _fill(modal, "   ", "Only an English text.")
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: "Enter the Polish text" in _error(modal), what="the missing-Polish message")

        _fill(modal, "Klauzula.", "e" * (MAX_NOTICE + 1))
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: f"at most {MAX_NOTICE}" in _error(modal), what="the too-long message")
        assert "English" in _error(modal)
        assert app.screen is modal
        await pilot.press("escape")
        await wait_until(pilot, lambda: isinstance(app.screen, NoticesScreen), what="the history again")
    assert await store.notices.history("chat") == before


# -- a new version -----------------------------------------------------------------------------------------


@pytest.mark.ordinance("§1.5")
async def test_a_new_chat_notice_version_becomes_current_and_the_old_one_stays(tui_app, make_staff, store) -> None:
    await make_staff("kierownik", "cim_manager")
    old = await store.notices.current("chat", "pl")
    app = tui_app()
    async with app.run_test(size=SIZE) as pilot:
        await sign_in(pilot, "kierownik", PASSWORD)
        table = await _notices_screen(pilot, app)
        rows_before = table.row_count
        modal = await _open_editor(pilot, app, "c")
        assert modal.query_one("#notice-pl", TextArea).text == old.text  # starts from the current text
        _fill(modal, "[b]Nowa[/b] klauzula informacyjna.", "")
        await pilot.press("ctrl+s")
        await wait_until(
            pilot,
            lambda: isinstance(app.screen, NoticesScreen) and table.row_count == rows_before + 1,
            what="the new version in the history",
        )
        assert any(f"version {old.version + 1}" in n for n in notifications(app))
        screen = app.screen
        current = [(r.notice.channel, r.notice.version, r.notice.lang) for r in screen.rows if r.current]
        assert ("chat", old.version + 1, "pl") in current and ("chat", old.version, "pl") not in current
        assert any(
            r.notice.version == old.version and r.notice.channel == "chat" and not r.current for r in screen.rows
        )
        # the cursor is on the new version, shown literally
        preview = str(screen.query_one("#notice-preview", Static).render())
        assert "[b]Nowa[/b] klauzula informacyjna." in preview and "legally binding" in preview
        assert str(table.get_row_at(table.cursor_row)[4]) == "● current"
    new = await store.notices.current("chat", "pl")
    assert (new.version, new.text, new.legal) == (old.version + 1, "[b]Nowa[/b] klauzula informacyjna.", True)
    # no English translation was given, so residents choosing English get the Polish text of the new version
    assert (await store.notices.current("chat", "en")).id == new.id
    history = await store.notices.history("chat")
    assert any(n.id == old.id and n.text == old.text for n in history)
    rows = await audit_log(store, action="notice.add")
    assert [r.outcome for r in rows] == ["ok"]


@pytest.mark.ordinance("§1.4")
async def test_a_new_phone_notice_version_with_english_at_80x24(tui_app, make_staff, store) -> None:
    await make_staff("kierownik", "cim_manager")
    old = await store.notices.current("phone", "pl")
    app = tui_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await sign_in(pilot, "kierownik", PASSWORD)
        await _notices_screen(pilot, app)
        modal = await _open_editor(pilot, app, "p")
        assert modal.query_one("#save").region.bottom <= 24  # the Save button is on screen
        _fill(modal, "Rozmowa jest nagrywana.", "This call is recorded.")
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: isinstance(app.screen, NoticesScreen), what="the history again")
        await wait_until(
            pilot,
            lambda: any("export-phone" in n and "IT administrator" in n for n in notifications(app)),
            what="the reminder to regenerate the PBX prompts",
        )
    assert (await store.notices.current("phone", "pl")).version == old.version + 1
    assert (await store.notices.current("phone", "en")).text == "This call is recorded."
    assert (await store.notices.current("chat", "pl")).version == 1  # the other channel is untouched
