"""Supervision reports (§3, §7): accesses per person and purpose, requests by outcome and time, purges."""

from __future__ import annotations

import asyncio
import csv
import io
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from .audit import AuditLog
from .clock import Clock, from_iso, to_iso
from .errors import InvalidInput
from . import plurals
from .audit_actions import action_label
from .files import write_private
from .i18n import N_, _, current_language, format_date, format_datetime, normalise_language, translator
from .letters import in_font
from .models import Actor
from .policy import Permission
from .supervision import SupervisionActivity

if TYPE_CHECKING:  # the service names the repository's type only; its SQL is the backend's (store/sqlite/)
    from .sqlite.reports import ReportsRepository

FONTS_DIR = Path(__file__).with_name("fonts")

#: Audit actions that are an access to residents' content or to the archive (DESIGN.md §3: the
#: director supervises use, listening, sharing). Matched as prefixes of the audit entry's action.
ACCESS_ACTION_PREFIXES = (
    "archive.open_",  # opening a recording or a transcript, always with a stated purpose
    "archive.search",  # searching calls and chats (numbers, dates, text)
    "archive.view",  # looking at a conversation's details
    "requests.session",  # a §4 listening/reading session held for a resident (start, playback, end)
    "requests.export",  # a GDPR Art. 15 copy or the register exported
    "chat.monitor",  # §3: a live chat opened by a supervisor, with a stated purpose (store/supervision.py)
)


@dataclass(frozen=True)
class AccessCount:
    person: str
    action: str
    purpose: str
    count: int


@dataclass(frozen=True)
class RefusalCount:
    person: str
    action: str
    count: int


@dataclass(frozen=True)
class RequestOutcome:
    kind: str
    #: granted / refused / withdrawn / open
    outcome: str
    count: int
    #: Requests in this group that got an answer (decision or withdrawal) and the days it took.
    answered: int
    average_days: float | None
    max_days: int | None
    #: Answered after the due date (one month, or the extended date), or still open past it.
    late: int


@dataclass(frozen=True)
class PurgeSummary:
    run_id: int
    started_at: datetime
    started_by: str
    status: str
    calls: int
    chats: int
    files: int
    bytes: int
    held: int


@dataclass(frozen=True)
class SupervisionReport:
    start: date
    end: date
    generated_at: datetime
    generated_by: str
    accesses: tuple[AccessCount, ...]
    refusals: tuple[RefusalCount, ...]
    requests: tuple[RequestOutcome, ...]
    purges: tuple[PurgeSummary, ...]
    #: The audit chain head when the report was made, as printed (docs/SECURITY.md, Anchored audit).
    audit_anchor: str = ""
    #: The office time zone the report's days and times are in (empty: CIM_TIMEZONE, else Europe/Warsaw).
    timezone: str = ""
    #: §3 live supervision (watches, whispers, take-overs) and acknowledged audit restores (store/supervision.py).
    activity: SupervisionActivity = SupervisionActivity()

    @property
    def total_accesses(self) -> int:
        return sum(a.count for a in self.accesses)

    def rows(self, lang: str | None = None, *, action_words: bool = True, tz: str | None = None) -> list[list[str]]:
        """The whole report as table rows (section first), shared by the CSV, the PDF and the screen, in `lang`
        (default: the staff language). `action_words`: audit actions in words (the screen, the PDF); the CSV
        keeps their codes, which stay the same in every language."""
        lang = normalise_language(lang) or current_language()
        t = translator(lang).gettext
        out = [[t(h) for h in _ROW_HEADER]]
        for a in self.accesses:
            out.append(
                [
                    t(N_("access")),
                    a.person,
                    action_label(a.action, lang) if action_words else a.action,
                    a.purpose,
                    str(a.count),
                    "",
                ]
            )
        for r in self.refusals:
            out.append(
                [
                    t(N_("refused")),
                    r.person,
                    action_label(r.action, lang) if action_words else r.action,
                    "",
                    str(r.count),
                    "",
                ]
            )
        for q in self.requests:
            avg = "" if q.average_days is None else _decimal(q.average_days, lang)
            mx = "" if q.max_days is None else str(q.max_days)
            out.append(
                [
                    t(N_("request")),
                    _word(_REQUEST_KINDS, q.kind, lang),
                    "",
                    _word(_REQUEST_OUTCOMES, q.outcome, lang),
                    str(q.count),
                    t(N_("answered {answered}; average days {avg}; max days {max}; late {late}")).format(
                        answered=q.answered, avg=avg or "-", max=mx or "-", late=q.late
                    ),
                ]
            )
        for p in self.purges:
            out.append(
                [
                    t(N_("purge")),
                    p.started_by,
                    t(N_("run {run} {when}")).format(
                        run=p.run_id, when=format_datetime(p.started_at, lang=lang, tz=tz)
                    ),
                    purge_status(p.status, lang),
                    str(p.calls + p.chats),
                    t(N_("calls {calls}; chats {chats}; files {files}; bytes {bytes}; held {held}")).format(
                        calls=p.calls, chats=p.chats, files=p.files, bytes=p.bytes, held=p.held
                    ),
                ]
            )
        out.extend(activity_rows(self.activity, lang, tz=tz))
        return out


