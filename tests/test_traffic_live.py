"""`cim serve`'s AMI link end to end: a real chat server fed by the loopback AMI server, real /staff clients."""

from __future__ import annotations

import asyncio

import pytest

from tests.fixtures.ami import AmiReplayServer, read_transcript
from tests.fixtures.audit_log import audit_log
from tests.fixtures.chat import connect_client
from tests.fixtures.store import PASSWORD, SYSTEM


async def staff_client(server, store, make_staff, name: str, *roles: str, extensions: tuple[str, ...] = ()):
    staff = await make_staff(name, *roles, extensions=extensions)
    session = await store.accounts.login(staff.name, PASSWORD)
    client = await connect_client(server.url, "/staff", {"token": session.token})
    client.staff = staff
    return client


def offered(n: int):
    return lambda doc: doc["today"]["offered"] == n and doc["pbx"]["connected"]


async def test_consultants_see_masked_numbers_the_manager_full_ones_and_chats_go_on(
    ami_server: AmiReplayServer, make_chat_server, make_staff, store, resident
) -> None:
    server = await make_chat_server(ami_url=ami_server.url)
    await ami_server.wait_logged_in()
    ewa = await staff_client(server, store, make_staff, "ewa", "consultant", extensions=("202",))
    boss = await staff_client(server, store, make_staff, "kierownik", "cim_manager")
    first = await ewa.wait_for("traffic")
    assert set(first) >= {"queues", "calls", "today", "pbx", "at"}
    await ami_server.send(read_transcript("ami_morning.txt"))
    masked = await ewa.wait_for("traffic", offered(3))
    full = await boss.wait_for("traffic", offered(3))
    assert masked["calls"][0]["number"] == "•••567" and full["calls"][0]["number"] == "601234567"
    assert masked["queues"][0]["callers"][0]["number"] == "•••678"
    members = {m["extension"]: m for m in full["queues"][0]["members"]}
    assert members["202"]["consultant"] == "ewa" and members["202"]["state"] == "on_call"
    assert members["201"]["state"] == "paused" and members["201"]["reason"] == "Przerwa"
    assert "601234567" not in repr(ewa.of("traffic"))
    # the manager's socket is for the wallboard only: no chats are offered to it
    assert (await boss.call("accept", {"chat_id": 1}))["ok"] is False
    # a resident's chat is not disturbed by any of it
    anna = await resident(url=server.url)
    await anna.start()
    assert (await anna.send("Dzień dobry"))["ok"]


async def test_a_consultant_pauses_themselves_in_the_queue_and_it_is_audited(
    ami_server: AmiReplayServer, make_chat_server, make_staff, store
) -> None:
    server = await make_chat_server(ami_url=ami_server.url)
    await ami_server.wait_logged_in()
    ewa = await staff_client(server, store, make_staff, "ewa", "consultant", extensions=("202",))
    jan = await staff_client(server, store, make_staff, "jan", "consultant", extensions=("299",))
    await ami_server.send(read_transcript("ami_morning.txt"))
    await ewa.wait_for("traffic", offered(3))
    ack = await ewa.call("queue_pause", {"paused": True, "reason": "Przerwa"})
    assert ack == {"ok": True, "paused": True, "interfaces": ["Local/202@from-queue/n"]}
    pause = [a for a in ami_server.actions if a.get("Action") == "QueuePause"][-1]
    assert (pause["Interface"], pause["Paused"], pause["Reason"]) == ("Local/202@from-queue/n", "true", "Przerwa")
    entry = (await audit_log(store, action="traffic.queue_pause"))[0]
    assert entry.actor_name == "ewa" and entry.outcome == "ok"
    refused = await jan.call("queue_pause", {"paused": True})  # 299 is in no queue
    assert refused["ok"] is False and "member" in refused["error"]["message"]
    bad = await ewa.call("queue_pause", {"paused": "yes"})
    assert bad["ok"] is False and bad["error"]["code"] == "invalid"


async def test_when_the_pbx_goes_away_the_state_says_since_when(
    ami_server: AmiReplayServer, make_chat_server, make_staff, store, clock
) -> None:
    server = await make_chat_server(ami_url=ami_server.url)
    await ami_server.wait_logged_in()
    ewa = await staff_client(server, store, make_staff, "ewa", "consultant", extensions=("202",))
    await ewa.wait_for("traffic", lambda d: d["pbx"]["connected"])
    mark = ewa.log.mark()
    await ami_server.close()
    down = await ewa.wait_for("traffic", lambda d: not d["pbx"]["connected"], after=mark)
    assert down["pbx"]["down_since"] == clock().isoformat() and down["pbx"]["error"]


