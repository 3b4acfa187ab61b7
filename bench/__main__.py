"""`python -m bench [--quick] [--only N,...]`: run the nine benchmarks, print the table, write docs/BENCHMARKS.md."""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from bench.common import ROOT, Result, machine, raise_fd_limit
from bench.report import render_markdown, render_table

log = logging.getLogger("bench")

#: Sizes of the full run (~25 minutes on 2 cores) and of --quick (a few minutes).
FULL: dict[str, Any] = dict(
    runs=3,
    consultants=20,
    thr_residents=50,
    thr_seconds=10,
    thr_max=200_000,
    residents=2000,
    rate=200,
    seconds=20,
    warmup_seconds=5,
    conn_runs=3,
    connections=5000,
    archive_calls=1_000_000,
    archive_chats=100_000,
    archive_repeats=200,
    ingest_rows=20_000,
    ingest_recording_every=2,
    purge_residents=500,
    purge_rate=200,
    purge_quiet_seconds=15,
    purge_timeout=1800,
    # (where the purge runs, calls, chats): the daily purge inside cim serve on the full six months' worth,
    # `cim purge` beside the server on a fifth of it (generating and purging 1,000,000 files twice is too long)
    purge_modes=(("serve", 1_000_000, 100_000), ("cli", 200_000, 20_000)),
    tui_runs=5,
    tui_search_repeats=20,
    desk_residents=2000,
    desk_consultants=50,
    desk_capacity=3,
    desk_churn=1,
    crypto_relay_runs=7,
    crypto_recording_seconds=300,
    crypto_repeats=50,
    crypto_migration_chats=10_000,
)
QUICK: dict[str, Any] = dict(
    runs=1,
    consultants=5,
    thr_residents=20,
    thr_seconds=3,
    thr_max=50_000,
    residents=200,
    rate=100,
    seconds=5,
    warmup_seconds=2,
    conn_runs=1,
    connections=1000,
    archive_calls=50_000,
    archive_chats=5_000,
    archive_repeats=30,
    ingest_rows=3_000,
    ingest_recording_every=2,
    purge_residents=100,
    purge_rate=50,
    purge_quiet_seconds=4,
    purge_timeout=300,
    purge_modes=(("serve", 10_000, 1_000),),
    tui_runs=2,
    tui_search_repeats=5,
    desk_residents=500,
    desk_consultants=50,
    desk_capacity=3,
    desk_churn=1,
    crypto_recording_seconds=120,
    crypto_repeats=20,
    crypto_migration_chats=2_000,
)
#: Tiny sizes for the test suite's smoke run (seconds; numbers are only checked to be sane).
SMOKE: dict[str, Any] = dict(
    QUICK,
    consultants=2,
    thr_residents=4,
    thr_seconds=1,
    thr_max=400,
    residents=10,
    rate=20,
    seconds=1,
    warmup_seconds=1,
    connections=50,
    archive_calls=3_000,
    archive_chats=300,
    archive_repeats=5,
    ingest_rows=200,
    purge_residents=5,
    purge_rate=20,
    purge_quiet_seconds=1,
    purge_modes=(("cli", 500, 50),),
    tui_runs=1,
    tui_search_repeats=2,
    desk_residents=12,
    desk_consultants=3,
    desk_capacity=2,
    desk_churn=2,
    crypto_recording_seconds=5,
    crypto_repeats=3,
    crypto_migration_chats=30,
)
NAMES = {
    "1": "chat relay",
    "2": "connections",
    "3": "archive search",
    "4": "ingest",
    "5": "purge",
    "6": "TUI",
    "7": "phone traffic",
    "8": "desk routing",
    "9": "crypto-shredding",
}


