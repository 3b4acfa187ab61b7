"""Every role against every permission: the table of DESIGN.md §3, checked through the store."""

from __future__ import annotations

import pytest

from store.models import Actor, Role
from store.policy import ROLE_PERMISSIONS, Permission, allowed, permissions_of
from tests.fixtures.audit_log import audit_log

P = Permission
# The expected matrix, written out independently of store/policy.py so a drift in either shows.
EXPECTED: dict[Role, set[Permission]] = {
    Role.CONSULTANT: {P.HANDLE_CHATS, P.VIEW_TRAFFIC, P.PAUSE_QUEUE, P.ANNOTATE_CALLS, P.HANDLE_CALLBACKS},
    Role.DESIGNATED: {P.SEARCH_ARCHIVE, P.OPEN_CONTENT, P.REGISTER_REQUESTS, P.VIEW_REQUESTS, P.CONFIRM_COPY_EXPORT},
    Role.CIM_MANAGER: {
        P.SEARCH_ARCHIVE,
        P.OPEN_CONTENT,
        P.REGISTER_REQUESTS,
        P.VIEW_REQUESTS,
        P.CONFIRM_COPY_EXPORT,
        P.MANAGE_CANNED,
        P.MANAGE_NOTICES,
        P.MANAGE_HOLDS,
        P.RUN_PURGE,
        P.VIEW_REPORTS,
        P.VIEW_TRAFFIC,
        P.SUPERVISE_CHATS,
    },
    Role.IT_ADMIN: {
        P.MANAGE_ACCOUNTS,
        P.CONFIGURE,
        P.CHECK_INTEGRITY,
        P.SEARCH_ARCHIVE,
        P.OPEN_CONTENT,
        P.RUN_PURGE,
        P.INGEST_CALLS,
    },
    Role.BOI_DIRECTOR: {
        P.DECIDE_REQUESTS,
        P.SCHEDULE_SESSIONS,
        P.MANAGE_HOLDS,
        P.READ_AUDIT,
        P.VIEW_REPORTS,
        P.VIEW_REQUESTS,
        P.REGISTER_REQUESTS,
        P.CONFIRM_COPY_EXPORT,
        P.SUPERVISE_CHATS,
    },
    Role.DPO: {P.GIVE_DPO_OPINION, P.READ_AUDIT, P.HANDLE_COPY_REQUESTS, P.VIEW_REQUESTS, P.VIEW_REPORTS},
    Role.DEPARTMENT_HEAD: {P.GIVE_DEPARTMENT_OPINION},
    Role.SECRETARY: {P.VIEW_REPORTS},
}


def actor(*roles: Role) -> Actor:
    return Actor(staff_id=1, name="x", roles=frozenset(roles))


@pytest.mark.ordinance("§5")
@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize("permission", list(Permission))
def test_role_permission_matrix(role: Role, permission: Permission) -> None:
    assert allowed(actor(role), permission) is (permission in EXPECTED[role])


def test_every_role_is_in_the_policy() -> None:
    assert set(ROLE_PERMISSIONS) == set(Role)


def test_roles_combine_and_nobody_gets_anything_without_roles() -> None:
    assert permissions_of(actor()) == frozenset()
    both = permissions_of(actor(Role.CONSULTANT, Role.DPO))
    assert both == EXPECTED[Role.CONSULTANT] | EXPECTED[Role.DPO]


@pytest.mark.ordinance("§5")
def test_only_section_5_roles_open_recordings_and_transcripts() -> None:
    """§5: IT administrators, the CIM manager and designated BOI employees have access."""
    openers = {r for r in Role if allowed(actor(r), P.OPEN_CONTENT)}
    assert openers == {Role.IT_ADMIN, Role.CIM_MANAGER, Role.DESIGNATED}


@pytest.mark.ordinance("§3")
async def test_refused_attempt_is_audited_and_changes_nothing(store, make_staff) -> None:
    consultant = (await make_staff("anna", "consultant")).as_actor()
    from store.errors import NotPermitted

    before = len(await store.accounts.list_staff())
    with pytest.raises(NotPermitted):
        await store.accounts.add_staff(consultant, "mallory", ["it_admin"], "long enough pw")
    assert len(await store.accounts.list_staff()) == before
    row = (await audit_log(store))[-1]
    assert (row.actor_name, row.action, row.outcome) == ("anna", "staff.add", "refused")
    assert (await store.audit.verify()).ok
