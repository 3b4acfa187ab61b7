"""Floods: a resident flooding messages, one address opening hundreds of sockets, clients that never read.

Each test measures the other residents' acknowledgement latency during the flood and prints its p99
(run with `-s` to see it); it asserts only that they were all served, never a time bound.
"""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

from tests.fixtures.reliability import RawSocket, Refused, StalledSocket, p99, size

OTHERS = size(10, 50, "CIM_FLOOD_OTHERS")
MESSAGES_EACH = size(10, 40, "CIM_FLOOD_MESSAGES")
FLOOD_CONNECTIONS = size(200, 1000, "CIM_FLOOD_CONNECTIONS")
STALLED = size(20, 100, "CIM_FLOOD_STALLED")


async def others_chat(url: str, count: int = OTHERS, *, own_addresses: bool = False) -> list[float]:
    """`count` residents each send MESSAGES_EACH messages one after another; returns every ack latency (s).

    `own_addresses`: each comes through the trusted proxy from an address of its own (198.51.100.0/24).
    """
    residents = [
        await RawSocket.connect(
            url,
            auth={"lang": "pl"},
            headers={"X-Forwarded-For": f"198.51.100.{i % 250 + 1}"} if own_addresses else None,
        )
        for i in range(count)
    ]
    try:
        for r in residents:
            await r.start_chat()

        async def talk(i: int, r: RawSocket) -> list[float]:
            latencies = []
            for k in range(MESSAGES_EACH):
                started = time.perf_counter()
                ack = await r.call("send", {"text": f"pytanie {k} od {i}", "client_msg_id": f"o{i}-{k}"}, timeout=60)
                latencies.append(time.perf_counter() - started)
                assert ack == {"ok": True, "seq": ack["seq"]}, ack
            return latencies

        results = await asyncio.gather(*(talk(i, r) for i, r in enumerate(residents)))
    finally:
        for r in residents:
            await r.close()
    return [x for batch in results for x in batch]


def report(what: str, latencies: list[float]) -> None:
    print(
        f"\n{what}: {len(latencies)} acks to other residents, p50 {sorted(latencies)[len(latencies) // 2] * 1000:.1f} ms, "
        f"p99 {p99(latencies) * 1000:.1f} ms, max {max(latencies) * 1000:.1f} ms"
    )


async def test_a_flooding_resident_gets_rate_limited_acks_and_others_are_served(make_chat_server) -> None:
    allowed = MESSAGES_EACH + 10  # every other resident stays under it; the flooder does not
    # the per-chat limit under test; the per-address one (all these residents share 127.0.0.1) is off
    server = await make_chat_server(
        resident_rate_limit=f"{allowed}/60", max_connections_per_address="off", resident_address_rate_limit="off"
    )
    flooder = await RawSocket.connect(server.url, auth={"lang": "pl"})
    try:
        chat_id = (await flooder.start_chat())["chat_id"]
        flood_size = 300
        flood = asyncio.gather(
            *(
                flooder.call("send", {"text": f"spam {k}", "client_msg_id": f"f{k}"}, timeout=60)
                for k in range(flood_size)
            )
        )
        latencies = await others_chat(server.url)
        acks = await flood
    finally:
        await flooder.close()
    codes = [a["error"]["code"] if not a["ok"] else "ok" for a in acks]
    assert codes.count("ok") == allowed
    assert codes.count("rate_limited") == flood_size - allowed
    rows = await server.store.db.fetchall(
        "SELECT conversation_id, seq, text FROM messages WHERE sender = 'resident' AND conversation_id = ?", (chat_id,)
    )
    texts = await server.store.keys.texts(chat_id, rows)  # sealed at rest, opened by the store
    assert sum(t.startswith("spam ") for t in texts) == allowed
    assert len(latencies) == OTHERS * MESSAGES_EACH
    report(f"message flood (rate limit {allowed}/60)", latencies)


