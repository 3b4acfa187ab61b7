"""The `/staff` namespace (docs/PROTOCOL.md): consultants' queue, presence, accept, send, typing, transfer, close."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Callable

import socketio

from store.chats import is_id
from store.errors import CimError, SessionExpired
from store.models import Actor, Role
from store.session_watch import (
    DISABLED,
    ENDED_REASONS,
    EXPIRED,
    IDLE,
    PASSWORD_CHANGED,
    ROLE_REMOVED,
    SIGNED_OUT,
    AccountChange,
    session_verdicts,
    staff_with_live_sessions,
    token_hash,
)

from . import protocol, supervision, traffic
from .routing import DeskStaffEvents
from .supervision import SupervisionEvents
from .traffic import TrafficEvents
from .broadcast import ChatAccepted, ChatClosed, ChatRequeued, ChatTransferred, MessageStored
from .hub import (
    ALL_STAFF,
    STAFF,
    CimNamespace,
    Hub,
    StaffConn,
    acked,
    consultant_room,
    error,
    ok,
    refuse,
)
from .protocol import (
    CLOSED_BY_CONSULTANT,
    CONNECTION_LOST,
    INVALID,
    NOT_ONLINE,
    SERVER_ERROR,
    SESSION_ENDED,
    TOO_MANY_CONNECTIONS,
    UNAUTHORISED,
    refusal,
    session_ended_payload,
)
from .limits import RateLimiter

log = logging.getLogger("cim.webchat")

#: A connected consultant's session is refreshed in the store (its idle timer) at least this often
#: (seconds) while it acts, and always before accept, transfer, close and my_chats.
RECHECK_SECONDS = 60.0
#: How often every open /staff session is checked against the store (lifetime, idle timeout, and
#: changes made by other processes); changes made in this process are pushed at once.
SWEEP_SECONDS = 1.0
#: How long the server waits for the client to acknowledge `session_ended` before it disconnects (seconds).
ENDED_ACK_SECONDS = 0.5
#: Every this many sweeps, chats held by consultants who are offline and have no live session left
#: (a TUI that crashed, then the session expired) go back to the queue.
ORPHAN_SWEEP_EVERY = 30
#: `activity` refreshes the session's idle timer at most this often per socket (seconds).
ACTIVITY_SECONDS = 10.0
#: Refused /staff connections audited per address: at most this many per this many seconds (the rest logged).
REFUSAL_AUDIT_RATE = (20, 60.0)

#: What the consultant is told when a session ends: Polish first (the TUI shows it), then English.
ENDED_MESSAGES = {
    DISABLED: (
        "Twoja sesja została zakończona: konto zostało wyłączone.",
        "Your session has ended: the account was disabled.",
    ),
    SIGNED_OUT: ("Twoja sesja została zakończona: wylogowano.", "Your session has ended: you signed out."),
    ROLE_REMOVED: (
        "Twoja sesja została zakończona: odebrano Ci rolę konsultanta.",
        "Your session has ended: you no longer have the consultant role.",
    ),
    PASSWORD_CHANGED: (
        "Twoja sesja została zakończona: zmieniono hasło.",
        "Your session has ended: the password was changed.",
    ),
    EXPIRED: (
        "Twoja sesja została zakończona: upłynął maksymalny czas sesji.",
        "Your session has ended: it reached its maximum length.",
    ),
    IDLE: (
        "Twoja sesja została zakończona: zbyt długi brak aktywności.",
        "Your session has ended: you were inactive for too long.",
    ),
}
assert set(ENDED_MESSAGES) == set(ENDED_REASONS)


def _chat_id(data: dict) -> int | None:
    value = data.get("chat_id")
    return value if is_id(value) else None


def start_session_sweep(hub: Hub) -> asyncio.Task:
    """Listen to the store's account changes and start the task that checks every open /staff session
    about once a second; at shutdown cancel the task and call `hub.staff_sessions.unsubscribe()`."""
    sessions = hub.staff_sessions
    sessions.unsubscribe = hub.store.accounts.changes.subscribe(sessions.changed)
    return asyncio.get_running_loop().create_task(sessions.sweep_forever(), name="staff-session-sweep")


class StaffSessions:
    """Ends /staff sockets whose session ended: pushed by the store's account changes, swept every second."""

    def __init__(self, sio: socketio.AsyncServer, hub: Hub) -> None:
        self.sio = sio
        self.hub = hub
        self.unsubscribe: Callable[[], None] = lambda: None  # set by start_session_sweep
        self.orphan_sweep_every = ORPHAN_SWEEP_EVERY

    def changed(self, change: AccountChange) -> None:
        """A committed account change (called by the store, in this process): end the sockets it concerns."""
        sids = [
            sid
            for sid, conn in self.hub.staff.items()
            if conn.actor.staff_id == change.staff_id
            and (change.token_hash is None or token_hash(conn.token) == change.token_hash)
        ]
        for sid in sids:
            self.hub.spawn(self.end(sid, change.reason))
        watching = getattr(self.hub, "traffic", None)
        if watching is not None:
            for sid, (_address, actor) in list(watching.watchers.items()):
                if actor.staff_id == change.staff_id and (
                    change.token_hash is None or token_hash(watching.watcher_tokens.get(sid, "")) == change.token_hash
                ):
                    self.hub.spawn(self.end_watcher(sid, change.reason))
        supervision.account_changed(self, change)
        if not sids and not self.hub.presence.is_online(change.staff_id):
            # connected nowhere now (here or on another node), and that session is over: their open chats wait
            # for someone else
            self.hub.spawn(self.return_chats(change.staff_id, change.reason))

    async def end(self, sid: str, reason: str) -> None:
        """Tell the socket why (`session_ended`), then disconnect it; its chats go back to the queue."""
        conn = self.hub.staff.get(sid)
        if conn is None or conn.ended:
            return
        conn.ended = reason
        polish, english = ENDED_MESSAGES.get(reason, ENDED_MESSAGES[EXPIRED])
        log.info("staff.session_ended staff_id=%s reason=%s", conn.actor.staff_id, reason)
        try:
            # a call, not an emit: a client handles each event in a task of its own, so the disconnect
            # could overtake the reason; it is sent once the client acknowledged (or after a short wait)
            await self.sio.call(
                "session_ended",
                session_ended_payload(reason, polish, english),
                to=sid,
                namespace=STAFF,
                timeout=ENDED_ACK_SECONDS,
            )
        except Exception:  # no answer (a client that does not ack, or one already gone): end it regardless
            pass
        finally:
            await self.sio.disconnect(sid, namespace=STAFF)

    async def end_watcher(self, sid: str, reason: str) -> None:
        """A wallboard-only socket (webchat/traffic.py) whose session ended: told why, then disconnected."""
        watching = getattr(self.hub, "traffic", None)
        if watching is None or watching.watcher_tokens.pop(sid, None) is None:
            return
        polish, english = ENDED_MESSAGES.get(reason, ENDED_MESSAGES[EXPIRED])
        log.info("staff.session_ended watcher=1 reason=%s", reason)
        try:
            await self.sio.call(
                "session_ended",
                session_ended_payload(reason, polish, english),
                to=sid,
                namespace=STAFF,
                timeout=ENDED_ACK_SECONDS,
            )
        except Exception:
            pass
        finally:
            await self.sio.disconnect(sid, namespace=STAFF)

    async def check_watchers(self) -> None:
        """The wallboard-only sockets' sessions, checked like the consultants' (revoked, expired, idle, disabled)."""
        watching = getattr(self.hub, "traffic", None)
        if watching is None or not watching.watcher_tokens:
            return
        tokens = dict(watching.watcher_tokens)
        verdicts = await session_verdicts(self.hub.store.accounts, set(tokens.values()))
        for sid, token in tokens.items():
            if verdicts.get(token):
                await self.end_watcher(sid, verdicts[token])  # type: ignore[arg-type]

    async def check(self, sids: list[str]) -> dict[str, str | None]:
        """The store's verdict on these sockets' sessions; the ended ones are ended now."""
        conns = {sid: self.hub.staff[sid] for sid in sids if sid in self.hub.staff}
        verdicts = await session_verdicts(
            self.hub.store.accounts, {c.token for c in conns.values()}, required_role=Role.CONSULTANT
        )
        result = {}
        for sid, conn in conns.items():
            result[sid] = conn.ended or verdicts.get(conn.token)
            if result[sid] and not conn.ended:
                await self.end(sid, result[sid])  # type: ignore[arg-type]
        return result

    async def sweep_forever(self) -> None:
        failing = False
        sweeps = 0
        while True:
            await asyncio.sleep(SWEEP_SECONDS)
            sweeps += 1
            try:
                if self.hub.staff:
                    await self.check(list(self.hub.staff))
                await self.check_watchers()
                await supervision.check_sessions(self)
                if sweeps % self.orphan_sweep_every == 1 % self.orphan_sweep_every:
                    await self.return_orphaned_chats()
                failing = False
            except Exception:
                if not failing:  # one traceback per outage, not one a second
                    log.exception("staff.sweep_failed")
                failing = True

    async def return_orphaned_chats(self) -> None:
        """Chats of consultants connected nowhere whose every session has ended: back to the queue."""
        holders = await self.hub.chats.consultants_holding_chats() - set(self.hub.presence.connected())
        if not holders:
            return
        alive = await staff_with_live_sessions(self.hub.store.accounts, holders, required_role=Role.CONSULTANT)
        for staff_id in holders - alive:
            await self.return_chats(staff_id, EXPIRED)

    async def return_chats(self, staff_id: int, reason: str) -> None:
        """The consultant's session ended and they are offline: their active chats go back to the queue."""
        try:
            returned = await self.hub.chats.return_to_queue(staff_id, reason)
        except Exception:
            log.exception("staff.requeue_failed staff_id=%s", staff_id)
            return
        for chat, message in returned:
            released = CONNECTION_LOST if reason == CONNECTION_LOST else SESSION_ENDED
            await self.hub.publish(ChatRequeued(chat, message, staff_id, released))
            log.info("chat.requeued chat_id=%s from=%s reason=%s", chat.id, staff_id, reason)
        if returned:
            self.hub.queue_changed()


