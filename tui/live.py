"""The consultants' live-chat client: a python-socketio connection to /staff and the desk state it keeps."""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Callable

from store.i18n import N_, _

if TYPE_CHECKING:
    import socketio

log = logging.getLogger(__name__)

NAMESPACE = "/staff"
#: Seconds to wait for an acknowledgement before telling the consultant the server did not answer.
ACK_TIMEOUT = 10.0
#: Seconds a polite disconnect may take when the TUI stops before the connection is dropped.
STOP_TIMEOUT = 0.5


class ConnectionState(StrEnum):
    OFFLINE = "offline"  # no server configured, or stopped
    CONNECTING = "connecting"
    ONLINE = "online"
    RECONNECTING = "reconnecting"
    REFUSED = "refused"  # the server refused our session: sign in again


#: What each connection state looks like in the status line.
STATE_LABELS = {
    ConnectionState.OFFLINE: N_("○ offline"),
    ConnectionState.CONNECTING: N_("◌ connecting…"),
    ConnectionState.ONLINE: N_("● connected"),
    ConnectionState.RECONNECTING: N_("◌ reconnecting…"),
    ConnectionState.REFUSED: N_("✕ refused: sign in again"),
}

#: The consultant-facing sentence for each staff error code of docs/PROTOCOL.md.
ERROR_MESSAGES = {
    "unauthorised": N_("The chat server did not accept your session; sign in again."),
    "not_permitted": N_("You are not permitted to do that."),
    "already_taken": N_("Another consultant accepted this chat first."),
    "not_online": N_("That consultant is no longer online."),
    "not_found": N_("That chat no longer exists."),
    "closed": N_("That chat is already closed."),
    "empty": N_("The message is empty."),
    "too_long": N_("The message is too long."),
    "invalid": N_("The server did not understand the request."),
    "server_error": N_("The chat server had an internal error; try again."),
    "timeout": N_("The chat server did not answer in time; try again."),
    "disconnected": N_("Not connected to the chat server; your text is kept until it reconnects."),
    "at_capacity": N_("You already handle as many chats as you may at once; close one first."),
}


#: Why a chat is no longer this consultant's (`released.reason`, docs/PROTOCOL.md), as words.
RELEASE_REASONS = {
    "session_ended": N_("your session ended"),
    "transferred": N_("transferred"),
    "closed": N_("closed"),
    "resident_left": N_("the resident left"),
}


def release_reason(code: str) -> str:
    known = RELEASE_REASONS.get(code)
    return _(known) if known else code


class LiveError(Exception):
    """A refused or failed live-chat operation, carrying the protocol's error code."""

    def __init__(self, code: str, message: str | None = None) -> None:
        self.code = code
        known = ERROR_MESSAGES.get(code)
        self.message = _(known) if known else message or _("The chat server refused ({code}).").format(code=code)
        super().__init__(self.message)


@dataclass
class ChatLine:
    seq: int
    sender: str  # resident / consultant / system; `note` for a supervisor's whisper (§3)
    text: str
    at: datetime | None
    #: A whisper's note id (its `seq` is the line it follows) and its author's name; None for transcript lines.
    note_id: int | None = None
    author: str = ""

    @property
    def key(self) -> Any:
        """What identifies the line on a desk: its seq, or for a note ("note", id)."""
        return self.seq if self.note_id is None else ("note", self.note_id)

    @property
    def order(self) -> tuple[int, int, int]:
        return (self.seq, 0 if self.note_id is None else 1, self.note_id or 0)


@dataclass
class Outgoing:
    """A reply sent but not acknowledged: its `client_msg_id` is kept for every retry, so the server
    stores it once however often it is sent again (after an ack timeout or a reconnect)."""

    client_msg_id: str
    text: str


#: Failures after which a reply may still have reached the server: it stays in the outbox.
RETRYABLE = frozenset({"timeout", "disconnected"})


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


@dataclass
class QueuedChat:
    chat_id: int
    lang: str
    waiting_since: datetime | None
    position: int
    topic: tuple[str, str] | None = None


