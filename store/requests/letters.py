"""The request's letters and the session record: what they say besides the letter texts (store/letters.py),
and how their PDFs are named and written next to the register."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any, Iterable
from zoneinfo import ZoneInfo

from .. import letters as L
from ..clock import from_iso
from ..settings import Settings, case_mark
from .model import AccessRequest


@dataclass(frozen=True)
class RenderedLetter:
    pdf: bytes
    #: the seal certificate's subject when the letter is sealed, else None
    sealed_by: str | None


def delivery_line(request: AccessRequest) -> str:
    """The delivery route printed under the address; nothing for a letter by post (the address says it)."""
    if request.delivery == "e_doreczenia":
        return f"Doręczenie elektroniczne (e-Doręczenia) na adres: {request.requester_email}"
    if request.delivery == "email":
        return f"Doręczenie pocztą elektroniczną na adres: {request.requester_email}"
    # "epuap" (older records): ePUAP is no longer a route for public bodies, so the letter goes by post
    if request.delivery == "in_person":
        return "Odbiór osobisty w urzędzie"
    return ""


def common(settings: Settings, request: AccessRequest, today: date) -> dict[str, Any]:
    """What every letter of the request carries: the office, the case mark, the date, the requester."""
    return {
        "office_name": settings.office_name,
        "office_address": settings.office_address,
        "reference": case_mark(settings.case_mark, request.number),
        "dated": today,
        "name": request.requester_name,
        "address": request.requester_address,
    }


def signed(letter: L.Letter, request: AccessRequest, signer: Any, anchor: str) -> L.Letter:
    """The letter signed by `signer` (name and title from their account), with the audit anchor in its footer."""
    return dataclasses.replace(
        letter,
        audit_anchor=anchor,
        signatory=(signer["full_name"] if signer else "").strip(),
        signature=(signer["job_title"] if signer else "").strip() or letter.signature,
        delivery_line=delivery_line(request),
    )


def relative_path(number: str, count: int, kind: str) -> str:
    """Where the request's next letter goes under the letters folder: <year>/CIM-<year>-<nnnn>-<nn>-<kind>.pdf."""
    return f"{number[4:8]}/{number.replace('/', '-')}-{count + 1:02d}-{kind}.pdf"


def write_private(path: Path, data: bytes) -> None:
    """Blocking: a new file only its owner reads, flushed to disk."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def played_lines(rows: Iterable[Any], tz: ZoneInfo) -> list[str]:
    """The session record's list of what was opened or played (from the audit rows repository.played reads)."""
    lines: list[str] = []
    heard: set[str] = set()
    for r in rows:
        at = from_iso(r["at"]).astimezone(tz)
        is_call = r["channel"] == "call"
        began = from_iso(r["created_at"]).astimezone(tz) if r["created_at"] else None
        what = f"{'nagranie rozmowy telefonicznej' if is_call else 'zapis czatu'} nr {r['target_id']}" + (
            f" z {L.polish_date(began)}, godz. {began:%H:%M}" if began else ""
        )
        if r["action"] == "requests.session_playback":
            verb = "otwarto do odsłuchu" if is_call else "odczytano"
            lines.append(f"{what} — {verb} o godz. {at:%H:%M} ({r['actor_name']})")
        elif r["target_id"] not in heard:
            heard.add(r["target_id"])
            lines.append(f"{what} — odtworzono w przeglądarce od godz. {at:%H:%M:%S} ({r['actor_name']})")
    return lines


def local(moment: datetime | None, tz: ZoneInfo) -> datetime | None:
    return moment.astimezone(tz) if moment else None
