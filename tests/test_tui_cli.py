"""`cim tui` and `cim demo` at the command line, and the demo data they rely on."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from cim.cli import cli
from store.archive import SearchFilters
from tests.fixtures.store import SYSTEM
from tests.fixtures.tui import SIZE, sign_in, wait_until
from tui.demo import DEMO_CHATS, DEMO_STAFF, seed_demo


def test_cim_tui_refuses_a_missing_database(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["tui", "--data-dir", str(tmp_path / "nothing")])
    assert result.exit_code != 0
    assert "cim init" in result.output


def test_cim_tui_refuses_a_server_that_is_not_a_url(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert CliRunner().invoke(cli, ["init", "--data-dir", str(data)]).exit_code == 0
    result = CliRunner().invoke(cli, ["tui", "--data-dir", str(data), "--server", "javascript:alert(1)"])
    assert result.exit_code != 0
    assert "--server must be an http" in result.output


def test_commands_have_help() -> None:
    for command in ("tui", "demo"):
        result = CliRunner().invoke(cli, [command, "--help"])
        assert result.exit_code == 0 and "--data-dir" in result.output


async def test_seed_demo_is_idempotent_and_documents_working_sign_ins(store) -> None:
    first = await seed_demo(store)
    assert sorted(first.created_staff) == sorted(s[0] for s in DEMO_STAFF)
    assert first.created_chats == len(DEMO_CHATS)
    again = await seed_demo(store)
    assert again.created_staff == [] and again.created_chats == 0
    for name, password, roles, _dept, _full in DEMO_STAFF:
        session = await store.accounts.login(name, password)
        assert {r.value for r in session.staff.roles} == set(roles)
    found = (await store.archive.search(SYSTEM, SearchFilters(channel="chat"))).items
    closed = [await store.chats.get(c.id) for c in found]
    assert len(closed) == len(DEMO_CHATS) and all(c.close_category for c in closed)
    history = await store.chats.history(closed[0].id)
    assert {m.sender for m in history} == {"system", "resident", "consultant"}


async def test_demo_banner_shows_the_widget_url_in_the_ui(tui_app, store) -> None:
    await seed_demo(store)
    app = tui_app(banner="Demo widget: http://127.0.0.1:9/")
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: type(app.screen).__name__ == "LoginScreen", what="login")
        assert "http://127.0.0.1:9/" in str(app.screen.query_one("#banner").render())
        await sign_in(pilot, "kierownik", "demo-3-szczecin")
        assert "http://127.0.0.1:9/" in str(app.screen.query_one("#banner").render())
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert "Open Live chats" in titles and "Sign out" in titles
        assert "Open Staff accounts" not in titles  # the manager does not administer accounts


def test_cim_demo_starts_server_and_ui_in_one_process(tmp_path: Path) -> None:
    """The README's run command: in a real terminal (a pty), the printed widget URL serves a chat notice."""
    import asyncio
    import os
    import pty
    import re
    import select
    import subprocess
    import sys
    import time

    import socketio

    main, child = pty.openpty()
    env = {**os.environ, "CIM_PASSWORD_PROFILE": "fast", "TERM": "xterm-256color", "COLUMNS": "80", "LINES": "24"}
    process = subprocess.Popen(
        [sys.executable, "-m", "cim", "demo", "--data-dir", str(tmp_path / "demo")],
        stdin=child,
        stdout=child,
        stderr=child,
        env=env,
        close_fds=True,
    )
    os.close(child)
    output = b""
    try:
        deadline = time.monotonic() + 30
        url = None
        # the URL and the sign-ins are written separately: read until both have arrived
        while time.monotonic() < deadline and not (url and b"demo-1-szczecin" in output):
            ready, _, _ = select.select([main], [], [], 0.5)
            if ready:
                output += os.read(main, 65536)
            found = re.search(rb"Resident chat widget: (http://127\.0\.0\.1:\d+)/", output)
            url = found.group(1).decode() if found else None
        assert url, output.decode(errors="replace")
        assert b"anna" in output and b"demo-1-szczecin" in output

        async def resident_sees_the_notice() -> dict:
            client = socketio.AsyncClient(reconnection=False)
            notice: asyncio.Future = asyncio.get_running_loop().create_future()
            client.on("notice", lambda data: notice.done() or notice.set_result(data), namespace="/resident")
            for _ in range(60):  # the server starts with the UI, just after the URL is printed
                try:
                    await client.connect(url, namespaces=["/resident"], auth={"lang": "pl"}, transports=["websocket"])
                    break
                except socketio.exceptions.ConnectionError:
                    await asyncio.sleep(0.25)
            try:
                return await asyncio.wait_for(notice, 10)
            finally:
                await client.disconnect()

        notice = asyncio.run(resident_sees_the_notice())
        assert notice["version"] == 1 and notice["lang"] == "pl" and notice["text"].strip()
        assert process.poll() is None  # the UI is still running
        os.write(main, b"\x11")  # Ctrl+Q quits the UI, which stops the server with it
        assert process.wait(timeout=15) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(main)
