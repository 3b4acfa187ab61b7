"""One bad message never fails another: poison is refused at the edge, and the group commit isolates what gets past.

A real server (create_app) on loopback, real python-socketio clients, the real SQLite group commit.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.fixtures.chat import ConnectionRefused, connect_client
from webchat.protocol import REFUSAL_REASONS

#: Values that once raised inside the store (OverflowError, UnicodeEncodeError) and rolled a batch back.
LONE_SURROGATES = ["\ud800", "ok \udfff ok", "\udc00\ud800"]
TOO_BIG = [2**63, 2**64, -(2**63) - 1]


def code(ack: dict) -> str | None:
    assert ack["ok"] is False and set(ack["error"]) - {"reason"} == {"code", "message"}, ack
    assert ack["error"].get("reason") in REFUSAL_REASONS | {None}, ack  # a reason is optional
    return ack["error"]["code"]


async def test_lone_surrogates_and_huge_ids_are_invalid_at_the_edge(make_chat_server, resident, consultant_client):
    server = await make_chat_server(resident_rate_limit="off", resident_address_rate_limit="off")
    r = await resident(url=server.url)
    notice = await r.wait_for("notice")
    for notice_id in TOO_BIG:
        assert code(await r.call("accept_notice", {"notice_id": notice_id})) == "invalid"
    assert (await r.call("accept_notice", {"notice_id": notice["notice_id"]}))["ok"]
    chat_id = (await server.store.chats.queue())[0].chat_id
    for text in LONE_SURROGATES:
        assert code(await r.call("send", {"text": text, "client_msg_id": "a"})) == "invalid"
        assert code(await r.call("send", {"text": "dobry tekst", "client_msg_id": text})) == "invalid"
    c = await consultant_client("anna", url=server.url)
    assert (await c.call("accept", {"chat_id": chat_id}))["ok"]
    for big in TOO_BIG:
        for event, payload in (
            ("accept", {"chat_id": big}),
            ("send", {"chat_id": big, "text": "x"}),
            ("typing", {"chat_id": big, "active": True}),
            ("close", {"chat_id": big, "category": "other"}),
            ("history", {"chat_id": big}),
            ("transfer", {"chat_id": big, "to_staff_id": 1}),
            ("transfer", {"chat_id": chat_id, "to_staff_id": big}),
        ):
            assert code(await c.call(event, payload)) == "invalid", (event, payload)
    for text in LONE_SURROGATES:
        assert code(await c.call("send", {"chat_id": chat_id, "text": text})) == "invalid"
    with pytest.raises(ConnectionRefused) as refused:  # a resume token that is not text is not a crash either
        await connect_client(server.url, "/resident", {"lang": "pl", "resume": "\ud800" * 43})
    assert refused.value.code == "resume_invalid"
    texts = [m.text for m in await server.store.chats.history(chat_id)]
    assert not any("\ud800" in t or "\udfff" in t for t in texts)
    assert (await r.send("wciąż działa", "after"))["ok"]


async def test_poisoned_and_honest_messages_interleaved_from_many_sockets(make_chat_server, resident):
    server = await make_chat_server(
        resident_rate_limit="off",
        resident_address_rate_limit="off",
        max_queued_chats_per_address="off",
        chat_open_address_rate_limit="off",
    )
    residents = [await resident(url=server.url) for _ in range(12)]
    for r in residents:
        await r.start()
    honest_per_resident = 15

    async def talk(i: int, r) -> list[tuple[bool, dict]]:
        calls = []
        for k in range(honest_per_resident):
            calls.append((True, r.call("send", {"text": f"pytanie {k} od {i}", "client_msg_id": f"h{i}-{k}"})))
            poison = [
                {"text": LONE_SURROGATES[k % 3], "client_msg_id": f"p{i}-{k}"},
                {"text": "tekst", "client_msg_id": "\ud800" + str(k)},
                {"text": ["nie", "tekst"], "client_msg_id": f"q{i}-{k}"},
            ][k % 3]
            calls.append((False, r.call("send", poison)))
        # all in flight at once: honest and poisoned items land in the same group-commit batches
        acks = await asyncio.gather(*(call for _, call in calls))
        return [(honest, ack) for (honest, _), ack in zip(calls, acks)]

    results = [pair for batch in await asyncio.gather(*(talk(i, r) for i, r in enumerate(residents))) for pair in batch]
    assert all(ack.get("ok") or ack["error"]["code"] != "server_error" for _, ack in results)  # nobody, ever
    assert all(ack["ok"] for honest, ack in results if honest)
    assert all(code(ack) == "invalid" for honest, ack in results if not honest)
    for i, r in enumerate(residents):
        stored = [m.text for m in await server.store.chats.history(r.chat_id) if m.sender == "resident"]
        assert sorted(stored) == sorted(f"pytanie {k} od {i}" for k in range(honest_per_resident))  # exactly once
        seqs = [m.seq for m in await server.store.chats.history(r.chat_id)]
        assert seqs == list(range(1, len(seqs) + 1))


async def test_the_group_commit_isolates_an_item_that_fails_past_the_edge(store):
    """Should something unstorable get past validation, its batch still commits everyone else's messages."""
    notice = await store.notices.current("chat", "pl")
    chats = [(await store.chats.open(notice.id, "pl")).chat.id for _ in range(4)]
    group = store.chats._group  # the writer behind post_resident, fed directly to skip the edge's checks
    items = []
    for k in range(20):
        chat_id = chats[k % 4]
        items.append(("honest", group.submit(chat_id, "resident", None, f"wiadomość {k}", f"c{k}")))
        if k % 5 == 0:
            items.append(("poison", group.submit(chat_id, "resident", None, "zatruta \ud800", f"z{k}")))
    outcomes = await asyncio.gather(*(call for _, call in items), return_exceptions=True)
    for (kind, _), outcome in zip(items, outcomes):
        if kind == "honest":
            assert not isinstance(outcome, BaseException), outcome
            assert outcome.new
        else:
            assert isinstance(outcome, UnicodeEncodeError), outcome
    for chat_id in chats:
        history = await store.chats.history(chat_id)
        texts = [m.text for m in history if m.sender == "resident"]
        assert len(texts) == 5 and len(set(texts)) == 5 and all(t.startswith("wiadomość") for t in texts)
        assert [m.seq for m in history] == list(range(1, len(history) + 1))
