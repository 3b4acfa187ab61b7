"""The keys panel (Ctrl+P → *Klawisze*) in the staff language (issue 16): Textual's own widgets (Input,
DataTable, TextArea, ...) describe their keys in English; the panel shows them in Polish by default."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest
from rich.console import Console
from textual.app import App
from textual.dom import DOMNode
from textual.widgets._key_panel import BindingsTable
from textual.widgets._select import SelectOverlay

import tui
from store.i18n import _, set_language
from tests.fixtures.store import PASSWORD
from tests.fixtures.tui import SIZE, sign_in, wait_until
from tui.textual_words import TEXTUAL_DESCRIPTIONS
from tui.widgets.help_panel import StaffHelpPanel, translate_node

#: Widgets Textual makes inside the ones CIM uses (a Select's drop-down list), focusable themselves.
INNER_WIDGETS: list[type[DOMNode]] = [SelectOverlay]


def textual_classes_the_ui_uses() -> set[type[DOMNode]]:
    """Every Textual class a tui/ class derives from or a tui/ module imports, with the inner widgets (and the
    App, whose Ctrl+Q tooltip the keys panel shows)."""
    found: set[type[DOMNode]] = {*INNER_WIDGETS, App}
    for module_info in pkgutil.walk_packages(tui.__path__, "tui."):
        if module_info.name.endswith("__main__"):
            continue
        module = importlib.import_module(module_info.name)
        for value in vars(module).values():
            if inspect.isclass(value) and issubclass(value, DOMNode):
                found.update(c for c in value.__mro__ if c.__module__.startswith("textual.") and issubclass(c, DOMNode))
    return found


def test_every_key_description_of_textuals_widgets_in_the_ui_is_in_the_catalog_list() -> None:
    missing = {}
    for cls in textual_classes_the_ui_uses():
        merged = cls._merged_bindings or cls._merge_bindings()  # DOMNode itself is never merged: it has none
        for bindings in merged.key_to_bindings.values():
            for b in bindings:
                for text in (b.description, b.tooltip):
                    if text and text not in TEXTUAL_DESCRIPTIONS:
                        missing[text] = cls.__name__
    assert not missing, f"add these to tui/textual_words.py and store/locale/pl/textual.po: {missing}"
    assert len(textual_classes_the_ui_uses()) > 10  # the walk found the UI's widgets, not nothing


@pytest.mark.staff_lang("pl")
def test_every_listed_description_has_a_polish_wording() -> None:
    untranslated = [d for d in TEXTUAL_DESCRIPTIONS if _(d) == d]
    assert not untranslated, untranslated


def _panel_text(app) -> str:
    """The keys panel's table as text ("" until the panel and its table are mounted)."""
    tables = app.screen.query(StaffHelpPanel).first().query(BindingsTable) if app.screen.query(StaffHelpPanel) else []
    if not tables:
        return ""
    table = tables[0].render_bindings_table()
    console = Console(record=True, width=120, color_system=None)
    console.print(table)
    return console.export_text()


@pytest.mark.staff_lang("pl")
async def test_the_keys_panel_of_a_text_field_speaks_polish(tui_app) -> None:
    app = tui_app()
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.screen.focused is not None, what="the focused name field")
        app.action_show_help_panel()
        text = await wait_until(
            pilot,
            lambda: app.screen.query(StaffHelpPanel) and "Kursor w lewo" in (t := _panel_text(app)) and t,
            what="the keys panel in Polish",
        )
        assert "Usuń znak na lewo" in text and "Wklej tekst ze schowka" in text
        english = [d for d in TEXTUAL_DESCRIPTIONS if f" {d}\n" in text.replace("  ", " ")]
        assert not english, english
        # the panel follows the focus: the password field's keys are Polish too
        await pilot.press("tab")
        await pilot.pause()
        assert "Move cursor left" not in _panel_text(app)


@pytest.mark.staff_lang("en")
async def test_the_keys_panel_stays_english_with_cim_staff_lang_en(tui_app) -> None:
    app = tui_app()
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.screen.focused is not None, what="the focused name field")
        app.action_show_help_panel()
        text = await wait_until(
            pilot,
            lambda: app.screen.query(StaffHelpPanel) and "Move cursor left" in (t := _panel_text(app)) and t,
            what="the keys panel in English",
        )
        assert "Kursor w lewo" not in text


@pytest.mark.staff_lang("pl")
async def test_a_table_after_sign_in_lists_its_keys_in_polish(tui_app, make_staff) -> None:
    await make_staff("kierownik", "cim_manager")
    app = tui_app()
    async with app.run_test(size=SIZE) as pilot:
        await sign_in(pilot, "kierownik", PASSWORD)
        app.action_show_help_panel()
        text = await wait_until(
            pilot, lambda: app.screen.query(StaffHelpPanel) and _panel_text(app), what="the keys panel"
        )
        english = [d for d in TEXTUAL_DESCRIPTIONS if _(d) != d and d in text]
        assert not english, (english, text)


def test_a_language_switch_translates_again_from_the_english_source() -> None:
    """translate_node keeps each node's English source: Polish, then English again, then Polish."""
    from textual.widgets import Input

    field = Input()
    try:
        set_language("pl")
        translate_node(field)
        assert "Kursor w lewo" in {b.description for bs in field._bindings.key_to_bindings.values() for b in bs}
        set_language("en")
        translate_node(field)
        descriptions = {b.description for bs in field._bindings.key_to_bindings.values() for b in bs}
        assert "Move cursor left" in descriptions and "Kursor w lewo" not in descriptions
    finally:
        set_language(None)
