"""The broadcaster and the protocol's shared vocabulary (webchat/broadcast.py, webchat/protocol.py) over a real
server, real socket clients and a real SQLite file: staff lines carry their system event, whispers reach
whoever newly handles a chat, availability survives a restart; the widget's and the docs' codes agree."""

from __future__ import annotations

import asyncio
import gc
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from aiohttp import web_app

from store import Store
from tests.fixtures.chat import EVENT_TIMEOUT, Resident, connect_client, start_chat_server
from tests.fixtures.store import PASSWORD, SYSTEM
from webchat import broadcast, protocol
from webchat.app import HUB
from webchat.protocol import REFUSAL_REASONS

ROOT = Path(__file__).resolve().parent.parent


def code(ack: dict) -> str | None:
    assert ack["ok"] is False and set(ack["error"]) - {"reason"} == {"code", "message"}, ack
    assert ack["error"].get("reason") in REFUSAL_REASONS | {None}, ack  # a reason is optional
    return ack["error"]["code"]


def assert_system_line(line: dict, event: str) -> None:
    """A /staff system line: the stored Polish `text` as before, and its `event` (str) and `params` (dict)."""
    assert line["from"] == "system" and line["event"] == event, line
    assert isinstance(line["event"], str) and isinstance(line["params"], dict), line
    assert isinstance(line["text"], str) and line["text"], line


# ---------------------------------------------------------------- the vocabulary


