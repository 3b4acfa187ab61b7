"""The queue_log repository on SQLite: registering parsed queue_log entries as queue stays and members' events.

store/queue_log.py holds the rules (who may ingest, reading and parsing the file, what is audited);
this module holds the SQL: each entry applied to queue_calls / queue_member_events in one write
transaction per batch (a line once, by its digest), stays linked to their calls, and the unit of work
the audit entry joins.
"""

from __future__ import annotations

import sqlite3
from datetime import timedelta

from ..calls import Rejection, channel_extension, normalise_number
from ..clock import to_iso
from ..queue_log import (
    EXIT_OUTCOMES,
    EXIT_WAIT_FIELD,
    IGNORED_EVENTS,
    MEMBER_EVENTS,
    TRANSFER_EVENTS,
    QueueLogEntry,
    QueueLogReport,
    _LineError,
)
from .database import Repository, inserted_id

#: A stay whose call's CDR has arrived belongs to that call (callid = the caller leg's uniqueid).
LINK_STAYS = (
    "UPDATE queue_calls SET conversation_id = (SELECT l.conversation_id FROM call_legs l "
    " WHERE l.uniqueid = queue_calls.callid LIMIT 1) WHERE conversation_id IS NULL "
    "AND EXISTS (SELECT 1 FROM call_legs l WHERE l.uniqueid = queue_calls.callid)"
)


class QueueLogRepository(Repository):
    """The SQL of store/queue_log.py's QueueLog service."""

    async def register(self, entries: list[QueueLogEntry], report: QueueLogReport, retention, now: str) -> None:
        """Apply one batch of entries in one write transaction, counting into `report`."""
        await self.db.write_call(_register, entries, report, retention, now)

    async def link_calls(self) -> int:
        """Link stays not yet linked to the call whose CDR leg has the same uniqueid; the stays linked."""
        return await self.db.write_call(_link_stays)


def _link_stays(conn: sqlite3.Connection) -> int:
    return conn.execute(LINK_STAYS).rowcount


# ------------------------------------------------------------------------------------------------
# Applying entries (on the writer's thread, one transaction per batch)


def _register(
    conn: sqlite3.Connection, entries: list[QueueLogEntry], report: QueueLogReport, retention, now: str
) -> None:
    for entry in entries:
        purge_after = to_iso(retention.after(entry.at))
        if purge_after <= now:
            report.expired += 1  # already past its retention: purged facts are not brought back (§6)
            continue
        if conn.execute("SELECT 1 FROM queue_log_lines WHERE digest = ?", (entry.digest,)).fetchone():
            report.already_present += 1
            continue
        conn.execute("SAVEPOINT line")
        try:
            _apply(conn, entry, report, purge_after)
            conn.execute(
                "INSERT INTO queue_log_lines(digest, imported_at, purge_after) VALUES (?, ?, ?)",
                (entry.digest, now, purge_after),
            )
        except _LineError as exc:
            conn.execute("ROLLBACK TO line")
            conn.execute("RELEASE line")
            report.rejected.append(Rejection(entry.line, str(exc)))
            continue
        conn.execute("RELEASE line")
        report.imported += 1


def _apply(conn: sqlite3.Connection, e: QueueLogEntry, report: QueueLogReport, purge_after: str) -> None:
    ev = e.event
    if ev in MEMBER_EVENTS:
        _apply_member(conn, e, report, purge_after)
        return
    if ev in IGNORED_EVENTS:
        report.ignored += 1
        return
    if ev not in (
        "ENTERQUEUE",
        "CONNECT",
        "COMPLETECALLER",
        "COMPLETEAGENT",
        "RINGNOANSWER",
        *EXIT_OUTCOMES,
        *TRANSFER_EVENTS,
    ):
        report.unknown_events[ev] = report.unknown_events.get(ev, 0) + 1
        return
    if not e.callid or e.callid == "NONE":
        raise _LineError(f"{ev} has no call id")
    if not e.queue or e.queue == "NONE":
        raise _LineError(f"{ev} names no queue")
    if ev == "ENTERQUEUE":
        _apply_enter(conn, e, report, purge_after)
    elif ev == "RINGNOANSWER":
        e.number(1, "ringing time in ms")
        row = _stay(conn, e)
        if row is not None:
            conn.execute("UPDATE queue_calls SET ring_no_answer = ring_no_answer + 1 WHERE id = ?", (row["id"],))
    elif ev == "CONNECT":
        # holdtime|bridged channel uniqueid|ringtime
        wait = e.number(1, "waiting time")
        stay = _stay_or_new(conn, e, wait, purge_after, report)
        extension, consultant_id = _member(conn, e.agent)
        conn.execute(
            "UPDATE queue_calls SET outcome = 'answered', wait_s = ?, agent = ?, extension = ?, "
            "consultant_id = ? WHERE id = ?",
            (wait, e.agent, extension, consultant_id, stay),
        )
    elif ev in EXIT_OUTCOMES:
        wait = e.number(EXIT_WAIT_FIELD[ev], "waiting time")
        stay = _stay_or_new(conn, e, wait, purge_after, report)
        conn.execute(
            "UPDATE queue_calls SET outcome = ?, wait_s = ?, ended_at = ?, ended_by = 'caller' WHERE id = ?",
            (EXIT_OUTCOMES[ev], wait, to_iso(e.at), stay),
        )
    else:
        _apply_end(conn, e, report, purge_after)


