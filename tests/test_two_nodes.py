"""Two chat server nodes (issue 21): one SQLite data directory, one real Redis carrying the Socket.IO events
between them (CIM_REDIS_URL, python-socketio's AsyncRedisManager) and the shared presence (webchat/presence.py
`RedisPresence`).

Each node is the real `create_app` on its own loopback port with its own `Store` (its own SQLite
connections, as a second `cim serve` process has), both on the same database file in WAL mode; where a node
must die without a word, it is a real `cim serve` process killed with SIGKILL. What does not work across
nodes yet is listed in docs/DEPLOY.md, "Two or more nodes (in progress)".
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, AsyncIterator

import pytest

from store import Store
from store.models import Actor
from store.settings import Settings
from tests.fixtures.chat import ChatClient, ChatServer, Resident, connect_client, start_chat_server
from tests.fixtures.store import PASSWORD

REPO = Path(__file__).resolve().parents[1]


@dataclass
class Nodes:
    a: ChatServer
    b: ChatServer

    async def resident(self, node: ChatServer, lang: str = "pl") -> Resident:
        client = await connect_client(node.url, "/resident", {"lang": lang}, cls=Resident)
        self._clients.append(client)
        return client  # type: ignore[return-value]

    async def consultant(self, node: ChatServer, staff: Any) -> ChatClient:
        session = await node.store.accounts.login(staff.name, PASSWORD)
        client = await connect_client(node.url, "/staff", {"token": session.token})
        client.staff = staff  # type: ignore[attr-defined]
        self._clients.append(client)
        return client

    def __post_init__(self) -> None:
        self._clients: list[ChatClient] = []

    async def close_clients(self) -> None:
        for client in self._clients:
            await client.disconnect()


@asynccontextmanager
async def two_nodes(settings: Settings, store: Store, clock: Any) -> AsyncIterator[Nodes]:
    """Node A on the test's store, node B on a second Store of the same data directory; both on one Redis."""
    store_b = await Store.open(settings, clock=clock)
    a, runner_a = await start_chat_server(settings, store)
    try:
        b, runner_b = await start_chat_server(settings, store_b)
        try:
            nodes = Nodes(a, b)
            try:
                yield nodes
            finally:
                await nodes.close_clients()
        finally:
            await runner_b.cleanup()
    finally:
        await runner_a.cleanup()
        await store_b.close()


@pytest.fixture
def node_settings(chat_settings: Settings, redis_url: str) -> Settings:
    return chat_settings.with_(redis_url=redis_url)


@pytest.fixture
async def nodes(node_settings: Settings, store: Store, clock: Any) -> AsyncIterator[Nodes]:
    async with two_nodes(node_settings, store, clock) as n:
        yield n


def texts(history: list[Any], sender: str) -> list[str]:
    return [m.text for m in history if m.sender == sender]


async def test_a_resident_on_node_a_and_a_consultant_on_node_b_talk_both_ways(
    nodes: Nodes, make_staff, store: Store
) -> None:
    anna = await nodes.consultant(nodes.b, await make_staff("anna", "consultant"))
    resident = await nodes.resident(nodes.a)
    await resident.start()  # the chat is queued through node A

    # the queue broadcast of node A reaches the consultant's socket on node B
    await anna.wait_for("queue", lambda q: resident.chat_id in [c["chat_id"] for c in q["chats"]])
    ack = await anna.call("accept", {"chat_id": resident.chat_id})
    assert ack["ok"], ack
    # node B's accept reaches the resident's socket on node A
    await resident.wait_for("state", lambda s: s["status"] == "active")
    await resident.wait_for("message", lambda m: m.get("event") == "accepted")

    for n in range(3):
        sent = await resident.send(f"pytanie {n}", client_msg_id=f"r-{n}")
        assert sent["ok"], sent
        line = await anna.wait_for("message", lambda m, n=n: m.get("text") == f"pytanie {n}")
        assert line["chat_id"] == resident.chat_id and line["seq"] == sent["seq"]
        answer = await anna.call(
            "send", {"chat_id": resident.chat_id, "text": f"odpowiedź {n}", "client_msg_id": f"c-{n}"}
        )
        assert answer["ok"], answer
        got = await resident.wait_for("message", lambda m, n=n: m.get("text") == f"odpowiedź {n}")
        assert got["seq"] == answer["seq"] and got["from"] == "consultant"

    # a retried send (the same client_msg_id, e.g. after a reconnect) is acked with the same line, stored once
    again = await resident.send("pytanie 0", client_msg_id="r-0")
    assert again["ok"]
    assert (await anna.call("send", {"chat_id": resident.chat_id, "text": "odpowiedź 0", "client_msg_id": "c-0"}))["ok"]

    # typing hints cross the nodes too
    assert (await resident.call("typing", {"active": True}))["ok"]
    await anna.wait_for("typing", lambda t: t == {"chat_id": resident.chat_id, "active": True})

    # the consultant closes on node B; the resident on node A sees it closed
    closed = await anna.call("close", {"chat_id": resident.chat_id, "category": "information_given"})
    assert closed["ok"], closed
    await resident.wait_for("state", lambda s: s["status"] == "closed")

    # every acked message is stored exactly once, read through either node's store
    for node in (nodes.a, nodes.b):
        history = await node.store.chats.history(resident.chat_id)
        assert texts(history, "resident") == ["pytanie 0", "pytanie 1", "pytanie 2"]
        assert texts(history, "consultant") == ["odpowiedź 0", "odpowiedź 1", "odpowiedź 2"]
        assert [m.seq for m in history] == sorted({m.seq for m in history})
    # and the resident and the consultant each got every line of the other once
    assert [m["text"] for m in resident.of("message") if m["from"] == "consultant"] == [
        "odpowiedź 0",
        "odpowiedź 1",
        "odpowiedź 2",
    ]
    assert [m["text"] for m in anna.of("message") if m["from"] == "resident"] == ["pytanie 0", "pytanie 1", "pytanie 2"]
    assert (await store.chats.get(resident.chat_id)).status == "closed"


