"""Auto-assignment (CIM_CHAT_ASSIGNMENT=auto) over a real server and real socket clients: the longest-waiting
chat to the least-busy available consultant with the topic's skill, capacity, decline once, away."""

from __future__ import annotations

import pytest

from tests.fixtures.audit_log import audit_log
from tests.fixtures.chat import connect_client
from tests.fixtures.store import PASSWORD, SYSTEM
from webchat import routing

from .test_desk_routing import code, start, topics


@pytest.fixture
def chat_settings(settings):
    return settings.with_(
        opening_hours="always",
        chat_assignment="auto",
        chat_idle_minutes=0,
        chat_queue_limit_minutes=0,
        chat_open_rate_limit="off",
        chat_open_address_rate_limit="off",
    )


async def assigned_ids(client, count: int) -> list[int]:
    await client.wait_for("assigned", lambda _: len(client.of("assigned")) >= count)
    return [a["chat_id"] for a in client.of("assigned")]


async def test_chats_go_to_the_consultant_with_the_skill_within_capacity(chat_server, resident, consultant_client):
    store = chat_server.store
    card, taxes, *_ = await topics(store)
    anna = await consultant_client("anna")
    bob = await consultant_client("bob")
    await store.desk.set_skills(SYSTEM, "anna", [card.id])
    await store.desk.set_skills(SYSTEM, "bob", [taxes.id])
    await store.desk.set_max_chats(SYSTEM, "anna", 1)
    first, second, tax = await resident(), await resident(), await resident()
    await start(first, card.id)
    await start(second, card.id)
    await start(tax, taxes.id)
    assert await assigned_ids(anna, 1) == [first.chat_id]
    assert await assigned_ids(bob, 1) == [tax.chat_id]
    assigned = anna.of("assigned")[0]
    assert assigned["auto"] is True and assigned["topic"]["pl"] == "Karta Mieszkańca"
    await first.wait_for("state", lambda s: s["status"] == "active")
    # anna is at capacity and bob has not the skill: the second chat waits
    assert (await store.chats.get(second.chat_id)).status == "queued"
    assert len(bob.of("assigned")) == 1
    # anna closes her chat: the waiting one is hers
    assert (await anna.call("close", {"chat_id": first.chat_id, "category": "information_given"}))["ok"]
    assert await assigned_ids(anna, 2) == [first.chat_id, second.chat_id]
    audit = await audit_log(store, action="chat.assign")
    assert len(audit) == 3 and all(a.actor_name == "system:chat-server" for a in audit)


async def test_the_pass_reaches_past_the_queues_front_when_nobody_free_can_answer_it(
    chat_server, resident, make_staff, monkeypatch
):
    """The pass reads the front of the queue first (webchat/routing.py QUEUE_FRONT); chats there that nobody
    free can answer do not hide the ones behind them."""
    monkeypatch.setattr(routing, "QUEUE_FRONT", 2)
    store = chat_server.store
    card, taxes, *_ = await topics(store)
    waiting = [await resident() for _ in range(3)]
    for r in waiting:
        await start(r, card.id)
    tax = await resident()
    await start(tax, taxes.id)
    await make_staff("anna", "consultant")
    await store.desk.set_skills(SYSTEM, "anna", [taxes.id])
    session = await store.accounts.login("anna", PASSWORD)
    client = await connect_client(chat_server.url, "/staff", {"token": session.token})  # the pass runs
    try:
        assert await assigned_ids(client, 1) == [tax.chat_id]
        await tax.wait_for("state", lambda s: s["status"] == "active")
        assert [(await store.chats.get(r.chat_id)).status for r in waiting] == ["queued"] * 3
        assert len(client.of("assigned")) == 1
    finally:
        await client.disconnect()


async def test_the_least_busy_consultant_gets_the_next_chat(chat_server, resident, consultant_client):
    anna = await consultant_client("anna")
    bob = await consultant_client("bob")
    residents = [await resident() for _ in range(4)]
    for r in residents:
        await r.start()
    await assigned_ids(anna, 2)
    await assigned_ids(bob, 2)
    assert len(anna.of("assigned")) == len(bob.of("assigned")) == 2
    load = await chat_server.store.desk.load()
    assert load == {anna.staff.id: 2, bob.staff.id: 2}


