"""§3 live supervision over a real server: the supervisors' view, watching with a purpose, whispers, take-overs."""

from __future__ import annotations

import asyncio
import json
from dataclasses import asdict
from datetime import timedelta

import pytest

from store.chats import SYSTEM_EVENTS
from store.models import Actor
from tests.fixtures.audit_log import audit_log
from tests.fixtures.chat import ConnectionRefused, connect_client
from tests.fixtures.store import PASSWORD
from webchat.protocol import REFUSAL_REASONS

pytestmark = pytest.mark.ordinance("§3")


def code(ack: dict) -> str | None:
    assert ack["ok"] is False and set(ack["error"]) - {"reason"} == {"code", "message"}, ack
    assert ack["error"].get("reason") in REFUSAL_REASONS | {None}, ack  # a reason is optional
    return ack["error"]["code"]


async def named(store, staff, full_name: str) -> None:
    async with store.db.write() as tx:
        await tx.execute("UPDATE staff SET full_name = ? WHERE id = ?", (full_name, staff.id))


async def audit_rows(store, action: str) -> list:
    return await audit_log(store, action=action)


async def active_chat(consultant_client, resident, lang: str = "pl"):
    """A consultant `anna` answering a resident's chat."""
    anna = await consultant_client("anna")
    r = await resident(lang)
    await r.start()
    assert (await anna.call("accept", {"chat_id": r.chat_id}))["ok"]
    return anna, r


def in_view(chat_id: int, predicate=lambda c: True):
    return lambda doc: any(c["chat_id"] == chat_id and predicate(c) for c in doc["chats"])


# ---------------------------------------------------------------- who may supervise


async def test_a_supervisor_connects_without_the_consultant_role_and_sees_every_chat_and_the_queue(
    chat_server, consultant_client, resident
):
    from tests.fixtures.store import SYSTEM

    store = chat_server.store
    topic = await store.desk.add_topic(SYSTEM, "Podatki i opłaty", "Taxes and fees")
    anna, talking = await active_chat(consultant_client, resident)
    await named(store, anna.staff, "Anna Kowalska")
    waiting = await resident()
    await waiting.start()
    boss = await consultant_client("kierownik", "cim_manager")
    queue = await boss.wait_for("queue", lambda q: waiting.chat_id in [c["chat_id"] for c in q["chats"]])
    assert talking.chat_id not in [c["chat_id"] for c in queue["chats"]]
    await boss.wait_for("presence")
    assert (await talking.send("Pytanie o podatek"))["ok"]
    view = await boss.wait_for("supervision", in_view(talking.chat_id, lambda c: c["unanswered_since"]))
    chats = {c["chat_id"]: c for c in view["chats"]}
    assert chats[waiting.chat_id]["status"] == "queued" and chats[waiting.chat_id]["waiting_since"]
    assert chats[waiting.chat_id]["consultant"] is None
    active = chats[talking.chat_id]
    assert active["status"] == "active" and active["consultant"] == {"staff_id": anna.staff.id, "name": "Anna Kowalska"}
    assert active["last_line_at"] and active["assigned_at"] and active["watchers"] == []
    assert active["topic"] == {"id": topic.id, "pl": "Podatki i opłaty", "en": "Taxes and fees"}  # what it is about
    # no content in the view: times and names only
    assert "Pytanie" not in json.dumps(view)
    # the director too; a supervisor never gets a chat offered and may not accept one
    director = await consultant_client("dyrektor", "boi_director")
    await director.wait_for("supervision", in_view(waiting.chat_id))
    assert code(await boss.call("accept", {"chat_id": waiting.chat_id})) == "not_permitted"
    assert code(await director.call("send", {"chat_id": talking.chat_id, "text": "x"})) == "not_permitted"
    refused = await audit_rows(store, "chat.consultant_event")
    assert [(r.actor_name, r.outcome) for r in refused] == [("kierownik", "refused"), ("dyrektor", "refused")]
    assert (await store.chats.get(waiting.chat_id)).status == "queued"
    # presence lists consultants only (whom a chat can be transferred to)
    presence = await anna.wait_for("presence", lambda p: p["consultants"])
    assert [c["name"] for c in presence["consultants"]] == ["anna"]


