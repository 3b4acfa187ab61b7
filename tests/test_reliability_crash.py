"""Crash durability: `cim serve` killed with SIGKILL under load loses no acknowledged message and stores none twice."""

from __future__ import annotations

import asyncio
import os
import random
from dataclasses import dataclass, field
from typing import Any

import pytest
import socketio

from tests.fixtures.reliability import ServeProcess, cim, read_messages, size

NS = "/resident"
RESIDENTS = size(20, 100, "CIM_CRASH_RESIDENTS")
ROUNDS = size(3, 10, "CIM_CRASH_ROUNDS")
ACK_WAIT = 30.0


@dataclass
class CrashResident:
    """One resident across server lives: its chat, its token and what the server acknowledged."""

    index: int
    chat_id: int | None = None
    token: str | None = None
    sent: int = 0
    acked: dict[str, int] = field(default_factory=dict)  # client_msg_id → seq from the ack
    texts: dict[str, str] = field(default_factory=dict)  # client_msg_id → text
    unacked: list[str] = field(default_factory=list)  # sent, no ack seen (yet)
    client: socketio.AsyncClient | None = None
    gone: asyncio.Event = field(default_factory=asyncio.Event)
    history: Any = None

    async def connect(self, url: str) -> None:
        self.gone = asyncio.Event()
        client = socketio.AsyncClient(reconnection=False)
        got_history: asyncio.Future = asyncio.get_running_loop().create_future()
        got_notice: asyncio.Future = asyncio.get_running_loop().create_future()
        refused: list[Any] = []

        @client.on("history", namespace=NS)
        async def _history(data: Any) -> None:
            if not got_history.done():
                got_history.set_result(data)

        @client.on("notice", namespace=NS)
        async def _notice(data: Any) -> None:
            if not got_notice.done():
                got_notice.set_result(data)

        @client.on("disconnect", namespace=NS)
        async def _gone(*_: Any) -> None:
            self.gone.set()

        client.on("connect_error", lambda *a: refused.append(a), namespace=NS)
        auth = {"lang": "pl", **({"resume": self.token} if self.token else {})}
        try:
            await client.connect(url, namespaces=[NS], auth=auth, transports=["websocket"], wait_timeout=ACK_WAIT)
        except socketio.exceptions.ConnectionError:
            await client.disconnect()
            raise AssertionError(f"resident {self.index} could not (re)connect: {refused}") from None
        self.client = client
        if self.token is None:
            notice = await asyncio.wait_for(got_notice, ACK_WAIT)
            from tests.fixtures.chat import notice_acceptance

            payload = await notice_acceptance(
                lambda e, p: client.call(e, p, namespace=NS, timeout=ACK_WAIT), notice["notice_id"]
            )
            ack = await client.call("accept_notice", payload, namespace=NS, timeout=ACK_WAIT)
            assert ack["ok"], ack
            self.chat_id, self.token = ack["chat_id"], ack["resume_token"]
        else:
            # resuming must work after every crash: the transcript comes back on the same chat
            self.history = await asyncio.wait_for(got_history, ACK_WAIT)

    async def send(self, msg_id: str) -> bool:
        """Send one message and wait for its ack or the end of the connection; True when acked."""
        assert self.client is not None
        text = self.texts.setdefault(msg_id, f"wiadomość {msg_id} ąęł {random.random()}")
        if msg_id not in self.unacked:
            self.unacked.append(msg_id)
        loop = asyncio.get_running_loop()
        reply: asyncio.Future = loop.create_future()
        try:
            await self.client.emit(
                "send",
                {"text": text, "client_msg_id": msg_id},
                namespace=NS,
                callback=lambda ack=None, *_: reply.done() or reply.set_result(ack),
            )
        except socketio.exceptions.SocketIOError:
            return False
        gone = loop.create_task(self.gone.wait())
        try:
            await asyncio.wait({reply, gone}, timeout=ACK_WAIT, return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
        if not reply.done():
            return False
        ack = reply.result()
        assert isinstance(ack, dict) and ack.get("ok"), f"resident {self.index} {msg_id}: {ack}"
        seq = ack["seq"]
        # a re-sent message must come back with the seq of its first (possibly unacknowledged) storing
        assert self.acked.setdefault(msg_id, seq) == seq, (msg_id, self.acked[msg_id], seq)
        self.unacked.remove(msg_id)
        return True

    async def chatter(self, stop: asyncio.Event) -> None:
        """Re-send what was not acknowledged, then keep writing new messages until the server dies."""
        for msg_id in list(self.unacked):
            if not await self.send(msg_id):
                return
        while not stop.is_set() and not self.gone.is_set():
            self.sent += 1
            if not await self.send(f"r{self.index}-m{self.sent}"):
                return

    async def drop(self) -> None:
        if self.client is not None:
            await self.client.disconnect()
            self.client = None


async def _round(server: ServeProcess, residents: list[CrashResident], rng: random.Random, *, kill: bool) -> None:
    url = await asyncio.to_thread(server.start)
    await asyncio.gather(*(r.connect(url) for r in residents))
    stop = asyncio.Event()
    talk = [asyncio.create_task(r.chatter(stop)) for r in residents]
    if kill:
        await asyncio.sleep(rng.uniform(0.3, 1.5))  # a random moment in the middle of the traffic
        await asyncio.to_thread(server.kill)
    else:
        await asyncio.sleep(0.5)
        stop.set()
    await asyncio.gather(*talk)
    for r in residents:
        await r.drop()
    if not kill:
        assert await asyncio.to_thread(server.stop) == 0, server.log()[-2000:]


@pytest.mark.ordinance("§1.3", "GDPR 32")
async def test_acknowledged_messages_survive_sigkill_exactly_once(serve_process) -> None:
    seed = int(os.environ.get("CIM_CRASH_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    print(f"crash test: {RESIDENTS} residents x {ROUNDS} kills, seed {seed}")
    server = serve_process()
    residents = [CrashResident(i) for i in range(RESIDENTS)]
    for _ in range(ROUNDS):
        await _round(server, residents, rng, kill=True)
        assert server.proc.returncode == -9
    # the last life: everyone resumes, re-sends what is still unacknowledged, then a clean stop
    acked_before = {r.index: set(r.acked) for r in residents}
    await _round(server, residents, rng, kill=False)

    assert all(not r.unacked for r in residents), [r.unacked for r in residents if r.unacked]
    total_acked = sum(len(r.acked) for r in residents)
    print(f"crash test: {total_acked} messages acknowledged over {server.starts} server lives")
    assert total_acked > RESIDENTS * (ROUNDS + 1), "too little traffic for the test to mean anything"

    rows = await read_messages(server.data_dir)  # the lines are sealed at rest; opened through the store
    by_chat: dict[int, list[Any]] = {}
    for row in rows:
        by_chat.setdefault(row["conversation_id"], []).append(row)
    for r in residents:
        stored = by_chat[r.chat_id]
        assert [m["seq"] for m in stored] == list(range(1, len(stored) + 1)), f"gap in chat {r.chat_id}"
        mine = [m for m in stored if m["sender"] == "resident"]
        ids = [m["client_msg_id"] for m in mine]
        assert len(ids) == len(set(ids)), f"a message stored twice in chat {r.chat_id}"
        stored_by_id = {m["client_msg_id"]: m for m in mine}
        for msg_id, seq in r.acked.items():
            assert msg_id in stored_by_id, f"acknowledged {msg_id} lost"
            assert stored_by_id[msg_id]["seq"] == seq
            assert stored_by_id[msg_id]["text"] == r.texts[msg_id]
        # nothing stored that the resident did not eventually get acknowledged (re-sends converge)
        assert set(stored_by_id) == set(r.acked)
        # the transcript sent on the last resume held everything acknowledged before it
        resumed = {m["text"] for m in r.history["messages"]}
        assert {r.texts[i] for i in acked_before[r.index]} <= resumed
    verify = await asyncio.to_thread(cim, server.data_dir, "audit", "verify", "--json")
    assert verify.returncode == 0, verify.stdout + verify.stderr
