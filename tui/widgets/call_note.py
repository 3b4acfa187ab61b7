"""The consultant's dialog for a call's category and short note: returns (category, note) or None."""

from __future__ import annotations

from typing import Sequence

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import Input, Label, OptionList, Static
from textual.widgets.option_list import Option
from store.i18n import _
from tui.screens.base import CimModal
from tui.words import CLOSE_CATEGORY_LABELS, word


class CallNoteModal(CimModal[tuple[str, str] | None]):
    """Pick the category with the arrows, type the note, Enter saves; Escape cancels."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, title: str, categories: Sequence[str], *, category: str | None = None, note: str = "") -> None:
        super().__init__()
        self.title_text = title
        self.categories = list(categories)
        self.initial = (category, note)

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.title_text, classes="dialog-title")
            yield OptionList(
                *[Option(word(CLOSE_CATEGORY_LABELS, c), id=c) for c in self.categories], id="call-category"
            )
            yield Input(
                self.initial[1],
                placeholder=_("note (short, no personal data it does not need)"),
                max_length=500,
                id="call-note",
            )
            yield Static(_("↑↓ category · Enter save · Esc cancel"), classes="dialog-help")

    def on_mount(self) -> None:
        options = self.query_one("#call-category", OptionList)
        if self.initial[0] in self.categories:
            options.highlighted = self.categories.index(self.initial[0])
        else:
            options.highlighted = 0
        options.focus()

    @on(OptionList.OptionSelected, "#call-category")
    def _category_chosen(self) -> None:
        self.query_one("#call-note", Input).focus()

    @on(Input.Submitted, "#call-note")
    def _save(self) -> None:
        options = self.query_one("#call-category", OptionList)
        index = options.highlighted if options.highlighted is not None else 0
        self.dismiss((self.categories[index], self.query_one("#call-note", Input).value))

    def action_cancel(self) -> None:
        self.dismiss(None)
