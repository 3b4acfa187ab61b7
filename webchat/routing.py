"""The chat desk's live routing (issue 17, README "Topics, routing and capacity", docs/PROTOCOL.md):
topics for residents, availability and decline for consultants, auto-assignment (CIM_CHAT_ASSIGNMENT=auto),
the grace period of a dropped consultant, idle chats and the queue's time limit.

Decisions use the store's clock, so tests move time instead of sleeping; `tick()` runs about once a
second and the assignment pass also runs whenever something frees or fills a seat (`poke()`).
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import aclosing
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, AsyncGenerator, AsyncIterator

import socketio

from store.chats import QueuedChat, is_id
from store.desk import DeskPerson, someone_can_answer
from store.errors import AtCapacity, ChatClosed, Conflict, ConversationNotFound, SessionExpired
from store.models import Role
from store.tasks import stop_task

from . import broadcast
from .broadcast import ChatAccepted, ChatRequeued, MessageStored
from .hub import RESIDENT, STAFF, Hub, acked, error, ok
from .protocol import ABANDONED, CONNECTION_LOST, DECLINED, DECLINED_ONCE, INVALID, PICK_MODE, topic_payload

log = logging.getLogger("cim.webchat")

AVAILABLE, AWAY = "available", "away"  # store/desk.py AVAILABILITY
#: Seconds between routing sweeps (grace periods, auto-assignment retries, the queue's time limit).
TICK_SECONDS = 1.0
#: Every this many ticks the idle chats are checked (a query over the active chats).
IDLE_EVERY = 10
#: The assignment pass reads this many chats from the queue's front first (webchat/routing.py `_waiting`).
QUEUE_FRONT = 50


@dataclass
class Routing:
    """The desk's live state in the chat server's process (one per Hub: `hub.routing`)."""

    sio: socketio.AsyncServer
    hub: Hub
    #: chat id → consultants who declined it once (auto mode)
    declined: dict[int, set[int]] = field(default_factory=dict)
    #: staff id → when (store clock) their last socket dropped while their session went on
    dropped_at: dict[int, datetime] = field(default_factory=dict)
    #: staff id → when (store clock) they were last given a chat (ties of equal load go to the longest idle)
    last_given: dict[int, datetime] = field(default_factory=dict)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _poked: bool = False
    _pass: asyncio.Task | None = None
    _ticks: int = 0
    _started: bool = False

    @property
    def mode(self) -> str:
        return self.hub.settings.chat_assignment

    def status_of(self, staff_id: int) -> str:
        """available / away: kept by the presence (webchat/presence.py), in the store across restarts."""
        return self.hub.presence.status_of(staff_id)

    # ------------------------------------------------------------------ the assignment pass

    def poke(self) -> None:
        """Something changed seats (a chat queued, closed, declined; a consultant came, went, is available):
        run the auto-assignment pass soon (a burst becomes one pass)."""
        if self.mode != "auto":
            return
        self._poked = True
        if self._pass is None or self._pass.done():
            self._pass = asyncio.get_running_loop().create_task(self._assign_while_poked())

    async def _assign_while_poked(self) -> None:
        while self._poked:
            self._poked = False
            try:
                await self.assign_waiting()
            except Exception:
                log.exception("routing.assign_failed")

    async def free_people(self, *, everywhere: bool = False) -> tuple[dict[int, DeskPerson], dict[int, int]]:
        """Connected, available consultants with their capacity and skills, and each one's active chats;
        `everywhere`: those on other nodes too (CIM_REDIS_URL; each node assigns chats to its own)."""
        connected = self.hub.presence.connected() if everywhere else self.hub.online
        ids = [staff_id for staff_id in connected if self.status_of(staff_id) == AVAILABLE]
        people = await self.hub.store.desk.people(ids)
        return people, await self.hub.store.desk.load() if people else {}

    async def free_seats(self) -> list[DeskPerson]:
        """The consultants connected to any node, available and below their maximum of chats."""
        people, load = await self.free_people(everywhere=True)
        return [p for p in people.values() if load.get(p.staff_id, 0) < p.max_chats]

    async def assign_waiting(self) -> int:
        """Auto mode: the longest-waiting chats (re-queued ones first) each to the least-busy available
        consultant with the topic's skill; consultants at capacity are skipped, and one who declined a
        chat gets it again only when nobody else can take it (they cannot decline it twice)."""
        if self.mode != "auto":
            return 0
        async with self._lock:
            people, load = await self.free_people()
            if not any(load.get(p.staff_id, 0) < p.max_chats for p in people.values()):
                return 0  # every seat taken (or nobody available): the queue is not even read
            given = 0
            async with aclosing(self._waiting()) as waiting:
                async for queued in waiting:
                    seats = [p for p in people.values() if load.get(p.staff_id, 0) < p.max_chats]
                    if not seats:
                        break
                    able = [p for p in seats if p.can_answer(queued.topic_id)]
                    fresh = [p for p in able if p.staff_id not in self.declined.get(queued.chat_id, ())]
                    choice = fresh or able
                    if not choice:
                        continue
                    epoch = datetime.min.replace(tzinfo=self.hub.store.clock().tzinfo)
                    person = min(
                        choice,
                        key=lambda p: (load.get(p.staff_id, 0), self.last_given.get(p.staff_id, epoch), p.staff_id),
                    )
                    online = self.hub.online.get(person.staff_id)
                    if online is None:
                        continue
                    try:
                        chat, message = await self.hub.store.desk.assign(queued.chat_id, online.actor)
                    except AtCapacity:
                        load[person.staff_id] = person.max_chats
                        continue
                    except (Conflict, ChatClosed, ConversationNotFound):
                        continue  # taken from the queue (pick), or ended by the resident, a moment ago
                    load[person.staff_id] = load.get(person.staff_id, 0) + 1
                    self.last_given[person.staff_id] = self.hub.store.clock()
                    given += 1
                    await self.announce_assigned(chat, message, person.staff_id)
            if given:
                self.hub.queue_changed()
            return given

    async def _waiting(self) -> AsyncGenerator[QueuedChat, None]:
        """The queue from its front, for the pass: the first QUEUE_FRONT chats, and the rest only when the pass
        gets past them (chats nobody free can answer). A freed seat is filled from the front: the whole queue
        (thousands waiting) is not read, nor turned into objects, for one or two chats given."""
        front = await self.hub.chats.queue(limit=QUEUE_FRONT)
        for queued in front:
            yield queued
        if len(front) < QUEUE_FRONT:
            return
        seen = {q.chat_id for q in front}
        for queued in await self.hub.chats.queue():
            if queued.chat_id not in seen:  # (those given meanwhile are no longer queued)
                yield queued

    async def announce_assigned(self, chat: Any, message: Any, staff_id: int) -> None:
        log.info("chat.assigned chat_id=%s staff_id=%s", chat.id, staff_id)
        await self.hub.publish(
            ChatAccepted(chat, message, staff_id, auto=True, topic=await self.topic_payload(chat.topic_id))
        )

    async def topic_payload(self, topic_id: int | None) -> dict[str, Any] | None:
        if topic_id is None:
            return None
        return topic_payload(await self.hub.store.desk.topic(topic_id))

    # ------------------------------------------------------------------ consultants coming and going

    def connected(self, staff_id: int) -> None:
        self.dropped_at.pop(staff_id, None)
        self.poke()

    def dropped(self, staff_id: int) -> None:
        """The consultant's last socket went while their session goes on: the grace period starts."""
        if self.hub.settings.staff_reconnect_grace_seconds > 0:
            self.dropped_at.setdefault(staff_id, self.hub.store.clock())

    async def requeue_dropped(self) -> None:
        """Consultants away longer than the grace period lose their chats to the front of the queue."""
        grace = timedelta(seconds=self.hub.settings.staff_reconnect_grace_seconds)
        now = self.hub.store.clock()
        for staff_id, since in list(self.dropped_at.items()):
            if now >= since + grace and not self.hub.presence.is_online(staff_id):
                await self.hub.presence.refresh()  # back on another node a moment ago? (several nodes)
            if self.hub.presence.is_online(staff_id):  # here or on another node
                del self.dropped_at[staff_id]
            elif now >= since + grace:
                del self.dropped_at[staff_id]
                log.info("routing.grace_over staff_id=%s", staff_id)
                await self.hub.staff_sessions.return_chats(staff_id, CONNECTION_LOST)
                self.poke()

    # ------------------------------------------------------------------ idle chats and the queue's limit

    async def sweep_idle(self) -> None:
        """Silent residents are asked whether they are still there, then their chats close as `abandoned`."""
        desk = self.hub.store.desk
        warn, close = await desk.idle_chats(self.hub.settings.chat_idle_minutes)
        for chat_id in warn:
            message = await desk.warn_idle(chat_id)
            if message is not None:
                await self.hub.publish(MessageStored(chat_id, message))
        for chat_id in close:
            staff_id = await self.hub.assignee(chat_id)
            message = await desk.close_abandoned(chat_id, "closed_idle")
            if message is not None:
                await self.closed(chat_id, message, staff_id)
        if close:
            self.poke()

    async def sweep_queue_limit(self) -> None:
        """A chat that waited past chat_queue_limit_minutes while nobody was free closes as `abandoned`, and
        its resident is offered the offline message form (the `offline` event)."""
        overdue = await self.hub.store.desk.overdue_in_queue(self.hub.settings.chat_queue_limit_minutes)
        if not overdue:
            return
        free = await self.free_seats()
        topics = {q.chat_id: q.topic_id for q in await self.hub.chats.queue()}
        closed_any = False
        for chat_id in overdue:
            if someone_can_answer(free, topics.get(chat_id)):
                continue  # someone could take it: it waits on
            message = await self.hub.store.desk.close_abandoned(chat_id, "queue_timeout")
            if message is None:
                continue
            closed_any = True
            await self.closed(chat_id, message, None)
            lang = (await self.hub.chats.get(chat_id)).lang
            offline = getattr(self.hub, "offline_payload", None)
            if offline is not None:
                form = getattr(self.hub, "offline_form", None)  # the notice the message form follows
                payload = {**offline(lang), **(await form(lang) if form is not None else {})}
                await self.hub.broadcast.to_resident(chat_id, "offline", payload)
        if closed_any:
            self.hub.queue_changed()

    async def closed(self, chat_id: int, message: Any, staff_id: int | None) -> None:
        chat = await self.hub.chats.get(chat_id)
        self.declined.pop(chat_id, None)
        log.info("chat.closed chat_id=%s category=abandoned reason=%s", chat_id, message.event)
        await self.hub.publish(broadcast.ChatClosed(chat, message, staff_id, ABANDONED))

    # ------------------------------------------------------------------ the loop

    async def start(self) -> None:
        """Chats held by consultants connected nowhere (the server restarted): their grace period starts now."""
        self._started = True
        holders = await self.hub.chats.consultants_holding_chats()
        await self.hub.presence.refresh()  # several nodes: those connected to another node keep their chats
        for staff_id in holders - set(self.hub.presence.connected()):
            self.dropped(staff_id)

    async def tick(self) -> None:
        if not self._started:
            await self.start()
        self._ticks += 1
        if self.declined:  # forget the declines of chats that ended (the hub remembers only open chats)
            open_chats = self.hub.open_chats()
            self.declined = {chat_id: who for chat_id, who in self.declined.items() if chat_id in open_chats}
        await self.requeue_dropped()
        if self._ticks % IDLE_EVERY == 1 % IDLE_EVERY:
            await self.sweep_idle()
        await self.sweep_queue_limit()
        self.poke()

    async def run_forever(self) -> None:
        failing = False
        while True:
            await asyncio.sleep(TICK_SECONDS)
            try:
                await self.tick()
                failing = False
            except Exception:
                if not failing:
                    log.exception("routing.tick_failed")
                failing = True


