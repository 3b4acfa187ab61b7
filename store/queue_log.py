"""Asterisk queue_log ingestion: callers' stays in queues (wait, answer, abandonment, talk) and members' pauses.

The file is app_queue.c's `epoch|callid|queue|agent|event|data1|...|data5` (data fields as its
ast_queue_log() calls write them, Asterisk 13-22). Each line is registered once (by its SHA-256),
so a second run, or a run over a file that grew, adds only what is new; a malformed line is
reported with its number and the rest registered. A stay is linked to its call by callid = the
caller channel's uniqueid, which is the uniqueid of the call's CDR leg.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import sqlite3
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from .calls import Rejection, channel_extension, normalise_number, poll_until_stopped, split_lines
from .clock import to_iso
from .errors import InvalidInput
from .models import Actor
from .policy import Permission

if TYPE_CHECKING:
    from . import Store

#: Events that end a caller's wait without an answer, and the outcome each records.
EXIT_OUTCOMES = {"ABANDON": "abandoned", "EXITWITHTIMEOUT": "timeout", "EXITWITHKEY": "exitkey",
                 "EXITEMPTY": "exitempty"}
#: Where each exit event keeps the waiting time (data field index, 1-based): app_queue.c's formats
#: ABANDON pos|origpos|waittime, EXITWITHTIMEOUT pos|origpos|waittime, EXITWITHKEY key|pos|origpos|waittime,
#: EXITEMPTY pos|origpos|waittime.
EXIT_WAIT_FIELD = {"ABANDON": 3, "EXITWITHTIMEOUT": 3, "EXITWITHKEY": 4, "EXITEMPTY": 3}
#: Transfers: TRANSFER / BLINDTRANSFER exten|context|holdtime|calltime|origpos,
#: ATTENDEDTRANSFER method|target|holdtime|calltime|origpos.
TRANSFER_EVENTS = ("TRANSFER", "BLINDTRANSFER", "ATTENDEDTRANSFER")
MEMBER_EVENTS = ("PAUSE", "PAUSEALL", "UNPAUSE", "UNPAUSEALL", "ADDMEMBER", "REMOVEMEMBER", "AGENTLOGIN",
                 "AGENTLOGOFF", "AGENTCALLBACKLOGIN", "AGENTCALLBACKLOGOFF")
#: Events app_queue.c (and res_agent) write that carry nothing CIM keeps: registered, not applied.
IGNORED_EVENTS = frozenset({"DID", "INFO", "CONFIGRELOAD", "QUEUESTART", "AGENTDUMP", "SYSCOMPAT",
                            "RINGCANCELED", "CALLSTATUS", "SHUTDOWN", "ATTENDEDTRANSFERFAIL"})
_EVENT_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")
BATCH = 500


@dataclass(frozen=True)
class QueueLogEntry:
    line: int
    at: datetime
    callid: str
    queue: str
    agent: str
    event: str
    data: tuple[str, ...]
    digest: str

    def number(self, index: int, what: str) -> int:
        """Data field `index` (1-based) as whole seconds/positions; a clear LineError otherwise."""
        value = self.data[index - 1].strip() if len(self.data) >= index else ""
        try:
            result = int(value)
        except ValueError:
            raise _LineError(f"{self.event}: {what} (data{index}) must be a whole number, not {value!r}") from None
        if result < 0:
            raise _LineError(f"{self.event}: {what} (data{index}) is negative ({result})")
        return result


class _LineError(ValueError):
    pass


def parse_line(number: int, raw: bytes) -> QueueLogEntry | Rejection | None:
    """One queue_log line: an entry, a Rejection saying what is wrong, or None for a blank line."""
    raw = raw.rstrip(b"\r")
    if not raw.strip():
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return Rejection(number, "the line is not valid UTF-8")
    fields = text.split("|")
    if len(fields) < 5:
        return Rejection(number, f"a queue_log line has at least 5 fields (epoch|callid|queue|agent|event), "
                                 f"this one {len(fields)}")
    epoch, callid, queue, agent, event = (f.strip() for f in fields[:5])
    try:
        seconds = float(epoch)
        if not 0 < seconds < 32503680000:  # year 3000
            raise ValueError
        at = datetime.fromtimestamp(seconds, timezone.utc)
    except (ValueError, OverflowError):
        return Rejection(number, f"the time must be a Unix epoch in seconds, not {epoch!r}")
    if not _EVENT_NAME.match(event):
        return Rejection(number, f"the event name {event!r} is not an Asterisk queue_log event")
    return QueueLogEntry(number, at, callid, queue, agent, event, tuple(fields[5:]),
                         hashlib.sha256(raw).hexdigest())


@dataclass
class QueueLogReport:
    """What one queue_log run did; the CDR ingest's keys plus queue-specific counts."""

    imported: int = 0
    already_present: int = 0
    rejected: list[Rejection] = field(default_factory=list)
    queue_calls: int = 0
    member_events: int = 0
    ignored: int = 0
    unknown_events: dict[str, int] = field(default_factory=dict)
    linked_to_calls: int = 0
    #: Lines already past their retention (purge_after): not registered.
    expired: int = 0

    def as_json(self) -> dict[str, Any]:
        return {"imported": self.imported, "already_present": self.already_present,
                "rejected": [r.as_json() for r in self.rejected], "queue_calls": self.queue_calls,
                "member_events": self.member_events, "ignored": self.ignored,
                "unknown_events": dict(sorted(self.unknown_events.items())), "linked_to_calls": self.linked_to_calls,
                "expired": self.expired}

    def add(self, other: "QueueLogReport") -> None:
        self.imported += other.imported
        self.already_present += other.already_present
        self.rejected.extend(other.rejected)
        self.queue_calls += other.queue_calls
        self.member_events += other.member_events
        self.ignored += other.ignored
        for name, n in other.unknown_events.items():
            self.unknown_events[name] = self.unknown_events.get(name, 0) + n
        self.linked_to_calls += other.linked_to_calls
        self.expired += other.expired


