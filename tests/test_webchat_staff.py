"""The /staff namespace over a real server: authentication first, then queue, accept races, transfer and close."""

from __future__ import annotations

import asyncio

import pytest

from store.chats import CLOSE_CATEGORIES
from tests.fixtures.audit_log import audit_log
from tests.fixtures.chat import ConnectionRefused, connect_client
from tests.fixtures.store import PASSWORD
from webchat.protocol import REFUSAL_REASONS


def code(ack: dict) -> str | None:
    assert ack["ok"] is False and set(ack["error"]) - {"reason"} == {"code", "message"}, ack
    assert ack["error"].get("reason") in REFUSAL_REASONS | {None}, ack  # a reason is optional
    return ack["error"]["code"]


# ---------------------------------------------------------------- who may connect


@pytest.mark.parametrize(
    "auth", [None, {}, {"token": ""}, {"token": 123}, {"token": "forged-" + "x" * 40}, {"token": "y" * 5000}]
)
async def test_missing_or_forged_tokens_are_refused(chat_server, auth):
    with pytest.raises(ConnectionRefused) as info:
        await connect_client(chat_server.url, "/staff", auth)
    assert info.value.code == "unauthorised"


async def test_staff_without_the_consultant_role_are_refused(chat_server, make_staff):
    # (the CIM manager and the BOI director connect as supervisors: tests/test_supervision.py)
    await make_staff("dora", "designated", "dpo")
    session = await chat_server.store.accounts.login("dora", PASSWORD)
    with pytest.raises(ConnectionRefused) as info:
        await connect_client(chat_server.url, "/staff", {"token": session.token})
    assert info.value.code == "unauthorised"


async def test_an_expired_session_is_refused(chat_server, make_staff, clock):
    await make_staff("anna")
    session = await chat_server.store.accounts.login("anna", PASSWORD)
    clock.advance(minutes=chat_server.settings.session_idle_minutes + 1)
    with pytest.raises(ConnectionRefused) as info:
        await connect_client(chat_server.url, "/staff", {"token": session.token})
    assert info.value.code == "unauthorised"


async def test_a_resident_token_does_not_open_the_staff_namespace(chat_server, resident):
    r = await resident()
    await r.start()
    with pytest.raises(ConnectionRefused):
        await connect_client(chat_server.url, "/staff", {"token": r.resume_token})


async def test_a_session_signed_out_mid_connection_stops_working(chat_server, consultant_client, resident):
    c = await consultant_client("anna")
    r = await resident()
    await r.start()
    await chat_server.store.accounts.logout(c.token)
    ended = await c.wait_for("session_ended")
    assert ended["code"] == "signed_out" and ended["message"].startswith("Twoja sesja została zakończona")
    await c.wait_for("disconnect")
    assert not c.client.connected
    assert (await chat_server.store.chats.get(r.chat_id)).status == "queued"


# ---------------------------------------------------------------- bad input


async def test_malformed_staff_events_are_invalid(consultant_client, resident):
    c = await consultant_client("anna")
    r = await resident()
    await r.start()
    for payload in (None, "1", [1], {"chat_id": "1"}, {"chat_id": True}, {"chat_id": -1}, {"chat_id": 1.5}):
        ack = await c.client.call("accept", payload, namespace="/staff", timeout=10)
        assert code(ack) == "invalid", payload
    assert code(await c.call("nonsense", {})) == "invalid"
    assert code(await c.call("send_notice", {"chat_id": r.chat_id})) == "invalid"
    assert code(await c.call("accept", {"chat_id": 999999})) == "not_found"
    await c.call("accept", {"chat_id": r.chat_id})
    assert code(await c.call("send", {"chat_id": r.chat_id, "text": " "})) == "empty"
    assert code(await c.call("send", {"chat_id": r.chat_id, "text": "x" * 2001})) == "too_long"
    assert code(await c.call("send", {"chat_id": r.chat_id, "text": {"html": "<b>"}})) == "invalid"
    assert code(await c.call("typing", {"chat_id": r.chat_id, "active": 1})) == "invalid"
    assert code(await c.call("transfer", {"chat_id": r.chat_id, "to_staff_id": "2"})) == "invalid"
    assert code(await c.call("close", {"chat_id": r.chat_id, "category": "bored"})) == "invalid"
    assert code(await c.call("close", {"chat_id": r.chat_id})) == "invalid"


