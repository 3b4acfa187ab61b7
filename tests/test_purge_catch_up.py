"""The daily purge makes up a run that did not happen (§6: nothing stays past its date because a node was down
or killed at the hour): at its start the daily loop checks the last due run (store/retention.py
`daily_run_missed`) and runs it now when it was cut off, failed, or missed while the daily purge had run before.
The two-node case (the purge's leader killed mid-run, the other node finishing) is in tests/test_two_nodes.py."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import pytest

from store import Store
from store.clock import ManualClock
from store.models import Actor
from store.retention import DAILY_PURGE_NAME, daily_purge_loop
from store.settings import Settings
from store.tasks import stop_task
from tests.fixtures.retention import RetentionData

OLD = datetime(2025, 8, 31, 10, 0, tzinfo=timezone.utc)  # long past its purge date at the fixture clock
DAILY = Actor.system(DAILY_PURGE_NAME)
OPERATOR = Actor.system("tests")


async def _real_runs(store: Store) -> list[tuple[str, str]]:
    rows = await store.db.fetchall("SELECT started_by, status FROM purge_runs WHERE dry_run = 0 ORDER BY id")
    return [(r["started_by"], r["status"]) for r in rows]


async def _conversations(store: Store) -> int:
    return (await store.db.fetchone("SELECT count(*) AS n FROM conversations"))["n"]


async def _loop_for(store: Store, settings: Settings, seconds: float) -> None:
    task = asyncio.get_running_loop().create_task(daily_purge_loop(store, settings))
    try:
        await asyncio.sleep(seconds)
    finally:
        assert await stop_task(task, name="daily-purge-test", grace=5)


def _daily(settings: Settings) -> Settings:
    return settings.with_(purge_daily_at="02:30", timezone="Europe/Warsaw")


@pytest.mark.ordinance("§6")
async def test_a_night_missed_while_no_node_ran_is_made_up_at_the_start(
    store: Store, settings: Settings, clock: ManualClock, retention_data: RetentionData
) -> None:
    await store.retention.purge(DAILY)  # the daily purge ran on 2 March (the fixture clock: 09:00 UTC)
    await retention_data.call(OLD)
    clock.advance(days=2)  # down over the nights of 3 and 4 March
    missed = datetime(2026, 3, 4, 1, 30, tzinfo=timezone.utc)  # 02:30 in Warsaw
    assert await store.retention.daily_run_missed(missed)
    await _loop_for(store, _daily(settings), 1.0)
    assert await _real_runs(store) == [("system:daily-purge", "finished")] * 2
    assert await _conversations(store) == 0
    assert not await store.retention.daily_run_missed(missed)


@pytest.mark.ordinance("§6")
async def test_a_run_cut_off_since_the_last_due_hour_is_finished_at_the_start(
    store: Store, settings: Settings, clock: ManualClock, retention_data: RetentionData
) -> None:
    """A node killed mid-run leaves its run 'running' (the next purge marks it failed): made up at once."""
    for _ in range(3):
        await retention_data.call(OLD)
    async with store.db.write() as tx:  # the row a SIGKILLed run leaves (a real kill: tests/test_two_nodes.py)
        await tx.execute(
            "INSERT INTO purge_runs(started_at, cutoff, dry_run, started_by, status)"
            " VALUES ('2026-03-02T01:31:00.000000Z', '2026-03-02T01:31:00.000000Z', 0, 'system:daily-purge', 'running')"
        )
    await _loop_for(store, _daily(settings), 1.0)
    assert await _real_runs(store) == [("system:daily-purge", "failed"), ("system:daily-purge", "finished")]
    assert await _conversations(store) == 0


async def test_a_finished_run_since_the_due_hour_or_no_history_means_no_early_run(
    store: Store, settings: Settings, clock: ManualClock, retention_data: RetentionData
) -> None:
    await retention_data.call(OLD)
    await _loop_for(store, _daily(settings), 0.5)  # a new installation: the first run is at 02:30
    assert await _real_runs(store) == [] and await _conversations(store) == 1
    await store.retention.purge(OPERATOR)  # an operator's run after today's 02:30 counts as today's
    await retention_data.call(OLD)
    await _loop_for(store, _daily(settings), 0.5)
    assert await _real_runs(store) == [("system:tests", "finished")] and await _conversations(store) == 1


async def test_a_run_refused_by_another_purges_lock_is_tried_again_soon(
    store: Store, settings: Settings, clock: ManualClock, retention_data: RetentionData, monkeypatch
) -> None:
    """Another process holds the purge lock (a node that stopped answering): the loop does not wait a day."""
    import store.retention as retention

    monkeypatch.setattr(retention, "CATCH_UP_RETRY_SECONDS", 0.2)
    await store.retention.purge(DAILY)
    await retention_data.call(OLD)
    clock.advance(days=1)
    lock = retention._FileLock(settings.data_dir / "purge.lock")
    lock.__enter__()  # as another process would: the loop's purge is refused with a Conflict
    task = asyncio.get_running_loop().create_task(daily_purge_loop(store, _daily(settings)))
    try:
        await asyncio.sleep(0.5)
        assert await _conversations(store) == 1
        lock.__exit__(None, None, None)
        for _ in range(50):
            if await _conversations(store) == 0:
                break
            await asyncio.sleep(0.1)
        assert await _conversations(store) == 0
    finally:
        assert await stop_task(task, name="daily-purge-test", grace=5)


def test_the_catch_up_keeps_to_its_schedule_constants() -> None:
    import store.retention as retention

    assert retention.DAILY_PURGE_ACTOR == Actor.system(DAILY_PURGE_NAME).name
    assert retention.CATCH_UP_RETRY_SECONDS >= 1
    assert timedelta(seconds=retention.CATCH_UP_RETRY_SECONDS) < timedelta(minutes=5)
