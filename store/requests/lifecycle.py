"""The lifecycle of a request: every move, who may make it, and what must hold first.

A move is a row of `MOVES`: its action, the kind of request, the states it leaves from and the state it
leads to (None: the request stays where it is, as linking does). What an action needs besides the state is
in `ACTIONS`: who may take it (a function of the actor and the request's `Facts`, so "the head of the
department concerned" and "not the person who prepared the copy" are rules here, not in the screens), whether
the record must name a signed-in person, and its guards. `STEPS` are acts that do not move the state
(opening content during the session, signing its record, linking a chat by its receipt) but are offered and
refused the same way.

Nothing here reads the database or writes the audit log: the service loads the facts (repository.py),
asks `refusal` and `check`, audits a refusal and raises it. `allowed_actions(actor, facts)` is the one answer
to "what may this person do with this request now", used by the store, the TUI and the CLI.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable

from ..errors import CimError, IneligibleForGrant, InvalidInput, InvalidTransition, Text, render_message
from ..i18n import N_
from ..models import Actor, Role
from ..policy import Permission, allowed
from .model import (
    ACCESS,
    AWAITING_DECISION,
    CLOSED,
    COPY,
    EXPORT_CONFIRMED,
    EXPORT_PREPARED,
    EXPORTED,
    GRANTED,
    OPINION_KINDS,
    REFUSED,
    REGISTERED,
    SESSION_HELD,
    SESSION_IN_PROGRESS,
    STATE_LABELS,
    WITHDRAWN,
    AccessRequest,
    State,
)


@dataclass(frozen=True)
class Facts:
    """What the rules need to know about a request beyond its own row (read by repository.facts)."""

    request: AccessRequest
    #: the departments the linked conversations concern (§4.3: whose head gives the opinion)
    departments: frozenset[str] = frozenset()
    #: the staff designated to attend the session (§4.6)
    attendees: frozenset[int] = frozenset()
    #: how many conversations are linked
    linked: int = 0
    #: a copy's four-eyes record: who prepared it and who confirmed it (staff ids)
    prepared_by: int | None = None
    confirmed_by: int | None = None
    #: whether a signed session record is among the letters
    session_recorded: bool = False

    @property
    def kind(self) -> str:
        return self.request.kind

    @property
    def state(self) -> str:
        return self.request.state

    @property
    def number(self) -> str:
        return self.request.number


@dataclass(frozen=True)
class Refusal:
    """Why an actor may not take an action: the permission it needs (audited) and, when the rule is more
    than the permission, the sentence that says so."""

    permission: Permission
    msgid: str | None = None  # the sentence's msgid; `params` fill its placeholders
    params: dict = field(default_factory=dict)

    @property
    def message(self) -> str | None:
        """The sentence in the current staff language (None: the permission alone says it)."""
        return render_message(self.msgid, self.params) if self.msgid else None


Who = Callable[[Actor, Facts, "str | None"], "Refusal | None"]
#: a guard: the error that stops the action on this request (with the action's variant), or None
Guard = Callable[[Facts, "str | None"], "CimError | None"]


@dataclass(frozen=True)
class Move:
    """One row of the lifecycle: `action` on a request of `kind` from one of `sources` leads to `target`."""

    action: str
    kind: str
    sources: tuple[State, ...]
    #: None: the request stays in the state it was in
    target: State | None = None
    #: when given, the move reaches `target` only once this holds; until then the request stays
    complete: Callable[[Facts, "str | None"], bool] | None = None


@dataclass(frozen=True)
class Action:
    who: Who
    #: the audit log's name for the action ("{variant}" is the opinion's kind)
    audit: str
    #: the record names the staff member who took it: a host account cannot ("what" for the message)
    person: str | None = None
    guards: tuple[Guard, ...] = ()
    #: whether it is worth offering (allowed_actions only; taking it anyway is refused by a guard or the input)
    offer: Callable[[Actor, Facts], bool] | None = None
    #: the message when the state does not allow it ({number}, {state}, {kind}, {action})
    wrong_state: str = N_("{number} is {state}; a {kind} request in that state cannot {action}")


# -- who may ---------------------------------------------------------------------------------------------


def decider(kind: str) -> Permission:
    """Who decides: the director for §4 access, the DPO for a GDPR Art. 15 copy."""
    return Permission.DECIDE_REQUESTS if kind == ACCESS else Permission.HANDLE_COPY_REQUESTS


def linkers(kind: str) -> tuple[Permission, ...]:
    """Who searches and links conversations: the registering staff; for a copy request also the DPO."""
    if kind == COPY:
        return (Permission.REGISTER_REQUESTS, Permission.HANDLE_COPY_REQUESTS)
    return (Permission.REGISTER_REQUESTS,)


def _any_of(actor: Actor, permissions: Iterable[Permission]) -> Refusal | None:
    permissions = tuple(permissions)
    return None if any(allowed(actor, p) for p in permissions) else Refusal(permissions[0])


def may_register(actor: Actor, kind: str) -> Refusal | None:
    """The registering staff register requests; the DPO registers the copy requests addressed to them."""
    if kind == COPY and allowed(actor, Permission.HANDLE_COPY_REQUESTS):
        return None
    return _any_of(actor, (Permission.REGISTER_REQUESTS,))


def may_view(actor: Actor, facts: Facts) -> Refusal | None:
    """The register's readers; the DPO their copy requests; a head the access requests of their department
    (and those whose conversations name none yet)."""
    if allowed(actor, Permission.VIEW_REQUESTS):
        return None
    if facts.kind == COPY and allowed(actor, Permission.HANDLE_COPY_REQUESTS):
        return None
    if actor.has(Role.DEPARTMENT_HEAD) and facts.kind == ACCESS:
        if not facts.departments or actor.department in facts.departments:
            return None
    return Refusal(Permission.VIEW_REQUESTS)


def may_link(actor: Actor, facts: Facts, variant: str | None = None) -> Refusal | None:
    return _any_of(actor, linkers(facts.kind))


def _deciding(actor: Actor, facts: Facts, variant: str | None) -> Refusal | None:
    return _any_of(actor, (decider(facts.kind),))


def _withdrawing(actor: Actor, facts: Facts, variant: str | None) -> Refusal | None:
    return _any_of(actor, (Permission.REGISTER_REQUESTS, Permission.DECIDE_REQUESTS, Permission.HANDLE_COPY_REQUESTS))


def _opinion_of(actor: Actor, facts: Facts, kind: str) -> Refusal | None:
    permission = Permission.GIVE_DPO_OPINION if kind == "dpo" else Permission.GIVE_DEPARTMENT_OPINION
    if not allowed(actor, permission):
        return Refusal(permission)
    if kind == "department" and not actor.is_system and facts.departments and actor.department not in facts.departments:
        return Refusal(
            permission,
            N_("{name} is not the head of the department concerned ({departments})"),
            {"name": actor.name, "departments": ", ".join(sorted(facts.departments))},
        )
    return None


def _opining(actor: Actor, facts: Facts, variant: str | None) -> Refusal | None:
    """§4.3: the DPO's opinion, or the concerned department head's; without a variant, either will do."""
    refusals = [_opinion_of(actor, facts, kind) for kind in ((variant,) if variant else OPINION_KINDS)]
    return None if any(r is None for r in refusals) else refusals[0]


def _in_session(actor: Actor, facts: Facts, variant: str | None) -> Refusal | None:
    """The director, or a staff member they designated to attend, runs the session (§4.6)."""
    if allowed(actor, Permission.SCHEDULE_SESSIONS) or (
        actor.staff_id is not None and actor.staff_id in facts.attendees
    ):
        return None
    return Refusal(
        Permission.SCHEDULE_SESSIONS,
        N_("{name} is neither the director nor a designated attendee of this session"),
        {"name": actor.name},
    )


def _preparing(actor: Actor, facts: Facts, variant: str | None) -> Refusal | None:
    return _any_of(actor, (Permission.HANDLE_COPY_REQUESTS,))


def _confirming(actor: Actor, facts: Facts, variant: str | None) -> Refusal | None:
    """The second person (a designated employee or the director), never the one who prepared the copy."""
    if not allowed(actor, Permission.CONFIRM_COPY_EXPORT):
        return Refusal(Permission.CONFIRM_COPY_EXPORT)
    if facts.prepared_by is not None and facts.prepared_by == actor.staff_id:
        return Refusal(
            Permission.CONFIRM_COPY_EXPORT,
            N_("{name} prepared this copy; a second person must confirm it (four-eyes)"),
            {"name": actor.name},
        )
    return None


def _exporting(actor: Actor, facts: Facts, variant: str | None) -> Refusal | None:
    """The DPO writes the copy, unless they also confirmed it."""
    if not allowed(actor, Permission.HANDLE_COPY_REQUESTS):
        return Refusal(Permission.HANDLE_COPY_REQUESTS)
    if facts.confirmed_by is not None and facts.confirmed_by == actor.staff_id:
        return Refusal(
            Permission.HANDLE_COPY_REQUESTS,
            N_("{name} confirmed this export and cannot also make it (four-eyes)"),
            {"name": actor.name},
        )
    return None


def _cancelling(actor: Actor, facts: Facts, variant: str | None) -> Refusal | None:
    return _any_of(actor, (Permission.HANDLE_COPY_REQUESTS, Permission.CONFIRM_COPY_EXPORT))


def _signing(actor: Actor, facts: Facts, variant: str | None) -> Refusal | None:
    return _any_of(actor, (Permission.DECIDE_REQUESTS,))


# -- guards ----------------------------------------------------------------------------------------------


def _opinion_needs_a_link(facts: Facts, variant: str | None) -> CimError | None:
    if variant == "department" and facts.linked == 0:
        return InvalidTransition(
            N_("link the conversation to {number} first: the department opinion belongs to the department it concerns"),
            number=facts.number,
        )
    return None


def _opinion_once(facts: Facts, variant: str | None) -> CimError | None:
    if variant in facts.request.opinions_given:
        return InvalidTransition(
            N_("the {variant} opinion on {number} has already been given"), variant=Text(variant), number=facts.number
        )
    return None


def _something_linked(facts: Facts, variant: str | None) -> CimError | None:
    if facts.linked == 0:
        return InvalidTransition(N_("{number} has no linked conversation to grant access to"), number=facts.number)
    return None


def _eligible(facts: Facts, variant: str | None) -> CimError | None:
    """§4.7; a copy's link may instead rest on a justification recorded by both people (prepare/confirm)."""
    if facts.kind == ACCESS and facts.request.ineligible_reason:
        return IneligibleForGrant(
            N_("{number} can only be refused: {ineligible_reason}"),
            number=facts.number,
            ineligible_reason=facts.request.ineligible_reason,
        )
    return None


