"""A purge tells the truth about remnants: a concurrent reader that pins old pages makes the run
incomplete (exit 3, `"remnants_cleared": false`, audited, on F5) and the next purge scrubs first."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sqlite3
import subprocess
import sys
import threading
from datetime import date, datetime, timezone
from pathlib import Path

import pytest
from textual.widgets import Static

from store import Store
from store.models import Actor
from store.settings import Settings
from tests.fixtures.retention import RetentionData
from tests.fixtures.store import PASSWORD
from tests.fixtures.tui import notifications, sign_in, wait_until
from tui.screens.retention import RetentionScreen
from tui.widgets.modals import ConfirmModal

OLD = datetime(2025, 8, 31, 10, 0, tzinfo=timezone.utc)  # due at the fixture clock (2026-03-02)
SYSTEM = Actor.system("tests")
MARKER = "RESZTKA-5c2e81-Źdźbło-tekst-mieszkańca"
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """The store fixture's settings, with a one-second scrub wait so a pinned WAL fails fast."""
    return Settings.load(
        tmp_path / "data", env={}, password_profile="fast", opening_hours="always", purge_scrub_wait_seconds=1
    )


def db_files(settings: Settings) -> list[Path]:
    return [p for p in (settings.db_path, Path(f"{settings.db_path}-wal")) if p.exists()]


def marker_in_files(settings: Settings) -> list[str]:
    return [p.name for p in db_files(settings) if MARKER.encode() in p.read_bytes()]


class Reader:
    """A second SQLite connection on its own thread holding BEGIN + SELECT (an admin's sqlite3 shell)."""

    def __init__(self, db_path: Path) -> None:
        self.db_path = db_path
        self.holding = threading.Event()
        self.release = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        conn = sqlite3.connect(self.db_path, isolation_level=None)
        try:
            conn.execute("BEGIN")
            conn.execute("SELECT count(*) FROM messages").fetchall()
            self.holding.set()
            self.release.wait()
            conn.execute("COMMIT")
        finally:
            conn.close()

    def __enter__(self) -> "Reader":
        self.thread.start()
        assert self.holding.wait(10), "the reader never began its transaction"
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.thread.join(10)


async def audit_rows(store: Store, action: str) -> list[sqlite3.Row]:
    return await store.db.fetchall(
        "SELECT id, outcome, actor_name, details FROM audit WHERE action = ? ORDER BY id", (action,)
    )


@pytest.mark.ordinance("§6")
async def test_reader_holding_the_wal_makes_the_purge_incomplete_and_the_next_purge_scrubs_first(
    store, settings, retention_data
):
    for _ in range(3):
        await retention_data.chat(OLD, texts=(MARKER, "zwykły tekst"))
    with Reader(settings.db_path):
        result = await store.retention.purge(SYSTEM)
        assert result.chats == 3  # the rows are gone ...
        assert result.remnants_cleared is False and result.as_json()["remnants_cleared"] is False
        assert marker_in_files(settings)  # ... but the text is still on disk: that is what the run must admit
        (failed,) = await audit_rows(store, "retention.purge_scrub")
        assert failed["outcome"] == "failed" and json.loads(failed["details"])["runs"] == [result.run_id]
        run = await store.db.fetchone("SELECT status, remnants_pending FROM purge_runs WHERE id = ?", (result.run_id,))
        assert (run["status"], run["remnants_pending"]) == ("finished", 1)
        assert (await store.retention.preview(SYSTEM)).remnant_runs == (result.run_id,)
        dry = await store.retention.purge(SYSTEM, dry_run=True)
        assert dry.remnants_cleared is False  # a dry run reports the state, changes nothing
        report = await store.reports.supervision(SYSTEM, date(2026, 3, 1), date(2026, 3, 31))
        assert [p.status for p in report.purges] == ["finished (remnants pending)"]  # the director sees it too

    daily = await store.retention.purge(Actor.system("daily-purge"))  # what the daily loop calls
    assert daily.remnants_cleared is True and daily.chats == 0
    assert marker_in_files(settings) == []
    scrubs = await audit_rows(store, "retention.purge_scrub")
    assert [s["outcome"] for s in scrubs] == ["failed", "ok"]
    retried = json.loads(scrubs[1]["details"])
    assert retried["retry"] is True and retried["runs"] == [result.run_id]
    started = await audit_rows(store, "retention.purge_started")
    assert scrubs[1]["id"] < started[-1]["id"]  # the scrub was retried before the new run began
    assert (await store.retention.preview(SYSTEM)).remnant_runs == ()
    assert (await store.audit.verify()).ok


