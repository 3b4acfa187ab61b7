"""The /staff server events (docs/PROTOCOL.md) read into typed, frozen payloads.

A server is trusted to speak the protocol, but a payload is still read defensively: a missing or malformed
field gives None (the event is ignored) or its default, never an exception in the UI's event loop.
`parse(event, data)` is the one entry; each event has its reader in `READERS`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Union

from store.chats import SYSTEM_EVENTS, render_event
from store.i18n import current_language


def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


@dataclass
class ChatLine:
    seq: int
    sender: str  # resident / consultant / system; `note` for a supervisor's whisper (§3)
    text: str
    at: datetime | None
    #: A whisper's note id (its `seq` is the line it follows) and its author's name; None for transcript lines.
    note_id: int | None = None
    author: str = ""
    #: A system line's event code and parameters (store.chats.SYSTEM_EVENTS), when the server sent them.
    event: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    #: A system line's staff member as the server names them for staff (`staff`: full name, display name,
    #: log-in name); the line shows the first of these there is.
    staff_name: str | None = None

    @property
    def key(self) -> Any:
        """What identifies the line on a desk: its seq, or for a note ("note", id)."""
        return self.seq if self.note_id is None else ("note", self.note_id)

    @property
    def order(self) -> tuple[int, int, int]:
        return (self.seq, 0 if self.note_id is None else 1, self.note_id or 0)

    @property
    def shown(self) -> str:
        """The line as staff read it now: a system event in the staff language (as the archive shows it),
        any other line (or a system line without its event: an older server) as its stored text."""
        if self.sender != "system" or self.event not in SYSTEM_EVENTS:
            return self.text
        try:
            return render_event(self.event, self.params, current_language(), staff=True, staff_name=self.staff_name)
        except (KeyError, IndexError, ValueError):  # parameters the wording does not fit: the stored line
            return self.text


@dataclass(frozen=True)
class QueuedChat:
    chat_id: int
    lang: str
    waiting_since: datetime | None
    position: int
    topic: tuple[str, str] | None = None


def chat_id_of(data: Any) -> int | None:
    try:
        return int(data["chat_id"])
    except (KeyError, TypeError, ValueError):
        return None


def topic_of(value: Any) -> tuple[str, str] | None:
    """A payload's `topic` {"id", "pl", "en"} as (Polish label, English label)."""
    if not isinstance(value, dict) or not isinstance(value.get("pl"), str):
        return None
    return value["pl"], str(value.get("en") or value["pl"])


def names_of(data: Any) -> list[str]:
    """The full names in a payload's `by` list ([{"staff_id", "name"}, ...])."""
    by = data.get("by") if isinstance(data, dict) else None
    return [str(b.get("name") or b.get("staff_id")) for b in by if isinstance(b, dict)] if isinstance(by, list) else []


def _params(value: Any) -> dict[str, Any]:
    return {k: v for k, v in value.items() if isinstance(k, str)} if isinstance(value, dict) else {}


def staff_name_of(value: Any) -> str | None:
    """A line's `staff` {"full_name", "display_name", "login"} as the name staff read: the full name, else the
    display name, else the log-in name (None without any)."""
    if not isinstance(value, dict):
        return None
    for key in ("full_name", "display_name", "login"):
        name = value.get(key)
        if isinstance(name, str) and name.strip():
            return name.strip()
    return None


def line_of(data: Any) -> ChatLine | None:
    """A `message` payload, or one line of a history, as a transcript line."""
    if not isinstance(data, dict):
        return None
    try:
        seq = int(data["seq"])
    except (KeyError, TypeError, ValueError):
        return None
    sender = data.get("from")
    event = data.get("event")
    return ChatLine(
        seq=seq,
        sender=sender if sender in ("resident", "consultant", "system") else "system",
        text=str(data.get("text", "")),
        at=parse_time(data.get("at")),
        event=event if isinstance(event, str) else None,
        params=_params(data.get("params")),
        staff_name=staff_name_of(data.get("staff")),
    )


def lines_of(history: Any) -> list[ChatLine]:
    return [line for line in map(line_of, history if isinstance(history, list) else []) if line is not None]


def note_line(data: Any) -> ChatLine | None:
    """A `whisper` payload (or a note of a `monitor` ack) as a transcript line of its own kind."""
    if not isinstance(data, dict):
        return None
    try:
        note_id, after = int(data["note_id"]), int(data["after_seq"])
    except (KeyError, TypeError, ValueError):
        return None
    raw_by = data.get("by")
    by = raw_by if isinstance(raw_by, dict) else {}
    return ChatLine(
        seq=after,
        sender="note",
        text=str(data.get("text", "")),
        at=parse_time(data.get("at")),
        note_id=note_id,
        author=str(by.get("name") or ""),
    )


def notes_of(items: Any) -> list[ChatLine]:
    return [line for line in map(note_line, items if isinstance(items, list) else []) if line is not None]


