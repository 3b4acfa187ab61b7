"""What the staff error codes of docs/PROTOCOL.md and a chat's release reasons say to a consultant."""

from __future__ import annotations

from store.i18n import N_, _
from webchat import protocol

#: The consultant-facing sentence for each staff error code of docs/PROTOCOL.md.
ERROR_MESSAGES = {
    protocol.UNAUTHORISED: N_("The chat server did not accept your session; sign in again."),
    "not_permitted": N_("You are not permitted to do that."),
    "already_taken": N_("Another consultant accepted this chat first."),
    "not_online": N_("That consultant is no longer online."),
    "not_found": N_("That chat no longer exists."),
    "closed": N_("That chat is already closed."),
    "empty": N_("The message is empty."),
    "too_long": N_("The message is too long."),
    "invalid": N_("The server did not understand the request."),
    protocol.SERVER_ERROR: N_("The chat server had an internal error; try again."),
    "timeout": N_("The chat server did not answer in time; try again."),
    "disconnected": N_("Not connected to the chat server; your text is kept until it reconnects."),
    "at_capacity": N_("You already handle as many chats as you may at once; close one first."),
}
#: Client-side failures: no server sends them.
CLIENT_CODES = frozenset({"timeout", "disconnected"})

#: Failures after which a reply may still have reached the server: it stays in the outbox.
RETRYABLE = frozenset({"timeout", "disconnected"})

#: Why a chat is no longer this consultant's (`released.reason`, docs/PROTOCOL.md), as words.
RELEASE_REASONS = {
    "session_ended": N_("your session ended"),
    "transferred": N_("transferred"),
    "closed": N_("closed"),
    "resident_left": N_("the resident left"),
    protocol.CONNECTION_LOST: N_("your connection was lost"),
    protocol.DECLINED: N_("you declined it"),
    protocol.ABANDONED: N_("the resident was silent too long"),
    protocol.TAKEN_OVER: N_("a supervisor took it over"),
}


def release_reason(code: str) -> str:
    known = RELEASE_REASONS.get(code)
    return _(known) if known else code


class LiveError(Exception):
    """A refused or failed live-chat operation, carrying the protocol's error code."""

    def __init__(self, code: str, message: str | None = None) -> None:
        self.code = code
        known = ERROR_MESSAGES.get(code)
        self.message = _(known) if known else message or _("The chat server refused ({code}).").format(code=code)
        super().__init__(self.message)
