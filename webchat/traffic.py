"""The PBX's live state on /staff: `traffic` events to consultants and the CIM manager, and `queue_pause`.

`cim serve` starts an AmiLink when CIM_AMI_URL is set (`traffic_context`). Every change of the
state marks it dirty; at most every PUSH_SECONDS one snapshot goes to each of two rooms — full
numbers for staff with archive access, numbers cut to their last 3 digits for everyone else — so a
flood of AMI events costs the chat server a few small emits a second, not one per event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any, AsyncIterator, Callable
from zoneinfo import ZoneInfo

import socketio

from store.errors import InvalidInput, SessionExpired
from store.models import Actor
from store.policy import Permission, allowed
from store.traffic import TrafficState

from .ami import AmiLink, parse_ami_url
from .hub import acked, ok
from .protocol import NOT_A_MEMBER, PBX_UNAVAILABLE

if TYPE_CHECKING:
    from aiohttp import web

    from .hub import Hub

log = logging.getLogger("cim.traffic")

STAFF = "/staff"
ROOM_FULL = "traffic:full"
ROOM_MASKED = "traffic:masked"
#: Smallest interval between two `traffic` pushes (a burst of events becomes one push).
PUSH_SECONDS = 0.25
#: Re-read extension -> consultant names this often (an account added while serve runs).
NAMES_SECONDS = 60.0


def may_watch(actor: Actor) -> bool:
    return allowed(actor, Permission.VIEW_TRAFFIC)


def sees_numbers(actor: Actor) -> bool:
    """Full numbers only for staff with archive access; everyone else sees the last 3 digits."""
    return allowed(actor, Permission.SEARCH_ARCHIVE)


class TrafficHub:
    """The AMI link, the watchers on /staff and the coalesced pushes."""

    def __init__(self, sio: socketio.AsyncServer, hub: "Hub", link: AmiLink) -> None:
        self.sio = sio
        self.hub = hub
        self.link = link
        link.on_change = self.changed
        #: watchers that are not consultants (the CIM manager): sid -> (address, actor)
        self.watchers: dict[str, tuple[str, Actor]] = {}
        #: the session token of each watcher, so a revoked or expired session ends its socket too
        self.watcher_tokens: dict[str, str] = {}
        self.names: dict[str, str] = {}
        self._names_at = 0.0
        self._dirty = False
        self._pusher: asyncio.Task | None = None
        self.pushes = 0

    def payload(self, *, masked: bool) -> dict[str, Any]:
        now = self.link.clock()
        doc = self.link.state.snapshot(now, masked=masked, names=self.names)
        doc["pbx"] = self.link.status()
        doc["at"] = now.isoformat()
        return doc

    def changed(self) -> None:
        self._dirty = True
        if self._pusher is None or self._pusher.done():
            self._pusher = asyncio.get_running_loop().create_task(self._push_soon())

    async def _push_soon(self) -> None:
        while self._dirty:
            self._dirty = False
            try:
                await self._refresh_names()
                await self.sio.emit("traffic", self.payload(masked=False), room=ROOM_FULL, namespace=STAFF)
                await self.sio.emit("traffic", self.payload(masked=True), room=ROOM_MASKED, namespace=STAFF)
                self.pushes += 1
            except Exception:
                log.exception("traffic.push_failed")
            await asyncio.sleep(PUSH_SECONDS)

    async def _refresh_names(self) -> None:
        loop = asyncio.get_running_loop()
        if loop.time() - self._names_at < NAMES_SECONDS and self._names_at:
            return
        self._names_at = loop.time()
        self.names = await self.hub.store.extensions.names()

    async def join(self, sid: str, actor: Actor) -> None:
        """Put a /staff socket into its traffic room and send it the state at once."""
        full = sees_numbers(actor)
        await self.sio.enter_room(sid, ROOM_FULL if full else ROOM_MASKED, namespace=STAFF)
        self._names_at = 0.0  # someone signed in: their extension may be new
        await self._refresh_names()
        await self.sio.emit("traffic", self.payload(masked=not full), to=sid, namespace=STAFF)

    async def queue_pause(self, actor: Actor, data: Any) -> dict[str, Any]:
        """A consultant pauses or unpauses their own extension's queue membership (AMI QueuePause), audited."""
        store = self.hub.store
        extensions = await store.extensions.pausable(actor)
        if not isinstance(data, dict) or not isinstance(data.get("paused"), bool):
            raise InvalidInput('queue_pause needs {"paused": true|false, "reason"?: text, "queue"?: name}')
        reason = data.get("reason") or ""
        queue = data.get("queue") or None
        if not isinstance(reason, str) or len(reason) > 80 or (queue is not None and not isinstance(queue, str)):
            raise InvalidInput("the reason is a short text (at most 80 characters) and the queue a name")
        interfaces = sorted(
            {
                m.interface
                for m in self.link.state.members.values()
                if m.extension in extensions and (queue is None or m.queue == queue)
            }
        )
        if not interfaces:
            raise InvalidInput("none of your extensions is a member of that queue", refusal_reason=NOT_A_MEMBER)
        outcome = "ok"
        try:
            for interface in interfaces:
                await self.link.queue_pause(interface, data["paused"], queue=queue, reason=reason)
        except ConnectionError as exc:
            outcome = "failed"
            raise InvalidInput(str(exc), refusal_reason=PBX_UNAVAILABLE) from None
        finally:
            await store.extensions.record_pause(
                actor, paused=data["paused"], queue=queue, reason=reason, interfaces=interfaces, outcome=outcome
            )
        return {"paused": data["paused"], "interfaces": interfaces}


