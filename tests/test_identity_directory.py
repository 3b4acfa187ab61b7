"""Directory sign-in against a real slapd: binds, groups -> roles, removal while signed in, outage, TLS, injection."""

from __future__ import annotations

import pytest

from store import Store
from store.errors import (
    AuthenticationFailed,
    DirectoryUnavailable,
    NoMappedRole,
    SessionExpired,
)
from store.models import Role
from tests.fixtures.audit_log import audit_log
from tests.fixtures.directory import GROUPS, PEOPLE, USERS, make_ca
from tests.fixtures.store import PASSWORD, SYSTEM


@pytest.fixture
async def dir_store(settings, clock, slapd):
    st = await Store.open(settings.with_(**slapd.settings_overrides()), create=True, clock=clock)
    await st.accounts.add_department(SYSTEM, "WGK", "Wydział Gospodarki Komunalnej")
    try:
        yield st
    finally:
        await st.close()


def pw(name: str) -> str:
    return USERS[name][0]


async def test_good_bind_signs_in_with_roles_from_groups_and_never_writes_the_directory(dir_store, slapd):
    before = slapd.dump()
    session = await dir_store.accounts.login("jan", pw("jan"))
    assert session.staff.source == "directory"
    assert session.staff.roles == {Role.DESIGNATED, Role.CONSULTANT}
    assert session.staff.full_name == "Jan Kowalski"
    assert (await dir_store.accounts.authenticate(session.token)).name == "jan"
    # a second sign-in finds the same local record; no password of the directory is kept in CIM
    again = await dir_store.accounts.login("JAN", pw("jan"))
    assert again.staff.id == session.staff.id
    row = await dir_store.db.fetchone("SELECT password_hash FROM staff WHERE name = 'jan'")
    assert pw("jan") not in row["password_hash"] and not row["password_hash"].startswith("$argon2")
    assert slapd.dump() == before


async def test_group_gives_a_department(dir_store):
    session = await dir_store.accounts.login("zofia", pw("zofia"))
    assert session.staff.roles == {Role.DEPARTMENT_HEAD}
    assert session.staff.department == "WGK"


async def test_wrong_password_and_unknown_user_look_the_same_and_count_towards_lockout(dir_store):
    with pytest.raises(AuthenticationFailed) as wrong:
        await dir_store.accounts.login("jan", "not jan's password at all")
    with pytest.raises(AuthenticationFailed) as unknown:
        await dir_store.accounts.login("nobody", "whatever password it is")
    assert wrong.value.message == unknown.value.message
    assert await dir_store.accounts.list_staff() == []  # nothing recorded for failed directory sign-ins
    failures = await dir_store.db.fetchall("SELECT name_key FROM login_failures ORDER BY id")
    assert len(failures) == 2 and failures[0]["name_key"] != failures[1]["name_key"]  # one per name tried


async def test_user_in_no_mapped_group_is_refused_clearly(dir_store):
    with pytest.raises(NoMappedRole, match="no group"):
        await dir_store.accounts.login("olga", pw("olga"))
    assert await dir_store.db.fetchone("SELECT 1 FROM sessions") is None


@pytest.mark.ordinance("§5")
async def test_removed_from_mapped_groups_while_signed_in_loses_the_session(dir_store, slapd, clock):
    session = await dir_store.accounts.login("ewa", pw("ewa"))
    slapd.modify(f"dn: cn=cim-consultants,{GROUPS}\nchangetype: modify\ndelete: member\nmember: uid=ewa,{PEOPLE}\n")
    # within the check interval the session is not re-checked...
    assert (await dir_store.accounts.authenticate(session.token)).name == "ewa"
    clock.advance(seconds=dir_store.settings.directory_check_seconds)
    # ...after it, the directory is asked and the session ends through the normal revocation
    with pytest.raises(SessionExpired):
        await dir_store.accounts.authenticate(session.token)
    row = await dir_store.db.fetchone("SELECT revoked_at FROM sessions")
    assert row["revoked_at"] is not None
    assert (await dir_store.accounts.get("ewa")).roles == frozenset()
    with pytest.raises(NoMappedRole):
        await dir_store.accounts.login("ewa", pw("ewa"))
    removed = await audit_log(dir_store, action="staff.directory_removed")
    assert removed[0].actor_name == "system:directory"