async def test_staff_who_neither_supervise_nor_consult_are_refused_and_it_is_audited(chat_server, make_staff):
    for name, role in (("sekretarz", "secretary"), ("wyznaczona", "designated")):
        await make_staff(name, role)
        session = await chat_server.store.accounts.login(name, PASSWORD)
        with pytest.raises(ConnectionRefused) as info:
            await connect_client(chat_server.url, "/staff", {"token": session.token})
        assert info.value.code == "unauthorised"
    refused = await audit_rows(chat_server.store, "staff.connect")
    assert [(r.actor_name, r.outcome) for r in refused] == [("sekretarz", "refused"), ("wyznaczona", "refused")]


async def test_a_consultant_may_not_watch_whisper_or_take_over_and_each_attempt_is_audited(
    chat_server, consultant_client, resident
):
    store = chat_server.store
    anna, r = await active_chat(consultant_client, resident)
    bob = await consultant_client("bob")
    assert code(await bob.call("monitor", {"chat_id": r.chat_id, "purpose": "kontrola jakości"})) == "not_permitted"
    assert (
        code(await bob.call("whisper", {"chat_id": r.chat_id, "text": "psst", "client_msg_id": "w1"}))
        == "not_permitted"
    )
    assert code(await bob.call("take_over", {"chat_id": r.chat_id})) == "not_permitted"
    assert code(await bob.call("supervision", {})) == "not_permitted"
    for action in ("chat.monitor", "chat.whisper", "chat.take_over"):
        rows = await audit_rows(store, action)
        assert [(x.actor_name, x.outcome, x.target_id) for x in rows] == [("bob", "refused", str(r.chat_id))]
    assert (await store.chats.get(r.chat_id)).consultant_id == anna.staff.id
    assert await store.supervision.notes(r.chat_id) == []
    assert not anna.of("supervised")


async def test_a_supervisor_without_the_consultant_role_cannot_take_over(chat_server, consultant_client, resident):
    store = chat_server.store
    anna, r = await active_chat(consultant_client, resident)
    boss = await consultant_client("kierownik", "cim_manager")
    assert code(await boss.call("take_over", {"chat_id": r.chat_id})) == "not_permitted"
    rows = await audit_rows(store, "chat.take_over")
    assert [(x.actor_name, x.outcome) for x in rows] == [("kierownik", "refused")]
    assert rows[0].details == {"permission": "handle_chats"}
    assert (await store.chats.get(r.chat_id)).consultant_id == anna.staff.id
    assert not anna.of("released")


# ---------------------------------------------------------------- watching


