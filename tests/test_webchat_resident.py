"""The /resident namespace over a real server and python-socketio clients: every error code, then the happy paths."""

from __future__ import annotations

import asyncio

import pytest

from store import Store
from store.notice_texts import CHAT_EN, CHAT_PL
from tests.fixtures.chat import ConnectionRefused
from webchat.protocol import REFUSAL_REASONS

MARKUP = '<script>alert("x")</script><img src=x onerror=alert(1)><b>bold</b> [red]rich[/red] &amp;'


async def table_counts(store: Store) -> dict[str, int]:
    names = [
        r["name"]
        for r in await store.db.fetchall(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        )
    ]
    return {n: (await store.db.fetchone(f"SELECT count(*) AS n FROM {n}"))["n"] for n in names}


def code(ack: dict) -> str | None:
    assert ack["ok"] is False and set(ack["error"]) - {"reason"} == {"code", "message"}, ack
    assert ack["error"].get("reason") in REFUSAL_REASONS | {None}, ack  # a reason is optional
    return ack["error"]["code"]


# ---------------------------------------------------------------- refusals and bad input first


async def test_nothing_can_be_sent_before_the_notice_is_accepted(resident, chat_server):
    r = await resident()
    await r.wait_for("notice")
    before = await table_counts(chat_server.store)
    assert code(await r.send("hello", "m1")) == "notice_not_accepted"
    assert code(await r.call("typing", {"active": True})) == "notice_not_accepted"
    assert code(await r.call("end", {})) == "notice_not_accepted"
    assert await table_counts(chat_server.store) == before


@pytest.mark.parametrize(
    "payload", [None, "1", 1, [1], {}, {"notice_id": "1"}, {"notice_id": 9999}, {"notice_id": True}]
)
async def test_accept_notice_with_a_bad_payload_is_invalid(resident, chat_server, payload):
    r = await resident()
    await r.wait_for("notice")
    ack = await r.client.call("accept_notice", payload, namespace="/resident", timeout=10)
    assert code(ack) == "invalid"
    assert (await table_counts(chat_server.store))["conversations"] == 0


async def test_message_validation_errors(make_chat_server, resident):
    chat_server = await make_chat_server(resident_rate_limit="off")  # every attempt counts against a limit
    r = await resident(url=chat_server.url)
    await r.start()
    limit = chat_server.settings.max_message_length
    assert code(await r.send("")) == "empty"
    assert code(await r.send(" \n\t ")) == "empty"
    assert code(await r.send("\x00\x01\x02")) == "empty"
    assert code(await r.send("x" * (limit + 1))) == "too_long"
    for bad_text in (None, 5, ["x"], {"t": 1}, True):
        assert code(await r.call("send", {"text": bad_text, "client_msg_id": "c"})) == "invalid"
    assert code(await r.call("send", {"text": "ok", "client_msg_id": 7})) == "invalid"
    # the whole payload of the wrong type, or two arguments (binary closes the socket: test_webchat_floods.py)
    for payload in ("just a string", 12, ["text"]):
        assert code(await r.client.call("send", payload, namespace="/resident", timeout=10)) == "invalid"
    assert (
        code(await r.client.call("send", ({"text": "a"}, {"text": "b"}), namespace="/resident", timeout=10))
        == "invalid"
    )
    stored = [m.sender for m in await chat_server.store.chats.history(r.chat_id)]
    assert stored == ["system", "system"]  # nothing but the acceptance and the queue line
    assert (await r.send("x" * limit))["ok"]


async def test_unknown_events_get_an_invalid_ack(resident):
    r = await resident()
    assert code(await r.call("rm_rf", {"path": "/"})) == "invalid"
    assert code(await r.call("accept", {"chat_id": 1})) == "invalid"  # a staff event on the resident side
    assert code(await r.client.call("__proto__", namespace="/resident", timeout=10)) == "invalid"


