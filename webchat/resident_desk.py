"""`/resident` events of the resident's side of the desk (docs/PROTOCOL.md): offline_message, transcript, rate."""

from __future__ import annotations

import base64
import logging

import socketio

from .broadcast import OfflineMessageLeft
from .hub import RESIDENT, Hub, acked, error, ok
from .protocol import INVALID, NOTICE_NOT_ACCEPTED, RATE_LIMITED

log = logging.getLogger("cim.webchat")


def register(sio: socketio.AsyncServer, hub: Hub) -> None:
    """Attach the offline message, transcript and rating handlers to `sio` (after webchat.resident)."""

    def within_limits(sid: str, address: str) -> bool:
        """The resident's message limits (per socket and per address) count these requests too."""
        return hub.limits.socket_rate.allow(sid) and hub.limits.address_rate.allow(address)

    @acked(RESIDENT)
    async def on_offline_message(sid: str, data: dict) -> dict:
        conn = hub.residents.get(sid)
        if conn is None:
            return error(INVALID, "not connected")
        if hub.is_open() and await hub.consultants_available():
            return error(INVALID, "the chat is open and a consultant is available: start a chat instead")
        if conn.chat_id is not None and (await hub.chats.get(conn.chat_id)).status != "closed":
            return error(INVALID, "a chat is open on this connection")
        limits = hub.limits
        if not (limits.open_socket_rate.allow(sid) and limits.open_address_rate.allow(conn.address)):
            log.warning("resident.refused reason=too_many_offline_messages")
            return error(RATE_LIMITED, "too many messages; wait a while before leaving another")
        reference = await hub.store.resident_desk.leave_message(data.get("notice_id"), conn.lang, data.get("name"),
                                                       data.get("contact"), data.get("text"))
        log.info("offline_message.stored lang=%s", conn.lang)

        async def announce() -> None:
            await hub.publish(OfflineMessageLeft(await hub.store.resident_desk.waiting_count()))

        hub.spawn(announce())
        return ok(reference=reference)

    @acked(RESIDENT)
    async def on_transcript(sid: str, data: dict) -> dict:
        conn = hub.residents.get(sid)
        if conn is None:
            return error(INVALID, "not connected")
        if not within_limits(sid, conn.address):  # a PDF costs the server: a script may not ask for it in a loop
            return error(RATE_LIMITED, "too many requests; wait a moment")
        if "token" in data:  # the last chat's copy, from a later connection of the same browser session
            chat_id = await hub.store.resident_desk.chat_for_copy(data.get("token"))
        elif conn.chat_id is None:
            return error(NOTICE_NOT_ACCEPTED, "there is no chat on this connection")
        else:
            chat_id = conn.chat_id
            if (await hub.chats.get(chat_id)).status != "closed":
                return error(INVALID, "the copy is available once the chat has ended")
        fmt = data.get("format", "text")
        if fmt == "text":
            return ok(text=await hub.store.resident_desk.transcript_text(chat_id))
        if fmt == "pdf":
            pdf = await hub.store.resident_desk.transcript_pdf(chat_id)
            return ok(pdf=base64.b64encode(pdf).decode("ascii"))
        return error(INVALID, "format is 'text' or 'pdf'")

    @acked(RESIDENT)
    async def on_rate(sid: str, data: dict) -> dict:
        conn = hub.residents.get(sid)
        if conn is None or conn.chat_id is None:
            return error(NOTICE_NOT_ACCEPTED, "there is no chat to rate")
        if not within_limits(sid, conn.address):
            return error(RATE_LIMITED, "too many requests; wait a moment")
        await hub.store.resident_desk.rate(conn.chat_id, data.get("rating"), data.get("comment"))
        log.info("chat.rated")
        return ok()

    for handler in (on_offline_message, on_transcript, on_rate):
        sio.on(handler.__name__.removeprefix("on_"), handler, namespace=RESIDENT)