def _topic(value: Any) -> tuple[str, str] | None:
    """A payload's `topic` {"id", "pl", "en"} as (Polish label, English label)."""
    if not isinstance(value, dict) or not isinstance(value.get("pl"), str):
        return None
    return value["pl"], str(value.get("en") or value["pl"])


def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _line(data: dict) -> ChatLine | None:
    try:
        seq = int(data["seq"])
    except (KeyError, TypeError, ValueError):
        return None
    sender = data.get("from")
    return ChatLine(
        seq=seq,
        sender=sender if sender in ("resident", "consultant", "system") else "system",
        text=str(data.get("text", "")),
        at=parse_time(data.get("at")),
    )


def note_line(data: Any) -> ChatLine | None:
    """A `whisper` payload (or a note of a `monitor` ack) as a transcript line of its own kind."""
    if not isinstance(data, dict):
        return None
    try:
        note_id, after = int(data["note_id"]), int(data["after_seq"])
    except (KeyError, TypeError, ValueError):
        return None
    by = data.get("by") if isinstance(data.get("by"), dict) else {}
    return ChatLine(seq=after, sender="note", text=str(data.get("text", "")), at=parse_time(data.get("at")),
                    note_id=note_id, author=str(by.get("name") or ""))


def _names(data: Any) -> list[str]:
    by = data.get("by") if isinstance(data, dict) else None
    return [str(b.get("name") or b.get("staff_id")) for b in by if isinstance(b, dict)] if isinstance(by, list) else []


def _chat_id(data: Any) -> int | None:
    try:
        return int(data["chat_id"])
    except (KeyError, TypeError, ValueError):
        return None