async def test_watching_needs_a_purpose_is_audited_as_a_reading_and_the_consultant_sees_who_watches(
    chat_server, consultant_client, resident
):
    store = chat_server.store
    anna, r = await active_chat(consultant_client, resident)
    assert (await r.send("Dzień dobry, mam pytanie"))["ok"]
    boss = await consultant_client("kierownik", "cim_manager")
    await named(store, boss.staff, "Barbara Nadzorcza")
    for purpose in (None, "", "  x ", 5, "y" * 501):
        assert code(await boss.call("monitor", {"chat_id": r.chat_id, "purpose": purpose})) == "invalid", purpose
    assert code(await boss.call("monitor", {"chat_id": 999999, "purpose": "kontrola jakości"})) == "not_found"
    assert code(await boss.call("monitor", {"chat_id": "1", "purpose": "kontrola jakości"})) == "invalid"
    assert not await audit_rows(store, "chat.monitor")
    assert not anna.of("supervised")

    ack = await boss.call("monitor", {"chat_id": r.chat_id, "purpose": "kontrola jakości"})
    assert ack["ok"] and ack["status"] == "active" and ack["consultant"]["staff_id"] == anna.staff.id
    assert [m["text"] for m in ack["history"] if m["from"] == "resident"] == ["Dzień dobry, mam pytanie"]
    [entry] = await audit_rows(store, "chat.monitor")
    assert (entry.actor_name, entry.purpose, entry.target_kind, entry.target_id) == (
        "kierownik",
        "kontrola jakości",
        "conversation",
        str(r.chat_id),
    )
    # no silent monitoring: the consultant is told, by full name
    told = await anna.wait_for("supervised", lambda s: s["by"])
    assert told == {"chat_id": r.chat_id, "by": [{"staff_id": boss.staff.id, "name": "Barbara Nadzorcza"}]}
    await boss.wait_for("supervision", in_view(r.chat_id, lambda c: c["watchers"]))
    # live and read-only: new lines of both sides arrive; sending to the resident is refused
    mark = boss.log.mark()
    assert (await r.send("Czy urząd jest otwarty w sobotę?"))["ok"]
    assert (await anna.call("send", {"chat_id": r.chat_id, "text": "Tak, do 14:00.", "client_msg_id": "a1"}))["ok"]
    await boss.wait_for("message", lambda m: m["chat_id"] == r.chat_id and m["text"] == "Tak, do 14:00.", after=mark)
    seen = [m["text"] for m in boss.of("message")]
    assert "Czy urząd jest otwarty w sobotę?" in seen and seen.count("Tak, do 14:00.") == 1
    assert code(await boss.call("send", {"chat_id": r.chat_id, "text": "hej"})) == "not_permitted"
    # the resident sees nothing of it
    assert not [m for m in r.of("message") if "Nadzorcza" in m["text"] or "kierownik" in m["text"]]
    # stopping: the consultant is told nobody watches any more, and the end is audited
    assert (await boss.call("unmonitor", {"chat_id": r.chat_id}))["ok"]
    assert await anna.wait_for("supervised", lambda s: s["by"] == [])
    [end] = await audit_rows(store, "chat.unmonitor")
    assert end.actor_name == "kierownik" and end.details["reason"] == "stopped"


async def test_a_watch_ends_when_the_supervisor_leaves_or_the_chat_closes(chat_server, consultant_client, resident):
    store = chat_server.store
    anna, r = await active_chat(consultant_client, resident)
    boss = await consultant_client("kierownik", "cim_manager")
    assert (await boss.call("monitor", {"chat_id": r.chat_id, "purpose": "kontrola jakości"}))["ok"]
    await anna.wait_for("supervised", lambda s: s["by"])
    await boss.disconnect()
    assert await anna.wait_for("supervised", lambda s: s["by"] == [])
    director = await consultant_client("dyrektor", "boi_director")
    assert (await director.call("monitor", {"chat_id": r.chat_id, "purpose": "skarga W/2026/0001"}))["ok"]
    assert (await anna.call("close", {"chat_id": r.chat_id, "category": "information_given"}))["ok"]
    ended = await director.wait_for("monitor_ended")
    assert ended == {"chat_id": r.chat_id, "reason": "closed"}
    reasons = [e.details["reason"] for e in await audit_rows(store, "chat.unmonitor")]
    assert reasons == ["disconnected", "closed"]
    assert code(await director.call("monitor", {"chat_id": r.chat_id, "purpose": "kontrola jakości"})) == "closed"


async def test_a_supervisors_socket_ends_with_the_session(chat_server, consultant_client):
    boss = await consultant_client("kierownik", "cim_manager")
    await boss.wait_for("supervision")
    await chat_server.store.accounts.logout(boss.token)
    ended = await boss.wait_for("session_ended")
    assert ended["code"] == "signed_out" and ended["message"].startswith("Twoja sesja")
    await boss.wait_for("disconnect")
    # ended by another process (no in-process notice): the sweep finds it
    director = await consultant_client("dyrektor", "boi_director")
    await director.wait_for("supervision")
    async with chat_server.store.db.write() as tx:
        await tx.execute("DELETE FROM staff_roles WHERE staff_id = ?", (director.staff.id,))
    ended = await director.wait_for("session_ended")
    assert ended["code"] == "role_removed" and "nadzoru" in ended["message"]


