"""The permission policy: which role may do what (DESIGN.md §3). Every check in CIM goes through here."""

from __future__ import annotations

from enum import StrEnum

from .models import Actor, Role


class Permission(StrEnum):
    HANDLE_CHATS = "handle_chats"
    SEARCH_ARCHIVE = "search_archive"
    OPEN_CONTENT = "open_content"  # open a recording or transcript, with a stated purpose
    REGISTER_REQUESTS = "register_requests"
    VIEW_REQUESTS = "view_requests"
    MANAGE_CANNED = "manage_canned"
    MANAGE_NOTICES = "manage_notices"
    MANAGE_HOLDS = "manage_holds"
    RUN_PURGE = "run_purge"
    VIEW_REPORTS = "view_reports"
    MANAGE_ACCOUNTS = "manage_accounts"
    CONFIGURE = "configure"
    CHECK_INTEGRITY = "check_integrity"
    DECIDE_REQUESTS = "decide_requests"
    SCHEDULE_SESSIONS = "schedule_sessions"
    READ_AUDIT = "read_audit"
    GIVE_DPO_OPINION = "give_dpo_opinion"
    HANDLE_COPY_REQUESTS = "handle_copy_requests"
    GIVE_DEPARTMENT_OPINION = "give_department_opinion"
    INGEST_CALLS = "ingest_calls"
    CONFIRM_COPY_EXPORT = "confirm_copy_export"  # the second pair of eyes on a GDPR Art. 15 export
    VIEW_TRAFFIC = "view_traffic"  # the live wallboard of queues and calls (numbers masked without archive access)
    PAUSE_QUEUE = "pause_queue"  # pause/unpause oneself in the PBX's queues
    ANNOTATE_CALLS = "annotate_calls"  # a category and a short note on a call one handled
    HANDLE_CALLBACKS = "handle_callbacks"  # the callback worklist: take, call back, close
    SUPERVISE_CHATS = "supervise_chats"  # §3: watch live chats (with a purpose), whisper, take over


P = Permission
_DESIGNATED = {P.SEARCH_ARCHIVE, P.OPEN_CONTENT, P.REGISTER_REQUESTS, P.VIEW_REQUESTS, P.CONFIRM_COPY_EXPORT}

#: The whole policy. A role not listed for a permission does not have it.
ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.CONSULTANT: frozenset({P.HANDLE_CHATS, P.VIEW_TRAFFIC, P.PAUSE_QUEUE, P.ANNOTATE_CALLS, P.HANDLE_CALLBACKS}),
    Role.DESIGNATED: frozenset(_DESIGNATED),
    Role.CIM_MANAGER: frozenset(
        _DESIGNATED
        | {
            P.MANAGE_CANNED,
            P.MANAGE_NOTICES,
            P.MANAGE_HOLDS,
            P.RUN_PURGE,
            P.VIEW_REPORTS,
            P.VIEW_TRAFFIC,
            P.SUPERVISE_CHATS,
        }
    ),
    Role.IT_ADMIN: frozenset(
        {
            P.MANAGE_ACCOUNTS,
            P.CONFIGURE,
            P.CHECK_INTEGRITY,
            P.SEARCH_ARCHIVE,
            P.OPEN_CONTENT,
            P.RUN_PURGE,
            P.INGEST_CALLS,
        }
    ),
    Role.BOI_DIRECTOR: frozenset(
        {
            P.DECIDE_REQUESTS,
            P.SCHEDULE_SESSIONS,
            P.MANAGE_HOLDS,
            P.READ_AUDIT,
            P.VIEW_REPORTS,
            P.VIEW_REQUESTS,
            P.REGISTER_REQUESTS,
            P.CONFIRM_COPY_EXPORT,
            P.SUPERVISE_CHATS,
        }
    ),
    Role.DPO: frozenset({P.GIVE_DPO_OPINION, P.READ_AUDIT, P.HANDLE_COPY_REQUESTS, P.VIEW_REQUESTS, P.VIEW_REPORTS}),
    Role.DEPARTMENT_HEAD: frozenset({P.GIVE_DEPARTMENT_OPINION}),
    Role.SECRETARY: frozenset({P.VIEW_REPORTS}),
}


def allowed(actor: Actor, permission: Permission) -> bool:
    """Whether the actor may do this. The system actor (host CLI, scheduler) may do everything."""
    if actor.is_system:
        return True
    return any(permission in ROLE_PERMISSIONS[role] for role in actor.roles)


def permissions_of(actor: Actor) -> frozenset[Permission]:
    if actor.is_system:
        return frozenset(Permission)
    return frozenset().union(*(ROLE_PERMISSIONS[r] for r in actor.roles)) if actor.roles else frozenset()