def _session_ended(facts: Facts, variant: str | None) -> CimError | None:
    if facts.request.session_ended_at is None:
        return InvalidTransition(N_("{number} has no ended listening session to record"), number=facts.number)
    return None


def _both_opinions(facts: Facts, variant: str | None) -> bool:
    """The second opinion (§4.3) moves the request on to the decision."""
    return facts.request.opinions_given | {variant} >= set(OPINION_KINDS)


def _opinion_missing(actor: Actor, facts: Facts) -> bool:
    """An opinion this actor may give is still awaited, and nothing stops it yet."""
    return any(
        _opinion_of(actor, facts, kind) is None
        and all(guard(facts, kind) is None for guard in (_opinion_needs_a_link, _opinion_once))
        for kind in OPINION_KINDS
    )


# -- the table -------------------------------------------------------------------------------------------

#: The states a request of each kind can be in.
KIND_STATES: dict[str, tuple[State, ...]] = {
    ACCESS.value: (
        REGISTERED,
        AWAITING_DECISION,
        GRANTED,
        SESSION_IN_PROGRESS,
        SESSION_HELD,
        REFUSED,
        CLOSED,
        WITHDRAWN,
    ),
    COPY.value: (REGISTERED, GRANTED, EXPORT_PREPARED, EXPORT_CONFIRMED, EXPORTED, REFUSED, CLOSED, WITHDRAWN),
}

