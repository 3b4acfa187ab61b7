"""The TOTP second factor, temporary passwords, the new-password policy and `verify_sign_in`, on a real store."""

from __future__ import annotations

import os
import stat

import pyotp
import pytest

from store import Store
from store.errors import (
    AccountLocked,
    AuthenticationFailed,
    ConfigError,
    InvalidInput,
    PasswordChangeRequired,
    SecondFactorEnrolmentRequired,
    SecondFactorRequired,
    SessionExpired,
)
from store.settings import Settings
from tests.fixtures.audit_log import audit_log
from tests.fixtures.store import PASSWORD, SYSTEM


@pytest.fixture
async def mfa_store(settings, clock):
    st = await Store.open(settings.with_(mfa_roles="designated,dpo"), create=True, clock=clock)
    try:
        yield st
    finally:
        await st.close()


async def enrol(st: Store, clock, name: str) -> tuple[str, list[str]]:
    with pytest.raises(SecondFactorEnrolmentRequired) as started:
        await st.accounts.login(name, PASSWORD)
    secret = started.value.enrolment.secret
    assert started.value.enrolment.uri.startswith("otpauth://totp/")
    session = await st.accounts.login(name, PASSWORD, otp=pyotp.TOTP(secret).at(clock()))
    return secret, list(session.recovery_codes)


def test_mfa_roles_setting(tmp_path, monkeypatch):
    import store.settings

    monkeypatch.setattr(store.settings, "DEFAULT_MFA_ROLES", "designated,cim_manager,it_admin,boi_director,dpo")
    assert Settings.load(tmp_path, env={}).mfa_role_names == {
        "designated",
        "cim_manager",
        "it_admin",
        "boi_director",
        "dpo",
    }
    assert Settings.load(tmp_path, env={"CIM_MFA_ROLES": "none"}).mfa_role_names == frozenset()
    assert Settings.load(tmp_path, env={"CIM_MFA_ROLES": "dpo, secretary"}).mfa_role_names == {"dpo", "secretary"}
    with pytest.raises(ConfigError, match="chef"):
        Settings.load(tmp_path, env={"CIM_MFA_ROLES": "dpo,chef"})


@pytest.mark.ordinance("GDPR 32")
async def test_enrolment_then_codes_replay_and_a_code_from_30_seconds_ago(mfa_store, make_staff, clock):
    st = mfa_store
    await make_staff("ala", "designated")
    secret, codes = await enrol(st, clock, "ala")
    assert len(codes) == 10 and len(set(codes)) == 10
    # sealed at rest: neither the secret nor a recovery code is in the database
    row = await st.db.fetchone("SELECT secret_sealed FROM staff_totp")
    assert secret.encode() not in row["secret_sealed"]
    hashes = [r["code_hash"] for r in await st.db.fetchall("SELECT code_hash FROM staff_recovery_codes")]
    assert not any(c.replace("-", "") in h for c in codes for h in hashes)
    # the key file lives outside the database, 0600
    key = st.settings.mfa_key_path
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600 and key != st.settings.db_path
    # signing in again needs a code
    with pytest.raises(SecondFactorRequired):
        await st.accounts.login("ala", PASSWORD)
    totp = pyotp.TOTP(secret)
    clock.advance(seconds=30)
    # the enrolment's code is spent: replaying it is refused even inside the window
    enrolment_code = totp.at(clock(), counter_offset=-1)
    with pytest.raises(AuthenticationFailed, match="already used"):
        await st.accounts.login("ala", PASSWORD, otp=enrolment_code)
    clock.advance(seconds=30)
    # a code from 30 s ago (the previous step, never used) is still accepted: clocks drift, people type slowly
    from_30s_ago = totp.at(clock().timestamp() - 30)
    assert (await st.accounts.login("ala", PASSWORD, otp=from_30s_ago)).staff.name == "ala"
    # ...and once used, it is a replay
    with pytest.raises(AuthenticationFailed):
        await st.accounts.login("ala", PASSWORD, otp=from_30s_ago)
    # a code from 90 s ago is outside the window
    clock.advance(seconds=30)
    with pytest.raises(AuthenticationFailed):
        await st.accounts.login("ala", PASSWORD, otp=totp.at(clock().timestamp() - 90))
    assert (await st.accounts.login("ala", PASSWORD, otp=totp.at(clock()))).staff.name == "ala"