# ---------------------------------------------------------------- whispers


async def test_a_whisper_reaches_the_consultant_only_and_stays_out_of_everything_the_resident_gets(
    chat_server, consultant_client, resident
):
    store = chat_server.store
    anna, r = await active_chat(consultant_client, resident, lang="en")
    assert (await r.send("Hello"))["ok"]
    boss = await consultant_client("kierownik", "cim_manager")
    await named(store, boss.staff, "Barbara Nadzorcza")
    whisper = {"chat_id": r.chat_id, "text": "Zapytaj o numer sprawy", "client_msg_id": "w-1"}
    assert code(await boss.call("whisper", whisper)) == "invalid"  # watch first
    assert (await boss.call("monitor", {"chat_id": r.chat_id, "purpose": "szkolenie"}))["ok"]
    for bad, expected in (
        ({**whisper, "text": " "}, "empty"),
        ({**whisper, "text": "x" * 2001}, "too_long"),
        ({**whisper, "text": {"html": 1}}, "invalid"),
        ({**whisper, "client_msg_id": 7}, "invalid"),
    ):
        assert code(await boss.call("whisper", bad)) == expected
    ack = await boss.call("whisper", whisper)
    assert ack["ok"] and ack["note"]["from"] == "note" and ack["note"]["by"]["name"] == "Barbara Nadzorcza"
    got = await anna.wait_for("whisper")
    assert got["text"] == "Zapytaj o numer sprawy" and got["chat_id"] == r.chat_id
    # a retry with the same client_msg_id is stored once
    again = await boss.call("whisper", whisper)
    assert again["ok"] and again["note"]["note_id"] == ack["note"]["note_id"]
    assert len(await store.supervision.notes(r.chat_id)) == 1
    assert len(await audit_rows(store, "chat.whisper")) == 1
    # never to the resident: not live, not in the stored transcript, not on resume
    assert (await anna.call("send", {"chat_id": r.chat_id, "text": "Your case number?", "client_msg_id": "a"}))["ok"]
    await r.wait_for("message", lambda m: m["text"] == "Your case number?")
    assert not [e for e in r.log.events if "numer sprawy" in json.dumps(e, ensure_ascii=False)]
    assert not [m for m in await store.chats.history(r.chat_id) if "numer sprawy" in m.text]
    again_r = await resident("en", resume=r.resume_token)
    history = await again_r.wait_for("history")
    assert "numer sprawy" not in json.dumps(history, ensure_ascii=False)
    # nor in the audit log (who whispered to whom is there, never what)
    assert "numer sprawy" not in json.dumps(
        [asdict(x) for x in await audit_log(store)], ensure_ascii=False, default=str
    )
    # the archive shows it as a staff note, in its place
    await r.call("end", {})
    await anna.wait_for("chat_state")
    officer = await store.accounts.add_staff(Actor.system("test"), "urzedniczka", ("designated",), PASSWORD)
    transcript = await store.archive.open_transcript(officer.as_actor(), r.chat_id, "skarga W/2026/0002")
    lines = [(line.sender, line.text) for line in transcript.lines]
    assert ("note", "Zapytaj o numer sprawy") in lines
    assert lines.index(("note", "Zapytaj o numer sprawy")) == lines.index(("resident", "Hello")) + 1
    note = next(line for line in transcript.lines if line.sender == "note")
    assert note.staff_name == "Barbara Nadzorcza"


async def test_a_whisper_needs_a_consultant_to_go_to(chat_server, consultant_client, resident):
    boss = await consultant_client("kierownik", "cim_manager")
    r = await resident()
    await r.start()
    assert (await boss.call("monitor", {"chat_id": r.chat_id, "purpose": "kontrola kolejki"}))["ok"]
    assert code(await boss.call("whisper", {"chat_id": r.chat_id, "text": "hej", "client_msg_id": "q"})) == "invalid"
    assert await chat_server.store.supervision.notes(r.chat_id) == []


