"""The request lifecycle as one table: every move refused from a wrong state and for an actor without the
permission, `allowed_actions` for each viewer (and the detail screen offering exactly those), and the one
text cleaning every free-text field of a request goes through."""

from __future__ import annotations

import csv
import io
from datetime import date, datetime, timezone

import pytest
from textual.app import App

from store.errors import InvalidInput, InvalidTransition, NotPermitted
from store.models import Actor, Role
from store.policy import Permission, allowed
from store.requests import (
    ACTIONS,
    KIND_STATES,
    MOVES,
    STATE_LABELS,
    STEPS,
    TRANSITIONS,
    AccessRequest,
    Facts,
    RequestInput,
    State,
    allowed_actions,
    clean_text,
)
from store.requests import lifecycle
from tests.fixtures.audit_log import audit_log
from tests.fixtures.requests import CALL_AT, PHONE, call_request, insert_call, request_state
from tests.fixtures.store import SYSTEM
from tests.fixtures.tui import SIZE, wait_until
from tests.test_requests_store import SESSION_AT, _copy_to_state, _to_state, ready_for_decision
from tui.context import TuiContext
from tui.screens.requests import _STEPS, RequestDetailScreen

NUMBER = "CIM/2026/0042"


def request_in(kind: str, state: str, **changes) -> AccessRequest:
    """A request record as the register reads it back, in `state`."""
    values = dict(
        id=42,
        number=NUMBER,
        kind=kind,
        state=state,
        received_on=date(2026, 3, 1),
        due_on=date(2026, 4, 1),
        extended_until=None,
        extension_reason=None,
        requester_name="Jan Kowalski",
        requester_address="ul. Długa 1",
        requester_email=None,
        requester_phone=PHONE,
        channel="call",
        hint={"date": "2026-02-24"},
        justification="Powód.",
        asked="listen" if kind == "access" else "copy",
        delivery="post",
        registered_by=1,
        registered_at=datetime(2026, 3, 1, 9, tzinfo=timezone.utc),
        decision=None,
        decision_reasons=None,
        decided_by=None,
        decided_at=None,
        session_at=None,
        session_place=None,
        session_started_at=None,
        session_ended_at=None,
        session_notes=None,
        closed_at=None,
        withdrawn_at=None,
        ineligible_reason=None,
        exported_at=None,
        export_path=None,
    )
    values.update(changes)
    return AccessRequest(**values)


CONSULTANT = Actor(staff_id=900, name="konsultant", roles=frozenset({Role.CONSULTANT}))
ROWS = [(m.action, m.kind, s) for m in (*MOVES, *STEPS) for s in m.sources]
WRONG = [
    (action, kind, state)
    for action in ACTIONS
    for kind, states in KIND_STATES.items()
    for state in states
    if (action, kind, state) not in ROWS
]


# -- the table itself ------------------------------------------------------------------------------------


def test_the_table_covers_every_state_and_every_action_has_its_rules():
    for kind, states in KIND_STATES.items():
        assert set(TRANSITIONS[kind]) == {s.value for s in states}
        for moves in TRANSITIONS[kind].values():
            assert set(moves.values()) <= {s.value for s in states}
    assert {m.action for m in (*MOVES, *STEPS)} == set(ACTIONS)
    assert set(STATE_LABELS) == {s.value for s in State}


@pytest.mark.ordinance("§4.3", "§4.4", "§4.5", "§4.6")
@pytest.mark.parametrize("action, kind, state", WRONG)
def test_every_action_is_refused_from_a_wrong_state_with_a_clear_error(action, kind, state):
    facts = Facts(request=request_in(kind, state, session_ended_at=CALL_AT))
    with pytest.raises(InvalidTransition) as caught:
        lifecycle.check(action, facts, "dpo")
    message = str(caught.value)
    assert NUMBER in message
    assert STATE_LABELS[state] in message or "no ended listening session" in message
    assert action not in allowed_actions(SYSTEM, facts)


@pytest.mark.ordinance("§4.3", "§4.4", "§4.5", "§4.6")
@pytest.mark.parametrize("action, kind, state", ROWS)
def test_every_action_needs_its_permission(action, kind, state):
    facts = Facts(request=request_in(kind, state))
    refusal = lifecycle.refusal(CONSULTANT, action, facts, "dpo")
    assert refusal is not None and not allowed(CONSULTANT, refusal.permission)
    assert action not in allowed_actions(CONSULTANT, facts)
    assert lifecycle.refusal(SYSTEM, action, facts, "dpo") is None  # the host account may, the rule aside


