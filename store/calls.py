"""Call ingestion: Asterisk cdr_csv and FreePBX CDR parsing, linkedid grouping, §4.7 numbers, recordings."""

from __future__ import annotations

import asyncio
import csv
import hashlib
import json
import os
import re
import sqlite3
import stat
import struct
import tempfile
import wave
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from . import phone
from .audio import AudioInfo, is_audio_name, probe
from .clock import to_iso
from .db import run_on_thread
from .errors import ConfigError, InvalidInput, NotFound
from .models import Actor
from .policy import Permission

if TYPE_CHECKING:
    from . import Store

# --------------------------------------------------------------------------------------------
# Formats

#: The 16 columns every Asterisk cdr_csv line starts with, in cdr_csv.c's order.
ASTERISK_FIXED = ("accountcode", "src", "dst", "dcontext", "clid", "channel", "dstchannel", "lastapp",
                  "lastdata", "start", "answer", "end", "duration", "billsec", "disposition", "amaflags")
#: Optional trailing columns, in the order cdr_csv appends them when switched on in cdr.conf.
ASTERISK_OPTIONAL = ("uniqueid", "userfield", "peeraccount", "linkedid", "sequence")
#: cdr.conf's common `loguniqueid=yes` + `loguserfield=yes`.
ASTERISK_DEFAULT_EXTRA = ("uniqueid", "userfield")
#: Columns any FreePBX export must have (asteriskcdrdb.cdr).
FREEPBX_REQUIRED = ("calldate", "src", "dst", "duration", "billsec", "disposition", "uniqueid")
KNOWN_COLUMNS = set(ASTERISK_FIXED) | set(ASTERISK_OPTIONAL) | {
    "calldate", "did", "recordingfile", "cnum", "cnam", "outbound_cnum", "outbound_cnam", "dst_cnam"}
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"

#: §4.7: caller ids that name no one.
UNIDENTIFIABLE = {"", "anonymous", "unknown", "restricted", "private", "unavailable", "withheld",
                  "blocked", "s", "none", "null"}
_FORMATTING = re.compile(r"[\s\-().\/]")
_CLID_NUMBER = re.compile(r"<([^<>]*)>\s*$")
_CHANNEL_EXTENSION = re.compile(r"^[A-Za-z0-9]+/([A-Za-z0-9_+*#]+?)(?:[-@;,].*)?$")
_ID_TOKEN = re.compile(r"(\d{6,}\.\d+)")
_STAMP = re.compile(r"cim:notice=(\d+)(?:;full=([01]))?")
#: FreePBX's recording types (sub-record-check): what each says about the call's direction.
FREEPBX_RECORDING_TYPES = {"in": "incoming", "q": "incoming", "rg": "incoming", "external": "incoming",
                           "out": "outgoing", "internal": "internal", "exten": "internal"}
_FREEPBX_NAME = re.compile(
    r"^(?P<type>in|out|internal|external|exten|q|rg|force|ondemand)-(?P<to>[^-]*)-(?P<from>[^-]*)-"
    r"(?P<date>\d{8})-(?P<time>\d{6})-(?P<uniqueid>\d+\.\d+)")


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


def id_tokens(file_name: str) -> list[str]:
    """PBX unique ids (epoch.sequence) carried by a recording's file name, last (most specific) first."""
    return list(reversed(_ID_TOKEN.findall(Path(file_name).name)))


def freepbx_recording_type(file_name: str) -> str | None:
    match = _FREEPBX_NAME.match(Path(file_name).name)
    return match.group("type") if match else None


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

    @property
    def leg_key(self) -> str:
        return f"{self.uniqueid}#{self.sequence}" if self.sequence else self.uniqueid

    @property
    def group_key(self) -> str:
        return self.linkedid or self.uniqueid


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
        }

    def add(self, other: "IngestReport") -> None:
        self.imported += other.imported
        self.already_present += other.already_present
        self.rejected.extend(other.rejected)
        self.calls += other.calls
        self.recordings += other.recordings
        self.recordings_already_present += other.recordings_already_present
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
        raise ConfigError(f"unknown time zone {name!r}") from None


def _time(value: str, column: str, zone: ZoneInfo, required: bool) -> datetime | None:
    value = value.strip()
    if not value:
        if required:
            raise LineError(f"the {column} time is missing")
        return None
    try:
        local = datetime.strptime(value, TIME_FORMAT)
    except ValueError:
        raise LineError(f"impossible {column} time {value!r}") from None
    return local.replace(tzinfo=zone).astimezone(timezone.utc)