# ---------------------------------------------------------------- take-overs


@pytest.mark.parametrize("lang", ["pl", "en"])
async def test_a_take_over_tells_the_consultant_and_the_resident_reads_that_another_consultant_continues(
    chat_server, consultant_client, resident, lang
):
    store = chat_server.store
    anna, r = await active_chat(consultant_client, resident, lang=lang)
    boss = await consultant_client("kierownik", "cim_manager", "consultant")
    await named(store, boss.staff, "Barbara Nadzorcza")
    assert (await boss.call("monitor", {"chat_id": r.chat_id, "purpose": "skarga mieszkańca"}))["ok"]
    ack = await boss.call("take_over", {"chat_id": r.chat_id})
    assert ack["ok"] and ack["chat_id"] == r.chat_id
    assert ack["history"][-1]["event"] == "taken_over"
    line = await r.wait_for("message", lambda m: m.get("event") == "taken_over")
    assert line["text"] == SYSTEM_EVENTS["taken_over"][1 if lang == "en" else 0].format(consultant="Barbara")
    released = await anna.wait_for("released")
    assert released == {
        "chat_id": r.chat_id,
        "reason": "taken_over",
        "by": {"staff_id": boss.staff.id, "name": "Barbara Nadzorcza"},
    }
    assert [m for m in anna.of("message") if m.get("event") == "taken_over"]
    chat = await store.chats.get(r.chat_id)
    assert chat.status == "active" and chat.consultant_id == boss.staff.id
    # the supervisor now answers; the former consultant cannot
    assert (await boss.call("send", {"chat_id": r.chat_id, "text": "Przejmuję sprawę.", "client_msg_id": "b"}))["ok"]
    await r.wait_for("message", lambda m: m["text"] == "Przejmuję sprawę.")
    assert code(await anna.call("send", {"chat_id": r.chat_id, "text": "halo"})) == "not_permitted"
    [entry] = [e for e in await audit_rows(store, "chat.take_over") if e.outcome == "ok"]
    assert entry.details == {"from_staff_id": anna.staff.id}
    # the stored line is the resident's Polish line (the staff's screens word who took it from whom from the
    # event and the audit log); neither names anybody but by the display name
    stored = (await store.chats.history(r.chat_id))[-2]
    assert stored.event == "taken_over" and stored.text == SYSTEM_EVENTS["taken_over"][0].format(consultant="Barbara")
    assert "kierownik" not in stored.text and "anna" not in stored.text
    assert "kierownik" not in line["text"] and "anna" not in line["text"]


async def test_two_supervisors_taking_over_at_once_exactly_one_wins(chat_server, consultant_client, resident):
    store = chat_server.store
    for attempt in range(3):
        anna = await consultant_client(f"anna{attempt}")
        r = await resident()
        await r.start()
        assert (await anna.call("accept", {"chat_id": r.chat_id}))["ok"]
        first = await consultant_client(f"kier{attempt}", "cim_manager", "consultant")
        second = await consultant_client(f"dyr{attempt}", "boi_director", "consultant")
        acks = await asyncio.gather(
            first.call("take_over", {"chat_id": r.chat_id}), second.call("take_over", {"chat_id": r.chat_id})
        )
        winners = [a for a in acks if a["ok"]]
        assert len(winners) == 1, acks
        assert [code(a) for a in acks if not a["ok"]] == ["already_taken"]
        winner = first if acks[0]["ok"] else second
        assert (await store.chats.get(r.chat_id)).consultant_id == winner.staff.id
        lines = [m for m in await store.chats.history(r.chat_id) if m.event == "taken_over"]
        assert len(lines) == 1
        await r.wait_for("message", lambda m: m.get("event") == "taken_over")
        assert len([m for m in r.of("message") if m.get("event") == "taken_over"]) == 1


