"""The staff TUI without a chat server: sign-in, navigation by role, session expiry, staff accounts, literal text."""

from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest
from textual.widgets import DataTable, OptionList, Static

from store.errors import AuthenticationFailed
from tests.fixtures.store import PASSWORD
from tests.fixtures.tui import SIZE, notifications, sign_in, wait_until
from tui.areas import areas_for
from tui.live import ChatLine
from tui.screens.home import HomeScreen
from tui.screens.login import LoginScreen
from tui.widgets.literal import literal, visible_text
from tui.widgets.transcript import format_line

HOSTILE = ["[b]x[/b]", "[link=http://evil]x[/link]", "\x1b[31mred", "[/]", "[bold red]alarm", "\x1b]8;;http://e\x07y"]


# -- literal resident text (unit level; the Pilot version is in test_tui_live.py) -------------------


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_text_is_shown_literally_without_style(text: str) -> None:
    rendered = format_line(
        ChatLine(seq=3, sender="resident", text=text, at=datetime(2026, 3, 2, 9, 5, tzinfo=timezone.utc)),
        ZoneInfo("Europe/Warsaw"),
    )
    body = rendered.plain.split("Resident: ", 1)[1]
    assert body == visible_text(text)
    assert "\x1b" not in rendered.plain and "\x07" not in rendered.plain
    # no span styles the resident's part: markup stayed characters
    start = len(rendered.plain) - len(body)
    assert all(span.end <= start for span in rendered.spans)
    assert not literal(text).spans


def test_control_characters_become_visible_stand_ins() -> None:
    assert visible_text("\x1b[31mred") == "\u241b[31mred"
    assert visible_text("a\rb\x00c\x7f\u202eevil") == "a\u240db\u2400c\u2421\ufffdevil"
    assert visible_text("line one\nline two\tx") == "line one\nline two    x"


# -- sign-in --------------------------------------------------------------------------------------


async def test_wrong_password_shows_a_clear_message_and_stays_on_login(tui_app, make_staff) -> None:
    await make_staff("anna", "consultant")
    app = tui_app()
    async with app.run_test(size=SIZE) as pilot:
        await sign_in(pilot, "anna", "not the password", expect_home=False)
        message = app.screen.query_one("#login-message", Static)
        await wait_until(pilot, lambda: "Wrong user name or password" in str(message.render()), what="the error")
        assert isinstance(app.screen, LoginScreen)
        assert app.ctx is None
        assert app.screen.query_one("#password").value == ""  # the wrong password is not left on screen


async def test_unknown_user_gets_the_same_message_as_a_wrong_password(tui_app) -> None:
    app = tui_app()
    async with app.run_test(size=SIZE) as pilot:
        await sign_in(pilot, "nobody", "whatever-123", expect_home=False)
        message = app.screen.query_one("#login-message", Static)
        await wait_until(pilot, lambda: "Wrong user name or password" in str(message.render()), what="the error")


async def test_empty_fields_are_refused_before_asking_the_store(tui_app) -> None:
    app = tui_app()
    async with app.run_test(size=SIZE) as pilot:
        await sign_in(pilot, "  ", "", expect_home=False)
        assert "Enter your user name" in str(app.screen.query_one("#login-message", Static).render())


async def test_repeated_failures_lock_the_account_and_say_so(tui_app, make_staff, settings) -> None:
    await make_staff("anna", "consultant")
    app = tui_app()
    async with app.run_test(size=SIZE) as pilot:
        message = app.screen.query_one("#login-message", Static)
        for _ in range(settings.lockout_failures):
            await sign_in(pilot, "anna", "wrong-password", expect_home=False)
            await wait_until(pilot, lambda: "Wrong" in str(message.render()), what="the refusal")
            message.update("")
        await sign_in(pilot, "anna", PASSWORD, expect_home=False)  # even the right password is refused now
        await wait_until(pilot, lambda: "Account locked" in str(message.render()), what="the lockout message")
        assert isinstance(app.screen, LoginScreen)


