"""Smoke-size runs of every benchmark (bench/): they run and produce sane numbers. No timing bounds here."""

from __future__ import annotations

import asyncio
import json
import math
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from bench.__main__ import SMOKE
from bench.common import Result, percentile
from bench.wire import ConnectRefused, WireClient
from tests.fixtures.store import PASSWORD

CFG = dict(SMOKE)


def sane(results: list[Result], count: int) -> None:
    assert len(results) == count, results
    for r in results:
        assert r.metric != "FAILED", r.note
        assert math.isfinite(r.value) and r.value > 0, r
        assert r.met in (True, False, None)
        if r.baseline is not None:
            assert math.isfinite(r.baseline) and r.baseline > 0, r


# -- the raw wire client, against the real server --------------------------------------------------


async def test_wire_client_is_refused_a_bad_staff_token_and_gets_error_acks(chat_server) -> None:
    async with aiohttp.ClientSession() as session:
        staff = WireClient(session, chat_server.url, "/staff")
        with pytest.raises(ConnectRefused, match="unauthorised"):
            await staff.connect({"token": "forged"})
        await staff.close()
        resident = WireClient(session, chat_server.url, "/resident")
        await resident.connect({"lang": "pl"})
        try:
            ack = await resident.call("send", {"text": "hello", "client_msg_id": "a"})
            assert ack["error"]["code"] == "notice_not_accepted"
            ack = await resident.call("send", ["not", "an", "object"])
            assert ack["error"]["code"] == "invalid"
        finally:
            await resident.close()


async def test_wire_client_relays_a_stored_message_to_the_consultant(chat_server, store, make_staff) -> None:
    await make_staff("anna", "consultant")
    token = (await store.accounts.login("anna", PASSWORD)).token
    received: list[dict] = []
    notices: list[dict] = []
    async with aiohttp.ClientSession() as session:
        staff = WireClient(
            session,
            chat_server.url,
            "/staff",
            lambda event, payload, _t: received.append(payload) if event == "message" else None,
        )
        resident = WireClient(
            session,
            chat_server.url,
            "/resident",
            lambda event, payload, _t: notices.append(payload) if event == "notice" else None,
        )
        await staff.connect({"token": token})
        await resident.connect({"lang": "pl"})
        try:
            for _ in range(200):
                if notices:
                    break
                await asyncio.sleep(0.02)
            opened = await resident.call("accept_notice", {"notice_id": notices[0]["notice_id"]})
            assert opened["ok"], opened
            assert (await staff.call("accept", {"chat_id": opened["chat_id"]}))["ok"]
            ack = await resident.call("send", {"text": "Zażółć gęślą jaźń", "client_msg_id": "m1"})
            assert ack["ok"] and ack["seq"] > 0
            for _ in range(200):
                if any(m.get("from") == "resident" for m in received):
                    break
                await asyncio.sleep(0.02)
            stored = await store.db.fetchone(
                "SELECT seq, text FROM messages WHERE conversation_id = ? AND seq = ?", (opened["chat_id"], ack["seq"])
            )
            (text,) = await store.keys.texts(opened["chat_id"], [stored])  # sealed at rest
        finally:
            await resident.close()
            await staff.close()
    assert text == "Zażółć gęślą jaźń" and isinstance(stored["text"], bytes)
    assert [m["text"] for m in received if m["from"] == "resident"] == ["Zażółć gęślą jaźń"]


def test_load_generator_refuses_a_target_that_is_not_loopback() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bench.loadgen", "throughput"],
        input=json.dumps({"url": "http://192.0.2.1:80", "residents": 1, "seconds": 1, "max_messages": 1}).encode(),
        capture_output=True,
        timeout=60,
    )
    assert proc.returncode != 0
    assert b"loopback" in proc.stderr


def test_percentile_is_nearest_rank() -> None:
    assert percentile(list(range(1, 101)), 99) == 99
    assert percentile([5.0], 99) == 5.0
    assert math.isnan(percentile([], 50))


# -- each benchmark at smoke size --------------------------------------------------------------------


def test_chat_relay_and_connections_smoke(tmp_path: Path) -> None:
    from bench.chat import bench_connections, bench_relay

    relay = bench_relay(tmp_path, CFG)
    sane(relay, 2)
    assert "lost 0" in relay[1].note
    sane(bench_connections(tmp_path, CFG), 1)


def test_archive_search_smoke(tmp_path: Path) -> None:
    from bench.archive import bench_archive
    from bench.dataset import cached_archive, load

    ds = cached_archive(tmp_path / "cache", CFG["archive_calls"], CFG["archive_chats"])
    assert load(ds.data_dir) == ds  # a second run reuses the cache
    results = bench_archive(ds, CFG)
    sane(results, 7)


def test_ingest_smoke(tmp_path: Path) -> None:
    from bench.ingest import bench_ingest

    results = bench_ingest(tmp_path, CFG)
    sane(results, 2)
    assert "rejected 0" in results[0].note and "hard links" in results[0].note


def test_purge_smoke(tmp_path: Path) -> None:
    from bench.purge import bench_purge

    results = bench_purge(tmp_path, CFG)
    sane(results, 2)
    calls = CFG["purge_modes"][0][1]
    assert f"{calls:,} calls" in results[0].note
    assert "0 WAV files left" in results[0].note


def test_tui_smoke(tmp_path: Path) -> None:
    from bench.dataset import cached_archive
    from bench.tui import bench_search, bench_startup

    sane(bench_startup(tmp_path, CFG), 1)
    ds = cached_archive(tmp_path / "cache", CFG["archive_calls"], CFG["archive_chats"])
    sane(bench_search(ds, CFG), 3)
