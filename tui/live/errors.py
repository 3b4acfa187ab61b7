"""What the staff error codes and refusal reasons of docs/PROTOCOL.md, a chat's release reasons and the
`session_ended` codes say to a consultant: the TUI's own sentences in the staff member's language, never
the chat server's words (its `message` is English, for logs)."""

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
#: The sentence for a refusal whose `reason` says more than its code (docs/PROTOCOL.md "Refusal reasons").
REASON_MESSAGES = {
    protocol.PICK_MODE: N_("Chats are declined only when the desk assigns them; close or transfer this one."),
    protocol.DECLINED_ONCE: N_("You declined this chat once already."),
    protocol.NOT_WATCHING: N_("Watch the chat first (with a purpose), then write a note."),
    protocol.PURPOSE_INVALID: N_("State the purpose: a request number or a reason (3 to 500 characters)."),
    protocol.CATEGORY_INVALID: N_("Choose one of the close categories."),
    protocol.NOT_ANSWERED: N_("Nobody is answering this chat yet."),
    protocol.OWN_CHAT: N_("This chat is yours: it is on your live chats."),
    protocol.PBX_UNAVAILABLE: N_("The phone exchange cannot be reached now (or none is configured)."),
    protocol.NOT_A_MEMBER: N_("None of your extensions is a member of that queue."),
}
#: Why the chat server ended the session (`session_ended.code`; store/session_watch.py ENDED_REASONS).
SESSION_ENDED_MESSAGES = {
    "account_disabled": N_("Your session has ended: the account was disabled."),
    "signed_out": N_("Your session has ended: you signed out."),
    "role_removed": N_("Your session has ended: you no longer have the consultant role."),
    "password_changed": N_("Your session has ended: the password was changed."),
    "session_expired": N_("Your session has ended: it reached its maximum length."),
    "idle_timeout": N_("Your session has ended: you were inactive for too long."),
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


def refusal_text(code: str, reason: str | None = None) -> str:
    """A refusal in the staff language: the reason's sentence, else the code's, else the code itself named."""
    known = REASON_MESSAGES.get(reason or "") or ERROR_MESSAGES.get(code)
    return _(known) if known else _("The chat server refused ({code}).").format(code=code)


def ack_refusal(ack: object) -> str:
    """The refusal of an error acknowledgement (`{"ok": false, "error": {"code", "reason"?}}`) as words."""
    error = ack.get("error") if isinstance(ack, dict) else None
    error = error if isinstance(error, dict) else {}
    reason = error.get("reason")
    return refusal_text(str(error.get("code") or "server_error"), reason if isinstance(reason, str) else None)


def session_ended_text(code: str) -> str:
    known = SESSION_ENDED_MESSAGES.get(code)
    return _(known) if known else _("Your session has ended.")


class LiveError(Exception):
    """A refused or failed live-chat operation, carrying the protocol's error code (and reason, when the
    server gave one). `message` is the TUI's sentence for them in the staff language; `server_message`
    is what the server said (English, for the log), never shown."""

    def __init__(self, code: str, server_message: str | None = None, reason: str | None = None) -> None:
        self.code = code
        self.reason = reason
        self.server_message = server_message
        self.message = refusal_text(code, reason)
        super().__init__(self.message)
