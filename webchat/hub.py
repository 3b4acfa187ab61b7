"""Live state shared by both namespaces: who is connected, which chat is whose, and the relays between them."""

from __future__ import annotations

import asyncio
import functools
import logging
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

import socketio

from store import Store
from store.chats import Chat, ChatMessage
from store.desk import someone_can_answer
from store.errors import CimError
from store.models import Actor
from store.opening_hours import OpeningHours
from store.tasks import stop_tasks

from . import protocol
from .broadcast import (  # ALL_STAFF, STAFF, chat_room, consultant_room: re-exported for the namespaces
    ALL_STAFF,
    RESIDENT,
    STAFF,
    Broadcaster,
    Event,
    chat_room,  # noqa: F401
    consultant_room,  # noqa: F401
)
from .limits import ClientAddress, ConnectionCounter, RateLimiter
from .presence import InProcessPresence, OnlineConsultant, Presence  # noqa: F401 (OnlineConsultant: re-exported)
from .protocol import INVALID, QUEUE_SHOWN, SERVER_ERROR, error, error_code, line_payload, ok  # noqa: F401

log = logging.getLogger("cim.webchat")

#: Typing hints relayed per chat: at most this many per this many seconds.
TYPING_RATE = (20, 10.0)
#: Queue broadcasts follow each other at most this often while the queue keeps changing (seconds): with
#: a long queue each one tells every waiting resident their new position (bench/desk.py).
QUEUE_COALESCE_SECONDS = 0.2
#: How long a stopping server waits for follow-up work (Hub.drain) before it cancels what is left.
DRAIN_SECONDS = 10.0


def refuse(details: dict[str, str]) -> socketio.exceptions.ConnectionRefusedError:
    """A refused connect: the client's connect_error carries `err.data == {"code", "message"}`."""
    return socketio.exceptions.ConnectionRefusedError(details.get("message", "refused"), details)


def acked(namespace: str) -> Callable[[Callable[..., Awaitable[dict]]], Callable[..., Awaitable[dict]]]:
    """Mark a namespace method as an event: one payload argument, domain errors → error acks, anything
    else → server_error. Only methods marked so are events (CimNamespace answers any other `invalid`)."""

    def decorate(handler: Callable[..., Awaitable[dict]]) -> Callable[..., Awaitable[dict]]:
        event = handler.__name__.removeprefix("on_")

        @functools.wraps(handler)
        async def wrapper(owner: Any, sid: str, *args: Any) -> dict:
            if len(args) > 1:
                return error(INVALID, "an event carries one payload object")
            data = args[0] if args else {}
            if not isinstance(data, dict):
                return error(INVALID, "the payload must be an object")
            try:
                return await handler(owner, sid, data)
            except CimError as exc:
                code = error_code(exc)
                if code == SERVER_ERROR:
                    log.error("event.failed namespace=%s event=%s error=%s", namespace, event, type(exc).__name__)
                    return error(SERVER_ERROR, "the server could not handle this; please try again")
                return protocol.domain_error(exc)
            except Exception:
                log.exception("event.crashed namespace=%s event=%s", namespace, event)
                return error(SERVER_ERROR, "the server could not handle this; please try again")

        wrapper.is_event = True  # type: ignore[attr-defined]
        return wrapper

    return decorate


class CimNamespace(socketio.AsyncNamespace):
    """A namespace of CIM's protocol: its events are the `on_<event>` methods marked `@acked`; connect and
    disconnect are the namespace's own; any other event is answered `invalid` (docs/PROTOCOL.md)."""

    def __init__(self, namespace: str, hub: "Hub") -> None:
        super().__init__(namespace)
        self.hub = hub

    @property
    def sio(self) -> socketio.AsyncServer:
        return self.hub.sio

    async def trigger_event(self, event: Any, *args: Any) -> Any:
        if event in ("connect", "disconnect"):
            return await super().trigger_event(event, *args)
        handler = getattr(type(self), f"on_{event}", None) if isinstance(event, str) else None
        if not getattr(handler, "is_event", False):
            return error(INVALID, "unknown event")
        return await getattr(self, f"on_{event}")(*args)