async def test_recovery_code_works_once(mfa_store, make_staff, clock):
    await make_staff("ala", "dpo")
    _secret, codes = await enrol(mfa_store, clock, "ala")
    assert (await mfa_store.accounts.login("ala", PASSWORD, otp=codes[3].lower())).staff.name == "ala"
    with pytest.raises(AuthenticationFailed):
        await mfa_store.accounts.login("ala", PASSWORD, otp=codes[3])
    assert await mfa_store.accounts.unused_recovery_codes((await mfa_store.accounts.get("ala")).as_actor()) == 9


async def test_second_factor_failures_count_towards_the_lockout(mfa_store, make_staff, clock):
    await make_staff("ala", "designated")
    secret, _codes = await enrol(mfa_store, clock, "ala")
    clock.advance(seconds=60)
    for _ in range(mfa_store.settings.lockout_failures):
        with pytest.raises(AuthenticationFailed):
            await mfa_store.accounts.login(
                "ala", PASSWORD, otp="000000" if pyotp.TOTP(secret).at(clock()) != "000000" else "111111"
            )
    with pytest.raises(AccountLocked):
        await mfa_store.accounts.login("ala", PASSWORD, otp=pyotp.TOTP(secret).at(clock()))


async def test_roles_outside_mfa_roles_sign_in_with_a_password(mfa_store, make_staff):
    await make_staff("kasia", "consultant")
    assert (await mfa_store.accounts.login("kasia", PASSWORD)).staff.second_factor == "none"


async def test_a_key_file_others_can_read_or_another_key_is_refused(mfa_store, make_staff, clock, tmp_path):
    await make_staff("ala", "designated")
    await enrol(mfa_store, clock, "ala")
    key = mfa_store.settings.mfa_key_path
    key.chmod(0o644)
    fresh = await Store.open(mfa_store.settings, clock=clock)
    try:
        with pytest.raises(ConfigError, match="open to other users"):
            await fresh.accounts.login("ala", PASSWORD, otp="123456")
    finally:
        await fresh.close()
    key.chmod(0o600)
    other = await Store.open(mfa_store.settings.with_(mfa_key_file=str(tmp_path / "other.key")), clock=clock)
    try:
        with pytest.raises(ConfigError, match="cannot be opened"):
            await other.accounts.login("ala", PASSWORD, otp="123456")
    finally:
        await other.close()


async def test_it_resets_a_lost_second_factor(mfa_store, make_staff, clock):
    await make_staff("ala", "designated")
    await enrol(mfa_store, clock, "ala")
    staff = await mfa_store.accounts.reset_second_factor(SYSTEM, "ala")
    assert staff.second_factor == "none"
    with pytest.raises(SecondFactorEnrolmentRequired):
        await mfa_store.accounts.login("ala", PASSWORD)


async def test_enrolment_from_a_signed_in_session(store, make_staff, clock):
    await make_staff("kasia", "consultant")
    session = await store.accounts.login("kasia", PASSWORD)
    actor = session.staff.as_actor()
    enrolment = await store.accounts.begin_enrolment(actor)
    with pytest.raises(AuthenticationFailed):
        await store.accounts.confirm_enrolment(
            actor, "000000" if pyotp.TOTP(enrolment.secret).at(clock()) != "000000" else "111111"
        )
    codes = await store.accounts.confirm_enrolment(actor, pyotp.TOTP(enrolment.secret).at(clock()))
    assert len(codes) == 10
    # a voluntary second factor is then asked for at every sign-in
    with pytest.raises(SecondFactorRequired):
        await store.accounts.login("kasia", PASSWORD)