async def test_success_shows_only_the_areas_of_the_roles(tui_app, make_staff) -> None:
    anna = await make_staff("anna", "consultant")
    app = tui_app()
    async with app.run_test(size=SIZE) as pilot:
        await sign_in(pilot, "anna", PASSWORD)
        home = app.screen
        assert isinstance(home, HomeScreen)
        shown = [
            home.query_one("#areas", OptionList).get_option_at_index(i).id
            for i in range(home.query_one("#areas", OptionList).option_count)
        ]
        assert shown == [a.key for a in areas_for(anna.as_actor())]
        assert "chats" in shown and "accounts" not in shown
        # the accounts key does nothing for a consultant, and the attempt goes nowhere
        await pilot.press("f9")
        await pilot.pause()
        assert isinstance(app.screen, HomeScreen)
        assert "anna" in app.sub_title


async def test_it_admin_sees_accounts_not_live_chats(tui_app, make_staff) -> None:
    await make_staff("root", "it_admin")
    app = tui_app()
    async with app.run_test(size=SIZE) as pilot:
        await sign_in(pilot, "root", PASSWORD)
        areas = app.screen.query_one("#areas", OptionList)
        shown = [areas.get_option_at_index(i).id for i in range(areas.option_count)]
        assert "accounts" in shown and "chats" not in shown
        await pilot.press("f2")
        await pilot.pause()
        assert isinstance(app.screen, HomeScreen)


async def test_session_expiring_while_open_returns_to_login_with_a_notice(tui_app, make_staff, clock, store) -> None:
    await make_staff("anna", "consultant")
    app = tui_app()
    async with app.run_test(size=SIZE) as pilot:
        await sign_in(pilot, "anna", PASSWORD)
        token = app.ctx.token
        clock.advance(hours=13)  # past the session lifetime
        await pilot.press("down")  # activity: the next check refreshes, and finds the session gone
        assert await app.check_session() is False
        await wait_until(pilot, lambda: isinstance(app.screen, LoginScreen), what="the login screen")
        await pilot.pause(0.1)  # let the new screen finish mounting before the test ends the app
        assert "session" in str(app.screen.query_one("#login-message", Static).render())
        assert app.ctx is None
        with pytest.raises(Exception):
            await store.accounts.authenticate(token)


async def test_an_idle_person_is_not_kept_signed_in_by_the_app(tui_app, make_staff, clock, settings) -> None:
    await make_staff("anna", "consultant")
    app = tui_app()
    async with app.run_test(size=SIZE) as pilot:
        await sign_in(pilot, "anna", PASSWORD)
        app._active_since_check = False
        clock.advance(minutes=settings.session_idle_minutes + 1)
        assert await app.check_session() is True  # idle: nothing refreshed, nothing checked
        await pilot.press("down")
        assert await app.check_session() is False
        await wait_until(pilot, lambda: isinstance(app.screen, LoginScreen), what="the login screen")
        await pilot.pause(0.1)  # let the new screen finish mounting before the test ends the app


async def test_sign_out_revokes_the_session(tui_app, make_staff, store) -> None:
    await make_staff("anna", "consultant")
    app = tui_app()
    async with app.run_test(size=SIZE) as pilot:
        await sign_in(pilot, "anna", PASSWORD)
        token = app.ctx.token
        await pilot.press("f12")
        await wait_until(pilot, lambda: isinstance(app.screen, LoginScreen), what="the login screen")
        await pilot.pause(0.1)  # let the new screen finish mounting before the test ends the app
        with pytest.raises(Exception):
            await store.accounts.authenticate(token)


async def test_live_chats_without_a_server_say_how_to_get_one(tui_app, make_staff) -> None:
    await make_staff("anna", "consultant")
    app = tui_app(server_url=None)
    async with app.run_test(size=SIZE) as pilot:
        await sign_in(pilot, "anna", PASSWORD)
        await pilot.press("f2")
        await wait_until(pilot, lambda: type(app.screen).__name__ == "ChatsScreen", what="the chats screen")
        assert "cim serve" in str(app.screen.query_one("#chat-title", Static).render())
        assert app.screen.query_one("#composer").disabled


# -- staff accounts ---------------------------------------------------------------------------------


async def _accounts(pilot, app) -> DataTable:
    await pilot.press("f9")
    await wait_until(pilot, lambda: type(app.screen).__name__ == "AccountsScreen", what="the accounts screen")
    table = app.screen.query_one("#accounts-table", DataTable)
    await wait_until(pilot, lambda: table.row_count > 0, what="the staff list")
    return table