@dataclass
class QueueLogSource:
    """A queue_log file and how far it has been read (so --watch reads only what was appended)."""

    path: Path
    offset: int = 0
    next_line: int = 1
    file_id: tuple[int, int] | None = None


class QueueLog:
    """`store.queue_log`: registering queue_log files; the facts feed the service report and callbacks."""

    def __init__(self, store: "Store") -> None:
        self.store = store

    def source(self, path: Path) -> QueueLogSource:
        path = Path(path)
        if not path.is_file():
            raise InvalidInput(f"no queue_log file at {path}")
        return QueueLogSource(path)

    async def ingest(self, actor: Actor, src: QueueLogSource, *, final: bool = True) -> QueueLogReport:
        """Register what is new in the file since the last read; `final`: report a last line without its end."""
        await self.store.audit.guard(actor, Permission.INGEST_CALLS, "calls.ingest_queue_log")
        report = QueueLogReport()
        data = await asyncio.to_thread(_read_new, src)
        lines, consumed = split_lines(data, src.next_line)
        tail = data[consumed:]
        entries: list[QueueLogEntry] = []
        for number, raw in lines:
            parsed = parse_line(number, raw)
            if isinstance(parsed, Rejection):
                report.rejected.append(parsed)
            elif parsed is not None:
                entries.append(parsed)
        src.offset += consumed
        src.next_line += len(lines)
        if final and tail.strip():
            report.rejected.append(Rejection(src.next_line, "the last line has no line end (is Asterisk still "
                                                            "writing the file?); it will be read on the next run"))
        retention = self.store.settings.retention_duration
        now = to_iso(self.store.clock())
        for i in range(0, len(entries), BATCH):
            await self.store.db.write_call(_register, entries[i:i + BATCH], report, retention, now)
        report.linked_to_calls = await self.link_calls()
        if entries or report.rejected:
            async with self.store.db.write() as tx:
                await self.store.audit.append(tx, actor, "calls.ingest_queue_log", details={
                    "file": src.path.name, "imported": report.imported, "already_present": report.already_present,
                    "rejected": len(report.rejected)})
        return report

    async def link_calls(self) -> int:
        """Link stays not yet linked to the call whose CDR leg has the same uniqueid (CDR ingested later too)."""
        def link(conn: sqlite3.Connection) -> int:
            cur = conn.execute(
                "UPDATE queue_calls SET conversation_id = (SELECT l.conversation_id FROM call_legs l "
                " WHERE l.uniqueid = queue_calls.callid LIMIT 1) WHERE conversation_id IS NULL "
                "AND EXISTS (SELECT 1 FROM call_legs l WHERE l.uniqueid = queue_calls.callid)")
            return cur.rowcount
        return await self.store.db.write_call(link)

    async def watch(self, actor: Actor, src: QueueLogSource, stop: asyncio.Event, *, interval: float = 2.0,
                    iterations: int | None = None,
                    on_poll: Callable[[QueueLogReport], None] | None = None) -> QueueLogReport:
        """Poll the file for appended lines until `stop` is set (a half-written last line waits for its end)."""
        return await poll_until_stopped(lambda: self.ingest(actor, src, final=False), QueueLogReport(), stop,
                                        interval=interval, iterations=iterations, on_poll=on_poll)


