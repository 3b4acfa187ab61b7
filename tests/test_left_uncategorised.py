"""Issue 16: a chat the resident left waits for its consultant's category until it has one.

The store lists a consultant's chats the resident ended that have no category yet; the chat server sends
them at every (re)connect with the open chats (`"left": true`); the TUI shows them again after a restart
and counts them when the person quits; the service report counts the ones still without a category.
"""

from __future__ import annotations

import asyncio
from datetime import date, datetime, timezone

import pytest

from store.chats import CLOSE_CATEGORIES, LEFT_UNCATEGORISED_LIMIT
from store.errors import ChatClosed, NotPermitted
from store.i18n import ngettext
from store.models import Actor
from store.service_report import UNCATEGORISED, close_category_words
from tests.fixtures.chat import connect_client
from tests.fixtures.store import PASSWORD
from tests.fixtures.tui import SIZE, notifications, sign_in, wait_until
from tests.test_tui_live import open_desk
from tui.live import ConnectionState

SYSTEM = Actor.system("tests")
DAY = date(2026, 3, 2)


async def _chat(store, notice, consultant: Actor | None = None, *, left: bool = False) -> int:
    chat_id = (await store.chats.open(notice.id)).chat.id
    if consultant is not None:
        await store.chats.accept(consultant, chat_id)
    if left:
        await store.chats.end_by_resident(chat_id)
    return chat_id


# ---------------------------------------------------------------- the store


async def test_the_chats_a_resident_left_wait_for_their_consultants_category(store, make_staff) -> None:
    anna = (await make_staff("anna", "consultant")).as_actor()
    ewa = (await make_staff("ewa", "consultant")).as_actor()
    notice = await store.notices.current("chat", "pl")
    first = await _chat(store, notice, anna, left=True)
    await _chat(store, notice, left=True)  # left while queued: nobody handled it, nobody to categorise it
    await _chat(store, notice, ewa, left=True)  # a colleague's
    done = await _chat(store, notice, anna)
    await store.chats.close(anna, done, "referred")
    await _chat(store, notice, anna)  # still active: an open chat, not a left one
    second = await _chat(store, notice, anna, left=True)
    assert [c.id for c in await store.chats.left_uncategorised_of(anna)] == [first, second]  # the oldest first
    assert all(c.status == "closed" and c.close_category is None for c in await store.chats.left_uncategorised_of(anna))
    with pytest.raises(NotPermitted):  # a colleague cannot give it a category
        await store.chats.close(ewa, first, "other")
    await store.chats.close(anna, second, "no_reply")
    assert [c.id for c in await store.chats.left_uncategorised_of(anna)] == [first]
    assert (await store.chats.get(second)).close_category == "no_reply"
    with pytest.raises(ChatClosed):  # once only
        await store.chats.close(anna, second, "other")
    # the read is served by its partial index, not a walk through the consultant's archive
    plan = " ".join(
        str(r[3])
        for r in await store.db.fetchall(
            "EXPLAIN QUERY PLAN SELECT * FROM conversations WHERE channel = 'chat' AND status = 'closed' "
            "AND close_category IS NULL AND consultant_id = 1 ORDER BY id LIMIT 100"
        )
    )
    assert "conversations_uncategorised" in plan, plan


async def test_at_most_the_limit_is_listed_the_oldest_first(store, make_staff, monkeypatch) -> None:
    import store.chats as chats_module

    anna = (await make_staff("anna", "consultant")).as_actor()
    notice = await store.notices.current("chat", "pl")
    ids = [await _chat(store, notice, anna, left=True) for _ in range(3)]
    monkeypatch.setattr(chats_module, "LEFT_UNCATEGORISED_LIMIT", 2)
    assert [c.id for c in await store.chats.left_uncategorised_of(anna)] == ids[:2]
    await store.chats.close(anna, ids[0], "other")
    assert [c.id for c in await store.chats.left_uncategorised_of(anna)] == ids[1:]
    assert LEFT_UNCATEGORISED_LIMIT == 100


