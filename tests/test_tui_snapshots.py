"""Snapshots (pytest-textual-snapshot) of the login, queue and chat screens at 80x24, with fixed data and time."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone
from pathlib import Path

import pytest
import socketio

from store import Store
from store.clock import ManualClock
from store.settings import Settings
from tests.fixtures.store import PASSWORD, SYSTEM
from tests.fixtures.tui import sign_in, wait_until
from tui.app import make_app
from tui.demo import embedded_chat_server, reserve_port

START = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)


@pytest.fixture
def snapshot_setup(tmp_path: Path):
    """A data dir with consultant anna and a canned response; the app then opens it itself (sync test)."""
    settings = Settings.load(tmp_path / "data", env={}, password_profile="fast", opening_hours="always")
    clock = ManualClock(START)

    async def prepare() -> None:
        store = await Store.open(settings, create=True, clock=clock)
        try:
            await store.accounts.add_staff(SYSTEM, "anna", ["consultant"], PASSWORD, full_name="Anna Nowak")
        finally:
            await store.close()

    asyncio.run(prepare())
    sock = reserve_port("127.0.0.1")
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    app = make_app(
        settings, server_url=url, clock=clock, services=[embedded_chat_server(sock)], session_check_seconds=3600
    )
    yield app, clock, url
    sock.close()


async def _resident(url: str) -> tuple[socketio.AsyncClient, int]:
    client = socketio.AsyncClient(reconnection=False)
    notice: asyncio.Future = asyncio.get_running_loop().create_future()
    client.on("notice", lambda data: notice.done() or notice.set_result(data), namespace="/resident")
    await client.connect(url, namespaces=["/resident"], auth={"lang": "pl"}, transports=["websocket"])
    data = await asyncio.wait_for(notice, 10)
    ack = await client.call("accept_notice", {"notice_id": data["notice_id"]}, namespace="/resident")
    return client, ack["chat_id"]


def test_login_screen(snap_compare, snapshot_setup) -> None:
    app, _, _ = snapshot_setup

    async def run_before(pilot) -> None:
        await wait_until(pilot, lambda: type(app.screen).__name__ == "LoginScreen", what="the login screen")
        await sign_in(pilot, "anna", "wrong password", expect_home=False)
        await wait_until(
            pilot, lambda: "Wrong" in str(app.screen.query_one("#login-message").render()), what="the error"
        )

    assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)


def test_queue_screen(snap_compare, snapshot_setup) -> None:
    app, clock, url = snapshot_setup

    async def run_before(pilot) -> None:
        await sign_in(pilot, "anna", PASSWORD)
        await pilot.press("f2")
        await wait_until(pilot, lambda: app.desk is not None and app.desk.state == "online", what="online")
        first, _ = await _resident(url)
        clock.advance(seconds=75)
        second, _ = await _resident(url)
        await wait_until(pilot, lambda: len(app.desk.queue) == 2, what="two queued chats")
        clock.advance(seconds=80)
        for client in (first, second):
            await client.disconnect()
        app.clear_notifications()
        app.screen._refresh_queue()

    assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)


def test_chat_screen(snap_compare, snapshot_setup) -> None:
    app, clock, url = snapshot_setup

    async def run_before(pilot) -> None:
        await sign_in(pilot, "anna", PASSWORD)
        await pilot.press("f2")
        await wait_until(pilot, lambda: app.desk is not None and app.desk.state == "online", what="online")
        resident, chat_id = await _resident(url)
        await wait_until(pilot, lambda: app.desk.queue, what="the queued chat")
        clock.advance(seconds=40)
        await pilot.press("ctrl+g")
        await wait_until(pilot, lambda: chat_id in app.desk.chats, what="accepted")
        clock.advance(seconds=20)
        for text in ("Dzień dobry, kiedy płacę podatek od nieruchomości?", "[b]pilne[/b] \x1b[31m[link=http://x]?[/]"):
            await resident.call("send", {"text": text, "client_msg_id": text[:8]}, namespace="/resident")
        await wait_until(pilot, lambda: len(app.desk.chats[chat_id].lines) >= 5, what="the resident's lines")
        clock.advance(minutes=1)
        for char in "Do 15 marca.":
            await pilot.press("space" if char == " " else char)
        await pilot.press("enter")
        await wait_until(pilot, lambda: len(app.desk.chats[chat_id].lines) >= 6, what="the reply")
        await resident.emit("typing", {"active": True}, namespace="/resident")
        await wait_until(pilot, lambda: app.desk.chats[chat_id].resident_typing, what="typing")
        await resident.disconnect()
        app.clear_notifications()
        app.screen.query_one("#composer").cursor_blink = False  # the picture does not depend on the blink phase

    assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)