_BEFORE_DECISION = (REGISTERED, AWAITING_DECISION)

#: Every move of the lifecycle, in the order the steps are listed to people.
MOVES: tuple[Move, ...] = (
    Move("link", ACCESS, _BEFORE_DECISION),
    Move("link", COPY, (REGISTERED,)),
    Move("unlink", ACCESS, _BEFORE_DECISION),
    Move("unlink", COPY, (REGISTERED,)),
    Move("opinion", ACCESS, (REGISTERED,), AWAITING_DECISION, complete=_both_opinions),
    Move("grant", ACCESS, (AWAITING_DECISION,), GRANTED),
    Move("grant", COPY, (REGISTERED,), GRANTED),
    Move("refuse", ACCESS, (AWAITING_DECISION,), REFUSED),
    Move("refuse", COPY, (REGISTERED,), REFUSED),
    Move("extend", ACCESS, _BEFORE_DECISION),
    Move("extend", COPY, (REGISTERED,)),
    Move("withdraw", ACCESS, _BEFORE_DECISION, WITHDRAWN),
    Move("withdraw", COPY, (REGISTERED,), WITHDRAWN),
    Move("start_session", ACCESS, (GRANTED,), SESSION_IN_PROGRESS),
    Move("end_session", ACCESS, (SESSION_IN_PROGRESS,), SESSION_HELD),
    # two people for a copy: the DPO prepares, a designated employee or the director confirms
    Move("prepare_export", COPY, (GRANTED,), EXPORT_PREPARED),
    Move("confirm_export", COPY, (EXPORT_PREPARED,), EXPORT_CONFIRMED),
    Move("export", COPY, (EXPORT_CONFIRMED,), EXPORTED),
    Move("cancel_export", COPY, (EXPORT_PREPARED, EXPORT_CONFIRMED), GRANTED),
    Move("close", ACCESS, (SESSION_HELD, REFUSED), CLOSED),
    Move("close", COPY, (EXPORTED, REFUSED), CLOSED),
)

