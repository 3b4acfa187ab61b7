"""„Oddzwonienia”: the callback worklist of missed and abandoned calls, oldest first; take, call back, close."""

from __future__ import annotations

from datetime import date
from zoneinfo import ZoneInfo

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Footer, Header, Static

from store.callbacks import OUTCOMES, Callback
from store.i18n import N_, _, format_date, format_time
from tui.context import TuiContext
from tui.widgets.literal import literal
from tui.widgets.modals import PickModal
from tui.screens.base import CimScreen, failure_title

#: A callback's state and outcome codes (store.callbacks) as words; English source, Polish in tui.po.
STATUS_LABELS = {"open": N_("to call back"), "taken": N_("in progress"), "done": N_("done")}
OUTCOME_LABELS = {
    "reached": N_("call completed"),
    "no_answer": N_("no answer"),
    "wrong_number": N_("wrong number"),
    "resolved_otherwise": N_("resolved otherwise"),
}


class CallbacksScreen(CimScreen[None]):
    """The worklist from store.callbacks (HANDLE_CALLBACKS, audited)."""

    DEFAULT_CSS = """
    CallbacksScreen #callbacks-help { height: auto; padding: 0 1; color: $text-muted; }
    CallbacksScreen #callbacks-table { height: 1fr; }
    """
    BINDINGS = [
        Binding("t", "take", "Take"),
        Binding("z", "close_item", "Close"),
        Binding("ctrl+r", "load", "Refresh"),
    ]

    def __init__(self, ctx: TuiContext) -> None:
        super().__init__()
        self.ctx = ctx
        self.items: list[Callback] = []
        self._zone = ZoneInfo(ctx.settings.timezone)

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(
            _(
                "Missed and abandoned calls from identifiable numbers, oldest first. "
                "t: take · z: close with an outcome · Ctrl+R: refresh"
            ),
            id="callbacks-help",
        )
        yield DataTable(id="callbacks-table", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        self.title = _("Callbacks")
        self.query_one(DataTable).add_columns(
            _("number"), _("day"), _("first"), _("last"), _("times"), _("queue"), _("state"), _("who")
        )
        self.action_load()

    def action_load(self) -> None:
        self.load()

    @failure_title(N_("Callbacks"))
    @work(exclusive=True, exit_on_error=False, group="callbacks-load")
    async def load(self) -> None:
        self.items = await self.ctx.store.callbacks.worklist(self.ctx.actor)
        names = (
            {s.id: s.name for s in await self.ctx.store.accounts.list_staff()}
            if any(c.taken_by for c in self.items)
            else {}
        )
        table = self.query_one(DataTable)
        row = table.cursor_row
        table.clear()
        for c in self.items:
            tz = self.ctx.settings.timezone
            table.add_row(
                literal(c.number),
                format_date(date.fromisoformat(c.day)),
                format_time(c.first_missed_at, tz=tz),
                format_time(c.last_missed_at, tz=tz),
                str(c.missed),
                literal(c.queue or "—"),
                _(STATUS_LABELS[c.status]),
                literal(names.get(c.taken_by, "") if c.taken_by is not None else ""),
                key=str(c.id),
            )
        if self.items:
            table.move_cursor(row=min(row, len(self.items) - 1))

    def selected(self) -> Callback | None:
        table = self.query_one(DataTable)
        if not self.items or table.cursor_row is None or table.cursor_row >= len(self.items):
            return None
        return self.items[table.cursor_row]

    def action_take(self) -> None:
        item = self.selected()
        if item is not None:
            self.run_store("take", item.id)

    def action_close_item(self) -> None:
        item = self.selected()
        if item is None:
            return
        choices = [(_(OUTCOME_LABELS[o]), o) for o in OUTCOMES]
        closing = item.id

        def picked(outcome: str | None) -> None:
            if outcome:
                self.run_store("close", closing, outcome)

        self.app.push_screen(
            PickModal(_("Outcome of the callback to {number}").format(number=item.number), choices), picked
        )

    @failure_title(N_("Callbacks"))
    @work(exit_on_error=False, group="callbacks-change")
    async def run_store(self, what: str, callback_id: int, outcome: str | None = None) -> None:
        try:
            if what == "take":
                await self.ctx.store.callbacks.take(self.ctx.actor, callback_id)
                self.notify(
                    _("The callback is yours: call from your phone and the call is linked to it."), title=_("Callbacks")
                )
            else:
                await self.ctx.store.callbacks.close(self.ctx.actor, callback_id, outcome)
                self.notify(_("Closed."), title=_("Callbacks"))
        finally:  # refused or not, the list shows the callbacks as they are now
            self.load()
