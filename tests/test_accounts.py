"""Staff accounts: passwords, lockout and its expiry, rehash, sessions and their expiry, bad input."""

from __future__ import annotations

import pytest

from store import Store
from store.accounts import make_hasher
from store.errors import (
    AccountLocked,
    AlreadyExists,
    AuthenticationFailed,
    InvalidInput,
    SessionExpired,
    StaffNotFound,
)
from store.models import Role
from tests.fixtures.store import PASSWORD, SYSTEM


async def test_login_returns_a_session_whose_token_is_stored_only_as_a_hash(store, make_staff) -> None:
    await make_staff("anna", "consultant")
    session = await store.accounts.login("anna", PASSWORD)
    assert len(session.token) >= 40
    rows = await store.db.fetchall("SELECT token_hash FROM sessions")
    assert len(rows) == 1 and session.token not in rows[0]["token_hash"]
    actor = await store.accounts.authenticate(session.token)
    assert actor.name == "anna" and actor.roles == frozenset({Role.CONSULTANT})


async def test_unknown_user_and_wrong_password_get_the_same_error(store, make_staff) -> None:
    await make_staff("anna", "consultant")
    with pytest.raises(AuthenticationFailed) as wrong:
        await store.accounts.login("anna", "not the password")
    with pytest.raises(AuthenticationFailed) as unknown:
        await store.accounts.login("nobody", "not the password")
    assert wrong.value.message == unknown.value.message


async def test_lockout_after_five_failures_and_its_expiry(store, make_staff, clock) -> None:
    await make_staff("anna", "consultant")
    for _ in range(5):
        with pytest.raises(AuthenticationFailed):
            await store.accounts.login("anna", "wrong password")
    with pytest.raises(AccountLocked):
        await store.accounts.login("anna", PASSWORD)  # even the right password
    clock.advance(minutes=14)
    with pytest.raises(AccountLocked):
        await store.accounts.login("anna", PASSWORD)
    clock.advance(minutes=2)
    assert (await store.accounts.login("anna", PASSWORD)).staff.name == "anna"


async def test_failures_spread_beyond_the_window_do_not_lock(store, make_staff, clock) -> None:
    await make_staff("anna", "consultant")
    for _ in range(8):
        with pytest.raises(AuthenticationFailed):
            await store.accounts.login("anna", "wrong password")
        clock.advance(minutes=4)
    assert (await store.accounts.login("anna", PASSWORD)).staff.name == "anna"


async def test_unknown_names_lock_too_so_locking_reveals_nothing(store) -> None:
    for _ in range(5):
        with pytest.raises(AuthenticationFailed):
            await store.accounts.login("ghost", "whatever pw")
    with pytest.raises(AccountLocked):
        await store.accounts.login("ghost", "whatever pw")


async def test_disabled_account_cannot_sign_in_and_its_sessions_end(store, make_staff) -> None:
    await make_staff("anna", "consultant")
    session = await store.accounts.login("anna", PASSWORD)
    await store.accounts.set_disabled(SYSTEM, "anna", True)
    with pytest.raises(SessionExpired):
        await store.accounts.authenticate(session.token)
    with pytest.raises(AuthenticationFailed):
        await store.accounts.login("anna", PASSWORD)
    await store.accounts.set_disabled(SYSTEM, "anna", False)
    assert (await store.accounts.login("anna", PASSWORD)).staff.name == "anna"


async def test_session_absolute_expiry_and_idle_timeout(store, make_staff, clock) -> None:
    await make_staff("anna", "consultant")
    session = await store.accounts.login("anna", PASSWORD)
    # kept alive by use every 20 minutes, it still ends after 12 hours
    for _ in range(35):
        clock.advance(minutes=20)
        await store.accounts.authenticate(session.token)
    clock.advance(minutes=20)
    with pytest.raises(SessionExpired):
        await store.accounts.authenticate(session.token)
    idle = await store.accounts.login("anna", PASSWORD)
    clock.advance(minutes=31)
    with pytest.raises(SessionExpired):
        await store.accounts.authenticate(idle.token)


@pytest.mark.parametrize("token", ["", "x" * 500, "forged-token", None, 12])
async def test_forged_tokens_are_refused(store, token) -> None:
    with pytest.raises(SessionExpired):
        await store.accounts.authenticate(token)


async def test_logout_revokes(store, make_staff) -> None:
    await make_staff("anna", "consultant")
    session = await store.accounts.login("anna", PASSWORD)
    await store.accounts.logout(session.token)
    with pytest.raises(SessionExpired):
        await store.accounts.authenticate(session.token)