async def estimate_payload(hub: Hub) -> int | None:
    """The estimated wait in whole seconds (the last hour's median), or None: unknown."""
    wait = await hub.store.desk.estimated_wait()
    return None if wait is None else int(wait.total_seconds())


def routing_context(hub: Hub):
    """aiohttp cleanup context: the routing loop runs while the server does."""

    async def context(app: Any) -> AsyncIterator[None]:
        task = asyncio.get_running_loop().create_task(hub.routing.run_forever(), name="desk-routing")
        try:
            yield
        finally:
            await stop_task(task, name="desk-routing")
            if hub.routing._pass is not None:
                await stop_task(hub.routing._pass, name="desk-routing-pass")

    return context


def register(sio: socketio.AsyncServer, hub: Hub) -> Routing:
    """The desk's live routing for `hub` (its events are TopicEvents on /resident, DeskStaffEvents on /staff)."""
    routing = hub.routing = Routing(sio, hub)
    return routing


class TopicEvents:
    """`topics` on /resident (mixed into webchat.resident.ResidentNamespace)."""

    hub: Hub

    @acked(RESIDENT)
    async def on_topics(self, sid: str, data: dict) -> dict:
        conn = self.hub.residents.get(sid)
        if conn is None:
            return error(INVALID, "not connected")
        return ok(topics=await self.hub.store.desk.topics_for(conn.lang))