class StaffNamespace(SupervisionEvents, DeskStaffEvents, TrafficEvents, CimNamespace):
    """`/staff`: each event validated, the store called, the ack returned; what others hear is published to
    the broadcaster (webchat/broadcast.py). Supervisors (webchat/supervision.py), the desk (webchat/routing.py)
    and the PBX (webchat/traffic.py) add their events."""

    def __init__(self, hub: Hub) -> None:
        super().__init__(STAFF, hub)
        self.refusal_audits = RateLimiter(REFUSAL_AUDIT_RATE)

    @property
    def sessions(self) -> StaffSessions:
        return self.hub.staff_sessions

    async def audit_refusal(self, address: str, actor: Actor | None, reason: str) -> None:
        """A refused connect is audited like the store's refusals (rate-limited per address: no audit flood)."""
        if not self.refusal_audits.allow(address):
            log.warning("staff.refusal_not_audited reason=%s", reason)
            return
        try:
            await self.hub.store.audit.record(
                actor or Actor(None, "unknown", frozenset()),
                "staff.connect",
                outcome="refused",
                details={"reason": reason},
            )
        except Exception:
            log.exception("staff.refusal_audit_failed")

    async def on_connect(self, sid: str, environ: dict, auth: Any = None) -> None:
        request = environ["aiohttp.request"]
        address = self.hub.address.of(request)
        token = auth.get("token") if isinstance(auth, dict) else None
        if not self.hub.connections.acquire(address):  # first: the cheapest refusal, before any database work
            raise refuse(refusal(TOO_MANY_CONNECTIONS, "too many connections from your address"))
        actor: Actor | None = None
        try:
            if not isinstance(token, str) or not token.isascii():  # session tokens are URL-safe ASCII
                raise SessionExpired("not signed in")
            actor = await self.hub.store.accounts.authenticate(token)
            if not actor.has(Role.CONSULTANT) and supervision.may_supervise(actor):  # §3: the supervisors' socket
                await supervision.add_supervisor(self.hub, sid, actor, address, token)
                return
            if not actor.has(Role.CONSULTANT) and traffic.watch_only(self.hub, actor):  # the manager's wallboard
                await traffic.add_watcher(self.hub, sid, actor, address, token)
                return
            if not actor.has(Role.CONSULTANT):
                log.info("staff.refused reason=role staff_id=%s", actor.staff_id)
                raise SessionExpired("only consultants handle live chats")
        except CimError as exc:  # expired, revoked or unknown token, a deleted account, the wrong role
            self.hub.connections.release(address)
            log.info("staff.refused reason=session")
            await self.audit_refusal(address, actor, "role" if actor is not None else "session")
            raise refuse(
                refusal(UNAUTHORISED, exc.message if isinstance(exc, SessionExpired) else "not signed in")
            ) from None
        except Exception:
            self.hub.connections.release(address)
            log.exception("staff.connect_failed")
            raise refuse(refusal(SERVER_ERROR, "the server could not check the sign-in")) from None
        try:
            await self.hub.presence.load_status(actor.staff_id)  # type: ignore[arg-type]  # away stays away
        except Exception:
            self.hub.connections.release(address)
            log.exception("staff.connect_failed")
            raise refuse(refusal(SERVER_ERROR, "the server could not read your availability")) from None
        self.hub.staff[sid] = StaffConn(address, actor, token, time.monotonic(), touched_at=self.hub.store.clock())
        newly_online = self.hub.presence.join(sid, actor)
        await self.hub.presence.published()  # several nodes: the others see them before their connect is answered
        await self.sio.enter_room(sid, ALL_STAFF, namespace=STAFF)
        await self.sio.enter_room(sid, consultant_room(actor.staff_id), namespace=STAFF)  # type: ignore[arg-type]
        log.info("staff.connected staff_id=%s", actor.staff_id)
        if self.hub.routing is not None:
            self.hub.routing.connected(actor.staff_id)  # a dropped connection's grace period ends
        self.hub.spawn(self.greet(sid, actor, newly_online))
        self.hub.spawn(traffic.on_staff_connect(self.hub, sid, actor))
        self.hub.spawn(supervision.on_consultant_connect(self.hub, sid, actor))

    async def greet(self, sid: str, actor: Actor, newly_online: bool) -> None:
        try:
            await self.sio.emit("queue", await self.hub.queue_payload(), to=sid, namespace=STAFF)
            if newly_online:
                await self.hub.broadcast_presence()
            else:
                await self.sio.emit("presence", self.hub.presence_payload(), to=sid, namespace=STAFF)
            for payload in await self.my_chats(actor):
                await self.emit("assigned", payload, to=sid)
        except Exception:
            log.exception("staff.greet_failed")

    async def my_chats(self, actor: Actor) -> list[dict[str, Any]]:
        """The consultant's open chats, then the chats the resident left that still wait for a category
        (issue 16), marked `"left": true, "status": "closed"`: listed at every (re)connect until `close`
        gives each its category, so none stays uncategorised after a sign-out, a reconnect or a restart."""
        payloads = []
        for chat in await self.hub.chats.open_chats_of(actor):
            self.hub.remember(chat)
            payloads.append(await self.hub.broadcast.assigned_payload(chat))
        for chat in await self.hub.chats.left_uncategorised_of(actor):
            payloads.append(await self.hub.broadcast.assigned_payload(chat, left=True, status="closed"))
        return payloads

    async def on_disconnect(self, sid: str, reason: Any = None) -> None:
        if await supervision.on_disconnect(self.hub, sid):  # a supervisor-only socket: nothing of a consultant's
            return
        conn = self.hub.staff.pop(sid, None)
        if conn is None:
            traffic.forget_watcher(self.hub, sid)
            return
        self.hub.connections.release(conn.address)
        staff_id: int = conn.actor.staff_id  # type: ignore[assignment]
        if self.hub.presence.leave(sid, staff_id):
            await self.hub.broadcast_presence()
        log.info("staff.disconnected staff_id=%s", staff_id)
        await self.hub.presence.published()
        if self.hub.presence.is_online(staff_id):  # another socket here, or on another node: their chats stay
            return
        # the consultant's last socket: if it went because the session ended (pushed, swept, or the
        # TUI signing out just before it closed), nobody will answer their chats: back to the queue
        reason = conn.ended
        if reason is None:
            try:
                reason = (
                    await session_verdicts(self.hub.store.accounts, [conn.token], required_role=Role.CONSULTANT)
                ).get(conn.token)
            except Exception:  # the store is closing (shutdown): the chats stay assigned, as after a blip
                log.info("staff.disconnect_check_failed staff_id=%s", staff_id)
        if reason is not None:
            await self.sessions.return_chats(staff_id, reason)
        elif self.hub.routing is not None:
            self.hub.routing.dropped(staff_id)  # back within the grace period, or the chats go back to the queue

    async def actor_of(self, sid: str, *, fresh: bool = False) -> Actor:
        """The consultant behind the socket, re-checked in the store when due; a dead session ends the socket."""
        conn = self.hub.staff.get(sid)
        if conn is None and sid in self.hub.supervision.conns:  # only consultants accept, send, ...: audited
            await supervision.refuse_consultant_event(self.hub, sid)
        if conn is None or conn.ended:
            raise SessionExpired("the session has ended; sign in again")
        if fresh or time.monotonic() - conn.checked_at > RECHECK_SECONDS:
            try:
                actor = await self.hub.store.accounts.authenticate(conn.token)
                if not actor.has(Role.CONSULTANT):
                    raise SessionExpired("you no longer have the consultant role")
            except SessionExpired:
                self.hub.spawn(self.sessions.check([sid]))  # ends it with the store's reason
                raise
            conn.actor, conn.checked_at, conn.touched_at = actor, time.monotonic(), self.hub.store.clock()
        return conn.actor

    @acked(STAFF)
    async def on_accept(self, sid: str, data: dict) -> dict:
        actor = await self.actor_of(sid, fresh=True)
        chat_id = _chat_id(data)
        if chat_id is None:
            return error(INVALID, "chat_id must be a chat number")
        chat, message = await self.hub.chats.accept(actor, chat_id)
        self.hub.remember(chat)
        log.info("chat.accepted chat_id=%s staff_id=%s", chat_id, actor.staff_id)
        history = await self.hub.history_payload(chat_id)
        assert actor.staff_id is not None  # a consultant's session is always a staff account's (actor_of)
        await self.hub.publish(
            ChatAccepted(
                chat,
                message,
                actor.staff_id,
                skip_sid=sid,
                lines=history,
            )
        )
        return ok(chat_id=chat_id, lang=chat.lang, history=history)

    @acked(STAFF)
    async def on_send(self, sid: str, data: dict) -> dict:
        actor = await self.actor_of(sid)
        chat_id = _chat_id(data)
        if chat_id is None:
            return error(INVALID, "chat_id must be a chat number")
        posted = await self.hub.chats.post_consultant(actor, chat_id, data.get("text"), data.get("client_msg_id"))
        if posted.new:
            await self.hub.publish(MessageStored(chat_id, posted.message, skip_sid=sid))
        return ok(seq=posted.message.seq)

    @acked(STAFF)
    async def on_typing(self, sid: str, data: dict) -> dict:
        actor = await self.actor_of(sid)
        chat_id = _chat_id(data)
        active = data.get("active")
        if chat_id is None or not isinstance(active, bool):
            return error(INVALID, "typing needs chat_id and active (true or false)")
        if await self.hub.assignee(chat_id) != actor.staff_id:
            await self.hub.chats.refuse_unassigned(actor, "chat.typing", chat_id)  # audits, raises not_permitted
        await self.hub.broadcast.to_resident(chat_id, "typing", {"active": active})
        return ok()

    @acked(STAFF)
    async def on_activity(self, sid: str, data: dict) -> dict:
        """The TUI reports that the consultant is working: the session's idle timer starts again."""
        conn = self.hub.staff.get(sid)
        fresh = conn is not None and (self.hub.store.clock() - conn.touched_at).total_seconds() >= ACTIVITY_SECONDS
        await self.actor_of(sid, fresh=fresh)
        return ok()

    @acked(STAFF)
    async def on_history(self, sid: str, data: dict) -> dict:
        actor = await self.actor_of(sid)
        chat_id = _chat_id(data)
        if chat_id is None:
            return error(INVALID, "chat_id must be a chat number")
        lines = await self.hub.chats.history_for(actor, chat_id)
        return ok(chat_id=chat_id, messages=protocol.history(lines, staff=await self.hub.chats.staff_on_lines(lines)))

    @acked(STAFF)
    async def on_transfer(self, sid: str, data: dict) -> dict:
        actor = await self.actor_of(sid, fresh=True)
        chat_id = _chat_id(data)
        to_staff_id = data.get("to_staff_id")
        if chat_id is None or not is_id(to_staff_id):
            return error(INVALID, "transfer needs chat_id and to_staff_id")
        target = await self.transfer_target(to_staff_id)
        if target is None:
            return error(NOT_ONLINE, "that consultant is not online")
        chat, message = await self.hub.chats.transfer(actor, chat_id, target)
        log.info("chat.transferred chat_id=%s from=%s to=%s", chat_id, actor.staff_id, to_staff_id)
        await self.hub.publish(ChatTransferred(chat, message, actor.staff_id, to_staff_id))  # type: ignore[arg-type]
        return ok(chat_id=chat_id)

    async def transfer_target(self, staff_id: int) -> Actor | None:
        """The colleague a chat may be transferred to: connected here with a session that goes on, or connected
        to another node (CIM_REDIS_URL) with a consultant's session that goes on; None otherwise."""
        here = self.hub.online.get(staff_id)
        if here is not None:
            if [v for v in (await self.sessions.check(list(here.sids))).values() if v is None]:
                return here.actor
            return None  # connected a moment ago, but every session of theirs has ended since
        if not self.hub.presence.is_online(staff_id):
            return None
        live = await staff_with_live_sessions(self.hub.store.accounts, [staff_id], required_role=Role.CONSULTANT)
        if staff_id not in live:
            return None
        return (await self.hub.store.accounts.get_by_id(staff_id)).as_actor()

    @acked(STAFF)
    async def on_close(self, sid: str, data: dict) -> dict:
        actor = await self.actor_of(sid, fresh=True)
        chat_id = _chat_id(data)
        if chat_id is None:
            return error(INVALID, "chat_id must be a chat number")
        chat, message = await self.hub.chats.close(actor, chat_id, data.get("category"))
        log.info("chat.closed chat_id=%s staff_id=%s category=%s", chat_id, actor.staff_id, chat.close_category)
        await self.hub.publish(ChatClosed(chat, message, actor.staff_id, CLOSED_BY_CONSULTANT))
        if self.hub.routing is not None:
            self.hub.routing.poke()  # a seat is free again
        return ok(chat_id=chat_id, category=chat.close_category)

    @acked(STAFF)
    async def on_my_chats(self, sid: str, data: dict) -> dict:
        actor = await self.actor_of(sid, fresh=True)
        return ok(chats=await self.my_chats(actor))

    @acked(STAFF)
    async def on_canned(self, sid: str, data: dict) -> dict:
        actor = await self.actor_of(sid)
        return ok(
            responses=[{"id": c.id, "title": c.title, "text": c.text} for c in await self.hub.chats.canned(actor)]
        )

    @acked(STAFF)
    async def on_close_categories(self, sid: str, data: dict) -> dict:
        from store.chats import CLOSE_CATEGORIES

        await self.actor_of(sid)
        return ok(categories=list(CLOSE_CATEGORIES))


def register(sio: socketio.AsyncServer, hub: Hub) -> StaffNamespace:
    """The /staff namespace on `sio`, with the sessions' watch (webchat/supervision.py and webchat/routing.py
    keep their own state; their events are mixed into StaffNamespace)."""
    hub.staff_sessions = StaffSessions(sio, hub)
    namespace = StaffNamespace(hub)
    sio.register_namespace(namespace)
    return namespace
