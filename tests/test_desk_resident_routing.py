"""The resident's side of the desk with topics, availability and the queue's time limit (issue 17's parts
together): the offline form after a queue timeout, the receipt of an abandoned chat, the topic of a rating."""

from __future__ import annotations

from tests.fixtures.store import SYSTEM
from tests.test_desk_routing import QUEUE_LIMIT_MINUTES, chat_settings, routing, start, topics  # noqa: F401
from tests.test_webchat_resident import code
from webchat.protocol import CONSULTANT_AVAILABLE


def message(notice_id: int) -> dict:
    return {"notice_id": notice_id, "contact": "jan@example.pl", "text": "Proszę o kontakt."}


async def test_after_a_queue_timeout_the_resident_gets_a_receipt_and_can_leave_a_message(chat_server, resident, clock):
    r = await resident("en")
    await r.start()
    clock.advance(minutes=QUEUE_LIMIT_MINUTES + 1)
    await routing(chat_server).tick()
    state = await r.wait_for("state", lambda s: s.get("status") == "closed")
    assert state["receipt"]["reference"].startswith("CZ-")  # every chat's end, an abandoned one too
    offline = await r.wait_for("offline")
    assert offline["notice"]["notice_id"]  # the §1.5 notice the form is shown after
    ack = await r.call("offline_message", message(offline["notice"]["notice_id"]))
    assert ack["ok"], ack


async def test_after_a_queue_timeout_for_want_of_a_skill_the_offline_message_is_accepted(
    chat_server, resident, consultant_client, clock
):
    """Anna is free but answers topic 1 only: the chat on topic 2 times out, and the form it offers is taken
    (the review's probe of issue 17: the offline message was refused `consultant_available`)."""
    store = chat_server.store
    offered = await topics(store)
    await consultant_client("anna")
    await store.desk.set_skills(SYSTEM, "anna", [offered[0].id])
    r = await resident("en")
    notice = await r.wait_for("notice")
    assert notice["consultants_available"] is True  # free for topic 1: the greeting asks about any topic
    await start(r, offered[1].id)
    clock.advance(minutes=QUEUE_LIMIT_MINUTES + 1)
    await routing(chat_server).tick()
    chat = await store.chats.get(r.chat_id)
    assert (chat.status, chat.close_category) == ("closed", "abandoned")
    assert await store.chats.timed_out_in_queue(r.chat_id)
    offline = await r.wait_for("offline")
    ack = await r.call("offline_message", message(offline["notice"]["notice_id"]))
    assert ack["ok"] and ack["reference"], ack
    # the form the server offered stays open even once someone could answer the topic (anna learns it)
    await store.desk.set_skills(SYSTEM, "anna", [offered[0].id, offered[1].id])
    again = await r.call("offline_message", message(offline["notice"]["notice_id"]))
    assert again["ok"], again
    assert await store.resident_desk.waiting_count() == 2


async def test_the_offline_message_is_refused_only_when_someone_free_can_answer_the_residents_topic(
    chat_server, resident, consultant_client
):
    """The same test as the queue's time limit: the topic of the connection's last chat, or else the topic
    the resident picked (`topic_id`); a free consultant without the skill is nobody available for it."""
    store = chat_server.store
    offered = await topics(store)
    anna = await consultant_client("anna")
    await store.desk.set_skills(SYSTEM, "anna", [offered[0].id])

    async def ended_chat(topic_id):
        r = await resident()
        await start(r, topic_id)
        assert (await r.call("end", {}))["ok"]
        await r.wait_for("state", lambda s: s.get("status") == "closed")
        return r

    other = await ended_chat(offered[1].id)  # nobody free answers topic 2: the form is taken
    assert not await store.chats.timed_out_in_queue(other.chat_id)
    assert (await other.call("offline_message", message(await notice_id(store))))["ok"]
    hers = await ended_chat(offered[0].id)  # anna answers topic 1
    ack = await hers.call("offline_message", message(await notice_id(store)))
    assert code(ack) == "invalid" and ack["error"]["reason"] == CONSULTANT_AVAILABLE
    # no chat on the connection: the topic the resident picked
    fresh = await resident()
    await fresh.wait_for("notice")
    picked = await fresh.call("offline_message", {**message(await notice_id(store)), "topic_id": offered[0].id})
    assert picked["error"]["reason"] == CONSULTANT_AVAILABLE
    assert (await fresh.call("offline_message", {**message(await notice_id(store)), "topic_id": offered[1].id}))["ok"]
    for bad in ("2", True, -1, 2**63, [1]):
        assert code(await fresh.call("offline_message", {**message(await notice_id(store)), "topic_id": bad})) == (
            "invalid"
        )
    # once anna is away, topic 1 has nobody free either
    assert (await anna.call("availability", {"status": "away"}))["ok"]
    assert (await hers.call("offline_message", message(await notice_id(store))))["ok"]
    assert await store.resident_desk.waiting_count() == 3


async def notice_id(store) -> int:
    return (await store.notices.current("chat", "pl")).id


async def test_an_away_consultant_is_nobody_available_and_a_free_one_is(chat_server, resident, consultant_client):
    anna = await consultant_client("anna")
    assert (await anna.call("availability", {"status": "away"}))["ok"]
    r = await resident()
    notice = await r.wait_for("notice")
    assert notice["consultants_available"] is False
    assert (await r.call("offline_message", message(notice["notice_id"])))["ok"]
    assert (await anna.call("availability", {"status": "available"}))["ok"]
    routing(chat_server).hub._free_seat = None  # the one-second memory of the answer
    later = await resident()
    notice = await later.wait_for("notice")
    assert notice["consultants_available"] is True
    assert code(await later.call("offline_message", message(notice["notice_id"]))) == "invalid"


async def test_a_rating_keeps_the_chats_topic_after_the_purge(chat_server, resident, consultant_client, clock):
    store = chat_server.store
    offered = await topics(store)
    anna = await consultant_client("anna")
    r = await resident()
    await start(r, offered[1].id)
    assert (await anna.call("accept", {"chat_id": r.chat_id}))["ok"]
    assert (await anna.call("close", {"chat_id": r.chat_id, "category": "information_given"}))["ok"]
    await r.wait_for("state", lambda s: s.get("status") == "closed")
    assert (await r.call("rate", {"rating": 5}))["ok"]
    clock.advance(days=200)
    await store.retention.purge(SYSTEM)
    row = await store.db.fetchone("SELECT conversation_id, topic, consultant, rating FROM chat_ratings")
    assert tuple(row) == (None, offered[1].label_pl, "anna", 5)
    _all, _people, per_topic = await store.resident_desk.rating_figures("2026-03-01", "2026-03-31")
    assert [(f.key, f.count) for f in per_topic] == [(offered[1].label_pl, 1)]
