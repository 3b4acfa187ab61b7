"""What a request is: its kinds, states, channels and delivery routes, and the records read back from the register."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Mapping

from ..i18n import N_


class Kind(StrEnum):
    """§4 access (listening / reading) or a GDPR Art. 15 copy."""

    ACCESS = "access"
    COPY = "copy"


class State(StrEnum):
    """Where a request stands; the moves between states are in lifecycle.py."""

    REGISTERED = "registered"
    AWAITING_DECISION = "awaiting_decision"
    GRANTED = "granted"
    REFUSED = "refused"
    SESSION_IN_PROGRESS = "session_in_progress"
    SESSION_HELD = "session_held"
    EXPORTED = "exported"
    EXPORT_PREPARED = "export_prepared"
    EXPORT_CONFIRMED = "export_confirmed"
    CLOSED = "closed"
    WITHDRAWN = "withdrawn"


ACCESS, COPY = Kind.ACCESS, Kind.COPY
KINDS = tuple(k.value for k in Kind)  # plain strings: click.Choice and messages list them
CHANNELS = ("call", "chat")
#: How the reply is delivered, for new registrations: by post, through e-Doręczenia (the public registered
#: electronic delivery, ustawa z dnia 18 listopada 2020 r. o doręczeniach elektronicznych; it replaced ePUAP
#: as the office's electronic route), by e-mail (GDPR Art. 12(3): a request made electronically), in person.
DELIVERIES = ("post", "e_doreczenia", "email", "in_person")
#: Routes that older records may carry and that are still shown, but no longer chosen.
LEGACY_DELIVERIES = ("epuap",)
DELIVERY_LABELS = {
    "post": "list (poczta)",
    "e_doreczenia": "e-Doręczenia",
    "email": "e-mail",
    "in_person": "odbiór osobisty",
    "epuap": "ePUAP (dawna droga, do 2025 r.)",
}
#: The address for e-Doręczenia (adres do doręczeń elektronicznych): AE:PL-12345-67890-ABCDE-12.
ADE = re.compile(r"^AE:PL-\d{5}-\d{5}-[A-Z]{5}-\d{2}$")
VERDICTS = ("favourable", "unfavourable")
OPINION_KINDS = ("dpo", "department")

REGISTERED = State.REGISTERED
AWAITING_DECISION = State.AWAITING_DECISION
GRANTED = State.GRANTED
REFUSED = State.REFUSED
SESSION_IN_PROGRESS = State.SESSION_IN_PROGRESS
SESSION_HELD = State.SESSION_HELD
EXPORTED = State.EXPORTED
EXPORT_PREPARED = State.EXPORT_PREPARED
EXPORT_CONFIRMED = State.EXPORT_CONFIRMED
CLOSED = State.CLOSED
WITHDRAWN = State.WITHDRAWN

#: States in which the answer to the requester is still owed (GDPR Art. 12(3) deadline runs).
ANSWER_PENDING = {
    ACCESS: {REGISTERED, AWAITING_DECISION},
    COPY: {REGISTERED, GRANTED, EXPORT_PREPARED, EXPORT_CONFIRMED},
}
#: States in which the request is ended (its conversations are no longer held).
FINAL_STATES = frozenset({CLOSED, WITHDRAWN})
#: States in which the request is open (its conversations are held).
OPEN_STATES = set(State) - FINAL_STATES
#: English source words; staff screens show them translated (store.i18n `_(label)`), the JSON keeps the codes.
STATE_LABELS: dict[str, str] = {
    s.value: label
    for s, label in (
        (REGISTERED, N_("registered")),
        (AWAITING_DECISION, N_("awaiting decision")),
        (GRANTED, N_("granted")),
        (REFUSED, N_("refused")),
        (SESSION_IN_PROGRESS, N_("session in progress")),
        (SESSION_HELD, N_("session held")),
        (EXPORTED, N_("exported")),
        (CLOSED, N_("closed")),
        (WITHDRAWN, N_("withdrawn")),
        (EXPORT_PREPARED, N_("export prepared, awaiting the second person")),
        (EXPORT_CONFIRMED, N_("export confirmed")),
    )
}
#: How a linked conversation is tied to the requester for a copy: the §4.7 number match, or a
#: justification recorded by both people (a participant receipt is not built yet).
NUMBER_MATCH, JUSTIFICATION = "number_match", "justification"
HOLD_BASIS = "§4 request"
MAX_EXTENSION_MONTHS = 2
MAX_TEXT = 4000
MAX_NAME = 300
MAX_ADDRESS = 1000


# -- records ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class AccessRequest:
    id: int
    number: str
    kind: str
    state: str
    received_on: date
    due_on: date
    extended_until: date | None
    extension_reason: str | None
    requester_name: str
    requester_address: str
    requester_email: str | None
    requester_phone: str | None
    channel: str
    hint: dict[str, Any]
    justification: str
    asked: str
    delivery: str
    registered_by: int
    registered_at: datetime
    decision: str | None
    decision_reasons: str | None
    decided_by: int | None
    decided_at: datetime | None
    session_at: datetime | None
    session_place: str | None
    session_started_at: datetime | None
    session_ended_at: datetime | None
    session_notes: str | None
    closed_at: datetime | None
    withdrawn_at: datetime | None
    ineligible_reason: str | None
    exported_at: datetime | None
    export_path: str | None
    withdrawal_note: str | None = None
    #: how the register says the requester is addressed ("pani", "pan"); None = it does not say
    addressed_as: str | None = None
    #: §4.6 session: others present (by name) and the outcome (a key of session_record.SESSION_OUTCOMES)
    session_others: tuple[str, ...] = ()
    session_outcome: str | None = None
    #: computed when read, against the office's local date
    due_soon: bool = False
    overdue: bool = False
    #: which opinions are in ("dpo", "department")
    opinions_given: frozenset[str] = frozenset()
    #: §4.2 annex: the chat's reference (or the call's number) as the requester gave it
    conversation_reference: str | None = None
    #: §4.1: when a receipt pair proved that the requester took part in the chat (None: manual matching)
    receipt_verified_at: datetime | None = None

    @property
    def effective_due(self) -> date:
        return self.extended_until or self.due_on

    @property
    def eligible(self) -> bool:
        return self.ineligible_reason is None

    @property
    def state_label(self) -> str:
        return STATE_LABELS.get(self.state, self.state)


@dataclass(frozen=True)
class Candidate:
    """A conversation that may be the one the requester means."""

    conversation_id: int
    channel: str
    created_at: datetime
    ended_at: datetime | None
    resident_number: str | None
    number_identifiable: bool | None
    number_matches: bool
    detail_matches: bool
    department: str | None
    consultant: str | None
    duration_s: int | None
    minutes_from_hint: int | None
    linked: bool


@dataclass(frozen=True)
class LinkedConversation:
    conversation_id: int
    channel: str
    created_at: datetime
    resident_number: str | None
    number_identifiable: bool | None
    department: str | None
    linked_at: datetime
    has_recording: bool


@dataclass(frozen=True)
class Opinion:
    kind: str
    staff_id: int
    staff_name: str
    verdict: str
    text: str
    at: datetime


@dataclass(frozen=True)
class Attendee:
    staff_id: int
    name: str
    full_name: str
    present: bool | None


@dataclass(frozen=True)
class LetterRecord:
    id: int
    kind: str
    path: Path
    sha256: str
    created_at: datetime
    #: whether the letter went out with the office's PAdES seal, and the seal certificate's subject
    sealed: bool = False
    sealed_by: str | None = None


@dataclass(frozen=True)
class RequestDetail:
    request: AccessRequest
    conversations: tuple[LinkedConversation, ...]
    opinions: tuple[Opinion, ...]
    attendees: tuple[Attendee, ...]
    letters: tuple[LetterRecord, ...]
    #: the moves the request's state allows (lifecycle.moves), whoever looks
    next_actions: tuple[str, ...]
    #: a copy's four-eyes record while it is prepared or confirmed
    approval: "CopyApproval | None" = None
    #: what the viewer may do now: state and permission (lifecycle.allowed_actions); the TUI offers exactly these
    allowed_actions: tuple[str, ...] = ()


@dataclass(frozen=True)
class CopyApproval:
    """Who prepared a GDPR Art. 15 copy and who confirmed it, and what ties each conversation to the requester."""

    prepared_by: str
    prepared_at: datetime
    basis: dict[int, str]
    prepare_justification: str | None
    confirmed_by: str | None
    confirmed_at: datetime | None
    confirm_justification: str | None


@dataclass(frozen=True)
class TranscriptLine:
    seq: int
    sender: str
    text: str
    at: datetime
    #: a system line's event code and parameters (store/chats.py), rendered in the reader's language
    event: str | None = None
    params: dict | None = None


@dataclass(frozen=True)
class SessionMaterial:
    """What is played or read to the requester during the session (§4.6)."""

    conversation_id: int
    channel: str
    recording_path: Path | None
    transcript: tuple[TranscriptLine, ...]


@dataclass(frozen=True)
class ExportResult:
    path: Path
    files: tuple[dict[str, Any], ...]
    manifest_sha256: str


@dataclass(frozen=True)
class RequestInput:
    """What the registering person types in (validated by `Requests.register`)."""

    kind: str
    channel: str
    received_on: date | str
    requester_name: str
    requester_address: str
    asked: str = ""
    requester_phone: str | None = None
    requester_email: str | None = None
    justification: str = ""
    delivery: str = "post"
    #: how letters address the requester: "pani", "pan", or "" when the register does not say (neutral forms)
    addressed_as: str = ""
    #: what identifies the conversation: date (YYYY-MM-DD), time (HH:MM, local), duration_min,
    #: consultant, topic, name_or_email (chats)
    hint: Mapping[str, Any] = field(default_factory=dict)
    #: §4.2 annex: the chat's reference from its receipt (CZ-YYYY-MM-DD-XXXX), or the call's number as written
    conversation_reference: str = ""
    #: §4.1: the code shown once with the chat's receipt; with a valid reference it proves the requester took
    #: part in that chat, and the chat is linked at once (store/resident_desk.py verify_receipt)
    receipt_secret: str = ""