async def test_a_forged_resume_token_is_refused_with_resume_invalid(resident):
    with pytest.raises(ConnectionRefused) as info:
        await resident(resume="A" * 43)
    assert info.value.code == "resume_invalid"
    with pytest.raises(ConnectionRefused) as info:
        await resident(resume=12345)
    assert info.value.code == "resume_invalid"


async def test_an_expired_resume_token_is_refused(resident, chat_server, clock):
    r = await resident()
    await r.start()
    assert (await r.call("end", {}))["ok"]
    clock.advance(minutes=chat_server.settings.chat_resume_minutes + 1)
    with pytest.raises(ConnectionRefused) as info:
        await resident(resume=r.resume_token)
    assert info.value.code == "resume_invalid"


async def test_rate_limit_per_resident(make_chat_server, resident):
    server = await make_chat_server(resident_rate_limit="3/60")
    r = await resident(url=server.url)
    await r.start()
    acks = [await r.send(f"m{i}") for i in range(5)]
    assert [a["ok"] for a in acks] == [True, True, True, False, False]
    assert code(acks[3]) == "rate_limited"
    assert len([m for m in await server.store.chats.history(r.chat_id) if m.sender == "resident"]) == 3
    # a reconnect does not reset the limit: it follows the chat, not the socket
    await r.disconnect()
    again = await resident(url=server.url, resume=r.resume_token)
    await again.wait_for("history")
    assert code(await again.send("after reconnect")) == "rate_limited"


async def test_another_resident_is_not_limited_by_a_flooder(make_chat_server, resident):
    server = await make_chat_server(resident_rate_limit="2/60")
    flooder, other = await resident(url=server.url), await resident(url=server.url)
    await flooder.start()
    await other.start()
    for i in range(4):
        await flooder.send(f"flood {i}")
    assert (await other.send("hello"))["ok"]


async def test_writing_to_a_closed_chat_is_refused(resident, consultant_client):
    r = await resident()
    await r.start()
    c = await consultant_client("anna")
    await c.call("accept", {"chat_id": r.chat_id})
    assert (await c.call("close", {"chat_id": r.chat_id, "category": "information_given"}))["ok"]
    await r.wait_for("state", lambda s: s["status"] == "closed")
    assert code(await r.send("are you there?")) == "closed"


async def test_accept_outside_opening_hours_is_offline(make_chat_server, resident, chat_server):
    # the store's clock reads Monday 2 March 2026 10:00 in Warsaw; this schedule is Saturdays only
    server = await make_chat_server(opening_hours="sat 08:00-12:00")
    r = await resident(url=server.url)
    offline = await r.wait_for("offline")
    assert "sobota 08:00–12:00" in offline["hours"] and offline["message"]
    assert r.of("notice") == []
    ack = await r.call("accept_notice", {"notice_id": 1})
    assert code(ack) == "offline"
    assert (await table_counts(chat_server.store))["conversations"] == 0


async def test_offline_on_a_public_holiday(make_chat_server, resident, clock):
    from datetime import datetime, timezone

    clock.now = datetime(2027, 3, 29, 9, 0, tzinfo=timezone.utc)  # Easter Monday 2027, 11:00 in Warsaw
    server = await make_chat_server(opening_hours="mon-fri 07:30-15:30; holidays closed")
    r = await resident(url=server.url, lang="en")
    offline = await r.wait_for("offline")
    assert "except public holidays" in offline["hours"]
    clock.now = datetime(2027, 3, 30, 9, 0, tzinfo=timezone.utc)  # the Tuesday after: open
    r2 = await resident(url=server.url)
    await r2.wait_for("notice")


async def test_server_error_without_a_stack_trace(resident, chat_server):
    r = await resident()
    await r.start()
    await chat_server.store.db.close()  # the database goes away under the running server
    ack = await r.send("hello")
    assert code(ack) == "server_error"
    text = str(ack)
    assert "Traceback" not in text and "Error" not in ack["error"]["message"] and ".py" not in text


