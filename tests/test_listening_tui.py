"""The TUI's listening links with Pilot: the archive (after the purpose) and the §4.6 session show link, code and QR."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from textual.app import App
from textual.widgets import Static

from tests.fixtures.audit_log import audit_log
from tests.fixtures.listening import Listener, RecordedCall
from tui.context import TuiContext
from tui.screens.archive import ArchiveDetailScreen
from tui.widgets.listen_link import ListenLinkModal, qr_lines
from tui.widgets.purpose import PurposeModal


class DetailApp(App[None]):
    def __init__(self, ctx: TuiContext, conversation_id: int) -> None:
        super().__init__()
        self.ctx = ctx
        self.conversation_id = conversation_id

    def on_mount(self) -> None:
        self.push_screen(ArchiveDetailScreen(self.ctx, self.conversation_id))


async def until(pilot, predicate, what: str):
    for _ in range(500):
        value = predicate()
        if value:
            return value
        await pilot.pause(0.02)
    raise AssertionError(f"the TUI did not reach {what}")


def text_of(widget: Static) -> str:
    return str(widget.render())


@pytest.mark.ordinance("§3.2")
async def test_archive_listen_shows_link_code_and_qr_then_the_status_until_revoked(
    store, settings, chat_server, pcm_call: RecordedCall, listener: Listener
) -> None:
    ctx = TuiContext(
        store=store, settings=settings, actor=listener.actor, token=listener.token, server_url=chat_server.url
    )
    app = DetailApp(ctx, pcm_call.conversation_id)
    async with app.run_test(size=(100, 32)) as pilot:
        detail = await until(
            pilot,
            lambda: isinstance(app.screen, ArchiveDetailScreen) and app.screen.detail and app.screen,
            "the detail",
        )
        await pilot.press("l")
        await until(pilot, lambda: isinstance(app.screen, PurposeModal), "the purpose dialog")
        await pilot.press(*"skarga 12/2026", "enter")
        modal = await until(pilot, lambda: isinstance(app.screen, ListenLinkModal) and app.screen, "the link dialog")
        assert modal.url.startswith(chat_server.url + "/listen/")
        shown = text_of(modal.query_one("#listen-text", Static))
        assert modal.url in shown and modal.code in shown
        qr = text_of(modal.query_one("#listen-qr", Static)).splitlines()
        assert len(qr) >= 15 and {"█", "▀", "▄"} <= set("".join(qr))
        # the text carries the link as an OSC 8 hyperlink
        rendered = modal.query_one("#listen-text", Static).render()
        assert any(span.style.link == modal.url for span in rendered.spans if hasattr(span.style, "link"))
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is detail, "the detail again")
        status = await until(
            pilot,
            lambda: (
                "Listening in the browser" in text_of(detail.query_one("#listening"))
                and text_of(detail.query_one("#listening"))
            ),
            "the listening status",
        )
        assert modal.code in status
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as browser:
            async with browser.get(modal.url) as response:
                assert response.status == 200
        # a second link, revoked with X: the page is refused
        await pilot.press("l")
        await until(pilot, lambda: isinstance(app.screen, PurposeModal), "the purpose dialog")
        await pilot.press(*"skarga 12/2026", "enter")
        second = await until(
            pilot,
            lambda: isinstance(app.screen, ListenLinkModal) and app.screen is not modal and app.screen,
            "the second link",
        )
        await pilot.press("x")
        await until(pilot, lambda: app.screen is detail, "the detail again")
        async with aiohttp.ClientSession() as browser:
            async with browser.get(second.url) as response:
                assert response.status == 403
    rows = await audit_log(store, action_prefix="listen.")
    assert [(r.action, r.outcome) for r in rows] == [
        ("listen.link_create", "ok"),
        ("listen.page", "ok"),
        ("listen.link_create", "ok"),
        ("listen.link_revoke", "ok"),
        ("listen.page", "refused"),
    ]
    assert {r.purpose for r in rows} == {"skarga 12/2026"}


async def test_a_set_player_command_is_used_instead_of_a_link(store, settings, pcm_call, listener, tmp_path) -> None:
    import shlex
    import sys

    copy = tmp_path / "played.wav"
    # a sealed recording reaches the player on standard input ("-"), never as a decrypted file
    player = (
        f'{shlex.quote(sys.executable)} -c \'import shutil,sys; src = sys.stdin.buffer if sys.argv[1] == "-" '
        f'else open(sys.argv[1], "rb"); shutil.copyfileobj(src, open(sys.argv[2] + ".part", "wb")); '
        f'import os; os.rename(sys.argv[2] + ".part", sys.argv[2])\' {{path}} {shlex.quote(str(copy))}'
    )
    ctx = TuiContext(
        store=store, settings=settings.with_(player_command=player), actor=listener.actor, token=listener.token
    )
    app = DetailApp(ctx, pcm_call.conversation_id)
    async with app.run_test(size=(100, 32)) as pilot:
        await until(pilot, lambda: isinstance(app.screen, ArchiveDetailScreen) and app.screen.detail, "the detail")
        await pilot.press("l")
        await until(pilot, lambda: isinstance(app.screen, PurposeModal), "the purpose dialog")
        await pilot.press(*"kontrola", "enter")
        for _ in range(300):
            if copy.exists():
                break
            await asyncio.sleep(0.02)
        assert copy.exists() and not isinstance(app.screen, ListenLinkModal)
        assert copy.read_bytes()[:4] == b"RIFF"  # the plaintext, decrypted in the store and piped
        # the player has exited and been reaped before the app (and its loop) goes away
        await until(
            pilot,
            lambda: not [w for w in app.workers if w.group == "play" and not w.is_finished],
            "the player to finish",
        )
    assert await store.db.fetchone("SELECT 1 FROM listen_links") is None


def test_qr_code_is_drawn_with_half_blocks_two_module_rows_per_line() -> None:
    import segno

    url = "http://127.0.0.1:8080/listen/AAAAAAAAAAAAAAAAAAAAAA"
    lines = qr_lines(url)
    assert len({len(line) for line in lines}) == 1
    assert len(lines) == (len(lines[0]) + 1) // 2  # square: 33 modules wide, 17 lines
    assert lines[0].strip() == "" and lines[1].startswith("  ")  # the quiet zone
    # read the modules back from the characters: exactly segno's matrix for the URL
    top = {"█": True, "▀": True, "▄": False, " ": False}
    bottom = {"█": True, "▀": False, "▄": True, " ": False}
    drawn = [row for line in lines for row in ([top[c] for c in line], [bottom[c] for c in line])]
    expected = [[bool(m) for m in row] for row in segno.make(url, error="l", boost_error=False).matrix_iter(border=2)]
    assert drawn[: len(expected)] == expected and not any(any(row) for row in drawn[len(expected) :])


@pytest.mark.ordinance("§4.6")
async def test_session_v_shows_the_link_and_the_request_screen_says_odsluch_w_przegladarce(
    store, people, clock, chat_server
) -> None:
    from tests.fixtures.tui import wait_until
    from tests.test_listening_session import session_running
    from tui.screens.requests import RequestDetailScreen

    req, call = await session_running(store, people, clock)

    class SessionApp(App[None]):
        async def on_mount(self) -> None:
            await self.push_screen(
                RequestDetailScreen(
                    TuiContext(store, store.settings, people.attendee, token="", server_url=chat_server.url), req.id
                )
            )

    app = SessionApp()
    async with app.run_test(size=(100, 32)) as pilot:
        screen = await wait_until(
            pilot,
            lambda: isinstance(app.screen, RequestDetailScreen) and app.screen.detail and app.screen,
            what="the request",
        )
        screen.query_one("#linked").focus()
        await pilot.press("v")
        modal = await until(pilot, lambda: isinstance(app.screen, ListenLinkModal) and app.screen, "the link dialog")
        assert modal.url.startswith(chat_server.url + "/listen/") and req.number in modal.what
        await pilot.press("escape")
        line = await until(
            pilot,
            lambda: (
                "Listening in the browser" in text_of(screen.query_one("#listening"))
                and text_of(screen.query_one("#listening"))
            ),
            "the listening line",
        )
        assert modal.code in line
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as browser:
        async with browser.get(modal.url) as response:
            assert response.status == 200
    row = (await audit_log(store, action="listen.page"))[0]
    assert (row.request_id, row.purpose) == (req.id, f"§4 session {req.number}")
