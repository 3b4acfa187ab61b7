"""Benchmark 9: crypto-shredding's cost (store/keys.py), encryption against without in the same run.

- chat relay: closed-loop throughput of `cim serve` (every line sealed in the group commit, residents'
  words into the blind index) against the same server with sealing switched off (bench/unsealed_serve.py);
- opening a recording from the archive: `archive.open_recording` (audited) and reading the whole file's
  plaintext, a sealed file against a plain one of the same size in the same store; and a 64 KiB range
  read (what the listening page's first Range request costs);
- the migration (`cim keys encrypt-existing`): transcript lines sealed per second, in place.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import logging
import math
import sqlite3
import time
import wave
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from bench.chat import prepare_cim
from bench.common import Result, ServerProcess, cim_server, free_port, median, run_loadgen
from bench.sqlfile import SqlFile

log = logging.getLogger("bench.crypto")


def _unsealed_server(data_dir: Path, port: int, log_path: Path) -> ServerProcess:
    import sys

    server = cim_server(data_dir, port, log_path)
    server.argv = [sys.executable, "-m", "bench.unsealed_serve", *server.argv[server.argv.index("serve") :]]
    return server


def bench_relay_sealed(work: Path, cfg: dict[str, Any]) -> list[Result]:
    thr: dict[str, list[float]] = {"sealed": [], "plain": []}
    for run in range(cfg.get("crypto_relay_runs", cfg["runs"])):
        for kind in ("plain", "sealed"):
            data = work / f"crypto-{kind}-{run}"
            tokens = prepare_cim(data, cfg["consultants"])
            port = free_port()
            server = (cim_server if kind == "sealed" else _unsealed_server)(data, port, work / f"crypto-{kind}.log")
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
                "crypto relay run=%s %s: %.0f msg/s, ack p99 %.1f ms, errors=%s lost=%s",
                run,
                kind,
                out["msg_per_s"],
                out["ack_p99_ms"],
                out["errors"],
                out["lost"],
            )
            thr[kind].append(out["msg_per_s"])
            if kind == "sealed":
                _check_sealed(data / "cim.sqlite3")
    sealed, plain = median(thr["sealed"]), median(thr["plain"])
    # each run's pair (plain, then sealed, back to back) shares the machine's load of the moment: the
    # median of the pairs' ratios is what the target is checked on (a shared 2-core machine drifts)
    paired = median([p / s for p, s in zip(thr["plain"], thr["sealed"]) if s])
    return [
        Result(
            "9 crypto-shredding",
            f"chat relay throughput, sealed, {cfg['thr_residents']} residents",
            sealed,
            "msg/s",
            plain,
            "same server, sealing off",
            "≤ 1.1× time per message (median of paired runs)",
            paired <= 1.1,
            f"time per message {paired:.3f}× unsealed (median of {len(thr['sealed'])} back-to-back pairs); each line "
            "AES-256-GCM sealed in the group commit (residents' words are indexed when a chat closes)",
            runs=thr["sealed"],
        )
    ]


def _insert_call(conn: sqlite3.Connection, kind: str, rel: str, data: bytes, seconds: float, now: datetime) -> int:
    from store.clock import to_iso

    cur = conn.execute(
        "INSERT INTO conversations(channel, status, created_at, ended_at, purge_after, direction, "
        "resident_number, number_identifiable, pbx_uniqueid, duration_s) VALUES ('call', 'ended', ?, ?, ?, "
        "'incoming', '+48600100200', 1, ?, 60)",
        (to_iso(now), to_iso(now), to_iso(now + timedelta(days=180)), f"bench-{kind}-{now.timestamp()}"),
    )
    conn.execute(
        "INSERT INTO recordings(conversation_id, pbx_uniqueid, path, sha256, size_bytes, duration_s, format, "
        "imported_at) VALUES (?, ?, ?, ?, ?, ?, 'wav', ?)",
        (
            cur.lastrowid,
            f"bench-{kind}-{now.timestamp()}",
            rel,
            hashlib.sha256(data).hexdigest(),
            len(data),
            seconds,
            to_iso(now),
        ),
    )
    return cur.lastrowid


def _check_sealed(db_path: Path) -> None:
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        kinds = dict(conn.execute("SELECT typeof(text), count(*) FROM messages GROUP BY 1").fetchall())
    finally:
        conn.close()
    if kinds.get("text"):
        raise AssertionError(f"the sealed server stored {kinds['text']} plain lines")


def _wav(seconds: float, rate: int = 8000) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        frames = bytearray()
        for i in range(int(seconds * rate)):
            frames += int(8000 * math.sin(2 * math.pi * 440 * i / rate)).to_bytes(2, "little", signed=True)
        w.writeframes(bytes(frames))
    return buf.getvalue()


async def _archive_open(work: Path, cfg: dict[str, Any]) -> list[Result]:
    from store import Store
    from store.keys import open_plain
    from store.models import Actor
    from store.sealing import seal_conversation
    from store.settings import Settings

    settings = Settings.load(work / "crypto-archive", env={}, password_profile="fast", opening_hours="always")
    store = await Store.open(settings, create=True)
    try:
        system = Actor.system("bench")
        try:
            await store.accounts.get("odsluch")
        except Exception:
            await store.accounts.add_staff(system, "odsluch", ("designated",), "bench-password-not-secret")
        actor = (await store.accounts.get("odsluch")).as_actor()
        data = _wav(cfg["crypto_recording_seconds"])
        now = datetime.now(timezone.utc)
        ids = {}
        for kind in ("plain", "sealed"):
            rel = f"bench/{kind}.wav"
            path = settings.recordings_dir / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            with SqlFile(settings.db_path) as sql:  # a call and its recording, without an ingest run
                ids[kind] = await sql.write(_insert_call, kind, rel, data, cfg["crypto_recording_seconds"], now)
            if kind == "sealed":
                await seal_conversation(store, ids[kind])

        def read_all(opened) -> int:
            with open_plain(opened.path) as fh:
                return len(fh.read())

        def read_range(path: Path) -> int:
            with open_plain(path) as fh:
                fh.seek(len(data) // 2)
                return len(fh.read(64 * 1024))

        times: dict[str, list[float]] = {"plain": [], "sealed": []}
        ranges: dict[str, list[float]] = {"plain": [], "sealed": []}
        for _ in range(cfg["crypto_repeats"]):
            for kind in ("plain", "sealed"):
                t0 = time.perf_counter()
                opened = await store.archive.open_recording(actor, ids[kind], "benchmark 9")
                size = await asyncio.to_thread(read_all, opened)
                t1 = time.perf_counter()
                if size != len(data):
                    raise AssertionError(f"{kind}: read {size} bytes of {len(data)}")
                await asyncio.to_thread(read_range, opened.path)
                t2 = time.perf_counter()
                times[kind].append((t1 - t0) * 1000)
                ranges[kind].append((t2 - t1) * 1000)
        sealed, plain = median(times["sealed"]), median(times["plain"])
        r_sealed, r_plain = median(ranges["sealed"]), median(ranges["plain"])
        return [
            Result(
                "9 crypto-shredding",
                f"open a recording ({len(data) // 1024} KiB) and read it all: median",
                sealed,
                "ms",
                plain,
                "same, plain file",
                "≤ 1.5×",
                sealed <= 1.5 * plain,
                f"archive.open_recording (audited) + the whole plaintext; {cfg['crypto_repeats']} repeats, "
                f"p90 {sorted(times['sealed'])[int(0.9 * len(times['sealed']))]:.2f} ms vs "
                f"{sorted(times['plain'])[int(0.9 * len(times['plain']))]:.2f} ms",
            ),
            Result(
                "9 crypto-shredding",
                "64 KiB range read in the middle: median",
                r_sealed,
                "ms",
                r_plain,
                "same, plain file",
                "",
                None,
                "one or two 64 KiB segments decrypted",
            ),
        ]
    finally:
        await store.close()


async def _migration(work: Path, cfg: dict[str, Any]) -> list[Result]:
    from store import Store
    from store.clock import to_iso
    from store.sealing import encrypt_existing
    from store.settings import Settings

    settings = Settings.load(work / "crypto-migration", env={}, password_profile="fast", opening_hours="always")
    store = await Store.open(settings, create=True)
    try:
        chats, lines = cfg["crypto_migration_chats"], 10
        now = datetime.now(timezone.utc)

        def fill(conn: sqlite3.Connection) -> None:  # plain lines, as written before sealing existed
            for c in range(chats):
                cur = conn.execute(
                    "INSERT INTO conversations(channel, status, created_at, ended_at, purge_after, lang, next_seq) "
                    "VALUES ('chat', 'closed', ?, ?, ?, 'pl', ?)",
                    (to_iso(now), to_iso(now), to_iso(now + timedelta(days=180)), lines + 1),
                )
                conn.executemany(
                    "INSERT INTO messages(conversation_id, seq, sender, text, at) VALUES (?, ?, ?, ?, ?)",
                    [
                        (
                            cur.lastrowid,
                            s,
                            "resident" if s % 2 else "consultant",
                            f"Dzień dobry, mam pytanie o podatek od nieruchomości numer {c}-{s}, ul. Łąkowa {s}",
                            to_iso(now),
                        )
                        for s in range(1, lines + 1)
                    ],
                )

        with SqlFile(settings.db_path) as sql:
            await sql.write(fill)
        result = await encrypt_existing(store)
        if result.lines_sealed != chats * lines:
            raise AssertionError(f"sealed {result.lines_sealed} of {chats * lines} lines")
        return [
            Result(
                "9 crypto-shredding",
                f"migration: lines sealed in place ({chats * lines:,} lines)",
                result.rows_per_second,
                "rows/s",
                None,
                "",
                "",
                None,
                f"`cim keys encrypt-existing`: {result.keys_created} data keys created, batches of 500 lines "
                f"(half residents' lines, word-indexed); {result.seconds:.2f} s",
            )
        ]
    finally:
        await store.close()


def bench_crypto(work: Path, cfg: dict[str, Any]) -> list[Result]:
    results = bench_relay_sealed(work, cfg)
    results += asyncio.run(_archive_open(work, cfg))
    results += asyncio.run(_migration(work, cfg))
    return results