# ---------------------------------------------------------------- the notice and the chat


@pytest.mark.ordinance("§1.5")
async def test_the_notice_is_sent_verbatim_in_the_chosen_language(resident):
    pl = await resident()
    notice = await pl.wait_for("notice")
    assert notice["text"] == CHAT_PL and notice["lang"] == "pl" and notice["version"] == 1
    en = await resident(lang="en")
    assert (await en.wait_for("notice"))["text"] == CHAT_EN
    unknown = await resident(lang="xx")
    assert (await unknown.wait_for("notice"))["lang"] == "pl"  # the legal text when untranslated


@pytest.mark.ordinance("§1.5")
async def test_declining_stores_nothing_but_the_anonymous_count(resident, chat_server, consultant_client):
    c = await consultant_client("anna")
    await c.wait_for("queue")
    before = await table_counts(chat_server.store)
    r = await resident()
    await r.wait_for("notice")
    assert (await r.call("decline_notice", {}))["ok"]
    assert (await r.call("decline_notice", {}))["ok"]  # repeated on one connection: counted once
    after = await table_counts(chat_server.store)
    changed = {t for t in after if after[t] != before[t]}
    assert changed == {"declined_notices"}
    row = await chat_server.store.db.fetchone("SELECT * FROM declined_notices")
    assert tuple(row) == ("2026-03-02", 1)
    assert all(q["chats"] == [] for q in c.of("queue"))


@pytest.mark.ordinance("§1.5")
async def test_acceptance_is_written_to_the_transcript_with_the_notice_version(resident, chat_server):
    r = await resident()
    ack = await r.start()
    assert set(ack) == {"ok", "chat_id", "resume_token", "position", "estimated_wait_s"} and ack["position"] == 1
    history = await chat_server.store.chats.history(ack["chat_id"])
    assert history[0].sender == "system" and "wersja 1" in history[0].text
    chat = await chat_server.store.chats.get(ack["chat_id"])
    assert chat.notice_id == 1 and chat.notice_accepted_at and chat.status == "queued"
    first = await r.wait_for("message", lambda m: m["seq"] == 1)
    assert first["from"] == "system" and "wersja 1" in first["text"]
    await r.wait_for("state", lambda s: s == {"status": "queued", "position": 1, "estimated_wait_s": None})


async def test_accepting_twice_on_one_connection_is_invalid(resident):
    r = await resident()
    notice = await r.wait_for("notice")
    assert (await r.call("accept_notice", {"notice_id": notice["notice_id"]}))["ok"]
    assert code(await r.call("accept_notice", {"notice_id": notice["notice_id"]})) == "invalid"
    assert code(await r.call("decline_notice", {})) == "invalid"


async def test_a_consultant_answers_a_resident(resident, consultant_client):
    r = await resident()
    await r.start()
    c = await consultant_client("anna")
    await c.wait_for("queue", lambda q: [x["chat_id"] for x in q["chats"]] == [r.chat_id])
    ack = await c.call("accept", {"chat_id": r.chat_id})
    assert ack["ok"] and [m["seq"] for m in ack["history"]] == [1, 2, 3]
    await r.wait_for("state", lambda s: s["status"] == "active")
    assigned_line = await r.wait_for("message", lambda m: m["seq"] == 3)
    # residents never see the log-in name: the line is the structured event, in the resident's language
    assert assigned_line["from"] == "system" and assigned_line["event"] == "accepted"
    assert "anna" not in assigned_line["text"] and assigned_line["text"] == "Połączono z konsultantem."

    sent = await r.send("Dzień dobry, jak wyrobić dowód?", "r-1")
    assert sent == {"ok": True, "seq": 4}
    got = await c.wait_for("message", lambda m: m["from"] == "resident")
    assert got["chat_id"] == r.chat_id and got["seq"] == 4 and got["text"] == "Dzień dobry, jak wyrobić dowód?"

    reply = await c.call(
        "send", {"chat_id": r.chat_id, "text": "Wniosek składa się w urzędzie.", "client_msg_id": "c-1"}
    )
    assert reply == {"ok": True, "seq": 5}
    answer = await r.wait_for("message", lambda m: m["from"] == "consultant")
    assert answer["text"] == "Wniosek składa się w urzędzie." and answer["seq"] == 5

    # typing both ways
    assert (await r.call("typing", {"active": True}))["ok"]
    assert await c.wait_for("typing") == {"chat_id": r.chat_id, "active": True}
    assert (await c.call("typing", {"chat_id": r.chat_id, "active": True}))["ok"]
    assert await r.wait_for("typing") == {"active": True}
    assert code(await r.call("typing", {"active": "yes"})) == "invalid"


