"""The request procedure in the store: bad input first, then §4's lifecycle, GDPR deadlines, holds and copies."""

from __future__ import annotations

import hashlib
import json
import re
import zipfile
from dataclasses import asdict
from datetime import date, datetime, timedelta, timezone

import pytest

from store.keys import open_plain

from store.errors import (
    ConversationNotFound,
    IneligibleForGrant,
    InvalidInput,
    InvalidTransition,
    NotPermitted,
)
from store.phone import normalise_number
from store.requests import TRANSITIONS, Requests
from tests.fixtures.audit_log import audit_log
from tests.fixtures.requests import (
    CALL_AT,
    PHONE,
    call_request,
    chat_request,
    insert_call,
    insert_chat,
    request_state,
)
from tests.fixtures.store import SYSTEM

SESSION_AT = datetime(2026, 3, 20, 9, 0, tzinfo=timezone.utc)


async def open_holds(store, request_id):
    return [h for h in await store.retention.holds(SYSTEM) if h.request_id == request_id]


async def no_requests_stored(store) -> bool:
    return await store.requests.list(SYSTEM) == []


async def ready_for_decision(store, people, *, number=PHONE, identifiable=True):
    """A call request, its call linked, both opinions in."""
    req = await store.requests.register(people.registrar, call_request())
    call = await insert_call(store, at=CALL_AT, number=number, identifiable=identifiable, department="WO")
    await store.requests.link(people.registrar, req.id, call)
    await store.requests.give_opinion(people.dpo, req.id, "dpo", "favourable", "Brak przeszkód.")
    req = await store.requests.give_opinion(people.head, req.id, "department", "favourable", "Zgoda wydziału.")
    return req, call


# -- bad input -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"requester_name": "   "}, "name is required"),
        ({"requester_address": ""}, "address is required"),
        ({"justification": ""}, "justification is required"),
        ({"received_on": date(2026, 3, 3)}, "in the future"),
        ({"received_on": "3 marca"}, "not a date"),
        ({"requester_phone": "anonymous"}, "not a phone number"),
        ({"requester_phone": "601-234"}, "not a phone number"),
        ({"requester_phone": "tel. 601234567"}, "not a phone number"),
        ({"requester_phone": None}, "phone number the call was made from is required"),
        ({"channel": "fax"}, "channel"),
        ({"kind": "complaint"}, "kind"),
        ({"asked": "read"}, "asks to 'listen'"),
        ({"delivery": "pigeon"}, "delivered by"),
        ({"delivery": "email"}, "needs the e-mail"),
        ({"requester_email": "not-an-address"}, "e-mail address"),
        ({"requester_name": "x" * 301}, "longer than"),
        ({"hint": {"time": "10:00"}}, "date of the conversation is required"),
        ({"hint": {"date": "2026-03-02"}}, "later than the date"),
        ({"hint": {"date": "2026-02-24", "time": "25:61"}}, "HH:MM"),
        ({"hint": {"date": "2026-02-24", "duration_min": "długo"}}, "whole minutes"),
        ({"hint": {"date": "2026-02-24", "password": "x"}}, "unknown conversation details"),
    ],
)
async def test_register_rejects_bad_input_and_stores_nothing(store, people, changes, message):
    with pytest.raises(InvalidInput, match=message):
        await store.requests.register(people.registrar, call_request(**changes))
    assert await no_requests_stored(store)


async def test_register_refused_to_a_consultant_is_audited(store, people):
    with pytest.raises(NotPermitted):
        await store.requests.register(people.consultant, call_request())
    refused = await audit_log(store, action="requests.register", outcome="refused")
    assert len(refused) == 1 and refused[0].actor_name == "konsultant"
    assert await no_requests_stored(store)


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("601 234 567", "+48601234567"),
        ("+48 601-234-567", "+48601234567"),
        ("0048601234567", "+48601234567"),
        ("(0) 601 234 567", "+48601234567"),
        ("48601234567", "+48601234567"),
        ("+49 30 1234567", "+49301234567"),
        ("anonymous", None),
        ("Restricted", None),
        ("", None),
        ("abc", None),
        ("+48 60１234567", None),
        ("12345", None),
        (None, None),
    ],
)
async def test_normalise_number(raw, expected):
    assert normalise_number(raw) == expected


async def test_phone_normalisation_agrees_with_call_ingestion():
    """The requester's number must compare equal to the number ingestion stored for the call (§4.7)."""
    calls = pytest.importorskip("store.calls")
    for raw in ("601 234 567", "+48 601 234 567", "0048601234567", "48601234567", "+49 30 1234567"):
        assert normalise_number(raw) == calls.normalise_number(raw).normalised


# -- numbering and deadlines (GDPR 12(3)) ----------------------------------------------------------------


async def test_numbers_count_per_year(store, people):
    a = await store.requests.register(
        people.registrar, call_request(received_on=date(2025, 12, 30), hint={"date": "2025-12-29"})
    )
    b = await store.requests.register(people.registrar, call_request())
    c = await store.requests.register(people.registrar, chat_request())
    assert (a.number, b.number, c.number) == ("CIM/2025/0001", "CIM/2026/0001", "CIM/2026/0002")