def _seconds(value: str, column: str) -> int:
    try:
        number = int(value.strip())
    except ValueError:
        raise LineError(f"{column} {value.strip()!r} is not a whole number of seconds") from None
    if number < 0:
        raise LineError(f"negative {column} {number}")
    if number > 7 * 24 * 3600:
        raise LineError(f"{column} {number} is longer than a week")
    return number


def parse_columns(spec: str | Iterable[str] | None, kind: str) -> tuple[str, ...] | None:
    """`--columns`: for asterisk, the optional trailing columns (or a full cdr_custom list); for freepbx, the header."""
    if spec is None:
        return None
    names = [c.strip().lower() for c in (spec.split(",") if isinstance(spec, str) else spec) if c.strip()]
    unknown = [n for n in names if n not in KNOWN_COLUMNS]
    if unknown:
        raise InvalidInput(f"unknown CDR column(s): {', '.join(unknown)}")
    if len(set(names)) != len(names):
        raise InvalidInput("a CDR column is named twice in --columns")
    if kind == "asterisk" and names and names[0] != "accountcode":
        names = list(ASTERISK_FIXED) + names
    if "uniqueid" not in names:
        raise InvalidInput("the CDR columns must include uniqueid (cdr.conf: loguniqueid=yes)")
    return tuple(names)


class CdrParser:
    """Turns raw CDR lines (bytes) into records or rejections, one line at a time."""

    def __init__(self, kind: str, zone: ZoneInfo, columns: tuple[str, ...] | None = None) -> None:
        if kind not in ("asterisk", "freepbx"):
            raise InvalidInput(f"unknown CDR format {kind!r}")
        self.kind = kind
        self.zone = zone
        if kind == "asterisk":
            self.columns: tuple[str, ...] | None = columns or ASTERISK_FIXED + ASTERISK_DEFAULT_EXTRA
        else:
            self.columns = columns  # None: read from the header line

    def parse_line(self, number: int, raw: bytes) -> CdrRecord | Rejection | None:
        """None for a line that carries no record (blank, the FreePBX header)."""
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            return Rejection(number, f"not valid UTF-8 (byte 0x{raw[exc.start]:02x} at column {exc.start + 1})")
        text = text.rstrip("\r\n")
        if not text.strip():
            return None
        try:
            fields = next(csv.reader([text], strict=True, skipinitialspace=False))
        except csv.Error as exc:
            return Rejection(number, f"broken quoting ({exc})")
        if self.columns is None:
            return self._header(number, fields)
        if len(fields) != len(self.columns):
            return Rejection(number, f"expected {len(self.columns)} columns, found {len(fields)}")
        values = dict(zip(self.columns, fields))
        try:
            return self._record(number, values)
        except LineError as exc:
            return Rejection(number, str(exc))

    def _header(self, number: int, fields: list[str]) -> Rejection | None:
        names = tuple(f.strip().lower() for f in fields)
        missing = [c for c in FREEPBX_REQUIRED if c not in names]
        if missing:
            raise InvalidInput(
                f"line {number}: the FreePBX export has no header with {', '.join(missing)} "
                "(export asteriskcdrdb.cdr with column names)")
        self.columns = names
        return None

    def _record(self, number: int, v: dict[str, str]) -> CdrRecord:
        uniqueid = v.get("uniqueid", "").strip()
        if not uniqueid:
            raise LineError("no uniqueid (cdr.conf: loguniqueid=yes)")
        if len(uniqueid) > 150 or any(ch in uniqueid for ch in "/\\#\x00"):
            raise LineError("malformed uniqueid")
        duration = _seconds(v.get("duration", ""), "duration")
        billsec = _seconds(v.get("billsec", ""), "billsec")
        if billsec > duration:
            raise LineError(f"billsec {billsec} is longer than the duration {duration}")
        if self.kind == "asterisk":
            start = _time(v["start"], "start", self.zone, True)
            answer = _time(v["answer"], "answer", self.zone, False)
            end = _time(v["end"], "end", self.zone, False)
        else:
            start = _time(v["calldate"], "calldate", self.zone, True)
            answer = start + timedelta(seconds=duration - billsec) if billsec else None
            end = start + timedelta(seconds=duration)
        assert start is not None
        if end is not None and end < start:
            raise LineError("the call ends before it starts")
        if answer is not None and answer < start:
            raise LineError("the call is answered before it starts")
        fields = {k: v.get(k, "") for k in ("uniqueid", "linkedid", "sequence", "src", "dst", "clid", "channel",
                                              "dstchannel", "dcontext", "disposition", "userfield", "did",
                                              "recordingfile")}
        canonical = json.dumps([fields, to_iso(start), answer and to_iso(answer), end and to_iso(end),
                                duration, billsec], sort_keys=True, ensure_ascii=False)
        return CdrRecord(
            line=number, uniqueid=uniqueid, linkedid=(v.get("linkedid") or "").strip() or None,
            sequence=(v.get("sequence") or "").strip() or None, start=start, answer=answer, end=end,
            duration=duration, billsec=billsec, src=v.get("src", "").strip(), dst=v.get("dst", "").strip(),
            clid=v.get("clid", ""), channel=v.get("channel", "").strip(),
            dstchannel=v.get("dstchannel", "").strip(), dcontext=v.get("dcontext", "").strip(),
            disposition=v.get("disposition", "").strip().upper(), userfield=v.get("userfield", ""),
            did=v.get("did", "").strip(), recordingfile=v.get("recordingfile", "").strip(),
            fingerprint=hashlib.sha256(canonical.encode("utf-8")).hexdigest(),
        )