def traffic_context(
    store_settings: Any, clock: Callable | None = None, *, leader: Callable[..., Any] | None = None
) -> Callable[["web.Application"], AsyncIterator[None]]:
    """aiohttp cleanup_ctx: with CIM_AMI_URL set, start the AMI link with the server and stop it with it.
    `leader(name, job)` (several nodes, store/leases.py): a `LeaderJob` that runs the link only while this
    node holds the lease `ami` (started and stopped here)."""

    async def context(app: "web.Application") -> AsyncIterator[None]:
        from .app import HUB, LEADER_JOBS, SIO

        settings = store_settings
        if not settings.ami_url:
            yield
            return
        address = parse_ami_url(settings.ami_url, settings.ami_secret_file)
        hub = app[HUB]
        if leader is not None:

            async def run_link() -> None:
                async with _ami_link(app[SIO], hub, settings, address, clock):
                    await asyncio.Event().wait()  # until the lease is lost or the server stops

            job = app[LEADER_JOBS]["ami"] = leader("ami", run_link)
            job.start()
            try:
                yield
            finally:
                await job.stop()
            return
        digits = settings.pbx_extension_max_digits
        state = TrafficState(
            ZoneInfo(settings.timezone), settings.short_abandon_seconds, lambda n: n.isdigit() and len(n) <= digits
        )
        link = AmiLink(address, state, clock=clock or hub.store.clock)
        hub.traffic = TrafficHub(app[SIO], hub, link)
        link.start()
        log.info("traffic.started pbx=%s:%s", address.host, address.port)
        try:
            yield
        finally:
            await link.stop()
            hub.traffic = None

    return context


@contextlib.asynccontextmanager
async def _ami_link(sio: Any, hub: "Hub", settings: Any, address: Any, clock: Callable | None) -> AsyncIterator[None]:
    """The AMI link and its TrafficHub while the block runs (the leader's job on several nodes)."""
    digits = settings.pbx_extension_max_digits
    state = TrafficState(
        ZoneInfo(settings.timezone), settings.short_abandon_seconds, lambda n: n.isdigit() and len(n) <= digits
    )
    link = AmiLink(address, state, clock=clock or hub.store.clock)
    hub.traffic = TrafficHub(sio, hub, link)
    link.start()
    log.info("traffic.started pbx=%s:%s leader=1", address.host, address.port)
    try:
        yield
    finally:
        await link.stop()
        hub.traffic = None


async def on_staff_connect(hub: "Hub", sid: str, actor: Actor) -> None:
    """The hook in webchat/staff.py's connect: consultants and the manager get the traffic state."""
    traffic = getattr(hub, "traffic", None)
    if traffic is not None and may_watch(actor):
        await traffic.join(sid, actor)


def watch_only(hub: "Hub", actor: Actor) -> bool:
    """A signed-in non-consultant (the CIM manager) may hold a /staff socket for the wallboard alone."""
    return getattr(hub, "traffic", None) is not None and may_watch(actor)


async def add_watcher(hub: "Hub", sid: str, actor: Actor, address: str, token: str = "") -> None:
    hub.traffic.watchers[sid] = (address, actor)
    if token:  # the session sweep (webchat/staff.py) ends the socket when this session ends
        hub.traffic.watcher_tokens[sid] = token
    await hub.traffic.join(sid, actor)


def forget_watcher(hub: "Hub", sid: str) -> None:
    traffic = getattr(hub, "traffic", None)
    if traffic is not None and sid in traffic.watchers:
        address, _ = traffic.watchers.pop(sid)
        traffic.watcher_tokens.pop(sid, None)
        hub.connections.release(address)


class TrafficEvents:
    """`queue_pause` on /staff (mixed into webchat.staff.StaffNamespace): a consultant's own extension; the
    session is checked afresh, since it is audited."""

    hub: "Hub"

    @acked(STAFF)
    async def on_queue_pause(self, sid: str, data: dict) -> dict:
        hub = self.hub
        traffic = getattr(hub, "traffic", None)
        conn = hub.staff.get(sid)
        if conn is None:
            raise SessionExpired("not signed in")
        actor = await hub.store.accounts.authenticate(conn.token)
        if traffic is None:
            raise InvalidInput("no PBX is configured (CIM_AMI_URL)", refusal_reason=PBX_UNAVAILABLE)
        return ok(**await traffic.queue_pause(actor, data))