async def accepted_chat(nodes: Nodes, consultant: ChatClient, resident_node: ChatServer) -> Resident:
    resident = await nodes.resident(resident_node)
    await resident.start()
    await consultant.wait_for("queue", lambda q: resident.chat_id in [c["chat_id"] for c in q["chats"]])
    assert (await consultant.call("accept", {"chat_id": resident.chat_id}))["ok"]
    await resident.wait_for("state", lambda s: s["status"] == "active")
    return resident


async def test_queue_positions_reach_residents_on_either_node(nodes: Nodes, make_staff) -> None:
    anna = await nodes.consultant(nodes.b, await make_staff("anna", "consultant"))
    first, second = await nodes.resident(nodes.a), await nodes.resident(nodes.b)
    await first.start()
    await second.start()
    await second.wait_for("state", lambda s: s.get("position") == 2)
    assert (await anna.call("accept", {"chat_id": first.chat_id}))["ok"]  # on node B: the queue moves
    await second.wait_for("state", lambda s: s.get("position") == 1)
    await first.wait_for("state", lambda s: s["status"] == "active")


async def test_a_session_ended_through_one_node_ends_the_socket_on_the_other(nodes: Nodes, make_staff) -> None:
    staff = await make_staff("anna", "consultant")
    session = await nodes.a.store.accounts.login(staff.name, PASSWORD)
    anna = await connect_client(nodes.b.url, "/staff", {"token": session.token})
    nodes._clients.append(anna)
    await nodes.a.store.accounts.logout(session.token)  # node A's store: node B hears of it by its sweep
    ended = await anna.wait_for("session_ended")
    assert ended["code"] == "signed_out"
    await anna.wait_for("disconnect")


async def test_auto_assignment_gives_a_chat_queued_on_one_node_to_a_consultant_on_the_other(
    node_settings: Settings, store: Store, clock: Any, make_staff
) -> None:
    async with two_nodes(node_settings.with_(chat_assignment="auto"), store, clock) as nodes:
        anna = await nodes.consultant(nodes.b, await make_staff("anna", "consultant"))
        resident = await nodes.resident(nodes.a)
        await resident.start()
        assigned = await anna.wait_for("assigned", lambda a: a["chat_id"] == resident.chat_id)
        assert assigned["auto"] is True
        await resident.wait_for("state", lambda s: s["status"] == "active")
        assert (await store.chats.get(resident.chat_id)).consultant_id == anna.staff.id


def _start_node(
    data_dir: Path, redis_url: str, log: Path, extra_env: dict[str, str] | None = None
) -> tuple[subprocess.Popen, str]:
    """`cim serve --port 0` as a real process on `data_dir` with CIM_REDIS_URL; its log goes to a file."""
    env = {
        **os.environ,
        "CIM_DATA_DIR": str(data_dir),
        "CIM_OPENING_HOURS": "always",
        "CIM_REDIS_URL": redis_url,
        "CIM_PASSWORD_PROFILE": "fast",
        "CIM_PURGE_DAILY_AT": "off",
        **(extra_env or {}),
    }
    with open(log, "a", encoding="utf-8") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cim", "serve", "--port", "0"],
            cwd=REPO,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=sink,
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        urls = re.findall(r"serve\.listening url=(\S+)", log.read_text(encoding="utf-8"))
        if proc.poll() is not None:
            raise AssertionError(f"cim serve exited with {proc.returncode}: {log.read_text(encoding='utf-8')}")
        if urls:
            return proc, urls[-1]
        time.sleep(0.05)
    proc.kill()
    raise AssertionError("cim serve did not start listening within 60 s")