def test_the_protocol_module_imports_without_the_web_stack():
    """The TUI's live client and tests import the codes and builders: no aiohttp, no python-socketio."""
    script = (
        "import sys, webchat.protocol as p; assert p.STAFF_CODES and p.RESIDENT_CODES; "
        "print(sorted(m for m in ('aiohttp', 'socketio', 'engineio') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    assert out.stdout.strip() == "[]", out


def widget_error_tables() -> list[set[str]]:
    """The keys of every `errors: {...}` table of the widget's strings (each language has one)."""
    tables = []
    for path in sorted((ROOT / "webchat" / "static").rglob("*.js")):
        if "node_modules" in path.parts:
            continue
        source = path.read_text(encoding="utf-8")
        for match in re.finditer(r"\berrors\s*:\s*\{(.*?)\n\s*\}", source, re.S):
            keys = set(re.findall(r"^\s*[\"']?([a-z_]+)[\"']?\s*:", match.group(1), re.M))
            if keys:
                tables.append(keys)
    return tables


def test_the_widgets_error_codes_are_the_protocols():
    """The widget keeps its own copy of the resident's codes (its core's ERROR_CODES, and its words for each
    in both languages): it may not drift from webchat/protocol.py."""
    expected = protocol.RESIDENT_CODES | protocol.RESIDENT_CONNECT_CODES
    node = shutil.which("node")
    assert node, "node is not installed (README: The two commands)"
    core = ROOT / "webchat" / "static" / "cim-widget-core.js"
    out = subprocess.run(
        [node, "-e", f"console.log(JSON.stringify(require({json.dumps(str(core))}).ERROR_CODES))"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    codes = json.loads(out.stdout)
    assert len(codes) == len(set(codes)) and set(codes) == expected, sorted(set(codes) ^ expected)
    tables = widget_error_tables()
    assert len(tables) >= 2, "the widget's error strings (pl and en) were not found"
    for keys in tables:
        assert keys - {"unknown"} == expected, sorted(keys ^ expected)


def test_docs_protocol_names_every_code_and_release_reason():
    text = (ROOT / "docs" / "PROTOCOL.md").read_text(encoding="utf-8")
    for name in sorted(
        protocol.STAFF_CODES
        | protocol.RESIDENT_CODES
        | protocol.RESIDENT_CONNECT_CODES
        | protocol.STAFF_CONNECT_CODES
        | protocol.RELEASE_REASONS
    ):
        assert f"`{name}`" in text, name


def test_an_unknown_release_reason_is_refused_by_the_builder():
    assert protocol.released_payload(3, "closed") == {"chat_id": 3, "reason": "closed"}
    with pytest.raises(AssertionError):
        protocol.released_payload(3, "vanished")


# ---------------------------------------------------------------- staff lines carry event and params


async def test_staff_lines_carry_the_system_event_and_its_params(chat_server, consultant_client, resident):
    anna = await consultant_client("anna")
    bob = await consultant_client("bob")
    boss = await consultant_client("kierownik", "cim_manager")
    r = await resident("en")
    await r.start()
    assert (await boss.call("monitor", {"chat_id": r.chat_id, "purpose": "kontrola jakości"}))["ok"]
    ack = await anna.call("accept", {"chat_id": r.chat_id})
    assert ack["ok"]
    events = [line.get("event") for line in ack["history"]]
    assert events == ["notice_accepted", "queued", "accepted"]
    for line in ack["history"]:
        assert_system_line(line, line["event"])
    assert set(ack["history"][0]["params"]) == {"version", "lang"}
    assert ack["history"][1]["params"] == {}
    assert set(ack["history"][2]["params"]) == {"consultant"}  # the display name (None: none set)
    assert "anna" not in ack["history"][2]["text"]  # the stored Polish line never names the log-in (issue 16)
    # a consultant's own words are no system line: no event, no params
    assert (await anna.call("send", {"chat_id": r.chat_id, "text": "Dzień dobry", "client_msg_id": "a1"}))["ok"]
    # the transfer line goes live to the consultant who loses the chat, and in the history of the one who gets it
    assert (await anna.call("transfer", {"chat_id": r.chat_id, "to_staff_id": bob.staff.id}))["ok"]
    moved = await anna.wait_for("message", lambda m: m.get("event") == "transferred")
    assert_system_line(moved, "transferred")
    assert moved["chat_id"] == r.chat_id and set(moved["params"]) == {"consultant"}
    assigned = await bob.wait_for("assigned")
    assert_system_line(assigned["history"][-1], "transferred")
    words = next(line for line in assigned["history"] if line["from"] == "consultant")
    assert "event" not in words and "params" not in words
    # the supervisor's watch gets the same lines
    watched = await boss.wait_for("message", lambda m: m.get("event") == "transferred")
    assert watched == moved
    # the resident's end reaches the consultant as a line with its event
    assert (await r.call("end", {}))["ok"]
    ended = await bob.wait_for("message", lambda m: m.get("event") == "ended_by_resident")
    assert_system_line(ended, "ended_by_resident")
    assert ended["params"] == {}
    assert await bob.wait_for("released") == {"chat_id": r.chat_id, "reason": "resident_left"}
    # the resident reads the lines in their language, with event and params too
    line = await r.wait_for("message", lambda m: m.get("event") == "transferred")
    assert line["params"] == moved["params"] and line["text"] != moved["text"]


# ---------------------------------------------------------------- whispers reach whoever newly handles the chat


@pytest.mark.ordinance("§3")
async def test_a_whisper_reaches_the_consultant_who_gets_the_chat_by_transfer_or_take_over(
    chat_server, consultant_client, resident
):
    store = chat_server.store
    anna = await consultant_client("anna")
    bob = await consultant_client("bob")
    carol = await consultant_client("carol", "consultant", "cim_manager")
    boss = await consultant_client("kierownik", "cim_manager")
    r = await resident()
    await r.start()
    assert (await anna.call("accept", {"chat_id": r.chat_id}))["ok"]
    assert (await boss.call("monitor", {"chat_id": r.chat_id, "purpose": "szkolenie"}))["ok"]
    first = await boss.call("whisper", {"chat_id": r.chat_id, "text": "Zapytaj o adres", "client_msg_id": "w1"})
    assert first["ok"]
    assert (await anna.wait_for("whisper"))["note_id"] == first["note"]["note_id"]
    # a transfer: bob reads the supervisor's note at once, in what he gets with the chat (no reconnect, no `notes`)
    assert (await anna.call("transfer", {"chat_id": r.chat_id, "to_staff_id": bob.staff.id}))["ok"]
    assigned = await bob.wait_for("assigned")
    assert assigned["notes"] == [first["note"]]
    assert assigned["notes"][0]["from"] == "note" and assigned["notes"][0]["text"] == "Zapytaj o adres"
    assert not bob.of("whisper")  # it came with the chat, not as a late live event
    second = await boss.call("whisper", {"chat_id": r.chat_id, "text": "Podaj numer sprawy", "client_msg_id": "w2"})
    assert (await bob.wait_for("whisper"))["note_id"] == second["note"]["note_id"]
    assert len(anna.of("whisper")) == 1  # the consultant who let the chat go hears no more of it
    # a take-over: carol gets both notes with the chat
    assert (await carol.call("take_over", {"chat_id": r.chat_id}))["ok"]
    taken = await carol.wait_for("assigned", lambda a: a.get("taken_over"))
    assert [n["text"] for n in taken["notes"]] == ["Zapytaj o adres", "Podaj numer sprawy"]
    # the whispers stay out of everything the resident gets
    assert not [e for e in r.log.events if "adres" in str(e) or "numer sprawy" in str(e)]
    # and a consultant reconnecting reads them in `my_chats` as well
    mine = await carol.call("my_chats", {})
    assert [n["note_id"] for n in mine["chats"][0]["notes"]] == [first["note"]["note_id"], second["note"]["note_id"]]
    assert len(await store.supervision.notes(r.chat_id)) == 2


# ---------------------------------------------------------------- availability is kept


def status_of(presence: dict, staff_id: int) -> str | None:
    return next((c["status"] for c in presence["consultants"] if c["staff_id"] == staff_id), None)


async def test_availability_survives_a_reconnect_and_a_server_restart(chat_settings, clock):
    settings = chat_settings.with_(chat_assignment="auto")
    st = await Store.open(settings, create=True, clock=clock)
    anna = await st.accounts.add_staff(SYSTEM, "anna", ("consultant",), PASSWORD)
    token = (await st.accounts.login("anna", PASSWORD)).token
    server, runner = await start_chat_server(settings, st)
    try:
        c = await connect_client(server.url, "/staff", {"token": token})
        assert code(await c.call("availability", {"status": "busy"})) == "invalid"
        assert await st.desk.availability([anna.id]) == {anna.id: "available"}  # never set: available
        assert await c.call("availability", {"status": "away"}) == {"ok": True, "status": "away"}
        await c.wait_for("presence", lambda p: status_of(p, anna.id) == "away")
        await c.disconnect()
        again = await connect_client(server.url, "/staff", {"token": token})  # a reconnect
        assert status_of(await again.wait_for("presence", lambda p: status_of(p, anna.id)), anna.id) == "away"
        await again.disconnect()
    finally:
        await runner.cleanup()
        await st.close()
    # the same SQLite file, a new store and a new server: nothing of the first process's memory is left
    assert settings.db_path.exists()
    st = await Store.open(settings, clock=clock)
    server, runner = await start_chat_server(settings, st)
    try:
        c = await connect_client(server.url, "/staff", {"token": token})
        assert status_of(await c.wait_for("presence", lambda p: status_of(p, anna.id)), anna.id) == "away"
        # away is obeyed: the only consultant is away, so a resident hears nobody is available and no
        # chat is given to her (auto mode)
        r = await connect_client(server.url, "/resident", {"lang": "pl"})
        notice = await r.wait_for("notice")
        assert notice["consultants_available"] is False
        opened = await r.call("accept_notice", {"notice_id": notice["notice_id"]})
        assert opened["ok"]
        await c.wait_for("queue", lambda q: q["total"] == 1)
        assert not c.of("assigned")
        # back to available: the waiting chat is given to her, and the store keeps the new status
        assert (await c.call("availability", {"status": "available"}))["ok"]
        assigned = await c.wait_for("assigned")
        assert assigned["chat_id"] == opened["chat_id"] and assigned["auto"] is True
        assert await st.desk.availability([anna.id]) == {anna.id: "available"}
        await r.disconnect()
        await c.disconnect()
    finally:
        await runner.cleanup()
        await st.close()


# ---------------------------------------------------------------- nothing is told of a change that failed


async def test_a_refused_operation_publishes_nothing(chat_server, consultant_client, resident):
    anna = await consultant_client("anna")
    bob = await consultant_client("bob")
    r = await resident()
    await r.start()
    assert (await anna.call("accept", {"chat_id": r.chat_id}))["ok"]
    await r.wait_for("state", lambda s: s["status"] == "active")
    mark = r.log.mark()
    assert code(await bob.call("accept", {"chat_id": r.chat_id})) == "already_taken"
    assert code(await bob.call("close", {"chat_id": r.chat_id, "category": "other"})) == "not_permitted"
    assert code(await bob.call("transfer", {"chat_id": r.chat_id, "to_staff_id": bob.staff.id})) == "not_permitted"
    # a line after the refusals arrives, and nothing of theirs came before it
    assert (await anna.call("send", {"chat_id": r.chat_id, "text": "Już jestem", "client_msg_id": "x"}))["ok"]
    await r.wait_for("message", lambda m: m["text"] == "Już jestem")
    assert [name for name, _ in r.log.events[mark:]] == ["message"]
    assert not bob.of("assigned") and not anna.of("released")


# ---------------------------------------------------------------- queue positions: coalesced, and no task left over


def queue_open(**overrides: object) -> dict:
    """Settings for many residents from one address (the loopback), as a busy desk has from many."""
    return {
        "resident_rate_limit": "off",
        "max_connections_per_address": "off",
        "resident_address_rate_limit": "off",
        "chat_open_rate_limit": "off",
        "chat_open_address_rate_limit": "off",
        "max_queued_chats_per_address": "off",
        **overrides,
    }


async def test_a_waiting_resident_is_told_its_position_at_most_once_per_round_while_the_queue_churns(
    make_chat_server,
):
    """docs/PROTOCOL.md "The desk": a burst of queue changes becomes one position update per resident per
    POSITION_COALESCE_SECONDS. 60 residents queue ahead of one who waits; then one of those ahead leaves
    every 40 ms and a newcomer joins behind (about 25 queue changes a second for 2.4 s): the one waiting is
    told at most about two positions a second, and the last it is told is its true position."""
    server = await make_chat_server(**queue_open())
    loop = asyncio.get_running_loop()

    async def open_one() -> Resident:
        r = await connect_client(server.url, "/resident", {"lang": "pl"}, cls=Resident)
        await r.start()
        return r

    ahead: list[Resident] = []
    for _ in range(3):  # in waves: one after another they queue in order of opening
        ahead += await asyncio.gather(*(open_one() for _ in range(20)))
    waiting = await connect_client(server.url, "/resident", {"lang": "pl"}, cls=Resident)
    told: list[tuple[float, int]] = []  # (arrival time, position) of each queued state after the churn starts

    async def on_state(data: dict) -> None:
        if data.get("status") == "queued" and data.get("position") is not None:
            told.append((loop.time(), data["position"]))

    waiting.client.on("state", on_state, namespace="/resident")
    await waiting.start()
    deadline = loop.time() + EVENT_TIMEOUT
    while not (told and told[-1][1] == 61) and loop.time() < deadline:  # it is told where it starts
        await asyncio.sleep(0.02)
    assert told and told[-1][1] == 61, told
    await asyncio.sleep(broadcast.POSITION_COALESCE_SECONDS)  # the round of its arrival is over
    told.clear()
    newcomers = []
    started = loop.time()
    for r in ahead:
        assert await r.call("end", {}) == {"ok": True}
        newcomers.append(asyncio.ensure_future(open_one()))  # joins behind the one waiting
        await asyncio.sleep(0.04)
    churned = loop.time() - started
    left = len(ahead)
    deadline = loop.time() + EVENT_TIMEOUT
    while not (told and told[-1][1] == 61 - left) and loop.time() < deadline:
        await asyncio.sleep(0.02)
    for r in await asyncio.gather(*newcomers):
        await r.disconnect()
    for r in ahead:
        await r.disconnect()
    await waiting.disconnect()
    assert told and told[-1][1] == 61 - left, told  # the newest position comes, however busy the queue
    positions = [p for _, p in told]
    assert positions == sorted(positions, reverse=True) and len(set(positions)) == len(positions), positions
    rounds = (churned + broadcast.POSITION_COALESCE_SECONDS) / broadcast.POSITION_COALESCE_SECONDS
    assert len(told) <= rounds + 1, (len(told), round(churned, 2), told)  # one per round (+ the first at once)
    # and in any one second at most two rounds (+ one for a round whose packet the network held back)
    for at, _ in told:
        assert sum(1 for t, _ in told if at <= t < at + 1.0) <= 3, told
    assert len(told) >= 2, told  # it was told along the way, not only at the end


def test_a_server_stopped_while_a_position_round_waits_leaves_no_task_behind(chat_settings, clock, monkeypatch):
    """The pending position round (Broadcaster._flush) is cancelled and awaited when the server stops: no task
    outlives it, and closing the event loop destroys no pending task (asyncio's "Task was destroyed but it is
    pending!"). Its own event loop, closed here, so that a task left behind would be seen being destroyed."""
    monkeypatch.setattr(broadcast, "POSITION_COALESCE_SECONDS", 30.0)  # the round stays due until the stop
    seen: dict[str, object] = {}
    reported: list[str] = []  # what the loop's exception handler was given (text only: it keeps nothing alive)

    async def scenario() -> None:
        st = await Store.open(chat_settings, create=True, clock=clock)
        server, runner = await start_chat_server(chat_settings, st)
        broadcaster = server.app[HUB].broadcast
        try:
            first = await connect_client(server.url, "/resident", {"lang": "pl"}, cls=Resident)
            await first.start()  # told at once: the first round
            second = await connect_client(server.url, "/resident", {"lang": "pl"}, cls=Resident)
            await second.start()  # within the pause: the next round waits
            deadline = asyncio.get_running_loop().time() + EVENT_TIMEOUT
            while broadcaster._flush is None and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.01)
            seen["pending"] = broadcaster._flush is not None and not broadcaster._flush.done()
            await first.disconnect()
            await second.disconnect()
        finally:
            await runner.cleanup()
            await st.close()
        seen["flush_left"] = broadcaster._flush is not None and not broadcaster._flush.done()
        seen["tasks_left"] = sorted(
            t.get_coro().__qualname__
            for t in asyncio.all_tasks()
            if t is not asyncio.current_task() and "webchat" in t.get_coro().cr_code.co_filename
        )

    loop = asyncio.new_event_loop()
    loop.set_exception_handler(lambda _loop, context: reported.append(f"{context['message']} {context.get('task')!r}"))
    try:
        loop.run_until_complete(scenario())
    finally:
        loop.close()
    del loop
    # aiohttp keeps each app's middleware chain in a module-level cache (aiohttp.web_app): without clearing it
    # the stopped app, and so a task it left, would live on and never be reported as destroyed
    cached = getattr(web_app, "_cached_build_middleware", None)
    if cached is not None:
        cached.cache_clear()
    gc.collect()
    assert seen["pending"] is True  # the case under test happened: a round was due when the server stopped
    assert seen["flush_left"] is False and seen["tasks_left"] == [], seen
    destroyed = [m for m in reported if "Task was destroyed but it is pending" in m]
    # (Engine.IO's own ping tasks of sockets closed in the stop may be among them: python-engineio's, not ours)
    assert [m for m in destroyed if f"{ROOT / 'webchat'}" in m] == [], destroyed


async def test_a_stuck_follow_up_task_does_not_keep_the_server_from_stopping(chat_server, caplog) -> None:
    """Hub.drain waits for follow-up work a bounded time, then cancels what is left and says so."""
    hub = chat_server.app[HUB]
    stuck = asyncio.Event()

    async def never_ends() -> None:
        stuck.set()
        await asyncio.Event().wait()  # a store or Redis that stopped answering

    hub.spawn(never_ends())
    await asyncio.wait_for(stuck.wait(), EVENT_TIMEOUT)
    started = asyncio.get_running_loop().time()
    await asyncio.wait_for(hub.drain(timeout=0.3), 10)
    assert asyncio.get_running_loop().time() - started < 5
    assert not hub._tasks  # the stuck task was cancelled (and forgotten once done)
    assert "server.tasks_abandoned count=1" in caplog.text
