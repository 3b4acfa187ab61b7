"""Opening hours of the chat: a weekly schedule in the office's time zone with Polish public holidays."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .errors import ConfigError
from .i18n import N_

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_DAY_NAMES = {
    "pl": ("poniedziałek", "wtorek", "środa", "czwartek", "piątek", "sobota", "niedziela"),
    "en": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
}
_RANGE = re.compile(r"^(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})$")


def easter_sunday(year: int) -> date:
    """Western (Gregorian) Easter Sunday: the anonymous Gregorian algorithm (Meeus/Jones/Butcher)."""
    a, b, c = year % 19, year // 100, year % 100
    d, e = b // 4, b % 4
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = c // 4, c % 4
    l = (32 + 2 * e + 2 * i - h - k) % 7  # noqa: E741 - the algorithm's own name
    m = (a + 11 * h + 22 * l) // 451
    month = (h + l - 7 * m + 114) // 31
    day = (h + l - 7 * m + 114) % 31 + 1
    return date(year, month, day)


@lru_cache(maxsize=64)
def polish_public_holidays(year: int) -> frozenset[date]:
    """Statutory days off work in Poland (ustawa o dniach wolnych od pracy), incl. Easter-based ones."""
    easter = easter_sunday(year)
    days = {
        date(year, 1, 1),  # Nowy Rok
        date(year, 1, 6),  # Trzech Króli
        easter,  # Wielkanoc
        easter + timedelta(days=1),  # Poniedziałek Wielkanocny
        date(year, 5, 1),  # Święto Pracy
        date(year, 5, 3),  # Święto Konstytucji 3 Maja
        easter + timedelta(days=49),  # Zielone Świątki (Pentecost)
        easter + timedelta(days=60),  # Boże Ciało (Corpus Christi)
        date(year, 8, 15),  # Wniebowzięcie NMP
        date(year, 11, 1),  # Wszystkich Świętych
        date(year, 11, 11),  # Narodowe Święto Niepodległości
        date(year, 12, 25),
        date(year, 12, 26),
    }
    if year >= 2025:  # Wigilia is a day off since the 2024 amendment of the act
        days.add(date(year, 12, 24))
    return frozenset(days)


@dataclass(frozen=True)
class OpeningHours:
    """When the chat is staffed. `ranges[weekday]` lists (start, end) local times; Monday is 0."""

    spec: str
    always: bool
    ranges: tuple[tuple[tuple[time, time], ...], ...]
    holidays_closed: bool
    tz: ZoneInfo

    @classmethod
    def parse(cls, spec: str, timezone: str = "Europe/Warsaw") -> "OpeningHours":
        """Parse `always` or e.g. `mon 07:30-18:00; tue-fri 07:30-15:30; sat closed; holidays closed`."""
        try:
            tz = ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError(N_("unknown time zone {timezone!r}"), timezone=timezone) from None
        text = spec.strip().lower()
        if text == "always":
            return cls(spec, True, tuple(() for _ in DAYS), False, tz)
        ranges: list[list[tuple[time, time]]] = [[] for _ in DAYS]
        holidays_closed = True
        for clause in filter(None, (c.strip() for c in text.split(";"))):
            head, _, rest = clause.partition(" ")
            rest = rest.strip()
            if head == "holidays":
                if rest not in ("closed", "open"):
                    raise ConfigError(
                        N_("opening hours: 'holidays' must be followed by closed or open, not {rest!r}"), rest=rest
                    )
                holidays_closed = rest == "closed"
                continue
            days = _parse_days(head)
            if rest == "closed":
                for d in days:
                    ranges[d] = []
                continue
            if not rest:
                raise ConfigError(
                    N_("opening hours: {clause!r} has no hours (e.g. 'mon 07:30-18:00' or 'sat closed')"), clause=clause
                )
            for part in rest.replace(" ", "").split(","):
                span = _parse_range(part)
                for d in days:
                    ranges[d].append(span)
        if not any(ranges):
            raise ConfigError(
                N_("opening hours {spec!r} never open; give hours such as 'mon-fri 08:00-16:00', or 'always'"),
                spec=spec,
            )
        return cls(spec, False, tuple(tuple(sorted(r)) for r in ranges), holidays_closed, tz)

    def is_open(self, now: datetime) -> bool:
        """Whether the chat is open at the aware moment `now`."""
        if self.always:
            return True
        local = now.astimezone(self.tz)
        if self.holidays_closed and local.date() in polish_public_holidays(local.year):
            return False
        moment = local.time().replace(tzinfo=None)
        return any(start <= moment < end for start, end in self.ranges[local.weekday()])

    def describe(self, lang: str = "pl") -> str:
        """The schedule for people, e.g. 'poniedziałek 07:30–18:00; wtorek–piątek 07:30–15:30'."""
        if self.always:
            return "całą dobę" if lang == "pl" else "around the clock"
        names = _DAY_NAMES.get(lang, _DAY_NAMES["en"])
        groups: list[tuple[int, int, tuple]] = []
        for index, spans in enumerate(self.ranges):
            if groups and groups[-1][2] == spans and groups[-1][1] == index - 1:
                groups[-1] = (groups[-1][0], index, spans)
            else:
                groups.append((index, index, spans))
        parts = []
        for first, last, spans in groups:
            if not spans:
                continue
            days = names[first] if first == last else f"{names[first]}–{names[last]}"
            hours = ", ".join(f"{a:%H:%M}–{b:%H:%M}" for a, b in spans)
            parts.append(f"{days} {hours}")
        if self.holidays_closed:
            parts.append("z wyjątkiem świąt" if lang == "pl" else "except public holidays")
        return "; ".join(parts) if parts else ("nieczynne" if lang == "pl" else "closed")


def _parse_days(text: str) -> list[int]:
    first, sep, last = text.partition("-")
    if first not in DAYS or (sep and last not in DAYS):
        raise ConfigError(N_("opening hours: {text!r} is not a day or day range such as mon or tue-fri"), text=text)
    a, b = DAYS.index(first), DAYS.index(last) if sep else DAYS.index(first)
    if b < a:
        raise ConfigError(N_("opening hours: the day range {text!r} runs backwards"), text=text)
    return list(range(a, b + 1))


def _parse_range(text: str) -> tuple[time, time]:
    match = _RANGE.match(text)
    if not match:
        raise ConfigError(N_("opening hours: {text!r} is not a time range such as 07:30-15:30"), text=text)
    h1, m1, h2, m2 = map(int, match.groups())
    if h1 > 23 or m1 > 59 or m2 > 59 or not (h2 < 24 or (h2 == 24 and m2 == 0)):
        raise ConfigError(N_("opening hours: {text!r} is not a valid time range"), text=text)
    start = time(h1, m1)
    end = time.max if h2 == 24 else time(h2, m2)
    if end <= start:
        raise ConfigError(N_("opening hours: {text!r} ends before it starts"), text=text)
    return start, end