@pytest.mark.ordinance("§6")
async def test_a_reader_that_ends_while_the_purge_waits_lets_it_reach_no_remnant(tmp_path, clock):
    settings = Settings.load(
        tmp_path / "data", env={}, password_profile="fast", opening_hours="always", purge_scrub_wait_seconds=60
    )
    store = await Store.open(settings, create=True, clock=clock)
    try:
        for _ in range(2):
            await RetentionData(store).chat(OLD, texts=(MARKER,))
        reader = Reader(settings.db_path)

        class ReleaseWhenWaiting(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                if "waits up to" in record.getMessage():
                    reader.release.set()  # the purge has found the WAL pinned: the report ends now

        handler = ReleaseWhenWaiting(logging.INFO)
        logger = logging.getLogger("store.retention")
        old_level = logger.level
        logger.setLevel(logging.INFO)
        logger.addHandler(handler)
        try:
            with reader:
                result = await store.retention.purge(SYSTEM)
        finally:
            logger.removeHandler(handler)
            logger.setLevel(old_level)
        assert reader.release.is_set()  # the purge really met the reader and waited for it
        assert result.remnants_cleared is True and result.chats == 2
        assert marker_in_files(settings) == []
        assert await audit_rows(store, "retention.purge_scrub") == []
    finally:
        await store.close()


READER_PROCESS = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN")
conn.execute("SELECT count(*) FROM messages").fetchall()
print("holding", flush=True)
sys.stdin.readline()
conn.execute("COMMIT")
"""


def cim(data_dir: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cim", *args, "--data-dir", str(data_dir)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), "CIM_PASSWORD_PROFILE": "fast", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.ordinance("§6")
def test_cim_purge_exits_3_while_a_sqlite3_shell_reads_and_0_once_the_retry_scrubs(tmp_path):
    data_dir = tmp_path / "d"
    assert cim(data_dir, "init").returncode == 0
    settings = Settings.load(data_dir, env={})

    async def seed() -> None:
        store = await Store.open(settings)
        try:
            for _ in range(3):
                maker = RetentionData(store)
                maker.seal = False  # plaintext from before sealing: the scrub itself must leave no remnant
                await maker.chat(OLD, texts=(MARKER,))
        finally:
            await store.close()

    asyncio.run(seed())
    shell = subprocess.Popen(
        [sys.executable, "-c", READER_PROCESS, str(settings.db_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert shell.stdout.readline().strip() == "holding"
        first = cim(data_dir, "purge", "--json", CIM_PURGE_SCRUB_WAIT_SECONDS="1")
        assert first.returncode == 3, first.stderr
        document = json.loads(first.stdout)
        assert document["remnants_cleared"] is False and document["purged"]["chats"] == 3
        assert "incomplete" in first.stderr and "read transaction" in first.stderr
        assert marker_in_files(settings)
        text = cim(data_dir, "purge", CIM_PURGE_SCRUB_WAIT_SECONDS="1")
        assert text.returncode == 3 and text.stdout.startswith("purged 0 calls, 0 chat transcripts")
    finally:
        shell.stdin.write("\n")
        shell.stdin.close()
        shell.wait(10)
    dry = cim(data_dir, "purge", "--dry-run", "--json")
    assert dry.returncode == 0 and json.loads(dry.stdout)["remnants_cleared"] is False
    retry = cim(data_dir, "purge", "--json")
    assert retry.returncode == 0, retry.stderr
    assert json.loads(retry.stdout)["remnants_cleared"] is True
    assert marker_in_files(settings) == []
    with sqlite3.connect(settings.db_path) as conn:
        outcomes = [
            r[0] for r in conn.execute("SELECT outcome FROM audit WHERE action = 'retention.purge_scrub' ORDER BY id")
        ]
    assert outcomes[0] == "failed" and outcomes[-1] == "ok"


async def test_f5_shows_an_incomplete_purge_until_a_purge_scrubs(tui_app, make_staff, retention_data, store, settings):
    await make_staff("kierownik", "cim_manager")
    await retention_data.chat(OLD, texts=(MARKER,))
    with Reader(settings.db_path):
        run_id = (await store.retention.purge(SYSTEM)).run_id
    app = tui_app()
    async with app.run_test(size=(140, 40)) as pilot:
        await sign_in(pilot, "kierownik", PASSWORD)
        await pilot.press("f5")
        screen = await wait_until(pilot, lambda: isinstance(app.screen, RetentionScreen) and app.screen)
        preview = screen.query_one("#preview", Static)
        await wait_until(pilot, lambda: "INCOMPLETE" in str(preview.render()), what="the remnants line")
        assert f"run {run_id} remains in the database files" in str(preview.render())
        await pilot.press("p")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmModal), what="the confirmation")
        await pilot.press("y")
        await wait_until(pilot, lambda: screen.last_result is not None, what="the purge to finish")
        assert screen.last_result.remnants_cleared
        await wait_until(pilot, lambda: "INCOMPLETE" not in str(preview.render()), what="the line to go")
        assert any("Purged 0 calls" in n for n in notifications(app))
    assert marker_in_files(settings) == []
