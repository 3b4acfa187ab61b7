"""The retention, audit and reports screens, driven with Pilot through the real app (make_app)."""

from __future__ import annotations

import sqlite3
from datetime import date, datetime, timezone

import pytest
from textual.widgets import DataTable, Input, Static

from store.archive import SearchFilters
from store.models import Actor
from tests.fixtures.store import PASSWORD
from tests.fixtures.tui import SIZE, notifications, sign_in, wait_until
from tui.screens.audit import AuditScreen
from tui.screens.home import HomeScreen
from tui.screens.reports import ReportsScreen
from tui.screens.retention import HoldModal, RetentionScreen
from tui.widgets.modals import ConfirmModal

OLD = datetime(2025, 8, 31, 10, 0, tzinfo=timezone.utc)
SYSTEM = Actor.system("tests")


async def conversation_ids(store) -> list[int]:
    return [c.id for c in (await store.archive.search(SYSTEM, SearchFilters())).items]


WIDE = (140, 40)


def cells(screen, table_id: str) -> list[list[str]]:
    table = screen.query_one(table_id, DataTable)
    return [[str(getattr(c, "plain", c)) for c in table.get_row_at(i)] for i in range(table.row_count)]


async def open_area(pilot, key: str, screen_type: type):
    await pilot.press(key)
    return await wait_until(
        pilot, lambda: isinstance(pilot.app.screen, screen_type) and pilot.app.screen, what=screen_type.__name__
    )


async def test_consultant_cannot_open_retention_audit_or_reports(tui_app, make_staff):
    await make_staff("konsultant", "consultant")
    app = tui_app()
    async with app.run_test(size=SIZE) as pilot:
        await sign_in(pilot, "konsultant", PASSWORD)
        for key in ("f5", "f6", "f7"):
            await pilot.press(key)
            await pilot.pause()
            assert isinstance(app.screen, HomeScreen)


async def test_director_sees_holds_but_cannot_purge(tui_app, make_staff, retention_data, store):
    await make_staff("dyrektor", "boi_director")
    await retention_data.chat(OLD)
    app = tui_app()
    async with app.run_test(size=WIDE) as pilot:
        await sign_in(pilot, "dyrektor", PASSWORD)
        screen = await open_area(pilot, "f5", RetentionScreen)
        await wait_until(
            pilot,
            lambda: "CIM manager" in str(screen.query_one("#preview", Static).render()),
            what="the no-purge explanation",
        )
        await pilot.press("p")
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmModal)
    assert await store.retention.runs(SYSTEM) == []


@pytest.mark.ordinance("§6")
async def test_manager_previews_confirms_and_purges_with_held_items_explained(
    tui_app, make_staff, retention_data, store
):
    manager = (await make_staff("kierownik", "cim_manager")).as_actor()
    for _ in range(3):
        await retention_data.chat(OLD)
    await retention_data.call(OLD)
    held = await retention_data.chat(OLD)
    await store.retention.add_hold(manager, [held], legal_basis="[b]KPA[/b] art. 73", case_reference="SO.5/2026")
    app = tui_app()
    async with app.run_test(size=WIDE) as pilot:
        await sign_in(pilot, "kierownik", PASSWORD)
        screen = await open_area(pilot, "f5", RetentionScreen)
        await wait_until(pilot, lambda: screen.preview is not None, what="the preview")
        text = str(screen.query_one("#preview", Static).render())
        assert "1 call, 3 chat transcripts, 1 recording" in text and "Held back: 1" in text
        await wait_until(pilot, lambda: screen.query_one("#held-table", DataTable).row_count == 1)
        (row,) = cells(screen, "#held-table")
        assert row[0] == str(held) and "[b]KPA[/b] art. 73, case SO.5/2026" in row[3]  # markup shown literally

        await pilot.press("p")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmModal), what="the confirmation")
        await pilot.press("n")  # cancel: nothing happens
        await wait_until(pilot, lambda: app.screen is screen)
        assert len(await conversation_ids(store)) == 5

        await pilot.press("p")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmModal), what="the confirmation")
        await pilot.press("y")
        await wait_until(pilot, lambda: screen.last_result is not None, what="the purge to finish")
        assert (screen.last_result.chats, screen.last_result.calls) == (3, 1)
        await wait_until(pilot, lambda: any("Purged 1 call, 3 chat transcripts" in n for n in notifications(app)))
    assert await conversation_ids(store) == [held]


@pytest.mark.ordinance("§6")
async def test_add_hold_in_a_modal_and_overdue_review_is_highlighted(tui_app, make_staff, retention_data, store, clock):
    await make_staff("kierownik", "cim_manager")
    a, b = await retention_data.chat(OLD), await retention_data.chat(OLD)
    app = tui_app()
    async with app.run_test(size=WIDE) as pilot:
        await sign_in(pilot, "kierownik", PASSWORD)
        screen = await open_area(pilot, "f5", RetentionScreen)
        await pilot.press("a")
        modal = await wait_until(pilot, lambda: isinstance(app.screen, HoldModal) and app.screen)
        modal.query_one("#hold-ids", Input).value = f"{a}, {b}"
        modal.query_one("#hold-basis", Input).value = "art. 6 ust. 1 lit. c RODO"
        modal.query_one("#hold-case", Input).value = "SO.9/2026"
        modal.query_one("#hold-review", Input).value = "2026-03-02"
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: screen.query_one("#holds-table", DataTable).row_count == 2, what="two holds")
        assert all("OVERDUE" not in r[4] for r in cells(screen, "#holds-table"))

        await pilot.press("a")
        modal = await wait_until(pilot, lambda: isinstance(app.screen, HoldModal) and app.screen)
        modal.query_one("#hold-ids", Input).value = "12 abc"
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert "digits" in str(modal.query_one("#dialog-error", Static).render())
        await pilot.press("escape")
    clock.advance(days=2)
    app = tui_app()
    async with app.run_test(size=WIDE) as pilot:
        await sign_in(pilot, "kierownik", PASSWORD)
        screen = await open_area(pilot, "f5", RetentionScreen)
        await wait_until(pilot, lambda: screen.query_one("#holds-table", DataTable).row_count == 2)
        table = screen.query_one("#holds-table", DataTable)
        first = table.get_row_at(0)
        assert "OVERDUE" in first[4].plain and "red" in str(first[4].style)


