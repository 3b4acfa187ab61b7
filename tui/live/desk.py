"""What a consultant sees of the live chats, and the reducer that folds the server's events into it.

`reduce(desk, payload)` is the only way a server event changes the desk: one function per payload type
(`REDUCERS`), each changing nothing but the desk it is given and answering with the message the UI is
told (tui/live/messages.py), or None when nothing changed that anyone must hear of. It does no I/O, so
it is tested without a server or a screen. The client (tui/live/client.py) changes the desk for the
consultant's own actions through the named methods (`take`, `add_own_line`, `drop`, ...).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any, Callable

from tui.live.messages import Live, LiveMessage
from tui.live.payloads import (
    AssignedPayload,
    ChatLine,
    ChatStatePayload,
    MessagePayload,
    Payload,
    PresencePayload,
    QueuedChat,
    QueuePayload,
    ReleasedPayload,
    SupervisedPayload,
    TypingPayload,
    WhisperPayload,
    parse,
)
from tui.live.state import ConnectionState


@dataclass
class Outgoing:
    """A reply sent but not acknowledged: its `client_msg_id` is kept for every retry, so the server
    stores it once however often it is sent again (after an ack timeout or a reconnect)."""

    client_msg_id: str
    text: str


@dataclass
class LiveChat:
    chat_id: int
    lang: str = "pl"
    lines: list[ChatLine] = field(default_factory=list)
    unread: int = 0
    resident_typing: bool = False
    status: str = "active"
    #: What the consultant typed and has not sent yet; survives switching chats and reconnects.
    draft: str = ""
    #: Replies sent but not acknowledged, oldest first (sent again with the same ids on reconnect).
    outbox: list[Outgoing] = field(default_factory=list)
    #: Who watches this chat now (§3: full names; the consultant is always told, no silent monitoring).
    supervised_by: list[str] = field(default_factory=list)
    #: The topic the resident picked, (Polish label, English label), when the server said it.
    topic: tuple[str, str] | None = None

    def add(self, line: ChatLine) -> bool:
        """Append a line unless it is already here (a resync or an echo of our own send)."""
        if line.key in {existing.key for existing in self.lines}:
            return False
        self.lines.append(line)
        if len(self.lines) > 1 and self.lines[-2].order > line.order:
            self.lines.sort(key=lambda entry: entry.order)
        return True

    def outgoing(self, text: str) -> Outgoing:
        """The outbox entry for this text: the one not acknowledged yet (a retry keeps its id), else a new one."""
        item = next((o for o in self.outbox if o.text == text), None)
        if item is None:
            item = Outgoing(client_msg_id=uuid.uuid4().hex, text=text)
            self.outbox.append(item)
        return item

    def forget(self, item: Outgoing) -> None:
        if item in self.outbox:
            self.outbox.remove(item)


class Desk:
    """A consultant's live chats: the queue, who is online, their open chats (changed by `reduce`)."""

    def __init__(self, staff_id: int | None = None) -> None:
        self.staff_id = staff_id
        self.state = ConnectionState.OFFLINE
        self.queue: list[QueuedChat] = []
        self.presence: list[dict] = []
        self.chats: dict[int, LiveChat] = {}
        #: The chat shown on screen (its new lines are read, not unread).
        self.selected: int | None = None
        self._seen_queued: set[int] = set()
        #: `supervised` for a chat not on the desk yet (it can overtake a transfer's `assigned`).
        self._supervised_early: dict[int, list[str]] = {}
        #: available / away, as the server last said in `presence` (webchat/routing.py)
        self.availability = "available"
        #: how many chats wait (the server lists only the front of a long queue: `queue.total`)
        self.queue_total = 0

    def apply(self, event: str, data: Any) -> LiveMessage | None:
        """One server event as it came off the socket: read (tui/live/payloads.py), then reduced."""
        payload = parse(event, data)
        return reduce(self, payload) if payload is not None else None

    def others_online(self) -> list[dict]:
        return [c for c in self.presence if c.get("staff_id") != self.staff_id]

    def take(self, chat_id: int, lang: str | None, history: list[ChatLine], *, left: bool = False) -> LiveChat:
        """A chat is ours (accepted, assigned, or listed after a reconnect), with the lines we did not have;
        `left`: the resident ended it and it waits for its category (F8), read-only."""
        chat = self.chats.get(chat_id) or LiveChat(chat_id=chat_id)
        if lang:
            chat.lang = lang
        chat.status = "left" if left else "active"
        if left:
            chat.resident_typing = False
        if chat_id in self._supervised_early:
            chat.supervised_by = self._supervised_early.pop(chat_id)
        for line in history:
            chat.add(line)
        self.chats[chat_id] = chat
        self.queue = [q for q in self.queue if q.chat_id != chat_id]
        if self.selected is None:
            self.selected = chat_id
        return chat

    def add_own_line(self, chat_id: int, line: ChatLine) -> None:
        """Our reply, placed by the seq of its acknowledgement (the server relays it to our other sockets only)."""
        chat = self.chats.get(chat_id)
        if chat is not None:
            chat.add(line)

    def resync(self, chats: Any) -> None:
        """After a reconnect: the server's list of our open chats, and of the chats the residents left that
        wait for their category, replaces ours (drafts are kept). A chat of ours it no longer lists ended
        (or got its category) elsewhere: shown closed, F8 removes it."""
        if not isinstance(chats, list):
            return
        listed = set()
        for item in chats:
            payload = parse("assigned", item)
            if not isinstance(payload, AssignedPayload):
                continue
            listed.add(payload.chat_id)
            self.take(payload.chat_id, payload.lang, payload.history, left=payload.left)
        for chat_id in list(self.chats):
            if chat_id not in listed and self.chats[chat_id].status in ("active", "left"):
                self.chats[chat_id].status = "closed"

    def uncategorised(self) -> list[LiveChat]:
        """Our chats the resident left that still wait for their category (F8)."""
        return [c for c in self.chats.values() if c.status == "left"]

    def select(self, chat_id: int | None) -> None:
        self.selected = chat_id
        if chat_id in self.chats:
            self.chats[chat_id].unread = 0

    def drop(self, chat_id: int) -> None:
        self.chats.pop(chat_id, None)
        if self.selected == chat_id:
            self.selected = next(iter(self.chats), None)


