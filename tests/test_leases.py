"""Leader leases (issue 21, store/leases.py): on several nodes over one store, the daily purge and the AMI
connection run on the node holding their lease; another node takes over once the holder stopped renewing.

Real SQLite files shared by two Stores (as two `cim serve` processes share them), a real Redis for the nodes,
and two real `cim serve` processes for the takeover after a SIGKILL. Expiry follows the store's clock, so the
in-process tests move a manual clock instead of waiting.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from store import Store
from store.errors import ConfigError
from store.leases import LeaderJob
from store.models import Actor
from store.settings import Settings
from tests.fixtures.chat import start_chat_server
from tests.test_two_nodes import _start_node, _stop

REPO = Path(__file__).resolve().parents[1]


async def test_a_lease_is_held_by_one_node_until_it_expires_or_is_released(settings: Settings, clock: Any) -> None:
    a = await Store.open(settings, create=True, clock=clock)
    b = await Store.open(settings, clock=clock)
    try:
        assert await a.leases.take("daily-purge", "node-a", 30)
        assert not await b.leases.take("daily-purge", "node-b", 30)  # held: refused, not waited for
        clock.advance(seconds=20)
        assert await a.leases.take("daily-purge", "node-a", 30)  # renewed: now until +50 s
        clock.advance(seconds=29)
        assert not await b.leases.take("daily-purge", "node-b", 30)  # the renewal counted
        assert (await b.leases.holder_of("daily-purge")).holder == "node-a"
        clock.advance(seconds=2)  # node A stopped renewing 31 s ago: expired
        assert await b.leases.take("daily-purge", "node-b", 30)
        assert not await a.leases.take("daily-purge", "node-a", 30)  # A, back, does not take it back
        assert await a.leases.take("ami", "node-a", 30)  # another job's lease is another row
        await b.leases.release("daily-purge", "node-a")  # not A's to release: nothing happens
        assert (await a.leases.holder_of("daily-purge")).holder == "node-b"
        await b.leases.release("daily-purge", "node-b")
        assert await a.leases.take("daily-purge", "node-a", 30)  # released: free at once
    finally:
        await b.close()
        await a.close()


async def test_two_nodes_racing_for_a_free_lease_never_both_get_it(settings: Settings, clock: Any) -> None:
    stores = [await Store.open(settings, create=True, clock=clock)]
    stores += [await Store.open(settings, clock=clock) for _ in range(3)]
    try:
        for round_ in range(5):
            clock.advance(seconds=60)  # whoever held it last round: expired
            won = await asyncio.gather(*(s.leases.take("race", f"node-{i}", 30) for i, s in enumerate(stores)))
            assert sum(won) == 1, (round_, won)
    finally:
        for s in stores:
            await s.close()


def test_a_lease_under_a_second_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as refused:
        Settings.load(tmp_path / "data", env={"CIM_LEADER_LEASE_SECONDS": "0"})
    assert "CIM_LEADER_LEASE_SECONDS" in refused.value.message


async def test_a_job_runs_while_the_lease_is_held_and_is_cancelled_when_it_is_lost(
    settings: Settings, clock: Any
) -> None:
    a = await Store.open(settings, create=True, clock=clock)
    runs: list[str] = []
    cancelled: list[str] = []

    async def job() -> None:
        runs.append("a")
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.append("a")
            raise

    leader = LeaderJob(a.leases, "job", "node-a", job, lease_seconds=0.3)
    try:
        leader.start()
        await asyncio.sleep(0.05)
        assert runs == ["a"] and leader.running is not None
        # another node took the lease (A's renewals go on, but the row says someone else now)
        clock.advance(seconds=1)
        assert await a.leases.take("job", "node-b", 30)
        await asyncio.sleep(0.25)
        assert cancelled == ["a"] and leader.running is None
    finally:
        await leader.stop()
        await a.close()


async def _purges(store: Store, reader: Actor) -> int:
    entries = await store.audit.entries(reader, action="retention.purge", limit=1000)
    return len([e for e in entries if e.actor_name == "system:daily-purge"])


async def test_on_two_nodes_only_the_lease_holder_runs_the_daily_purge_and_the_other_takes_over(
    chat_settings: Settings, store: Store, clock: Any, make_staff, redis_url: str
) -> None:
    from webchat.app import LEADER_JOBS

    # the purge is due half a second from now (the manual clock stands still: it may run again a second later)
    office = ZoneInfo(chat_settings.timezone)
    local = datetime(2026, 3, 2, 9, 59, 59, 500000, tzinfo=office)
    clock.now = local.astimezone(timezone.utc)
    settings = chat_settings.with_(redis_url=redis_url, purge_daily_at="10:00", leader_lease_seconds=1)
    dpo = (await make_staff("dana", "dpo")).as_actor()
    store_b = await Store.open(settings, clock=clock)
    a, runner_a = await start_chat_server(settings, store)
    b, runner_b = None, None
    try:
        b, runner_b = await start_chat_server(settings, store_b)
        job_a, job_b = a.app[LEADER_JOBS]["daily-purge"], b.app[LEADER_JOBS]["daily-purge"]
        deadline = time.monotonic() + 10
        while await _purges(store, dpo) < 1 and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert await _purges(store, dpo) >= 1
        assert (job_a.starts, job_b.starts) == (1, 0)  # node A started first and holds the lease
        assert (await store.leases.holder_of("daily-purge")).holder == job_a.holder

        await job_a.stop(release=False)  # node A "dies": it neither renews nor releases the lease
        await asyncio.sleep(1.0)  # node B tries three times a second; the lease has not expired on the clock
        assert job_b.starts == 0
        clock.advance(days=1)  # now it has; and the next day's purge is due half a second later
        before = await _purges(store, dpo)
        deadline = time.monotonic() + 10
        while job_b.starts == 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert job_b.starts == 1 and job_b.running is not None
        assert (await store.leases.holder_of("daily-purge")).holder == job_b.holder
        while await _purges(store, dpo) == before and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert await _purges(store, dpo) > before  # node B purges now
    finally:
        if runner_b is not None:
            await runner_b.cleanup()
        await runner_a.cleanup()
        await store_b.close()
    # a clean stop released node B's lease: nobody holds it
    assert await store.leases.holder_of("daily-purge") is None


def _holder(db: Path, name: str) -> str | None:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        row = conn.execute("SELECT holder FROM leases WHERE name = ?", (name,)).fetchone()
    return row[0] if row else None


async def test_when_the_leading_cim_serve_is_killed_the_other_takes_its_leases_after_they_expire(
    tmp_path: Path, redis_url: str
) -> None:
    data_dir = tmp_path / "served"
    init = subprocess.run(
        [sys.executable, "-m", "cim", "init", "--data-dir", str(data_dir)],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, "CIM_PASSWORD_PROFILE": "fast"},
    )
    assert init.returncode == 0, init.stderr
    db = Settings.load(data_dir, env={}).db_path
    lease = {"CIM_LEADER_LEASE_SECONDS": "2"}
    procs: list[subprocess.Popen] = []
    try:
        for name in ("a", "b"):
            proc, _url = await asyncio.to_thread(_start_node, data_dir, redis_url, tmp_path / f"node-{name}.log", lease)
            procs.append(proc)
        deadline = time.monotonic() + 10
        while _holder(db, "daily-purge") is None and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        holder = _holder(db, "daily-purge")
        assert holder is not None
        leading = next(p for p in procs if f"-{p.pid}-" in holder)
        other = next(p for p in procs if p is not leading)
        leading.kill()  # SIGKILL: the lease stays in the table until it expires
        await asyncio.to_thread(leading.wait, 10)
        killed_at = time.monotonic()
        while f"-{other.pid}-" not in (_holder(db, "daily-purge") or "") and time.monotonic() < killed_at + 10:
            await asyncio.sleep(0.05)
        took_over = time.monotonic() - killed_at
        assert f"-{other.pid}-" in (_holder(db, "daily-purge") or ""), took_over
        assert took_over < 2 + 1 + 1, took_over  # the lease's 2 s, a renewal period (2/3 s), and some slack
    finally:
        for proc in procs:
            if proc.poll() is None:
                await _stop(proc)
    assert procs[1 if procs[0] is leading else 0].returncode == 0
    assert _holder(db, "daily-purge") is None  # the survivor's clean stop released it


async def test_on_two_nodes_one_holds_the_ami_connection_and_the_other_takes_it_over(
    chat_settings: Settings, store: Store, clock: Any, redis_url: str, ami_server: Any
) -> None:
    from webchat.app import HUB, LEADER_JOBS

    settings = chat_settings.with_(redis_url=redis_url, ami_url=ami_server.url, leader_lease_seconds=1)
    store_b = await Store.open(settings, clock=clock)
    a, runner_a = await start_chat_server(settings, store)
    b, runner_b = None, None
    try:
        b, runner_b = await start_chat_server(settings, store_b)
        await ami_server.wait_logged_in()
        await asyncio.sleep(1.0)  # three renewal rounds of each node
        assert ami_server.logins == 1  # one connection to the PBX, from node A
        assert a.app[HUB].traffic is not None and b.app[HUB].traffic is None
        await a.app[LEADER_JOBS]["ami"].stop(release=False)  # node A's link goes, its lease stays to expire
        assert a.app[HUB].traffic is None
        clock.advance(seconds=2)
        deadline = time.monotonic() + 10
        while b.app[HUB].traffic is None and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert b.app[HUB].traffic is not None
        while ami_server.logins < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert ami_server.logins == 2
    finally:
        if runner_b is not None:
            await runner_b.cleanup()
        await runner_a.cleanup()
        await store_b.close()
