"""The archive screen driven with Pilot: refusal for a consultant, search → open with a purpose → audited; playback."""

from __future__ import annotations

import asyncio
import shlex
import sys
from pathlib import Path

import pytest
from textual.app import App
from textual.widgets import DataTable, Input, Sparkline, Static

from store.archive import SearchFilters
from store.models import Actor
from tests.fixtures.audit_log import audit_log
from tests.fixtures.calls import FakePbx, asterisk_row, write_pcm_wav
from tui.context import TuiContext
from tui.screens.archive import ArchiveDetailScreen, ArchiveScreen, player_argv
from tui.widgets.purpose import PurposeModal

SYSTEM = Actor.system("tests")


class ArchiveTestApp(App[None]):
    def __init__(self, ctx: TuiContext) -> None:
        super().__init__()
        self.ctx = ctx

    def on_mount(self) -> None:
        self.push_screen(ArchiveScreen(self.ctx))


@pytest.fixture
async def seeded(store, pbx: FakePbx, make_staff):
    anna = await make_staff("anna", "consultant", extensions=("201",))
    pbx.add_rows([asterisk_row("1772442000.1", src="601234567", userfield="cim:notice=1;full=1")])
    write_pcm_wav(pbx.monitor / "1772442000.1.wav", 0.5, silent_first_half=True)
    await store.calls.ingest(SYSTEM, store.calls.source("asterisk", pbx.cdr, pbx.monitor))
    notice = await store.notices.current("chat", "pl")
    opened = await store.chats.open(notice.id, "pl")
    await store.chats.post_resident(opened.chat.id, "[red]nie markup[/red] \x1b[31m")
    await store.chats.accept(anna.as_actor(), opened.chat.id)
    await store.chats.close(anna.as_actor(), opened.chat.id, "information_given")
    return {"anna": anna, "chat": opened.chat.id}


def ctx_for(store, settings, actor) -> TuiContext:
    return TuiContext(store=store, settings=settings, actor=actor, token="")


async def settle(app: App, pilot) -> None:
    """Let workers finish, except one waiting on a modal (the purpose dialog) which waits for us."""
    for _ in range(5):
        if not isinstance(app.screen, PurposeModal):
            try:
                await asyncio.wait_for(asyncio.shield(app.workers.wait_for_complete()), 5)
            except asyncio.TimeoutError:
                pass
        await pilot.pause()


async def test_consultant_is_refused_and_the_attempt_audited(store, settings, seeded) -> None:
    app = ArchiveTestApp(ctx_for(store, settings, seeded["anna"].as_actor()))
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.click("#number")
        await pilot.press(*"601234567", "enter")
        await settle(app, pilot)
        assert app.screen.query_one("#results", DataTable).row_count == 0
        assert any("not permitted" in n.message for n in app._notifications)
    refused = await audit_log(store, action="archive.search", outcome="refused")
    assert [r.actor_name for r in refused] == ["anna"]


@pytest.mark.ordinance("§5")
async def test_search_open_transcript_with_purpose_is_audited(store, settings, seeded, make_staff) -> None:
    maria = (await make_staff("maria", "designated")).as_actor()
    app = ArchiveTestApp(ctx_for(store, settings, maria))
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.click("#consultant")
        await pilot.press(*"anna", "enter")
        await settle(app, pilot)
        table = app.screen.query_one("#results", DataTable)
        assert table.row_count == 2  # the call and the chat
        chat_row = next(i for i, key in enumerate(table.rows) if key.value == str(seeded["chat"]))
        table.move_cursor(row=chat_row)
        table.focus()
        await pilot.press("enter")
        await settle(app, pilot)
        assert isinstance(app.screen, ArchiveDetailScreen)
        await pilot.press("t")
        await settle(app, pilot)
        assert isinstance(app.screen, PurposeModal)
        await pilot.press("x", "enter")  # too short: stays open
        await pilot.pause()
        assert isinstance(app.screen, PurposeModal)
        await pilot.press("backspace", *"W/2026/0007", "enter")
        await settle(app, pilot)
        assert isinstance(app.screen, ArchiveDetailScreen)
        lines = [str(s.render()) for s in app.screen.query(".transcript-line").results(Static)]
        resident = [line for line in lines if "Resident:" in line]
        assert len(resident) == 1 and "[red]nie markup[/red]" in resident[0], lines
        assert "\x1b" not in resident[0]
    rows = await audit_log(store, action="archive.open_transcript")
    assert [(r.actor_name, r.purpose, r.target_id) for r in rows] == [("maria", "W/2026/0007", str(seeded["chat"]))]
    searches = await audit_log(store, action="archive.search")
    assert [r.actor_name for r in searches] == ["maria"]