@pytest.mark.parametrize("action, kind, state", [r for r in ROWS if r[0] in TRANSITIONS[r[1]][r[2]]])
def test_a_legal_move_leads_where_the_table_says(action, kind, state):
    facts = Facts(request=request_in(kind, state, opinions_given=frozenset({"department"})), linked=1)
    assert lifecycle.check(action, facts, "dpo") == TRANSITIONS[kind][state][action]


@pytest.mark.ordinance("§4.3")
def test_the_first_opinion_stays_registered_and_the_second_moves_on():
    first = Facts(request=request_in("access", "registered"), linked=1)
    assert lifecycle.check("opinion", first, "dpo") == "registered"
    second = Facts(request=request_in("access", "registered", opinions_given=frozenset({"dpo"})), linked=1)
    assert lifecycle.check("opinion", second, "department") == "awaiting_decision"
    with pytest.raises(InvalidTransition, match="already been given"):
        lifecycle.check("opinion", second, "dpo")


@pytest.mark.ordinance("§4.3", "§4.6", "GDPR 15")
def test_the_rules_beyond_a_permission_name_who_and_why():
    head = Actor(staff_id=7, name="kierownik", roles=frozenset({Role.DEPARTMENT_HEAD}), department="WK")
    facts = Facts(request=request_in("access", "registered"), departments=frozenset({"WO"}), linked=1)
    refusal = lifecycle.refusal(head, "opinion", facts, "department")
    assert refusal.permission is Permission.GIVE_DEPARTMENT_OPINION
    assert refusal.message == "kierownik is not the head of the department concerned (WO)"
    assert "opinion" not in allowed_actions(head, facts)

    clerk = Actor(staff_id=8, name="swiadek", roles=frozenset({Role.DESIGNATED}))
    granted = Facts(request=request_in("access", "granted"), attendees=frozenset({9}))
    assert (
        "neither the director nor a designated attendee" in lifecycle.refusal(clerk, "start_session", granted).message
    )
    assert allowed_actions(clerk, Facts(request=request_in("access", "granted"), attendees=frozenset({8}))) == (
        "start_session",
    )

    prepared = Facts(request=request_in("copy", "export_prepared"), prepared_by=8)
    assert "four-eyes" in lifecycle.refusal(clerk, "confirm_export", prepared).message
    confirmed = Facts(request=request_in("copy", "export_confirmed"), prepared_by=1, confirmed_by=8)
    dpo_and_clerk = Actor(staff_id=8, name="swiadek", roles=frozenset({Role.DESIGNATED, Role.DPO}))
    assert "four-eyes" in lifecycle.refusal(dpo_and_clerk, "export", confirmed).message
    assert "export" not in allowed_actions(dpo_and_clerk, confirmed)


@pytest.mark.ordinance("§4.6")
def test_the_session_record_is_offered_once_and_only_after_a_session():
    director = Actor(staff_id=3, name="dyrektor", roles=frozenset({Role.BOI_DIRECTOR}))
    refused_then_closed = Facts(request=request_in("access", "closed"))
    assert "sign_record" not in allowed_actions(director, refused_then_closed)
    held = Facts(request=request_in("access", "session_held", session_ended_at=CALL_AT))
    assert allowed_actions(director, held) == ("close", "sign_record")
    signed = Facts(request=request_in("access", "closed", session_ended_at=CALL_AT), session_recorded=True)
    assert allowed_actions(director, signed) == ()
    assert lifecycle.check("sign_record", signed) == "closed"  # a later sign-off writes a new version


def test_the_host_account_is_not_offered_steps_that_name_a_person():
    facts = Facts(request=request_in("access", "awaiting_decision"), linked=1)
    assert allowed_actions(SYSTEM, facts) == ("unlink", "withdraw")
    with pytest.raises(InvalidInput, match="signed-in staff member"):
        raise lifecycle.person_missing(SYSTEM, "grant")


# -- the same refusals through the store -----------------------------------------------------------------


