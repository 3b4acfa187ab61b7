"""Live state shared by both namespaces: who is connected, which chat is whose, and the relays between them."""

from __future__ import annotations

import asyncio
import functools
import logging
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

import socketio

from store import Store
from store.chats import Chat, ChatMessage
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
from store.models import Actor
from store.opening_hours import OpeningHours

from .limits import ClientAddress, ConnectionCounter, RateLimiter

log = logging.getLogger("cim.webchat")

RESIDENT = "/resident"
STAFF = "/staff"
ALL_STAFF = "staff"
#: Typing hints relayed per chat: at most this many per this many seconds.
TYPING_RATE = (20, 10.0)
#: Queue broadcasts follow each other at most this often while the queue keeps changing (seconds): with
#: a long queue each one tells every waiting resident their new position (bench/desk.py).
QUEUE_COALESCE_SECONDS = 0.2
#: Position updates sent to waiting residents between two yields to the event loop (an emit never yields).
POSITION_BATCH = 32


def chat_room(chat_id: int) -> str:
    return f"chat:{chat_id}"


def consultant_room(staff_id: int) -> str:
    return f"consultant:{staff_id}"


def ok(**fields: Any) -> dict[str, Any]:
    return {"ok": True, **fields}


def error(code: str, message: str) -> dict[str, Any]:
    return {"ok": False, "error": {"code": code, "message": message}}


def refuse(details: dict[str, str]) -> socketio.exceptions.ConnectionRefusedError:
    """A refused connect: the client's connect_error carries `err.data == {"code", "message"}`."""
    return socketio.exceptions.ConnectionRefusedError(details.get("message", "refused"), details)


def error_code(exc: CimError) -> str:
    """The protocol's error code for a domain error (docs/PROTOCOL.md)."""
    if isinstance(exc, Conflict):
        return "already_taken"
    if isinstance(exc, (SessionExpired, AuthenticationFailed)):
        return "unauthorised"
    if isinstance(exc, NotFound):
        return "not_found"
    if isinstance(exc, ChatClosed):
        return "closed"
    if isinstance(exc, InvalidTransition):
        return "invalid"
    if exc.code in ("not_permitted", "invalid", "empty", "too_long", "resume_invalid", "at_capacity"):
        return exc.code
    return "server_error"


def acked(namespace: str) -> Callable[[Callable[..., Awaitable[dict]]], Callable[..., Awaitable[dict]]]:
    """Wrap an event handler: one payload argument, domain errors → error acks, anything else → server_error."""

    def decorate(handler: Callable[..., Awaitable[dict]]) -> Callable[..., Awaitable[dict]]:
        event = handler.__name__.removeprefix("on_")

        @functools.wraps(handler)
        async def wrapper(sid: str, *args: Any) -> dict:
            if len(args) > 1:
                return error("invalid", "an event carries one payload object")
            data = args[0] if args else {}
            if not isinstance(data, dict):
                return error("invalid", "the payload must be an object")
            try:
                return await handler(sid, data)
            except CimError as exc:
                code = error_code(exc)
                if code == "server_error":
                    log.error("event.failed namespace=%s event=%s error=%s", namespace, event, type(exc).__name__)
                    return error("server_error", "the server could not handle this; please try again")
                return error(code, exc.message)
            except Exception:
                log.exception("event.crashed namespace=%s event=%s", namespace, event)
                return error("server_error", "the server could not handle this; please try again")

        return wrapper

    return decorate


def message_payload(message: ChatMessage, lang: str | None = None) -> dict[str, Any]:
    """A `message` payload: for staff (lang None) the stored Polish text; for a resident (lang = the chat's
    language) a system event's text in that language, with the consultant's display name (docs/PROTOCOL.md)."""
    return message.as_payload(lang)


@dataclass
class ResidentConn:
    address: str
    lang: str
    chat_id: int | None = None
    declined: bool = False


@dataclass
class StaffConn:
    address: str
    actor: Actor
    token: str
    checked_at: float
    #: Why the session ended (store.session_watch reasons), once it has: every later event is refused.
    ended: str | None = None
    #: When (store clock) the session's idle timer was last refreshed through this socket.
    touched_at: Any = None


@dataclass
class ResidentLimits:
    """The flood limits of /resident besides the per-chat message rate (README: settings)."""

    socket_rate: RateLimiter  # messages per socket (end + accept_notice again does not reset it)
    address_rate: RateLimiter  # messages per client address
    open_socket_rate: RateLimiter  # chats opened per socket
    open_address_rate: RateLimiter  # chats opened per address
    max_queued_per_address: int | None  # chats from one address waiting in the queue at once

    @classmethod
    def off(cls) -> "ResidentLimits":
        return cls(RateLimiter(None), RateLimiter(None), RateLimiter(None), RateLimiter(None), None)


