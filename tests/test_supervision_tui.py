"""§3 supervision in the TUI against a real chat server: the supervisor's screen (watch with a purpose, whisper,
take over) and the consultant's desk (supervised by ..., the whisper as a note)."""

from __future__ import annotations

import json

import pytest

from tests.fixtures.audit_log import audit_log
from tests.fixtures.store import PASSWORD
from tests.fixtures.tui import SIZE, notifications, sign_in, wait_until
from tui.areas import areas_for
from tui.live import ConnectionState

pytestmark = pytest.mark.ordinance("§3")

WIDE = (140, 40)


async def named(store, staff, full_name: str) -> None:
    async with store.db.write() as tx:
        await tx.execute("UPDATE staff SET full_name = ? WHERE id = ?", (full_name, staff.id))


def shown(widget) -> str:
    """A transcript's text with its wrapping undone."""
    return " ".join(widget.plain_text().split())


async def type_text(pilot, text: str) -> None:
    for char in text:
        await pilot.press("space" if char == " " else char)


async def open_supervision(pilot, app):
    from tui.screens.supervision import SupervisionScreen

    await app.run_action("open_area('supervision')")
    screen = await wait_until(
        pilot, lambda: isinstance(app.screen, SupervisionScreen) and app.screen, what="the supervision screen"
    )
    await wait_until(pilot, lambda: screen.board.state == ConnectionState.ONLINE, what="a live connection")
    return screen


async def test_only_supervisors_see_the_supervision_area(make_staff):
    for roles, expected in (
        (("cim_manager",), True),
        (("boi_director",), True),
        (("consultant",), False),
        (("secretary",), False),
        (("designated",), False),
    ):
        staff = await make_staff(None, *roles)
        assert ("supervision" in [a.key for a in areas_for(staff.as_actor())]) is expected, roles


async def test_a_manager_watches_whispers_and_takes_over_from_the_supervision_screen(
    tui_app, make_staff, chat_server, store, consultant_client, resident
):
    from textual.widgets import DataTable

    from tui.widgets.purpose import PurposeModal

    boss = await make_staff("kierownik", "cim_manager", "consultant")
    await named(store, boss, "Barbara Nadzorcza")
    anna = await consultant_client("anna")
    await named(store, anna.staff, "Anna Kowalska")
    r = await resident("en")
    await r.start()
    assert (await anna.call("accept", {"chat_id": r.chat_id}))["ok"]
    assert (await r.send("Where do I renew my resident card?"))["ok"]
    app = tui_app(chat_server.url)
    async with app.run_test(size=WIDE) as pilot:
        await sign_in(pilot, "kierownik", PASSWORD)
        screen = await open_supervision(pilot, app)
        table = screen.query_one("#sup-chats", DataTable)
        await wait_until(pilot, lambda: table.row_count == 1, what="the live chat in the table")
        row = [str(getattr(c, "plain", c)) for c in table.get_row_at(0)]
        assert row[0].startswith(f"#{r.chat_id}") and row[2] == "Anna Kowalska" and row[5] != "—"
        # who handles what: anna online with one chat (the manager's own F2 socket: none)
        await wait_until(
            pilot,
            lambda: (
                "Anna Kowalska: 1 ·" in str(screen.query_one("#sup-consultants").render())
                or str(screen.query_one("#sup-consultants").render()).endswith("Anna Kowalska: 1")
            ),
            what="anna's load",
        )
        await wait_until(
            pilot,
            lambda: "kierownik: 0" in str(screen.query_one("#sup-consultants").render()),
            what="the manager's own desk, online with no chat",
        )
        assert "not connected" not in str(screen.query_one("#sup-consultants").render())
        # Enter opens it, after the purpose
        table.focus()
        await pilot.press("enter")
        modal = await wait_until(
            pilot, lambda: isinstance(app.screen, PurposeModal) and app.screen, what="the purpose prompt"
        )
        modal.query_one("#purpose").value = "kontrola jakości"
        await pilot.press("enter")
        await wait_until(pilot, lambda: r.chat_id in screen.board.chats, what="the watched chat")
        transcript = screen.query_one("#sup-transcript")
        await wait_until(pilot, lambda: "Where do I renew" in shown(transcript), what="the transcript")
        [entry] = await audit_log(store, action="chat.monitor")
        assert entry.actor_name == "kierownik" and entry.purpose == "kontrola jakości"
        told = await anna.wait_for("supervised", lambda s: s["by"])
        assert told["by"][0]["name"] == "Barbara Nadzorcza"
        # live: the next line of the resident arrives on the watch
        assert (await r.send("It expired yesterday."))["ok"]
        await wait_until(pilot, lambda: "It expired yesterday." in shown(transcript), what="the live line")
        # a whisper, from the whisper line
        await pilot.press("ctrl+w")
        assert app.focused is screen.query_one("#sup-whisper")
        await type_text(pilot, "Ask for the card number")
        await pilot.press("enter")
        note = await anna.wait_for("whisper")
        assert note["text"] == "Ask for the card number" and note["by"]["name"] == "Barbara Nadzorcza"
        await wait_until(pilot, lambda: "Ask for the card number" in shown(transcript), what="the note shown")
        assert not [e for e in r.log.events if "card number" in json.dumps(e)]
        assert len(await store.supervision.notes(r.chat_id)) == 1
        # take over (confirmed)
        await pilot.press("ctrl+t")
        await wait_until(pilot, lambda: type(app.screen).__name__ == "ConfirmModal", what="the confirmation")
        await pilot.press("y")
        line = await r.wait_for("message", lambda m: m.get("event") == "taken_over")
        assert line["text"] == "The conversation continues with another consultant. Now answering: Barbara."
        released = await anna.wait_for("released")
        assert released["reason"] == "taken_over" and released["by"]["name"] == "Barbara Nadzorcza"
        # the chat is the manager's now, on their own desk
        await wait_until(pilot, lambda: app.desk is not None and r.chat_id in app.desk.chats, what="the chat on F2")
        assert (await store.chats.get(r.chat_id)).consultant_id == boss.id
        await pilot.pause(0.1)


