"""The live chats of the staff TUI over /staff (docs/PROTOCOL.md), in layers:

- `payloads`: the server's events read into typed, frozen payloads (`parse(event, data)`);
- `desk`: the consultant's desk and its reducer (`reduce(desk, payload)`, one function an event);
- `messages`: the Textual messages (`Live.ChatAssigned`, `Live.LineReceived`, ...) the client posts;
- `client`: the connection (`StaffConnection`) and the consultant's `LiveClient` with its outboxes;
- `supervision`: the supervisors' board and client (§3);
- `state`, `errors`: the connection states and the protocol's error codes in words.
"""

from tui.live.client import (
    ACK_TIMEOUT,
    DISCONNECT_TIMEOUT,
    NAMESPACE,
    STOP_TIMEOUT,
    LiveClient,
    StaffConnection,
    refusal_code,
)
from tui.live.desk import REDUCERS, Desk, LiveChat, Outgoing, reduce
from tui.live.errors import ERROR_MESSAGES, RELEASE_REASONS, RETRYABLE, LiveError, release_reason
from tui.live.messages import Live, LiveMessage, copy_message
from tui.live.payloads import ChatLine, QueuedChat, note_line, parse, parse_time
from tui.live.state import STATE_LABELS, ConnectionState
from tui.live.supervision import SupervisedChat, SupervisionBoard, SupervisionClient

__all__ = [
    "ACK_TIMEOUT",
    "NAMESPACE",
    "STOP_TIMEOUT",
    "DISCONNECT_TIMEOUT",
    "LiveClient",
    "StaffConnection",
    "refusal_code",
    "REDUCERS",
    "Desk",
    "LiveChat",
    "Outgoing",
    "reduce",
    "ERROR_MESSAGES",
    "RELEASE_REASONS",
    "RETRYABLE",
    "LiveError",
    "release_reason",
    "Live",
    "LiveMessage",
    "copy_message",
    "ChatLine",
    "QueuedChat",
    "note_line",
    "parse",
    "parse_time",
    "STATE_LABELS",
    "ConnectionState",
    "SupervisedChat",
    "SupervisionBoard",
    "SupervisionClient",
]
