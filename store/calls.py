"""Call ingestion: Asterisk cdr_csv and FreePBX CDR parsing, linkedid grouping, §4.7 numbers, recordings."""

from __future__ import annotations

import asyncio
import csv
import ctypes
import functools
import hashlib
import io
import json
import os
import re
import secrets
import stat
import struct
import tempfile
import time
import wave
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Awaitable, Callable, Iterable, TYPE_CHECKING
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from . import phone
from .audio import GSM_EXTENSIONS, AudioInfo, is_audio_name, probe
from .audit import _append_entry
from .clock import from_iso, to_iso
from .errors import ConfigError, InvalidInput, NotFound
from .i18n import N_
from .models import Actor
from .policy import Permission

if TYPE_CHECKING:  # the service names the repository's type only; its SQL is the backend's (store/sqlite/)
    import sqlite3

    from . import Store
    from .sqlite.calls import CallsRepository

# --------------------------------------------------------------------------------------------
# Formats

#: The 16 columns every Asterisk cdr_csv line starts with, in cdr_csv.c's order.
ASTERISK_FIXED = (
    "accountcode",
    "src",
    "dst",
    "dcontext",
    "clid",
    "channel",
    "dstchannel",
    "lastapp",
    "lastdata",
    "start",
    "answer",
    "end",
    "duration",
    "billsec",
    "disposition",
    "amaflags",
)
#: Optional trailing columns, in the order cdr_csv appends them: uniqueid (loguniqueid=yes), userfield
#: (loguserfield=yes), then peeraccount, linkedid, sequence (newcdrcolumns=yes).
ASTERISK_OPTIONAL = ("uniqueid", "userfield", "peeraccount", "linkedid", "sequence")
#: cdr.conf's common `loguniqueid=yes` + `loguserfield=yes`.
ASTERISK_DEFAULT_EXTRA = ("uniqueid", "userfield")
#: The legacy mapping of Asterisk's cdr_custom.conf.sample (clid first, accountcode 16th, sequence last).
CDR_CUSTOM_SAMPLE = (
    "clid",
    "src",
    "dst",
    "dcontext",
    "channel",
    "dstchannel",
    "lastapp",
    "lastdata",
    "start",
    "answer",
    "end",
    "duration",
    "billsec",
    "disposition",
    "amaflags",
    "accountcode",
    "uniqueid",
    "userfield",
    "sequence",
)
#: Columns any FreePBX export must have (asteriskcdrdb.cdr).
FREEPBX_REQUIRED = ("calldate", "src", "dst", "duration", "billsec", "disposition", "uniqueid")
KNOWN_COLUMNS = (
    set(ASTERISK_FIXED)
    | set(ASTERISK_OPTIONAL)
    | {"calldate", "did", "recordingfile", "cnum", "cnam", "outbound_cnum", "outbound_cnam", "dst_cnam"}
)
#: A column CIM skips (a cdr_custom literal or user variable): `-` in --columns.
SKIPPED = "-"
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
#: Without --encoding, a line that is not UTF-8 is read as ISO-8859-2 (an ISDN gateway's Polish names), or
#: as Windows-1250 when it has bytes 0x80-0x9F (control codes in ISO-8859-2, letters such as ś, ź in cp1250).
FALLBACK_ENCODINGS = ("iso-8859-2", "cp1250")

#: The cdr.conf lines that make cdr_csv write what CIM needs (said whenever a file lacks the uniqueid).
CDR_CONF_LINES = (
    "/etc/asterisk/cdr.conf, section [csv]: loguniqueid=yes and loguserfield=yes "
    "(and newcdrcolumns=yes for linkedid and sequence), then `module reload cdr_csv.so`"
)
COMPILED_DEFAULTS = (
    "16 columns without a uniqueid: Asterisk's compiled defaults (loguniqueid=no, "
    f"loguserfield=no). Set in {CDR_CONF_LINES}; lines written before that cannot be matched "
    "to recordings or imported twice safely, so they are not imported"
)
#: The event types of Asterisk's CEL (cel_custom writes them first on a line).
CEL_EVENTS = {
    "CHAN_START",
    "CHAN_END",
    "HANGUP",
    "ANSWER",
    "APP_START",
    "APP_END",
    "PARK_START",
    "PARK_END",
    "USER_DEFINED",
    "BRIDGE_ENTER",
    "BRIDGE_EXIT",
    "BLINDTRANSFER",
    "ATTENDEDTRANSFER",
    "PICKUP",
    "FORWARD",
    "LINKEDID_END",
    "LOCAL_OPTIMIZE",
    "LOCAL_OPTIMIZE_BEGIN",
    "STREAM_BEGIN",
    "STREAM_END",
    "DTMF",
    "BRIDGE_START",
    "BRIDGE_END",
    "CONF_ENTER",
    "CONF_EXIT",
    "3WAY_START",
    "3WAY_END",
    "TRANSFER",
    "HOOKFLASH",
    "CONF_START",
    "CONF_END",
    "BRIDGE_UPDATE",
}
CEL_REFUSAL = (
    "this is a CEL file (cel_custom: channel events, not call records); CIM reads CDRs: set in "
    f"/etc/asterisk/cdr.conf [general] enable=yes and in {CDR_CONF_LINES}, and ingest "
    "/var/log/asterisk/cdr-csv/Master.csv"
)

#: §4.7: caller ids that name no one.
UNIDENTIFIABLE = {
    "",
    "anonymous",
    "unknown",
    "restricted",
    "private",
    "unavailable",
    "withheld",
    "blocked",
    "s",
    "none",
    "null",
}
_FORMATTING = re.compile(r"[\s\-().\/]")
_CLID_NUMBER = re.compile(r"<([^<>]*)>\s*$")
_CHANNEL_EXTENSION = re.compile(r"^[A-Za-z0-9]+/([A-Za-z0-9_+*#]+?)(?:[-@;,].*)?$")
#: A PBX unique id in a file name: epoch.sequence, optionally after cdr.conf's/asterisk.conf's systemname.
_ID_TOKEN = re.compile(r"(?:(?<![A-Za-z0-9])([A-Za-z][A-Za-z0-9_]*)-)?(\d{6,}\.\d+)")
_UNIQUEID = re.compile(r"^(?:[A-Za-z0-9_.]+-)?(\d{9,})\.\d+$")
#: One-touch recording (features.conf automixmon): auto-<epoch>-<caller>-<peer>.<format>.
_ONE_TOUCH = re.compile(r"^auto-(\d{9,11})-(.+)\.[A-Za-z0-9]+$")
_STAMP = re.compile(r"cim:notice=(\d+)(?:;full=([01]))?")
#: FreePBX's recording types (sub-record-check): what each says about the call's direction.
FREEPBX_RECORDING_TYPES = {
    "in": "incoming",
    "q": "incoming",
    "rg": "incoming",
    "external": "incoming",
    "out": "outgoing",
    "internal": "internal",
    "exten": "internal",
}
_FREEPBX_NAME = re.compile(
    r"^(?P<type>in|out|internal|external|exten|q|rg|force|ondemand)-(?P<to>[^-]*)-(?P<from>[^-]*)-"
    r"(?P<date>\d{8})-(?P<time>\d{6})-(?P<uniqueid>(?:[A-Za-z0-9_]+-)?\d+\.\d+)"
)
#: Dialplan contexts where calls from the outside world arrive (FreePBX, Asterisk samples, common setups).
TRUNK_CONTEXT_PREFIXES = (
    "from-trunk",
    "from-pstn",
    "from-did",
    "ext-did",
    "from-external",
    "from-sip-external",
    "from-isdn",
    "from-zaptel",
    "from-dahdi",
    "from-provider",
    "incoming",
    "inbound",
)
#: Applications that answer the caller without a person (no one talked): voicemail, IVR prompts.
_NOBODY_APPS = {
    "voicemail",
    "voicemailmain",
    "playback",
    "background",
    "read",
    "ivr",
    "hangup",
    "congestion",
    "busy",
    "wait",
    "musiconhold",
}


@dataclass(frozen=True)
class NumberInfo:
    """A party's number as CIM keeps it: normalised +48 form when identifiable (§4.7), raw otherwise."""

    raw: str
    normalised: str | None
    identifiable: bool

    @property
    def stored(self) -> str | None:
        return self.normalised if self.identifiable else (self.raw.strip() or None)

    @property
    def reversed_digits(self) -> str | None:
        return _digits(self.normalised)[::-1] if self.identifiable and self.normalised else None


def _digits(text: str | None) -> str:
    return "".join(ch for ch in text or "" if ch.isdigit())


def normalise_number(raw: str | None) -> NumberInfo:
    """The party's number through store.phone's one normalisation (+48XXXXXXXXX), shared with §4 requests.

    Withheld (`anonymous`, `restricted`, `private`, `unavailable`, `unknown`), empty, non-numeric and
    implausibly short or long numbers are not identifiable (§4.7): no recording of them can be granted.
    """
    text = (raw or "").strip()
    if text.lower() in UNIDENTIFIABLE:
        return NumberInfo(text, None, False)
    e164 = phone.normalise_number(text)
    return NumberInfo(text, e164, e164 is not None)


def parse_notice_stamp(userfield: str | None) -> tuple[int | None, bool | None]:
    """Read the `cim:notice=N;full=0|1` stamp the exported dialplan writes into CDR(userfield) (§1.4)."""
    match = _STAMP.search(userfield or "")
    if not match:
        return None, None
    return int(match.group(1)), (match.group(2) == "1") if match.group(2) is not None else False


def channel_extension(channel: str | None) -> str | None:
    """The extension in a channel name: PJSIP/201-0000002a -> 201, Local/202@from-queue-... -> 202."""
    match = _CHANNEL_EXTENSION.match((channel or "").strip())
    return match.group(1) if match else None


def is_local_channel(channel: str | None) -> bool:
    return (channel or "").strip().lower().startswith("local/")


def id_tokens(file_name: str) -> list[str]:
    """PBX unique ids (epoch.sequence) carried by a recording's file name, last (most specific) first; an id
    written after a systemname (`pbx1-1772442000.1`) is given with and without it."""
    tokens: list[str] = []
    for prefix, token in reversed(_ID_TOKEN.findall(Path(file_name).name)):
        if prefix and not prefix.isdigit():
            tokens.append(f"{prefix}-{token}")
        tokens.append(token)
    return tokens


def uniqueid_epoch(uniqueid: str) -> int | None:
    """The channel's creation time carried by an Asterisk uniqueid (`[systemname-]epoch.n`)."""
    match = _UNIQUEID.match(uniqueid)
    return int(match.group(1)) if match else None


def freepbx_recording_type(file_name: str) -> str | None:
    match = _FREEPBX_NAME.match(Path(file_name).name)
    return match.group("type") if match else None


def one_touch_recording(file_name: str) -> tuple[datetime, list[str]] | None:
    """`auto-<epoch>-<caller>-<peer>.wav` (one-touch automixmon): when it started and the parties' ids."""
    match = _ONE_TOUCH.match(Path(file_name).name)
    if not match:
        return None
    return (datetime.fromtimestamp(int(match.group(1)), timezone.utc), [p for p in match.group(2).split("-") if p])


# --------------------------------------------------------------------------------------------
# Parsed records and the report


