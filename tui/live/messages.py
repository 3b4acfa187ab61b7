"""The Textual messages the live client posts after it changed the desk (handled with `@on(Live.X)`).

They do not bubble: the app receives each one (its notices: a new chat, a transfer, a take-over, ...) and
relays a copy to the screens that follow the desk (`CimApp.live_signal`, tui/screens/chats.py).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, TypeVar

from textual.message import Message

from tui.live.state import ConnectionState
from tui.live.payloads import ChatLine


class LiveMessage(Message, bubble=False):
    """A change of the live desk."""


M = TypeVar("M", bound=LiveMessage)


def copy_message(message: M) -> M:
    """The same message as a new instance (a Textual message is posted to one receiver)."""
    return dataclasses.replace(message)  # type: ignore[type-var]


class Live:
    """The messages, by what happened."""

    @dataclass
    class ConnectionChanged(LiveMessage):
        state: ConnectionState

    @dataclass
    class SessionEnded(LiveMessage):
        """The server ended this person's session and said why (its Polish and English sentences)."""

        code: str
        message: str
        message_en: str

    @dataclass
    class Resynced(LiveMessage):
        """Connected (again): the desk holds the server's list of our open chats."""

    @dataclass
    class QueueChanged(LiveMessage):
        #: The chats that joined the queue since the last `queue` event.
        new: list[int]

    @dataclass
    class PresenceChanged(LiveMessage):
        pass

    @dataclass
    class ChatAssigned(LiveMessage):
        chat_id: int
        #: Who transferred it to us (staff id), or None (accepted here, or given by the server).
        by: Any = None
        taken_over: bool = False
        auto: bool = False

    @dataclass
    class LineReceived(LiveMessage):
        chat_id: int
        line: ChatLine

    @dataclass
    class NoteReceived(LiveMessage):
        """A supervisor's whisper (§3), for this consultant only."""

        chat_id: int
        line: ChatLine

    @dataclass
    class TypingChanged(LiveMessage):
        chat_id: int

    @dataclass
    class Released(LiveMessage):
        chat_id: int
        reason: str
        #: A take-over's supervisor by name (§3).
        by_name: str | None = None

    @dataclass
    class Supervised(LiveMessage):
        """Who watches one of our chats now (§3: no silent monitoring); empty: nobody."""

        chat_id: int
        names: list[str]

    @dataclass
    class ChatStateChanged(LiveMessage):
        chat_id: int
        status: str

    @dataclass
    class AvailabilityChanged(LiveMessage):
        status: str

    @dataclass
    class Sent(LiveMessage):
        """A reply of the outbox was acknowledged after a reconnect."""

        chat_id: int
        text: str

    @dataclass
    class SendFailed(LiveMessage):
        """A reply of the outbox was refused after a reconnect (it is not stored)."""

        chat_id: int
        text: str
        message: str