@pytest.mark.ordinance("GDPR 12(3)")
@pytest.mark.parametrize(
    "received, due",
    [
        (date(2026, 1, 31), date(2026, 2, 28)),
        (date(2024, 1, 31), date(2024, 2, 29)),
        (date(2026, 1, 15), date(2026, 2, 15)),
        (date(2025, 12, 31), date(2026, 1, 31)),
        (date(2026, 3, 31), date(2026, 4, 30)),
    ],
)
async def test_due_one_month_after_receipt_across_month_ends(received, due):
    assert Requests.due_date(received) == due


@pytest.mark.ordinance("GDPR 12(3)")
async def test_extension_by_two_months_at_most_with_reasons_and_letter(store, people, clock):
    clock.now = datetime(2026, 2, 2, 9, tzinfo=timezone.utc)
    req = await store.requests.register(
        people.registrar, call_request(received_on=date(2026, 1, 31), hint={"date": "2026-01-30"})
    )
    assert req.due_on == date(2026, 2, 28)
    with pytest.raises(NotPermitted):
        await store.requests.extend(people.registrar, req.id, 1, "Dużo wniosków.")
    with pytest.raises(InvalidInput, match="reasons"):
        await store.requests.extend(people.director, req.id, 1, "  ")
    with pytest.raises(InvalidTransition, match="at most 2 months"):
        await store.requests.extend(people.director, req.id, 3, "Dużo wniosków.")
    req = await store.requests.extend(people.director, req.id, 1, "Złożoność sprawy.")
    assert req.extended_until == date(2026, 3, 28) and req.effective_due == date(2026, 3, 28)
    req = await store.requests.extend(people.director, req.id, 1, "Liczba wniosków.")
    assert req.extended_until == date(2026, 4, 28)
    with pytest.raises(InvalidTransition, match="at most 2 months"):
        await store.requests.extend(people.director, req.id, 1, "Jeszcze raz.")
    detail = await store.requests.get(people.director, req.id)
    assert [letter.kind for letter in detail.letters] == ["extension", "extension"]


@pytest.mark.ordinance("GDPR 12(3)")
async def test_due_soon_and_overdue_flags(store, people, clock):
    req = await store.requests.register(people.registrar, call_request(received_on=date(2026, 3, 1)))
    assert req.due_on == date(2026, 4, 1) and not req.due_soon and not req.overdue
    clock.now = datetime(2026, 3, 27, 9, tzinfo=timezone.utc)
    (listed,) = await store.requests.list(people.director)
    assert listed.due_soon and not listed.overdue
    clock.now = datetime(2026, 4, 2, 9, tzinfo=timezone.utc)
    (listed,) = await store.requests.list(people.director, flagged_only=True)
    assert listed.overdue and not listed.due_soon
    await store.requests.withdraw(people.registrar, req.id)
    (listed,) = await store.requests.list(people.director)
    assert not listed.overdue  # nothing is owed any more
    assert await store.requests.list(people.director, flagged_only=True) == []


# -- candidates and linking (§4.7) --------------------------------------------------------------------


async def test_candidates_rank_the_requesters_number_first(store, people):
    req = await store.requests.register(people.registrar, call_request())
    other = await insert_call(store, at=CALL_AT, number="+48700000000", department="WO")
    mine = await insert_call(store, at=CALL_AT + timedelta(minutes=20), number=PHONE, department="WO")
    far_mine = await insert_call(store, at=CALL_AT + timedelta(hours=6), number=PHONE)
    await insert_call(store, at=CALL_AT + timedelta(hours=6), number="+48700000001")  # outside, not theirs
    await insert_call(store, at=CALL_AT + timedelta(days=3), number=PHONE)  # another day
    cands = await store.requests.candidates(people.registrar, req.id)
    assert [c.conversation_id for c in cands] == [mine, far_mine, other]
    assert cands[0].number_matches and not cands[2].number_matches
    assert (await audit_log(store, action="requests.candidates"))[0].request_id == req.id
    with pytest.raises(NotPermitted):
        await store.requests.candidates(people.dpo, req.id)


async def test_chat_candidates_match_time_and_details(store, people):
    req = await store.requests.register(people.registrar, chat_request())
    theirs = await insert_chat(
        store,
        at=CALL_AT - timedelta(minutes=10),  # 10:05 local
        lines=[("resident", "Dzień dobry, tu JOZEF@example.pl"), ("consultant", "Witam")],
    )
    other = await insert_chat(store, at=CALL_AT - timedelta(minutes=30), lines=[("resident", "Pytanie")])
    await insert_chat(store, at=CALL_AT + timedelta(hours=5), lines=[("resident", "jozef@example.pl")])
    cands = await store.requests.candidates(people.registrar, req.id)
    assert [c.conversation_id for c in cands] == [theirs, other]
    assert cands[0].detail_matches and not cands[1].detail_matches


@pytest.mark.parametrize("conversation", ["missing", "chat"])
async def test_link_rejects_missing_or_wrong_channel(store, people, conversation):
    req = await store.requests.register(people.registrar, call_request())
    conv_id = 9999 if conversation == "missing" else await insert_chat(store, at=CALL_AT, lines=[])
    with pytest.raises(ConversationNotFound if conversation == "missing" else InvalidInput):
        await store.requests.link(people.registrar, req.id, conv_id)
    assert [
        r for r in await store.requests.list(SYSTEM) if (await store.requests.get(SYSTEM, r.id)).conversations
    ] == []
    assert await store.retention.holds(SYSTEM, include_released=True) == []


