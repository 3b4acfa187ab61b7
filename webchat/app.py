"""The chat server's application factory: aiohttp routes, security headers and the Socket.IO namespaces."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import re
from pathlib import Path
from typing import AsyncIterator

import socketio
from aiohttp import web

from store import Store
from store.audit import anchor_context
from store.directory import directory_check_context
from store.opening_hours import OpeningHours
from store.leases import LeaderJob
from store.retention import daily_purge_context, daily_purge_job
from store.errors import ConfigError
from store.settings import Settings, redis_url_shown
from store.tasks import stop_task

from . import resident, routing, staff, supervision, traffic
from .hub import RESIDENT, STAFF, Hub, ResidentLimits
from .presence import RedisPresence
from .limits import ClientAddress, ConnectionCounter, OriginPolicy, RateLimiter, parse_limit, parse_proxies, parse_rate
from .sockets import CimSocketServer

log = logging.getLogger("cim.webchat")

STATIC_DIR = Path(__file__).with_name("static")
NODE_MODULES = Path(__file__).with_name("node_modules")
#: Third-party browser libraries, installed from the npm registry (`cd webchat && npm ci`), never a CDN.
VENDOR_FILES = {
    "socket.io.min.js": NODE_MODULES / "socket.io-client" / "dist" / "socket.io.min.js",
    "axe.min.js": NODE_MODULES / "axe-core" / "axe.min.js",
}
#: How long shutdown waits for clients to take their close packet before it stops regardless.
SHUTDOWN_GRACE_SECONDS = 2.0
#: Largest HTTP request body and Socket.IO packet accepted (a 2,000-character message is < 10 KiB).
MAX_REQUEST_BYTES = 64 * 1024

HUB = web.AppKey("hub", Hub)
SIO = web.AppKey("sio", socketio.AsyncServer)
CSP = web.AppKey("csp", str)
#: several nodes: the jobs meant for one node, by lease name (store/leases.py)
LEADER_JOBS = web.AppKey("leader_jobs", dict)


def create_app(settings: Settings, store: Store) -> web.Application:
    """The chat server for `store`; the caller owns the store and closes it after the app."""
    hours = OpeningHours.parse(settings.opening_hours, settings.timezone)  # a bad schedule fails here, loudly
    address = ClientAddress(parse_proxies(settings.trusted_proxies))
    rate = RateLimiter(parse_rate(settings.resident_rate_limit))
    per_address = parse_limit(settings.max_connections_per_address, "CIM_MAX_CONNECTIONS_PER_ADDRESS")
    connections = ConnectionCounter(per_address)
    limits = ResidentLimits(
        socket_rate=RateLimiter(parse_rate(settings.resident_rate_limit)),
        address_rate=RateLimiter(parse_rate(settings.resident_address_rate_limit, "CIM_RESIDENT_ADDRESS_RATE_LIMIT")),
        open_socket_rate=RateLimiter(parse_rate(settings.chat_open_rate_limit, "CIM_CHAT_OPEN_RATE_LIMIT")),
        open_address_rate=RateLimiter(
            parse_rate(settings.chat_open_address_rate_limit, "CIM_CHAT_OPEN_ADDRESS_RATE_LIMIT")
        ),
        max_queued_per_address=parse_limit(settings.max_queued_chats_per_address, "CIM_MAX_QUEUED_CHATS_PER_ADDRESS"),
    )
    if settings.socket_join_grace_seconds < 1:
        raise ConfigError("CIM_SOCKET_JOIN_GRACE_SECONDS must be at least 1")
    sio = CimSocketServer(
        async_mode="aiohttp",
        cors_allowed_origins=OriginPolicy.from_settings(settings, address),
        max_http_buffer_size=MAX_REQUEST_BYTES,
        namespaces=[RESIDENT, STAFF],  # the default "/" would be a namespace outside every limit
        logger=False,
        engineio_logger=False,
        address=address,
        pending_limit=per_address,  # sessions not (yet) in a namespace, per address
        join_grace=float(settings.socket_join_grace_seconds),
        client_manager=_client_manager(settings),
    )
    app = web.Application(client_max_size=MAX_REQUEST_BYTES, middlewares=[_no_stack_traces, _body_limit])
    # several nodes: who is online is shared through Redis (webchat/presence.py); one node: kept in this process
    presence = (
        RedisPresence(
            store, settings.redis_url, redis_channel(settings), heartbeat_seconds=settings.presence_heartbeat_seconds
        )
        if settings.redis_url
        else None
    )
    hub = Hub(sio, store, hours, rate, connections, address, limits, presence=presence)
    hub.settings = settings  # the server's own settings (office phone and address in the offline greeting)
    hub.several_nodes = bool(settings.redis_url)  # other nodes change chats too: nothing remembered is trusted
    app[HUB] = hub
    app[SIO] = sio
    app[CSP] = _content_security_policy()
    app[LEADER_JOBS] = {}
    sio.attach(app)
    # the two namespaces (AsyncNamespace classes: validate, call the store, ack); what follows a change is
    # published to the hub's broadcaster (webchat/broadcast.py). The resident's side of the desk (offline
    # messages, the copy, ratings), §3 supervision, the desk's routing and the PBX add their events as mixins.
    resident.register(sio, hub)
    staff.register(sio, hub)
    supervision.register(sio, hub)  # §3: the supervision view's live state
    routing.register(sio, hub)  # topics, availability, decline, auto-assignment, idle chats
    from . import listen  # /listen/<token>: listening links (store.listening)

    listen.register(app, store)
    for name, path in VENDOR_FILES.items():
        app.router.add_get(f"/widget/vendor/{name}", _vendor_file(path))
    app.router.add_get("/", _demo_page)
    app.router.add_get("/healthz", _healthz)
    app.router.add_static("/widget/", STATIC_DIR, follow_symlinks=False)
    app.on_response_prepare.append(_security_headers)
    if settings.redis_url:
        app.cleanup_ctx.append(_redis_context(sio, settings.redis_url))  # before the server's own tasks start
        app.cleanup_ctx.append(_shared_presence_context(hub))  # read before the routing's first look at holders
    app.cleanup_ctx.append(_lifecycle)
    app.cleanup_ctx.append(routing.routing_context(hub))
    if settings.redis_url and presence is not None:
        # several nodes: the purge and the AMI connection run on the node holding their lease (store/leases.py)
        leader = _leader_factory(store, presence.node_id, settings.leader_lease_seconds)
        app.cleanup_ctx.append(_leader_context(leader("daily-purge", daily_purge_job(store, settings))))
        app.cleanup_ctx.append(anchor_context(store, settings))  # the audit chain head outside the database
        app.cleanup_ctx.append(traffic.traffic_context(settings, leader=leader))
    else:
        app.cleanup_ctx.append(daily_purge_context(store, settings))  # §6 purge at CIM_PURGE_DAILY_AT
        app.cleanup_ctx.append(anchor_context(store, settings))  # the audit chain head outside the database
        app.cleanup_ctx.append(traffic.traffic_context(settings))  # the PBX's live state when CIM_AMI_URL is set
    app.cleanup_ctx.append(directory_check_context(store))  # directory accounts that lost access lose sessions
    app.on_shutdown.append(_disconnect_everyone)
    return app


#: How long a starting node waits for Redis to answer PING before it refuses to start.
REDIS_CONNECT_SECONDS = 5.0


def redis_channel(settings: Settings) -> str:
    """The Redis Pub/Sub channel of this deployment: the same on every node of one database, another for
    another database (two deployments may share one Redis without hearing each other)."""
    database = str(settings.db_path.resolve())
    return "cim-" + hashlib.sha256(database.encode("utf-8")).hexdigest()[:16]


def _client_manager(settings: Settings) -> socketio.AsyncManager | None:
    """Empty CIM_REDIS_URL: python-socketio's in-process manager (one node). Set: its Redis manager, so an
    emit on any node reaches the sockets in that room on every node (docs/DEPLOY.md, "Two or more nodes")."""
    if not settings.redis_url:
        return None
    return socketio.AsyncRedisManager(
        settings.redis_url,
        channel=redis_channel(settings),
        redis_options={"socket_connect_timeout": REDIS_CONNECT_SECONDS, "health_check_interval": 30},
    )


def _redis_context(sio: socketio.AsyncServer, url: str):
    """Start-up: Redis must answer (or the node refuses to start, naming it, instead of retrying for ever);
    then the manager listens at once (python-socketio would wait for the first connection to this node)."""

    async def context(app: web.Application) -> AsyncIterator[None]:
        import redis.asyncio
        from redis.exceptions import AuthenticationError, RedisError, ResponseError

        shown = redis_url_shown(url)
        probe = redis.asyncio.Redis.from_url(
            url, socket_connect_timeout=REDIS_CONNECT_SECONDS, socket_timeout=REDIS_CONNECT_SECONDS
        )
        try:
            await asyncio.wait_for(probe.ping(), REDIS_CONNECT_SECONDS * 2)
        except (AuthenticationError, ResponseError) as exc:  # it answered, but not to us (NOAUTH, WRONGPASS)
            raise ConfigError(
                f"CIM_REDIS_URL {shown}: Redis refused the connection ({type(exc).__name__}); "
                "check the user and password in the setting"
            ) from None
        except (RedisError, OSError, TimeoutError) as exc:
            raise ConfigError(
                f"CIM_REDIS_URL {shown}: Redis does not answer ({type(exc).__name__}); start it or correct the setting"
            ) from None
        finally:
            await probe.aclose()
        manager = sio.manager
        sio.manager_initialized = True
        manager.initialize()  # the listening task
        loop = asyncio.get_running_loop()
        deadline = loop.time() + REDIS_CONNECT_SECONDS
        while not (manager.pubsub is not None and manager.pubsub.subscribed) and loop.time() < deadline:  # noqa: ASYNC110 (polls a flag of the manager)
            await asyncio.sleep(0.01)
        if not (manager.pubsub is not None and manager.pubsub.subscribed):
            log.warning("server.redis_not_subscribed url=%s (events from other nodes may be missed until it is)", shown)
        log.info("server.redis url=%s channel=%s", shown, manager.channel)
        try:
            yield
        finally:
            await stop_task(manager.thread, name="redis-listener", grace=SHUTDOWN_GRACE_SECONDS)
            if manager.redis is not None:
                await manager.redis.aclose()

    return context


def _shared_presence_context(hub: Hub):
    """The shared presence runs while the server does: this node's consultants are published (and the
    other nodes' read) before the routing looks at who holds chats, and withdrawn when it stops."""

    async def context(app: web.Application) -> AsyncIterator[None]:
        presence = hub.presence
        assert isinstance(presence, RedisPresence)
        presence.on_change = hub.presence_changed_elsewhere
        await presence.start()
        try:
            yield
        finally:
            await presence.stop()

    return context