async def _attempt(store, actor, req, action, tmp_path, attendee):
    r = store.requests
    steps = {
        "link": lambda: r.link(actor, req.id, 1),
        "unlink": lambda: r.unlink(actor, req.id, 1),
        "opinion": lambda: r.give_opinion(actor, req.id, "dpo", "favourable", "Tak."),
        "grant": lambda: r.grant(actor, req.id, session_at=SESSION_AT, place="Sala", attendee_ids=[attendee]),
        "refuse": lambda: r.refuse(actor, req.id, "Nie."),
        "extend": lambda: r.extend(actor, req.id, 1, "Powód."),
        "withdraw": lambda: r.withdraw(actor, req.id),
        "close": lambda: r.close(actor, req.id),
        "start_session": lambda: r.start_session(actor, req.id),
        "end_session": lambda: r.end_session(actor, req.id, [attendee]),
        "prepare_export": lambda: r.prepare_export(actor, req.id, "Bo tak."),
        "confirm_export": lambda: r.confirm_export(actor, req.id, "Bo tak."),
        "cancel_export": lambda: r.cancel_export(actor, req.id),
        "export": lambda: r.export_copy(actor, req.id, tmp_path),
        "link_receipt": lambda: r.link_by_receipt(actor, req.id, "CZ-2026-02-24-ABCD", "AAAA-AAAA-AAAA-AAAA"),
        "open_content": lambda: r.open_for_session(actor, req.id, 1),
        "sign_record": lambda: r.sign_session_record(actor, req.id),
    }
    return await steps[action]()


STORE_ROWS = [(a, k, s.value) for a, k, s in ROWS if s not in (State.CLOSED, State.WITHDRAWN)]


@pytest.mark.ordinance("§4.3", "§4.4", "§4.5", "§4.6", "GDPR 15")
@pytest.mark.parametrize("action, kind, state", STORE_ROWS)
async def test_the_store_refuses_an_actor_without_the_permission_and_audits_it(
    store, people, clock, tmp_path, action, kind, state
):
    if kind == "access":
        req = await _to_state(store, people, clock, state)
    else:
        req = await _copy_to_state(store, people, tmp_path, state)
    before = await request_state(store, req.id)
    with pytest.raises(NotPermitted, match="konsultant is not permitted to requests: |konsultant is neither"):
        await _attempt(store, people.consultant, req, action, tmp_path, people.attendee.staff_id)
    assert await request_state(store, req.id) == before
    refused = await audit_log(store, action=lifecycle.audit_action(action, "dpo"), outcome="refused", request_id=req.id)
    assert len(refused) == 1 and refused[0].actor_name == "konsultant"


# -- allowed_actions for each viewer ----------------------------------------------------------------------


@pytest.mark.ordinance("§4.3", "§4.4")
async def test_allowed_actions_differ_by_viewer(store, people):
    fresh = await store.requests.register(people.registrar, call_request())
    offered = {
        who: (await store.requests.get(getattr(people, who), fresh.id)).allowed_actions
        for who in ("registrar", "director", "dpo", "head")
    }
    assert offered == {
        "registrar": ("link", "withdraw"),
        "director": ("link", "extend", "withdraw"),
        "dpo": ("opinion", "withdraw"),
        "head": (),
    }  # the head's opinion waits for the link

    req, _ = await ready_for_decision(store, people)
    detail = await store.requests.get(people.director, req.id)
    assert detail.allowed_actions == ("link", "unlink", "grant", "refuse", "extend", "withdraw")
    assert detail.next_actions == ("link", "unlink", "grant", "refuse", "extend", "withdraw")
    assert (await store.requests.get(people.registrar, req.id)).allowed_actions == ("link", "unlink", "withdraw")
    assert (await store.requests.get(people.dpo, req.id)).allowed_actions == ("withdraw",)
    assert await store.requests.allowed_actions(people.consultant, req.id) == ()

    await store.requests.grant(
        people.director, req.id, session_at=SESSION_AT, place="Sala 12", attendee_ids=[people.attendee.staff_id]
    )
    assert await store.requests.allowed_actions(people.attendee, req.id) == ("start_session",)
    assert await store.requests.allowed_actions(people.registrar, req.id) == ()
    assert await store.requests.allowed_actions(people.director, req.id) == ("start_session",)


