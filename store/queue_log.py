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
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from .calls import Rejection, poll_until_stopped, split_lines
from .clock import to_iso
from .errors import InvalidInput
from .i18n import N_
from .models import Actor
from .policy import Permission

if TYPE_CHECKING:  # the service names the repository's type only; its SQL is the backend's (store/sqlite/)
    from . import Store
    from .sqlite.queue_log import QueueLogRepository

#: Events that end a caller's wait without an answer, and the outcome each records.
EXIT_OUTCOMES = {
    "ABANDON": "abandoned",
    "EXITWITHTIMEOUT": "timeout",
    "EXITWITHKEY": "exitkey",
    "EXITEMPTY": "exitempty",
}
#: Where each exit event keeps the waiting time (data field index, 1-based): app_queue.c's formats
#: ABANDON pos|origpos|waittime, EXITWITHTIMEOUT pos|origpos|waittime, EXITWITHKEY key|pos|origpos|waittime,
#: EXITEMPTY pos|origpos|waittime.
EXIT_WAIT_FIELD = {"ABANDON": 3, "EXITWITHTIMEOUT": 3, "EXITWITHKEY": 4, "EXITEMPTY": 3}
#: Transfers: TRANSFER / BLINDTRANSFER exten|context|holdtime|calltime|origpos,
#: ATTENDEDTRANSFER method|target|holdtime|calltime|origpos.
TRANSFER_EVENTS = ("TRANSFER", "BLINDTRANSFER", "ATTENDEDTRANSFER")
MEMBER_EVENTS = (
    "PAUSE",
    "PAUSEALL",
    "UNPAUSE",
    "UNPAUSEALL",
    "ADDMEMBER",
    "REMOVEMEMBER",
    "AGENTLOGIN",
    "AGENTLOGOFF",
    "AGENTCALLBACKLOGIN",
    "AGENTCALLBACKLOGOFF",
)
#: Events app_queue.c (and res_agent) write that carry nothing CIM keeps: registered, not applied.
IGNORED_EVENTS = frozenset(
    {
        "DID",
        "INFO",
        "CONFIGRELOAD",
        "QUEUESTART",
        "AGENTDUMP",
        "SYSCOMPAT",
        "RINGCANCELED",
        "CALLSTATUS",
        "SHUTDOWN",
        "ATTENDEDTRANSFERFAIL",
    }
)
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
        return Rejection(
            number, f"a queue_log line has at least 5 fields (epoch|callid|queue|agent|event), this one {len(fields)}"
        )
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
    return QueueLogEntry(number, at, callid, queue, agent, event, tuple(fields[5:]), hashlib.sha256(raw).hexdigest())


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
        return {
            "imported": self.imported,
            "already_present": self.already_present,
            "rejected": [r.as_json() for r in self.rejected],
            "queue_calls": self.queue_calls,
            "member_events": self.member_events,
            "ignored": self.ignored,
            "unknown_events": dict(sorted(self.unknown_events.items())),
            "linked_to_calls": self.linked_to_calls,
            "expired": self.expired,
        }

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
    """`store.queue_log`: registering queue_log files; the facts feed the service report and callbacks.

    The SQL (applying the entries, linking stays to calls) is the repository's (store/sqlite/queue_log.py);
    the run's audit entry is written in its unit of work.
    """

    def __init__(self, store: "Store", repo: "QueueLogRepository") -> None:
        self.store = store
        self.repo = repo

    def source(self, path: Path) -> QueueLogSource:
        path = Path(path)
        if not path.is_file():
            raise InvalidInput(N_("no queue_log file at {path}"), path=path)
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
            report.rejected.append(
                Rejection(
                    src.next_line,
                    "the last line has no line end (is Asterisk still "
                    "writing the file?); it will be read on the next run",
                )
            )
        retention = self.store.settings.retention_duration
        now = to_iso(self.store.clock())
        for i in range(0, len(entries), BATCH):
            await self.repo.register(entries[i : i + BATCH], report, retention, now)
        report.linked_to_calls = await self.link_calls()
        if entries or report.rejected:
            async with self.repo.transaction() as tx:
                await self.store.audit.append(
                    tx,
                    actor,
                    "calls.ingest_queue_log",
                    details={
                        "file": src.path.name,
                        "imported": report.imported,
                        "already_present": report.already_present,
                        "rejected": len(report.rejected),
                    },
                )
        return report

    async def link_calls(self) -> int:
        """Link stays not yet linked to the call whose CDR leg has the same uniqueid (CDR ingested later too)."""
        return await self.repo.link_calls()

    async def watch(
        self,
        actor: Actor,
        src: QueueLogSource,
        stop: asyncio.Event,
        *,
        interval: float = 2.0,
        iterations: int | None = None,
        on_poll: Callable[[QueueLogReport], None] | None = None,
    ) -> QueueLogReport:
        """Poll the file for appended lines until `stop` is set (a half-written last line waits for its end)."""
        return await poll_until_stopped(
            lambda: self.ingest(actor, src, final=False),
            QueueLogReport(),
            stop,
            interval=interval,
            iterations=iterations,
            on_poll=on_poll,
        )


def _read_new(src: QueueLogSource) -> bytes:
    with open(src.path, "rb") as fh:
        st = os.fstat(fh.fileno())
        file_id = (st.st_dev, st.st_ino)
        if src.file_id is not None and (file_id != src.file_id or st.st_size < src.offset):
            src.offset, src.next_line = 0, 1  # rotated or truncated: a new file, read from its top
        src.file_id = file_id
        fh.seek(src.offset)
        return fh.read()
