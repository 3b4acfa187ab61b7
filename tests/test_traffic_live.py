"""`cim serve`'s AMI link end to end: a real chat server fed by the loopback AMI server, real /staff clients."""

from __future__ import annotations

import asyncio

import pytest

from tests.fixtures.ami import AmiReplayServer, read_transcript
from tests.fixtures.chat import ConnectionRefused, connect_client
from tests.fixtures.store import PASSWORD


async def staff_client(server, store, make_staff, name: str, *roles: str, extensions: tuple[str, ...] = ()):
    staff = await make_staff(name, *roles, extensions=extensions)
    session = await store.accounts.login(staff.name, PASSWORD)
    client = await connect_client(server.url, "/staff", {"token": session.token})
    client.staff = staff
    return client


def offered(n: int):
    return lambda doc: doc["today"]["offered"] == n and doc["pbx"]["connected"]


async def test_consultants_see_masked_numbers_the_manager_full_ones_and_chats_go_on(
        ami_server: AmiReplayServer, make_chat_server, make_staff, store, resident) -> None:
    server = await make_chat_server(ami_url=ami_server.url)
    await ami_server.wait_logged_in()
    ewa = await staff_client(server, store, make_staff, "ewa", "consultant", extensions=("202",))
    boss = await staff_client(server, store, make_staff, "kierownik", "cim_manager")
    first = await ewa.wait_for("traffic")
    assert set(first) >= {"queues", "calls", "today", "pbx", "at"}
    await ami_server.send(read_transcript("ami_morning.txt"))
    masked = await ewa.wait_for("traffic", offered(3))
    full = await boss.wait_for("traffic", offered(3))
    assert masked["calls"][0]["number"] == "•••567" and full["calls"][0]["number"] == "601234567"
    assert masked["queues"][0]["callers"][0]["number"] == "•••678"
    members = {m["extension"]: m for m in full["queues"][0]["members"]}
    assert members["202"]["consultant"] == "ewa" and members["202"]["state"] == "on_call"
    assert members["201"]["state"] == "paused" and members["201"]["reason"] == "Przerwa"
    assert "601234567" not in repr(ewa.of("traffic"))
    # the manager's socket is for the wallboard only: no chats are offered to it
    assert (await boss.call("accept", {"chat_id": 1}))["ok"] is False
    # a resident's chat is not disturbed by any of it
    anna = await resident()
    await anna.start()
    assert (await anna.send("Dzień dobry"))["ok"]


async def test_a_consultant_pauses_themselves_in_the_queue_and_it_is_audited(
        ami_server: AmiReplayServer, make_chat_server, make_staff, store) -> None:
    server = await make_chat_server(ami_url=ami_server.url)
    await ami_server.wait_logged_in()
    ewa = await staff_client(server, store, make_staff, "ewa", "consultant", extensions=("202",))
    jan = await staff_client(server, store, make_staff, "jan", "consultant", extensions=("299",))
    await ami_server.send(read_transcript("ami_morning.txt"))
    await ewa.wait_for("traffic", offered(3))
    ack = await ewa.call("queue_pause", {"paused": True, "reason": "Przerwa"})
    assert ack == {"ok": True, "paused": True, "interfaces": ["Local/202@from-queue/n"]}
    pause = [a for a in ami_server.actions if a.get("Action") == "QueuePause"][-1]
    assert (pause["Interface"], pause["Paused"], pause["Reason"]) == ("Local/202@from-queue/n", "true", "Przerwa")
    entry = await store.db.fetchone("SELECT * FROM audit WHERE action = 'traffic.queue_pause'")
    assert entry["actor_name"] == "ewa" and entry["outcome"] == "ok"
    refused = await jan.call("queue_pause", {"paused": True})       # 299 is in no queue
    assert refused["ok"] is False and "member" in refused["error"]["message"]
    bad = await ewa.call("queue_pause", {"paused": "yes"})
    assert bad["ok"] is False and bad["error"]["code"] == "invalid"


async def test_when_the_pbx_goes_away_the_state_says_since_when(
        ami_server: AmiReplayServer, make_chat_server, make_staff, store, clock) -> None:
    server = await make_chat_server(ami_url=ami_server.url)
    await ami_server.wait_logged_in()
    ewa = await staff_client(server, store, make_staff, "ewa", "consultant", extensions=("202",))
    await ewa.wait_for("traffic", lambda d: d["pbx"]["connected"])
    mark = ewa.log.mark()
    await ami_server.close()
    down = await ewa.wait_for("traffic", lambda d: not d["pbx"]["connected"], after=mark)
    assert down["pbx"]["down_since"] == clock().isoformat() and down["pbx"]["error"]


async def test_without_an_ami_url_nothing_changes_for_staff(chat_server, make_staff, store) -> None:
    boss = await make_staff("kierownik", "cim_manager")
    session = await store.accounts.login(boss.name, PASSWORD)
    with pytest.raises(ConnectionRefused):  # no wallboard to watch: the manager's socket is refused as before
        await connect_client(chat_server.url, "/staff", {"token": session.token})
    ewa = await staff_client(chat_server, store, make_staff, "ewa", "consultant")
    await ewa.wait_for("queue")
    await asyncio.sleep(0.1)
    assert ewa.of("traffic") == []
