"""Snapshots (pytest-textual-snapshot) of the archive search and a call's detail at 80x24, with fixed data and time."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone
from pathlib import Path

import pytest
from textual.widgets import DataTable

from store import Store
from store.calls import seed_demo_calls
from store.clock import ManualClock
from store.settings import Settings
from tests.fixtures.store import PASSWORD, SYSTEM
from tests.fixtures.tui import sign_in, wait_until
from tui.app import make_app
from tui.screens.archive import ArchiveDetailScreen, ArchiveScreen

START = datetime(2026, 3, 2, 12, 0, tzinfo=timezone.utc)


@pytest.fixture
def archive_app(tmp_path: Path):
    settings = Settings.load(tmp_path / "data", env={}, password_profile="fast", opening_hours="always")
    clock = ManualClock(START)

    async def prepare() -> None:
        store = await Store.open(settings, create=True, clock=clock)
        try:
            await store.accounts.add_staff(SYSTEM, "anna", ["consultant"], PASSWORD, extensions=["201"])
            await store.accounts.add_staff(SYSTEM, "maria", ["designated"], PASSWORD)
            await seed_demo_calls(store, tmp_path / "pbx")
        finally:
            await store.close()

    asyncio.run(prepare())
    return make_app(settings, clock=clock, session_check_seconds=3600)


async def _search(pilot) -> ArchiveScreen:
    app = pilot.app
    await sign_in(pilot, "maria", PASSWORD)
    await pilot.press("f3")
    screen = await wait_until(pilot, lambda: isinstance(app.screen, ArchiveScreen) and app.screen, what="archive")
    await pilot.click("#number")
    await pilot.press("enter")
    await wait_until(pilot, lambda: screen.query_one("#results", DataTable).row_count == 5, what="results")
    return screen


def test_archive_search_results(snap_compare, archive_app) -> None:
    assert snap_compare(archive_app, terminal_size=(80, 24), run_before=_search)


def test_archive_call_detail_with_levels(snap_compare, archive_app) -> None:
    async def run_before(pilot) -> None:
        screen = await _search(pilot)
        table = screen.query_one("#results", DataTable)
        table.move_cursor(row=4)  # the oldest: an answered incoming call with its recording
        await pilot.press("enter")
        await wait_until(
            pilot,
            lambda: isinstance(pilot.app.screen, ArchiveDetailScreen) and pilot.app.screen.query_one("#levels").display,
            what="the level sparkline",
        )

    assert snap_compare(archive_app, terminal_size=(80, 24), run_before=run_before)