async def test_a_supervisor_without_the_consultant_role_is_refused_the_take_over_in_the_tui(
    tui_app, make_staff, chat_server, store, consultant_client, resident
):
    from textual.widgets import DataTable

    await make_staff("dyrektor", "boi_director")
    anna = await consultant_client("anna")
    r = await resident()
    await r.start()
    assert (await anna.call("accept", {"chat_id": r.chat_id}))["ok"]
    app = tui_app(chat_server.url)
    async with app.run_test(size=WIDE) as pilot:
        await sign_in(pilot, "dyrektor", PASSWORD)
        screen = await open_supervision(pilot, app)
        table = screen.query_one("#sup-chats", DataTable)
        await wait_until(pilot, lambda: table.row_count == 1, what="the live chat in the table")
        table.focus()
        await pilot.press("ctrl+t")
        await wait_until(pilot, lambda: type(app.screen).__name__ == "ConfirmModal", what="the confirmation")
        await pilot.press("y")
        await wait_until(pilot, lambda: any("not permitted" in n for n in notifications(app)), what="the refusal")
        refused = await audit_log(store, action="chat.take_over")
        assert [(x.actor_name, x.outcome) for x in refused] == [("dyrektor", "refused")]
        assert (await store.chats.get(r.chat_id)).consultant_id == anna.staff.id
        await pilot.pause(0.1)


async def test_the_consultant_sees_who_supervises_and_the_whisper_as_a_note(
    tui_app, make_staff, chat_server, store, consultant_client, resident
):
    from tui.screens.chats import ChatsScreen

    await make_staff("ewa", "consultant")
    app = tui_app(chat_server.url)
    async with app.run_test(size=SIZE) as pilot:
        await sign_in(pilot, "ewa", PASSWORD)
        await pilot.press("f2")
        screen = await wait_until(
            pilot, lambda: isinstance(app.screen, ChatsScreen) and app.screen, what="the chats screen"
        )
        await wait_until(
            pilot, lambda: app.desk is not None and app.desk.state == ConnectionState.ONLINE, what="a live connection"
        )
        r = await resident()
        await r.start()
        await wait_until(pilot, lambda: any(q.chat_id == r.chat_id for q in app.desk.queue), what="the queued chat")
        await pilot.press("ctrl+g")
        await wait_until(pilot, lambda: r.chat_id in app.desk.chats, what="the accepted chat")
        boss = await consultant_client("kierownik", "cim_manager")
        await named(store, boss.staff, "Barbara Nadzorcza")
        title = screen.query_one("#chat-title")
        assert "supervised" not in str(title.render())
        assert (await boss.call("monitor", {"chat_id": r.chat_id, "purpose": "kontrola jakości"}))["ok"]
        await wait_until(
            pilot, lambda: "supervised by Barbara Nadzorcza" in str(title.render()), what="supervised by on the chat"
        )
        assert (
            await boss.call("whisper", {"chat_id": r.chat_id, "text": "Podaj godziny otwarcia", "client_msg_id": "w"})
        )["ok"]
        transcript = screen.query_one("#transcript")
        await wait_until(
            pilot,
            lambda: "Note from Barbara Nadzorcza: Podaj godziny otwarcia" in shown(transcript),
            what="the whisper in the transcript",
        )
        assert not [e for e in r.log.events if "godziny otwarcia" in json.dumps(e, ensure_ascii=False)]
        assert (await boss.call("unmonitor", {"chat_id": r.chat_id}))["ok"]
        await wait_until(pilot, lambda: "supervised" not in str(title.render()), what="supervision ended")
        await pilot.pause(0.1)


