"""Residents' requests: access to a recording or chat (§4 of the ordinance) and GDPR Art. 15 copies.

Each request moves through an explicit state machine (`TRANSITIONS`); every move is a method here
that checks the permission, refuses an illegal move with `InvalidTransition`, and audits a legal
one in the same transaction as the change. Conversations linked to an open request are held
against the retention purge until the request is closed or withdrawn.
"""

from __future__ import annotations

import asyncio
import csv
import dataclasses
import hashlib
import io
import json
import os
import re
import shutil
import zipfile
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any, Iterable, Mapping
from zoneinfo import ZoneInfo

import aiosqlite

from . import letters as L
from . import session_record as SR
from .audit import AuditLog
from .clock import Clock, add_months_to_date, from_iso, to_iso
from .db import Database
from .errors import (
    ConversationNotFound, IneligibleForGrant, InvalidInput, InvalidTransition, NotPermitted, RequestNotFound,
)
from .i18n import N_
from .keys import open_plain, words
from .models import Actor, Role
from .phone import normalise_number
from .policy import Permission, allowed
from .seal import Seal
from .settings import Settings, case_mark

ACCESS, COPY = "access", "copy"
KINDS = (ACCESS, COPY)
CHANNELS = ("call", "chat")
#: How the reply is delivered, for new registrations: by post, through e-Doręczenia (the public registered
#: electronic delivery, ustawa z dnia 18 listopada 2020 r. o doręczeniach elektronicznych; it replaced ePUAP
#: as the office's electronic route), by e-mail (GDPR Art. 12(3): a request made electronically), in person.
DELIVERIES = ("post", "e_doreczenia", "email", "in_person")
#: Routes that older records may carry and that are still shown, but no longer chosen.
LEGACY_DELIVERIES = ("epuap",)
DELIVERY_LABELS = {"post": "list (poczta)", "e_doreczenia": "e-Doręczenia", "email": "e-mail",
                   "in_person": "odbiór osobisty", "epuap": "ePUAP (dawna droga, do 2025 r.)"}
#: The address for e-Doręczenia (adres do doręczeń elektronicznych): AE:PL-12345-67890-ABCDE-12.
_ADE = re.compile(r"^AE:PL-\d{5}-\d{5}-[A-Z]{5}-\d{2}$")
VERDICTS = ("favourable", "unfavourable")
OPINION_KINDS = ("dpo", "department")
#: The department a conversation concerns (§4.3: whose head gives the opinion): a chat's topic's department
#: when its topic names one (store/desk.py), else the conversation's own (a call's route or extension).
_DEPARTMENT_OF = ("coalesce((SELECT t.department_id FROM chat_topics t WHERE t.id = c.topic_id), "
                  "c.department_id)")

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

#: The whole lifecycle: for each kind, state -> {action: next state}. An action absent here is illegal.
#: `opinion` stays in `registered` until the second opinion moves it on (see `give_opinion`); `link`,
#: `unlink` and `extend` do not change the state.
TRANSITIONS: dict[str, dict[str, dict[str, str]]] = {
    ACCESS: {
        REGISTERED: {"link": REGISTERED, "unlink": REGISTERED, "opinion": AWAITING_DECISION,
                     "extend": REGISTERED, "withdraw": WITHDRAWN},
        AWAITING_DECISION: {"link": AWAITING_DECISION, "unlink": AWAITING_DECISION, "grant": GRANTED,
                            "refuse": REFUSED, "extend": AWAITING_DECISION, "withdraw": WITHDRAWN},
        GRANTED: {"start_session": SESSION_IN_PROGRESS},
        SESSION_IN_PROGRESS: {"end_session": SESSION_HELD},
        SESSION_HELD: {"close": CLOSED},
        REFUSED: {"close": CLOSED},
        CLOSED: {},
        WITHDRAWN: {},
    },
    COPY: {
        REGISTERED: {"link": REGISTERED, "unlink": REGISTERED, "grant": GRANTED, "refuse": REFUSED,
                     "extend": REGISTERED, "withdraw": WITHDRAWN},
        # two people for a copy: the DPO prepares, a designated employee or the director confirms
        GRANTED: {"prepare_export": EXPORT_PREPARED},
        EXPORT_PREPARED: {"confirm_export": EXPORT_CONFIRMED, "cancel_export": GRANTED},
        EXPORT_CONFIRMED: {"export": EXPORTED, "cancel_export": GRANTED},
        EXPORTED: {"close": CLOSED},
        REFUSED: {"close": CLOSED},
        CLOSED: {},
        WITHDRAWN: {},
    },
}

#: States in which the answer to the requester is still owed (GDPR Art. 12(3) deadline runs).
ANSWER_PENDING = {ACCESS: {REGISTERED, AWAITING_DECISION}, COPY: {REGISTERED, GRANTED, EXPORT_PREPARED,
                                                                  EXPORT_CONFIRMED}}
#: States in which the request is open (its conversations are held).
OPEN_STATES = {REGISTERED, AWAITING_DECISION, GRANTED, SESSION_IN_PROGRESS, SESSION_HELD, EXPORTED, REFUSED,
               EXPORT_PREPARED, EXPORT_CONFIRMED}
#: English source words; staff screens show them translated (store.i18n `_(label)`), the JSON keeps the codes.
STATE_LABELS = {
    REGISTERED: N_("registered"), AWAITING_DECISION: N_("awaiting decision"), GRANTED: N_("granted"),
    REFUSED: N_("refused"), SESSION_IN_PROGRESS: N_("session in progress"), SESSION_HELD: N_("session held"),
    EXPORTED: N_("exported"), CLOSED: N_("closed"), WITHDRAWN: N_("withdrawn"),
    EXPORT_PREPARED: N_("export prepared, awaiting the second person"), EXPORT_CONFIRMED: N_("export confirmed"),
}
#: How a linked conversation is tied to the requester for a copy: the §4.7 number match, or a
#: justification recorded by both people (a participant receipt is not built yet).
NUMBER_MATCH, JUSTIFICATION = "number_match", "justification"
HOLD_BASIS = "§4 request"
MAX_EXTENSION_MONTHS = 2
MAX_TEXT = 4000
MAX_NAME = 300
MAX_ADDRESS = 1000
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


# -- domain objects ---------------------------------------------------------------------------------

_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


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
    #: the actions the lifecycle allows now (not checked against the viewer's permissions)
    next_actions: tuple[str, ...]
    #: a copy's four-eyes record while it is prepared or confirmed
    approval: "CopyApproval | None" = None


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


# -- the service --------------------------------------------------------------------------------------

