"""Who hears what after a change: chat operations publish domain events after their commit, and this one
listener maps each to the rooms of /resident and /staff (docs/PROTOCOL.md "The broadcaster").

The namespaces validate, call the store and ack; they never emit a chat's consequences themselves.
Rooms: `chat:<id>` (the resident's sockets, /resident), `consultant:<id>` (a consultant's sockets),
`staff` (every /staff socket), `watch:<id>` (supervisors watching a chat, webchat/supervision.py).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from store.chats import Chat, ChatMessage

from . import protocol
from .protocol import (
    ABANDONED,
    CLOSED_BY_CONSULTANT,
    DECLINED,
    RESIDENT_LEFT,
    TAKEN_OVER,
    TRANSFERRED,
    active_state,
    assigned_payload,
    closed_state,
    line_payload,
    queued_state,
    released_payload,
)

if TYPE_CHECKING:
    from .hub import Hub

log = logging.getLogger("cim.webchat")

RESIDENT = "/resident"
STAFF = "/staff"
ALL_STAFF = "staff"
#: Position updates sent to waiting residents between two yields to the event loop (an emit never yields).
POSITION_BATCH = 32
#: Residents' position updates go out at most this often (seconds): a burst of queue changes (a long queue,
#: the head leaving again and again) becomes one update per resident, never more than this late.
POSITION_COALESCE_SECONDS = 0.5


def chat_room(chat_id: int) -> str:
    return f"chat:{chat_id}"


def consultant_room(staff_id: int) -> str:
    return f"consultant:{staff_id}"


def watch_room(chat_id: int) -> str:
    """The supervisors watching a chat (webchat/supervision.py)."""
    return f"watch:{chat_id}"


# ---------------------------------------------------------------------- the events


@dataclass(frozen=True)
class MessageStored:
    """A line was stored (a resident's or consultant's message, a desk's system line)."""

    chat_id: int
    message: ChatMessage
    skip_sid: str | None = None  # the sender: its ack carries the line


@dataclass(frozen=True)
class ChatQueued:
    """A resident opened a chat: its first lines, and the queue grew."""

    chat: Chat
    messages: tuple[ChatMessage, ...]


@dataclass(frozen=True)
class ChatAccepted:
    """A queued chat is a consultant's now: accepted from the queue, or given by the desk (`auto`)."""

    chat: Chat
    message: ChatMessage
    staff_id: int
    skip_sid: str | None = None  # the accepting socket: its ack carries the history
    auto: bool = False
    topic: dict[str, Any] | None = None
    lines: list[dict[str, Any]] | None = None  # the history, when the handler read it already (for its ack)


@dataclass(frozen=True)
class ChatTransferred:
    chat: Chat
    message: ChatMessage
    from_staff_id: int
    to_staff_id: int


@dataclass(frozen=True)
class ChatTakenOver:
    """A supervisor took an active chat over (§3): the consultant who had it is told by whom."""

    chat: Chat
    message: ChatMessage
    from_staff_id: int
    by: dict[str, Any]  # {"staff_id", "name"}
    lines: list[dict[str, Any]] | None = None


@dataclass(frozen=True)
class ChatRequeued:
    """An active chat went back to the front of the queue: its consultant's session ended, their connection
    was lost for longer than the grace period, or they declined it (`reason` is `released.reason`)."""

    chat: Chat
    message: ChatMessage
    staff_id: int
    reason: str


@dataclass(frozen=True)
class ChatClosed:
    """A chat ended: closed by its consultant, left by the resident, or closed by the desk (abandoned)."""

    chat: Chat
    message: ChatMessage | None  # None: it had ended already (nothing new to tell the resident)
    staff_id: int | None  # the consultant who had it
    reason: str  # `released.reason`: closed / resident_left / abandoned


@dataclass(frozen=True)
class NoteStored:
    """A supervisor's whisper (§3) was stored: for the chat's consultant and the chat's other watchers."""

    note: Any  # store.supervision.StaffNote
    skip_sid: str | None = None  # the supervisor who wrote it: its ack carries the note


@dataclass(frozen=True)
class OfflineMessageLeft:
    waiting: int


Event = (
    MessageStored
    | ChatQueued
    | ChatAccepted
    | ChatTransferred
    | ChatTakenOver
    | ChatRequeued
    | ChatClosed
    | NoteStored
    | OfflineMessageLeft
)


# ---------------------------------------------------------------------- the listener


class Broadcaster:
    """Maps each published event to the emits it causes (one place decides who hears what)."""

    def __init__(self, hub: "Hub") -> None:
        self.hub = hub
        self.sio = hub.sio
        self._routes: dict[type, Callable[[Any], Awaitable[None]]] = {
            MessageStored: self._message_stored,
            ChatQueued: self._chat_queued,
            ChatAccepted: self._chat_accepted,
            ChatTransferred: self._chat_transferred,
            ChatTakenOver: self._chat_taken_over,
            ChatRequeued: self._chat_requeued,
            ChatClosed: self._chat_closed,
            NoteStored: self._note_stored,
            OfflineMessageLeft: self._offline_message_left,
        }
        self._positions: dict[int, int] = {}  # queued chat → the position its resident was last told
        self._estimates: dict[int, int | None] = {}  # queued chat → the estimated wait its resident was last told
        self._wanted: tuple[dict[int, int], int | None] | None = None  # positions not yet told, and the estimate
        self._last_told = 0.0  # loop time of the last position round
        self._flush: asyncio.Task[None] | None = None
        self._stopped = False  # the server is stopping: no new round is scheduled

    async def publish(self, event: Event) -> None:
        """Tell everyone concerned (call after the store committed the change)."""
        await self._routes[type(event)](event)

    # -- the small vocabulary every mapping uses -------------------------------------------------------

    async def to_resident(self, chat_id: int, event: str, payload: Any, skip_sid: str | None = None) -> None:
        await self.sio.emit(event, payload, room=chat_room(chat_id), namespace=RESIDENT, skip_sid=skip_sid)

    async def to_consultant(self, staff_id: int, event: str, payload: Any, skip_sid: str | None = None) -> None:
        await self.sio.emit(event, payload, room=consultant_room(staff_id), namespace=STAFF, skip_sid=skip_sid)

    async def to_all_staff(self, event: str, payload: Any) -> None:
        await self.sio.emit(event, payload, room=ALL_STAFF, namespace=STAFF)

    async def release(self, staff_id: int, chat_id: int, reason: str, by: dict[str, Any] | None = None) -> None:
        """The chat is no longer this consultant's: `released` (the only place it is sent)."""
        await self.to_consultant(staff_id, "released", released_payload(chat_id, reason, by))

    async def assigned(
        self,
        chat: Chat,
        staff_id: int,
        *,
        skip_sid: str | None = None,
        lines: list[dict[str, Any]] | None = None,
        **how: Any,
    ) -> None:
        """The chat is this consultant's now: `assigned` with the history and the whispers."""
        await self.to_consultant(staff_id, "assigned", await self.assigned_payload(chat, lines, **how), skip_sid)

    async def assigned_payload(
        self, chat: Chat, lines: list[dict[str, Any]] | None = None, **how: Any
    ) -> dict[str, Any]:
        hub = self.hub
        if lines is None:
            lines = await hub.history_payload(chat.id)
        notes = [n.as_payload() for n in await hub.store.supervision.notes(chat.id)]
        return assigned_payload(chat.id, chat.lang, lines, notes, **how)

    async def resident_line(self, chat: Chat, message: ChatMessage) -> None:
        """A system line to the resident's sockets, in the chat's language."""
        await self.to_resident(chat.id, "message", line_payload(message, chat.lang))

    async def relay(self, chat_id: int, message: ChatMessage, *, skip_sid: str | None = None) -> None:
        """A stored line to the resident's sockets and the assigned consultant's."""
        hub = self.hub
        # the sender already has it (its ack): encode the packet only if another of its tabs is listening
        # (on several nodes the resident's sockets may be on another one: the room knows, this process not)
        if hub.several_nodes or hub.resident_sids(chat_id) - {skip_sid}:
            if message.event is not None:  # a system line: in the resident's language
                resident = line_payload(message, (await hub.chats.get(chat_id)).lang)
            else:
                resident = line_payload(message)
            await self.to_resident(chat_id, "message", resident, skip_sid)
        staff_id = await hub.assignee(chat_id)
        if staff_id is not None:
            await self.to_consultant(staff_id, "message", await hub.staff_line(chat_id, message), skip_sid)
        if hub.supervision is not None:  # watchers of this chat get the line, the view its time
            hub.supervision.poke()

    async def announce_closed(self, chat_id: int) -> None:
        """`state` closed to the resident's sockets, with the chat's receipt the first (and only) time."""
        try:
            receipt = await self.hub.store.resident_desk.issue_receipt(chat_id)
        except Exception:
            log.exception("chat.receipt_failed chat_id=%s", chat_id)
            receipt = None
        await self.to_resident(chat_id, "state", closed_state(receipt))

    # -- the mappings ------------------------------------------------------------------------------

    async def _message_stored(self, event: MessageStored) -> None:
        await self.relay(event.chat_id, event.message, skip_sid=event.skip_sid)

    async def _chat_queued(self, event: ChatQueued) -> None:
        for message in event.messages:
            await self.relay(event.chat.id, message)
        self.hub.queue_changed()

    async def _chat_accepted(self, event: ChatAccepted) -> None:
        chat = event.chat
        self.hub.remember(chat)
        await self.resident_line(chat, event.message)
        await self.to_resident(chat.id, "state", active_state())
        if event.auto:
            await self.assigned(chat, event.staff_id, lines=event.lines, auto=True, topic=event.topic)
            return  # the assignment pass announces the queue once for all it gave
        await self.assigned(chat, event.staff_id, skip_sid=event.skip_sid, lines=event.lines)
        self.hub.queue_changed()

    async def _chat_transferred(self, event: ChatTransferred) -> None:
        chat = event.chat
        # the old consultant sees the transfer line, then loses the chat; the new one gets it whole
        await self.to_consultant(event.from_staff_id, "message", await self.hub.staff_line(chat.id, event.message))
        await self.release(event.from_staff_id, chat.id, TRANSFERRED)
        self.hub.remember(chat)
        await self.resident_line(chat, event.message)
        await self.assigned(chat, event.to_staff_id, by=event.from_staff_id)

    async def _chat_taken_over(self, event: ChatTakenOver) -> None:
        chat = event.chat
        self.hub.remember(chat)
        # the consultant who had it sees the line, then loses the chat, and is told by whom
        await self.to_consultant(event.from_staff_id, "message", await self.hub.staff_line(chat.id, event.message))
        await self.release(event.from_staff_id, chat.id, TAKEN_OVER, by=event.by)
        await self.resident_line(chat, event.message)
        await self.assigned(chat, event.by["staff_id"], lines=event.lines, taken_over=True)

    async def _chat_requeued(self, event: ChatRequeued) -> None:
        chat = event.chat
        self.hub.remember(chat)  # first: the line goes to the resident only
        await self.relay(chat.id, event.message)
        if event.reason == DECLINED:  # told at once; the position follows with the queue
            await self.to_resident(chat.id, "state", queued_state(with_position=False))
        await self.release(event.staff_id, chat.id, event.reason)

    async def _chat_closed(self, event: ChatClosed) -> None:
        chat = event.chat
        if event.message is not None:
            await self.relay(chat.id, event.message)  # before forgetting the chat: its consultant reads the line
            self.hub.remember(chat)
            await self.announce_closed(chat.id)  # with the receipt (webchat/resident_desk.py)
        else:
            self.hub.remember(chat)
        if event.staff_id is None:
            return
        if event.reason in (RESIDENT_LEFT, ABANDONED):  # the consultant did not close it: told it closed
            await self.to_consultant(event.staff_id, "chat_state", protocol.chat_state(chat.id, "closed"))
        assert event.reason in (CLOSED_BY_CONSULTANT, RESIDENT_LEFT, ABANDONED), event.reason
        await self.release(event.staff_id, chat.id, event.reason)

    async def _note_stored(self, event: NoteStored) -> None:
        note = event.note
        if note.to_staff_id is None:
            return
        payload = note.as_payload()
        await self.to_consultant(note.to_staff_id, "whisper", payload)
        await self.sio.emit("whisper", payload, room=watch_room(note.chat_id), namespace=STAFF, skip_sid=event.skip_sid)

    async def _offline_message_left(self, event: OfflineMessageLeft) -> None:
        await self.to_all_staff("offline_messages", {"waiting": event.waiting})

    # -- the queue and presence, to everyone ---------------------------------------------------------

    async def queue(self) -> None:
        """The queue to every consultant, and to each waiting resident whose position changed."""
        hub = self.hub
        queue = await hub.chats.queue()
        await self.to_all_staff("queue", await hub.queue_payload_of(queue))
        positions = {q.chat_id: q.position for q in queue}
        estimate = await hub.estimated_wait() if queue else None
        self._wanted = (positions, estimate)
        if self._stopped or (self._flush is not None and not self._flush.done()):
            return  # a round is already due: it will tell the newest positions (or the server is stopping)
        delay = self._last_told + POSITION_COALESCE_SECONDS - asyncio.get_running_loop().time()
        if delay <= 0:
            await self._tell_positions()
        else:
            self._flush = asyncio.create_task(self._tell_positions_after(delay))

    async def _tell_positions_after(self, delay: float) -> None:
        await asyncio.sleep(delay)
        try:
            await self._tell_positions()
        except Exception:  # pragma: no cover - a failed round is retried by the next queue change
            log.exception("telling queue positions failed")

    async def _tell_positions(self) -> None:
        """Each waiting resident whose position or estimate changed since they were last told."""
        if self._wanted is None:
            return
        positions, estimate = self._wanted
        self._wanted = None
        self._last_told = asyncio.get_running_loop().time()
        sent = 0
        for chat_id, position in positions.items():
            if self._positions.get(chat_id) != position or self._estimates.get(chat_id, -1) != estimate:
                await self.to_resident(chat_id, "state", queued_state(position, estimate))
                sent += 1
                if sent % POSITION_BATCH == 0:  # a long queue: let relayed messages through in between
                    await asyncio.sleep(0)
        self._positions = positions
        self._estimates = {chat_id: estimate for chat_id in positions}
        if self._wanted is not None and not self._stopped:  # the queue changed meanwhile: one more, after the pause
            self._flush = asyncio.create_task(self._tell_positions_after(POSITION_COALESCE_SECONDS))

    async def stop(self) -> None:
        """At shutdown (after the sockets were closed): a position round still waiting is cancelled and
        awaited, so no task outlives the server."""
        self._stopped = True
        while self._flush is not None and not self._flush.done():
            flush = self._flush
            flush.cancel()
            await asyncio.gather(flush, return_exceptions=True)
        self._flush = None
        self._wanted = None

    async def presence(self) -> None:
        await self.to_all_staff("presence", self.hub.presence_payload())
