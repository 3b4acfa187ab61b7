"""„Oddzwonienia”: the callback worklist of missed and abandoned calls, oldest first; take, call back, close."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static

from store.callbacks import OUTCOMES, Callback
from store.errors import CimError
from tui.context import TuiContext
from tui.widgets.literal import literal
from tui.widgets.modals import PickModal
from tui.screens.base import CimScreen

STATUS_PL = {"open": "do oddzwonienia", "taken": "w toku", "done": "zamknięte"}
OUTCOME_PL = {"reached": "rozmowa odbyta", "no_answer": "nie odebrano", "wrong_number": "błędny numer",
              "resolved_otherwise": "sprawa załatwiona inaczej"}


class CallbacksScreen(CimScreen[None]):
    """The worklist from store.callbacks (HANDLE_CALLBACKS, audited)."""

    DEFAULT_CSS = """
    CallbacksScreen #callbacks-help { height: auto; padding: 0 1; color: $text-muted; }
    CallbacksScreen #callbacks-table { height: 1fr; }
    """
    BINDINGS = [
        Binding("t", "take", "Biorę"),
        Binding("z", "close_item", "Zamknij"),
        Binding("ctrl+r", "load", "Odśwież"),
    ]

    def __init__(self, ctx: TuiContext) -> None:
        super().__init__()
        self.ctx = ctx
        self.items: list[Callback] = []
        self._zone = ZoneInfo(ctx.settings.timezone)

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("Nieodebrane i porzucone połączenia z rozpoznawalnych numerów, najstarsze pierwsze. "
                     "t: biorę · z: zamknij z wynikiem · Ctrl+R: odśwież", id="callbacks-help")
        yield DataTable(id="callbacks-table", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        self.title = "Oddzwonienia"
        self.query_one(DataTable).add_columns("numer", "dzień", "pierwsze", "ostatnie", "razy", "kolejka", "stan",
                                              "kto")
        self.action_load()

    def action_load(self) -> None:
        self.load()

    @work(exclusive=True, exit_on_error=False, group="callbacks-load")
    async def load(self) -> None:
        try:
            self.items = await self.ctx.store.callbacks.worklist(self.ctx.actor)
            names = {s.id: s.name for s in await self.ctx.store.accounts.list_staff()} if any(
                c.taken_by for c in self.items) else {}
        except CimError as exc:
            self.notify(exc.message, title="Oddzwonienia", severity="error")
            return
        table = self.query_one(DataTable)
        row = table.cursor_row
        table.clear()
        for c in self.items:
            table.add_row(literal(c.number), c.day, c.first_missed_at.astimezone(self._zone).strftime("%H:%M"),
                          c.last_missed_at.astimezone(self._zone).strftime("%H:%M"), str(c.missed),
                          literal(c.queue or "—"), STATUS_PL[c.status], literal(names.get(c.taken_by, "")),
                          key=str(c.id))
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
        choices = [(OUTCOME_PL[o], o) for o in OUTCOMES]
        self.app.push_screen(PickModal(f"Wynik oddzwonienia na {item.number}", choices),
                             lambda outcome: self.run_store("close", item.id, outcome) if outcome else None)

    @work(exit_on_error=False, group="callbacks-change")
    async def run_store(self, what: str, callback_id: int, outcome: str | None = None) -> None:
        try:
            if what == "take":
                await self.ctx.store.callbacks.take(self.ctx.actor, callback_id)
                self.notify("Oddzwonienie jest Twoje: zadzwoń z telefonu, połączenie zostanie powiązane.",
                            title="Oddzwonienia")
            else:
                await self.ctx.store.callbacks.close(self.ctx.actor, callback_id, outcome)
                self.notify("Zamknięte.", title="Oddzwonienia")
        except CimError as exc:
            self.notify(exc.message, title="Oddzwonienia", severity="error")
        self.load()
