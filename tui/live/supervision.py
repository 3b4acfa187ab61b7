"""§3: the supervisors' side of /staff: every open chat (the `supervision` view), the queue, who is online,
and the chats they watch (read-only transcripts with the whispers)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable

from tui.live.client import StaffConnection
from tui.live.desk import LiveChat, Outgoing
from tui.live.errors import RETRYABLE, LiveError
from tui.live.payloads import (
    QueuedChat,
    chat_id_of,
    line_of,
    lines_of,
    names_of,
    note_line,
    notes_of,
    parse_time,
    queue_of,
)
from tui.live.state import ConnectionState

#: `listener(event, facts)`: called after every change of the board, in the event loop.
Listener = Callable[[str, dict], None]


@dataclass
class SupervisedChat:
    """One open chat in the supervision view: who handles it and the times (never what was said)."""

    chat_id: int
    status: str  # queued / active
    lang: str
    created_at: datetime | None
    waiting_since: datetime | None
    consultant_id: int | None
    consultant_name: str
    assigned_at: datetime | None
    last_line_at: datetime | None
    unanswered_since: datetime | None
    lines: int
    watchers: list[str]
    #: The topic's labels by language ({"pl", "en"}), or None.
    topic: dict | None = None


def _supervised(item: Any) -> SupervisedChat | None:
    chat_id = chat_id_of(item)
    if chat_id is None:
        return None
    consultant = item.get("consultant") if isinstance(item.get("consultant"), dict) else None
    try:
        lines = int(item.get("lines") or 0)
    except (TypeError, ValueError):
        lines = 0
    return SupervisedChat(
        chat_id=chat_id,
        status=str(item.get("status") or ""),
        lang=str(item.get("lang") or "pl"),
        created_at=parse_time(item.get("created_at")),
        waiting_since=parse_time(item.get("waiting_since")),
        consultant_id=consultant.get("staff_id") if consultant else None,
        consultant_name=str(consultant.get("name") or "") if consultant else "",
        assigned_at=parse_time(item.get("assigned_at")),
        last_line_at=parse_time(item.get("last_line_at")),
        unanswered_since=parse_time(item.get("unanswered_since")),
        lines=lines,
        watchers=names_of({"by": item.get("watchers")}),
        topic=item.get("topic") if isinstance(item.get("topic"), dict) else None,
    )


class SupervisionBoard:
    """What a supervisor sees; changed only through `apply` (server events) and the client's watches."""

    def __init__(self, staff_id: int | None = None) -> None:
        self.staff_id = staff_id
        self.state = ConnectionState.OFFLINE
        self.view: list[SupervisedChat] = []
        self.queue: list[QueuedChat] = []
        self.presence: list[dict] = []
        #: The chats being watched (each with the outbox of its whispers).
        self.chats: dict[int, LiveChat] = {}
        #: The purpose each watch was opened with (sent again when the connection comes back).
        self.purposes: dict[int, str] = {}
        #: Why the server ended a watch (closed, taken_over, ...), until the supervisor closes it here.
        self.ended: dict[int, str] = {}
        self.selected: int | None = None
        #: The server refused the view (the supervising role was removed).
        self.refused: str | None = None

    def watch(self, ack: dict, purpose: str) -> LiveChat:
        chat_id = int(ack["chat_id"])
        chat = self.chats.get(chat_id) or LiveChat(chat_id=chat_id)
        chat.lang = str(ack.get("lang") or chat.lang)
        chat.status = str(ack.get("status") or "active")
        for line in lines_of(ack.get("history")) + notes_of(ack.get("notes")):
            chat.add(line)
        self.chats[chat_id] = chat
        self.purposes[chat_id] = purpose
        self.ended.pop(chat_id, None)
        self.selected = chat_id
        return chat

    def forget(self, chat_id: int) -> None:
        self.chats.pop(chat_id, None)
        self.purposes.pop(chat_id, None)
        self.ended.pop(chat_id, None)
        if self.selected == chat_id:
            self.selected = next(iter(self.chats), None)

    def row(self, chat_id: int) -> SupervisedChat | None:
        return next((c for c in self.view if c.chat_id == chat_id), None)

    def apply(self, event: str, data: Any) -> dict:
        """Fold one server event into the board; facts for the screen (`chat_id`, `line`, `reason`)."""
        handler = _BOARD_EVENTS.get(event)
        if handler is None or not isinstance(data, dict):
            return {}
        return handler(self, data) or {}

    def _view(self, data: dict) -> None:
        if data.get("ended"):
            self.refused = str(data["ended"])
        raw_items = data.get("chats")
        items = raw_items if isinstance(raw_items, list) else []
        self.view = [c for c in (_supervised(i) for i in items if isinstance(i, dict)) if c is not None]
        self.queue = [
            QueuedChat(c.chat_id, c.lang, c.waiting_since, i + 1)
            for i, c in enumerate(c for c in self.view if c.status == "queued")
        ]

    def _queue(self, data: dict) -> None:
        self.queue = queue_of(data.get("chats"))

    def _presence(self, data: dict) -> None:
        consultants = data.get("consultants")
        self.presence = [c for c in consultants if isinstance(c, dict)] if isinstance(consultants, list) else []

    def _line(self, data: dict, line: Any) -> dict | None:
        chat_id = chat_id_of(data)
        if chat_id not in self.chats or line is None:
            return None
        self.chats[chat_id].add(line)
        return {"chat_id": chat_id, "line": line}

    def _monitor_ended(self, data: dict) -> dict | None:
        chat_id = chat_id_of(data)
        if chat_id not in self.chats:
            return None
        self.ended[chat_id] = str(data.get("reason") or "")
        self.chats[chat_id].status = "ended"
        return {"chat_id": chat_id, "reason": self.ended[chat_id]}