async def test_one_address_cannot_open_more_than_the_limit_and_others_still_connect(make_chat_server) -> None:
    # behind the city's reverse proxy: the resident's address comes from X-Forwarded-For
    server = await make_chat_server(
        max_connections_per_address="20",
        trusted_proxies="127.0.0.1",
        resident_rate_limit="off",
        resident_address_rate_limit="off",
    )
    flood_headers = {"X-Forwarded-For": "203.0.113.7"}

    async def attempt() -> RawSocket | str:
        try:
            return await RawSocket.connect(server.url, auth={"lang": "pl"}, headers=flood_headers, timeout=30)
        except Refused as exc:
            return exc.code or "refused"
        except aiohttp.WSServerHandshakeError as exc:  # 20 sessions already waiting to join: Engine.IO's 401
            assert exc.status == 401, exc
            return "too_many_sessions"

    results = await asyncio.gather(*(attempt() for _ in range(FLOOD_CONNECTIONS)))
    opened = [r for r in results if isinstance(r, RawSocket)]
    try:
        refusals = [r for r in results if not isinstance(r, RawSocket)]
        assert len(opened) == 20
        assert set(refusals) <= {"too_many_connections", "too_many_sessions"}
        assert len(refusals) == FLOOD_CONNECTIONS - 20
        latencies = await others_chat(server.url, own_addresses=True)
        assert len(latencies) == OTHERS * MESSAGES_EACH
        report(f"connection flood ({FLOOD_CONNECTIONS} sockets from one address, limit 20)", latencies)
    finally:
        for sock in opened:
            await sock.close()
    # closed sockets give their places back
    await asyncio.sleep(0.2)
    again = await RawSocket.connect(server.url, auth={"lang": "pl"}, headers=flood_headers)
    await again.close()


async def test_x_forwarded_for_from_an_untrusted_peer_does_not_evade_the_limit(make_chat_server) -> None:
    server = await make_chat_server(max_connections_per_address="5")  # no trusted proxies
    opened = []
    try:
        for i in range(5):
            opened.append(await RawSocket.connect(server.url, auth={}, headers={"X-Forwarded-For": f"10.0.0.{i}"}))
        with pytest.raises(Refused) as refused:
            await RawSocket.connect(server.url, auth={}, headers={"X-Forwarded-For": "10.0.0.99"})
        assert refused.value.code == "too_many_connections"
    finally:
        for sock in opened:
            await sock.close()


async def test_clients_that_never_read_hold_up_nobody(make_chat_server) -> None:
    server = await make_chat_server(
        resident_rate_limit="off", max_connections_per_address="off", resident_address_rate_limit="off"
    )
    feeder = await RawSocket.connect(server.url, auth={"lang": "pl"})
    stalled: list[StalledSocket] = []
    slowloris: list[asyncio.StreamWriter] = []
    host, port = server.url.removeprefix("http://").split(":")
    try:
        chat = await feeder.start_chat()
        # sockets that joined the feeder's chat (as a resumed resident may) and then never read a byte
        stalled = [
            await StalledSocket.connect(server.url, {"lang": "pl", "resume": chat["resume_token"]})
            for _ in range(STALLED)
        ]
        # and connections that never finish their HTTP request
        for _ in range(STALLED):
            _, writer = await asyncio.open_connection(host, int(port))
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            slowloris.append(writer)
        big = "ż" * server.settings.max_message_length  # every copy is ~4 KB on the wire

        async def feed() -> list[dict]:
            return [await feeder.call("send", {"text": big, "client_msg_id": f"b{k}"}, timeout=60) for k in range(100)]

        feeding = asyncio.create_task(feed())
        latencies = await others_chat(server.url)
        fed = await feeding
        assert all(a["ok"] for a in fed)
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{server.url}/healthz") as response:
                assert response.status == 200 and await response.text() == "ok"
        assert len(latencies) == OTHERS * MESSAGES_EACH
        report(f"{STALLED} sockets that never read + {STALLED} unfinished requests", latencies)
    finally:
        await feeder.close()
        for sock in stalled:
            sock.close()
        for writer in slowloris:
            writer.transport.abort()
