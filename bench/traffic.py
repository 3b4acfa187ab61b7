"""Benchmark 7: AMI events through `cim serve` to the staff's `traffic` events, and chat latency during a burst.

`python -m bench.traffic [--seconds S] [--rate EVENTS_PER_S]`: a loopback AMI server (the tests'
replay server) feeds `cim serve` (its own process, CPU 0) QueueCallerJoin/QueueCallerLeave pairs at
the given rate; a /staff client measures the delay from sending the n-th join to the first
`traffic` push that counts it, and a resident's send→ack p99 is measured without and with the
burst (same run, same server). Prints one JSON document; no figure here is asserted by a test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.chat import _prepare
from bench.common import LOAD_CPU, Result, ServerProcess, free_port, percentile, pin

log = logging.getLogger("bench.traffic")


def _pair(i: int) -> str:
    uid = f"1772442000.{i}"
    head = (
        f"Channel: PJSIP/trunk-{i:08x}\r\nChannelState: 6\r\nChannelStateDesc: Up\r\nCallerIDNum: 60{i:07d}\r\n"
        f"CallerIDName: \r\nConnectedLineNum: <unknown>\r\nConnectedLineName: <unknown>\r\nLanguage: pl\r\n"
        f"AccountCode: \r\nContext: ext-queues\r\nExten: 400\r\nPriority: 1\r\nUniqueid: {uid}\r\n"
        f"Linkedid: {uid}\r\nQueue: cim\r\n"
    )
    return (
        f"Event: QueueCallerJoin\r\nPrivilege: agent,all\r\n{head}Position: 1\r\nCount: 1\r\n\r\n"
        f"Event: QueueCallerLeave\r\nPrivilege: agent,all\r\n{head}Position: 1\r\nCount: 0\r\n\r\n"
    )


async def _chat_p99(resident: Any, seconds: float, rate: float) -> tuple[float, int]:
    """Send at `rate` messages/s for `seconds`; the p99 of send→ack in ms and the number of errors."""
    latencies: list[float] = []
    errors = 0
    interval = 1.0 / rate
    start = time.monotonic()
    n = 0
    while time.monotonic() - start < seconds:
        t0 = time.monotonic()
        ack = await resident.call(
            "send", {"text": f"wiadomość {n}", "client_msg_id": f"b{time.time_ns()}"}, namespace="/resident", timeout=10
        )
        latencies.append((time.monotonic() - t0) * 1000)
        errors += 0 if ack.get("ok") else 1
        n += 1
        await asyncio.sleep(max(0.0, start + n * interval - time.monotonic()))
    return percentile(latencies, 99), errors


async def run(work: Path, seconds: float, rate: int, chat_rate: float) -> dict[str, Any]:
    import socketio

    from tests.fixtures.ami import AmiReplayServer

    data_dir = work / "data"
    [token] = await _prepare(data_dir, 1)
    ami = AmiReplayServer()
    await ami.start()
    port = free_port()
    env = {
        **__import__("os").environ,
        "CIM_DATA_DIR": str(data_dir),
        "CIM_RESIDENT_RATE_LIMIT": "off",
        "CIM_OPENING_HOURS": "always",
        "CIM_PURGE_DAILY_AT": "off",
        "CIM_AMI_URL": ami.url,
    }
    server = ServerProcess(
        [sys.executable, "-m", "cim", "serve", "--port", str(port), "--log-level", "warning"],
        env,
        port,
        work / "serve.log",
    )
    await asyncio.to_thread(server.start)
    try:
        await ami.wait_logged_in(30)
        staff = socketio.AsyncClient(reconnection=False)
        pushes: list[tuple[float, int]] = []
        staff.on("traffic", lambda d: pushes.append((time.monotonic(), d["today"]["offered"])), namespace="/staff")
        await staff.connect(server.url, namespaces=["/staff"], auth={"token": token}, transports=["websocket"])
        resident = socketio.AsyncClient(reconnection=False)
        notices: list[dict] = []
        resident.on("notice", notices.append, namespace="/resident")
        await resident.connect(server.url, namespaces=["/resident"], auth={"lang": "pl"}, transports=["websocket"])
        while not notices:
            await asyncio.sleep(0.01)
        await resident.call("accept_notice", {"notice_id": notices[0]["notice_id"]}, namespace="/resident")
        quiet_p99, quiet_errors = await _chat_p99(resident, seconds, chat_rate)

        pairs = int(rate * seconds / 2)
        sent_at: list[float] = []
        tick = 0.01
        per_tick = max(1, int(rate * tick / 2))

        # built before the burst, so the bench process's own work during it is only writing bytes
        chunks = [
            ("".join(_pair(j) for j in range(i, min(pairs, i + per_tick)))).encode() for i in range(0, pairs, per_tick)
        ]

        async def flood() -> None:
            start = time.monotonic()
            done = 0
            for k, chunk in enumerate(chunks):
                now = time.monotonic()
                await ami.send_raw(chunk)
                count = min(per_tick, pairs - done)
                sent_at.extend(now for _ in range(count))
                done += count
                await asyncio.sleep(max(0.0, start + (k + 1) * tick - time.monotonic()))

        base = pushes[-1][1] if pushes else 0
        flood_task = asyncio.create_task(flood())
        burst_p99, burst_errors = await _chat_p99(resident, seconds, chat_rate)
        await flood_task
        flood_end = time.monotonic()
        deadline = time.monotonic() + 30
        while (not pushes or pushes[-1][1] - base < pairs) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        delays = []
        for received, offered in pushes:
            n = offered - base
            if 0 < n <= len(sent_at):
                delays.append((received - sent_at[n - 1]) * 1000)
        applied = (pushes[-1][1] - base) * 2 if pushes else 0
        span = (pushes[-1][0] - sent_at[0]) if pushes and sent_at else float("nan")
        await resident.disconnect()
        await staff.disconnect()
        return {
            "events_sent": pairs * 2,
            "events_applied": applied,
            "events_per_s": applied / span if span else 0,
            "send_seconds": flood_end - sent_at[0] if sent_at else 0,
            "pushes": len(pushes),
            "push_delay_p50_ms": percentile(delays, 50),
            "push_delay_p99_ms": percentile(delays, 99),
            "chat_ack_p99_quiet_ms": quiet_p99,
            "chat_ack_p99_burst_ms": burst_p99,
            "chat_ratio": burst_p99 / quiet_p99 if quiet_p99 else float("nan"),
            "chat_errors": quiet_errors + burst_errors,
        }
    finally:
        server.stop()
        await ami.close()


def bench_traffic(work: Path, cfg: dict[str, Any]) -> list[Result]:
    """Benchmark 7 inside `python -m bench` (sizes from cfg: traffic_seconds, traffic_rate, traffic_chat_rate)."""
    work.mkdir(parents=True, exist_ok=True)
    out = asyncio.run(
        run(work, cfg.get("traffic_seconds", 5), cfg.get("traffic_rate", 10_000), cfg.get("traffic_chat_rate", 20))
    )
    return [
        Result(
            "7 phone traffic",
            f"AMI events applied, sent at {cfg.get('traffic_rate', 10_000)}/s",
            out["events_per_s"],
            "events/s",
            note=f"{out['events_applied']} of {out['events_sent']} applied",
        ),
        Result(
            "7 phone traffic",
            "p99 AMI event → traffic push",
            out["push_delay_p99_ms"],
            "ms",
            note=f"pushes coalesced every 0.25 s; p50 {out['push_delay_p50_ms']:.0f} ms",
        ),
        Result(
            "7 phone traffic",
            "chat ack p99 during the burst",
            out["chat_ack_p99_burst_ms"],
            "ms",
            out["chat_ack_p99_quiet_ms"],
            "same server, no burst",
            "≤ 1.2× baseline",
            out["chat_ratio"] <= 1.2,
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rate", type=int, default=10_000, help="AMI events per second during the burst")
    parser.add_argument("--chat-rate", type=float, default=20.0, help="resident messages per second")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)
    pin(LOAD_CPU)
    with tempfile.TemporaryDirectory(prefix="cim-bench-traffic-") as tmp:
        print(json.dumps(asyncio.run(run(Path(tmp), args.seconds, args.rate, args.chat_rate)), indent=2))


if __name__ == "__main__":
    main()
