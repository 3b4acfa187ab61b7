"""The TUI's live chats against the real chat server on loopback, with scripted residents and consultants."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web

from store.chats import CLOSE_CATEGORIES
from store.errors import SessionExpired
from tests.fixtures.store import PASSWORD
from tests.fixtures.tui import SIZE, notifications, sign_in, wait_until
from tui.live import ConnectionState
from tui.widgets.literal import visible_text


async def open_desk(pilot, app):
    """F2 from home, then wait for the connection."""
    await pilot.press("f2")
    await wait_until(pilot, lambda: type(app.screen).__name__ == "ChatsScreen", what="the chats screen")
    await wait_until(
        pilot, lambda: app.desk is not None and app.desk.state == ConnectionState.ONLINE, what="a live connection"
    )
    return app.screen


async def accept_new_chat(pilot, app, resident) -> object:
    """A resident opens a chat; the consultant sees it queued and accepts it with Ctrl+G."""
    person = await resident()
    await person.start()
    await wait_until(pilot, lambda: any(q.chat_id == person.chat_id for q in app.desk.queue), what="the queued chat")
    await pilot.press("ctrl+g")
    await wait_until(pilot, lambda: person.chat_id in app.desk.chats, what="the accepted chat")
    await person.wait_for("state", lambda s: s.get("status") == "active")
    return person


def transcript_text(app) -> str:
    return app.screen.query_one("#transcript").plain_text()


async def type_text(pilot, text: str) -> None:
    for char in text:
        await pilot.press("space" if char == " " else char)


async def test_a_refused_session_on_the_server_sends_the_person_back_to_sign_in(
    tui_app, make_staff, chat_server, store
) -> None:
    await make_staff("anna", "consultant")
    app = tui_app(chat_server.url)
    async with app.run_test(size=SIZE) as pilot:
        await sign_in(pilot, "anna", PASSWORD)
        await open_desk(pilot, app)
        # revoked behind the server's back (as by another process, whose change no listener here hears)
        await store.db.writer.execute("UPDATE sessions SET revoked_at = '2026-03-02T09:00:00.000000Z'")
        # the next reconnect is refused; the app checks the session and returns to sign-in
        await app.live._client.disconnect()
        await wait_until(pilot, lambda: type(app.screen).__name__ == "LoginScreen", what="the login screen")
        await pilot.pause(0.1)  # let the new screen finish mounting before the test ends the app


@pytest.mark.ordinance("§5")
@pytest.mark.staff_lang("pl")  # the server's Polish sentence, as a Polish-speaking TUI shows it
async def test_a_disabled_consultant_is_shown_why_the_session_ended(
    tui_app, make_staff, chat_server, store, resident
) -> None:
    from tests.fixtures.store import SYSTEM

    await make_staff("anna", "consultant")
    app = tui_app(chat_server.url)
    async with app.run_test(size=SIZE) as pilot:
        await sign_in(pilot, "anna", PASSWORD)
        await open_desk(pilot, app)
        person = await accept_new_chat(pilot, app, resident)
        mark = len(person.log.events)  # the "queued" state of before the acceptance does not count
        await store.accounts.set_disabled(SYSTEM, "anna", True)
        await wait_until(pilot, lambda: type(app.screen).__name__ == "LoginScreen", what="the login screen")
        shown = str(app.screen.query_one("#login-message").render())
        assert shown.startswith("Twoja sesja została zakończona: konto zostało wyłączone."), shown
        # the resident's chat went back to the queue with a line saying so
        await person.wait_for("state", lambda st: st.get("status") == "queued", after=mark)
        assert (await store.chats.get(person.chat_id)).status == "queued"
        await pilot.pause(0.1)


@pytest.mark.ordinance("§5")
@pytest.mark.staff_lang("pl")
async def test_a_working_consultant_stays_signed_in_and_an_unattended_tui_is_signed_out(
    tui_app, make_staff, chat_server, store, clock
) -> None:
    await make_staff("anna", "consultant")
    app = tui_app(chat_server.url)
    async with app.run_test(size=SIZE) as pilot:
        await sign_in(pilot, "anna", PASSWORD)
        await open_desk(pilot, app)
        idle = chat_server.settings.session_idle_minutes
        for _ in range(4):  # two idle timeouts' worth of time, with work in between
            clock.advance(minutes=idle // 2)
            await pilot.press("x")
            assert await app.check_session()  # the periodic check: refreshes the session, reports activity
        assert app.live is not None and app.live.ended is None and app.desk.state == ConnectionState.ONLINE
        clock.advance(minutes=idle + 1)  # nobody at the keyboard
        await wait_until(pilot, lambda: type(app.screen).__name__ == "LoginScreen", what="the login screen")
        shown = str(app.screen.query_one("#login-message").render())
        assert shown.startswith("Twoja sesja została zakończona: zbyt długi brak aktywności."), shown
        await pilot.pause(0.1)


async def test_consultant_day_queue_accept_exchange_and_close(
    tui_app, make_staff, chat_server, resident, store
) -> None:
    await make_staff("anna", "consultant")
    app = tui_app(chat_server.url)
    async with app.run_test(size=SIZE) as pilot:
        await sign_in(pilot, "anna", PASSWORD)
        await open_desk(pilot, app)
        assert "connected" in str(app.screen.query_one("#connection").render())
        person = await resident()
        await person.start()
        await wait_until(pilot, lambda: any("new chat" in m for m in notifications(app)), what="the new-chat notice")
        queue = app.screen.query_one("#queue")
        await wait_until(pilot, lambda: queue.option_count == 1, what="the queue entry")
        await pilot.press("ctrl+g")
        await wait_until(pilot, lambda: person.chat_id in app.desk.chats, what="the accepted chat")
        await person.wait_for("state", lambda s: s.get("status") == "active")

        # resident -> consultant, with the typing indicator
        await person.emit("typing", {"active": True})
        await wait_until(pilot, lambda: "typing" in str(app.screen.query_one("#typing").render()), what="typing shown")
        ack = await person.send("Dzień dobry, mam pytanie o podatek.")
        assert ack["ok"]
        await wait_until(pilot, lambda: "mam pytanie o podatek" in transcript_text(app), what="the resident's line")
        assert "Resident:" in transcript_text(app)

        # consultant -> resident, typing first
        mark = person.log.mark()
        await type_text(pilot, "Witam")
        await person.wait_for("typing", lambda d: d.get("active") is True, after=mark)
        await pilot.press("enter")
        await person.wait_for("message", lambda m: m["from"] == "consultant" and m["text"] == "Witam", after=mark)
        await wait_until(pilot, lambda: app.screen.query_one("#composer").value == "", what="the cleared reply line")
        await wait_until(pilot, lambda: "Consultant: Witam" in transcript_text(app), what="the consultant's line")

        # close with a category through the modal
        await pilot.press("f8")
        await wait_until(pilot, lambda: type(app.screen).__name__ == "CloseChatModal", what="the close dialog")
        target = CLOSE_CATEGORIES.index("referred")
        for _ in range(target):
            await pilot.press("down")
        await pilot.press("enter")
        await person.wait_for("state", lambda s: s.get("status") == "closed")
        await wait_until(pilot, lambda: person.chat_id not in app.desk.chats, what="the chat leaving the list")
    chat = await store.chats.get(person.chat_id)
    assert chat.status == "closed" and chat.close_category == "referred"


async def test_canned_response_is_inserted_into_the_reply_line(
    tui_app, make_staff, chat_server, resident, store
) -> None:
    from tests.fixtures.store import SYSTEM

    await store.chats.add_canned(SYSTEM, "Hours", "We are open 7:30-15:30 [Mon 18:00].")
    await make_staff("anna", "consultant")
    app = tui_app(chat_server.url)
    async with app.run_test(size=SIZE) as pilot:
        await sign_in(pilot, "anna", PASSWORD)
        await open_desk(pilot, app)
        await accept_new_chat(pilot, app, resident)
        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: type(app.screen).__name__ == "CannedModal", what="the canned list")
        await pilot.press("enter")
        await wait_until(pilot, lambda: type(app.screen).__name__ == "ChatsScreen", what="back on the desk")
        composer = app.screen.query_one("#composer")
        await wait_until(pilot, lambda: composer.value == "We are open 7:30-15:30 [Mon 18:00].", what="inserted text")


@pytest.mark.parametrize("hostile", ["[b]x[/b]", "[link=http://evil]x[/link]", "\x1b[31mred", "[/]"])
async def test_markup_injection_from_a_resident_appears_literally(
    tui_app, make_staff, chat_server, resident, hostile
) -> None:
    await make_staff("anna", "consultant")
    app = tui_app(chat_server.url)
    async with app.run_test(size=SIZE) as pilot:
        await sign_in(pilot, "anna", PASSWORD)
        await open_desk(pilot, app)
        person = await accept_new_chat(pilot, app, resident)
        ack = await person.send(f"before {hostile} after")
        assert ack["ok"]
        stored = [m for m in (await app.store.chats.history(person.chat_id)) if m.sender == "resident"][-1].text
        expected = f"Resident: {visible_text(stored)}"
        transcript = app.screen.query_one("#transcript")
        await wait_until(pilot, lambda: expected in transcript.plain_text(), what="the literal line")
        line = next(strip for strip in transcript.lines if "Resident:" in strip.text)
        for segment in line:
            style = segment.style
            assert style is None or (
                style.link is None
                and not style.bold
                and style.color is None
                or segment.text in ("Resident:", " ")
                or segment.text[:2].isdigit()
            ), segment
        assert "\x1b" not in transcript.plain_text()


async def test_double_accept_exactly_one_wins_and_the_other_is_told(
    tui_app, make_staff, chat_server, resident, consultant_client
) -> None:
    await make_staff("anna", "consultant")
    rival = await consultant_client("piotr")
    app = tui_app(chat_server.url)
    async with app.run_test(size=SIZE) as pilot:
        await sign_in(pilot, "anna", PASSWORD)
        screen = await open_desk(pilot, app)
        person = await resident()
        await person.start()
        await wait_until(pilot, lambda: any(q.chat_id == person.chat_id for q in app.desk.queue), what="queued")
        # both at the same instant: the app's worker and the rival's socket call
        worker = screen.accept(person.chat_id)
        rival_ack, _ = await asyncio.gather(rival.call("accept", {"chat_id": person.chat_id}), worker.wait())
        app_won = person.chat_id in app.desk.chats
        assert app_won != bool(rival_ack["ok"]), (app_won, rival_ack)
        if app_won:
            assert rival_ack["error"]["code"] == "already_taken"
        else:
            await wait_until(
                pilot,
                lambda: any("Another consultant accepted" in m for m in notifications(app)),
                what="the loser's notice",
            )
            await wait_until(pilot, lambda: not app.desk.queue, what="the queue emptied")


async def test_transfer_to_an_online_consultant_and_to_one_who_just_left(
    tui_app, make_staff, chat_server, resident, consultant_client
) -> None:
    await make_staff("anna", "consultant")
    piotr = await consultant_client("piotr")
    app = tui_app(chat_server.url)
    async with app.run_test(size=SIZE) as pilot:
        await sign_in(pilot, "anna", PASSWORD)
        await open_desk(pilot, app)
        await wait_until(
            pilot, lambda: any(c.get("name") == "piotr" for c in app.desk.others_online()), what="piotr online"
        )
        assert "piotr" in str(app.screen.query_one("#presence").render())

        # piotr leaves while anna's dialog is open: the server says not_online, the chat stays hers
        first = await accept_new_chat(pilot, app, resident)
        await pilot.press("ctrl+t")
        await wait_until(pilot, lambda: type(app.screen).__name__ == "TransferModal", what="the transfer dialog")
        await piotr.disconnect()
        await pilot.press("enter")
        await wait_until(pilot, lambda: any("no longer online" in m for m in notifications(app)), what="not online")
        assert first.chat_id in app.desk.chats

        piotr = await consultant_client("piotr2")
        await wait_until(
            pilot, lambda: any(c.get("name") == "piotr2" for c in app.desk.others_online()), what="piotr2 online"
        )
        await pilot.press("ctrl+t")
        await wait_until(pilot, lambda: type(app.screen).__name__ == "TransferModal", what="the transfer dialog")
        await pilot.press("enter")
        assigned = await piotr.wait_for("assigned", lambda a: a["chat_id"] == first.chat_id)
        assert assigned["by"] == app.ctx.actor.staff_id
        await wait_until(pilot, lambda: first.chat_id not in app.desk.chats, what="the chat leaving anna")
        ack = await piotr.call("send", {"chat_id": first.chat_id, "text": "Tu Piotr", "client_msg_id": "p1"})
        assert ack["ok"]
        await first.wait_for("message", lambda m: m["text"] == "Tu Piotr")


async def test_receiving_a_transfer_rings_and_shows_the_chat(
    tui_app, make_staff, chat_server, resident, consultant_client
) -> None:
    await make_staff("anna", "consultant")
    piotr = await consultant_client("piotr")
    app = tui_app(chat_server.url)
    async with app.run_test(size=SIZE) as pilot:
        await sign_in(pilot, "anna", PASSWORD)
        await open_desk(pilot, app)
        person = await resident()
        await person.start()
        assert (await piotr.call("accept", {"chat_id": person.chat_id}))["ok"]
        await person.send("[b]Czy ktoś tu jest?[/b]")
        ack = await piotr.call("transfer", {"chat_id": person.chat_id, "to_staff_id": app.ctx.actor.staff_id})
        assert ack["ok"], ack
        await wait_until(pilot, lambda: person.chat_id in app.desk.chats, what="the transferred chat")
        await wait_until(pilot, lambda: any("transferred to you" in m for m in notifications(app)), what="the notice")
        await wait_until(pilot, lambda: "[b]Czy ktoś tu jest?[/b]" in transcript_text(app), what="the history")


async def test_several_chats_at_once_with_unread_counts(tui_app, make_staff, chat_server, resident) -> None:
    await make_staff("anna", "consultant")
    app = tui_app(chat_server.url)
    async with app.run_test(size=SIZE) as pilot:
        await sign_in(pilot, "anna", PASSWORD)
        await open_desk(pilot, app)
        first = await accept_new_chat(pilot, app, resident)
        second = await accept_new_chat(pilot, app, resident)
        assert app.desk.selected == second.chat_id  # the chat just accepted is shown
        await pilot.press("ctrl+pageup")
        await wait_until(pilot, lambda: app.desk.selected == first.chat_id, what="the first chat shown")
        await second.send("pierwsza")
        await second.send("druga")
        await wait_until(pilot, lambda: app.desk.chats[second.chat_id].unread == 2, what="two unread")
        mine = app.screen.query_one("#my-chats")
        await wait_until(pilot, lambda: "(2 new)" in str(mine.get_option_at_index(1).prompt), what="the count")
        await pilot.press("ctrl+n")
        await wait_until(pilot, lambda: app.desk.selected == second.chat_id, what="the second chat shown")
        assert app.desk.chats[second.chat_id].unread == 0
        assert "druga" in transcript_text(app)
        # each chat keeps its own draft
        await type_text(pilot, "szkic")
        await pilot.press("ctrl+pageup")
        await wait_until(
            pilot, lambda: app.screen.query_one("#composer").value == "", what="the first chat's empty draft"
        )
        await pilot.press("ctrl+n")
        await wait_until(pilot, lambda: app.screen.query_one("#composer").value == "szkic", what="the draft back")


async def test_resident_leaving_mid_chat_is_shown_and_f8_asks_for_its_category(
    tui_app, make_staff, chat_server, resident, store
) -> None:
    await make_staff("anna", "consultant")
    app = tui_app(chat_server.url)
    async with app.run_test(size=SIZE) as pilot:
        await sign_in(pilot, "anna", PASSWORD)
        await open_desk(pilot, app)
        person = await accept_new_chat(pilot, app, resident)
        assert (await person.call("end", {}))["ok"]
        await wait_until(pilot, lambda: app.desk.chats[person.chat_id].status == "left", what="the resident gone")
        await wait_until(pilot, lambda: any("resident left" in m for m in notifications(app)), what="the notice")
        assert app.screen.query_one("#composer").disabled
        assert (await store.chats.get(person.chat_id)).close_category is None
        # F8 then Escape: no category chosen, the chat stays on the list
        await pilot.press("f8")
        await wait_until(pilot, lambda: type(app.screen).__name__ == "CloseChatModal", what="the close dialog")
        await pilot.press("escape")
        await wait_until(pilot, lambda: type(app.screen).__name__ == "ChatsScreen", what="back on the desk")
        assert person.chat_id in app.desk.chats
        # F8 and a category: recorded like any other close, then the chat leaves the list
        await pilot.press("f8")
        await wait_until(pilot, lambda: type(app.screen).__name__ == "CloseChatModal", what="the close dialog")
        for _ in range(CLOSE_CATEGORIES.index("referred")):
            await pilot.press("down")
        await pilot.press("enter")
        await wait_until(pilot, lambda: person.chat_id not in app.desk.chats, what="removed")
    chat = await store.chats.get(person.chat_id)
    assert chat.status == "closed" and chat.close_category == "referred"


async def test_oversized_paste_is_refused_and_kept_as_draft(tui_app, make_staff, chat_server, resident) -> None:
    await make_staff("anna", "consultant")
    app = tui_app(chat_server.url)
    async with app.run_test(size=SIZE) as pilot:
        await sign_in(pilot, "anna", PASSWORD)
        await open_desk(pilot, app)
        person = await accept_new_chat(pilot, app, resident)
        composer = app.screen.query_one("#composer")
        composer.focus()
        big = "x" * 100_000
        composer.insert_text_at_cursor(big)
        mark = person.log.mark()
        await pilot.press("enter")
        await wait_until(pilot, lambda: any("at most" in m for m in notifications(app)), what="the refusal")
        assert composer.value == big
        assert not [m for m in person.log.events[mark:] if m[0] == "message" and m[1].get("from") == "consultant"]


async def test_server_going_away_and_back_keeps_the_draft(tui_app, make_staff, chat_settings, store, resident) -> None:
    # a short shutdown_timeout: the server "going away" drops its sockets instead of draining them
    runner = web.AppRunner(_fresh_app(chat_settings, store), handle_signals=False, shutdown_timeout=0.2)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
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
            await type_text(pilot, "odpowiedz")
            await runner.cleanup()
            await wait_until(pilot, lambda: app.desk.state != ConnectionState.ONLINE, what="the lost connection")
            assert "connect" in str(app.screen.query_one("#connection").render())
            await pilot.press("enter")  # sending while offline: refused, the draft stays
            await wait_until(pilot, lambda: any("Not connected" in m for m in notifications(app)), what="the notice")
            assert app.screen.query_one("#composer").value == "odpowiedz"

            runner = web.AppRunner(_fresh_app(chat_settings, store), handle_signals=False, shutdown_timeout=0.2)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", port).start()
            await wait_until(pilot, lambda: app.desk.state == ConnectionState.ONLINE, what="the reconnection")
            assert person.chat_id in app.desk.chats
            assert app.screen.query_one("#composer").value == "odpowiedz"
            await pilot.press("enter")
            await wait_until(pilot, lambda: app.screen.query_one("#composer").value == "", what="sent after reconnect")
        history = await store.chats.history(person.chat_id)
        assert [m.text for m in history if m.sender == "consultant"] == ["odpowiedz"]
    finally:
        await runner.cleanup()


def _fresh_app(settings, store) -> web.Application:
    from webchat.app import create_app

    return create_app(settings, store)


def drop_next_send_ack(live) -> list[dict]:
    """The next `send` reaches the real server (which stores it) but its acknowledgement is lost:
    the LiveClient sees an ack timeout, as on a congested link. Returns the payloads whose ack was dropped."""
    import socketio

    client = live._client
    original = client.call
    dropped: list[dict] = []

    async def call(event, data=None, **kwargs):
        result = await original(event, data, **kwargs)
        if event == "send" and not dropped:
            dropped.append(data)
            raise socketio.exceptions.TimeoutError()
        return result

    client.call = call
    return dropped


async def consultant_lines(store, chat_id: int) -> list[str]:
    return [m.text for m in await store.chats.history(chat_id) if m.sender == "consultant"]


async def test_a_retry_after_a_lost_ack_stores_the_reply_once(
    tui_app, make_staff, chat_server, resident, store
) -> None:
    await make_staff("anna", "consultant")
    app = tui_app(chat_server.url)
    async with app.run_test(size=SIZE) as pilot:
        await sign_in(pilot, "anna", PASSWORD)
        await open_desk(pilot, app)
        person = await accept_new_chat(pilot, app, resident)
        dropped = drop_next_send_ack(app.live)
        await type_text(pilot, "Numer sprawy 12")
        await pilot.press("enter")
        await wait_until(pilot, lambda: any("did not answer" in m for m in notifications(app)), what="the timeout")
        assert dropped and await consultant_lines(store, person.chat_id) == ["Numer sprawy 12"]  # stored all the same
        composer = app.screen.query_one("#composer")
        assert composer.value == "Numer sprawy 12"  # kept: the consultant cannot know it arrived
        assert [o.client_msg_id for o in app.desk.chats[person.chat_id].outbox] == [dropped[0]["client_msg_id"]]
        await pilot.press("enter")  # the retry
        await wait_until(pilot, lambda: composer.value == "", what="the cleared reply line")
        assert await consultant_lines(store, person.chat_id) == ["Numer sprawy 12"]
        assert not app.desk.chats[person.chat_id].outbox
        assert transcript_text(app).count("Numer sprawy 12") == 1
        assert [m["text"] for m in person.of("message") if m["from"] == "consultant"] == ["Numer sprawy 12"]
        # the same words sent again on purpose, after the ack, are a new reply
        await type_text(pilot, "Numer sprawy 12")
        await pilot.press("enter")
        await wait_until(pilot, lambda: transcript_text(app).count("Numer sprawy 12") == 2, what="the second reply")
        assert await consultant_lines(store, person.chat_id) == ["Numer sprawy 12", "Numer sprawy 12"]


async def test_a_reply_whose_ack_was_lost_is_resent_with_its_id_after_a_reconnect(
    tui_app, make_staff, chat_server, resident, store
) -> None:
    await make_staff("anna", "consultant")
    app = tui_app(chat_server.url)
    async with app.run_test(size=SIZE) as pilot:
        await sign_in(pilot, "anna", PASSWORD)
        await open_desk(pilot, app)
        person = await accept_new_chat(pilot, app, resident)
        dropped = drop_next_send_ack(app.live)
        await type_text(pilot, "Prosze czekac")
        await pilot.press("enter")
        await wait_until(
            pilot, lambda: dropped and app.desk.chats[person.chat_id].outbox, what="the unacknowledged reply"
        )
        first_client = app.live._client
        await first_client.disconnect()  # the link drops before the consultant retries
        await wait_until(
            pilot,
            lambda: app.live._client not in (None, first_client) and app.desk.state == ConnectionState.ONLINE,
            what="the reconnection",
        )
        composer = app.screen.query_one("#composer")
        # the outbox is sent again on reconnect with the first id: the server answers with the stored seq
        await wait_until(pilot, lambda: not app.desk.chats[person.chat_id].outbox, what="the outbox flushed")
        await wait_until(pilot, lambda: composer.value == "", what="the reply line cleared")
        assert await consultant_lines(store, person.chat_id) == ["Prosze czekac"]
        assert transcript_text(app).count("Prosze czekac") == 1
        assert [m["text"] for m in person.of("message") if m["from"] == "consultant"] == ["Prosze czekac"]


def transcript_fits(app) -> bool:
    """Every rendered line of the transcript fits the width it has now (nothing under the scrollbar)."""
    transcript = app.screen.query_one("#transcript")
    width = transcript.scrollable_content_region.width
    return bool(transcript.lines) and all(strip.cell_length <= width for strip in transcript.lines)


def transcript_words(app) -> str:
    return " ".join(transcript_text(app).split())


async def test_transcript_lines_wrap_to_the_width_at_every_resize(
    tui_app, make_staff, make_chat_server, resident
) -> None:
    await make_staff("anna", "consultant")
    server = await make_chat_server(resident_rate_limit="1000/60")  # a chatty resident, to fill the transcript
    app = tui_app(server.url)
    long_line = (
        "Proszę o wydanie zaświadczenia przez e-Urząd, numer sprawy OR.6733.12.2026.AB, "
        "telefon 604 123 987, odbiór osobiście w pokoju 12 urzędu."
    )
    async with app.run_test(size=SIZE) as pilot:
        await sign_in(pilot, "anna", PASSWORD)
        await open_desk(pilot, app)
        person = await accept_new_chat(pilot, app, lambda: resident(url=server.url))
        assert (await person.send(long_line))["ok"]  # written while the transcript has no scrollbar yet
        await wait_until(pilot, lambda: "e-Urząd" in transcript_text(app), what="the long line")
        transcript = app.screen.query_one("#transcript")
        for n in range(30):  # enough lines for the scrollbar to appear
            assert (await person.send(f"linia {n}"))["ok"]
        await wait_until(pilot, lambda: "linia 29" in transcript_text(app), what="the last line")
        await wait_until(pilot, lambda: transcript.max_scroll_y > 0, what="a scrolling transcript")
        assert transcript_fits(app) and long_line in transcript_words(app)
        for size in ((80, 24), (140, 40), (60, 24), SIZE):
            await pilot.resize_terminal(*size)
            await wait_until(pilot, lambda: app.size == size, what=f"the terminal at {size}")
            await wait_until(pilot, lambda: transcript_fits(app), what=f"lines wrapped to the width at {size}")
            assert long_line in transcript_words(app), size
            assert "linia 29" in transcript_text(app)
        # wider again: the long line is wrapped into fewer rows, not left at the narrow width
        await pilot.resize_terminal(160, 40)
        await wait_until(pilot, lambda: app.size == (160, 40), what="the wide terminal")
        rows = [strip.text for strip in transcript.lines]
        start = next(i for i, row in enumerate(rows) if "Proszę o wydanie" in row)
        assert "telefon 604 123 987" in rows[start] + rows[start + 1], rows[start : start + 3]


async def test_after_a_transfer_arrives_typed_text_goes_to_its_reply_line(
    tui_app, make_staff, chat_server, resident, consultant_client
) -> None:
    await make_staff("anna", "consultant")
    piotr = await consultant_client("piotr")
    app = tui_app(chat_server.url)
    async with app.run_test(size=SIZE) as pilot:
        await sign_in(pilot, "anna", PASSWORD)
        await open_desk(pilot, app)
        composer = app.screen.query_one("#composer")
        assert composer.disabled  # no chat yet
        person = await resident()
        await person.start()
        assert (await piotr.call("accept", {"chat_id": person.chat_id}))["ok"]
        ack = await piotr.call("transfer", {"chat_id": person.chat_id, "to_staff_id": app.ctx.actor.staff_id})
        assert ack["ok"], ack
        await wait_until(
            pilot,
            lambda: app.desk.selected == person.chat_id and not composer.disabled,
            what="the transferred chat shown",
        )
        await wait_until(pilot, lambda: app.focused is composer, what="the reply line focused")
        await type_text(pilot, "Dzien dobry")
        assert composer.value == "Dzien dobry"
        await pilot.press("enter")
        await person.wait_for("message", lambda m: m["from"] == "consultant" and m["text"] == "Dzien dobry")


class FreezingLink:
    """A TCP relay to the chat server that, once frozen, neither forwards nor answers (a dead link
    or a hung server: the WebSocket close handshake never completes), keeping the sockets open."""

    def __init__(self, target_url: str) -> None:
        self.target_port = int(target_url.rsplit(":", 1)[1])
        self.frozen = asyncio.Event()
        self.server: asyncio.AbstractServer | None = None
        self.tasks: list[asyncio.Task] = []
        self.writers: list[asyncio.StreamWriter] = []

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self.writers += [writer, up_writer]
        self.tasks += [asyncio.current_task()]

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            while True:
                reading = asyncio.ensure_future(src.read(65536))
                freezing = asyncio.ensure_future(self.frozen.wait())
                done, _ = await asyncio.wait({reading, freezing}, return_when=asyncio.FIRST_COMPLETED)
                if reading not in done:
                    reading.cancel()
                    return
                freezing.cancel()
                data = reading.result()
                if not data:
                    return
                dst.write(data)
                await dst.drain()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        await asyncio.Event().wait()  # frozen: hold both sockets open, say nothing

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        for writer in self.writers:
            writer.close()
        if self.server is not None:
            self.server.close()


async def test_ctrl_q_with_open_chats_asks_first_and_quits_over_a_dead_link(
    tui_app, make_staff, chat_server, resident, store
) -> None:
    await make_staff("anna", "consultant")
    link = FreezingLink(chat_server.url)
    app = tui_app(await link.start())
    try:
        async with app.run_test(size=SIZE) as pilot:
            await sign_in(pilot, "anna", PASSWORD)
            await open_desk(pilot, app)
            person = await accept_new_chat(pilot, app, resident)
            token = app.ctx.token
            await pilot.press("ctrl+q")
            await wait_until(pilot, lambda: type(app.screen).__name__ == "ConfirmModal", what="the quit question")
            question = " ".join(str(w.render()) for w in app.screen.query("Label, Static"))
            assert "1 open chat;" in question and "return to the queue" in question, question
            await pilot.press("n")  # not now: the desk stays
            await wait_until(pilot, lambda: type(app.screen).__name__ == "ChatsScreen", what="back on the desk")
            assert app.is_running and person.chat_id in app.desk.chats
            link.frozen.set()  # the server stops answering: the polite disconnect would wait for it
            await pilot.press("ctrl+q")
            await wait_until(pilot, lambda: type(app.screen).__name__ == "ConfirmModal", what="the quit question")
            await pilot.press("y")
            # the session is revoked and the live link stopped (bounded over the dead link), then the app exits
            await wait_until(pilot, lambda: app.return_code is not None, what="the app's exit")
        # leaving `run_test` means the app finished: its exit did not hang on the dead link
        assert not app.is_running and app.return_code == 0
        assert app.live is None
    finally:
        await link.close()
    # quitting revoked the session: the chat server ends the consultant's socket and the chat goes back to the queue
    for _ in range(200):
        if (await store.chats.get(person.chat_id)).status == "queued":
            break
        await asyncio.sleep(0.05)
    assert (await store.chats.get(person.chat_id)).status == "queued"
    with pytest.raises(SessionExpired):
        await store.accounts.authenticate(token)


def test_quitting_has_one_deadline_shared_by_the_logout_and_the_live_link() -> None:
    """Ctrl+Q's waits are bounded by one deadline under a second (never a timed assertion: the structure):
    the revocation's bound and the live link's whole stop fit in QUIT_DEADLINE, and the polite disconnect is
    only part of the stop, so dropping the socket after it cannot add a second full wait."""
    from tui.app import LOGOUT_TIMEOUT, QUIT_DEADLINE
    from tui.live import DISCONNECT_TIMEOUT, STOP_TIMEOUT

    assert LOGOUT_TIMEOUT + STOP_TIMEOUT <= QUIT_DEADLINE < 1.0
    assert 0 < DISCONNECT_TIMEOUT < STOP_TIMEOUT


async def test_ctrl_q_quits_over_a_dead_link_while_the_database_is_stalled(
    tui_app, make_staff, chat_server, resident, store
) -> None:
    """The session cannot be revoked (another writer holds the database) and the server does not answer:
    quitting still ends, within its deadline, instead of waiting for either."""
    await make_staff("anna", "consultant")
    link = FreezingLink(chat_server.url)
    app = tui_app(await link.start())
    held, release = asyncio.Event(), asyncio.Event()

    async def hold_the_database() -> None:
        async with store.db.write():
            held.set()
            await release.wait()

    holder: asyncio.Task | None = None
    try:
        async with app.run_test(size=SIZE) as pilot:
            await sign_in(pilot, "anna", PASSWORD)
            await open_desk(pilot, app)
            person = await accept_new_chat(pilot, app, resident)
            token = app.ctx.token
            link.frozen.set()
            holder = asyncio.create_task(hold_the_database())
            await held.wait()
            await pilot.press("ctrl+q")
            await wait_until(pilot, lambda: type(app.screen).__name__ == "ConfirmModal", what="the quit question")
            await pilot.press("y")
            await wait_until(pilot, lambda: app.return_code is not None, what="the app's exit over a stalled store")
        assert not app.is_running and app.return_code == 0 and app.live is None
    finally:
        release.set()
        if holder is not None:
            await holder
        await link.close()
    # the revocation gave up (nothing half-written): the session expires by itself, the chat is still the consultant's
    assert (await store.accounts.authenticate(token)).name == "anna"
    assert (await store.chats.get(person.chat_id)).status != "queued"


async def test_ctrl_q_without_open_chats_quits_at_once(tui_app, make_staff, chat_server) -> None:
    await make_staff("anna", "consultant")
    app = tui_app(chat_server.url)
    async with app.run_test(size=SIZE) as pilot:
        await sign_in(pilot, "anna", PASSWORD)
        await open_desk(pilot, app)
        await pilot.press("ctrl+q")
    assert not app.is_running and app.return_code == 0


#: The TUI's own sentence for the server's `invalid`/`pick_mode` refusal of a decline, in each staff language.
NOT_DECLINED = {
    "pl": "Czat można odrzucić tylko wtedy, gdy przydzielił go system; ten zamknij lub przekaż.",
    "en": "Chats are declined only when the desk assigns them; close or transfer this one.",
}


@pytest.mark.parametrize(
    "lang",
    [pytest.param("pl", marks=pytest.mark.staff_lang("pl")), pytest.param("en", marks=pytest.mark.staff_lang("en"))],
)
async def test_a_refusal_of_the_chat_server_is_told_in_the_staff_language_from_its_code(
    tui_app, make_staff, chat_server, resident, lang
) -> None:
    """The server refuses a decline in pick mode with `invalid` and the reason `pick_mode` (its message is
    English): the consultant reads the TUI's sentence for the reason in their own language, no server words."""
    await make_staff("anna", "consultant")
    app = tui_app(chat_server.url)
    async with app.run_test(size=SIZE) as pilot:
        await sign_in(pilot, "anna", PASSWORD)
        await open_desk(pilot, app)
        await accept_new_chat(pilot, app, resident)
        await pilot.press("ctrl+y")
        await wait_until(pilot, lambda: NOT_DECLINED[lang] in notifications(app), what="the refusal")
        shown = "\n".join(notifications(app))
        assert "auto assignment mode" not in shown and "pick_mode" not in shown
        assert NOT_DECLINED["en" if lang == "pl" else "pl"] not in shown
        await pilot.pause(0.1)