async def test_a_consultant_cannot_act_on_a_chat_that_is_not_theirs(consultant_client, resident):
    anna, bob = await consultant_client("anna"), await consultant_client("bob")
    r = await resident()
    await r.start()
    await anna.call("accept", {"chat_id": r.chat_id})
    assert code(await bob.call("send", {"chat_id": r.chat_id, "text": "hijack"})) == "not_permitted"
    assert code(await bob.call("typing", {"chat_id": r.chat_id, "active": True})) == "not_permitted"
    assert code(await bob.call("close", {"chat_id": r.chat_id, "category": "other"})) == "not_permitted"
    assert code(await bob.call("transfer", {"chat_id": r.chat_id, "to_staff_id": bob.staff.id})) == "not_permitted"
    assert [m for m in r.of("message") if m["from"] == "consultant"] == []


async def test_transfer_to_someone_offline_is_not_online(consultant_client, resident, make_staff):
    anna = await consultant_client("anna")
    offline = await make_staff("olga")
    r = await resident()
    await r.start()
    await anna.call("accept", {"chat_id": r.chat_id})
    assert code(await anna.call("transfer", {"chat_id": r.chat_id, "to_staff_id": offline.id})) == "not_online"
    assert code(await anna.call("transfer", {"chat_id": r.chat_id, "to_staff_id": 424242})) == "not_online"


async def test_sending_to_a_closed_chat_is_closed(consultant_client, resident):
    c = await consultant_client("anna")
    r = await resident()
    await r.start()
    await c.call("accept", {"chat_id": r.chat_id})
    await r.call("end", {})
    await c.wait_for("chat_state")
    assert code(await c.call("send", {"chat_id": r.chat_id, "text": "hello?"})) == "closed"
    # the consultant may still record why it ended, once
    assert (await c.call("close", {"chat_id": r.chat_id, "category": "no_reply"}))["ok"]
    assert code(await c.call("close", {"chat_id": r.chat_id, "category": "other"})) == "closed"


# ---------------------------------------------------------------- the protocol


async def test_queue_and_presence_on_connect_and_on_change(consultant_client, resident):
    anna = await consultant_client("anna")
    assert await anna.wait_for("queue") == {"chats": [], "total": 0}
    await anna.wait_for("presence", lambda p: [c["name"] for c in p["consultants"]] == ["anna"])
    r = await resident()
    await r.start()
    queued = await anna.wait_for("queue", lambda q: q["chats"])
    assert queued["chats"][0]["chat_id"] == r.chat_id and queued["chats"][0]["position"] == 1
    assert queued["chats"][0]["lang"] == "pl" and queued["chats"][0]["waiting_since"].endswith("Z")
    bob = await consultant_client("bob")
    await anna.wait_for("presence", lambda p: {c["name"] for c in p["consultants"]} == {"anna", "bob"})
    assert (await bob.wait_for("queue"))["chats"][0]["chat_id"] == r.chat_id
    await bob.disconnect()
    await anna.wait_for("presence", lambda p: [c["name"] for c in p["consultants"]] == ["anna"])


async def test_exactly_one_of_two_consultants_wins_the_accept_race(consultant_client, resident, chat_server):
    anna, bob = await consultant_client("anna"), await consultant_client("bob")
    for _ in range(3):
        r = await resident()
        await r.start()
        acks = await asyncio.gather(
            anna.call("accept", {"chat_id": r.chat_id}), bob.call("accept", {"chat_id": r.chat_id})
        )
        assert sorted(a["ok"] for a in acks) == [False, True]
        loser = next(a for a in acks if not a["ok"])
        assert code(loser) == "already_taken"
        winner = anna if acks[0]["ok"] else bob
        assert (await chat_server.store.chats.get(r.chat_id)).consultant_id == winner.staff.id
        await r.wait_for("state", lambda s: s["status"] == "active")


