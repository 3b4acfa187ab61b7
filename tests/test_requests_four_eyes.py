"""Two people for a copy (GDPR Art. 15): the DPO prepares, a designated employee or the director confirms;
the link to the requester rests on the §4.7 number match or on a justification recorded by both; matching
shows roles that cannot search the archive only what matching needs."""

from __future__ import annotations

from datetime import timedelta

import pytest

from store.errors import InvalidInput, InvalidTransition, NotPermitted
from store.requests import mask_number
from tests.fixtures.audit_log import audit_log
from tests.fixtures.store import SYSTEM
from tests.fixtures.requests import CALL_AT, PHONE, call_request, chat_request, insert_call, insert_chat


async def _granted_copy(store, people, *, number=PHONE, channel="call"):
    if channel == "call":
        req = await store.requests.register(people.dpo, call_request(kind="copy", asked="copy", justification=""))
        conv = await insert_call(store, at=CALL_AT, number=number, department="WO")
    else:
        req = await store.requests.register(people.dpo, chat_request(kind="copy", asked="copy", justification=""))
        conv = await insert_chat(store, at=CALL_AT, lines=[("resident", "jozef@example.pl"), ("consultant", "OK")])
    await store.requests.link(people.dpo, req.id, conv)
    await store.requests.grant(people.dpo, req.id)
    return req, conv


async def _audit(store, action):
    return await audit_log(store, action=action)


@pytest.mark.ordinance("GDPR 15")
async def test_the_four_eyes_export_refuses_one_person_alone(store, people, make_staff, tmp_path):
    tmp_path = tmp_path / "out"
    tmp_path.mkdir()
    both = (await make_staff("iod2", "dpo", "boi_director")).as_actor()  # one person holding both roles
    req, _ = await _granted_copy(store, people)
    with pytest.raises(InvalidTransition, match="cannot export"):
        await store.requests.export_copy(both, req.id, tmp_path)  # nothing prepared, nothing confirmed
    with pytest.raises(InvalidTransition, match="cannot confirm export"):
        await store.requests.confirm_export(people.director, req.id)
    await store.requests.prepare_export(both, req.id)
    with pytest.raises(NotPermitted, match="four-eyes"):
        await store.requests.confirm_export(both, req.id)  # the preparer cannot be the second person
    with pytest.raises(NotPermitted):
        await store.requests.confirm_export(people.head, req.id)  # a department head is not a second person
    with pytest.raises(InvalidInput, match="signed-in staff member"):
        await store.requests.confirm_export(SYSTEM, req.id)  # nor the host account
    with pytest.raises(InvalidTransition):
        await store.requests.export_copy(both, req.id, tmp_path)
    assert not list(tmp_path.iterdir())
    refused = [r for r in await _audit(store, "requests.export_confirm") if r.outcome == "refused"]
    assert len(refused) == 2

    second = (await make_staff("iod3", "dpo", "designated")).as_actor()  # a designated employee, also a DPO
    await store.requests.confirm_export(second, req.id)
    with pytest.raises(NotPermitted, match="four-eyes"):
        await store.requests.export_copy(second, req.id, tmp_path)  # who confirmed does not also make it
    result = await store.requests.export_copy(both, req.id, tmp_path)
    assert result.files
    prepared, confirmed = (
        (await _audit(store, "requests.export_prepare"))[0],
        [r for r in await _audit(store, "requests.export_confirm") if r.outcome == "ok"][0],
    )
    assert (prepared.actor_name, confirmed.actor_name) == ("iod2", "iod3")
    export = [r for r in await _audit(store, "requests.export") if r.outcome == "ok"][0]
    details = export.details
    assert (details["prepared_by"], details["confirmed_by"]) == (both.staff_id, second.staff_id)
    assert list(prepared.details["basis"].values()) == ["number_match"]