async def test_without_an_ami_url_nothing_changes_for_staff(chat_server, make_staff, store) -> None:
    boss = await make_staff("kierownik", "cim_manager")
    session = await store.accounts.login(boss.name, PASSWORD)
    # no wallboard to watch: the manager's socket is the supervisors' one (§3), and gets no traffic
    manager = await connect_client(chat_server.url, "/staff", {"token": session.token})
    await manager.wait_for("supervision")
    ewa = await staff_client(chat_server, store, make_staff, "ewa", "consultant")
    await ewa.wait_for("queue")
    await asyncio.sleep(0.1)
    assert ewa.of("traffic") == [] and manager.of("traffic") == []
    await manager.disconnect()


@pytest.mark.staff_lang("pl")  # the wallboard as the office reads it
async def test_the_wallboard_and_the_call_card_in_the_tui_against_a_real_server(
    ami_server: AmiReplayServer, make_chat_server, make_staff, store, tui_app
) -> None:
    from textual.widgets import DataTable, Static

    from tests.fixtures.tui import sign_in, wait_until
    from tui.screens.traffic import TrafficScreen

    server = await make_chat_server(ami_url=ami_server.url)
    await ami_server.wait_logged_in()
    await make_staff("ewa", "consultant", extensions=("202",))
    app = tui_app(server_url=server.url)
    async with app.run_test(size=(140, 50)) as pilot:
        await sign_in(pilot, "ewa", PASSWORD)
        await app.run_action("open_area('traffic')")
        screen = await wait_until(
            pilot, lambda: isinstance(app.screen, TrafficScreen) and app.screen, what="the wallboard"
        )
        await wait_until(pilot, lambda: screen.state is not None, what="the first traffic event")
        await ami_server.send(read_transcript("ami_morning.txt"))
        await wait_until(pilot, lambda: screen.state["today"]["offered"] == 3, what="the morning on the wallboard")
        await pilot.pause()

        def rows(table_id: str) -> list[list[str]]:
            table = screen.query_one(table_id, DataTable)
            return [[str(getattr(c, "plain", c)) for c in table.get_row_at(i)] for i in range(table.row_count)]

        assert rows("#traffic-callers") == [["cim", "1", "•••678", "0:00"]]
        assert ["cim", "ewa", "202", "rozmawia", ""] in rows("#traffic-members")
        assert ["cim", "Jan Nowak", "201", "przerwa", "Przerwa"] in rows("#traffic-members")
        assert rows("#traffic-calls")[0][:4] == ["przychodzące", "•••567", "202", "cim"]
        card = screen.query_one("#traffic-card", Static)
        assert card.has_class("active") and "•••567" in str(card.render()) and "cim" in str(card.render())
        assert "Centrala połączona" in str(screen.query_one("#traffic-status", Static).render())
        # the next caller is offered to ewa: the card says who rings and how long they waited
        await ami_server.send(
            "Event: AgentCalled\r\nPrivilege: agent,all\r\nTimestamp: 1772442040.000000\r\n"
            "Channel: PJSIP/trunk-00000002\r\nUniqueid: 1772442010.2\r\n"
            "Linkedid: 1772442010.2\r\nCallerIDNum: 512345678\r\nQueue: cim\r\n"
            "Interface: Local/202@from-queue/n\r\nMemberName: Ewa Lis\r\n\r\n"
        )
        await wait_until(pilot, lambda: "Dzwoni do Ciebie" in str(card.render()), what="the ringing line")
        assert "•••678 z kolejki cim" in str(card.render())
        await pilot.press("p")
        await wait_until(
            pilot, lambda: any(a.get("Action") == "QueuePause" for a in ami_server.actions), what="the QueuePause"
        )
        await ami_server.close()
        await wait_until(
            pilot,
            lambda: "Brak połączenia z centralą od 10:00" in str(screen.query_one("#traffic-status", Static).render()),
            what="the degraded line",
        )
        assert screen.query_one("#traffic-status", Static).has_class("down")


