"""The chat server's HTTP side and its hardening: headers, assets, origins, connection limits, settings, a real process."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from store.errors import ConfigError
from tests.fixtures.chat import EMBEDDING_ORIGIN, ConnectionRefused, Resident, connect_client
from webchat.app import STATIC_DIR, VENDOR_FILES, create_app

REPO = Path(__file__).resolve().parents[1]


async def get(url: str, **kw) -> tuple[int, dict[str, str], bytes]:
    async with aiohttp.ClientSession() as session:
        async with session.get(url, allow_redirects=False, **kw) as response:
            return response.status, dict(response.headers), await response.read()


# ---------------------------------------------------------------- hostile requests first


@pytest.mark.parametrize(
    "path",
    [
        "/widget/../store/db.py",
        "/widget/%2e%2e/store/db.py",
        "/widget/..%2fcim.sqlite3",
        "/widget/vendor/../../node_modules/.package-lock.json",
        "/cim.sqlite3",
        "/widget/vendor/not-a-library.js",
    ],
)
async def test_no_file_outside_the_widget_folder_is_served(chat_server, path):
    status, _, body = await get(chat_server.url + path)
    assert status in (400, 403, 404)
    assert b"import" not in body and b"SQLite" not in body


async def test_a_foreign_origin_is_refused(chat_server):
    with pytest.raises(ConnectionRefused):
        await connect_client(chat_server.url, "/resident", {"lang": "pl"}, headers={"Origin": "http://evil.example"})
    status, _, body = await get(
        chat_server.url + "/socket.io/?EIO=4&transport=polling", headers={"Origin": "https://evil.example"}
    )
    assert status == 400 and b"accepted origin" in body
    # a look-alike of an allowed origin is foreign too
    status, _, _ = await get(
        chat_server.url + "/socket.io/?EIO=4&transport=polling", headers={"Origin": EMBEDDING_ORIGIN + ".evil.example"}
    )
    assert status == 400


async def test_allowed_and_own_origins_connect(chat_server):
    for origin in (EMBEDDING_ORIGIN, chat_server.url):
        client = await connect_client(
            chat_server.url, "/resident", {"lang": "pl"}, headers={"Origin": origin}, cls=Resident
        )
        await client.wait_for("notice")
        await client.disconnect()
    status, headers, _ = await get(
        chat_server.url + "/socket.io/?EIO=4&transport=polling", headers={"Origin": EMBEDDING_ORIGIN}
    )
    assert status == 200 and headers["Access-Control-Allow-Origin"] == EMBEDDING_ORIGIN


@pytest.mark.parametrize(
    "overrides",
    [
        {"allowed_origins": "*"},
        {"allowed_origins": "https://ok.example, *"},
        {"allowed_origins": "ftp://x.example"},
        {"allowed_origins": "https://x.example/path"},
        {"resident_rate_limit": "ten"},
        {"resident_rate_limit": "0/10"},
        {"max_connections_per_address": "0"},
        {"max_connections_per_address": "many"},
        {"opening_hours": "whenever"},
        {"trusted_proxies": "proxy.local"},
    ],
)
async def test_bad_settings_stop_the_server_from_being_built(chat_settings, store, overrides):
    with pytest.raises(ConfigError):
        create_app(chat_settings.with_(**overrides), store)


async def test_too_many_connections_from_one_address(make_chat_server):
    server = await make_chat_server(max_connections_per_address="2")
    first = await connect_client(server.url, "/resident", {"lang": "pl"})
    second = await connect_client(server.url, "/resident", {"lang": "pl"})
    with pytest.raises(ConnectionRefused) as info:
        await connect_client(server.url, "/resident", {"lang": "pl"})
    assert info.value.code == "too_many_connections"
    # a forged X-Forwarded-For is ignored when no trusted proxy is configured
    with pytest.raises(ConnectionRefused):
        await connect_client(server.url, "/resident", {"lang": "pl"}, headers={"X-Forwarded-For": "203.0.113.9"})
    await first.disconnect()
    third = await connect_client(server.url, "/resident", {"lang": "pl"})
    for c in (second, third):
        await c.disconnect()


async def test_behind_a_trusted_proxy_the_forwarded_address_counts(make_chat_server):
    server = await make_chat_server(max_connections_per_address="1", trusted_proxies="127.0.0.1")
    a = await connect_client(server.url, "/resident", {"lang": "pl"}, headers={"X-Forwarded-For": "203.0.113.1"})
    # the client may prepend anything; only the hop our proxy appended (the rightmost) is believed
    b = await connect_client(
        server.url, "/resident", {"lang": "pl"}, headers={"X-Forwarded-For": "203.0.113.1, 198.51.100.7"}
    )
    with pytest.raises(ConnectionRefused):
        await connect_client(
            server.url, "/resident", {"lang": "pl"}, headers={"X-Forwarded-For": "10.9.9.9, 203.0.113.1"}
        )
    for c in (a, b):
        await c.disconnect()


async def test_oversized_packets_are_refused_and_the_server_stays_up(chat_server):
    r = await connect_client(chat_server.url, "/resident", {"lang": "pl"}, cls=Resident)
    await r.start()
    try:
        await asyncio.wait_for(r.client.emit("send", {"text": "x" * 200_000}, namespace="/resident"), 5)
        await asyncio.wait_for(r.client.sleep(0.5), 5)
    except Exception:
        pass
    finally:
        await r.disconnect()
    history = await chat_server.store.chats.history(r.chat_id)
    assert all(len(m.text) < 10_000 for m in history)
    async with aiohttp.ClientSession() as session:
        async with session.post(chat_server.url + "/healthz", data=b"x" * 200_000) as response:
            assert response.status in (405, 413)
    status, _, _ = await get(chat_server.url + "/healthz")
    assert status == 200


async def test_a_database_failure_is_reported_without_internals(chat_server):
    await chat_server.store.db.close()
    status, _, body = await get(chat_server.url + "/healthz")
    assert status == 503 and b"Traceback" not in body and b".py" not in body
    assert body == b"unavailable"


# ---------------------------------------------------------------- pages, assets and headers


async def test_security_headers_on_every_kind_of_response(chat_server):
    for path in ("/", "/healthz", "/widget/cim-widget.js", "/widget/vendor/socket.io.min.js", "/no-such-page"):
        _, headers, _ = await get(chat_server.url + path)
        assert headers["X-Content-Type-Options"] == "nosniff", path
        assert headers["Referrer-Policy"] == "no-referrer", path
        assert "Content-Security-Policy" in headers, path
    _, headers, _ = await get(chat_server.url + "/")
    csp = dict(part.strip().split(" ", 1) for part in headers["Content-Security-Policy"].split(";"))
    assert csp["script-src"] == "'self'"
    assert "unsafe-inline" not in headers["Content-Security-Policy"] and "*" not in headers["Content-Security-Policy"]
    assert csp["frame-ancestors"] == "'none'" and headers["X-Frame-Options"] == "DENY"
    assert csp["connect-src"] == "'self'" and csp["default-src"] == "'none'"
    # the widget's assets are embeddable by other sites
    _, headers, _ = await get(chat_server.url + "/widget/cim-widget.js")
    assert headers["Cross-Origin-Resource-Policy"] == "cross-origin"
    assert "javascript" in headers["Content-Type"]


async def test_the_demo_page_needs_no_inline_script_and_its_styles_are_hashed(chat_server):
    status, headers, body = await get(chat_server.url + "/")
    html = body.decode("utf-8")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert 'src="/widget/cim-widget.js"' in html
    scripts = re.findall(r"<script\b([^>]*)>(.*?)</script>", html, flags=re.S | re.I)
    assert scripts and all("src=" in attrs and not inner.strip() for attrs, inner in scripts)
    assert not re.search(r"\son[a-z]+\s*=", html, flags=re.I)  # no inline event handlers either
    for block in re.findall(r"<style[^>]*>(.*?)</style>", html, flags=re.S):
        digest = base64.b64encode(hashlib.sha256(block.encode()).digest()).decode()
        assert f"'sha256-{digest}'" in headers["Content-Security-Policy"]


async def test_vendor_libraries_come_from_npm_not_a_cdn(chat_server):
    for name, path in VENDOR_FILES.items():
        status, headers, body = await get(chat_server.url + f"/widget/vendor/{name}")
        assert status == 200 and body == path.read_bytes()
    widget = (STATIC_DIR / "cim-widget.js").read_text(encoding="utf-8")
    assert not re.search(r"https?://(cdn|unpkg|cdnjs|jsdelivr)", widget)


async def test_healthz_answers_ok_and_nothing_about_who_is_online(chat_server, consultant_client, resident):
    status, headers, body = await get(chat_server.url + "/healthz")
    assert status == 200 and headers["Content-Type"].startswith("text/plain") and body == b"ok"
    # with a consultant and a resident connected, the answer is the same two letters: who is online is not public
    await consultant_client("anna")
    await (await resident()).start()
    status, _, body = await get(chat_server.url + "/healthz")
    assert status == 200 and body == b"ok"


# ---------------------------------------------------------------- the real process


def _start_serve(data_dir: Path, log: Path) -> tuple[subprocess.Popen, str]:
    """`cim serve --port 0` as a real process; its log goes to a file (a full pipe would stall it)."""
    env = {
        **os.environ,
        "CIM_DATA_DIR": str(data_dir),
        "CIM_OPENING_HOURS": "always",
        "CIM_RESIDENT_RATE_LIMIT": "off",
        "CIM_PASSWORD_PROFILE": "fast",
        "CIM_PURGE_DAILY_AT": "off",
    }
    with open(log, "a", encoding="utf-8") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cim", "serve", "--port", "0"],
            cwd=REPO,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=sink,
        )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        urls = re.findall(r"serve\.listening url=(\S+)", log.read_text(encoding="utf-8"))
        if proc.poll() is not None:
            raise AssertionError(f"cim serve exited with {proc.returncode}: {log.read_text(encoding='utf-8')}")
        if urls:
            return proc, urls[-1]
        time.sleep(0.05)
    proc.kill()
    raise AssertionError("cim serve did not start listening within 30 s")


async def test_cim_serve_keeps_acked_messages_across_kill_9(tmp_path):
    data_dir = tmp_path / "served"
    init = subprocess.run(
        [sys.executable, "-m", "cim", "init", "--data-dir", str(data_dir)], cwd=REPO, capture_output=True, text=True
    )
    assert init.returncode == 0, init.stderr
    log = tmp_path / "serve.log"
    proc, url = await asyncio.to_thread(_start_serve, data_dir, log)
    try:
        r = await connect_client(url, "/resident", {"lang": "pl"}, cls=Resident)
        await r.start()
        acks = [await r.send(f"message {i}", f"k{i}") for i in range(20)]
        assert all(a["ok"] for a in acks)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        await r.client.disconnect()
        log.write_text("", encoding="utf-8")
        proc, url = await asyncio.to_thread(_start_serve, data_dir, log)
        back = await connect_client(url, "/resident", {"lang": "pl", "resume": r.resume_token}, cls=Resident)
        history = await back.wait_for("history")
        assert [m["text"] for m in history["messages"] if m["from"] == "resident"] == [
            f"message {i}" for i in range(20)
        ]
        assert (await back.send("message 5", "k5")) == {"ok": True, "seq": acks[5]["seq"]}  # still once
        await back.disconnect()
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.to_thread(proc.wait, 20)
            except subprocess.TimeoutExpired:
                proc.kill()
                raise
    assert proc.returncode == 0  # SIGTERM is a clean stop
    logged = log.read_text(encoding="utf-8")
    assert "message 5" not in logged and "Traceback" not in logged  # no message contents in the logs


def test_store_imports_no_web_or_screen_code():
    code = (
        "import sys, store, store.chats, store.opening_hours; "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('webchat', 'tui', 'aiohttp', 'socketio', 'textual')]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


async def test_refused_connections_do_not_use_up_the_address_allowance(make_chat_server, make_staff):
    server = await make_chat_server(max_connections_per_address="1")
    for _ in range(3):
        with pytest.raises(ConnectionRefused):
            await connect_client(server.url, "/resident", {"lang": "pl", "resume": "B" * 43})
        with pytest.raises(ConnectionRefused):
            await connect_client(server.url, "/staff", {"token": "forged" * 8})
    ok = await connect_client(server.url, "/resident", {"lang": "pl"})
    await ok.disconnect()