async def test_markup_is_stored_and_relayed_verbatim_as_text(resident, consultant_client, chat_server):
    r = await resident()
    await r.start()
    c = await consultant_client("anna")
    await c.call("accept", {"chat_id": r.chat_id})
    assert (await r.send(MARKUP))["ok"]
    got = await c.wait_for("message", lambda m: m["from"] == "resident")
    assert got["text"] == MARKUP
    assert (await chat_server.store.chats.history(r.chat_id))[-1].text == MARKUP
    assert (await c.call("send", {"chat_id": r.chat_id, "text": MARKUP}))["ok"]
    assert (await r.wait_for("message", lambda m: m["from"] == "consultant"))["text"] == MARKUP


async def test_control_characters_are_stripped_and_unicode_kept(resident, consultant_client, chat_server):
    r = await resident()
    await r.start()
    c = await consultant_client("anna")
    await c.call("accept", {"chat_id": r.chat_id})
    assert (await r.send("a\x00b\x1b[2Jc\u0085d\r\ne\tf"))["ok"]
    assert (await c.wait_for("message", lambda m: m["from"] == "resident"))["text"] == "ab[2Jcd\ne\tf"
    oddities = "مرحبا \u202eevil\u202c zero\u200bwidth Zoë e\u0301 🇵🇱👍🏽"
    assert (await r.send(oddities))["ok"]
    assert (await chat_server.store.chats.history(r.chat_id))[-1].text == oddities


async def test_a_repeated_client_msg_id_is_stored_once(resident, consultant_client, chat_server):
    r = await resident()
    await r.start()
    c = await consultant_client("anna")
    await c.call("accept", {"chat_id": r.chat_id})
    first = await r.send("only once", "dup-1")
    again = await r.send("only once", "dup-1")
    assert first == again == {"ok": True, "seq": 4}
    await r.send("next", "dup-2")
    await c.wait_for("message", lambda m: m["text"] == "next")
    assert [m["text"] for m in c.of("message") if m["from"] == "resident"] == ["only once", "next"]
    stored = [(m.seq, m.text) for m in await chat_server.store.chats.history(r.chat_id) if m.sender == "resident"]
    assert stored == [(4, "only once"), (5, "next")]  # the repeated id stored once


async def test_resume_gives_the_history_and_the_same_chat(resident, consultant_client):
    r = await resident()
    await r.start()
    await r.send("first", "m1")
    await r.send("second", "m2")
    await r.disconnect()
    back = await resident(resume=r.resume_token)
    history = await back.wait_for("history")
    assert [m["text"] for m in history["messages"] if m["from"] == "resident"] == ["first", "second"]
    assert history["state"] == {"status": "queued", "position": 1, "estimated_wait_s": None}
    assert back.of("notice") == []
    # the same chat continues, with the next seq
    assert (await back.send("third", "m3")) == {"ok": True, "seq": 5}
    # retrying an id sent before the reconnect is still recognised
    assert (await back.send("second", "m2")) == {"ok": True, "seq": 4}


