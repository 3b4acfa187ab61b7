"""The audit viewer at 80x24: filter by action prefix and by words in the purpose; the purpose readable in full."""

from __future__ import annotations

import pytest
from textual.widgets import DataTable, Input, Static

from store.audit_actions import ACTION_LABELS, action_label
from tests.fixtures.store import PASSWORD, SYSTEM
from tests.fixtures.tui import sign_in, wait_until
from tui.screens.audit import AuditEntryModal, AuditScreen, _short

SMALL = (80, 24)
LONG = "Wniosek CIM/2026/0007 Józefa Ślązaka o odsłuchanie rozmowy z 24 lutego w sprawie zasiłku"


#: the Action column shows words; the tests name the codes (a code shown raw is a KeyError here)
WORDS = {_short(action_label(code, "en"), 30): code for code in ACTION_LABELS}


def actions(screen) -> list[str]:
    table = screen.query_one("#audit-table", DataTable)
    return [WORDS[str(table.get_row_at(i)[3])] for i in range(table.row_count)]


async def apply(pilot, screen, **values: str) -> None:
    for field in ("person", "action", "purpose-words", "from", "to", "conversation", "request"):
        screen.query_one(f"#audit-{field}", Input).value = values.get(field.replace("-", "_"), "")
    before = screen.query_one("#audit-count", Static).render()
    screen.query_one("#audit-action", Input).focus()
    await pilot.press("enter")
    await wait_until(
        pilot, lambda: screen.query_one("#audit-count", Static).render() is not before, what="the filtered list"
    )


@pytest.mark.ordinance("§3")
async def test_audit_viewer_filters_by_action_prefix_and_purpose_words_at_80x24(tui_app, make_staff, store):
    await make_staff("dyrektor", "boi_director")
    anna = (await make_staff("anna", "designated")).as_actor()
    async with store.db.write() as tx:
        await store.audit.append(
            tx, anna, "archive.open_transcript", target_kind="conversation", target_id=7, purpose=LONG
        )
        await store.audit.append(
            tx, anna, "archive.open_recording", target_kind="conversation", target_id=8, purpose="kontrola jakości"
        )
        await store.audit.append(
            tx, anna, "requests.session_playback", target_kind="conversation", target_id=7, purpose="CIM/2026/0007"
        )
    app = tui_app()
    async with app.run_test(size=SMALL) as pilot:
        await sign_in(pilot, "dyrektor", PASSWORD)
        await pilot.press("f6")
        screen = await wait_until(pilot, lambda: isinstance(app.screen, AuditScreen) and app.screen)
        await wait_until(pilot, lambda: screen.entries, what="the log")

        await apply(pilot, screen, action="archive.")
        assert sorted(actions(screen)) == ["archive.open_recording", "archive.open_transcript"]
        await apply(pilot, screen, action="archive.open_r")
        assert actions(screen) == ["archive.open_recording"]
        # words in any order and case, Polish letters folded too; every word must occur
        await apply(pilot, screen, purpose_words="ŚLĄZAKA wniosek")
        assert actions(screen) == ["archive.open_transcript"]
        await apply(pilot, screen, purpose_words="cim/2026/0007")
        assert sorted(actions(screen)) == ["archive.open_transcript", "requests.session_playback"]
        await apply(pilot, screen, action="requests.", purpose_words="cim/2026/0007")
        assert actions(screen) == ["requests.session_playback"]
        await apply(pilot, screen, purpose_words="zasiłku nieistniejące")
        assert actions(screen) == []

        # the purpose column is on screen at 80 columns, and the whole purpose under the table
        await apply(pilot, screen, purpose_words="zasiłku")
        table = screen.query_one("#audit-table", DataTable)
        table.focus()
        purpose_column = list(table.columns.values())[4]
        assert str(purpose_column.label) == "Purpose"
        x = sum(c.get_render_width(table) for c in list(table.columns.values())[:4])
        assert x + 10 < 80, "the Purpose column starts off screen"
        line = screen.query_one("#audit-purpose", Static)
        await wait_until(pilot, lambda: LONG in str(line.render()), what="the whole purpose under the table")
        assert line.region.bottom <= 24 and line.region.height >= 2  # wrapped, not cut
        # Enter: the whole entry
        await pilot.press("enter")
        modal = await wait_until(pilot, lambda: isinstance(app.screen, AuditEntryModal) and app.screen)
        await pilot.pause()
        purpose = modal.query_one("#entry-purpose", Static)
        assert LONG in str(purpose.render()) and purpose.region.bottom <= 24 and purpose.region.right <= 80
        await pilot.press("escape")
        await wait_until(pilot, lambda: app.screen is screen)
    # each filtered read is itself audited, with the new filters named
    reads = [e for e in await store.audit.entries(SYSTEM, action="audit.read", limit=50)]
    assert any(e.details["filters"].get("purpose_words") == "ŚLĄZAKA wniosek" for e in reads)