class DeskStaffEvents:
    """`availability` and `decline` on /staff (mixed into webchat.staff.StaffNamespace)."""

    hub: Hub

    async def staff_actor(self, sid: str, *, fresh: bool = False) -> Any:
        """The consultant behind the socket; `fresh`: the session checked in the store first (as `accept`)."""
        conn = self.hub.staff.get(sid)
        if conn is None or conn.ended:
            raise SessionExpired("the session has ended; sign in again")
        if fresh:
            actor = await self.hub.store.accounts.authenticate(conn.token)
            if not actor.has(Role.CONSULTANT):
                raise SessionExpired("you no longer have the consultant role")
            conn.actor = actor
        return conn.actor

    @acked(STAFF)
    async def on_availability(self, sid: str, data: dict) -> dict:
        hub = self.hub
        actor = await self.staff_actor(sid)
        status = data.get("status")
        if status not in (AVAILABLE, AWAY):
            return error(INVALID, "status must be 'available' or 'away'")
        if await hub.presence.set_status(actor, status):  # kept in the store (webchat/presence.py)
            log.info("staff.availability staff_id=%s status=%s", actor.staff_id, status)
            await hub.broadcast_presence()
            hub.routing.poke()
        return ok(status=status)

    @acked(STAFF)
    async def on_decline(self, sid: str, data: dict) -> dict:
        hub, routing = self.hub, self.hub.routing
        actor = await self.staff_actor(sid, fresh=True)
        chat_id = data.get("chat_id")
        if not is_id(chat_id):
            return error(INVALID, "chat_id must be a chat number")
        if routing.mode != "auto":
            return error(INVALID, "chats are declined only in auto assignment mode; close or transfer it", PICK_MODE)
        if actor.staff_id in routing.declined.get(chat_id, ()):
            return error(INVALID, "you declined this chat once already; nobody else can take it now", DECLINED_ONCE)
        if await hub.assignee(chat_id) != actor.staff_id:
            await hub.chats.refuse_unassigned(actor, "chat.decline", chat_id)
        chat, message = await hub.store.desk.decline(actor, chat_id)
        routing.declined.setdefault(chat_id, set()).add(actor.staff_id)
        log.info("chat.declined chat_id=%s staff_id=%s", chat_id, actor.staff_id)
        await hub.publish(ChatRequeued(chat, message, actor.staff_id, DECLINED))
        hub.queue_changed()
        routing.poke()
        return ok(chat_id=chat_id)
