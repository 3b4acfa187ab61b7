"""Smoke-size run of benchmark 9 (bench/crypto.py): sealed against plain in one run, sane numbers, no timing bounds."""

from __future__ import annotations

import math
import sqlite3
from pathlib import Path

from bench.__main__ import SMOKE
from tests.test_bench_smoke import sane


def test_the_crypto_benchmark_runs_sealed_against_plain(tmp_path: Path) -> None:
    from bench.crypto import bench_crypto

    rows = bench_crypto(tmp_path, dict(SMOKE))
    sane(rows, 4)
    assert [r.bench for r in rows] == ["9 crypto-shredding"] * 4
    relay, opened, ranged, migration = rows
    assert relay.unit == "msg/s" and relay.baseline > 0 and opened.baseline > 0 and ranged.baseline > 0
    assert migration.unit == "rows/s" and math.isfinite(migration.value)
    # the baseline server really stored plain lines, the measured one sealed lines: a fair comparison
    plain = sqlite3.connect(tmp_path / "crypto-plain-0" / "cim.sqlite3")
    sealed = sqlite3.connect(tmp_path / "crypto-sealed-0" / "cim.sqlite3")
    try:
        assert {r[0] for r in plain.execute("SELECT typeof(text) FROM messages")} == {"text"}
        assert {r[0] for r in sealed.execute("SELECT typeof(text) FROM messages")} == {"blob"}
    finally:
        plain.close()
        sealed.close()
