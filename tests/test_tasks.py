"""store/tasks.py: a background loop that swallows its cancel still stops (a two-node teardown once waited
300 s on a session sweep whose one cancel was lost), and one that never stops is left with a log line."""

from __future__ import annotations

import asyncio
import logging

import pytest

from store.tasks import stop_task, stop_tasks


async def _loop_swallowing(cancels_to_swallow: int, ticks: list[int], release: asyncio.Event | None = None) -> None:
    """`while True: sleep; work`, losing the first cancels as asyncio.wait_for (Python < 3.12) can;
    once `release` is set, the next cancel ends it."""
    swallowed = 0
    while True:
        try:
            await asyncio.sleep(0.01)
            ticks.append(1)
        except asyncio.CancelledError:
            if swallowed >= cancels_to_swallow or (release is not None and release.is_set()):
                raise
            swallowed += 1


async def test_a_loop_that_swallows_its_first_cancels_is_stopped() -> None:
    ticks: list[int] = []
    task = asyncio.get_running_loop().create_task(_loop_swallowing(3, ticks))
    await asyncio.sleep(0.05)  # running: the cancels reach the loop, not a task that never started
    assert await stop_task(task, name="swallower", grace=5) is True
    assert task.cancelled()
    seen = len(ticks)
    await asyncio.sleep(0.05)
    assert len(ticks) == seen  # it runs no more


async def test_plain_cancel_and_gather_would_have_waited_forever() -> None:
    """The failure stop_task exists for, shown with the same loop: one cancel, and it still runs."""
    ticks: list[int] = []
    task = asyncio.get_running_loop().create_task(_loop_swallowing(1, ticks))
    await asyncio.sleep(0.03)
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=0.3)
    assert not done  # still running after its one cancel
    assert await stop_task(task, name="swallower") is True


async def test_a_task_that_never_ends_is_abandoned_after_the_grace_with_a_log_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ticks: list[int] = []
    release = asyncio.Event()
    task = asyncio.get_running_loop().create_task(_loop_swallowing(10**9, ticks, release))
    await asyncio.sleep(0.03)  # running (a task cancelled before its first step never runs at all)
    with caplog.at_level(logging.WARNING, logger="cim.tasks"):
        assert await stop_task(task, name="stubborn", grace=0.5) is False
    assert "task.abandoned name=stubborn" in caplog.text
    assert not task.done() and len(ticks) > 10
    release.set()  # the test's own teardown: the next cancel ends it
    assert await stop_task(task, name="stubborn", grace=5) is True


async def test_a_failed_task_is_collected_and_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    async def fails() -> None:
        raise RuntimeError("broken store")

    task = asyncio.get_running_loop().create_task(fails())
    await asyncio.sleep(0)
    with caplog.at_level(logging.ERROR, logger="cim.tasks"):
        assert await stop_task(task, name="failing") is True
    assert "task.failed name=failing" in caplog.text and "broken store" in caplog.text


async def test_stop_tasks_stops_several_and_none_is_fine() -> None:
    ticks: list[int] = []
    tasks = [asyncio.get_running_loop().create_task(_loop_swallowing(n, ticks)) for n in range(3)]
    await asyncio.sleep(0.03)
    assert await stop_tasks(tasks, name="several", grace=5) is True
    assert all(t.done() for t in tasks)
    assert await stop_task(None, name="none") is True
