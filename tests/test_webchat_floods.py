"""Floods that cannot be rebuilt from a new chat or a new socket, binary frames, sessions that never join, half-open
requests, and a health check that tells nothing about who is online.

Real servers on loopback: create_app (the chat_server fixtures) and `cim serve` as a process where
its own wiring (the HTTP runner, its log) is what is tested; python-socketio clients and raw sockets.
"""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest
import socketio

from tests.fixtures.reliability import RawSocket
from webchat.app import SIO
from webchat.protocol import REFUSAL_REASONS

pytestmark = pytest.mark.ordinance("GDPR 32")


def code(ack: dict) -> str | None:
    assert ack["ok"] is False and set(ack["error"]) - {"reason"} == {"code", "message"}, ack
    assert ack["error"].get("reason") in REFUSAL_REASONS | {None}, ack  # a reason is optional
    return ack["error"]["code"]


def via(address: str) -> dict[str, str]:
    """Headers of a resident arriving through the trusted reverse proxy from `address`."""
    return {"X-Forwarded-For": address}


async def restart_chat(r) -> dict:
    """End the chat and accept the notice again on the same socket."""
    assert (await r.call("end", {}))["ok"]
    notice = r.of("notice")[0]
    return await r.call("accept_notice", {"notice_id": notice["notice_id"]})


# ---------------------------------------------------------------- messages: per socket and per address


async def test_end_and_accept_notice_again_does_not_reset_the_message_limit(make_chat_server, resident):
    server = await make_chat_server(resident_rate_limit="5/60")
    r = await resident(url=server.url)
    await r.start()
    for k in range(5):
        assert (await r.send(f"pytanie {k}", f"a{k}"))["ok"]
    assert code(await r.send("za dużo", "a5")) == "rate_limited"
    assert (await restart_chat(r))["ok"]  # a new chat on the same socket: the socket's window goes on
    assert code(await r.send("nowy czat, ta sama lawina", "b0")) == "rate_limited"


async def test_a_new_socket_from_the_same_address_does_not_reset_the_limit(make_chat_server, resident):
    server = await make_chat_server(
        resident_rate_limit="5/60", resident_address_rate_limit="8/60", trusted_proxies="127.0.0.1"
    )
    first, second = (
        await resident(url=server.url, headers=via("203.0.113.5")),
        await resident(url=server.url, headers=via("203.0.113.5")),
    )
    neighbour = await resident(url=server.url, headers=via("198.51.100.20"))
    for r in (first, second, neighbour):
        await r.start()
    assert all([(await first.send(f"a{k}", f"a{k}"))["ok"] for k in range(5)])
    assert all([(await second.send(f"b{k}", f"b{k}"))["ok"] for k in range(3)])
    assert code(await second.send("b3", "b3")) == "rate_limited"  # the address has sent 8
    assert all([(await neighbour.send(f"n{k}", f"n{k}"))["ok"] for k in range(5)])  # another address is served


# ---------------------------------------------------------------- chat openings and the queue


async def test_chat_openings_are_limited_per_socket_and_per_address(make_chat_server, resident):
    server = await make_chat_server(
        chat_open_rate_limit="2/600", chat_open_address_rate_limit="3/600", trusted_proxies="127.0.0.1"
    )
    r = await resident(url=server.url, headers=via("203.0.113.6"))
    await r.start()
    assert (await restart_chat(r))["ok"]
    assert code(await restart_chat(r)) == "rate_limited"  # a third chat on one socket
    other_tab = await resident(url=server.url, headers=via("203.0.113.6"))
    await other_tab.start()  # the address's third
    third_tab = await resident(url=server.url, headers=via("203.0.113.6"))
    notice = await third_tab.wait_for("notice")
    assert code(await third_tab.call("accept_notice", {"notice_id": notice["notice_id"]})) == "rate_limited"
    elsewhere = await resident(url=server.url, headers=via("198.51.100.21"))
    await elsewhere.start()