class Requests:
    """The request register and every transition of a request."""

    def __init__(self, db: Database, audit: AuditLog, settings: Settings, clock: Clock, keys: Any = None) -> None:
        self.db = db
        self.audit = audit
        #: the data keys (store/keys.py): transcripts are opened here, behind the request's checks
        self.keys = keys
        self.settings = settings
        self.clock = clock
        #: the office's seal for letters (store/seal.py), set by Store.open; None = letters go out unsigned
        self.seal: "Seal | None" = None
        #: store.resident_desk (receipts of chats), set by Store: a receipt pair links its chat to the request (§4.1)
        self.resident_desk: Any = None

    # -- time -----------------------------------------------------------------------------------

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.settings.timezone)

    def today(self) -> date:
        """The office's local date: deadlines are days in Poland, not in UTC."""
        return self.clock().astimezone(self.tz).date()

    @staticmethod
    def due_date(received_on: date) -> date:
        """GDPR Art. 12(3): one month from receipt; 31 January is due on 28 (29) February."""
        return add_months_to_date(received_on, 1)

    # -- registering ----------------------------------------------------------------------------

    async def register(self, actor: Actor, data: RequestInput) -> AccessRequest:
        """Register a request; the number is CIM/<year>/<nnnn>, counted per year of receipt."""
        if data.kind == COPY and allowed(actor, Permission.HANDLE_COPY_REQUESTS):
            pass  # the DPO registers the copy requests addressed to them
        else:
            await self.audit.guard(actor, Permission.REGISTER_REQUESTS, "requests.register")
        _person(actor, "registering a request")
        clean = self._validate(data)
        reference, receipt_chat = await self._receipt(actor, data, clean)
        now = self.clock()
        async with self.db.write() as tx:
            year = clean["received_on"][:4]
            prefix = f"CIM/{year}/"
            row = await (await tx.execute(
                "SELECT number FROM access_requests WHERE number LIKE ? ORDER BY number DESC LIMIT 1",
                (prefix + "%",))).fetchone()
            seq = int(row["number"].rsplit("/", 1)[1]) + 1 if row else 1
            number = f"{prefix}{seq:04d}"
            cur = await tx.execute(
                "INSERT INTO access_requests(number, kind, state, received_on, due_on, requester_name, "
                "requester_address, requester_email, requester_phone, channel, conversation_hint, justification, "
                "asked, delivery, registered_by, registered_at, updated_at, addressed_as) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (number, clean["kind"], REGISTERED, clean["received_on"], clean["due_on"], clean["requester_name"],
                 clean["requester_address"], clean["requester_email"], clean["requester_phone"], clean["channel"],
                 json.dumps(clean["hint"], ensure_ascii=False, sort_keys=True), clean["justification"],
                 clean["asked"], clean["delivery"], actor.staff_id, to_iso(now), to_iso(now), clean["addressed_as"]))
            request_id = cur.lastrowid
            await self.audit.append(tx, actor, "requests.register", target_kind="request", target_id=request_id,
                                    request_id=request_id,
                                    details={"number": number, "kind": clean["kind"], "channel": clean["channel"]})
            if reference:
                await tx.execute("UPDATE access_requests SET conversation_reference = ? WHERE id = ?",
                                 (reference, request_id))
            if receipt_chat is not None:
                await self._link_by_receipt(tx, actor, request_id, number, receipt_chat, to_iso(now))
        return await self._get(request_id)

    async def _receipt(self, actor: Actor, data: RequestInput, clean: dict[str, Any]) -> tuple[str, int | None]:
        """(the annex's conversation reference, the chat a valid receipt pair proves) — §4.1, §4.2."""
        from .resident_desk import normalise_reference

        raw = _CONTROL_CHARS.sub("", str(data.conversation_reference or "")).strip()
        if len(raw) > 64:
            raise InvalidInput("the chat reference or call number is longer than 64 characters")
        secret = str(data.receipt_secret or "").strip()
        if not secret:
            return normalise_reference(raw) or raw, None
        if clean["channel"] != "chat":
            raise InvalidInput("a chat code belongs to a chat request; this request concerns a call")
        if not raw:
            raise InvalidInput("the chat code needs the chat reference (CZ-YYYY-MM-DD-XXXX) beside it")
        chat_id = await self.resident_desk.verify_receipt(actor, raw, secret)
        return normalise_reference(raw), chat_id

    async def _link_by_receipt(self, tx: aiosqlite.Connection, actor: Actor, request_id: int, number: str,
                               chat_id: int, now: str) -> None:
        """Link the chat a receipt pair proved (§4.1) and hold it against the purge, as `link` does."""
        await tx.execute("INSERT INTO request_conversations(request_id, conversation_id, linked_by, linked_at) "
                         "VALUES (?, ?, ?, ?)", (request_id, chat_id, actor.staff_id, now))
        await tx.execute("INSERT INTO holds(conversation_id, legal_basis, case_reference, request_id, set_by, set_at) "
                         "VALUES (?, ?, ?, ?, ?, ?)", (chat_id, HOLD_BASIS, number, request_id, actor.staff_id, now))
        await tx.execute("UPDATE access_requests SET receipt_verified_at = ? WHERE id = ?", (now, request_id))
        await self.audit.append(tx, actor, "requests.link", target_kind="conversation", target_id=chat_id,
                                request_id=request_id, details={"eligible": True, "by_receipt": True})

    def _validate(self, data: RequestInput) -> dict[str, Any]:
        def text(value: Any, label: str, *, required: bool, limit: int = MAX_TEXT) -> str:
            value = "" if value is None else str(value)
            # C0/C1 control characters (a pasted escape sequence, a stray NUL) have no place in a
            # register or a letter; newlines and tabs stay for multi-line fields
            value = _CONTROL_CHARS.sub("", value).strip()
            if required and not value:
                raise InvalidInput(f"the {label} is required")
            if len(value) > limit:
                raise InvalidInput(f"the {label} is longer than {limit} characters")
            return value

        if data.kind not in KINDS:
            raise InvalidInput(f"the kind must be one of: {', '.join(KINDS)}")
        if data.channel not in CHANNELS:
            raise InvalidInput("the channel must be 'call' or 'chat'")
        received = _parse_date(data.received_on, "date received")
        if received > self.today():
            raise InvalidInput(f"the date received ({received.isoformat()}) is in the future")
        name = text(data.requester_name, "requester's name", required=True, limit=MAX_NAME)
        address = text(data.requester_address, "correspondence address", required=True, limit=MAX_ADDRESS)
        email = text(data.requester_email, "e-mail or e-Doręczenia address", required=False, limit=MAX_NAME) or None
        if email and "@" in email and not _EMAIL.match(email):
            raise InvalidInput(f"{email!r} is not an e-mail address")
        if email and "@" not in email:
            ade = re.sub(r"\s+", "", email).upper()
            if email.startswith("/"):
                raise InvalidInput("ePUAP is no longer a delivery route for public bodies: give the requester's "
                                   "address for e-Doręczenia (AE:PL-12345-67890-ABCDE-12) or an e-mail address")
            if not _ADE.match(ade):
                raise InvalidInput(f"{email!r} is neither an e-mail address (name@domain) nor an address for "
                                   "e-Doręczenia (AE:PL-12345-67890-ABCDE-12)")
            email = ade
        raw_phone = text(data.requester_phone, "phone number", required=False, limit=64)
        phone = None
        if raw_phone:
            phone = normalise_number(raw_phone)
            if phone is None:
                raise InvalidInput(f"{raw_phone!r} is not a phone number (expected e.g. 601 234 567 or +48 601 234 567)")
        if data.channel == "call" and phone is None:
            raise InvalidInput("for a call, the phone number the call was made from is required (§4.7)")
        expected_ask = "copy" if data.kind == COPY else ("listen" if data.channel == "call" else "read")
        asked = text(data.asked, "what is asked", required=False, limit=16) or expected_ask
        if asked != expected_ask:
            raise InvalidInput(f"a {data.kind} request for a {data.channel} asks to {expected_ask!r}, not {asked!r}")
        # §4.1: listening or reading only in exceptional, justified cases; an Art. 15 copy needs no reason.
        justification = text(data.justification, "justification", required=data.kind == ACCESS)
        delivery = text(data.delivery, "delivery", required=True, limit=16)
        if delivery in LEGACY_DELIVERIES:
            raise InvalidInput("ePUAP is no longer a delivery route for public bodies: choose e_doreczenia "
                               "(e-Doręczenia) for electronic delivery")
        if delivery not in DELIVERIES:
            raise InvalidInput(f"the reply is delivered by one of: {', '.join(DELIVERIES)}")
        if delivery == "email" and not (email and "@" in email):
            raise InvalidInput("delivery by email needs the e-mail address")
        if delivery == "e_doreczenia" and not (email and _ADE.match(email)):
            raise InvalidInput("delivery by e-Doręczenia needs the requester's address for electronic delivery "
                               "(AE:PL-12345-67890-ABCDE-12)")
        addressed_as = text(data.addressed_as, "form of address", required=False, limit=8).lower() or None
        if addressed_as is not None and addressed_as not in L.FORMS:
            raise InvalidInput("the form of address is 'pani', 'pan' or empty (the letters then use neutral forms)")
        hint = self._validate_hint(data.hint, received, data.channel)
        return {"kind": data.kind, "channel": data.channel, "received_on": received.isoformat(),
                "due_on": self.due_date(received).isoformat(), "requester_name": name,
                "requester_address": address, "requester_email": email, "requester_phone": phone,
                "justification": justification, "asked": asked, "delivery": delivery, "hint": hint,
                "addressed_as": addressed_as}

    def _validate_hint(self, hint: Mapping[str, Any], received: date, channel: str) -> dict[str, Any]:
        if not isinstance(hint, Mapping):
            raise InvalidInput("the conversation details must be a mapping")
        allowed_keys = {"date", "time", "duration_min", "consultant", "topic", "name_or_email"}
        unknown = sorted(set(hint) - allowed_keys)
        if unknown:
            raise InvalidInput(f"unknown conversation details: {', '.join(unknown)}")
        out: dict[str, Any] = {}
        if not hint.get("date"):
            raise InvalidInput("the date of the conversation is required")
        day = _parse_date(hint["date"], "date of the conversation")
        if day > received:
            raise InvalidInput("the conversation cannot be later than the date the request was received")
        out["date"] = day.isoformat()
        if hint.get("time"):
            t = str(hint["time"]).strip()
            if not re.fullmatch(r"([01]?\d|2[0-3]):[0-5]\d", t):
                raise InvalidInput(f"the approximate time {t!r} must be HH:MM")
            out["time"] = f"{int(t.split(':')[0]):02d}:{t.split(':')[1]}"
        if hint.get("duration_min") not in (None, ""):
            try:
                minutes = int(hint["duration_min"])
            except (TypeError, ValueError):
                raise InvalidInput("the approximate duration must be whole minutes") from None
            if not 0 <= minutes <= 24 * 60:
                raise InvalidInput("the approximate duration must be between 0 and 1440 minutes")
            out["duration_min"] = minutes
        for key in ("consultant", "topic", "name_or_email"):
            value = str(hint.get(key) or "").replace("\x00", "").strip()
            if len(value) > MAX_NAME:
                raise InvalidInput(f"the {key.replace('_', ' ')} is longer than {MAX_NAME} characters")
            if value:
                out[key] = value
        return out

    # -- reading ----------------------------------------------------------------------------------

    async def _get(self, request_id: int) -> AccessRequest:
        row = await self.db.fetchone("SELECT * FROM access_requests WHERE id = ?", (request_id,))
        if row is None:
            raise RequestNotFound(f"no request with id {request_id}")
        opinions = await self.db.fetchall("SELECT kind FROM request_opinions WHERE request_id = ?", (request_id,))
        return self._request(row, frozenset(o["kind"] for o in opinions))

    def _request(self, r: Any, opinions: frozenset[str] = frozenset()) -> AccessRequest:
        received, due = date.fromisoformat(r["received_on"]), date.fromisoformat(r["due_on"])
        extended = date.fromisoformat(r["extended_until"]) if r["extended_until"] else None
        effective = extended or due
        pending = r["state"] in ANSWER_PENDING[r["kind"]]
        today = self.today()
        return AccessRequest(
            id=r["id"], number=r["number"], kind=r["kind"], state=r["state"], received_on=received, due_on=due,
            extended_until=extended, extension_reason=r["extension_reason"], requester_name=r["requester_name"],
            requester_address=r["requester_address"], requester_email=r["requester_email"],
            requester_phone=r["requester_phone"], channel=r["channel"], hint=json.loads(r["conversation_hint"]),
            justification=r["justification"], asked=r["asked"], delivery=r["delivery"],
            registered_by=r["registered_by"], registered_at=from_iso(r["registered_at"]), decision=r["decision"],
            decision_reasons=r["decision_reasons"], decided_by=r["decided_by"], decided_at=_dt(r["decided_at"]),
            session_at=_dt(r["session_at"]), session_place=r["session_place"],
            session_started_at=_dt(r["session_started_at"]), session_ended_at=_dt(r["session_ended_at"]),
            session_notes=r["session_notes"], closed_at=_dt(r["closed_at"]), withdrawn_at=_dt(r["withdrawn_at"]),
            ineligible_reason=r["ineligible_reason"], exported_at=_dt(r["exported_at"]),
            export_path=r["export_path"], withdrawal_note=r["withdrawal_note"], addressed_as=r["addressed_as"],
            session_others=tuple(json.loads(r["session_others"])) if r["session_others"] else (),
            session_outcome=r["session_outcome"],
            overdue=pending and today > effective,
            due_soon=pending and today <= effective
            and (effective - today).days <= self.settings.request_due_soon_days,
            opinions_given=opinions,
            conversation_reference=r["conversation_reference"] if "conversation_reference" in r.keys() else None,
            receipt_verified_at=_dt(r["receipt_verified_at"]) if "receipt_verified_at" in r.keys() else None,
        )

    async def _concerned_departments(self, request_id: int) -> set[str]:
        rows = await self.db.fetchall(
            "SELECT DISTINCT d.code FROM request_conversations rc JOIN conversations c ON c.id = rc.conversation_id "
            "JOIN departments d ON d.id = " + _DEPARTMENT_OF + " WHERE rc.request_id = ?", (request_id,))
        return {r["code"] for r in rows}

    async def _may_view(self, actor: Actor, request: AccessRequest) -> bool:
        if allowed(actor, Permission.VIEW_REQUESTS):
            return True
        if request.kind == COPY and allowed(actor, Permission.HANDLE_COPY_REQUESTS):
            return True
        if actor.has(Role.DEPARTMENT_HEAD) and request.kind == ACCESS:
            concerned = await self._concerned_departments(request.id)
            return not concerned or actor.department in concerned
        return False

    async def get(self, actor: Actor, request_id: int) -> RequestDetail:
        """The request with its conversations, opinions, attendees and letters; the view is audited."""
        request = await self._get(request_id)
        if not await self._may_view(actor, request):
            await self._refuse(actor, "requests.view", request_id, Permission.VIEW_REQUESTS)
        rows = await self.db.fetchall(
            "SELECT c.id, c.channel, c.created_at, c.resident_number, c.number_identifiable, d.code AS department, "
            "rc.linked_at, (SELECT count(*) FROM recordings r WHERE r.conversation_id = c.id) AS recordings "
            "FROM request_conversations rc JOIN conversations c ON c.id = rc.conversation_id "
            "LEFT JOIN departments d ON d.id = " + _DEPARTMENT_OF + " WHERE rc.request_id = ? ORDER BY c.created_at",
            (request_id,))
        conversations = tuple(LinkedConversation(
            conversation_id=r["id"], channel=r["channel"], created_at=from_iso(r["created_at"]),
            resident_number=r["resident_number"], number_identifiable=_bool(r["number_identifiable"]),
            department=r["department"], linked_at=from_iso(r["linked_at"]), has_recording=r["recordings"] > 0)
            for r in rows)
        opinions = tuple(Opinion(kind=r["kind"], staff_id=r["staff_id"], staff_name=r["name"], verdict=r["verdict"],
                                 text=r["text"], at=from_iso(r["at"])) for r in await self.db.fetchall(
            "SELECT o.*, s.name FROM request_opinions o JOIN staff s ON s.id = o.staff_id WHERE request_id = ? "
            "ORDER BY o.at", (request_id,)))
        attendees = tuple(Attendee(staff_id=r["staff_id"], name=r["name"], full_name=r["full_name"],
                                   present=_bool(r["present"])) for r in await self.db.fetchall(
            "SELECT a.staff_id, a.present, s.name, s.full_name FROM request_attendees a JOIN staff s "
            "ON s.id = a.staff_id WHERE a.request_id = ? ORDER BY s.name", (request_id,)))
        letter_rows = await self.db.fetchall(
            "SELECT * FROM letters WHERE request_id = ? ORDER BY id", (request_id,))
        letter_records = tuple(LetterRecord(id=r["id"], kind=r["kind"], path=self.settings.letters_dir / r["path"],
                                            sha256=r["sha256"], created_at=from_iso(r["created_at"]),
                                            sealed=bool(r["sealed"]), sealed_by=r["sealed_by"])
                               for r in letter_rows)
        async with self.db.write() as tx:
            await self.audit.append(tx, actor, "requests.view", target_kind="request", target_id=request_id,
                                    request_id=request_id)
        return RequestDetail(request=request, conversations=conversations, opinions=opinions, attendees=attendees,
                             letters=letter_records, next_actions=tuple(TRANSITIONS[request.kind][request.state]),
                             approval=await self._approval_record(request_id))

    async def get_by_number(self, actor: Actor, number: str) -> RequestDetail:
        row = await self.db.fetchone("SELECT id FROM access_requests WHERE number = ?", (number.strip(),))
        if row is None:
            raise RequestNotFound(f"no request numbered {number!r}")
        return await self.get(actor, row["id"])

    async def list(
        self,
        actor: Actor,
        *,
        state: str | None = None,
        kind: str | None = None,
        channel: str | None = None,
        due_before: date | None = None,
        flagged_only: bool = False,
    ) -> list[AccessRequest]:
        """The register, oldest due first; `flagged_only` keeps the requests due soon or overdue."""
        await self.audit.guard(actor, Permission.VIEW_REQUESTS, "requests.list")
        where, params = [], []
        if state is not None:
            if state not in STATE_LABELS and state != "open":
                raise InvalidInput(f"unknown state {state!r}; states are: open, {', '.join(STATE_LABELS)}")
            if state == "open":
                where.append(f"state NOT IN ('{CLOSED}', '{WITHDRAWN}')")
            else:
                where.append("state = ?")
                params.append(state)
        if kind is not None:
            if kind not in KINDS:
                raise InvalidInput(f"the kind must be one of: {', '.join(KINDS)}")
            where.append("kind = ?")
            params.append(kind)
        if channel is not None:
            if channel not in CHANNELS:
                raise InvalidInput("the channel must be 'call' or 'chat'")
            where.append("channel = ?")
            params.append(channel)
        if due_before is not None:
            where.append("coalesce(extended_until, due_on) < ?")
            params.append(due_before.isoformat())
        sql = "SELECT * FROM access_requests" + (" WHERE " + " AND ".join(where) if where else "")
        sql += " ORDER BY coalesce(extended_until, due_on), number"
        result = await self._with_opinions(await self.db.fetchall(sql, params))
        if flagged_only:
            result = [r for r in result if r.due_soon or r.overdue]
        return result

    async def _with_opinions(self, rows: list[Any]) -> list[AccessRequest]:
        if not rows:
            return []
        ids = [r["id"] for r in rows]
        given: dict[int, set[str]] = {}
        for o in await self.db.fetchall(
                f"SELECT request_id, kind FROM request_opinions WHERE request_id IN ({','.join('?' * len(ids))})", ids):
            given.setdefault(o["request_id"], set()).add(o["kind"])
        return [self._request(r, frozenset(given.get(r["id"], ()))) for r in rows]

    async def inbox(self, actor: Actor) -> list[AccessRequest]:
        """What waits for this person: the DPO's opinions and copy requests, a head's department
        opinions, the director's decisions, sessions and closings, the registrars' linking."""
        rows: dict[int, Any] = {}

        async def add(sql: str, params: Iterable[Any] = ()) -> None:
            for r in await self.db.fetchall(sql, params):
                rows[r["id"]] = r

        if actor.has(Role.DPO) or actor.is_system:
            await add("SELECT * FROM access_requests a WHERE kind = 'access' AND state = 'registered' AND NOT EXISTS "
                      "(SELECT 1 FROM request_opinions o WHERE o.request_id = a.id AND o.kind = 'dpo')")
            await add("SELECT * FROM access_requests WHERE kind = 'copy' AND state NOT IN ('closed', 'withdrawn')")
        if actor.has(Role.DEPARTMENT_HEAD) or actor.is_system:
            # A head sees their department's requests; a request none of whose conversations names a
            # department is shown to every head (whoever answers first gives the opinion).
            await add(
                "SELECT * FROM access_requests a WHERE kind = 'access' AND state = 'registered' "
                "AND EXISTS (SELECT 1 FROM request_conversations rc WHERE rc.request_id = a.id) "
                "AND NOT EXISTS (SELECT 1 FROM request_opinions o WHERE o.request_id = a.id AND o.kind = 'department') "
                "AND (? IS NULL OR EXISTS (SELECT 1 FROM request_conversations rc JOIN conversations c "
                "ON c.id = rc.conversation_id JOIN departments d ON d.id = " + _DEPARTMENT_OF + " "
                "WHERE rc.request_id = a.id AND d.code = ?) OR NOT EXISTS (SELECT 1 FROM request_conversations rc "
                "JOIN conversations c ON c.id = rc.conversation_id WHERE rc.request_id = a.id "
                "AND " + _DEPARTMENT_OF + " IS NOT NULL))",
                (None if actor.is_system else actor.department, actor.department))
        if actor.has(Role.BOI_DIRECTOR) or actor.is_system:
            await add("SELECT * FROM access_requests WHERE kind = 'access' AND state IN "
                      "('awaiting_decision', 'granted', 'session_in_progress', 'session_held', 'refused')")
        if allowed(actor, Permission.REGISTER_REQUESTS) and not actor.is_system:
            await add("SELECT * FROM access_requests a WHERE state IN ('registered', 'awaiting_decision') AND NOT "
                      "EXISTS (SELECT 1 FROM request_conversations rc WHERE rc.request_id = a.id)")
        if allowed(actor, Permission.CONFIRM_COPY_EXPORT) and actor.staff_id is not None:
            await add("SELECT a.* FROM access_requests a JOIN copy_approvals p ON p.request_id = a.id WHERE "
                      "a.state = 'export_prepared' AND p.prepared_by <> ?", (actor.staff_id,))
        if actor.staff_id is not None:
            await add("SELECT a.* FROM access_requests a JOIN request_attendees t ON t.request_id = a.id "
                      "WHERE t.staff_id = ? AND a.state IN ('granted', 'session_in_progress')", (actor.staff_id,))
        result = await self._with_opinions(list(rows.values()))
        return sorted(result, key=lambda r: (r.effective_due, r.number))

    async def register_csv(self, actor: Actor, **filters: Any) -> str:
        """The register as CSV for the director (cells that a spreadsheet would run as formulas are quoted)."""
        requests = await self.list(actor, **filters)
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["number", "kind", "state", "channel", "asked", "received_on", "due_on", "extended_until",
                         "effective_due", "due_soon", "overdue", "requester_name", "eligible", "decision",
                         "decided_at", "session_at", "closed_at", "withdrawn_at"])
        for r in requests:
            writer.writerow([_cell(v) for v in (
                r.number, r.kind, r.state, r.channel, r.asked, r.received_on, r.due_on, r.extended_until or "",
                r.effective_due, int(r.due_soon), int(r.overdue), r.requester_name, int(r.eligible),
                r.decision or "", _iso_or_blank(r.decided_at), _iso_or_blank(r.session_at),
                _iso_or_blank(r.closed_at), _iso_or_blank(r.withdrawn_at))])
        async with self.db.write() as tx:
            await self.audit.append(tx, actor, "requests.export_csv", details={"rows": len(requests), "filters": {
                k: str(v) for k, v in filters.items() if v is not None}})
        return out.getvalue()

    # -- matching and linking ----------------------------------------------------------------------

    async def candidates(self, actor: Actor, request_id: int, *, limit: int = 50) -> list[Candidate]:
        """Conversations that may be the one meant: calls by number and time window, chats by time and details."""
        request = await self._get(request_id)
        await self._guard_any(actor, _linkers(request), "requests.candidates", request_id)
        day = date.fromisoformat(request.hint["date"])
        window = timedelta(minutes=self.settings.request_match_window_minutes)
        day_start = datetime.combine(day, time(0), self.tz)
        day_end = day_start + timedelta(days=1)
        centre = None
        if request.hint.get("time"):
            hh, mm = (int(x) for x in request.hint["time"].split(":"))
            centre = datetime.combine(day, time(hh, mm), self.tz)
            start, end = centre - window, centre + window
        else:
            start, end = day_start, day_end
        # Roles that cannot search the archive (the DPO, the director) see only what matching needs.
        masked = not allowed(actor, Permission.SEARCH_ARCHIVE)
        linked = {r["conversation_id"] for r in await self.db.fetchall(
            "SELECT conversation_id FROM request_conversations WHERE request_id = ?", (request_id,))}
        base = ("SELECT c.*, d.code AS department, s.name AS consultant FROM conversations c "
                "LEFT JOIN departments d ON d.id = " + _DEPARTMENT_OF + " LEFT JOIN staff s ON s.id = c.consultant_id ")
        if request.channel == "call":
            # within the window, or from the requester's number on that day (people misremember the hour)
            rows = await self.db.fetchall(
                base + "WHERE c.channel = 'call' AND ((c.created_at >= ? AND c.created_at < ?) OR "
                "(c.resident_number = ? AND c.created_at >= ? AND c.created_at < ?)) ORDER BY c.created_at LIMIT 500",
                (_utc(start), _utc(end), request.requester_phone, _utc(day_start - window), _utc(day_end + window)))
            details: set[int] = set()
        else:
            rows = await self.db.fetchall(
                base + "WHERE c.channel = 'chat' AND c.created_at >= ? AND c.created_at < ? "
                "ORDER BY c.created_at LIMIT 500", (_utc(start), _utc(end)))
            needle = (request.hint.get("name_or_email") or "").strip()
            details = set()
            if needle and rows and not masked and self.keys is not None:
                # no search in chat text for who may not search it; for who may: the blind index of
                # residents' words (HMAC with each chat's data key), every word of the detail must occur
                details = await self._blind_match([r["id"] for r in rows], needle)
        result = []
        for r in rows:
            created = from_iso(r["created_at"])
            result.append(Candidate(
                conversation_id=r["id"], channel=r["channel"], created_at=created, ended_at=_dt(r["ended_at"]),
                resident_number=mask_number(r["resident_number"]) if masked else r["resident_number"],
                number_identifiable=_bool(r["number_identifiable"]),
                number_matches=bool(request.requester_phone) and r["resident_number"] == request.requester_phone
                and r["number_identifiable"] == 1,
                detail_matches=r["id"] in details, department=r["department"], consultant=r["consultant"],
                duration_s=r["duration_s"],
                minutes_from_hint=None if centre is None else int(abs((created - centre).total_seconds()) // 60),
                linked=r["id"] in linked))
        result.sort(key=lambda c: (not (c.number_matches or c.detail_matches), c.minutes_from_hint or 0,
                                   c.created_at))
        async with self.db.write() as tx:
            await self.audit.append(tx, actor, "requests.candidates", target_kind="request", target_id=request_id,
                                    request_id=request_id, details={"found": len(result), "masked": masked})
        return result[:limit]

    async def _blind_match(self, ids: list[int], needle: str) -> set[int]:
        """Chats among `ids` whose residents wrote every word of `needle` (store/keys.py `words`), found by
        the keyed blind index; a purged chat's tokens and key are gone, so it can never match."""
        wanted = words(needle)
        if not wanted:
            return set()
        keys = await self.keys.read_keys(ids)
        found: set[int] = set()
        for conversation_id, key in keys.items():
            tokens = [key.token(w) for w in wanted]
            row = await self.db.fetchone(
                f"SELECT count(*) AS n FROM message_words WHERE conversation_id = ? AND token IN "
                f"({','.join('?' * len(tokens))})", (conversation_id, *tokens))
            if row["n"] == len(tokens):
                found.add(conversation_id)
        return found

    async def _texts(self, conversation_id: int, rows: list[Any]) -> list[str]:
        """Transcript texts opened with the conversation's data key (a line not sealed yet is read as it is)."""
        if self.keys is None:
            return [r["text"] for r in rows]
        return await self.keys.texts(conversation_id, rows)

    async def link(self, actor: Actor, request_id: int, conversation_id: int) -> AccessRequest:
        """Link a conversation (and hold it against the purge); §4.7 is checked and recorded at once."""
        await self._guard_any(actor, _linkers(await self._get(request_id)), "requests.link", request_id)
        _person(actor, "linking a conversation")
        async with self.db.write() as tx:
            req = await self._load(tx, request_id)
            self._next(req, "link")
            conv = await (await tx.execute("SELECT id, channel FROM conversations WHERE id = ?",
                                           (conversation_id,))).fetchone()
            if conv is None:
                raise ConversationNotFound(f"no conversation with id {conversation_id}")
            if conv["channel"] != req["channel"]:
                raise InvalidInput(f"the request concerns a {req['channel']}; conversation {conversation_id} is a "
                                   f"{conv['channel']}")
            if await (await tx.execute("SELECT 1 FROM request_conversations WHERE request_id = ? AND "
                                       "conversation_id = ?", (request_id, conversation_id))).fetchone():
                raise InvalidInput(f"conversation {conversation_id} is already linked to {req['number']}")
            now = to_iso(self.clock())
            await tx.execute("INSERT INTO request_conversations(request_id, conversation_id, linked_by, linked_at) "
                             "VALUES (?, ?, ?, ?)",
                             (request_id, conversation_id, actor.staff_id, now))
            await tx.execute(
                "INSERT INTO holds(conversation_id, legal_basis, case_reference, request_id, set_by, set_at) "
                "VALUES (?, ?, ?, ?, ?, ?)", (conversation_id, HOLD_BASIS, req["number"], request_id,
                                              actor.staff_id, now))
            reason = await self._eligibility(tx, req)
            await tx.execute("UPDATE access_requests SET ineligible_reason = ?, updated_at = ? WHERE id = ?",
                             (reason, now, request_id))
            await self.audit.append(tx, actor, "requests.link", target_kind="conversation", target_id=conversation_id,
                                    request_id=request_id, details={"eligible": reason is None})
        return await self._get(request_id)

    async def link_by_receipt(self, actor: Actor, request_id: int, reference: str, secret: str) -> AccessRequest:
        """§4.1: the requester brought the chat's receipt after registering; a valid pair links that chat."""
        request = await self._get(request_id)
        await self._guard_any(actor, _linkers(request), "requests.link", request_id)
        _person(actor, "linking a conversation")
        if request.channel != "chat":
            raise InvalidInput("a chat code belongs to a chat request; this request concerns a call")
        chat_id = await self.resident_desk.verify_receipt(actor, reference, secret)
        from .resident_desk import normalise_reference

        async with self.db.write() as tx:
            req = await self._load(tx, request_id)
            self._next(req, "link")
            if await (await tx.execute("SELECT 1 FROM request_conversations WHERE request_id = ? AND "
                                       "conversation_id = ?", (request_id, chat_id))).fetchone():
                raise InvalidInput(f"that chat is already linked to {req['number']}")
            now = to_iso(self.clock())
            await tx.execute("UPDATE access_requests SET conversation_reference = ?, updated_at = ? WHERE id = ?",
                             (normalise_reference(reference), now, request_id))
            await self._link_by_receipt(tx, actor, request_id, req["number"], chat_id, now)
        return await self._get(request_id)

    async def unlink(self, actor: Actor, request_id: int, conversation_id: int) -> AccessRequest:
        """Undo a wrong link before the decision; its automatic hold is released."""
        await self._guard_any(actor, _linkers(await self._get(request_id)), "requests.unlink", request_id)
        async with self.db.write() as tx:
            req = await self._load(tx, request_id)
            self._next(req, "unlink")
            cur = await tx.execute("DELETE FROM request_conversations WHERE request_id = ? AND conversation_id = ?",
                                   (request_id, conversation_id))
            if cur.rowcount == 0:
                raise InvalidInput(f"conversation {conversation_id} is not linked to {req['number']}")
            now = to_iso(self.clock())
            await tx.execute("UPDATE holds SET released_at = ?, released_by = ? WHERE request_id = ? AND "
                             "conversation_id = ? AND released_at IS NULL",
                             (now, actor.staff_id, request_id, conversation_id))
            reason = await self._eligibility(tx, req)
            await tx.execute("UPDATE access_requests SET ineligible_reason = ?, updated_at = ? WHERE id = ?",
                             (reason, now, request_id))
            await self.audit.append(tx, actor, "requests.unlink", target_kind="conversation",
                                    target_id=conversation_id, request_id=request_id)
        return await self._get(request_id)

    async def _eligibility(self, tx: aiosqlite.Connection, req: Any) -> str | None:
        """§4.7: why the linked calls cannot be granted, or None when they can."""
        reasons = []
        rows = await (await tx.execute(
            "SELECT c.id, c.channel, c.resident_number, c.number_identifiable FROM request_conversations rc "
            "JOIN conversations c ON c.id = rc.conversation_id WHERE rc.request_id = ? ORDER BY c.id",
            (req["id"],))).fetchall()
        for c in rows:
            if c["channel"] != "call":
                continue
            if c["number_identifiable"] != 1 or not c["resident_number"]:
                reasons.append(f"the caller's number of call {c['id']} is not identifiable (§4.7)")
            elif c["resident_number"] != req["requester_phone"]:
                reasons.append(f"call {c['id']} was made from a number other than the requester's (§4.7)")
        return "; ".join(reasons) or None

    # -- opinions and the decision -------------------------------------------------------------------

    async def give_opinion(self, actor: Actor, request_id: int, kind: str, verdict: str, text: str) -> AccessRequest:
        """§4.3: the DPO's or the concerned department head's reasoned opinion; the second moves the request on."""
        if kind not in OPINION_KINDS:
            raise InvalidInput("the opinion is 'dpo' or 'department'")
        permission = Permission.GIVE_DPO_OPINION if kind == "dpo" else Permission.GIVE_DEPARTMENT_OPINION
        await self.audit.guard(actor, permission, f"requests.opinion_{kind}", target_kind="request",
                               target_id=request_id, request_id=request_id)
        _person(actor, "an opinion")
        if verdict not in VERDICTS:
            raise InvalidInput("the verdict is 'favourable' or 'unfavourable'")
        text = (text or "").replace("\x00", "").strip()
        if not text:
            raise InvalidInput("an opinion needs its reasons")
        if len(text) > MAX_TEXT:
            raise InvalidInput(f"the opinion is longer than {MAX_TEXT} characters")
        await self._get(request_id)
        if kind == "department" and not actor.is_system:
            concerned = await self._concerned_departments(request_id)
            if concerned and actor.department not in concerned:
                await self._refuse(actor, "requests.opinion_department", request_id,
                                   Permission.GIVE_DEPARTMENT_OPINION,
                                   f"{actor.name} is not the head of the department concerned "
                                   f"({', '.join(sorted(concerned))})")
        async with self.db.write() as tx:
            req = await self._load(tx, request_id)
            self._next(req, "opinion")
            if kind == "department" and not await (await tx.execute(
                    "SELECT 1 FROM request_conversations WHERE request_id = ?", (request_id,))).fetchone():
                raise InvalidTransition(f"link the conversation to {req['number']} first: the department "
                                        "opinion belongs to the department it concerns")
            if await (await tx.execute("SELECT 1 FROM request_opinions WHERE request_id = ? AND kind = ?",
                                       (request_id, kind))).fetchone():
                raise InvalidTransition(f"the {kind} opinion on {req['number']} has already been given")
            now = to_iso(self.clock())
            await tx.execute("INSERT INTO request_opinions(request_id, kind, staff_id, verdict, text, at) "
                             "VALUES (?, ?, ?, ?, ?, ?)",
                             (request_id, kind, actor.staff_id, verdict, text, now))
            count = (await (await tx.execute("SELECT count(*) FROM request_opinions WHERE request_id = ?",
                                             (request_id,))).fetchone())[0]
            if count == len(OPINION_KINDS):
                await tx.execute("UPDATE access_requests SET state = ?, updated_at = ? WHERE id = ?",
                                 (AWAITING_DECISION, now, request_id))
            await self.audit.append(tx, actor, f"requests.opinion_{kind}", target_kind="request",
                                    target_id=request_id, request_id=request_id, details={"verdict": verdict})
        return await self._get(request_id)

    async def grant(
        self,
        actor: Actor,
        request_id: int,
        *,
        session_at: datetime | None = None,
        place: str | None = None,
        attendee_ids: Iterable[int] = (),
    ) -> AccessRequest:
        """Grant. Access (§4.4, §4.6): the director sets the session and its attendees and the notice is
        written. Copy (GDPR Art. 15): the DPO approves; the copy follows with `export_copy`."""
        request = await self._get(request_id)
        decider = Permission.DECIDE_REQUESTS if request.kind == ACCESS else Permission.HANDLE_COPY_REQUESTS
        await self.audit.guard(actor, decider, "requests.grant", target_kind="request", target_id=request_id,
                               request_id=request_id)
        _person(actor, "a decision or letter")
        self._next_state(request.kind, request.state, request.number, "grant")
        letter = None
        attendees: list[Any] = []
        if request.kind == ACCESS:
            if session_at is None or session_at.tzinfo is None:
                raise InvalidInput("the session needs a date and time (with its time zone)")
            if session_at <= self.clock():
                raise InvalidInput("the session cannot be scheduled in the past")
            place = (place or "").replace("\x00", "").strip()
            if not place:
                raise InvalidInput("the session needs a place")
            if len(place) > MAX_NAME:
                raise InvalidInput(f"the place is longer than {MAX_NAME} characters")
            ids = sorted(set(int(i) for i in attendee_ids))
            if not ids:
                raise InvalidInput("designate at least one staff member to attend the session (§4.6)")
            attendees = await self.db.fetchall(
                f"SELECT id, name, full_name, disabled FROM staff WHERE id IN ({','.join('?' * len(ids))}) "
                "ORDER BY name", ids)
            missing = set(ids) - {a["id"] for a in attendees}
            if missing:
                raise InvalidInput(f"no staff member with id {', '.join(map(str, sorted(missing)))}")
            disabled = [a["name"] for a in attendees if a["disabled"]]
            if disabled:
                raise InvalidInput(f"disabled accounts cannot attend: {', '.join(disabled)}")
            await self._check_grantable(request)
            letter = L.grant_letter(
                **self._letter_common(request), ordinance=self.settings.ordinance_reference,
                received_on=request.received_on, channel=request.channel,
                session_local=session_at.astimezone(self.tz), place=place,
                attendees=[a["full_name"] or a["name"] for a in attendees],
                conversations=await self._concerned(request_id), form=request.addressed_as)
        else:
            await self._check_grantable(request)
        rendered = await self._render(letter, actor, request) if letter else None
        async with self.db.write() as tx:
            req = await self._load(tx, request_id)
            new_state = self._next(req, "grant")
            if req["kind"] == ACCESS and await self._eligibility(tx, req) is not None:  # a link changed since we looked
                raise IneligibleForGrant(f"{req['number']} cannot be granted: {await self._eligibility(tx, req)}")
            now = to_iso(self.clock())
            await tx.execute(
                "UPDATE access_requests SET state = ?, decision = 'granted', decided_by = ?, decided_at = ?, "
                "session_at = ?, session_place = ?, updated_at = ? WHERE id = ?",
                (new_state, actor.staff_id, now, to_iso(session_at) if session_at else None, place or None, now,
                 request_id))
            for a in attendees:
                await tx.execute("INSERT INTO request_attendees(request_id, staff_id) VALUES (?, ?)",
                                 (request_id, a["id"]))
            if rendered is not None:
                await self._store_letter(tx, actor, req, L.GRANT, rendered)
            await self.audit.append(tx, actor, "requests.grant", target_kind="request", target_id=request_id,
                                    request_id=request_id, details={"attendees": [a["id"] for a in attendees]})
        return await self._get(request_id)

    async def _check_grantable(self, request: AccessRequest) -> None:
        linked = await self.db.fetchone("SELECT count(*) AS n FROM request_conversations WHERE request_id = ?",
                                        (request.id,))
        if linked["n"] == 0:
            raise InvalidTransition(f"{request.number} has no linked conversation to grant access to")
        # a copy's link may instead rest on a justification recorded by both people (prepare/confirm_export)
        if request.ineligible_reason and request.kind == ACCESS:
            raise IneligibleForGrant(f"{request.number} can only be refused: {request.ineligible_reason}")

    async def refuse(self, actor: Actor, request_id: int, reasons: str) -> AccessRequest:
        """§4.5: refuse in writing, with reasons and the information on the right to complain and to a court."""
        request = await self._get(request_id)
        decider = Permission.DECIDE_REQUESTS if request.kind == ACCESS else Permission.HANDLE_COPY_REQUESTS
        await self.audit.guard(actor, decider, "requests.refuse", target_kind="request", target_id=request_id,
                               request_id=request_id)
        _person(actor, "a decision or letter")
        self._next_state(request.kind, request.state, request.number, "refuse")
        reasons = (reasons or "").replace("\x00", "").strip()
        if not reasons:
            raise InvalidInput("a refusal needs its reasons (§4.5)")
        if len(reasons) > MAX_TEXT:
            raise InvalidInput(f"the reasons are longer than {MAX_TEXT} characters")
        letter = L.refusal_letter(**self._letter_common(request), ordinance=self.settings.ordinance_reference,
                                  received_on=request.received_on, channel=request.channel, reasons=reasons,
                                  kind=request.kind, form=request.addressed_as)
        rendered = await self._render(letter, actor, request)
        async with self.db.write() as tx:
            req = await self._load(tx, request_id)
            new_state = self._next(req, "refuse")
            now = to_iso(self.clock())
            await tx.execute(
                "UPDATE access_requests SET state = ?, decision = 'refused', decision_reasons = ?, decided_by = ?, "
                "decided_at = ?, updated_at = ? WHERE id = ?",
                (new_state, reasons, actor.staff_id, now, now, request_id))
            await self._store_letter(tx, actor, req, L.REFUSAL, rendered)
            await self.audit.append(tx, actor, "requests.refuse", target_kind="request", target_id=request_id,
                                    request_id=request_id)
        return await self._get(request_id)

    async def extend(self, actor: Actor, request_id: int, months: int, reasons: str) -> AccessRequest:
        """GDPR Art. 12(3): extend the answer by one or two months in all, with reasons and a letter."""
        request = await self._get(request_id)
        decider = Permission.DECIDE_REQUESTS if request.kind == ACCESS else Permission.HANDLE_COPY_REQUESTS
        await self.audit.guard(actor, decider, "requests.extend", target_kind="request", target_id=request_id,
                               request_id=request_id)
        _person(actor, "a decision or letter")
        self._next_state(request.kind, request.state, request.number, "extend")
        if not isinstance(months, int) or months < 1:
            raise InvalidInput("the extension is a whole number of months (1 or 2)")
        reasons = (reasons or "").replace("\x00", "").strip()
        if not reasons:
            raise InvalidInput("an extension needs its reasons (GDPR Art. 12(3))")
        if len(reasons) > MAX_TEXT:
            raise InvalidInput(f"the reasons are longer than {MAX_TEXT} characters")
        limit = add_months_to_date(request.due_on, MAX_EXTENSION_MONTHS)
        until = add_months_to_date(request.effective_due, months)
        if until > limit:
            raise InvalidTransition(
                f"the answer can be extended by at most {MAX_EXTENSION_MONTHS} months, to {limit.isoformat()}")
        letter = L.extension_letter(**self._letter_common(request), received_on=request.received_on,
                                    due_on=request.due_on, extended_until=until, reasons=reasons, kind=request.kind,
                                    form=request.addressed_as)
        rendered = await self._render(letter, actor, request)
        async with self.db.write() as tx:
            req = await self._load(tx, request_id)
            self._next(req, "extend")
            if (req["extended_until"] or req["due_on"]) != request.effective_due.isoformat():
                raise InvalidTransition(f"{req['number']} was extended meanwhile; look again")
            now = to_iso(self.clock())
            previous = req["extension_reason"]
            await tx.execute("UPDATE access_requests SET extended_until = ?, extension_reason = ?, updated_at = ? "
                             "WHERE id = ?", (until.isoformat(), f"{previous}\n{reasons}" if previous else reasons,
                                              now, request_id))
            await self._store_letter(tx, actor, req, L.EXTENSION, rendered)
            await self.audit.append(tx, actor, "requests.extend", target_kind="request", target_id=request_id,
                                    request_id=request_id, details={"until": until.isoformat()})
        return await self._get(request_id)

    async def withdraw(self, actor: Actor, request_id: int, note: str = "") -> AccessRequest:
        """The requester withdraws before the decision; the automatic holds are released."""
        await self._guard_any(actor, (Permission.REGISTER_REQUESTS, Permission.DECIDE_REQUESTS,
                                      Permission.HANDLE_COPY_REQUESTS), "requests.withdraw", request_id)
        note = (note or "").replace("\x00", "").strip()
        if len(note) > MAX_TEXT:
            raise InvalidInput(f"the note is longer than {MAX_TEXT} characters")
        async with self.db.write() as tx:
            req = await self._load(tx, request_id)
            new_state = self._next(req, "withdraw")
            now = to_iso(self.clock())
            await tx.execute("UPDATE access_requests SET state = ?, withdrawn_at = ?, updated_at = ?, "
                             "withdrawal_note = ? WHERE id = ?", (new_state, now, now, note or None, request_id))
            released = await self._release_holds(tx, actor, request_id, now)
            await self.audit.append(tx, actor, "requests.withdraw", target_kind="request", target_id=request_id,
                                    request_id=request_id, details={"holds_released": released})
        return await self._get(request_id)

    async def close(self, actor: Actor, request_id: int) -> AccessRequest:
        """Close after the session, the refusal or the export; the automatic holds are released."""
        request = await self._get(request_id)
        decider = Permission.DECIDE_REQUESTS if request.kind == ACCESS else Permission.HANDLE_COPY_REQUESTS
        await self.audit.guard(actor, decider, "requests.close", target_kind="request", target_id=request_id,
                               request_id=request_id)
        async with self.db.write() as tx:
            req = await self._load(tx, request_id)
            new_state = self._next(req, "close")
            now = to_iso(self.clock())
            await tx.execute("UPDATE access_requests SET state = ?, closed_at = ?, updated_at = ? WHERE id = ?",
                             (new_state, now, now, request_id))
            released = await self._release_holds(tx, actor, request_id, now)
            await self.audit.append(tx, actor, "requests.close", target_kind="request", target_id=request_id,
                                    request_id=request_id, details={"holds_released": released})
        return await self._get(request_id)

    async def _release_holds(self, tx: aiosqlite.Connection, actor: Actor, request_id: int, now: str) -> int:
        cur = await tx.execute("UPDATE holds SET released_at = ?, released_by = ? WHERE request_id = ? "
                               "AND released_at IS NULL", (now, actor.staff_id, request_id))
        return cur.rowcount

    # -- the listening session (§4.4, §4.6) -----------------------------------------------------------

    async def _guard_session(self, actor: Actor, request_id: int, action: str) -> None:
        """The director, or a staff member they designated to attend, runs the session."""
        if allowed(actor, Permission.SCHEDULE_SESSIONS):
            return
        if actor.staff_id is not None and await self.db.fetchone(
                "SELECT 1 FROM request_attendees WHERE request_id = ? AND staff_id = ?", (request_id, actor.staff_id)):
            return
        await self._refuse(actor, action, request_id, Permission.SCHEDULE_SESSIONS,
                           f"{actor.name} is neither the director nor a designated attendee of this session")

    async def start_session(self, actor: Actor, request_id: int) -> AccessRequest:
        await self._get(request_id)
        await self._guard_session(actor, request_id, "requests.session_start")
        async with self.db.write() as tx:
            req = await self._load(tx, request_id)
            new_state = self._next(req, "start_session")
            now = to_iso(self.clock())
            await tx.execute("UPDATE access_requests SET state = ?, session_started_at = ?, updated_at = ? "
                             "WHERE id = ?", (new_state, now, now, request_id))
            await self.audit.append(tx, actor, "requests.session_start", target_kind="request",
                                    target_id=request_id, request_id=request_id)
        return await self._get(request_id)

    async def open_for_session(self, actor: Actor, request_id: int, conversation_id: int) -> SessionMaterial:
        """The recording's path or the chat's transcript, for playback during the session; audited under the request."""
        await self._get(request_id)
        await self._guard_session(actor, request_id, "requests.session_playback")
        row = await self.db.fetchone("SELECT state, number FROM access_requests WHERE id = ?", (request_id,))
        if row["state"] != SESSION_IN_PROGRESS:
            raise InvalidTransition(f"{row['number']} is {STATE_LABELS[row['state']]}; content is opened only "
                                    "during its session")
        if not await self.db.fetchone("SELECT 1 FROM request_conversations WHERE request_id = ? AND "
                                      "conversation_id = ?", (request_id, conversation_id)):
            raise InvalidInput(f"conversation {conversation_id} is not linked to {row['number']}")
        conv = await self.db.fetchone("SELECT id, channel FROM conversations WHERE id = ?", (conversation_id,))
        if conv is None:
            raise ConversationNotFound(f"conversation {conversation_id} no longer exists")
        rec = await self.db.fetchone("SELECT path FROM recordings WHERE conversation_id = ? ORDER BY id LIMIT 1",
                                     (conversation_id,))
        msgs = await self.db.fetchall(
            "SELECT seq, sender, text, at, event, params FROM messages WHERE conversation_id = ? ORDER BY seq",
            (conversation_id,))
        texts = await self._texts(conversation_id, msgs)
        lines = tuple(TranscriptLine(seq=m["seq"], sender=m["sender"], text=t, at=from_iso(m["at"]), event=m["event"],
                                     params=json.loads(m["params"]) if m["event"] and m["params"] else None)
                      for m, t in zip(msgs, texts))
        async with self.db.write() as tx:
            await self.audit.append(tx, actor, "requests.session_playback", target_kind="conversation",
                                    target_id=conversation_id, request_id=request_id,
                                    purpose=f"§4 session {row['number']}")
        return SessionMaterial(conversation_id=conversation_id, channel=conv["channel"],
                               recording_path=self.settings.recordings_dir / rec["path"] if rec else None,
                               transcript=lines)

    async def end_session(self, actor: Actor, request_id: int, present_ids: Iterable[int], notes: str = "", *,
                          others: Iterable[str] = (), outcome: str = "completed") -> AccessRequest:
        """Record who attended (designated staff by id, anyone else by name), the end time, the outcome and
        notes (§4.6). Ended by the director, the session record is signed off and written at once; ended by
        an attendee, it waits for the director's `sign_session_record`."""
        await self._get(request_id)
        await self._guard_session(actor, request_id, "requests.session_end")
        notes = (notes or "").replace("\x00", "").strip()
        if len(notes) > MAX_TEXT:
            raise InvalidInput(f"the notes are longer than {MAX_TEXT} characters")
        other_names = [_CONTROL_CHARS.sub("", n).strip() for n in others]
        other_names = [n for n in other_names if n]
        if len(other_names) > 20 or any(len(n) > MAX_NAME for n in other_names):
            raise InvalidInput(f"list at most 20 other people, each name at most {MAX_NAME} characters")
        outcome = (outcome or "completed").strip()
        if outcome not in SR.SESSION_OUTCOMES:
            raise InvalidInput(f"the outcome must be one of {', '.join(SR.SESSION_OUTCOMES)}")
        present = set(int(i) for i in present_ids)
        async with self.db.write() as tx:
            req = await self._load(tx, request_id)
            new_state = self._next(req, "end_session")
            designated = {r["staff_id"] for r in await (await tx.execute(
                "SELECT staff_id FROM request_attendees WHERE request_id = ?", (request_id,))).fetchall()}
            strangers = present - designated
            if strangers:
                raise InvalidInput("only designated attendees can be recorded as present by account; "
                                   "name anyone else among the others present (§4.6)")
            if not present:
                raise InvalidInput("at least one designated attendee must have been present (§4.6)")
            for staff_id in designated:
                await tx.execute("UPDATE request_attendees SET present = ? WHERE request_id = ? AND staff_id = ?",
                                 (int(staff_id in present), request_id, staff_id))
            now = to_iso(self.clock())
            await tx.execute("UPDATE access_requests SET state = ?, session_ended_at = ?, session_notes = ?, "
                             "session_others = ?, session_outcome = ?, updated_at = ? WHERE id = ?",
                             (new_state, now, notes or None, json.dumps(other_names, ensure_ascii=False), outcome,
                              now, request_id))
            await self.audit.append(tx, actor, "requests.session_end", target_kind="request", target_id=request_id,
                                    request_id=request_id, details={"present": sorted(present),
                                                                    "others": len(other_names), "outcome": outcome})
        if actor.staff_id is not None and allowed(actor, Permission.DECIDE_REQUESTS):
            await self.sign_session_record(actor, request_id)
        return await self._get(request_id)

    async def sign_session_record(self, actor: Actor, request_id: int) -> LetterRecord:
        """The director signs off the §4.6 session record: the PDF "protokół odsłuchu/odczytu" is written and
        stored with the request's letters (a later sign-off writes a new version; both stay listed)."""
        request = await self._get(request_id)
        await self.audit.guard(actor, Permission.DECIDE_REQUESTS, "requests.session_record", target_kind="request",
                               target_id=request_id, request_id=request_id)
        _person(actor, "signing the session record")
        if request.kind != ACCESS or request.session_ended_at is None:
            raise InvalidTransition(f"{request.number} has no ended listening session to record")
        record = await self._session_record(actor, request)
        pdf = await asyncio.to_thread(SR.render_session_record, record, self.seal)
        async with self.db.write() as tx:
            req = await self._load(tx, request_id)
            await self._store_letter(tx, actor, req, SR.SESSION_RECORD,
                                     RenderedLetter(pdf=pdf, sealed_by=self.seal.subject if self.seal else None))
            await self.audit.append(tx, actor, "requests.session_record", target_kind="request",
                                    target_id=request_id, request_id=request_id,
                                    details={"played": len(record.played)})
        row = await self.db.fetchone("SELECT * FROM letters WHERE request_id = ? ORDER BY id DESC LIMIT 1",
                                     (request_id,))
        return LetterRecord(id=row["id"], kind=row["kind"], path=self.settings.letters_dir / row["path"],
                            sha256=row["sha256"], created_at=from_iso(row["created_at"]))

    async def _session_record(self, actor: Actor, request: AccessRequest) -> SR.SessionRecord:
        """What the record states: attendees, times, and what was played or read (from the audit log)."""
        attendees = await self.db.fetchall(
            "SELECT a.present, s.name, s.full_name FROM request_attendees a JOIN staff s ON s.id = a.staff_id "
            "WHERE a.request_id = ? ORDER BY s.name", (request.id,))
        label = [(a["full_name"] or a["name"], a["present"]) for a in attendees]
        me = await self.db.fetchone("SELECT name, full_name FROM staff WHERE id = ?", (actor.staff_id,))
        return SR.SessionRecord(
            office_name=self.settings.office_name, office_address=self.settings.office_address,
            reference=request.number, channel=request.channel, requester_name=request.requester_name,
            place=request.session_place or "", scheduled=self._local(request.session_at),
            started=self._local(request.session_started_at), ended=self._local(request.session_ended_at),
            present=tuple(n for n, p in label if p), absent=tuple(n for n, p in label if not p),
            others=request.session_others, played=tuple(await self._played(request)),
            outcome=request.session_outcome or "completed", notes=request.session_notes or "",
            approved_by=(me["full_name"] or me["name"]) if me else actor.name,
            approved_at=self.clock().astimezone(self.tz))

    def _local(self, moment: datetime | None) -> datetime | None:
        return moment.astimezone(self.tz) if moment else None

    async def _played(self, request: AccessRequest) -> list[str]:
        rows = await self.db.fetchall(
            "SELECT action, at, actor_name, target_id FROM audit WHERE request_id = ? AND outcome = 'ok' AND action IN "
            "('requests.session_playback', 'listen.audio') ORDER BY id", (request.id,))
        lines: list[str] = []
        heard: set[str] = set()
        for r in rows:
            at = from_iso(r["at"]).astimezone(self.tz)
            conv = await self.db.fetchone("SELECT channel, created_at FROM conversations WHERE id = ?",
                                          (int(r["target_id"]),))
            began = from_iso(conv["created_at"]).astimezone(self.tz) if conv else None
            what = (f"{'nagranie rozmowy telefonicznej' if conv and conv['channel'] == 'call' else 'zapis czatu'} "
                    f"nr {r['target_id']}" + (f" z {L.polish_date(began)}, godz. {began:%H:%M}" if began else ""))
            if r["action"] == "requests.session_playback":
                verb = "otwarto do odsłuchu" if conv and conv["channel"] == "call" else "odczytano"
                lines.append(f"{what} — {verb} o godz. {at:%H:%M} ({r['actor_name']})")
            elif r["target_id"] not in heard:
                heard.add(r["target_id"])
                lines.append(f"{what} — odtworzono w przeglądarce od godz. {at:%H:%M:%S} ({r['actor_name']})")
        return lines

    # -- GDPR Art. 15 copy ------------------------------------------------------------------------------

    async def export_copy(self, actor: Actor, request_id: int, destination: Path, *, as_zip: bool = False) -> ExportResult:
        """Write the copy (recordings, transcripts, manifest.json, SHA256SUMS) to a new folder or ZIP under
        `destination`, with a cover letter; audited."""
        request = await self._get(request_id)
        await self.audit.guard(actor, Permission.HANDLE_COPY_REQUESTS, "requests.export", target_kind="request",
                               target_id=request_id, request_id=request_id)
        _person(actor, "exporting a copy")
        self._next_state(request.kind, request.state, request.number, "export")
        approval = await self._approval(request_id)
        if approval["confirmed_by"] == actor.staff_id:
            await self._refuse(actor, "requests.export", request_id, Permission.HANDLE_COPY_REQUESTS,
                               f"{actor.name} confirmed this export and cannot also make it (four-eyes)")
        destination = Path(destination)
        if not destination.is_dir():
            raise InvalidInput(f"{destination} is not an existing folder")
        safe = request.number.replace("/", "-")
        target = destination / (f"{safe}.zip" if as_zip else safe)
        if target.exists():
            raise InvalidInput(f"{target} already exists; choose another folder")
        items: list[tuple[str, bytes | Path, int]] = []
        convs = await self.db.fetchall(
            "SELECT c.id, c.channel, c.created_at FROM request_conversations rc JOIN conversations c "
            "ON c.id = rc.conversation_id WHERE rc.request_id = ? ORDER BY c.created_at", (request_id,))
        for c in convs:
            if c["channel"] == "call":
                for rec in await self.db.fetchall("SELECT path, format FROM recordings WHERE conversation_id = ? "
                                                  "ORDER BY id", (c["id"],)):
                    source = self.settings.recordings_dir / rec["path"]
                    items.append((f"call-{c['id']}-{Path(rec['path']).name}", source, c["id"]))
            rows = await self.db.fetchall("SELECT seq, sender, text, at FROM messages WHERE conversation_id = ? "
                                          "ORDER BY seq", (c["id"],))
            msgs = [{**dict(m), "text": t} for m, t in zip(rows, await self._texts(c["id"], rows))]
            if c["channel"] == "chat":
                transcript = "".join(f"[{m['at']}] {m['sender']}: {m['text']}\n" for m in msgs)
                items.append((f"chat-{c['id']}.txt", transcript.encode("utf-8"), c["id"]))
                items.append((f"chat-{c['id']}.json", json.dumps(
                    msgs, ensure_ascii=False, indent=2).encode("utf-8"), c["id"]))
        if not items:
            raise InvalidTransition(f"{request.number} has nothing to export: link the conversation first")
        now = self.clock()
        files, manifest_bytes = await asyncio.to_thread(
            _write_export, target, items, as_zip, {"request": request.number, "kind": "GDPR Art. 15 copy",
                                                    "created_at": to_iso(now), "created_by": actor.name})
        manifest_sha = hashlib.sha256(manifest_bytes).hexdigest()
        letter = L.copy_letter(**self._letter_common(request), received_on=request.received_on,
                               files=[(f["name"], f["sha256"]) for f in files], controller=self.settings.controller,
                               recipients=self.settings.data_recipients,
                               retention_months=self.settings.retention_duration.months,
                               ordinance=self.settings.ordinance_reference,
                               conversations=[(c["channel"], from_iso(c["created_at"]).astimezone(self.tz))
                                              for c in convs], form=request.addressed_as)
        rendered = await self._render(letter, actor, request)
        try:
            async with self.db.write() as tx:
                req = await self._load(tx, request_id)
                new_state = self._next(req, "export")
                await tx.execute("UPDATE access_requests SET state = ?, exported_at = ?, export_path = ?, "
                                 "updated_at = ? WHERE id = ?",
                                 (new_state, to_iso(now), str(target), to_iso(now), request_id))
                await self._store_letter(tx, actor, req, L.COPY, rendered)
                await self.audit.append(tx, actor, "requests.export", target_kind="request", target_id=request_id,
                                        request_id=request_id, details={
                                            "files": len(files), "bytes": sum(f["size"] for f in files),
                                            "format": "zip" if as_zip else "folder",
                                            "manifest_sha256": manifest_sha,
                                            "prepared_by": approval["prepared_by"],
                                            "confirmed_by": approval["confirmed_by"]})
        except BaseException:
            await asyncio.to_thread(_remove, target)
            raise
        return ExportResult(path=target, files=tuple(files), manifest_sha256=manifest_sha)

    # -- two people for a copy --------------------------------------------------------------------------

    async def copy_basis(self, actor: Actor, request_id: int) -> dict[int, str]:
        """How each linked conversation is tied to the requester: the §4.7 number match, or it needs a justification."""
        request = await self._get(request_id)
        if not await self._may_view(actor, request):
            await self._refuse(actor, "requests.view", request_id, Permission.VIEW_REQUESTS)
        return await self._copy_basis(request)

    async def _copy_basis(self, request: AccessRequest) -> dict[int, str]:
        rows = await self.db.fetchall(
            "SELECT c.id, c.channel, c.resident_number, c.number_identifiable FROM request_conversations rc "
            "JOIN conversations c ON c.id = rc.conversation_id WHERE rc.request_id = ? ORDER BY c.id", (request.id,))
        return {r["id"]: NUMBER_MATCH if (r["channel"] == "call" and r["number_identifiable"] == 1 and
                                          r["resident_number"] and r["resident_number"] == request.requester_phone)
                else JUSTIFICATION for r in rows}

    async def prepare_export(self, actor: Actor, request_id: int, justification: str = "") -> AccessRequest:
        """The DPO prepares the copy; a second person confirms it before `export_copy` may write it.

        A conversation not tied to the requester by the §4.7 number match (any chat; a call from another
        or an unidentifiable number) needs the preparer's justification, and later the confirmer's.
        """
        request = await self._get(request_id)
        await self.audit.guard(actor, Permission.HANDLE_COPY_REQUESTS, "requests.export_prepare",
                               target_kind="request", target_id=request_id, request_id=request_id)
        _person(actor, "preparing a copy")
        self._next_state(request.kind, request.state, request.number, "prepare_export")
        basis = await self._copy_basis(request)
        justification = _justification(justification)
        unmatched = sorted(c for c, b in basis.items() if b == JUSTIFICATION)
        if unmatched and not justification:
            raise InvalidInput(f"conversation {', '.join(map(str, unmatched))} is not tied to the requester by the "
                               "caller's number (§4.7): record a justification")
        async with self.db.write() as tx:
            req = await self._load(tx, request_id)
            new_state = self._next(req, "prepare_export")
            now = to_iso(self.clock())
            await tx.execute("INSERT INTO copy_approvals(request_id, prepared_by, prepared_at, basis, "
                             "prepare_justification) VALUES (?, ?, ?, ?, ?)",
                             (request_id, actor.staff_id, now, json.dumps({str(k): v for k, v in basis.items()}),
                              justification or None))
            await tx.execute("UPDATE access_requests SET state = ?, updated_at = ? WHERE id = ?",
                             (new_state, now, request_id))
            await self.audit.append(tx, actor, "requests.export_prepare", target_kind="request",
                                    target_id=request_id, request_id=request_id, purpose=justification or None,
                                    details={"basis": {str(k): v for k, v in basis.items()}})
        return await self._get(request_id)

    async def confirm_export(self, actor: Actor, request_id: int, justification: str = "") -> AccessRequest:
        """The second person (a designated employee or the director, never the preparer) confirms the copy."""
        request = await self._get(request_id)
        await self.audit.guard(actor, Permission.CONFIRM_COPY_EXPORT, "requests.export_confirm",
                               target_kind="request", target_id=request_id, request_id=request_id)
        _person(actor, "confirming a copy")
        self._next_state(request.kind, request.state, request.number, "confirm_export")
        approval = await self._approval(request_id)
        if approval["prepared_by"] == actor.staff_id:
            await self._refuse(actor, "requests.export_confirm", request_id, Permission.CONFIRM_COPY_EXPORT,
                               f"{actor.name} prepared this copy; a second person must confirm it (four-eyes)")
        justification = _justification(justification)
        if approval["prepare_justification"] and not justification:
            raise InvalidInput("the link to the requester rests on a justification: the second person records "
                               "theirs too")
        async with self.db.write() as tx:
            req = await self._load(tx, request_id)
            new_state = self._next(req, "confirm_export")
            now = to_iso(self.clock())
            await tx.execute("UPDATE copy_approvals SET confirmed_by = ?, confirmed_at = ?, confirm_justification = ? "
                             "WHERE request_id = ?", (actor.staff_id, now, justification or None, request_id))
            await tx.execute("UPDATE access_requests SET state = ?, updated_at = ? WHERE id = ?",
                             (new_state, now, request_id))
            await self.audit.append(tx, actor, "requests.export_confirm", target_kind="request",
                                    target_id=request_id, request_id=request_id, purpose=justification or None,
                                    details={"prepared_by": approval["prepared_by"]})
        return await self._get(request_id)

    async def cancel_export(self, actor: Actor, request_id: int) -> AccessRequest:
        """Withdraw a prepared (or confirmed, not yet written) copy; the DPO or the second person may."""
        request = await self._get(request_id)
        await self._guard_any(actor, (Permission.HANDLE_COPY_REQUESTS, Permission.CONFIRM_COPY_EXPORT),
                              "requests.export_cancel", request_id)
        _person(actor, "cancelling a copy")
        self._next_state(request.kind, request.state, request.number, "cancel_export")
        async with self.db.write() as tx:
            req = await self._load(tx, request_id)
            new_state = self._next(req, "cancel_export")
            now = to_iso(self.clock())
            await tx.execute("DELETE FROM copy_approvals WHERE request_id = ?", (request_id,))
            await tx.execute("UPDATE access_requests SET state = ?, updated_at = ? WHERE id = ?",
                             (new_state, now, request_id))
            await self.audit.append(tx, actor, "requests.export_cancel", target_kind="request",
                                    target_id=request_id, request_id=request_id)
        return await self._get(request_id)

    async def _approval_record(self, request_id: int) -> CopyApproval | None:
        a = await self.db.fetchone(
            "SELECT a.*, p.name AS preparer, c.name AS confirmer FROM copy_approvals a JOIN staff p ON p.id = "
            "a.prepared_by LEFT JOIN staff c ON c.id = a.confirmed_by WHERE a.request_id = ?", (request_id,))
        if a is None:
            return None
        return CopyApproval(prepared_by=a["preparer"], prepared_at=from_iso(a["prepared_at"]),
                            basis={int(k): v for k, v in json.loads(a["basis"]).items()},
                            prepare_justification=a["prepare_justification"], confirmed_by=a["confirmer"],
                            confirmed_at=_dt(a["confirmed_at"]), confirm_justification=a["confirm_justification"])

    async def _approval(self, request_id: int) -> Any:
        row = await self.db.fetchone("SELECT * FROM copy_approvals WHERE request_id = ?", (request_id,))
        if row is None:
            raise InvalidTransition("the copy has not been prepared")
        return row

    # -- helpers ------------------------------------------------------------------------------------------

    async def _render(self, letter: L.Letter, actor: Actor, request: AccessRequest) -> "RenderedLetter":
        """The PDF/A-2b letter, signed by `actor` (name and title from their account), sealed when the office's
        seal is configured, with the audit chain head anchored and printed in its footer."""
        anchor = await self.audit.anchor("letter")
        signer = await self.db.fetchone("SELECT full_name, job_title FROM staff WHERE id = ?", (actor.staff_id,))
        letter = dataclasses.replace(
            letter, audit_anchor=anchor.printed(), signatory=(signer["full_name"] if signer else "").strip(),
            signature=(signer["job_title"] if signer else "").strip() or letter.signature,
            delivery_line=_delivery_line(request))
        pdf = await asyncio.to_thread(L.render, letter, self.seal)
        return RenderedLetter(pdf=pdf, sealed_by=self.seal.subject if self.seal else None)

    async def _concerned(self, request_id: int) -> list[tuple[str, datetime]]:
        """The linked calls and chats as (channel, local start time), for the letters that name them."""
        rows = await self.db.fetchall(
            "SELECT c.channel, c.created_at FROM request_conversations rc JOIN conversations c "
            "ON c.id = rc.conversation_id WHERE rc.request_id = ? ORDER BY c.created_at", (request_id,))
        return [(r["channel"], from_iso(r["created_at"]).astimezone(self.tz)) for r in rows]

    def case_mark(self, request: AccessRequest) -> str:
        """The case mark printed on the request's letters (`CIM_CASE_MARK`, e.g. BOI-CIM.1510.7.2026)."""
        return case_mark(self.settings.case_mark, request.number)

    def _letter_common(self, request: AccessRequest) -> dict[str, Any]:
        return {"office_name": self.settings.office_name, "office_address": self.settings.office_address,
                "reference": self.case_mark(request), "dated": self.today(), "name": request.requester_name,
                "address": request.requester_address}

    async def _store_letter(self, tx: aiosqlite.Connection, actor: Actor, req: Any, kind: str,
                            rendered: "RenderedLetter") -> None:
        """Write the PDF under the letters folder and list it with the request, in the caller's transaction."""
        pdf = rendered.pdf
        count = (await (await tx.execute("SELECT count(*) FROM letters WHERE request_id = ?",
                                         (req["id"],))).fetchone())[0]
        relative = f"{req['number'][4:8]}/{req['number'].replace('/', '-')}-{count + 1:02d}-{kind}.pdf"
        path = self.settings.letters_dir / relative
        await asyncio.to_thread(_write_private, path, pdf)
        try:
            await tx.execute("INSERT INTO letters(request_id, kind, path, sha256, created_at, created_by, sealed, "
                             "sealed_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                             (req["id"], kind, relative, hashlib.sha256(pdf).hexdigest(), to_iso(self.clock()),
                              actor.staff_id, int(rendered.sealed_by is not None), rendered.sealed_by))
            await self.audit.append(tx, actor, "requests.letter", target_kind="letter", target_id=relative,
                                    request_id=req["id"], details={"kind": kind,
                                                                   "sealed": rendered.sealed_by is not None})
        except BaseException:
            await asyncio.to_thread(path.unlink, True)
            raise

    async def _load(self, tx: aiosqlite.Connection, request_id: int) -> Any:
        row = await (await tx.execute("SELECT * FROM access_requests WHERE id = ?", (request_id,))).fetchone()
        if row is None:
            raise RequestNotFound(f"no request with id {request_id}")
        return row

    def _next(self, req: Any, action: str) -> str:
        return self._next_state(req["kind"], req["state"], req["number"], action)

    @staticmethod
    def _next_state(kind: str, state: str, number: str, action: str) -> str:
        try:
            return TRANSITIONS[kind][state][action]
        except KeyError:
            label = STATE_LABELS.get(state, state)
            raise InvalidTransition(
                f"{number} is {label}; a {kind} request in that state cannot {action.replace('_', ' ')}") from None

    async def _guard_any(self, actor: Actor, permissions: tuple[Permission, ...], action: str,
                         request_id: int) -> None:
        if any(allowed(actor, p) for p in permissions):
            return
        await self.audit.guard(actor, permissions[0], action, target_kind="request", target_id=request_id,
                               request_id=request_id)

    async def _refuse(self, actor: Actor, action: str, request_id: int, permission: Permission,
                      message: str | None = None) -> None:
        async with self.db.write() as tx:
            await self.audit.append(tx, actor, action, outcome="refused", target_kind="request",
                                    target_id=request_id, request_id=request_id,
                                    details={"permission": permission.value})
        raise NotPermitted(message or f"{actor.name} is not permitted to {action.replace('.', ': ')}")