async def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.to_thread(proc.wait, 20)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise


async def test_two_cim_serve_processes_on_one_data_directory_and_one_redis(tmp_path: Path, redis_url: str) -> None:
    data_dir = tmp_path / "served"
    init = subprocess.run(
        [sys.executable, "-m", "cim", "init", "--data-dir", str(data_dir)],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, "CIM_PASSWORD_PROFILE": "fast"},
    )
    assert init.returncode == 0, init.stderr
    settings = Settings.load(data_dir, env={}, password_profile="fast")
    admin = await Store.open(settings)  # a third process-like reader and writer: creates the consultant
    procs: list[subprocess.Popen] = []
    clients: list[ChatClient] = []
    try:
        await admin.accounts.add_staff(Actor.system("test"), "anna", ("consultant",), PASSWORD)
        token = (await admin.accounts.login("anna", PASSWORD)).token
        for name in ("a", "b"):
            proc, url = await asyncio.to_thread(_start_node, data_dir, redis_url, tmp_path / f"node-{name}.log")
            procs.append(proc)
            clients.append(
                await connect_client(
                    url,
                    "/resident" if name == "a" else "/staff",
                    {"lang": "pl"} if name == "a" else {"token": token},
                    cls=Resident if name == "a" else ChatClient,
                )
            )
        resident, anna = clients
        await resident.start()
        await anna.wait_for("queue", lambda q: resident.chat_id in [c["chat_id"] for c in q["chats"]])
        assert (await anna.call("accept", {"chat_id": resident.chat_id}))["ok"]
        await resident.wait_for("state", lambda s: s["status"] == "active")
        asked = [await resident.send(f"pytanie {i}", f"r{i}") for i in range(10)]
        answered = [
            await anna.call("send", {"chat_id": resident.chat_id, "text": f"odpowiedź {i}", "client_msg_id": f"c{i}"})
            for i in range(10)
        ]
        assert all(a["ok"] for a in asked + answered)
        await anna.wait_for("message", lambda m: m.get("text") == "pytanie 9")
        await resident.wait_for("message", lambda m: m.get("text") == "odpowiedź 9")
        history = await admin.chats.history(resident.chat_id)
        assert texts(history, "resident") == [f"pytanie {i}" for i in range(10)]
        assert texts(history, "consultant") == [f"odpowiedź {i}" for i in range(10)]
        assert [m["text"] for m in anna.of("message") if m["from"] == "resident"] == [f"pytanie {i}" for i in range(10)]
        assert [m["text"] for m in resident.of("message") if m["from"] == "consultant"] == [
            f"odpowiedź {i}" for i in range(10)
        ]
    finally:
        for client in clients:
            await client.disconnect()
        for proc in procs:
            await _stop(proc)
        await admin.close()
    assert [p.returncode for p in procs] == [0, 0]
    for name in ("a", "b"):
        logged = (tmp_path / f"node-{name}.log").read_text(encoding="utf-8")
        assert "server.redis url=redis://127.0.0.1:" in logged and "Traceback" not in logged


# ------------------------------------------------------------------ presence shared through Redis
# These were the gaps of docs/DEPLOY.md "Two or more nodes" item 1-3 (presence per node), closed by RedisPresence.


async def test_a_resident_on_one_node_is_told_a_consultant_on_the_other_is_available(nodes: Nodes, make_staff) -> None:
    await nodes.consultant(nodes.b, await make_staff("anna", "consultant"))
    resident = await nodes.resident(nodes.a)
    notice = await resident.wait_for("notice")
    assert notice["consultants_available"] is True


async def test_the_presence_list_names_consultants_of_both_nodes(nodes: Nodes, make_staff) -> None:
    anna = await nodes.consultant(nodes.b, await make_staff("anna", "consultant"))
    bob = await nodes.consultant(nodes.a, await make_staff("bob", "consultant"))
    both = {anna.staff.id, bob.staff.id}
    await bob.wait_for("presence", lambda p: {c["staff_id"] for c in p["consultants"]} == both, timeout=3)


async def test_a_chat_is_transferred_to_a_colleague_on_the_other_node(nodes: Nodes, make_staff) -> None:
    anna = await nodes.consultant(nodes.b, await make_staff("anna", "consultant"))
    bob = await nodes.consultant(nodes.a, await make_staff("bob", "consultant"))
    resident = await accepted_chat(nodes, anna, nodes.a)
    moved = await anna.call("transfer", {"chat_id": resident.chat_id, "to_staff_id": bob.staff.id})
    assert moved["ok"], moved
    await bob.wait_for("assigned", lambda a: a["chat_id"] == resident.chat_id)  # through node A's socket
    assert (await nodes.a.store.chats.get(resident.chat_id)).consultant_id == bob.staff.id


