"""`cim serve` tunes Python's garbage collector after start-up (cim/commands/serve.py GC_THRESHOLDS; the
reason and the figures are in bench/FINDINGS.md finding 11). Checked in a separate interpreter, since the
settings are process-wide and pytest's own must stay Python's defaults."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_tuning_freezes_the_start_up_objects_and_sets_the_thresholds() -> None:
    probe = (
        "import gc, json\n"
        "from cim.commands.serve import GC_THRESHOLDS, tune_garbage_collector\n"
        "before = gc.get_threshold()\n"
        "tune_garbage_collector()\n"
        "print(json.dumps({'before': before, 'after': gc.get_threshold(), 'wanted': GC_THRESHOLDS,"
        " 'frozen': gc.get_freeze_count()}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True
    )
    seen = json.loads(out.stdout)
    assert seen["before"] == [700, 10, 10]  # Python's defaults: the tuning is not applied at import
    assert seen["after"] == seen["wanted"] and seen["after"][0] > seen["before"][0]
    assert seen["frozen"] > 10_000  # the modules, classes and functions of the server