@dataclass(frozen=True)
class CdrRecord:
    """One CDR line (a call leg), times in UTC."""

    line: int
    uniqueid: str
    linkedid: str | None
    sequence: str | None
    start: datetime
    answer: datetime | None
    end: datetime | None
    duration: int
    billsec: int
    src: str
    dst: str
    clid: str
    channel: str
    dstchannel: str
    dcontext: str
    disposition: str
    userfield: str
    did: str
    recordingfile: str
    fingerprint: str
    lastapp: str = ""
    #: identifies the leg without a sequence: several records of one uniqueid (queue attempts, parallel
    #: dial, transfers, ForkCDR) differ in their peer channel, start, answer or application
    identity: str = ""

    @property
    def leg_key(self) -> str:
        if self.sequence:
            return f"{self.uniqueid}#{self.sequence}"
        return f"{self.uniqueid}@{self.identity}" if self.identity else self.uniqueid

    @property
    def group_key(self) -> str:
        return self.linkedid or self.uniqueid

    @property
    def ended(self) -> datetime:
        return self.end or self.start + timedelta(seconds=self.duration)

    @property
    def person_answered(self) -> bool:
        """Answered by a party on a peer channel: not a voicemail box, an IVR or a queue's hold music."""
        return (
            self.disposition == "ANSWERED"
            and bool(self.dstchannel)
            and self.lastapp.strip().lower() not in _NOBODY_APPS
        )


@dataclass(frozen=True)
class Rejection:
    line: int | None
    reason: str
    file: str | None = None

    def as_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"line": self.line, "reason": self.reason}
        if self.file is not None:
            doc["file"] = self.file
        return doc


@dataclass
class IngestReport:
    """What one ingestion run did (DESIGN.md §5.1); `imported` counts CDR lines (legs), `calls` new calls."""

    imported: int = 0
    already_present: int = 0
    rejected: list[Rejection] = field(default_factory=list)
    calls_without_recording: int = 0
    recordings_without_call: int = 0
    calls: int = 0
    recordings: int = 0
    recordings_already_present: int = 0
    #: one-touch recordings (no uniqueid in the name) whose time and parties fit more than one call
    ambiguous_recordings: list[dict[str, Any]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "imported": self.imported,
            "already_present": self.already_present,
            "rejected": [r.as_json() for r in self.rejected],
            "calls_without_recording": self.calls_without_recording,
            "recordings_without_call": self.recordings_without_call,
            "calls": self.calls,
            "recordings": self.recordings,
            "recordings_already_present": self.recordings_already_present,
            "ambiguous_recordings": list(self.ambiguous_recordings),
        }

    def add(self, other: "IngestReport") -> None:
        self.imported += other.imported
        self.already_present += other.already_present
        self.rejected.extend(other.rejected)
        self.calls += other.calls
        self.recordings += other.recordings
        self.recordings_already_present += other.recordings_already_present
        self.ambiguous_recordings.extend(other.ambiguous_recordings)
        # the two "without" counts describe the latest state, not a sum
        self.calls_without_recording = other.calls_without_recording
        self.recordings_without_call = other.recordings_without_call


class LineError(ValueError):
    """A CDR line that cannot be registered; the message is the reason reported for it."""


# --------------------------------------------------------------------------------------------
# Parsing


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(N_("unknown time zone {name!r}"), name=name) from None


_EPOCH = re.compile(r"^\d{9,11}(?:\.\d+)?$")
#: cel.conf's default eventtime: seconds.microseconds since the epoch
_CEL_EPOCH = re.compile(r"^\d{9,11}\.\d{6}$")


_LOCAL_TIME = re.compile(r"(\d{4})-(\d\d)-(\d\d) (\d\d):(\d\d):(\d\d)\Z")


def _local_time(value: str, column: str, required: bool) -> datetime | None:
    """The naive local time of a CDR field (or an aware UTC time for cdr_custom's `start(int64)`)."""
    value = value.strip()
    if not value:
        if required:
            raise LineError(f"the {column} time is missing")
        return None
    match = _LOCAL_TIME.match(value)
    if match:
        # the constructor checks the calendar (no 30 February, no hour 25) at a tenth of strptime's cost
        try:
            year, month, day, hour, minute, second = map(int, match.groups())
            return datetime(year, month, day, hour, minute, second)
        except ValueError:
            raise LineError(f"impossible {column} time {value!r}") from None
    if _EPOCH.match(value):
        return datetime.fromtimestamp(float(value), timezone.utc)
    raise LineError(f"impossible {column} time {value!r}")


@functools.lru_cache(maxsize=4096)
def _hour_offset(zone: ZoneInfo, year: int, month: int, day: int, hour: int) -> timedelta | None:
    """The zone's UTC offset for a whole local hour, or None when the hour is repeated or skipped (DST)."""
    first = datetime(year, month, day, hour, tzinfo=zone, fold=0).utcoffset()
    for minute in (0, 59):
        moment = datetime(year, month, day, hour, minute, 59 if minute else 0, tzinfo=zone)
        if moment.utcoffset() != first or moment.replace(fold=1).utcoffset() != first:
            return None
    return first


def _candidates(local: datetime | None, zone: ZoneInfo) -> list[datetime | None]:
    """The UTC instants a local time can mean: one, or two in the autumn hour that happens twice."""
    if local is None:
        return [None]
    if local.tzinfo is not None:
        return [local]
    offset = _hour_offset(zone, local.year, local.month, local.day, local.hour)
    if offset is not None:
        return [(local - offset).replace(tzinfo=timezone.utc)]
    first = local.replace(tzinfo=zone, fold=0)
    second = local.replace(tzinfo=zone, fold=1)
    if first.utcoffset() == second.utcoffset():
        return [first.astimezone(timezone.utc)]
    return [first.astimezone(timezone.utc), second.astimezone(timezone.utc)]


def resolve_times(
    start: datetime,
    answer: datetime | None,
    end: datetime | None,
    duration: int,
    billsec: int,
    zone: ZoneInfo,
    epoch: int | None = None,
) -> tuple[datetime, datetime | None, datetime | None]:
    """Local CDR times to UTC with the zone's rules; where a time is ambiguous (the autumn change) the fold
    is the one that makes the record's own duration and billsec come out, then the one nearer the uniqueid's
    epoch (the channel's creation), then the earlier."""
    starts, answers, ends = _candidates(start, zone), _candidates(answer, zone), _candidates(end, zone)
    if len(starts) == len(answers) == len(ends) == 1:
        return starts[0], answers[0], ends[0]  # type: ignore[return-value]
    best: tuple[float, datetime, datetime | None, datetime | None] | None = None
    for s in starts:
        assert s is not None
        for a in answers:
            for e in ends:
                error = 0.0
                if e is not None:
                    error += abs((e - s).total_seconds() - duration)
                    if a is not None:
                        error += abs((e - a).total_seconds() - billsec)
                elif a is not None:
                    error += abs((a - s).total_seconds() - (duration - billsec))
                if (e is not None and e < s) or (a is not None and a < s):
                    error += 10**7
                near = abs(s.timestamp() - epoch) / 10**6 if epoch is not None else 0.0
                score = error + near
                if best is None or score < best[0]:
                    best = (score, s, a, e)
    assert best is not None
    return best[1], best[2], best[3]


def _seconds(value: str, column: str) -> int:
    text = value.strip()
    try:
        number = int(text)
    except ValueError:
        try:
            # cdr_custom's high-resolution CDR(duration,f): 125.300
            number = round(float(text)) if re.fullmatch(r"\d+\.\d+", text) else int(text)
        except ValueError:
            raise LineError(f"{column} {text!r} is not a whole number of seconds") from None
    if number < 0:
        raise LineError(f"negative {column} {number}")
    if number > 7 * 24 * 3600:
        raise LineError(f"{column} {number} is longer than a week")
    return number


def _split_top_level(spec: str) -> list[str]:
    """Split at commas outside ${...} and (...), so a pasted cdr_custom mapping splits into its fields."""
    parts, depth, current = [], 0, ""
    for ch in spec:
        if ch in "({":
            depth += 1
        elif ch in ")}":
            depth = max(0, depth - 1)
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    parts.append(current)
    return parts


_CDR_FUNCTION = re.compile(r"CDR\(\s*([A-Za-z_]+)\s*(?:,[^)]*)?\)", re.IGNORECASE)
_QUALIFIED = re.compile(r"^([A-Za-z_]+)\s*\(([^)]*)\)$")


def _column_name(part: str) -> str:
    text = part.strip()
    if not text:
        return ""
    if text == SKIPPED or text.startswith('"'):
        return SKIPPED  # a literal of an advanced cdr_custom mapping
    match = _CDR_FUNCTION.search(text)
    if match:
        return match.group(1).lower()
    if "${" in text:
        return SKIPPED  # ${EPOCH} or another variable: not a CDR column
    match = _QUALIFIED.match(text)
    if match:
        if "uservar" in match.group(2).lower():
            return SKIPPED
        return match.group(1).lower()  # uniqueid(noquote), start(int64)
    return text.lower()


def parse_columns(spec: str | Iterable[str] | None, kind: str) -> tuple[str, ...] | None:
    """`--columns`. Asterisk: the optional columns after the 16 fixed ones, or any complete layout a cdr.conf /
    cdr_custom.conf writes (the names, or the mapping pasted as is); FreePBX: the header of a headerless export."""
    if spec is None:
        return None
    parts = _split_top_level(spec) if isinstance(spec, str) else list(spec)
    names = [n for n in (_column_name(p) for p in parts) if n]
    _check_column_names(names)
    if kind == "asterisk" and names and all(n in ASTERISK_OPTIONAL for n in names):
        names = list(ASTERISK_FIXED) + names
    _check_required_columns(names, kind)
    return tuple(names)


def _check_column_names(names: list[str]) -> None:
    """Every column named is one CIM knows (or - for a skipped one), and none is named twice."""
    unknown = [n for n in names if n != SKIPPED and n not in KNOWN_COLUMNS]
    if unknown:
        raise InvalidInput(
            N_("unknown CDR column(s): {unknown} (use - for a column CIM should skip)"), unknown=", ".join(unknown)
        )
    named = [n for n in names if n != SKIPPED]
    if len(set(named)) != len(named):
        raise InvalidInput(N_("a CDR column is named twice in --columns"))


def _check_required_columns(names: list[str], kind: str) -> None:
    """A layout names the uniqueid, and an Asterisk one the call's start."""
    if "uniqueid" not in names:
        raise InvalidInput(N_("the CDR columns must include uniqueid ({conf})"), conf=CDR_CONF_LINES)
    if kind == "asterisk" and "start" not in names and "calldate" not in names:
        raise InvalidInput(N_("the CDR columns must include start (the call's start time)"))


def looks_like_uniqueid(value: str) -> bool:
    return _UNIQUEID.match(value.strip()) is not None


def _decode(raw: bytes, encoding: str | None) -> str:
    """A line's text: the given encoding strictly, or UTF-8 with the documented fallback."""
    if encoding is not None:
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError as exc:
            raise LineError(f"not valid {encoding} (byte 0x{raw[exc.start]:02x} at column {exc.start + 1})") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        pass
    if not any(0x80 <= b <= 0x9F for b in raw):
        return raw.decode(FALLBACK_ENCODINGS[0])
    try:
        return raw.decode(FALLBACK_ENCODINGS[1])
    except UnicodeDecodeError as exc:
        raise LineError(
            f"not valid UTF-8, ISO-8859-2 or Windows-1250 (byte 0x{raw[exc.start]:02x} at column "
            f"{exc.start + 1}); name the file's encoding with --encoding"
        ) from None