async def test_transfer_hands_the_chat_over_with_its_history(consultant_client, resident):
    anna, bob = await consultant_client("anna"), await consultant_client("bob")
    r = await resident()
    await r.start()
    await anna.call("accept", {"chat_id": r.chat_id})
    await r.send("question for the specialist", "q1")
    await anna.wait_for("message", lambda m: m["from"] == "resident")
    ack = await anna.call("transfer", {"chat_id": r.chat_id, "to_staff_id": bob.staff.id})
    assert ack["ok"]
    assert await anna.wait_for("released") == {"chat_id": r.chat_id, "reason": "transferred"}
    assigned = await bob.wait_for("assigned")
    assert assigned["chat_id"] == r.chat_id and assigned["by"] == anna.staff.id
    assert "question for the specialist" in [m["text"] for m in assigned["history"]]
    line = await r.wait_for("message", lambda m: m["from"] == "system" and m.get("event") == "transferred")
    assert "bob" not in line["text"] and "anna" not in line["text"]  # residents never read log-in names
    # from now on the resident's messages reach bob, not anna
    await r.send("still there?", "q2")
    await bob.wait_for("message", lambda m: m["text"] == "still there?")
    assert code(await anna.call("send", {"chat_id": r.chat_id, "text": "me?"})) == "not_permitted"
    assert (await bob.call("send", {"chat_id": r.chat_id, "text": "Yes, Bob here."}))["ok"]
    assert "still there?" not in [m["text"] for m in anna.of("message")]


async def test_close_with_a_category(consultant_client, resident, chat_server):
    c = await consultant_client("anna")
    assert (await c.call("close_categories", {}))["categories"] == list(CLOSE_CATEGORIES)
    r = await resident()
    await r.start()
    await c.call("accept", {"chat_id": r.chat_id})
    ack = await c.call("close", {"chat_id": r.chat_id, "category": "information_given"})
    assert ack["ok"]
    await r.wait_for("state", lambda s: s["status"] == "closed")
    line = await r.wait_for("message", lambda m: m["from"] == "system" and m.get("event") == "closed_by_consultant")
    assert "information_given" not in line["text"]  # the category is never shown to the resident
    assert await c.wait_for("released") == {"chat_id": r.chat_id, "reason": "closed"}
    chat = await chat_server.store.chats.get(r.chat_id)
    assert chat.status == "closed" and chat.close_category == "information_given"


async def test_my_chats_and_assigned_after_a_reconnect(consultant_client, resident, chat_server):
    c = await consultant_client("anna")
    r1, r2 = await resident(), await resident()
    await r1.start()
    await r2.start()
    await c.call("accept", {"chat_id": r1.chat_id})
    await c.call("accept", {"chat_id": r2.chat_id})
    await r1.send("hello from one", "a")
    await c.wait_for("message", lambda m: m["text"] == "hello from one")
    await c.disconnect()
    again = await connect_client(chat_server.url, "/staff", {"token": c.token})
    try:
        assigned = [
            await again.wait_for("assigned", lambda a, i=i: a["chat_id"] == i) for i in (r1.chat_id, r2.chat_id)
        ]
        assert "hello from one" in [m["text"] for m in assigned[0]["history"]]
        mine = await again.call("my_chats", {})
        assert mine["ok"] and [x["chat_id"] for x in mine["chats"]] == [r1.chat_id, r2.chat_id]
        assert [m["seq"] for m in mine["chats"][0]["history"]][:3] == [1, 2, 3]
        # and the conversation goes on
        await r2.send("are you back?", "b")
        await again.wait_for("message", lambda m: m["text"] == "are you back?" and m["chat_id"] == r2.chat_id)
    finally:
        await again.disconnect()


async def test_canned_responses_for_consultants(consultant_client, chat_server, make_staff):
    manager = (await make_staff("maria", "cim_manager")).as_actor()
    await chat_server.store.chats.add_canned(manager, "Godziny", "Pn 7:30–18:00, wt–pt 7:30–15:30.")
    c = await consultant_client("anna")
    ack = await c.call("canned", {})
    assert ack["ok"] and [x["title"] for x in ack["responses"]] == ["Godziny"]


async def test_the_staff_actions_are_audited(consultant_client, resident, chat_server):
    c = await consultant_client("anna")
    r = await resident()
    await r.start()
    await c.call("accept", {"chat_id": r.chat_id})
    await c.call("close", {"chat_id": r.chat_id, "category": "other"})
    rows = await audit_log(chat_server.store, target_kind="conversation", target_id=str(r.chat_id))
    assert [(x.action, x.actor_id) for x in rows] == [("chat.accept", c.staff.id), ("chat.close", c.staff.id)]