class Desk:
    """What a consultant sees of the live chats; changed only through `apply` (server events)."""

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

    def others_online(self) -> list[dict]:
        return [c for c in self.presence if c.get("staff_id") != self.staff_id]

    def _take(self, chat_id: int, lang: str | None, history: Any) -> LiveChat:
        chat = self.chats.get(chat_id) or LiveChat(chat_id=chat_id)
        if lang:
            chat.lang = str(lang)
        chat.status = "active"
        if chat_id in self._supervised_early:
            chat.supervised_by = self._supervised_early.pop(chat_id)
        for item in history if isinstance(history, list) else []:
            line = _line(item) if isinstance(item, dict) else None
            if line:
                chat.add(line)
        self.chats[chat_id] = chat
        self.queue = [q for q in self.queue if q.chat_id != chat_id]
        if self.selected is None:
            self.selected = chat_id
        return chat

    def apply(self, event: str, data: Any) -> dict:
        """Fold one server event into the desk. Returns facts for the UI (`new_in_queue`, `chat_id`, ...)."""
        facts: dict[str, Any] = {}
        if not isinstance(data, dict):
            return facts
        if event == "queue":
            chats = data.get("chats") if isinstance(data.get("chats"), list) else []
            queue = []
            for item in chats:
                chat_id = _chat_id(item)
                if chat_id is None or chat_id in self.chats:
                    continue
                queue.append(QueuedChat(chat_id=chat_id, lang=str(item.get("lang") or "pl"),
                                        waiting_since=parse_time(item.get("waiting_since")),
                                        position=int(item.get("position") or len(queue) + 1),
                                        topic=_topic(item.get("topic"))))
            new = [q.chat_id for q in queue if q.chat_id not in self._seen_queued]
            self._seen_queued |= set(new)
            self.queue = sorted(queue, key=lambda q: q.position)
            facts["new_in_queue"] = new
        elif event == "presence":
            consultants = data.get("consultants")
            self.presence = [c for c in consultants if isinstance(c, dict)] if isinstance(consultants, list) else []
            mine = [c for c in self.presence if c.get("staff_id") == self.staff_id]
            if mine and mine[0].get("status") in ("available", "away"):
                self.availability = str(mine[0]["status"])
        elif event == "assigned":
            chat_id = _chat_id(data)
            if chat_id is not None:
                chat = self._take(chat_id, data.get("lang"), data.get("history"))
                chat.topic = _topic(data.get("topic")) or chat.topic
                facts.update(chat_id=chat_id, by=data.get("by"), taken_over=bool(data.get("taken_over")),
                             auto=bool(data.get("auto")))
        elif event == "message":
            chat_id = _chat_id(data)
            line = _line(data)
            if chat_id is not None and line is not None:
                chat = self.chats.get(chat_id)
                if chat is None:
                    return facts
                if chat.add(line) and line.sender == "resident" and chat_id != self.selected:
                    chat.unread += 1
                if line.sender == "resident":
                    chat.resident_typing = False
                facts.update(chat_id=chat_id, line=line)
        elif event == "typing":
            chat_id = _chat_id(data)
            if chat_id in self.chats:
                self.chats[chat_id].resident_typing = bool(data.get("active"))
                facts.update(chat_id=chat_id)
        elif event == "released":
            chat_id = _chat_id(data)
            reason = str(data.get("reason") or "")
            if chat_id in self.chats:
                if reason == "resident_left":
                    # kept (read-only) so the consultant can read the end; F8 removes it
                    self.chats[chat_id].status = "left"
                    self.chats[chat_id].resident_typing = False
                else:
                    self.drop(chat_id)
                facts.update(chat_id=chat_id, reason=reason)
                if isinstance(data.get("by"), dict):  # a take-over (§3): by whom
                    facts.update(by_name=str(data["by"].get("name") or ""))
        elif event == "supervised":  # §3: who watches one of our chats (an empty list: nobody now)
            chat_id = _chat_id(data)
            if chat_id in self.chats:
                self.chats[chat_id].supervised_by = _names(data)
                facts.update(chat_id=chat_id, supervised_by=list(self.chats[chat_id].supervised_by))
            elif chat_id is not None:
                self._supervised_early[chat_id] = _names(data)
        elif event == "whisper":  # §3: a supervisor's note, for us only
            chat_id = _chat_id(data)
            line = note_line(data)
            if chat_id in self.chats and line is not None:
                if self.chats[chat_id].add(line) and chat_id != self.selected:
                    self.chats[chat_id].unread += 1
                facts.update(chat_id=chat_id, line=line)
        elif event == "chat_state":
            chat_id = _chat_id(data)
            if chat_id in self.chats:
                self.chats[chat_id].status = str(data.get("status") or "")
                self.chats[chat_id].resident_typing = False
                facts.update(chat_id=chat_id, status=self.chats[chat_id].status)
        return facts

    def resync(self, chats: Any) -> None:
        """After a reconnect: the server's list of our open chats replaces ours (drafts are kept)."""
        if not isinstance(chats, list):
            return
        open_ids = set()
        for item in chats:
            chat_id = _chat_id(item)
            if chat_id is None:
                continue
            open_ids.add(chat_id)
            self._take(chat_id, item.get("lang"), item.get("history"))
        for chat_id in list(self.chats):
            if chat_id not in open_ids and self.chats[chat_id].status == "active":
                self.chats[chat_id].status = "closed"

    def select(self, chat_id: int | None) -> None:
        self.selected = chat_id
        if chat_id in self.chats:
            self.chats[chat_id].unread = 0

    def drop(self, chat_id: int) -> None:
        self.chats.pop(chat_id, None)
        if self.selected == chat_id:
            self.selected = next(iter(self.chats), None)


Listener = Callable[[str, dict], None]


def refusal_code(refusal: dict) -> str:
    """The code of a refused connection. PROTOCOL.md says `{"code": ...}`; python-socketio delivers a
    ConnectionRefusedError's single argument as `{"message": str(arg)}` and a second one as `data`,
    so all three shapes are read."""
    for candidate in (refusal, refusal.get("data")):
        if isinstance(candidate, dict) and isinstance(candidate.get("code"), str):
            return candidate["code"]
    message = str(refusal.get("message", ""))
    return "unauthorised" if "unauthorised" in message else ""


