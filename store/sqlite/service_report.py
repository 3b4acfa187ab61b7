"""The service figures' repository on SQLite: the live rows a report reads and the purge-proof daily aggregate.

store/service_report.py holds the rules (who may, the period, what a contact counts as, grouping,
what is audited); this module holds the SQL: one snapshot of the live rows and `service_daily` for a
report, and the purge's hook that folds contacts into `service_daily` in the transaction that deletes
them (`absorb_conversations`, `purge_unlinked_queue_facts`, called by store/sqlite/retention.py).
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any
from zoneinfo import ZoneInfo

from ..service_report import Bucket, Contact, _chat_contacts, _stay_contacts
from .database import Repository

_STAY_SQL = (
    "SELECT s.entered_at, s.queue, s.outcome, s.wait_s, s.talk_s, s.consultant_id, s.agent, "
    "st.name AS staff_name, (SELECT n.category FROM call_notes n WHERE n.linkedid = s.callid "
    " OR n.uniqueid = s.callid OR n.conversation_id = s.conversation_id LIMIT 1) AS topic "
    "FROM queue_calls s LEFT JOIN staff st ON st.id = s.consultant_id "
    "WHERE s.outcome != 'waiting' AND "
)
_CHAT_SQL = (
    "SELECT c.created_at, c.ended_at, c.status, c.consultant_id, c.close_category, st.name AS staff_name, "
    "(SELECT min(m.at) FROM messages m WHERE m.conversation_id = c.id AND m.sender = 'system' "
    " AND m.staff_id IS NOT NULL) AS taken_at "
    "FROM conversations c LEFT JOIN staff st ON st.id = c.consultant_id "
    "WHERE c.channel = 'chat' AND c.status != 'queued' AND c.status != 'offline_message' "
    "AND NOT EXISTS (SELECT 1 FROM offline_messages o WHERE o.conversation_id = c.id) AND "
)


class ServiceReportRepository(Repository):
    """The SQL of store/service_report.py's ServiceFigures service."""

    async def snapshot(
        self, since: str, until: str, first_day: str, last_day: str
    ) -> tuple[list[Any], list[Any], list[Any], tuple[int, int]]:
        """In one snapshot (a transaction on the writer): the queue stays entered and the chats created in
        [since, until), the `service_daily` cells of the office days first_day..last_day, and the period's
        callbacks (done, open)."""
        return await self.db.write_call(_snapshot, since, until, first_day, last_day)


def _snapshot(
    conn: sqlite3.Connection, since: str, until: str, first_day: str, last_day: str
) -> tuple[list[Any], list[Any], list[Any], tuple[int, int]]:
    stays = conn.execute(_STAY_SQL + "s.entered_at >= ? AND s.entered_at < ?", (since, until)).fetchall()
    chats = conn.execute(_CHAT_SQL + "c.created_at >= ? AND c.created_at < ?", (since, until)).fetchall()
    daily = conn.execute("SELECT * FROM service_daily WHERE day >= ? AND day <= ?", (first_day, last_day)).fetchall()
    callbacks = conn.execute(
        "SELECT sum(status = 'done') AS done, sum(status != 'done') AS open FROM callbacks WHERE day >= ? AND day <= ?",
        (first_day, last_day),
    ).fetchone()
    return stays, chats, daily, (callbacks["done"] or 0, callbacks["open"] or 0)


# ------------------------------------------------------------------------------------------------
# The purge's hook: fold contacts into service_daily in the transaction that deletes them


async def absorb_conversations(tx: Any, ids: list[int], timezone: str) -> None:
    """Before the purge deletes these conversations: add their chats and their calls' queue stays to service_daily."""
    if not ids:
        return
    zone = ZoneInfo(timezone)
    marks = ",".join("?" * len(ids))
    contacts = _chat_contacts(await tx.execute_fetchall(_CHAT_SQL + f"c.id IN ({marks})", ids), zone)
    contacts += _stay_contacts(await tx.execute_fetchall(_STAY_SQL + f"s.conversation_id IN ({marks})", ids), zone)
    await _add_to_daily(tx, contacts)


async def purge_unlinked_queue_facts(tx: Any, cutoff_iso: str, timezone: str) -> int:
    """Traffic facts past purge_after that no purged conversation took along (§6): queue stays linked to no
    call and callbacks (both folded into service_daily first), members' events, notes on calls whose CDR
    never came, and the registers of lines and sources seen."""
    zone = ZoneInfo(timezone)
    rows = await tx.execute_fetchall(_STAY_SQL + "s.conversation_id IS NULL AND s.purge_after <= ?", (cutoff_iso,))
    callbacks: dict[tuple, Bucket] = {}
    for r in await tx.execute_fetchall("SELECT day, status FROM callbacks WHERE purge_after <= ?", (cutoff_iso,)):
        bucket = callbacks.setdefault((r["day"], 0, "call", "", "", "", None), Bucket())
        if r["status"] == "done":
            bucket.callbacks_done += 1
        else:
            bucket.callbacks_open += 1
    await _add_to_daily(tx, _stay_contacts(rows, zone), callbacks)
    await tx.execute("DELETE FROM callbacks WHERE purge_after <= ?", (cutoff_iso,))
    await tx.execute("DELETE FROM callback_sources WHERE purge_after <= ?", (cutoff_iso,))
    await tx.execute("DELETE FROM call_notes WHERE conversation_id IS NULL AND purge_after <= ?", (cutoff_iso,))
    cur = await tx.execute("DELETE FROM queue_calls WHERE conversation_id IS NULL AND purge_after <= ?", (cutoff_iso,))
    await tx.execute("DELETE FROM queue_member_events WHERE purge_after <= ?", (cutoff_iso,))
    await tx.execute("DELETE FROM queue_log_lines WHERE purge_after <= ?", (cutoff_iso,))
    return cur.rowcount


async def _add_to_daily(tx: Any, contacts: list[Contact], extra: dict[tuple, Bucket] | None = None) -> None:
    cells: dict[tuple, Bucket] = dict(extra or {})
    for c in contacts:
        key = (c.day, c.hour, c.channel, c.queue, c.consultant, c.topic, c.consultant_id)
        cells.setdefault(key, Bucket()).add_contact(c)
    for (day, hour, channel, queue, consultant, topic, consultant_id), b in cells.items():
        rows = await tx.execute_fetchall(  # fetch-all: no statement left open on the writer
            "SELECT * FROM service_daily WHERE day = ? AND hour = ? AND channel = ? AND queue = ? AND consultant = ? "
            "AND topic = ?",
            (day, hour, channel, queue, consultant, topic),
        )
        for row in rows:
            b.merge(
                Bucket(
                    row["offered"],
                    row["answered"],
                    row["abandoned"],
                    row["unanswered_other"],
                    json.loads(row["answered_waits"]),
                    json.loads(row["abandoned_waits"]),
                    json.loads(row["handle_times"]),
                    row["callbacks_done"],
                    row["callbacks_open"],
                )
            )
        await tx.execute(
            "INSERT OR REPLACE INTO service_daily(day, hour, channel, queue, consultant_id, consultant, topic, offered,"
            " answered, abandoned, unanswered_other, answered_waits, abandoned_waits, handle_times, callbacks_done,"
            " callbacks_open) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                day,
                hour,
                channel,
                queue,
                consultant_id,
                consultant,
                topic,
                b.offered,
                b.answered,
                b.abandoned,
                b.unanswered_other,
                json.dumps(sorted(b.answered_waits)),
                json.dumps(sorted(b.abandoned_waits)),
                json.dumps(sorted(b.handle_times)),
                b.callbacks_done,
                b.callbacks_open,
            ),
        )