async def test_a_transfer_to_a_colleague_whose_session_ended_on_the_other_node_is_refused(
    nodes: Nodes, make_staff
) -> None:
    anna = await nodes.consultant(nodes.b, await make_staff("anna", "consultant"))
    bob_staff = await make_staff("bob", "consultant")
    session = await nodes.a.store.accounts.login(bob_staff.name, PASSWORD)
    bob = await connect_client(nodes.a.url, "/staff", {"token": session.token})
    nodes._clients.append(bob)
    resident = await accepted_chat(nodes, anna, nodes.a)
    await anna.wait_for("presence", lambda p: bob_staff.id in {c["staff_id"] for c in p["consultants"]})
    # bob's session ends in the store; node B still lists him until node A's sweep ends his socket, but a
    # transfer checks the session itself
    await nodes.b.store.accounts.logout(session.token)
    moved = await anna.call("transfer", {"chat_id": resident.chat_id, "to_staff_id": bob_staff.id})
    assert moved["ok"] is False and moved["error"]["code"] == "not_online", moved
    assert (await nodes.a.store.chats.get(resident.chat_id)).consultant_id == anna.staff.id


async def test_an_availability_set_on_one_node_is_seen_on_the_other(nodes: Nodes, make_staff) -> None:
    anna = await nodes.consultant(nodes.b, await make_staff("anna", "consultant"))
    bob = await nodes.consultant(nodes.a, await make_staff("bob", "consultant"))

    def anna_is(status: str):
        return lambda p: {c["staff_id"]: c["status"] for c in p["consultants"]}.get(anna.staff.id) == status

    await bob.wait_for("presence", anna_is("available"), timeout=3)
    assert (await anna.call("availability", {"status": "away"}))["ok"]
    await bob.wait_for("presence", anna_is("away"), timeout=3)
    # and a resident on node A, where nobody else is free, is told nobody is available
    assert (await bob.call("availability", {"status": "away"}))["ok"]
    await asyncio.sleep(1.1)  # the answer is cached for a second
    resident = await nodes.resident(nodes.a)
    assert (await resident.wait_for("notice"))["consultants_available"] is False


async def test_a_consultant_who_moves_to_the_other_node_keeps_their_chats(nodes: Nodes, make_staff, clock: Any) -> None:
    staff = await make_staff("anna", "consultant")
    anna = await nodes.consultant(nodes.b, staff)
    resident = await accepted_chat(nodes, anna, nodes.a)
    await anna.disconnect()  # node B goes away for anna (a restart, a proxy sending her elsewhere) ...
    await nodes.consultant(nodes.a, staff)  # ... and she is back at once, on node A
    clock.advance(seconds=nodes.a.settings.staff_reconnect_grace_seconds + 1)
    await asyncio.sleep(2.5)  # two routing ticks of each node
    chat = await nodes.a.store.chats.get(resident.chat_id)
    assert (chat.status, chat.consultant_id) == ("active", staff.id)


async def test_a_node_starting_later_leaves_the_other_nodes_chats_alone(
    node_settings: Settings, store: Store, clock: Any, make_staff
) -> None:
    store_b = await Store.open(node_settings, clock=clock)
    b, runner_b = await start_chat_server(node_settings, store_b)
    nodes = Nodes(b, b)
    try:
        anna = await nodes.consultant(b, await make_staff("anna", "consultant"))
        resident = await accepted_chat(nodes, anna, b)
        a, runner_a = await start_chat_server(node_settings, store)  # node A joins while anna holds a chat
        try:
            await asyncio.sleep(1.5)  # node A's routing starts at its first tick
            clock.advance(seconds=node_settings.staff_reconnect_grace_seconds + 1)
            await asyncio.sleep(2.5)
            chat = await store.chats.get(resident.chat_id)
            assert (chat.status, chat.consultant_id) == ("active", anna.staff.id)
        finally:
            await runner_a.cleanup()
    finally:
        await nodes.close_clients()
        await runner_b.cleanup()
        await store_b.close()


async def _until(condition: Any, timeout: float, what: str) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        await asyncio.sleep(0.05)


