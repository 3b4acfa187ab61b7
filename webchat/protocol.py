"""The live protocol's vocabulary (docs/PROTOCOL.md): error codes, release reasons and the payload builders
shared by the chat server, the TUI's live client and the tests.

Importing this module opens nothing and imports neither aiohttp nor python-socketio, so a client (the
TUI) and a test can use the same codes and payload shapes the server sends.
"""

from __future__ import annotations

from typing import Any, Iterable

from store.chats import SYSTEM_EVENTS, ChatMessage, render_event
from store.clock import to_iso
from store.errors import (
    AuthenticationFailed,
    ChatClosed,
    CimError,
    Conflict,
    InvalidTransition,
    NotFound,
    SessionExpired,
)

# ---------------------------------------------------------------------- error codes

UNAUTHORISED = "unauthorised"
NOT_PERMITTED = "not_permitted"
ALREADY_TAKEN = "already_taken"
NOT_ONLINE = "not_online"
NOT_FOUND = "not_found"
CLOSED = "closed"
EMPTY = "empty"
TOO_LONG = "too_long"
INVALID = "invalid"
SERVER_ERROR = "server_error"
AT_CAPACITY = "at_capacity"
NOTICE_NOT_ACCEPTED = "notice_not_accepted"
RATE_LIMITED = "rate_limited"
OFFLINE = "offline"
RESUME_INVALID = "resume_invalid"
TOO_MANY_CONNECTIONS = "too_many_connections"

#: The codes an acknowledgement on /resident may carry.
RESIDENT_CODES = frozenset(
    {NOTICE_NOT_ACCEPTED, EMPTY, TOO_LONG, RATE_LIMITED, CLOSED, INVALID, OFFLINE, SERVER_ERROR, RESUME_INVALID}
)
#: The codes an acknowledgement on /staff may carry.
STAFF_CODES = frozenset(
    {
        UNAUTHORISED,
        NOT_PERMITTED,
        ALREADY_TAKEN,
        NOT_ONLINE,
        NOT_FOUND,
        CLOSED,
        EMPTY,
        TOO_LONG,
        INVALID,
        SERVER_ERROR,
        AT_CAPACITY,
    }
)
#: A refused connect's `err.data.code`, per namespace.
RESIDENT_CONNECT_CODES = frozenset({RESUME_INVALID, TOO_MANY_CONNECTIONS, SERVER_ERROR})
STAFF_CONNECT_CODES = frozenset({UNAUTHORISED, TOO_MANY_CONNECTIONS, SERVER_ERROR})
#: The codes of domain errors passed on as they are (the rest are mapped by class in `error_code`).
_PASSED_ON = frozenset({NOT_PERMITTED, INVALID, EMPTY, TOO_LONG, RESUME_INVALID, AT_CAPACITY})

# ---------------------------------------------------------------------- refusal reasons

# An error ack may carry `reason` beside its `code`: what exactly was refused, so that a client words it
# in its own language (the widget in the resident's, the TUI in the staff member's). `message` is English
# for logs and developers; no client shows it.
CONTACT_MISSING = "contact_missing"
CONTACT_INVALID = "contact_invalid"
CONTACT_TOO_LONG = "contact_too_long"
NAME_TOO_LONG = "name_too_long"
CONSULTANT_AVAILABLE = "consultant_available"
CHAT_OPEN = "chat_open"
NOTICE_OUTDATED = "notice_outdated"
NOT_ENDED = "not_ended"
ALREADY_RATED = "already_rated"
RATING_INVALID = "rating_invalid"
COMMENT_TOO_LONG = "comment_too_long"
PICK_MODE = "pick_mode"
DECLINED_ONCE = "declined_once"
NOT_WATCHING = "not_watching"
PURPOSE_INVALID = "purpose_invalid"
CATEGORY_INVALID = "category_invalid"
NOT_ANSWERED = "not_answered"
OWN_CHAT = "own_chat"
PBX_UNAVAILABLE = "pbx_unavailable"
NOT_A_MEMBER = "not_a_member"