def _read_new(src: QueueLogSource) -> bytes:
    with open(src.path, "rb") as fh:
        st = os.fstat(fh.fileno())
        file_id = (st.st_dev, st.st_ino)
        if src.file_id is not None and (file_id != src.file_id or st.st_size < src.offset):
            src.offset, src.next_line = 0, 1  # rotated or truncated: a new file, read from its top
        src.file_id = file_id
        fh.seek(src.offset)
        return fh.read()


# ------------------------------------------------------------------------------------------------
# Applying entries (on the writer's thread, one transaction per batch)


def _register(conn: sqlite3.Connection, entries: list[QueueLogEntry], report: QueueLogReport, retention,
              now: str) -> None:
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
            conn.execute("INSERT INTO queue_log_lines(digest, imported_at, purge_after) VALUES (?, ?, ?)",
                         (entry.digest, now, purge_after))
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
        if not e.agent or e.agent == "NONE":
            raise _LineError(f"{ev} names no queue member")
        reason = e.data[0].strip() if ev in ("PAUSE", "PAUSEALL") and e.data and e.data[0].strip() else None
        conn.execute("INSERT INTO queue_member_events(at, queue, agent, event, reason, purge_after) "
                     "VALUES (?, ?, ?, ?, ?, ?)", (to_iso(e.at), e.queue, e.agent, ev, reason, purge_after))
        report.member_events += 1
        return
    if ev in IGNORED_EVENTS:
        report.ignored += 1
        return
    if ev not in ("ENTERQUEUE", "CONNECT", "COMPLETECALLER", "COMPLETEAGENT", "RINGNOANSWER",
                  *EXIT_OUTCOMES, *TRANSFER_EVENTS):
        report.unknown_events[ev] = report.unknown_events.get(ev, 0) + 1
        return
    if not e.callid or e.callid == "NONE":
        raise _LineError(f"{ev} has no call id")
    if not e.queue or e.queue == "NONE":
        raise _LineError(f"{ev} names no queue")
    if ev == "ENTERQUEUE":
        # url|callerid|position
        number = normalise_number(e.data[1] if len(e.data) > 1 else "")
        position = e.number(3, "position") if len(e.data) > 2 and e.data[2].strip() else None
        cur = conn.execute(
            "INSERT OR IGNORE INTO queue_calls(callid, queue, entered_at, caller, position, purge_after) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (e.callid, e.queue, to_iso(e.at), number.normalised if number.identifiable else None, position,
             purge_after))
        report.queue_calls += cur.rowcount
        return
    if ev == "RINGNOANSWER":
        e.number(1, "ringing time in ms")
        row = _stay(conn, e)
        if row is not None:
            conn.execute("UPDATE queue_calls SET ring_no_answer = ring_no_answer + 1 WHERE id = ?", (row["id"],))
        return
    if ev == "CONNECT":
        # holdtime|bridged channel uniqueid|ringtime
        wait = e.number(1, "waiting time")
        stay = _stay_or_new(conn, e, wait, purge_after, report)
        extension, consultant_id = _member(conn, e.agent)
        conn.execute("UPDATE queue_calls SET outcome = 'answered', wait_s = ?, agent = ?, extension = ?, "
                     "consultant_id = ? WHERE id = ?", (wait, e.agent, extension, consultant_id, stay))
        return
    if ev in EXIT_OUTCOMES:
        wait = e.number(EXIT_WAIT_FIELD[ev], "waiting time")
        stay = _stay_or_new(conn, e, wait, purge_after, report)
        conn.execute("UPDATE queue_calls SET outcome = ?, wait_s = ?, ended_at = ?, ended_by = 'caller' "
                     "WHERE id = ?", (EXIT_OUTCOMES[ev], wait, to_iso(e.at), stay))
        return
    # COMPLETECALLER/COMPLETEAGENT holdtime|calltime|origpos; transfers x|y|holdtime|calltime|origpos
    wait_field, talk_field = (1, 2) if ev.startswith("COMPLETE") else (3, 4)
    wait = e.number(wait_field, "waiting time")
    talk = e.number(talk_field, "talk time")
    stay = _stay_or_new(conn, e, wait, purge_after, report)
    ended_by = {"COMPLETECALLER": "caller", "COMPLETEAGENT": "agent"}.get(ev, "transfer")
    extension, consultant_id = _member(conn, e.agent)
    conn.execute("UPDATE queue_calls SET outcome = 'answered', wait_s = coalesce(wait_s, ?), talk_s = ?, "
                 "ended_at = ?, ended_by = ?, agent = coalesce(agent, ?), extension = coalesce(extension, ?), "
                 "consultant_id = coalesce(consultant_id, ?) WHERE id = ?",
                 (wait, talk, to_iso(e.at), ended_by, e.agent, extension, consultant_id, stay))


