"""The PBX's live state from AMI events: queues (callers waiting, members), active calls, today's counters.

Pure and synchronous: `TrafficState.apply(event)` takes one AMI event (a mapping of header ->
value, Asterisk 16-22 field names) and `rebuild()` starts over from the QueueStatus and
CoreShowChannels answers, as `cim serve` does on every (re)connect. Live state never replaces a
record (DESIGN.md §2): nothing here is stored; the facts arrive later through CDR and queue_log.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta, timezone
from typing import Any, Callable, Iterable, Mapping
from zoneinfo import ZoneInfo

from .calls import channel_extension
from .clock import to_iso

#: Device states (AMI Status of a queue member, ast_device_state).
(
    DEVICE_FREE,
    DEVICE_INUSE,
    DEVICE_BUSY,
    DEVICE_INVALID,
    DEVICE_UNAVAILABLE,
    DEVICE_RINGING,
    DEVICE_RINGINUSE,
    DEVICE_ONHOLD,
) = 1, 2, 3, 4, 5, 6, 7, 8
CHANNEL_UP = 6
#: Events this model reads; any other event is counted and ignored.
HANDLED = frozenset(
    {
        "QueueCallerJoin",
        "QueueCallerLeave",
        "QueueCallerAbandon",
        "AgentCalled",
        "AgentConnect",
        "AgentComplete",
        "AgentRingNoAnswer",
        "AgentDump",
        "QueueMemberStatus",
        "QueueMemberPause",
        "QueueMemberAdded",
        "QueueMemberRemoved",
        "QueueMemberRinginuse",
        "QueueMemberPenalty",
        "Newchannel",
        "Newstate",
        "NewCallerid",
        "NewConnectedLine",
        "DialBegin",
        "DialEnd",
        "BridgeEnter",
        "BridgeLeave",
        "Hangup",
        "BlindTransfer",
        "AttendedTransfer",
    }
)
_DURATION = re.compile(r"^(\d+):(\d{2}):(\d{2})$")


def mask_number(number: str | None, *, internal: bool = False) -> str | None:
    """A resident's number for staff without archive access: only its last 3 digits (extensions stay)."""
    if not number:
        return number
    if internal:
        return number
    digits = "".join(ch for ch in number if ch.isdigit())
    return "•••" + digits[-3:] if len(digits) > 3 else "•••"


@dataclass
class Caller:
    uniqueid: str
    channel: str
    number: str
    queue: str
    position: int
    joined_at: datetime
    ringing: str | None = None  # interface of the member being rung


@dataclass
class Member:
    queue: str
    interface: str
    name: str
    status: int = 0
    paused: bool = False
    reason: str = ""
    in_call: bool = False
    ringing: bool = False

    @property
    def extension(self) -> str | None:
        return self.interface if self.interface.isdigit() else channel_extension(self.interface)

    @property
    def state(self) -> str:
        """free / ringing / on_call / paused / unavailable / unknown, as the wallboard shows it."""
        if self.paused:
            return "paused"
        if self.ringing or self.status in (DEVICE_RINGING, DEVICE_RINGINUSE):
            return "ringing"
        if self.in_call or self.status in (DEVICE_INUSE, DEVICE_BUSY, DEVICE_ONHOLD):
            return "on_call"
        if self.status == DEVICE_FREE:
            return "free"
        if self.status in (DEVICE_INVALID, DEVICE_UNAVAILABLE):
            return "unavailable"
        return "unknown"


@dataclass
class Channel:
    uniqueid: str
    name: str
    linkedid: str
    state: int
    number: str
    connected: str
    exten: str
    created_at: datetime
    up_at: datetime | None = None
    bridge: str | None = None
    queue: str | None = None


@dataclass
class Counters:
    day: date | None = None
    offered: int = 0
    answered: int = 0
    abandoned: int = 0
    abandoned_short: int = 0

    def as_json(self) -> dict[str, Any]:
        return {
            "day": self.day.isoformat() if self.day else None,
            "offered": self.offered,
            "answered": self.answered,
            "abandoned": self.abandoned,
            "abandoned_short": self.abandoned_short,
        }


