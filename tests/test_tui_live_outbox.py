"""The TUI's per-chat outbox against the real chat server on loopback: the server stores a reply and its
acknowledgement never reaches the TUI (held past the client's timeout, or the socket cut after the commit);
the retry carries the first `client_msg_id` and the store holds the reply once (its public reads say so)."""

from __future__ import annotations

import asyncio

from tests.fixtures.store import PASSWORD
from tests.fixtures.tui import SIZE, notifications, sign_in, wait_until
from tests.test_tui_live import accept_new_chat, consultant_lines, open_desk, transcript_text, type_text
from tui.live import ACK_TIMEOUT, ConnectionState
from webchat.app import HUB, SIO


def after_commit(store, hook) -> list[tuple]:
    """Run `hook(actor, posted, n)` inside the server's `send` handler, after the store committed the
    consultant's message and before the handler acknowledges it. Returns what each send brought:
    (client_msg_id, whether the store took it as new, its seq)."""
    original = store.chats.post_consultant
    seen: list[tuple] = []

    async def post_consultant(actor, chat_id, text, client_msg_id=None):
        posted = await original(actor, chat_id, text, client_msg_id)
        seen.append((client_msg_id, posted.new, posted.message.seq))
        await hook(actor, posted, len(seen))
        return posted

    store.chats.post_consultant = post_consultant  # the hub calls the store's chats (webchat/staff.py on_send)
    return seen


async def test_an_ack_held_past_the_timeout_then_a_retry_stores_the_reply_once(
    tui_app, make_staff, chat_server, resident
) -> None:
    store = chat_server.store
    await make_staff("anna", "consultant")
    app = tui_app(chat_server.url)
    release = asyncio.Event()

    async def hold_the_first(actor, posted, n):
        if n == 1:
            await release.wait()  # committed; its ack waits until the TUI has given up on it

    seen = after_commit(store, hold_the_first)
    async with app.run_test(size=SIZE) as pilot:
        await sign_in(pilot, "anna", PASSWORD)
        await open_desk(pilot, app)
        app.live.ack_timeout = 0.5
        person = await accept_new_chat(pilot, app, resident)
        await type_text(pilot, "Numer sprawy 12")
        await pilot.press("enter")
        await wait_until(pilot, lambda: any("did not answer" in m for m in notifications(app)), what="the timeout")
        assert await consultant_lines(store, person.chat_id) == ["Numer sprawy 12"]  # stored all the same
        composer = app.screen.query_one("#composer")
        assert composer.value == "Numer sprawy 12"  # kept: the consultant cannot know it arrived
        [pending] = app.desk.chats[person.chat_id].outbox
        assert pending.client_msg_id == seen[0][0]
        await pilot.press("enter")  # the retry, while the first send's handler still holds its ack
        await wait_until(pilot, lambda: composer.value == "", what="the cleared reply line")
        first, retry = seen
        assert retry[0] == first[0] and retry[1] is False and retry[2] == first[2]  # same id, the stored seq
        assert not app.desk.chats[person.chat_id].outbox
        release.set()  # the late ack of the first send arrives now, to a request long given up
        await pilot.pause(0.3)
        assert await consultant_lines(store, person.chat_id) == ["Numer sprawy 12"]
        assert transcript_text(app).count("Numer sprawy 12") == 1
        assert [m["text"] for m in person.of("message") if m["from"] == "consultant"] == ["Numer sprawy 12"]


async def test_a_socket_cut_after_the_commit_resends_the_reply_with_its_id_on_reconnect(
    tui_app, make_staff, chat_server, resident
) -> None:
    store = chat_server.store
    hub, sio = chat_server.app[HUB], chat_server.app[SIO]
    await make_staff("anna", "consultant")
    app = tui_app(chat_server.url)

    async def cut_the_first(actor, posted, n):
        if n == 1:  # the consultant's sockets go before the handler can acknowledge what it stored
            for sid, conn in list(hub.staff.items()):
                if conn.actor.staff_id == actor.staff_id:
                    await sio.disconnect(sid, namespace="/staff")

    seen = after_commit(store, cut_the_first)
    async with app.run_test(size=SIZE) as pilot:
        await sign_in(pilot, "anna", PASSWORD)
        await open_desk(pilot, app)
        person = await accept_new_chat(pilot, app, resident)
        first_client = app.live._client
        loop = asyncio.get_running_loop()
        started = loop.time()
        await type_text(pilot, "Prosze czekac")
        await pilot.press("enter")
        composer = app.screen.query_one("#composer")
        # the TUI does not wait out the ack timeout on a dropped link: it says so, keeps the text, reconnects
        await wait_until(pilot, lambda: any("Not connected" in m for m in notifications(app)), what="the drop")
        await wait_until(
            pilot,
            lambda: app.live._client not in (None, first_client) and app.desk.state == ConnectionState.ONLINE,
            what="the reconnection",
        )
        await wait_until(
            pilot,
            lambda: not app.desk.chats[person.chat_id].outbox and composer.value == "",
            what="the outbox sent again and the reply line cleared",
        )
        assert loop.time() - started < ACK_TIMEOUT
        assert not any("did not answer" in m for m in notifications(app))
        first, resent = seen
        assert resent[0] == first[0] and resent[1] is False and resent[2] == first[2]
        assert await consultant_lines(store, person.chat_id) == ["Prosze czekac"]
        assert transcript_text(app).count("Prosze czekac") == 1
        assert [m["text"] for m in person.of("message") if m["from"] == "consultant"] == ["Prosze czekac"]
        assert (await store.chats.get(person.chat_id)).status == "active"  # still this consultant's chat
