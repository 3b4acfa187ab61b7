"""The letters of the request procedure (§4.4, §4.5, GDPR Art. 12(3) and 15) as PDF documents, in Polish.

Rendering is pure (text in, PDF bytes out) so the service can run it in a worker thread; the font
ships inside the package (store/fonts/, DejaVu Sans, Bitstream Vera licence) so every Polish
diacritic is embedded and nothing depends on the host's fonts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path


FONTS_DIR = Path(__file__).with_name("fonts")
FONT_REGULAR = FONTS_DIR / "DejaVuSans.ttf"
FONT_BOLD = FONTS_DIR / "DejaVuSans-Bold.ttf"

GRANT, REFUSAL, EXTENSION, COPY = "grant", "refusal", "extension", "copy"
KINDS = (GRANT, REFUSAL, EXTENSION, COPY)

_MONTHS_GENITIVE = ("stycznia", "lutego", "marca", "kwietnia", "maja", "czerwca", "lipca", "sierpnia",
                    "września", "października", "listopada", "grudnia")

DIRECTOR = "Dyrektor Biura Obsługi Interesantów"
DPO = "Inspektor Ochrony Danych"

#: The information on legal remedies every refusal carries (§4.5; GDPR Art. 12(4), 77 and 79).
REMEDIES = (
    "Pouczenie: przysługuje Pani/Panu prawo wniesienia skargi do Prezesa Urzędu Ochrony Danych "
    "Osobowych (ul. Stawki 2, 00-193 Warszawa), gdy uzna Pani/Pan, że przetwarzanie danych osobowych "
    "narusza przepisy rozporządzenia Parlamentu Europejskiego i Rady (UE) 2016/679 (art. 77 RODO), "
    "a także prawo do skutecznego środka ochrony prawnej przed sądem (art. 79 RODO)."
)


def polish_date(day: date | datetime) -> str:
    """`2 marca 2026 r.`"""
    return f"{day.day} {_MONTHS_GENITIVE[day.month - 1]} {day.year} r."


@dataclass(frozen=True)
class Letter:
    """Everything printed on one letter."""

    kind: str
    office_name: str
    office_address: str
    reference: str
    dated: date
    addressee_name: str
    addressee_address: str
    title: str
    paragraphs: tuple[str, ...]
    signature: str
    attachments: tuple[str, ...] = field(default=())


def _subject(channel: str) -> str:
    return "nagrania rozmowy telefonicznej" if channel == "call" else "zapisu czatu"


def grant_letter(*, office_name: str, office_address: str, ordinance: str, reference: str, dated: date,
                 name: str, address: str, received_on: date, channel: str, session_local: datetime,
                 place: str, attendees: list[str]) -> Letter:
    """§4.4: the director's decision to grant, with the date, time and place of the session (§4.6 attendees)."""
    action = "odsłuch nagrania" if channel == "call" else "odczyt zapisu czatu"
    return Letter(
        kind=GRANT, office_name=office_name, office_address=office_address, reference=reference, dated=dated,
        addressee_name=name, addressee_address=address,
        title=f"Zawiadomienie o udostępnieniu {_subject(channel)}",
        paragraphs=(
            f"Uprzejmie informuję, że na podstawie § 4 ust. 3 i 4 {ordinance} {DIRECTOR} po uzyskaniu "
            f"opinii Inspektora Ochrony Danych oraz dyrektora właściwej komórki organizacyjnej podjął "
            f"decyzję o udostępnieniu {_subject(channel)}, o które wnioskowała Pani/wnioskował Pan "
            f"w dniu {polish_date(received_on)}",
            f"Termin: {polish_date(session_local)}, godz. {session_local:%H:%M}.",
            f"Miejsce: {place}.",
            f"Na podstawie § 4 ust. 6 zarządzenia {action} odbędzie się w obecności osób wyznaczonych "
            f"przez {DIRECTOR.replace('Dyrektor', 'Dyrektora')}: {', '.join(attendees)}.",
            "Prosimy o zabranie dokumentu potwierdzającego tożsamość.",
        ),
        signature=DIRECTOR,
    )


def refusal_letter(*, office_name: str, office_address: str, ordinance: str, reference: str, dated: date,
                   name: str, address: str, received_on: date, channel: str, reasons: str,
                   kind: str = "access") -> Letter:
    """§4.5: the written refusal with its reasons and the information on the right to complain and to a court."""
    if kind == "copy":
        decision = ("odmowie wydania kopii danych osobowych (art. 15 ust. 3 RODO) w postaci "
                    f"{_subject(channel)}")
        basis, signer = "art. 12 i 15 RODO", DPO
    else:
        decision = f"odmowie udostępnienia {_subject(channel)}"
        basis, signer = f"§ 4 ust. 3 i 5 {ordinance}", DIRECTOR
    return Letter(
        kind=REFUSAL, office_name=office_name, office_address=office_address, reference=reference, dated=dated,
        addressee_name=name, addressee_address=address,
        title="Odmowa udostępnienia" if kind != "copy" else "Odmowa wydania kopii danych",
        paragraphs=(
            f"Uprzejmie informuję, że na podstawie {basis} w odpowiedzi na wniosek z dnia "
            f"{polish_date(received_on)} podjęto decyzję o {decision}.",
            f"Uzasadnienie: {reasons}",
            REMEDIES,
        ),
        signature=signer,
    )


