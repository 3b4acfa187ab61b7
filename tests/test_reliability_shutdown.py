"""Graceful stop: `cim serve` exits on SIGTERM even when clients stopped talking mid-session."""

from __future__ import annotations

import asyncio
import json
import subprocess

import aiohttp

from tests.fixtures.reliability import StalledSocket


async def _abandoned_long_poll(url: str, join: bool) -> None:
    """Open an Engine.IO long-polling session (optionally join /resident in it), then never poll again."""
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{url}/socket.io/?EIO=4&transport=polling") as opened:
            assert opened.status == 200
            sid = json.loads((await opened.text())[1:])["sid"]
        if join:
            async with http.post(
                f"{url}/socket.io/?EIO=4&transport=polling&sid={sid}", data='40/resident,{"lang":"pl"}'
            ) as joined:
                assert joined.status == 200


async def test_sigterm_stops_the_server_despite_abandoned_long_polls_and_stalled_sockets(serve_process):
    server = serve_process()
    url = await asyncio.to_thread(server.start)
    await _abandoned_long_poll(url, join=False)
    await _abandoned_long_poll(url, join=True)
    stalled = await StalledSocket.connect(url, {"lang": "pl"})
    try:
        server.proc.terminate()
        # a hang is a failure, however long we wait: systemd would SIGKILL it and the log would end abruptly
        status = await asyncio.to_thread(server.proc.wait, 60)
    except subprocess.TimeoutExpired:
        raise AssertionError("cim serve did not stop on SIGTERM:\n" + server.log()[-2000:]) from None
    finally:
        stalled.close()
    assert status == 0
    assert "server.stopped" in server.log()
