"""Benchmark 8: the chat desk's auto-assignment (CIM_CHAT_ASSIGNMENT=auto) against pick mode at the relay's load.

2,000 residents in chats or in the queue, 50 consultants at capacity 3 (150 chats held, the rest queued),
200 msg/s to the residents in chats and consultants closing chats at a steady pace (each freed seat is
filled from the front of the queue: by the server in auto mode, by the consultant's accept in pick mode).
The figure is the resident→consultant p99 (the relay benchmark's target, ≤ 50 ms) in auto mode, with the
same run in pick mode as the baseline.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from bench.chat import prepare_cim
from bench.common import LoadProcess, Result, cim_server, free_port, median

log = logging.getLogger("bench.desk")


def bench_desk(work: Path, cfg: dict[str, Any]) -> list[Result]:
    p99: dict[str, list[float]] = {"pick": [], "auto": []}
    last: dict[str, dict[str, Any]] = {}
    for mode in ("pick", "auto"):
        data = work / f"cim-desk-{mode}"
        tokens = prepare_cim(data, cfg["desk_consultants"])
        server = cim_server(data, free_port(), work / f"cim-serve-desk-{mode}.log", CIM_CHAT_ASSIGNMENT=mode,
                            CIM_CHAT_MAX_CONCURRENT=str(cfg["desk_capacity"]))
        with server:
            load = LoadProcess("desk", {"url": server.url, "tokens": tokens, "residents": cfg["desk_residents"],
                                        "mode": mode, "capacity": cfg["desk_capacity"], "rate": cfg["rate"],
                                        "churn": cfg["desk_churn"], "max_seconds": cfg["seconds"] + 30})
            try:
                started = time.monotonic()
                ready = load.ready(timeout=900)
                log.info("desk %s: %s residents, %s in chats, %s queued; set-up %.1f s", mode, ready["residents"],
                         ready["active"], ready["queued"], time.monotonic() - started)
                warm, _ = load.window(cfg["warmup_seconds"])
                log.info("desk %s warm-up window: p99 %.1f ms (not counted)", mode, warm["p99_ms"] or 0)
                for _ in range(cfg["runs"]):
                    out, _ = load.window(cfg["seconds"])
                    log.info("desk %s: %.0f msg/s, p50 %.1f p99 %.1f ms, %s closes, %s seats refilled, lost %s "
                             "errors %s", mode, out["rate_achieved"], out["p50_ms"] or 0, out["p99_ms"] or 0,
                             out["closes"], out["reassigned"], out["lost"], out["errors"])
                    p99[mode].append(out["p99_ms"] or 0.0)
                    last[mode] = out
                load.say("quit")
                load.result()
            finally:
                load.kill()
    auto, pick = median(p99["auto"]), median(p99["pick"])
    out = last["auto"]
    return [Result(
        "8 desk routing",
        f"p99 resident→consultant, auto mode: {cfg['desk_residents']} residents, {cfg['desk_consultants']} "
        f"consultants × {cfg['desk_capacity']}, {cfg['rate']} msg/s, {cfg['desk_churn']} closes/s",
        auto, "ms", pick, "pick mode, same load", "≤ 50 ms", auto <= 50,
        f"p50 {out['p50_ms'] or 0:.1f} ms (pick {last['pick']['p50_ms'] or 0:.1f}); {out['closes']} closes and "
        f"{out['reassigned']} seats refilled by the server in the last window (pick: {last['pick']['reassigned']} "
        f"by accept); lost {out['lost']}, errors {out['errors'] or 0}", runs=p99["auto"])]