async def test_group_change_and_removal_found_by_the_servers_periodic_check(dir_store, slapd, clock):
    jan = await dir_store.accounts.login("jan", pw("jan"))
    ewa = await dir_store.accounts.login("ewa", pw("ewa"))
    slapd.modify(f"dn: cn=cim-designated,{GROUPS}\nchangetype: modify\ndelete: member\nmember: uid=jan,{PEOPLE}\n")
    slapd.modify(f"dn: uid=ewa,{PEOPLE}\nchangetype: delete\n")
    ended = await dir_store.accounts.recheck_directory_accounts()
    assert ended == {"jan": "roles_changed", "ewa": "not_in_directory"}
    for session in (jan, ewa):
        with pytest.raises(SessionExpired):
            await dir_store.accounts.authenticate(session.token)
    # jan signs in again with the roles the directory gives now
    again = await dir_store.accounts.login("jan", pw("jan"))
    assert again.staff.roles == {Role.CONSULTANT}


async def test_directory_down_is_a_clear_error_and_local_accounts_still_sign_in(dir_store, slapd, make_staff, clock):
    kept = await dir_store.accounts.login("jan", pw("jan"))
    await dir_store.accounts.add_staff(SYSTEM, "breakglass", ["it_admin"], PASSWORD)
    slapd.stop()
    with pytest.raises(DirectoryUnavailable, match="cannot be reached"):
        await dir_store.accounts.login("jan", pw("jan"))
    assert (await dir_store.accounts.login("breakglass", PASSWORD)).staff.source == "local"
    # an outage does not sign out the directory accounts already in (the check retries later)
    clock.advance(seconds=dir_store.settings.directory_check_seconds)
    assert (await dir_store.accounts.authenticate(kept.token)).name == "jan"
    # and an outage is not a failed password: no lockout
    assert await dir_store.db.fetchone("SELECT 1 FROM login_failures") is None
    check = await dir_store.accounts.verify_sign_in(SYSTEM, "jan", pw("jan"))
    assert (check.ok, check.reason) == (False, "directory_unreachable")


@pytest.mark.parametrize("name", ["*)(uid=*", "*", "jan)(|(uid=*", "jan*", "*)(objectClass=*))(|(uid=*", "j\\2a"])
async def test_ldap_injection_in_the_user_name_signs_in_nobody(dir_store, name):
    for password in (pw("jan"), pw("ewa"), "*"):
        with pytest.raises(AuthenticationFailed):
            await dir_store.accounts.login(name, password)
    assert await dir_store.accounts.list_staff() == []


async def test_escaped_filter_reaches_the_directory(dir_store):
    """Names that pass CIM's rule are escaped too: the filter is built with RFC 4515 escaping, not pasted."""
    from store.directory import Directory

    directory = Directory(dir_store.settings.with_(ldap_user_filter="(&(objectClass=inetOrgPerson)(cn={name}))"))
    assert await directory.lookup("Jan") is None  # cn is "Jan Kowalski": no wildcard was made of the name
    assert (await directory.authenticate("jan", pw("jan"))).outcome == "not_found"


async def test_starttls_with_the_tests_ca(settings, clock, slapd_tls, tmp_path):
    good = settings.with_(**slapd_tls.settings_overrides(ldap_tls="starttls", ldap_ca_file=str(slapd_tls.tls.cert)))
    async with await Store.open(good, create=True, clock=clock) as st:
        session = await st.accounts.login("jan", pw("jan"))
        assert session.staff.roles == {Role.DESIGNATED, Role.CONSULTANT}
    other_ca = make_ca(tmp_path / "other-pki", name="Somebody else's CA")
    wrong = settings.with_(**slapd_tls.settings_overrides(ldap_tls="starttls", ldap_ca_file=str(other_ca.cert)))
    async with await Store.open(wrong, clock=clock) as st:
        with pytest.raises(DirectoryUnavailable, match="certificate|TLS"):
            await st.accounts.login("jan", pw("jan"))


async def test_bad_directory_configuration_fails_loudly(settings, clock, slapd):
    from store.errors import ConfigError

    for bad in (
        {"ldap_role_map": ""},
        {"ldap_user_base": ""},
        {"ldap_url": "http://x"},
        {"ldap_role_map": '{"cn=x": "chef"}'},
        {"ldap_role_map": '{"cn=x": ["department_head"]}'},
    ):
        with pytest.raises(ConfigError):
            await Store.open(settings.with_(**slapd.settings_overrides(**bad)), create=True, clock=clock)
