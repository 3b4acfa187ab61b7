"""What the registering person types in (the §4.2 annex), checked and cleaned before it is registered."""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Any, Mapping

from .. import letters as L
from ..clock import add_months_to_date
from ..errors import InvalidInput, Text
from ..i18n import N_
from ..phone import normalise_number
from .model import (
    ACCESS,
    ADE,
    CHANNELS,
    COPY,
    DELIVERIES,
    KINDS,
    LEGACY_DELIVERIES,
    MAX_ADDRESS,
    MAX_NAME,
    RequestInput,
)
from .text import clean_text

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_EPUAP_GONE = N_(
    "ePUAP is no longer a delivery route for public bodies: give the requester's address for "
    "e-Doręczenia (AE:PL-12345-67890-ABCDE-12) or an e-mail address"
)
_HINT_KEYS = {"date", "time", "duration_min", "consultant", "topic", "name_or_email"}
#: the annex's chat reference (CZ-YYYY-MM-DD-XXXX) or the call's number, as written
MAX_REFERENCE = 64


def due_date(received_on: date) -> date:
    """GDPR Art. 12(3): one month from receipt; 31 January is due on 28 (29) February."""
    return add_months_to_date(received_on, 1)


def parse_date(value: date | str, label: str) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value).strip())
    except ValueError:
        raise InvalidInput(
            N_("the {label} {value!r} is not a date (YYYY-MM-DD)"), label=Text(label), value=str(value)[:40]
        ) from None


def _address(value: Any) -> str | None:
    """The e-mail address or the address for e-Doręczenia (AE:PL-...), normalised; None when not given."""
    email = clean_text(value, "e-mail or e-Doręczenia address", limit=MAX_NAME) or None
    if email and "@" in email and not _EMAIL.match(email):
        raise InvalidInput(N_("{email!r} is not an e-mail address"), email=email)
    if email and "@" not in email:
        if email.startswith("/"):
            raise InvalidInput(_EPUAP_GONE)
        ade = re.sub(r"\s+", "", email).upper()
        if not ADE.match(ade):
            raise InvalidInput(
                N_(
                    "{email!r} is neither an e-mail address (name@domain) nor an address for "
                    "e-Doręczenia (AE:PL-12345-67890-ABCDE-12)"
                ),
                email=email,
            )
        email = ade
    return email


def _phone(value: Any, channel: str) -> str | None:
    raw = clean_text(value, "phone number", limit=64)
    phone = None
    if raw:
        phone = normalise_number(raw)
        if phone is None:
            raise InvalidInput(
                N_("{raw!r} is not a phone number (expected e.g. 601 234 567 or +48 601 234 567)"), raw=raw
            )
    if channel == "call" and phone is None:
        raise InvalidInput(N_("for a call, the phone number the call was made from is required (§4.7)"))
    return phone


def _delivery(value: Any, email: str | None) -> str:
    delivery = clean_text(value, "delivery", required=True, limit=16)
    if delivery in LEGACY_DELIVERIES:
        raise InvalidInput(
            N_(
                "ePUAP is no longer a delivery route for public bodies: choose e_doreczenia "
                "(e-Doręczenia) for electronic delivery"
            )
        )
    if delivery not in DELIVERIES:
        raise InvalidInput(N_("the reply is delivered by one of: {deliveries}"), deliveries=", ".join(DELIVERIES))
    if delivery == "email" and not (email and "@" in email):
        raise InvalidInput(N_("delivery by email needs the e-mail address"))
    if delivery == "e_doreczenia" and not (email and ADE.match(email)):
        raise InvalidInput(
            N_(
                "delivery by e-Doręczenia needs the requester's address for electronic delivery "
                "(AE:PL-12345-67890-ABCDE-12)"
            )
        )
    return delivery


def _asked(data: RequestInput) -> str:
    expected = "copy" if data.kind == COPY else ("listen" if data.channel == "call" else "read")
    asked = clean_text(data.asked, "what is asked", limit=16) or expected
    if asked != expected:
        raise InvalidInput(
            N_("a {kind} request for a {channel} asks to {expected!r}, not {asked!r}"),
            kind=Text(data.kind),
            channel=Text(data.channel),
            expected=expected,
            asked=asked,
        )
    return asked


