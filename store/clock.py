"""Time for the store: one injectable clock so tests can move time without patching."""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Callable

from .errors import ConfigError
from .i18n import N_

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    return datetime.now(timezone.utc)


def to_iso(moment: datetime) -> str:
    """UTC ISO 8601 with microseconds: sorts as text, which the indexes rely on."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime given to the store")
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


#: Exactly what to_iso writes; anything else goes through strptime, which says what is wrong with it.
_STORED_ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z\Z")


def from_iso(text: str) -> datetime:
    # fromisoformat is ~10x faster than strptime, which was half of an archive search's own time: a page
    # of 50 rows parses 100 of these (bench/). The pattern keeps the accepted format exactly to_iso's.
    if isinstance(text, str) and _STORED_ISO.match(text):
        return datetime.fromisoformat(text)
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)


class ManualClock:
    """A clock that stands still until told to move (tests, benchmarks, replays)."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> None:
        self.now += timedelta(**kwargs)


_DURATION = re.compile(
    r"^P(?!$)(?:(?P<years>\d+)Y)?(?:(?P<months>\d+)M)?(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?"
    r"(?:T(?=\d)(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+)S)?)?$"
)


@dataclass(frozen=True)
class Duration:
    """An ISO 8601 duration split into calendar months and an exact remainder."""

    months: int
    exact: timedelta
    text: str

    @classmethod
    def parse(cls, text: str) -> "Duration":
        match = _DURATION.match(text.strip().upper())
        if not match:
            raise ConfigError(N_("{text!r} is not an ISO 8601 duration such as P6M, P3M or PT0S"), text=text)
        part = {k: int(v or 0) for k, v in match.groupdict().items()}
        return cls(
            months=part["years"] * 12 + part["months"],
            exact=timedelta(
                weeks=part["weeks"],
                days=part["days"],
                hours=part["hours"],
                minutes=part["minutes"],
                seconds=part["seconds"],
            ),
            text=text.strip().upper(),
        )

    def after(self, moment: datetime) -> datetime:
        """moment + this duration; calendar months clamp to the month's last day (31 Aug + P6M = 28/29 Feb)."""
        return add_months(moment, self.months) + self.exact


def add_months(moment: datetime, months: int) -> datetime:
    index = moment.month - 1 + months
    year, month = moment.year + index // 12, index % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


def add_months_to_date(day: date, months: int) -> date:
    index = day.month - 1 + months
    year, month = day.year + index // 12, index % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))