async def _close_quickly(client: socketio.AsyncClient) -> None:
    """Disconnect politely if the server answers at once, else drop the connection.

    A polite disconnect waits for the server's WebSocket close frame (aiohttp: up to 10 s); over a
    dead link or to a server that stopped answering, quitting the TUI waited that long on a blank
    terminal. The server notices a dropped socket by its ping timeout, so nothing is lost.
    """
    try:
        await asyncio.wait_for(client.disconnect(), STOP_TIMEOUT)
        return
    except (asyncio.TimeoutError, Exception):  # gone or not answering: abort below
        pass
    eio = client.eio
    for name in ("read_loop_task", "write_loop_task"):
        task = getattr(eio, name, None)
        if task is not None and not task.done():
            task.cancel()
    http = getattr(eio, "http", None)
    if http is not None and not http.closed:
        try:
            await asyncio.wait_for(http.close(), STOP_TIMEOUT)
        except (asyncio.TimeoutError, Exception):  # the process is ending; the OS closes the socket
            pass


class LiveClient:
    """Keeps one /staff connection alive (reconnecting with back-off) and folds its events into a Desk.

    `listener(event, facts)` is called after every change, in the event loop; the pseudo-event
    `connection` reports a new `Desk.state`.
    """

    def __init__(self, server_url: str, token: str, desk: Desk, listener: Listener, *,
                 retry_min: float = 0.2, retry_max: float = 5.0,
                 clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc)) -> None:
        self.server_url = server_url.rstrip("/")
        self.token = token
        self.desk = desk
        self.listener = listener
        self.retry_min = retry_min
        self.retry_max = retry_max
        #: The time stamped on our own lines until the server's history replaces them.
        self.clock = clock
        self._client: socketio.AsyncClient | None = None
        self._task: asyncio.Task | None = None
        self._disconnected = asyncio.Event()
        #: The server's reason for refusing the last connection attempt ({"code": ..., "message": ...}).
        self._refusal: dict = {}
        #: The server's `session_ended` ({"code", "message", "message_en"}): the session is over, no reconnect.
        self.ended: dict | None = None
        self._stopping = False

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="cim-live-client")

    async def stop(self) -> None:
        self._stopping = True
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):  # stopping: the reason it ended is moot
                pass
        client, self._client = self._client, None
        if client is not None:
            await _close_quickly(client)
        self._set_state(ConnectionState.OFFLINE)

    def _set_state(self, state: ConnectionState) -> None:
        if self.desk.state != state:
            self.desk.state = state
            self.listener("connection", {"state": state})

    async def _run(self) -> None:
        import socketio  # here, not at module level: ~0.3 s less for every `cim tui` start (bench/)

        delay = self.retry_min
        first = True
        while not self._stopping:
            self._set_state(ConnectionState.CONNECTING if first else ConnectionState.RECONNECTING)
            client = self._new_client()
            try:
                await client.connect(self.server_url, auth={"token": self.token}, namespaces=[NAMESPACE],
                                     transports=["websocket"], wait_timeout=5)
            except socketio.exceptions.ConnectionError as exc:
                if refusal_code(self._refusal) == "unauthorised":
                    self._set_state(ConnectionState.REFUSED)
                    return
                log.info("chat server not reachable: %s", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.retry_max)
                continue
            first = False
            delay = self.retry_min
            self._client = client
            self._set_state(ConnectionState.ONLINE)
            await self._after_connect()
            await self._disconnected.wait()
            self._client = None
            try:
                await client.disconnect()
            except Exception:  # the transport is already closed
                pass
            if self.ended is not None:  # the server ended our session: reconnecting would be refused
                self._set_state(ConnectionState.REFUSED)
                return
            if not self._stopping:
                self._set_state(ConnectionState.RECONNECTING)
                await asyncio.sleep(delay)

    async def _after_connect(self) -> None:
        """Once connected (again): our open chats from the server, then the replies still in the outboxes."""
        try:
            ack = await self.call("my_chats", {})
            self.desk.resync(ack.get("chats"))
            await self._fetch_notes()
            self.listener("resync", {})
            await self._flush_outbox()
        except LiveError as exc:
            log.info("could not list my chats or resend replies after connecting: %s", exc.code)

    async def _fetch_notes(self) -> None:
        """The supervisors' whispers (§3) in our open chats: the transcripts of `my_chats` leave them out."""
        for chat in list(self.desk.chats.values()):
            if chat.status != "active":
                continue
            try:
                ack = await self.call("notes", {"chat_id": chat.chat_id})
            except LiveError as exc:  # a server without supervision, or the chat moved on: the lines stay
                if exc.code in RETRYABLE:
                    raise
                continue
            for item in ack.get("notes") or []:
                line = note_line(item)
                if line is not None:
                    chat.add(line)

    #: The server events folded into the desk.
    EVENTS: tuple[str, ...] = ("queue", "presence", "assigned", "message", "typing", "released", "chat_state",
                               "supervised", "whisper")

    def _new_client(self) -> socketio.AsyncClient:
        import socketio

        # Our own loop reconnects (it also covers a server that was down at start-up).
        client = socketio.AsyncClient(reconnection=False, logger=False, engineio_logger=False)
        self._disconnected = asyncio.Event()
        self._refusal = {}

        async def on_disconnect(*_: Any) -> None:
            self._disconnected.set()

        async def on_connect_error(data: Any = None, *_: Any) -> None:
            self._refusal = data if isinstance(data, dict) else {"code": str(data)}

        async def on_session_ended(data: Any = None, *_: Any) -> None:
            self.ended = data if isinstance(data, dict) else {"code": "session_expired"}
            self.listener("session_ended", dict(self.ended))

        client.on("disconnect", on_disconnect, namespace=NAMESPACE)
        client.on("connect_error", on_connect_error, namespace=NAMESPACE)
        client.on("session_ended", on_session_ended, namespace=NAMESPACE)
        for event in self.EVENTS:
            client.on(event, self._handler(event), namespace=NAMESPACE)
        return client

    def _handler(self, event: str) -> Callable:
        async def handle(data: Any = None, *_: Any) -> None:
            facts = self.desk.apply(event, data)
            self.listener(event, facts)

        return handle

    # -- requests --------------------------------------------------------------------------------

    async def call(self, event: str, payload: dict) -> dict:
        """Emit and wait for the acknowledgement; raise LiveError on a refusal, a timeout or no connection."""
        import socketio

        client = self._client
        if client is None or not client.connected:
            raise LiveError("disconnected")
        try:
            ack = await client.call(event, payload, namespace=NAMESPACE, timeout=ACK_TIMEOUT)
        except socketio.exceptions.TimeoutError:
            raise LiveError("timeout") from None
        except socketio.exceptions.SocketIOError:
            raise LiveError("disconnected") from None
        if not isinstance(ack, dict):
            raise LiveError("server_error")
        if not ack.get("ok"):
            error = ack.get("error") if isinstance(ack.get("error"), dict) else {}
            raise LiveError(str(error.get("code") or "server_error"), error.get("message"))
        return ack

    async def accept(self, chat_id: int) -> None:
        ack = await self.call("accept", {"chat_id": chat_id})
        self.desk.apply("assigned", {"chat_id": chat_id, "lang": ack.get("lang"),
                                     "history": ack.get("history") or []})
        self.listener("assigned", {"chat_id": chat_id})

    async def send(self, chat_id: int, text: str) -> int:
        """Send a reply; returns its seq. A reply still in the chat's outbox (not acknowledged) with the
        same text is sent again with its first `client_msg_id`, so a retry never stores it twice."""
        chat = self.desk.chats.get(chat_id)
        outbox = chat.outbox if chat is not None else []
        item = next((o for o in outbox if o.text == text), None)
        if item is None:
            item = Outgoing(client_msg_id=uuid.uuid4().hex, text=text)
            outbox.append(item)
        return await self._deliver(chat_id, item)

    async def _deliver(self, chat_id: int, item: Outgoing) -> int:
        try:
            ack = await self.call("send", {"chat_id": chat_id, "text": item.text, "client_msg_id": item.client_msg_id})
        except LiveError as exc:
            if exc.code not in RETRYABLE:  # refused: it was not stored, and sending it again would not help
                self._forget(chat_id, item)
            raise
        self._forget(chat_id, item)
        seq = int(ack.get("seq") or 0)
        if seq:
            # the server relays our own line to our other sockets only; the ack's seq places it here
            self.desk.apply("message", {"chat_id": chat_id, "seq": seq, "from": "consultant", "text": item.text,
                                        "at": self.clock().isoformat()})
        return seq

    def _forget(self, chat_id: int, item: Outgoing) -> None:
        chat = self.desk.chats.get(chat_id)
        if chat is not None and item in chat.outbox:
            chat.outbox.remove(item)

    async def _flush_outbox(self) -> None:
        """After a reconnect: send every unacknowledged reply again, with its first id, oldest first."""
        for chat in list(self.desk.chats.values()):
            for item in list(chat.outbox):
                if chat.status != "active":
                    chat.outbox.clear()
                    break
                try:
                    await self._deliver(chat.chat_id, item)
                except LiveError as exc:
                    if exc.code in RETRYABLE:
                        raise
                    self.listener("send_failed", {"chat_id": chat.chat_id, "text": item.text, "message": exc.message})
                    continue
                if chat.draft == item.text:  # the reply line still held it: it is sent now
                    chat.draft = ""
                self.listener("sent", {"chat_id": chat.chat_id, "text": item.text})

    async def typing(self, chat_id: int, active: bool) -> None:
        import socketio

        client = self._client
        if client is not None and client.connected:
            try:
                await client.emit("typing", {"chat_id": chat_id, "active": active}, namespace=NAMESPACE)
            except socketio.exceptions.SocketIOError:
                pass  # a typing hint lost to a dropped connection does not matter

    async def activity(self) -> None:
        """Tell the server the consultant is working, so the session's idle timeout starts again."""
        try:
            await self.call("activity", {})
        except LiveError as exc:  # not connected, or the session is over (session_ended says why)
            log.info("activity not reported: %s", exc.code)

    async def transfer(self, chat_id: int, to_staff_id: int) -> None:
        await self.call("transfer", {"chat_id": chat_id, "to_staff_id": to_staff_id})

    async def close(self, chat_id: int, category: str) -> None:
        await self.call("close", {"chat_id": chat_id, "category": category})

    async def set_availability(self, status: str) -> None:
        """available / away: away consultants are given no new chats (webchat/routing.py)."""
        await self.call("availability", {"status": status})
        self.desk.availability = status
        self.listener("availability", {"status": status})

    async def decline(self, chat_id: int) -> None:
        """Auto mode: give back a chat the server assigned; it goes to the next consultant."""
        await self.call("decline", {"chat_id": chat_id})
        self.desk.drop(chat_id)
        self.listener("released", {"chat_id": chat_id, "reason": "declined"})


