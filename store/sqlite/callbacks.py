"""The callback worklist's repository on SQLite: every statement of store/callbacks.py's Callbacks service.

store/callbacks.py holds the rules (who may, the office day an item belongs to, take and close);
this module holds the SQL: the refresh that gathers missed calls from queue stays and call records,
and the worklist's reads and writes. Writes take the caller's `Transaction`, which the audit entry joins.
"""

from __future__ import annotations

import sqlite3
from typing import Any, Callable

from .database import Repository, Transaction
from .queue_log import LINK_STAYS as _LINK_STAYS  # as QueueLog.link_calls


class CallbacksRepository(Repository):
    """The SQL of store/callbacks.py's Callbacks service."""

    async def refresh(self, day_of: Callable[[str], str]) -> int:
        """New missed calls onto the list, taken items linked to their call back, in one write; items added/grown.

        `day_of` maps a missed call's ISO time to its office day (the service's rule)."""
        return await self.db.write_call(_refresh, day_of)

    async def callbacks(self, *, include_done: bool) -> list[Any]:
        where = "" if include_done else "WHERE status != 'done'"
        return await self.db.fetchall(f"SELECT * FROM callbacks {where} ORDER BY first_missed_at, id")

    async def callback(self, callback_id: int) -> Any:
        return await self.db.fetchone("SELECT * FROM callbacks WHERE id = ?", (callback_id,))

    async def state(self, tx: Transaction, callback_id: int) -> Any:
        """(status, taken_by) of an item in the transaction, or None when there is none."""
        rows = await tx.connection.execute_fetchall(
            "SELECT status, taken_by FROM callbacks WHERE id = ?", (callback_id,)
        )
        return next(iter(rows), None)

    async def mark_taken(self, tx: Transaction, callback_id: int, staff_id: int | None, at: str) -> None:
        await tx.connection.execute(
            "UPDATE callbacks SET status = 'taken', taken_by = ?, taken_at = ? WHERE id = ?",
            (staff_id, at, callback_id),
        )

    async def mark_done(self, tx: Transaction, callback_id: int, outcome: str, staff_id: int | None, at: str) -> None:
        await tx.connection.execute(
            "UPDATE callbacks SET status = 'done', outcome = ?, closed_by = ?, closed_at = ? WHERE id = ?",
            (outcome, staff_id, at, callback_id),
        )


def _refresh(conn: sqlite3.Connection, day_of: Callable[[str], str]) -> int:
    conn.execute(_LINK_STAYS)
    stays: dict[int, list[str]] = {}  # conversation id -> keys of its unanswered stays
    missed: list[tuple[list[str], str, str, str | None, str]] = []
    for r in conn.execute(
        "SELECT s.callid, s.queue, s.entered_at, s.caller, s.purge_after, s.conversation_id, c.pbx_uniqueid "
        "FROM queue_calls s LEFT JOIN conversations c ON c.id = s.conversation_id WHERE s.caller IS NOT NULL "
        "AND s.outcome IN ('abandoned', 'timeout', 'exitkey', 'exitempty')"
    ):
        key = f"stay:{r['callid']}:{r['queue']}:{r['entered_at']}"
        keys = [key] + ([f"call:{r['pbx_uniqueid']}"] if r["pbx_uniqueid"] else [])
        if r["conversation_id"] is not None:
            stays.setdefault(r["conversation_id"], []).append(key)
        missed.append((keys, r["caller"], r["entered_at"], r["queue"], r["purge_after"]))
    for r in conn.execute(
        "SELECT id, pbx_uniqueid, resident_number, created_at, purge_after FROM conversations "
        "WHERE channel = 'call' AND direction = 'incoming' AND number_identifiable = 1 "
        "AND coalesce(disposition, '') != 'ANSWERED' AND resident_number IS NOT NULL"
    ):
        missed.append(
            (
                [f"call:{r['pbx_uniqueid']}", *stays.get(r["id"], [])],
                r["resident_number"],
                r["created_at"],
                None,
                r["purge_after"],
            )
        )
    added = 0
    for keys, number, at, queue, purge_after in sorted(missed, key=lambda m: m[2]):
        known = [
            row["callback_id"]
            for k in keys
            for row in conn.execute("SELECT callback_id FROM callback_sources WHERE source = ?", (k,))
        ]
        if known:  # the same missed call seen from the other source (queue_log and CDR): once only
            for k in keys:
                conn.execute(
                    "INSERT OR IGNORE INTO callback_sources(source, callback_id, purge_after) VALUES (?, ?, ?)",
                    (k, known[0], purge_after),
                )
            continue
        day = day_of(at)
        row = conn.execute("SELECT id FROM callbacks WHERE number = ? AND day = ?", (number, day)).fetchone()
        if row is None:
            cur = conn.execute(
                "INSERT INTO callbacks(number, day, first_missed_at, last_missed_at, queue, purge_after) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (number, day, at, at, queue, purge_after),
            )
            callback_id = cur.lastrowid
        else:
            callback_id = row["id"]
            conn.execute(
                "UPDATE callbacks SET missed = missed + 1, first_missed_at = min(first_missed_at, ?), "
                "last_missed_at = max(last_missed_at, ?), queue = coalesce(queue, ?) WHERE id = ?",
                (at, at, queue, callback_id),
            )
        for k in keys:
            conn.execute(
                "INSERT OR IGNORE INTO callback_sources(source, callback_id, purge_after) VALUES (?, ?, ?)",
                (k, callback_id, purge_after),
            )
        added += 1
    # a taken item's call back: the first outgoing call to the number made after it was taken
    conn.execute(
        "UPDATE callbacks SET conversation_id = (SELECT c.id FROM conversations c WHERE c.channel = 'call' "
        " AND c.direction = 'outgoing' AND c.resident_number = callbacks.number AND c.created_at >= callbacks.taken_at "
        " ORDER BY c.created_at LIMIT 1) WHERE conversation_id IS NULL AND taken_at IS NOT NULL"
    )
    return added
