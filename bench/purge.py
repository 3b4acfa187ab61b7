"""Benchmark 5: a permanent purge of six months' worth of calls (with files) and chats, under live chat load.

`cim purge` runs as its own process on the server's CPU (as the daily purge inside `cim serve`
would compete for it) while the load generator keeps a steady chat rate through `cim serve` on the
same data directory; the chat p99 during the purge is compared with windows before and after it.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from bench.chat import prepare_cim
from bench.common import SERVER_CPU, LoadProcess, Result, _pinned, cim_server, free_port, median
from bench.dataset import generate

log = logging.getLogger("bench.purge")


def run_purge(data_dir: Path, timeout: float) -> tuple[dict[str, Any], float]:
    env = {**os.environ, "CIM_DATA_DIR": str(data_dir)}
    cim = shutil.which("cim")
    argv = ([cim] if cim else [sys.executable, "-m", "cim"]) + ["purge", "--json"]
    t0 = time.monotonic()
    proc = subprocess.run(argv, env=env, capture_output=True, timeout=timeout, preexec_fn=_pinned(SERVER_CPU))
    seconds = time.monotonic() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"cim purge failed: {proc.stderr.decode()[-1000:]}")
    return json.loads(proc.stdout), seconds


def bench_purge(work: Path, cfg: dict[str, Any]) -> list[Result]:
    data_dir = work / "purge-data"
    if data_dir.exists():
        shutil.rmtree(data_dir)
    now = datetime.now(timezone.utc).replace(microsecond=0)
    # six months' worth whose six months have passed: created 12 to 6 months (and a day) ago
    t0 = time.monotonic()
    generate(data_dir, cfg["purge_calls"], cfg["purge_chats"], start=now - timedelta(days=366),
             end=now - timedelta(days=185), files=True, seed=6)
    made = time.monotonic() - t0
    tokens = prepare_cim(data_dir, cfg["consultants"])
    port = free_port()
    quiet, during = [], []
    with cim_server(data_dir, port, work / "cim-serve-purge.log") as server:
        load = LoadProcess("steady", {"url": server.url, "tokens": tokens, "residents": cfg["purge_residents"],
                                      "rate": cfg["purge_rate"], "max_seconds": cfg["purge_timeout"]})
        try:
            load.ready(timeout=600)
            before, _ = load.window(cfg["purge_quiet_seconds"])
            under, (report, seconds) = load.window(lambda: run_purge(data_dir, cfg["purge_timeout"]))
            after, _ = load.window(cfg["purge_quiet_seconds"])
            load.say("quit")
            load.result()
        finally:
            load.kill()
    for name, out in (("before", before), ("during", under), ("after", after)):
        log.info("purge chat window %s: %.0f msg/s p50 %.1f p99 %.1f ms lost %s errors %s", name,
                 out["rate_achieved"], out["p50_ms"], out["p99_ms"], out["lost"], out["errors"])
    quiet = [before["p99_ms"], after["p99_ms"]]
    during = [under["p99_ms"]]
    purged = report["purged"]
    items = purged["calls"] + purged["chats"]
    log.info("purge: %s in %.1f s (data made in %.1f s)", purged, seconds, made)
    leftover = sum(1 for _ in (data_dir / "recordings").rglob("*.wav"))
    base = median(quiet)
    scaled = "" if cfg["purge_calls"] >= 1_000_000 else (
        f"SCALED DOWN: {cfg['purge_calls']:,} calls + {cfg['purge_chats']:,} chats, not 1,000,000 calls; ")
    return [
        Result("5 purge", "conversations purged per second (with their files)", items / seconds, "items/s", None, "",
               "(reported)", None,
               f"{scaled}{purged['calls']:,} calls, {purged['chats']:,} chats, {purged['files']:,} files in "
               f"{seconds:.1f} s while chatting; {leftover} WAV files left", runs=[items / seconds]),
        Result("5 purge", f"chat p99 during the purge ({cfg['purge_residents']} residents, {cfg['purge_rate']} msg/s)",
               under["p99_ms"], "ms", base, "chat p99 without a purge (before/after)", "≤ 2× baseline",
               under["p99_ms"] <= 2 * base,
               f"before {before['p99_ms']:.1f} ms, after {after['p99_ms']:.1f} ms; lost {under['lost']}, "
               f"errors {under['errors'] or 0}", runs=during),
    ]