def _leader_factory(store: Store, holder: str, lease_seconds: float):
    """`leader(name, job)`: a LeaderJob running `job()` while this node (`holder`) holds the lease `name`."""

    def leader(name: str, job) -> LeaderJob:
        return LeaderJob(store.leases, name, holder, job, lease_seconds=lease_seconds)

    return leader


def _leader_context(job: LeaderJob):
    """aiohttp cleanup context: the job's lease is taken and renewed while the server runs, released at its stop."""

    async def context(app: web.Application) -> AsyncIterator[None]:
        app[LEADER_JOBS][job.name] = job
        job.start()
        try:
            yield
        finally:
            await job.stop()

    return context


def runner_options(settings: Settings) -> dict[str, float]:
    """Options for the aiohttp `AppRunner` serving `create_app` (cim serve, cim demo and the tests use them).

    `keepalive_timeout` is also how long aiohttp waits for a request's headers: its timer runs from
    the connection's start (and from each response) until a whole request head has arrived, so a
    half-open request (slowloris) is dropped after it; upgraded WebSockets and long-polls in
    progress are not idle and stay open.
    """
    if settings.http_header_timeout_seconds < 1:
        raise ConfigError("CIM_HTTP_HEADER_TIMEOUT_SECONDS must be at least 1")
    return {"keepalive_timeout": float(settings.http_header_timeout_seconds)}


