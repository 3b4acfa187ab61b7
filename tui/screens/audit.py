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
from textual.containers import Vertical, VerticalScroll
from textual.widgets import Label

from store.audit_actions import action_label, outcome_label, target_kind_label
from store.clock import to_iso
from store.i18n import N_, _, format_datetime, ngettext
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
        Binding("ctrl+r", "reload", N_("Apply filters")),
        Binding("ctrl+t", "verify", N_("Verify chain")),
    ]
    #: the columns, Purpose early so that it is visible at 80 columns (the whole entry: Enter)
    COLUMNS = ("#", N_("When"), N_("Who"), N_("Action"), N_("Purpose"), N_("Outcome"), N_("Target"), N_("Request"))

    def __init__(self, ctx: TuiContext) -> None:
        super().__init__()
        self.ctx = ctx
        self.entries: list[AuditEntry] = []

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(_("Checking the audit chain…"), id="chain")
        with Horizontal(classes="audit-filters"):
            yield Input(placeholder=_("person"), id="audit-person")
            yield Input(placeholder=_("action starts with, e.g. archive."), id="audit-action")
            yield Input(placeholder=_("words in the purpose"), id="audit-purpose-words")
        with Horizontal(classes="audit-filters"):
            yield Input(placeholder=_("from YYYY-MM-DD"), id="audit-from")
            yield Input(placeholder=_("to YYYY-MM-DD"), id="audit-to")
            yield Input(placeholder=_("conversation"), id="audit-conversation")
            yield Input(placeholder=_("request"), id="audit-request")
            yield Button(_("Filter"), id="audit-apply")
        yield DataTable(id="audit-table", cursor_type="row", zebra_stripes=True)
        yield Static("", id="audit-purpose")
        yield Static("", id="audit-count")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#audit-table", DataTable).add_columns(*(_(c) for c in self.COLUMNS))
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
            chain.update(
                ngettext(
                    "Audit chain verified: intact, {n} entry.",
                    "Audit chain verified: intact, {n} entries.",
                    check.entries,
                ).format(n=check.entries)
            )
        else:
            cause = check.problems[0].message if check.problems else _("an entry was edited, deleted or reordered")
            chain.update(
                _(
                    "AUDIT CHAIN BROKEN at entry {first} ({entries} entries): {cause}. "
                    "Inform the DPO and the IT administrators."
                ).format(first=check.first_broken, entries=check.entries, cause=cause)
            )

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
                    raise InvalidInput(_("dates are YYYY-MM-DD, not {text!r}").format(text=text)) from None
                filters[key] = to_iso(datetime.combine(day + timedelta(days=shift), time(0), zone))
        conversation = self._value("#audit-conversation")
        if conversation:
            if not conversation.isdigit():
                raise InvalidInput(_("the conversation is a number"))
            filters["target_kind"], filters["target_id"] = "conversation", int(conversation)
        request = self._value("#audit-request")
        if request:
            if not request.isdigit():
                raise InvalidInput(_("the request is a number"))
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
            outcome = Text(outcome_label(e.outcome), style="" if e.outcome == "ok" else "bold red")
            target = f"{target_kind_label(e.target_kind)} {e.target_id}" if e.target_kind else (e.target_id or "")
            # the action in words, short enough that the purpose stays on an 80-column screen (Enter: whole entry)
            table.add_row(
                str(e.id),
                format_datetime(e.at, tz=zone.key),
                literal(e.actor_name),
                literal(_short(action_label(e.action), 30)),
                literal(_short(e.purpose or "")),
                outcome,
                literal(target),
                str(e.request_id or ""),
                key=str(e.id),
            )
        more = _(" (newest first; narrow the filters to see older ones)") if len(self.entries) == PAGE else ""
        count = ngettext("{n} entry", "{n} entries", len(self.entries)).format(n=len(self.entries))
        self.query_one("#audit-count", Static).update(count + more + _(" · Enter: whole entry"))
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
        line.update(Text.assemble((_("Purpose: "), "bold"), literal(entry.purpose)) if entry and entry.purpose else "")
        line.display = bool(entry and entry.purpose)

    @on(DataTable.RowSelected, "#audit-table")
    def _open_entry(self) -> None:
        entry = self._current()
        if entry is not None:
            self.app.push_screen(AuditEntryModal(entry, ZoneInfo(self.ctx.settings.timezone)))


def _short(text: str, width: int = 24) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


class AuditEntryModal(CimModal[None]):
    """One audit entry whole: every field, the purpose and the details wrapped to the terminal's width."""

    BINDINGS = [Binding("escape", "close", N_("Close")), Binding("enter", "close", N_("Close"))]
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
        target = f"{target_kind_label(e.target_kind)} {e.target_id}" if e.target_kind else (e.target_id or "—")
        action = action_label(e.action)
        rows = [
            ("when", _("When"), Text(format_datetime(e.at, tz=self.zone.key, seconds=True))),
            ("who", _("Who"), literal(e.actor_name)),
            ("action", _("Action"), literal(action if action == e.action else f"{action} ({e.action})")),
            ("outcome", _("Outcome"), literal(outcome_label(e.outcome))),
            ("target", _("Target"), literal(target)),
            ("request", _("Request"), Text(str(e.request_id or "—"))),
            ("purpose", _("Purpose"), literal(e.purpose or "—")),
        ]
        if e.details:
            rows.append(("details", _("Details"), literal(json.dumps(e.details, ensure_ascii=False, sort_keys=True))))
        with Vertical():
            yield Label(_("Audit entry {id}").format(id=e.id), classes="entry-title")
            with VerticalScroll(id="entry-body"):
                for key, name, value in rows:
                    yield Static(Text.assemble((f"{name}: ", "bold"), value), id=f"entry-{key}")
            yield Static(_("Enter or Esc close"), classes="entry-help")

    def action_close(self) -> None:
        self.dismiss(None)