@pytest.mark.ordinance("§4.7")
@pytest.mark.parametrize(
    "number, identifiable, why",
    [
        ("anonymous", False, "not identifiable"),
        (None, False, "not identifiable"),
        ("+48700000000", True, "other than the requester's"),
    ],
)
async def test_call_not_from_the_requesters_identifiable_number_can_only_be_refused(
    store, people, number, identifiable, why
):
    req, call = await ready_for_decision(store, people, number=number, identifiable=identifiable)
    assert not req.eligible and why in req.ineligible_reason
    with pytest.raises(IneligibleForGrant, match=why):
        await store.requests.grant(
            people.director, req.id, session_at=SESSION_AT, place="Sala 12", attendee_ids=[people.attendee.staff_id]
        )
    assert (await store.requests.get(people.director, req.id)).request.state == "awaiting_decision"
    req = await store.requests.refuse(people.director, req.id, "Numer nie pozwala ustalić rozmówcy (§ 4 ust. 7).")
    assert req.state == "refused"


@pytest.mark.ordinance("§4.7")
async def test_unlinking_the_wrong_call_restores_eligibility(store, people):
    req = await store.requests.register(people.registrar, call_request())
    wrong = await insert_call(store, at=CALL_AT, number="+48700000000")
    right = await insert_call(store, at=CALL_AT, number=PHONE)
    req = await store.requests.link(people.registrar, req.id, wrong)
    req = await store.requests.link(people.registrar, req.id, right)
    assert not req.eligible
    with pytest.raises(InvalidInput, match="already linked"):
        await store.requests.link(people.registrar, req.id, right)
    req = await store.requests.unlink(people.registrar, req.id, wrong)
    assert req.eligible
    assert [h.conversation_id for h in await open_holds(store, req.id)] == [right]


# -- opinions (§4.3) ---------------------------------------------------------------------------------------


@pytest.mark.ordinance("§4.3")
async def test_opinions_by_the_right_people_only_and_audited(store, people):
    req = await store.requests.register(people.registrar, call_request())
    with pytest.raises(InvalidTransition, match="link the conversation"):
        await store.requests.give_opinion(people.head, req.id, "department", "favourable", "Zgoda.")
    call = await insert_call(store, at=CALL_AT, number=PHONE, department="WO")
    await store.requests.link(people.registrar, req.id, call)
    with pytest.raises(NotPermitted):
        await store.requests.give_opinion(people.head, req.id, "dpo", "favourable", "Zgoda.")
    with pytest.raises(NotPermitted, match="not the head of the department concerned"):
        await store.requests.give_opinion(people.other_head, req.id, "department", "favourable", "Zgoda.")
    with pytest.raises(NotPermitted):
        await store.requests.give_opinion(people.director, req.id, "department", "favourable", "Zgoda.")
    with pytest.raises(InvalidInput, match="reasons"):
        await store.requests.give_opinion(people.dpo, req.id, "dpo", "favourable", " ")
    with pytest.raises(InvalidInput, match="verdict"):
        await store.requests.give_opinion(people.dpo, req.id, "dpo", "maybe", "Hmm.")
    refused = await audit_log(store, outcome="refused")
    assert {r.actor_name for r in refused} == {"naczelnik", "kierownik", "dyrektor"}
    assert all(r.request_id == req.id for r in refused)
    req = await store.requests.give_opinion(people.dpo, req.id, "dpo", "unfavourable", "Wątpliwości.")
    assert req.state == "registered" and req.opinions_given == {"dpo"}
    with pytest.raises(InvalidTransition, match="already been given"):
        await store.requests.give_opinion(people.dpo, req.id, "dpo", "favourable", "Jednak tak.")
    req = await store.requests.give_opinion(people.head, req.id, "department", "favourable", "Zgoda.")
    assert req.state == "awaiting_decision"


@pytest.mark.ordinance("§4.3")
async def test_without_a_department_on_the_conversation_any_head_may_give_the_opinion(store, people):
    req = await store.requests.register(people.registrar, call_request())
    await store.requests.link(people.registrar, req.id, await insert_call(store, at=CALL_AT, number=PHONE))
    assert [r.id for r in await store.requests.inbox(people.other_head)] == [req.id]
    await store.requests.give_opinion(people.other_head, req.id, "department", "favourable", "Zgoda.")
    assert await store.requests.inbox(people.head) == []


@pytest.mark.ordinance("§4.3")
async def test_director_cannot_decide_before_both_opinions(store, people):
    req = await store.requests.register(people.registrar, call_request())
    await store.requests.link(
        people.registrar, req.id, await insert_call(store, at=CALL_AT, number=PHONE, department="WO")
    )
    await store.requests.give_opinion(people.dpo, req.id, "dpo", "favourable", "Zgoda.")
    with pytest.raises(InvalidTransition, match="registered"):
        await store.requests.grant(
            people.director, req.id, session_at=SESSION_AT, place="Sala 12", attendee_ids=[people.attendee.staff_id]
        )
    with pytest.raises(InvalidTransition):
        await store.requests.refuse(people.director, req.id, "Nie.")


# -- the decision ---------------------------------------------------------------------------------------


@pytest.mark.ordinance("§4.3")
async def test_decision_by_a_non_director_is_refused_and_audited(store, people):
    req, _ = await ready_for_decision(store, people)
    for actor in (people.registrar, people.dpo, people.head):
        with pytest.raises(NotPermitted):
            await store.requests.grant(
                actor, req.id, session_at=SESSION_AT, place="Sala 12", attendee_ids=[people.attendee.staff_id]
            )
        with pytest.raises(NotPermitted):
            await store.requests.refuse(actor, req.id, "Nie.")
    assert len(await audit_log(store, outcome="refused")) == 6
    assert (await store.requests.get(people.director, req.id)).request.state == "awaiting_decision"