# -- module helpers ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RenderedLetter:
    pdf: bytes
    #: the seal certificate's subject when the letter is sealed, else None
    sealed_by: str | None


def _delivery_line(request: AccessRequest) -> str:
    """The delivery route printed under the address; nothing for a letter by post (the address says it)."""
    if request.delivery == "e_doreczenia":
        return f"Doręczenie elektroniczne (e-Doręczenia) na adres: {request.requester_email}"
    if request.delivery == "email":
        return f"Doręczenie pocztą elektroniczną na adres: {request.requester_email}"
    # "epuap" (older records): ePUAP is no longer a route for public bodies, so the letter goes by post
    if request.delivery == "in_person":
        return "Odbiór osobisty w urzędzie"
    return ""


def _person(actor: Actor, what: str) -> None:
    """Steps whose record names the staff member who took them (registered_by, opinions, letters) need a person."""
    if actor.staff_id is None:
        raise InvalidInput(f"{what} must be done by a signed-in staff member, not by the host account")


def mask_number(number: str | None) -> str | None:
    """`+48601234567` -> `+48******567`: enough to tell calls apart, not to read the number off the screen."""
    if not number:
        return number
    keep_head = 3 if number.startswith("+") else 0
    if len(number) <= keep_head + 3:
        return "*" * len(number)
    return number[:keep_head] + "*" * (len(number) - keep_head - 3) + number[-3:]


