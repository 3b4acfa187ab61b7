"""Smoke-size run of benchmark 8 (bench/desk.py): auto-assignment and pick mode both run, seats are refilled
while the load goes on, and the figures are sane. No timing bounds here."""

from __future__ import annotations

import math
from pathlib import Path

from bench.__main__ import NAMES, SMOKE


def test_the_desk_benchmark_runs_both_modes(tmp_path: Path) -> None:
    from bench.desk import bench_desk

    (result,) = bench_desk(tmp_path, dict(SMOKE))
    assert result.bench == "8 desk routing" and NAMES["8"] == "desk routing"
    assert math.isfinite(result.value) and result.value > 0
    assert result.baseline is not None and math.isfinite(result.baseline) and result.baseline > 0
    assert result.met in (True, False)
    assert "lost 0" in result.note and "errors 0" in result.note, result.note
    refilled = int(result.note.split(" seats refilled")[0].rsplit(" ", 1)[1])
    assert refilled > 0, result.note  # the server gave freed seats to waiting chats during the window