async def test_a_chat_taken_over_can_be_taken_over_again_later_from_the_supervisor_who_took_it(
    chat_server, consultant_client, resident, clock
):
    store = chat_server.store
    anna, r = await active_chat(consultant_client, resident)
    first = await consultant_client("kier", "cim_manager", "consultant")
    assert (await first.call("take_over", {"chat_id": r.chat_id}))["ok"]
    clock.advance(minutes=5)
    second = await consultant_client("dyr", "boi_director", "consultant")
    ack = await second.call("take_over", {"chat_id": r.chat_id})
    assert ack["ok"], ack
    assert (await store.chats.get(r.chat_id)).consultant_id == second.staff.id
    released = await first.wait_for("released")
    assert released["reason"] == "taken_over" and released["by"]["staff_id"] == second.staff.id
    entries = [e for e in await audit_rows(store, "chat.take_over") if e.outcome == "ok"]
    assert [e.details for e in entries] == [{"from_staff_id": anna.staff.id}, {"from_staff_id": first.staff.id}]
    assert len([m for m in await store.chats.history(r.chat_id) if m.event == "taken_over"]) == 2
    assert code(await first.call("send", {"chat_id": r.chat_id, "text": "halo"})) == "not_permitted"
    assert (await second.call("send", {"chat_id": r.chat_id, "text": "Dzień dobry.", "client_msg_id": "d"}))["ok"]
    # and back again: the first supervisor takes it over from the second
    assert (await first.call("take_over", {"chat_id": r.chat_id}))["ok"]
    assert (await store.chats.get(r.chat_id)).consultant_id == first.staff.id


async def test_of_two_take_overs_that_read_the_same_consultant_only_one_swaps_the_handler(
    chat_server, consultant_client, resident
):
    """The store's compare-and-swap, with the race made certain: both calls read the chat's consultant
    (anna) before either writes; the second's UPDATE ... WHERE consultant_id = anna then changes nothing."""
    from store.errors import Conflict

    store = chat_server.store
    anna, r = await active_chat(consultant_client, resident)
    first = (await consultant_client("kier", "cim_manager", "consultant")).staff.as_actor()
    second = (await consultant_client("dyr", "boi_director", "consultant")).staff.as_actor()
    results = await asyncio.gather(
        store.chats.take_over(first, r.chat_id), store.chats.take_over(second, r.chat_id), return_exceptions=True
    )
    assert isinstance(results[0], tuple) and results[0][2] == anna.staff.id, results
    assert isinstance(results[1], Conflict), results
    assert (await store.chats.get(r.chat_id)).consultant_id == first.staff_id
    assert len([m for m in await store.chats.history(r.chat_id) if m.event == "taken_over"]) == 1
    [entry] = [e for e in await audit_rows(store, "chat.take_over") if e.outcome == "ok"]
    assert entry.actor_id == first.staff_id
    # tried again, now that it has read who answers the chat, the second supervisor takes it over
    _chat, _line, previous = await store.chats.take_over(second, r.chat_id)
    assert previous == first.staff_id


async def test_take_over_refuses_a_queued_closed_or_own_chat(chat_server, consultant_client, resident):
    boss = await consultant_client("kierownik", "cim_manager", "consultant")
    r = await resident()
    await r.start()
    assert code(await boss.call("take_over", {"chat_id": r.chat_id})) == "invalid"  # queued: accept it instead
    assert code(await boss.call("take_over", {"chat_id": 424242})) == "not_found"
    assert code(await boss.call("take_over", {"chat_id": None})) == "invalid"
    assert (await boss.call("accept", {"chat_id": r.chat_id}))["ok"]
    assert code(await boss.call("take_over", {"chat_id": r.chat_id})) == "invalid"  # already theirs
    assert code(await boss.call("monitor", {"chat_id": r.chat_id, "purpose": "kontrola"})) == "invalid"
    await r.call("end", {})
    await boss.wait_for("chat_state")
    assert code(await boss.call("take_over", {"chat_id": r.chat_id})) == "closed"


# ---------------------------------------------------------------- the report