async def test_only_consultants_list_them(store, make_staff) -> None:
    dora = (await make_staff("dora", "designated")).as_actor()
    with pytest.raises(NotPermitted):
        await store.chats.left_uncategorised_of(dora)


# ---------------------------------------------------------------- the service report


async def test_the_service_report_counts_the_chats_left_without_a_category_before_and_after_the_purge(
    store, clock, make_staff
) -> None:
    anna = (await make_staff("anna", "consultant")).as_actor()
    notice = await store.notices.current("chat", "pl")
    clock.now = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)
    left = await _chat(store, notice, anna, left=True)
    gone = await _chat(store, notice, anna, left=True)
    done = await _chat(store, notice, anna)
    await store.chats.close(anna, done, "referred")
    await _chat(store, notice, left=True)  # abandoned in the queue: no consultant, not "uncategorised"
    report = await store.service.report(SYSTEM, DAY, DAY)
    assert report.as_json()["uncategorised_chats"] == 2
    assert report.as_json()["close_categories"] == {"referred": 1}
    assert close_category_words(report, "en") == {"referred elsewhere": 1, UNCATEGORISED: 2}
    assert close_category_words(report, "pl")["jeszcze bez kategorii (zakończone przez rozmówców)"] == 2
    await store.chats.close(anna, gone, "other")
    report = await store.service.report(SYSTEM, DAY, DAY)
    assert report.as_json()["uncategorised_chats"] == 1
    # the purge folds the day into service_daily: the chat still without a category is still counted
    clock.advance(days=200)
    result = await store.retention.purge(SYSTEM)
    assert result.chats == 4
    with pytest.raises(Exception):
        await store.chats.get(left)
    after = await store.service.report(SYSTEM, DAY, DAY)
    assert after.as_json()["uncategorised_chats"] == 1
    assert after.as_json() == report.as_json()


async def test_an_active_chat_is_not_uncategorised(store, clock, make_staff) -> None:
    anna = (await make_staff("anna", "consultant")).as_actor()
    notice = await store.notices.current("chat", "pl")
    clock.now = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)
    await _chat(store, notice, anna)
    report = await store.service.report(SYSTEM, DAY, DAY)
    assert report.as_json()["uncategorised_chats"] == 0
    assert UNCATEGORISED not in close_category_words(report, "en")


# ---------------------------------------------------------------- the chat server


async def test_a_left_chat_comes_back_at_every_connect_until_it_has_its_category(
    consultant_client, resident, chat_server
) -> None:
    c = await consultant_client("anna")
    r1, r2 = await resident(), await resident()
    await r1.start()
    await r2.start()
    assert (await c.call("accept", {"chat_id": r1.chat_id}))["ok"]
    assert (await c.call("accept", {"chat_id": r2.chat_id}))["ok"]
    await r1.send("one more question", "q1")
    await c.wait_for("message", lambda m: m["text"] == "one more question")
    assert (await r1.call("end", {}))["ok"]
    await c.wait_for("released", lambda p: p == {"chat_id": r1.chat_id, "reason": "resident_left"})
    await c.disconnect()

    again = await connect_client(chat_server.url, "/staff", {"token": c.token})
    try:
        left = await again.wait_for("assigned", lambda a: a["chat_id"] == r1.chat_id)
        assert left["left"] is True and left["status"] == "closed"
        assert "one more question" in [m["text"] for m in left["history"]]
        assert [m.get("event") for m in left["history"]][-1] == "ended_by_resident"
        still_open = await again.wait_for("assigned", lambda a: a["chat_id"] == r2.chat_id)
        assert "left" not in still_open and "status" not in still_open
        mine = await again.call("my_chats", {})
        assert [(x["chat_id"], x.get("left", False)) for x in mine["chats"]] == [
            (r2.chat_id, False),
            (r1.chat_id, True),
        ]
        sent = await again.call("send", {"chat_id": r1.chat_id, "text": "still there?", "client_msg_id": "late"})
        assert sent["error"]["code"] == "closed"  # read-only: the resident is gone
        # a colleague cannot categorise it; a category not on the list is refused
        bob = await consultant_client("bob")
        refused = await bob.call("close", {"chat_id": r1.chat_id, "category": "referred"})
        assert refused["error"]["code"] == "not_permitted"
        invalid = await again.call("close", {"chat_id": r1.chat_id, "category": "no such"})
        assert invalid["error"]["code"] == "invalid"
        ack = await again.call("close", {"chat_id": r1.chat_id, "category": "referred"})
        assert ack == {"ok": True, "chat_id": r1.chat_id, "category": "referred"}
        await again.wait_for("released", lambda p: p == {"chat_id": r1.chat_id, "reason": "closed"})
        assert [x["chat_id"] for x in (await again.call("my_chats", {}))["chats"]] == [r2.chat_id]
        assert (await again.call("close", {"chat_id": r1.chat_id, "category": "other"}))["error"]["code"] == "closed"
    finally:
        await again.disconnect()
    assert (await chat_server.store.chats.get(r1.chat_id)).close_category == "referred"

    third = await connect_client(chat_server.url, "/staff", {"token": c.token})
    try:
        await third.wait_for("assigned", lambda a: a["chat_id"] == r2.chat_id)
        assert [x["chat_id"] for x in (await third.call("my_chats", {}))["chats"]] == [r2.chat_id]
        assert not [a for a in third.of("assigned") if a["chat_id"] == r1.chat_id]
    finally:
        await third.disconnect()


