"""Opening hours: the schedule grammar, Europe/Warsaw time and Polish public holidays (incl. Easter-based ones)."""

from __future__ import annotations

from datetime import date, datetime, timezone
from zoneinfo import ZoneInfo

import pytest

from store.errors import ConfigError
from store.opening_hours import OpeningHours, easter_sunday, polish_public_holidays
from store.settings import DEFAULT_OPENING_HOURS

WARSAW = ZoneInfo("Europe/Warsaw")


def local(*args: int) -> datetime:
    return datetime(*args, tzinfo=WARSAW)


@pytest.mark.parametrize(
    "spec",
    [
        "",
        "mon",
        "mon 7:30",
        "mon 07:30-",
        "funday 08:00-16:00",
        "mon 18:00-07:30",
        "mon 25:00-26:00",
        "mon 08:60-09:00",
        "fri-mon 08:00-10:00",
        "holidays maybe",
        "mon 08:00-16:00; holidays",
        "mon-08:00-16:00",
        "holidays closed",
        "mon-sun closed",
    ],
)
def test_malformed_schedules_fail_loudly(spec):
    with pytest.raises(ConfigError):
        OpeningHours.parse(spec)


def test_unknown_time_zone_fails_loudly():
    with pytest.raises(ConfigError):
        OpeningHours.parse("always", "Mars/Olympus")


def test_easter_dates():
    assert [easter_sunday(y) for y in (2024, 2025, 2026, 2027, 2038)] == [
        date(2024, 3, 31),
        date(2025, 4, 20),
        date(2026, 4, 5),
        date(2027, 3, 28),
        date(2038, 4, 25),
    ]


def test_polish_public_holidays_2027():
    assert sorted(polish_public_holidays(2027)) == [
        date(2027, 1, 1),
        date(2027, 1, 6),
        date(2027, 3, 28),
        date(2027, 3, 29),
        date(2027, 5, 1),
        date(2027, 5, 3),
        date(2027, 5, 16),
        date(2027, 5, 27),
        date(2027, 8, 15),
        date(2027, 11, 1),
        date(2027, 11, 11),
        date(2027, 12, 24),
        date(2027, 12, 25),
        date(2027, 12, 26),
    ]
    assert date(2024, 12, 24) not in polish_public_holidays(2024)  # a day off only since 2025


def test_default_schedule_in_warsaw_time():
    hours = OpeningHours.parse(DEFAULT_OPENING_HOURS)
    # Monday 2 March 2026: 07:30-18:00 local (CET, UTC+1)
    assert not hours.is_open(local(2026, 3, 2, 7, 29))
    assert hours.is_open(local(2026, 3, 2, 7, 30))
    assert hours.is_open(local(2026, 3, 2, 17, 59))
    assert not hours.is_open(local(2026, 3, 2, 18, 0))
    # the same instant in UTC: 06:45 UTC is 07:45 in Warsaw
    assert hours.is_open(datetime(2026, 3, 2, 6, 45, tzinfo=timezone.utc))
    # Tuesday to Friday until 15:30
    assert hours.is_open(local(2026, 3, 3, 15, 29)) and not hours.is_open(local(2026, 3, 3, 15, 30))
    assert hours.is_open(local(2026, 3, 6, 8, 0))
    # weekends closed
    assert not hours.is_open(local(2026, 3, 7, 10, 0)) and not hours.is_open(local(2026, 3, 8, 10, 0))
    # summer time (CEST, UTC+2): Monday 6 July 2026 07:30 local is 05:30 UTC
    assert hours.is_open(datetime(2026, 7, 6, 5, 30, tzinfo=timezone.utc))
    assert not hours.is_open(datetime(2026, 7, 6, 5, 29, tzinfo=timezone.utc))


def test_holidays_are_closed_even_on_working_days():
    hours = OpeningHours.parse(DEFAULT_OPENING_HOURS)
    assert not hours.is_open(local(2027, 3, 29, 10, 0))  # Easter Monday 2027
    assert hours.is_open(local(2027, 3, 30, 10, 0))  # the Tuesday after
    assert not hours.is_open(local(2027, 5, 3, 10, 0))  # 3 May 2027, a Monday
    assert not hours.is_open(local(2027, 5, 27, 10, 0))  # Corpus Christi 2027, a Thursday
    assert not hours.is_open(local(2026, 11, 11, 10, 0))
    assert OpeningHours.parse("mon-fri 08:00-16:00; holidays open").is_open(local(2027, 3, 29, 10, 0))


def test_always_is_always_open():
    hours = OpeningHours.parse("always")
    assert hours.is_open(local(2027, 12, 25, 3, 0))
    assert hours.describe("en") == "around the clock"


def test_several_ranges_a_day_and_closed_days():
    hours = OpeningHours.parse("mon-fri 08:00-12:00, 13:00-16:00; wed closed; sat 09:00-24:00")
    assert hours.is_open(local(2026, 3, 2, 11, 59)) and not hours.is_open(local(2026, 3, 2, 12, 30))
    assert hours.is_open(local(2026, 3, 2, 13, 0))
    assert not hours.is_open(local(2026, 3, 4, 10, 0))  # Wednesday closed
    assert hours.is_open(local(2026, 3, 7, 23, 59))


def test_describe_for_people():
    hours = OpeningHours.parse(DEFAULT_OPENING_HOURS)
    assert hours.describe("pl") == "poniedziałek 07:30–18:00; wtorek–piątek 07:30–15:30; z wyjątkiem świąt"
    assert hours.describe("en") == "Monday 07:30–18:00; Tuesday–Friday 07:30–15:30; except public holidays"
