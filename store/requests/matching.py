"""§4.7 matching: which conversations may be the one the requester means, and whether a linked call can be granted.

Pure functions over rows the repository read: the search window from the requester's hint, the ranking of
candidates, the eligibility of the linked calls, and how each conversation is tied to the requester for a copy.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import Any, Iterable
from zoneinfo import ZoneInfo

from ..clock import from_iso, to_iso
from .model import JUSTIFICATION, NUMBER_MATCH, AccessRequest, Candidate


@dataclass(frozen=True)
class Window:
    """Where to look: around the hinted time (or the whole day), and the whole day widened for the number."""

    start: datetime
    end: datetime
    day_start: datetime
    day_end: datetime
    centre: datetime | None


def window(hint: dict[str, Any], tz: ZoneInfo, minutes: int) -> Window:
    day = date.fromisoformat(hint["date"])
    width = timedelta(minutes=minutes)
    day_start = datetime.combine(day, time(0), tz)
    day_end = day_start + timedelta(days=1)
    if hint.get("time"):
        hh, mm = (int(x) for x in hint["time"].split(":"))
        centre = datetime.combine(day, time(hh, mm), tz)
        return Window(centre - width, centre + width, day_start - width, day_end + width, centre)
    return Window(day_start, day_end, day_start - width, day_end + width, None)


def utc(moment: datetime) -> str:
    return to_iso(moment.astimezone(timezone.utc))


def mask_number(number: str | None) -> str | None:
    """`+48601234567` -> `+48******567`: enough to tell calls apart, not to read the number off the screen."""
    if not number:
        return number
    keep_head = 3 if number.startswith("+") else 0
    if len(number) <= keep_head + 3:
        return "*" * len(number)
    return number[:keep_head] + "*" * (len(number) - keep_head - 3) + number[-3:]


def _number_matches(row: Any, phone: str | None) -> bool:
    return bool(phone) and row["resident_number"] == phone and row["number_identifiable"] == 1


def candidates(
    rows: Iterable[Any],
    request: AccessRequest,
    *,
    masked: bool,
    details: set[int],
    centre: datetime | None,
    linked: set[int],
) -> list[Candidate]:
    """The rows as candidates, those matching by number or detail first, then the nearest to the hinted time."""
    result = []
    for r in rows:
        created = from_iso(r["created_at"])
        result.append(
            Candidate(
                conversation_id=r["id"],
                channel=r["channel"],
                created_at=created,
                ended_at=from_iso(r["ended_at"]) if r["ended_at"] else None,
                resident_number=mask_number(r["resident_number"]) if masked else r["resident_number"],
                number_identifiable=None if r["number_identifiable"] is None else bool(r["number_identifiable"]),
                number_matches=_number_matches(r, request.requester_phone),
                detail_matches=r["id"] in details,
                department=r["department"],
                consultant=r["consultant"],
                duration_s=r["duration_s"],
                minutes_from_hint=None if centre is None else int(abs((created - centre).total_seconds()) // 60),
                linked=r["id"] in linked,
            )
        )
    result.sort(key=lambda c: (not (c.number_matches or c.detail_matches), c.minutes_from_hint or 0, c.created_at))
    return result


def ineligibility(linked: Iterable[Any], requester_phone: str | None) -> str | None:
    """§4.7: why the linked calls cannot be granted, or None when they can."""
    reasons = []
    for c in linked:
        if c["channel"] != "call":
            continue
        if c["number_identifiable"] != 1 or not c["resident_number"]:
            reasons.append(f"the caller's number of call {c['id']} is not identifiable (§4.7)")
        elif c["resident_number"] != requester_phone:
            reasons.append(f"call {c['id']} was made from a number other than the requester's (§4.7)")
    return "; ".join(reasons) or None


def copy_basis(linked: Iterable[Any], requester_phone: str | None) -> dict[int, str]:
    """How each linked conversation is tied to the requester: the §4.7 number match, or it needs a justification."""
    return {
        r["id"]: NUMBER_MATCH if r["channel"] == "call" and _number_matches(r, requester_phone) else JUSTIFICATION
        for r in linked
    }
