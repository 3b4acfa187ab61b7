"""Who is connected, which open chat is whose, and who is available: the chat server's live directory.

`Presence` is the seam; `InProcessPresence` keeps it in this process's memory (one chat server, see
README "Scaling"), with each consultant's availability written through to the store
(store/desk.py `staff_availability`) so it survives a reconnect and a restart. A shared implementation
(Redis) would keep the same methods.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from store.chats import Chat
from store.desk import AVAILABLE
from store.models import Actor


@dataclass
class OnlineConsultant:
    actor: Actor
    sids: set[str] = field(default_factory=set)


class Presence(Protocol):
    """What the namespaces and the broadcaster ask about people and chats."""

    online: dict[int, OnlineConsultant]

    def join(self, sid: str, actor: Actor) -> bool:
        """A consultant's socket connected; True when it is their first (they came online)."""

    def leave(self, sid: str, staff_id: int) -> bool:
        """A consultant's socket went; True when it was their last (they went offline)."""

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
