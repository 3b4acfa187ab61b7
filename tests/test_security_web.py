"""Web hardening of the chat server: origin allow-list, security headers, size limits, no stack traces, content-free logs."""

from __future__ import annotations

import asyncio
import json
import secrets

import aiohttp
import pytest

from tests.fixtures.chat import EMBEDDING_ORIGIN, ConnectionRefused, connect_client
from tests.fixtures.reliability import RawSocket, cim, read_messages
from tests.fixtures.store import PASSWORD

FOREIGN = "https://evil.example"
PAGES = ["/", "/widget/cim-widget.js", "/widget/cim-widget.css", "/healthz", "/widget/no-such-file", "/no-such-page"]


async def _get(url: str, **kw):
    async with aiohttp.ClientSession() as http:
        async with http.get(url, **kw) as response:
            return response.status, response.headers.copy(), await response.read()


# -- origins -------------------------------------------------------------------------------------------------


@pytest.mark.ordinance("GDPR 32")
async def test_a_foreign_origin_cannot_open_the_resident_socket_by_websocket(chat_server):
    with pytest.raises(ConnectionRefused):
        client = await connect_client(chat_server.url, "/resident", {"lang": "pl"}, headers={"Origin": FOREIGN})
        await client.disconnect()
    # a look-alike of the allowed origin is foreign too
    with pytest.raises(ConnectionRefused):
        client = await connect_client(
            chat_server.url, "/resident", {"lang": "pl"}, headers={"Origin": EMBEDDING_ORIGIN + ".evil.example"}
        )
        await client.disconnect()
    allowed = await connect_client(chat_server.url, "/resident", {"lang": "pl"}, headers={"Origin": EMBEDDING_ORIGIN})
    await allowed.wait_for("notice")
    await allowed.disconnect()


async def test_a_foreign_origin_cannot_use_long_polling(chat_server):
    polling = f"{chat_server.url}/socket.io/?EIO=4&transport=polling"
    status, headers, _ = await _get(polling, headers={"Origin": FOREIGN})
    assert status >= 400 and headers.get("Access-Control-Allow-Origin") != FOREIGN
    status, headers, body = await _get(polling, headers={"Origin": EMBEDDING_ORIGIN})
    assert status == 200 and headers.get("Access-Control-Allow-Origin") == EMBEDDING_ORIGIN
    assert body.startswith(b"0{")


async def test_a_star_in_the_allow_list_is_refused_at_start(make_chat_server):
    from store.errors import ConfigError

    with pytest.raises(ConfigError):
        await make_chat_server(allowed_origins="*")


# -- headers -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", PAGES)
async def test_security_headers_on_every_page(chat_server, path):
    status, headers, _ = await _get(chat_server.url + path)
    assert status in (200, 404), (path, status)
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "no-referrer"
    csp = headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    if not path.startswith("/widget/"):
        assert headers["X-Frame-Options"] == "DENY"


async def test_the_demo_page_allows_scripts_only_from_itself(chat_server):
    _, headers, _ = await _get(chat_server.url + "/")
    csp = dict(part.strip().split(" ", 1) for part in headers["Content-Security-Policy"].split(";") if part.strip())
    assert csp["script-src"] == "'self'" and csp["connect-src"] == "'self'"


# -- sizes ---------------------------------------------------------------------------------------------------


async def test_a_huge_request_body_is_refused_and_the_server_stays_up(chat_server):
    sock = await RawSocket.connect(chat_server.url, auth={"lang": "pl"})
    await sock.close()
    async with aiohttp.ClientSession() as http:
        # a polling session, then a body far above the limit
        async with http.get(f"{chat_server.url}/socket.io/?EIO=4&transport=polling") as opened:
            sid = json.loads((await opened.text())[1:])["sid"]
        body = b"4" + b"x" * (5 * 1024 * 1024)
        async with asyncio.timeout(30):  # Engine.IO alone never answered this request
            async with http.post(f"{chat_server.url}/socket.io/?EIO=4&transport=polling&sid={sid}", data=body) as r:
                assert r.status == 413
        for path in ("/", "/healthz"):
            async with http.post(chat_server.url + path, data=b"y" * (5 * 1024 * 1024)) as r:
                assert r.status in (405, 413)
        async with http.get(f"{chat_server.url}/healthz") as r:
            assert r.status == 200 and await r.text() == "ok"