@dataclass
class TrafficState:
    """Queues, members, channels and today's counters; `apply` one event at a time."""

    zone: ZoneInfo = field(default_factory=lambda: ZoneInfo("Europe/Warsaw"))
    short_abandon_s: int = 5
    is_internal: Callable[[str], bool] = field(default=lambda n: n.isdigit() and len(n) <= 5)
    queues: dict[str, dict[str, Caller]] = field(default_factory=dict)
    members: dict[tuple[str, str], Member] = field(default_factory=dict)
    channels: dict[str, Channel] = field(default_factory=dict)
    counters: Counters = field(default_factory=Counters)
    #: Completed transfers per call (linkedid), while the call lasts.
    transfers: dict[str, int] = field(default_factory=dict)
    events_applied: int = 0
    events_ignored: int = 0

    # -- rebuilding ---------------------------------------------------------------------------

    def rebuild(
        self, queue_status: Iterable[Mapping[str, str]], channels: Iterable[Mapping[str, str]], now: datetime
    ) -> "TrafficState":
        """A fresh state from QueueStatus (QueueParams/QueueMember/QueueEntry) and CoreShowChannels answers.

        Today's counters carry over: AMI has no per-day totals, and a reconnect is not a new day.
        """
        fresh = TrafficState(self.zone, self.short_abandon_s, self.is_internal, counters=replace(self.counters))
        for ev in queue_status:
            fresh._add_queue_status(ev, now)
        for ev in channels:
            if ev.get("Event") == "CoreShowChannel":
                fresh.channels[ev.get("Uniqueid", "")] = _shown_channel(ev, now)
        fresh._mark_queued_channels()
        # transfers are in no list: those seen before the reconnect are kept for calls still going
        live_calls = {c.linkedid for c in fresh.channels.values()}
        fresh.transfers = {k: v for k, v in self.transfers.items() if k in live_calls}
        return fresh

    def _add_queue_status(self, ev: Mapping[str, str], now: datetime) -> None:
        """One QueueStatus answer: a queue, one of its members or a caller waiting in it (others are skipped)."""
        kind = ev.get("Event", "")
        queue = ev.get("Queue", "")
        if kind == "QueueParams":
            self.queues.setdefault(queue, {})
        elif kind == "QueueMember":
            interface = ev.get("Location") or ev.get("Interface") or ev.get("StateInterface", "")
            self.queues.setdefault(queue, {})
            self.members[(queue, interface)] = Member(
                queue,
                interface,
                ev.get("Name") or ev.get("MemberName") or interface,
                _int(ev.get("Status")),
                ev.get("Paused") == "1",
                ev.get("PausedReason", ""),
                ev.get("InCall") == "1",
            )
        elif kind == "QueueEntry":
            wait = _int(ev.get("Wait"))
            self.queues.setdefault(queue, {})[ev.get("Uniqueid", "")] = Caller(
                ev.get("Uniqueid", ""),
                ev.get("Channel", ""),
                ev.get("CallerIDNum", ""),
                queue,
                _int(ev.get("Position")),
                now - timedelta(seconds=wait),
            )

    def _mark_queued_channels(self) -> None:
        """Each waiting caller's channel is marked with the queue it waits in."""
        for callers in self.queues.values():
            for caller in callers.values():
                if caller.uniqueid in self.channels:
                    self.channels[caller.uniqueid].queue = caller.queue

    # -- events ---------------------------------------------------------------------------------

    def apply(self, ev: Mapping[str, str], now: datetime) -> bool:
        """Apply one event; False when the event is not one this model reads (or misses its key fields)."""
        kind = ev.get("Event", "")
        if kind not in HANDLED:
            self.events_ignored += 1
            return False
        at = _timestamp(ev, now)
        self._roll_day(at)
        handler = getattr(self, "_on_" + kind, None)
        if handler is None:
            self._member_event(ev)
        else:
            handler(ev, at)
        self.events_applied += 1
        return True

    def _roll_day(self, at: datetime) -> None:
        today = at.astimezone(self.zone).date()
        if self.counters.day != today:
            self.counters = Counters(today)

    def _on_QueueCallerJoin(self, ev: Mapping[str, str], at: datetime) -> None:
        queue, uid = ev.get("Queue", ""), ev.get("Uniqueid", "")
        self.queues.setdefault(queue, {})[uid] = Caller(
            uid, ev.get("Channel", ""), ev.get("CallerIDNum", ""), queue, _int(ev.get("Position")), at
        )
        if uid in self.channels:
            self.channels[uid].queue = queue
        self.counters.offered += 1

    def _on_QueueCallerLeave(self, ev: Mapping[str, str], at: datetime) -> None:
        callers = self.queues.get(ev.get("Queue", ""), {})
        callers.pop(ev.get("Uniqueid", ""), None)
        _renumber(callers)

    def _on_QueueCallerAbandon(self, ev: Mapping[str, str], at: datetime) -> None:
        self.counters.abandoned += 1
        if _int(ev.get("HoldTime")) <= self.short_abandon_s:
            self.counters.abandoned_short += 1
        self._on_QueueCallerLeave(ev, at)

    def _on_AgentCalled(self, ev: Mapping[str, str], at: datetime) -> None:
        member = self._member_of(ev)
        if member is not None:
            member.ringing = True
        caller = self.queues.get(ev.get("Queue", ""), {}).get(ev.get("Uniqueid", ""))
        if caller is not None:
            caller.ringing = ev.get("Interface")

    def _on_AgentRingNoAnswer(self, ev: Mapping[str, str], at: datetime) -> None:
        member = self._member_of(ev)
        if member is not None:
            member.ringing = False
        caller = self.queues.get(ev.get("Queue", ""), {}).get(ev.get("Uniqueid", ""))
        if caller is not None:
            caller.ringing = None

    def _on_AgentConnect(self, ev: Mapping[str, str], at: datetime) -> None:
        member = self._member_of(ev)
        if member is not None:
            member.ringing, member.in_call = False, True
        self.counters.answered += 1

    def _on_AgentComplete(self, ev: Mapping[str, str], at: datetime) -> None:
        member = self._member_of(ev)
        if member is not None:
            member.in_call = False

    def _on_AgentDump(self, ev: Mapping[str, str], at: datetime) -> None:
        self._on_AgentComplete(ev, at)

    def _member_event(self, ev: Mapping[str, str]) -> None:
        """QueueMemberStatus/Pause/Added/Removed/...: all carry the member's whole state."""
        queue, interface = ev.get("Queue", ""), ev.get("Interface") or ev.get("StateInterface", "")
        key = (queue, interface)
        if ev.get("Event") == "QueueMemberRemoved":
            self.members.pop(key, None)
            return
        self.queues.setdefault(queue, {})
        member = self.members.get(key) or Member(queue, interface, ev.get("MemberName") or interface)
        member.name = ev.get("MemberName") or member.name
        if "Status" in ev:
            member.status = _int(ev.get("Status"))
            if member.status not in (DEVICE_RINGING, DEVICE_RINGINUSE):
                member.ringing = False
        if "Paused" in ev:
            member.paused = ev.get("Paused") == "1"
            # Asterisk 16 also sends the older `Reason`; PausedReason is the field from 13 on
            member.reason = (ev.get("PausedReason") or ev.get("Reason") or "") if member.paused else ""
        if "InCall" in ev:
            member.in_call = ev.get("InCall") == "1"
        self.members[key] = member

    def _member_of(self, ev: Mapping[str, str]) -> Member | None:
        return self.members.get((ev.get("Queue", ""), ev.get("Interface", "")))

    def _on_Newchannel(self, ev: Mapping[str, str], at: datetime) -> None:
        uid = ev.get("Uniqueid", "")
        state = _int(ev.get("ChannelState"))
        self.channels[uid] = Channel(
            uid,
            ev.get("Channel", ""),
            ev.get("Linkedid") or uid,
            state,
            ev.get("CallerIDNum", ""),
            ev.get("ConnectedLineNum", ""),
            ev.get("Exten", ""),
            at,
            at if state == CHANNEL_UP else None,
        )

    def _channel(self, ev: Mapping[str, str], at: datetime, prefix: str = "") -> Channel:
        uid = ev.get(prefix + "Uniqueid", "")
        channel = self.channels.get(uid)
        if channel is None:  # an event of a channel that began before we connected and was not listed
            channel = self.channels[uid] = Channel(
                uid,
                ev.get(prefix + "Channel", ""),
                ev.get(prefix + "Linkedid") or uid,
                _int(ev.get(prefix + "ChannelState")),
                ev.get(prefix + "CallerIDNum", ""),
                ev.get(prefix + "ConnectedLineNum", ""),
                ev.get(prefix + "Exten", ""),
                at,
            )
        return channel

    def _on_Newstate(self, ev: Mapping[str, str], at: datetime) -> None:
        channel = self._channel(ev, at)
        channel.state = _int(ev.get("ChannelState"))
        channel.connected = ev.get("ConnectedLineNum", channel.connected)
        if channel.state == CHANNEL_UP and channel.up_at is None:
            channel.up_at = at

    def _on_NewCallerid(self, ev: Mapping[str, str], at: datetime) -> None:
        self._channel(ev, at).number = ev.get("CallerIDNum", "")

    def _on_NewConnectedLine(self, ev: Mapping[str, str], at: datetime) -> None:
        self._channel(ev, at).connected = ev.get("ConnectedLineNum", "")

    def _on_DialBegin(self, ev: Mapping[str, str], at: datetime) -> None:
        if ev.get("DestUniqueid"):
            self._channel(ev, at, "Dest")
        if ev.get("Uniqueid"):
            self._channel(ev, at)

    def _on_DialEnd(self, ev: Mapping[str, str], at: datetime) -> None:
        if ev.get("DestUniqueid"):
            self._channel(ev, at, "Dest")

    def _on_BridgeEnter(self, ev: Mapping[str, str], at: datetime) -> None:
        channel = self._channel(ev, at)
        channel.bridge = ev.get("BridgeUniqueid") or None
        if channel.up_at is None:
            channel.up_at = at

    def _on_BridgeLeave(self, ev: Mapping[str, str], at: datetime) -> None:
        channel = self.channels.get(ev.get("Uniqueid", ""))
        if channel is not None and channel.bridge == ev.get("BridgeUniqueid"):
            channel.bridge = None

    def _on_Hangup(self, ev: Mapping[str, str], at: datetime) -> None:
        uid = ev.get("Uniqueid", "")
        gone = self.channels.pop(uid, None)
        if (
            gone is not None
            and gone.linkedid in self.transfers
            and not any(c.linkedid == gone.linkedid for c in self.channels.values())
        ):
            del self.transfers[gone.linkedid]
        for callers in self.queues.values():  # a caller hung up without a QueueCallerLeave (a missed event)
            if callers.pop(uid, None) is not None:
                _renumber(callers)

    def _on_BlindTransfer(self, ev: Mapping[str, str], at: datetime) -> None:
        """A completed transfer is counted on the call (the resident's side); the new legs arrive as usual."""
        if ev.get("Result") != "Success":
            return
        linkedid = ev.get("TransfereeLinkedid") or ev.get("TransfererLinkedid") or ev.get("OrigTransfererLinkedid")
        if linkedid:
            self.transfers[linkedid] = self.transfers.get(linkedid, 0) + 1

    def _on_AttendedTransfer(self, ev: Mapping[str, str], at: datetime) -> None:
        self._on_BlindTransfer(ev, at)

    # -- what the wallboard shows ---------------------------------------------------------------

    def snapshot(self, now: datetime, *, masked: bool, names: Mapping[str, str] | None = None) -> dict[str, Any]:
        """The state as the `traffic` event's payload; `masked`: numbers cut to their last 3 digits."""
        names = names or {}

        def number(value: str) -> str | None:
            internal = self.is_internal(value) if value else False
            return mask_number(value, internal=internal) if masked else (value or None)

        queues = []
        for name in sorted(self.queues):
            callers = sorted(self.queues[name].values(), key=lambda c: (c.position, c.joined_at))
            members = sorted((m for m in self.members.values() if m.queue == name), key=lambda m: m.interface)
            queues.append(
                {
                    "queue": name,
                    "callers": [
                        {
                            "uniqueid": c.uniqueid,
                            "position": c.position,
                            "number": number(c.number),
                            "wait_s": max(0, int((now - c.joined_at).total_seconds())),
                            "ringing": c.ringing,
                        }
                        for c in callers
                    ],
                    "members": [
                        {
                            "interface": m.interface,
                            "name": m.name,
                            "extension": m.extension,
                            "consultant": names.get(m.extension or ""),
                            "state": m.state,
                            "reason": m.reason or None,
                        }
                        for m in members
                    ],
                }
            )
        return {"queues": queues, "calls": self._calls(now, number), "today": self.counters.as_json()}

    def _calls(self, now: datetime, number: Callable[[str], str | None]) -> list[dict[str, Any]]:
        """Active calls: channels grouped by linkedid, with at least one party answered or bridged."""
        groups: dict[str, list[Channel]] = {}
        for channel in self.channels.values():
            groups.setdefault(channel.linkedid, []).append(channel)
        out = []
        for linkedid, legs in sorted(groups.items()):
            if not any(c.bridge for c in legs):
                continue  # ringing, in a queue or in the IVR: not (yet) a conversation
            legs.sort(key=lambda c: (c.created_at, c.uniqueid))
            first = legs[0]
            since = first.created_at  # the call's start: what CoreShowChannel's Duration gives back on a rebuild
            extensions = sorted({e for c in legs if (e := channel_extension(c.name)) and self.is_internal(e)})
            if first.number and not self.is_internal(first.number):
                direction, party = "incoming", first.number
            elif first.exten and not self.is_internal(first.exten) and first.exten != "s":
                direction, party = "outgoing", first.exten
            else:
                direction, party = "internal", ""
            out.append(
                {
                    "linkedid": linkedid,
                    "direction": direction,
                    "number": number(party),
                    "extensions": extensions,
                    "queue": next((c.queue for c in legs if c.queue), None),
                    "since": to_iso(since),
                    "duration_s": max(0, int((now - since).total_seconds())),
                    "legs": len(legs),
                    "transfers": self.transfers.get(linkedid, 0),
                }
            )
        return out

    def member_for_extension(self, extension: str) -> list[Member]:
        return [m for m in self.members.values() if m.extension == extension]


