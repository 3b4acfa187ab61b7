"""Domain dataclasses returned by the store (never raw rows)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class Role(StrEnum):
    CONSULTANT = "consultant"
    DESIGNATED = "designated"
    CIM_MANAGER = "cim_manager"
    IT_ADMIN = "it_admin"
    BOI_DIRECTOR = "boi_director"
    DPO = "dpo"
    DEPARTMENT_HEAD = "department_head"
    SECRETARY = "secretary"


@dataclass(frozen=True)
class Actor:
    """Whoever acts on the store: a signed-in staff member, or the system itself (CLI, scheduler)."""

    staff_id: int | None
    name: str
    roles: frozenset[Role]
    department: str | None = None
    is_system: bool = False

    @classmethod
    def system(cls, name: str) -> "Actor":
        """The service account acting without a person: `cim` commands run on the host, the daily purge."""
        return cls(staff_id=None, name=f"system:{name}", roles=frozenset(), is_system=True)

    def has(self, role: Role) -> bool:
        return role in self.roles


@dataclass(frozen=True)
class Staff:
    id: int
    name: str
    full_name: str
    roles: frozenset[Role]
    department: str | None
    disabled: bool
    created_at: datetime
    extensions: tuple[str, ...] = ()
    #: the title printed under the name on letters this person signs (e.g. "Dyrektor Biura Obsługi Interesantów")
    job_title: str = ""
    #: `local` (password checked by CIM) or `directory` (checked by the city's directory).
    source: str = "local"
    #: The password was set by someone else and must be changed at the next sign-in.
    must_change_password: bool = False
    #: The TOTP second factor: `none`, `pending` (enrolment not confirmed) or `active`.
    second_factor: str = "none"
    #: The staff language the person chose (`pl`/`en`); None: CIM_STAFF_LANG, else Polish (store/i18n.py).
    language: str | None = None
    #: The name residents see in the chat, when one was set (store.chats.display_name has the default).
    display_name: str | None = None

    def as_actor(self) -> Actor:
        return Actor(staff_id=self.id, name=self.name, roles=self.roles, department=self.department)


@dataclass(frozen=True)
class Department:
    id: int
    code: str
    name: str


@dataclass(frozen=True)
class Session:
    """A signed-in staff session. `token` is only known to the holder; the store keeps its hash."""

    token: str
    staff: Staff
    expires_at: datetime
    #: Recovery codes made by this sign-in's second-factor enrolment: shown to the person once, never again.
    recovery_codes: tuple[str, ...] = ()


@dataclass(frozen=True)
class SignInCheck:
    """`cim users verify`: would this sign-in succeed, and if not, why (`reason` is a stable code)."""

    ok: bool
    reason: str | None
    message: str  # English, the source text (the JSON of `cim users verify` carries it unchanged)
    error: Any = field(default=None, compare=False, repr=False)  # the CimError: `.message` in the staff language


@dataclass(frozen=True)
class Notice:
    id: int
    channel: str
    version: int
    lang: str
    text: str
    legal: bool
    created_at: datetime


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: datetime
    actor_id: int | None
    actor_name: str
    action: str
    outcome: str
    target_kind: str | None
    target_id: str | None
    purpose: str | None
    request_id: int | None
    details: dict = field(default_factory=dict)


@dataclass(frozen=True)
class AuditProblem:
    """One finding of `cim audit verify`: what, the first entry concerned, and the anchor that proves it."""

    kind: str  # chain, mac, unmaced, unknown_key, retired_key, truncated, rewritten, restored_backup, forged_anchor, anchors_unreadable
    entry: int | None
    message: str
    anchor: dict | None = None


@dataclass(frozen=True)
class ChainCheck:
    ok: bool
    entries: int
    first_broken: int | None
    #: Anchors read (file, syslog exports, paper) whose MAC held and that were compared with the log.
    anchors_checked: int = 0
    #: The last entry that agrees with the anchors when the log lacks entries an anchor proves existed.
    truncated_after: int | None = None
    #: Entries written before the MAC key existed (verified by the hash chain only).
    legacy_entries: int = 0
    problems: tuple[AuditProblem, ...] = ()
    #: Restores of a backup recognised through the anchors: fork_at, backup, lost_through, acknowledged.
    restores: tuple[dict, ...] = ()