def _addressed_as(value: Any) -> str | None:
    addressed_as = clean_text(value, "form of address", limit=8).lower() or None
    if addressed_as is not None and addressed_as not in L.FORMS:
        raise InvalidInput(N_("the form of address is 'pani', 'pan' or empty (the letters then use neutral forms)"))
    return addressed_as


def validate(data: RequestInput, today: date) -> dict[str, Any]:
    """The register row's values, cleaned; InvalidInput names the first field that is wrong."""
    if data.kind not in KINDS:
        raise InvalidInput(N_("the kind must be one of: {kinds}"), kinds=", ".join(KINDS))
    if data.channel not in CHANNELS:
        raise InvalidInput(N_("the channel must be 'call' or 'chat'"))
    received = parse_date(data.received_on, N_("date received"))
    if received > today:
        raise InvalidInput(N_("the date received ({received}) is in the future"), received=received.isoformat())
    name = clean_text(data.requester_name, "requester's name", required=True, limit=MAX_NAME)
    address = clean_text(data.requester_address, "correspondence address", required=True, limit=MAX_ADDRESS)
    email = _address(data.requester_email)
    phone = _phone(data.requester_phone, data.channel)
    asked = _asked(data)
    # §4.1: listening or reading only in exceptional, justified cases; an Art. 15 copy needs no reason.
    justification = clean_text(data.justification, "justification", required=data.kind == ACCESS)
    delivery = _delivery(data.delivery, email)
    addressed_as = _addressed_as(data.addressed_as)
    hint = validate_hint(data.hint, received)
    return {
        "kind": data.kind,
        "channel": data.channel,
        "received_on": received.isoformat(),
        "due_on": due_date(received).isoformat(),
        "requester_name": name,
        "requester_address": address,
        "requester_email": email,
        "requester_phone": phone,
        "justification": justification,
        "asked": asked,
        "delivery": delivery,
        "hint": hint,
        "addressed_as": addressed_as,
    }


def _duration(value: Any) -> int:
    try:
        minutes = int(value)
    except (TypeError, ValueError):
        raise InvalidInput(N_("the approximate duration must be whole minutes")) from None
    if not 0 <= minutes <= 24 * 60:
        raise InvalidInput(N_("the approximate duration must be between 0 and 1440 minutes"))
    return minutes


def validate_hint(hint: Mapping[str, Any], received: date) -> dict[str, Any]:
    """What identifies the conversation: its date (required), time, duration and free-text details."""
    if not isinstance(hint, Mapping):
        raise InvalidInput(N_("the conversation details must be a mapping"))
    unknown = sorted(set(hint) - _HINT_KEYS)
    if unknown:
        raise InvalidInput(N_("unknown conversation details: {unknown}"), unknown=", ".join(unknown))
    if not hint.get("date"):
        raise InvalidInput(N_("the date of the conversation is required"))
    day = parse_date(hint["date"], N_("date of the conversation"))
    if day > received:
        raise InvalidInput(N_("the conversation cannot be later than the date the request was received"))
    out: dict[str, Any] = {"date": day.isoformat()}
    if hint.get("time"):
        t = str(hint["time"]).strip()
        if not re.fullmatch(r"([01]?\d|2[0-3]):[0-5]\d", t):
            raise InvalidInput(N_("the approximate time {t!r} must be HH:MM"), t=t)
        out["time"] = f"{int(t.split(':')[0]):02d}:{t.split(':')[1]}"
    if hint.get("duration_min") not in (None, ""):
        out["duration_min"] = _duration(hint["duration_min"])
    for key in ("consultant", "topic", "name_or_email"):
        value = clean_text(hint.get(key) or "", key.replace("_", " "), limit=MAX_NAME, multiline=False)
        if value:
            out[key] = value
    return out


def reference(value: Any) -> str:
    """The annex's conversation reference as written, cleaned (its normal form is resident_desk's)."""
    return clean_text(value, "chat reference or call number", limit=MAX_REFERENCE, multiline=False)