_ROW_HEADER = (N_("section"), N_("who / kind"), N_("what"), N_("purpose / outcome"), N_("count"), N_("details"))
_REQUEST_KINDS = {"access": N_("§4 access"), "copy": N_("GDPR Art. 15 copy")}
_REQUEST_OUTCOMES = {
    "granted": N_("granted"),
    "refused": N_("refused"),
    "withdrawn": N_("withdrawn"),
    "open": N_("open"),
}
_PURGE_STATUSES = {
    "finished": N_("finished"),
    "running": N_("running"),
    "failed": N_("failed"),
    "interrupted": N_("interrupted"),
}


def _word(table: dict[str, str], code: str, lang: str) -> str:
    return translator(lang).gettext(table[code]) if code in table else code


def _decimal(value: float, lang: str) -> str:
    text = f"{value:.1f}"
    return text.replace(".", ",") if lang == "pl" else text


def purge_status(status: str, lang: str | None = None) -> str:
    """A purge run's status in words ('finished (remnants pending)' included); an unknown one as it is."""
    lang = normalise_language(lang) or current_language()
    pending = " (remnants pending)"
    head = status[: -len(pending)] if status.endswith(pending) else status
    text = _word(_PURGE_STATUSES, head, lang)
    return text + translator(lang).gettext(N_(" (remnants pending)")) if head != status else text


