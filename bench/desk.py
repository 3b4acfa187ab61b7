"""Benchmark 8: the chat desk's auto-assignment (CIM_CHAT_ASSIGNMENT=auto) against pick mode at the relay's load.

2,000 residents in chats or in the queue, 50 consultants at capacity 3 (150 chats held, the rest queued),
200 msg/s to the residents in chats and consultants closing chats at a steady pace (each freed seat is
filled from the front of the queue: by the server in auto mode, by the consultant's accept in pick mode).
The figure is the resident→consultant p99 (the relay benchmark's target, ≤ 50 ms) in auto mode, with the
same run in pick mode as the baseline.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

from bench.chat import prepare_cim
from bench.common import LoadProcess, Result, cim_server, free_port, median

log = logging.getLogger("bench.desk")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc), to tell a busy server from a starved one."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bench_desk(work: Path, cfg: dict[str, Any]) -> list[Result]:
    """Both modes set up side by side (two servers, two load generators), then their windows alternate
    (pick, auto, pick, auto, ...) so that a change in the machine's load falls on both alike."""
    p99: dict[str, list[float]] = {"pick": [], "auto": []}
    busy: dict[str, list[float]] = {"pick": [], "auto": []}  # the server's CPU share during each window
    last: dict[str, dict[str, Any]] = {}
    servers, loads = {}, {}
    try:
        for mode in ("pick", "auto"):
            data = work / f"cim-desk-{mode}"
            tokens = prepare_cim(data, cfg["desk_consultants"])
            servers[mode] = cim_server(
                data,
                free_port(),
                work / f"cim-serve-desk-{mode}.log",
                CIM_CHAT_ASSIGNMENT=mode,
                CIM_CHAT_MAX_CONCURRENT=str(cfg["desk_capacity"]),
            )
            servers[mode].__enter__()
            loads[mode] = LoadProcess(
                "desk",
                {
                    "url": servers[mode].url,
                    "tokens": tokens,
                    "residents": cfg["desk_residents"],
                    "mode": mode,
                    "capacity": cfg["desk_capacity"],
                    "rate": cfg["rate"],
                    "churn": cfg["desk_churn"],
                    "max_seconds": cfg["seconds"] + 30,
                    "max_windows": 2 * cfg["runs"] + 2,
                },
            )
            started = time.monotonic()
            ready = loads[mode].ready(timeout=900)
            log.info(
                "desk %s: %s residents, %s in chats, %s queued; set-up %.1f s",
                mode,
                ready["residents"],
                ready["active"],
                ready["queued"],
                time.monotonic() - started,
            )
        for mode in ("pick", "auto"):
            warm, _ = loads[mode].window(cfg["warmup_seconds"])
            log.info("desk %s warm-up window: p99 %.1f ms (not counted)", mode, warm["p99_ms"] or 0)
        for _ in range(cfg["runs"]):
            for mode in ("pick", "auto"):
                pid = servers[mode].proc.pid  # type: ignore[union-attr]
                cpu0, t0 = cpu_seconds(pid), time.monotonic()
                out, _ = loads[mode].window(cfg["seconds"])
                busy[mode].append(100 * (cpu_seconds(pid) - cpu0) / (time.monotonic() - t0))
                log.info(
                    "desk %s: %.0f msg/s, p50 %.1f p99 %.1f ms, %s closes, %s seats refilled, lost %s errors %s, "
                    "server CPU %.0f%%, load average %.1f",
                    mode,
                    out["rate_achieved"],
                    out["p50_ms"] or 0,
                    out["p99_ms"] or 0,
                    out["closes"],
                    out["reassigned"],
                    out["lost"],
                    out["errors"],
                    busy[mode][-1],
                    os.getloadavg()[0],
                )
                p99[mode].append(out["p99_ms"] or 0.0)
                last[mode] = out
        for mode in ("pick", "auto"):
            loads[mode].say("quit")
            loads[mode].result()
    finally:
        for load in loads.values():
            load.kill()
        for server in servers.values():
            server.__exit__(None, None, None)
    auto, pick = median(p99["auto"]), median(p99["pick"])
    out = last["auto"]
    return [
        Result(
            "8 desk routing",
            f"p99 resident→consultant, auto mode: {cfg['desk_residents']} residents, {cfg['desk_consultants']} "
            f"consultants × {cfg['desk_capacity']}, {cfg['rate']} msg/s, {cfg['desk_churn']} closes/s",
            auto,
            "ms",
            pick,
            "pick mode, same load, windows alternating",
            "≤ 50 ms",
            auto <= 50,
            f"p50 {out['p50_ms'] or 0:.1f} ms (pick {last['pick']['p50_ms'] or 0:.1f}); {out['closes']} closes and "
            f"{out['reassigned']} seats refilled by the server in the last window (pick: {last['pick']['reassigned']} "
            f"by accept); lost {out['lost']}, errors {out['errors'] or 0}; server CPU during the windows "
            f"{median(busy['auto']):.0f}% (pick {median(busy['pick']):.0f}%) of its core; pick runs: "
            + ", ".join(f"{x:.0f}" for x in p99["pick"]),
            runs=p99["auto"],
        )
    ]