@pytest.mark.ordinance("GDPR 15")
@pytest.mark.ordinance("§4.7")
async def test_a_call_from_another_number_needs_a_justification_by_both(store, people, tmp_path):
    req, call = await _granted_copy(store, people, number="+48911111111")
    assert await store.requests.copy_basis(people.dpo, req.id) == {call: "justification"}
    with pytest.raises(InvalidInput, match="§4.7"):
        await store.requests.prepare_export(people.dpo, req.id)
    await store.requests.prepare_export(people.dpo, req.id, "Dzwonił z telefonu żony; potwierdził datę i temat.")
    with pytest.raises(InvalidInput, match="records theirs too"):
        await store.requests.confirm_export(people.director, req.id)
    await store.requests.confirm_export(people.director, req.id, "Rozmawiałem z wnioskodawcą; zgadza się.")
    detail = await store.requests.get(people.dpo, req.id)
    a = detail.approval
    assert (a.prepared_by, a.confirmed_by, a.basis) == ("iod", "dyrektor", {call: "justification"})
    assert a.prepare_justification.startswith("Dzwonił") and a.confirm_justification.startswith("Rozmawiałem")
    confirm = [r for r in await _audit(store, "requests.export_confirm") if r.outcome == "ok"][0]
    assert confirm.purpose.startswith("Rozmawiałem")
    await store.requests.export_copy(people.dpo, req.id, tmp_path)


async def test_a_prepared_copy_waits_in_the_second_persons_inbox_and_can_be_cancelled(store, people):
    req, _ = await _granted_copy(store, people, channel="chat")
    await store.requests.prepare_export(people.dpo, req.id, "E-mail z wniosku w czacie.")
    assert req.id in [r.id for r in await store.requests.inbox(people.attendee)]
    assert req.id in [r.id for r in await store.requests.inbox(people.director)]
    assert req.id not in [r.id for r in await store.requests.inbox(people.head)]
    req = await store.requests.cancel_export(people.dpo, req.id)
    assert req.state == "granted" and (await store.requests.get(people.dpo, req.id)).approval is None
    assert req.id not in [r.id for r in await store.requests.inbox(people.attendee)]
    with pytest.raises(NotPermitted):
        await store.requests.cancel_export(people.head, req.id)


@pytest.mark.ordinance("GDPR 15")
async def test_candidates_show_masked_numbers_and_no_chat_text_search_to_who_cannot_search(store, people, make_staff):
    call_req = await store.requests.register(people.dpo, call_request(kind="copy", asked="copy", justification=""))
    call = await insert_call(store, at=CALL_AT, number=PHONE)
    other = await insert_call(store, at=CALL_AT + timedelta(minutes=5), number="+48912223334")
    seen = {c.conversation_id: c for c in await store.requests.candidates(people.dpo, call_req.id)}
    assert seen[call].resident_number == "+48******567" and seen[call].number_matches
    assert seen[other].resident_number == "+48******334" and not seen[other].number_matches
    # a designated employee searches the archive anyway: full numbers
    full = {c.conversation_id: c for c in await store.requests.candidates(people.registrar, call_req.id)}
    assert full[call].resident_number == PHONE

    chat_req = await store.requests.register(people.dpo, chat_request(kind="copy", asked="copy", justification=""))
    chat = await insert_chat(store, at=CALL_AT - timedelta(minutes=15), lines=[("resident", "jozef@example.pl")])
    (masked,) = [c for c in await store.requests.candidates(people.dpo, chat_req.id) if c.conversation_id == chat]
    assert masked.detail_matches is False  # the DPO's matching does not search what residents wrote
    (searched,) = [
        c for c in await store.requests.candidates(people.registrar, chat_req.id) if c.conversation_id == chat
    ]
    assert searched.detail_matches is True
    audits = [r.details["masked"] for r in await _audit(store, "requests.candidates")]
    assert audits == [True, False, True, False]


@pytest.mark.parametrize(
    ("number", "masked"),
    [
        ("+48601234567", "+48******567"),
        ("601234567", "******567"),
        ("123", "***"),
        (None, None),
        ("", ""),
    ],
)
def test_mask_number(number, masked):
    assert mask_number(number) == masked