@pytest.mark.parametrize(
    "lang, expected",
    [
        pytest.param(
            "pl", "Twoja sesja została zakończona: zbyt długi brak aktywności.", marks=pytest.mark.staff_lang("pl")
        ),
        pytest.param(
            "en", "Your session has ended: you were inactive for too long.", marks=pytest.mark.staff_lang("en")
        ),
    ],
)
def test_session_ended_is_worded_from_its_code_in_the_staff_language(lang, expected) -> None:
    from store.session_watch import ENDED_REASONS
    from tui.live.errors import SESSION_ENDED_MESSAGES, ack_refusal, session_ended_text

    assert set(SESSION_ENDED_MESSAGES) == set(ENDED_REASONS)
    assert session_ended_text("idle_timeout") == expected
    # an ack's refusal: the reason's sentence, else the code's; the server's message is never used
    server = {"ok": False, "error": {"code": "invalid", "message": "none of your extensions is a member of that queue"}}
    assert ack_refusal(server) == (
        "Serwer nie zrozumiał żądania." if lang == "pl" else "The server did not understand the request."
    )
    server["error"]["reason"] = "not_a_member"
    assert ack_refusal(server) == (
        "Żaden z Twoich numerów wewnętrznych nie należy do tej kolejki."
        if lang == "pl"
        else "None of your extensions is a member of that queue."
    )
    assert ack_refusal({"ok": False, "error": {"code": "made_up", "message": "Fehler"}}).endswith("(made_up).")