async def test_a_flood_from_one_address_cannot_fill_the_consultants_queue(
    make_chat_server, resident, consultant_client
):
    server = await make_chat_server(
        max_queued_chats_per_address="3", chat_open_address_rate_limit="off", trusted_proxies="127.0.0.1"
    )
    consultant = await consultant_client("anna", url=server.url)
    acks = []
    for _ in range(8):
        r = await resident(url=server.url, headers=via("203.0.113.7"))
        notice = await r.wait_for("notice")
        acks.append(await r.call("accept_notice", {"notice_id": notice["notice_id"]}))
    assert [a["ok"] for a in acks] == [True] * 3 + [False] * 5
    assert {code(a) for a in acks[3:]} == {"rate_limited"}
    resident_elsewhere = await resident(url=server.url, headers=via("198.51.100.22"))
    await resident_elsewhere.start()
    queue = await consultant.wait_for("queue", lambda q: len(q["chats"]) == 4)
    assert resident_elsewhere.chat_id in [c["chat_id"] for c in queue["chats"]]
    # once a consultant takes one of them, that address may queue one more
    assert (await consultant.call("accept", {"chat_id": acks[0]["chat_id"]}))["ok"]
    late = await resident(url=server.url, headers=via("203.0.113.7"))
    await late.start()


# ---------------------------------------------------------------- binary frames and packet sizes


async def test_binary_frames_are_refused_on_both_namespaces(chat_server, resident, consultant_client):
    bystander = await resident()
    await bystander.start()
    sender = await resident()
    await sender.start()
    await sender.emit("send", {"text": b"\x00" * 60_000, "client_msg_id": "bin"})  # an attachment
    await sender.wait_for("disconnect")
    staff = await consultant_client("anna")
    await staff.emit("send", {"chat_id": bystander.chat_id, "text": b"\x01"})
    await staff.wait_for("disconnect")
    assert [m.sender for m in await chat_server.store.chats.history(sender.chat_id)] == ["system", "system"]
    assert (await bystander.send("nadal działa", "ok"))["ok"]


async def test_attachments_announced_by_the_thousand_are_not_collected(chat_server, resident):
    """A BINARY_EVENT declaring 1,000 attachments once let a socket hold 1,000 × 64 KiB; now it closes the socket."""
    bystander = await resident()
    await bystander.start()
    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(f"{chat_server.url}/socket.io/?EIO=4&transport=websocket") as ws:
            await ws.receive_str()
            await ws.send_str('40/resident,{"lang":"pl"}')
            placeholder = json.dumps(["send", {"text": {"_placeholder": True, "num": 0}}])
            await ws.send_str("451000-/resident," + placeholder)
            for _ in range(3):
                await ws.send_bytes(b"\x00" * 60_000)
            while (await ws.receive()).type not in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
                pass
    assert chat_server.app[SIO]._binary_packet == {}  # nothing of it was kept
    assert (await bystander.send("nadal działa", "ok"))["ok"]


async def test_a_stray_binary_frame_logs_one_line_never_a_traceback(serve_process):
    server = serve_process()
    url = server.start()
    try:
        for _ in range(30):  # one refused frame each, from 30 sockets
            async with aiohttp.ClientSession() as http:
                async with http.ws_connect(f"{url}/socket.io/?EIO=4&transport=websocket") as ws:
                    await ws.receive_str()
                    await ws.send_str('40/resident,{"lang":"pl"}')
                    await ws.send_bytes(b"\x07")
                    while (await ws.receive()).type not in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
                        pass
        resident = await RawSocket.connect(url)  # and the server is fine
        await resident.start_chat()
        await resident.close()
    finally:
        assert server.stop() == 0
    log = server.log()
    refused = [line for line in log.splitlines() if "socket.frame_refused" in line]
    assert 1 <= len(refused) <= 10, refused  # one line per refused frame, rate-limited
    assert "kind=binary" in refused[0]
    assert "Traceback" not in log and "handler error" not in log, log[-3000:]


# ---------------------------------------------------------------- Engine.IO sessions that never join


