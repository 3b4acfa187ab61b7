"""Who is connected, which open chat is whose, and who is available: the chat server's live directory.

`Presence` is the seam; `InProcessPresence` keeps it in this process's memory (one chat server, see
README "Scaling"), with each consultant's availability written through to the store
(store/desk.py `staff_availability`) so it survives a reconnect and a restart. `RedisPresence` (CIM_REDIS_URL,
several nodes, docs/DEPLOY.md "Two or more nodes") keeps the same methods: each node still knows its own
sockets, publishes its consultants to Redis and reads the other nodes' from a cache it keeps fresh, so every
question stays synchronous.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import socket
import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Protocol

from store.chats import Chat
from store.desk import AVAILABLE
from store.models import Actor

log = logging.getLogger("cim.webchat")


@dataclass
class OnlineConsultant:
    actor: Actor
    sids: set[str] = field(default_factory=set)


class Presence(Protocol):
    """What the namespaces and the broadcaster ask about people and chats."""

    #: this node's connected consultants: staff id → their sockets here
    online: dict[int, OnlineConsultant]

    def join(self, sid: str, actor: Actor) -> bool:
        """A consultant's socket connected; True when it is their first (they came online)."""

    def leave(self, sid: str, staff_id: int) -> bool:
        """A consultant's socket went; True when it was their last (they went offline)."""

    def connected(self) -> dict[int, str]:
        """Every connected consultant, on this node or another: staff id → name."""

    def is_online(self, staff_id: int) -> bool:
        """Whether the consultant has a socket on this node or another."""

    async def refresh(self) -> None:
        """Read the other nodes' consultants now instead of waiting for the next change or heartbeat."""

    async def published(self) -> None:
        """Wait until this node's latest join, leave or availability is visible to the other nodes."""

    def status_of(self, staff_id: int) -> str:
        """available / away (as last set; available when never set)."""

    async def load_status(self, staff_id: int) -> str:
        """Read the consultant's availability from the store (at connect)."""

    async def set_status(self, actor: Actor, status: str) -> bool:
        """Store the consultant's availability; True when it changed."""

    def known_assignee(self, chat_id: int) -> tuple[bool, int | None]:
        """(known, consultant id) of an open chat, without reading the store."""

    def remember(self, chat: Chat) -> None:
        """A chat's new state: its consultant while active, none while queued, forgotten once closed."""

    def open_chats(self) -> set[int]:
        """The open chats remembered here."""


