"""The PDF letters, read back with pypdf: Polish text, diacritics, the office from settings, long names wrapped."""

from __future__ import annotations

import re
from datetime import date, datetime, timezone
from pathlib import Path

import pytest
from pypdf import PdfReader

from store import Store
from store.letters import FONTS_DIR, polish_date
from tests.fixtures.requests import CALL_AT, PHONE, call_request, insert_call

DIACRITICS = "ąćęłńóśźżĄĆĘŁŃÓŚŹŻ"
SESSION_AT = datetime(2026, 3, 20, 9, 30, tzinfo=timezone.utc)  # 10:30 in Warsaw


def pdf_text(path: Path) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(path).pages)


def squashed(text: str) -> str:
    """Without whitespace, so a word broken by line wrapping still matches."""
    return re.sub(r"\s+", "", text)


async def _decided(store, people, *, name: str, address: str, grant: bool):
    req = await store.requests.register(people.registrar, call_request(requester_name=name, requester_address=address))
    call = await insert_call(store, at=CALL_AT, number=PHONE, department="WO")
    await store.requests.link(people.registrar, req.id, call)
    await store.requests.give_opinion(people.dpo, req.id, "dpo", "favourable", "Zgoda.")
    await store.requests.give_opinion(people.head, req.id, "department", "favourable", "Zgoda.")
    if grant:
        await store.requests.grant(
            people.director,
            req.id,
            session_at=SESSION_AT,
            place="Sala nr 12, parter",
            attendee_ids=[people.attendee.staff_id],
        )
    else:
        await store.requests.refuse(people.director, req.id, f"Uzasadnienie z literami {DIACRITICS}.")
    detail = await store.requests.get(people.director, req.id)
    return detail, pdf_text(detail.letters[-1].path)


def test_the_fonts_and_their_licence_ship_with_the_package():
    assert (FONTS_DIR / "DejaVuSans.ttf").stat().st_size > 100_000
    assert (FONTS_DIR / "DejaVuSans-Bold.ttf").stat().st_size > 100_000
    assert "Bitstream" in (FONTS_DIR / "LICENSE-DejaVu.txt").read_text()


@pytest.mark.ordinance("§4.5")
async def test_refusal_letter_has_reasons_remedies_office_and_every_diacritic(store, people):
    name = "Zażółć Gęślą Jaźń " * 12 + "Ostatni"
    address = "ul. " + "Długa" * 40 + " 1/2, 70-001 Szczecin"
    detail, text = await _decided(store, people, name=name, address=address, grant=False)
    flat = squashed(text)
    assert "Odmowa udostępnienia" in text
    assert squashed(f"Uzasadnienie z literami {DIACRITICS}.") in flat
    assert squashed("prawo wniesienia skargi do Prezesa Urzędu Ochrony Danych Osobowych") in flat
    assert squashed("przed sądem") in flat
    assert squashed(name) in flat and squashed(address) in flat  # wrapped, nothing cut off
    assert squashed(store.settings.office_name) in flat and squashed(store.settings.office_address) in flat
    assert detail.request.number in text
    assert "Dyrektor Biura Obsługi Interesantów" in text
    for letter in DIACRITICS:
        assert letter in text


@pytest.mark.ordinance("§4.4", "§4.6")
async def test_grant_letter_names_the_date_place_and_attendees(store, people):
    detail, text = await _decided(store, people, name="Łucja Źrebię", address="ul. Ćmy 3, 71-234 Szczecin", grant=True)
    flat = squashed(text)
    assert "Zawiadomienie o udostępnieniu nagrania rozmowy telefonicznej" in text
    assert squashed("Termin: 20 marca 2026 r., godz. 10:30.") in flat  # local time, not UTC
    assert squashed("Miejsce: Sala nr 12, parter.") in flat
    assert squashed("w obecności osób wyznaczonych") in flat and "swiadek" in text
    assert "Łucja Źrebię" in text and "ul. Ćmy 3, 71-234 Szczecin" in text


@pytest.mark.ordinance("GDPR 12(3)")
async def test_extension_letter_states_both_dates_and_reasons(store, people, clock):
    clock.now = datetime(2026, 2, 2, 9, tzinfo=timezone.utc)
    req = await store.requests.register(
        people.registrar, call_request(received_on=date(2026, 1, 31), hint={"date": "2026-01-30"})
    )
    await store.requests.extend(people.director, req.id, 2, "Znaczna liczba wniosków; ślęczymy nad nimi.")
    detail = await store.requests.get(people.director, req.id)
    flat = squashed(pdf_text(detail.letters[0].path))
    assert squashed("art. 12 ust. 3") in flat
    assert squashed("przypadający na dzień 28 lutego 2026 r.") in flat
    assert squashed("do dnia 28 kwietnia 2026 r.") in flat
    assert squashed("Przyczyny opóźnienia: Znaczna liczba wniosków; ślęczymy nad nimi.") in flat


async def test_office_name_and_address_come_from_settings(settings, clock, make_staff, tmp_path):
    custom = settings.with_(
        office_name="Urząd Gminy Źródła, Biuro Obsługi Mieszkańców",
        office_address="ul. Świętego Ducha 7, 12-345 Żółkiewka",
    )
    st = await Store.open(custom, create=True, clock=clock)
    try:
        from tests.fixtures.store import SYSTEM

        director = (await st.accounts.add_staff(SYSTEM, "dyr", ["boi_director"], "correct horse battery")).as_actor()
        req = await st.requests.register(director, call_request())
        await st.requests.extend(director, req.id, 1, "Powód.")
        text = pdf_text((await st.requests.get(director, req.id)).letters[0].path)
    finally:
        await st.close()
    assert "Urząd Gminy Źródła, Biuro Obsługi Mieszkańców" in text
    assert "ul. Świętego Ducha 7, 12-345 Żółkiewka" in text
    assert "Żółkiewka, dnia 2 marca 2026 r." in text
    assert "Szczecin, dnia" not in text and "Urząd Miasta Szczecin" not in text


@pytest.mark.parametrize(
    "day, expected",
    [
        (date(2026, 1, 1), "1 stycznia 2026 r."),
        (date(2026, 9, 30), "30 września 2026 r."),
        (date(2026, 10, 5), "5 października 2026 r."),
    ],
)
def test_polish_dates(day, expected):
    assert polish_date(day) == expected


async def test_control_characters_and_bidi_overrides_never_reach_the_letter(store, people):
    hostile = "Jan\x1b[31m \u202eKowalski\x00 \x07Nowak"
    detail, text = await _decided(store, people, name=hostile, address="ul. Polna 1\r\n70-001 Szczecin", grant=False)
    assert "Jan[31m Kowalski Nowak" in text
    assert not any(ch in text for ch in "\x1b\u202e\x00\x07")