class CdrParser:
    """Turns raw CDR lines (bytes) into records or rejections, one line at a time."""

    def __init__(
        self, kind: str, zone: ZoneInfo, columns: tuple[str, ...] | None = None, encoding: str | None = None
    ) -> None:
        if kind not in ("asterisk", "freepbx"):
            raise InvalidInput(N_("unknown CDR format {kind!r}"), kind=kind)
        if encoding is not None:
            try:
                "".encode(encoding)
            except LookupError:
                raise InvalidInput(N_("unknown encoding {encoding!r}"), encoding=encoding) from None
        self.kind = kind
        self.zone = zone
        self.encoding = encoding
        #: Asterisk without --columns: the layout follows each line's column count (cdr.conf's switches)
        self.auto = kind == "asterisk" and columns is None
        if kind == "asterisk":
            self.columns: tuple[str, ...] | None = columns or ASTERISK_FIXED + ASTERISK_DEFAULT_EXTRA
        else:
            self.columns = columns  # None: read from the header line

    def parse_line(self, number: int, raw: bytes) -> CdrRecord | Rejection | None:
        """None for a line that carries no record (blank, the FreePBX header)."""
        try:
            text = _decode(raw, self.encoding)
        except LineError as exc:
            return Rejection(number, str(exc))
        text = text.rstrip("\r\n")
        if not text.strip():
            return None
        try:
            fields = next(csv.reader([text], strict=True, skipinitialspace=False))
        except csv.Error as exc:
            return Rejection(number, f"broken quoting ({exc})")
        # cel_custom writes the event type, then its time: a CDR's second field is the caller (src)
        if (
            len(fields) > 2
            and fields[0].strip().upper() in CEL_EVENTS
            and (any(_looks_like_time(f) or _CEL_EPOCH.match(f.strip()) for f in fields[1:3]))
        ):
            raise InvalidInput(N_("line {number}: {refusal}"), number=number, refusal=CEL_REFUSAL)
        if self.columns is None:
            return self._header(number, fields)
        columns = self._layout(fields) if self.auto else self.columns
        if isinstance(columns, str):
            return Rejection(number, columns)
        if len(fields) != len(columns):
            return Rejection(number, f"expected {len(columns)} columns, found {len(fields)}")
        values = dict(zip(columns, fields))
        try:
            return self._record(number, values)
        except LineError as exc:
            return Rejection(number, str(exc))

    def _layout(self, fields: list[str]) -> tuple[str, ...] | str:
        """The columns of a cdr_csv line by its count (loguniqueid, loguserfield, newcdrcolumns), or why not."""
        n = len(fields)
        has_id = n > 16 and looks_like_uniqueid(fields[16])
        if n == 19 and looks_like_uniqueid(fields[16]) and _looks_like_time(fields[8]):
            return CDR_CUSTOM_SAMPLE  # cdr_custom.conf.sample's own mapping, clid first
        layouts = {
            17: ("uniqueid",),
            18: ("uniqueid", "userfield"),
            20: ("uniqueid", "peeraccount", "linkedid", "sequence"),
            21: ASTERISK_OPTIONAL,
        }
        if n == 16 or (n in (17, 19, 20) and not has_id):
            return (
                COMPILED_DEFAULTS
                if n == 16
                else (
                    f"{n} columns without a uniqueid after the 16 fixed ones (loguniqueid=no); set in {CDR_CONF_LINES}"
                )
            )
        if n not in layouts:
            return (
                f"expected 18 columns (cdr_csv with loguniqueid=yes, loguserfield=yes) or 21 (also "
                f"newcdrcolumns=yes), found {n}; name other layouts with --columns"
            )
        return ASTERISK_FIXED + layouts[n]

    def _header(self, number: int, fields: list[str]) -> Rejection | None:
        names = tuple(f.strip().lower() for f in fields)
        missing = [c for c in FREEPBX_REQUIRED if c not in names]
        if missing:
            raise InvalidInput(
                N_(
                    "line {number}: the FreePBX export has no header with {missing} (export asteriskcdrdb.cdr with "
                    "column names)"
                ),
                number=number,
                missing=", ".join(missing),
            )
        self.columns = names
        return None

    def _record(self, number: int, v: dict[str, str]) -> CdrRecord:
        uniqueid = _checked_uniqueid(v)
        duration = _seconds(v.get("duration", ""), "duration")
        billsec = _seconds(v.get("billsec", ""), "billsec")
        if billsec > duration:
            raise LineError(f"billsec {billsec} is longer than the duration {duration}")
        epoch = uniqueid_epoch(uniqueid)
        start, answer, end = self._record_times(v, duration, billsec, epoch)
        channel, dstchannel = v.get("channel", "").strip(), v.get("dstchannel", "").strip()
        lastapp = v.get("lastapp", "").strip()
        return CdrRecord(
            line=number,
            uniqueid=uniqueid,
            linkedid=(v.get("linkedid") or "").strip() or None,
            sequence=(v.get("sequence") or "").strip() or None,
            start=start,
            answer=answer,
            end=end,
            duration=duration,
            billsec=billsec,
            src=v.get("src", "").strip(),
            dst=v.get("dst", "").strip(),
            clid=v.get("clid", ""),
            channel=channel,
            dstchannel=dstchannel,
            dcontext=v.get("dcontext", "").strip(),
            disposition=v.get("disposition", "").strip().upper(),
            userfield=v.get("userfield", ""),
            did=v.get("did", "").strip(),
            recordingfile=v.get("recordingfile", "").strip(),
            fingerprint=_fingerprint(v, start, answer, end, duration, billsec),
            lastapp=lastapp,
            identity=_leg_identity(v, channel, dstchannel, lastapp),
        )

    def _record_times(
        self, v: dict[str, str], duration: int, billsec: int, epoch: int | None
    ) -> tuple[datetime, datetime | None, datetime | None]:
        """(start, answer, end) of a line, from start/answer/end or from calldate and the durations."""
        if "start" in v:
            start_l = _local_time(v["start"], "start", True)
            answer_l = _local_time(v.get("answer", ""), "answer", False)
            end_l = _local_time(v.get("end", ""), "end", False)
            assert start_l is not None
            start, answer, end = resolve_times(start_l, answer_l, end_l, duration, billsec, self.zone, epoch)
        else:
            start_l = _local_time(v.get("calldate", ""), "calldate", True)
            assert start_l is not None
            start = resolve_times(start_l, None, None, duration, billsec, self.zone, epoch)[0]
            answer = start + timedelta(seconds=duration - billsec) if billsec else None
            end = start + timedelta(seconds=duration)
        if end is not None and end < start:
            raise LineError("the call ends before it starts")
        if answer is not None and answer < start:
            raise LineError("the call is answered before it starts")
        return start, answer, end


def _checked_uniqueid(v: dict[str, str]) -> str:
    uniqueid = v.get("uniqueid", "").strip()
    if not uniqueid:
        raise LineError(f"no uniqueid ({CDR_CONF_LINES})")
    if len(uniqueid) > 150 or any(ch in uniqueid for ch in "/\\#@\x00"):
        raise LineError("malformed uniqueid")
    return uniqueid