@pytest.mark.staff_lang("pl")
def test_the_consultant_reads_who_supervises_in_polish():
    from tui.live import LiveChat
    from tui.screens.chats import supervised_label

    chat = LiveChat(chat_id=7, supervised_by=["Barbara Nadzorcza"])
    assert supervised_label(chat).plain.strip() == "nadzoruje: Barbara Nadzorcza"
    assert supervised_label(LiveChat(chat_id=8)).plain == ""


async def test_the_archive_shows_a_whisper_as_a_staff_note_in_its_place(store, settings, make_staff):
    import asyncio

    from textual.app import App
    from textual.widgets import Static

    from tui.context import TuiContext
    from tui.screens.archive import ArchiveDetailScreen

    anna = (await make_staff("anna", "consultant")).as_actor()
    boss = await make_staff("kierownik", "cim_manager")
    await named(store, boss, "Barbara Nadzorcza")
    maria = (await make_staff("maria", "designated")).as_actor()
    notice = await store.notices.current("chat", "pl")
    chat_id = (await store.chats.open(notice.id, "pl")).chat.id
    await store.chats.accept(anna, chat_id)
    await store.chats.post_resident(chat_id, "Ile kosztuje karta?")
    await store.supervision.whisper(boss.as_actor(), chat_id, "Karta jest bezpłatna", "n1")
    await store.chats.post_consultant(anna, chat_id, "Karta jest bezpłatna.")
    await store.chats.close(anna, chat_id, "information_given")

    class Detail(App[None]):
        def on_mount(self) -> None:
            self.push_screen(
                ArchiveDetailScreen(TuiContext(store=store, settings=settings, actor=maria, token=""), chat_id)
            )

    from tui.widgets.purpose import PurposeModal

    app = Detail()
    async with app.run_test(size=(120, 30)) as pilot:
        await wait_until(
            pilot, lambda: isinstance(app.screen, ArchiveDetailScreen) and app.screen.detail, what="the conversation"
        )
        await pilot.press("t")
        await wait_until(pilot, lambda: isinstance(app.screen, PurposeModal), what="the purpose prompt")
        await pilot.press(*"skarga", "enter")
        await wait_until(pilot, lambda: len(app.screen.query(".transcript-line")) > 3, what="the transcript")
        await asyncio.sleep(0)
        lines = [str(s.render()) for s in app.screen.query(".transcript-line").results(Static)]
    texts = [" ".join(line.split()) for line in lines]
    note = next(i for i, line in enumerate(texts) if "Staff note from Barbara Nadzorcza" in line)
    assert "not shown to the resident" in texts[note] and "Karta jest bezpłatna" in texts[note]
    assert "Ile kosztuje karta?" in texts[note - 1] and "Karta jest bezpłatna." in texts[note + 1]