async def test_a_node_killed_without_a_word_loses_its_consultants_and_their_chats_go_back_to_the_queue(
    node_settings: Settings, store: Store, clock: Any, make_staff, tmp_path: Path, redis_url: str
) -> None:
    """Node B is a real `cim serve` killed with SIGKILL while anna holds a chat through it: its presence hash
    expires three heartbeats later, node A stops listing her, and after the grace period her chat is queued."""
    from webchat.app import HUB

    settings = node_settings.with_(presence_heartbeat_seconds=1)
    clock.now = datetime.now(timezone.utc)  # node B runs on the real clock: anna's session must be live there
    anna_staff = await make_staff("anna", "consultant")
    a, runner_a = await start_chat_server(settings, store)
    nodes = Nodes(a, a)
    proc, url_b = await asyncio.to_thread(
        _start_node, settings.data_dir, redis_url, tmp_path / "node-b.log", {"CIM_PRESENCE_HEARTBEAT_SECONDS": "1"}
    )
    try:
        presence_a = a.app[HUB].presence
        bob = await nodes.consultant(a, await make_staff("bob", "consultant"))
        token = (await store.accounts.login(anna_staff.name, PASSWORD)).token
        anna = await connect_client(url_b, "/staff", {"token": token})
        nodes._clients.append(anna)
        resident = await accepted_chat(nodes, anna, a)
        await bob.wait_for("presence", lambda p: anna_staff.id in {c["staff_id"] for c in p["consultants"]})
        started = time.monotonic()
        proc.kill()  # SIGKILL: no withdrawal, no disconnect handling on node B
        await asyncio.to_thread(proc.wait, 10)
        await _until(lambda: not presence_a.is_online(anna_staff.id), 6, "node A stops listing anna")
        vanished_after = time.monotonic() - started
        assert 1.5 < vanished_after < 5.5, vanished_after  # three heartbeats of 1 s, give or take one
        await bob.wait_for("presence", lambda p: {c["staff_id"] for c in p["consultants"]} == {bob.staff.id})
        assert (await store.chats.get(resident.chat_id)).status == "active"  # within the grace period still
        seen = len(resident.log.events), len(bob.log.events)
        clock.advance(seconds=settings.staff_reconnect_grace_seconds + 1)
        await resident.wait_for("state", lambda s: s["status"] == "queued", timeout=5, after=seen[0])  # A's next tick
        chat = await store.chats.get(resident.chat_id)
        assert (chat.status, chat.consultant_id) == ("queued", None)
        await bob.wait_for("queue", lambda q: resident.chat_id in [c["chat_id"] for c in q["chats"]], after=seen[1])
    finally:
        await nodes.close_clients()
        if proc.poll() is None:
            proc.kill()
        await runner_a.cleanup()


async def test_a_node_that_stops_withdraws_its_consultants_at_once(
    node_settings: Settings, store: Store, clock: Any, make_staff
) -> None:
    """A clean stop (SIGTERM, a restart) takes the node's consultants out of the shared view without waiting for
    the expiry, and leaves nothing of it in Redis."""
    from webchat.app import HUB

    store_b = await Store.open(node_settings, clock=clock)
    a, runner_a = await start_chat_server(node_settings, store)
    b, runner_b = await start_chat_server(node_settings, store_b)
    nodes = Nodes(a, b)
    try:
        presence_a, presence_b = a.app[HUB].presence, b.app[HUB].presence
        anna = await nodes.consultant(b, await make_staff("anna", "consultant"))
        await _until(lambda: presence_a.is_online(anna.staff.id), 3, "node A lists anna")
        key_b = presence_b.key
        await anna.disconnect()
        await runner_b.cleanup()
        await _until(lambda: not presence_a.is_online(anna.staff.id), 1, "node A stops listing anna at once")
        assert not await presence_a._redis.exists(key_b)
        assert presence_b.node_id not in {
            n.decode() for n in await presence_a._redis.zrange(presence_a.nodes_key, 0, -1)
        }
    finally:
        await nodes.close_clients()
        await runner_a.cleanup()
        await runner_b.cleanup()
        await store_b.close()


async def test_another_deployment_on_the_same_redis_sees_none_of_these_consultants(
    node_settings: Settings, store: Store, clock: Any, make_staff, tmp_path: Path
) -> None:
    from webchat.app import HUB

    other_settings = Settings.load(
        tmp_path / "other", env={}, password_profile="fast", opening_hours="always", redis_url=node_settings.redis_url
    )
    other_store = await Store.open(other_settings, create=True, clock=clock)
    a, runner_a = await start_chat_server(node_settings, store)
    other, runner_other = await start_chat_server(other_settings, other_store)
    nodes = Nodes(a, a)
    try:
        anna = await nodes.consultant(a, await make_staff("anna", "consultant"))
        await other.app[HUB].presence.refresh()
        assert other.app[HUB].presence.connected() == {}
        assert a.app[HUB].presence.connected() == {anna.staff.id: "anna"}
    finally:
        await nodes.close_clients()
        await runner_a.cleanup()
        await runner_other.cleanup()
        await other_store.close()


# ------------------------------------------------------------------ kill -9 while residents write (issue 21)