async def _goto_row(pilot, table: DataTable, name: str) -> None:
    names = [s.name for s in pilot.app.screen.staff]
    table.move_cursor(row=names.index(name))
    await pilot.pause()


async def test_admin_adds_a_staff_member_who_can_then_sign_in(tui_app, make_staff, store) -> None:
    await make_staff("root", "it_admin")
    app = tui_app()
    async with app.run_test(size=SIZE) as pilot:
        await sign_in(pilot, "root", PASSWORD)
        table = await _accounts(pilot, app)
        await pilot.press("a")
        await wait_until(pilot, lambda: type(app.screen).__name__ == "NewStaffModal", what="the new-account dialog")
        modal = app.screen
        modal.query_one("#name").value = "ewa"
        modal.query_one("#full-name").value = "Ewa [b]Bold[/b]"
        modal.query_one("#password").value = "ewa-password-1"
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: table.row_count == 2, what="the new row")
        ewa = await store.accounts.get("ewa")
        assert {r.value for r in ewa.roles} == {"consultant"}
        assert ewa.full_name == "Ewa [b]Bold[/b]"
        session = await store.accounts.login("ewa", "ewa-password-1")
        assert session.staff.name == "ewa"


async def test_admin_errors_from_the_store_are_shown_not_swallowed(tui_app, make_staff) -> None:
    await make_staff("root", "it_admin")
    app = tui_app()
    async with app.run_test(size=SIZE) as pilot:
        await sign_in(pilot, "root", PASSWORD)
        await _accounts(pilot, app)
        await pilot.press("a")
        await wait_until(pilot, lambda: type(app.screen).__name__ == "NewStaffModal", what="the dialog")
        app.screen.query_one("#name").value = "root"  # exists already
        app.screen.query_one("#password").value = "short"
        await pilot.press("ctrl+s")
        modal = app.screen
        await wait_until(
            pilot,
            lambda: "password" in modal.error or "already exists" in modal.error,
            what="the error, shown in the dialog",
        )
        assert app.screen is modal and modal.query_one("#name").value == "root"


async def test_admin_disables_changes_roles_and_resets_password(tui_app, make_staff, store) -> None:
    await make_staff("root", "it_admin")
    await make_staff("anna", "consultant")
    victim_session = await store.accounts.login("anna", PASSWORD)
    app = tui_app()
    async with app.run_test(size=SIZE) as pilot:
        await sign_in(pilot, "root", PASSWORD)
        table = await _accounts(pilot, app)
        await _goto_row(pilot, table, "anna")
        await pilot.press("d")
        await wait_until(pilot, lambda: type(app.screen).__name__ == "ConfirmModal", what="the confirmation")
        await pilot.press("y")
        await wait_until(pilot, lambda: any("disabled" in m for m in notifications(app)), what="disabled")
        assert (await store.accounts.get("anna")).disabled
        with pytest.raises(Exception):
            await store.accounts.authenticate(victim_session.token)  # disabling ends her sessions

        await _goto_row(pilot, table, "anna")
        await pilot.press("d")
        await wait_until(pilot, lambda: type(app.screen).__name__ == "ConfirmModal", what="the confirmation")
        await pilot.press("y")
        await wait_until(
            pilot,
            lambda: (
                not app.screen.staff[[s.name for s in app.screen.staff].index("anna")].disabled
                if type(app.screen).__name__ == "AccountsScreen"
                else False
            ),
            what="enabled again",
        )

        await _goto_row(pilot, table, "anna")
        await pilot.press("r")
        await wait_until(pilot, lambda: type(app.screen).__name__ == "RolesModal", what="the roles dialog")
        roles = app.screen.query_one("#roles")
        roles.select("designated")
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: any("Roles of anna" in m for m in notifications(app)), what="roles saved")
        assert {r.value for r in (await store.accounts.get("anna")).roles} == {"consultant", "designated"}

        await _goto_row(pilot, table, "anna")
        await pilot.press("p")
        await wait_until(pilot, lambda: type(app.screen).__name__ == "PasswordModal", what="the password dialog")
        app.screen.query_one("#password").value = "brand-new-pass"
        app.screen.query_one("#again").value = "brand-new-pass-typo"
        app.screen.query_one("#again").focus()
        await pilot.press("enter")
        assert type(app.screen).__name__ == "PasswordModal"  # mismatch: not dismissed
        app.screen.query_one("#again").value = "brand-new-pass"
        await pilot.press("enter")
        await wait_until(pilot, lambda: any("Password of anna" in m for m in notifications(app)), what="reset")
    assert (await store.accounts.login("anna", "brand-new-pass")).staff.name == "anna"
    with pytest.raises(AuthenticationFailed):
        await store.accounts.login("anna", PASSWORD)


