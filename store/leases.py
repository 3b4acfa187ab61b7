"""Leader leases: which node of several runs a job meant for one at a time (the daily purge, the AMI link).

A lease is a row (name, holder, expires_at) in the shared store. `take` gives it to a node when it is free,
expired or already that node's, and pushes its expiry on, by one conditional UPDATE (or the first INSERT) in
one write transaction, so two nodes never both hold it. `LeaderJob` keeps renewing the lease while the node
runs, runs the job only while the lease is held, and cancels it as soon as it is not (lost to another node,
or not renewed in time because the store did not answer). Expiry is decided by the store's clock: the nodes
of one store must keep their clocks in step (NTP), as they must for everything else the store dates.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Awaitable, Callable

from .clock import Clock, from_iso, to_iso
from .tasks import stop_task

log = logging.getLogger("cim.leases")

#: The lease is renewed this many times per lease period (a third of it: two renewals may fail in a row).
RENEWALS_PER_LEASE = 3


@dataclass(frozen=True)
class Lease:
    name: str
    holder: str
    expires_at: datetime


class Leases:
    """Leader leases (the rules; the SQL is store/sqlite/leases.py's)."""

    def __init__(self, repo: Any, clock: Clock) -> None:
        self.repo = repo
        self.clock = clock

    async def take(self, name: str, holder: str, seconds: float) -> bool:
        """Take or renew the lease `name` for `holder` for `seconds` from now; False while another holds it."""
        now = self.clock()
        return bool(
            await self.repo.take(name, holder, now=to_iso(now), expires_at=to_iso(now + timedelta(seconds=seconds)))
        )

    async def release(self, name: str, holder: str) -> None:
        """Give the lease up at once (a clean stop), if `holder` still holds it."""
        await self.repo.release(name, holder)

    async def holder_of(self, name: str) -> Lease | None:
        """The lease as stored (possibly expired), or None when nobody took it yet."""
        row = await self.repo.lease(name)
        if row is None:
            return None
        return Lease(row["name"], row["holder"], from_iso(row["expires_at"]))


class LeaderJob:
    """Runs `job()` on this node while it holds the lease `name` (several nodes on one store).

    The lease is taken or renewed every `lease_seconds / 3`; `job()` starts when the lease is gained and is
    cancelled when it is lost, or when it could not be renewed before it would expire. A job that ends by
    itself is not started again until the lease has been lost and gained again. `stop()` cancels the job and
    releases the lease (`release=False`: left to expire, as when the node dies).
    """

    def __init__(
        self, leases: Leases, name: str, holder: str, job: Callable[[], Awaitable[None]], *, lease_seconds: float
    ) -> None:
        self.leases = leases
        self.name = name
        self.holder = holder
        self.job = job
        self.lease_seconds = lease_seconds
        self.running: asyncio.Task | None = None
        #: times the job was started on this node (a test, a log line)
        self.starts = 0
        self._held_until = 0.0  # loop time until which the last successful take holds
        self._loop_task: asyncio.Task | None = None
        self._stopping = False

    @property
    def held(self) -> bool:
        return asyncio.get_running_loop().time() < self._held_until

    def start(self) -> None:
        self._loop_task = asyncio.get_running_loop().create_task(self._run_forever(), name=f"lease-{self.name}")

    async def _run_forever(self) -> None:
        loop = asyncio.get_running_loop()
        failing = False
        while not self._stopping:
            asked = loop.time()
            try:
                taken = await self.leases.take(self.name, self.holder, self.lease_seconds)
                failing = False
            except Exception:
                if not failing:
                    log.exception("lease.renew_failed name=%s holder=%s", self.name, self.holder)
                failing = True
                taken = None  # unknown: the job goes on until the lease would have expired
            if taken:
                self._held_until = asked + self.lease_seconds
                if self.running is None:
                    log.info("lease.taken name=%s holder=%s", self.name, self.holder)
                    self.starts += 1
                    self.running = loop.create_task(self._job(), name=f"leader-{self.name}")
            elif taken is False or not self.held:
                self._held_until = 0.0
                await self._cancel_job("lost" if taken is False else "not_renewed")
            await asyncio.sleep(self.lease_seconds / RENEWALS_PER_LEASE)

    async def _job(self) -> None:
        try:
            await self.job()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("leader.job_failed name=%s", self.name)

    async def _cancel_job(self, why: str) -> None:
        task, self.running = self.running, None
        if task is None:
            return
        log.info("lease.given_up name=%s holder=%s reason=%s", self.name, self.holder, why)
        await stop_task(task, name=f"leader-job:{self.name}")

    async def stop(self, *, release: bool = True) -> None:
        self._stopping = True
        if self._loop_task is not None:
            await stop_task(self._loop_task, name=f"leader-lease:{self.name}")
            self._loop_task = None
        await self._cancel_job("stopped")
        if release and self._held_until:
            self._held_until = 0.0
            try:
                await self.leases.release(self.name, self.holder)
            except Exception:
                log.exception("lease.release_failed name=%s (it expires by itself)", self.name)