@dataclass
class OnlineConsultant:
    actor: Actor
    sids: set[str] = field(default_factory=set)


class Hub:
    """The live side of the chat server; one per application."""

    def __init__(self, sio: socketio.AsyncServer, store: Store, hours: OpeningHours, rate: RateLimiter,
                 connections: ConnectionCounter, address: ClientAddress,
                 limits: ResidentLimits | None = None) -> None:
        self.sio = sio
        self.store = store
        self.settings = store.settings  # create_app sets the server's own
        self.chats = store.chats
        self.hours = hours
        self.rate = rate
        self.limits = limits or ResidentLimits.off()
        # client address → chats opened from it that may still be waiting (pruned against the queue)
        self.opened_by: dict[str, set[int]] = {}
        # typing hints relayed per chat: generous for a person, a cap for a script (off with the rate limit)
        self.typing_rate = RateLimiter(None if rate.rate is None else TYPING_RATE)
        self.connections = connections
        self.address = address
        self.traffic: Any = None  # webchat/traffic.py's TrafficHub while an AMI link runs (CIM_AMI_URL)
        self.residents: dict[str, ResidentConn] = {}
        self.staff: dict[str, StaffConn] = {}
        self.staff_sessions: Any = None  # webchat.staff.StaffSessions, set when /staff is registered
        self.supervision: Any = None  # webchat.supervision.SupervisionHub (§3), set when it is registered
        self.routing: Any = None  # webchat.routing.Routing: topics, availability, auto-assignment, idle chats
        self._estimates: dict[int, int | None] = {}  # queued chat → the estimated wait its resident was last told
        self.online: dict[int, OnlineConsultant] = {}
        # chat id → consultant id; this process is the only one that assigns chats (see README for scaling)
        self._assignee: dict[int, int | None] = {}
        self._tasks: set[asyncio.Task] = set()
        self._queue_dirty = False
        self._queue_task: asyncio.Task | None = None
        self._positions: dict[int, int] = {}  # queued chat → the position its resident was last told
        # chat id → the resident's sockets (usually one; a second tab resuming the chat adds one)
        self._chat_sids: dict[int, set[str]] = {}

    def spawn(self, coro: Any) -> None:
        """Run follow-up work (greetings, broadcasts) after the current ack, keeping a reference to it."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("task.failed error=%s", type(task.exception()).__name__, exc_info=task.exception())

    async def drain(self) -> None:
        """Wait for follow-up work still running (at shutdown)."""
        if self._queue_task is not None:
            await asyncio.gather(self._queue_task, return_exceptions=True)
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def is_open(self) -> bool:
        return self.hours.is_open(self.store.clock())

    async def assignee(self, chat_id: int) -> int | None:
        """The consultant a chat's lines go to (None while queued or once closed)."""
        if chat_id not in self._assignee:
            chat = await self.chats.get(chat_id)
            if chat.status == "closed":
                return None
            self.remember(chat)
        return self._assignee[chat_id]

    def remember(self, chat: Chat) -> None:
        if chat.status == "closed":  # nothing more is relayed: keep the memory to the open chats
            self._assignee.pop(chat.id, None)
        else:
            self._assignee[chat.id] = chat.consultant_id if chat.status == "active" else None

    async def join_chat(self, sid: str, chat_id: int) -> None:
        self._chat_sids.setdefault(chat_id, set()).add(sid)
        await self.sio.enter_room(sid, chat_room(chat_id), namespace=RESIDENT)

    def leave_chat(self, sid: str, chat_id: int) -> None:
        sids = self._chat_sids.get(chat_id)
        if sids is not None:
            sids.discard(sid)
            if not sids:
                del self._chat_sids[chat_id]

    async def relay(self, chat_id: int, message: ChatMessage, *, skip_sid: str | None = None) -> None:
        """A stored message to the resident's sockets and the assigned consultant's."""
        payload = message_payload(message)
        # the sender already has it (its ack): encode the packet only if another of its tabs is listening
        if self._chat_sids.get(chat_id, set()) - {skip_sid}:
            resident = payload
            if message.event is not None:  # a system line: in the resident's language
                resident = message_payload(message, (await self.chats.get(chat_id)).lang)
            await self.sio.emit("message", resident, room=chat_room(chat_id), namespace=RESIDENT, skip_sid=skip_sid)
        staff_id = await self.assignee(chat_id)
        if staff_id is not None:
            await self.sio.emit("message", {"chat_id": chat_id, **payload}, room=consultant_room(staff_id),
                                namespace=STAFF, skip_sid=skip_sid)
        if self.supervision is not None:  # watchers of this chat get the line, the view its time
            self.supervision.poke()

    def queue_changed(self) -> None:
        """Announce the queue soon; a burst of changes (many residents arriving) becomes one broadcast."""
        self._queue_dirty = True
        if self.supervision is not None:
            self.supervision.poke()
        if self._queue_task is None or self._queue_task.done():
            self._queue_task = asyncio.get_running_loop().create_task(self._broadcast_queue_while_dirty())

    async def _broadcast_queue_while_dirty(self) -> None:
        while self._queue_dirty:
            self._queue_dirty = False
            try:
                await self.broadcast_queue()
            except Exception:
                log.exception("queue.broadcast_failed")
            if self.routing is not None:
                self.routing.poke()
            if self._queue_dirty:  # changes kept coming while this went out: gather them a moment
                await asyncio.sleep(QUEUE_COALESCE_SECONDS)

    async def broadcast_queue(self) -> None:
        """The queue to every consultant, and to each waiting resident whose position changed."""
        queue = await self.chats.queue()
        await self.sio.emit("queue", await self._queue_payload(queue), room=ALL_STAFF, namespace=STAFF)
        positions = {q.chat_id: q.position for q in queue}
        estimate = await self.estimated_wait() if queue else None
        sent = 0
        for chat_id, position in positions.items():
            if self._positions.get(chat_id) != position or self._estimates.get(chat_id, -1) != estimate:
                await self.sio.emit("state", {"status": "queued", "position": position, "estimated_wait_s": estimate},
                                    room=chat_room(chat_id), namespace=RESIDENT)
                sent += 1
                if sent % POSITION_BATCH == 0:  # a long queue: let relayed messages through in between
                    await asyncio.sleep(0)
        self._positions = positions
        self._estimates = {chat_id: estimate for chat_id in positions}

    async def queue_payload(self) -> dict[str, Any]:
        return await self._queue_payload(await self.chats.queue())

    async def _queue_payload(self, queue: list[Any]) -> dict[str, Any]:
        topics = {t.id: t for t in await self.store.desk.topics(include_inactive=True)} if queue else {}

        def topic(topic_id: int | None) -> dict[str, Any] | None:
            t = topics.get(topic_id)  # type: ignore[arg-type]
            return None if t is None else {"id": t.id, "pl": t.label_pl, "en": t.label_en}

        return {"chats": [{"chat_id": q.chat_id, "lang": q.lang, "waiting_since": to_iso(q.waiting_since),
                           "position": q.position, "topic": topic(q.topic_id)} for q in queue]}

    async def estimated_wait(self) -> int | None:
        """The estimated wait residents in the queue are told, in seconds (the last hour's median), or None."""
        wait = await self.store.desk.estimated_wait()
        return None if wait is None else int(wait.total_seconds())

    def presence_payload(self) -> dict[str, Any]:
        status = self.routing.status_of if self.routing is not None else (lambda _: "available")
        return {"consultants": [{"staff_id": staff_id, "name": o.actor.name, "status": status(staff_id)}
                                for staff_id, o in sorted(self.online.items())]}

    async def broadcast_presence(self) -> None:
        await self.sio.emit("presence", self.presence_payload(), room=ALL_STAFF, namespace=STAFF)

    async def history_payload(self, chat_id: int, lang: str | None = None) -> list[dict[str, Any]]:
        """The transcript as staff read it, or with `lang` as the chat's resident reads it."""
        return [message_payload(m, lang) for m in await self.chats.history(chat_id)]

    # ------------------------------------------------------------------ the resident's side of the desk (issue 17)

    def consultants_available(self) -> bool:
        """Whether someone could answer a chat now: a consultant connected to /staff."""
        return bool(self.online)

    async def announce_closed(self, chat_id: int) -> None:
        """`state` closed to the resident's sockets, with the chat's receipt the first (and only) time."""
        state: dict[str, Any] = {"status": "closed"}
        try:
            receipt = await self.store.resident_desk.issue_receipt(chat_id)
        except Exception:
            log.exception("chat.receipt_failed chat_id=%s", chat_id)
            receipt = None
        if receipt is not None:
            state["receipt"] = {"reference": receipt.reference, "secret": receipt.secret}
        await self.sio.emit("state", state, room=chat_room(chat_id), namespace=RESIDENT)
