"""Holds (§6 "unless other law requires otherwise"), the daily purge schedule and backups."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from datetime import date, datetime, timezone

import pytest

from store.errors import (
    AlreadyPurged,
    ConfigError,
    ConversationNotFound,
    InvalidInput,
    InvalidTransition,
    NotFound,
    NotPermitted,
)
from store.models import Actor
from store.retention import daily_purge_loop, next_daily_run
from tests.fixtures.audit_log import audit_log

OLD = datetime(2025, 8, 31, 10, 0, tzinfo=timezone.utc)
SYSTEM = Actor.system("tests")


async def all_holds(store):
    return await store.retention.holds(SYSTEM, include_released=True)


async def finished_runs(store):
    return [run for run in await store.retention.runs(SYSTEM) if run.status == "finished"]


@pytest.mark.parametrize("roles", [("consultant",), ("designated",), ("it_admin",), ("dpo",), ("secretary",)])
async def test_hold_by_a_role_without_permission_is_refused_and_audited(store, make_staff, retention_data, roles):
    chat = await retention_data.chat(OLD)
    someone = (await make_staff(None, *roles)).as_actor()
    with pytest.raises(NotPermitted):
        await store.retention.add_hold(someone, [chat], legal_basis="x", case_reference="y")
    last = (await audit_log(store))[-1]
    assert (last.action, last.outcome) == ("retention.hold_set", "refused")
    assert await all_holds(store) == []


async def test_hold_on_an_already_purged_conversation_is_a_clear_error(store, make_staff, retention_data):
    manager = (await make_staff("kier", "cim_manager")).as_actor()
    kept = await retention_data.chat(datetime(2026, 2, 1, tzinfo=timezone.utc))
    gone = await retention_data.chat(OLD)
    await store.retention.purge(SYSTEM)
    with pytest.raises(AlreadyPurged, match=f"conversation {gone} was already purged on 2026-03-02"):
        await store.retention.add_hold(manager, [kept, gone], legal_basis="KPA", case_reference="A-1")
    assert await all_holds(store) == []  # all or nothing
    with pytest.raises(ConversationNotFound, match="no conversation 999"):
        await store.retention.add_hold(manager, [999], legal_basis="KPA", case_reference="A-1")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"legal_basis": "  ", "case_reference": "A"}, "legal basis is required"),
        ({"legal_basis": "KPA", "case_reference": ""}, "case reference is required"),
        ({"legal_basis": "x" * 501, "case_reference": "A"}, "longer than 500"),
        ({"legal_basis": "KPA", "case_reference": "A", "review_on": date(2026, 3, 1)}, "in the past"),
    ],
)
async def test_hold_with_bad_input_is_refused_and_changes_nothing(store, retention_data, kwargs, message):
    chat = await retention_data.chat(OLD)
    with pytest.raises(InvalidInput, match=message):
        await store.retention.add_hold(SYSTEM, [chat], **kwargs)
    assert await all_holds(store) == []


async def test_hold_needs_at_least_one_valid_conversation_number(store):
    with pytest.raises(InvalidInput, match="at least one"):
        await store.retention.add_hold(SYSTEM, [], legal_basis="KPA", case_reference="A")
    with pytest.raises(InvalidInput, match="not a conversation number"):
        await store.retention.add_hold(SYSTEM, ["12; DROP TABLE holds"], legal_basis="KPA", case_reference="A")


async def test_release_rules(store, make_staff, retention_data):
    director = (await make_staff("dyr", "boi_director")).as_actor()
    chat = await retention_data.chat(OLD)
    request_id = await retention_data.request(chat, director.staff_id, received=date(2026, 2, 1))
    async with store.db.write() as tx:  # the automatic hold the requests engine creates
        await tx.execute(
            "INSERT INTO holds(conversation_id, legal_basis, case_reference, request_id, set_at)"
            " VALUES (?, 'request', 'R', ?, '2026-02-01T00:00:00.000000Z')",
            (chat, request_id),
        )
    (auto,) = await store.retention.holds(director)
    with pytest.raises(InvalidTransition, match="ends when that request closes"):
        await store.retention.release_hold(director, auto.id)
    (manual,) = await store.retention.add_hold(director, [chat], legal_basis="KPA", case_reference="B")
    released = await store.retention.release_hold(director, manual.id)
    assert released.released_by == "dyr" and not released.open
    with pytest.raises(InvalidTransition, match="already released"):
        await store.retention.release_hold(director, manual.id)
    with pytest.raises(NotFound, match="no hold 4242"):
        await store.retention.release_hold(director, 4242)


@pytest.mark.ordinance("§6")
async def test_hold_on_a_search_result_is_audited_per_conversation_and_overdue_reviews_stand_out(
    store, clock, make_staff, retention_data
):
    manager = (await make_staff("kier", "cim_manager")).as_actor()
    ids = [await retention_data.chat(OLD) for _ in range(3)]
    created = await store.retention.add_hold(
        manager, ids, legal_basis="art. 6 ust. 1 lit. c RODO", case_reference="SO.1/2026", review_on=date(2026, 4, 1)
    )
    assert sorted(h.conversation_id for h in created) == ids
    assert all(h.set_by == "kier" and not h.overdue for h in created)
    audited = await audit_log(store, action="retention.hold_set", outcome="ok")
    assert [int(e.target_id) for e in audited] == ids
    clock.advance(days=31)  # 2026-04-02: past the review date
    assert all(h.overdue for h in await store.retention.holds(manager))
    assert (await store.retention.purge(SYSTEM)).held == 3


# ------------------------------------------------------------------ the daily run


def test_next_daily_run_is_local_office_time_across_dst():
    winter = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)  # 10:00 in Warsaw
    assert next_daily_run(winter, "02:30", "Europe/Warsaw") == datetime(2026, 3, 3, 1, 30, tzinfo=timezone.utc)
    assert next_daily_run(winter, "11:00", "Europe/Warsaw") == datetime(2026, 3, 2, 10, 0, tzinfo=timezone.utc)
    summer = datetime(2026, 7, 1, 0, 0, tzinfo=timezone.utc)
    assert next_daily_run(summer, "02:30", "Europe/Warsaw") == datetime(2026, 7, 1, 0, 30, tzinfo=timezone.utc)
    assert next_daily_run(winter, "off", "Europe/Warsaw") is None
    for bad in ("25:00", "2:3", "noon", ""):
        with pytest.raises(ConfigError, match="HH:MM"):
            next_daily_run(winter, bad, "Europe/Warsaw")


async def test_daily_loop_off_returns_and_on_purges_when_due(store, clock, retention_data):
    await daily_purge_loop(store, store.settings.with_(purge_daily_at="off"))  # returns at once
    await retention_data.chat(OLD)
    clock.now = datetime(2026, 3, 2, 8, 59, 59, 900000, tzinfo=timezone.utc)  # due at 10:00 Warsaw = 09:00Z
    task = asyncio.create_task(daily_purge_loop(store, store.settings.with_(purge_daily_at="10:00")))
    try:
        for _ in range(100):
            if await finished_runs(store):
                break
            await asyncio.sleep(0.02)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    (run,) = await store.retention.runs(SYSTEM)
    assert (run.started_by, run.chats) == ("system:daily-purge", 1)


# ------------------------------------------------------------------ backups


async def test_backup_refuses_a_non_empty_destination_or_one_inside_the_data_dir(store, tmp_path):
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "x").write_text("x")
    with pytest.raises(InvalidInput, match="not an empty directory"):
        await store.retention.backup(SYSTEM, busy)
    with pytest.raises(InvalidInput, match="inside the data directory"):
        await store.retention.backup(SYSTEM, store.settings.data_dir / "bk")


async def test_backup_by_a_role_without_permission_is_refused(store, make_staff, tmp_path):
    manager = (await make_staff("kier", "cim_manager")).as_actor()
    with pytest.raises(NotPermitted):
        await store.retention.backup(manager, tmp_path / "bk")
    assert not (tmp_path / "bk").exists()


async def test_backup_is_a_consistent_copy_with_its_recordings_and_a_destroy_by_date(store, tmp_path, retention_data):
    chat = await retention_data.chat(OLD, texts=("kopia",))
    call, path = await retention_data.call(OLD)
    result = await store.retention.backup(SYSTEM, tmp_path / "bk")
    assert (result.files, result.missing_files) == (1, 0)
    copy = sqlite3.connect(tmp_path / "bk" / "cim.sqlite3")
    try:
        stored = copy.execute("SELECT text FROM messages WHERE conversation_id = ?", (chat,)).fetchone()[0]
        assert isinstance(stored, bytes) and b"kopia" not in stored  # the copy holds the sealed line
        relative = copy.execute("SELECT path FROM recordings WHERE conversation_id = ?", (call,)).fetchone()[0]
    finally:
        copy.close()
    assert (tmp_path / "bk" / "recordings" / relative).read_bytes() == path.read_bytes()
    manifest = json.loads((tmp_path / "bk" / "backup.json").read_text())
    # it names the key generation it needs, and holds no key: not the master key, not the key ring
    assert manifest["keys"]["master_key_id"] == store.keys.describe()["master_key_id"]
    assert manifest["keys"]["master_key_generation"] == 1 and manifest["keys"]["sealed_conversations"] == 2
    assert not any(p.name in ("master.key", "keyring.sqlite3") for p in (tmp_path / "bk").rglob("*"))
    assert manifest["destroy_by"] == "2026-04-01T09:00:00.000000Z"  # P30D after the fixture clock
    assert (tmp_path / "bk").stat().st_mode & 0o077 == 0
    assert len(await audit_log(store, action="retention.backup")) == 1


@pytest.mark.ordinance("§6")
async def test_cim_serve_app_runs_the_daily_purge_and_stops_it_on_shutdown(store, clock, retention_data):
    from aiohttp import web

    from webchat.app import create_app

    await retention_data.chat(OLD)
    clock.now = datetime(2026, 3, 2, 1, 29, 59, 900000, tzinfo=timezone.utc)  # 02:29:59.9 in Warsaw
    runner = web.AppRunner(create_app(store.settings.with_(purge_daily_at="02:30"), store))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        for _ in range(200):
            if await finished_runs(store):
                break
            await asyncio.sleep(0.02)
    finally:
        await runner.cleanup()
    (run,) = await store.retention.runs(SYSTEM)
    assert (run.started_by, run.chats) == ("system:daily-purge", 1)
    assert not [t for t in asyncio.all_tasks() if t.get_name() == "cim-daily-purge"]


async def test_a_malformed_daily_time_fails_when_the_server_is_built(store):
    from webchat.app import create_app

    with pytest.raises(ConfigError, match="CIM_PURGE_DAILY_AT"):
        create_app(store.settings.with_(purge_daily_at="half past two"), store)