class DetailApp(App[None]):
    """The detail screen alone, pushed the way the register pushes it."""

    def __init__(self, ctx: TuiContext, request_id: int) -> None:
        super().__init__()
        self.ctx, self.request_id = ctx, request_id

    async def on_mount(self) -> None:
        await self.push_screen(RequestDetailScreen(self.ctx, self.request_id))


@pytest.mark.ordinance("§4.3", "§4.4")
@pytest.mark.parametrize(
    "viewer, steps",
    [
        ("director", ("link", "unlink", "extend", "withdraw")),
        ("registrar", ("link", "unlink", "withdraw")),
        ("dpo", ("withdraw",)),
        ("head", ("opinion",)),
    ],
)
async def test_the_detail_screen_offers_exactly_the_allowed_actions(store, people, viewer, steps):
    req = await store.requests.register(people.registrar, call_request())
    call = await insert_call(store, at=CALL_AT, number=PHONE, department="WO")
    await store.requests.link(people.registrar, req.id, call)
    await store.requests.give_opinion(people.dpo, req.id, "dpo", "favourable", "Tak.")
    actor = getattr(people, viewer)
    assert await store.requests.allowed_actions(actor, req.id) == steps
    ctx = TuiContext(store=store, settings=store.settings, actor=actor, token="")
    async with DetailApp(ctx, req.id).run_test(size=SIZE) as pilot:
        screen = await wait_until(
            pilot,
            lambda: (
                pilot.app.screen
                if isinstance(pilot.app.screen, RequestDetailScreen) and pilot.app.screen.detail is not None
                else None
            ),
            what="the request's detail",
        )
        await pilot.pause()
        assert screen.detail.allowed_actions == steps
        enabled = {b.binding.action for b in screen.active_bindings.values() if b.enabled}
        offered = {_STEPS[key] for key in _STEPS if key in enabled}
        assert offered == set(steps)
        # what is not offered is not shown in the footer either
        shown = {b.binding.action for b in screen.active_bindings.values()}
        assert {key for key in _STEPS if key in shown} == {key for key, step in _STEPS.items() if step in steps}


# -- one cleaning for every free-text field ------------------------------------------------------------

HOSTILE = "Zgoda\x00\x1b[31m czerwony\x9b2J \u202eodwrócone\u202c \u2066izolat\u2069\r\nlinia 2\ttab\x7f\x85\x07"
CLEANED = "Zgoda[31m czerwony2J odwrócone izolat\nlinia 2\ttab"


def test_clean_text_removes_controls_and_bidi_overrides_and_refuses_over_long_text():
    assert clean_text(HOSTILE, "opinion") == CLEANED
    assert clean_text(HOSTILE, "name", multiline=False) == "Zgoda[31m czerwony2J odwrócone izolatlinia 2tab"
    assert clean_text("a" * 4000 + "\x00" * 50 + "\u202e", "opinion") == "a" * 4000  # counted after cleaning
    with pytest.raises(InvalidInput, match="the opinion is longer than 4000 characters"):
        clean_text("a" * 4001, "opinion")
    with pytest.raises(InvalidInput, match="needs its reasons"):
        clean_text("\x00\u202e \x1b\x9b", "opinion", required=True, missing="an opinion needs its reasons")
    assert clean_text(None, "note") == ""