# ---------------------------------------------------------------------- §3: the supervisors' side


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


def _supervised(item: Any) -> SupervisedChat | None:
    chat_id = _chat_id(item)
    if chat_id is None:
        return None
    consultant = item.get("consultant") if isinstance(item.get("consultant"), dict) else None
    try:
        lines = int(item.get("lines") or 0)
    except (TypeError, ValueError):
        lines = 0
    return SupervisedChat(
        chat_id=chat_id, status=str(item.get("status") or ""), lang=str(item.get("lang") or "pl"),
        created_at=parse_time(item.get("created_at")), waiting_since=parse_time(item.get("waiting_since")),
        consultant_id=consultant.get("staff_id") if consultant else None,
        consultant_name=str(consultant.get("name") or "") if consultant else "",
        assigned_at=parse_time(item.get("assigned_at")), last_line_at=parse_time(item.get("last_line_at")),
        unanswered_since=parse_time(item.get("unanswered_since")), lines=lines, watchers=_names({"by": item.get("watchers")}))


class SupervisionBoard:
    """What a supervisor sees: every open chat (the `supervision` view), the queue, who is online, and the
    chats they watch (read-only transcripts with the whispers); changed only through `apply`."""

    def __init__(self, staff_id: int | None = None) -> None:
        self.staff_id = staff_id
        self.state = ConnectionState.OFFLINE
        self.view: list[SupervisedChat] = []
        self.queue: list[QueuedChat] = []
        self.presence: list[dict] = []
        #: The chats being watched (the name `chats` lets LiveClient's outbox keep their whispers).
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
        for item in ack.get("history") or []:
            line = _line(item) if isinstance(item, dict) else None
            if line:
                chat.add(line)
        for item in ack.get("notes") or []:
            line = note_line(item)
            if line:
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
        facts: dict[str, Any] = {}
        if not isinstance(data, dict):
            return facts
        if event == "supervision":
            if data.get("ended"):
                self.refused = str(data["ended"])
            items = data.get("chats") if isinstance(data.get("chats"), list) else []
            self.view = [c for c in (_supervised(i) for i in items if isinstance(i, dict)) if c is not None]
            self.queue = [QueuedChat(c.chat_id, c.lang, c.waiting_since, i + 1)
                          for i, c in enumerate(c for c in self.view if c.status == "queued")]
        elif event == "queue":
            queue = []
            for item in data.get("chats") if isinstance(data.get("chats"), list) else []:
                chat_id = _chat_id(item)
                if chat_id is not None:
                    queue.append(QueuedChat(chat_id, str(item.get("lang") or "pl"),
                                            parse_time(item.get("waiting_since")),
                                            int(item.get("position") or len(queue) + 1)))
            self.queue = sorted(queue, key=lambda q: q.position)
        elif event == "presence":
            consultants = data.get("consultants")
            self.presence = [c for c in consultants if isinstance(c, dict)] if isinstance(consultants, list) else []
        elif event in ("message", "whisper"):
            chat_id = _chat_id(data)
            line = _line(data) if event == "message" else note_line(data)
            if chat_id in self.chats and line is not None:
                self.chats[chat_id].add(line)
                facts.update(chat_id=chat_id, line=line)
        elif event == "monitor_ended":
            chat_id = _chat_id(data)
            if chat_id in self.chats:
                self.ended[chat_id] = str(data.get("reason") or "")
                self.chats[chat_id].status = "ended"
                facts.update(chat_id=chat_id, reason=self.ended[chat_id])
        return facts


