"""Stopping a background task so that it really stops.

`task.cancel()` followed by `await task` (or `gather(task, return_exceptions=True)`) waits forever when the
task swallows the one cancel it was sent: `asyncio.wait_for` before Python 3.12 does exactly that when the
work it waits on finishes at the moment the cancel arrives, and a loop (`while True: sleep; work`) that lost
its cancel that way runs on while its stop waits. A server that must stop on SIGTERM, and a test teardown,
cannot wait for that, so every background loop of the server is stopped by `stop_task`: the cancel is
repeated until the task is done, and a task still running after `grace` seconds is left with a log line.
"""

from __future__ import annotations

import asyncio
import logging

log = logging.getLogger("cim.tasks")

#: How long a stopping task may take to finish after its first cancel before it is abandoned.
STOP_GRACE_SECONDS = 10.0
#: How often the cancel is repeated while the task is still running.
RECANCEL_SECONDS = 0.2


async def stop_task(task: asyncio.Task | None, *, name: str, grace: float = STOP_GRACE_SECONDS) -> bool:
    """Cancel `task` (repeatedly, should it swallow a cancel) and wait until it is done, at most `grace`
    seconds. True when it ended; False when it was abandoned still running (logged). Its exception, if it
    failed, is collected (and logged), never raised into the stopper."""
    if task is None:
        return True
    loop = asyncio.get_running_loop()
    deadline = loop.time() + grace
    cancels = 0
    while not task.done():
        remaining = deadline - loop.time()
        if remaining <= 0:
            log.warning("task.abandoned name=%s cancels=%d after=%ss", name, cancels, grace)
            return False
        task.cancel()
        cancels += 1
        await asyncio.wait({task}, timeout=min(RECANCEL_SECONDS, remaining))
    if cancels > 1:
        log.info("task.stopped name=%s cancels=%d (a cancel was swallowed)", name, cancels)
    if not task.cancelled() and task.exception() is not None:
        log.error("task.failed name=%s error=%r", name, task.exception())
    return True


async def stop_tasks(tasks: list[asyncio.Task], *, name: str, grace: float = STOP_GRACE_SECONDS) -> bool:
    """`stop_task` for several tasks at once (one grace period for all); True when every one ended."""
    results = await asyncio.gather(*(stop_task(t, name=name, grace=grace) for t in tasks))
    return all(results)
