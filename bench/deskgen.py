"""The chat desk's load (benchmark 8, bench/desk.py), run inside `python -m bench.loadgen desk`.

N residents open chats; C consultants each hold as many as their capacity allows (the rest wait in the
queue). In `pick` mode the consultants accept from the queue themselves; in `auto` mode the server gives
them chats (CIM_CHAT_ASSIGNMENT=auto). During each measurement window messages go at a fixed rate to the
residents in chats (latency measured at the consultant), while consultants close chats at `churn` per
second: the resident opens a new chat at the back of the queue and the freed seat is filled from the
front (by the consultant's `accept` in pick mode, by the server in auto mode).
"""

from __future__ import annotations

import asyncio
import collections
import json
import random
import sys
from typing import Any

from bench.loadgen import Harness, Resident, _read_word, _ready
from bench.wire import WireClient


class DeskHarness(Harness):
    def __init__(self, url: str, tokens: list[str], mode: str) -> None:
        super().__init__(url, tokens)
        self.mode = mode
        self.by_chat: dict[int, Resident] = {}
        self.holder: dict[int, int] = {}  # active chat → consultant index
        self.active: list[int] = []  # chat ids in chats with a consultant
        self.waiting: collections.deque[int] = collections.deque()  # queued chat ids, oldest first (pick mode)
        self.assigned = asyncio.Event()
        self.reassigned = 0
        self.key_chat: dict[str, int] = {}
        self.notice_id: int | None = None

    async def connect_consultants(self) -> None:
        assert self.session is not None
        for index, token in enumerate(self.tokens):
            client = WireClient(self.session, self.url, "/staff", self._staff_handler(index))
            await client.connect({"token": token})
            self.consultants.append(client)

    def _staff_handler(self, index: int):
        def handle(event: str, payload: Any, now: float) -> None:
            if event == "assigned" and isinstance(payload, dict) and payload.get("auto"):
                self._take(int(payload["chat_id"]), index)
            else:
                self._on_staff(event, payload, now)

        return handle

    def _take(self, chat_id: int, index: int) -> None:
        if chat_id in self.holder:
            return
        self.holder[chat_id] = index
        self.active.append(chat_id)
        try:
            self.waiting.remove(chat_id)
        except ValueError:
            pass
        self.reassigned += 1
        self.assigned.set()

    async def open_one(self, resident: Resident | None = None) -> int:
        """A new chat (on a new resident socket, or again on `resident`'s after its chat closed)."""
        if resident is None:
            resident = await self.connect_resident(False)
            notice = await asyncio.wait_for(resident.notice, 30)
            self.notice_id = notice["notice_id"]
        ack = await resident.client.call("accept_notice", {"notice_id": self.notice_id})
        if not ack.get("ok"):
            raise RuntimeError(f"accept_notice refused: {ack}")
        resident.chat_id = ack["chat_id"]
        self.by_chat[resident.chat_id] = resident
        if resident.chat_id not in self.holder:  # auto mode may have given it out before this ack
            self.waiting.append(resident.chat_id)
        return resident.chat_id

    async def accept_next(self, index: int) -> bool:
        """Pick mode: consultant `index` accepts the longest-waiting chat (skipping any taken meanwhile)."""
        while self.waiting:
            chat_id = self.waiting.popleft()
            ack = await self.consultants[index].call("accept", {"chat_id": chat_id})
            if ack.get("ok"):
                self._take(chat_id, index)
                return True
            if ack.get("error", {}).get("code") == "at_capacity":
                self.waiting.appendleft(chat_id)
                return False
        return False

    async def close_one(self, rng: random.Random) -> None:
        if not self.active:
            return
        chat_id = self.active.pop(rng.randrange(len(self.active)))
        index = self.holder.pop(chat_id)
        resident = self.by_chat.pop(chat_id)
        for key in [k for k, c in self.key_chat.items() if c == chat_id]:  # in flight: not a loss
            self.sent_at.pop(key, None)
            self.key_chat.pop(key, None)
        ack = await self.consultants[index].call("close", {"chat_id": chat_id, "category": "information_given"})
        if not ack.get("ok"):
            self._error("close_" + ack.get("error", {}).get("code", "unknown"))
        await self.open_one(resident)  # the resident comes back: at the back of the queue
        if self.mode == "pick":
            await self.accept_next(index)


