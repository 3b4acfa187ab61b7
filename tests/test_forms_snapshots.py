"""Snapshots at 80x24 of the dialogs and the audit viewer after a refused save: error line and buttons on screen."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone
from pathlib import Path

import pytest

from store import Store
from store.clock import ManualClock
from store.settings import Settings
from tests.fixtures.store import PASSWORD, SYSTEM
from tests.fixtures.tui import sign_in, wait_until
from tui.app import make_app

START = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)
SIZE = (80, 24)
PURPOSE = "Wniosek CIM/2026/0007 Józefa Ślązaka o odsłuchanie rozmowy z 24 lutego w sprawie zasiłku"


@pytest.fixture
def office(tmp_path: Path):
    """A data dir with a registrar, a CIM manager, an IT admin and a director, and a few audit entries."""
    settings = Settings.load(tmp_path / "data", env={}, password_profile="fast")
    clock = ManualClock(START)

    async def prepare() -> None:
        store = await Store.open(settings, create=True, clock=clock)
        try:
            for name, role in (
                ("rejestr", "designated"),
                ("kierownik", "cim_manager"),
                ("root", "it_admin"),
                ("dyrektor", "boi_director"),
            ):
                await store.accounts.add_staff(SYSTEM, name, [role], PASSWORD, full_name=name.capitalize())
            anna = (await store.accounts.add_staff(SYSTEM, "anna", ["designated"], PASSWORD)).as_actor()
            async with store.db.write() as tx:
                await store.audit.append(
                    tx, anna, "archive.open_transcript", target_kind="conversation", target_id=7, purpose=PURPOSE
                )
                await store.audit.append(
                    tx,
                    anna,
                    "archive.open_recording",
                    target_kind="conversation",
                    target_id=8,
                    purpose="kontrola jakości",
                )
        finally:
            await store.close()

    asyncio.run(prepare())
    return make_app(settings, clock=clock, session_check_seconds=3600)


async def _open(pilot, key: str, screen: str) -> None:
    await pilot.press(key)
    await wait_until(pilot, lambda: type(pilot.app.screen).__name__ == screen, what=screen)


def test_register_form_refused(snap_compare, office) -> None:
    async def run_before(pilot) -> None:
        await sign_in(pilot, "rejestr", PASSWORD)
        await _open(pilot, "f4", "RequestsScreen")
        await pilot.press("n")
        await wait_until(pilot, lambda: type(pilot.app.screen).__name__ == "FormModal", what="the form")
        pilot.app.screen.set_value("requester_address", "ul. Polna 1")
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: pilot.app.screen.error, what="the error")
        await pilot.pause()

    assert snap_compare(office, terminal_size=SIZE, run_before=run_before)


def test_hold_modal_refused(snap_compare, office) -> None:
    async def run_before(pilot) -> None:
        await sign_in(pilot, "kierownik", PASSWORD)
        await _open(pilot, "f5", "RetentionScreen")
        await pilot.press("a")
        await wait_until(pilot, lambda: type(pilot.app.screen).__name__ == "HoldModal", what="the dialog")
        screen = pilot.app.screen
        for field, value in (("#hold-ids", "12 x"), ("#hold-basis", "KPA art. 73"), ("#hold-case", "SO.9/2026")):
            screen.query_one(field).value = value
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: screen.error, what="the error")
        await pilot.pause()

    assert snap_compare(office, terminal_size=SIZE, run_before=run_before)


def test_new_account_modal_refused(snap_compare, office) -> None:
    async def run_before(pilot) -> None:
        await sign_in(pilot, "root", PASSWORD)
        await _open(pilot, "f9", "AccountsScreen")
        await pilot.press("a")
        await wait_until(pilot, lambda: type(pilot.app.screen).__name__ == "NewStaffModal", what="the dialog")
        screen = pilot.app.screen
        for field, value in (
            ("#name", "ewa"),
            ("#full-name", "Ewa Nowak"),
            ("#department", "USC"),
            ("#password", "ewa-password-1"),
        ):
            screen.query_one(field).value = value
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: screen.error, what="the error")
        await pilot.pause()

    assert snap_compare(office, terminal_size=SIZE, run_before=run_before)


def test_audit_viewer(snap_compare, office) -> None:
    async def run_before(pilot) -> None:
        await sign_in(pilot, "dyrektor", PASSWORD)
        await _open(pilot, "f6", "AuditScreen")
        screen = pilot.app.screen
        await wait_until(pilot, lambda: "intact" in str(screen.query_one("#chain").render()), what="the check")
        screen.query_one("#audit-action").value = "archive."
        screen.query_one("#audit-action").focus()
        await pilot.press("enter")
        await wait_until(pilot, lambda: len(screen.entries) == 2, what="the archive entries")
        screen.query_one("#audit-table").focus()
        await pilot.press("down")
        await wait_until(pilot, lambda: "Ślązaka" in str(screen.query_one("#audit-purpose").render()))
        await pilot.pause()

    assert snap_compare(office, terminal_size=SIZE, run_before=run_before)


def test_audit_entry(snap_compare, office) -> None:
    async def run_before(pilot) -> None:
        await sign_in(pilot, "dyrektor", PASSWORD)
        await _open(pilot, "f6", "AuditScreen")
        screen = pilot.app.screen
        screen.query_one("#audit-purpose-words").value = "ślązaka"
        screen.query_one("#audit-purpose-words").focus()
        await pilot.press("enter")
        await wait_until(
            pilot, lambda: len(screen.entries) == 1 and "intact" in str(screen.query_one("#chain").render())
        )
        screen.query_one("#audit-table").focus()
        await pilot.press("enter")
        await wait_until(pilot, lambda: type(pilot.app.screen).__name__ == "AuditEntryModal", what="the entry")
        await pilot.pause()

    assert snap_compare(office, terminal_size=SIZE, run_before=run_before)