def split_lines(data: bytes, first_line: int) -> tuple[list[tuple[int, bytes]], int]:
    """Complete lines of `data` numbered from `first_line`, and how many bytes they span (a partial tail is left)."""
    end = data.rfind(b"\n") + 1
    lines = data[:end].split(b"\n")[:-1] if end else []
    return [(first_line + i, line) for i, line in enumerate(lines)], end


# --------------------------------------------------------------------------------------------
# Direction, number, extension of a call


@dataclass(frozen=True)
class CallFacts:
    direction: str
    number: NumberInfo
    extension: str | None


def call_facts(rec: CdrRecord, is_internal: Callable[[str], bool], recording_type: str | None = None,
               staff_extensions: frozenset[str] = frozenset()) -> CallFacts:
    """Direction and the resident's number: FreePBX's recording type when known, else who called whom."""
    src_ext = rec.src if is_internal(rec.src) else channel_extension(rec.channel)
    src_internal = is_internal(rec.src) or (not rec.src and src_ext is not None and is_internal(src_ext))
    dst_internal = is_internal(rec.dst)
    direction = FREEPBX_RECORDING_TYPES.get(recording_type or "")
    if direction is None:
        if src_internal and dst_internal:
            direction = "internal"
        elif src_internal:
            direction = "outgoing"
        else:
            direction = "incoming"
    if direction == "outgoing":
        number = normalise_number(rec.dst)
        extension = rec.src if is_internal(rec.src) else channel_extension(rec.channel)
    elif direction == "internal":
        number = normalise_number(rec.src)
        extension = rec.dst if dst_internal else channel_extension(rec.dstchannel)
    else:
        raw = rec.src
        if not raw.strip():
            match = _CLID_NUMBER.search(rec.clid)
            raw = match.group(1) if match else ""
        number = normalise_number(raw)
        answered_by = channel_extension(rec.dstchannel)
        # a queue or ring-group number in dst is not the consultant: only a known extension is
        extension = answered_by if answered_by and is_internal(answered_by) else (
            rec.dst if rec.dst in staff_extensions else None)
    return CallFacts(direction, number, extension)


# --------------------------------------------------------------------------------------------
# Recordings


@dataclass(frozen=True)
class SourceFile:
    path: Path          # inside the source folder, not resolved through links
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
        raise InvalidInput("recordingfile contains a NUL byte")
    given = Path(value)
    if given.is_absolute():
        candidates = [given]
    else:
        local = start.astimezone(zone)
        candidates = [source_dir / f"{local:%Y/%m/%d}" / value, source_dir / value]
    for candidate in candidates:
        resolved = candidate.resolve()
        if not _inside(resolved, root):
            raise InvalidInput(f"recordingfile {value!r} points outside the recordings folder")
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


