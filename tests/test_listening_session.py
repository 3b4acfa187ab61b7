"""The §4.6 listening session: a link only while it runs, attendees and others recorded, the signed PDF record."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from pathlib import Path

import aiohttp
import pytest
from pypdf import PdfReader

from store.errors import InvalidInput, InvalidTransition, NotPermitted
from tests.fixtures.audit_log import audit_log
from tests.fixtures.requests import CALL_AT, PHONE, call_request, insert_call

SESSION_AT = datetime(2026, 3, 20, 9, 0, tzinfo=timezone.utc)  # 10:00 in Warsaw


def pdf_text(path: Path) -> str:
    return re.sub(r"\s+", " ", "\n".join(page.extract_text() for page in PdfReader(path).pages))


async def session_running(store, people, clock):
    """A call request granted with one designated attendee, its session started on the day (10:00 Warsaw)."""
    req = await store.requests.register(people.registrar, call_request())
    call = await insert_call(store, at=CALL_AT, number=PHONE, department="WO")
    await store.requests.link(people.registrar, req.id, call)
    await store.requests.give_opinion(people.dpo, req.id, "dpo", "favourable", "Brak przeszkód.")
    await store.requests.give_opinion(people.head, req.id, "department", "favourable", "Zgoda wydziału.")
    await store.requests.grant(
        people.director, req.id, session_at=SESSION_AT, place="Sala 12, parter", attendee_ids=[people.attendee.staff_id]
    )
    clock.now = SESSION_AT
    await store.requests.start_session(people.attendee, req.id)
    return req, call


async def test_a_session_link_needs_the_session_running_and_a_session_person(store, people, clock) -> None:
    req = await store.requests.register(people.registrar, call_request())
    call = await insert_call(store, at=CALL_AT, number=PHONE, department="WO")
    await store.requests.link(people.registrar, req.id, call)
    with pytest.raises(NotPermitted):
        await store.listening.create_for_session(people.consultant, req.id, call)
    with pytest.raises(InvalidTransition, match="only during its session"):
        await store.listening.create_for_session(people.director, req.id, call)


@pytest.mark.ordinance("§4.6")
async def test_session_link_plays_then_the_record_states_attendees_times_and_what_was_played(
    store, people, clock, chat_server
) -> None:
    req, call = await session_running(store, people, clock)
    clock.advance(minutes=5)
    link = await store.listening.create_for_session(people.attendee, req.id, call)
    assert link.purpose == f"§4 session {req.number}" and link.request_id == req.id
    assert [live.id for live in await store.listening.live_links(people.attendee, request_id=req.id)] == [link.id]
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as browser:
        async with browser.get(chat_server.url + link.path) as response:
            assert response.status == 200
        clock.advance(seconds=30)
        async with browser.get(chat_server.url + link.path + "/audio", headers={"Range": "bytes=0-"}) as response:
            assert response.status == 206
        clock.advance(minutes=10)
        with pytest.raises(InvalidInput, match="designated"):
            await store.requests.end_session(people.attendee, req.id, [people.registrar.staff_id])
        with pytest.raises(InvalidInput, match="outcome"):
            await store.requests.end_session(people.attendee, req.id, [people.attendee.staff_id], outcome="great")
        ended = await store.requests.end_session(
            people.attendee,
            req.id,
            [people.attendee.staff_id],
            "Osoba wnioskująca okazała dowód osobisty.",
            others=["Zażółć Gęślą-Jaźń", " Tłumacz Józef Łoś "],
            outcome="completed",
        )
        assert ended.session_others == ("Zażółć Gęślą-Jaźń", "Tłumacz Józef Łoś")
        # once the session is over, the link is refused at the next request
        async with browser.get(chat_server.url + link.path + "/audio", headers={"Range": "bytes=100-"}) as response:
            assert response.status == 410
    # an attendee cannot sign the record; the director does
    assert not [x for x in (await store.requests.get(people.director, req.id)).letters if x.kind == "session_record"]
    with pytest.raises(NotPermitted):
        await store.requests.sign_session_record(people.attendee, req.id)
    clock.advance(minutes=5)
    record = await store.requests.sign_session_record(people.director, req.id)
    text = pdf_text(record.path)
    assert "Protokół odsłuchu nagrania rozmowy telefonicznej" in text
    assert f"Znak sprawy: {req.number}" in text and "Sala 12, parter" in text
    assert "Rozpoczęcie: 20 marca 2026 r., godz. 10:00" in text
    assert "Zakończenie: 20 marca 2026 r., godz. 10:15" in text
    assert "Obecni wyznaczeni pracownicy: swiadek" in text
    assert "Inne osoby obecne: Zażółć Gęślą-Jaźń, Tłumacz Józef Łoś" in text
    assert f"nagranie rozmowy telefonicznej nr {call} z 24 lutego 2026 r., godz. 10:15" in text
    assert "otwarto do odsłuchu o godz. 10:05 (swiadek)" in text
    assert "odtworzono w przeglądarce od godz. 10:05:30 (swiadek)" in text
    assert "Wynik: odsłuch/odczyt przeprowadzono w całości" in text
    assert "Uwagi: Osoba wnioskująca okazała dowód osobisty." in text
    assert (
        "Zatwierdził(a): dyrektor" in text
        and "Dyrektor Biura Obsługi Interesantów, 20 marca 2026 r., godz. 10:20" in text
    )
    detail = await store.requests.get(people.director, req.id)
    assert [x.kind for x in detail.letters][-1] == "session_record"
    actions = [r.action for r in await audit_log(store, request_id=req.id)]
    for step in (
        "requests.session_playback",
        "listen.link_create",
        "listen.page",
        "listen.audio",
        "requests.session_end",
        "requests.session_record",
    ):
        assert step in actions


async def test_the_director_ending_the_session_signs_the_record_at_once(store, people, clock) -> None:
    req, _ = await session_running(store, people, clock)
    await store.requests.end_session(people.director, req.id, [people.attendee.staff_id], outcome="requester_absent")
    letters = (await store.requests.get(people.director, req.id)).letters
    assert letters[-1].kind == "session_record"
    text = pdf_text(letters[-1].path)
    assert "osoba wnioskująca nie stawiła się" in text
    assert "nie odtworzono ani nie odczytano żadnego materiału" in text