class Reports:
    """The supervision report's rules: who may, the period, what counts as an access, requests on time.

    The SQL is the repository's (store/sqlite/reports.py); the report's audit entry is written in its
    unit of work.
    """

    def __init__(
        self, repo: "ReportsRepository", audit: AuditLog, clock: Clock, timezone: str = "Europe/Warsaw"
    ) -> None:
        self.repo = repo
        self.audit = audit
        self.clock = clock
        self.timezone = timezone

    async def supervision(self, actor: Actor, start: date, end: date) -> SupervisionReport:
        """The report for the days start..end inclusive (office time); audited, as any look at the log is."""
        await self.audit.guard(actor, Permission.VIEW_REPORTS, "reports.view")
        if end < start:
            raise InvalidInput(N_("the period ends ({end}) before it starts ({start})"), end=end, start=start)
        if (end - start).days > 3660:
            raise InvalidInput(N_("a report covers at most ten years"))
        zone = ZoneInfo(self.timezone)
        since = to_iso(datetime.combine(start, time(0), zone))
        until = to_iso(datetime.combine(end + timedelta(days=1), time(0), zone))
        accesses = [
            AccessCount(r["actor_name"], r["action"], r["purpose"] or "", r["n"])
            for r in await self.repo.access_counts(since, until, ACCESS_ACTION_PREFIXES)
        ]
        refusals = [
            RefusalCount(r["actor_name"], r["action"], r["n"]) for r in await self.repo.refusal_counts(since, until)
        ]
        requests = await self._requests(start, end)
        # a run whose scrub could not truncate the WAL is not simply "finished" (§3: the director supervises storage)
        purges = [
            PurgeSummary(
                r["id"],
                from_iso(r["started_at"]),
                r["started_by"],
                r["status"] + (" (remnants pending)" if r["remnants_pending"] else ""),
                r["calls"],
                r["chats"],
                r["files"],
                r["bytes"],
                r["held"],
            )
            for r in await self.repo.purge_runs(since, until)
        ]
        activity = await self.repo.supervision_activity(since, until)
        report = SupervisionReport(
            start,
            end,
            self.clock(),
            actor.name,
            tuple(accesses),
            tuple(refusals),
            tuple(requests),
            tuple(purges),
            activity=activity,
        )
        async with self.repo.transaction() as tx:
            await self.audit.append(
                tx,
                actor,
                "reports.view",
                details={"from": start.isoformat(), "to": end.isoformat(), "accesses": report.total_accesses},
            )
        return replace(report, audit_anchor=(await self.audit.anchor("report")).printed(), timezone=self.timezone)

    async def _requests(self, start: date, end: date) -> list[RequestOutcome]:
        """Requests received in the period, grouped by kind and outcome, with days from receipt to answer."""
        rows = await self.repo.requests_received(start.isoformat(), end.isoformat())
        zone = ZoneInfo(self.timezone)
        today = self.clock().astimezone(zone).date()
        groups: dict[tuple[str, str], list[tuple[int | None, bool]]] = {}
        for r in rows:
            received = date.fromisoformat(r["received_on"][:10])
            due = date.fromisoformat((r["extended_until"] or r["due_on"])[:10])
            answered_at = r["decided_at"] or r["withdrawn_at"]
            if r["decision"]:
                outcome = r["decision"]
            elif r["withdrawn_at"]:
                outcome = "withdrawn"
            else:
                outcome = "open"
            if answered_at:
                answered = from_iso(answered_at).astimezone(zone).date()
                days: int | None = (answered - received).days
                late = answered > due
            else:
                days, late = None, today > due
            groups.setdefault((r["kind"], outcome), []).append((days, late))
        out = []
        for (kind, outcome), items in sorted(groups.items()):
            answered_days = [d for d, _ in items if d is not None]
            out.append(
                RequestOutcome(
                    kind=kind,
                    outcome=outcome,
                    count=len(items),
                    answered=len(answered_days),
                    average_days=(sum(answered_days) / len(answered_days)) if answered_days else None,
                    max_days=max(answered_days) if answered_days else None,
                    late=sum(1 for _, late in items if late),
                )
            )
        return out


async def write_csv(report: SupervisionReport, path: Path, *, replace: bool = False, lang: str | None = None) -> Path:
    """Write the report as CSV (UTF-8 with BOM, so spreadsheet programs read the Polish letters), in `lang`
    (default: the staff language); the period stays ISO dates and the audit actions their codes, for machines.

    The file names staff: it is written 0600 whatever the umask, and an existing file is refused
    (AlreadyExists) unless `replace` (store/files.py).
    """
    return await asyncio.to_thread(
        _write_csv, report, Path(path), replace, normalise_language(lang) or current_language()
    )


async def write_pdf(
    report: SupervisionReport, path: Path, office_name: str = "", *, replace: bool = False, lang: str | None = None
) -> Path:
    """Write the report as a PDF with a Unicode font (Polish letters in names and purposes), in `lang` (default:
    the staff language); 0600, as write_csv."""
    return await asyncio.to_thread(
        _write_pdf, report, Path(path), office_name, replace, normalise_language(lang) or current_language()
    )


