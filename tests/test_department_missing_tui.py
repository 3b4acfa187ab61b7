"""A department code that does not exist, refused in the TUI in the staff language with the TUI's own way out.

The store's sentence names a `cim` command (the CLI's), which nobody working in the TUI over SSH can run.
The store marks the refusal with `refusal_reason="department_missing"`; the TUI words it from that code
(tui/refusals.py), so Polish (the default staff language) says the same as English: add it with N in F9,
or, for someone who may not add departments, who can. Real store, real app, Pilot.
"""

from __future__ import annotations

import pytest
from textual.widgets import Input, Static

from store.errors import InvalidInput, NotFound
from tests.fixtures.store import PASSWORD, SYSTEM
from tests.fixtures.tui import SIZE, sign_in, wait_until
from tui.widgets.modals import NewStaffModal

LANGS = [pytest.param("en", marks=pytest.mark.staff_lang("en")), pytest.param("pl", marks=pytest.mark.staff_lang("pl"))]
#: per language: what the sentence must say (the department is missing; how to add one in the TUI / who adds one)
WORDS = {
    "en": {"missing": "does not exist", "add": "N (New department) in F9", "who": "system administrator"},
    "pl": {"missing": "nie istnieje", "add": "N (Nowy wydział) w F9", "who": "administrator systemu"},
}


async def test_the_store_marks_a_missing_department_with_a_reason(store):
    with pytest.raises(InvalidInput) as staff:
        await store.accounts.add_staff(SYSTEM, "ewa", ["consultant"], "ewa-password-1", department="USC")
    with pytest.raises(NotFound) as topic:
        await store.desk.add_topic(SYSTEM, "Dowody", "Identity cards", "USC")
    assert staff.value.refusal_reason == "department_missing" and staff.value.params["code"] == "USC"
    assert topic.value.refusal_reason == "department_missing" and topic.value.params["code"] == "USC"


@pytest.mark.parametrize("lang", LANGS)
async def test_new_account_with_a_missing_department_points_to_f9_in_the_staff_language(
    lang, tui_app, make_staff, store
):
    await make_staff("root", "it_admin")
    app = tui_app()
    async with app.run_test(size=SIZE) as pilot:
        await sign_in(pilot, "root", PASSWORD)
        await pilot.press("f9")
        await wait_until(pilot, lambda: type(app.screen).__name__ == "AccountsScreen", what="F9")
        await pilot.press("a")
        modal = await wait_until(pilot, lambda: isinstance(app.screen, NewStaffModal) and app.screen)
        typed = {"#name": "ewa", "#full-name": "Ewa Nowak", "#department": "USC", "#password": "ewa-password-1"}
        for field, value in typed.items():
            modal.query_one(field, Input).value = value
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: modal.error, what="the refusal in the dialog")
        error = modal.error
        assert WORDS[lang]["missing"] in error and "'USC'" in error, error
        assert WORDS[lang]["add"] in error, error
        assert "cim " not in error and "`" not in error, error
        # next to the department field (by the reason, not by English words), focused, input kept
        assert str(modal.query_one("#err-department", Static).render()) == error
        assert modal.focused is modal.query_one("#department", Input)
        assert app.screen is modal and {f: modal.query_one(f, Input).value for f in typed} == typed
        assert [s.name for s in await store.accounts.list_staff(SYSTEM)] == ["root"]


@pytest.mark.parametrize("lang", LANGS)
async def test_a_topics_missing_department_names_the_codes_and_who_adds_one(lang, tui_app, make_staff, store):
    await make_staff("maria", "cim_manager")  # may set topics, may not add departments
    await store.accounts.add_department(SYSTEM, "WSO", "Wydział Spraw Obywatelskich")
    app = tui_app()
    async with app.run_test(size=SIZE) as pilot:
        await sign_in(pilot, "maria", PASSWORD)
        from tui.screens.desk import DeskScreen

        await app.push_screen(DeskScreen(app.ctx))
        await wait_until(pilot, lambda: type(app.screen).__name__ == "DeskScreen", what="the desk screen")
        await pilot.press("a")
        modal = await wait_until(pilot, lambda: type(app.screen).__name__ == "TopicModal" and app.screen)
        modal.query_one("#label-pl").value = "Dowody osobiste"
        modal.query_one("#label-en").value = "Identity cards"
        modal.query_one("#department").value = "NOPE"
        await pilot.press("ctrl+s")
        line = modal.query_one("#dialog-error", Static)
        await wait_until(pilot, lambda: str(line.render()), what="the refusal of an unknown department")
        error = str(line.render())
        assert WORDS[lang]["missing"] in error and "'NOPE'" in error, error
        assert WORDS[lang]["who"] in error and "WSO" in error, error
        assert WORDS[lang]["add"] not in error  # the CIM manager cannot add one: not told to
        assert "cim " not in error and "`" not in error, error
        assert app.screen is modal and modal.query_one("#label-pl").value == "Dowody osobiste"
        assert await store.desk.topics() == []