def _justification(text: str | None) -> str:
    text = _CONTROL_CHARS.sub("", (text or "").replace("\x00", "")).strip()
    if len(text) > MAX_TEXT:
        raise InvalidInput(f"the justification is longer than {MAX_TEXT} characters")
    return text


def _linkers(request: AccessRequest) -> tuple[Permission, ...]:
    """Who searches and links conversations: the registering staff; for a copy request also the DPO."""
    if request.kind == COPY:
        return (Permission.REGISTER_REQUESTS, Permission.HANDLE_COPY_REQUESTS)
    return (Permission.REGISTER_REQUESTS,)


def _parse_date(value: date | str, label: str) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value).strip())
    except ValueError:
        raise InvalidInput(f"the {label} {str(value)[:40]!r} is not a date (YYYY-MM-DD)") from None


def _dt(text: str | None) -> datetime | None:
    return from_iso(text) if text else None


def _bool(value: int | None) -> bool | None:
    return None if value is None else bool(value)


def _utc(moment: datetime) -> str:
    return to_iso(moment.astimezone(timezone.utc))


def _iso_or_blank(moment: datetime | None) -> str:
    return to_iso(moment) if moment else ""


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _remove(target: Path) -> None:
    if target.is_dir():
        shutil.rmtree(target, ignore_errors=True)
    elif target.exists():
        target.unlink()


