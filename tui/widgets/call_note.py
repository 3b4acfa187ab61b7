"""The consultant's dialog for a call's category and short note: returns (category, note) or None.

With `submit` (the store call), a refusal is shown in the dialog and the category and note typed stay.
"""

from __future__ import annotations

from typing import Sequence

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.widgets import Input, Label, OptionList, Static
from textual.widgets.option_list import Option
from store.i18n import _
from tui.screens.base import CimModal
from tui.widgets.dialog import FitsTheScreen, SubmitsInPlace
from tui.words import CLOSE_CATEGORY_LABELS, word


class CallNoteModal(FitsTheScreen, SubmitsInPlace, CimModal[tuple[str, str] | None]):
    """Pick the category with the arrows, type the note, Enter saves; Escape cancels."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]
    ERROR_FIELDS = (("category", "call-category"), ("note", "call-note"), ("described", "call-note"))

    def __init__(
        self, title: str, categories: Sequence[str], *, category: str | None = None, note: str = "", submit=None
    ) -> None:
        super().__init__()
        self.title_text = title
        self.categories = list(categories)
        self.initial = (category, note)
        self.submit = submit

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.title_text, classes="dialog-title")
            with VerticalScroll(classes="dialog-body"):
                yield OptionList(
                    *[Option(word(CLOSE_CATEGORY_LABELS, c), id=c) for c in self.categories], id="call-category"
                )
                yield Static("", id="err-call-category", classes="field-error")
                yield Input(
                    self.initial[1],
                    placeholder=_("note (short, no personal data it does not need)"),
                    max_length=500,
                    id="call-note",
                )
                yield Static("", id="err-call-note", classes="field-error")
            yield Static("", id="dialog-error", classes="dialog-error")
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
        self.finish((self.categories[index], self.query_one("#call-note", Input).value))

    def explain(self, message: str) -> str:
        return message[:1].upper() + message[1:] + ("" if message.endswith(".") else ".")

    def action_cancel(self) -> None:
        self.dismiss(None)
