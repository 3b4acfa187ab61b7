"""A flood of AMI events (10,000 in a burst) through a real `cim serve` while a chat goes on: nothing is lost, nothing grows."""

from __future__ import annotations

import asyncio

from bench.traffic import _pair
from tests.fixtures.ami import AmiReplayServer
from tests.fixtures.chat import connect_client
from tests.fixtures.store import PASSWORD
from webchat.app import HUB


async def test_a_chat_goes_on_untouched_while_ten_thousand_events_arrive(
    ami_server: AmiReplayServer, make_chat_server, make_staff, store, resident
) -> None:
    server = await make_chat_server(ami_url=ami_server.url, resident_rate_limit="off")
    await ami_server.wait_logged_in()
    ewa = await make_staff("ewa", "consultant")
    consultant = await connect_client(
        server.url, "/staff", {"token": (await store.accounts.login(ewa.name, PASSWORD)).token}
    )
    anna = await resident(url=server.url)
    await anna.start()
    assert (await consultant.call("accept", {"chat_id": anna.chat_id}))["ok"]
    pairs = 5_000
    chunks = ["".join(_pair(i) for i in range(k, min(pairs, k + 250))) for k in range(0, pairs, 250)]

    async def flood() -> None:
        for chunk in chunks:
            await ami_server.send(chunk)
            await asyncio.sleep(0)

    async def chat() -> list[dict]:
        acks = []
        for n in range(20):
            acks.append(await anna.send(f"pytanie {n}", client_msg_id=f"m{n}"))
            await asyncio.sleep(0.01)
        return acks

    _, acks = await asyncio.gather(flood(), chat())
    assert all(a["ok"] for a in acks), acks
    assert [a["seq"] for a in acks] == sorted({a["seq"] for a in acks})
    for n in range(20):
        await consultant.wait_for("message", lambda m, n=n: m.get("text") == f"pytanie {n}")
    final = await consultant.wait_for("traffic", lambda d: d["today"]["offered"] == pairs, timeout=60)
    assert final["queues"][0]["callers"] == []  # every caller joined and left: nothing kept
    traffic = server.app[HUB].traffic
    assert traffic.link.state.events_applied >= 2 * pairs and not traffic.link.state.channels
    assert traffic.pushes < 2 * pairs / 10  # coalesced, not one push per event
    await consultant.disconnect()
