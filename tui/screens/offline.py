"""Offline messages: what residents left while the chat was closed or nobody was free; answer and record how."""

from __future__ import annotations

from typing import Any

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Footer, Header, Static

from store.i18n import N_, _, format_time
from store.resident_desk import ANSWER_METHODS, OfflineMessage
from tui.context import TuiContext
from tui.screens.base import CimScreen, failure_title
from tui.widgets.literal import literal
from tui.widgets.request_forms import Field, FormModal

METHOD_LABELS = {"phone": N_("by phone"), "email": N_("by e-mail"), "letter": N_("by letter")}


class OfflineMessagesScreen(CimScreen[None]):
    """The waiting offline messages, the oldest first (store.resident_desk; HANDLE_CHATS, reading audited)."""

    DEFAULT_CSS = """
    OfflineMessagesScreen #offline-help { height: auto; padding: 0 1; color: $text-muted; }
    OfflineMessagesScreen #offline-table { height: 1fr; }
    OfflineMessagesScreen #offline-text { height: auto; max-height: 10; padding: 0 1; border-top: solid $primary; }
    """
    BINDINGS = [
        Binding("a", "answer", N_("Record the answer")),
        Binding("ctrl+r", "load", N_("Refresh the list")),
        Binding("escape", "back", N_("Back to the chats")),
    ]

    def __init__(self, ctx: TuiContext) -> None:
        super().__init__()
        self.ctx = ctx
        self.items: list[OfflineMessage] = []

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(
            _(
                "Messages residents left while the chat was closed or nobody was free, the oldest first. "
                "Reply by phone, e-mail or letter, then press A to record the answer."
            ),
            id="offline-help",
        )
        yield DataTable(id="offline-table", cursor_type="row", zebra_stripes=True)
        yield Static("", id="offline-text")
        yield Footer()

    def on_mount(self) -> None:
        self.title = _("Offline messages")
        # the text itself is shown under the table, whole (a column would be cut at 80 columns)
        self.query_one(DataTable).add_columns(_("reference"), _("received"), _("name"), _("contact"))
        self.action_load()

    def action_load(self) -> None:
        self.load()

    def action_back(self) -> None:
        self.dismiss(None)

    @failure_title(N_("Offline messages"))
    @work(exclusive=True, exit_on_error=False, group="offline-load")
    async def load(self) -> None:
        self.items = await self.ctx.store.resident_desk.offline_messages(self.ctx.actor)
        table = self.query_one(DataTable)
        row = table.cursor_row
        table.clear()
        for m in self.items:
            # the reference names the office day already
            table.add_row(
                m.reference,
                format_time(m.created_at, tz=self.ctx.settings.timezone),
                literal(m.name or "—"),
                literal(m.contact),
                key=str(m.conversation_id),
            )
        if self.items:
            table.move_cursor(row=min(row, len(self.items) - 1))
        else:
            self.query_one("#offline-text", Static).update(_("No offline message is waiting."))
        self._show_selected()

    def selected(self) -> OfflineMessage | None:
        table = self.query_one(DataTable)
        if not self.items or table.cursor_row is None or table.cursor_row >= len(self.items):
            return None
        return self.items[table.cursor_row]

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_selected()

    def _show_selected(self) -> None:
        m = self.selected()
        if m is not None:
            self.query_one("#offline-text", Static).update(literal(m.text))

    def action_answer(self) -> None:
        m = self.selected()
        if m is None:
            self.notify(_("No offline message is waiting."))
            return
        self.answer(m)

    @work(exclusive=True, exit_on_error=False, group="offline-answer")
    async def answer(self, m: OfflineMessage) -> None:
        fields = [
            Field(
                "how",
                _("Answered"),
                "select",
                "email" if m.contact_kind == "email" else "phone",
                [(_(METHOD_LABELS[k]), k) for k in ANSWER_METHODS],
            ),
            Field("note", _("Note (optional)")),
        ]

        async def submit(v: dict[str, Any]) -> OfflineMessage:
            return await self.ctx.store.resident_desk.answer(self.ctx.actor, m.conversation_id, v["how"], v["note"])

        done = await self.app.push_screen_wait(
            FormModal(
                _("Record the answer to {reference}").format(reference=m.reference),
                fields,
                submit,
                intro=_("Contact: {contact}").format(contact=m.contact),
                save_label=_("Record"),
            )
        )
        if done is not None:
            self.notify(_("{reference} answered and closed.").format(reference=m.reference))
            self.load()