def copy_recording(source: Path, source_root: Path, recordings_dir: Path, relative_dest: str) -> CopiedRecording:
    """Copy one recording into the managed folder (0600) with its SHA-256; blocking, run it in a thread.

    Refuses a symbolic link, anything outside the source folder and anything not a regular file; the
    file is parsed from the descriptor it is copied from, so what is checked is what is stored.
    """
    if not _inside(Path(os.path.abspath(source)), Path(os.path.abspath(source_root))):
        raise InvalidInput(f"{source.name} is outside the recordings folder")
    try:
        st = os.lstat(source)
    except FileNotFoundError:
        raise NotFound(f"recording {source.name} does not exist") from None
    if stat.S_ISLNK(st.st_mode):
        raise InvalidInput(f"{source.name} is a symbolic link; recordings must be regular files")
    if not _inside(source.resolve(), source_root.resolve()):
        raise InvalidInput(f"{source.name} is outside the recordings folder")
    if not stat.S_ISREG(st.st_mode):
        raise InvalidInput(f"{source.name} is not a regular file")
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(source, flags)
    except OSError as exc:
        raise InvalidInput(f"{source.name} cannot be read ({exc.strerror})") from None
    with os.fdopen(fd, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        info = probe(fh, source.name, size)
        dest = recordings_dir / relative_dest
        _private_dirs(dest.parent)
        digest = hashlib.sha256()
        fh.seek(0)
        tmp_fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=".incoming-")
        try:
            with os.fdopen(tmp_fd, "wb") as out:
                while chunk := fh.read(1 << 20):
                    digest.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(tmp_name, 0o600)
            os.replace(tmp_name, dest)
        except BaseException:
            if os.path.exists(tmp_name):
                os.unlink(tmp_name)
            raise
    return CopiedRecording(relative_dest, digest.hexdigest(), size, info)


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
    RECORDING_CHUNK = 32

    def __init__(self, store: "Store") -> None:
        self.store = store

    # -- configuration ---------------------------------------------------------------------------

    def source(self, kind: str, cdr: Path, recordings: Path | None, *, columns: str | Iterable[str] | None = None,
               timezone_name: str | None = None, move: bool = False) -> _Source:
        zone = _zone(timezone_name or self.store.settings.timezone)
        cols = parse_columns(columns, kind)
        if recordings is not None and not recordings.is_dir():
            raise InvalidInput(f"recordings folder {recordings} does not exist")
        if not cdr.is_file():
            raise InvalidInput(f"CDR file {cdr} does not exist")
        return _Source(kind=kind, cdr=cdr, recordings=recordings, parser=CdrParser(kind, zone, cols), move=move)

    async def set_route(self, actor: Actor, number: str, department_code: str) -> None:
        """Calls to this dialled number (DID, queue, ring group) concern this department."""
        await self.store.audit.guard(actor, Permission.CONFIGURE, "calls.route")
        number = number.strip()
        if not number or len(number) > 32 or not _digits(number) == number.lstrip("+"):
            raise InvalidInput(f"{number!r} is not a dialled number (digits only)")
        async with self.store.db.write() as tx:
            row = await (await tx.execute("SELECT id FROM departments WHERE code = ?", (department_code,))).fetchone()
            if row is None:
                raise NotFound(f"no department with code {department_code!r}")
            await tx.execute("INSERT INTO call_routes(number, department_id) VALUES (?, ?) "
                             "ON CONFLICT(number) DO UPDATE SET department_id = excluded.department_id",
                             (number, row["id"]))
            await self.store.audit.append(tx, actor, "calls.route", target_kind="call_route", target_id=number,
                                          details={"department": department_code})

    async def remove_route(self, actor: Actor, number: str) -> None:
        await self.store.audit.guard(actor, Permission.CONFIGURE, "calls.route")
        async with self.store.db.write() as tx:
            cur = await tx.execute("DELETE FROM call_routes WHERE number = ?", (number.strip(),))
            if cur.rowcount == 0:
                raise NotFound(f"no route for {number}")
            await self.store.audit.append(tx, actor, "calls.route_removed", target_kind="call_route",
                                          target_id=number.strip())

    async def routes(self) -> list[tuple[str, str]]:
        rows = await self.store.db.fetchall(
            "SELECT r.number, d.code FROM call_routes r JOIN departments d ON d.id = r.department_id ORDER BY r.number")
        return [(r["number"], r["code"]) for r in rows]

    # -- ingestion ----------------------------------------------------------------------------

    async def ingest(self, actor: Actor, src: _Source, *, progress: Callable[[int], None] | None = None,
                     final: bool = True) -> IngestReport:
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
            report.rejected.append(Rejection(
                src.next_line, "the last line has no line end (is the PBX still writing the file?); "
                "it will be read on the next run"))
        touched: set[int] = set()
        for i in range(0, len(records), self.BATCH):
            batch = records[i:i + self.BATCH]
            await self._register(actor, src, batch, report, touched)
            if progress:
                progress(len(batch))
        if src.recordings is not None:
            await self._ingest_recordings(actor, src, records, report)
        if touched:
            marks = ",".join("?" * len(touched))
            row = await self.store.db.fetchone(
                f"SELECT count(*) AS n FROM conversations c WHERE c.id IN ({marks}) "
                "AND NOT EXISTS (SELECT 1 FROM recordings r WHERE r.conversation_id = c.id)", tuple(touched))
            report.calls_without_recording = row["n"]
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

    async def _internal_checker(self) -> tuple[Callable[[str], bool], frozenset[str]]:
        rows = await self.store.db.fetchall("SELECT extension FROM staff_extensions")
        known = frozenset(r["extension"] for r in rows)
        max_digits = self.store.settings.pbx_extension_max_digits

        def is_internal(number: str) -> bool:
            number = (number or "").strip()
            return number in known or (number.isdigit() and number.isascii() and 0 < len(number) <= max_digits)
        return is_internal, known

    async def _register(self, actor: Actor, src: _Source, batch: list[CdrRecord], report: IngestReport,
                        touched: set[int]) -> None:
        store = self.store
        is_internal, known = await self._internal_checker()
        retention = store.settings.retention_duration
        now = to_iso(store.clock())
        phone_notices = {r["version"]: r["id"] for r in await store.db.fetchall(
            "SELECT version, id FROM notices WHERE channel = 'phone' AND lang = 'pl'")}
        async with store.db.write() as tx:
            # The whole batch in ONE call on the writer's thread: awaiting each row's statements cost about
            # ten thread hand-offs a row and capped ingestion near 2,000 rows/s (bench/).
            imported_here, calls_here = await run_on_thread(
                tx, self._register_rows, batch, report, touched, is_internal, known, retention, now,
                phone_notices)
            if imported_here:
                await store.audit.append(tx, actor, "calls.ingest", target_kind="cdr", target_id=src.kind,
                                         details={"legs": imported_here, "calls": calls_here})
        report.imported += imported_here
        report.calls += calls_here

    def _register_rows(self, conn: sqlite3.Connection, batch: list[CdrRecord], report: IngestReport,
                       touched: set[int], is_internal: Callable[[str], bool], known: frozenset[str], retention,
                       now: str, phone_notices: dict[int, int]) -> tuple[int, int]:
        """Register a batch of legs on the writer's thread (blocking; inside the caller's transaction)."""
        imported_here = calls_here = 0
        for rec in batch:
            leg = conn.execute("SELECT fingerprint FROM call_legs WHERE leg_key = ?", (rec.leg_key,)).fetchone()
            if leg is not None:
                if leg["fingerprint"] == rec.fingerprint:
                    report.already_present += 1
                else:
                    report.rejected.append(Rejection(
                        rec.line, f"uniqueid {rec.leg_key} was registered before with different data"))
                continue
            rtype = freepbx_recording_type(rec.recordingfile) if rec.recordingfile else None
            facts = call_facts(rec, is_internal, rtype, known)
            conv = conn.execute("SELECT * FROM conversations WHERE pbx_uniqueid = ? AND channel = 'call'",
                                (rec.group_key,)).fetchone()
            if conv is None:
                conv_id = self._new_call(conn, rec, facts, retention, phone_notices)
                calls_here += 1
            else:
                conv_id = conv["id"]
                self._merge_leg(conn, conv, rec, facts, phone_notices)
            conn.execute(
                "INSERT INTO call_legs(leg_key, uniqueid, conversation_id, fingerprint, imported_at) "
                "VALUES (?, ?, ?, ?, ?)", (rec.leg_key, rec.uniqueid, conv_id, rec.fingerprint, now))
            touched.add(conv_id)
            imported_here += 1
        return imported_here, calls_here

    def _consultant_and_department(self, conn: sqlite3.Connection, extension: str | None,
                                   rec: CdrRecord) -> tuple[int | None, int | None]:
        consultant_id = department_id = None
        if extension:
            row = conn.execute(
                "SELECT s.id, s.department_id FROM staff_extensions e JOIN staff s ON s.id = e.staff_id "
                "WHERE e.extension = ?", (extension,)).fetchone()
            if row:
                consultant_id, department_id = row["id"], row["department_id"]
        for number in (rec.did, rec.dst):
            if number:
                row = conn.execute("SELECT department_id FROM call_routes WHERE number = ?", (number,)).fetchone()
                if row:
                    department_id = row["department_id"]
                    break
        return consultant_id, department_id

    def _notice(self, rec: CdrRecord, direction: str, phone_notices: dict[int, int]) -> tuple[int | None, int | None, int | None]:
        version, full = parse_notice_stamp(rec.userfield)
        if version is not None:
            return 1, int(bool(full)), phone_notices.get(version)
        if direction == "incoming":
            return 0, 0, None   # no stamp: the notice's playing is not on record
        return None, None, None

    def _new_call(self, conn: sqlite3.Connection, rec: CdrRecord, facts: CallFacts, retention, phone_notices) -> int:
        consultant_id, department_id = self._consultant_and_department(conn, facts.extension, rec)
        played, full, notice_id = self._notice(rec, facts.direction, phone_notices)
        ended = rec.end or rec.start + timedelta(seconds=rec.duration)
        cur = conn.execute(
            "INSERT INTO conversations(channel, status, created_at, ended_at, purge_after, department_id, "
            "consultant_id, direction, resident_number, number_identifiable, extension, pbx_uniqueid, "
            "pbx_linkedid, disposition, duration_s, billsec_s, notice_played, full_info_requested, notice_id, "
            "number_rev) VALUES ('call', 'ended', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (to_iso(rec.start), to_iso(ended), to_iso(retention.after(rec.start)), department_id, consultant_id,
             facts.direction, facts.number.stored, int(facts.number.identifiable), facts.extension,
             rec.group_key, rec.linkedid, rec.disposition, rec.duration, rec.billsec, played, full, notice_id,
             facts.number.reversed_digits))
        return cur.lastrowid

    def _merge_leg(self, conn: sqlite3.Connection, conv, rec: CdrRecord, facts: CallFacts, phone_notices) -> None:
        """Another leg of a known call: the call spans all legs; the answered leg names the consultant."""
        created = min(conv["created_at"], to_iso(rec.start))
        ended_leg = to_iso(rec.end or rec.start + timedelta(seconds=rec.duration))
        ended = max(conv["ended_at"] or ended_leg, ended_leg)
        start_dt = datetime.strptime(created, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
        end_dt = datetime.strptime(ended, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
        duration = max(conv["duration_s"] or 0, int((end_dt - start_dt).total_seconds()))
        updates: dict[str, Any] = {"created_at": created, "ended_at": ended, "duration_s": duration,
                                   "billsec_s": max(conv["billsec_s"] or 0, rec.billsec)}
        if created != conv["created_at"]:
            # purge_after follows the call's start, which an earlier leg can move back
            updates["purge_after"] = to_iso(self.store.settings.retention_duration.after(start_dt))
        if rec.disposition == "ANSWERED" and conv["disposition"] != "ANSWERED":
            updates["disposition"] = "ANSWERED"
            if facts.extension:
                consultant_id, department_id = self._consultant_and_department(conn, facts.extension, rec)
                updates["extension"] = facts.extension
                updates["consultant_id"] = consultant_id or conv["consultant_id"]
                updates["department_id"] = department_id or conv["department_id"]
        played, full, notice_id = self._notice(rec, facts.direction, phone_notices)
        if played == 1:
            updates["notice_played"] = 1
            updates["full_info_requested"] = max(full or 0, conv["full_info_requested"] or 0)
            updates["notice_id"] = notice_id
        if not conv["number_identifiable"] and facts.number.identifiable and conv["direction"] == facts.direction:
            updates.update(resident_number=facts.number.stored, number_identifiable=1,
                           number_rev=facts.number.reversed_digits)
        assignments = ", ".join(f"{k} = ?" for k in updates)
        conn.execute(f"UPDATE conversations SET {assignments} WHERE id = ?", (*updates.values(), conv["id"]))

    async def _ingest_recordings(self, actor: Actor, src: _Source, records: list[CdrRecord],
                                 report: IngestReport) -> None:
        assert src.recordings is not None
        store = self.store
        root = src.recordings
        zone = src.parser.zone
        named: dict[Path, int] = {}   # files named by a CDR's recordingfile -> line
        for rec in records:
            if not rec.recordingfile:
                continue
            try:
                path = resolve_recordingfile(root, rec.recordingfile, rec.start, zone)
            except InvalidInput as exc:
                report.rejected.append(Rejection(rec.line, str(exc), file=Path(rec.recordingfile).name))
                continue
            named[path] = rec.line
        files = await asyncio.to_thread(scan_recordings, root, list(named))
        line_of = {r.uniqueid: r.line for r in records}
        line_of.update({r.linkedid: r.line for r in records if r.linkedid})
        without_call = 0
        # Files are planned one by one (the same checks as ever), then copied CHUNK at a time in parallel
        # threads (each copy is fsynced; in series those waits capped ingestion near 700 rows/s, bench/)
        # and registered in one transaction per chunk, one audit entry per file. A file whose token or
        # destination is already planned flushes the chunk first, so every check sees the rows before it.
        planned: list[tuple[SourceFile, int, str, str, int | None]] = []

        async def flush() -> None:
            if not planned:
                return
            chunk = list(planned)
            planned.clear()
            outcomes = await asyncio.gather(*(
                asyncio.to_thread(copy_recording, f.path, root, store.settings.recordings_dir, relative)
                for f, _, _, relative, _ in chunk), return_exceptions=True)
            copies = []
            for (f, conv_id, key, _, line), outcome in zip(chunk, outcomes):
                if isinstance(outcome, (InvalidInput, NotFound)):
                    report.rejected.append(Rejection(line, outcome.message, file=f.name))
                elif isinstance(outcome, BaseException):
                    copies.append((f, conv_id, key, None))
                else:
                    copies.append((f, conv_id, key, outcome))
            done = [c for c in copies if c[3] is not None]
            failed = next((o for o in outcomes if isinstance(o, BaseException)
                           and not isinstance(o, (InvalidInput, NotFound))), None)
            try:
                if failed is not None:
                    raise failed
                if done:
                    async with store.db.write() as tx:
                        for f, conv_id, key, copied in done:
                            await tx.execute(
                                "INSERT INTO recordings(conversation_id, pbx_uniqueid, path, sha256, size_bytes, "
                                "duration_s, format, is_empty, imported_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                                (conv_id, key, copied.relative_path, copied.sha256, copied.size,
                                 copied.info.duration_s, copied.info.format, int(copied.info.is_empty),
                                 to_iso(store.clock())))
                            await store.audit.append(tx, actor, "calls.recording_ingest", target_kind="conversation",
                                                     target_id=conv_id, details={"format": copied.info.format,
                                                                                 "size": copied.size,
                                                                                 "empty": copied.info.is_empty})
            except BaseException:
                for _, _, _, copied in done:
                    await asyncio.to_thread(_unlink_quietly, store.settings.recordings_dir / copied.relative_path)
                raise
            report.recordings += len(done)
            if src.move:
                for f, _, _, _ in done:
                    await asyncio.to_thread(_unlink_quietly, f.path)

        for f in files:
            # --watch polls the same folder every few seconds: files already dealt with are skipped, and
            # files of no known call are looked at again only when new CDR lines arrived
            if f.key in src.settled:
                continue
            if f.key in src.unmatched and not records:
                without_call += 1
                continue
            tokens = id_tokens(f.name)
            if any(p_key.split("/")[0] in tokens for _, _, p_key, _, _ in planned):
                await flush()
            match = await self._call_for(tokens)
            if match is None:
                without_call += 1
                src.unmatched.add(f.key)
                continue
            src.unmatched.discard(f.key)
            src.settled.add(f.key)
            conv_id, token = match
            line = named.get(f.path) or line_of.get(token)
            existing = await store.db.fetchall(
                "SELECT path FROM recordings WHERE pbx_uniqueid IN (?, ?)", (token, f"{token}/{f.name}"))
            if any(Path(r["path"]).name == _safe_name(f.name) for r in existing):
                report.recordings_already_present += 1
                if src.move:
                    await asyncio.to_thread(_unlink_quietly, f.path)
                continue
            key = f"{token}/{f.name}" if existing else token
            conv = await store.db.fetchone("SELECT created_at FROM conversations WHERE id = ?", (conv_id,))
            local = datetime.strptime(conv["created_at"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(
                tzinfo=timezone.utc).astimezone(zone)
            relative = f"{local:%Y/%m/%d}/{_safe_name(f.name)}"
            if any(relative == p_rel or f"{local:%Y/%m/%d}/{conv_id}-{_safe_name(f.name)}" == p_rel
                   for _, _, _, p_rel, _ in planned):
                await flush()
            if await store.db.fetchone("SELECT 1 FROM recordings WHERE path = ?", (relative,)):
                relative = f"{local:%Y/%m/%d}/{conv_id}-{_safe_name(f.name)}"
            planned.append((f, conv_id, key, relative, line))
            if len(planned) >= self.RECORDING_CHUNK:
                await flush()
        await flush()
        report.recordings_without_call = without_call

    async def _call_for(self, tokens: list[str]) -> tuple[int, str] | None:
        for token in tokens:
            row = await self.store.db.fetchone("SELECT conversation_id FROM call_legs WHERE uniqueid = ? LIMIT 1",
                                               (token,))
            if row is None:
                row = await self.store.db.fetchone(
                    "SELECT id AS conversation_id FROM conversations WHERE pbx_uniqueid = ? AND channel = 'call'",
                    (token,))
            if row is not None:
                return row["conversation_id"], token
        return None

    async def seed_demo(self, actor: Actor) -> IngestReport:
        """`cim demo`'s calls: demo extensions 201/202 for anna/piotr when free, then a small PBX spool ingested."""
        for name, extension in (("anna", "201"), ("piotr", "202")):
            taken = await self.store.db.fetchone("SELECT 1 FROM staff_extensions WHERE extension = ?", (extension,))
            staff = await self.store.db.fetchone("SELECT id FROM staff WHERE name = ?", (name,))
            if staff is not None and taken is None:
                async with self.store.db.write() as tx:
                    await tx.execute("INSERT INTO staff_extensions(extension, staff_id) VALUES (?, ?)",
                                     (extension, staff["id"]))
                    await self.store.audit.append(tx, actor, "staff.extensions", target_kind="staff",
                                                  target_id=staff["id"], details={"extensions": [extension]})
        return await seed_demo_calls(self.store, self.store.settings.data_dir / "demo-pbx", actor=actor)

    async def watch(self, actor: Actor, src: _Source, stop: asyncio.Event, *, interval: float = 2.0,
                    iterations: int | None = None, on_poll: Callable[[IngestReport], None] | None = None) -> IngestReport:
        """Poll the CDR file for appended lines and the folder for new files until `stop` is set."""
        total = IngestReport()
        done = 0
        while not stop.is_set():
            polled = await self.ingest(actor, src, final=False)
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


# --------------------------------------------------------------------------------------------
# Demo data


def write_demo_wav(path: Path, seconds: float, *, rate: int = 8000, seed: int = 1) -> None:
    """A mono 16-bit 8 kHz WAV with speech-like bursts (tones with pauses) so the level sparkline has a shape."""
    import math

    frames = bytearray()
    total = int(seconds * rate)
    for n in range(total):
        t = n / rate
        burst = (math.sin(2 * math.pi * t / (1.7 + seed * 0.3)) > -0.2)
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
        fields = ["", src, dst, "from-trunk" if len(src) > 4 or not src.isdigit() else "from-internal",
                  f'"Resident" <{src}>', channel, dstchannel, "Queue" if dst == "800" else "Dial", "cim",
                  f"{start:%Y-%m-%d %H:%M:%S}", f"{answer:%Y-%m-%d %H:%M:%S}" if billsec else "",
                  f"{end:%Y-%m-%d %H:%M:%S}", str(duration), str(billsec), disposition, "DOCUMENTATION",
                  uniqueid, userfield]
        # cdr_csv quotes strings and times, leaves numbers and unset times bare
        lines.append(",".join(f if f.isdigit() or not f else '"' + f.replace('"', '""') + '"' for f in fields))
        if billsec:
            seconds = min(billsec, 12)  # short demo files: the shape matters, not the length
            await asyncio.to_thread(write_demo_wav, recordings_src_dir / f"{uniqueid}.wav", seconds, seed=i + 1)
    cdr = recordings_src_dir / "Master.csv"
    await asyncio.to_thread(cdr.write_text, "\n".join(lines) + "\n", "utf-8")
    src = store.calls.source("asterisk", cdr, recordings_src_dir)
    return await store.calls.ingest(actor or Actor.system("demo"), src)
