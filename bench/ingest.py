"""Benchmark 4: Asterisk CDR ingestion with recordings through store.calls, against the disk (`cp -r` of the same
recordings + one `sync`) and against a plain executemany of the same rows, all measured in the same run."""

from __future__ import annotations

import asyncio
import csv
import logging
import random
import shutil
import sqlite3
import subprocess
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from bench.common import Result, median
from store.calls import ASTERISK_DEFAULT_EXTRA, ASTERISK_FIXED

log = logging.getLogger("bench.ingest")

COLUMNS = ASTERISK_FIXED + ASTERISK_DEFAULT_EXTRA  # the default cdr_csv layout (18 columns)
#: Asterisk's own prompt (Debian's asterisk-core-sounds-en-gsm) gives real GSM frames; synthetic ones otherwise.
PROMPT = next(
    (p for p in sorted(Path("/usr/share/asterisk/sounds").glob("en*/vm-intro.gsm"))),
    Path("/usr/share/asterisk/sounds/en/vm-intro.gsm"),
)
GSM_FRAME = 33
FRAMES_PER_SECOND = 50


def _quoted(value: str) -> str:
    return '"' + value.replace('"', '""') + '"'


def _gsm_frames() -> bytes:
    """Real GSM 06.10 frames to repeat (Asterisk's vm-intro prompt), or frames with the 0xD signature."""
    try:
        data = PROMPT.read_bytes()
        if data and len(data) % GSM_FRAME == 0:
            return data
    except OSError:
        pass
    return (b"\xd0" + bytes(GSM_FRAME - 1)) * 250


