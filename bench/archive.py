"""Benchmark 3: archive search through store.archive (audited, as the product does it) vs hand-written SQL.

The baseline queries run on the benchmark's own connection to the same file (bench/sqlfile.py: one
thread, one hop per query, as the store's reader), never on the store's.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import date, timedelta
from typing import Any

from bench.common import Result, median, percentile
from bench.dataset import SEARCHER, Dataset
from bench.sqlfile import SqlFile

log = logging.getLogger("bench.archive")

_COLUMNS = (
    "SELECT c.id, c.channel, c.status, c.created_at, c.ended_at, c.direction, c.resident_number, "
    "c.number_identifiable, s.name AS consultant, d.code AS department, c.duration_s, c.disposition, "
    "c.notice_played, c.full_info_requested, "
    "EXISTS (SELECT 1 FROM recordings r WHERE r.conversation_id = c.id) AS has_recording "
    "FROM conversations c LEFT JOIN staff s ON s.id = c.consultant_id LEFT JOIN departments d ON d.id = c.department_id"
)
#: The deep page starts after this many rows of the month (keyset cursor, as the TUI pages).
DEEP_ROW = 10_000
ORDER = " ORDER BY c.created_at DESC, c.id DESC LIMIT 51"


def queries(ds: Dataset, store: Any) -> list[tuple[str, Any, str | None, str, list[Any]]]:
    """(label, SearchFilters, cursor, baseline SQL, params) for every search measured."""
    from store.archive import SearchFilters

    zone = store.archive.zone
    mid = (ds.start + (ds.end - ds.start) / 2).astimezone(zone).date()
    week = (mid, mid + timedelta(days=6))
    month = (mid - timedelta(days=30), mid)

    def day(d: date) -> str:
        return store.archive._day_start(d)

    digits = ds.partial_digits
    partial_sql = "((c.resident_number >= ? AND c.resident_number < ?) OR (c.number_rev >= ? AND c.number_rev < ?))"
    partial_params = ["+48" + digits, "+48" + digits + ":", digits[::-1], digits[::-1] + ":"]
    return [
        (
            "exact number",
            SearchFilters(number=ds.frequent_number),
            None,
            _COLUMNS + " WHERE c.resident_number = ?" + ORDER,
            ["+48" + ds.frequent_number],
        ),
        (
            f"partial number ({len(digits)} digits)",
            SearchFilters(number=digits),
            None,
            _COLUMNS + " WHERE " + partial_sql + ORDER,
            partial_params,
        ),
        (
            "date range (one week)",
            SearchFilters(date_from=week[0], date_to=week[1]),
            None,
            _COLUMNS + " WHERE c.created_at >= ? AND c.created_at < ?" + ORDER,
            [day(week[0]), day(week[1] + timedelta(days=1))],
        ),
        (
            "consultant",
            SearchFilters(consultant=ds.consultant),
            None,
            _COLUMNS + " WHERE c.consultant_id = (SELECT id FROM staff WHERE name = ?)" + ORDER,
            [ds.consultant],
        ),
        (
            "combined (month + consultant + incoming + partial)",
            SearchFilters(
                number=digits[-3:], date_from=month[0], date_to=month[1], direction="incoming", consultant=ds.consultant
            ),
            None,
            _COLUMNS + " WHERE ((c.resident_number >= ? AND c.resident_number < ?) OR (c.number_rev >= ? AND "
            "c.number_rev < ?)) AND c.created_at >= ? AND c.created_at < ? AND c.direction = 'incoming' AND "
            "c.consultant_id = (SELECT id FROM staff WHERE name = ?)" + ORDER,
            [
                "+48" + digits[-3:],
                "+48" + digits[-3:] + ":",
                digits[-3:][::-1],
                digits[-3:][::-1] + ":",
                day(month[0]),
                day(month[1] + timedelta(days=1)),
                ds.consultant,
            ],
        ),
        (
            "date range (month), first page",
            SearchFilters(date_from=month[0], date_to=month[1]),
            None,
            _COLUMNS + " WHERE c.created_at >= ? AND c.created_at < ?" + ORDER,
            [day(month[0]), day(month[1] + timedelta(days=1))],
        ),
        (
            "date range (month), deep page (row 10,000)",
            SearchFilters(date_from=month[0], date_to=month[1]),
            "DEEP",
            _COLUMNS + " WHERE c.created_at >= ? AND c.created_at < ? AND "
            "(c.created_at < ? OR (c.created_at = ? AND c.id < ?))" + ORDER,
            [day(month[0]), day(month[1] + timedelta(days=1))],
        ),
    ]


async def _run(ds: Dataset, repeats: int) -> list[Result]:
    from store import Store
    from store.settings import Settings

    settings = Settings.load(ds.data_dir, env={}, opening_hours="always")
    store = await Store.open(settings)
    sql_file = SqlFile(settings.db_path, read_only=True)
    try:
        actor = (await store.accounts.get(SEARCHER)).as_actor()
        results = []
        for label, filters, cursor, sql, params in queries(ds, store):
            if cursor == "DEEP":
                total = (
                    await sql_file.rows(
                        "SELECT count(*) AS n FROM conversations c WHERE c.created_at >= ? AND c.created_at < ?", params
                    )
                )[0]["n"]
                deep = min(DEEP_ROW, total // 2)
                row = (
                    await sql_file.rows(
                        "SELECT created_at, id FROM conversations c WHERE c.created_at >= ? AND c.created_at < ? "
                        "ORDER BY c.created_at DESC, c.id DESC LIMIT 1 OFFSET ?",
                        params + [deep - 1],
                    )
                )[0]
                label = label.replace("10,000", f"{deep:,}")
                cursor = f"{row['created_at']}|{row['id']}"
                params = params + [row["created_at"], row["created_at"], row["id"]]
            product, baseline = [], []
            first = await store.archive.search(actor, filters, after=cursor)
            base_rows = await sql_file.rows(sql, params)
            if [s.id for s in first.items] != [r["id"] for r in base_rows[:50]]:
                raise AssertionError(f"{label}: the product and the baseline query disagree")
            for _ in range(repeats):
                t0 = time.perf_counter()
                await store.archive.search(actor, filters, after=cursor)
                t1 = time.perf_counter()
                await sql_file.rows(sql, params)
                t2 = time.perf_counter()
                product.append((t1 - t0) * 1000)
                baseline.append((t2 - t1) * 1000)
            p99, b99 = percentile(product, 99), percentile(baseline, 99)
            ok = p99 <= 10 and p99 <= 1.5 * b99
            log.info(
                "archive %-50s p50 %.2f p99 %.2f ms | SQL p50 %.2f p99 %.2f ms | %s rows",
                label,
                median(product),
                p99,
                median(baseline),
                b99,
                len(first.items),
            )
            results.append(
                Result(
                    "3 archive search",
                    f"{label}: p99",
                    p99,
                    "ms",
                    b99,
                    "hand-written SQL p99",
                    "≤ 10 ms and ≤ 1.5× SQL",
                    ok,
                    f"p50 {median(product):.2f} ms vs SQL {median(baseline):.2f} ms; "
                    f"{len(first.items)} rows on the page",
                    runs=[median(product)],
                )
            )
        return results
    finally:
        sql_file.close()
        await store.close()


def bench_archive(ds: Dataset, cfg: dict[str, Any]) -> list[Result]:
    return asyncio.run(_run(ds, cfg["archive_repeats"]))