def _stay(conn: sqlite3.Connection, e: QueueLogEntry) -> sqlite3.Row | None:
    """The caller's latest stay in this queue that began before the event."""
    return conn.execute("SELECT id FROM queue_calls WHERE callid = ? AND queue = ? AND entered_at <= ? "
                        "ORDER BY entered_at DESC LIMIT 1", (e.callid, e.queue, to_iso(e.at))).fetchone()


def _stay_or_new(conn: sqlite3.Connection, e: QueueLogEntry, wait: int, purge_after: str,
                 report: QueueLogReport) -> int:
    """The stay the event belongs to; when its ENTERQUEUE is not in the file (a rotated log), it begins `wait` earlier."""
    row = _stay(conn, e)
    if row is not None:
        return row["id"]
    entered = e.at - timedelta(seconds=wait)
    cur = conn.execute("INSERT INTO queue_calls(callid, queue, entered_at, purge_after) VALUES (?, ?, ?, ?)",
                       (e.callid, e.queue, to_iso(entered), purge_after))
    report.queue_calls += 1
    return cur.lastrowid


def _member(conn: sqlite3.Connection, agent: str) -> tuple[str | None, int | None]:
    """The member's extension (PJSIP/201 -> 201, or a bare 201) and the consultant with that extension."""
    agent = agent.strip()
    extension = agent if agent.isdigit() else channel_extension(agent)
    if not extension:
        return None, None
    row = conn.execute("SELECT staff_id FROM staff_extensions WHERE extension = ?", (extension,)).fetchone()
    return extension, row["staff_id"] if row else None