def write_spool(root: Path, rows: int, recording_every: int, seed: int = 4) -> tuple[Path, Path, int, int]:
    """A PBX spool: Master.csv in cdr_csv's format and a monitor folder with a raw GSM recording (MixMonitor's
    `gsm`, 1,650 bytes a second) as long as the call's talk time for some answered calls."""
    rng = random.Random(seed)
    monitor = root / "monitor"
    monitor.mkdir(parents=True)
    cdr = root / "Master.csv"
    start = datetime(2026, 11, 2, 7, 30)
    files = size = 0
    frames = _gsm_frames()
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
            fields = [
                "",
                src,
                "800",
                "from-trunk",
                f'"Mieszkaniec" <{src}>',
                f"PJSIP/trunk-{i:08x}",
                f"PJSIP/{ext}-{i:08x}",
                "Queue",
                "cim,t",
                f"{moment:%Y-%m-%d %H:%M:%S}",
                answer,
                f"{moment + timedelta(seconds=duration):%Y-%m-%d %H:%M:%S}",
                str(duration),
                str(billsec),
                "ANSWERED" if answered else "NO ANSWER",
                "DOCUMENTATION",
                uniqueid,
                "cim:notice=1;full=0",
            ]
            out.write(",".join(f if f.isdigit() or not f else _quoted(f) for f in fields) + "\n")
            if answered and i % recording_every == 0:
                need = billsec * FRAMES_PER_SECOND * GSM_FRAME
                body = (frames * (need // len(frames) + 1))[:need]
                (monitor / f"{uniqueid}.gsm").write_bytes(body)
                files += 1
                size += need
    return cdr, monitor, files, size


async def _fresh_store(data_dir: Path) -> Any:
    from store import Store
    from store.models import Actor
    from store.settings import Settings

    store = await Store.open(Settings.load(data_dir, env={}, password_profile="fast"), create=True)
    system = Actor.system("bench")
    await store.accounts.add_department(system, "WO", "Wydział Obsługi Mieszkańców")
    for i in range(40):
        await store.accounts.add_staff(
            system,
            f"konsultant{i:02d}",
            ("consultant",),
            "bench-password-x",
            department="WO",
            extensions=(str(201 + i),),
        )
    return store


async def _product(data_dir: Path, cdr: Path, monitor: Path | None, move: bool = False) -> tuple[float, Any]:
    from store.models import Actor

    store = await _fresh_store(data_dir)
    try:
        src = store.calls.source("asterisk", cdr, monitor, move=move)
        t0 = time.perf_counter()
        report = await store.calls.ingest(Actor.system("bench-ingest"), src)
        return time.perf_counter() - t0, report
    finally:
        await store.close()


def _disk_baseline(monitor: Path, dest: Path) -> float:
    """`cp -r` of the same recordings and one `sync`: what the disk allows for making them durable."""
    t0 = time.perf_counter()
    subprocess.run(["cp", "-r", str(monitor), str(dest)], check=True)
    subprocess.run(["sync"], check=True)
    return time.perf_counter() - t0


async def _executemany_baseline(data_dir: Path, cdr: Path) -> float:
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
            rows.append(
                (
                    v["start"],
                    v["end"],
                    v["end"],
                    v["src"],
                    v["uniqueid"],
                    v["disposition"],
                    int(v["duration"]),
                    int(v["billsec"]),
                )
            )
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany(
        "INSERT INTO conversations(channel, status, created_at, ended_at, purge_after, direction, "
        "resident_number, pbx_uniqueid, disposition, duration_s, billsec_s) "
        "VALUES ('call', 'ended', ?, ?, ?, 'incoming', ?, ?, ?, ?, ?)",
        rows,
    )
    conn.execute("COMMIT")
    conn.close()
    return time.perf_counter() - t0


def bench_ingest(work: Path, cfg: dict[str, Any]) -> list[Result]:
    rows = cfg["ingest_rows"]
    spool = work / "spool"
    if spool.exists():
        shutil.rmtree(spool)
    cdr, monitor, files, size = write_spool(spool, rows, cfg["ingest_recording_every"])
    product, disk, plain, executemany, moved = [], [], [], [], []
    last = None
    for run in range(cfg["runs"]):
        for name in ("product", "disk", "move", "executemany", "rows-only"):
            data_dir = work / f"ingest-{name}-{run}"
            copy = work / f"ingest-copy-{run}"
            for folder in (data_dir, copy) if name == "disk" else (data_dir,):
                if folder.exists():
                    shutil.rmtree(folder)
            # every measurement starts with nothing left to write back (the spool, the previous run)
            subprocess.run(["sync"], check=True)
            if name == "product":
                seconds, last = asyncio.run(_product(data_dir, cdr, monitor))
                product.append(rows / seconds)
            elif name == "disk":
                seconds = _disk_baseline(monitor, copy)
                disk.append(rows / seconds)
            elif name == "move":
                # --move from the disk baseline's copy (same filesystem): hard links instead of copies
                seconds, report = asyncio.run(_product(data_dir, cdr, copy, move=True))
                moved.append(rows / seconds)
                shutil.rmtree(copy, ignore_errors=True)
            elif name == "rows-only":
                seconds, report = asyncio.run(_product(data_dir, cdr, None))
                plain.append(rows / seconds)
            else:
                seconds = asyncio.run(_executemany_baseline(data_dir, cdr))
                executemany.append(rows / seconds)
            shutil.rmtree(data_dir, ignore_errors=True)
            log.info("ingest run=%s %s: %.0f rows/s (%.2f s)", run, name, rows / seconds, seconds)
    value, base, rows_base = median(product), median(disk), median(executemany)
    # the disk is shared with other work: each run's own ratio says how much of the spread is the machine
    per_run = ", ".join(f"{p / d:.2f}×" for p, d in zip(product, disk))
    assert last is not None
    mb = size / 1e6
    return [
        Result(
            "4 ingest",
            f"CDR rows/s with recordings ({rows:,} rows, {files:,} raw GSM files, {mb:,.0f} MB)",
            value,
            "rows/s",
            base,
            "`cp -r` of the same recordings + one `sync`",
            "≥ 0.5× baseline",
            value >= 0.5 * base,
            f"every recording durable (syncfs or parallel fsyncs, then its folder) before its row commits; "
            f"imported {last.imported}, recordings {last.recordings}, rejected {len(last.rejected)}; "
            f"with --move (hard links): {median(moved):,.0f} rows/s; each run's ratio: {per_run}",
            runs=product,
        ),
        Result(
            "4 ingest",
            f"CDR rows/s with recordings vs the rows alone ({rows:,} rows)",
            value,
            "rows/s",
            rows_base,
            "plain executemany of the same rows (no recordings)",
            "(reported)",
            None,
            f"rows only through store.calls (no recordings folder): {median(plain):,.0f} rows/s",
            runs=product,
        ),
    ]