async def _engineio_session(url: str) -> tuple[aiohttp.ClientSession, aiohttp.ClientWebSocketResponse]:
    http = aiohttp.ClientSession()
    try:
        ws = await http.ws_connect(f"{url}/socket.io/?EIO=4&transport=websocket", headers=via("203.0.113.8"))
        assert (await ws.receive_str()).startswith("0")
    except BaseException:
        await http.close()
        raise
    return http, ws


async def test_sessions_that_never_join_a_namespace_are_limited_and_closed(make_chat_server):
    server = await make_chat_server(
        max_connections_per_address="3", socket_join_grace_seconds=1, trusted_proxies="127.0.0.1"
    )
    opened = [await _engineio_session(server.url) for _ in range(3)]
    try:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await _engineio_session(server.url)
        assert refused.value.status == 401
        async with aiohttp.ClientSession() as http:  # long-polling is counted alike
            async with http.get(f"{server.url}/socket.io/?EIO=4&transport=polling", headers=via("203.0.113.8")) as r:
                assert r.status == 401
        # after the grace period the server closes each of them (answering pings does not help)
        for _, ws in opened:
            while (message := await asyncio.wait_for(ws.receive(), 30)).type not in (
                aiohttp.WSMsgType.CLOSE,
                aiohttp.WSMsgType.CLOSED,
            ):
                if message.type == aiohttp.WSMsgType.TEXT and message.data == "2":
                    await ws.send_str("3")
    finally:
        for http, ws in opened:
            await ws.close()
            await http.close()
    # their places are free again, and a session that joins in time stays
    sock = await RawSocket.connect(server.url, headers=via("203.0.113.8"))
    try:
        await sock.start_chat()
        await asyncio.sleep(1.5)  # past the grace period
        assert (await sock.call("send", {"text": "jestem", "client_msg_id": "j"}))["ok"]
    finally:
        await sock.close()


async def test_the_default_namespace_is_not_a_way_around_the_limits(chat_server):
    client = socketio.AsyncClient(reconnection=False)
    try:
        with pytest.raises(socketio.exceptions.ConnectionError):
            await client.connect(chat_server.url, namespaces=["/"], transports=["websocket"], wait_timeout=10)
    finally:
        await client.disconnect()


# ---------------------------------------------------------------- half-open HTTP requests


async def test_cim_serve_drops_half_open_requests_after_the_header_timeout(serve_process):
    server = serve_process({"CIM_HTTP_HEADER_TIMEOUT_SECONDS": "1"})
    url = server.start()
    host, port = url.removeprefix("http://").split(":")
    try:
        resident = await RawSocket.connect(url)
        await resident.start_chat()
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")  # and never the rest
        await writer.drain()
        assert await asyncio.wait_for(reader.read(), 30) == b""  # the server hung up (today: after 75 s)
        writer.close()
        # a WebSocket idle for longer than the header timeout is not a half-open request
        assert (await resident.call("send", {"text": "nadal tu jestem", "client_msg_id": "s"}))["ok"]
        await resident.close()
    finally:
        assert server.stop() == 0


async def test_a_trickled_request_head_is_dropped_too(serve_process):
    server = serve_process({"CIM_HTTP_HEADER_TIMEOUT_SECONDS": "1"})
    url = server.start()
    host, port = url.removeprefix("http://").split(":")
    try:
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(b"GET /healthz HTTP/1.1\r\n")

        async def trickle() -> None:
            for _ in range(60):
                await asyncio.sleep(0.25)
                writer.write(b"X-A: b\r\n")
                await writer.drain()

        feeding = asyncio.create_task(trickle())
        try:
            assert await asyncio.wait_for(reader.read(), 30) == b""
        finally:
            feeding.cancel()
            await asyncio.gather(feeding, return_exceptions=True)
            writer.close()
    finally:
        assert server.stop() == 0


async def test_healthz_through_cim_serve_is_ok_and_nothing_else(serve_process):
    server = serve_process()
    url = server.start()
    try:
        resident = await RawSocket.connect(url)
        await resident.start_chat()
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{url}/healthz") as response:
                assert response.status == 200 and await response.read() == b"ok"
        await resident.close()
    finally:
        assert server.stop() == 0
