"""The service report (§1.2) on screen: calls and chats side by side, grouped, with a chart of the day per hour."""

from __future__ import annotations

import asyncio
from zoneinfo import ZoneInfo

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Button, DataTable, Footer, Header, Input, Select, Static

from store.i18n import N_, _, current_language, format_date
from store.reports import parse_period
from store.service_report import (
    BY_CHOICES,
    ServiceReport,
    by_label,
    category_words,
    close_category_words,
    write_csv,
    write_pdf,
)
from tui.context import TuiContext
from tui.widgets.hour_chart import HourChart
from tui.widgets.literal import literal
from tui.screens.base import CimScreen, failure_title


class ServiceScreen(CimScreen[None]):
    """Figures from store.service (VIEW_REPORTS, audited); files go to <data dir>/reports/."""

    AUTO_FOCUS = "#service-from"
    DEFAULT_CSS = """
    ServiceScreen #service-period { height: auto; }
    ServiceScreen #service-period Input { width: 16; }
    ServiceScreen #service-period Select { width: 22; }
    ServiceScreen #service-summary { height: auto; padding: 0 1; }
    ServiceScreen #service-table { height: auto; max-height: 20; }
    ServiceScreen #service-extra { height: auto; padding: 0 1; }
    """
    BINDINGS = [
        Binding("ctrl+r", "show", N_("Show")),
        Binding("ctrl+s", "save_csv", N_("Save CSV")),
        Binding("ctrl+o", "save_pdf", N_("Save PDF")),
    ]

    def __init__(self, ctx: TuiContext) -> None:
        super().__init__()
        self.ctx = ctx
        self.report: ServiceReport | None = None

    def compose(self) -> ComposeResult:
        today = self.ctx.store.clock().astimezone(ZoneInfo(self.ctx.settings.timezone)).date()
        yield Header()
        with Horizontal(id="service-period"):
            yield Input(today.isoformat(), placeholder=_("from YYYY-MM-DD"), id="service-from")
            yield Input(today.isoformat(), placeholder=_("to YYYY-MM-DD"), id="service-to")
            yield Select(
                [(_("by {what}").format(what=by_label(b)), b) for b in BY_CHOICES],
                prompt=_("no grouping"),
                id="service-by",
            )
            yield Button(_("Show"), id="service-show", variant="primary")
            yield Button("CSV", id="service-csv")
            yield Button("PDF", id="service-pdf")
        with VerticalScroll():
            yield Static("", id="service-summary")
            yield DataTable(id="service-table", cursor_type="row", zebra_stripes=True)
            yield HourChart(id="service-chart")
            yield Static("", id="service-extra")
        yield Footer()

    def on_mount(self) -> None:
        self.show()

    @on(Input.Submitted)
    @on(Select.Changed)
    @on(Button.Pressed, "#service-show")
    def action_show(self) -> None:
        self.show()

    @failure_title(N_("Service report"))
    @work(exclusive=True, exit_on_error=False, group="load")
    async def show(self) -> None:
        by_value = self.query_one("#service-by", Select).value
        by = by_value if isinstance(by_value, str) else None
        start, end = parse_period(
            self.query_one("#service-from", Input).value, self.query_one("#service-to", Input).value
        )
        self.report = await self.ctx.store.service.report(self.ctx.actor, start, end, by)
        r = self.report
        doc = r.as_json()
        calls, chats = doc["calls"], doc["chats"]
        self.query_one("#service-summary", Static).update(
            f"{format_date(r.start, long=True)} – {format_date(r.end, long=True)}: "
            + _("calls {offered} offered, {answered} answered, {abandoned} abandoned").format(**calls)
            + "; "
            + _("chats {offered} offered, {answered} answered, {abandoned} abandoned").format(**chats)
            + ". "
            + _("Service level = answered within {n} s.").format(n=r.service_level_s)
        )
        table = self.query_one("#service-table", DataTable)
        table.clear(columns=True)
        header, *rows = r.rows(current_language())
        table.add_columns(*header)
        for row in rows:
            table.add_row(*[literal(cell) for cell in row])
        self.query_one("#service-chart", HourChart).show(doc["hours"])
        extra = []
        for title, counts in (
            (_("Close categories"), close_category_words(r)),
            (_("Call categories"), category_words(r.call_categories)),
            (_("Chats per consultant"), r.chats_per_consultant),
            (_("Calls per consultant"), r.calls_per_consultant),
        ):
            extra.append(f"{title}: " + (", ".join(f"{k} {v}" for k, v in counts.items()) or "—"))
        extra += r.rating_lines()  # satisfaction (store/resident_desk.py)
        self.query_one("#service-extra", Static).update(literal("\n".join(extra)))

    @on(Button.Pressed, "#service-csv")
    def action_save_csv(self) -> None:
        self.save("csv")

    @on(Button.Pressed, "#service-pdf")
    def action_save_pdf(self) -> None:
        self.save("pdf")

    @work(exit_on_error=False, group="save")
    async def save(self, kind: str) -> None:
        if self.report is None:
            self.notify(_("Show a report first."), severity="warning")
            return
        folder = self.ctx.settings.data_dir / "reports"
        path = folder / f"service-{self.report.start}-{self.report.end}.{kind}"
        try:
            await asyncio.to_thread(folder.mkdir, mode=0o700, exist_ok=True)
            if kind == "csv":
                # CIM's own reports folder: a report of the same period saved again replaces the earlier one
                await write_csv(self.report, path, replace=True, lang=current_language())
            else:
                await write_pdf(self.report, path, self.ctx.settings.office_name, replace=True, lang=current_language())
        except OSError as exc:
            self.notify(
                _("Cannot write {path}: {error}").format(path=path, error=exc.strerror),
                title=_("Service report"),
                severity="error",
            )
            return
        self.notify(_("Saved {path}").format(path=path), title=_("Service report"))