# ---------------------------------------------------------------------- the reducer, one function an event


def _queue(desk: Desk, p: QueuePayload) -> LiveMessage:
    queue = [q for q in p.chats if q.chat_id not in desk.chats]
    new = [q.chat_id for q in queue if q.chat_id not in desk._seen_queued]
    desk._seen_queued |= set(new)
    desk.queue = queue
    desk.queue_total = p.total if p.total is not None and p.total >= len(queue) else len(queue)
    return Live.QueueChanged(new=new)


def _presence(desk: Desk, p: PresencePayload) -> LiveMessage:
    desk.presence = list(p.consultants)
    mine = [c for c in desk.presence if c.get("staff_id") == desk.staff_id]
    if mine and mine[0].get("status") in ("available", "away"):
        desk.availability = str(mine[0]["status"])
    return Live.PresenceChanged()


def _assigned(desk: Desk, p: AssignedPayload) -> LiveMessage:
    chat = desk.take(p.chat_id, p.lang, p.history, left=p.left)
    chat.topic = p.topic or chat.topic
    return Live.ChatAssigned(chat_id=p.chat_id, by=p.by, taken_over=p.taken_over, auto=p.auto)


def _message(desk: Desk, p: MessagePayload) -> LiveMessage | None:
    chat = desk.chats.get(p.chat_id)
    if chat is None:
        return None
    resident = p.line.sender == "resident"
    if chat.add(p.line) and resident and p.chat_id != desk.selected:
        chat.unread += 1
    if resident:
        chat.resident_typing = False
    return Live.LineReceived(chat_id=p.chat_id, line=p.line)


def _typing(desk: Desk, p: TypingPayload) -> LiveMessage | None:
    chat = desk.chats.get(p.chat_id)
    if chat is None:
        return None
    chat.resident_typing = p.active
    return Live.TypingChanged(chat_id=p.chat_id)


def _released(desk: Desk, p: ReleasedPayload) -> LiveMessage | None:
    chat = desk.chats.get(p.chat_id)
    if chat is None:
        return None
    if p.reason == "resident_left":  # kept (read-only) so the consultant can read the end; F8 removes it
        chat.status = "left"
        chat.resident_typing = False
    else:
        desk.drop(p.chat_id)
    return Live.Released(chat_id=p.chat_id, reason=p.reason, by_name=p.by_name)


def _supervised(desk: Desk, p: SupervisedPayload) -> LiveMessage | None:
    chat = desk.chats.get(p.chat_id)
    if chat is None:  # the chat itself comes a moment later (a transfer): kept for it
        desk._supervised_early[p.chat_id] = list(p.names)
        return None
    chat.supervised_by = list(p.names)
    return Live.Supervised(chat_id=p.chat_id, names=list(p.names))


def _whisper(desk: Desk, p: WhisperPayload) -> LiveMessage | None:
    chat = desk.chats.get(p.chat_id)
    if chat is None:
        return None
    if chat.add(p.line) and p.chat_id != desk.selected:
        chat.unread += 1
    return Live.NoteReceived(chat_id=p.chat_id, line=p.line)


def _chat_state(desk: Desk, p: ChatStatePayload) -> LiveMessage | None:
    chat = desk.chats.get(p.chat_id)
    if chat is None:
        return None
    chat.status = p.status
    chat.resident_typing = False
    return Live.ChatStateChanged(chat_id=p.chat_id, status=p.status)


#: The reducer of each payload type.
REDUCERS: dict[type, Callable[[Desk, Any], LiveMessage | None]] = {
    QueuePayload: _queue,
    PresencePayload: _presence,
    AssignedPayload: _assigned,
    MessagePayload: _message,
    TypingPayload: _typing,
    ReleasedPayload: _released,
    SupervisedPayload: _supervised,
    WhisperPayload: _whisper,
    ChatStatePayload: _chat_state,
}


def reduce(desk: Desk, payload: Payload) -> LiveMessage | None:
    """Fold one server event into the desk; the message to tell the UI, or None."""
    return REDUCERS[type(payload)](desk, payload)