#: Acts that leave the state as it is, offered and refused like the moves.
STEPS: tuple[Move, ...] = (
    Move("link_receipt", ACCESS, _BEFORE_DECISION),
    Move("link_receipt", COPY, (REGISTERED,)),
    Move("open_content", ACCESS, (SESSION_IN_PROGRESS,)),
    Move("sign_record", ACCESS, (SESSION_HELD, CLOSED)),
)

ACTIONS: dict[str, Action] = {
    "link": Action(may_link, "requests.link", person="linking a conversation"),
    "unlink": Action(may_link, "requests.unlink", offer=lambda actor, facts: facts.linked > 0),
    "opinion": Action(
        _opining,
        "requests.opinion_{variant}",
        person="an opinion",
        guards=(_opinion_needs_a_link, _opinion_once),
        offer=_opinion_missing,
    ),
    "grant": Action(_deciding, "requests.grant", person="a decision or letter", guards=(_something_linked, _eligible)),
    "refuse": Action(_deciding, "requests.refuse", person="a decision or letter"),
    "extend": Action(_deciding, "requests.extend", person="a decision or letter"),
    "withdraw": Action(_withdrawing, "requests.withdraw"),
    "start_session": Action(_in_session, "requests.session_start"),
    "end_session": Action(_in_session, "requests.session_end"),
    "prepare_export": Action(_preparing, "requests.export_prepare", person="preparing a copy"),
    "confirm_export": Action(_confirming, "requests.export_confirm", person="confirming a copy"),
    "export": Action(_exporting, "requests.export", person="exporting a copy"),
    "cancel_export": Action(_cancelling, "requests.export_cancel", person="cancelling a copy"),
    "close": Action(_deciding, "requests.close"),
    "link_receipt": Action(
        may_link,
        "requests.link",
        person="linking a conversation",
        offer=lambda actor, facts: facts.request.channel == "chat" and facts.request.receipt_verified_at is None,
    ),
    "open_content": Action(
        _in_session,
        "requests.session_playback",
        wrong_state=N_("{number} is {state}; content is opened only during its session"),
    ),
    "sign_record": Action(
        _signing,
        "requests.session_record",
        person="signing the session record",
        guards=(_session_ended,),
        offer=lambda actor, facts: not facts.session_recorded and facts.request.session_ended_at is not None,
        wrong_state=N_("{number} has no ended listening session to record"),
    ),
}