def _fingerprint(
    v: dict[str, str], start: datetime, answer: datetime | None, end: datetime | None, duration: int, billsec: int
) -> str:
    """The SHA-256 of a line's fields and resolved times: the same line imported twice has the same one."""
    fields = {
        k: v.get(k, "")
        for k in (
            "uniqueid",
            "linkedid",
            "sequence",
            "src",
            "dst",
            "clid",
            "channel",
            "dstchannel",
            "dcontext",
            "disposition",
            "userfield",
            "did",
            "recordingfile",
        )
    }
    canonical = json.dumps(
        [fields, _iso(start), answer and _iso(answer), end and _iso(end), duration, billsec],
        sort_keys=True,
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _leg_identity(v: dict[str, str], channel: str, dstchannel: str, lastapp: str) -> str:
    return hashlib.sha256(
        "\x1f".join(
            (channel, dstchannel, v.get("start", v.get("calldate", "")).strip(), v.get("answer", "").strip(), lastapp)
        ).encode("utf-8")
    ).hexdigest()[:12]


def _looks_like_time(value: str) -> bool:
    try:
        datetime.strptime(value.strip(), TIME_FORMAT)
        return True
    except ValueError:
        return False


def split_lines(data: bytes, first_line: int) -> tuple[list[tuple[int, bytes]], int]:
    """Complete lines of `data` numbered from `first_line`, and how many bytes they span (a partial tail is left)."""
    end = data.rfind(b"\n") + 1
    lines = data[:end].split(b"\n")[:-1] if end else []
    return [(first_line + i, line) for i, line in enumerate(lines)], end


# --------------------------------------------------------------------------------------------
# One call from its legs: direction, number, who answered, times


@dataclass(frozen=True)
class CallSummary:
    """A call as CIM registers it, computed from all its legs (whatever order they arrived in)."""

    origin: CdrRecord
    direction: str
    number: NumberInfo
    extension: str | None  # the consultant's extension: who answered (last talker); None if nobody did
    answered: bool
    disposition: str
    start: datetime
    end: datetime
    duration: int
    billsec: int
    notice_version: int | None
    full_info: bool
    legs: tuple[CdrRecord, ...] = ()

    @property
    def group_key(self) -> str:
        return self.origin.group_key


def _trunk_side(rec: CdrRecord, trunk_numbers: frozenset[str], is_internal: Callable[[str], bool]) -> bool:
    """Whether the leg is where the call came in from outside: FreePBX's DID, an inbound context, or a
    configured DID (`cim calls routes`) dialled by someone who is not an extension."""
    context = rec.dcontext.lower()
    return (
        bool(rec.did)
        or context.startswith(TRUNK_CONTEXT_PREFIXES)
        or (
            bool(rec.dst)
            and rec.dst in trunk_numbers
            and not is_local_channel(rec.channel)
            and not is_internal(rec.src)
        )
    )


def _leg_order(rec: CdrRecord) -> tuple[datetime, int, int]:
    seq = int(rec.sequence) if rec.sequence and rec.sequence.isdigit() else 0
    return (rec.start, seq, rec.line)


def _origin(legs: list[CdrRecord], trunk_side: Callable[[CdrRecord], bool]) -> CdrRecord:
    """The caller's leg: the trunk/DID side first, never a Local/...;2 half when another leg exists."""
    ordered = sorted(legs, key=_leg_order)
    for choose in (
        lambda r: trunk_side(r) and not is_local_channel(r.channel),
        lambda r: not is_local_channel(r.channel),
        lambda r: True,
    ):
        chosen = [r for r in ordered if choose(r)]
        if chosen:
            return chosen[0]
    raise AssertionError("a call without legs")


def _answered_seconds(legs: list[CdrRecord]) -> int:
    """Talk time: the union of the answered legs' [answer, end] (overlapping legs of a transfer count once)."""
    spans = sorted((r.answer or r.ended - timedelta(seconds=r.billsec), r.ended) for r in legs if r.person_answered)
    total, current = 0.0, None
    for begin, finish in spans:
        if current is None or begin > current[1]:
            if current is not None:
                total += (current[1] - current[0]).total_seconds()
            current = [begin, finish]
        else:
            current[1] = max(current[1], finish)
    if current is not None:
        total += (current[1] - current[0]).total_seconds()
    return int(round(total))


def _recording_direction(legs: list[CdrRecord]) -> str | None:
    """The direction FreePBX's recording type says (the first leg whose recordingfile names one), if any."""
    rtype = next(
        (
            freepbx_recording_type(r.recordingfile)
            for r in legs
            if r.recordingfile and freepbx_recording_type(r.recordingfile)
        ),
        None,
    )
    return FREEPBX_RECORDING_TYPES.get(rtype or "")


def _caller_is_internal(origin: CdrRecord, is_internal: Callable[[str], bool]) -> bool:
    """Whether the caller is an extension: by its number, or without one by its own channel's extension."""
    return is_internal(origin.src) or (
        not origin.src
        and not is_local_channel(origin.channel)
        and (ext := channel_extension(origin.channel)) is not None
        and is_internal(ext)
    )


def _direction(
    legs: list[CdrRecord],
    origin: CdrRecord,
    is_internal: Callable[[str], bool],
    trunk_side: Callable[[CdrRecord], bool],
) -> str:
    """incoming, outgoing or internal: FreePBX's recording type when it says, else the caller's leg."""
    direction = _recording_direction(legs)
    if direction is not None:
        return direction
    src_internal = _caller_is_internal(origin, is_internal)
    # an extension calling from its own phone placed the call, whatever context the dialplan gave it
    placed_by_extension = (
        src_internal and bool(origin.src) and (not origin.channel or channel_extension(origin.channel) == origin.src)
    )
    if placed_by_extension:
        return "internal" if is_internal(origin.dst) else "outgoing"
    if any(trunk_side(r) for r in legs) and not (src_internal and not trunk_side(origin)):
        return "incoming"
    if src_internal:
        return "internal" if is_internal(origin.dst) else "outgoing"
    return "incoming"


def _caller_number(direction: str, origin: CdrRecord) -> NumberInfo:
    """The outside party's number: the dialled one of an outgoing call, else the caller's (an incoming call
    without a src falls back to the number in its caller id)."""
    if direction == "outgoing":
        return normalise_number(origin.dst)
    raw = origin.src
    if direction == "incoming" and not raw.strip():
        match = _CLID_NUMBER.search(origin.clid)
        raw = match.group(1) if match else ""
    return normalise_number(raw)


def _answering_extension(
    origin: CdrRecord,
    answered_legs: list[CdrRecord],
    is_internal: Callable[[str], bool],
    staff_extensions: frozenset[str],
) -> str | None:
    """Who talked with the caller: the answered legs on the caller's channel, the last one answered."""
    caller_channels = {origin.channel} if origin.channel else set()
    with_caller = [r for r in answered_legs if r.channel in caller_channels or r.dstchannel in caller_channels]
    for rec in sorted(
        with_caller or answered_legs, key=lambda r: (r.answer or r.start, r.ended, _leg_order(r)), reverse=True
    ):
        party = channel_extension(rec.dstchannel)
        if party and (is_internal(party) or party in staff_extensions):
            return party
        if rec.dst in staff_extensions:
            return rec.dst
    return None


def _extension(
    direction: str,
    origin: CdrRecord,
    answered_legs: list[CdrRecord],
    is_internal: Callable[[str], bool],
    staff_extensions: frozenset[str],
) -> str | None:
    """The call's extension: the one that placed an outgoing call, else the one that answered."""
    if direction == "outgoing":
        return origin.src if is_internal(origin.src) else channel_extension(origin.channel)
    return _answering_extension(origin, answered_legs, is_internal, staff_extensions)


def _disposition(legs: list[CdrRecord], answered: bool) -> str:
    """ANSWERED, else the most telling of the legs' failures (busy before no answer before the rest)."""
    if answered:
        return "ANSWERED"
    seen = {r.disposition for r in legs}
    return next((d for d in ("BUSY", "NO ANSWER", "CONGESTION", "FAILED") if d in seen), "NO ANSWER")


def _notice_stamp(legs: list[CdrRecord]) -> tuple[int | None, bool]:
    """The notice version the last stamped leg names, and whether any stamped leg asked for the full information."""
    notice_version, full = None, False
    for rec in sorted(legs, key=_leg_order):
        version, leg_full = parse_notice_stamp(rec.userfield)
        if version is not None:
            notice_version = version
            full = full or bool(leg_full)
    return notice_version, full


def summarise(
    legs: list[CdrRecord],
    is_internal: Callable[[str], bool],
    staff_extensions: frozenset[str] = frozenset(),
    trunk_numbers: frozenset[str] = frozenset(),
) -> CallSummary:
    """One call from its CDR legs (Asterisk 12+ writes several per call: queue member attempts, parallel dial,
    blind and attended transfers, ForkCDR).

    Answered when any leg was answered by a person; the consultant is who answered, and after a transfer the
    last one who talked with the caller (the earlier ones stay as legs); an unanswered call (no answer, busy,
    queue abandon, voicemail) names no consultant. The direction comes from the caller's (trunk/DID) leg.
    """

    def trunk_side(rec: CdrRecord) -> bool:
        return _trunk_side(rec, trunk_numbers, is_internal)

    origin = _origin(legs, trunk_side)
    direction = _direction(legs, origin, is_internal, trunk_side)
    answered_legs = [r for r in legs if r.person_answered]
    number = _caller_number(direction, origin)
    extension = _extension(direction, origin, answered_legs, is_internal, staff_extensions)
    answered = bool(answered_legs)
    disposition = _disposition(legs, answered)
    start = min(r.start for r in legs)
    end = max(r.ended for r in legs)
    notice_version, full = _notice_stamp(legs)
    duration = max(int((end - start).total_seconds()), max(r.duration for r in legs))
    billsec = min(_answered_seconds(legs), duration)
    return CallSummary(
        origin,
        direction,
        number,
        extension if (answered or direction == "outgoing") else None,
        answered,
        disposition,
        start,
        end,
        duration,
        billsec,
        notice_version,
        full,
        tuple(legs),
    )


# --------------------------------------------------------------------------------------------
# Recordings


@dataclass(frozen=True)
class SourceFile:
    path: Path  # inside the source folder, not resolved through links
    name: str
    size: int = -1
    mtime_ns: int = -1

    @property
    def key(self) -> tuple[str, int, int]:
        """Identifies this version of the file: a changed file is looked at again."""
        return (str(self.path), self.size, self.mtime_ns)


def _source_file(path: Path) -> SourceFile | None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    return SourceFile(path, path.name, st.st_size, st.st_mtime_ns)


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.relative_to(folder)
        return True
    except ValueError:
        return False


def resolve_recordingfile(source_dir: Path, value: str, start: datetime, zone: ZoneInfo) -> Path:
    """Where a FreePBX `recordingfile` lives under the source folder; anything pointing outside is refused."""
    root = source_dir.resolve()
    value = value.strip()
    if "\x00" in value:
        raise InvalidInput(N_("recordingfile contains a NUL byte"))
    given = Path(value)
    if given.is_absolute():
        candidates = [given]
    else:
        local = start.astimezone(zone)
        candidates = [source_dir / f"{local:%Y/%m/%d}" / value, source_dir / value]
    for candidate in candidates:
        resolved = candidate.resolve()
        if not _inside(resolved, root):
            raise InvalidInput(N_("recordingfile {value!r} points outside the recordings folder"), value=value)
    for candidate in candidates:
        if os.path.lexists(candidate):
            return candidate
    return candidates[0]


def scan_recordings(source_dir: Path, also: Iterable[Path] = ()) -> list[SourceFile]:
    """Every file under the source folder whose name looks like audio (links are listed, then refused),
    plus the `also` files (named by CDR lines) that exist."""
    found: list[SourceFile] = []
    seen: set[Path] = set()
    for folder, dirs, files in os.walk(source_dir, followlinks=False):
        dirs.sort()
        for name in sorted(files):
            if is_audio_name(name):
                entry = _source_file(Path(folder) / name)
                if entry is not None:
                    found.append(entry)
                    seen.add(entry.path)
    for path in also:
        if path not in seen:
            entry = _source_file(path)
            if entry is not None:
                found.append(entry)
    return found


@dataclass(frozen=True)
class CopiedRecording:
    relative_path: str
    sha256: str
    size: int
    info: AudioInfo
    linked: bool = False


#: Recordings up to this size are read into memory once (parsed, hashed and written from the same bytes).
IN_MEMORY = 64 << 20


def copy_recording(
    source: Path,
    source_root: Path,
    recordings_dir: Path,
    relative_dest: str,
    *,
    link: bool = False,
    durable: bool = True,
    key: Any = None,
) -> CopiedRecording:
    """Put one recording into the managed folder (0600) with its SHA-256; blocking, run it in a thread.

    Refuses a symbolic link, anything outside the source folder and anything not a regular file; the
    file is parsed from the descriptor it is copied from, so what is checked is what is stored. `link`
    (--move): a hard link instead of a copy when both folders are on one filesystem and the file is
    ours to chmod; otherwise a copy. `durable=False` leaves the fsync to the caller (`make_durable`, once
    for a whole batch of files before their rows commit). With `key` (the conversation's data key,
    store/keys.py) the copy is sealed at rest as it is written (never a hard link: the source stays plain
    where the PBX left it, and --move unlinks it after the rows commit); the SHA-256 is of the plaintext.
    """
    st = _checked_source(source, source_root)
    fd = _open_source(source)
    with os.fdopen(fd, "rb", buffering=0) as raw:
        opened = os.fstat(raw.fileno())
        size = opened.st_size
        # a recording up to IN_MEMORY bytes is read once: parsed, hashed and written from the same bytes
        # (a call's GSM or WAV is well under it); a larger one is streamed
        whole = _read_upto(raw, size + 1) if size <= IN_MEMORY else None
        fh = io.BytesIO(whole) if whole is not None else io.BufferedReader(raw, 1 << 20)
        info = probe(fh, source.name, len(whole) if whole is not None else size)
        dest = recordings_dir / relative_dest
        _private_dirs(dest.parent)
        digest = hashlib.sha256()
        fh.seek(0)
        if link and key is None and (opened.st_dev, opened.st_ino) == (st.st_dev, st.st_ino) and opened.st_nlink == 1:
            if _link_into(source, dest, raw, fh, digest, durable):
                return CopiedRecording(relative_dest, digest.hexdigest(), size, info, linked=True)
            digest = hashlib.sha256()
            fh.seek(0)
        _write_recording(dest, fh, whole, digest, key, durable)
    return CopiedRecording(relative_dest, digest.hexdigest(), len(whole) if whole is not None else size, info)


def _checked_source(source: Path, source_root: Path) -> os.stat_result:
    """The lstat of a recording to copy: a regular file inside the source folder, not a symbolic link."""
    if not _inside(Path(os.path.abspath(source)), Path(os.path.abspath(source_root))):
        raise InvalidInput(N_("{name} is outside the recordings folder"), name=source.name)
    try:
        st = os.lstat(source)
    except FileNotFoundError:
        raise NotFound(N_("recording {name} does not exist"), name=source.name) from None
    if stat.S_ISLNK(st.st_mode):
        raise InvalidInput(N_("{name} is a symbolic link; recordings must be regular files"), name=source.name)
    if not _inside(source.resolve(), source_root.resolve()):
        raise InvalidInput(N_("{name} is outside the recordings folder"), name=source.name)
    if not stat.S_ISREG(st.st_mode):
        raise InvalidInput(N_("{name} is not a regular file"), name=source.name)
    return st


def _open_source(source: Path) -> int:
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0)
    try:
        return os.open(source, flags)
    except OSError as exc:
        raise InvalidInput(N_("{name} cannot be read ({strerror})"), name=source.name, strerror=exc.strerror) from None