def _write_csv(report: SupervisionReport, path: Path, replace: bool, lang: str) -> Path:
    t = translator(lang).gettext
    tz = report.timezone or None
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow(
        [
            t(N_("CIM supervision report")),
            report.start.isoformat(),
            report.end.isoformat(),
            t(N_("generated {when} by {who}")).format(
                when=format_datetime(report.generated_at, lang=lang, tz=tz), who=report.generated_by
            ),
            report.audit_anchor,
        ]
    )
    for row in report.rows(lang, action_words=False, tz=tz):
        writer.writerow([_csv_safe(cell) for cell in row])
    return write_private(path, buffer.getvalue().encode("utf-8-sig"), replace=replace)


def _csv_safe(cell: str) -> str:
    """Neutralise spreadsheet formulas (a purpose typed as '=HYPERLINK(...)' stays text)."""
    return "'" + cell if cell[:1] in ("=", "+", "-", "@", "\t", "\r") else cell


def _write_pdf(report: SupervisionReport, path: Path, office_name: str, replace: bool, lang: str) -> Path:
    from fpdf import FPDF  # imported here: only report writing needs it

    t = translator(lang).gettext
    tz = report.timezone or None

    # a character the font lacks (typed into a purpose) is printed as [U+XXXX], never dropped
    office_name = in_font(office_name)

    pdf = FPDF(orientation="L", format="A4")
    regular, bold = FONTS_DIR / "DejaVuSans.ttf", FONTS_DIR / "DejaVuSans-Bold.ttf"
    pdf.add_font("DejaVu", "", str(regular))
    pdf.add_font("DejaVu", "B", str(bold if bold.exists() else regular))
    pdf.set_auto_page_break(auto=True, margin=12)
    pdf.add_page()
    pdf.set_font("DejaVu", "B", 14)
    pdf.cell(0, 8, t(N_("CIM — supervision report (§3, §7)")), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("DejaVu", "", 9)
    if office_name:
        pdf.cell(0, 5, office_name, new_x="LMARGIN", new_y="NEXT")
    pdf.cell(
        0,
        5,
        t(N_("Period {start} – {end}; generated {when} by {who}")).format(
            start=format_date(report.start, lang=lang, long=True),
            end=format_date(report.end, lang=lang, long=True),
            when=format_datetime(report.generated_at, lang=lang, tz=tz),
            who=in_font(report.generated_by),
        ),
        new_x="LMARGIN",
        new_y="NEXT",
    )
    pdf.cell(
        0,
        5,
        ", ".join(
            [
                plurals.accesses(report.total_accesses, lang),
                plurals.refused_attempts(sum(r.count for r in report.refusals), lang),
                plurals.requests(sum(q.count for q in report.requests), lang),
                plurals.purges(len(report.purges), lang),
            ]
        ),
        new_x="LMARGIN",
        new_y="NEXT",
    )
    pdf.ln(3)
    sections = [
        (
            N_("Accesses per person and purpose"),
            [N_("person"), N_("action"), N_("purpose"), N_("count")],
            [[a.person, action_label(a.action, lang), a.purpose or "—", str(a.count)] for a in report.accesses],
            (50, 70, 125, 22),
        ),
        (
            N_("Refused attempts"),
            [N_("person"), N_("action"), N_("count")],
            [[r.person, action_label(r.action, lang), str(r.count)] for r in report.refusals],
            (60, 120, 22),
        ),
        (
            N_("Requests by outcome"),
            [N_("kind"), N_("outcome"), N_("count"), N_("with an answer"), N_("avg days"), N_("max days"), N_("late")],
            [
                [
                    _word(_REQUEST_KINDS, q.kind, lang),
                    _word(_REQUEST_OUTCOMES, q.outcome, lang),
                    str(q.count),
                    str(q.answered),
                    "—" if q.average_days is None else _decimal(q.average_days, lang),
                    "—" if q.max_days is None else str(q.max_days),
                    str(q.late),
                ]
                for q in report.requests
            ],
            (35, 35, 25, 25, 25, 25, 25),
        ),
        (
            N_("Purges"),
            [
                N_("run"),
                N_("started"),
                N_("by"),
                N_("status"),
                N_("calls"),
                N_("chats"),
                N_("files"),
                N_("bytes"),
                N_("held"),
            ],
            [
                [
                    str(p.run_id),
                    format_datetime(p.started_at, lang=lang, tz=tz),
                    p.started_by,
                    purge_status(p.status, lang),
                    str(p.calls),
                    str(p.chats),
                    str(p.files),
                    str(p.bytes),
                    str(p.held),
                ]
                for p in report.purges
            ],
            (15, 40, 60, 25, 20, 20, 20, 30, 20),
        ),
    ]
    sections += activity_pdf_sections(report.activity, lang, tz=tz)
    for title, header, rows, widths in sections:
        pdf.set_font("DejaVu", "B", 11)
        pdf.cell(0, 7, t(title), new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("DejaVu", "", 9)
        if not rows:
            pdf.cell(0, 5, t(N_("none in this period")), new_x="LMARGIN", new_y="NEXT")
        else:
            with pdf.table(col_widths=widths, text_align="LEFT", width=sum(widths)) as table:
                table.row([t(h) for h in header])
                for row in rows:
                    table.row([in_font(cell) for cell in row])
        pdf.ln(3)
    _print_anchor(pdf, report.audit_anchor)
    return write_private(path, bytes(pdf.output()), replace=replace)


def _print_anchor(pdf: Any, anchor: str) -> None:
    """The audit chain head, small, at the end of the report: paper that proves what the log held."""
    if anchor:
        pdf.set_font("DejaVu", "", 7)
        pdf.multi_cell(0, 3.5, anchor, new_x="LMARGIN", new_y="NEXT")


def parse_period(
    start: str, end: str, *, names: tuple[str, str] = ("the first day", "the last day")
) -> tuple[date, date]:
    """Dates from the command line or a form: YYYY-MM-DD; the error names the one that is wrong."""
    return parse_day(start, names[0]), parse_day(end, names[1])


def parse_day(text: str, name: str) -> date:
    """One day, YYYY-MM-DD; the error names the field (`--from`, "the first day") and only what was typed."""
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise InvalidInput(
            N_("{name} must be a date YYYY-MM-DD, not {text!r}"), name=name, text=text.strip()[:40]
        ) from None


def report_json(report: SupervisionReport) -> dict[str, Any]:
    return {
        "from": report.start.isoformat(),
        "to": report.end.isoformat(),
        "generated_at": to_iso(report.generated_at),
        "generated_by": report.generated_by,
        "audit_anchor": report.audit_anchor,
        "accesses": [a.__dict__ for a in report.accesses],
        "refusals": [r.__dict__ for r in report.refusals],
        "requests": [q.__dict__ for q in report.requests],
        "purges": [{**p.__dict__, "started_at": to_iso(p.started_at)} for p in report.purges],
        "monitoring": activity_json(report.activity),
    }


# ---------------------------------------------------------------------- §3 live supervision in the report


def _when(moment: datetime, lang: str | None = None, tz: str | None = None) -> str:
    return format_datetime(moment, lang=lang, tz=tz, seconds=True)


def _chat(chat_id: int | None, t: Any = _) -> str:
    return t(N_("chat #{id}")).format(id=chat_id) if chat_id is not None else "?"


def _watched_for(seconds: int | None, t: Any = _) -> str:
    if seconds is None:
        return t(N_("still watching, or ended without a record"))
    minutes, rest = divmod(seconds, 60)
    return t(N_("watched {minutes} min {seconds} s")).format(minutes=minutes, seconds=rest)


#: the monitoring rows' sections, translated as the other sections are (English keeps the codes it always had)
_ACTIVITY_SECTIONS = {
    "monitoring": N_("monitoring"),
    "whisper": N_("whisper"),
    "take_over": N_("take_over"),
    "restore_acknowledged": N_("restore_acknowledged"),
}


def activity_rows(activity: SupervisionActivity, lang: str | None = None, *, tz: str | None = None) -> list[list[str]]:
    """The monitoring itself as report rows (same columns as `SupervisionReport.rows`), in `lang` (default: the
    staff language): who watched which live chat, when and for what purpose; whispers and take-overs (never
    what was whispered); and the acknowledged restores of the audit log from a backup."""
    lang = normalise_language(lang) or current_language()
    t = translator(lang).gettext

    def when(moment: datetime) -> str:
        return _when(moment, lang, tz)

    def section(code: str) -> str:
        return t(_ACTIVITY_SECTIONS[code])

    out = []
    for w in activity.watches:
        out.append(
            [
                section("monitoring"),
                w.person,
                _chat(w.chat_id, t),
                w.purpose,
                "1",
                f"{when(w.at)}; {_watched_for(w.seconds, t)}",
            ]
        )
    for h in activity.whispers:
        out.append(
            [
                section("whisper"),
                h.person,
                _chat(h.chat_id, t),
                "",
                "1",
                t(N_("{when}; to {name}")).format(when=when(h.at), name=h.to_person or "?"),
            ]
        )
    for o in activity.take_overs:
        out.append(
            [
                section("take_over"),
                o.person,
                _chat(o.chat_id, t),
                "",
                "1",
                t(N_("{when}; from {name}")).format(when=when(o.at), name=o.from_person or "?"),
            ]
        )
    for r in activity.restores:
        out.append(
            [
                section("restore_acknowledged"),
                r.person,
                t(N_("audit entries {first} to {last} lost")).format(
                    first=(r.fork_at or 0) + 1, last=r.lost_through if r.lost_through is not None else "?"
                ),
                r.reason,
                "1",
                t(N_("{when}; backup {backup}")).format(when=when(r.at), backup=r.backup or "?"),
            ]
        )
    return out


def activity_pdf_sections(
    activity: SupervisionActivity, lang: str | None = None, *, tz: str | None = None
) -> list[tuple[str, list[str], list[list[str]], tuple]]:
    """The PDF's sections for the monitoring and the restore acknowledgements (rows as `activity_rows`)."""
    lang = normalise_language(lang) or current_language()
    t = translator(lang).gettext

    def when(moment: datetime) -> str:
        return _when(moment, lang, tz)

    return [
        (
            t(N_("Live chats watched (§3)")),
            [t(N_("when")), t(N_("person")), t(N_("chat")), t(N_("purpose")), t(N_("length"))],
            [
                [when(w.at), w.person, _chat(w.chat_id, t), w.purpose or "—", _watched_for(w.seconds, t)]
                for w in activity.watches
            ],
            (45, 55, 30, 90, 50),
        ),
        (
            t(N_("Whispers to consultants")),
            [t(N_("when")), t(N_("person")), t(N_("chat")), t(N_("to"))],
            [[when(h.at), h.person, _chat(h.chat_id, t), h.to_person or "—"] for h in activity.whispers],
            (45, 70, 30, 70),
        ),
        (
            t(N_("Chats taken over")),
            [t(N_("when")), t(N_("person")), t(N_("chat")), t(N_("from"))],
            [[when(o.at), o.person, _chat(o.chat_id, t), o.from_person or "—"] for o in activity.take_overs],
            (45, 70, 30, 70),
        ),
        (
            t(N_("Audit log restores acknowledged")),
            [t(N_("when")), t(N_("person")), t(N_("entries lost")), t(N_("reason")), t(N_("backup"))],
            [
                [
                    when(r.at),
                    r.person,
                    f"{(r.fork_at or 0) + 1}–{r.lost_through if r.lost_through is not None else '?'}",
                    r.reason,
                    r.backup or "—",
                ]
                for r in activity.restores
            ],
            (45, 50, 30, 100, 45),
        ),
    ]


def activity_json(activity: SupervisionActivity) -> dict[str, Any]:
    def items(entries: tuple) -> list[dict[str, Any]]:
        return [{**e.__dict__, "at": to_iso(e.at)} for e in entries]

    return {
        "watches": items(activity.watches),
        "whispers": items(activity.whispers),
        "take_overs": items(activity.take_overs),
        "restores_acknowledged": items(activity.restores),
    }