_ROWS: dict[tuple[str, str], dict[str, Move]] = {}
for _m in (*MOVES, *STEPS):
    for _s in _m.sources:
        _ROWS.setdefault((_m.kind, _s), {})[_m.action] = _m

#: kind -> state -> {action: next state}, the moves alone (what `TRANSITIONS` was before this table).
TRANSITIONS: dict[str, dict[str, dict[str, str]]] = {
    kind: {
        state.value: {m.action: (m.target or state).value for m in MOVES if m.kind == kind and state in m.sources}
        for state in states
    }
    for kind, states in KIND_STATES.items()
}


# -- asking the table ------------------------------------------------------------------------------------


def moves(kind: str, state: str) -> tuple[str, ...]:
    """The moves the state allows, whoever asks (RequestDetail.next_actions)."""
    return tuple(TRANSITIONS.get(kind, {}).get(state, {}))


def states_for(kind: str | None, *actions: str) -> tuple[str, ...]:
    """The states from which any of `actions` can be taken (for either kind when `kind` is None)."""
    found = {s.value for m in (*MOVES, *STEPS) if m.action in actions and kind in (None, m.kind) for s in m.sources}
    return tuple(s.value for s in State if s.value in found)


def audit_action(action: str, variant: str | None = None) -> str:
    return ACTIONS[action].audit.format(variant=variant)


def refusal(actor: Actor, action: str, facts: Facts, variant: str | None = None) -> Refusal | None:
    """Why `actor` may not take `action` on this request, or None when they may (the state aside)."""
    return ACTIONS[action].who(actor, facts, variant)


def person_missing(actor: Actor, action: str) -> InvalidInput | None:
    """Steps whose record names the staff member who took them (registered_by, opinions, letters) need a person."""
    what = ACTIONS[action].person
    if what is not None and actor.staff_id is None:
        return InvalidInput(
            N_("{what} must be done by a signed-in staff member, not by the host account"), what=Text(what)
        )
    return None


def check(action: str, facts: Facts, variant: str | None = None) -> str:
    """The state `action` leads this request to; raises InvalidTransition (or the guard's error) when the
    request's state or a guard does not allow it."""
    move = _ROWS.get((facts.kind, facts.state), {}).get(action)
    if move is None:
        raise InvalidTransition(
            ACTIONS[action].wrong_state,
            number=facts.number,
            state=Text(STATE_LABELS.get(facts.state, facts.state)),
            kind=Text(facts.kind),
            action=Text(action.replace("_", " ")),
        )
    for guard in ACTIONS[action].guards:
        error = guard(facts, variant)
        if error is not None:
            raise error
    if move.target is None or (move.complete is not None and not move.complete(facts, variant)):
        return facts.state
    return move.target.value


def allowed_actions(actor: Actor, facts: Facts) -> tuple[str, ...]:
    """What `actor` may do with this request now: the state allows it, their permission does, and it is worth
    offering. Guards that depend on what is typed in (the §4.7 eligibility, say) are left to the step."""
    rows = _ROWS.get((facts.kind, facts.state), {})
    return tuple(
        name
        for name, action in ACTIONS.items()
        if name in rows
        and action.who(actor, facts, None) is None
        and person_missing(actor, name) is None
        and (action.offer is None or action.offer(actor, facts))
    )