async def test_the_consultant_describes_the_call_from_its_card(
    ami_server: AmiReplayServer, make_chat_server, make_staff, store, tui_app
) -> None:
    from tests.fixtures.tui import sign_in, wait_until
    from tui.screens.traffic import TrafficScreen
    from tui.widgets.call_note import CallNoteModal

    server = await make_chat_server(ami_url=ami_server.url)
    await ami_server.wait_logged_in()
    await make_staff("ewa", "consultant", extensions=("202",))
    app = tui_app(server_url=server.url)
    async with app.run_test(size=(140, 50)) as pilot:
        await sign_in(pilot, "ewa", PASSWORD)
        await app.run_action("open_area('traffic')")
        screen = await wait_until(
            pilot, lambda: isinstance(app.screen, TrafficScreen) and app.screen, what="the wallboard"
        )
        await wait_until(pilot, lambda: screen.state is not None, what="the first traffic event")
        await ami_server.send(read_transcript("ami_morning.txt"))
        await wait_until(pilot, lambda: screen.my_call() is not None, what="the call card")
        await pilot.press("k")
        modal = await wait_until(
            pilot, lambda: isinstance(app.screen, CallNoteModal) and app.screen, what="the note dialog"
        )
        await pilot.press("down")  # information_given -> referred
        await pilot.press("enter")  # to the note
        await pilot.press(*"Wydział [b]Podatków[/b]")
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, TrafficScreen), what="back on the wallboard")
        assert not modal.is_attached
        for _ in range(200):
            row = await store.db.fetchone("SELECT * FROM call_notes")
            if row is not None:
                break
            await pilot.pause(0.02)
        note = (await store.call_notes.get(row["linkedid"])).note  # sealed at rest: read through the store
        assert (row["linkedid"], row["category"], note) == ("1772442000.1", "referred", "Wydział [b]Podatków[/b]")


@pytest.mark.staff_lang("pl")
async def test_the_callbacks_screen_takes_and_closes_an_item(store, make_staff, tui_app) -> None:
    from pathlib import Path

    from textual.widgets import DataTable

    from store.models import Actor
    from tests.fixtures.tui import sign_in, wait_until
    from tui.screens.callbacks import CallbacksScreen
    from tui.widgets.modals import PickModal

    await make_staff("ewa", "consultant")
    log = Path(__file__).parent / "fixtures" / "traffic" / "queue_log_service.txt"
    await store.queue_log.ingest(Actor.system("tests"), store.queue_log.source(log))
    app = tui_app()
    async with app.run_test(size=(140, 40)) as pilot:
        await sign_in(pilot, "ewa", PASSWORD)
        await app.run_action("open_area('callbacks')")
        screen = await wait_until(
            pilot, lambda: isinstance(app.screen, CallbacksScreen) and app.screen, what="the callbacks"
        )
        table = screen.query_one(DataTable)
        await wait_until(pilot, lambda: table.row_count == 3, what="three items")
        first = [str(getattr(c, "plain", c)) for c in table.get_row_at(0)]
        assert (
            first[:2] == ["+48512345678", "2 mar 2026"] and first[6] == "do oddzwonienia"
        )  # the office day, in Polish
        await pilot.press("t")
        await wait_until(
            pilot,
            lambda: str(getattr(table.get_row_at(0)[6], "plain", table.get_row_at(0)[6])) == "w toku",
            what="taken",
        )
        await pilot.press("z")
        await wait_until(pilot, lambda: isinstance(app.screen, PickModal), what="the outcomes")
        await pilot.press("enter")  # reached
        await wait_until(
            pilot, lambda: isinstance(app.screen, CallbacksScreen) and table.row_count == 2, what="the item closed"
        )
    (item,) = [c for c in await store.callbacks.worklist(SYSTEM, include_done=True) if c.number == "+48512345678"]
    assert (item.status, item.outcome) == ("done", "reached")


@pytest.mark.ordinance("§5")
async def test_the_managers_wallboard_socket_ends_with_the_session(
    ami_server: AmiReplayServer, make_chat_server, make_staff, store
) -> None:
    """A wallboard-only /staff socket obeys the account like a consultant's: signing out ends it, with the reason."""
    server = await make_chat_server(ami_url=ami_server.url)
    await ami_server.wait_logged_in()
    staff = await make_staff("kierownik", "cim_manager")
    session = await store.accounts.login(staff.name, PASSWORD)
    boss = await connect_client(server.url, "/staff", {"token": session.token})
    await boss.wait_for("traffic")
    await store.accounts.logout(session.token)
    ended = await boss.wait_for("session_ended")
    assert ended["code"] == "signed_out" and ended["message"].startswith("Twoja sesja")
    for _ in range(100):  # the server disconnects it right after the reason
        if not boss.client.connected:
            break
        await asyncio.sleep(0.05)
    assert not boss.client.connected
    # a session ended by another process (no in-process notice: `cim users disable` on the host) is found
    # by the once-a-second sweep
    other = await make_staff("zastepca", "cim_manager")
    second = await store.accounts.login(other.name, PASSWORD)
    watcher = await connect_client(server.url, "/staff", {"token": second.token})
    await watcher.wait_for("traffic")
    async with store.db.write() as tx:
        await tx.execute("UPDATE staff SET disabled = 1 WHERE id = ?", (other.id,))
    ended = await watcher.wait_for("session_ended")
    assert ended["code"] == "account_disabled"