@pytest.mark.ordinance("§5")
async def test_play_runs_the_player_without_a_shell_after_a_purpose(
    store, settings, seeded, make_staff, tmp_path: Path
) -> None:
    copy = tmp_path / "played; rm -rf ~.wav"  # a shell would split this; the argv keeps it one word
    # a sealed recording reaches the player on standard input ("-"), never as a decrypted file
    player = (
        f"{shlex.quote(sys.executable)} -c 'import shutil,sys,os; src = sys.stdin.buffer if sys.argv[1] == "
        f'"-" else open(sys.argv[1], "rb"); shutil.copyfileobj(src, open(sys.argv[2] + ".part", "wb")); '
        f'os.rename(sys.argv[2] + ".part", sys.argv[2])\' {{path}} {shlex.quote(str(copy))}'
    )
    maria = (await make_staff("maria", "designated")).as_actor()
    app = ArchiveTestApp(ctx_for(store, settings.with_(player_command=player), maria))
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.click("#number")
        await pilot.press(*"4567", "enter")
        await settle(app, pilot)
        assert app.screen.query_one("#results", DataTable).row_count == 1
        await pilot.press("enter")
        await settle(app, pilot)
        detail = app.screen
        assert isinstance(detail, ArchiveDetailScreen)
        levels = detail.query_one("#levels", Sparkline).data
        assert levels and max(levels[: len(levels) // 3]) == 0 and max(levels) > 0.2
        await pilot.press("i")
        await settle(app, pilot)
        assert "Integrity OK" in str(detail.query_one("#integrity", Static).render())
        await pilot.press("l")
        await settle(app, pilot)
        await pilot.press(*"skarga 12/2026", "enter")
        for _ in range(200):
            await settle(app, pilot)
            if copy.exists():
                break
            await asyncio.sleep(0.02)
    (call,) = (await store.archive.search(SYSTEM, SearchFilters(channel="call"))).items
    opened = await store.archive.open_recording(SYSTEM, call.id, "test check")
    with opened.plaintext() as fh:
        assert copy.read_bytes() == fh.read() and copy.read_bytes()[:4] == b"RIFF"
    rows = await audit_log(store, action="archive.open_recording")
    assert [(r.actor_name, r.purpose) for r in rows][0] == ("maria", "skarga 12/2026")


def test_player_argv_never_needs_a_shell(tmp_path: Path) -> None:
    path = tmp_path / "a b;c.wav"
    assert player_argv("aplay {path}", path) == ["aplay", str(path)]
    assert player_argv("mpv --no-video", path) == ["mpv", "--no-video", str(path)]
    with pytest.raises(ValueError):
        player_argv("", path)


async def test_bad_date_is_reported_and_nothing_searched(store, settings, seeded, make_staff) -> None:
    maria = (await make_staff("maria", "designated")).as_actor()
    app = ArchiveTestApp(ctx_for(store, settings, maria))
    async with app.run_test(size=(100, 30)) as pilot:
        app.screen.query_one("#date-from", Input).value = "2026-02-30"
        await pilot.click("#number")
        await pilot.press("enter")
        await settle(app, pilot)
        assert any("not a date" in n.message for n in app._notifications)
    assert await audit_log(store, action="archive.search") == []


# -- through the real app (make_app, sign-in, F3) ----------------------------------------------------


async def test_archive_area_in_the_real_app(tui_app, store, seeded, make_staff) -> None:
    from tests.fixtures.store import PASSWORD
    from tests.fixtures.tui import SIZE, sign_in, wait_until
    from tui.screens.home import HomeScreen

    await make_staff("maria", "designated")
    app = tui_app()
    async with app.run_test(size=SIZE) as pilot:
        await sign_in(pilot, "anna", PASSWORD)
        await pilot.press("f3")  # a consultant has no archive area: the key does nothing
        await pilot.pause()
        assert isinstance(app.screen, HomeScreen)
    app = tui_app()
    async with app.run_test(size=SIZE) as pilot:
        await sign_in(pilot, "maria", PASSWORD)
        await pilot.press("f3")
        screen = await wait_until(
            pilot, lambda: isinstance(app.screen, ArchiveScreen) and app.screen, what="ArchiveScreen"
        )
        await pilot.click("#number")
        await pilot.press(*"601234567", "enter")
        await wait_until(pilot, lambda: screen.query_one("#results", DataTable).row_count == 1, what="results")
    rows = await audit_log(store, action="archive.search")
    assert [r.actor_name for r in rows] == ["maria"]
