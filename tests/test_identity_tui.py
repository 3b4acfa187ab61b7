"""Pilot tests: second-factor enrolment and sign-in with a code, a forced password change, and My account (F8)."""

from __future__ import annotations

import pyotp
import pytest

from store import Store
from tests.fixtures.store import PASSWORD, SYSTEM
from tests.fixtures.tui import SIZE, notifications, sign_in, wait_until
from tui.app import make_app


@pytest.fixture
async def mfa_store(settings, clock):
    st = await Store.open(settings.with_(mfa_roles="designated"), create=True, clock=clock)
    try:
        yield st
    finally:
        await st.close()


def build(st: Store, clock):
    return make_app(st.settings, store=st, clock=clock, session_check_seconds=3600)


def screen_name(app) -> str:
    return type(app.screen).__name__


async def test_enrolment_at_first_sign_in_shows_a_qr_code_once_then_recovery_codes(mfa_store, clock):
    await mfa_store.accounts.add_staff(SYSTEM, "alicja", ["designated"], PASSWORD)
    app = build(mfa_store, clock)
    async with app.run_test(size=SIZE) as pilot:
        await sign_in(pilot, "alicja", PASSWORD, expect_home=False)
        await wait_until(pilot, lambda: screen_name(app) == "EnrolmentModal", what="the enrolment dialog")
        modal = app.screen
        qr = str(modal.query_one("#enrolment-qr").render())
        assert "█" in qr or "▀" in qr
        assert modal.secret[:4] in str(modal.query_one("#enrolment-secret").render())
        # a wrong-looking code is refused in the dialog itself
        modal.query_one("#enrolment-code").value = "12"
        await pilot.press("enter")
        assert screen_name(app) == "EnrolmentModal"
        modal.query_one("#enrolment-code").value = pyotp.TOTP(modal.secret).at(clock())
        await pilot.press("enter")
        await wait_until(pilot, lambda: screen_name(app) == "RecoveryCodesModal", what="the recovery codes")
        shown = str(app.screen.query_one("#recovery-code-list").render())
        assert len(shown.split()) == 10
        await pilot.press("enter")
        await wait_until(pilot, lambda: screen_name(app) == "HomeScreen", what="the home screen")
    assert (await mfa_store.accounts.get("alicja")).second_factor == "active"


async def test_sign_in_with_a_code_and_a_wrong_one(mfa_store, clock):
    await mfa_store.accounts.add_staff(SYSTEM, "alicja", ["designated"], PASSWORD)
    enrolment = await mfa_store.accounts.begin_enrolment((await mfa_store.accounts.get("alicja")).as_actor())
    totp = pyotp.TOTP(enrolment.secret)
    await mfa_store.accounts.confirm_enrolment((await mfa_store.accounts.get("alicja")).as_actor(), totp.at(clock()))
    clock.advance(seconds=60)
    app = build(mfa_store, clock)
    async with app.run_test(size=SIZE) as pilot:
        await sign_in(pilot, "alicja", PASSWORD, expect_home=False)
        screen = app.screen
        await wait_until(pilot, lambda: screen.query_one("#otp-box").display, what="the code field")
        wrong = "000000" if totp.at(clock()) != "000000" else "111111"
        screen.query_one("#otp").value = wrong
        screen.query_one("#otp").focus()
        await pilot.press("enter")
        await wait_until(
            pilot,
            lambda: "Wrong or already used code" in str(screen.query_one("#login-message").render()),
            what="the wrong-code message",
        )
        screen.query_one("#otp").value = totp.at(clock())
        screen.query_one("#otp").focus()
        await pilot.press("enter")
        await wait_until(pilot, lambda: screen_name(app) == "HomeScreen", what="the home screen")


async def test_temporary_password_is_changed_at_sign_in(store, tui_app, clock):
    await store.accounts.add_staff(SYSTEM, "marek", ["consultant"], "temporary pass 2026", temporary=True)
    app = tui_app()
    async with app.run_test(size=SIZE) as pilot:
        await sign_in(pilot, "marek", "temporary pass 2026", expect_home=False)
        screen = app.screen
        await wait_until(pilot, lambda: screen.query_one("#new-password-box").display, what="the new-password fields")
        screen.query_one("#new-password").value = "short"
        screen.query_one("#new-password-again").value = "short"
        screen.query_one("#new-password-again").focus()
        await pilot.press("enter")
        await wait_until(
            pilot, lambda: "at least 12" in str(screen.query_one("#login-message").render()), what="the policy message"
        )
        screen.query_one("#new-password").value = "my chosen passphrase"
        screen.query_one("#new-password-again").value = "my chosen passphrase"
        screen.query_one("#new-password-again").focus()
        await pilot.press("enter")
        await wait_until(pilot, lambda: screen_name(app) == "HomeScreen", what="the home screen")
    assert (await store.accounts.login("marek", "my chosen passphrase")).staff.name == "marek"


async def test_my_account_changes_the_password_and_sets_up_a_second_factor(store, tui_app, make_staff, clock):
    await make_staff("kasia", "consultant")
    app = tui_app()
    async with app.run_test(size=SIZE) as pilot:
        await sign_in(pilot, "kasia", PASSWORD)
        await pilot.press("ctrl+u")
        await wait_until(pilot, lambda: screen_name(app) == "AccountScreen", what="my account")
        assert "not set up" in str(app.screen.query_one("#account-facts").render())
        await pilot.press("p")
        await wait_until(pilot, lambda: screen_name(app) == "ChangePasswordModal", what="the password dialog")
        modal = app.screen
        modal.query_one("#current").value = PASSWORD
        modal.query_one("#new").value = "kasia's new one"  # her name: refused by the store
        modal.query_one("#again").value = "kasia's new one"
        modal.query_one("#again").focus()
        await pilot.press("enter")
        await wait_until(pilot, lambda: "your user name" in modal.error, what="the refusal, in the dialog")
        assert app.screen is modal and modal.query_one("#current").value == PASSWORD  # kept, to try again
        modal.query_one("#new").value = "an entirely new passphrase"
        modal.query_one("#again").value = "an entirely new passphrase"
        modal.query_one("#again").focus()
        await pilot.press("enter")
        await wait_until(pilot, lambda: any("Password changed" in m for m in notifications(app)), what="the change")
        assert app.ctx is not None  # still signed in: only the other sessions end
        await pilot.press("t")
        await wait_until(pilot, lambda: screen_name(app) == "EnrolmentModal", what="the enrolment dialog")
        modal = app.screen
        modal.query_one("#enrolment-code").value = pyotp.TOTP(modal.secret).at(clock())
        await pilot.press("enter")
        await wait_until(pilot, lambda: screen_name(app) == "RecoveryCodesModal", what="the recovery codes")
        await pilot.press("escape")
        await wait_until(
            pilot,
            lambda: (
                screen_name(app) == "AccountScreen"
                and "set up (10 recovery" in str(app.screen.query_one("#account-facts").render())
            ),
            what="the account facts",
        )
    assert (await store.accounts.get("kasia")).second_factor == "active"
