"""The audit viewer (§3) for the BOI director and the DPO: filters, and the hash chain verified on open."""

from __future__ import annotations

import json
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import Button, DataTable, Footer, Header, Input, Static
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Button, DataTable, Footer, Header, Input, Label, Static
from textual.worker import Worker, WorkerState

from store.clock import to_iso
from store.errors import InvalidInput
from store.models import AuditEntry
from tui.context import TuiContext
from tui.screens.base import CimModal, CimScreen
from tui.widgets.literal import literal

PAGE = 200


class AuditScreen(CimScreen[None]):
    """Reads go through store.audit.entries (READ_AUDIT), so every look at the log is itself audited."""

    AUTO_FOCUS = "#audit-person"
    DEFAULT_CSS = """
    AuditScreen #chain { height: auto; padding: 0 1; }
    AuditScreen #chain.ok { color: $text-success; }
    AuditScreen #chain.broken { color: $text-error; text-style: bold; }
    AuditScreen .audit-filters { height: auto; }
    AuditScreen .audit-filters Input { width: 1fr; }
    AuditScreen .audit-filters Button { min-width: 10; }
    AuditScreen #audit-table { height: 1fr; }
    AuditScreen #audit-purpose { height: auto; max-height: 3; padding: 0 1; background: $boost; }
    AuditScreen #audit-count { height: 1; padding: 0 1; color: $text-muted; }
    """
    BINDINGS = [
        Binding("ctrl+r", "reload", "Apply filters"),
        Binding("ctrl+t", "verify", "Verify chain"),
    ]
    #: the columns, Purpose early so that it is visible at 80 columns (the whole entry: Enter)
    COLUMNS = ("#", "When", "Who", "Action", "Purpose", "Outcome", "Target", "Request")

    def __init__(self, ctx: TuiContext) -> None:
        super().__init__()
        self.ctx = ctx
        self.entries: list[AuditEntry] = []

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("Checking the audit chain…", id="chain")
        with Horizontal(classes="audit-filters"):
            yield Input(placeholder="person", id="audit-person")
            yield Input(placeholder="action starts with, e.g. archive.", id="audit-action")
            yield Input(placeholder="words in the purpose", id="audit-purpose-words")
        with Horizontal(classes="audit-filters"):
            yield Input(placeholder="from YYYY-MM-DD", id="audit-from")
            yield Input(placeholder="to YYYY-MM-DD", id="audit-to")
            yield Input(placeholder="conversation", id="audit-conversation")
            yield Input(placeholder="request", id="audit-request")
            yield Button("Filter", id="audit-apply")
        yield DataTable(id="audit-table", cursor_type="row", zebra_stripes=True)
        yield Static("", id="audit-purpose")
        yield Static("", id="audit-count")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#audit-table", DataTable).add_columns(*self.COLUMNS)
        self.verify()
        self.reload()

    def action_verify(self) -> None:
        self.verify()

    @work(exclusive=True, exit_on_error=False, group="verify")
    async def verify(self) -> None:
        check = await self.ctx.store.audit.verify()
        chain = self.query_one("#chain", Static)
        chain.set_class(check.ok, "ok")
        chain.set_class(not check.ok, "broken")
        if check.ok:
            chain.update(f"Audit chain verified: intact, {check.entries} entries.")
        else:
            cause = check.problems[0].message if check.problems else "an entry was edited, deleted or reordered"
            chain.update(f"AUDIT CHAIN BROKEN at entry {check.first_broken} ({check.entries} entries): {cause}. "
                         "Inform the DPO and the IT administrators.")

    @on(Input.Submitted)
    @on(Button.Pressed, "#audit-apply")
    def action_reload(self) -> None:
        self.reload()

    def _value(self, widget_id: str) -> str:
        return self.query_one(widget_id, Input).value.strip()

    async def _filters(self) -> dict:
        zone = ZoneInfo(self.ctx.settings.timezone)
        filters: dict = {}
        person = self._value("#audit-person")
        if person:
            filters["staff_id"] = (await self.ctx.store.accounts.get(person)).id
        if self._value("#audit-action"):
            filters["action_prefix"] = self._value("#audit-action")
        if self._value("#audit-purpose-words"):
            filters["purpose_words"] = self._value("#audit-purpose-words")
        for widget_id, key, shift in (("#audit-from", "since", 0), ("#audit-to", "until", 1)):
            text = self._value(widget_id)
            if text:
                try:
                    day = date.fromisoformat(text)
                except ValueError:
                    raise InvalidInput(f"dates are YYYY-MM-DD, not {text!r}") from None
                filters[key] = to_iso(datetime.combine(day + timedelta(days=shift), time(0), zone))
        conversation = self._value("#audit-conversation")
        if conversation:
            if not conversation.isdigit():
                raise InvalidInput("the conversation is a number")
            filters["target_kind"], filters["target_id"] = "conversation", int(conversation)
        request = self._value("#audit-request")
        if request:
            if not request.isdigit():
                raise InvalidInput("the request is a number")
            filters["request_id"] = int(request)
        return filters

    @work(exclusive=True, exit_on_error=False, group="load")
    async def reload(self) -> None:
        # a refusal or a bad filter (CimError) is told by the base screen's worker handler
        filters = await self._filters()
        self.entries = await self.ctx.store.audit.entries(self.ctx.actor, limit=PAGE, **filters)
        zone = ZoneInfo(self.ctx.settings.timezone)
        table = self.query_one("#audit-table", DataTable)
        table.clear()
        for e in self.entries:
            outcome = Text(e.outcome, style="" if e.outcome == "ok" else "bold red")
            target = f"{e.target_kind} {e.target_id}" if e.target_kind else (e.target_id or "")
            table.add_row(str(e.id), f"{e.at.astimezone(zone):%Y-%m-%d %H:%M:%S}", literal(e.actor_name),
                          literal(e.action), literal(_short(e.purpose or "")), outcome, literal(target),
                          str(e.request_id or ""), key=str(e.id))
        more = " (newest first; narrow the filters to see older ones)" if len(self.entries) == PAGE else ""
        count = f"{len(self.entries)} " + ("entry" if len(self.entries) == 1 else "entries")
        self.query_one("#audit-count", Static).update(f"{count}{more} · Enter: whole entry")
        self._show_purpose()

    def _current(self) -> AuditEntry | None:
        table = self.query_one("#audit-table", DataTable)
        row = table.cursor_row
        return self.entries[row] if self.entries and row is not None and 0 <= row < len(self.entries) else None

    @on(DataTable.RowHighlighted, "#audit-table")
    def _show_purpose(self) -> None:
        """The highlighted entry's purpose in full, wrapped under the table."""
        entry = self._current()
        line = self.query_one("#audit-purpose", Static)
        line.update(Text.assemble(("Purpose: ", "bold"), literal(entry.purpose)) if entry and entry.purpose else "")
        line.display = bool(entry and entry.purpose)

    @on(DataTable.RowSelected, "#audit-table")
    def _open_entry(self) -> None:
        entry = self._current()
        if entry is not None:
            self.app.push_screen(AuditEntryModal(entry, ZoneInfo(self.ctx.settings.timezone)))



