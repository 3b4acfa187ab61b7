"""The `/staff` namespace (docs/PROTOCOL.md): consultants' queue, presence, accept, send, typing, transfer, close."""

from __future__ import annotations

import logging
import time
from typing import Any

import socketio

from store.errors import CimError, SessionExpired
from store.models import Actor, Role

from . import traffic
from .hub import (ALL_STAFF, RESIDENT, STAFF, Hub, OnlineConsultant, StaffConn, acked, chat_room, consultant_room,
                  error, message_payload, ok, refuse)

log = logging.getLogger("cim.webchat")

#: A connected consultant's session is re-checked in the store at least this often (seconds), and
#: always before accept, transfer, close and my_chats: a revoked session or role stops working.
RECHECK_SECONDS = 60.0


def _chat_id(data: dict) -> int | None:
    value = data.get("chat_id")
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def register(sio: socketio.AsyncServer, hub: Hub) -> None:
    """Attach the staff handlers to `sio`."""

    async def connect(sid: str, environ: dict, auth: Any = None) -> None:
        request = environ["aiohttp.request"]
        address = hub.address.of(request)
        token = auth.get("token") if isinstance(auth, dict) else None
        if not hub.connections.acquire(address):  # first: the cheapest refusal, before any database work
            raise refuse({"code": "too_many_connections", "message": "too many connections from your address"})
        try:
            actor = await hub.store.accounts.authenticate(token)  # type: ignore[arg-type]
            if not actor.has(Role.CONSULTANT) and traffic.watch_only(hub, actor):  # the manager's wallboard
                await traffic.add_watcher(hub, sid, actor, address)
                return
            if not actor.has(Role.CONSULTANT):
                log.info("staff.refused reason=role staff_id=%s", actor.staff_id)
                raise SessionExpired("only consultants handle live chats")
        except CimError as exc:  # expired, revoked or unknown token, a deleted account, the wrong role
            hub.connections.release(address)
            log.info("staff.refused reason=session")
            raise refuse({"code": "unauthorised", "message": exc.message if isinstance(exc, SessionExpired)
                          else "not signed in"})
        except Exception:
            hub.connections.release(address)
            log.exception("staff.connect_failed")
            raise refuse({"code": "server_error", "message": "the server could not check the sign-in"})
        hub.staff[sid] = StaffConn(address, actor, token, time.monotonic())  # type: ignore[arg-type]
        newly_online = actor.staff_id not in hub.online
        hub.online.setdefault(actor.staff_id, OnlineConsultant(actor)).sids.add(sid)  # type: ignore[arg-type]
        hub.online[actor.staff_id].actor = actor  # type: ignore[index]
        await sio.enter_room(sid, ALL_STAFF, namespace=STAFF)
        await sio.enter_room(sid, consultant_room(actor.staff_id), namespace=STAFF)  # type: ignore[arg-type]
        log.info("staff.connected staff_id=%s", actor.staff_id)
        hub.spawn(greet(sid, actor, newly_online))
        hub.spawn(traffic.on_staff_connect(hub, sid, actor))

    async def greet(sid: str, actor: Actor, newly_online: bool) -> None:
        try:
            await sio.emit("queue", await hub.queue_payload(), to=sid, namespace=STAFF)
            if newly_online:
                await hub.broadcast_presence()
            else:
                await sio.emit("presence", hub.presence_payload(), to=sid, namespace=STAFF)
            for chat in await hub.chats.open_chats_of(actor):
                hub.remember(chat)
                await sio.emit("assigned", {"chat_id": chat.id, "lang": chat.lang,
                                            "history": await hub.history_payload(chat.id)}, to=sid, namespace=STAFF)
        except Exception:
            log.exception("staff.greet_failed")

    async def disconnect(sid: str, reason: Any = None) -> None:
        conn = hub.staff.pop(sid, None)
        if conn is None:
            traffic.forget_watcher(hub, sid)
            return
        hub.connections.release(conn.address)
        online = hub.online.get(conn.actor.staff_id)  # type: ignore[arg-type]
        if online is not None:
            online.sids.discard(sid)
            if not online.sids:
                del hub.online[conn.actor.staff_id]  # type: ignore[arg-type]
                await hub.broadcast_presence()
        log.info("staff.disconnected staff_id=%s", conn.actor.staff_id)

    async def actor_of(sid: str, *, fresh: bool = False) -> Actor:
        """The consultant behind the socket, re-checked in the store when due; a dead session ends the socket."""
        conn = hub.staff.get(sid)
        if conn is None:
            raise SessionExpired("not signed in")
        if fresh or time.monotonic() - conn.checked_at > RECHECK_SECONDS:
            try:
                actor = await hub.store.accounts.authenticate(conn.token)
                if not actor.has(Role.CONSULTANT):
                    raise SessionExpired("you no longer have the consultant role")
            except SessionExpired:
                hub.spawn(sio.disconnect(sid, namespace=STAFF))
                raise
            conn.actor, conn.checked_at = actor, time.monotonic()
        return conn.actor

    @acked(STAFF)
    async def on_accept(sid: str, data: dict) -> dict:
        actor = await actor_of(sid, fresh=True)
        chat_id = _chat_id(data)
        if chat_id is None:
            return error("invalid", "chat_id must be a chat number")
        chat, message = await hub.chats.accept(actor, chat_id)
        hub.remember(chat)
        log.info("chat.accepted chat_id=%s staff_id=%s", chat_id, actor.staff_id)
        history = await hub.history_payload(chat_id)
        await sio.emit("message", message_payload(message), room=chat_room(chat_id), namespace=RESIDENT)
        await sio.emit("state", {"status": "active"}, room=chat_room(chat_id), namespace=RESIDENT)
        await sio.emit("assigned", {"chat_id": chat_id, "lang": chat.lang, "history": history},
                       room=consultant_room(actor.staff_id), namespace=STAFF, skip_sid=sid)  # type: ignore[arg-type]
        hub.queue_changed()
        return ok(chat_id=chat_id, lang=chat.lang, history=history)

    @acked(STAFF)
    async def on_send(sid: str, data: dict) -> dict:
        actor = await actor_of(sid)
        chat_id = _chat_id(data)
        if chat_id is None:
            return error("invalid", "chat_id must be a chat number")
        posted = await hub.chats.post_consultant(actor, chat_id, data.get("text"), data.get("client_msg_id"))
        if posted.new:
            await hub.relay(chat_id, posted.message, skip_sid=sid)
        return ok(seq=posted.message.seq)

    @acked(STAFF)
    async def on_typing(sid: str, data: dict) -> dict:
        actor = await actor_of(sid)
        chat_id = _chat_id(data)
        active = data.get("active")
        if chat_id is None or not isinstance(active, bool):
            return error("invalid", "typing needs chat_id and active (true or false)")
        if await hub.assignee(chat_id) != actor.staff_id:
            return error("not_permitted", "this chat is not assigned to you")
        await sio.emit("typing", {"active": active}, room=chat_room(chat_id), namespace=RESIDENT)
        return ok()

    @acked(STAFF)
    async def on_transfer(sid: str, data: dict) -> dict:
        actor = await actor_of(sid, fresh=True)
        chat_id = _chat_id(data)
        to_staff_id = data.get("to_staff_id")
        if chat_id is None or not isinstance(to_staff_id, int) or isinstance(to_staff_id, bool):
            return error("invalid", "transfer needs chat_id and to_staff_id")
        target = hub.online.get(to_staff_id)
        if target is None:
            return error("not_online", "that consultant is not online")
        chat, message = await hub.chats.transfer(actor, chat_id, target.actor)
        log.info("chat.transferred chat_id=%s from=%s to=%s", chat_id, actor.staff_id, to_staff_id)
        # the old consultant sees the transfer line, then loses the chat; the new one gets it whole
        await sio.emit("message", {"chat_id": chat_id, **message_payload(message)},
                       room=consultant_room(actor.staff_id), namespace=STAFF)  # type: ignore[arg-type]
        await sio.emit("released", {"chat_id": chat_id, "reason": "transferred"},
                       room=consultant_room(actor.staff_id), namespace=STAFF)  # type: ignore[arg-type]
        hub.remember(chat)
        await sio.emit("message", message_payload(message), room=chat_room(chat_id), namespace=RESIDENT)
        await sio.emit("assigned", {"chat_id": chat_id, "lang": chat.lang, "by": actor.staff_id,
                                    "history": await hub.history_payload(chat_id)},
                       room=consultant_room(to_staff_id), namespace=STAFF)
        return ok(chat_id=chat_id)

    @acked(STAFF)
    async def on_close(sid: str, data: dict) -> dict:
        actor = await actor_of(sid, fresh=True)
        chat_id = _chat_id(data)
        if chat_id is None:
            return error("invalid", "chat_id must be a chat number")
        chat, message = await hub.chats.close(actor, chat_id, data.get("category"))
        log.info("chat.closed chat_id=%s staff_id=%s category=%s", chat_id, actor.staff_id, chat.close_category)
        if message is not None:
            await hub.relay(chat_id, message)
            await sio.emit("state", {"status": "closed"}, room=chat_room(chat_id), namespace=RESIDENT)
        hub.remember(chat)
        await sio.emit("released", {"chat_id": chat_id, "reason": "closed"},
                       room=consultant_room(actor.staff_id), namespace=STAFF)  # type: ignore[arg-type]
        return ok(chat_id=chat_id, category=chat.close_category)

    @acked(STAFF)
    async def on_my_chats(sid: str, data: dict) -> dict:
        actor = await actor_of(sid, fresh=True)
        chats = []
        for chat in await hub.chats.open_chats_of(actor):
            hub.remember(chat)
            chats.append({"chat_id": chat.id, "lang": chat.lang, "history": await hub.history_payload(chat.id)})
        return ok(chats=chats)

    @acked(STAFF)
    async def on_canned(sid: str, data: dict) -> dict:
        actor = await actor_of(sid)
        return ok(responses=[{"id": c.id, "title": c.title, "text": c.text}
                             for c in await hub.chats.canned(actor)])

    @acked(STAFF)
    async def on_close_categories(sid: str, data: dict) -> dict:
        from store.chats import CLOSE_CATEGORIES

        await actor_of(sid)
        return ok(categories=list(CLOSE_CATEGORIES))

    async def on_unknown(event: str, sid: str, *args: Any) -> dict:
        return error("invalid", "unknown event")

    sio.on("connect", connect, namespace=STAFF)
    sio.on("disconnect", disconnect, namespace=STAFF)
    for handler in (on_accept, on_send, on_typing, on_transfer, on_close, on_my_chats, on_canned,
                    on_close_categories):
        sio.on(handler.__name__.removeprefix("on_"), handler, namespace=STAFF)
    sio.on("*", on_unknown, namespace=STAFF)