@pytest.mark.ordinance("§4.3", "§4.5", "§4.6")
async def test_opinions_reasons_notes_and_justifications_are_cleaned_before_they_are_stored(store, people, tmp_path):
    req = await store.requests.register(people.registrar, call_request(requester_name="Jan\u202e Kowalski\x1b"))
    assert req.requester_name == "Jan Kowalski"
    call = await insert_call(store, at=CALL_AT, number=PHONE, department="WO")
    await store.requests.link(people.registrar, req.id, call)
    with pytest.raises(InvalidInput, match="needs its reasons"):
        await store.requests.give_opinion(people.dpo, req.id, "dpo", "favourable", "\x00\u202e\x9b ")
    with pytest.raises(InvalidInput, match="longer than 4000"):
        await store.requests.give_opinion(people.dpo, req.id, "dpo", "favourable", "ż" * 4001)
    await store.requests.give_opinion(people.dpo, req.id, "dpo", "favourable", HOSTILE)
    await store.requests.give_opinion(people.head, req.id, "department", "favourable", HOSTILE)
    extended = await store.requests.extend(people.director, req.id, 1, HOSTILE)
    assert extended.extension_reason == CLEANED
    with pytest.raises(InvalidInput, match="the reasons are longer than 4000"):
        await store.requests.refuse(people.director, req.id, "x" * 4001)
    refused = await store.requests.refuse(people.director, req.id, HOSTILE)
    assert refused.decision_reasons == CLEANED
    opinions = (await store.requests.get(SYSTEM, req.id)).opinions
    assert [o.text for o in opinions] == [CLEANED, CLEANED]

    other = await store.requests.register(people.registrar, call_request())
    withdrawn = await store.requests.withdraw(people.registrar, other.id, HOSTILE)
    assert withdrawn.withdrawal_note == CLEANED

    session, _ = await ready_for_decision(store, people)
    await store.requests.grant(
        people.director,
        session.id,
        session_at=SESSION_AT,
        place="Sala\u202e 12\x00",
        attendee_ids=[people.attendee.staff_id],
    )
    await store.requests.start_session(people.attendee, session.id)
    with pytest.raises(InvalidInput, match="the notes are longer than 4000"):
        await store.requests.end_session(people.attendee, session.id, [people.attendee.staff_id], "n" * 4001)
    ended = await store.requests.end_session(
        people.attendee, session.id, [people.attendee.staff_id], HOSTILE, others=["Anna\u2066 Nowak\x1b[0m"]
    )
    assert ended.session_notes == CLEANED and ended.session_place == "Sala 12"
    assert ended.session_others == ("Anna Nowak[0m",)

    copy = await _copy_to_state(store, people, tmp_path, "granted")
    await store.requests.prepare_export(people.dpo, copy.id, HOSTILE)
    await store.requests.confirm_export(people.attendee, copy.id, HOSTILE)
    approval = (await store.requests.get(people.dpo, copy.id)).approval
    assert (approval.prepare_justification, approval.confirm_justification) == (CLEANED, CLEANED)


# -- the register's CSV: the annex and the receipt ----------------------------------------------------------


def _csv_rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


@pytest.mark.ordinance("§4.1", "§4.2")
async def test_the_register_csv_carries_every_annex_field_and_the_receipt(
    resident, chat_server, make_staff, store, people
):
    from tests.test_desk_resident import ended_chat_receipt

    r, receipt = await ended_chat_receipt(resident)
    proven = await store.requests.register(
        people.registrar,
        RequestInput(
            kind="access",
            channel="chat",
            received_on="2026-03-02",
            requester_name="Jan Kowalski",
            requester_address="ul. Wały Chrobrego 1\n70-500 Szczecin",
            requester_email="jan@example.pl",
            justification="Spór o treść.",
            delivery="email",
            hint={"date": "2026-03-02", "time": "08:30"},
            conversation_reference=receipt["reference"],
            receipt_secret=receipt["secret"],
        ),
    )
    manual = await store.requests.register(people.registrar, call_request(conversation_reference="601 234 567"))
    rows = {row["number"]: row for row in _csv_rows(await store.requests.register_csv(people.director))}
    got = rows[proven.number]
    assert got["requester_name"] == "Jan Kowalski"
    assert got["requester_address"] == "ul. Wały Chrobrego 1\n70-500 Szczecin"
    assert (got["requester_email"], got["requester_phone"], got["channel"]) == ("jan@example.pl", "", "chat")
    assert (got["conversation_date"], got["conversation_time"]) == ("2026-03-02", "08:30")
    assert got["conversation_reference"] == receipt["reference"]
    assert got["receipt_verified"] == "1" and got["receipt_verified_at"].startswith("2026-")
    assert (got["justification"], got["delivery"]) == ("Spór o treść.", "email")
    plain = rows[manual.number]
    assert (plain["receipt_verified"], plain["receipt_verified_at"]) == ("0", "")
    # a leading "+" is quoted like every cell a spreadsheet could run as a formula
    assert plain["conversation_reference"] == "601 234 567" and plain["requester_phone"] == "'" + PHONE
    assert plain["conversation_date"] == "2026-02-24" and plain["conversation_time"] == "10:20"
