"""Benchmark 4: Asterisk CDR ingestion with recordings through store.calls vs a plain executemany of the same rows."""

from __future__ import annotations

import asyncio
import csv
import logging
import random
import shutil
import sqlite3
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from bench.common import Result, median
from bench.dataset import EMPTY_WAV

log = logging.getLogger("bench.ingest")

COLUMNS = ("accountcode", "src", "dst", "dcontext", "clid", "channel", "dstchannel", "lastapp", "lastdata",
           "start", "answer", "end", "duration", "billsec", "disposition", "amaflags", "uniqueid", "userfield")


def _quoted(value: str) -> str:
    return '"' + value.replace('"', '""') + '"'


def write_spool(root: Path, rows: int, recording_every: int, seed: int = 4) -> tuple[Path, Path, int]:
    """A PBX spool: Master.csv in cdr_csv's format and a monitor folder with small WAVs for some answered calls."""
    rng = random.Random(seed)
    monitor = root / "monitor"
    monitor.mkdir(parents=True)
    cdr = root / "Master.csv"
    start = datetime(2026, 11, 2, 7, 30)
    files = 0
    with open(cdr, "w", encoding="utf-8", newline="") as out:
        for i in range(rows):
            moment = start + timedelta(seconds=i * 7)
            src = str(rng.choice((5, 6, 7, 8))) + "".join(rng.choice("0123456789") for _ in range(8))
            answered = rng.random() < 0.8
            billsec = rng.randint(20, 400) if answered else 0
            duration = billsec + rng.randint(3, 30)
            ext = 201 + rng.randrange(40)
            uniqueid = f"{int(moment.timestamp())}.{i}"
            answer = f"{moment + timedelta(seconds=duration - billsec):%Y-%m-%d %H:%M:%S}" if answered else ""
            fields = ["", src, "800", "from-trunk", f'"Mieszkaniec" <{src}>', f"PJSIP/trunk-{i:08x}",
                      f"PJSIP/{ext}-{i:08x}", "Queue", "cim,t", f"{moment:%Y-%m-%d %H:%M:%S}", answer,
                      f"{moment + timedelta(seconds=duration):%Y-%m-%d %H:%M:%S}", str(duration), str(billsec),
                      "ANSWERED" if answered else "NO ANSWER", "DOCUMENTATION", uniqueid, "cim:notice=1;full=0"]
            out.write(",".join(f if f.isdigit() or not f else _quoted(f) for f in fields) + "\n")
            if answered and i % recording_every == 0:
                (monitor / f"{uniqueid}.wav").write_bytes(EMPTY_WAV)
                files += 1
    return cdr, monitor, files


async def _fresh_store(data_dir: Path) -> Any:
    from store import Store
    from store.models import Actor
    from store.settings import Settings

    store = await Store.open(Settings.load(data_dir, env={}, password_profile="fast"), create=True)
    system = Actor.system("bench")
    await store.accounts.add_department(system, "WO", "Wydział Obsługi Mieszkańców")
    for i in range(40):
        await store.accounts.add_staff(system, f"konsultant{i:02d}", ("consultant",), "bench-password-x",
                                       department="WO", extensions=(str(201 + i),))
    return store


async def _product(data_dir: Path, cdr: Path, monitor: Path) -> tuple[float, Any]:
    from store.models import Actor

    store = await _fresh_store(data_dir)
    try:
        src = store.calls.source("asterisk", cdr, monitor)
        t0 = time.perf_counter()
        report = await store.calls.ingest(Actor.system("bench-ingest"), src)
        return time.perf_counter() - t0, report
    finally:
        await store.close()


async def _baseline(data_dir: Path, cdr: Path) -> float:
    """Parse the same CSV and executemany its rows into conversations, one transaction, same database settings."""
    store = await _fresh_store(data_dir)
    await store.close()
    t0 = time.perf_counter()
    conn = sqlite3.connect(data_dir / "cim.sqlite3", isolation_level=None)
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    rows = []
    with open(cdr, encoding="utf-8", newline="") as fh:
        for f in csv.reader(fh):
            v = dict(zip(COLUMNS, f))
            rows.append((v["start"], v["end"], v["end"], v["src"], v["uniqueid"], v["disposition"],
                         int(v["duration"]), int(v["billsec"])))
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany("INSERT INTO conversations(channel, status, created_at, ended_at, purge_after, direction, "
                     "resident_number, pbx_uniqueid, disposition, duration_s, billsec_s) "
                     "VALUES ('call', 'ended', ?, ?, ?, 'incoming', ?, ?, ?, ?, ?)", rows)
    conn.execute("COMMIT")
    conn.close()
    return time.perf_counter() - t0


def bench_ingest(work: Path, cfg: dict[str, Any]) -> list[Result]:
    rows = cfg["ingest_rows"]
    spool = work / "spool"
    if spool.exists():
        shutil.rmtree(spool)
    cdr, monitor, files = write_spool(spool, rows, cfg["ingest_recording_every"])
    product, baseline, plain = [], [], []
    last = None
    for run in range(cfg["runs"]):
        for name in ("product", "baseline", "rows-only"):
            data_dir = work / f"ingest-{name}-{run}"
            if data_dir.exists():
                shutil.rmtree(data_dir)
            if name == "product":
                seconds, last = asyncio.run(_product(data_dir, cdr, monitor))
                product.append(rows / seconds)
            elif name == "rows-only":
                seconds, report = asyncio.run(_product(data_dir, cdr, None))
                plain.append(rows / seconds)
            else:
                seconds = asyncio.run(_baseline(data_dir, cdr))
                baseline.append(rows / seconds)
            shutil.rmtree(data_dir, ignore_errors=True)
            log.info("ingest run=%s %s: %.0f rows/s", run, name, rows / seconds)
    value, base = median(product), median(baseline)
    assert last is not None
    ok = value >= 0.3 * base and value >= 20_000
    return [Result("4 ingest", f"CDR rows/s with recordings ({rows:,} rows, {files:,} WAVs)", value, "rows/s", base,
                   "plain executemany of the same rows", "≥ 0.3× baseline and ≥ 20,000 rows/s", ok,
                   f"imported {last.imported}, recordings {last.recordings}, rejected {len(last.rejected)}; "
                   f"rows only (no recordings folder): {median(plain):,.0f} rows/s", runs=product)]
