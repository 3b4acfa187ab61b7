"""The purpose dialog: before a recording or transcript is opened, the reason or request number is asked (§3, §5)."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.widgets import Input, Label, Static
from store.i18n import _
from tui.screens.base import CimModal
from tui.widgets.dialog import FitsTheScreen, SubmitsInPlace

PURPOSE_MIN = 3
PURPOSE_MAX = 500


class PurposeModal(FitsTheScreen, SubmitsInPlace, CimModal[str | None]):
    """Returns the stated purpose (a request number such as W/2026/0001, or a reason); None when cancelled.

    Too short a purpose is said in the dialog (next to the field and in the line under it), the text kept.
    """

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    DEFAULT_CSS = """
    PurposeModal { align: center middle; }
    PurposeModal > Vertical { width: 64; max-width: 95%; height: auto; padding: 1 2; border: thick $primary;
                              background: $surface; }
    PurposeModal .purpose-help { color: $text-muted; margin-top: 1; }
    """

    def __init__(self, what: str) -> None:
        super().__init__()
        self.what = what

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(_("Purpose of opening {what}").format(what=self.what), classes="dialog-title")
            with VerticalScroll(classes="dialog-body"):
                yield Static(
                    _("Give the request number or the reason. It is written to the audit log with your name."),
                    classes="purpose-help",
                )
                yield Input(placeholder=_("request number or reason"), max_length=PURPOSE_MAX, id="purpose")
                yield Static("", id="err-purpose", classes="field-error")
            yield Static("", id="dialog-error", classes="dialog-error")
            yield Static(_("Enter open · Esc cancel"), classes="purpose-help")

    @on(Input.Submitted, "#purpose")
    def _submit(self, event: Input.Submitted) -> None:
        text = event.value.strip()
        if len(text) < PURPOSE_MIN:
            self.show_error(_("State the purpose (at least {n} characters).").format(n=PURPOSE_MIN), "purpose")
            return
        self.finish(text)

    def action_cancel(self) -> None:
        self.dismiss(None)