def _write_export(target: Path, items: list[tuple[str, bytes | Path, int]], as_zip: bool,
                  header: dict[str, Any]) -> tuple[list[dict[str, Any]], bytes]:
    """Blocking: copy the files, then write manifest.json and SHA256SUMS; runs in a worker thread."""
    files: list[dict[str, Any]] = []
    payloads: list[tuple[str, bytes]] = []
    for name, source, conversation_id in items:
        if isinstance(source, Path):  # a sealed recording is opened here, in the store, for the copy
            with open_plain(source) as fh:
                data = fh.read()
        else:
            data = source
        payloads.append((name, data))
        files.append({"name": name, "conversation_id": conversation_id, "size": len(data),
                      "sha256": hashlib.sha256(data).hexdigest()})
    manifest = json.dumps({**header, "files": files}, ensure_ascii=False, indent=2).encode("utf-8")
    sums = "".join(f"{f['sha256']}  {f['name']}\n" for f in files).encode("utf-8")
    try:
        if as_zip:
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as raw, zipfile.ZipFile(raw, "w", zipfile.ZIP_DEFLATED) as zf:
                for name, data in payloads:
                    zf.writestr(name, data)
                zf.writestr("manifest.json", manifest)
                zf.writestr("SHA256SUMS", sums)
        else:
            target.mkdir(mode=0o700)
            for name, data in [*payloads, ("manifest.json", manifest), ("SHA256SUMS", sums)]:
                _write_private(target / name, data)
    except BaseException:
        _remove(target)
        raise
    return files, manifest
