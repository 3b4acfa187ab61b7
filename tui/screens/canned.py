"""Canned responses for the CIM manager: list, add, edit and delete, every change checked and audited by the store."""

from __future__ import annotations

from typing import Awaitable, Callable
from zoneinfo import ZoneInfo

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, DataTable, Footer, Header, Input, Label, Static, TextArea

from store.chats import MAX_CANNED_TITLE, CannedResponse
from store.errors import CimError, InvalidInput, MessageEmpty, MessageTooLong
from store.i18n import N_, _, format_datetime
from tui.context import TuiContext
from tui.screens.base import CimModal, CimScreen, failure_title
from tui.widgets.dialog import FitsTheScreen, SubmitsInPlace
from tui.widgets.literal import literal, visible_text
from tui.widgets.modals import ConfirmModal

#: Saves a (title, text) pair through the store and returns what was stored; raises the store's errors.
SaveCanned = Callable[[str, str], Awaitable[CannedResponse]]


def _one_line(text: str, width: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


class CannedEditModal(FitsTheScreen, SubmitsInPlace, CimModal[CannedResponse | None]):
    """Add or edit a canned response; the store saves it, and its refusals are shown here with the text kept."""

    BINDINGS = [Binding("escape", "cancel", "Cancel"), Binding("ctrl+s", "save", "Save")]

    # Own classes, not app.tcss's `.dialog`: the app's styles would win over DEFAULT_CSS, and this
    # editor needs a tighter layout to keep the text area and its messages on an 80x24 terminal.
    DEFAULT_CSS = """
    CannedEditModal #canned-dialog { width: 76; max-width: 100%; height: auto; max-height: 100%;
                                     padding: 0 1; border: thick $primary; background: $surface; }
    CannedEditModal .editor-title { text-style: bold; margin-bottom: 1; }
    CannedEditModal #canned-text { height: 8; }
    CannedEditModal .editor-buttons { height: auto; margin-top: 1; }
    CannedEditModal .editor-buttons Button { margin-right: 2; }
    CannedEditModal .editor-help { color: $text-muted; }
    """

    def __init__(self, heading: str, save: SaveCanned, *, max_text: int, title: str = "", text: str = "") -> None:
        super().__init__()
        self.heading = heading
        self.save = save
        self.max_text = max_text
        self.initial_title = title
        self.initial_text = text

        async def submit(values: tuple[str, str]) -> CannedResponse:
            return await self.save(*values)

        self.submit = submit

    def compose(self) -> ComposeResult:
        with Vertical(id="canned-dialog"):
            yield Label(self.heading, classes="editor-title")
            with VerticalScroll(classes="dialog-body"):
                yield Input(
                    self.initial_title,
                    placeholder=_("title (up to {n} characters)").format(n=MAX_CANNED_TITLE),
                    id="canned-title",
                )
                yield Static("", id="err-canned-title", classes="field-error")
                yield TextArea(self.initial_text, id="canned-text", soft_wrap=True, tab_behavior="focus")
                yield Static("", id="err-canned-text", classes="field-error")
            yield Static("", id="dialog-error", classes="dialog-error")
            with Horizontal(classes="editor-buttons"):
                yield Button(_("Save"), id="save", variant="primary", compact=True)
                yield Button(_("Cancel"), id="cancel", compact=True)
            yield Static(
                _("Residents see the text as typed (up to {n} characters).").format(n=self.max_text)
                + "\n"
                + _("Tab next field · Ctrl+S save · Esc cancel"),
                classes="editor-help",
            )

    def _check(self, title: str, text: str) -> tuple[str, str]:
        """The same limits the store enforces, said per field before asking it (the store checks again)."""
        title_error = (
            _("Enter a title.")
            if not title.strip()
            else _("The title is {n} characters long; at most {limit} are allowed.").format(
                n=len(title), limit=MAX_CANNED_TITLE
            )
            if len(title) > MAX_CANNED_TITLE
            else ""
        )
        text_error = (
            _("Enter the text of the response.")
            if not text.strip()
            else _("The text is {n} characters long; at most {limit} are allowed.").format(
                n=len(text), limit=self.max_text
            )
            if len(text) > self.max_text
            else ""
        )
        return title_error, text_error

    def field_for_error(self, error: CimError) -> str | None:
        # a title the store refuses is an InvalidInput; an empty or too long text, a refusal or a deleted response
        # is said under the text
        if isinstance(error, InvalidInput) and not isinstance(error, (MessageEmpty, MessageTooLong)):
            return "canned-title"
        return "canned-text"

    @on(Input.Submitted, "#canned-title")
    def _title_done(self) -> None:
        self.query_one("#canned-text", TextArea).focus()

    @on(Button.Pressed, "#save")
    def action_save(self) -> None:
        title = self.query_one("#canned-title", Input).value
        text = self.query_one("#canned-text", TextArea).text
        title_error, text_error = self._check(title, text)
        if title_error or text_error:
            # the docked line says the first; each field says its own
            self.show_error(title_error or text_error, "canned-title" if title_error else "canned-text")
            if title_error and text_error:
                note = self.query_one("#err-canned-text", Static)
                note.update(Text(text_error))
                note.display = True
            return
        self.finish((title, text))

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)


