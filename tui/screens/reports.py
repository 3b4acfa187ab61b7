"""Supervision reports (§3, §7) on screen, saved as CSV or PDF for the director, the DPO and the City Secretary."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import Button, DataTable, Footer, Header, Input, Static

from store import plurals
from store.i18n import N_, _, current_language, format_date, ngettext
from store.reports import SupervisionReport, parse_period, write_csv, write_pdf
from tui.context import TuiContext
from tui.screens.base import CimScreen
from tui.widgets.literal import literal
from tui.widgets.modals import ConfirmModal


class ReportsScreen(CimScreen[None]):
    """The report comes from store.reports (VIEW_REPORTS, audited); files go to <data dir>/reports/."""

    AUTO_FOCUS = "#report-from"
    DEFAULT_CSS = """
    ReportsScreen #report-period { height: auto; }
    ReportsScreen #report-period Input { width: 20; }
    ReportsScreen #report-summary { height: auto; padding: 0 1; }
    ReportsScreen #report-table { height: 1fr; }
    """
    BINDINGS = [
        Binding("ctrl+r", "show", N_("Show")),
        Binding("ctrl+s", "save_csv", N_("Save CSV")),
        Binding("ctrl+o", "save_pdf", N_("Save PDF")),
    ]

    def __init__(self, ctx: TuiContext) -> None:
        super().__init__()
        self.ctx = ctx
        self.report: SupervisionReport | None = None

    def compose(self) -> ComposeResult:
        today = self.ctx.store.clock().astimezone(ZoneInfo(self.ctx.settings.timezone)).date()
        last_month_end = today.replace(day=1) - timedelta(days=1)
        yield Header()
        with Horizontal(id="report-period"):
            yield Input(last_month_end.replace(day=1).isoformat(), placeholder=_("from YYYY-MM-DD"), id="report-from")
            yield Input(last_month_end.isoformat(), placeholder=_("to YYYY-MM-DD"), id="report-to")
            yield Button(_("Show"), id="report-show", variant="primary")
            yield Button("CSV", id="report-csv")
            yield Button("PDF", id="report-pdf")
        yield Static("", id="report-summary")
        yield Static("", id="report-monitoring")
        yield DataTable(id="report-table", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        self.show()

    @on(Input.Submitted)
    @on(Button.Pressed, "#report-show")
    def action_show(self) -> None:
        self.show()

    @work(exclusive=True, exit_on_error=False, group="load")
    async def show(self) -> None:
        # a refusal or a bad period (CimError) is told by the base screen's worker handler
        start, end = parse_period(
            self.query_one("#report-from", Input).value, self.query_one("#report-to", Input).value
        )
        self.report = await self.ctx.store.reports.supervision(self.ctx.actor, start, end)
        r = self.report
        self.query_one("#report-summary", Static).update(
            f"{format_date(r.start, long=True)} – {format_date(r.end, long=True)}: "
            + ", ".join(
                [
                    plurals.accesses(r.total_accesses),
                    plurals.refused_attempts(sum(x.count for x in r.refusals)),
                    plurals.requests(sum(q.count for q in r.requests)),
                    plurals.purges(len(r.purges)),
                ]
            )
            + "."
        )
        self.query_one("#report-monitoring", Static).update(monitoring_summary(r))
        table = self.query_one("#report-table", DataTable)
        table.clear(columns=True)
        header, *rows = r.rows(current_language(), tz=self.ctx.settings.timezone)
        table.add_columns(*header)
        for row in rows:
            table.add_row(*[literal(cell) for cell in row])

    @on(Button.Pressed, "#report-csv")
    def action_save_csv(self) -> None:
        self.save("csv")

    @on(Button.Pressed, "#report-pdf")
    def action_save_pdf(self) -> None:
        self.save("pdf")

    @work(exit_on_error=False, group="save")
    async def save(self, kind: str) -> None:
        if self.report is None:
            self.notify(_("Show a report first."), severity="warning")
            return
        folder = self.ctx.settings.data_dir / "reports"
        path = folder / f"supervision-{self.report.start}-{self.report.end}.{kind}"
        replace = False
        if await asyncio.to_thread(path.exists):  # written 0600, and never over a file without asking
            if not await self.app.push_screen_wait(
                ConfirmModal(_("{name} already exists. Replace it?").format(name=path.name))
            ):
                return
            replace = True
        try:
            await _mkdir(folder)
            if kind == "csv":
                await write_csv(self.report, path, replace=replace, lang=current_language())
            else:
                await write_pdf(
                    self.report, path, self.ctx.settings.office_name, replace=replace, lang=current_language()
                )
        except OSError as exc:
            self.notify(
                _("Cannot write {path}: {error}").format(path=path, error=exc.strerror),
                title=_("Report"),
                severity="error",
            )
            return
        self.notify(_("Saved {path}").format(path=path), title=_("Report"))


async def _mkdir(folder: Path) -> None:
    await asyncio.to_thread(folder.mkdir, mode=0o700, exist_ok=True)


def monitoring_summary(report: SupervisionReport) -> str:
    """§3 live supervision in the period, in one line (the rows are in the table: monitoring, whisper, ...)."""
    a = report.activity
    return " · ".join(
        (
            ngettext("{n} live chat watch", "{n} live chat watches", len(a.watches)).format(n=len(a.watches)),
            ngettext("{n} whisper", "{n} whispers", len(a.whispers)).format(n=len(a.whispers)),
            ngettext("{n} take-over", "{n} take-overs", len(a.take_overs)).format(n=len(a.take_overs)),
            ngettext("{n} audit restore acknowledged", "{n} audit restores acknowledged", len(a.restores)).format(
                n=len(a.restores)
            ),
        )
    )