# ---------------------------------------------------------------- the TUI


def _my_chats_text(app) -> list[str]:
    mine = app.screen.query_one("#my-chats")
    return [str(mine.get_option_at_index(i).prompt) for i in range(mine.option_count)]


def _dialog_text(app) -> str:
    return " ".join(str(w.render()) for w in app.screen.query("Label, Static"))


async def test_after_a_restart_the_left_chat_is_listed_until_f8_gives_its_category(
    tui_app, make_staff, chat_server, resident, store
) -> None:
    await make_staff("anna", "consultant")
    first = tui_app(chat_server.url)
    async with first.run_test(size=SIZE) as pilot:
        await sign_in(pilot, "anna", PASSWORD)
        await open_desk(pilot, first)
        left, kept = await resident(), await resident()
        for person in (left, kept):
            await person.start()
            await wait_until(pilot, lambda p=person: any(q.chat_id == p.chat_id for q in first.desk.queue), what="q")
            await pilot.press("ctrl+g")
            await wait_until(pilot, lambda p=person: p.chat_id in first.desk.chats, what="the accepted chat")
        assert (await left.call("end", {}))["ok"]
        await wait_until(pilot, lambda: first.desk.chats[left.chat_id].status == "left", what="the resident gone")
        # Ctrl+Q counts the open chat and the one without a category, and says the latter waits
        await pilot.press("ctrl+q")
        await wait_until(pilot, lambda: type(first.screen).__name__ == "ConfirmModal", what="the quit question")
        question = _dialog_text(first)
        assert "1 open chat and 1 chat without a category;" in question, question
        assert "return to the queue" in question and "next sign-in" in question, question
        await pilot.press("y")
        await wait_until(pilot, lambda: first.return_code is not None, what="the app's exit")
    for _ in range(200):  # the open chat goes back to the queue; the left one stays the consultant's
        if (await store.chats.get(kept.chat_id)).status == "queued":
            break
        await asyncio.sleep(0.05)
    assert (await store.chats.get(kept.chat_id)).status == "queued"
    assert (await store.chats.get(left.chat_id)).close_category is None

    again = tui_app(chat_server.url)  # the TUI started again
    async with again.run_test(size=SIZE) as pilot:
        await sign_in(pilot, "anna", PASSWORD)
        await wait_until(pilot, lambda: any("waits for its category" in m for m in notifications(again)), what="told")
        await open_desk(pilot, again)
        await wait_until(pilot, lambda: left.chat_id in again.desk.chats, what="the left chat listed")
        assert again.desk.chats[left.chat_id].status == "left" and kept.chat_id not in again.desk.chats
        await wait_until(
            pilot,
            lambda: any(f"#{left.chat_id}" in t and "the resident left" in t for t in _my_chats_text(again)),
            what="shown as left in my chats",
        )
        assert again.screen.query_one("#composer").disabled
        await pilot.press("ctrl+q")
        await wait_until(pilot, lambda: type(again.screen).__name__ == "ConfirmModal", what="the quit question")
        question = _dialog_text(again)
        assert "You have 1 chat without a category;" in question and "next sign-in" in question, question
        assert "return to the queue" not in question, question
        await pilot.press("n")
        await wait_until(pilot, lambda: type(again.screen).__name__ == "ChatsScreen", what="back on the desk")
        again.desk.select(left.chat_id)
        await pilot.press("f8")
        await wait_until(pilot, lambda: type(again.screen).__name__ == "CloseChatModal", what="the close dialog")
        for _ in range(CLOSE_CATEGORIES.index("no_reply")):
            await pilot.press("down")
        await pilot.press("enter")
        await wait_until(pilot, lambda: left.chat_id not in again.desk.chats, what="removed")
        assert not any(f"#{left.chat_id}" in t for t in _my_chats_text(again))
        assert again.desk.state == ConnectionState.ONLINE
        await pilot.press("ctrl+q")  # nothing open, nothing left to categorise: quits at once
    assert not again.is_running and again.return_code == 0
    chat = await store.chats.get(left.chat_id)
    assert chat.status == "closed" and chat.close_category == "no_reply"