class InProcessPresence:
    """`Presence` in this process's memory; availability written through to the store."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.online: dict[int, OnlineConsultant] = {}
        # chat id → consultant id; this process is the only one that assigns chats (see README for scaling)
        self._assignee: dict[int, int | None] = {}
        #: staff id → available/away, as read from (or written to) the store
        self._status: dict[int, str] = {}

    # -- people -------------------------------------------------------------------------------------

    def join(self, sid: str, actor: Actor) -> bool:
        staff_id: int = actor.staff_id  # type: ignore[assignment]
        newly_online = staff_id not in self.online
        entry = self.online.setdefault(staff_id, OnlineConsultant(actor))
        entry.sids.add(sid)
        entry.actor = actor
        return newly_online

    def leave(self, sid: str, staff_id: int) -> bool:
        entry = self.online.get(staff_id)
        if entry is None:
            return False
        entry.sids.discard(sid)
        if entry.sids:
            return False
        del self.online[staff_id]
        return True

    def connected(self) -> dict[int, str]:
        return {staff_id: o.actor.name for staff_id, o in self.online.items()}

    def is_online(self, staff_id: int) -> bool:
        return staff_id in self.online

    async def refresh(self) -> None:
        """Nothing to read: this process is the only node."""

    async def published(self) -> None:
        """Nothing to wait for: this process is the only node."""

    def status_of(self, staff_id: int) -> str:
        return self._status.get(staff_id, AVAILABLE)

    async def load_status(self, staff_id: int) -> str:
        status = (await self.store.desk.availability([staff_id])).get(staff_id, AVAILABLE)
        self._status[staff_id] = status
        return status

    async def set_status(self, actor: Actor, status: str) -> bool:
        staff_id: int = actor.staff_id  # type: ignore[assignment]
        before = self.status_of(staff_id)
        await self.store.desk.set_availability(actor, status)  # validated there: invalid otherwise
        self._status[staff_id] = status
        return before != status

    # -- chats --------------------------------------------------------------------------------------

    def known_assignee(self, chat_id: int) -> tuple[bool, int | None]:
        if chat_id in self._assignee:
            return True, self._assignee[chat_id]
        return False, None

    def remember(self, chat: Chat) -> None:
        if chat.status == "closed":  # nothing more is relayed: keep the memory to the open chats
            self._assignee.pop(chat.id, None)
        else:
            self._assignee[chat.id] = chat.consultant_id if chat.status == "active" else None

    def open_chats(self) -> set[int]:
        return set(self._assignee)


#: A node's presence hash outlives its last heartbeat by this many heartbeats (then a dead node's consultants vanish).
HEARTBEATS_TO_EXPIRY = 3
#: Node ids are dropped from the deployment's list of nodes this many expiries after their last heartbeat.
NODE_LIST_EXPIRIES = 10
#: Seconds between attempts to listen again after the Redis connection dropped.
RELISTEN_SECONDS = 1.0
#: Seconds one wait for an announcement lasts before the listener looks again (and its connection is checked).
LISTEN_SECONDS = 1.0
#: Seconds a Redis command may take before it counts as failed (a consultant's connect waits at most this for one).
REDIS_COMMAND_SECONDS = 5.0


@dataclass
class RemoteConsultant:
    """A consultant connected to another node, as that node last published them."""

    name: str
    status: str
    nodes: set[str] = field(default_factory=set)


class RedisPresence(InProcessPresence):
    """`Presence` shared by the nodes of one deployment through Redis (CIM_REDIS_URL).

    Each node keeps its own sockets in memory (`online`) as in one process, and writes its consultants into
    the hash `<prefix>:presence:<node id>` (field: staff id, value: JSON name, status, sockets), rewritten at
    every change and every heartbeat and expiring `HEARTBEATS_TO_EXPIRY` heartbeats later, so a node that
    died without a word loses its consultants by itself. A change is also announced on the Pub/Sub channel
    `<prefix>:presence`; every node then reads the others' hashes into its cache (and at every heartbeat),
    from which `connected`, `is_online` and `status_of` answer without waiting. `<prefix>` is the
    deployment's Socket.IO channel (webchat/app.py `redis_channel`): deployments sharing a Redis see nothing
    of each other.

    `on_change(vanished)` is called after a read that changed the other nodes' consultants (who, names or
    availability); `vanished` are the consultants no node lists any more (their node dropped them, or died).
    """

    def __init__(self, store: Any, url: str, prefix: str, *, heartbeat_seconds: float) -> None:
        super().__init__(store)
        self.url = url
        self.prefix = prefix
        self.node_id = f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(4)}"
        self.heartbeat_seconds = heartbeat_seconds
        self.on_change: Callable[[set[int]], Awaitable[None]] | None = None
        #: other nodes' consultants (merged over the nodes): staff id → name, availability, nodes
        self._remote: dict[int, RemoteConsultant] = {}
        self._redis: Any = None
        self._tasks: list[asyncio.Task] = []
        self._dirty = False
        self._write_task: asyncio.Task | None = None
        self._status_notes: dict[int, str] = {}
        self._reading = asyncio.Lock()
        self._reread = False
        self._read_task: asyncio.Task | None = None
        self._stopping = False

    @property
    def key(self) -> str:
        return f"{self.prefix}:presence:{self.node_id}"

    @property
    def nodes_key(self) -> str:
        return f"{self.prefix}:presence-nodes"

    @property
    def channel(self) -> str:
        return f"{self.prefix}:presence"

    @property
    def expiry_seconds(self) -> float:
        return self.heartbeat_seconds * HEARTBEATS_TO_EXPIRY

    # -- the synchronous answers --------------------------------------------------------------------

    def connected(self) -> dict[int, str]:
        everyone = {staff_id: c.name for staff_id, c in self._remote.items()}
        everyone.update(super().connected())
        return everyone

    def is_online(self, staff_id: int) -> bool:
        return staff_id in self.online or staff_id in self._remote

    def status_of(self, staff_id: int) -> str:
        remote = self._remote.get(staff_id)
        if staff_id not in self.online and remote is not None:
            return remote.status
        return super().status_of(staff_id)

    def join(self, sid: str, actor: Actor) -> bool:
        newly_online = super().join(sid, actor)
        self._write_soon()
        return newly_online

    def leave(self, sid: str, staff_id: int) -> bool:
        went = super().leave(sid, staff_id)
        self._write_soon()
        return went

    async def set_status(self, actor: Actor, status: str) -> bool:
        changed = await super().set_status(actor, status)
        if changed:
            # the other nodes take it as this consultant's availability even where they have sockets too
            self._status_notes[actor.staff_id] = status  # type: ignore[index]
            self._write_soon()
        return changed

    # -- writing this node's consultants ------------------------------------------------------------

    def _fields(self) -> dict[str, str]:
        return {
            str(staff_id): json.dumps(
                {"name": o.actor.name, "status": self.status_of(staff_id), "sockets": len(o.sids)}, ensure_ascii=False
            )
            for staff_id, o in self.online.items()
        }

    async def _write(self, *, announce: bool) -> None:
        notes, self._status_notes = self._status_notes, {}
        fields = self._fields()
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(self.key)
            if fields:
                pipe.hset(self.key, mapping=fields)
                pipe.pexpire(self.key, int(self.expiry_seconds * 1000))
            pipe.zadd(self.nodes_key, {self.node_id: time.time()})
            if announce:
                pipe.publish(self.channel, json.dumps({"node": self.node_id, "status": notes}))
            await pipe.execute()

    def _write_soon(self) -> None:
        if self._redis is None:
            return  # not started (or stopped): the start writes everything
        self._dirty = True
        if self._write_task is None or self._write_task.done():
            self._write_task = asyncio.get_running_loop().create_task(self._write_while_dirty())

    async def _write_while_dirty(self) -> None:
        while self._dirty:
            self._dirty = False
            try:
                await self._write(announce=True)
            except Exception as exc:  # Redis away: the next heartbeat writes it again
                log.warning("presence.write_failed error=%s", type(exc).__name__)
                return

    async def published(self) -> None:
        while self._write_task is not None and not self._write_task.done():
            await asyncio.shield(self._write_task)

    # -- reading the other nodes' -------------------------------------------------------------------

    async def refresh(self) -> None:
        if self._redis is None:
            return
        async with self._reading:
            now = time.time()
            nodes = await self._redis.zrangebyscore(
                self.nodes_key, now - self.expiry_seconds * NODE_LIST_EXPIRIES, "+inf"
            )
            others = [n.decode() if isinstance(n, bytes) else n for n in nodes]
            others = [n for n in others if n != self.node_id]
            async with self._redis.pipeline(transaction=False) as pipe:
                for node in others:
                    pipe.hgetall(f"{self.prefix}:presence:{node}")
                hashes = await pipe.execute() if others else []
            remote: dict[int, RemoteConsultant] = {}
            for node, fields in zip(others, hashes):
                for raw_id, raw in fields.items():
                    try:
                        staff_id, entry = int(raw_id), json.loads(raw)
                        consultant = remote.setdefault(
                            staff_id, RemoteConsultant(str(entry["name"]), str(entry["status"]))
                        )
                    except (ValueError, KeyError, TypeError):
                        continue  # not ours to read (another version's entry): skipped, not fatal
                    consultant.nodes.add(node)
            before = {i: (c.name, c.status) for i, c in self._remote.items()}
            vanished = set(self._remote) - set(remote) - set(self.online)
            self._remote = remote
        if before != {i: (c.name, c.status) for i, c in remote.items()} and self.on_change is not None:
            await self.on_change(vanished)

    def _read_soon(self) -> None:
        self._reread = True
        if self._read_task is None or self._read_task.done():
            self._read_task = asyncio.get_running_loop().create_task(self._read_while_asked())

    async def _read_while_asked(self) -> None:
        while self._reread:
            self._reread = False
            try:
                await self.refresh()
            except Exception as exc:  # the heartbeat reads again
                log.warning("presence.read_failed error=%s", type(exc).__name__)
                return

    def _heard(self, data: Any) -> None:
        try:
            note = json.loads(data)
            node = note["node"]
            statuses = {int(k): str(v) for k, v in dict(note.get("status") or {}).items()}
        except (ValueError, KeyError, TypeError, AttributeError):
            return
        if node == self.node_id:
            return
        self._status.update(statuses)  # a consultant with sockets here too: their availability as they set it there
        self._read_soon()

    async def _listen_forever(self) -> None:
        failing = False
        while not self._stopping:  # besides the cancel: a cancel swallowed inside the client must not keep it
            pubsub = self._redis.pubsub()
            try:
                await pubsub.subscribe(self.channel)
                if failing:
                    self._read_soon()  # changes announced while this node was not listening
                failing = False
                while not self._stopping:  # get_message's own timeout, not the socket timeout, bounds each wait
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=LISTEN_SECONDS)
                    if message is not None and message.get("type") == "message":
                        self._heard(message["data"])
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not failing:
                    log.warning("presence.listen_failed error=%s (listening again)", type(exc).__name__)
                failing = True
            finally:
                try:
                    await pubsub.aclose()
                except Exception:  # a connection already broken: nothing left to close, the loop listens again
                    log.debug("presence.pubsub_close_failed", exc_info=True)
            await asyncio.sleep(RELISTEN_SECONDS)

    async def _heartbeat_forever(self) -> None:
        failing = False
        while not self._stopping:
            await asyncio.sleep(self.heartbeat_seconds)
            try:
                await self._write(announce=False)
                await self._redis.zremrangebyscore(
                    self.nodes_key, "-inf", time.time() - self.expiry_seconds * NODE_LIST_EXPIRIES
                )
                await self.refresh()
                failing = False
            except Exception as exc:  # the cache stays as last read: nothing is taken from anyone meanwhile
                if not failing:
                    log.warning("presence.heartbeat_failed error=%s", type(exc).__name__)
                failing = True

    # -- the node's lifetime ------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect, announce this node, read the others, then keep listening and beating until `stop`."""
        import redis.asyncio

        self._redis = redis.asyncio.Redis.from_url(
            self.url,
            socket_connect_timeout=REDIS_COMMAND_SECONDS,
            socket_timeout=REDIS_COMMAND_SECONDS,
            health_check_interval=30,
        )
        await self._write(announce=True)
        await self.refresh()
        self._tasks = [
            asyncio.get_running_loop().create_task(self._listen_forever(), name="presence-listen"),
            asyncio.get_running_loop().create_task(self._heartbeat_forever(), name="presence-heartbeat"),
        ]
        log.info("presence.started node=%s heartbeat_seconds=%s", self.node_id, self.heartbeat_seconds)

    async def stop(self, *, withdraw: bool = True) -> None:
        """Stop listening and beating; `withdraw`: this node's consultants leave the shared view at once
        (otherwise they stay until the hash expires, as when the node dies)."""
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            _done, slow = await asyncio.wait(self._tasks, timeout=REDIS_COMMAND_SECONDS)
            if slow:  # the Redis client held on to the cancel: they end at their next look at _stopping
                log.warning("presence.stop_slow tasks=%d", len(slow))
        self._tasks = []
        last = [t for t in (self._write_task, self._read_task) if t is not None and not t.done()]
        if last:  # the last write and read, each bounded by the client's socket timeout
            await asyncio.wait(last, timeout=2 * REDIS_COMMAND_SECONDS)
        client, self._redis = self._redis, None
        if client is None:
            return
        try:
            if withdraw:
                async with client.pipeline(transaction=True) as pipe:
                    pipe.delete(self.key)
                    pipe.zrem(self.nodes_key, self.node_id)
                    pipe.publish(self.channel, json.dumps({"node": self.node_id, "status": {}}))
                    await pipe.execute()
        except Exception as exc:
            log.warning("presence.withdraw_failed error=%s", type(exc).__name__)
        finally:
            await client.aclose()
