"""The centre's service figures (§1.2): calls (queue_log stays) and chats side by side, purge-proof.

Each offered contact is reduced to facts that name no one: office day and hour, channel, queue,
consultant, topic, outcome, waiting and handling seconds. Live contacts are read from their rows;
a contact the purge is about to delete is folded into `service_daily` in the purge's own
transaction (`absorb_*`), so every contact is counted exactly once, before and after §6's purge.

Definitions (README "Service report"):
- offered: calls that entered a queue and left it (answered or not; a caller still waiting is not
  counted); chats whose resident accepted the notice and which are no longer queued;
- answered: CONNECT (calls), taken by a consultant (chats);
- abandoned: the caller hung up while waiting (ABANDON), the resident left before a consultant took
  the chat; abandoned_short: of those, the ones who waited at most `short_abandon_seconds`;
- unanswered_other: queue timeouts, exit by key, empty queue (calls only);
- wait_avg_s / wait_p90_s: over answered contacts, seconds from entering the queue to the answer
  (p90: nearest rank); service_level: answered within `service_level_seconds`, divided by offered
  minus abandoned_short; answer_rate: answered / offered;
- handle_avg_s: talk time of answered calls (COMPLETE*/TRANSFER), taken-to-closed time of chats.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import math
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable
from zoneinfo import ZoneInfo

from .clock import from_iso, to_iso
from .errors import InvalidInput
from .files import write_private
from .i18n import N_, current_language, format_date, normalise_language, translator
from .models import Actor
from .policy import Permission

if TYPE_CHECKING:  # the service names the repository's type only; its SQL is the backend's (store/sqlite/)
    from . import Store
    from .sqlite.service_report import ServiceReportRepository

BY_CHOICES = ("hour", "day", "consultant", "queue", "topic")
CHANNELS = ("calls", "chats")
FONTS_DIR = Path(__file__).with_name("fonts")


@dataclass(frozen=True)
class Contact:
    """One offered call or chat, as the figures see it."""

    channel: str  # 'call' or 'chat'
    day: str  # office-local YYYY-MM-DD
    hour: int
    queue: str
    consultant_id: int | None
    consultant: str
    topic: str
    outcome: str  # answered / abandoned / other
    wait_s: int | None
    handle_s: int | None
    #: A chat still being answered (its category comes at its close): not counted as uncategorised.
    open: bool = False


@dataclass
class Bucket:
    """Counts and durations of a group of contacts (one cell of service_daily, or a report row)."""

    offered: int = 0
    answered: int = 0
    abandoned: int = 0
    unanswered_other: int = 0
    answered_waits: list[int] = field(default_factory=list)
    abandoned_waits: list[int] = field(default_factory=list)
    handle_times: list[int] = field(default_factory=list)
    callbacks_done: int = 0
    callbacks_open: int = 0

    def add_contact(self, c: Contact) -> None:
        self.offered += 1
        if c.outcome == "answered":
            self.answered += 1
            if c.wait_s is not None:
                self.answered_waits.append(c.wait_s)
            if c.handle_s is not None:
                self.handle_times.append(c.handle_s)
        elif c.outcome == "abandoned":
            self.abandoned += 1
            if c.wait_s is not None:
                self.abandoned_waits.append(c.wait_s)
        else:
            self.unanswered_other += 1

    def merge(self, other: "Bucket") -> None:
        self.offered += other.offered
        self.answered += other.answered
        self.abandoned += other.abandoned
        self.unanswered_other += other.unanswered_other
        self.answered_waits += other.answered_waits
        self.abandoned_waits += other.abandoned_waits
        self.handle_times += other.handle_times
        self.callbacks_done += other.callbacks_done
        self.callbacks_open += other.callbacks_open

    def figures(self, service_level_s: int, short_abandon_s: int) -> dict[str, Any]:
        short = sum(1 for w in self.abandoned_waits if w <= short_abandon_s)
        within = sum(1 for w in self.answered_waits if w <= service_level_s)
        counted = self.offered - short
        return {
            "offered": self.offered,
            "answered": self.answered,
            "abandoned": self.abandoned,
            "abandoned_short": short,
            "unanswered_other": self.unanswered_other,
            "answer_rate": _ratio(self.answered, self.offered),
            "wait_avg_s": _mean(self.answered_waits),
            "wait_p90_s": percentile(self.answered_waits, 90),
            "service_level": _ratio(within, counted),
            "handle_avg_s": _mean(self.handle_times),
        }


def percentile(values: Iterable[int], p: int) -> int | None:
    """Nearest-rank percentile: the smallest value with at least p % of the values at or below it."""
    ordered = sorted(values)
    if not ordered:
        return None
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def _mean(values: list[int]) -> float | None:
    return round(sum(values) / len(values), 1) if values else None


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole > 0 else None


@dataclass(frozen=True)
class ServiceReport:
    start: date
    end: date
    by: str | None
    service_level_s: int
    short_abandon_s: int
    totals: dict[str, Bucket]
    groups: list[tuple[str, dict[str, Bucket]]]
    hours: list[tuple[int, dict[str, Bucket]]]
    close_categories: dict[str, int]
    call_categories: dict[str, int]
    chats_per_consultant: dict[str, int]
    calls_per_consultant: dict[str, int]
    callbacks: dict[str, int]
    #: satisfaction (store/resident_desk.py): {"all": {...}, "by_consultant": [...], "by_topic": [...]}; kept past §6
    ratings: dict[str, Any] = field(default_factory=dict)
    #: Answered chats that ended without a close category (the resident left and the consultant has not
    #: given one yet, issue 16): counted on their own, so the manager sees them and none is lost.
    uncategorised_chats: int = 0

    def rating_lines(self) -> list[str]:
        """The satisfaction section as lines of text (CLI, TUI, PDF): count and mean, per consultant and topic."""
        from .i18n import _, ngettext

        overall = self.ratings.get("all") or {"count": 0}
        if not overall["count"]:
            return [_("Satisfaction (1–5): no ratings in this period")]

        def one(f: dict[str, Any]) -> str:
            return ngettext("{mean} from {n} rating", "{mean} from {n} ratings", f["count"]).format(
                mean=f"{f['average']:.2f}", n=f["count"]
            )

        lines = [
            _("Satisfaction (1–5): {figures}; marks 1–5: {marks}").format(
                figures=one(overall), marks=" / ".join(str(m) for m in overall["marks"])
            )
        ]
        for title, key in ((_("by consultant"), "by_consultant"), (_("by topic"), "by_topic")):
            groups = self.ratings.get(key) or []
            lines.append(f"  {title}: " + ", ".join(f"{g['key'] or '—'} {one(g)}" for g in groups))
        return lines

    def figures(self, bucket: Bucket) -> dict[str, Any]:
        return bucket.figures(self.service_level_s, self.short_abandon_s)

    def as_json(self) -> dict[str, Any]:
        return {
            "from": self.start.isoformat(),
            "to": self.end.isoformat(),
            "by_dimension": self.by,
            "service_level_seconds": self.service_level_s,
            "short_abandon_seconds": self.short_abandon_s,
            "calls": self.figures(self.totals["calls"]),
            "chats": self.figures(self.totals["chats"]),
            "by": [
                {"key": key, "calls": self.figures(b["calls"]), "chats": self.figures(b["chats"])}
                for key, b in self.groups
            ],
            "hours": [
                {"hour": h, "calls": self.figures(b["calls"]), "chats": self.figures(b["chats"])} for h, b in self.hours
            ],
            "close_categories": self.close_categories,
            "uncategorised_chats": self.uncategorised_chats,
            "call_categories": self.call_categories,
            "chats_per_consultant": self.chats_per_consultant,
            "calls_per_consultant": self.calls_per_consultant,
            "callbacks": self.callbacks,
            "ratings": self.ratings,
        }

    def rows(self, lang: str | None = None) -> list[list[str]]:
        """The figures as table rows (CSV, PDF and the TUI): one row per group and channel, the words in `lang`
        (default: the staff language); the figures keep one format in every language."""
        t = translator(normalise_language(lang) or current_language()).gettext
        out = [
            [
                t(N_("group")),
                t(N_("channel")),
                t(N_("offered")),
                t(N_("taken")),
                t(N_("abandoned")),
                t(N_("abandoned ≤{n}s")).format(n=self.short_abandon_s),
                t(N_("other")),
                t(N_("answer rate")),
                t(N_("wait avg s")),
                t(N_("wait p90 s")),
                t(N_("SL {n}s")).format(n=self.service_level_s),
                t(N_("handle avg s")),
            ]
        ]
        groups = [(t(N_("all")), self.totals)] + self.groups
        for key, buckets in groups:
            for channel in CHANNELS:
                f = self.figures(buckets[channel])
                out.append(
                    [
                        key or "—",
                        t(_CHANNEL_WORDS[channel]),
                        str(f["offered"]),
                        str(f["answered"]),
                        str(f["abandoned"]),
                        str(f["abandoned_short"]),
                        str(f["unanswered_other"]),
                        _pct(f["answer_rate"]),
                        _num(f["wait_avg_s"]),
                        _num(f["wait_p90_s"]),
                        _pct(f["service_level"]),
                        _num(f["handle_avg_s"]),
                    ]
                )
        return out


_CHANNEL_WORDS = {"calls": N_("calls"), "chats": N_("chats")}
_BY_WORDS = {
    "hour": N_("hour"),
    "day": N_("day"),
    "consultant": N_("consultant"),
    "queue": N_("queue"),
    "topic": N_("topic"),
}


def by_label(by: str | None, lang: str | None = None) -> str:
    """The grouping in words ('—' for none)."""
    if not by:
        return "—"
    return translator(normalise_language(lang) or current_language()).gettext(_BY_WORDS[by]) if by in _BY_WORDS else by


def category_words(counts: dict[str, int], lang: str | None = None) -> dict[str, int]:
    """Close (or call) category counts keyed by the category in words, never the code."""
    from .chats import category_label  # chats imports much of the store; only the words are needed here

    return {category_label(code, lang) or "—": n for code, n in counts.items()}


#: The row of the close categories that counts the answered chats without one (issue 16).
UNCATEGORISED = N_("no category yet (the resident left)")


def close_category_words(report: ServiceReport, lang: str | None = None) -> dict[str, int]:
    """The chats' close categories in words (`category_words`), then the answered chats still without a
    category, when there are any, on a row of their own."""
    words = category_words(report.close_categories, lang)
    if report.uncategorised_chats:
        words[translator(normalise_language(lang) or current_language()).gettext(UNCATEGORISED)] = (
            report.uncategorised_chats
        )
    return words


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


def _num(value: float | int | None) -> str:
    return "—" if value is None else (f"{value:g}" if isinstance(value, float) else str(value))


class ServiceFigures:
    """`store.service`: the service report over live rows and the purge-proof daily aggregate.

    The SQL is the repository's (store/sqlite/service_report.py); the report's audit entry is written
    in its unit of work.
    """

    def __init__(self, store: "Store", repo: "ServiceReportRepository") -> None:
        self.store = store
        self.repo = repo

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.store.settings.timezone)

    async def report(self, actor: Actor, start: date, end: date, by: str | None = None) -> ServiceReport:
        """Figures for the office days start..end inclusive, optionally grouped; VIEW_REPORTS, audited."""
        await self.store.audit.guard(actor, Permission.VIEW_REPORTS, "reports.service")
        if by is not None and by not in BY_CHOICES:
            raise InvalidInput(N_("--by must be one of {choices}, not {by!r}"), choices=", ".join(BY_CHOICES), by=by)
        if end < start:
            raise InvalidInput(N_("the period ends ({end}) before it starts ({start})"), end=end, start=start)
        if (end - start).days > 3660:
            raise InvalidInput(N_("a report covers at most ten years"))
        settings = self.store.settings
        await self.store.queue_log.link_calls()
        zone = self.zone
        since = to_iso(datetime.combine(start, time(0), zone))
        until = to_iso(datetime.combine(end + timedelta(days=1), time(0), zone))
        await self.store.callbacks.refresh()
        stays, chats, daily, (callbacks_done, callbacks_open) = await self.repo.snapshot(  # one snapshot
            since, until, start.isoformat(), end.isoformat()
        )
        live = _stay_contacts(stays, zone) + _chat_contacts(chats, zone)
        frozen = list(_daily_cells(daily))
        totals = {"calls": Bucket(), "chats": Bucket()}
        groups: dict[str, dict[str, Bucket]] = {}
        hours: dict[int, dict[str, Bucket]] = {}
        close_categories: dict[str, int] = {}
        call_categories: dict[str, int] = {}
        per_consultant: dict[str, dict[str, int]] = {"call": {}, "chat": {}}
        uncategorised = 0

        def place(c: Contact, bucket: Bucket) -> None:
            nonlocal uncategorised
            channel = "calls" if c.channel == "call" else "chats"
            totals[channel].merge(bucket)
            if not bucket.offered:
                return  # a cell of purged callbacks only: counted in the period's callbacks, not per group
            if by is not None:
                key = _group_key(c, by)
                groups.setdefault(key, {"calls": Bucket(), "chats": Bucket()})[channel].merge(bucket)
            hours.setdefault(c.hour, {"calls": Bucket(), "chats": Bucket()})[channel].merge(bucket)
            if c.topic:
                target = close_categories if c.channel == "chat" else call_categories
                target[c.topic] = target.get(c.topic, 0) + bucket.offered
            elif c.channel == "chat" and not c.open:  # answered, ended, and no category (a purged day's cell too)
                uncategorised += bucket.answered
            if c.consultant and bucket.answered:
                counts = per_consultant[c.channel]
                counts[c.consultant] = counts.get(c.consultant, 0) + bucket.answered

        for c in live:
            b = Bucket()
            b.add_contact(c)
            place(c, b)
        for c, b in frozen:
            place(c, b)
            callbacks_done += b.callbacks_done
            callbacks_open += b.callbacks_open
        ordered = sorted(groups.items(), key=lambda kv: _sort_key(kv[0]))
        report = ServiceReport(
            start,
            end,
            by,
            settings.service_level_seconds,
            settings.short_abandon_seconds,
            totals,
            ordered,
            sorted(hours.items()),
            dict(sorted(close_categories.items())),
            dict(sorted(call_categories.items())),
            dict(sorted(per_consultant["chat"].items())),
            dict(sorted(per_consultant["call"].items())),
            {"done": callbacks_done, "open": callbacks_open},
        )
        overall, rating_per_consultant, per_topic = await self.store.resident_desk.rating_figures(
            start.isoformat(), end.isoformat()
        )
        report = replace(
            report,
            ratings={
                "all": _rating_json(overall),
                "by_consultant": [_rating_json(f) for f in rating_per_consultant],
                "by_topic": [_rating_json(f) for f in per_topic],
            },
            uncategorised_chats=uncategorised,
        )
        async with self.repo.transaction() as tx:
            await self.store.audit.append(
                tx, actor, "reports.service", details={"from": start.isoformat(), "to": end.isoformat(), "by": by}
            )
        return report


def _rating_json(f: Any) -> dict[str, Any]:
    return {"key": f.key, "count": f.count, "average": f.average, "marks": list(f.marks)}


def _group_key(c: Contact, by: str) -> str:
    if by == "hour":
        return f"{c.hour:02d}:00"
    if by == "day":
        return c.day
    if by == "consultant":
        return c.consultant
    if by == "queue":
        return c.queue if c.channel == "call" else "czat"
    return c.topic


def _sort_key(key: str) -> tuple[int, str]:
    return (1 if key == "" else 0, key)  # "no consultant / no topic" last


# ------------------------------------------------------------------------------------------------
# Facts of live rows (the repository reads them, for a report or in the purge's transaction)


def _local(moment: str, zone: ZoneInfo) -> datetime:
    return from_iso(moment).astimezone(zone)


def _seconds_between(a: str | None, b: str | None) -> int | None:
    if not a or not b:
        return None
    return max(0, round((from_iso(b) - from_iso(a)).total_seconds()))


def _stay_contacts(rows: Iterable[Any], zone: ZoneInfo) -> list[Contact]:
    out = []
    for r in rows:
        local = _local(r["entered_at"], zone)
        outcome = r["outcome"] if r["outcome"] in ("answered", "abandoned") else "other"
        consultant = r["staff_name"] or (r["agent"] if outcome == "answered" else "") or ""
        out.append(
            Contact(
                "call",
                local.date().isoformat(),
                local.hour,
                r["queue"],
                r["consultant_id"],
                consultant,
                r["topic"] or "",
                outcome,
                r["wait_s"],
                r["talk_s"] if outcome == "answered" else None,
            )
        )
    return out


def _chat_contacts(rows: Iterable[Any], zone: ZoneInfo) -> list[Contact]:
    out = []
    for r in rows:
        local = _local(r["created_at"], zone)
        if r["consultant_id"] is not None and r["taken_at"]:
            outcome, wait = "answered", _seconds_between(r["created_at"], r["taken_at"])
            handle = _seconds_between(r["taken_at"], r["ended_at"])
        else:
            outcome, wait, handle = "abandoned", _seconds_between(r["created_at"], r["ended_at"]), None
        out.append(
            Contact(
                "chat",
                local.date().isoformat(),
                local.hour,
                "",
                r["consultant_id"],
                r["staff_name"] or "",
                r["close_category"] or "",
                outcome,
                wait,
                handle,
                r["status"] == "active",
            )
        )
    return out


def _daily_cells(rows: Iterable[Any]) -> Iterable[tuple[Contact, Bucket]]:
    for r in rows:
        contact = Contact(
            r["channel"],
            r["day"],
            r["hour"],
            r["queue"],
            r["consultant_id"],
            r["consultant"],
            r["topic"],
            "",
            None,
            None,
        )
        yield (
            contact,
            Bucket(
                r["offered"],
                r["answered"],
                r["abandoned"],
                r["unanswered_other"],
                json.loads(r["answered_waits"]),
                json.loads(r["abandoned_waits"]),
                json.loads(r["handle_times"]),
                r["callbacks_done"],
                r["callbacks_open"],
            ),
        )


# ------------------------------------------------------------------------------------------------
# Files


async def write_csv(report: ServiceReport, path: Path, *, replace: bool = False, lang: str | None = None) -> Path:
    """The figures as CSV (UTF-8 with BOM, so spreadsheet programs read the Polish letters), in `lang` (default:
    the staff language); the period stays ISO dates.

    The file names consultants: it is written 0600 whatever the umask, and an existing file is
    refused (AlreadyExists) unless `replace` (store/files.py), like the supervision report.
    """
    lang = normalise_language(lang) or current_language()
    t = translator(lang).gettext

    def write() -> Path:
        buffer = io.StringIO(newline="")
        writer = csv.writer(buffer)
        writer.writerow(
            [
                t(N_("CIM service report")),
                report.start.isoformat(),
                report.end.isoformat(),
                t(N_("by {what}")).format(what=by_label(report.by, lang)),
            ]
        )
        for row in report.rows(lang):
            writer.writerow(["'" + cell if cell[:1] in ("=", "+", "-", "@") and cell != "—" else cell for cell in row])
        return write_private(Path(path), buffer.getvalue().encode("utf-8-sig"), replace=replace)

    return await asyncio.to_thread(write)


async def write_pdf(
    report: ServiceReport, path: Path, office_name: str = "", *, replace: bool = False, lang: str | None = None
) -> Path:
    """The figures as a PDF with a Unicode font, in `lang` (default: the staff language); 0600 and never over an
    existing file unless `replace`."""
    return await asyncio.to_thread(
        _write_pdf, report, Path(path), office_name, replace, normalise_language(lang) or current_language()
    )


def _write_pdf(report: ServiceReport, path: Path, office_name: str, replace: bool, lang: str) -> Path:
    from fpdf import FPDF  # imported here: only report writing needs it

    t = translator(lang).gettext

    pdf = FPDF(orientation="L", format="A4")
    regular, bold = FONTS_DIR / "DejaVuSans.ttf", FONTS_DIR / "DejaVuSans-Bold.ttf"
    pdf.add_font("DejaVu", "", str(regular))
    pdf.add_font("DejaVu", "B", str(bold if bold.exists() else regular))
    pdf.set_auto_page_break(auto=True, margin=12)
    pdf.add_page()
    pdf.set_font("DejaVu", "B", 14)
    pdf.cell(0, 8, t(N_("CIM — service report (§1.2)")), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("DejaVu", "", 9)
    if office_name:
        pdf.cell(0, 5, office_name, new_x="LMARGIN", new_y="NEXT")
    pdf.cell(
        0,
        5,
        t(N_("Period {start} – {end}; by {what}")).format(
            start=format_date(report.start, lang=lang, long=True),
            end=format_date(report.end, lang=lang, long=True),
            what=by_label(report.by, lang),
        ),
        new_x="LMARGIN",
        new_y="NEXT",
    )
    pdf.ln(3)
    header, *rows = report.rows(lang)
    widths = (40, 16, 20, 20, 20, 22, 16, 22, 22, 22, 20, 24)
    with pdf.table(col_widths=widths, text_align="LEFT", width=sum(widths)) as table:
        table.row(header)
        for row in rows:
            table.row(row)
    for title, counts in (
        (N_("Close categories (chats)"), close_category_words(report, lang)),
        (N_("Call categories"), category_words(report.call_categories, lang)),
        (N_("Chats per consultant"), report.chats_per_consultant),
    ):
        pdf.ln(3)
        pdf.set_font("DejaVu", "B", 11)
        pdf.cell(0, 7, t(title), new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("DejaVu", "", 9)
        text = ", ".join(f"{k}: {v}" for k, v in counts.items()) or t(N_("none in this period"))
        pdf.multi_cell(0, 5, text, new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)
    pdf.set_font("DejaVu", "B", 11)
    lines = report.rating_lines()
    pdf.cell(0, 7, lines[0].split(":")[0], new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("DejaVu", "", 9)
    for line in lines:
        pdf.multi_cell(0, 5, line.strip(), new_x="LMARGIN", new_y="NEXT")
    return write_private(path, bytes(pdf.output()), replace=replace)
