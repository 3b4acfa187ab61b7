"""Regressions found by the benchmarks (bench/): each test fails on the code before its fix."""

from __future__ import annotations

import asyncio

from store.archive import SearchFilters
from tests.fixtures.audit_log import audit_log


async def test_a_committed_row_is_readable_at_once_while_other_coroutines_read(store) -> None:
    """fetchone used to leave its statement open across awaits, pinning the reader to an old snapshot."""
    stop = asyncio.Event()

    async def busy_reader() -> None:
        while not stop.is_set():
            await store.db.fetchone("SELECT count(*) FROM notices")

    readers = [asyncio.create_task(busy_reader()) for _ in range(10)]
    missing = 0
    try:
        for i in range(100):
            async with store.db.write() as tx:
                cursor = await tx.execute("INSERT INTO departments(code, name) VALUES (?, ?)", (f"B{i}", "bench"))
                new_id = cursor.lastrowid
            if await store.db.fetchone("SELECT id FROM departments WHERE id = ?", (new_id,)) is None:
                missing += 1
    finally:
        stop.set()
        await asyncio.gather(*readers)
    assert missing == 0


async def test_fetchone_still_returns_the_first_row_or_none(store) -> None:
    row = await store.db.fetchone("SELECT 1 AS a UNION ALL SELECT 2 ORDER BY a")
    assert row["a"] == 1
    assert await store.db.fetchone("SELECT id FROM departments WHERE code = ?", ("nope",)) is None


async def test_recordings_copied_in_chunks_keep_every_file_of_a_call_and_stay_idempotent(store, tmp_path) -> None:
    """Recordings are copied in parallel chunks (calls.RECORDING_CHUNK); two files of one call in the same
    chunk must both be registered under distinct keys, and a second run must add nothing."""
    from bench.dataset import EMPTY_WAV
    from bench.ingest import write_spool
    from store.models import Actor

    cdr, monitor, files, _ = write_spool(tmp_path / "spool", 120, 1)
    first = sorted(monitor.iterdir())[0]
    (monitor / f"{first.stem}-b.wav").write_bytes(EMPTY_WAV)  # a second file of the same call, sorted next to it
    actor = Actor.system("tests")
    report = await store.calls.ingest(actor, store.calls.source("asterisk", cdr, monitor))
    assert (report.imported, report.recordings, report.rejected) == (120, files + 1, [])
    keys = [
        r["pbx_uniqueid"]
        for r in await store.db.fetchall(
            "SELECT pbx_uniqueid FROM recordings WHERE pbx_uniqueid LIKE ?", (first.stem + "%",)
        )
    ]
    assert len(keys) == 2 and first.stem in keys  # the second file of the call is keyed by its name
    assert len(await audit_log(store, action="calls.recording_ingest")) == files + 1
    again = await store.calls.ingest(actor, store.calls.source("asterisk", cdr, monitor))
    assert (again.recordings, again.recordings_already_present) == (0, files + 1)


async def test_the_duplicate_check_of_a_chat_message_uses_the_index_not_a_scan(store) -> None:
    """The group commit looks up repeated client_msg_ids; it used to scan every stored message per batch."""
    notice = await store.notices.current("chat", "pl")
    chat = (await store.chats.open(notice.id, "pl")).chat
    writer = store.db.writer
    statements: list[str] = []
    await writer._execute(writer._conn.set_trace_callback, statements.append)
    try:
        # sent together, so one group-commit batch looks up several keys at once
        first = await asyncio.gather(*(store.chats.post_resident(chat.id, f"linia {i}", f"m-{i}") for i in range(3)))
        again = await asyncio.gather(*(store.chats.post_resident(chat.id, f"linia {i}", f"m-{i}") for i in range(3)))
    finally:
        await writer._execute(writer._conn.set_trace_callback, None)
    assert [p.new for p in first + again] == [True] * 3 + [False] * 3
    assert [p.message.seq for p in again] == [p.message.seq for p in first]
    lookups = [
        sql for sql in statements if "client_msg_id" in sql and sql.lstrip().upper().startswith(("SELECT", "WITH"))
    ]
    assert lookups, statements
    for sql in lookups:
        plan = " | ".join(r["detail"] for r in await store.db.fetchall("EXPLAIN QUERY PLAN " + sql))
        assert "SCAN messages" not in plan and "SCAN m" not in plan.replace("SCAN w", ""), plan


def test_from_iso_reads_exactly_what_to_iso_writes() -> None:
    """from_iso takes a fast path for the stored format; it must still refuse every other shape."""
    from datetime import datetime, timedelta, timezone

    import pytest

    from store.clock import from_iso, to_iso

    moment = datetime(2026, 8, 1, 10, 11, 12, 123000, tzinfo=timezone(timedelta(hours=2)))
    parsed = from_iso(to_iso(moment))
    assert parsed == moment and parsed.utcoffset() == timedelta(0)
    for bad in (
        "2026-08-01",
        "2026-08-01T10:11:12Z",
        "2026-08-01T10:11:12.123000+00:00",
        "2026-08-01T10:11:12,123000Z",
        "2026-08-01T10:11:12.123000Z\n",
        "x",
    ):
        with pytest.raises(ValueError):
            from_iso(bad)


def test_the_purge_batch_shrinks_over_its_time_budget_and_grows_back_under_it() -> None:
    """Benchmark 5: a fixed 100-conversation batch held the write lock ~10 ms; chat p99 followed it."""
    from store.retention import _next_limit

    assert _next_limit(100, 0.020, 0.004, 100) == 50
    assert _next_limit(1, 0.050, 0.004, 100) == 1
    assert _next_limit(8, 0.001, 0.004, 100) == 10
    assert _next_limit(99, 0.0001, 0.004, 100) == 100
    assert _next_limit(20, 0.003, 0.004, 100) == 20


async def test_a_purge_leaves_the_automatic_checkpoint_on_and_purges_everything_due(store, retention_data) -> None:
    """The purge turns the writer's automatic WAL checkpoint off while it runs; it must come back on."""
    from datetime import datetime, timezone

    from store.models import Actor

    old = datetime(2025, 8, 31, 10, 0, tzinfo=timezone.utc)
    for i in range(30):
        await retention_data.chat(old, texts=(f"stare {i}",))
    result = await store.retention.purge(Actor.system("test"), batch_size=50)
    assert result.chats == 30
    assert await store.db.fetchone("SELECT count(*) AS n FROM conversations") is not None
    assert (await store.archive.search(Actor.system("test"), SearchFilters(channel="chat"))).items == ()
    async with store.db.write() as tx:
        (pages,) = (await tx.execute_fetchall("PRAGMA wal_autocheckpoint"))[0]
    assert pages == 1000