def extension_letter(*, office_name: str, office_address: str, reference: str, dated: date, name: str,
                     address: str, received_on: date, due_on: date, extended_until: date, reasons: str,
                     kind: str = "access") -> Letter:
    """GDPR Art. 12(3): the notice that the answer is extended, with the reasons for the delay."""
    return Letter(
        kind=EXTENSION, office_name=office_name, office_address=office_address, reference=reference,
        dated=dated, addressee_name=name, addressee_address=address,
        title="Zawiadomienie o przedłużeniu terminu",
        paragraphs=(
            f"Uprzejmie informuję, że na podstawie art. 12 ust. 3 rozporządzenia Parlamentu Europejskiego "
            f"i Rady (UE) 2016/679 (RODO) termin udzielenia odpowiedzi na wniosek z dnia "
            f"{polish_date(received_on)}, przypadający na dzień {polish_date(due_on)}, zostaje przedłużony "
            f"do dnia {polish_date(extended_until)}.",
            f"Przyczyny opóźnienia: {reasons}",
        ),
        signature=DPO if kind == "copy" else DIRECTOR,
    )


def copy_letter(*, office_name: str, office_address: str, reference: str, dated: date, name: str,
                address: str, received_on: date, files: list[tuple[str, str]]) -> Letter:
    """GDPR Art. 15(3): the cover letter of an exported copy, listing each file with its SHA-256."""
    return Letter(
        kind=COPY, office_name=office_name, office_address=office_address, reference=reference, dated=dated,
        addressee_name=name, addressee_address=address,
        title="Kopia danych osobowych (art. 15 ust. 3 RODO)",
        paragraphs=(
            f"W odpowiedzi na wniosek z dnia {polish_date(received_on)} przekazuję kopię danych osobowych "
            f"podlegających przetwarzaniu, zgodnie z art. 15 ust. 3 RODO. Sumy kontrolne SHA-256 "
            f"pozwalają sprawdzić, że pliki nie zostały zmienione.",
        ),
        attachments=tuple(f"{fname} — SHA-256 {digest}" for fname, digest in files),
        signature=DPO,
    )


_UNPRINTABLE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    """Text as a letter may print it: control characters and bidirectional overrides removed, tabs as spaces."""
    return _UNPRINTABLE.sub(lambda m: " " if m.group() in "\t\r" else "", text)


def render(letter: Letter) -> bytes:
    """The letter as PDF bytes (A4, DejaVu Sans embedded; long names, addresses and words wrap)."""
    # fpdf is imported here, not at module level: it costs ~0.4 s, and every `cim tui` start imports this module
    # through store (bench/: TUI start-up), while only a letter needs it.
    from fpdf import FPDF
    from fpdf.enums import XPos, YPos

    pdf = FPDF(format="A4")
    pdf.set_margins(20, 20, 20)
    pdf.set_auto_page_break(True, margin=20)
    pdf.set_title(letter.title)
    pdf.set_author(letter.office_name)
    pdf.set_creator("CIM")
    pdf.add_font("DejaVu", "", str(FONT_REGULAR))
    pdf.add_font("DejaVu", "B", str(FONT_BOLD))
    pdf.add_page()

    def block(text: str, *, size: float = 11, bold: bool = False, align: str = "L", gap: float = 0) -> None:
        text = printable(text)
        pdf.set_font("DejaVu", "B" if bold else "", size)
        # wrapmode CHAR breaks words longer than the line (a pasted address without spaces)
        pdf.multi_cell(0, size * 0.5, text, align=align, new_x=XPos.LMARGIN, new_y=YPos.NEXT,
                       wrapmode="CHAR" if any(len(w) > 60 for w in text.split()) else "WORD")
        if gap:
            pdf.ln(gap)

    block(letter.office_name, bold=True)
    block(letter.office_address, size=10, gap=6)
    city = re.search(r"\d\d-\d\d\d\s+([^,]+)$", letter.office_address.strip())
    block(f"{city.group(1) + ', ' if city else ''}dnia {polish_date(letter.dated)}", size=10, align="R")
    block(f"Znak sprawy: {letter.reference}", size=10, gap=8)
    block(letter.addressee_name, bold=True)
    block(letter.addressee_address, gap=10)
    block(letter.title, size=13, bold=True, gap=4)
    for paragraph in letter.paragraphs:
        block(paragraph, gap=3)
    if letter.attachments:
        block("Załączniki:", bold=True)
        for line in letter.attachments:
            block(f"– {line}", size=9)
    pdf.ln(12)
    block(letter.signature, align="R")
    return bytes(pdf.output())
