"""Snapshot (pytest-textual-snapshot) of the offline messages list at 80x24, in Polish (the staff's default)."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from textual.app import App

from store import Store
from store.clock import ManualClock
from store.settings import Settings
from tests.fixtures.store import PASSWORD, SYSTEM
from tests.fixtures.tui import wait_until
from tui.context import TuiContext
from tui.screens.offline import OfflineMessagesScreen

NOW = datetime(2026, 3, 2, 19, 30, tzinfo=timezone.utc)
MESSAGES = [
    (
        "Jan Kowalski",
        "jan.kowalski@example.pl",
        "Proszę o informację, do kiedy trzeba zapłacić podatek od nieruchomości.",
    ),
    (None, "601 234 567", "Zgubiłam Kartę Mieszkańca, jak zamówić duplikat?"),
    ("[b]Zbyszek[/b]", "+48 91 424 50 00", "Czy urząd jest otwarty w sobotę?"),
]


class OfflineApp(App[None]):
    """Opens its own store in its own event loop (the snapshot plugin runs the app itself)."""

    def __init__(self, settings: Settings, clock: ManualClock) -> None:
        super().__init__()
        self.settings, self.clock = settings, clock
        self.store: Store | None = None

    async def on_mount(self) -> None:
        self.store = await Store.open(self.settings, clock=self.clock)
        anna = (await self.store.accounts.get("anna")).as_actor()
        await self.push_screen(OfflineMessagesScreen(TuiContext(self.store, self.settings, anna, token="")))

    async def on_unmount(self) -> None:
        if self.store is not None:
            await self.store.close()


@pytest.fixture
def offline_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> OfflineApp:
    import itertools

    from store import resident_desk

    symbols = itertools.cycle("4F7KQ2XM9T")  # fixed references on the screen
    monkeypatch.setattr(resident_desk.secrets, "choice", lambda alphabet: next(symbols))
    settings = Settings.load(tmp_path / "data", env={}, password_profile="fast")
    clock = ManualClock(NOW)

    async def prepare() -> None:
        store = await Store.open(settings, create=True, clock=clock)
        try:
            await store.accounts.add_staff(SYSTEM, "anna", ["consultant"], PASSWORD)
            notice = await store.notices.current("chat", "pl")
            for name, contact, text in MESSAGES:
                await store.resident_desk.leave_message(notice.id, "pl", name, contact, text)
                clock.advance(minutes=47)
        finally:
            await store.close()

    asyncio.run(prepare())
    clock.now = NOW + timedelta(hours=13)
    return OfflineApp(settings, clock)


@pytest.mark.staff_lang("pl")
def test_offline_messages(snap_compare, offline_app) -> None:
    async def run_before(pilot) -> None:
        from textual.widgets import DataTable

        def ready() -> bool:
            if not isinstance(pilot.app.screen, OfflineMessagesScreen):
                return False
            table = pilot.app.screen.query_one(DataTable)
            widths = [c.get_render_width(table) for c in table.ordered_columns]
            return table.row_count == len(MESSAGES) and widths[0] >= len("CZ-2026-03-02-4F7K")

        await wait_until(pilot, ready, what="the list with its columns at their content's width")
        await pilot.pause(0.05)  # the columns take their content's width at the next refresh
        await pilot.pause()

    assert snap_compare(offline_app, terminal_size=(80, 24), run_before=run_before)
