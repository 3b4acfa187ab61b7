"""The §4.2 annex form: its fields in order (the register's form follows them) and a printable blank PDF.

The annex of ordinance 308/18 is the form a resident fills in to ask for a recording or a chat record
(§4.2). Its fields, in its order: who asks (name, address, contact), which call or chat (channel, date and
time, the number the call came from or the chat's reference, and the chat's code from its receipt), why —
the "exceptional and justified case" of §4.1 — and how the answer is to reach them.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from .files import write_private


@dataclass(frozen=True)
class AnnexField:
    """One field of the annex: the register's field id(s) and the Polish label printed on the form."""

    section: str
    label: str
    register_fields: tuple[str, ...]
    lines: int = 1


SECTIONS = (
    "1. Dane osoby wnioskującej",
    "2. Rozmowa telefoniczna lub czat, którego dotyczy wniosek",
    "3. Uzasadnienie",
    "4. Sposób udzielenia odpowiedzi",
)

#: The annex's fields in its order; `register_fields` name the register form's fields (tui/screens/requests.py).
ANNEX_FIELDS: tuple[AnnexField, ...] = (
    AnnexField(SECTIONS[0], "Imię i nazwisko", ("requester_name",)),
    AnnexField(SECTIONS[0], "Adres do korespondencji", ("requester_address",), lines=2),
    AnnexField(SECTIONS[0], "Telefon", ("requester_phone",)),
    AnnexField(SECTIONS[0], "Adres e-mail lub adres do e-Doręczeń", ("requester_email",)),
    AnnexField(SECTIONS[1], "Rodzaj: rozmowa telefoniczna / czat (właściwe podkreślić)", ("channel",)),
    AnnexField(SECTIONS[1], "Data i przybliżona godzina rozmowy lub czatu", ("date", "time")),
    AnnexField(
        SECTIONS[1],
        "Numer telefonu, z którego dzwoniono, albo numer czatu (CZ-RRRR-MM-DD-XXXX)",
        ("conversation_reference",),
    ),
    AnnexField(SECTIONS[1], "Kod z potwierdzenia czatu (jeżeli go posiadam)", ("receipt_secret",)),
    AnnexField(
        SECTIONS[2],
        "Wyjątkowy i uzasadniony przypadek, z powodu którego proszę o udostępnienie (§ 4 ust. 1)",
        ("justification",),
        lines=4,
    ),
    AnnexField(
        SECTIONS[3],
        "Odpowiedź proszę przekazać: listownie na adres powyżej / e-mailem / przez "
        "e-Doręczenia / odbiorę osobiście (właściwe podkreślić)",
        ("delivery",),
    ),
)


def annex_order() -> list[str]:
    """The register form's field ids the annex names, in the annex's order."""
    return [name for f in ANNEX_FIELDS for name in f.register_fields]


def blank_form_pdf(office_name: str, office_address: str) -> bytes:
    """The annex as a printable blank form (A4, PDF/A-2b, DejaVu Sans embedded), in Polish."""
    from fpdf.enums import XPos, YPos

    from . import pdfa

    title = "Wniosek o udostępnienie nagrania połączenia telefonicznego lub zapisu czatu"
    pdf = pdfa.document(title=title, author=office_name, subject="Załącznik do zarządzenia nr 308/18")
    pdf.set_margins(18, 14, 18)
    pdf.set_auto_page_break(True, margin=12)  # one sheet of paper
    pdf.add_page()
    width = pdf.w - pdf.l_margin - pdf.r_margin

    def text(value: str, size: float = 10, bold: bool = False, align: str = "L", gap: float = 0) -> None:
        pdf.set_font("DejaVu", "B" if bold else "", size)
        pdf.multi_cell(0, size * 0.5, value, align=align, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        if gap:
            pdf.ln(gap)

    def blank_lines(count: int) -> None:
        for _ in range(count):
            pdf.ln(5.5)
            y = pdf.get_y()
            pdf.line(pdf.l_margin, y, pdf.l_margin + width, y)
        pdf.ln(2)

    text(
        "Załącznik do zarządzenia nr 308/18 Prezydenta Miasta Szczecin z dnia 13 lipca 2018 r.",
        size=8,
        align="R",
        gap=4,
    )
    text("................................, dnia ..........................", size=9, align="R", gap=4)
    text(office_name, bold=True)
    text(office_address, size=9, gap=6)
    text(title, size=13, bold=True, align="C", gap=2)
    text(
        "(§ 4 ust. 2 zarządzenia; odsłuchanie nagrania lub odczytanie zapisu czatu jest możliwe tylko w wyjątkowych "
        "i uzasadnionych przypadkach, przez osoby, które przeprowadziły rozmowę lub czat — § 4 ust. 1)",
        size=8,
        align="C",
        gap=4,
    )
    section = ""
    for field in ANNEX_FIELDS:
        if field.section != section:
            section = field.section
            pdf.ln(2)
            text(section, size=11, bold=True)
        text(field.label, size=9)
        blank_lines(field.lines)
    pdf.ln(6)
    text("................................................", align="R")
    text("czytelny podpis osoby wnioskującej", size=8, align="R", gap=6)
    text(
        "Odsłuchanie nagrania połączenia telefonicznego jest możliwe wyłącznie wtedy, gdy numer telefonu osoby "
        "dzwoniącej jest możliwy do zidentyfikowania (§ 4 ust. 7).",
        size=8,
    )
    return pdfa.finish(pdf)


async def write_blank_form(path: Path, office_name: str, office_address: str, *, replace: bool = False) -> Path:
    """Write the blank annex form to `path` (0600; an existing file only with `replace`)."""
    data = await asyncio.to_thread(blank_form_pdf, office_name, office_address)
    return await asyncio.to_thread(write_private, Path(path), data, replace=replace)
