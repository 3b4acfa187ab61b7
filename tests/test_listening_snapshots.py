"""Snapshots at 80x24 of the listening link dialog: from the archive, and from a §4.6 session (fixed token and time)."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone
from pathlib import Path

import pytest
from textual.app import App
from textual.widgets import DataTable

from store import Store
from store.calls import seed_demo_calls
from store.clock import ManualClock
from store.settings import Settings
from tests.fixtures.requests import CALL_AT, PHONE, call_request, insert_call
from tests.fixtures.store import PASSWORD, SYSTEM
from tests.fixtures.tui import sign_in, wait_until
from tui.app import make_app
from tui.context import TuiContext
from tui.screens.archive import ArchiveDetailScreen, ArchiveScreen
from tui.screens.requests import RequestDetailScreen
from tui.widgets.listen_link import ListenLinkModal
from tui.widgets.purpose import PurposeModal

START = datetime(2026, 3, 2, 12, 0, tzinfo=timezone.utc)
SESSION_AT = datetime(2026, 3, 20, 9, 0, tzinfo=timezone.utc)


def fixed_random(n: int) -> bytes:
    """A predictable token for the snapshot (the real one comes from secrets.token_bytes)."""
    return bytes(range(7, 7 + n))


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


def test_archive_listening_link(snap_compare, archive_app) -> None:
    async def run_before(pilot) -> None:
        app = pilot.app
        await sign_in(pilot, "maria", PASSWORD)
        app.store.listening.random = fixed_random
        await pilot.press("f3")
        screen = await wait_until(pilot, lambda: isinstance(app.screen, ArchiveScreen) and app.screen, what="archive")
        await pilot.click("#number")
        await pilot.press("enter")
        await wait_until(pilot, lambda: screen.query_one("#results", DataTable).row_count == 5, what="results")
        screen.query_one("#results", DataTable).move_cursor(row=4)  # the answered call with its recording
        await pilot.press("enter")
        await wait_until(
            pilot, lambda: isinstance(app.screen, ArchiveDetailScreen) and app.screen.detail, what="the detail"
        )
        await pilot.press("l")
        await wait_until(pilot, lambda: isinstance(app.screen, PurposeModal), what="the purpose dialog")
        await pilot.press(*"skarga 12/2026", "enter")
        await wait_until(pilot, lambda: isinstance(app.screen, ListenLinkModal), what="the link dialog")
        await pilot.pause()

    assert snap_compare(archive_app, terminal_size=(80, 24), run_before=run_before)


class SessionApp(App[None]):
    """A request's detail during its session, as the designated attendee sees it (own store, own loop)."""

    def __init__(self, settings: Settings, clock: ManualClock) -> None:
        super().__init__()
        self.settings, self.clock = settings, clock
        self.store: Store | None = None

    async def on_mount(self) -> None:
        self.store = await Store.open(self.settings, clock=self.clock)
        self.store.listening.random = fixed_random
        attendee = (await self.store.accounts.get("swiadek")).as_actor()
        request_id = (await self.store.requests.list(SYSTEM))[0].id
        await self.push_screen(
            RequestDetailScreen(
                TuiContext(self.store, self.settings, attendee, token="", server_url="http://127.0.0.1:8080"),
                request_id,
            )
        )

    async def on_unmount(self) -> None:
        if self.store is not None:
            await self.store.close()


@pytest.fixture
def session_app(tmp_path: Path) -> SessionApp:
    settings = Settings.load(tmp_path / "data", env={}, password_profile="fast")
    clock = ManualClock(datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc))

    async def prepare() -> None:
        store = await Store.open(settings, create=True, clock=clock)
        try:
            await store.accounts.add_department(SYSTEM, "WO", "Wydział Obsługi")
            made = {}
            for name, role, dept in (
                ("rejestr", "designated", None),
                ("dyrektor", "boi_director", None),
                ("iod", "dpo", None),
                ("naczelnik", "department_head", "WO"),
                ("swiadek", "designated", None),
            ):
                made[name] = (
                    await store.accounts.add_staff(SYSTEM, name, [role], PASSWORD, department=dept)
                ).as_actor()
            r = store.requests
            req = await r.register(made["rejestr"], call_request())
            call = await insert_call(store, at=CALL_AT, number=PHONE, department="WO")
            await r.link(made["rejestr"], req.id, call)
            await r.give_opinion(made["iod"], req.id, "dpo", "favourable", "Brak przeszkód.")
            await r.give_opinion(made["naczelnik"], req.id, "department", "favourable", "Zgoda.")
            await r.grant(
                made["dyrektor"],
                req.id,
                session_at=SESSION_AT,
                place="Sala 12",
                attendee_ids=[made["swiadek"].staff_id],
            )
            clock.now = SESSION_AT
            await r.start_session(made["swiadek"], req.id)
        finally:
            await store.close()

    asyncio.run(prepare())
    return SessionApp(settings, clock)


def test_session_listening_link(snap_compare, session_app) -> None:
    async def run_before(pilot) -> None:
        app = pilot.app
        await wait_until(
            pilot,
            lambda: (
                isinstance(app.screen, RequestDetailScreen) and app.screen.detail and app.screen.detail.conversations
            ),
            what="the request in session",
        )
        await app.workers.wait_for_complete()
        app.screen.query_one("#linked").focus()
        await pilot.press("v")
        await wait_until(pilot, lambda: isinstance(app.screen, ListenLinkModal), what="the link dialog")
        await pilot.pause()

    assert snap_compare(session_app, terminal_size=(80, 24), run_before=run_before)