#: Limits high enough for 20 residents writing at once from one loopback address (the defaults protect a
#: real desk from one address; here every resident is 127.0.0.1).
FLOOD_LIMITS = {
    "resident_rate_limit": "1000/10",
    "resident_address_rate_limit": "10000/10",
    "chat_open_address_rate_limit": "1000/600",
    "max_queued_chats_per_address": "1000",
    "max_connections_per_address": "1000",
}
RESIDENTS = 20
#: Sends each resident keeps in flight at once (the widget's outbox may hold several).
IN_FLIGHT = 3
#: Node A is killed once this many sends have been acked (about 5 per resident).
KILL_AFTER_ACKS = 100


@dataclass
class Writer:
    """One resident's side of the stream: what node A acked and what it never answered (its outbox)."""

    number: int
    client: Resident
    acked: dict[str, int]  # client_msg_id → seq
    outbox: dict[str, str]  # client_msg_id → text, sent but not acked

    def text(self, client_msg_id: str) -> str:
        return f"wiadomość {client_msg_id}"


async def _resident_on(url: str, auth: dict[str, Any]) -> Resident:
    client = await connect_client(url, "/resident", auth, cls=Resident)
    assert isinstance(client, Resident)
    return client


def _chat_of(client: Resident) -> int:
    assert client.chat_id is not None
    return client.chat_id


async def _send_or_drop(client: Resident, text: str, client_msg_id: str) -> dict | None:
    """The ack of a send, or None when the socket drops first (the widget keeps the message in its outbox)."""
    dropped = asyncio.ensure_future(client.wait_for("disconnect", timeout=60))
    sent = asyncio.ensure_future(client.send(text, client_msg_id))
    try:
        await asyncio.wait({dropped, sent}, return_when=asyncio.FIRST_COMPLETED)
        if sent.done() and sent.exception() is None:
            return sent.result()
        return None
    finally:
        for task in (dropped, sent):
            if not task.done():
                task.cancel()
        await asyncio.gather(dropped, sent, return_exceptions=True)


async def _write_until_dropped(writer: Writer, stop: asyncio.Event) -> None:
    round_ = 0
    while not stop.is_set():
        ids = [f"{writer.number}-{round_ * IN_FLIGHT + k}" for k in range(IN_FLIGHT)]
        for client_msg_id in ids:
            writer.outbox[client_msg_id] = writer.text(client_msg_id)
        acks = await asyncio.gather(*(_send_or_drop(writer.client, writer.text(i), i) for i in ids))
        for client_msg_id, ack in zip(ids, acks):
            if ack is not None:
                assert ack["ok"], ack
                writer.acked[client_msg_id] = ack["seq"]
                del writer.outbox[client_msg_id]
        if any(ack is None for ack in acks) or not writer.client.client.connected:
            return
        round_ += 1


async def _stored_unacked(store: Store, writers: list[Writer]) -> int:
    """How many messages still in the residents' outboxes the store already holds."""
    count = 0
    for w in writers:
        stored = set(texts(await store.chats.history(_chat_of(w.client)), "resident"))
        count += sum(1 for text in w.outbox.values() if text in stored)
    return count