async def test_admin_cannot_disable_themself(tui_app, make_staff, store) -> None:
    await make_staff("root", "it_admin")
    app = tui_app()
    async with app.run_test(size=SIZE) as pilot:
        await sign_in(pilot, "root", PASSWORD)
        table = await _accounts(pilot, app)
        await _goto_row(pilot, table, "root")
        await pilot.press("d")
        await wait_until(pilot, lambda: any("your own account" in m for m in notifications(app)), what="refusal")
        assert not (await store.accounts.get("root")).disabled


async def test_an_unexpected_worker_failure_becomes_a_notification(tui_app, make_staff, store) -> None:
    await make_staff("root", "it_admin")
    app = tui_app()
    async with app.run_test(size=SIZE) as pilot:
        await sign_in(pilot, "root", PASSWORD)
        await _accounts(pilot, app)
        await store.db.close()  # the database goes away under the screen
        app.screen.reload()
        await wait_until(
            pilot, lambda: any("Unexpected error" in m for m in notifications(app)), what="the failure notice"
        )


async def test_sign_in_with_the_database_gone_says_so_and_allows_a_retry(tui_app, make_staff, store) -> None:
    await make_staff("anna", "consultant")
    app = tui_app()
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, LoginScreen), what="the login screen")
        await store.db.close()
        await sign_in(pilot, "anna", PASSWORD, expect_home=False)
        message = app.screen.query_one("#login-message", Static)
        await wait_until(pilot, lambda: "Cannot sign in" in str(message.render()), what="the message")
        await wait_until(
            pilot, lambda: any("Unexpected error" in m for m in notifications(app)), what="the failure notice"
        )
        assert not app.screen.query_one("#sign-in").disabled


def _visible_texts(screen) -> str:
    """Everything the login screen shows: each widget's rendered text (password fields render masked)."""
    from textual.widgets import Input as _Input

    parts = []
    for widget in screen.query("*"):
        if isinstance(widget, _Input):
            parts.append(widget.value if not widget.password else "")
        try:
            parts.append(str(widget.render()))
        except Exception:  # noqa: BLE001 - containers without a text rendering
            continue
    return "\n".join(parts)


async def _refused_without_showing(pilot, screen, name: str, secret: str) -> None:
    """The sign-in as `name` was refused: the name field keeps `name`, and `secret` is on screen neither
    before the refusal arrives nor after it."""
    assert screen.query_one("#name").value == name
    assert secret not in _visible_texts(screen)
    message = screen.query_one("#login-message", Static)
    await wait_until(pilot, lambda: "Wrong user name or password" in str(message.render()), what="the error")
    assert secret not in _visible_texts(screen)
    assert screen.query_one("#name").value == name


async def test_a_pasted_name_tab_password_never_shows_the_password(tui_app, make_staff) -> None:
    from textual import events

    await make_staff("anna", "consultant")
    app = tui_app()
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, LoginScreen), what="the login screen")
        screen = app.screen
        app.post_message(events.Paste("anna\tsecretpw\r"))
        await pilot.pause()
        await _refused_without_showing(pilot, screen, "anna", "secretpw")


async def test_name_tab_password_enter_typed_in_one_burst_keeps_the_password_masked(tui_app, make_staff) -> None:
    await make_staff("anna", "consultant")
    app = tui_app()
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, LoginScreen), what="the login screen")
        screen = app.screen
        await pilot.press(*"anna", "tab", *"secretpw", "enter")
        await _refused_without_showing(pilot, screen, "anna", "secretpw")
        # a Tab arriving as a character inside the name (a terminal burst) also moves on to the password
        screen.query_one("#name").value = ""
        screen.query_one("#name").focus()
        screen.query_one("#name").insert_text_at_cursor("anna\tother-secret")
        await pilot.pause()
        assert screen.query_one("#name").value == "anna"
        assert screen.query_one("#password").value == "other-secret"
        assert "other-secret" not in _visible_texts(screen)