async def test_a_chat_the_resident_left_while_the_link_was_down_is_shown_left_after_the_reconnect(
    tui_app, make_staff, chat_settings, store, resident
) -> None:
    """Before issue 16 the reconnect's list left such a chat out: the TUI showed it closed and F8 dropped it
    without a category. Now it comes back marked left, and F8 records its category."""
    from aiohttp import web

    from tests.test_tui_live import _fresh_app

    async def serve(port: int = 0) -> tuple[web.AppRunner, int]:
        runner = web.AppRunner(_fresh_app(chat_settings, store), handle_signals=False, shutdown_timeout=0.2)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", port)
        await site.start()
        return runner, site._server.sockets[0].getsockname()[1]

    runner, port = await serve()
    url = f"http://127.0.0.1:{port}"
    await make_staff("anna", "consultant")
    app = tui_app(url)
    try:
        async with app.run_test(size=SIZE) as pilot:
            await sign_in(pilot, "anna", PASSWORD)
            await open_desk(pilot, app)
            person = await resident(url=url)
            await person.start()
            await wait_until(pilot, lambda: app.desk.queue, what="queued")
            await pilot.press("ctrl+g")
            await wait_until(pilot, lambda: person.chat_id in app.desk.chats, what="accepted")
            await runner.cleanup()
            await wait_until(pilot, lambda: app.desk.state != ConnectionState.ONLINE, what="the lost connection")
            await store.chats.end_by_resident(person.chat_id)  # the resident ends it (on another node, say)
            runner, _port = await serve(port)
            await wait_until(pilot, lambda: app.desk.state == ConnectionState.ONLINE, what="the reconnection")
            await wait_until(pilot, lambda: app.desk.chats[person.chat_id].status == "left", what="shown as left")
            await pilot.press("f8")
            await wait_until(pilot, lambda: type(app.screen).__name__ == "CloseChatModal", what="the close dialog")
            await pilot.press("enter")  # the first category
            await wait_until(pilot, lambda: person.chat_id not in app.desk.chats, what="removed")
    finally:
        await runner.cleanup()
    assert (await store.chats.get(person.chat_id)).close_category == CLOSE_CATEGORIES[0]


@pytest.mark.staff_lang("pl")
def test_the_quit_question_counts_in_polish_plural_forms() -> None:
    words = [ngettext("{n} chat without a category", "{n} chats without a category", n).format(n=n) for n in (1, 3, 5)]
    assert words == ["1 rozmowę bez kategorii", "3 rozmowy bez kategorii", "5 rozmów bez kategorii"]