async def test_node_a_killed_while_20_residents_write_every_acked_message_is_stored_once_and_they_resume_on_b(
    node_settings: Settings, store: Store, clock: Any, make_staff, tmp_path: Path, redis_url: str
) -> None:
    """Node A is a real `cim serve` with 20 residents writing through it (several sends in flight each); it is
    killed with SIGKILL mid-stream. The residents resume on node B with their resume tokens and send their
    unacked messages again with the same client_msg_id, as the widget's outbox does: every acked message is
    stored exactly once, the resent ones once (also those node A stored but never acked), and every chat goes on
    on node B."""
    clock.now = datetime.now(timezone.utc)  # node A runs on the real clock
    settings = node_settings.with_(**FLOOD_LIMITS)
    env = {f"CIM_{name.upper()}": value for name, value in FLOOD_LIMITS.items()}
    proc, url_a = await asyncio.to_thread(_start_node, settings.data_dir, redis_url, tmp_path / "node-a.log", env)
    b, runner_b = await start_chat_server(settings, store)  # node B: in this process, on the same data directory
    clients: list[ChatClient] = []
    try:
        anna_staff = await make_staff("anna", "consultant")
        anna = await connect_client(
            b.url, "/staff", {"token": (await store.accounts.login(anna_staff.name, PASSWORD)).token}
        )
        clients.append(anna)
        writers = []
        for number in range(RESIDENTS):
            client = await _resident_on(url_a, {"lang": "pl"})
            clients.append(client)
            await client.start()
            writers.append(Writer(number, client, {}, {}))

        stop = asyncio.Event()
        streams = [asyncio.ensure_future(_write_until_dropped(w, stop)) for w in writers]
        await _until(lambda: sum(len(w.acked) for w in writers) >= KILL_AFTER_ACKS, 60, "node A acks the sends")
        # kill node A at a moment it has committed messages whose acks the residents have not got: frozen with
        # SIGSTOP, it sends nothing more; if nothing is stored-but-unacked then, it goes on a moment and is
        # frozen again
        stored_unacked = 0
        for _attempt in range(100):
            proc.send_signal(signal.SIGSTOP)
            await asyncio.sleep(0.2)  # acks already on the wire arrive
            stored_unacked = await _stored_unacked(store, writers)
            if stored_unacked:
                break
            proc.send_signal(signal.SIGCONT)
            await asyncio.sleep(0.05)
        proc.kill()  # SIGKILL mid-stream: the acks not sent are lost, no disconnect handling on node A
        killed_at = time.monotonic()
        await asyncio.to_thread(proc.wait, 10)
        stop.set()
        await asyncio.wait_for(asyncio.gather(*streams), 30)
        assert proc.returncode == -signal.SIGKILL
        assert stored_unacked > 0, "node A was never caught between a commit and its ack"
        acked_on_a = sum(len(w.acked) for w in writers)
        unacked = sum(len(w.outbox) for w in writers)
        stored_unacked = await _stored_unacked(store, writers)  # what the resend must not store a second time

        # each resident comes back on node B with its resume token, as the widget does
        resumed: list[float] = []

        async def resume(w: Writer) -> None:
            client = await _resident_on(b.url, {"lang": "pl", "resume": w.client.resume_token})
            clients.append(client)
            history = await client.wait_for("history")
            resumed.append(time.monotonic() - killed_at)
            assert history["state"]["status"] == "queued", history
            client.chat_id, client.resume_token = w.client.chat_id, w.client.resume_token
            seen = {m["text"] for m in history["messages"] if m["from"] == "resident"}
            assert {w.text(i) for i in w.acked} <= seen  # the resumed widget shows every acked message
            w.client = client

        await asyncio.gather(*(resume(w) for w in writers))  # all at once, as 20 widgets reconnect
        # ... sends its outbox again with the same ids, then writes on
        for w in writers:
            for client_msg_id, text in list(w.outbox.items()):
                ack = await w.client.send(text, client_msg_id)
                assert ack["ok"], ack
                w.acked[client_msg_id] = ack["seq"]
                del w.outbox[client_msg_id]
            after = f"{w.number}-after"
            ack = await w.client.send(w.text(after), after)
            assert ack["ok"], ack
            w.acked[after] = ack["seq"]

        stored_total = 0
        for w in writers:
            history = await store.chats.history(_chat_of(w.client))
            lines = {m.seq: m.text for m in history if m.sender == "resident"}
            stored_total += len(lines)
            # every acked message exactly once, under the seq its ack gave, and nothing else
            assert sorted(lines.values()) == sorted(w.text(i) for i in w.acked), w.number
            assert {seq: w.text(i) for i, seq in w.acked.items()} == lines, w.number
        assert stored_total == sum(len(w.acked) for w in writers)

        # the chats go on on node B: a consultant there takes one, and the resident on node B hears her
        first = writers[0].client
        await anna.wait_for("queue", lambda q: first.chat_id in [c["chat_id"] for c in q["chats"]])
        assert (await anna.call("accept", {"chat_id": first.chat_id}))["ok"]
        await first.wait_for("state", lambda s: s["status"] == "active")
        answer = await anna.call("send", {"chat_id": first.chat_id, "text": "dzień dobry", "client_msg_id": "c-1"})
        assert answer["ok"], answer
        await first.wait_for("message", lambda m: m.get("text") == "dzień dobry")
        print(
            f"\nkill -9 of node A: {RESIDENTS} residents, {acked_on_a} acked on A, {unacked} unacked at the kill "
            f"({stored_unacked} of them stored by A), {stored_total} stored in all; resumed on B "
            f"{min(resumed):.2f}-{max(resumed):.2f} s after the kill"
        )
    finally:
        for each in clients:
            await each.disconnect()
        if proc.poll() is None:
            proc.kill()
        await runner_b.cleanup()


# ------------------------------------------------------------------ the purge's leader dies mid-run


def _spawn_node(data_dir: Path, redis_url: str, log: Path, extra_env: dict[str, str]) -> subprocess.Popen:
    """`cim serve --port 0` on `data_dir` without waiting for it to listen (a node may freeze before it does)."""
    env = {
        **os.environ,
        "CIM_DATA_DIR": str(data_dir),
        "CIM_OPENING_HOURS": "always",
        "CIM_REDIS_URL": redis_url,
        "CIM_PASSWORD_PROFILE": "fast",
        **extra_env,
    }
    with open(log, "a", encoding="utf-8") as sink:
        return subprocess.Popen(
            [sys.executable, "-m", "cim", "serve", "--port", "0"],
            cwd=REPO,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=sink,
        )