async def test_the_supervision_report_lists_watches_whispers_and_take_overs(
    chat_server, consultant_client, resident, clock, tmp_path
):
    from store.reports import report_json

    store = chat_server.store
    anna, r = await active_chat(consultant_client, resident)
    await named(store, anna.staff, "Anna Kowalska")
    boss = await consultant_client("kierownik", "cim_manager", "consultant")
    assert (await boss.call("monitor", {"chat_id": r.chat_id, "purpose": "kontrola jakości"}))["ok"]
    assert (await boss.call("whisper", {"chat_id": r.chat_id, "text": "Uprzejmiej", "client_msg_id": "1"}))["ok"]
    assert (await boss.call("take_over", {"chat_id": r.chat_id}))["ok"]
    director = await store.accounts.add_staff(Actor.system("test"), "dyrektor", ("boi_director",), PASSWORD)
    today = clock().date()
    report = await store.reports.supervision(director.as_actor(), today - timedelta(days=1), today + timedelta(days=1))
    activity = report.activity
    assert [(w.person, w.chat_id, w.purpose) for w in activity.watches] == [
        ("kierownik", r.chat_id, "kontrola jakości")
    ]
    assert activity.watches[0].seconds is not None  # ended by the take-over
    assert [(w.person, w.chat_id, w.to_person) for w in activity.whispers] == [
        ("kierownik", r.chat_id, "Anna Kowalska")
    ]
    assert [(t.person, t.chat_id, t.from_person) for t in activity.take_overs] == [
        ("kierownik", r.chat_id, "Anna Kowalska")
    ]
    # watching is an access to residents' content: counted with the archive's, per person and purpose
    assert [(a.person, a.action, a.purpose, a.count) for a in report.accesses] == [
        ("kierownik", "chat.monitor", "kontrola jakości", 1)
    ]
    rows = report.rows()
    sections = [row[0] for row in rows]
    assert {"monitoring", "whisper", "take_over"} <= set(sections)
    assert "Uprzejmiej" not in json.dumps(rows, ensure_ascii=False)  # what was whispered is not reported
    doc = report_json(report)
    assert doc["monitoring"]["watches"][0]["purpose"] == "kontrola jakości"
    assert doc["monitoring"]["take_overs"][0]["chat_id"] == r.chat_id
    from store.reports import write_csv, write_pdf

    text = (await write_csv(report, tmp_path / "report.csv")).read_text(encoding="utf-8-sig")
    assert "monitoring,kierownik" in text and "kontrola jakości" in text and "Uprzejmiej" not in text
    assert (await write_pdf(report, tmp_path / "report.pdf")).read_bytes().startswith(b"%PDF")


async def test_the_report_lists_acknowledged_audit_restores_on_screen_in_csv_and_pdf(store, settings, clock, tmp_path):
    """`cim audit acknowledge-restore` (store/audit.py) in the §3/§7 report: who, when, why, which entries."""
    from store.reports import write_csv, write_pdf
    from tests.fixtures.store import SYSTEM
    from tests.test_audit_anchors import _restored

    restored, fork, lost = await _restored(store, settings, clock, tmp_path)
    try:
        await restored.audit.acknowledge_restore(SYSTEM, "Awaria dysku; przywrócono kopię nocną.")
        director = await restored.accounts.add_staff(SYSTEM, "dyrektor", ("boi_director",), PASSWORD)
        today = clock().date()
        report = await restored.reports.supervision(
            director.as_actor(), today - timedelta(days=1), today + timedelta(days=1)
        )
        [ack] = report.activity.restores
        assert (ack.reason, ack.fork_at, ack.lost_through) == ("Awaria dysku; przywrócono kopię nocną.", fork, lost.id)
        [row] = [r for r in report.rows() if r[0] == "restore_acknowledged"]
        assert row[3] == ack.reason and f"{fork + 1} to {lost.id}" in row[2]
        csv_path = await write_csv(report, tmp_path / "r.csv")
        assert "restore_acknowledged" in csv_path.read_text(encoding="utf-8-sig")
        pdf_path = await write_pdf(report, tmp_path / "r.pdf")
        assert pdf_path.read_bytes().startswith(b"%PDF")
    finally:
        await restored.close()


