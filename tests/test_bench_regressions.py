"""Regressions found by the benchmarks (bench/): each test fails on the code before its fix."""

from __future__ import annotations

import asyncio


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
