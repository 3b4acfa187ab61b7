"""The `/resident` namespace (DESIGN.md §5.2, docs/PROTOCOL.md): notice, chat, resume, typing, end."""

from __future__ import annotations

import logging
from typing import Any

import socketio

from store.chats import LANGS
from store.errors import ResumeInvalid

from .broadcast import ChatClosed, ChatQueued, MessageStored
from .hub import RESIDENT, CimNamespace, Hub, ResidentConn, acked, chat_room, error, ok, refuse
from .resident_desk import ResidentDeskEvents
from .routing import TopicEvents
from .protocol import (
    CHAT_OPEN,
    INVALID,
    NOTICE_NOT_ACCEPTED,
    OFFLINE,
    RATE_LIMITED,
    RESIDENT_LEFT,
    RESUME_INVALID,
    SERVER_ERROR,
    TOO_MANY_CONNECTIONS,
    notice_payload,
    refusal,
)

log = logging.getLogger("cim.webchat")
#: Addresses remembered with the chats they opened before the memory is pruned against the queue.
OPENED_BY_PRUNE_AT = 10_000


class ResidentNamespace(ResidentDeskEvents, TopicEvents, CimNamespace):
    """`/resident`: each event validated, the store called, the ack returned; what others hear is published
    to the broadcaster (webchat/broadcast.py)."""

    def __init__(self, hub: Hub) -> None:
        super().__init__(RESIDENT, hub)
        hub.offline_payload = self.offline_payload  # the queue time limit offers the offline form (routing)
        hub.offline_form = self.offline_form  # with the notice the offline message form is shown after

    async def on_connect(self, sid: str, environ: dict, auth: Any = None) -> None:
        request = environ["aiohttp.request"]
        address = self.hub.address.of(request)
        if not isinstance(auth, dict):
            auth = {}
        lang = auth.get("lang") if auth.get("lang") in LANGS else "pl"
        if not self.hub.connections.acquire(address):  # first: the cheapest refusal, before any database work
            log.warning("resident.refused reason=too_many_connections")
            raise refuse(refusal(TOO_MANY_CONNECTIONS, "too many connections from your address"))
        chat = None
        resume = auth.get("resume")
        if resume is not None:
            try:
                chat = await self.hub.chats.resume(resume)
            except ResumeInvalid as exc:
                self.hub.connections.release(address)
                log.info("resident.resume_refused")
                raise refuse(refusal(RESUME_INVALID, exc.message)) from None
            except Exception:
                self.hub.connections.release(address)
                log.exception("resident.resume_failed")
                raise refuse(refusal(SERVER_ERROR, "the server could not resume the chat")) from None
        self.hub.residents[sid] = conn = ResidentConn(address, chat.lang if chat else lang)
        if chat is not None:
            conn.chat_id = chat.id
            self.hub.remember(chat)
            await self.hub.join_chat(sid, chat.id)
        # The CONNECT packet is sent when this handler returns; greet the resident right after it.
        self.hub.spawn(self.greet(sid, chat))

    async def greet(self, sid: str, chat: Any) -> None:
        hub = self.hub
        try:
            conn = hub.residents.get(sid)
            if conn is None:
                return
            # the widget's counter and check follow the limit the store enforces (docs/PROTOCOL.md)
            limits = {"max_message_length": hub.store.settings.max_message_length}
            if chat is not None:
                state = await self.state_of(chat.id)
                await self.emit(
                    "history",
                    {"messages": await hub.history_payload(chat.id, chat.lang), "state": state, **limits},
                    to=sid,
                )
                log.info("resident.resumed chat_id=%s", chat.id)
            elif not hub.is_open():
                await self.emit(
                    "offline",
                    {**self.offline_payload(conn.lang), **await self.offline_form(conn.lang), **limits},
                    to=sid,
                )
            else:
                notice = await hub.store.notices.current("chat", conn.lang)
                await self.emit(
                    "notice",
                    {**notice_payload(notice), "consultants_available": await hub.consultants_available(), **limits},
                    to=sid,
                )
        except Exception:
            log.exception("resident.greet_failed")

    async def offline_form(self, lang: str) -> dict[str, Any]:
        """The notice an offline message is left after (§1.5), sent with `offline` (webchat/resident_desk.py)."""
        notice = await self.hub.store.notices.current("chat", lang)
        return {"notice": notice_payload(notice)}

    def offline_payload(self, lang: str) -> dict[str, str]:
        """The closed chat's message (which names the hours), the hours on their own, and where else to turn:
        the office's address and phone (settings office_address, office_phone; empty ones left out)."""
        hours = self.hub.hours.describe(lang)
        if lang == "en":
            message = f"The chat is closed now. Consultants answer {hours}."
        else:
            message = f"Czat jest teraz nieczynny. Konsultanci odpowiadają: {hours}."
        payload = {"message": message, "hours": hours}
        settings = self.hub.settings
        if settings.office_phone.strip():
            payload["phone"] = settings.office_phone.strip()
        if settings.office_address.strip():
            payload["address"] = settings.office_address.strip()
        return payload

    async def state_of(self, chat_id: int) -> dict[str, Any]:
        chat = await self.hub.chats.get(chat_id)
        state: dict[str, Any] = {"status": chat.status}
        if chat.status == "queued":
            position = await self.hub.chats.queue_position(chat_id)
            if position is not None:
                state["position"] = position
            state["estimated_wait_s"] = await self.hub.estimated_wait()
        return state

    async def on_disconnect(self, sid: str, reason: Any = None) -> None:
        conn = self.hub.residents.pop(sid, None)
        self.hub.limits.socket_rate.forget(sid)
        self.hub.limits.open_socket_rate.forget(sid)
        if conn is not None:
            self.hub.connections.release(conn.address)
            if conn.chat_id is not None:
                self.hub.leave_chat(sid, conn.chat_id)

    def current(self, sid: str) -> Any:
        return self.hub.residents.get(sid)

    @acked(RESIDENT)
    async def on_accept_notice(self, sid: str, data: dict) -> dict:
        conn = self.current(sid)
        if conn is None:
            return error(INVALID, "not connected")
        if conn.chat_id is not None:
            if (await self.hub.chats.get(conn.chat_id)).status != "closed":
                return error(INVALID, "a chat is already open on this connection", CHAT_OPEN)
            self.hub.leave_chat(sid, conn.chat_id)  # the last chat ended: a new one may start
            await self.sio.leave_room(sid, chat_room(conn.chat_id), namespace=RESIDENT)
            conn.chat_id = None
        if not self.hub.is_open():
            return error(OFFLINE, self.offline_payload(conn.lang)["message"])
        refused = await self.opening_refused(sid, conn)
        if refused is not None:
            return refused
        opened = await self.hub.chats.open(data.get("notice_id"), conn.lang, data.get("topic_id"))
        chat_id = opened.chat.id
        self.hub.opened_by.setdefault(conn.address, set()).add(chat_id)
        conn.chat_id = chat_id
        self.hub.remember(opened.chat)
        await self.hub.join_chat(sid, chat_id)
        log.info("chat.opened chat_id=%s lang=%s", chat_id, conn.lang)
        position = await self.hub.chats.queue_position(chat_id)  # counted by SQLite: the queue may be long
        self.hub.spawn(
            _logged(self.hub.publish(ChatQueued(opened.chat, tuple(opened.messages))), "chat.announce_failed")
        )
        return ok(
            chat_id=chat_id,
            resume_token=opened.resume_token,
            position=position,
            estimated_wait_s=await self.hub.estimated_wait(),
        )

    async def opening_refused(self, sid: str, conn: ResidentConn) -> dict | None:
        """A new chat from this socket or address beyond the limits (a flood must not fill the queue)."""
        limits = self.hub.limits
        if limits.max_queued_per_address is not None and conn.address in self.hub.opened_by:
            waiting = {q.chat_id for q in await self.hub.chats.queue()}
            if len(self.hub.opened_by) > OPENED_BY_PRUNE_AT:  # addresses that never came back: forget their chats
                self.hub.opened_by = {a: ids & waiting for a, ids in self.hub.opened_by.items() if ids & waiting}
                self.hub.opened_by.setdefault(conn.address, set())
            mine = self.hub.opened_by[conn.address] & waiting
            if mine:
                self.hub.opened_by[conn.address] = mine
            else:
                del self.hub.opened_by[conn.address]
            if len(mine) >= limits.max_queued_per_address:
                log.warning("resident.refused reason=too_many_waiting_chats")
                return error(RATE_LIMITED, "too many chats from your network are waiting; try again later")
        if not (limits.open_socket_rate.allow(sid) and limits.open_address_rate.allow(conn.address)):
            log.warning("resident.refused reason=too_many_chats_opened")
            return error(RATE_LIMITED, "too many new chats; wait a while before starting another")
        return None

    @acked(RESIDENT)
    async def on_decline_notice(self, sid: str, data: dict) -> dict:
        conn = self.current(sid)
        if conn is None:
            return error(INVALID, "not connected")
        if conn.chat_id is not None:
            return error(INVALID, "a chat is already open; use end to leave it", CHAT_OPEN)
        if not conn.declined:  # one count per connection, whatever a client repeats
            conn.declined = True
            await self.hub.chats.record_decline()
            log.info("notice.declined")
        return ok()

    @acked(RESIDENT)
    async def on_send(self, sid: str, data: dict) -> dict:
        conn = self.current(sid)
        if conn is None or conn.chat_id is None:
            return error(NOTICE_NOT_ACCEPTED, "accept the notice before writing")
        # per chat, per socket and per address: a new chat or a new socket starts no new allowance
        allowed = (
            self.hub.rate.allow(conn.chat_id),
            self.hub.limits.socket_rate.allow(sid),
            self.hub.limits.address_rate.allow(conn.address),
        )
        if not all(allowed):
            return error(RATE_LIMITED, "too many messages; wait a moment")
        posted = await self.hub.chats.post_resident(conn.chat_id, data.get("text"), data.get("client_msg_id"))
        if posted.new:
            await self.hub.publish(MessageStored(conn.chat_id, posted.message, skip_sid=sid))
        return ok(seq=posted.message.seq)

    @acked(RESIDENT)
    async def on_typing(self, sid: str, data: dict) -> dict:
        conn = self.current(sid)
        if conn is None or conn.chat_id is None:
            return error(NOTICE_NOT_ACCEPTED, "accept the notice first")
        active = data.get("active")
        if not isinstance(active, bool):
            return error(INVALID, "active must be true or false")
        if not self.hub.typing_rate.allow(conn.chat_id):
            return ok()  # a typing flood is dropped quietly: it is only a hint to the consultant
        staff_id = await self.hub.assignee(conn.chat_id)
        if staff_id is not None:
            await self.hub.broadcast.to_consultant(staff_id, "typing", {"chat_id": conn.chat_id, "active": active})
        return ok()

    @acked(RESIDENT)
    async def on_end(self, sid: str, data: dict) -> dict:
        conn = self.current(sid)
        if conn is None or conn.chat_id is None:
            return error(NOTICE_NOT_ACCEPTED, "there is no chat to end")
        chat_id = conn.chat_id
        staff_id = await self.hub.assignee(chat_id)
        before = await self.hub.chats.get(chat_id)
        chat, message = await self.hub.chats.end_by_resident(chat_id)
        if message is None:
            return ok()
        log.info("chat.ended_by_resident chat_id=%s", chat_id)
        await self.hub.publish(ChatClosed(chat, message, staff_id, RESIDENT_LEFT))
        if before.status == "queued":
            self.hub.queue_changed()
        elif self.hub.routing is not None:
            self.hub.routing.poke()  # a seat is free again
        return ok()


def register(sio: socketio.AsyncServer, hub: Hub) -> ResidentNamespace:
    """The /resident namespace on `sio`."""
    namespace = ResidentNamespace(hub)
    sio.register_namespace(namespace)
    return namespace


async def _logged(coro: Any, what: str) -> None:
    try:
        await coro
    except Exception:
        log.exception(what)
