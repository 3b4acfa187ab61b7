"""The results table: plain text for the terminal and Markdown for docs/BENCHMARKS.md."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import Any

from bench.common import Result

#: Hand-written findings (profiles, fixes with before/after), appended to the generated report.
FINDINGS = Path(__file__).with_name("FINDINGS.md")


def _num(value: float | None, unit: str = "") -> str:
    if value is None or value != value:
        return "–"
    if abs(value) >= 1000:
        text = f"{value:,.0f}"
    elif abs(value) >= 100:
        text = f"{value:.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    else:
        text = f"{value:.2f}"
    return f"{text} {unit}".strip()


def _met(r: Result) -> str:
    return "–" if r.met is None else ("met" if r.met else "MISSED")


def _ratio(r: Result) -> str:
    return "–" if r.ratio is None else f"{r.ratio:.2f}×"


def render_table(results: list[Result]) -> str:
    header = ("benchmark", "measurement", "value", "baseline", "ratio", "target", "")
    rows = [header] + [
        (
            r.bench,
            r.metric,
            _num(r.value, r.unit),
            _num(r.baseline, r.unit if r.baseline else ""),
            _ratio(r),
            r.target,
            _met(r),
        )
        for r in results
    ]
    widths = [min(60, max(len(str(row[i])) for row in rows)) for i in range(len(header))]
    lines = []
    for n, row in enumerate(rows):
        lines.append("  ".join(str(cell)[: widths[i]].ljust(widths[i]) for i, cell in enumerate(row)))
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def render_markdown(
    results: list[Result],
    machine: dict[str, str],
    command: str,
    cfg: dict[str, Any],
    conditions: dict[str, dict],
    total: float,
) -> str:
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    met = sum(1 for r in results if r.met)
    missed = sum(1 for r in results if r.met is False)
    out = [
        "# CIM benchmarks",
        "",
        f"Written by `{command}` on {now} ({total / 60:.1f} minutes). Do not edit by hand: rerun the command; "
        "the findings below come from `bench/FINDINGS.md`."
        + (
            " Benchmarks not rerun keep the rows of the previous full run (`python -m bench`); when each was "
            "taken, and the machine's load then, is listed under the table."
            if "--update" in command
            else ""
        ),
        "",
        "## Machine",
        "",
        f"- CPUs: {machine['nproc']} × {machine['cpu']}",
        f"- RAM: {machine['ram']}",
        f"- Python {machine['python']}, SQLite {machine['sqlite']}, {machine['os']}",
        "- Servers (`cim serve`, the baseline relay) run pinned to CPU 0, the load generator to CPU 1; both are "
        "separate processes from the bench runner.",
        "",
        f"## Results ({met} met, {missed} missed)",
        "",
        "Values are medians over the runs shown; a baseline is measured in the same run on the same machine. "
        "The ratio is value ÷ baseline.",
        "",
        "| # | measurement | value | baseline | ratio | target | | notes |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        base = f"{_num(r.baseline, r.unit)} ({r.baseline_label})" if r.baseline is not None else "–"
        runs = ", ".join(_num(x) for x in r.runs) if len(r.runs) > 1 else ""
        note = r.note + (f"; runs: {runs}" if runs else "")
        out.append(
            f"| {r.bench} | {r.metric} | **{_num(r.value, r.unit)}** | {base} | {_ratio(r)} | {r.target} | "
            f"{'✅ met' if r.met else ('❌ missed' if r.met is False else '–')} | {note.replace('|', '/')} |"
        )
    out += [
        "",
        "## Sizes of this run",
        "",
        "```",
        *(f"{k} = {v}" for k, v in cfg.items()),
        "```",
        "",
        "Time per benchmark and the machine's 1-minute load average at its start → end (2 cores: above "
        "about 2, other processes were competing for the CPUs and the figures are pessimistic):",
        "",
        *(
            f"- {k}: {v:.0f} s, load {conditions['loads'][k][0]:.1f} → {conditions['loads'][k][1]:.1f}, "
            f"taken {conditions.get('taken', {}).get(k, '?')}"
            for k, v in sorted(conditions["durations"].items())
        ),
        "",
    ]
    if FINDINGS.is_file():
        out += [FINDINGS.read_text(encoding="utf-8").rstrip(), ""]
    embedded = {"results": [r.as_json() for r in results], "conditions": conditions}
    out += [f"<!-- bench-results {json.dumps(embedded, ensure_ascii=False)} -->", ""]
    return "\n".join(out)


def read_embedded(text: str) -> dict[str, Any] | None:
    """The results a previous report embedded (for `--update`), or None."""
    match = re.search(r"<!-- bench-results (\{.*\}) -->", text)
    return json.loads(match.group(1)) if match else None