#: The reasons an acknowledgement on /resident may carry (the widget has a text for each).
RESIDENT_REASONS = frozenset(
    {
        CONTACT_MISSING,
        CONTACT_INVALID,
        CONTACT_TOO_LONG,
        NAME_TOO_LONG,
        CONSULTANT_AVAILABLE,
        CHAT_OPEN,
        NOTICE_OUTDATED,
        NOT_ENDED,
        ALREADY_RATED,
        RATING_INVALID,
        COMMENT_TOO_LONG,
    }
)
#: The reasons an acknowledgement on /staff may carry (the TUI has a text for each: tui/live/errors.py).
STAFF_REASONS = frozenset(
    {PICK_MODE, DECLINED_ONCE, NOT_WATCHING, PURPOSE_INVALID, CATEGORY_INVALID, NOT_ANSWERED, OWN_CHAT}
    | {PBX_UNAVAILABLE, NOT_A_MEMBER}
)
REFUSAL_REASONS = RESIDENT_REASONS | STAFF_REASONS

# ---------------------------------------------------------------------- why a chat left a consultant

TRANSFERRED = "transferred"
CLOSED_BY_CONSULTANT = "closed"
RESIDENT_LEFT = "resident_left"
SESSION_ENDED = "session_ended"
CONNECTION_LOST = "connection_lost"
DECLINED = "declined"
ABANDONED = "abandoned"
TAKEN_OVER = "taken_over"
#: `released.reason` (docs/PROTOCOL.md).
RELEASE_REASONS = frozenset(
    {TRANSFERRED, CLOSED_BY_CONSULTANT, RESIDENT_LEFT, SESSION_ENDED, CONNECTION_LOST, DECLINED, ABANDONED, TAKEN_OVER}
)

#: The consultants' `queue` lists at most this many chats (the front); `total` counts them all. A queue of
#: 2,000 sent whole to 50 consultants at every change was 14 MB a broadcast (bench/desk.py).
QUEUE_SHOWN = 100


# ---------------------------------------------------------------------- acknowledgements


def ok(**fields: Any) -> dict[str, Any]:
    return {"ok": True, **fields}


def error(code: str, message: str, reason: str | None = None) -> dict[str, Any]:
    """A refusal: `code` (the error codes above), `message` (English, for logs and developers) and, when the
    code alone does not say what was refused, `reason` (REFUSAL_REASONS) for the client's own words."""
    assert reason is None or reason in REFUSAL_REASONS, reason
    details: dict[str, Any] = {"code": code, "message": message}
    if reason is not None:
        details["reason"] = reason
    return {"ok": False, "error": details}


def domain_error(exc: CimError) -> dict[str, Any]:
    """The error ack of a domain error: its code, its sentence in English (never the server's staff language:
    each client words the refusal itself) and its reason, when the store gave one."""
    reason = exc.refusal_reason if exc.refusal_reason in REFUSAL_REASONS else None
    return error(error_code(exc), exc.message_in("en"), reason)


def refusal(code: str, message: str) -> dict[str, str]:
    """A refused connect's details: the client's connect_error carries them as `err.data`."""
    return {"code": code, "message": message}


def error_code(exc: CimError) -> str:
    """The protocol's error code for a domain error."""
    if isinstance(exc, Conflict):
        return ALREADY_TAKEN
    if isinstance(exc, (SessionExpired, AuthenticationFailed)):
        return UNAUTHORISED
    if isinstance(exc, NotFound):
        return NOT_FOUND
    if isinstance(exc, ChatClosed):
        return CLOSED
    if isinstance(exc, InvalidTransition):
        return INVALID
    return exc.code if exc.code in _PASSED_ON else SERVER_ERROR


# ---------------------------------------------------------------------- transcript lines


def line_payload(message: ChatMessage, lang: str | None = None) -> dict[str, Any]:
    """A `message` payload without its chat: `{"seq", "from", "text", "at"}`, and for a system line its
    `event` (str) and `params` (dict). For staff (`lang` None) `text` is the stored Polish line, which the
    TUI may render again from `event`/`params` in the reader's language; for a resident (`lang` = the
    chat's language) `text` is the system line in that language, with the consultant's display name."""
    text = message.text
    if lang and message.event in SYSTEM_EVENTS:
        text = render_event(message.event, message.params, lang)
    payload: dict[str, Any] = {"seq": message.seq, "from": message.sender, "text": text, "at": to_iso(message.at)}
    if message.event is not None:
        payload["event"] = message.event
        payload["params"] = dict(message.params or {})
    return payload


def staff_line_payload(message: ChatMessage, staff: dict[int, dict[str, Any]] | None = None) -> dict[str, Any]:
    """A line for staff: `line_payload`, and for a system line by a staff member its `staff` (who: `staff_id`,
    `login`, `full_name`, `display_name`, from Chats.staff_on_lines), so the TUI names colleagues by their
    full name. Never for a resident."""
    payload = line_payload(message)
    who = (staff or {}).get(message.staff_id) if message.sender == "system" and message.staff_id else None
    if who is not None:
        payload["staff"] = dict(who)
    return payload


