"""Snapshot (pytest-textual-snapshot) of the request register at 80x24: overdue and due-soon rows stand out."""

from __future__ import annotations

import asyncio
from datetime import date, datetime, timezone
from pathlib import Path

import pytest
from textual.app import App

from store import Store
from store.clock import ManualClock
from store.settings import Settings
from tests.fixtures.requests import call_request, chat_request
from tests.fixtures.store import PASSWORD, SYSTEM
from tests.fixtures.tui import wait_until
from tui.context import TuiContext
from tui.screens.requests import RequestsScreen

NOW = datetime(2026, 3, 25, 9, 0, tzinfo=timezone.utc)


class RegisterApp(App[None]):
    """Opens its own store in its own event loop (the snapshot plugin runs the app itself)."""

    def __init__(self, settings: Settings, clock: ManualClock) -> None:
        super().__init__()
        self.settings, self.clock = settings, clock
        self.store: Store | None = None

    async def on_mount(self) -> None:
        self.store = await Store.open(self.settings, clock=self.clock)
        registrar = (await self.store.accounts.get("rejestr")).as_actor()
        await self.push_screen(RequestsScreen(TuiContext(self.store, self.settings, registrar, token="")))

    async def on_unmount(self) -> None:
        if self.store is not None:
            await self.store.close()


@pytest.fixture
def register_app(tmp_path: Path) -> RegisterApp:
    settings = Settings.load(tmp_path / "data", env={}, password_profile="fast")
    clock = ManualClock(NOW)

    async def prepare() -> None:
        store = await Store.open(settings, create=True, clock=clock)
        try:
            registrar = (await store.accounts.add_staff(SYSTEM, "rejestr", ["designated"], PASSWORD)).as_actor()
            await store.requests.register(
                registrar, call_request(received_on=date(2026, 2, 20), hint={"date": "2026-02-19"})
            )
            await store.requests.register(
                registrar, chat_request(received_on=date(2026, 3, 24), hint={"date": "2026-03-23"})
            )
            await store.requests.register(
                registrar,
                call_request(
                    received_on=date(2026, 3, 1), requester_name="Łucja [b]Źrebię[/b]", hint={"date": "2026-02-27"}
                ),
            )
        finally:
            await store.close()

    asyncio.run(prepare())
    return RegisterApp(settings, clock)


def test_request_register(snap_compare, register_app) -> None:
    async def run_before(pilot) -> None:
        await wait_until(
            pilot,
            lambda: isinstance(pilot.app.screen, RequestsScreen) and pilot.app.screen.requests,
            what="the register",
        )
        await pilot.pause()

    assert snap_compare(register_app, terminal_size=(80, 24), run_before=run_before)


@pytest.mark.staff_lang("pl")
def test_request_register_in_polish(snap_compare, register_app) -> None:
    """The same register as staff see it by default: Polish words, local Polish dates, at 80x24."""

    async def run_before(pilot) -> None:
        await wait_until(
            pilot,
            lambda: isinstance(pilot.app.screen, RequestsScreen) and pilot.app.screen.requests,
            what="the register",
        )
        await pilot.pause()

    assert snap_compare(register_app, terminal_size=(80, 24), run_before=run_before)