async def test_a_declined_chat_goes_to_the_next_and_cannot_be_declined_twice(chat_server, resident, consultant_client):
    store = chat_server.store
    anna = await consultant_client("anna")
    r = await resident("en")
    await r.start()
    assert await assigned_ids(anna, 1) == [r.chat_id]
    bob = await consultant_client("bob")
    mark = r.log.mark()
    assert (await anna.call("decline", {"chat_id": r.chat_id})) == {"ok": True, "chat_id": r.chat_id}
    assert (await anna.wait_for("released")) == {"chat_id": r.chat_id, "reason": "declined"}
    assert await assigned_ids(bob, 1) == [r.chat_id]
    line = await r.wait_for("message", lambda m: m.get("event") == "declined", after=mark)
    assert line["text"] == "The chat is being passed to another consultant."
    # bob declines too: nobody else is left, so it comes back to one of them, who cannot decline it again
    mark = r.log.mark()
    assert (await bob.call("decline", {"chat_id": r.chat_id}))["ok"]
    await r.wait_for("state", lambda s: s["status"] == "active", after=mark)
    holder = anna if (await store.chats.get(r.chat_id)).consultant_id == anna.staff.id else bob
    assert code(await holder.call("decline", {"chat_id": r.chat_id})) == "invalid"
    assert (await store.chats.get(r.chat_id)).status == "active"


async def test_decline_refuses_someone_elses_chat_and_bad_payloads(chat_server, resident, consultant_client):
    anna = await consultant_client("anna")
    r = await resident()
    await r.start()
    await assigned_ids(anna, 1)
    bob = await consultant_client("bob")
    assert code(await bob.call("decline", {"chat_id": r.chat_id})) == "not_permitted"
    for bad in ({}, {"chat_id": "1"}, {"chat_id": True}, {"chat_id": -3}, {"chat_id": 2**63}, [1], "x"):
        assert code(await anna.call("decline", bad)) == "invalid", bad
    assert code(await anna.call("decline", {"chat_id": 999999})) == "not_found"
    assert (await chat_server.store.chats.get(r.chat_id)).consultant_id == anna.staff.id


async def test_away_consultants_get_nothing_new(chat_server, resident, consultant_client):
    store = chat_server.store
    anna = await consultant_client("anna")
    assert (await anna.call("availability", {"status": "away"}))["ok"]
    bob = await consultant_client("bob")
    await store.desk.set_max_chats(SYSTEM, "bob", 1)
    first, second = await resident(), await resident()
    await first.start()
    await second.start()
    assert await assigned_ids(bob, 1) == [first.chat_id]
    assert (await store.chats.get(second.chat_id)).status == "queued"  # bob is full, anna is away
    assert not anna.of("assigned")
    assert (await anna.call("availability", {"status": "available"}))["ok"]
    assert await assigned_ids(anna, 1) == [second.chat_id]


async def test_pick_still_respects_capacity_in_auto_mode(chat_server, resident, consultant_client):
    store = chat_server.store
    anna = await consultant_client("anna")
    assert (await anna.call("availability", {"status": "away"}))["ok"]
    await store.desk.set_max_chats(SYSTEM, "anna", 1)
    first, second = await resident(), await resident()
    await first.start()
    await second.start()
    assert (await anna.call("accept", {"chat_id": first.chat_id}))["ok"]
    assert code(await anna.call("accept", {"chat_id": second.chat_id})) == "at_capacity"


async def test_a_dropped_consultants_chat_goes_to_a_colleague_after_the_grace(
    chat_server, resident, consultant_client, clock
):
    from .test_desk_routing import gone, routing

    store = chat_server.store
    anna = await consultant_client("anna")
    r = await resident("en")
    await r.start()
    assert await assigned_ids(anna, 1) == [r.chat_id]
    bob = await consultant_client("bob")
    assert (await bob.call("availability", {"status": "away"}))["ok"]  # bob takes nothing while away...
    await gone(chat_server, anna)
    clock.advance(seconds=chat_server.settings.staff_reconnect_grace_seconds + 1)
    await routing(chat_server).tick()
    await r.wait_for("message", lambda m: m.get("event") == "requeued")
    assert (await store.chats.get(r.chat_id)).status == "queued"
    assert (await bob.call("availability", {"status": "available"}))["ok"]  # ...until he is back
    given = await bob.wait_for("assigned", lambda a: a["chat_id"] == r.chat_id)
    assert given["auto"] is True
    await r.wait_for("message", lambda m: m.get("event") == "accepted" and m["seq"] > 4)
