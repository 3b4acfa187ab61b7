"""Named domain errors raised by the store; each edge translates them once."""

from __future__ import annotations


class CimError(Exception):
    """Base of every error CIM reports to a person: its message is one clear sentence."""

    code = "error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


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