def queue_of(items: Any) -> list[QueuedChat]:
    """A `queue` payload's chats, in their positions (an entry without a chat id is left out)."""
    queue: list[QueuedChat] = []
    for item in items if isinstance(items, list) else []:
        chat_id = chat_id_of(item)
        if chat_id is None:
            continue
        try:
            position = int(item.get("position") or len(queue) + 1)
        except (TypeError, ValueError):
            position = len(queue) + 1
        queue.append(
            QueuedChat(
                chat_id=chat_id,
                lang=str(item.get("lang") or "pl"),
                waiting_since=parse_time(item.get("waiting_since")),
                position=position,
                topic=topic_of(item.get("topic")),
            )
        )
    return sorted(queue, key=lambda q: q.position)


# ---------------------------------------------------------------------- the events


@dataclass(frozen=True)
class QueuePayload:
    chats: list[QueuedChat]
    #: How many wait in all (the server lists only the front of a long queue); None when not said.
    total: int | None


@dataclass(frozen=True)
class PresencePayload:
    consultants: list[dict]


@dataclass(frozen=True)
class AssignedPayload:
    chat_id: int
    lang: str | None
    history: list[ChatLine]
    topic: tuple[str, str] | None = None
    #: Who transferred it to us (their staff id), or None.
    by: Any = None
    taken_over: bool = False
    auto: bool = False
    #: A chat the resident left that still waits for its category (issue 16: listed at every connect).
    left: bool = False


@dataclass(frozen=True)
class MessagePayload:
    chat_id: int
    line: ChatLine


@dataclass(frozen=True)
class TypingPayload:
    chat_id: int
    active: bool


@dataclass(frozen=True)
class ReleasedPayload:
    chat_id: int
    reason: str
    #: A take-over's supervisor (§3), by full name; None for any other release.
    by_name: str | None = None


@dataclass(frozen=True)
class SupervisedPayload:
    chat_id: int
    names: list[str]


@dataclass(frozen=True)
class WhisperPayload:
    chat_id: int
    line: ChatLine


@dataclass(frozen=True)
class ChatStatePayload:
    chat_id: int
    status: str


Payload = Union[
    QueuePayload,
    PresencePayload,
    AssignedPayload,
    MessagePayload,
    TypingPayload,
    ReleasedPayload,
    SupervisedPayload,
    WhisperPayload,
    ChatStatePayload,
]


def _queue(data: dict) -> QueuePayload:
    total = data.get("total")
    return QueuePayload(
        queue_of(data.get("chats")), total if isinstance(total, int) and not isinstance(total, bool) else None
    )


def _presence(data: dict) -> PresencePayload:
    consultants = data.get("consultants")
    return PresencePayload([c for c in consultants if isinstance(c, dict)] if isinstance(consultants, list) else [])


def _assigned(data: dict) -> AssignedPayload | None:
    chat_id = chat_id_of(data)
    if chat_id is None:
        return None
    lang = data.get("lang")
    # the supervisors' whispers come with the chat (`notes`), so a new handler sees them at once
    return AssignedPayload(
        chat_id,
        str(lang) if lang else None,
        lines_of(data.get("history")) + notes_of(data.get("notes")),
        topic_of(data.get("topic")),
        data.get("by"),
        bool(data.get("taken_over")),
        bool(data.get("auto")),
        data.get("left") is True,
    )


def _message(data: dict) -> MessagePayload | None:
    chat_id, line = chat_id_of(data), line_of(data)
    return MessagePayload(chat_id, line) if chat_id is not None and line is not None else None


def _typing(data: dict) -> TypingPayload | None:
    chat_id = chat_id_of(data)
    return TypingPayload(chat_id, bool(data.get("active"))) if chat_id is not None else None


def _released(data: dict) -> ReleasedPayload | None:
    chat_id = chat_id_of(data)
    if chat_id is None:
        return None
    by = data.get("by")
    return ReleasedPayload(
        chat_id, str(data.get("reason") or ""), str(by.get("name") or "") if isinstance(by, dict) else None
    )


def _supervised(data: dict) -> SupervisedPayload | None:
    chat_id = chat_id_of(data)
    return SupervisedPayload(chat_id, names_of(data)) if chat_id is not None else None


def _whisper(data: dict) -> WhisperPayload | None:
    chat_id, line = chat_id_of(data), note_line(data)
    return WhisperPayload(chat_id, line) if chat_id is not None and line is not None else None


def _chat_state(data: dict) -> ChatStatePayload | None:
    chat_id = chat_id_of(data)
    return ChatStatePayload(chat_id, str(data.get("status") or "")) if chat_id is not None else None


#: The reader of each server event a consultant's desk follows.
READERS: dict[str, Callable[[dict], Payload | None]] = {
    "queue": _queue,
    "presence": _presence,
    "assigned": _assigned,
    "message": _message,
    "typing": _typing,
    "released": _released,
    "supervised": _supervised,
    "whisper": _whisper,
    "chat_state": _chat_state,
}


def parse(event: str, data: Any) -> Payload | None:
    """A server event as its typed payload; None for an event not read here or a payload that is not one."""
    reader = READERS.get(event)
    if reader is None or not isinstance(data, dict):
        return None
    return reader(data)