def _short(text: str, width: int = 24) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[:width - 1] + "…"


class AuditEntryModal(CimModal[None]):
    """One audit entry whole: every field, the purpose and the details wrapped to the terminal's width."""

    BINDINGS = [Binding("escape", "close", "Close"), Binding("enter", "close", "Close")]
    DEFAULT_CSS = """
    AuditEntryModal { align: center middle; }
    AuditEntryModal > Vertical { width: 76; max-width: 100%; height: auto; max-height: 100%;
                                 border: thick $primary; background: $surface; padding: 0 1; }
    AuditEntryModal VerticalScroll { height: auto; }
    AuditEntryModal .entry-title { text-style: bold; }
    AuditEntryModal .entry-help { color: $text-muted; }
    """

    def __init__(self, entry: AuditEntry, zone: ZoneInfo) -> None:
        super().__init__()
        self.entry = entry
        self.zone = zone

    def compose(self) -> ComposeResult:
        e = self.entry
        target = f"{e.target_kind} {e.target_id}" if e.target_kind else (e.target_id or "—")
        rows = [("When", Text(f"{e.at.astimezone(self.zone):%Y-%m-%d %H:%M:%S}")), ("Who", literal(e.actor_name)),
                ("Action", literal(e.action)), ("Outcome", literal(e.outcome)), ("Target", literal(target)),
                ("Request", Text(str(e.request_id or "—"))), ("Purpose", literal(e.purpose or "—"))]
        if e.details:
            rows.append(("Details", literal(json.dumps(e.details, ensure_ascii=False, sort_keys=True))))
        with Vertical():
            yield Label(f"Audit entry {e.id}", classes="entry-title")
            with VerticalScroll(id="entry-body"):
                for name, value in rows:
                    yield Static(Text.assemble((f"{name}: ", "bold"), value), id=f"entry-{name.lower()}")
            yield Static("Enter or Esc close", classes="entry-help")

    def action_close(self) -> None:
        self.dismiss(None)