async def test_an_oversized_socket_packet_closes_only_that_socket(chat_server, resident):
    bystander = await resident()
    await bystander.start()
    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(f"{chat_server.url}/socket.io/?EIO=4&transport=websocket") as ws:
            await ws.receive_str()
            await ws.send_str("40/resident,{}")
            await ws.send_str('42/resident,1["send",{"text":"' + "x" * 200_000 + '"}]')
            while True:
                msg = await ws.receive(timeout=10)
                if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING):
                    break
    ack = await bystander.send("nadal tu jestem", "b1")
    assert ack["ok"] is True


# -- no stack traces -------------------------------------------------------------------------------------


async def test_no_stack_trace_reaches_a_client_even_when_the_database_is_gone(chat_server, resident):
    r = await resident()
    await r.start()
    await chat_server.store.db.close()  # a server-side failure under every handler
    ack = await r.send("halo", "m1")
    assert ack["ok"] is False and ack["error"]["code"] == "server_error"
    bodies = [json.dumps(ack)]
    for path in PAGES + [
        "/socket.io/?EIO=4&transport=polling",
        "/widget/%2e%2e/%2e%2e/etc/passwd",
        "/widget/..%5c..%5cstore",
        "/%00",
        "/widget/" + "a" * 5000,
    ]:
        status, _, body = await _get(chat_server.url + path)
        bodies.append(body.decode("utf-8", "replace"))
        assert status != 500 or json.loads(body)["error"]["code"] == "server_error"
    status, _, body = await _get(chat_server.url + "/healthz")
    assert status == 503 and body == b"unavailable"
    for text in bodies:
        assert "Traceback" not in text and 'File "' not in text and ".py" not in text, text[:300]


async def test_static_files_never_leave_the_widget_folder(chat_server):
    for path in (
        "/widget/../store/db.py",
        "/widget/%2e%2e/store/db.py",
        "/widget/..%2fstore%2fdb.py",
        "/widget/vendor/../../cim.sqlite3",
    ):
        status, _, body = await _get(chat_server.url + path)
        assert status in (400, 403, 404), (path, status)
        assert b"sqlite" not in body.lower() and b"def " not in body


# -- logs ------------------------------------------------------------------------------------------------------


@pytest.mark.ordinance("GDPR 32", "§3")
async def test_the_server_log_holds_no_message_text_and_no_token(serve_process):
    from store import Store
    from store.settings import Settings

    server = serve_process({"CIM_OPENING_HOURS": "always"})
    added = await asyncio.to_thread(
        cim, server.data_dir, "users", "add", "anna", "--role", "consultant", "--password-stdin", stdin=PASSWORD + "\n"
    )
    assert added.returncode == 0, added.stderr
    url = await asyncio.to_thread(server.start)
    # the staff TUI signs in through the store on the same host
    store = await Store.open(Settings.load(server.data_dir, env={}, password_profile="fast"))
    try:
        session = await store.accounts.login("anna", PASSWORD)
    finally:
        await store.close()
    secret_resident = "Mój PESEL to 85010112345 " + secrets.token_hex(8)
    secret_consultant = "Pani numer sprawy " + secrets.token_hex(8)
    resident = await connect_client(url, "/resident", {"lang": "pl"})
    staff = await connect_client(url, "/staff", {"token": session.token})
    try:
        notice = await resident.wait_for("notice")
        from tests.fixtures.chat import notice_acceptance

        opened = await resident.call("accept_notice", await notice_acceptance(resident.call, notice["notice_id"]))
        assert (await resident.call("send", {"text": secret_resident, "client_msg_id": "a"}))["ok"]
        assert (await staff.call("accept", {"chat_id": opened["chat_id"]}))["ok"]
        assert (
            await staff.call("send", {"chat_id": opened["chat_id"], "text": secret_consultant, "client_msg_id": "b"})
        )["ok"]
        await resident.wait_for("message", lambda m: m["text"] == secret_consultant)
        assert (await resident.call("send", {"text": "", "client_msg_id": "c"}))["error"]["code"] == "empty"
        assert (await resident.call("end", {}))["ok"]
    finally:
        await resident.disconnect()
        await staff.disconnect()
    assert await asyncio.to_thread(server.stop) == 0
    log = server.log()
    assert "chat.opened" in log and "chat.accepted" in log  # the log is written, and it is structured
    for secret in (secret_resident, secret_consultant, "85010112345", opened["resume_token"], session.token):
        assert secret not in log, f"{secret[:12]}… appears in the server log"
    stored = [m for m in await read_messages(server.data_dir) if m["text"] == secret_resident]
    assert len(stored) == 1  # what the log must not hold, the database does (sealed, opened by the store)
