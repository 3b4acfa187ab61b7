"""Benchmark 5: a permanent purge of six months' worth of calls (with files) and chats, under live chat load.

`cim purge` runs as its own process on the server's CPU (as the daily purge inside `cim serve`
would compete for it) while the load generator keeps a steady chat rate through `cim serve` on the
same data directory; the chat p99 during the purge is compared with windows before and after it.
"""

from __future__ import annotations

import json
import sqlite3
import logging
import os
import shutil
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

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


def _wait_for_run(db_path: Path, timeout: float) -> dict[str, Any]:
    """Poll (read-only) until the daily purge inside `cim serve` has finished a run; its purge_runs row."""
    deadline = time.monotonic() + timeout
    uri = f"file:{db_path}?mode=ro"
    while time.monotonic() < deadline:
        time.sleep(0.25)
        conn = sqlite3.connect(uri, uri=True, timeout=10)
        try:
            conn.row_factory = sqlite3.Row
            row = conn.execute(
                "SELECT * FROM purge_runs WHERE dry_run = 0 AND status != 'running' ORDER BY id DESC LIMIT 1"
            ).fetchone()
        finally:
            conn.close()
        if row is not None:
            if row["status"] != "finished":
                raise RuntimeError(f"the daily purge ended {row['status']}")
            return dict(row)
    raise RuntimeError(f"the daily purge did not finish within {timeout}s")


def _seconds_between(a: str, b: str) -> float:
    parse = lambda t: datetime.strptime(t, "%Y-%m-%dT%H:%M:%S.%fZ")  # noqa: E731
    return (parse(b) - parse(a)).total_seconds()


def bench_purge(work: Path, cfg: dict[str, Any]) -> list[Result]:
    results = []
    for mode, calls, chats in cfg["purge_modes"]:
        results += _bench_purge(work, cfg, mode, calls, chats)
    return results


def _bench_purge(work: Path, cfg: dict[str, Any], mode: str, calls: int, chats: int) -> list[Result]:
    """mode `serve`: the daily purge inside `cim serve` (due a minute ahead); `cli`: `cim purge` beside it."""
    data_dir = work / f"purge-data-{mode}"
    if data_dir.exists():
        shutil.rmtree(data_dir)
    now = datetime.now(timezone.utc).replace(microsecond=0)
    # six months' worth whose six months have passed: created 12 to 6 months (and a day) ago
    t0 = time.monotonic()
    generate(data_dir, calls, chats, start=now - timedelta(days=366), end=now - timedelta(days=185), files=True, seed=6)
    made = time.monotonic() - t0
    tokens = prepare_cim(data_dir, cfg["consultants"])
    port = free_port()
    extra: dict[str, str] = {}
    due = None
    if mode == "serve":
        zone = ZoneInfo("Europe/Warsaw")
        # time for the server to start, the residents to connect and the quiet window, before the due minute
        lead = datetime.now(timezone.utc) + timedelta(
            seconds=cfg["purge_quiet_seconds"] + 45 + cfg["purge_residents"] * 0.1
        )
        due = (lead + timedelta(minutes=1)).replace(second=0, microsecond=0)
        extra = {"CIM_PURGE_DAILY_AT": due.astimezone(zone).strftime("%H:%M"), "CIM_TIMEZONE": "Europe/Warsaw"}
    with cim_server(data_dir, port, work / f"cim-serve-purge-{mode}.log", **extra) as server:
        load = LoadProcess(
            "steady",
            {
                "url": server.url,
                "tokens": tokens,
                "residents": cfg["purge_residents"],
                "rate": cfg["purge_rate"],
                "max_seconds": cfg["purge_timeout"],
            },
        )
        try:
            load.ready(timeout=600)
            before, _ = load.window(cfg["purge_quiet_seconds"])
            if mode == "serve":
                assert due is not None
                wait = (due - datetime.now(timezone.utc)).total_seconds() - 1
                if wait < 0:
                    raise RuntimeError("set-up overran the daily purge's due minute; raise the lead time")
                time.sleep(wait)

                def during() -> tuple[dict[str, Any], float]:
                    row = _wait_for_run(data_dir / "cim.sqlite3", cfg["purge_timeout"])
                    return (
                        {"purged": {k: row[k] for k in ("calls", "chats", "files", "bytes")}},
                        _seconds_between(row["started_at"], row["finished_at"]),
                    )
            else:

                def during() -> tuple[dict[str, Any], float]:
                    return run_purge(data_dir, cfg["purge_timeout"])

            under, (report, seconds) = load.window(during)
            after, _ = load.window(cfg["purge_quiet_seconds"])
            load.say("quit")
            load.result()
        finally:
            load.kill()
    for name, out in (("before", before), ("during", under), ("after", after)):
        log.info(
            "purge (%s) chat window %s: %.0f msg/s p50 %.1f p99 %.1f ms lost %s errors %s; slowest "
            "[s into the window, ms]: %s",
            mode,
            name,
            out["rate_achieved"],
            out["p50_ms"],
            out["p99_ms"],
            out["lost"],
            out["errors"],
            out["worst"],
        )
    purged = report["purged"]
    items = purged["calls"] + purged["chats"]
    log.info("purge (%s): %s in %.1f s (data made in %.1f s)", mode, purged, seconds, made)
    leftover = sum(1 for _ in (data_dir / "recordings").rglob("*.wav"))
    base = median([before["p99_ms"], after["p99_ms"]])
    how = "daily purge inside `cim serve`" if mode == "serve" else "`cim purge` process beside `cim serve`, on its CPU"
    scaled = "" if calls >= 1_000_000 else f"SCALED DOWN to {calls:,} calls + {chats:,} chats (not 1,000,000 calls); "
    shutil.rmtree(data_dir, ignore_errors=True)
    return [
        Result(
            "5 purge",
            f"conversations purged per second ({how})",
            items / seconds,
            "items/s",
            None,
            "",
            "(reported)",
            None,
            f"{scaled}{purged['calls']:,} calls, {purged['chats']:,} chats, {purged['files']:,} files in "
            f"{seconds:.1f} s while chatting; {leftover} WAV files left",
            runs=[items / seconds],
        ),
        Result(
            "5 purge",
            f"chat p99 during the purge ({how}; {cfg['purge_residents']} residents, {cfg['purge_rate']} msg/s)",
            under["p99_ms"],
            "ms",
            base,
            "chat p99 without a purge (before/after)",
            "≤ 2× baseline",
            under["p99_ms"] <= 2 * base,
            f"before {before['p99_ms']:.1f} ms, after {after['p99_ms']:.1f} ms; p50 during {under['p50_ms']:.1f} ms;"
            f" lost {under['lost']}, errors {under['errors'] or 0}",
            runs=[under["p99_ms"]],
        ),
    ]
