"""The widget's session core (webchat/static/cim-widget-core.js): its node tests, run from the test command,
and the server's message length limit that the widget follows (notice, offline, history)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NODE_TESTS = sorted((REPO / "webchat" / "tests").glob("*.test.js"))


def test_the_widget_core_node_tests_pass():
    """`node --test` on webchat/tests/: Node.js is a prerequisite of the set-up (npm ci), so never skipped."""
    node = shutil.which("node")
    assert node, "node is not installed; the widget's core tests need Node.js (README: The two commands)"
    assert NODE_TESTS, "no node tests found in webchat/tests/"
    proc = subprocess.run(
        [node, "--test", *map(str, NODE_TESTS)], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    passed = re.search(r"^# pass (\d+)$", out, flags=re.M)
    assert passed and int(passed.group(1)) >= 10, out
    assert re.search(r"^# fail 0$", out, flags=re.M), out


@pytest.fixture
def settings(settings):
    """A store (and so a server) whose limit is not the default 2000."""
    return settings.with_(max_message_length=77)


async def test_the_server_sends_its_message_length_limit_in_notice_and_history(chat_server, resident):
    r = await resident()
    notice = await r.wait_for("notice")
    assert notice["max_message_length"] == 77
    await r.start()
    # the limit it sends is the one it enforces
    too_long = await r.call("send", {"text": "x" * 78, "client_msg_id": "a"})
    assert too_long["ok"] is False and too_long["error"]["code"] == "too_long"
    assert (await r.call("send", {"text": "x" * 77, "client_msg_id": "b"}))["ok"]
    again = await resident(resume=r.resume_token)
    history = await again.wait_for("history")
    assert history["max_message_length"] == 77
    assert [m["text"] for m in history["messages"] if m["from"] == "resident"] == ["x" * 77]


async def test_the_offline_payload_carries_the_limit_too(chat_settings, store, resident):
    from tests.fixtures.chat import start_chat_server

    tomorrow = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")[(store.clock().weekday() + 1) % 7]
    server, runner = await start_chat_server(chat_settings.with_(opening_hours=f"{tomorrow} 08:00-16:00"), store)
    try:
        r = await resident(url=server.url)
        offline = await r.wait_for("offline")
        assert offline["max_message_length"] == 77
        await r.disconnect()
    finally:
        await runner.cleanup()