def run_all(cfg: dict[str, Any], work: Path, cache: Path, only: set[str]) -> tuple[list[Result], dict[str, float]]:
    from bench import archive, chat, crypto, desk, ingest, purge, traffic, tui
    from bench.dataset import cached_archive

    results: list[Result] = []
    durations: dict[str, float] = {}
    loads: dict[str, tuple[float, float]] = {}

    def step(key: str, fn: Callable[[], list[Result]]) -> None:
        if key not in only:
            return
        t0 = time.monotonic()
        load_before = os.getloadavg()[0]
        log.info("benchmark %s (%s) … (load average %.1f)", key, NAMES[key], load_before)
        try:
            results.extend(fn())
        except Exception as exc:  # one broken benchmark must not hide the others' figures
            log.exception("benchmark %s failed", key)
            results.append(
                Result(
                    f"{key} {NAMES[key]}",
                    "FAILED",
                    float("nan"),
                    "",
                    note=f"{type(exc).__name__}: {str(exc)[:300]}",
                    met=False,
                )
            )
        durations[key] = time.monotonic() - t0
        loads[key] = (load_before, os.getloadavg()[0])
        log.info("benchmark %s done in %.0f s (load average %.1f)", key, durations[key], loads[key][1])

    dataset = None

    def archive_data():
        nonlocal dataset
        if dataset is None:
            dataset = cached_archive(cache, cfg["archive_calls"], cfg["archive_chats"])
        return dataset

    step("1", lambda: chat.bench_relay(work, cfg))
    step("2", lambda: chat.bench_connections(work, cfg))
    step("3", lambda: archive.bench_archive(archive_data(), cfg))
    step("4", lambda: ingest.bench_ingest(work, cfg))
    step("5", lambda: purge.bench_purge(work, cfg))
    step("6", lambda: tui.bench_startup(work, cfg) + tui.bench_search(archive_data(), cfg))
    step("7", lambda: traffic.bench_traffic(work / "traffic", cfg))  # AMI burst vs chat p99 (bench/traffic.py)
    step("8", lambda: desk.bench_desk(work, cfg))  # auto-assignment vs pick at the relay's load (bench/desk.py)
    step("9", lambda: crypto.bench_crypto(work, cfg))  # sealed vs plain: relay, recording open, migration
    return results, {"durations": durations, "loads": loads}


def merge_previous(
    report: Path, results: list[Result], conditions: dict[str, Any], only: set[str]
) -> tuple[list[Result], dict[str, Any]]:
    """This run's results for `only`, the previous report's for the others (from its embedded JSON)."""
    from bench.report import read_embedded

    previous = read_embedded(report.read_text(encoding="utf-8"))
    if previous is None:
        return results, conditions
    kept = [
        Result(**{k: v for k, v in r.items() if k != "ratio"})
        for r in previous["results"]
        if r["bench"].split()[0] not in only
    ]
    merged = sorted(kept + results, key=lambda r: r.bench.split()[0])
    for part in ("durations", "loads", "taken"):
        conditions[part] = {
            **{k: v for k, v in previous["conditions"].get(part, {}).items() if k not in only},
            **conditions[part],
        }
    return merged, conditions


def default_cache() -> Path:
    if os.environ.get("CIM_BENCH_CACHE"):
        return Path(os.environ["CIM_BENCH_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "cim-bench"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="smaller sizes (a few minutes); the default is the full run"
    )
    parser.add_argument("--only", default="1,2,3,4,5,6,7,8,9", help="comma-separated benchmark numbers (default: all)")
    parser.add_argument(
        "--cache",
        type=Path,
        default=None,
        help="where the generated archive is kept between runs (default: $CIM_BENCH_CACHE or ~/.cache/cim-bench)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=ROOT / "docs" / "BENCHMARKS.md",
        help="Markdown report to write (default: docs/BENCHMARKS.md)",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the results as JSON here")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory (server logs, data)")
    parser.add_argument(
        "--update",
        action="store_true",
        help="with --only: keep the other benchmarks' results from the existing report (each "
        "row says when it was taken), e.g. to rerun one that a busy machine spoiled",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level="INFO", format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)
    only = {x.strip() for x in args.only.split(",") if x.strip()}
    if not only <= set(NAMES):
        parser.error(f"--only takes numbers among {', '.join(NAMES)}")
    raise_fd_limit()
    cfg = QUICK if args.quick else FULL
    cache = args.cache or default_cache()
    cache.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="cim-bench-"))
    started = time.monotonic()
    try:
        results, conditions = run_all(cfg, work, cache, only)
    finally:
        if args.keep:
            log.info("scratch kept in %s", work)
        else:
            shutil.rmtree(work, ignore_errors=True)
    total = time.monotonic() - started
    command = (
        "python -m bench" + (" --quick" if args.quick else "") + (f" --only {args.only}" if only != set(NAMES) else "")
    )
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    conditions["taken"] = {key: stamp for key in conditions["durations"]}
    if args.update and args.out.is_file():
        results, conditions = merge_previous(args.out, results, conditions, only)
        command = (
            "python -m bench" + (" --quick" if args.quick else "") + f" (benchmarks {args.only} rerun with --update)"
        )
    print(render_table(results))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(render_markdown(results, machine(), command, cfg, conditions, total), encoding="utf-8")
    log.info("wrote %s (%.0f s in all)", args.out, total)
    if args.json:
        args.json.write_text(
            json.dumps(
                {"machine": machine(), "config": cfg, "seconds": total, "results": [r.as_json() for r in results]},
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