class DeleteCannedModal(ConfirmModal):
    """Confirm deleting one canned response; its title is shown literally."""

    def __init__(self, response: CannedResponse) -> None:
        super().__init__(
            Text.assemble(_("Delete the canned response"), " “", literal(response.title, "bold"), "”?"),
            help=_("Consultants will no longer be able to insert it. Y yes · N or Esc no"),
        )
        self.response = response


class CannedScreen(CimScreen[None]):
    """The canned responses consultants insert into chats; every change goes through store.chats with the actor."""

    AUTO_FOCUS = "#canned-table"

    # The screen's own layout (kept here, beside the only widgets it styles; app.tcss holds the shared look).
    DEFAULT_CSS = """
    CannedScreen #canned-table { height: 1fr; }
    CannedScreen #canned-preview-box { height: 8; border-top: solid $primary; padding: 0 1; }
    """

    BINDINGS = [
        Binding("a", "add", "Add"),
        Binding("e", "edit", "Edit"),
        Binding("d", "delete", "Delete"),
        Binding("delete", "delete", "Delete", show=False),
    ]

    def __init__(self, ctx: TuiContext) -> None:
        super().__init__()
        self.ctx = ctx
        self.responses: list[CannedResponse] = []
        self.zone = ZoneInfo(ctx.settings.timezone)

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(_("Canned responses (consultants insert them with Ctrl+R in a chat)"), classes="section")
        yield DataTable(id="canned-table", cursor_type="row", zebra_stripes=True)
        with VerticalScroll(id="canned-preview-box"):
            yield Static("", id="canned-preview")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#canned-table", DataTable).add_columns(_("Title"), _("Text"), _("Updated"))
        self.reload()

    @work(exclusive=True, exit_on_error=False, group="load")
    async def reload(self, keep: int | None = None) -> None:
        current = self._current()
        keep = keep if keep is not None else (current.id if current else None)
        self.responses = await self.ctx.store.chats.canned(self.ctx.actor)
        table = self.query_one("#canned-table", DataTable)
        table.clear()
        for r in self.responses:
            updated = format_datetime(r.updated_at, tz=self.ctx.settings.timezone)
            table.add_row(literal(_one_line(r.title, 24)), literal(_one_line(r.text, 34)), updated, key=str(r.id))
        ids = [r.id for r in self.responses]
        if keep in ids:
            table.move_cursor(row=ids.index(keep))
        self._preview()

    def _current(self) -> CannedResponse | None:
        table = self.query_one("#canned-table", DataTable)
        if not self.responses or table.cursor_row is None or not 0 <= table.cursor_row < len(self.responses):
            return None
        return self.responses[table.cursor_row]

    @on(DataTable.RowHighlighted, "#canned-table")
    def _preview(self) -> None:
        preview = self.query_one("#canned-preview", Static)
        response = self._current()
        if response is None:
            preview.update(Text(_("No canned responses yet. Press A to add one."), style="italic"))
        else:
            preview.update(Text.assemble(literal(response.title, "bold"), "\n", literal(response.text)))

    def action_add(self) -> None:
        self.add()

    @work(exclusive=True, exit_on_error=False, group="edit")
    async def add(self) -> None:
        store, actor = self.ctx.store, self.ctx.actor
        saved = await self.app.push_screen_wait(
            CannedEditModal(
                _("New canned response"),
                lambda title, text: store.chats.add_canned(actor, title, text),
                max_text=self.ctx.settings.max_message_length,
            )
        )
        if saved is not None:
            self.notify(_("Canned response “{title}” added.").format(title=visible_text(saved.title)), markup=False)
            self.reload(saved.id)

    @on(DataTable.RowSelected, "#canned-table")
    def _selected(self) -> None:  # Enter on a row
        self.action_edit()

    def action_edit(self) -> None:
        response = self._current()
        if response is not None:
            self.edit(response)

    @work(exclusive=True, exit_on_error=False, group="edit")
    async def edit(self, response: CannedResponse) -> None:
        store, actor = self.ctx.store, self.ctx.actor
        saved = await self.app.push_screen_wait(
            CannedEditModal(
                _("Edit canned response"),
                lambda title, text: store.chats.update_canned(actor, response.id, title, text),
                max_text=self.ctx.settings.max_message_length,
                title=response.title,
                text=response.text,
            )
        )
        if saved is not None:
            self.notify(_("Canned response “{title}” saved.").format(title=visible_text(saved.title)), markup=False)
            self.reload(saved.id)

    def action_delete(self) -> None:
        response = self._current()
        if response is not None:
            self.delete(response)

    @failure_title(N_("Cannot delete the canned response"))
    @work(exclusive=True, exit_on_error=False, group="edit")
    async def delete(self, response: CannedResponse) -> None:
        if not await self.app.push_screen_wait(DeleteCannedModal(response)):
            return
        try:
            await self.ctx.store.chats.delete_canned(self.ctx.actor, response.id)
        finally:  # deleted, or refused (e.g. someone else deleted it first): the list as it is now
            self.reload()
        self.notify(_("Canned response “{title}” deleted.").format(title=visible_text(response.title)), markup=False)