async def test_hold_on_a_purged_conversation_is_explained(tui_app, make_staff, retention_data, store):
    await make_staff("kierownik", "cim_manager")
    gone = await retention_data.chat(OLD)
    await store.retention.purge(SYSTEM)
    app = tui_app()
    async with app.run_test(size=WIDE) as pilot:
        await sign_in(pilot, "kierownik", PASSWORD)
        await open_area(pilot, "f5", RetentionScreen)
        await pilot.press("a")
        modal = await wait_until(pilot, lambda: isinstance(app.screen, HoldModal) and app.screen)
        modal.query_one("#hold-ids", Input).value = str(gone)
        modal.query_one("#hold-basis", Input).value = "KPA"
        modal.query_one("#hold-case", Input).value = "X"
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: "already purged" in modal.error, what="the refusal, shown in the dialog")
        assert app.screen is modal and modal.query_one("#hold-basis", Input).value == "KPA"


@pytest.mark.ordinance("§3")
async def test_audit_viewer_verifies_the_chain_and_filters(tui_app, make_staff, store, settings):
    await make_staff("dyrektor", "boi_director")
    anna = (await make_staff("anna", "designated")).as_actor()
    async with store.db.write() as tx:
        await store.audit.append(
            tx, anna, "archive.open_transcript", target_kind="conversation", target_id=7, purpose="[red]R/2026/1[/red]"
        )
    app = tui_app()
    async with app.run_test(size=WIDE) as pilot:
        await sign_in(pilot, "dyrektor", PASSWORD)
        screen = await open_area(pilot, "f6", AuditScreen)
        await wait_until(pilot, lambda: "intact" in str(screen.query_one("#chain", Static).render()))
        screen.query_one("#audit-conversation", Input).value = "7"
        screen.query_one("#audit-conversation", Input).focus()
        await pilot.press("enter")
        await wait_until(pilot, lambda: screen.query_one("#audit-table", DataTable).row_count == 1)
        (row,) = cells(screen, "#audit-table")
        assert row[2:6] == ["anna", "archive: transcript read", "[red]R/2026/1[/red]", "ok"]  # the action in words
        screen.query_one("#audit-person", Input).value = "nobody-like-this"
        await pilot.press("enter")
        await wait_until(pilot, lambda: any("no user named" in n for n in notifications(app)))

    # someone edits the log behind CIM's back: the viewer says so on open
    raw = sqlite3.connect(settings.db_path)
    raw.execute("DROP TRIGGER audit_no_update")
    raw.execute("UPDATE audit SET purpose = 'changed' WHERE action = 'archive.open_transcript'")
    raw.commit()
    raw.close()
    app = tui_app()
    async with app.run_test(size=WIDE) as pilot:
        await sign_in(pilot, "dyrektor", PASSWORD)
        screen = await open_area(pilot, "f6", AuditScreen)
        await wait_until(pilot, lambda: "BROKEN" in str(screen.query_one("#chain", Static).render()))
        assert screen.query_one("#chain", Static).has_class("broken")


@pytest.mark.ordinance("§7")
async def test_secretary_sees_the_report_and_saves_csv_and_pdf(tui_app, make_staff, store, settings, clock):
    await make_staff("sekretarz", "secretary")
    anna = (await make_staff("anna", "designated")).as_actor()
    clock.now = datetime(2026, 2, 10, 9, 0, tzinfo=timezone.utc)
    async with store.db.write() as tx:
        await store.audit.append(tx, anna, "archive.open_recording", purpose="skarga")
    clock.now = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)
    app = tui_app()
    async with app.run_test(size=WIDE) as pilot:
        await sign_in(pilot, "sekretarz", PASSWORD)
        screen = await open_area(pilot, "f7", ReportsScreen)
        await wait_until(pilot, lambda: screen.report is not None, what="the report")  # last month by default
        assert screen.report.start == date(2026, 2, 1) and screen.report.total_accesses == 1
        assert ["access", "anna", "archive: recording heard", "skarga", "1", ""] in cells(screen, "#report-table")
        await pilot.press("ctrl+s")
        await pilot.press("ctrl+o")
        folder = settings.data_dir / "reports"
        await wait_until(
            pilot,
            lambda: (
                (folder / "supervision-2026-02-01-2026-02-28.pdf").exists()
                and (folder / "supervision-2026-02-01-2026-02-28.csv").exists()
            ),
            what="the files",
        )
        screen.query_one("#report-from", Input).value = "2026-02-30"
        screen.query_one("#report-from", Input).focus()
        await pilot.press("enter")
        await wait_until(pilot, lambda: any("YYYY-MM-DD" in n for n in notifications(app)))