async def test_temporary_password_must_be_changed_at_first_sign_in(store, clock):
    await store.accounts.add_staff(
        SYSTEM, "marek", ["consultant"], "temporary pass 2026", full_name="Marek Zielony", temporary=True
    )
    with pytest.raises(PasswordChangeRequired):
        await store.accounts.login("marek", "temporary pass 2026")
    for bad, why in (
        ("short one", "at least 12"),
        ("password1234", "commonly used"),
        ("zielony-marek-9", "name"),
        ("temporary pass 2026", "differ"),
    ):
        with pytest.raises(InvalidInput, match=why):
            await store.accounts.login("marek", "temporary pass 2026", new_password=bad)
    session = await store.accounts.login("marek", "temporary pass 2026", new_password="my chosen passphrase")
    assert not session.staff.must_change_password
    with pytest.raises(AuthenticationFailed):
        await store.accounts.login("marek", "temporary pass 2026")
    assert (await store.accounts.login("marek", "my chosen passphrase")).staff.name == "marek"


async def test_changing_your_own_password(store, make_staff):
    await make_staff("kasia", "consultant")
    here = await store.accounts.login("kasia", PASSWORD)
    elsewhere = await store.accounts.login("kasia", PASSWORD)
    actor = here.staff.as_actor()
    with pytest.raises(AuthenticationFailed, match="current password"):
        await store.accounts.change_own_password(actor, "not my password", "a brand new passphrase")
    with pytest.raises(InvalidInput, match="at least 12"):
        await store.accounts.change_own_password(actor, PASSWORD, "too short")
    await store.accounts.change_own_password(actor, PASSWORD, "a brand new passphrase", keep_token=here.token)
    assert (await store.accounts.authenticate(here.token)).name == "kasia"
    with pytest.raises(SessionExpired):
        await store.accounts.authenticate(elsewhere.token)
    assert (await store.accounts.login("kasia", "a brand new passphrase")).staff.name == "kasia"


async def test_verify_sign_in_says_why_and_spends_nothing(mfa_store, make_staff, clock):
    st = mfa_store
    await make_staff("ala", "designated")
    await make_staff("kasia", "consultant")
    check = await st.accounts.verify_sign_in(SYSTEM, "ala", PASSWORD)
    assert (check.ok, check.reason) == (False, "second_factor_not_enrolled")
    secret, _codes = await enrol(st, clock, "ala")
    clock.advance(seconds=60)
    assert (await st.accounts.verify_sign_in(SYSTEM, "ala", PASSWORD)).reason == "second_factor_missing"
    code = pyotp.TOTP(secret).at(clock())
    assert (await st.accounts.verify_sign_in(SYSTEM, "ala", PASSWORD, otp=code)).ok
    assert (await st.accounts.login("ala", PASSWORD, otp=code)).staff.name == "ala"  # verify did not spend it
    assert (await st.accounts.verify_sign_in(SYSTEM, "kasia", "wrong password here")).reason == "wrong_password"
    assert (await st.accounts.verify_sign_in(SYSTEM, "nobody", PASSWORD)).reason == "unknown_user"
    await st.accounts.set_disabled(SYSTEM, "kasia", True)
    assert (await st.accounts.verify_sign_in(SYSTEM, "kasia", PASSWORD)).reason == "disabled"
    for _ in range(st.settings.lockout_failures):
        with pytest.raises(AuthenticationFailed):
            await st.accounts.login("ala", "wrong password here")
    assert (await st.accounts.verify_sign_in(SYSTEM, "ala", PASSWORD)).reason == "locked"
    audited = await audit_log(st, action="staff.verify_sign_in")
    assert len(audited) == 7
    consultant = (await st.accounts.get("kasia")).as_actor()
    from store.errors import NotPermitted

    with pytest.raises(NotPermitted):
        await st.accounts.verify_sign_in(consultant, "ala", PASSWORD)