def _write_recording(dest: Path, fh, whole: bytes | None, digest, key: Any, durable: bool) -> None:
    """Write the recording at `dest` (0600, sealed with `key` if given), hashing the plaintext into `digest`."""
    # Written straight under its name when the name is free (no rename to journal); the row that makes
    # it a recording commits only after the file is durable, so a crash leaves at most a file no row
    # names. A name already taken (an orphan of a crashed run) goes through a temporary file instead.
    try:
        out_fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
        tmp_name = None
    except FileExistsError:
        out_fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=".incoming-")
    written = str(tmp_name or dest)
    try:
        with os.fdopen(out_fd, "wb", buffering=0) as raw_out:
            os.fchmod(raw_out.fileno(), 0o600)
            out: Any = raw_out
            if key is not None:
                from .keys import SealWriter

                out = SealWriter(io.BufferedWriter(raw_out, 1 << 20), key)
            _copy_bytes(out, fh, whole, digest)
            if key is not None:
                out.close()
                out.out.flush()
            if durable:
                os.fsync(raw_out.fileno())
        if tmp_name is not None:
            os.replace(tmp_name, dest)
    except BaseException:
        if os.path.exists(written):
            os.unlink(written)
        raise


def _copy_bytes(out: Any, fh, whole: bytes | None, digest) -> None:
    """The recording's bytes into `out` and `digest`: `whole` if it was read at once, else `fh` in chunks."""
    if whole is not None:
        digest.update(whole)
        view = memoryview(whole)
        while view:
            view = view[out.write(view) :]
    else:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
            out.write(chunk)


def _data_keys(conn: sqlite3.Connection, keys: Any, conversation_ids: list[int], now: str) -> dict[int, Any]:
    """The data keys of the calls whose recordings are about to be written (created for a call that has none)."""
    if keys is None or keys.master is None:
        return {}
    return {cid: keys.get_sync(conn, cid, create_at=now) for cid in set(conversation_ids)}


def _read_upto(raw, limit: int) -> bytes:
    parts, total = [], 0
    while total < limit:
        chunk = raw.read(limit - total)
        if not chunk:
            break
        parts.append(chunk)
        total += len(chunk)
    return b"".join(parts)


def _link_into(source: Path, dest: Path, raw, fh, digest, durable: bool) -> bool:
    """Hard-link `source` to `dest` (0600); False when the filesystems differ or the file is not ours."""
    tmp = dest.parent / f".incoming-{os.getpid()}-{secrets.token_hex(6)}"
    try:
        os.link(source, tmp, follow_symlinks=False)
    except OSError:
        return False
    # the name may have been swapped since it was opened: the link must be the very file parsed and hashed
    opened = os.fstat(raw.fileno())
    linked = os.lstat(tmp)
    if not stat.S_ISREG(linked.st_mode) or (linked.st_dev, linked.st_ino) != (opened.st_dev, opened.st_ino):
        _unlink_quietly(tmp)
        return False
    try:
        os.chmod(tmp, 0o600)
    except OSError:
        _unlink_quietly(tmp)
        return False
    try:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
        if durable:
            os.fsync(raw.fileno())
        os.replace(tmp, dest)
    except BaseException:
        _unlink_quietly(tmp)
        raise
    return True


@functools.cache
def _syncfs() -> Callable[[int], int] | None:
    """Linux's syncfs(2) through ctypes (one call flushes every dirty file of a filesystem), or None."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.syncfs
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int]
    fn.restype = ctypes.c_int
    return fn


def _fsync_path(path: Path, directory: bool = False) -> None:
    fd = os.open(path, os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if directory else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def make_durable(recordings_dir: Path, files: list[Path], *, use_syncfs: bool | None = None) -> None:
    """Make a batch of written files and their folders durable before their rows commit (blocking).

    One syncfs(2) for the recordings filesystem when the platform has it (the files' data, their renames and
    their folders in one flush), else an fsync per file from parallel threads; then an fsync of each folder
    (its new entries), up to the recordings folder. Raises OSError when the disk reports an error.
    """
    if not files:
        return
    syncfs = _syncfs() if use_syncfs is not False else None
    if syncfs is not None:
        fd = os.open(recordings_dir, os.O_RDONLY)
        try:
            if syncfs(fd) != 0:
                err = ctypes.get_errno()
                raise OSError(err, f"syncfs of {recordings_dir} failed: {os.strerror(err)}")
        finally:
            os.close(fd)
    else:
        with ThreadPoolExecutor(max_workers=min(16, len(files))) as pool:
            list(pool.map(_fsync_path, files))
    folders: set[Path] = set()
    root = recordings_dir.resolve()
    for path in files:
        folder = path.parent.resolve()
        while folder not in folders and _inside(folder, root):
            folders.add(folder)
            if folder == root:
                break
            folder = folder.parent
    for folder in sorted(folders, key=lambda p: len(p.parts), reverse=True):
        _fsync_path(folder, directory=True)


def _private_dirs(folder: Path) -> None:
    """`mkdir -p` with every new level 0700: Path.mkdir(parents=True) gives the upper levels the umask's mode."""
    missing = []
    while not folder.is_dir():
        missing.append(folder)
        folder = folder.parent
    for level in reversed(missing):
        level.mkdir(mode=0o700, exist_ok=True)


def _safe_name(name: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9._+-]", "_", name)
    return cleaned.lstrip(".") or "recording"


# --------------------------------------------------------------------------------------------
# Grouping legs into calls


def _chunks(items: list, size: int = 400) -> Iterable[list]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


#: Legs sharing a channel name are one call only when they overlap in time (names repeat after a restart).
_CHAIN_SLACK = timedelta(seconds=2)


def _overlap(a_start: datetime, a_end: datetime, b_start: datetime, b_end: datetime) -> bool:
    return a_start <= b_end + _CHAIN_SLACK and b_start <= a_end + _CHAIN_SLACK