@pytest.mark.ordinance("§4.6")
@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"session_at": datetime(2026, 3, 1, 9, tzinfo=timezone.utc)}, "in the past"),
        ({"session_at": datetime(2026, 3, 20, 9)}, "time zone"),
        ({"session_at": None}, "date and time"),
        ({"place": "  "}, "place"),
        ({"attendee_ids": []}, "at least one staff member"),
        ({"attendee_ids": [4242]}, "no staff member"),
        ({"attendee_ids": "disabled"}, "disabled accounts"),
    ],
)
async def test_grant_rejects_bad_schedule_and_attendees(store, people, kwargs, message):
    req, _ = await ready_for_decision(store, people)
    args = {"session_at": SESSION_AT, "place": "Sala 12", "attendee_ids": [people.attendee.staff_id]}
    args.update(kwargs)
    if args["attendee_ids"] == "disabled":
        args["attendee_ids"] = [people.attendee.staff_id, people.disabled_id]
    with pytest.raises(InvalidInput, match=message):
        await store.requests.grant(people.director, req.id, **args)
    detail = await store.requests.get(people.director, req.id)
    assert detail.request.state == "awaiting_decision" and detail.letters == () and detail.attendees == ()


@pytest.mark.ordinance("§4.4", "§4.6", "§4.3")
async def test_access_request_end_to_end_grant_session_close(store, people, clock):
    req, call = await ready_for_decision(store, people)
    assert [r.id for r in await store.requests.inbox(people.director)] == [req.id]
    req = await store.requests.grant(
        people.director,
        req.id,
        session_at=SESSION_AT,
        place="Sala 12, parter",
        attendee_ids=[people.attendee.staff_id, people.director.staff_id],
    )
    assert (req.state, req.decision, req.session_place) == ("granted", "granted", "Sala 12, parter")
    detail = await store.requests.get(people.director, req.id)
    assert [a.name for a in detail.attendees] == ["dyrektor", "swiadek"]
    (letter,) = detail.letters
    assert letter.kind == "grant" and letter.path.is_file()
    assert hashlib.sha256(letter.path.read_bytes()).hexdigest() == letter.sha256
    assert oct(letter.path.stat().st_mode & 0o777) == "0o600"
    # content is opened only during the session, and only by the director or a designated attendee
    with pytest.raises(InvalidTransition, match="only during its session"):
        await store.requests.open_for_session(people.attendee, req.id, call)
    with pytest.raises(NotPermitted):
        await store.requests.start_session(people.registrar, req.id)
    clock.now = SESSION_AT
    req = await store.requests.start_session(people.attendee, req.id)
    assert req.state == "session_in_progress"
    with pytest.raises(NotPermitted):
        await store.requests.open_for_session(people.dpo, req.id, call)
    material = await store.requests.open_for_session(people.attendee, req.id, call)
    assert material.recording_path.is_file() and material.recording_path.read_bytes()[:8] == b"CIMSEAL1"
    with open_plain(material.recording_path) as fh:  # sealed at rest, opened in the store
        assert fh.read(4) == b"RIFF"
    playback = await audit_log(store, action="requests.session_playback", outcome="ok")
    assert [(p.request_id, p.target_id, p.actor_name) for p in playback] == [(req.id, str(call), "swiadek")]
    with pytest.raises(InvalidInput, match="only designated attendees"):
        await store.requests.end_session(people.attendee, req.id, [people.dpo.staff_id])
    clock.advance(minutes=25)
    req = await store.requests.end_session(people.attendee, req.id, [people.attendee.staff_id], "Wnioskodawca obecny.")
    assert req.state == "session_held" and req.session_ended_at - req.session_started_at == timedelta(minutes=25)
    detail = await store.requests.get(people.director, req.id)
    assert {a.name: a.present for a in detail.attendees} == {"dyrektor": False, "swiadek": True}
    assert len(await open_holds(store, req.id)) == 1
    req = await store.requests.close(people.director, req.id)
    assert req.state == "closed" and await open_holds(store, req.id) == []
    assert (await store.audit.verify()).ok


async def test_chat_access_request_session_shows_the_transcript(store, people, clock):
    req = await store.requests.register(people.registrar, chat_request())
    chat = await insert_chat(
        store, at=CALL_AT, lines=[("resident", "Zażółć gęślą jaźń?"), ("consultant", "Tak.")], department="WO"
    )
    await store.requests.link(people.registrar, req.id, chat)
    await store.requests.give_opinion(people.head, req.id, "department", "favourable", "Zgoda.")
    req = await store.requests.give_opinion(people.dpo, req.id, "dpo", "favourable", "Zgoda.")
    assert req.eligible  # §4.7 concerns phone numbers; a chat has none
    await store.requests.grant(
        people.director, req.id, session_at=SESSION_AT, place="Sala 3", attendee_ids=[people.attendee.staff_id]
    )
    await store.requests.start_session(people.director, req.id)
    material = await store.requests.open_for_session(people.director, req.id, chat)
    assert material.recording_path is None
    assert [(line.sender, line.text) for line in material.transcript] == [
        ("resident", "Zażółć gęślą jaźń?"),
        ("consultant", "Tak."),
    ]