class SupervisionClient(LiveClient):
    """The supervisors' /staff connection (§3): the view, watching with a purpose, whispers, take-overs.

    Whispers go through the watched chat's outbox like replies: a whisper not acknowledged keeps its
    `client_msg_id` for every retry, so the server stores it once. After a reconnect each open watch is
    opened again with its purpose (the server audits it again: a new reading) before the outboxes are sent.
    """

    EVENTS = ("supervision", "queue", "presence", "message", "whisper", "monitor_ended")

    board: SupervisionBoard

    def __init__(self, server_url: str, token: str, board: SupervisionBoard, listener: Listener, **options: Any) -> None:
        super().__init__(server_url, token, board, listener, **options)  # type: ignore[arg-type]
        self.board = board

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
            for item in list(self.board.chats[chat_id].outbox):
                try:
                    await self._deliver_whisper(chat_id, item)
                except LiveError as exc:
                    if exc.code in RETRYABLE:
                        return
                    self.listener("send_failed", {"chat_id": chat_id, "text": item.text, "message": exc.message})
                    continue
                self.listener("sent", {"chat_id": chat_id, "text": item.text})
        self.listener("resync", {})

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
        outbox = chat.outbox if chat is not None else []
        item = next((o for o in outbox if o.text == text), None)
        if item is None:
            item = Outgoing(client_msg_id=uuid.uuid4().hex, text=text)
            outbox.append(item)
        await self._deliver_whisper(chat_id, item)

    async def _deliver_whisper(self, chat_id: int, item: Outgoing) -> None:
        try:
            ack = await self.call("whisper", {"chat_id": chat_id, "text": item.text, "client_msg_id": item.client_msg_id})
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