def staff_line(chat_id: int, message: ChatMessage, staff: dict[int, dict[str, Any]] | None = None) -> dict[str, Any]:
    """A `/staff` `message`: the line with its chat (and `staff`, see staff_line_payload)."""
    return {"chat_id": chat_id, **staff_line_payload(message, staff)}


def history(
    messages: Iterable[ChatMessage], lang: str | None = None, staff: dict[int, dict[str, Any]] | None = None
) -> list[dict[str, Any]]:
    """A transcript: for a resident (`lang`) as line_payload, for staff (lang None) with `staff` on lines."""
    if lang:
        return [line_payload(m, lang) for m in messages]
    return [staff_line_payload(m, staff) for m in messages]


# ---------------------------------------------------------------------- /staff payloads


def topic_brief(topic: Any) -> dict[str, Any] | None:
    """A queue entry's topic: `{"id", "pl", "en"}` (None without one)."""
    return None if topic is None else {"id": topic.id, "pl": topic.label_pl, "en": topic.label_en}


def topic_payload(topic: Any) -> dict[str, Any] | None:
    """An auto-assigned chat's topic: `{"id", "pl", "en", "department"}`."""
    return None if topic is None else {**topic_brief(topic), "department": topic.department}  # type: ignore[dict-item]


def queue_payload(queue: list[Any], topics: dict[int, Any]) -> dict[str, Any]:
    """The consultants' `queue`: the front of the queue (QUEUE_SHOWN) and its whole length in `total`."""
    return {
        "chats": [
            {
                "chat_id": q.chat_id,
                "lang": q.lang,
                "waiting_since": to_iso(q.waiting_since),
                "position": q.position,
                "topic": topic_brief(topics.get(q.topic_id)),
            }
            for q in queue[:QUEUE_SHOWN]
        ],
        "total": len(queue),
    }


def presence_payload(consultants: Iterable[tuple[int, str, str]]) -> dict[str, Any]:
    """`presence` from (staff id, name, available/away), in staff-id order."""
    return {
        "consultants": [
            {"staff_id": staff_id, "name": name, "status": status} for staff_id, name, status in sorted(consultants)
        ]
    }


def assigned_payload(
    chat_id: int, lang: str, lines: list[dict[str, Any]], notes: list[dict[str, Any]], **extra: Any
) -> dict[str, Any]:
    """`assigned` (and each chat of `my_chats`): the whole history, the supervisors' whispers (`notes`,
    so a consultant who newly handles a chat reads them at once), and how it came (`by`, `auto`, `topic`,
    `taken_over`)."""
    return {"chat_id": chat_id, "lang": lang, **extra, "history": lines, "notes": notes}


def released_payload(chat_id: int, reason: str, by: dict[str, Any] | None = None) -> dict[str, Any]:
    assert reason in RELEASE_REASONS, reason
    payload: dict[str, Any] = {"chat_id": chat_id, "reason": reason}
    if by is not None:
        payload["by"] = by
    return payload


def chat_state(chat_id: int, status: str) -> dict[str, Any]:
    """`/staff` `chat_state`."""
    return {"chat_id": chat_id, "status": status}


def session_ended_payload(code: str, polish: str, english: str) -> dict[str, str]:
    return {"code": code, "message": polish, "message_en": english}


# ---------------------------------------------------------------------- /resident payloads


def queued_state(
    position: int | None = None, estimated_wait_s: int | None = None, *, with_position: bool = True
) -> dict[str, Any]:
    """`state` queued: with the position and estimate, or (a chat just declined) the bare status."""
    if not with_position:
        return {"status": "queued"}
    return {"status": "queued", "position": position, "estimated_wait_s": estimated_wait_s}


def active_state() -> dict[str, Any]:
    return {"status": "active"}


def closed_state(receipt: Any = None) -> dict[str, Any]:
    """`state` closed, with the chat's receipt the first (and only) time."""
    state: dict[str, Any] = {"status": "closed"}
    if receipt is not None:
        state["receipt"] = {"reference": receipt.reference, "secret": receipt.secret}
    return state


def notice_payload(notice: Any) -> dict[str, Any]:
    return {"notice_id": notice.id, "version": notice.version, "lang": notice.lang, "text": notice.text}
