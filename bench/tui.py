"""Benchmark 6: `cim tui` start to an interactive login screen (under a pty), and search keystroke → first page (Pilot)."""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import pty
import select
import shutil
import signal
import struct
import sys
import termios
import time
from pathlib import Path
from typing import Any

from bench.common import ROOT, Result, median, percentile
from bench.dataset import SEARCHER, Dataset

log = logging.getLogger("bench.tui")

LOGIN_MARKER = b"Sign in with your own CIM account"
BASELINE_MARKER = b"Baseline ready"
#: A minimal Textual app (a label and an input): what starting Textual itself costs on this machine.
BASELINE_APP = """
from textual.app import App
from textual.widgets import Input, Label
class Minimal(App):
    def compose(self):
        yield Label("Baseline ready")
        yield Input(placeholder="user name")
Minimal().run()
"""


def time_to_screen(argv: list[str], marker: bytes, env: dict[str, str], timeout: float = 30.0) -> float:
    """Seconds from spawning `argv` on a 100x32 pty until `marker` appears in what it draws."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: become the program
        os.chdir(ROOT)
        os.execvpe(argv[0], argv, env)
    t0 = time.monotonic()
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 32, 100, 0, 0))
    seen = b""
    try:
        while time.monotonic() - t0 < timeout:
            ready, _, _ = select.select([fd], [], [], 0.5)
            if not ready:
                continue
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            seen = (seen + chunk)[-200_000:]
            if marker in seen:
                return time.monotonic() - t0
        raise RuntimeError(f"{argv[:3]} never drew {marker!r} within {timeout}s: {seen[-300:]!r}")
    finally:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        os.waitpid(pid, 0)
        os.close(fd)


def bench_startup(work: Path, cfg: dict[str, Any]) -> list[Result]:
    data_dir = work / "tui-data"
    if not (data_dir / "cim.sqlite3").exists():
        from bench.chat import prepare_cim

        prepare_cim(data_dir, 1)
    env = {**os.environ, "TERM": "xterm-256color", "CIM_DATA_DIR": str(data_dir), "COLUMNS": "100", "LINES": "32"}
    cim = shutil.which("cim")
    argv = ([cim] if cim else [sys.executable, "-m", "cim"]) + ["tui", "--no-server"]
    product, baseline = [], []
    for _ in range(cfg["tui_runs"]):
        product.append(time_to_screen(argv, LOGIN_MARKER, env))
        baseline.append(time_to_screen([sys.executable, "-c", BASELINE_APP], BASELINE_MARKER, env))
    value, base = median(product), median(baseline)
    log.info(
        "tui startup: cim tui %.3f s (runs %s), minimal Textual app %.3f s", value, [round(x, 3) for x in product], base
    )
    return [
        Result(
            "6 TUI",
            "`cim tui` start → login screen drawn (pty, 100×32)",
            value * 1000,
            "ms",
            base * 1000,
            "minimal Textual app (label + input), same pty",
            "≤ 1,000 ms",
            value <= 1.0,
            f"subprocess under a pty until the login text is drawn; max {max(product) * 1000:.0f} ms",
            runs=[x * 1000 for x in product],
        )
    ]


async def _search_latency(ds: Dataset, repeats: int) -> list[tuple[str, list[float], list[float]]]:
    from textual.app import App
    from textual.widgets import DataTable, Input

    from store import Store
    from store.archive import SearchFilters
    from store.settings import Settings
    from tui.context import TuiContext
    from tui.screens.archive import ArchiveScreen

    settings = Settings.load(ds.data_dir, env={}, opening_hours="always")
    store = await Store.open(settings)
    actor = (await store.accounts.get(SEARCHER)).as_actor()
    ctx = TuiContext(store=store, settings=settings, actor=actor, token="")

    class ArchiveOnly(App[None]):
        def on_mount(self) -> None:
            self.push_screen(ArchiveScreen(ctx))

    cases = [
        ("exact number", "#number", ds.frequent_number, SearchFilters(number=ds.frequent_number)),
        ("consultant", "#consultant", ds.consultant, SearchFilters(consultant=ds.consultant)),
        ("partial number", "#number", ds.partial_digits, SearchFilters(number=ds.partial_digits)),
    ]
    out = []
    try:
        app = ArchiveOnly()
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.pause()
            screen = app.screen
            for label, field, text, filters in cases:
                for other in ("#number", "#consultant"):
                    screen.query_one(other, Input).value = ""
                box = screen.query_one(field, Input)
                box.value = text
                box.focus()
                await pilot.pause()
                ui, api = [], []
                for _ in range(repeats):
                    table = screen.query_one("#results", DataTable)
                    table.clear()
                    box.focus()
                    await pilot.pause()
                    ui.append(await _keystroke_to_page(app, table) * 1000)
                    t2 = time.perf_counter()
                    await store.archive.search(actor, filters)
                    api.append((time.perf_counter() - t2) * 1000)
                out.append((label, ui, api))
    finally:
        await store.close()
    return out


async def _keystroke_to_page(app: Any, table: Any, timeout: float = 30.0) -> float:
    """Seconds from Enter reaching the app (as the terminal driver delivers it) to the first frame drawn with rows.

    The frame is taken at the app's `_display` call (what writes to the terminal; headless here),
    not at Pilot's idle waits, which would add their own polling to the figure.
    """
    from textual import events

    frames: list[float] = []
    original = app._display

    def display(screen: Any, renderable: Any) -> None:
        if renderable is not None:
            frames.append(time.perf_counter())
        original(screen, renderable)

    app._display = display
    try:
        t0 = time.perf_counter()
        event = events.Key("enter", "\r")
        event.set_sender(app)
        app._driver.send_message(event)
        rows_at = None
        while time.perf_counter() - t0 < timeout:
            await asyncio.sleep(0.001)
            if rows_at is None and table.row_count > 0:
                rows_at = time.perf_counter()
            if rows_at is not None and any(f >= rows_at for f in frames):
                return next(f for f in frames if f >= rows_at) - t0
        raise AssertionError("the archive screen drew no page of results in time")
    finally:
        del app._display


def bench_search(ds: Dataset, cfg: dict[str, Any]) -> list[Result]:
    results = []
    for label, ui, api in asyncio.run(_search_latency(ds, cfg["tui_search_repeats"])):
        value = median(ui)
        log.info(
            "tui search %s: keystroke → page median %.1f p99 %.1f ms; store.archive.search median %.1f ms",
            label,
            value,
            percentile(ui, 99),
            median(api),
        )
        results.append(
            Result(
                "6 TUI",
                f"search keystroke → first page, {label} ({ds.calls + ds.chats:,} rows)",
                value,
                "ms",
                median(api),
                "store.archive.search alone",
                "≤ 150 ms",
                value <= 150,
                f"Pilot app: Enter → first frame with rows; p99 {percentile(ui, 99):.0f} ms",
                runs=ui,
            )
        )
    return results