async def _wait_for(what: str, check: Any, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"not within {seconds} s: {what}")


@pytest.mark.ordinance("§6")
async def test_the_purge_leader_killed_mid_run_and_the_other_node_finishes_the_purge(
    tmp_path: Path, redis_url: str
) -> None:
    """Node A holds the daily purge's lease and is frozen after its first committed batch, then SIGKILLed;
    node B takes the lease over when it expires, finds the run cut off, and purges what is left (§6)."""
    from store.retention import PAUSE_AFTER_COMMIT_ENV
    from tests.fixtures.retention import RetentionData

    data_dir = tmp_path / "served"
    env = {**os.environ, "CIM_DATA_DIR": str(data_dir), "CIM_PASSWORD_PROFILE": "fast"}
    assert subprocess.run([sys.executable, "-m", "cim", "init"], cwd=REPO, env=env, capture_output=True).returncode == 0
    settings = Settings.load(data_dir, env={}, password_profile="fast")
    seeder = await Store.open(settings)
    try:
        old = datetime(2025, 8, 31, 10, 0, tzinfo=timezone.utc)  # long past its six months
        maker = RetentionData(seeder)
        paths = [(await maker.call(old))[1] for _ in range(4)]
    finally:
        await seeder.close()
    # the daily hour a minute ago (office time): a run started since then and cut off is made up at a node's start
    zone = settings.timezone
    from zoneinfo import ZoneInfo

    hour = (datetime.now(ZoneInfo(zone)) - timedelta(minutes=1)).strftime("%H:%M")
    common = {
        "CIM_PURGE_DAILY_AT": hour,
        "CIM_LEADER_LEASE_SECONDS": "3",
        "CIM_PURGE_BATCH_SIZE": "1",
    }
    # the cut-off run that brings node A to purge at its start: an operator's `cim purge`, killed mid-run
    first = tmp_path / "first-paused"
    operator = subprocess.Popen(
        [sys.executable, "-m", "cim", "purge", "--json"],
        cwd=REPO,
        env={**env, **common, PAUSE_AFTER_COMMIT_ENV: str(first)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        await _wait_for("the operator's purge paused after its first commit", first.exists)
    finally:
        operator.send_signal(signal.SIGKILL)
        operator.wait()
    frozen = tmp_path / "node-a-paused"
    node_a = _spawn_node(data_dir, redis_url, tmp_path / "node-a.log", {**common, PAUSE_AFTER_COMMIT_ENV: str(frozen)})
    node_b: subprocess.Popen | None = None
    try:
        await _wait_for("node A's purge paused after its first commit", frozen.exists)
        left_after_a = sum(p.exists() for p in paths)
        node_b = _spawn_node(data_dir, redis_url, tmp_path / "node-b.log", common)
        log_b = tmp_path / "node-b.log"
        await _wait_for("node B listening", lambda: "serve.listening" in log_b.read_text(encoding="utf-8"))
        node_a.send_signal(signal.SIGKILL)  # dies holding the purge lock; its lease is not renewed
        node_a.wait()
        await _wait_for("node B's daily purge", lambda: "daily purge: {" in log_b.read_text(encoding="utf-8"), 90)
    finally:
        if node_a.poll() is None:
            node_a.kill()
            node_a.wait()
        if node_b is not None:
            await _stop(node_b)
    logged = log_b.read_text(encoding="utf-8")
    assert "did not finish; running it now" in logged and "Traceback" not in logged, logged
    assert left_after_a >= 1 and not any(p.exists() for p in paths)
    check = await Store.open(settings)
    try:
        runs = await check.db.fetchall("SELECT started_by, status FROM purge_runs WHERE dry_run = 0 ORDER BY id")
        assert [r["status"] for r in runs] == ["failed", "failed", "finished"]  # the two cut off, then B's
        assert runs[0]["started_by"].startswith("system:purge:")  # the operator's `cim purge` (its OS user)
        assert [r["started_by"] for r in runs[1:]] == ["system:daily-purge"] * 2
        assert (await check.db.fetchone("SELECT count(*) AS n FROM conversations"))["n"] == 0
    finally:
        await check.close()
    fsck = subprocess.run([sys.executable, "-m", "cim", "fsck", "--json"], cwd=REPO, env=env, capture_output=True)
    assert fsck.returncode == 0, fsck.stdout
    verify = subprocess.run(
        [sys.executable, "-m", "cim", "audit", "verify", "--json"], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert json.loads(verify.stdout)["ok"], verify.stdout
