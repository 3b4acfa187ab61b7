"""Named domain errors raised by the store; each edge translates them once.

An error keeps its sentence as a msgid (English, the source text) with named placeholders, and the
values apart: `InvalidInput(N_("user {name!r} already exists"), name=name)`. `.message` (and `str()`)
renders it when read, in the current staff language (store/i18n.py): the TUI shows it in the signed-in
person's language, the CLI in CIM_STAFF_LANG. `message_in(lang)` renders it for another reader.
"""

from __future__ import annotations

from typing import Any


class Text(str):
    """A placeholder value that is itself a msgid (a field's label, "call"/"chat"): translated with the
    sentence, e.g. `InvalidInput(N_("the {label} is required"), label=Text(label))` with `label=N_("title")`."""

    __slots__ = ()


def render_message(msgid: str, params: dict[str, Any], lang: str | None = None) -> str:
    """`msgid` translated into `lang` (default: the current staff language), its placeholders filled."""
    from .i18n import current_language, translator

    catalog = translator(lang or current_language())
    text = catalog.gettext(msgid)
    if not params:
        return text
    params = {k: catalog.gettext(v) if isinstance(v, Text) else v for k, v in params.items()}
    try:
        return text.format(**params)
    except (KeyError, IndexError, ValueError, AttributeError):  # a broken translation: the source text
        return msgid.format(**params)


class CimError(Exception):
    """Base of every error CIM reports to a person: its message is one clear sentence.

    `message` is a msgid (mark it with `N_`), `params` fill its `{name}` placeholders; a message that is
    already composed text (no params) is shown as it is when no catalog knows it.
    """

    code = "error"
    #: What exactly was refused, as a code a client words in its own language: the error ack's `reason`
    #: (webchat/protocol.py `REFUSAL_REASONS`, docs/PROTOCOL.md "Refusal reasons"); None when the error code
    #: says enough. Not named `reason`: `{reason}` (and `{refusal}`) are placeholders of some sentences.
    refusal_reason: str | None = None

    def __init__(self, message: str, *, refusal_reason: str | None = None, **params: Any) -> None:
        super().__init__(message)
        self.msgid = message
        self.params = params
        if refusal_reason is not None:
            self.refusal_reason = refusal_reason

    @property
    def message(self) -> str:
        return render_message(self.msgid, self.params)

    @message.setter
    def message(self, text: str) -> None:
        self.msgid, self.params = text, {}

    def message_in(self, lang: str) -> str:
        return render_message(self.msgid, self.params, lang)

    def __str__(self) -> str:
        return self.message


class ConfigError(CimError):
    code = "config"


class StoreUnavailable(CimError):
    """The database file or the data directory cannot be used."""

    code = "store_unavailable"


class NotPermitted(CimError):
    code = "not_permitted"


class AuthenticationFailed(CimError):
    """Wrong name or password; deliberately says nothing about which."""

    code = "authentication_failed"


class AccountLocked(CimError):
    code = "account_locked"


class SessionExpired(CimError):
    code = "session_expired"


class InvalidInput(CimError):
    code = "invalid"


class NotFound(CimError):
    code = "not_found"


class StaffNotFound(NotFound):
    pass


class ConversationNotFound(NotFound):
    pass


class RequestNotFound(NotFound):
    pass


class AlreadyExists(CimError):
    code = "already_exists"


class InvalidTransition(CimError):
    """A state change the lifecycle does not allow (deciding twice, scheduling a refusal...)."""

    code = "invalid_transition"


class IneligibleForGrant(InvalidTransition):
    """§4.7: a phone recording whose caller number is not identifiable or not the requester's cannot be granted."""

    code = "ineligible"


class AtCapacity(CimError):
    """A consultant already handles as many chats as they may at once (chat desk capacity)."""

    code = "at_capacity"


class Conflict(CimError):
    """Someone else got there first (two consultants accepting one chat, two purges at once)."""

    code = "conflict"


class ChatClosed(InvalidTransition):
    """The chat has ended: nothing more can be written to it."""

    code = "closed"


class ResumeInvalid(CimError):
    """A resume token that was never issued, or whose chat can no longer be resumed."""

    code = "resume_invalid"


class MessageEmpty(InvalidInput):
    code = "empty"


class MessageTooLong(InvalidInput):
    code = "too_long"


class ClockJumped(CimError):
    """The clock reads earlier than times already recorded; a purge against it is refused."""

    code = "clock_jumped"


class AlreadyPurged(NotFound):
    """The conversation was permanently deleted by a purge; nothing is left to hold or open."""


class DirectoryUnavailable(CimError):
    """The city directory cannot be reached or refused CIM's service account; local accounts still sign in."""

    code = "directory_unavailable"


class NoMappedRole(NotPermitted):
    """A directory account whose groups give no CIM role (or that left the directory)."""

    code = "no_mapped_role"


class PasswordChangeRequired(CimError):
    """The password was temporary: sign in again giving a new one (`new_password`)."""

    code = "password_change_required"


class SecondFactorRequired(CimError):
    """The account signs in with a TOTP code (or a recovery code): sign in again giving `otp`."""

    code = "second_factor_required"


class SecondFactorEnrolmentRequired(CimError):
    """The roles need a second factor that is not set up yet; `enrolment` holds a new secret to show once."""

    code = "second_factor_enrolment_required"

    def __init__(self, message: str, enrolment: object = None, **params: Any) -> None:
        super().__init__(message, **params)
        self.enrolment = enrolment