@pytest.mark.ordinance("§4.5")
async def test_refusal_needs_reasons_and_writes_the_letter(store, people):
    req, _ = await ready_for_decision(store, people)
    with pytest.raises(InvalidInput, match="reasons"):
        await store.requests.refuse(people.director, req.id, "")
    req = await store.requests.refuse(people.director, req.id, "Brak wyjątkowych okoliczności (§ 4 ust. 1).")
    assert (req.state, req.decision) == ("refused", "refused")
    detail = await store.requests.get(people.director, req.id)
    assert [letter.kind for letter in detail.letters] == ["refusal"]
    assert len(await open_holds(store, req.id)) == 1  # held until closed
    await store.requests.close(people.director, req.id)
    assert await open_holds(store, req.id) == []


# -- holds --------------------------------------------------------------------------------------------


async def test_linking_holds_and_withdrawing_releases(store, people):
    req = await store.requests.register(people.registrar, call_request())
    call = await insert_call(store, at=CALL_AT, number=PHONE)
    await store.requests.link(people.registrar, req.id, call)
    (hold,) = await open_holds(store, req.id)
    assert (hold.conversation_id, hold.legal_basis, hold.case_reference) == (call, "§4 request", req.number)
    assert hold.set_by == people.registrar.name
    req = await store.requests.withdraw(people.registrar, req.id, "Wnioskodawca wycofał wniosek telefonicznie.")
    assert req.state == "withdrawn" and req.withdrawn_at is not None
    assert req.withdrawal_note == "Wnioskodawca wycofał wniosek telefonicznie." and req.session_notes is None
    assert await open_holds(store, req.id) == []
    (released,) = [h for h in await store.retention.holds(SYSTEM, include_released=True) if h.request_id == req.id]
    assert released.released_by == people.registrar.name


# -- every illegal transition ----------------------------------------------------------------------------


async def _to_state(store, people, clock, state):
    """An access request driven to `state` by legal moves."""
    req = await store.requests.register(people.registrar, call_request())
    if state == "registered":
        return req
    if state == "withdrawn":
        return await store.requests.withdraw(people.registrar, req.id)
    req, _ = await ready_for_decision(store, people)
    if state == "awaiting_decision":
        return req
    if state in ("refused", "closed_refused"):
        req = await store.requests.refuse(people.director, req.id, "Nie.")
        return req if state == "refused" else await store.requests.close(people.director, req.id)
    req = await store.requests.grant(
        people.director, req.id, session_at=SESSION_AT, place="Sala", attendee_ids=[people.attendee.staff_id]
    )
    if state == "granted":
        return req
    req = await store.requests.start_session(people.director, req.id)
    if state == "session_in_progress":
        return req
    req = await store.requests.end_session(people.director, req.id, [people.attendee.staff_id])
    if state == "session_held":
        return req
    return await store.requests.close(people.director, req.id)


async def _attempt(store, people, req, action):
    r, p = store.requests, people
    if action == "grant":
        return await r.grant(
            p.director, req.id, session_at=SESSION_AT, place="Sala", attendee_ids=[p.attendee.staff_id]
        )
    if action == "refuse":
        return await r.refuse(p.director, req.id, "Nie.")
    if action == "opinion":
        return await r.give_opinion(p.dpo, req.id, "dpo", "favourable", "Tak.")
    if action == "extend":
        return await r.extend(p.director, req.id, 1, "Powód.")
    if action == "withdraw":
        return await r.withdraw(p.registrar, req.id)
    if action == "close":
        return await r.close(p.director, req.id)
    if action == "start_session":
        return await r.start_session(p.director, req.id)
    if action == "end_session":
        return await r.end_session(p.director, req.id, [p.attendee.staff_id])
    if action == "link":
        return await r.link(p.registrar, req.id, await insert_call(store, at=CALL_AT, number=PHONE))
    if action == "export":
        return await r.export_copy(p.dpo, req.id, store.settings.data_dir)
    raise AssertionError(action)


ACTIONS = [
    "grant",
    "refuse",
    "opinion",
    "extend",
    "withdraw",
    "close",
    "start_session",
    "end_session",
    "link",
    "export",
]
STATES = [
    "registered",
    "awaiting_decision",
    "granted",
    "refused",
    "session_in_progress",
    "session_held",
    "closed",
    "withdrawn",
    "closed_refused",
]
ILLEGAL = [
    (s, a) for s in STATES for a in ACTIONS if a not in TRANSITIONS["access"][s.replace("closed_refused", "closed")]
]


@pytest.mark.ordinance("§4.3", "§4.4", "§4.5")
@pytest.mark.parametrize("state, action", ILLEGAL)
async def test_every_illegal_access_transition_is_refused(store, people, clock, state, action):
    req = await _to_state(store, people, clock, state)
    before = await request_state(store, req.id)
    with pytest.raises(InvalidTransition):
        await _attempt(store, people, req, action)
    assert await request_state(store, req.id) == before


async def test_the_state_machine_is_closed():
    for kind, states in TRANSITIONS.items():
        for state, moves in states.items():
            assert set(moves.values()) <= set(states), (kind, state)


# -- GDPR Art. 15 copy ------------------------------------------------------------------------------------