async def test_queue_position_moves_as_chats_are_taken(resident, consultant_client):
    first, second = await resident(), await resident()
    await first.start()
    await second.start()
    await second.wait_for("state", lambda s: s.get("position") == 2)
    c = await consultant_client("anna")
    mark = second.log.mark()
    assert (await c.call("accept", {"chat_id": first.chat_id}))["ok"]
    # one chat was accepted in the last hour, at once (the clock stands still): the estimate is 0 seconds
    await second.wait_for(
        "state", lambda s: s == {"status": "queued", "position": 1, "estimated_wait_s": 0}, after=mark
    )


async def test_ending_the_chat_tells_the_consultant(resident, consultant_client, chat_server):
    r = await resident()
    await r.start()
    c = await consultant_client("anna")
    await c.call("accept", {"chat_id": r.chat_id})
    assert (await r.call("end", {}))["ok"]
    await r.wait_for("state", lambda s: s["status"] == "closed")
    assert await c.wait_for("chat_state") == {"chat_id": r.chat_id, "status": "closed"}
    assert await c.wait_for("released") == {"chat_id": r.chat_id, "reason": "resident_left"}
    assert (await chat_server.store.chats.get(r.chat_id)).status == "closed"
    assert (await r.call("end", {}))["ok"]  # ending again is harmless


async def test_an_acked_message_survives_in_a_fresh_store(resident, chat_server, settings, clock):
    r = await resident()
    await r.start()
    ack = await r.send("to be kept", "keep-1")
    fresh = await Store.open(settings, clock=clock)
    try:
        # read raw: that the line rests sealed in the file is part of what is checked
        row = await fresh.db.fetchone("SELECT conversation_id, seq, text FROM messages WHERE client_msg_id = 'keep-1'")
        (text,) = await fresh.keys.texts(row["conversation_id"], [row])
    finally:
        await fresh.close()
    assert isinstance(row["text"], bytes)  # sealed at rest (store/keys.py)
    assert (row["seq"], text) == (ack["seq"], "to be kept")


async def test_many_residents_at_once_all_get_their_acks(resident, chat_server):
    residents = [await resident() for _ in range(10)]
    await asyncio.gather(*(r.start() for r in residents))
    acks = await asyncio.gather(
        *(r.send(f"msg {i}.{j}", f"{i}-{j}") for i, r in enumerate(residents) for j in range(5))
    )
    assert all(a["ok"] for a in acks)
    history = [m for r in residents for m in await chat_server.store.chats.history(r.chat_id)]
    assert len([m for m in history if m.sender == "resident"]) == 50


async def test_a_new_chat_may_start_on_the_same_connection_after_the_last_ended(resident, chat_server):
    r = await resident()
    await r.start()
    first = r.chat_id
    assert (await r.call("end", {}))["ok"]
    ack = await r.call("accept_notice", {"notice_id": 1})
    assert ack["ok"] and ack["chat_id"] != first
    assert (await r.send("in the new chat"))["ok"]
    assert (await chat_server.store.chats.history(ack["chat_id"]))[-1].text == "in the new chat"
    assert [m.sender for m in await chat_server.store.chats.history(first)][-1] == "system"


async def test_a_resume_the_server_cannot_check_is_refused_with_server_error(resident, chat_server):
    r = await resident()
    await r.start()
    await chat_server.store.db.close()
    with pytest.raises(ConnectionRefused) as info:
        await resident(resume=r.resume_token)
    assert info.value.code == "server_error" and "Traceback" not in str(info.value.data)


async def test_a_typing_flood_is_capped(resident, consultant_client):
    r = await resident()
    await r.start()
    c = await consultant_client("anna")
    await c.call("accept", {"chat_id": r.chat_id})
    acks = [await r.call("typing", {"active": i % 2 == 0}) for i in range(40)]
    assert all(a["ok"] for a in acks)
    await r.send("marker", "m")
    await c.wait_for("message", lambda m: m["text"] == "marker")
    assert 1 <= len(c.of("typing")) <= 20