async def desk(args: dict[str, Any]) -> dict[str, Any]:
    mode, capacity = args["mode"], int(args["capacity"])
    async with DeskHarness(args["url"], args["tokens"], mode) as h:
        await h.connect_consultants()
        count, wave = int(args["residents"]), 50
        for i in range(0, count, wave):
            await asyncio.gather(*(h.open_one() for _ in range(min(wave, count - i))))
        seats = capacity * len(h.consultants)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 300
        if mode == "pick":
            for _ in range(capacity):
                for index in range(len(h.consultants)):
                    await h.accept_next(index)
        while len(h.active) < min(seats, count) and loop.time() < deadline:
            h.assigned.clear()
            try:
                await asyncio.wait_for(h.assigned.wait(), 5)
            except asyncio.TimeoutError:
                pass
        if len(h.active) < min(seats, count):
            raise RuntimeError(f"only {len(h.active)} of {seats} seats filled in {mode} mode")
        _ready(residents=len(h.residents), active=len(h.active), queued=len(h.waiting))
        windows = 0
        while windows < int(args.get("max_windows", 10)):
            if await _read_word(600) != "go":
                break
            windows += 1
            result = await _window(h, float(args["rate"]), float(args["churn"]), float(args["max_seconds"]), windows)
            sys.stdout.write(json.dumps(result) + "\n")
            sys.stdout.flush()
        return {"done": True, "windows": windows}


async def _window(h: DeskHarness, rate: float, churn: float, max_seconds: float, seed: int) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    h.latencies, h.received, h.errors, h.sent_at, h.timeline, h.key_chat = [], 0, {}, {}, [], {}
    h.reassigned = 0
    h.window_start = loop.time()
    stop = loop.create_task(_read_word(max_seconds))
    acks: list[float] = []
    pending: set[asyncio.Task] = set()
    rng = random.Random(seed)
    started = loop.time()
    n, closes = 0, 0
    limit = int(rate * max_seconds)

    async def one(r: Resident, key: str) -> None:
        latency = await h.send(r, key)
        if latency is not None:
            acks.append(latency)

    async def churner() -> None:
        nonlocal closes
        while not stop.done():
            await asyncio.sleep(1 / churn)
            if stop.done():
                return
            try:
                await h.close_one(rng)
                closes += 1
            except Exception as exc:  # noqa: BLE001 - counted, the window goes on
                h._error(type(exc).__name__)

    churning = loop.create_task(churner()) if churn > 0 else None
    while n < limit and not stop.done():
        delay = started + n / rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        chat_id = h.active[rng.randrange(len(h.active))] if h.active else None
        if chat_id is not None and chat_id in h.by_chat:
            key = f"w{seed}m{n}"
            h.key_chat[key] = chat_id
            task = loop.create_task(one(h.by_chat[chat_id], key))
            pending.add(task)
            task.add_done_callback(pending.discard)
        n += 1
    elapsed = loop.time() - started
    if churning is not None:
        churning.cancel()
        await asyncio.gather(churning, return_exceptions=True)
    if pending:
        await asyncio.wait(pending, timeout=30)
    await h.drain()
    if not stop.done():
        await stop
    return {
        "sent": n,
        "seconds": elapsed,
        "rate_achieved": n / elapsed if elapsed else 0.0,
        "closes": closes,
        "reassigned": h.reassigned,
        "active": len(h.active),
        "queued": len(h.waiting),
        **h.latency_summary(acks),
    }
