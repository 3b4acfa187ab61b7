"""The chat desk's topics, capacity (pick mode), dropped consultants, idle chats, the queue's limit and the
estimated wait, over a real server and real socket clients (README "Topics, routing and capacity")."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from store.archive import PAGE_SIZE_MAX, SearchFilters
from store.desk import ABANDONED
from tests.fixtures.audit_log import audit_log
from tests.fixtures.chat import Resident
from tests.fixtures.store import SYSTEM
from webchat.protocol import REFUSAL_REASONS

IDLE_MINUTES = 5
QUEUE_LIMIT_MINUTES = 15
GRACE_SECONDS = 60


@pytest.fixture
def chat_settings(settings):
    """Pick mode, with the idle and queue time limits on (the clock is the tests' ManualClock)."""
    return settings.with_(
        opening_hours="always",
        chat_assignment="pick",
        chat_idle_minutes=IDLE_MINUTES,
        chat_queue_limit_minutes=QUEUE_LIMIT_MINUTES,
        staff_reconnect_grace_seconds=GRACE_SECONDS,
        chat_open_rate_limit="off",
        chat_open_address_rate_limit="off",
    )


def code(ack: dict) -> str | None:
    assert ack["ok"] is False and set(ack["error"]) - {"reason"} == {"code", "message"}, ack
    assert ack["error"].get("reason") in REFUSAL_REASONS | {None}, ack  # a reason is optional
    return ack["error"]["code"]


async def topics(store) -> list[Any]:
    await store.desk.seed_default_topics(SYSTEM)
    return await store.desk.topics()


async def start(r: Resident, topic_id: Any) -> dict:
    notice = await r.wait_for("notice")
    ack = await r.call("accept_notice", {"notice_id": notice["notice_id"], "topic_id": topic_id})
    assert ack["ok"], ack
    r.chat_id, r.resume_token = ack["chat_id"], ack["resume_token"]
    return ack


def routing(chat_server):
    from webchat.app import HUB

    return chat_server.app[HUB].routing


async def gone(chat_server, client) -> None:
    """Disconnect a consultant's client and wait until the server has handled it."""
    await client.disconnect()
    online = routing(chat_server).hub.online
    for _ in range(1000):
        if client.staff.id not in online:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the server never saw the consultant go")


async def count_chats(store) -> int:
    return len((await store.archive.search(SYSTEM, SearchFilters(channel="chat"), page_size=PAGE_SIZE_MAX)).items)


# ---------------------------------------------------------------- topics


async def test_the_topics_event_lists_the_active_topics_in_the_connections_language(chat_server, resident):
    store = chat_server.store
    offered = await topics(store)
    await store.desk.set_topic_active(SYSTEM, offered[-1].id, False)  # "Inne" no longer offered
    pl, en = await resident("pl"), await resident("en")
    ack_pl, ack_en = await pl.call("topics", {}), await en.call("topics", {})
    assert ack_pl == {"ok": True, "topics": [{"id": t.id, "label": t.label_pl} for t in offered[:-1]]}
    assert [t["label"] for t in ack_en["topics"]] == ["Resident Card", "Taxes and fees", "Residence registration"]
    assert code(await pl.call("topics", "x")) == "invalid"


async def test_the_topic_is_required_once_topics_exist_and_hostile_ids_store_nothing(
    chat_server, resident, consultant_client
):
    store = chat_server.store
    offered = await topics(store)
    hidden = offered[-1].id
    await store.desk.set_topic_active(SYSTEM, hidden, False)
    r = await resident()
    notice = await r.wait_for("notice")
    for bad in (None, "1", True, 1.5, -1, 0, 2**63, 10**30, [offered[0].id], {"id": 1}, 999, hidden):
        payload = {"notice_id": notice["notice_id"]}
        if bad is not None:
            payload["topic_id"] = bad
        assert code(await r.call("accept_notice", payload)) == "invalid", bad
    assert code(await r.call("accept_notice", {"notice_id": notice["notice_id"]})) == "invalid"
    assert await count_chats(store) == 0
    ack = await r.call("accept_notice", {"notice_id": notice["notice_id"], "topic_id": offered[1].id})
    assert ack["ok"]
    assert (await store.chats.get(ack["chat_id"])).topic_id == offered[1].id
    # the consultants' queue shows the topic in both languages
    c = await consultant_client("anna")
    queue = await c.wait_for("queue", lambda q: q["chats"])
    assert queue["chats"][0]["topic"] == {"id": offered[1].id, "pl": "Podatki i opłaty", "en": "Taxes and fees"}


async def test_without_topics_a_topic_id_is_invalid(chat_server, resident):
    r = await resident()
    notice = await r.wait_for("notice")
    assert code(await r.call("accept_notice", {"notice_id": notice["notice_id"], "topic_id": 1})) == "invalid"
    assert await count_chats(chat_server.store) == 0
    assert (await r.call("topics")) == {"ok": True, "topics": []}


# ---------------------------------------------------------------- capacity in pick mode


async def test_pick_mode_refuses_a_consultant_at_capacity(chat_server, resident, consultant_client):
    store = chat_server.store
    c = await consultant_client("anna")
    await store.desk.set_max_chats(SYSTEM, "anna", 2)
    residents = [await resident() for _ in range(3)]
    for r in residents:
        await r.start()
    for r in residents[:2]:
        assert (await c.call("accept", {"chat_id": r.chat_id}))["ok"]
    assert code(await c.call("accept", {"chat_id": residents[2].chat_id})) == "at_capacity"
    assert (await store.chats.get(residents[2].chat_id)).status == "queued"
    # a seat frees up: the same accept now works
    assert (await c.call("close", {"chat_id": residents[0].chat_id, "category": "information_given"}))["ok"]
    assert (await c.call("accept", {"chat_id": residents[2].chat_id}))["ok"]


async def test_the_default_capacity_is_three(chat_server, resident, consultant_client):
    c = await consultant_client("anna")
    residents = [await resident() for _ in range(4)]
    for r in residents:
        await r.start()
    for r in residents[:3]:
        assert (await c.call("accept", {"chat_id": r.chat_id}))["ok"]
    assert code(await c.call("accept", {"chat_id": residents[3].chat_id})) == "at_capacity"


async def test_decline_is_refused_in_pick_mode_and_availability_is_checked(chat_server, resident, consultant_client):
    c = await consultant_client("anna")
    r = await resident()
    await r.start()
    assert (await c.call("accept", {"chat_id": r.chat_id}))["ok"]
    assert code(await c.call("decline", {"chat_id": r.chat_id})) == "invalid"
    for bad in ({}, {"status": "busy"}, {"status": 1}, {"status": None}, "away"):
        assert code(await c.call("availability", bad)) == "invalid", bad
    assert (await c.call("availability", {"status": "away"})) == {"ok": True, "status": "away"}
    presence = await c.wait_for("presence", lambda p: p["consultants"] and p["consultants"][0]["status"] == "away")
    assert presence["consultants"][0]["name"] == "anna"
    assert (await chat_server.store.chats.get(r.chat_id)).status == "active"


# ---------------------------------------------------------------- a consultant's connection drops


async def test_a_dropped_consultant_loses_the_chats_to_the_front_of_the_queue_after_the_grace(
    chat_server, resident, consultant_client, clock
):
    store = chat_server.store
    older, mine = await resident("en"), await resident("en")
    await older.start()
    await mine.start()
    c = await consultant_client("anna")
    assert (await c.call("accept", {"chat_id": mine.chat_id}))["ok"]
    await gone(chat_server, c)  # the TUI's connection drops; the session goes on
    desk = routing(chat_server)
    clock.advance(seconds=GRACE_SECONDS - 1)
    await desk.tick()
    assert (await store.chats.get(mine.chat_id)).status == "active"
    mark = mine.log.mark()
    clock.advance(seconds=2)
    await desk.tick()
    chat = await store.chats.get(mine.chat_id)
    assert chat.status == "queued" and chat.consultant_id is None
    queue = await store.chats.queue()
    assert [q.chat_id for q in queue] == [mine.chat_id, older.chat_id]  # the front, before the older chat
    line = await mine.wait_for("message", lambda m: m.get("event") == "requeued", after=mark)
    assert line["text"] == "The consultant is not available now; the chat goes back to the queue."
    await mine.wait_for("state", lambda s: s.get("status") == "queued" and s.get("position") == 1, after=mark)
    entries = await audit_log(store, action="chat.requeue")
    assert len(entries) == 1 and "connection_lost" in json.dumps(entries[0].details, ensure_ascii=False)


async def test_a_consultant_back_within_the_grace_keeps_the_chats(chat_server, resident, consultant_client, clock):
    from tests.fixtures.chat import connect_client

    r = await resident()
    await r.start()
    c = await consultant_client("anna")
    assert (await c.call("accept", {"chat_id": r.chat_id}))["ok"]
    await gone(chat_server, c)
    clock.advance(seconds=GRACE_SECONDS - 10)
    back = await connect_client(chat_server.url, "/staff", {"token": c.token})
    try:
        assigned = await back.wait_for("assigned")
        assert assigned["chat_id"] == r.chat_id
        clock.advance(seconds=GRACE_SECONDS)
        await routing(chat_server).tick()
        assert (await chat_server.store.chats.get(r.chat_id)).status == "active"
    finally:
        await back.disconnect()


# ---------------------------------------------------------------- idle chats


async def test_a_silent_resident_is_asked_then_the_chat_closes_as_abandoned(
    chat_server, resident, consultant_client, clock
):
    store = chat_server.store
    r = await resident("en")
    await r.start()
    c = await consultant_client("anna")
    assert (await c.call("accept", {"chat_id": r.chat_id}))["ok"]
    desk = routing(chat_server)
    clock.advance(minutes=IDLE_MINUTES - 1)
    await desk.sweep_idle()
    assert not [m for m in r.of("message") if m.get("event") == "idle_warning"]
    clock.advance(minutes=1)
    await desk.sweep_idle()
    warning = await r.wait_for("message", lambda m: m.get("event") == "idle_warning")
    assert warning["text"] == "Are you still there? If you write nothing, the chat will end soon."
    await c.wait_for("message", lambda m: m.get("event") == "idle_warning")
    # the resident answers: the clock starts again, and nothing closes
    assert (await r.send("yes, still here"))["ok"]
    clock.advance(minutes=IDLE_MINUTES - 1)
    await desk.sweep_idle()
    assert (await store.chats.get(r.chat_id)).status == "active"
    clock.advance(minutes=1)
    await desk.sweep_idle()  # the second warning
    clock.advance(minutes=IDLE_MINUTES)
    await desk.sweep_idle()
    chat = await store.chats.get(r.chat_id)
    assert chat.status == "closed" and chat.close_category == ABANDONED
    await r.wait_for("state", lambda s: s["status"] == "closed")
    closing = await r.wait_for("message", lambda m: m.get("event") == "closed_idle")
    assert closing["text"] == "The chat ended because there was no reply."
    assert (await c.wait_for("released")) == {"chat_id": r.chat_id, "reason": "abandoned"}
    warnings = [m for m in await store.chats.history(r.chat_id) if m.event == "idle_warning"]
    assert len(warnings) == 2


async def test_idle_lines_are_polish_for_a_polish_resident(chat_server, resident, consultant_client, clock):
    r = await resident("pl")
    await r.start()
    c = await consultant_client("anna")
    assert (await c.call("accept", {"chat_id": r.chat_id}))["ok"]
    clock.advance(minutes=IDLE_MINUTES)
    await routing(chat_server).sweep_idle()
    warning = await r.wait_for("message", lambda m: m.get("event") == "idle_warning")
    assert warning["text"].startswith("Czy nadal tu jesteś?")


async def test_a_chat_waiting_past_the_limit_with_nobody_free_closes_and_offers_the_message_form(
    chat_server, resident, consultant_client, clock
):
    store = chat_server.store
    r = await resident("en")
    await r.start()
    desk = routing(chat_server)
    clock.advance(minutes=QUEUE_LIMIT_MINUTES - 1)
    await desk.tick()
    assert (await store.chats.get(r.chat_id)).status == "queued"
    clock.advance(minutes=1)
    await desk.tick()
    chat = await store.chats.get(r.chat_id)
    assert chat.status == "closed" and chat.close_category == ABANDONED
    offline = await r.wait_for("offline")
    assert offline["message"].startswith("The chat is closed now") or "hours" in offline
    line = await r.wait_for("message", lambda m: m.get("event") == "queue_timeout")
    assert "leave a message" in line["text"]


async def test_a_chat_past_the_limit_waits_on_while_a_consultant_is_free(
    chat_server, resident, consultant_client, clock
):
    r = await resident()
    await r.start()
    await consultant_client("anna")  # available, no chats: could take it (pick mode)
    clock.advance(minutes=QUEUE_LIMIT_MINUTES + 1)
    await routing(chat_server).tick()
    assert (await chat_server.store.chats.get(r.chat_id)).status == "queued"


# ---------------------------------------------------------------- the estimated wait


async def test_residents_in_the_queue_see_the_median_wait_of_the_last_hour(
    chat_server, resident, consultant_client, clock
):
    c = await consultant_client("anna")
    await chat_server.store.desk.set_max_chats(SYSTEM, "anna", 10)
    waits = (60, 240, 600)  # seconds each chat waited before it was accepted: median 240
    for wait in waits:
        r = await resident()
        await r.start()
        clock.advance(seconds=wait)
        assert (await c.call("accept", {"chat_id": r.chat_id}))["ok"]
    newcomer = await resident("en")
    ack = await newcomer.start()
    assert ack["estimated_wait_s"] == 240 and ack["position"] == 1
    clock.advance(minutes=61)  # nothing accepted within the last hour: unknown
    later = await resident()
    assert (await later.start())["estimated_wait_s"] is None


async def test_the_consultants_queue_lists_the_front_of_a_long_queue_and_its_total(chat_server, consultant_client):
    from webchat.hub import QUEUE_SHOWN

    store = chat_server.store
    notice = await store.notices.current("chat", "pl")
    opened = [await store.chats.open(notice.id, "pl") for _ in range(QUEUE_SHOWN + 5)]
    c = await consultant_client("anna")
    queue = await c.wait_for("queue")
    assert queue["total"] == QUEUE_SHOWN + 5
    assert [q["chat_id"] for q in queue["chats"]] == [o.chat.id for o in opened[:QUEUE_SHOWN]]
