"""Property-based fuzzing of the TUI's forms through Pilot: random text never crashes a screen and is never read as markup."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from textual.app import App
from textual.widgets import DataTable

from store import Store
from store.clock import ManualClock
from store.models import Actor
from store.settings import Settings
from tests.fixtures.reliability import FUZZ
from tests.fixtures.store import PASSWORD, SYSTEM
from tests.fixtures.tui import SIZE, wait_until
from tui.app import make_app
from tui.context import TuiContext
from tui.screens.home import HomeScreen
from tui.screens.login import LoginScreen
from tui.screens.requests import RequestsScreen
from tui.widgets.literal import visible_text
from tui.widgets.request_forms import FormModal

#: Each example starts a whole Textual app, so the CI size is small; CIM_STRESS=1 gives the profile's count.
TUI_SETTINGS = settings(
    FUZZ,
    max_examples=max(6, FUZZ.max_examples // 5),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

MARKUP = [
    "[b]",
    "[/b]",
    "[/]",
    "[link=http://evil.example]",
    "[@click=app.quit]",
    "[red on blue]",
    "\\[",
    "]",
    "[",
    "\x1b[31m",
    "\x1b]8;;http://x\x1b\\",
    "$",
    "{0}",
    "%s",
    "ż",
    "🙂",
    "\u202e",
    " ",
    "\t",
    "x",
    "\x00",
]
hostile_text = st.one_of(st.text(max_size=60), st.lists(st.sampled_from(MARKUP), max_size=10).map("".join))
START = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)


def _store_settings(base: Path) -> Settings:
    return Settings.load(base / "data", env={}, password_profile="fast", opening_hours="always")


async def _open(base: Path) -> Store:
    store = await Store.open(_store_settings(base), create=True, clock=ManualClock(START))
    if not await store.db.fetchone("SELECT 1 FROM staff WHERE name = 'rejestr'"):
        system = Actor.system("fuzz")
        await store.accounts.add_staff(system, "rejestr", ["designated"], PASSWORD)
    return store


def test_fuzz_the_login_form(tmp_path_factory) -> None:
    base = tmp_path_factory.mktemp("login")

    @TUI_SETTINGS
    @given(hostile_text, hostile_text)
    def example(name: str, password: str) -> None:
        async def run() -> None:
            store = await _open(base)
            try:
                app = make_app(store.settings, store=store, clock=store.clock, session_check_seconds=3600)
                async with app.run_test(size=SIZE) as pilot:
                    await wait_until(pilot, lambda: isinstance(app.screen, LoginScreen), what="the login screen")
                    screen = app.screen
                    screen.query_one("#name").value = name
                    screen.query_one("#password").value = password
                    screen.query_one("#password").focus()
                    await pilot.press("enter")

                    def answered() -> Any:
                        if isinstance(app.screen, HomeScreen):
                            return "home"
                        text = str(app.screen.query_one("#login-message").render())
                        return text if text and text != "Signing in…" else None

                    answer = await wait_until(pilot, answered, what="an answer to the sign-in")
                    assert answer in (
                        "Enter your user name.",
                        "Enter your password.",
                        "Wrong user name or password.",
                    ) or answer.startswith("Account locked"), answer
            finally:
                await store.close()

        asyncio.run(run())

    example()


class RequestsApp(App[None]):
    def __init__(self, ctx: TuiContext) -> None:
        super().__init__()
        self.ctx = ctx

    async def on_mount(self) -> None:
        await self.push_screen(RequestsScreen(self.ctx))


def test_fuzz_the_request_register_form(tmp_path_factory) -> None:
    base = tmp_path_factory.mktemp("register")

    @TUI_SETTINGS
    @given(hostile_text, hostile_text, hostile_text, st.sampled_from(["601 234 567", "", "abc", "+48 601 234 567"]))
    def example(name: str, address: str, justification: str, phone: str) -> None:
        async def run() -> None:
            store = await _open(base)
            try:
                registrar = (await store.accounts.get("rejestr")).as_actor()
                before = len(await store.requests.list(SYSTEM))
                app = RequestsApp(TuiContext(store=store, settings=store.settings, actor=registrar, token=""))
                async with app.run_test(size=SIZE) as pilot:
                    await wait_until(pilot, lambda: isinstance(app.screen, RequestsScreen), what="the register")
                    await pilot.press("n")
                    form = await wait_until(
                        pilot, lambda: app.screen if isinstance(app.screen, FormModal) else None, what="the form"
                    )
                    for field, value in (
                        ("requester_name", name),
                        ("requester_address", address),
                        ("justification", justification),
                        ("requester_phone", phone),
                        ("date", "2026-02-24"),
                        ("received_on", "2026-03-01"),
                    ):
                        form.set_value(field, value)
                    await pilot.press("ctrl+s")
                    outcome = await wait_until(
                        pilot,
                        lambda: "saved" if not isinstance(app.screen, FormModal) else (form.error or None),
                        what="the form's answer",
                    )
                    after = len(await store.requests.list(SYSTEM))
                    if outcome != "saved":
                        assert after == before, "a refused form stored nothing"
                        return
                    assert after == before + 1
                    newest = max(await store.requests.list(SYSTEM), key=lambda r: r.id)
                    table = app.screen.query_one("#requests-table", DataTable)
                    await wait_until(
                        pilot,
                        lambda: str(newest.id) in [k.value for k in table.rows],
                        what="the new request in the list",
                    )
                    shown = table.get_row(str(newest.id))[-1]
                    # what the table shows is what was stored, brackets kept and nothing styled by them; only
                    # control characters are shown by visible stand-ins (␛, �), never sent to the terminal
                    assert shown.plain == visible_text(newest.requester_name)
                    assert not any(span.style and "link" in str(span.style) for span in shown.spans)
            finally:
                await store.close()

        asyncio.run(run())

    example()