@pytest.mark.ordinance("GDPR 15")
@pytest.mark.parametrize("as_zip", [False, True])
async def test_copy_request_end_to_end_with_manifest_and_checksums(store, people, tmp_path, as_zip):
    data = call_request(kind="copy", justification="", asked="copy")
    with pytest.raises(NotPermitted):
        await store.requests.register(people.head, data)
    req = await store.requests.register(people.dpo, data)
    call = await insert_call(store, at=CALL_AT, number=PHONE, department="WO")
    await store.requests.link(people.dpo, req.id, call)
    assert [r.id for r in await store.requests.inbox(people.dpo)] == [req.id]
    with pytest.raises(InvalidTransition):
        await store.requests.give_opinion(people.dpo, req.id, "dpo", "favourable", "n/d")
    with pytest.raises(NotPermitted):
        await store.requests.grant(people.director, req.id)
    req = await store.requests.grant(people.dpo, req.id)
    assert req.state == "granted"
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(InvalidTransition, match="cannot export"):  # two people for a copy: not yet confirmed
        await store.requests.export_copy(people.dpo, req.id, out)
    await store.requests.prepare_export(people.dpo, req.id)  # the call is from the requester's number (§4.7)
    await store.requests.confirm_export(people.attendee, req.id)
    with pytest.raises(NotPermitted):
        await store.requests.export_copy(people.director, req.id, out)
    with pytest.raises(InvalidInput, match="not an existing folder"):
        await store.requests.export_copy(people.dpo, req.id, out / "missing")
    result = await store.requests.export_copy(people.dpo, req.id, out, as_zip=as_zip)
    if as_zip:
        with zipfile.ZipFile(result.path) as zf:
            files = {n: zf.read(n) for n in zf.namelist()}
    else:
        files = {p.name: p.read_bytes() for p in result.path.iterdir()}
    manifest = json.loads(files["manifest.json"])
    assert manifest["request"] == req.number and len(manifest["files"]) == 1
    entry = manifest["files"][0]
    assert files[entry["name"]][:4] == b"RIFF"
    assert hashlib.sha256(files[entry["name"]]).hexdigest() == entry["sha256"]
    assert files["SHA256SUMS"].decode() == f"{entry['sha256']}  {entry['name']}\n"
    assert hashlib.sha256(files["manifest.json"]).hexdigest() == result.manifest_sha256
    (audit,) = await audit_log(store, action="requests.export", outcome="ok")
    assert audit.details["manifest_sha256"] == result.manifest_sha256
    with pytest.raises(InvalidTransition):
        await store.requests.export_copy(people.dpo, req.id, out)
    req = await store.requests.close(people.dpo, req.id)
    assert req.state == "closed" and await open_holds(store, req.id) == []
    detail = await store.requests.get(people.dpo, req.id)
    assert [letter.kind for letter in detail.letters] == ["copy"]


@pytest.mark.ordinance("GDPR 15")
async def test_copy_of_a_chat_exports_its_transcript(store, people, tmp_path):
    req = await store.requests.register(people.dpo, chat_request(kind="copy", asked="copy", justification=""))
    chat = await insert_chat(store, at=CALL_AT, lines=[("resident", "Żółw"), ("consultant", "Łódź")])
    await store.requests.link(people.dpo, req.id, chat)
    await store.requests.grant(people.dpo, req.id)
    # a chat has no caller's number to match (§4.7): both people record why it is the requester's
    await store.requests.prepare_export(people.dpo, req.id, "Adres e-mail z wniosku podany w czacie.")
    await store.requests.confirm_export(people.director, req.id, "Sprawdziłem: ten sam adres i godzina.")
    result = await store.requests.export_copy(people.dpo, req.id, tmp_path)
    text = (result.path / f"chat-{chat}.txt").read_text(encoding="utf-8")
    # who wrote, in the office's gender-neutral words, never the sender codes (no display name: none was given)
    assert "Osoba pisząca: Żółw" in text and "Osoba konsultująca: Łódź" in text
    assert "resident:" not in text and "consultant:" not in text


