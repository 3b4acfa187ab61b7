"""Smoke-size run of benchmark 7 (bench/traffic.py): it runs against a real `cim serve` and gives sane numbers."""

from __future__ import annotations

import math

from bench.traffic import run


async def test_the_traffic_benchmark_runs_end_to_end(tmp_path) -> None:
    out = await run(tmp_path, seconds=1.0, rate=1000, chat_rate=10)
    assert out["events_applied"] == out["events_sent"] == 1000 and out["chat_errors"] == 0
    for key in ("events_per_s", "push_delay_p99_ms", "chat_ack_p99_quiet_ms", "chat_ack_p99_burst_ms"):
        assert math.isfinite(out[key]) and out[key] > 0, (key, out)


def test_the_traffic_benchmark_gives_its_rows_inside_python_m_bench(tmp_path) -> None:
    from bench.traffic import bench_traffic

    rows = bench_traffic(tmp_path / "traffic", {"traffic_seconds": 1.0, "traffic_rate": 1000, "traffic_chat_rate": 10})
    assert [r.bench for r in rows] == ["7 phone traffic"] * 3
    assert all(math.isfinite(r.value) and r.value > 0 for r in rows) and rows[2].baseline > 0
