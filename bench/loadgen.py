"""The chat load generator, run as its own process: `python -m bench.loadgen TASK` with JSON arguments on stdin.

Tasks: `throughput` (closed loop: every resident sends, awaits the ack, sends again), `steady`
(open loop at a fixed rate over N connected residents, latency measured at the consultant) and
`idle` (hold N resident connections). `steady` and `idle` print a `{"ready": ...}` line after
set-up, wait for `go` on stdin, and finish at `stop`, at their time limit or message limit.
Every loop is bounded in count and time; the target must be a 127.0.0.1 URL.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
from typing import Any
from urllib.parse import urlparse

import aiohttp

from bench.common import percentile, raise_fd_limit
from bench.wire import WireClient

PAD = "Dzień dobry, mam pytanie o odbiór dowodu osobistego w urzędzie. "


class Resident:
    def __init__(self, client: WireClient) -> None:
        self.client = client
        self.chat_id: int | None = None
        self.notice: asyncio.Future = asyncio.get_running_loop().create_future()
        self.sent = 0


class Harness:
    """Consultants and residents on one server, with chats accepted; latencies recorded at the consultant."""

    def __init__(self, url: str, tokens: list[str], connect_limit: int = 50) -> None:
        host = urlparse(url).hostname
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise SystemExit("the load generator only targets loopback addresses")
        self.url = url
        self.tokens = tokens or [""] * 5
        self.connect_limit = connect_limit
        self.session: aiohttp.ClientSession | None = None
        self.consultants: list[WireClient] = []
        self.residents: list[Resident] = []
        self.sent_at: dict[str, float] = {}
        self.latencies: list[float] = []
        #: (send time, latency) of every message relayed, for the slowest ones' timing in the summary
        self.timeline: list[tuple[float, float]] = []
        self.window_start = 0.0
        self.received = 0
        self.errors: dict[str, int] = {}

    async def __aenter__(self) -> "Harness":
        connector = aiohttp.TCPConnector(limit=0, force_close=False)
        self.session = aiohttp.ClientSession(connector=connector)
        return self

    async def __aexit__(self, *exc: object) -> None:
        clients = [r.client for r in self.residents] + self.consultants
        for i in range(0, len(clients), 500):
            await asyncio.gather(*(c.close() for c in clients[i : i + 500]), return_exceptions=True)
        assert self.session is not None
        await self.session.close()

    def _on_staff(self, event: str, payload: Any, now: float) -> None:
        if event != "message" or not isinstance(payload, dict) or payload.get("from") != "resident":
            return
        text = payload.get("text") or ""
        key = text.split(" ", 2)[1] if text.startswith("bench ") else None
        started = self.sent_at.pop(key, None) if key else None
        if started is not None:
            self.received += 1
            self.latencies.append(now - started)
            self.timeline.append((started, now - started))

    def _error(self, code: str) -> None:
        self.errors[code] = self.errors.get(code, 0) + 1

    async def connect_consultants(self) -> None:
        assert self.session is not None
        for token in self.tokens:
            client = WireClient(self.session, self.url, "/staff", self._on_staff)
            await client.connect({"token": token})
            self.consultants.append(client)

    async def connect_resident(self, open_chat: bool) -> Resident:
        assert self.session is not None
        resident: Resident

        def on_event(event: str, payload: Any, now: float) -> None:
            if event == "notice" and not resident.notice.done():
                resident.notice.set_result(payload)

        client = WireClient(self.session, self.url, "/resident", on_event)
        resident = Resident(client)
        await client.connect({"lang": "pl"})
        self.residents.append(resident)
        if open_chat:
            notice = await asyncio.wait_for(resident.notice, 30)
            ack = await client.call("accept_notice", {"notice_id": notice["notice_id"]})
            if not ack.get("ok"):
                raise RuntimeError(f"accept_notice refused: {ack}")
            resident.chat_id = ack["chat_id"]
        return resident

    async def open_chats(self, count: int, wave: int = 50) -> None:
        """Connect `count` residents with chats, each accepted by a consultant (round robin), in waves."""
        index = 0
        while index < count:
            size = min(wave, count - index)
            batch = await asyncio.gather(*(self.connect_resident(True) for _ in range(size)))
            accepts = []
            for j, resident in enumerate(batch):
                consultant = self.consultants[(index + j) % len(self.consultants)]
                accepts.append(consultant.call("accept", {"chat_id": resident.chat_id}))
            for ack in await asyncio.gather(*accepts):
                if not ack.get("ok"):
                    raise RuntimeError(f"accept refused: {ack}")
            index += size

    async def send(self, resident: Resident, key: str) -> float | None:
        """One message; returns the ack latency (s) or None on an error ack."""
        loop = asyncio.get_running_loop()
        text = f"bench {key} {PAD}"
        started = loop.time()
        self.sent_at[key] = started
        resident.sent += 1
        try:
            ack = await resident.client.call("send", {"text": text, "client_msg_id": key}, timeout=30)
        except (asyncio.TimeoutError, ConnectionError) as exc:
            self.sent_at.pop(key, None)
            self._error(type(exc).__name__)
            return None
        if not ack.get("ok"):
            self.sent_at.pop(key, None)
            self._error(ack.get("error", {}).get("code", "unknown"))
            return None
        return loop.time() - started

    async def drain(self, timeout: float = 5.0) -> None:
        """Wait (bounded) for relayed messages still in flight to reach the consultants."""
        deadline = asyncio.get_running_loop().time() + timeout
        while self.sent_at and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)

    def latency_summary(self, ack_latencies: list[float]) -> dict[str, Any]:
        ms = [x * 1000 for x in self.latencies]
        acks = [x * 1000 for x in ack_latencies]
        worst = sorted(self.timeline, key=lambda x: -x[1])[:8]
        return {
            "received": self.received,
            "lost": len(self.sent_at),
            "errors": self.errors,
            "worst": [[round(t - self.window_start, 2), round(d * 1000, 1)] for t, d in worst],
            "p50_ms": percentile(ms, 50),
            "p99_ms": percentile(ms, 99),
            "max_ms": max(ms) if ms else None,
            "ack_p50_ms": percentile(acks, 50),
            "ack_p99_ms": percentile(acks, 99),
        }


async def throughput(args: dict[str, Any]) -> dict[str, Any]:
    async with Harness(args["url"], args.get("tokens", [])) as h:
        await h.connect_consultants()
        await h.open_chats(args["residents"])
        loop = asyncio.get_running_loop()
        duration, limit = float(args["seconds"]), int(args["max_messages"])
        acks: list[float] = []
        counter = iter(range(limit))
        started = loop.time()
        deadline = started + duration

        async def resident_loop(r: Resident) -> None:
            for n in counter:
                if loop.time() >= deadline:
                    return
                latency = await h.send(r, f"t{n}")
                if latency is not None:
                    acks.append(latency)

        await asyncio.gather(*(resident_loop(r) for r in h.residents))
        elapsed = loop.time() - started
        await h.drain()
        return {"acked": len(acks), "seconds": elapsed, "msg_per_s": len(acks) / elapsed, **h.latency_summary(acks)}


async def _wait_for(word: str, timeout: float) -> bool:
    """Wait for a line `word` on stdin (bounded); False on timeout."""
    loop = asyncio.get_running_loop()
    try:
        line = await asyncio.wait_for(loop.run_in_executor(None, sys.stdin.readline), timeout)
    except asyncio.TimeoutError:
        return False
    return line.strip() == word


def _ready(**facts: Any) -> None:
    sys.stdout.write(json.dumps({"ready": True, **facts}) + "\n")
    sys.stdout.flush()


async def steady(args: dict[str, Any]) -> dict[str, Any]:
    """Set up once, then one measurement window per `go` … `stop` (each printed as a JSON line) until `quit`."""
    async with Harness(args["url"], args.get("tokens", [])) as h:
        await h.connect_consultants()
        await h.open_chats(args["residents"])
        _ready(residents=len(h.residents))
        windows = 0
        while windows < int(args.get("max_windows", 10)):
            word = await _read_word(600)
            if word != "go":
                break
            windows += 1
            result = await _window(h, float(args["rate"]), float(args["max_seconds"]), seed=windows)
            sys.stdout.write(json.dumps(result) + "\n")
            sys.stdout.flush()
        return {"done": True, "windows": windows}


async def _read_word(timeout: float) -> str:
    loop = asyncio.get_running_loop()
    try:
        line = await asyncio.wait_for(loop.run_in_executor(None, sys.stdin.readline), timeout)
    except asyncio.TimeoutError:
        return ""
    return line.strip()


async def _window(h: Harness, rate: float, max_seconds: float, seed: int) -> dict[str, Any]:
    """Messages at `rate`/s to random residents until `stop` arrives (or max_seconds); latencies of this window."""
    loop = asyncio.get_running_loop()
    h.latencies, h.received, h.errors, h.sent_at, h.timeline = [], 0, {}, {}, []
    h.window_start = loop.time()
    limit = int(rate * max_seconds)
    stop = loop.create_task(_read_word(max_seconds))
    acks: list[float] = []
    pending: set[asyncio.Task] = set()
    rng = random.Random(seed)
    started = loop.time()
    n = 0

    async def one(r: Resident, key: str) -> None:
        latency = await h.send(r, key)
        if latency is not None:
            acks.append(latency)

    while n < limit and not stop.done():
        delay = started + n / rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        task = loop.create_task(one(h.residents[rng.randrange(len(h.residents))], f"w{seed}m{n}"))
        pending.add(task)
        task.add_done_callback(pending.discard)
        n += 1
    elapsed = loop.time() - started
    if pending:
        await asyncio.wait(pending, timeout=30)
    await h.drain()
    if not stop.done():
        await stop  # the bench's `stop` line belongs to this window
    return {"sent": n, "seconds": elapsed, "rate_achieved": n / elapsed if elapsed else 0.0, **h.latency_summary(acks)}


async def idle(args: dict[str, Any]) -> dict[str, Any]:
    async with Harness(args["url"], []) as h:
        n, wave = int(args["connections"]), int(args.get("wave", 200))
        failed = 0
        for i in range(0, n, wave):
            results = await asyncio.gather(
                *(h.connect_resident(False) for _ in range(min(wave, n - i))), return_exceptions=True
            )
            failed += sum(1 for r in results if isinstance(r, BaseException))
        # every resident got its notice: the server finished greeting them
        await asyncio.wait([r.notice for r in h.residents], timeout=60)
        greeted = sum(1 for r in h.residents if r.notice.done())
        _ready(connected=len(h.residents), greeted=greeted, failed=failed)
        await _wait_for("stop", 600)
        still_open = sum(1 for r in h.residents if not r.client.closed.is_set())
        return {"connected": len(h.residents), "greeted": greeted, "failed": failed, "still_open": still_open}


async def desk(args: dict[str, Any]) -> dict[str, Any]:
    """The chat desk's load with capacity and churn (bench/deskgen.py, benchmark 8)."""
    from bench.deskgen import desk as run

    return await run(args)


TASKS = {"throughput": throughput, "steady": steady, "idle": idle, "desk": desk}


def main() -> None:
    task = TASKS[sys.argv[1]]
    args = json.loads(sys.stdin.readline())
    raise_fd_limit()
    result = asyncio.run(task(args))
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