def _renumber(callers: dict[str, Caller]) -> None:
    for i, caller in enumerate(sorted(callers.values(), key=lambda c: (c.position, c.joined_at)), start=1):
        caller.position = i


def _shown_channel(ev: Mapping[str, str], now: datetime) -> Channel:
    """A channel from its CoreShowChannel answer; it began `Duration` before now, and is up then if answered."""
    started = now - timedelta(seconds=_elapsed(ev.get("Duration", "")))
    state = _int(ev.get("ChannelState"))
    return Channel(
        ev.get("Uniqueid", ""),
        ev.get("Channel", ""),
        ev.get("Linkedid") or ev.get("Uniqueid", ""),
        state,
        ev.get("CallerIDNum", ""),
        ev.get("ConnectedLineNum", ""),
        ev.get("Exten", ""),
        started,
        started if state == CHANNEL_UP else None,
        ev.get("BridgeId") or None,
        ev.get("ApplicationData", "").split(",")[0] or None if ev.get("Application") == "Queue" else None,
    )


def _elapsed(duration: str) -> int:
    """Seconds in an AMI `H:MM:SS` duration; 0 when it is not one."""
    match = _DURATION.match(duration)
    return int(match[1]) * 3600 + int(match[2]) * 60 + int(match[3]) if match else 0


def _int(value: Any) -> int:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return 0


def _timestamp(ev: Mapping[str, str], now: datetime) -> datetime:
    """The event's own time when manager.conf has `timestampevents = yes`, else the moment it arrived."""
    stamp = ev.get("Timestamp")
    if stamp:
        try:
            return datetime.fromtimestamp(float(stamp), timezone.utc)
        except (ValueError, OverflowError):
            pass
    return now