async def _disconnect_everyone(app: web.Application) -> None:
    """At shutdown, close every socket so the server stops at once (clients reconnect to the next one)."""
    hub, sio = app[HUB], app[SIO]
    for sid in list(hub.residents):
        await sio.disconnect(sid, namespace="/resident")
    for sid in list(hub.staff):
        await sio.disconnect(sid, namespace="/staff")
    # the Engine.IO transports themselves (WebSockets, long-polls); closing a long-poll waits until
    # the client collects the close packet, which an abandoned one never does: bounded, or SIGTERM hangs
    closing = [asyncio.create_task(sio.eio.disconnect(eio_sid)) for eio_sid in list(sio.eio.sockets)]
    if closing:
        _, pending = await asyncio.wait(closing, timeout=SHUTDOWN_GRACE_SECONDS)
        if pending:
            log.warning("server.sockets_abandoned count=%d", len(pending))
            for task in pending:
                task.cancel()


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    missing = [str(p) for p in VENDOR_FILES.values() if not p.is_file()]
    if missing:
        log.warning(
            "vendor.missing files=%s hint='run: cd webchat && npm ci' (the widget cannot load without them)",
            ",".join(missing),
        )
    hub = app[HUB]
    log.info(
        "server.started opening_hours=%r rate_limit=%r max_connections_per_address=%r",
        hub.hours.spec,
        hub.store.settings.resident_rate_limit,
        hub.store.settings.max_connections_per_address,
    )
    sweep = staff.start_session_sweep(hub)  # ends /staff sockets whose session ended (README: sessions)
    try:
        yield
    finally:
        hub.staff_sessions.unsubscribe()  # the store may outlive this app (tests, cim demo)
        await stop_task(sweep, name="staff-session-sweep")
        await hub.supervision.stop()
    await hub.drain()
    try:  # the Redis manager's listener may wait on a Redis that stopped answering: bounded, or SIGTERM hangs
        await asyncio.wait_for(app[SIO].shutdown(), timeout=SHUTDOWN_GRACE_SECONDS)
    except asyncio.TimeoutError:
        log.warning("server.sio_shutdown_abandoned after=%ss", SHUTDOWN_GRACE_SECONDS)
    log.info("server.stopped")