async def test_password_is_rehashed_when_parameters_change(settings, clock) -> None:
    weak = await Store.open(settings, create=True, clock=clock)
    try:
        await weak.accounts.add_staff(SYSTEM, "anna", ["consultant"], PASSWORD)
        old = (await weak.db.fetchone("SELECT password_hash FROM staff WHERE name='anna'"))["password_hash"]
    finally:
        await weak.close()
    assert old.startswith("$argon2id$") and make_hasher("default").check_needs_rehash(old)
    stronger = await Store.open(settings.with_(password_profile="default"), clock=clock)
    try:
        await stronger.accounts.login("anna", PASSWORD)
        new = (await stronger.db.fetchone("SELECT password_hash FROM staff WHERE name='anna'"))["password_hash"]
        assert new != old and not make_hasher("default").check_needs_rehash(new)
        await stronger.accounts.login("anna", PASSWORD)  # and the new hash verifies
    finally:
        await stronger.close()


@pytest.mark.parametrize(
    ("name", "roles", "password", "error"),
    [
        ("anna", ["chef"], PASSWORD, InvalidInput),
        ("anna", [], PASSWORD, InvalidInput),
        ("anna", ["consultant"], "", InvalidInput),
        ("anna", ["consultant"], "   ", InvalidInput),
        ("anna", ["consultant"], "short", InvalidInput),
        ("anna", ["consultant"], "x" * 5000, InvalidInput),
        ("", ["consultant"], PASSWORD, InvalidInput),
        ("a b", ["consultant"], PASSWORD, InvalidInput),
        ("<script>", ["consultant"], PASSWORD, InvalidInput),
        ("x" * 100, ["consultant"], PASSWORD, InvalidInput),
        ("anna", ["department_head"], PASSWORD, InvalidInput),  # needs a department
    ],
)
async def test_bad_account_input_is_refused_and_changes_nothing(store, name, roles, password, error) -> None:
    with pytest.raises(error):
        await store.accounts.add_staff(SYSTEM, name, roles, password)
    assert await store.accounts.list_staff() == []


async def test_duplicate_name_is_refused_case_insensitively(store, make_staff) -> None:
    await make_staff("anna", "consultant")
    with pytest.raises(AlreadyExists):
        await store.accounts.add_staff(SYSTEM, "ANNA", ["dpo"], PASSWORD)
    assert [s.name for s in await store.accounts.list_staff()] == ["anna"]


async def test_unknown_department_and_user(store) -> None:
    with pytest.raises(InvalidInput, match="department"):
        await store.accounts.add_staff(SYSTEM, "anna", ["consultant"], PASSWORD, department="NOPE")
    with pytest.raises(StaffNotFound):
        await store.accounts.set_disabled(SYSTEM, "nobody", True)


async def test_repository_reports_a_missing_account_instead_of_failing_on_none(store) -> None:
    # an account removed between the service's read and the repository's: a clear StaffNotFound, not a TypeError
    repo = store.accounts.repo
    with pytest.raises(StaffNotFound):
        await repo.password_hash(999_999)
    async with repo.transaction() as tx:
        with pytest.raises(StaffNotFound):
            await repo.roles_and_department(tx, 999_999)
    assert await repo.unused_recovery_code_count(999_999) == 0


async def test_roles_and_password_changes(store, make_staff) -> None:
    await make_staff("anna", "consultant")
    staff = await store.accounts.set_roles(SYSTEM, "anna", ["designated", "consultant"])
    assert staff.roles == {Role.DESIGNATED, Role.CONSULTANT}
    session = await store.accounts.login("anna", PASSWORD)
    await store.accounts.set_password(SYSTEM, "anna", "a new long password")
    with pytest.raises(SessionExpired):
        await store.accounts.authenticate(session.token)
    with pytest.raises(AuthenticationFailed):
        await store.accounts.login("anna", PASSWORD)
    await store.accounts.login("anna", "a new long password")


async def test_staff_may_change_only_their_own_password(store, make_staff) -> None:
    anna = (await make_staff("anna", "consultant")).as_actor()
    await make_staff("piotr", "consultant")
    # (not "anna's new password": a new password may not contain the person's name)
    await store.accounts.set_password(anna, "anna", "my own new password")
    from store.errors import NotPermitted

    with pytest.raises(NotPermitted):
        await store.accounts.set_password(anna, "piotr", "hijacked password")


async def test_extensions_map_to_one_person(store, make_staff) -> None:
    await make_staff("anna", "consultant", extensions=("201",))
    await make_staff("piotr", "consultant")
    with pytest.raises(AlreadyExists):
        await store.accounts.set_extensions(SYSTEM, "piotr", ["201"])
    with pytest.raises(InvalidInput):
        await store.accounts.set_extensions(SYSTEM, "piotr", ["20a"])
    assert (await store.accounts.set_extensions(SYSTEM, "piotr", ["202", "203"])).extensions == ("202", "203")
