"""The letters of the request procedure (§4.4, §4.5, GDPR Art. 12(3) and 15) as PDF documents, in Polish.

Rendering is pure (text in, PDF bytes out) so the service can run it in a worker thread; the font
ships inside the package (store/fonts/, DejaVu Sans, Bitstream Vera licence) so every Polish
diacritic is embedded and nothing depends on the host's fonts. Every letter is PDF/A-2b and, when the
office's seal is configured, sealed (PAdES): store/pdfa.py starts and finishes the document.

Where the register does not say how the requester is addressed (`form` None), the text uses
gender-neutral wording instead of "Pani/Pan" slashes.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from . import pdfa
from .errors import InvalidInput
from .i18n import N_
from .pdfa import FONT_BOLD, FONT_REGULAR, FONTS_DIR  # noqa: F401  (where the fonts are, for callers and tests)

if TYPE_CHECKING:
    from .seal import Seal

GRANT, REFUSAL, EXTENSION, COPY = "grant", "refusal", "extension", "copy"
KINDS = (GRANT, REFUSAL, EXTENSION, COPY)

_MONTHS_GENITIVE = (
    "stycznia",
    "lutego",
    "marca",
    "kwietnia",
    "maja",
    "czerwca",
    "lipca",
    "sierpnia",
    "września",
    "października",
    "listopada",
    "grudnia",
)

DIRECTOR = "Dyrektor Biura Obsługi Interesantów"
DPO = "Inspektor Ochrony Danych"
#: How the register says the requester is addressed; None = it does not say (gender-neutral text).
FORMS = ("pani", "pan")
FOR_CONTROLLER = "Z upoważnienia administratora danych"

SEALED_NOTE = (
    "Pismo opatrzone pieczęcią elektroniczną urzędu ({subject}); jego autentyczność i integralność "
    "można sprawdzić w każdym programie weryfikującym podpisy PAdES."
)
UNSEALED_NOTE = "Pismo nie jest opatrzone pieczęcią elektroniczną; ważne z podpisem własnoręcznym."


def remedies(form: str | None = None) -> str:
    """The information on legal remedies every refusal carries (§4.5; GDPR Art. 12(4), 77 and 79)."""
    if form == "pani":
        who, thinks = "przysługuje Pani", "gdy uzna Pani"
    elif form == "pan":
        who, thinks = "przysługuje Panu", "gdy uzna Pan"
    else:
        who, thinks = "osobie, której dane dotyczą, przysługuje", "gdy uzna"
    return (
        f"Pouczenie: {who} prawo wniesienia skargi do Prezesa Urzędu Ochrony Danych Osobowych "
        f"(ul. Stawki 2, 00-193 Warszawa), {thinks}, że przetwarzanie danych osobowych narusza przepisy "
        "rozporządzenia Parlamentu Europejskiego i Rady (UE) 2016/679 (art. 77 RODO), a także prawo do "
        "skutecznego środka ochrony prawnej przed sądem (art. 79 RODO)."
    )


#: The remedies in gender-neutral wording (kept as a constant for callers that print it alone).
REMEDIES = remedies()


def greeting(form: str | None) -> str:
    """`Szanowna Pani,` / `Szanowny Panie,`; nothing when the register does not say (no guessed form)."""
    return {"pani": "Szanowna Pani,", "pan": "Szanowny Panie,"}.get(form or "", "")


def polish_months(months: int) -> str:
    """`1 miesiąc`, `3 miesiące`, `6 miesięcy`, `12 miesięcy`, `22 miesiące`."""
    if months == 1:
        return "1 miesiąc"
    if months % 10 in (2, 3, 4) and months % 100 not in (12, 13, 14):
        return f"{months} miesiące"
    return f"{months} miesięcy"


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
    #: the signatory's title (the role when the account has none)
    signature: str
    attachments: tuple[str, ...] = field(default=())
    #: The audit chain head when the letter was made, printed small in the footer (docs/SECURITY.md).
    audit_anchor: str = ""
    #: the signatory's full name, from their account (empty: the title alone is printed)
    signatory: str = ""
    #: a line above the signatory, e.g. FOR_CONTROLLER
    on_behalf: str = ""
    #: how the letter is delivered, printed under the address (e-Doręczenia, e-mail, in person)
    delivery_line: str = ""
    #: `Szanowna Pani,` or nothing
    greeting: str = ""


def _subject(channel: str) -> str:
    return "nagrania rozmowy telefonicznej" if channel == "call" else "zapisu czatu"


def concerned(conversations: list[tuple[str, datetime]]) -> str:
    """`Dotyczy: rozmowy telefonicznej z dnia 2 marca 2026 r., godz. 10:15.` (local times; one or more)."""
    parts = [
        f"{'rozmowy telefonicznej' if channel == 'call' else 'czatu'} z dnia {polish_date(at)}, godz. {at:%H:%M}"
        for channel, at in conversations
    ]
    return f"Dotyczy: {'; '.join(parts)}." if parts else ""


def _categories(channels: set[str]) -> str:
    """GDPR Art. 15(1)(b) for the channels of the copy (both when none is known)."""
    call = "numer telefonu, data, godzina i czas trwania rozmowy oraz nagranie głosu (rozmowa telefoniczna)"
    chat = "data i godzina czatu, treść wiadomości oraz dane podane w czacie (czat)"
    if channels == {"call"}:
        return call
    if channels == {"chat"}:
        return chat
    return f"{call}; {chat}"


def grant_letter(
    *,
    office_name: str,
    office_address: str,
    ordinance: str,
    reference: str,
    dated: date,
    name: str,
    address: str,
    received_on: date,
    channel: str,
    session_local: datetime,
    place: str,
    attendees: list[str],
    conversations: Sequence[tuple[str, datetime]] = (),
    form: str | None = None,
) -> Letter:
    """§4.4: the director's decision to grant, naming the call or chat concerned (date, time, channel) and
    the date, time and place of the session (§4.6 attendees)."""
    action = "odsłuch nagrania" if channel == "call" else "odczyt zapisu czatu"
    whose = {"pani": "Pani ", "pan": "Pana "}.get(form or "", "")
    asked = f", zgodnie z {whose}wnioskiem z dnia {polish_date(received_on)}"
    return Letter(
        kind=GRANT,
        office_name=office_name,
        office_address=office_address,
        reference=reference,
        dated=dated,
        addressee_name=name,
        addressee_address=address,
        greeting=greeting(form),
        title=f"Zawiadomienie o udostępnieniu {_subject(channel)}",
        paragraphs=tuple(
            p
            for p in (
                f"Uprzejmie informuję, że na podstawie § 4 ust. 3 i 4 {ordinance}, po uzyskaniu opinii Inspektora "
                f"Ochrony Danych oraz dyrektora właściwej komórki organizacyjnej, zapadła decyzja "
                f"{DIRECTOR.replace('Dyrektor', 'Dyrektora')} o udostępnieniu {_subject(channel)}{asked}",
                concerned(list(conversations)),
                f"Termin: {polish_date(session_local)}, godz. {session_local:%H:%M}.",
                f"Miejsce: {place}.",
                f"Na podstawie § 4 ust. 6 zarządzenia {action} odbędzie się w obecności osób wyznaczonych "
                f"przez {DIRECTOR.replace('Dyrektor', 'Dyrektora')}: {', '.join(attendees)}.",
                "Prosimy o zabranie dokumentu potwierdzającego tożsamość.",
            )
            if p
        ),
        signature=DIRECTOR,
    )


def refusal_letter(
    *,
    office_name: str,
    office_address: str,
    ordinance: str,
    reference: str,
    dated: date,
    name: str,
    address: str,
    received_on: date,
    channel: str,
    reasons: str,
    kind: str = "access",
    form: str | None = None,
) -> Letter:
    """§4.5: the written refusal with its reasons and the information on the right to complain and to a court."""
    if kind == "copy":
        decision = f"odmowie wydania kopii danych osobowych (art. 15 ust. 3 RODO) w postaci {_subject(channel)}"
        basis, signer = "art. 12 i 15 RODO", DPO
    else:
        decision = f"odmowie udostępnienia {_subject(channel)}"
        basis, signer = f"§ 4 ust. 3 i 5 {ordinance}", DIRECTOR
    return Letter(
        kind=REFUSAL,
        office_name=office_name,
        office_address=office_address,
        reference=reference,
        dated=dated,
        addressee_name=name,
        addressee_address=address,
        greeting=greeting(form),
        title="Odmowa udostępnienia" if kind != "copy" else "Odmowa wydania kopii danych",
        paragraphs=(
            f"Uprzejmie informuję, że na podstawie {basis} w odpowiedzi na wniosek z dnia "
            f"{polish_date(received_on)} podjęto decyzję o {decision}.",
            f"Uzasadnienie: {reasons}",
            remedies(form),
        ),
        signature=signer,
    )


def extension_letter(
    *,
    office_name: str,
    office_address: str,
    reference: str,
    dated: date,
    name: str,
    address: str,
    received_on: date,
    due_on: date,
    extended_until: date,
    reasons: str,
    kind: str = "access",
    form: str | None = None,
) -> Letter:
    """GDPR Art. 12(3): the notice that the answer is extended, with the reasons for the delay."""
    return Letter(
        kind=EXTENSION,
        office_name=office_name,
        office_address=office_address,
        reference=reference,
        dated=dated,
        addressee_name=name,
        addressee_address=address,
        greeting=greeting(form),
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


def copy_letter(
    *,
    office_name: str,
    office_address: str,
    reference: str,
    dated: date,
    name: str,
    address: str,
    received_on: date,
    files: list[tuple[str, str]],
    controller: str = "",
    recipients: str = "",
    retention_months: int = 6,
    ordinance: str = "",
    conversations: Sequence[tuple[str, datetime]] = (),
    form: str | None = None,
) -> Letter:
    """GDPR Art. 15(3): the cover letter of an exported copy, listing each file with its SHA-256, with the
    information of Art. 15(1) (purposes, categories, recipients, retention period, rights, source),
    signed for the controller."""
    basis = f" oraz {ordinance}" if ordinance else ""
    return Letter(
        kind=COPY,
        office_name=office_name,
        office_address=office_address,
        reference=reference,
        dated=dated,
        addressee_name=name,
        addressee_address=address,
        greeting=greeting(form),
        title="Kopia danych osobowych (art. 15 ust. 3 RODO)",
        paragraphs=tuple(
            p
            for p in (
                f"W odpowiedzi na wniosek z dnia {polish_date(received_on)} przekazuję kopię danych osobowych "
                f"podlegających przetwarzaniu, zgodnie z art. 15 ust. 3 RODO. Sumy kontrolne SHA-256 "
                f"pozwalają sprawdzić, że pliki nie zostały zmienione.",
                concerned(list(conversations)),
                "Zgodnie z art. 15 ust. 1 RODO informuję:",
                f"1. Administrator danych: {controller}." if controller else "",
                "2. Cele przetwarzania: obsługa zgłoszeń i spraw mieszkańców kierowanych do Centrum Informacji "
                "Miejskiej telefonicznie i na czacie, udokumentowanie przebiegu kontaktu oraz zapewnienie jakości "
                f"obsługi (art. 6 ust. 1 lit. c i e RODO{basis}).",
                f"3. Kategorie danych: {_categories({c for c, _ in conversations})}.",
                f"4. Odbiorcy danych: {recipients}." if recipients else "",
                f"5. Okres przechowywania: {polish_months(retention_months)} od dnia rozmowy lub czatu, po czym "
                "dane są trwale usuwane (§ 6 zarządzenia), chyba że przepis prawa wymaga ich dłuższego przechowywania "
                "(np. toczące się postępowanie).",
                "6. Przysługuje prawo żądania sprostowania danych, ich usunięcia lub ograniczenia przetwarzania "
                "oraz prawo wniesienia sprzeciwu wobec przetwarzania (art. 16–18 i 21 RODO).",
                "7. Przysługuje prawo wniesienia skargi do Prezesa Urzędu Ochrony Danych Osobowych "
                "(ul. Stawki 2, 00-193 Warszawa; art. 77 RODO).",
                "8. Źródło danych: dane pochodzą bezpośrednio od osoby, której dotyczą (połączenie telefoniczne lub "
                "czat); numer telefonu, datę i czas połączenia rejestruje centrala telefoniczna urzędu.",
                "9. Dane nie podlegają zautomatyzowanemu podejmowaniu decyzji, w tym profilowaniu (art. 22 RODO).",
            )
            if p
        ),
        attachments=tuple(f"{fname} — SHA-256 {digest}" for fname, digest in files),
        signature=DPO,
        on_behalf=FOR_CONTROLLER,
    )


_UNPRINTABLE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    """Text as a letter may print it: control characters and bidirectional overrides removed, tabs as spaces."""
    return _UNPRINTABLE.sub(lambda m: " " if m.group() in "\t\r" else "", text)


@functools.lru_cache(maxsize=None)
def _coverage(font: Path) -> frozenset[int]:
    from fontTools.ttLib import TTFont  # fpdf2's own dependency; only a PDF needs it

    with TTFont(str(font), lazy=True) as tt:
        return frozenset(tt.getBestCmap())


def missing_glyphs(text: str, *, bold: bool = False) -> list[str]:
    """Characters of `text` the bundled font has no glyph for (fpdf2 would drop them silently), first seen first."""
    have = _coverage(FONT_BOLD if bold else FONT_REGULAR)
    return list(dict.fromkeys(ch for ch in text if ch != "\n" and ord(ch) not in have))


def describe_characters(chars: list[str]) -> str:
    """`'王' (U+738B), '😀' (U+1F600)`: each character and its code point, so a person can find it."""
    return ", ".join(f"'{ch}' (U+{ord(ch):04X})" for ch in chars)


def in_font(text: str, *, bold: bool = False) -> str:
    """`text` with each character the font lacks written as [U+XXXX], for documents that must still print."""
    missing = set(missing_glyphs(text, bold=bold))
    return "".join(f"[U+{ord(ch):04X}]" if ch in missing else ch for ch in text) if missing else text


def render(letter: Letter, seal: "Seal | None" = None) -> bytes:
    """The letter as PDF/A-2b bytes (A4, DejaVu Sans embedded; long names, addresses and words wrap),
    sealed with `seal` when given (PAdES); the letter says which.

    A character the bundled font cannot print is refused (InvalidInput naming it and where it is),
    never silently left out of a letter sent to a resident.
    """
    # fpdf is imported here, not at module level: it costs ~0.4 s, and every `cim tui` start imports this module
    # through store (bench/: TUI start-up), while only a letter needs it.
    from fpdf.enums import WrapMode, XPos, YPos

    _check_printable(letter)
    pdf = pdfa.document(title=letter.title, author=letter.office_name, subject=f"Znak sprawy: {letter.reference}")
    pdf.add_page()

    def block(text: str, *, size: float = 11, bold: bool = False, align: str = "L", gap: float = 0) -> None:
        text = printable(text)
        pdf.set_font("DejaVu", "B" if bold else "", size)
        # wrapmode CHAR breaks words longer than the line (a pasted address without spaces)
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

    block(letter.office_name, bold=True)
    block(letter.office_address, size=10, gap=6)
    city = re.search(r"\d\d-\d\d\d\s+([^,]+)$", letter.office_address.strip())
    block(f"{city.group(1) + ', ' if city else ''}dnia {polish_date(letter.dated)}", size=10, align="R")
    block(f"Znak sprawy: {letter.reference}", size=10, gap=8)
    block(letter.addressee_name, bold=True)
    block(letter.addressee_address, gap=0 if letter.delivery_line else 10)
    if letter.delivery_line:
        block(letter.delivery_line, size=9, gap=10)
    block(letter.title, size=13, bold=True, gap=4)
    if letter.greeting:
        block(letter.greeting, gap=3)
    for paragraph in letter.paragraphs:
        block(paragraph, gap=3)
    if letter.attachments:
        block("Załączniki:", bold=True)
        for line in letter.attachments:
            block(f"– {line}", size=9)
    pdf.ln(12)
    if letter.on_behalf:
        block(letter.on_behalf, size=10, align="R")
    if letter.signatory:
        block(letter.signatory, bold=True, align="R")
    block(letter.signature, align="R")
    pdf.ln(6)
    block(SEALED_NOTE.format(subject=seal.subject) if seal else UNSEALED_NOTE, size=8)
    _anchor_footer(pdf, letter.audit_anchor)
    return pdfa.finish(
        pdf, seal=seal, reason=f"{letter.title}, znak sprawy {letter.reference}", location=letter.office_name
    )


def _anchor_footer(pdf: Any, anchor: str) -> None:
    """The audit anchor in small print after the signature, so paper carries the chain head too."""
    if anchor:
        pdf.ln(8)
        pdf.set_font(pdfa.FONT_FAMILY, "", 6.5)
        pdf.multi_cell(0, 3, anchor, new_x="LMARGIN", new_y="NEXT")


def _check_printable(letter: Letter) -> None:
    parts = [
        ("the office name", letter.office_name, True),
        ("the office address", letter.office_address, False),
        ("the case reference", letter.reference, False),
        ("the addressee's name", letter.addressee_name, True),
        ("the addressee's address", letter.addressee_address, False),
        ("the title", letter.title, True),
        *[("the text", p, False) for p in letter.paragraphs],
        *[("the attachments", a, False) for a in letter.attachments],
        ("the signature", letter.signature, False),
        ("the signatory", letter.signatory, False),
        ("the signatory's line", letter.on_behalf, False),
        ("the delivery line", letter.delivery_line, False),
        ("the greeting", letter.greeting, False),
    ]
    found: dict[str, list[str]] = {}
    for where, text, bold in parts:
        for ch in missing_glyphs(printable(text), bold=bold):
            found.setdefault(where, [])
            if ch not in found[where]:
                found[where].append(ch)
    if found:
        places = "; ".join(f"{describe_characters(chars)} in {where}" for where, chars in found.items())
        raise InvalidInput(
            N_(
                "the letter cannot be printed: its font has no glyph for {places}; write those "
                "characters differently (e.g. in Latin letters) and try again"
            ),
            places=places,
        )