async def test_the_consultants_tui_gets_the_whispers_back_after_reconnecting(
    tui_app, make_staff, chat_server, store, consultant_client, resident
):
    from tui.screens.chats import ChatsScreen

    await make_staff("ewa", "consultant")
    boss = await consultant_client("kierownik", "cim_manager")
    app = tui_app(chat_server.url, live_retry=(1.5, 3.0))  # a drop lasts 1.5 s: the whisper comes meanwhile
    async with app.run_test(size=SIZE) as pilot:
        await sign_in(pilot, "ewa", PASSWORD)
        await pilot.press("f2")
        screen = await wait_until(
            pilot, lambda: isinstance(app.screen, ChatsScreen) and app.screen, what="the chats screen"
        )
        await wait_until(
            pilot, lambda: app.desk is not None and app.desk.state == ConnectionState.ONLINE, what="a live connection"
        )
        r = await resident()
        await r.start()
        await wait_until(pilot, lambda: any(q.chat_id == r.chat_id for q in app.desk.queue), what="the queued chat")
        await pilot.press("ctrl+g")
        await wait_until(pilot, lambda: r.chat_id in app.desk.chats, what="the accepted chat")
        await app.live._client.disconnect()  # the link drops; meanwhile a supervisor whispers
        assert (await boss.call("monitor", {"chat_id": r.chat_id, "purpose": "kontrola jakości"}))["ok"]
        assert (await boss.call("whisper", {"chat_id": r.chat_id, "text": "Sprawdź wniosek", "client_msg_id": "x"}))[
            "ok"
        ]
        assert app.desk.state != ConnectionState.ONLINE  # it cannot have come live
        await wait_until(
            pilot,
            lambda: (
                app.desk.state == ConnectionState.ONLINE
                and any(line.sender == "note" for line in app.desk.chats[r.chat_id].lines)
            ),
            what="the whisper fetched after the reconnect",
        )
        transcript = screen.query_one("#transcript")
        await wait_until(pilot, lambda: "Sprawdź wniosek" in shown(transcript), what="the note on screen")
        await wait_until(
            pilot,
            lambda: "supervised by" in str(screen.query_one("#chat-title").render()),
            what="supervised by after the reconnect",
        )
        # nobody else may read them
        other = await consultant_client("olek")
        refused = await other.call("notes", {"chat_id": r.chat_id})
        assert refused["ok"] is False and refused["error"]["code"] == "not_permitted"
        rows = await audit_log(store, action="chat.notes")
        assert [(x.actor_name, x.outcome) for x in rows] == [("olek", "refused")]
        await pilot.pause(0.1)


async def test_the_secretary_reads_the_monitoring_in_the_supervision_report(
    tui_app, make_staff, chat_server, store, consultant_client, resident, clock
):
    """F7 lists the watch (with its purpose), the whisper and the take-over, for the City Secretary (§7)."""
    from textual.widgets import DataTable, Input

    from tui.screens.reports import ReportsScreen

    await make_staff("sekretarz", "secretary")
    anna = await consultant_client("anna")
    r = await resident()
    await r.start()
    assert (await anna.call("accept", {"chat_id": r.chat_id}))["ok"]
    boss = await consultant_client("kierownik", "cim_manager", "consultant")
    assert (await boss.call("monitor", {"chat_id": r.chat_id, "purpose": "skarga W/2026/0003"}))["ok"]
    assert (await boss.call("whisper", {"chat_id": r.chat_id, "text": "Przeproś", "client_msg_id": "1"}))["ok"]
    assert (await boss.call("take_over", {"chat_id": r.chat_id}))["ok"]
    app = tui_app()
    async with app.run_test(size=WIDE) as pilot:
        await sign_in(pilot, "sekretarz", PASSWORD)
        await pilot.press("f7")
        screen = await wait_until(
            pilot, lambda: isinstance(app.screen, ReportsScreen) and app.screen, what="the reports screen"
        )
        today = clock().date().isoformat()
        screen.query_one("#report-from", Input).value = today
        screen.query_one("#report-to", Input).value = today
        screen.query_one("#report-from", Input).focus()
        await pilot.press("enter")
        await wait_until(
            pilot, lambda: screen.report is not None and screen.report.activity.take_overs, what="the report of today"
        )
        table = screen.query_one("#report-table", DataTable)
        rows = [[str(getattr(c, "plain", c)) for c in table.get_row_at(i)] for i in range(table.row_count)]
        watched = [row for row in rows if row[0] == "monitoring"]
        assert len(watched) == 1 and watched[0][1:4] == ["kierownik", f"chat #{r.chat_id}", "skarga W/2026/0003"]
        assert [row[1] for row in rows if row[0] == "whisper"] == ["kierownik"]
        assert [row[2] for row in rows if row[0] == "take_over"] == [f"chat #{r.chat_id}"]
        assert "Przeproś" not in str(rows)
        summary = str(screen.query_one("#report-monitoring").render())
        assert "1 live chat watch" in summary and "1 whisper" in summary and "1 take-over" in summary
        await pilot.pause(0.1)


def test_the_desk_keeps_a_supervised_notice_that_overtook_the_chat_itself():
    """`supervised` can arrive just before a transfer's `assigned`: the desk shows it once the chat is there."""
    from tui.live import Desk

    desk = Desk(staff_id=1)
    desk.apply("supervised", {"chat_id": 5, "by": [{"staff_id": 9, "name": "Barbara Nadzorcza"}]})
    desk.apply("assigned", {"chat_id": 5, "lang": "pl", "history": [], "by": 2})
    assert desk.chats[5].supervised_by == ["Barbara Nadzorcza"]
    desk.apply("supervised", {"chat_id": 5, "by": []})
    assert desk.chats[5].supervised_by == []
