"""Form dialogs of the request procedure: each submits through the store and shows its error in place."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Generic, Sequence, TypeVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, Checkbox, Input, Label, Select, SelectionList, Static, TextArea

from store.errors import CimError
from store.i18n import N_, _
from tui.screens.base import CimModal
from tui.widgets.dialog import FitsTheScreen
from tui.widgets.literal import literal

T = TypeVar("T")


@dataclass(frozen=True)
class Field:
    """One field of a form. `kind`: input, text (several lines), select, multi (several choices), check."""

    id: str
    label: str
    kind: str = "input"
    default: Any = ""
    options: Sequence[tuple[str, Any]] = ()
    placeholder: str = ""
    password: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


class FormModal(FitsTheScreen, CimModal[T | None], Generic[T]):
    """A form whose Save calls `submit(values)`; a CimError is shown under the form and the form stays open.

    The store validates (one place for the rules); the dialog only collects text and shows the answer.
    The fields scroll inside the dialog so the error line and the buttons stay on screen at 80x24.
    Dismisses with submit's result, or None on Escape/Cancel.
    """

    DEFAULT_CSS = """
    FormModal { align: center middle; }
    FormModal > Vertical { width: 76; max-width: 98%; height: auto; max-height: 100%; padding: 0 1;
                           border: thick $primary; background: $surface; }
    FormModal .form-title { text-style: bold; padding: 0 1; width: 100%; }
    FormModal .form-intro { color: $text-muted; padding: 0 1; height: auto; }
    FormModal .dialog-body { height: auto; }
    FormModal .form-label { margin-top: 1; color: $text-muted; width: 100%; }
    FormModal TextArea { height: 5; }
    FormModal SelectionList { height: auto; max-height: 8; }
    FormModal .field-error { color: $text-error; height: auto; display: none; }
    FormModal #form-error { color: $text-error; text-style: bold; height: auto; padding: 0 1; }
    FormModal .form-buttons { height: auto; }
    FormModal .form-buttons Button { margin-right: 2; }
    """

    BINDINGS = [Binding("escape", "cancel", N_("Cancel")), Binding("ctrl+s", "save", N_("Save"))]

    def __init__(
        self,
        title: str,
        fields: Sequence[Field],
        submit: Callable[[dict[str, Any]], Awaitable[T]],
        *,
        intro: str = "",
        save_label: str = "",
    ) -> None:
        super().__init__()
        self.title_text = title
        self.fields = list(fields)
        self.submit = submit
        self.intro = intro
        self.save_label = save_label or _("Save")

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.title_text, classes="form-title")
            if self.intro:
                yield Static(literal(self.intro), classes="form-intro")
            with VerticalScroll(classes="dialog-body"):
                for f in self.fields:
                    if f.kind != "check":
                        yield Label(_(f.label), classes="form-label")
                    yield self._widget(f)
                    yield Static("", id=f"err-{f.id}", classes="field-error")
            yield Static("", id="form-error")
            with Horizontal(classes="form-buttons"):
                yield Button(self.save_label, id="form-save", variant="primary")
                yield Button(_("Cancel"), id="form-cancel")
            yield Static(_("Ctrl+S save · Esc cancel"), classes="form-intro")

    def _widget(self, f: Field):
        wid = f"f-{f.id}"
        if f.kind == "text":
            return TextArea(str(f.default or ""), id=wid, soft_wrap=True)
        if f.kind == "select":
            return Select([(_(label), value) for label, value in f.options], value=f.default, allow_blank=False, id=wid)
        if f.kind == "multi":
            chosen = set(f.default or ())
            return SelectionList[Any](*[(literal(label), value, value in chosen) for label, value in f.options], id=wid)
        if f.kind == "check":
            return Checkbox(_(f.label), bool(f.default), id=wid)
        return Input(str(f.default or ""), placeholder=f.placeholder, password=f.password, id=wid)

    def values(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in self.fields:
            widget = self.query_one(f"#f-{f.id}")
            if isinstance(widget, TextArea):
                out[f.id] = widget.text
            elif isinstance(widget, Select):
                out[f.id] = widget.value
            elif isinstance(widget, SelectionList):
                out[f.id] = list(widget.selected)
            elif isinstance(widget, Checkbox):
                out[f.id] = widget.value
            else:
                assert isinstance(widget, Input)  # _widget's last case
                out[f.id] = widget.value
        return out

    def set_value(self, field_id: str, value: Any) -> None:
        """Fill a field (used by tests and by callers pre-filling a form)."""
        widget = self.query_one(f"#f-{field_id}")
        if isinstance(widget, TextArea):
            widget.text = str(value)
        elif isinstance(widget, SelectionList):
            widget.deselect_all()
            for v in value:
                widget.select(v)
        else:
            assert isinstance(widget, (Select, Checkbox, Input))  # the other kinds _widget makes
            widget.value = value

    @property
    def error(self) -> str:
        return str(self.query_one("#form-error", Static).render())

    @on(Input.Submitted)
    @on(Button.Pressed, "#form-save")
    def action_save(self) -> None:
        self._save()

    @work(exclusive=True, exit_on_error=False, group="form")
    async def _save(self) -> None:
        self._show_error("")
        try:
            result = await self.submit(self.values())
        except CimError as exc:
            self._show_error(exc.message)
            return
        except (TypeError, ValueError) as exc:  # a value the form could not turn into the right type
            self._show_error(str(exc))
            return
        self.dismiss(result)

    def field_for(self, message: str) -> Field | None:
        """The field a message is about: the first whose label (without its hint in brackets) it names."""
        low = message.lower()
        for f in self.fields:
            # the store's messages may speak either language: the label as written or as shown
            labels = {text.split("(")[0].strip().lower() for text in (f.label, _(f.label))} - {""}
            if any(label in low for label in labels) or f.id.replace("_", " ") in low:
                return f
        return None

    def _show_error(self, message: str) -> None:
        """The message in the line above the buttons (always on screen) and under its field, focused."""
        self.query_one("#form-error", Static).update(Text(message))
        for note in self.query(".field-error").results(Static):
            note.display = False
        about = self.field_for(message) if message else None
        if about is not None:
            note = self.query_one(f"#err-{about.id}", Static)
            note.update(Text(message))
            note.display = True
            self.query_one(f"#f-{about.id}").focus()
        if message:
            self.app.bell()
        self.call_after_refresh(self.fit_body)

    @on(Button.Pressed, "#form-cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)


class ContentModal(CimModal[None]):
    """What is shown to the requester during the session: a chat transcript, or a recording to play."""

    DEFAULT_CSS = """
    ContentModal { align: center middle; }
    ContentModal > Vertical { width: 90; max-width: 98%; height: 80%; border: thick $primary;
                              background: $surface; padding: 0 1; }
    ContentModal VerticalScroll { height: 1fr; }
    ContentModal .content-title { text-style: bold; }
    ContentModal .content-help { color: $text-muted; }
    """

    BINDINGS = [Binding("escape", "close", N_("Close")), Binding("p", "play", N_("Play recording"))]

    def __init__(self, title: str, lines: Sequence[Text], *, play: Callable[[], Awaitable[str]] | None = None) -> None:
        super().__init__()
        self.title_text = title
        self.lines = list(lines)
        self.play = play

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.title_text, classes="content-title")
            with VerticalScroll():
                for line in self.lines:
                    yield Static(line, classes="content-line")
            yield Static((_("P play · ") if self.play else "") + _("Esc close"), classes="content-help")

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return self.play is not None if action == "play" else True

    @work(exclusive=True, exit_on_error=False, group="play")
    async def action_play(self) -> None:
        if self.play is None:
            return
        try:
            self.notify(await self.play())
        except (CimError, OSError) as exc:
            self.notify(getattr(exc, "message", None) or str(exc), title=_("Cannot play"), severity="error")

    def action_close(self) -> None:
        self.dismiss(None)