def group_legs(records: list[CdrRecord]) -> list[list[CdrRecord]]:
    """The calls among these legs: the same linkedid or uniqueid, or a channel of one leg that is a channel or
    peer of another at the same time (a blind or attended transfer's legs, FreePBX's Local/...;1 and ;2)."""
    parent = list(range(len(records)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def union(i: int, j: int) -> None:
        ri, rj = find(i), find(j)
        if ri != rj:
            parent[max(ri, rj)] = min(ri, rj)

    by_id: dict[str, int] = {}
    by_channel: dict[str, list[int]] = {}
    for i, rec in enumerate(records):
        for key in (rec.uniqueid, rec.linkedid):
            if key:
                if key in by_id:
                    union(i, by_id[key])
                else:
                    by_id[key] = i
        for name in {rec.channel, rec.dstchannel} - {""}:
            seen = by_channel.setdefault(name, [])
            for j in seen[-20:]:
                other = records[j]
                if _overlap(rec.start, rec.ended, other.start, other.ended):
                    union(i, j)
            seen.append(i)
    groups: dict[int, list[CdrRecord]] = {}
    for i, rec in enumerate(records):
        groups.setdefault(find(i), []).append(rec)
    return list(groups.values())


@dataclass
class _ExistingLegs:
    """The registered calls a batch's new legs may belong to, looked up once for the whole batch."""

    by_id: dict[str, set[int]]
    by_channel: dict[str, list[tuple[int, datetime, datetime]]]

    @classmethod
    def load(cls, repo: "CallsRepository", conn: sqlite3.Connection, records: list[CdrRecord]) -> "_ExistingLegs":
        ids = sorted({r.uniqueid for r in records} | {r.linkedid for r in records if r.linkedid})
        names = sorted({r.channel for r in records} | {r.dstchannel for r in records} - {""})
        by_id: dict[str, set[int]] = {}
        by_channel: dict[str, list[tuple[int, datetime, datetime]]] = {}
        for key, conv in repo.calls_by_ids(conn, ids):
            by_id.setdefault(key, set()).add(conv)
        for name, conv, start, end in repo.legs_on_channels(conn, names):
            if start and end:
                by_channel.setdefault(name, []).append((conv, _from_iso(start), _from_iso(end)))
        return cls(by_id, by_channel)

    def call_of(self, legs: list[CdrRecord]) -> int | None:
        """The registered call these legs join (the earliest registered when they touch several)."""
        found: set[int] = set()
        for rec in legs:
            for key in (rec.uniqueid, rec.linkedid):
                if key:
                    found |= self.by_id.get(key, set())
            for name in {rec.channel, rec.dstchannel} - {""}:
                found |= {
                    conv
                    for conv, start, end in self.by_channel.get(name, ())
                    if _overlap(rec.start, rec.ended, start, end)
                }
        return min(found) if found else None


def _from_iso(value: str) -> datetime:
    return from_iso(value)


def _iso(moment: datetime) -> str:
    """to_iso's text for the UTC times ingestion handles, without strftime (a fifth of a row's cost, bench/)."""
    if moment.tzinfo is timezone.utc:
        return moment.isoformat(timespec="microseconds")[:-6] + "Z"
    return to_iso(moment)


def _stored_legs(repo: "CallsRepository", conn: sqlite3.Connection, conv: sqlite3.Row) -> list[CdrRecord]:
    """A registered call's legs as records; legs registered before migration 0500 are stood in for by the call."""
    legs, legacy = [], False
    for row in repo.legs_of(conn, conv["id"]):
        if row["start_at"] is None:
            legacy = True
            continue
        legs.append(
            CdrRecord(
                line=0,
                uniqueid=row["uniqueid"],
                linkedid=row["linkedid"],
                sequence=row["sequence"],
                start=_from_iso(row["start_at"]),
                answer=_from_iso(row["answer_at"]) if row["answer_at"] else None,
                end=_from_iso(row["end_at"]),
                duration=row["duration_s"] or 0,
                billsec=row["billsec_s"] or 0,
                src=row["src"] or "",
                dst=row["dst"] or "",
                clid=row["clid"] or "",
                channel=row["channel"] or "",
                dstchannel=row["dstchannel"] or "",
                dcontext=row["dcontext"] or "",
                disposition=row["disposition"] or "",
                userfield=row["userfield"] or "",
                did=row["did"] or "",
                recordingfile=row["recordingfile"] or "",
                fingerprint=row["fingerprint"],
                lastapp=row["lastapp"] or "",
            )
        )
    if legacy:
        legs.append(_legacy_leg(conv))
    return legs


def _legacy_leg(conv: sqlite3.Row) -> CdrRecord:
    """What a call registered before migration 0500 says about its legs, as one leg."""
    start = _from_iso(conv["created_at"])
    end = _from_iso(conv["ended_at"]) if conv["ended_at"] else start
    billsec = conv["billsec_s"] or 0
    ext = conv["extension"] or ""
    outgoing = conv["direction"] == "outgoing"
    number = conv["resident_number"] or ""
    answered = conv["disposition"] == "ANSWERED"
    stamp = f"cim:notice=1;full={conv['full_info_requested'] or 0}" if conv["notice_played"] else ""
    return CdrRecord(
        line=0,
        uniqueid=conv["pbx_uniqueid"] or "",
        linkedid=conv["pbx_linkedid"],
        sequence=None,
        start=start,
        answer=end - timedelta(seconds=billsec) if answered else None,
        end=end,
        duration=conv["duration_s"] or 0,
        billsec=billsec,
        src=ext if outgoing else number,
        dst=number if outgoing else ext,
        clid="",
        channel=f"Registered/{ext}" if outgoing else "Registered/caller",
        dstchannel=("Registered/trunk" if outgoing else f"Registered/{ext}") if answered else "",
        dcontext="" if conv["direction"] != "incoming" else "from-trunk",
        disposition=conv["disposition"] or "",
        userfield=stamp,
        did="",
        recordingfile="",
        fingerprint="",
        lastapp="Dial",
    )


@dataclass
class _Context:
    """What registering a batch needs to know, read once per batch inside its transaction."""

    staff: dict[str, tuple[int, int | None]]  # extension -> (staff id, department id)
    routes: dict[str, int]  # dialled number -> department id
    notices: dict[int, int]  # phone notice version -> id
    max_digits: int

    @classmethod
    def load(cls, repo: "CallsRepository", conn: sqlite3.Connection, max_digits: int) -> "_Context":
        staff = repo.extension_staff(conn)
        routes = repo.route_departments(conn)
        notices = repo.phone_notices(conn)
        return cls(staff, routes, notices, max_digits)

    def is_internal(self, number: str) -> bool:
        number = (number or "").strip()
        return number in self.staff or (number.isdigit() and number.isascii() and 0 < len(number) <= self.max_digits)

    def summarise(self, legs: list[CdrRecord]) -> CallSummary:
        return summarise(legs, self.is_internal, frozenset(self.staff), frozenset(self.routes))


async def _ready_chunks(files: list[SourceFile], registered: "asyncio.Queue[set[str] | None] | None", size: int):
    """Chunks of files whose calls are registered: by the batches' ids as they arrive, then all the rest."""
    if registered is not None:
        by_token: dict[str, list[SourceFile]] = {}
        for f in files:
            for token in id_tokens(f.name):
                by_token.setdefault(token, []).append(f)
        taken: set[tuple[str, int, int]] = set()
        ready: list[SourceFile] = []
        while (ids := await registered.get()) is not None:
            for token in ids:
                for f in by_token.pop(token, ()):
                    if f.key not in taken:
                        taken.add(f.key)
                        ready.append(f)
            while len(ready) >= size:
                yield ready[:size]
                ready = ready[size:]
        files = ready + [f for f in files if f.key not in taken]
    for chunk in _chunks(files, size):
        yield chunk


@dataclass
class _Claimed:
    """What one run's earlier chunks planned (their rows may still be committing)."""

    keys: set[str] = field(default_factory=set)
    relatives: set[str] = field(default_factory=set)
    names: set[tuple[str, str]] = field(default_factory=set)


@dataclass
class _RecordingPlan:
    planned: list[tuple[SourceFile, int, str, str, int | None]] = field(default_factory=list)
    already_present: list[SourceFile] = field(default_factory=list)
    ambiguous: list[dict[str, Any]] = field(default_factory=list)
    without_call: int = 0


def _call_for(repo: "CallsRepository", conn: sqlite3.Connection, tokens: list[str]) -> tuple[int, str] | None:
    """The call a recording's uniqueid/linkedid tokens name (blocking)."""
    for token in tokens:
        conv_id = repo.call_of_token(conn, token)
        if conv_id is not None:
            return conv_id, token
    return None


def _party_forms(value: str | None) -> set[str]:
    """How a party can appear in a one-touch file name: the id as written, its extension, its last 9 digits."""
    text = (value or "").strip()
    if not text:
        return set()
    forms = {text.lower()}
    ext = channel_extension(text)
    if ext:
        forms.add(ext.lower())
        forms.add(text.replace("/", "-").lower())
    match = _CLID_NUMBER.search(text)
    if match and match.group(1):
        forms.add(match.group(1).lower())
    digits = _digits(text)
    if len(digits) >= 9:
        forms.add(digits[-9:])
    return forms


def _one_touch_calls(
    repo: "CallsRepository", conn: sqlite3.Connection, when: datetime, parties: list[str]
) -> list[tuple[int, str]]:
    """Calls in progress at `when` whose parties include the file name's two (or its one) party ids."""
    at = to_iso(when + _CHAIN_SLACK)
    since = to_iso(when - _CHAIN_SLACK)
    # a leg lasts at most a week (the parser refuses longer): the index range stays that week
    rows = repo.legs_in_progress(conn, to_iso(when - timedelta(days=7, seconds=2)), at, since)
    wanted = [p.lower() if len(_digits(p)) < 9 else _digits(p)[-9:] for p in parties]
    by_call: dict[int, set[str]] = {}
    for conv_id, *values in rows:
        forms = by_call.setdefault(conv_id, set())
        for value in values:
            forms |= _party_forms(value)
    need = min(2, len(wanted))
    found = []
    for conv_id, forms in sorted(by_call.items()):
        if sum(1 for p in set(wanted) if p in forms) >= need:
            found.append((conv_id, repo.call_key(conn, conv_id)))
    return found


def _still_growing(f: SourceFile, settle_s: float, now_ns: int) -> bool:
    """A raw GSM file changed within the last `settle_s` seconds (0: never waited for)."""
    return bool(settle_s and Path(f.name).suffix.lower() in GSM_EXTENSIONS and now_ns - f.mtime_ns < settle_s * 1e9)


def _recording_call(
    repo: "CallsRepository", conn: sqlite3.Connection, f: SourceFile, plan: "_RecordingPlan"
) -> tuple[int, str] | None:
    """The call (id, matching token) a file belongs to: by the ids in its name, else a one-touch recording's
    only call at its time (several such calls are noted in the plan as ambiguous)."""
    match = _call_for(repo, conn, id_tokens(f.name))
    if match is None and (one_touch := one_touch_recording(f.name)) is not None:
        candidates = _one_touch_calls(repo, conn, *one_touch)
        if len(candidates) == 1:
            match = candidates[0]
        elif len(candidates) > 1:
            plan.ambiguous.append({"file": f.name, "calls": sorted(c for c, _ in candidates)})
    return match


def _place_recording(
    repo: "CallsRepository",
    conn: sqlite3.Connection,
    f: SourceFile,
    conv_id: int,
    token: str,
    zone: ZoneInfo,
    claimed: "_Claimed",
) -> tuple[str, str] | None:
    """A matched file's key and managed path, claimed for this run; None when the call has the file already."""
    keys, relatives = claimed.keys, claimed.relatives
    existing = repo.recording_paths(conn, (token, f"{token}/{f.name}"))
    safe = _safe_name(f.name)
    if any(Path(p).name == safe for p in existing) or (token, safe) in claimed.names:
        return None
    key = f"{token}/{f.name}" if existing or token in keys else token
    if key in keys:
        return None  # the same name twice in one chunk (two folders)
    created = repo.call_created_at(conn, conv_id)
    day = f"{_from_iso(created).astimezone(zone):%Y/%m/%d}"
    relative = f"{day}/{safe}"
    if relative in relatives or repo.recording_path_taken(conn, relative):
        relative = f"{day}/{conv_id}-{safe}"
    keys.add(key)
    relatives.add(relative)
    claimed.names.add((token, safe))
    return key, relative


def _named_recordings(records: list[CdrRecord], root: Path, zone: ZoneInfo, report: IngestReport) -> dict[Path, int]:
    """The files named by a CDR's recordingfile -> its line; a value pointing outside the folder is rejected."""
    named: dict[Path, int] = {}
    for rec in records:
        if not rec.recordingfile:
            continue
        try:
            path = resolve_recordingfile(root, rec.recordingfile, rec.start, zone)
        except InvalidInput as exc:
            report.rejected.append(Rejection(rec.line, exc.message_in("en"), file=Path(rec.recordingfile).name))
            continue
        named[path] = rec.line
    return named


def _copy_outcomes(planned: list, outcomes: list, report: IngestReport) -> tuple[list, BaseException | None]:
    """A chunk's copies: the done ones, and the first failure that is not a refused file (those are reported)."""
    done = []
    failed: BaseException | None = None
    for (f, conv_id, key, _, line), outcome in zip(planned, outcomes):
        if isinstance(outcome, (InvalidInput, NotFound)):
            report.rejected.append(Rejection(line, outcome.message_in("en"), file=f.name))
        elif isinstance(outcome, BaseException):
            failed = failed or outcome
        else:
            done.append((f, conv_id, key, outcome))
    return done, failed


async def _after_previous(
    committing: asyncio.Task | None, failed: BaseException | None, done: list, recordings_dir: Path
) -> None:
    """Wait for the previous chunk's commit, then raise a copy's failure; on either error no copy is left."""
    try:
        if committing is not None:
            await committing
        if failed is not None:
            raise failed
    except BaseException:
        await asyncio.to_thread(_unlink_all, [recordings_dir / c.relative_path for _, _, _, c in done])
        raise


# --------------------------------------------------------------------------------------------
# The service


@dataclass
class _Source:
    """Where one ingestion reads from, and how far it has read (kept across --watch polls)."""

    kind: str
    cdr: Path
    recordings: Path | None
    parser: CdrParser
    move: bool = False
    offset: int = 0
    next_line: int = 1
    file_id: tuple[int, int] | None = None
    #: recording files (path, size, mtime) already registered, present or refused: not looked at again
    settled: set[tuple[str, int, int]] = field(default_factory=set)
    #: files that matched no call: looked at again only when new CDR lines arrive
    unmatched: set[tuple[str, int, int]] = field(default_factory=set)


class Calls:
    """Registers the PBX's call records and recordings as conversations (channel 'call')."""

    BATCH = 500
    #: Recordings copied in parallel and registered in one transaction at a time.
    RECORDING_CHUNK = 256
    #: --watch: a raw GSM file (no header to tell it is finished) is taken once unchanged this long.
    SETTLE_S = 10.0

    def __init__(self, store: "Store", repo: "CallsRepository") -> None:
        self.store = store
        #: the SQL (store/sqlite/calls.py): routes, the registered legs and calls, the recordings' rows
        self.repo = repo

    # -- configuration ---------------------------------------------------------------------------

    def source(
        self,
        kind: str,
        cdr: Path,
        recordings: Path | None,
        *,
        columns: str | Iterable[str] | None = None,
        timezone_name: str | None = None,
        move: bool = False,
        encoding: str | None = None,
    ) -> _Source:
        """`encoding`: of the CDR file's text; None reads UTF-8 with the ISO-8859-2 / Windows-1250 fallback."""
        zone = _zone(timezone_name or self.store.settings.timezone)
        cols = parse_columns(columns, kind)
        if recordings is not None and not recordings.is_dir():
            raise InvalidInput(N_("recordings folder {recordings} does not exist"), recordings=recordings)
        if not cdr.is_file():
            raise InvalidInput(N_("CDR file {cdr} does not exist"), cdr=cdr)
        return _Source(
            kind=kind, cdr=cdr, recordings=recordings, parser=CdrParser(kind, zone, cols, encoding), move=move
        )

    async def set_route(self, actor: Actor, number: str, department_code: str) -> None:
        """Calls to this dialled number (DID, queue, ring group) concern this department."""
        await self.store.audit.guard(actor, Permission.CONFIGURE, "calls.route")
        number = number.strip()
        if not number or len(number) > 32 or not _digits(number) == number.lstrip("+"):
            raise InvalidInput(N_("{number!r} is not a dialled number (digits only)"), number=number)
        async with self.repo.transaction() as tx:
            department_id = await self.repo.department_id(tx, department_code)
            if department_id is None:
                raise NotFound(N_("no department with code {department_code!r}"), department_code=department_code)
            await self.repo.set_route(tx, number, department_id)
            await self.store.audit.append(
                tx,
                actor,
                "calls.route",
                target_kind="call_route",
                target_id=number,
                details={"department": department_code},
            )

    async def remove_route(self, actor: Actor, number: str) -> None:
        await self.store.audit.guard(actor, Permission.CONFIGURE, "calls.route")
        async with self.repo.transaction() as tx:
            if not await self.repo.remove_route(tx, number.strip()):
                raise NotFound(N_("no route for {number}"), number=number)
            await self.store.audit.append(
                tx, actor, "calls.route_removed", target_kind="call_route", target_id=number.strip()
            )

    async def routes(self) -> list[tuple[str, str]]:
        return [(r["number"], r["code"]) for r in await self.repo.routes()]

    # -- ingestion ----------------------------------------------------------------------------

    async def ingest(
        self, actor: Actor, src: _Source, *, progress: Callable[[int], None] | None = None, final: bool = True
    ) -> IngestReport:
        """Read what is new in the CDR file (from the remembered offset), register it, then match recordings.

        `final`: a last line without its line end is reported (one-shot run); in --watch it waits for more.
        """
        await self.store.audit.guard(actor, Permission.INGEST_CALLS, "calls.ingest")
        report = IngestReport()
        data = await asyncio.to_thread(self._read_new, src)
        lines, consumed = split_lines(data, src.next_line)
        tail = data[consumed:]
        records: list[CdrRecord] = []
        for number, raw in lines:
            parsed = src.parser.parse_line(number, raw)
            if isinstance(parsed, Rejection):
                report.rejected.append(parsed)
            elif parsed is not None:
                records.append(parsed)
        src.offset += consumed
        src.next_line += len(lines)
        if final and tail.strip():
            report.rejected.append(
                Rejection(
                    src.next_line,
                    "the last line has no line end (is the PBX still writing the file?); "
                    "it will be read on the next run",
                )
            )
        touched: set[int] = set()
        # Recordings of the calls registered so far are copied while the next batch of rows is registered
        # (the rows are Python work, the copies mostly the disk's): each batch's ids go to the copier.
        registered: asyncio.Queue[set[str] | None] = asyncio.Queue()
        copier = (
            asyncio.create_task(
                self._ingest_recordings(
                    actor, src, records, report, registered, settle_s=0.0 if final else self.SETTLE_S
                )
            )
            if src.recordings is not None
            else None
        )
        try:
            for i in range(0, len(records), self.BATCH):
                batch = records[i : i + self.BATCH]
                await self._register(actor, src, batch, report, touched)
                registered.put_nowait({r.uniqueid for r in batch} | {r.linkedid for r in batch if r.linkedid})
                if progress:
                    progress(len(batch))
        except BaseException:
            if copier is not None:
                copier.cancel()
                await asyncio.gather(copier, return_exceptions=True)
            raise
        registered.put_nowait(None)
        if copier is not None:
            await copier
        if touched:
            report.calls_without_recording = await self.repo.calls_without_recording(touched)
        await self.store.call_notes.link()  # consultants' notes written during the call join their record
        return report

    def _read_new(self, src: _Source) -> bytes:
        with open(src.cdr, "rb") as fh:
            st = os.fstat(fh.fileno())
            file_id = (st.st_dev, st.st_ino)
            if src.file_id is not None and (file_id != src.file_id or st.st_size < src.offset):
                src.offset, src.next_line = 0, 1  # rotated or truncated: a new file, read it from the top
                if src.kind == "freepbx":
                    src.parser.columns = None
            src.file_id = file_id
            fh.seek(src.offset)
            return fh.read(max(0, st.st_size - src.offset))

    async def count_lines(self, src: _Source) -> int:
        def count() -> int:
            with open(src.cdr, "rb") as fh:
                fh.seek(src.offset)
                return sum(chunk.count(b"\n") for chunk in iter(lambda: fh.read(1 << 20), b""))

        return await asyncio.to_thread(count)

    async def _register(
        self, actor: Actor, src: _Source, batch: list[CdrRecord], report: IngestReport, touched: set[int]
    ) -> None:
        store = self.store
        retention = store.settings.retention_duration
        now = to_iso(store.clock())
        max_digits = store.settings.pbx_extension_max_digits
        async with self.repo.transaction() as tx:
            # The whole batch in ONE call on the writer's thread: awaiting each row's statements cost about
            # ten thread hand-offs a row and capped ingestion near 2,000 rows/s (bench/).
            imported_here, calls_here = await self.repo.run(
                tx, self._register_rows, batch, report, touched, retention, now, max_digits
            )
            if imported_here:
                await store.audit.append(
                    tx,
                    actor,
                    "calls.ingest",
                    target_kind="cdr",
                    target_id=src.kind,
                    details={"legs": imported_here, "calls": calls_here},
                )
        report.imported += imported_here
        report.calls += calls_here

    def _register_rows(
        self,
        conn: sqlite3.Connection,
        batch: list[CdrRecord],
        report: IngestReport,
        touched: set[int],
        retention,
        now: str,
        max_digits: int,
    ) -> tuple[int, int]:
        """Register a batch of legs on the writer's thread (blocking; inside the caller's transaction).

        New legs are grouped into calls (linkedid, uniqueid, and the channel/peer chain of legs that overlap in
        time), each group joins the call its ids or channels already belong to, and the call is recomputed
        from all its legs (`summarise`).
        """
        repo = self.repo
        ctx = _Context.load(repo, conn, max_digits)
        keys = {r.leg_key for r in batch} | {r.uniqueid for r in batch if not r.sequence}
        known = repo.known_legs(conn, sorted(keys))
        fresh: list[CdrRecord] = []
        for rec in batch:
            seen = known.get(rec.leg_key)
            if seen is None and not rec.sequence and known.get(rec.uniqueid) == rec.fingerprint:
                seen = rec.fingerprint  # registered before migration 0500, under its bare uniqueid
            if seen is not None:
                if seen == rec.fingerprint:
                    report.already_present += 1
                else:
                    report.rejected.append(
                        Rejection(rec.line, f"uniqueid {rec.leg_key} was registered before with different data")
                    )
                continue
            known[rec.leg_key] = rec.fingerprint
            fresh.append(rec)
        if not fresh:
            return 0, 0
        existing = _ExistingLegs.load(repo, conn, fresh)
        imported_here = calls_here = 0
        for legs in group_legs(fresh):
            conv_id = existing.call_of(legs)
            if conv_id is None:
                summary = ctx.summarise(legs)
                conv_id = self._insert_call(conn, summary, ctx, retention)
                calls_here += 1
            else:
                conv = repo.conversation(conn, conv_id)
                summary = ctx.summarise(_stored_legs(repo, conn, conv) + legs)
                self._update_call(conn, conv, summary, ctx, retention)
            repo.insert_legs(  # in the repository's LEG_COLUMNS order
                conn,
                [
                    (
                        r.leg_key,
                        r.uniqueid,
                        conv_id,
                        r.fingerprint,
                        now,
                        r.linkedid,
                        r.sequence,
                        _iso(r.start),
                        r.answer and _iso(r.answer),
                        _iso(r.ended),
                        r.duration,
                        r.billsec,
                        r.src,
                        r.dst,
                        r.clid,
                        r.channel,
                        r.dstchannel,
                        r.dcontext,
                        r.lastapp,
                        r.disposition,
                        r.userfield,
                        r.did,
                        r.recordingfile,
                    )
                    for r in legs
                ],
            )
            touched.add(conv_id)
            imported_here += len(legs)
        return imported_here, calls_here

    def _call_columns(self, summary: CallSummary, ctx: "_Context") -> dict[str, Any]:
        consultant_id, department_id = ctx.staff.get(summary.extension or "", (None, None))
        for rec in [summary.origin] + [r for r in (summary.legs or ()) if r is not summary.origin]:
            routed = ctx.routes.get(rec.did) or ctx.routes.get(rec.dst)
            if routed:
                department_id = routed
                break
        played: int | None
        full: int | None
        notice_id: int | None
        if summary.notice_version is not None:
            played, full, notice_id = 1, int(summary.full_info), ctx.notices.get(summary.notice_version)
        elif summary.direction == "incoming":
            played, full, notice_id = 0, 0, None  # no stamp: the notice's playing is not on record
        else:
            played = full = notice_id = None
        return {
            "created_at": _iso(summary.start),
            "ended_at": _iso(summary.end),
            "department_id": department_id,
            "consultant_id": consultant_id,
            "direction": summary.direction,
            "resident_number": summary.number.stored,
            "number_identifiable": int(summary.number.identifiable),
            "extension": summary.extension,
            "disposition": summary.disposition,
            "duration_s": summary.duration,
            "billsec_s": summary.billsec,
            "notice_played": played,
            "full_info_requested": full,
            "notice_id": notice_id,
            "number_rev": summary.number.reversed_digits,
        }

    def _insert_call(self, conn: sqlite3.Connection, summary: CallSummary, ctx: "_Context", retention) -> int:
        values = self._call_columns(summary, ctx)
        values.update(
            channel="call",
            status="ended",
            purge_after=to_iso(retention.after(summary.start)),
            pbx_uniqueid=summary.group_key,
            pbx_linkedid=summary.origin.linkedid,
        )
        return self.repo.insert_call(conn, values)

    def _update_call(
        self, conn: sqlite3.Connection, conv: sqlite3.Row, summary: CallSummary, ctx: "_Context", retention
    ) -> None:
        values = self._call_columns(summary, ctx)
        if values["created_at"] != conv["created_at"]:
            # purge_after follows the call's start, which an earlier leg can move back
            values["purge_after"] = to_iso(retention.after(summary.start))
        if conv["pbx_linkedid"] is None and summary.origin.linkedid:
            values["pbx_linkedid"] = summary.origin.linkedid
        changed = {k: v for k, v in values.items() if conv[k] != v}
        if changed:
            self.repo.update_call(conn, conv["id"], changed)

    async def _ingest_recordings(
        self,
        actor: Actor,
        src: _Source,
        records: list[CdrRecord],
        report: IngestReport,
        registered: "asyncio.Queue[set[str] | None] | None" = None,
        settle_s: float = 0.0,
    ) -> None:
        """Match, copy and register the recordings folder's files. `registered`: the ids of each batch of calls
        as it is registered (then None); files of those calls go first, the rest once every row is in."""
        assert src.recordings is not None
        store = self.store
        root = src.recordings
        zone = src.parser.zone
        named = _named_recordings(records, root, zone, report)
        files = await asyncio.to_thread(scan_recordings, root, list(named))
        line_of = {r.uniqueid: r.line for r in records}
        line_of.update({r.linkedid: r.line for r in records if r.linkedid})
        # --watch polls the same folder every few seconds: files already dealt with are skipped, and
        # files of no known call are looked at again only when new CDR lines arrived
        pending = [f for f in files if f.key not in src.settled]
        without_call = 0
        recordings_dir = store.settings.recordings_dir
        # A chunk of files at a time: planned in one call on the writer's thread (their calls, earlier
        # copies, free destinations), written in parallel threads without an fsync each, made durable
        # together (one syncfs or parallel fsyncs, then their folders), and only then registered in one
        # transaction. Per-file fsyncs in series capped ingestion near 1,600 rows/s (bench/).
        claimed = _Claimed()
        committing: asyncio.Task | None = None
        async for chunk in _ready_chunks(pending, registered, self.RECORDING_CHUNK):
            plan = await self.repo.write_call(
                self._plan_recordings, chunk, src, bool(records), zone, named, line_of, claimed, settle_s
            )
            without_call += plan.without_call
            report.recordings_already_present += len(plan.already_present)
            report.ambiguous_recordings.extend(plan.ambiguous)
            if src.move and plan.already_present:
                await asyncio.to_thread(_unlink_all, [f.path for f in plan.already_present])
            if not plan.planned:
                continue
            # this chunk is written while the previous one is made durable and registered
            done, failed = await self._copy_planned(src, plan, recordings_dir, report)
            await _after_previous(committing, failed, done, recordings_dir)
            committing = None
            if done:
                committing = asyncio.create_task(self._commit_recordings(actor, src, done, report))
        if committing is not None:
            await committing
        report.recordings_without_call = without_call

    async def _copy_planned(
        self, src: _Source, plan: "_RecordingPlan", recordings_dir: Path, report: IngestReport
    ) -> tuple[list, BaseException | None]:
        """Copy a chunk's planned files in parallel threads, not yet durable (rejections go to the report)."""
        assert src.recordings is not None
        store = self.store
        root = src.recordings
        keys = await self.repo.write_call(
            _data_keys, store.keys, [conv_id for _, conv_id, _, _, _ in plan.planned], to_iso(store.clock())
        )
        outcomes = await asyncio.gather(
            *(
                asyncio.to_thread(
                    copy_recording,
                    f.path,
                    root,
                    recordings_dir,
                    relative,
                    link=src.move,
                    durable=False,
                    key=keys.get(conv_id),
                )
                for f, conv_id, _, relative, _ in plan.planned
            ),
            return_exceptions=True,
        )
        return _copy_outcomes(plan.planned, outcomes, report)

    async def _commit_recordings(self, actor: Actor, src: _Source, done: list, report: IngestReport) -> None:
        """Make a chunk's files durable, then register them in one transaction; on failure no file is left."""
        store = self.store
        recordings_dir = store.settings.recordings_dir
        try:
            await asyncio.to_thread(
                make_durable, recordings_dir, [recordings_dir / c.relative_path for _, _, _, c in done]
            )
            entries = [
                store.audit.entry(
                    actor,
                    "calls.recording_ingest",
                    target_kind="conversation",
                    target_id=conv_id,
                    details={"format": c.info.format, "size": c.size, "empty": c.info.is_empty},
                )
                for _, conv_id, _, c in done
            ]
            await self.repo.write_call(
                self._register_recordings, done, entries, to_iso(store.clock()), store.audit.ring
            )
        except BaseException:
            await asyncio.to_thread(_unlink_all, [recordings_dir / c.relative_path for _, _, _, c in done])
            raise
        report.recordings += len(done)
        if src.move:
            await asyncio.to_thread(_unlink_all, [f.path for f, _, _, _ in done])

    def _register_recordings(
        self, conn: sqlite3.Connection, done: list, entries: list[dict[str, Any]], now: str, ring: Any = None
    ) -> None:
        """A chunk's recordings and their audit entries in one transaction (blocking, on the writer's thread)."""
        for (_f, conv_id, key, copied), entry in zip(done, entries):
            self.repo.insert_recording(
                conn,
                conversation_id=conv_id,
                pbx_uniqueid=key,
                path=copied.relative_path,
                sha256=copied.sha256,
                size_bytes=copied.size,
                duration_s=copied.info.duration_s,
                format=copied.info.format,
                is_empty=copied.info.is_empty,
                imported_at=now,
            )
            _append_entry(conn, entry, ring)  # MACed like every audit entry (store/audit.py, Anchored audit)

    def _plan_recordings(
        self,
        conn: sqlite3.Connection,
        chunk: list[SourceFile],
        src: _Source,
        new_lines: bool,
        zone: ZoneInfo,
        named: dict[Path, int],
        line_of: dict[str, int],
        claimed: "_Claimed",
        settle_s: float = 0.0,
    ) -> "_RecordingPlan":
        """Which call each file of a chunk belongs to and where it goes (blocking, on the writer's thread).

        `claimed`: keys, names and destinations planned earlier in this run, whose rows may not be committed yet.
        """
        plan = _RecordingPlan()
        now_ns = time.time_ns()
        for f in chunk:
            if _still_growing(f, settle_s, now_ns):
                continue  # raw GSM has no header to say it is finished: wait until it stops growing
            if f.key in src.unmatched and not new_lines:
                plan.without_call += 1
                continue
            match = _recording_call(self.repo, conn, f, plan)
            if match is None:
                plan.without_call += 1
                src.unmatched.add(f.key)
                continue
            src.unmatched.discard(f.key)
            src.settled.add(f.key)
            conv_id, token = match
            line = named.get(f.path) or line_of.get(token)
            placed = _place_recording(self.repo, conn, f, conv_id, token, zone, claimed)
            if placed is None:
                plan.already_present.append(f)
                continue
            key, relative = placed
            plan.planned.append((f, conv_id, key, relative, line))
        return plan

    async def seed_demo(self, actor: Actor) -> IngestReport:
        """`cim demo`'s calls: demo extensions 201/202 for anna/piotr when free, then a small PBX spool ingested."""
        for name, extension in (("anna", "201"), ("piotr", "202")):
            taken = await self.repo.extension_taken(extension)
            staff_id = await self.repo.staff_id(name)
            if staff_id is not None and not taken:
                async with self.repo.transaction() as tx:
                    await self.repo.add_extension(tx, extension, staff_id)
                    await self.store.audit.append(
                        tx,
                        actor,
                        "staff.extensions",
                        target_kind="staff",
                        target_id=staff_id,
                        details={"extensions": [extension]},
                    )
        return await seed_demo_calls(self.store, self.store.settings.data_dir / "demo-pbx", actor=actor)

    async def watch(
        self,
        actor: Actor,
        src: _Source,
        stop: asyncio.Event,
        *,
        interval: float = 2.0,
        iterations: int | None = None,
        on_poll: Callable[[IngestReport], None] | None = None,
    ) -> IngestReport:
        """Poll the CDR file for appended lines and the folder for new files until `stop` is set."""
        return await poll_until_stopped(
            lambda: self.ingest(actor, src, final=False),
            IngestReport(),
            stop,
            interval=interval,
            iterations=iterations,
            on_poll=on_poll,
        )


async def poll_until_stopped(
    ingest_once: Callable[[], Awaitable[Any]],
    total: Any,
    stop: asyncio.Event,
    *,
    interval: float,
    iterations: int | None,
    on_poll: Callable[[Any], None] | None,
) -> Any:
    """The `--watch` loop of the CDR and queue_log ingests: run `ingest_once`, add its report to `total`,
    wait `interval` (or until `stop`), again; at most `iterations` rounds when given."""
    done = 0
    while not stop.is_set():
        polled = await ingest_once()
        total.add(polled)
        if on_poll:
            on_poll(polled)
        done += 1
        if iterations is not None and done >= iterations:
            break
        try:
            await asyncio.wait_for(stop.wait(), timeout=interval)
        except asyncio.TimeoutError:
            pass
    return total


def _unlink_quietly(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _unlink_all(paths: list[Path]) -> None:
    for path in paths:
        _unlink_quietly(path)


# --------------------------------------------------------------------------------------------
# Demo data


def write_demo_wav(path: Path, seconds: float, *, rate: int = 8000, seed: int = 1) -> None:
    """A mono 16-bit 8 kHz WAV with speech-like bursts (tones with pauses) so the level sparkline has a shape."""
    import math

    frames = bytearray()
    total = int(seconds * rate)
    for n in range(total):
        t = n / rate
        burst = math.sin(2 * math.pi * t / (1.7 + seed * 0.3)) > -0.2
        amp = 9000 * (0.5 + 0.5 * math.sin(2 * math.pi * t * 3.1)) if burst else 200
        sample = int(amp * math.sin(2 * math.pi * (180 + 40 * seed) * t))
        frames += struct.pack("<h", sample)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(bytes(frames))


DEMO_CALLS = (
    # minutes ago, src, dst, dstchannel, disposition, duration, billsec, userfield
    (180, "601234567", "800", "PJSIP/201-0000001a", "ANSWERED", 95, 80, "cim:notice=1;full=0"),
    (150, "+48 91 424 50 00", "800", "PJSIP/202-0000001b", "ANSWERED", 140, 121, "cim:notice=1;full=1"),
    (120, "anonymous", "800", "PJSIP/201-0000001c", "ANSWERED", 60, 44, "cim:notice=1;full=0"),
    (90, "201", "0500111222", "PJSIP/trunk-0000001d", "ANSWERED", 70, 62, ""),
    (45, "512987654", "800", "", "NO ANSWER", 30, 0, "cim:notice=1;full=0"),
)


async def seed_demo_calls(store: "Store", recordings_src_dir: Path, *, actor: Actor | None = None) -> IngestReport:
    """Write a few realistic WAV files and cdr_csv lines into `recordings_src_dir` and ingest them (for `cim demo`)."""
    recordings_src_dir = Path(recordings_src_dir)
    recordings_src_dir.mkdir(parents=True, exist_ok=True)
    zone = _zone(store.settings.timezone)
    now = store.clock()
    lines = []
    for i, (ago, src, dst, dstchannel, disposition, duration, billsec, userfield) in enumerate(DEMO_CALLS):
        start = (now - timedelta(minutes=ago)).astimezone(zone).replace(microsecond=0, tzinfo=None)
        answer = start + timedelta(seconds=duration - billsec)
        end = start + timedelta(seconds=duration)
        uniqueid = f"{int((now - timedelta(minutes=ago)).timestamp())}.{100 + i}"
        channel = f"PJSIP/{src}-000000{i:02d}" if src.isdigit() and len(src) <= 4 else f"PJSIP/trunk-000000{i:02d}"
        fields = [
            "",
            src,
            dst,
            "from-trunk" if len(src) > 4 or not src.isdigit() else "from-internal",
            f'"Resident" <{src}>',
            channel,
            dstchannel,
            "Queue" if dst == "800" else "Dial",
            "cim",
            f"{start:%Y-%m-%d %H:%M:%S}",
            f"{answer:%Y-%m-%d %H:%M:%S}" if billsec else "",
            f"{end:%Y-%m-%d %H:%M:%S}",
            str(duration),
            str(billsec),
            disposition,
            "DOCUMENTATION",
            uniqueid,
            userfield,
        ]
        # cdr_csv quotes strings and times, leaves numbers and unset times bare
        lines.append(",".join(f if f.isdigit() or not f else '"' + f.replace('"', '""') + '"' for f in fields))
        if billsec:
            seconds = min(billsec, 12)  # short demo files: the shape matters, not the length
            await asyncio.to_thread(write_demo_wav, recordings_src_dir / f"{uniqueid}.wav", seconds, seed=i + 1)
    cdr = recordings_src_dir / "Master.csv"
    await asyncio.to_thread(cdr.write_text, "\n".join(lines) + "\n", "utf-8")
    source = store.calls.source("asterisk", cdr, recordings_src_dir)
    return await store.calls.ingest(actor or Actor.system("demo"), source)