def _apply_member(conn: sqlite3.Connection, e: QueueLogEntry, report: QueueLogReport, purge_after: str) -> None:
    ev = e.event
    if not e.agent or e.agent == "NONE":
        raise _LineError(f"{ev} names no queue member")
    reason = e.data[0].strip() if ev in ("PAUSE", "PAUSEALL") and e.data and e.data[0].strip() else None
    conn.execute(
        "INSERT INTO queue_member_events(at, queue, agent, event, reason, purge_after) VALUES (?, ?, ?, ?, ?, ?)",
        (to_iso(e.at), e.queue, e.agent, ev, reason, purge_after),
    )
    report.member_events += 1


def _apply_enter(conn: sqlite3.Connection, e: QueueLogEntry, report: QueueLogReport, purge_after: str) -> None:
    # url|callerid|position
    number = normalise_number(e.data[1] if len(e.data) > 1 else "")
    position = e.number(3, "position") if len(e.data) > 2 and e.data[2].strip() else None
    cur = conn.execute(
        "INSERT OR IGNORE INTO queue_calls(callid, queue, entered_at, caller, position, purge_after) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (e.callid, e.queue, to_iso(e.at), number.normalised if number.identifiable else None, position, purge_after),
    )
    report.queue_calls += cur.rowcount


def _apply_end(conn: sqlite3.Connection, e: QueueLogEntry, report: QueueLogReport, purge_after: str) -> None:
    """An answered stay's end: COMPLETECALLER/COMPLETEAGENT holdtime|calltime|origpos, transfers
    x|y|holdtime|calltime|origpos."""
    ev = e.event
    wait_field, talk_field = (1, 2) if ev.startswith("COMPLETE") else (3, 4)
    wait = e.number(wait_field, "waiting time")
    talk = e.number(talk_field, "talk time")
    stay = _stay_or_new(conn, e, wait, purge_after, report)
    ended_by = {"COMPLETECALLER": "caller", "COMPLETEAGENT": "agent"}.get(ev, "transfer")
    extension, consultant_id = _member(conn, e.agent)
    conn.execute(
        "UPDATE queue_calls SET outcome = 'answered', wait_s = coalesce(wait_s, ?), talk_s = ?, "
        "ended_at = ?, ended_by = ?, agent = coalesce(agent, ?), extension = coalesce(extension, ?), "
        "consultant_id = coalesce(consultant_id, ?) WHERE id = ?",
        (wait, talk, to_iso(e.at), ended_by, e.agent, extension, consultant_id, stay),
    )


def _stay(conn: sqlite3.Connection, e: QueueLogEntry) -> sqlite3.Row | None:
    """The caller's latest stay in this queue that began before the event."""
    return conn.execute(
        "SELECT id FROM queue_calls WHERE callid = ? AND queue = ? AND entered_at <= ? "
        "ORDER BY entered_at DESC LIMIT 1",
        (e.callid, e.queue, to_iso(e.at)),
    ).fetchone()


def _stay_or_new(
    conn: sqlite3.Connection, e: QueueLogEntry, wait: int, purge_after: str, report: QueueLogReport
) -> int:
    """The stay the event belongs to; when its ENTERQUEUE is not in the file (a rotated log), it begins `wait` earlier."""
    row = _stay(conn, e)
    if row is not None:
        return row["id"]
    entered = e.at - timedelta(seconds=wait)
    cur = conn.execute(
        "INSERT INTO queue_calls(callid, queue, entered_at, purge_after) VALUES (?, ?, ?, ?)",
        (e.callid, e.queue, to_iso(entered), purge_after),
    )
    report.queue_calls += 1
    return inserted_id(cur)


def _member(conn: sqlite3.Connection, agent: str) -> tuple[str | None, int | None]:
    """The member's extension (PJSIP/201 -> 201, or a bare 201) and the consultant with that extension."""
    agent = agent.strip()
    extension = agent if agent.isdigit() else channel_extension(agent)
    if not extension:
        return None, None
    row = conn.execute("SELECT staff_id FROM staff_extensions WHERE extension = ?", (extension,)).fetchone()
    return extension, row["staff_id"] if row else None