_BOARD_EVENTS: dict[str, Callable[[SupervisionBoard, dict], dict | None]] = {
    "supervision": SupervisionBoard._view,
    "queue": SupervisionBoard._queue,
    "presence": SupervisionBoard._presence,
    "message": lambda board, data: board._line(data, line_of(data)),
    "whisper": lambda board, data: board._line(data, note_line(data)),
    "monitor_ended": SupervisionBoard._monitor_ended,
}


class SupervisionClient(StaffConnection):
    """The supervisors' /staff connection (§3): the view, watching with a purpose, whispers, take-overs.

    Whispers go through the watched chat's outbox like replies: a whisper not acknowledged keeps its
    `client_msg_id` for every retry, so the server stores it once. After a reconnect each open watch is
    opened again with its purpose (the server audits it again: a new reading) before the outboxes are sent.
    `listener(event, facts)` is told of every change; the pseudo-event `connection` reports a new state.
    """

    EVENTS = tuple(_BOARD_EVENTS)

    def __init__(
        self, server_url: str, token: str, board: SupervisionBoard, listener: Listener, **options: Any
    ) -> None:
        super().__init__(server_url, token, board, **options)
        self.board = board
        self.listener = listener

    def _state_changed(self, state: ConnectionState) -> None:
        self.listener("connection", {"state": state})

    def _session_ended(self, data: dict) -> None:
        self.listener("session_ended", data)

    def _event(self, event: str, data: Any) -> None:
        self.listener(event, self.board.apply(event, data))

    async def _after_connect(self) -> None:
        for chat_id, purpose in list(self.board.purposes.items()):
            if chat_id in self.board.ended:
                continue
            try:
                self.board.watch(await self.call("monitor", {"chat_id": chat_id, "purpose": purpose}), purpose)
            except LiveError as exc:
                self.board.ended[chat_id] = exc.code
                self.board.chats[chat_id].status = "ended"
                continue
            if not await self._flush_whispers(chat_id):
                return
        self.listener("resync", {})

    async def _flush_whispers(self, chat_id: int) -> bool:
        """The watch's unacknowledged whispers, again with their ids; False when the connection failed."""
        for item in list(self.board.chats[chat_id].outbox):
            try:
                await self._deliver_whisper(chat_id, item)
            except LiveError as exc:
                if exc.code in RETRYABLE:
                    return False
                self.listener("send_failed", {"chat_id": chat_id, "text": item.text, "message": exc.message})
                continue
            self.listener("sent", {"chat_id": chat_id, "text": item.text})
        return True

    async def monitor(self, chat_id: int, purpose: str) -> LiveChat:
        ack = await self.call("monitor", {"chat_id": chat_id, "purpose": purpose})
        chat = self.board.watch(ack, purpose)
        self.listener("watching", {"chat_id": chat_id})
        return chat

    async def unmonitor(self, chat_id: int) -> None:
        try:
            if chat_id not in self.board.ended:
                await self.call("unmonitor", {"chat_id": chat_id})
        finally:
            self.board.forget(chat_id)

    async def whisper(self, chat_id: int, text: str) -> None:
        """A note only the chat's consultant sees; kept in the outbox with one `client_msg_id` until acked."""
        chat = self.board.chats.get(chat_id)
        item = chat.outgoing(text) if chat is not None else Outgoing(client_msg_id=uuid.uuid4().hex, text=text)
        await self._deliver_whisper(chat_id, item)

    async def _deliver_whisper(self, chat_id: int, item: Outgoing) -> None:
        try:
            ack = await self.call(
                "whisper", {"chat_id": chat_id, "text": item.text, "client_msg_id": item.client_msg_id}
            )
        except LiveError as exc:
            if exc.code not in RETRYABLE:
                self._forget(chat_id, item)
            raise
        self._forget(chat_id, item)
        self.board.apply("whisper", ack.get("note") or {})

    async def take_over(self, chat_id: int) -> dict:
        ack = await self.call("take_over", {"chat_id": chat_id})
        self.board.forget(chat_id)
        return ack
