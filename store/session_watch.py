"""Sessions that end really end: account changes pushed to in-process listeners, and the verdict on open sessions.

`Accounts` notifies `AccountChanges` after the COMMIT of a disable, a role change, a password reset
and a sign-out; the chat server subscribes and ends that person's live sockets at once. What no
event announces (the session lifetime, the idle timeout, a change made by another process such as
the TUI's own store or a `cim users` command) is found by `session_verdicts`, which the chat server
runs about once a second over the sessions it holds open.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Callable, Iterable

from .clock import from_iso, to_iso
from .models import Role

if TYPE_CHECKING:
    from .accounts import Accounts

log = logging.getLogger("cim.store")

#: Why a session ended (the chat server sends the code to the client; docs/PROTOCOL.md).
DISABLED = "account_disabled"
SIGNED_OUT = "signed_out"
ROLE_REMOVED = "role_removed"
PASSWORD_CHANGED = "password_changed"
EXPIRED = "session_expired"
IDLE = "idle_timeout"
ENDED_REASONS = (DISABLED, SIGNED_OUT, ROLE_REMOVED, PASSWORD_CHANGED, EXPIRED, IDLE)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True)
class AccountChange:
    """Something that may end live sessions: every session of `staff_id`, or only the one whose hash is given."""

    staff_id: int
    reason: str
    token_hash: str | None = None


Listener = Callable[[AccountChange], None]


class AccountChanges:
    """In-process observers of account changes; called synchronously after the change is committed."""

    def __init__(self) -> None:
        self._listeners: list[Listener] = []

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Add a listener; returns the function that removes it again."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def notify(self, change: AccountChange) -> None:
        for listener in list(self._listeners):
            try:
                listener(change)
            except Exception:  # a listener's failure must not undo (or hide) a committed change
                log.exception("account_change.listener_failed reason=%s", change.reason)


async def session_verdicts(
    accounts: "Accounts", tokens: Iterable[str], *, required_role: Role | None = None
) -> dict[str, str | None]:
    """For each token: None while its session may go on, else the reason it ended (read-only: no refresh).

    One query for all of them, so the chat server can ask every second.
    """
    hashes = {token: token_hash(token) for token in set(tokens)}
    if not hashes:
        return {}
    rows = await accounts.repo.session_states(list(hashes.values()), required_role.value if required_role else "")
    by_hash = {r["token_hash"]: r for r in rows}
    now = accounts.clock()
    idle = timedelta(minutes=accounts.settings.session_idle_minutes)
    verdicts: dict[str, str | None] = {}
    for token, digest in hashes.items():
        row = by_hash.get(digest)
        if row is None:
            verdicts[token] = SIGNED_OUT
        elif row["disabled"]:
            verdicts[token] = DISABLED
        elif row["revoked_at"]:
            verdicts[token] = SIGNED_OUT
        elif now >= from_iso(row["expires_at"]):
            verdicts[token] = EXPIRED
        elif now >= from_iso(row["last_seen_at"]) + idle:
            verdicts[token] = IDLE
        elif required_role is not None and not row["has_role"]:
            verdicts[token] = ROLE_REMOVED
        else:
            verdicts[token] = None
    return verdicts


async def staff_with_live_sessions(
    accounts: "Accounts", staff_ids: Iterable[int], *, required_role: Role | None = None
) -> set[int]:
    """Which of these staff members hold at least one session that may go on (read-only)."""
    ids = sorted(set(staff_ids))
    if not ids:
        return set()
    now = accounts.clock()
    idle_since = now - timedelta(minutes=accounts.settings.session_idle_minutes)
    return await accounts.repo.staff_with_live_sessions(
        ids, now=to_iso(now), idle_since=to_iso(idle_since), role=required_role.value if required_role else ""
    )
