"""`/resident` events of the resident's side of the desk (docs/PROTOCOL.md): offline_message, transcript, rate."""

from __future__ import annotations

import base64
import logging

import socketio

from store.chats import Chat, is_id

from .broadcast import OfflineMessageLeft
from .hub import RESIDENT, Hub, acked, error, ok
from .protocol import CHAT_OPEN, CONSULTANT_AVAILABLE, INVALID, NOT_ENDED, NOTICE_NOT_ACCEPTED, RATE_LIMITED

log = logging.getLogger("cim.webchat")


class ResidentDeskEvents:
    """`offline_message`, `transcript` and `rate` on /resident (mixed into webchat.resident.ResidentNamespace)."""

    hub: Hub
    sio: socketio.AsyncServer

    def within_limits(self, sid: str, address: str) -> bool:
        """The resident's message limits (per socket and per address) count these requests too."""
        return self.hub.limits.socket_rate.allow(sid) and self.hub.limits.address_rate.allow(address)

    @acked(RESIDENT)
    async def on_offline_message(self, sid: str, data: dict) -> dict:
        conn = self.hub.residents.get(sid)
        if conn is None:
            return error(INVALID, "not connected")
        topic_id = data.get("topic_id")
        if topic_id is not None and not is_id(topic_id):
            return error(INVALID, "topic_id must be a topic number")
        chat = None if conn.chat_id is None else await self.hub.chats.get(conn.chat_id)
        if self.hub.is_open() and await self.someone_could_answer(chat, topic_id):
            return error(
                INVALID, "the chat is open and a consultant is available: start a chat instead", CONSULTANT_AVAILABLE
            )
        if chat is not None and chat.status != "closed":
            return error(INVALID, "a chat is open on this connection", CHAT_OPEN)
        limits = self.hub.limits
        if not (limits.open_socket_rate.allow(sid) and limits.open_address_rate.allow(conn.address)):
            log.warning("resident.refused reason=too_many_offline_messages")
            return error(RATE_LIMITED, "too many messages; wait a while before leaving another")
        reference = await self.hub.store.resident_desk.leave_message(
            data.get("notice_id"), conn.lang, data.get("name"), data.get("contact"), data.get("text")
        )
        log.info("offline_message.stored lang=%s", conn.lang)

        async def announce() -> None:
            await self.hub.publish(OfflineMessageLeft(await self.hub.store.resident_desk.waiting_count()))

        self.hub.spawn(announce())
        return ok(reference=reference)

    async def someone_could_answer(self, chat: Chat | None, topic_id: int | None) -> bool:
        """Whether a consultant free now could answer the resident instead of the offline form: on the topic of the
        connection's last chat, or else the topic the resident picked (`topic_id`). Never after the last chat
        closed by the queue's time limit: the server itself found nobody free for it and offered the form."""
        if chat is not None and chat.status == "closed" and await self.hub.chats.timed_out_in_queue(chat.id):
            return False
        if chat is not None and chat.topic_id is not None:
            topic_id = chat.topic_id
        return await self.hub.consultants_available(topic_id, fresh=True)

    @acked(RESIDENT)
    async def on_transcript(self, sid: str, data: dict) -> dict:
        conn = self.hub.residents.get(sid)
        if conn is None:
            return error(INVALID, "not connected")
        if not self.within_limits(sid, conn.address):  # a PDF costs the server: a script may not ask for it in a loop
            return error(RATE_LIMITED, "too many requests; wait a moment")
        if "token" in data:  # the last chat's copy, from a later connection of the same browser session
            chat_id = await self.hub.store.resident_desk.chat_for_copy(data.get("token"))
        elif conn.chat_id is None:
            return error(NOTICE_NOT_ACCEPTED, "there is no chat on this connection")
        else:
            chat_id = conn.chat_id
            if (await self.hub.chats.get(chat_id)).status != "closed":
                return error(INVALID, "the copy is available once the chat has ended", NOT_ENDED)
        fmt = data.get("format", "text")
        if fmt == "text":
            desk = self.hub.store.resident_desk
            return ok(text=await desk.transcript_text(chat_id), reference=await desk.receipt_reference(chat_id))
        if fmt == "pdf":
            pdf = await self.hub.store.resident_desk.transcript_pdf(chat_id)
            return ok(pdf=base64.b64encode(pdf).decode("ascii"))
        return error(INVALID, "format is 'text' or 'pdf'")

    @acked(RESIDENT)
    async def on_rate(self, sid: str, data: dict) -> dict:
        conn = self.hub.residents.get(sid)
        if conn is None or conn.chat_id is None:
            return error(NOTICE_NOT_ACCEPTED, "there is no chat to rate")
        if not self.within_limits(sid, conn.address):
            return error(RATE_LIMITED, "too many requests; wait a moment")
        await self.hub.store.resident_desk.rate(conn.chat_id, data.get("rating"), data.get("comment"))
        log.info("chat.rated")
        return ok()
