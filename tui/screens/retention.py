"""Retention (§6) for the CIM manager and the BOI director: purge preview and run, and holds."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.containers import VerticalScroll
from textual.widgets import Button, DataTable, Footer, Header, Input, Label, ProgressBar, Static

from store import plurals
from store.i18n import N_, _, format_date, format_datetime
from store.policy import Permission, allowed
from store.retention import Hold, PurgePreview, PurgeProgress, PurgeResult
from tui.context import TuiContext
from tui.screens.base import CimModal, CimScreen, failure_title
from tui.widgets.dialog import FitsTheScreen, SubmitsInPlace
from tui.widgets.literal import literal
from tui.widgets.modals import ConfirmModal


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return str(n)


@dataclass(frozen=True)
class HoldInput:
    conversation_ids: tuple[int, ...]
    legal_basis: str
    case_reference: str
    review_on: date | None


_CHANNELS = {"call": N_("call"), "chat": N_("chat")}


class HoldModal(FitsTheScreen, SubmitsInPlace, CimModal[HoldInput | list[Hold] | None]):
    """A new hold on one or more conversations (numbers separated by spaces or commas).

    With `submit` (the store call), a refusal is shown in the dialog and everything typed stays; the dialog
    then returns the holds made, without it the HoldInput.
    """

    DEFAULT_CSS = "HoldModal .dialog-title { width: 100%; }"  # a long title (Polish) wraps, not cut off
    BINDINGS = [Binding("escape", "cancel", N_("Cancel")), Binding("ctrl+s", "save", N_("Save"))]
    ERROR_FIELDS = (
        ("conversation", "hold-ids"),
        ("purged", "hold-ids"),
        ("legal basis", "hold-basis"),
        ("case", "hold-case"),
        ("review", "hold-review"),
    )

    def __init__(self, conversation_ids: str = "", submit=None) -> None:
        super().__init__()
        self.initial_ids = conversation_ids
        self.submit = submit

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog dialog-wide"):
            yield Label(_("New hold (§6: required by other law)"), classes="dialog-title")
            with VerticalScroll(classes="dialog-body"):
                yield Input(self.initial_ids, placeholder=_("conversation numbers, e.g. 12 15 40"), id="hold-ids")
                yield Static("", id="err-hold-ids", classes="field-error")
                yield Input(placeholder=_("legal basis, e.g. art. 6 ust. 1 lit. c RODO"), id="hold-basis")
                yield Static("", id="err-hold-basis", classes="field-error")
                yield Input(placeholder=_("case reference (sygnatura)"), id="hold-case")
                yield Static("", id="err-hold-case", classes="field-error")
                yield Input(placeholder=_("review on YYYY-MM-DD (optional)"), id="hold-review")
                yield Static("", id="err-hold-review", classes="field-error")
            yield Static("", id="dialog-error", classes="dialog-error")
            with Horizontal(classes="dialog-buttons"):
                yield Button(_("Save"), id="save", variant="primary")
                yield Button(_("Cancel"), id="cancel")

    @on(Input.Submitted)
    @on(Button.Pressed, "#save")
    def action_save(self) -> None:
        raw_ids = self.query_one("#hold-ids", Input).value
        basis = self.query_one("#hold-basis", Input).value.strip()
        case = self.query_one("#hold-case", Input).value.strip()
        review_text = self.query_one("#hold-review", Input).value.strip()
        parts = [p for p in re.split(r"[\s,;]+", raw_ids) if p]
        error, field = "", None
        if not parts or not all(p.isdigit() for p in parts):
            error, field = _("Enter conversation numbers (digits) separated by spaces or commas."), "hold-ids"
        elif not basis:
            error, field = _("Enter the legal basis."), "hold-basis"
        elif not case:
            error, field = _("Enter the case reference."), "hold-case"
        review = None
        if not error and review_text:
            try:
                review = date.fromisoformat(review_text)
            except ValueError:
                error, field = _("The review date must be YYYY-MM-DD."), "hold-review"
        if error:
            self.show_error(error, field)
            return
        self.finish(HoldInput(tuple(int(p) for p in parts), basis, case, review))

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)


class RetentionScreen(CimScreen[None]):
    """Preview and run the purge (RUN_PURGE) and manage holds (MANAGE_HOLDS); the store checks and audits each."""

    AUTO_FOCUS = "#holds-table"
    DEFAULT_CSS = """
    RetentionScreen #preview { height: auto; padding: 0 1; }
    RetentionScreen #held-table { height: 1fr; min-height: 4; }
    RetentionScreen #holds-table { height: 1fr; min-height: 4; }
    RetentionScreen #purge-progress { height: 1; padding: 0 1; }
    RetentionScreen #purge-progress.idle { display: none; }
    RetentionScreen .section { text-style: bold; background: $boost; padding: 0 1; }
    """
    BINDINGS = [
        Binding("p", "purge", N_("Purge now")),
        Binding("a", "add_hold", N_("Add hold")),
        Binding("x", "release_hold", N_("Release hold")),
        Binding("r", "refresh", N_("Refresh")),
    ]

    def __init__(self, ctx: TuiContext) -> None:
        super().__init__()
        self.ctx = ctx
        self.may_purge = allowed(ctx.actor, Permission.RUN_PURGE)
        self.may_hold = allowed(ctx.actor, Permission.MANAGE_HOLDS)
        self.preview: PurgePreview | None = None
        self.hold_list: list[Hold] = []
        self.purging = False
        self.last_result: PurgeResult | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(_("Retention (§6): purge preview"), classes="section")
        yield Static("", id="preview")
        yield ProgressBar(id="purge-progress", show_eta=False, classes="idle")
        yield DataTable(id="held-table", cursor_type="row", zebra_stripes=True)
        yield Static(_("Holds (overdue reviews in red)"), classes="section")
        yield DataTable(id="holds-table", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#held-table", DataTable).add_columns(
            _("Held conversation"), _("Channel"), _("Created"), _("Why")
        )
        self.query_one("#holds-table", DataTable).add_columns(
            _("Hold"), _("Conversation"), _("Legal basis"), _("Case"), _("Review"), _("Set by"), _("Kind")
        )
        self.action_refresh()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "purge":
            return self.may_purge and not self.purging
        if action in ("add_hold", "release_hold"):
            return self.may_hold
        return True

    def action_refresh(self) -> None:
        self.load()

    @work(exclusive=True, exit_on_error=False, group="load")
    async def load(self) -> None:
        preview_text = self.query_one("#preview", Static)
        held = self.query_one("#held-table", DataTable)
        held.clear()
        if self.may_purge:
            self.preview = await self.ctx.store.retention.preview(self.ctx.actor)
            p = self.preview
            lines = [
                _("Due now (cutoff {cutoff}): {calls}, {chats}, {recordings} ({size}). Held back: {held}.").format(
                    cutoff=format_datetime(p.cutoff, tz=self.ctx.settings.timezone),
                    calls=plurals.calls(p.calls),
                    chats=plurals.chats(p.chats),
                    recordings=plurals.recordings(p.files),
                    size=_size(p.bytes),
                    held=p.held,
                )
            ]
            if p.pending_files:
                lines.append(
                    _("{files} of an interrupted purge will be deleted first.").format(
                        files=plurals.files(p.pending_files)
                    )
                )
            if p.remnant_runs:
                runs = ", ".join(map(str, p.remnant_runs))
                lines.append(
                    _(
                        "[b red]INCOMPLETE:[/] purged text of run {runs} remains in the database files "
                        "(another program held the database open: a report, a backup, a sqlite3 shell). "
                        "Close it and purge again; the next purge retries this first."
                    ).format(runs=runs)
                )
            if self.last_result is not None:
                r = self.last_result
                lines.append(
                    _("Last purge (run {run}): {calls}, {chats}, {files} ({size}) deleted.").format(
                        run=r.run_id,
                        calls=plurals.calls(r.calls),
                        chats=plurals.chats(r.chats),
                        files=plurals.files(r.files),
                        size=_size(r.bytes),
                    )
                )
            preview_text.update("\n".join(lines))
            for item in p.held_items:
                held.add_row(
                    str(item.conversation_id),
                    _(_CHANNELS.get(item.channel, item.channel)),
                    format_date(item.created_at, tz=self.ctx.settings.timezone),
                    literal("; ".join(item.reasons)),
                )
        else:
            preview_text.update(_("Purges are run by the CIM manager or the IT administrators."))
        holds = self.query_one("#holds-table", DataTable)
        holds.clear()
        if self.may_hold:
            self.hold_list = await self.ctx.store.retention.holds(self.ctx.actor)
            for h in self.hold_list:
                style = "bold red" if h.overdue else ""
                review = (format_date(h.review_on) if h.review_on else "-") + (_(" OVERDUE") if h.overdue else "")
                holds.add_row(
                    Text(str(h.id), style=style),
                    str(h.conversation_id),
                    literal(h.legal_basis),
                    literal(h.case_reference),
                    Text(review, style=style),
                    literal(h.set_by or _("system")),
                    _("request {n}").format(n=h.request_id) if h.automatic else _("manual"),
                    key=str(h.id),
                )
        else:
            self.hold_list = []

    def _selected_hold(self) -> Hold | None:
        table = self.query_one("#holds-table", DataTable)
        if not self.hold_list or table.cursor_row is None or table.cursor_row >= len(self.hold_list):
            return None
        return self.hold_list[table.cursor_row]

    # -- purge -----------------------------------------------------------------------------------

    def action_purge(self) -> None:
        self.run_purge()

    @failure_title(N_("Purge not done"))
    @work(exclusive=True, exit_on_error=False, group="purge")
    async def run_purge(self) -> None:
        p = self.preview
        if p:
            question = _("Permanently delete {calls}, {chats} and {recordings}? This cannot be undone.").format(
                calls=plurals.calls(p.calls), chats=plurals.chats(p.chats), recordings=plurals.recordings(p.files)
            )
        else:
            question = _("Permanently delete every conversation past its date? This cannot be undone.")
        if not await self.app.push_screen_wait(ConfirmModal(question)):
            return
        bar = self.query_one("#purge-progress", ProgressBar)
        bar.remove_class("idle")
        bar.update(total=max(1, (p.calls + p.chats) if p else 1), progress=0)
        self.purging = True
        self.refresh_bindings()

        def on_progress(step: PurgeProgress) -> None:
            bar.update(total=max(1, step.total), progress=step.done)

        try:
            self.last_result = await self.ctx.store.retention.purge(self.ctx.actor, progress=on_progress)
        finally:  # done or refused, the screen shows the store as it is now
            self.purging = False
            bar.add_class("idle")
            self.refresh_bindings()
            self.load()
        r = self.last_result
        if r.remnants_cleared:
            self.notify(
                _("Purged {calls}, {chats}, {files}; {held} held back.").format(
                    calls=plurals.calls(r.calls),
                    chats=plurals.chats(r.chats),
                    files=plurals.files(r.files),
                    held=r.held,
                ),
                title=_("Purge finished"),
            )
        else:
            self.notify(
                _(
                    "Purged {calls}, {chats}, {files}, but purged text remains in the database files: "
                    "another program held the database open."
                ).format(calls=plurals.calls(r.calls), chats=plurals.chats(r.chats), files=plurals.files(r.files)),
                title=_("Purge incomplete"),
                severity="error",
            )

    # -- holds -----------------------------------------------------------------------------------

    def action_add_hold(self) -> None:
        self.add_hold()

    @work(exclusive=True, exit_on_error=False, group="edit")
    async def add_hold(self) -> None:
        async def submit(new: HoldInput) -> list[Hold]:
            return await self.ctx.store.retention.add_hold(
                self.ctx.actor,
                new.conversation_ids,
                legal_basis=new.legal_basis,
                case_reference=new.case_reference,
                review_on=new.review_on,
            )

        created = await self.app.push_screen_wait(HoldModal(submit=submit))
        if created is None:
            return
        assert isinstance(created, list)  # with submit the dialog returns the holds made
        self.notify(_("{holds} set.").format(holds=plurals.holds(len(created))))
        self.load()

    def action_release_hold(self) -> None:
        hold = self._selected_hold()
        if hold is not None:
            self.release_hold(hold)

    @work(exclusive=True, exit_on_error=False, group="edit")
    async def release_hold(self, hold: Hold) -> None:
        if not await self.app.push_screen_wait(
            ConfirmModal(_("Release hold {id} on conversation {n}?").format(id=hold.id, n=hold.conversation_id))
        ):
            return
        await self.ctx.store.retention.release_hold(self.ctx.actor, hold.id)  # a refusal: told by the base
        self.notify(_("Hold {id} released.").format(id=hold.id))
        self.load()