@pytest.mark.ordinance("GDPR 15")
@pytest.mark.ordinance("§4")
async def test_the_copy_of_a_chat_renders_its_system_lines_in_polish_for_the_resident(
    store, people, make_staff, clock, tmp_path
):
    """Issue 16: the §4 copy of a chat shows each system line as the resident read it, in Polish: the display
    name and never the log-in name, no close category, no masculine forms, times in the office's time zone."""
    anna = (await make_staff("anna.k")).as_actor()
    bob = (await make_staff("bob.n")).as_actor()
    await store.chats.set_display_name(SYSTEM, "anna.k", "Anna")
    await store.chats.set_display_name(SYSTEM, "bob.n", "Robert")
    notice = await store.notices.current("chat", "en")
    chat = (await store.chats.open(notice.id, "en")).chat.id  # an English chat: the copy is Polish still
    await store.chats.post_resident(chat, "Dzień dobry, pytanie o podatek.")
    clock.advance(minutes=1)
    await store.chats.accept(anna, chat)
    await store.chats.post_consultant(anna, chat, "Już sprawdzam.")
    clock.advance(minutes=1)
    await store.chats.transfer(anna, chat, bob)
    await store.chats.post_consultant(bob, chat, "Termin mija 15 marca.")
    clock.advance(minutes=1, seconds=5)
    await store.chats.close(bob, chat, "information_given")
    # an older system line with no event (a log-in name in its text) is not the resident's: left out
    legacy = "Konsultant anna.k przejął rozmowę (information_given)."
    async with store.db.write() as tx:
        await tx.execute(
            "INSERT INTO messages(conversation_id, seq, sender, text, at) VALUES (?, 99, 'system', ?, ?)",
            (chat, legacy, "2026-03-02T09:04:00.000000Z"),
        )
    req = await store.requests.register(
        people.dpo,
        chat_request(
            kind="copy", asked="copy", justification="", received_on=date(2026, 3, 2), hint={"date": "2026-03-02"}
        ),
    )
    await store.requests.link(people.dpo, req.id, chat)
    await store.requests.grant(people.dpo, req.id)
    await store.requests.prepare_export(people.dpo, req.id, "Adres e-mail z wniosku podany w czacie.")
    await store.requests.confirm_export(people.director, req.id, "Sprawdzono: ten sam adres i godzina.")
    result = await store.requests.export_copy(people.dpo, req.id, tmp_path)
    text = (result.path / f"chat-{chat}.txt").read_text(encoding="utf-8")
    data = (result.path / f"chat-{chat}.json").read_text(encoding="utf-8")
    for exported in (text, data):
        for word in ("anna.k", "bob.n", "information_given", "przejął", "przekazał", "zakończył", "Mieszkaniec"):
            assert word not in exported, (word, exported)
        assert not re.search(r"\d{2}:\d{2}(:\d{2}(\.\d+)?)?Z", exported), exported  # no UTC timestamp
        assert "+00:00" not in exported
        for code in ('"resident"', '"consultant"', '"system"', "resident:", "consultant:", "system:"):
            assert code not in exported, (code, exported)
    # 09:00 UTC is 10:00 in Warsaw (settings.timezone): the lines at their local times, in Polish
    assert text.startswith("Zapis czatu nr ") and "Europe/Warsaw" in text.splitlines()[0]
    assert "[2 mar 2026, 10:00:00] Informacja: Zaakceptowano informację o przetwarzaniu danych osobowych" in text
    assert "[2 mar 2026, 10:00:00] Osoba pisząca: Dzień dobry, pytanie o podatek." in text
    assert "[2 mar 2026, 10:01:00] Informacja: Połączono z konsultantem. Odpowiada: Anna." in text
    assert "[2 mar 2026, 10:01:00] Anna: Już sprawdzam." in text
    assert "[2 mar 2026, 10:02:00] Informacja: Rozmowa została przekazana. Odpowiada teraz: Robert." in text
    assert "[2 mar 2026, 10:02:00] Robert: Termin mija 15 marca." in text
    assert text.rstrip().endswith("[2 mar 2026, 10:03:05] Informacja: Czat zakończony przez konsultanta.")
    lines = json.loads(data)
    assert [m["seq"] for m in lines] == [1, 2, 3, 4, 5, 6, 7, 8]  # the legacy line 99 is not there
    assert lines[4] == {
        "seq": 5,
        "at": "2026-03-02T10:01:00+01:00",
        "sender": "Anna",
        "text": "Już sprawdzam.",
    }
    assert lines[-1]["text"] == "Czat zakończony przez konsultanta." and lines[-1]["sender"] == "Informacja"


@pytest.mark.ordinance("GDPR 15")
async def test_copy_refusal_writes_the_letter_and_illegal_copy_moves_fail(store, people):
    req = await store.requests.register(people.dpo, call_request(kind="copy", asked="copy", justification=""))
    with pytest.raises(InvalidTransition):
        await store.requests.export_copy(people.dpo, req.id, store.settings.data_dir)
    with pytest.raises(InvalidTransition, match="no linked conversation"):
        await store.requests.grant(people.dpo, req.id)
    req = await store.requests.refuse(people.dpo, req.id, "Nie odnaleziono nagrania.")
    with pytest.raises(InvalidTransition):
        await store.requests.grant(people.dpo, req.id)
    with pytest.raises(InvalidTransition):
        await store.requests.withdraw(people.dpo, req.id)
    assert req.state == "refused"


# -- the register -------------------------------------------------------------------------------------


async def test_register_filters_and_csv(store, people):
    a = await store.requests.register(people.registrar, call_request(requester_name='=HYPERLINK("x")'))
    b = await store.requests.register(people.registrar, chat_request())
    await store.requests.withdraw(people.registrar, b.id)
    assert [r.number for r in await store.requests.list(people.director, channel="call")] == [a.number]
    assert [r.number for r in await store.requests.list(people.director, state="withdrawn")] == [b.number]
    assert [r.number for r in await store.requests.list(people.director, state="open")] == [a.number]
    with pytest.raises(InvalidInput):
        await store.requests.list(people.director, state="lost")
    with pytest.raises(NotPermitted):
        await store.requests.list(people.head)
    text = await store.requests.register_csv(people.director)
    lines = text.splitlines()
    assert lines[0].startswith("number,kind,state") and len(lines) == 3
    assert "'=HYPERLINK" in text  # a spreadsheet does not run the requester's name as a formula
    assert await audit_log(store, action="requests.export_csv", outcome="ok")


async def test_department_head_sees_only_their_departments_requests(store, people):
    req = await store.requests.register(people.registrar, call_request())
    await store.requests.link(
        people.registrar, req.id, await insert_call(store, at=CALL_AT, number=PHONE, department="WO")
    )
    assert [r.id for r in await store.requests.inbox(people.head)] == [req.id]
    assert await store.requests.inbox(people.other_head) == []
    assert (await store.requests.get(people.head, req.id)).request.id == req.id
    with pytest.raises(NotPermitted):
        await store.requests.get(people.other_head, req.id)
    with pytest.raises(NotPermitted):
        await store.requests.get(people.consultant, req.id)
    assert len(await audit_log(store, action="requests.view", outcome="refused")) == 2


