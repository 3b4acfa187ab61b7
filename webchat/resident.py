"""The `/resident` namespace (DESIGN.md §5.2, docs/PROTOCOL.md): notice, chat, resume, typing, end."""

from __future__ import annotations

import logging
from typing import Any

import socketio

from store.chats import LANGS
from store.errors import ResumeInvalid

from .broadcast import ChatClosed, ChatQueued, MessageStored
from .hub import RESIDENT, Hub, ResidentConn, acked, chat_room, error, ok, refuse
from .protocol import (INVALID, NOTICE_NOT_ACCEPTED, OFFLINE, RATE_LIMITED, RESIDENT_LEFT, RESUME_INVALID,
                       SERVER_ERROR, TOO_MANY_CONNECTIONS, notice_payload, refusal)

log = logging.getLogger("cim.webchat")
#: Addresses remembered with the chats they opened before the memory is pruned against the queue.
OPENED_BY_PRUNE_AT = 10_000


def register(sio: socketio.AsyncServer, hub: Hub) -> None:
    """Attach the resident handlers to `sio`."""

    async def connect(sid: str, environ: dict, auth: Any = None) -> None:
        request = environ["aiohttp.request"]
        address = hub.address.of(request)
        if not isinstance(auth, dict):
            auth = {}
        lang = auth.get("lang") if auth.get("lang") in LANGS else "pl"
        if not hub.connections.acquire(address):  # first: the cheapest refusal, before any database work
            log.warning("resident.refused reason=too_many_connections")
            raise refuse(refusal(TOO_MANY_CONNECTIONS, "too many connections from your address"))
        chat = None
        resume = auth.get("resume")
        if resume is not None:
            try:
                chat = await hub.chats.resume(resume)
            except ResumeInvalid as exc:
                hub.connections.release(address)
                log.info("resident.resume_refused")
                raise refuse(refusal(RESUME_INVALID, exc.message))
            except Exception:
                hub.connections.release(address)
                log.exception("resident.resume_failed")
                raise refuse(refusal(SERVER_ERROR, "the server could not resume the chat"))
        hub.residents[sid] = conn = ResidentConn(address, chat.lang if chat else lang)
        if chat is not None:
            conn.chat_id = chat.id
            hub.remember(chat)
            await hub.join_chat(sid, chat.id)
        # The CONNECT packet is sent when this handler returns; greet the resident right after it.
        hub.spawn(greet(sid, chat))

    async def greet(sid: str, chat: Any) -> None:
        try:
            conn = hub.residents.get(sid)
            if conn is None:
                return
            if chat is not None:
                state = await state_of(chat.id)
                await sio.emit("history", {"messages": await hub.history_payload(chat.id, chat.lang), "state": state},
                               to=sid, namespace=RESIDENT)
                log.info("resident.resumed chat_id=%s", chat.id)
            elif not hub.is_open():
                await sio.emit("offline", {**offline_payload(conn.lang), **await offline_form(conn.lang)},
                               to=sid, namespace=RESIDENT)
            else:
                notice = await hub.store.notices.current("chat", conn.lang)
                await sio.emit("notice", {**notice_payload(notice),
                                          "consultants_available": await hub.consultants_available()},
                               to=sid, namespace=RESIDENT)
        except Exception:
            log.exception("resident.greet_failed")

    async def offline_form(lang: str) -> dict[str, Any]:
        """The notice an offline message is left after (§1.5), sent with `offline` (webchat/resident_desk.py)."""
        notice = await hub.store.notices.current("chat", lang)
        return {"notice": notice_payload(notice)}

    def offline_payload(lang: str) -> dict[str, str]:
        """The closed chat's message (which names the hours), the hours on their own, and where else to turn:
        the office's address and phone (settings office_address, office_phone; empty ones left out)."""
        hours = hub.hours.describe(lang)
        if lang == "en":
            message = f"The chat is closed now. Consultants answer {hours}."
        else:
            message = f"Czat jest teraz nieczynny. Konsultanci odpowiadają: {hours}."
        payload = {"message": message, "hours": hours}
        settings = hub.settings
        if settings.office_phone.strip():
            payload["phone"] = settings.office_phone.strip()
        if settings.office_address.strip():
            payload["address"] = settings.office_address.strip()
        return payload

    hub.offline_payload = offline_payload  # the desk's queue time limit offers the offline form (webchat/routing.py)
    hub.offline_form = offline_form  # with the notice the offline message form is shown after

    async def state_of(chat_id: int) -> dict[str, Any]:
        chat = await hub.chats.get(chat_id)
        state: dict[str, Any] = {"status": chat.status}
        if chat.status == "queued":
            for q in await hub.chats.queue():
                if q.chat_id == chat_id:
                    state["position"] = q.position
            state["estimated_wait_s"] = await hub.estimated_wait()
        return state

    async def disconnect(sid: str, reason: Any = None) -> None:
        conn = hub.residents.pop(sid, None)
        hub.limits.socket_rate.forget(sid)
        hub.limits.open_socket_rate.forget(sid)
        if conn is not None:
            hub.connections.release(conn.address)
            if conn.chat_id is not None:
                hub.leave_chat(sid, conn.chat_id)

    def current(sid: str) -> Any:
        return hub.residents.get(sid)

    @acked(RESIDENT)
    async def on_accept_notice(sid: str, data: dict) -> dict:
        conn = current(sid)
        if conn is None:
            return error(INVALID, "not connected")
        if conn.chat_id is not None:
            if (await hub.chats.get(conn.chat_id)).status != "closed":
                return error(INVALID, "a chat is already open on this connection")
            hub.leave_chat(sid, conn.chat_id)  # the last chat ended: a new one may start
            await sio.leave_room(sid, chat_room(conn.chat_id), namespace=RESIDENT)
            conn.chat_id = None
        if not hub.is_open():
            return error(OFFLINE, offline_payload(conn.lang)["message"])
        refusal = await opening_refused(sid, conn)
        if refusal is not None:
            return refusal
        opened = await hub.chats.open(data.get("notice_id"), conn.lang, data.get("topic_id"))
        chat_id = opened.chat.id
        hub.opened_by.setdefault(conn.address, set()).add(chat_id)
        conn.chat_id = chat_id
        hub.remember(opened.chat)
        await hub.join_chat(sid, chat_id)
        log.info("chat.opened chat_id=%s lang=%s", chat_id, conn.lang)
        position = next((q.position for q in await hub.chats.queue() if q.chat_id == chat_id), None)

        hub.spawn(_logged(hub.publish(ChatQueued(opened.chat, tuple(opened.messages))), "chat.announce_failed"))
        return ok(chat_id=chat_id, resume_token=opened.resume_token, position=position,
                  estimated_wait_s=await hub.estimated_wait())

    async def opening_refused(sid: str, conn: ResidentConn) -> dict | None:
        """A new chat from this socket or address beyond the limits (a flood must not fill the queue)."""
        limits = hub.limits
        if limits.max_queued_per_address is not None and conn.address in hub.opened_by:
            waiting = {q.chat_id for q in await hub.chats.queue()}
            if len(hub.opened_by) > OPENED_BY_PRUNE_AT:  # addresses that never came back: forget their chats
                hub.opened_by = {a: ids & waiting for a, ids in hub.opened_by.items() if ids & waiting}
                hub.opened_by.setdefault(conn.address, set())
            mine = hub.opened_by[conn.address] & waiting
            if mine:
                hub.opened_by[conn.address] = mine
            else:
                del hub.opened_by[conn.address]
            if len(mine) >= limits.max_queued_per_address:
                log.warning("resident.refused reason=too_many_waiting_chats")
                return error(RATE_LIMITED, "too many chats from your network are waiting; try again later")
        if not (limits.open_socket_rate.allow(sid) and limits.open_address_rate.allow(conn.address)):
            log.warning("resident.refused reason=too_many_chats_opened")
            return error(RATE_LIMITED, "too many new chats; wait a while before starting another")
        return None

    @acked(RESIDENT)
    async def on_decline_notice(sid: str, data: dict) -> dict:
        conn = current(sid)
        if conn is None:
            return error(INVALID, "not connected")
        if conn.chat_id is not None:
            return error(INVALID, "a chat is already open; use end to leave it")
        if not conn.declined:  # one count per connection, whatever a client repeats
            conn.declined = True
            await hub.chats.record_decline()
            log.info("notice.declined")
        return ok()

    @acked(RESIDENT)
    async def on_send(sid: str, data: dict) -> dict:
        conn = current(sid)
        if conn is None or conn.chat_id is None:
            return error(NOTICE_NOT_ACCEPTED, "accept the notice before writing")
        # per chat, per socket and per address: a new chat or a new socket starts no new allowance
        allowed = (hub.rate.allow(conn.chat_id), hub.limits.socket_rate.allow(sid),
                   hub.limits.address_rate.allow(conn.address))
        if not all(allowed):
            return error(RATE_LIMITED, "too many messages; wait a moment")
        posted = await hub.chats.post_resident(conn.chat_id, data.get("text"), data.get("client_msg_id"))
        if posted.new:
            await hub.publish(MessageStored(conn.chat_id, posted.message, skip_sid=sid))
        return ok(seq=posted.message.seq)

    @acked(RESIDENT)
    async def on_typing(sid: str, data: dict) -> dict:
        conn = current(sid)
        if conn is None or conn.chat_id is None:
            return error(NOTICE_NOT_ACCEPTED, "accept the notice first")
        active = data.get("active")
        if not isinstance(active, bool):
            return error(INVALID, "active must be true or false")
        if not hub.typing_rate.allow(conn.chat_id):
            return ok()  # a typing flood is dropped quietly: it is only a hint to the consultant
        staff_id = await hub.assignee(conn.chat_id)
        if staff_id is not None:
            await hub.broadcast.to_consultant(staff_id, "typing", {"chat_id": conn.chat_id, "active": active})
        return ok()

    @acked(RESIDENT)
    async def on_end(sid: str, data: dict) -> dict:
        conn = current(sid)
        if conn is None or conn.chat_id is None:
            return error(NOTICE_NOT_ACCEPTED, "there is no chat to end")
        chat_id = conn.chat_id
        staff_id = await hub.assignee(chat_id)
        before = await hub.chats.get(chat_id)
        chat, message = await hub.chats.end_by_resident(chat_id)
        if message is None:
            return ok()
        log.info("chat.ended_by_resident chat_id=%s", chat_id)
        await hub.publish(ChatClosed(chat, message, staff_id, RESIDENT_LEFT))
        if before.status == "queued":
            hub.queue_changed()
        elif hub.routing is not None:
            hub.routing.poke()  # a seat is free again
        return ok()

    async def on_unknown(event: str, sid: str, *args: Any) -> dict:
        return error(INVALID, "unknown event")

    sio.on("connect", connect, namespace=RESIDENT)
    sio.on("disconnect", disconnect, namespace=RESIDENT)
    for handler in (on_accept_notice, on_decline_notice, on_send, on_typing, on_end):
        sio.on(handler.__name__.removeprefix("on_"), handler, namespace=RESIDENT)
    sio.on("*", on_unknown, namespace=RESIDENT)


async def _logged(coro: Any, what: str) -> None:
    try:
        await coro
    except Exception:
        log.exception(what)