def message_payload(message: ChatMessage, lang: str | None = None) -> dict[str, Any]:
    """A `message` payload: for staff (lang None) the stored Polish text with `event`/`params`; for a resident
    (lang = the chat's language) a system event's text in that language (webchat/protocol.py)."""
    return line_payload(message, lang)


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


class Hub:
    """The live side of the chat server; one per application."""

    def __init__(
        self,
        sio: socketio.AsyncServer,
        store: Store,
        hours: OpeningHours,
        rate: RateLimiter,
        connections: ConnectionCounter,
        address: ClientAddress,
        limits: ResidentLimits | None = None,
        presence: Presence | None = None,
    ) -> None:
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
        #: the closed chat's words and the offline form's notice (set by webchat.resident.ResidentNamespace)
        self.offline_payload: Any = None
        self.offline_form: Any = None
        #: who is online, which open chat is whose, who is available (webchat/presence.py)
        self.presence: Presence = presence or InProcessPresence(store)
        #: CIM_REDIS_URL set: other nodes accept, transfer and close chats too, so a chat's consultant is read
        #: from the store, never from this process's memory, and emits go to rooms spanning the nodes
        self.several_nodes = False
        self.broadcast = Broadcaster(self)  # who hears what after a change (webchat/broadcast.py)
        self._tasks: set[asyncio.Task] = set()
        self._queue_dirty = False
        self._queue_task: asyncio.Task | None = None
        # chat id → the resident's sockets (usually one; a second tab resuming the chat adds one)
        self._chat_sids: dict[int, set[str]] = {}

    @property
    def online(self) -> dict[int, OnlineConsultant]:
        """Connected consultants: staff id → their sockets (webchat/presence.py)."""
        return self.presence.online

    async def publish(self, event: Event) -> None:
        """A committed change, told to everyone concerned (webchat/broadcast.py)."""
        await self.broadcast.publish(event)

    def spawn(self, coro: Any) -> None:
        """Run follow-up work (greetings, broadcasts) after the current ack, keeping a reference to it."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("task.failed error=%s", type(task.exception()).__name__, exc_info=task.exception())

    async def drain(self, timeout: float = DRAIN_SECONDS) -> None:
        """Wait for follow-up work still running (at shutdown), at most `timeout` seconds: what is still
        running then is cancelled and logged, so a stuck task (a store or Redis that stopped answering)
        never keeps the server from stopping."""
        waiting = [t for t in [self._queue_task, *self._tasks] if t is not None and not t.done()]
        if waiting:
            _, pending = await asyncio.wait(waiting, timeout=timeout)
            if pending:
                log.warning("server.tasks_abandoned count=%d", len(pending))
                await stop_tasks(list(pending), name="hub-follow-up", grace=timeout)
        await self.broadcast.stop()  # a position round still waiting (webchat/broadcast.py)

    def is_open(self) -> bool:
        return self.hours.is_open(self.store.clock())

    async def assignee(self, chat_id: int) -> int | None:
        """The consultant a chat's lines go to (None while queued or once closed)."""
        known, staff_id = self.presence.known_assignee(chat_id)
        if known and not self.several_nodes:
            return staff_id
        chat = await self.chats.get(chat_id)
        if chat.status == "closed":
            return None
        self.remember(chat)
        return self.presence.known_assignee(chat_id)[1]

    def remember(self, chat: Chat) -> None:
        self.presence.remember(chat)

    def open_chats(self) -> set[int]:
        return self.presence.open_chats()

    async def join_chat(self, sid: str, chat_id: int) -> None:
        self._chat_sids.setdefault(chat_id, set()).add(sid)
        await self.sio.enter_room(sid, chat_room(chat_id), namespace=RESIDENT)

    def leave_chat(self, sid: str, chat_id: int) -> None:
        sids = self._chat_sids.get(chat_id)
        if sids is not None:
            sids.discard(sid)
            if not sids:
                del self._chat_sids[chat_id]

    def resident_sids(self, chat_id: int) -> set[str]:
        return self._chat_sids.get(chat_id, set())

    async def relay(self, chat_id: int, message: ChatMessage, *, skip_sid: str | None = None) -> None:
        """A stored message to the resident's sockets and the assigned consultant's."""
        await self.broadcast.relay(chat_id, message, skip_sid=skip_sid)

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
                await self.broadcast.queue()
            except Exception:
                log.exception("queue.broadcast_failed")
            if self.routing is not None:
                self.routing.poke()
            if self._queue_dirty:  # changes kept coming while this went out: gather them a moment
                await asyncio.sleep(QUEUE_COALESCE_SECONDS)

    async def broadcast_queue(self) -> None:
        """The queue to every consultant, and to each waiting resident whose position changed."""
        await self.broadcast.queue()

    async def queue_payload(self) -> dict[str, Any]:
        return await self.queue_payload_of(await self.chats.queue())

    async def queue_payload_of(self, queue: list[Any]) -> dict[str, Any]:
        shown = queue[:QUEUE_SHOWN]
        topics = {t.id: t for t in await self.store.desk.topics(include_inactive=True)} if shown else {}
        return protocol.queue_payload(queue, topics)

    async def estimated_wait(self) -> int | None:
        """The estimated wait residents in the queue are told, in seconds (the last hour's median), or None."""
        wait = await self.store.desk.estimated_wait()
        return None if wait is None else int(wait.total_seconds())

    def presence_payload(self) -> dict[str, Any]:
        """The consultants connected to this node or (CIM_REDIS_URL) another, with their availability."""
        return protocol.presence_payload(
            (staff_id, name, self.presence.status_of(staff_id)) for staff_id, name in self.presence.connected().items()
        )

    async def broadcast_presence(self) -> None:
        if self.several_nodes:
            # each node tells its own staff sockets what it sees; the other nodes hear of the change through
            # the shared presence and tell theirs (presence_changed_elsewhere), so no node's older view of
            # the others, crossing the Redis channel late, overwrites a newer one in a TUI
            await self.sio.emit("presence", self.presence_payload(), room=ALL_STAFF, namespace=STAFF, ignore_queue=True)
            return
        await self.broadcast.presence()

    async def presence_changed_elsewhere(self, vanished: set[int]) -> None:
        """Another node's consultants came, went or changed availability (webchat/presence.py RedisPresence).
        Those no node lists any more (they left, or their node died) start their reconnect grace period here
        too: when their node is gone, nobody else would give their chats back to the queue."""
        if self.routing is not None:
            for staff_id in vanished:
                if not self.presence.is_online(staff_id):
                    self.routing.dropped(staff_id)
        await self.broadcast_presence()

    async def history_payload(self, chat_id: int, lang: str | None = None) -> list[dict[str, Any]]:
        """The transcript as staff read it, or with `lang` as the chat's resident reads it."""
        messages = await self.chats.history(chat_id)
        if lang:
            return protocol.history(messages, lang)
        return protocol.history(messages, staff=await self.chats.staff_on_lines(messages))

    async def staff_line(self, chat_id: int, message: ChatMessage) -> dict[str, Any]:
        """A `/staff` `message` with the full name of the staff member on a system line (never a resident's)."""
        staff = await self.chats.staff_on_lines([message]) if message.sender == "system" and message.staff_id else {}
        return protocol.staff_line(chat_id, message, staff)

    # ------------------------------------------------------------------ the resident's side of the desk (issue 17)

    async def consultants_available(self, topic_id: int | None = None, *, fresh: bool = False) -> bool:
        """Whether someone could answer a chat on `topic_id` now (None: on any topic): a connected consultant
        who is available (not away), below their maximum of chats and with the topic's skill; the same test
        as the queue's time limit (store/desk.py `someone_can_answer`). Without the routing: anyone
        connected. `fresh`: read now, not the answer of up to a second ago."""
        if self.routing is None or not self.presence.connected():
            return bool(self.presence.connected())
        # asked at every resident's greeting: a second-old answer is good enough (two reads spared per connect)
        now = asyncio.get_running_loop().time()
        cached = getattr(self, "_free_seat", None)
        if fresh or cached is None or now - cached[0] >= 1.0:
            cached = self._free_seat = (now, await self.routing.free_seats())
        return someone_can_answer(cached[1], topic_id)

    async def announce_closed(self, chat_id: int) -> None:
        """`state` closed to the resident's sockets, with the chat's receipt the first (and only) time."""
        await self.broadcast.announce_closed(chat_id)