COPY_STATES = [
    "registered",
    "granted",
    "export_prepared",
    "export_confirmed",
    "exported",
    "refused",
    "closed",
    "withdrawn",
]
COPY_ILLEGAL = [(s, a) for s in COPY_STATES for a in ACTIONS if a not in TRANSITIONS["copy"][s]]


async def _copy_to_state(store, people, tmp_path, state):
    req = await store.requests.register(people.dpo, call_request(kind="copy", asked="copy", justification=""))
    if state == "registered":
        return req
    if state == "withdrawn":
        return await store.requests.withdraw(people.dpo, req.id)
    await store.requests.link(people.dpo, req.id, await insert_call(store, at=CALL_AT, number=PHONE))
    if state == "refused":
        return await store.requests.refuse(people.dpo, req.id, "Nie.")
    req = await store.requests.grant(people.dpo, req.id)
    if state == "granted":
        return req
    req = await store.requests.prepare_export(people.dpo, req.id)
    if state == "export_prepared":
        return req
    req = await store.requests.confirm_export(people.attendee, req.id)
    if state == "export_confirmed":
        return req
    await store.requests.export_copy(people.dpo, req.id, tmp_path)
    req = await store.requests._get(req.id)
    return req if state == "exported" else await store.requests.close(people.dpo, req.id)


@pytest.mark.ordinance("GDPR 15")
@pytest.mark.parametrize("state, action", COPY_ILLEGAL)
async def test_every_illegal_copy_transition_is_refused(store, people, tmp_path, state, action):
    req = await _copy_to_state(store, people, tmp_path, state)
    before = await request_state(store, req.id)
    r, p = store.requests, people
    attempts = {
        "grant": lambda: r.grant(p.dpo, req.id),
        "refuse": lambda: r.refuse(p.dpo, req.id, "Nie."),
        "opinion": lambda: r.give_opinion(p.dpo, req.id, "dpo", "favourable", "Tak."),
        "extend": lambda: r.extend(p.dpo, req.id, 1, "Powód."),
        "withdraw": lambda: r.withdraw(p.dpo, req.id),
        "close": lambda: r.close(p.dpo, req.id),
        "start_session": lambda: r.start_session(p.director, req.id),
        "end_session": lambda: r.end_session(p.director, req.id, [p.attendee.staff_id]),
        "link": lambda: r.link(p.dpo, req.id, 1),
        "export": lambda: r.export_copy(p.dpo, req.id, tmp_path),
    }
    with pytest.raises(InvalidTransition):
        await attempts[action]()
    assert await request_state(store, req.id) == before


@pytest.mark.ordinance("§6")
async def test_the_real_purge_spares_a_linked_conversation_until_the_request_closes(store, people, clock):
    retention = pytest.importorskip("store.retention")  # noqa: F841 - the retention area's purge
    req, call = await ready_for_decision(store, people)
    await store.requests.refuse(people.director, req.id, "Nie.")
    clock.now = CALL_AT + timedelta(days=200)  # past purge_after (6 months)
    result = await store.retention.purge(SYSTEM)
    assert result.calls == 0 and result.held == 1
    assert (await store.archive.details(SYSTEM, call)).held
    await store.requests.close(people.director, req.id)
    result = await store.retention.purge(SYSTEM)
    assert result.calls == 1
    with pytest.raises(ConversationNotFound):
        await store.archive.details(SYSTEM, call)


async def test_steps_that_name_a_person_refuse_the_host_account(store, people):
    with pytest.raises(InvalidInput, match="signed-in staff member"):
        await store.requests.register(SYSTEM, call_request())
    req, _ = await ready_for_decision(store, people)
    with pytest.raises(InvalidInput, match="signed-in staff member"):
        await store.requests.refuse(SYSTEM, req.id, "Nie.")
    assert (await store.requests.get(SYSTEM, req.id)).request.state == "awaiting_decision"


async def test_the_audit_log_holds_no_resident_content(store, people, tmp_path):
    req, call = await ready_for_decision(store, people)
    await store.requests.extend(people.director, req.id, 1, "Powód przedłużenia XYZ.")
    await store.requests.refuse(people.director, req.id, "Uzasadnienie odmowy QWE.")
    await store.requests.get(people.director, req.id)
    rows = await audit_log(store)
    dump = "\n".join(
        " ".join(json.dumps(v, ensure_ascii=False) if k == "details" else str(v) for k, v in asdict(r).items())
        for r in rows
    )
    for secret in (
        "Zażółć",
        "Łąkowa",
        "601234567",
        "Chcę sprawdzić",
        "Brak przeszkód",
        "Zgoda wydziału",
        "XYZ",
        "QWE",
        "podatek",
    ):
        assert secret not in dump, secret
    assert {
        "requests.register",
        "requests.link",
        "requests.opinion_dpo",
        "requests.opinion_department",
        "requests.extend",
        "requests.refuse",
        "requests.letter",
        "requests.view",
    } <= {r.action for r in rows}


async def test_control_characters_are_dropped_from_register_fields(store, people):
    """A pasted escape sequence or C1 character never reaches the register, the TUI or a letter."""
    req = await store.requests.register(
        people.registrar,
        call_request(
            requester_name="Jan\x1b[31m Kowalski\x8b\x00", requester_address="ul. Długa 1\n70-001 Szczecin\x07"
        ),
    )
    assert req.requester_name == "Jan[31m Kowalski"
    assert req.requester_address == "ul. Długa 1\n70-001 Szczecin"