def _content_security_policy() -> str:
    """Scripts only from this server; the demo page's own <style> blocks allowed by hash, nothing else inline."""
    demo = (STATIC_DIR / "demo.html").read_text(encoding="utf-8") if (STATIC_DIR / "demo.html").is_file() else ""
    hashes = " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(block.encode("utf-8")).digest()).decode() + "'"
        for block in re.findall(r"<style[^>]*>(.*?)</style>", demo, flags=re.S)
    )
    style_src = " ".join(["'self'", hashes]).strip()
    return (
        "default-src 'none'; script-src 'self'; "
        f"style-src {style_src}; img-src 'self' data:; font-src 'self'; connect-src 'self'; "
        "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    headers = response.headers
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "no-referrer")
    if request.path.startswith("/widget/"):
        # the widget's script and styles are loaded by the city's pages on other origins
        headers.setdefault("Cross-Origin-Resource-Policy", "cross-origin")
        headers.setdefault("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
    else:
        headers.setdefault("Content-Security-Policy", request.app[CSP])
        headers.setdefault("X-Frame-Options", "DENY")
        headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")


@web.middleware
async def _body_limit(request: web.Request, handler) -> web.StreamResponse:
    """413 for a declared body over the limit, before any handler: Engine.IO reads long-poll bodies itself
    (bypassing client_max_size) and answered an oversized one by waiting for ever on the session it closed."""
    if request.content_length is not None and request.content_length > MAX_REQUEST_BYTES:
        raise web.HTTPRequestEntityTooLarge(max_size=MAX_REQUEST_BYTES, actual_size=request.content_length)
    return await handler(request)


@web.middleware
async def _no_stack_traces(request: web.Request, handler) -> web.StreamResponse:
    """An unexpected error is logged with its traceback and answered with one plain sentence."""
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except Exception:
        log.exception("http.crashed method=%s path=%s", request.method, request.path)
        return web.json_response(
            {"ok": False, "error": {"code": "server_error", "message": "internal error"}}, status=500
        )


async def _demo_page(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(STATIC_DIR / "demo.html", headers={"Content-Type": "text/html; charset=utf-8"})


def _vendor_file(path: Path):
    async def serve(request: web.Request) -> web.StreamResponse:
        if not path.is_file():
            raise web.HTTPNotFound(text="not installed on this server (cd webchat && npm ci)")
        return web.FileResponse(path, headers={"Content-Type": "text/javascript; charset=utf-8"})

    return serve


async def _healthz(request: web.Request) -> web.Response:
    """`ok` (200) while the database answers, `unavailable` (503) otherwise; nothing about who is online."""
    hub = request.app[HUB]
    try:
        await hub.store.ping()
    except Exception:
        log.exception("healthz.database_failed")
        return web.Response(text="unavailable", status=503)
    return web.Response(text="ok")
