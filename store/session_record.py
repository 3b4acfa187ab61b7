"""The §4.6 session record ("protokół odsłuchu" / "protokół odczytu") as a PDF in Polish, signed off by the director.

Kept beside store/letters.py (same bundled DejaVu fonts, same date wording) but apart from the
letters sent to requesters: the record is the office's own minute of the session.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from .letters import DIRECTOR, in_font, polish_date, printable

if TYPE_CHECKING:
    from .seal import Seal

SESSION_RECORD = "session_record"

#: Outcomes of a session the record can state, in the record's words.
SESSION_OUTCOMES = {
    "completed": "odsłuch/odczyt przeprowadzono w całości",
    "interrupted": "odsłuch/odczyt przerwano",
    "requester_absent": "osoba wnioskująca nie stawiła się",
    "refused_identity": "odmówiono udostępnienia: nie potwierdzono tożsamości osoby wnioskującej",
}


@dataclass(frozen=True)
class SessionRecord:
    """What the record of one §4.6 session states; dates are already in the office's time zone."""

    office_name: str
    office_address: str
    reference: str
    channel: str  # "call": protokół odsłuchu; "chat": protokół odczytu
    requester_name: str
    place: str
    scheduled: datetime | None
    started: datetime | None
    ended: datetime | None
    present: tuple[str, ...]  # designated attendees who were there
    absent: tuple[str, ...]  # designated attendees who were not
    others: tuple[str, ...]  # anyone else present, by name
    played: tuple[str, ...]  # one line per recording played or transcript read
    outcome: str
    notes: str
    approved_by: str  # the director's name
    approved_at: datetime


def session_record_title(channel: str) -> str:
    return "Protokół odsłuchu nagrania rozmowy telefonicznej" if channel == "call" else "Protokół odczytu zapisu czatu"


def render_session_record(record: SessionRecord, seal: "Seal | None" = None) -> bytes:
    """The session record as PDF/A-2b bytes (A4, DejaVu Sans embedded), in Polish, with the director's sign-off;
    sealed (PAdES) like the letters when the office's seal is configured. A character the font lacks (a name
    typed in another script) is printed as [U+XXXX], never silently dropped from the minute."""
    from fpdf.enums import WrapMode, XPos, YPos

    from . import pdfa

    title = session_record_title(record.channel)
    pdf = pdfa.document(title=title, author=record.office_name, subject=f"Znak sprawy: {record.reference}")
    pdf.add_page()

    def block(text: str, *, size: float = 11, bold: bool = False, align: str = "L", gap: float = 0) -> None:
        text = in_font(printable(text), bold=bold)
        pdf.set_font("DejaVu", "B" if bold else "", size)
        pdf.multi_cell(
            0,
            size * 0.5,
            text,
            align=align,
            new_x=XPos.LMARGIN,
            new_y=YPos.NEXT,
            wrapmode=WrapMode.CHAR if any(len(w) > 60 for w in text.split()) else WrapMode.WORD,
        )
        if gap:
            pdf.ln(gap)

    def when(moment: datetime | None) -> str:
        return f"{polish_date(moment)}, godz. {moment:%H:%M}" if moment else "—"

    def names(items: tuple[str, ...]) -> str:
        return ", ".join(items) if items else "—"

    block(record.office_name, bold=True)
    block(record.office_address, size=10, gap=6)
    block(f"Znak sprawy: {record.reference}", size=10, gap=8)
    block(title, size=13, bold=True, gap=2)
    block(
        "sporządzony na podstawie § 4 ust. 6 zarządzenia (odsłuch/odczyt w obecności osób wyznaczonych "
        "przez Dyrektora Biura Obsługi Interesantów)",
        size=9,
        gap=5,
    )
    for label, value in (
        ("Osoba wnioskująca", record.requester_name),
        ("Miejsce", record.place or "—"),
        ("Termin wyznaczony", when(record.scheduled)),
        ("Rozpoczęcie", when(record.started)),
        ("Zakończenie", when(record.ended)),
        ("Obecni wyznaczeni pracownicy", names(record.present)),
        ("Nieobecni wyznaczeni pracownicy", names(record.absent)),
        ("Inne osoby obecne", names(record.others)),
    ):
        block(f"{label}: {value}", gap=1.5)
    pdf.ln(2)
    block("Odtworzono / odczytano:", bold=True)
    for line in record.played or ("nie odtworzono ani nie odczytano żadnego materiału",):
        block(f"– {line}", size=10)
    pdf.ln(2)
    block(f"Wynik: {SESSION_OUTCOMES.get(record.outcome, record.outcome or '—')}", gap=1.5)
    if record.notes:
        block(f"Uwagi: {record.notes}", gap=1.5)
    pdf.ln(10)
    block(f"Zatwierdził(a): {record.approved_by}", align="R")
    block(f"{DIRECTOR}, {when(record.approved_at)}", size=10, align="R")
    return pdfa.finish(pdf, seal=seal, reason="Protokół odsłuchu/odczytu (§ 4 ust. 6)")
