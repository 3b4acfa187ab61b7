"""Benchmarks 1 and 2: chat relay through `cim serve` against the bare relay, and idle connections' memory."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

from bench.common import LoadProcess, Result, ServerProcess, cim_server, echo_server, free_port, median, run_loadgen

log = logging.getLogger("bench.chat")
PASSWORD = "bench-password-not-secret"


async def _prepare(data_dir: Path, consultants: int) -> list[str]:
    from store import Store
    from store.models import Actor
    from store.settings import Settings

    settings = Settings.load(data_dir, env={}, password_profile="fast", opening_hours="always")
    store = await Store.open(settings, create=True)
    try:
        system = Actor.system("bench")
        tokens = []
        for i in range(consultants):
            name = f"konsultant{i:02d}"
            try:
                await store.accounts.get(name)
            except Exception:
                await store.accounts.add_staff(system, name, ("consultant",), PASSWORD)
            tokens.append((await store.accounts.login(name, PASSWORD)).token)
        return tokens
    finally:
        await store.close()


def prepare_cim(data_dir: Path, consultants: int) -> list[str]:
    """A data directory with `consultants` consultant accounts; returns a session token for each."""
    return asyncio.run(_prepare(data_dir, consultants))


def bench_relay(work: Path, cfg: dict[str, Any]) -> list[Result]:
    """Closed-loop throughput (median of runs) and steady-rate p99 at many residents, cim serve vs the bare relay."""
    results: list[Result] = []
    thr: dict[str, list[float]] = {"cim": [], "echo": []}
    ack99: dict[str, list[float]] = {"cim": [], "echo": []}
    for run in range(cfg["runs"]):
        for kind in ("echo", "cim"):
            server, tokens = _server(work, kind, f"thr{run}", cfg["consultants"])
            with server:
                out = run_loadgen(
                    "throughput",
                    {
                        "url": server.url,
                        "tokens": tokens,
                        "residents": cfg["thr_residents"],
                        "seconds": cfg["thr_seconds"],
                        "max_messages": cfg["thr_max"],
                    },
                    timeout=cfg["thr_seconds"] + 300,
                )
            log.info(
                "relay throughput run=%s %s: %.0f msg/s ack p99 %.1f ms errors=%s lost=%s",
                run,
                kind,
                out["msg_per_s"],
                out["ack_p99_ms"],
                out["errors"],
                out["lost"],
            )
            thr[kind].append(out["msg_per_s"])
            ack99[kind].append(out["p99_ms"])
    cim, echo = median(thr["cim"]), median(thr["echo"])
    results.append(
        Result(
            "1 chat relay",
            f"throughput, {cfg['thr_residents']} residents closed loop",
            cim,
            "msg/s",
            echo,
            "bare python-socketio relay",
            "≥ 0.8× baseline",
            cim / echo >= 0.8,
            f"each message stored (group commit) before its ack; relay p99 under saturation "
            f"{median(ack99['cim']):.0f} ms vs {median(ack99['echo']):.0f} ms",
            runs=thr["cim"],
        )
    )
    # steady rate at many connected residents
    lat: dict[str, list[float]] = {"cim": [], "echo": []}
    p50: dict[str, list[float]] = {"cim": [], "echo": []}
    extra = {}
    for kind in ("echo", "cim"):
        server, tokens = _server(work, kind, "steady", cfg["consultants"])
        with server:
            load = LoadProcess(
                "steady",
                {
                    "url": server.url,
                    "tokens": tokens,
                    "residents": cfg["residents"],
                    "rate": cfg["rate"],
                    "max_seconds": cfg["seconds"] + 30,
                },
            )
            try:
                started = time.monotonic()
                ready = load.ready(timeout=900)
                setup = time.monotonic() - started
                warm, _ = load.window(cfg["warmup_seconds"])  # discarded: first-use costs after set-up
                log.info("relay steady %s warm-up window: p99 %.1f ms (not counted)", kind, warm["p99_ms"])
                for _ in range(cfg["runs"]):
                    out, _ = load.window(cfg["seconds"])
                    log.info(
                        "relay steady %s: %s residents, %.0f msg/s, p50 %.1f p99 %.1f ms, lost %s errors %s",
                        kind,
                        ready["residents"],
                        out["rate_achieved"],
                        out["p50_ms"],
                        out["p99_ms"],
                        out["lost"],
                        out["errors"],
                    )
                    lat[kind].append(out["p99_ms"])
                    p50[kind].append(out["p50_ms"])
                    extra[kind] = out
                load.say("quit")
                load.result()
            finally:
                load.kill()
        log.info("relay steady %s set-up of %s chats took %.1f s", kind, cfg["residents"], setup)
    p99 = median(lat["cim"])
    results.append(
        Result(
            "1 chat relay",
            f"p99 resident→consultant, {cfg['residents']} residents at {cfg['rate']} msg/s",
            p99,
            "ms",
            median(lat["echo"]),
            "bare relay, same load",
            "≤ 50 ms",
            p99 <= 50,
            f"p50 {median(p50['cim']):.1f} ms (baseline {median(p50['echo']):.1f}); achieved "
            f"{extra['cim']['rate_achieved']:.0f} msg/s; lost {extra['cim']['lost']}, errors {extra['cim']['errors'] or 0}",
            runs=lat["cim"],
        )
    )
    return results


def _server(work: Path, kind: str, tag: str, consultants: int) -> tuple[ServerProcess, list[str]]:
    port = free_port()
    if kind == "echo":
        return echo_server(port, work / "echo.log"), []
    data = work / f"cim-{tag}"
    tokens = prepare_cim(data, consultants)
    return cim_server(data, port, work / "cim-serve.log"), tokens


def bench_connections(work: Path, cfg: dict[str, Any]) -> list[Result]:
    """RSS per idle resident connection: VmRSS of the server before and after N connect (median of runs)."""
    per: dict[str, list[float]] = {"cim": [], "echo": []}
    held = {}
    for run in range(cfg["conn_runs"]):
        for kind in ("echo", "cim"):
            server, _ = _server(work, kind, f"conn{run}", 0)
            with server:
                # one connection first, so lazily imported code and first-use caches are not counted per socket
                warm = LoadProcess("idle", {"url": server.url, "connections": 10})
                warm.ready()
                warm.say("stop")
                warm.result()
                time.sleep(0.5)
                before = server.rss_kb()
                load = LoadProcess("idle", {"url": server.url, "connections": cfg["connections"]})
                try:
                    ready = load.ready(timeout=600)
                    time.sleep(1.0)
                    after = server.rss_kb()
                    load.say("stop")
                    load.result()
                finally:
                    load.kill()
            kb = (after - before) / max(1, ready["greeted"])
            held[kind] = ready
            per[kind].append(kb)
            log.info(
                "connections run=%s %s: %s connected, %s greeted, %s failed, RSS %s → %s kB, %.1f kB each",
                run,
                kind,
                ready["connected"],
                ready["greeted"],
                ready["failed"],
                before,
                after,
                kb,
            )
    value = median(per["cim"])
    ok = value <= 50 and held["cim"]["greeted"] == cfg["connections"]
    return [
        Result(
            "2 connections",
            f"RSS per idle resident connection ({held['cim']['greeted']} held)",
            value,
            "kB",
            median(per["echo"]),
            "bare python-socketio relay",
            "≤ 50 kB",
            ok,
            f"{held['cim']['failed']} connects failed; each resident got its notice",
            runs=per["cim"],
        )
    ]
