"""What every form dialog shares: it fits the terminal (80x24 too) and a failed save keeps it open.

`FitsTheScreen`: the dialog's fields sit in a `VerticalScroll` with class `dialog-body`; its height is
capped to what the screen leaves after the title, the error line, the buttons and the help, so those
are always on screen and the focused field is scrolled into view inside the body.

`SubmitsInPlace`: the dialog hands its collected value to `submit` (the store call); a `CimError`
is shown in the docked error line (and next to the field it names) and the dialog stays open with
everything typed kept. Without `submit` the dialog dismisses with the value, as before.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Awaitable, Callable, ClassVar

from rich.text import Text
from textual import events, work
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Static

from store.errors import CimError

if TYPE_CHECKING:
    # The mixins are only ever mixed into a ModalScreen (a Widget); mypy sees Widget as their base, at run time it
    # is object. Not ModalScreen[Any]: that would make every dialog's result type Any. What only a Screen has
    # (`focused`, `dismiss`) is reached after `isinstance(self, Screen)`.
    _DialogBase = Widget
else:
    _DialogBase = object


class FitsTheScreen(_DialogBase):
    """Mixin for a ModalScreen whose fields are in `VerticalScroll.dialog-body`."""

    #: opened, the dialog's first field has the focus, not the scrolling body around it (which can take it too)
    AUTO_FOCUS: ClassVar[str | None] = ".dialog-body *"
    _fit_tries = 0

    def on_resize(self, event: events.Resize) -> None:
        self.call_after_refresh(self.fit_body)

    def fit_body(self) -> None:
        bodies = self.query(".dialog-body").results(VerticalScroll)
        body = next(iter(bodies), None)
        if body is None or not isinstance(body.parent, Widget):
            return
        dialog = body.parent
        others = sum(
            c.outer_size.height + c.styles.margin.top + c.styles.margin.bottom
            for c in dialog.children
            if c is not body and c.display
        )
        chrome = dialog.outer_size.height - dialog.content_size.height
        room = self.size.height - others - chrome - body.styles.margin.top - body.styles.margin.bottom
        room = max(3, room)
        current = body.styles.max_height
        if current is None or current.value != room:
            # a new height moves what is inside: scroll once the body is laid out again at it
            body.styles.max_height = room
            self.call_after_refresh(self.fit_body)
            return
        assert isinstance(self, Screen)
        focused = self.focused
        if focused is None or focused not in body.walk_children():
            return
        # the field's own error (just under it) too, when it is shown
        notes = self.query(f"#err-{focused.id}").results(Static) if focused.id else iter(())
        note = next((n for n in notes if n.display), None)
        wanted = [w for w in (note, focused) if w is not None]
        laid_out = body.outer_size.height <= room  # not before the body has its new height
        if laid_out and all(w.region.height and body.region.contains_region(w.region) for w in wanted):
            self._fit_tries = 0
            return
        # the note at once (the field's scroll then starts from there), the field after the refresh
        if note is not None and note.virtual_region.height:
            body.scroll_to_widget(note, animate=False, immediate=True)
        body.scroll_to_widget(focused, animate=False)
        if self._fit_tries < 20:
            # what was just shown or resized may not be laid out yet: look again once it is
            self._fit_tries += 1
            self.set_timer(0.02, self.fit_body)
        else:
            self._fit_tries = 0


class SubmitsInPlace(_DialogBase):
    """Mixin: `finish(value)` runs `self.submit(value)`; a CimError stays in the dialog, success dismisses."""

    submit: Callable[[Any], Awaitable[Any]] | None = None
    #: words of a message → the id of the field it is about (the first match wins)
    ERROR_FIELDS: tuple[tuple[str, str], ...] = ()
    #: a refusal's `refusal_reason` → the id of the field it is about (before ERROR_FIELDS: any language)
    REASON_FIELDS: dict[str, str] = {}

    def finish(self, value: Any) -> None:
        if self.submit is None:
            assert isinstance(self, Screen)
            self.dismiss(value)
            return
        self.show_error("")
        self._submit_in_place(value)

    @work(exclusive=True, exit_on_error=False, group="dialog-submit")
    async def _submit_in_place(self, value: Any) -> None:
        submit = self.submit
        assert submit is not None  # finish() runs this worker only with a submit
        try:
            result = await submit(value)
        except CimError as exc:
            # the field: by the reason, else by ERROR_FIELDS' English words in the English sentence (the shown
            # one is in the staff language, where those words are not; a dialog may say otherwise)
            field = self.REASON_FIELDS.get(exc.refusal_reason or "") or self.field_for_error(exc)
            self.show_error(self.explain_refusal(exc), field)
            return
        assert isinstance(self, Screen)
        self.dismiss(result)

    def explain_refusal(self, exc: CimError) -> str:
        """The store's refusal as the dialog shows it; a subclass branches on `exc.refusal_reason` (a code, the same
        in every staff language), never on the translated sentence."""
        return self.explain(exc.message)

    def explain(self, message: str) -> str:
        """The message as the TUI shows it (a subclass may point to where in the TUI to fix it)."""
        return message

    def field_for_error(self, error: CimError) -> str | None:
        """The field a refusal is about: ERROR_FIELDS' (English) words in its English wording, whatever the
        staff language; None: found from the shown message's words."""
        return self.field_for(error.message_in("en"))

    def field_for(self, message: str) -> str | None:
        low = message.lower()
        return next((field for words, field in self.ERROR_FIELDS if words in low), None)

    def show_error(self, message: str, field: str | None = None) -> None:
        """The message in the docked line, and under the field it concerns (focused); '' clears both."""
        self.query_one("#dialog-error", Static).update(Text(message))
        for old in self.query(".field-error").results(Static):
            old.update("")
            old.display = False
        field = field or (self.field_for(message) if message else None)
        if message and field:
            for note in self.query(f"#err-{field}").results(Static):
                note.update(Text(message))
                note.display = True
            for widget in self.query(f"#{field}"):
                widget.focus()
        if isinstance(self, FitsTheScreen):
            self.call_after_refresh(self.fit_body)

    @property
    def error(self) -> str:
        return str(self.query_one("#dialog-error", Static).render())
