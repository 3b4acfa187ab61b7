"""The desk in the TUI: the consultant's availability key and the queue's topics against the real chat server,
and the CIM manager's topics and capacity screen."""

from __future__ import annotations

from store.chats import LANGS  # noqa: F401  (the store's chat module loads before the TUI's)
from tests.fixtures.store import PASSWORD, SYSTEM
from tests.fixtures.tui import SIZE, sign_in, wait_until
from tests.test_desk_routing import start
from tests.test_tui_live import open_desk


async def test_the_consultant_sets_themselves_away_and_sees_the_queues_topics(
    tui_app, make_staff, chat_server, resident, store
) -> None:
    await make_staff("anna", "consultant")
    await store.desk.seed_default_topics(SYSTEM)
    taxes = (await store.desk.topics())[1]
    app = tui_app(chat_server.url)
    async with app.run_test(size=SIZE) as pilot:
        await sign_in(pilot, "anna", PASSWORD)
        screen = await open_desk(pilot, app)
        person = await resident()
        await start(person, taxes.id)
        await wait_until(
            pilot, lambda: any(q.chat_id == person.chat_id for q in app.desk.queue), what="the queued chat"
        )
        queued = next(q for q in app.desk.queue if q.chat_id == person.chat_id)
        assert queued.topic == ("Podatki i opłaty", "Taxes and fees")
        await wait_until(
            pilot,
            lambda: "Taxes and fees" in str(screen.query_one("#queue").get_option_at_index(0).prompt),
            what="the topic in the queue",
        )
        await pilot.press("ctrl+b")
        await wait_until(pilot, lambda: app.desk.availability == "away", what="away")
        await wait_until(pilot, lambda: "away" in str(screen.query_one("#connection").render()), what="the away line")
        await pilot.press("ctrl+b")
        await wait_until(pilot, lambda: app.desk.availability == "available", what="available again")
        await pilot.pause(0.1)


async def test_the_cim_manager_adds_a_topic_and_sets_a_capacity(tui_app, make_staff, store) -> None:
    await make_staff("maria", "cim_manager")
    await make_staff("anna", "consultant")
    await store.accounts.add_department(SYSTEM, "WSO", "Wydział Spraw Obywatelskich")
    app = tui_app()
    async with app.run_test(size=SIZE) as pilot:
        await sign_in(pilot, "maria", PASSWORD)
        from tui.screens.desk import DeskScreen

        await app.push_screen(DeskScreen(app.ctx))
        await wait_until(pilot, lambda: type(app.screen).__name__ == "DeskScreen", what="the desk screen")
        await pilot.press("a")
        await wait_until(pilot, lambda: type(app.screen).__name__ == "TopicModal", what="the topic dialog")
        app.screen.query_one("#label-pl").value = "Dowody osobiste"
        app.screen.query_one("#label-en").value = "Identity cards"
        app.screen.query_one("#department").value = "NOPE"
        await pilot.press("ctrl+s")
        await wait_until(
            pilot,
            lambda: "NOPE" in str(app.screen.query_one("#dialog-error").render()),
            what="the refusal of an unknown department",
        )
        app.screen.query_one("#department").value = "WSO"
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: type(app.screen).__name__ == "DeskScreen", what="back on the desk screen")
        topics = await store.desk.topics()
        assert [(t.label_pl, t.label_en, t.department) for t in topics] == [
            ("Dowody osobiste", "Identity cards", "WSO")
        ]
        await pilot.press("c")
        await wait_until(pilot, lambda: type(app.screen).__name__ == "CapacityModal", what="the capacity dialog")
        field = app.screen.query_one("#max-chats")
        field.value = "x"
        await pilot.press("enter")
        await wait_until(
            pilot,
            lambda: "number" in str(app.screen.query_one("#dialog-error").render()),
            what="the refusal of a non-number",
        )
        field.value = "5"
        await pilot.press("enter")
        await wait_until(pilot, lambda: type(app.screen).__name__ == "DeskScreen", what="back on the desk screen")
        (person,) = (await store.desk.people()).values()
        assert person.max_chats == 5
        await wait_until(
            pilot, lambda: app.screen.query_one("#people").get_row_at(0)[1] == "5", what="the new capacity shown"
        )
        await pilot.pause(0.1)


async def test_in_auto_mode_a_given_chat_rings_in_and_ctrl_y_declines_it(
    tui_app, make_staff, make_chat_server, resident, consultant_client, store
) -> None:
    from tests.fixtures.tui import notifications

    server = await make_chat_server(chat_assignment="auto")
    await make_staff("anna", "consultant")
    app = tui_app(server.url)
    async with app.run_test(size=SIZE) as pilot:
        await sign_in(pilot, "anna", PASSWORD)
        await open_desk(pilot, app)
        person = await resident(url=server.url)
        await person.start()
        await wait_until(pilot, lambda: person.chat_id in app.desk.chats, what="the chat given to anna")
        await wait_until(pilot, lambda: any("Ctrl+Y" in n for n in notifications(app)), what="the ring")
        bob = await consultant_client("bob", url=server.url)
        await pilot.press("ctrl+y")
        await wait_until(pilot, lambda: person.chat_id not in app.desk.chats, what="the chat gone from anna")
        given = await bob.wait_for("assigned", lambda a: a["chat_id"] == person.chat_id)
        assert given["auto"] is True
        assert (await store.chats.get(person.chat_id)).consultant_id == bob.staff.id
        await pilot.pause(0.1)