async def test_the_tui_client_keeps_an_unacknowledged_whisper_and_sends_it_once_after_reconnecting(
    chat_server, consultant_client, resident, make_staff
):
    """tui/live.py SupervisionClient: the watched chat's outbox keeps the whisper's client_msg_id; the
    reconnect opens the watch again (with its purpose) and sends it; the server stores it once."""
    from tui.live import ConnectionState, LiveError, SupervisionBoard, SupervisionClient

    store = chat_server.store
    anna, r = await active_chat(consultant_client, resident)
    boss = await make_staff("kierownik", "cim_manager")
    session = await store.accounts.login(boss.name, PASSWORD)
    events: list[str] = []
    board = SupervisionBoard(boss.id)
    client = SupervisionClient(
        chat_server.url, session.token, board, lambda e, f: events.append(e), retry_min=0.3, retry_max=0.6
    )
    client.start()
    try:

        async def until(predicate, what):
            for _ in range(400):
                if predicate():
                    return
                await asyncio.sleep(0.025)
            raise AssertionError(what)

        await until(lambda: board.state == ConnectionState.ONLINE and board.view, "connected with the view")
        assert [c.chat_id for c in board.view] == [r.chat_id] and board.view[0].consultant_id == anna.staff.id
        await client.monitor(r.chat_id, "kontrola jakości")
        assert any(line.sender == "system" for line in board.chats[r.chat_id].lines)
        await client._client.disconnect()  # the link drops (the client reconnects after retry_min)
        with pytest.raises(LiveError) as info:
            await client.whisper(r.chat_id, "Zapytaj o PESEL")
        assert info.value.code == "disconnected"
        [pending] = board.chats[r.chat_id].outbox
        await until(
            lambda: board.state == ConnectionState.ONLINE and not board.chats[r.chat_id].outbox,
            "the outbox sent after the reconnect",
        )
        notes = await store.supervision.notes(r.chat_id)
        assert [n.text for n in notes] == ["Zapytaj o PESEL"]
        row = await store.db.fetchone("SELECT client_msg_id FROM chat_staff_notes")
        assert row["client_msg_id"] == pending.client_msg_id
        got = await anna.wait_for("whisper")
        assert got["text"] == "Zapytaj o PESEL"
        # the watch was opened again with the same purpose: a second reading, audited as such
        monitors = await audit_rows(store, "chat.monitor")
        assert [m.purpose for m in monitors] == ["kontrola jakości", "kontrola jakości"]
        assert any(line.sender == "note" for line in board.chats[r.chat_id].lines)
    finally:
        await client.stop()


async def test_a_watched_chat_transferred_tells_the_new_consultant_who_watches(
    chat_server, consultant_client, resident
):
    anna, r = await active_chat(consultant_client, resident)
    bob = await consultant_client("bob")
    boss = await consultant_client("kierownik", "cim_manager")
    await named(chat_server.store, boss.staff, "Barbara Nadzorcza")
    assert (await boss.call("monitor", {"chat_id": r.chat_id, "purpose": "kontrola jakości"}))["ok"]
    await anna.wait_for("supervised", lambda s: s["by"])
    assert (await anna.call("transfer", {"chat_id": r.chat_id, "to_staff_id": bob.staff.id}))["ok"]
    told = await bob.wait_for("supervised", lambda s: s["by"])
    assert told == {"chat_id": r.chat_id, "by": [{"staff_id": boss.staff.id, "name": "Barbara Nadzorcza"}]}
    assert await anna.wait_for("supervised", lambda s: s["by"] == [])
    # the watch goes on: bob's reply reaches the supervisor
    assert (await bob.call("send", {"chat_id": r.chat_id, "text": "Tu Bob.", "client_msg_id": "b"}))["ok"]
    await boss.wait_for("message", lambda m: m["text"] == "Tu Bob.")
