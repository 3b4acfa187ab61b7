"""What the audit trusts outside the database: the MAC key file and the chain-head anchors (file and syslog).

The key file and the anchors file live outside the data directory (by default in the sibling folder
`<data dir>-audit/`), so a copy, a restore or an edit of the database does not carry or rewrite them.
Everything here is blocking file I/O: callers run it on a worker thread or the writer's thread.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import logging.handlers
import os
import secrets
import socket
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from .errors import InvalidInput, StoreUnavailable
from .i18n import N_

log = logging.getLogger("cim.audit")

KEY_FORMAT = "cim-audit-key/1"
#: Marks an anchor line in syslog/the journal (and in any export of it that `cim audit verify --anchors` reads).
SYSLOG_MARKER = "cim-audit-anchor"


# -- the MAC key file ---------------------------------------------------------------------------------


@dataclass
class KeyRing:
    """The audit MAC keys by generation (the newest signs new entries) and the id up to which entries predate them."""

    path: Path
    keys: dict[int, bytes]
    #: Entries with an id up to this one were written before the key existed ("unMACed legacy").
    legacy_until: int
    mtime_ns: int = 0

    @property
    def current(self) -> int:
        return max(self.keys)

    def mac(self, generation: int, message: str) -> str:
        return hmac.new(self.keys[generation], message.encode("utf-8"), hashlib.sha256).hexdigest()

    def check(self, generation: int | None, message: str, mac: str | None) -> bool:
        if generation not in self.keys or not mac:
            return False
        return hmac.compare_digest(self.mac(generation, message), mac)

    def fingerprint(self, generation: int) -> str:
        """A name for a key that reveals nothing of it (for the rotation record and the docs' escrow check)."""
        return self.mac(generation, "cim-audit-key-fingerprint")[:16]

    def refresh(self) -> None:
        """Reread the file when it changed (a `cim audit rotate-key` run by another process)."""
        try:
            mtime = self.path.stat().st_mtime_ns
        except OSError:
            return  # keep signing with the keys in memory; `cim audit verify` reports a missing file
        if mtime != self.mtime_ns:
            fresh = load_keys(self.path)
            if fresh is not None and set(self.keys) <= set(fresh.keys):
                self.keys, self.legacy_until, self.mtime_ns = fresh.keys, fresh.legacy_until, fresh.mtime_ns


def load_keys(path: Path) -> KeyRing | None:
    """The key file, or None when it does not exist; one readable by others or malformed is refused."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StoreUnavailable(
            N_("cannot read the audit key file {path}: {strerror}"), path=path, strerror=exc.strerror
        ) from exc
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise StoreUnavailable(
            N_("the audit key file {path} is open to other users (mode {mode:o}); run `chmod 600 {path}`"),
            path=path,
            mode=stat.S_IMODE(st.st_mode),
        )
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        if doc.get("format") != KEY_FORMAT:
            raise ValueError("unknown format")
        keys = {int(k["generation"]): bytes.fromhex(k["key"]) for k in doc["keys"]}
        if not keys or any(len(k) < 32 for k in keys.values()):
            raise ValueError("no key of 32 bytes")
        return KeyRing(path, keys, int(doc["legacy_until"]), st.st_mtime_ns)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise StoreUnavailable(
            N_("the audit key file {path} is not a CIM audit key file ({exc})"), path=path, exc=exc
        ) from exc


def create_keys(path: Path, legacy_until: int, now: str) -> KeyRing:
    """A new key file (generation 1), 0600 in a 0700 folder; refuses to overwrite an existing one."""
    doc = {
        "format": KEY_FORMAT,
        "legacy_until": legacy_until,
        "created_at": now,
        "keys": [{"generation": 1, "created_at": now, "key": secrets.token_hex(32)}],
    }
    _write_private_json(path, doc, exclusive=True)
    ring = load_keys(path)
    assert ring is not None
    return ring


def add_generation(ring: KeyRing, now: str) -> KeyRing:
    """Rotate: write the file again with a new newest key; older generations stay, to verify older entries."""
    generation = ring.current + 1
    doc = json.loads(ring.path.read_text(encoding="utf-8"))
    doc["keys"].append({"generation": generation, "created_at": now, "key": secrets.token_hex(32)})
    _write_private_json(ring.path, doc, exclusive=False)
    fresh = load_keys(ring.path)
    assert fresh is not None and fresh.current == generation
    return fresh


def _write_private_json(path: Path, doc: dict[str, Any], *, exclusive: bool) -> None:
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        if exclusive and path.exists():
            raise StoreUnavailable(N_("the audit key file {path} already exists"), path=path)
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, json.dumps(doc, indent=2).encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except OSError as exc:
        raise StoreUnavailable(
            N_(
                "cannot write the audit key file {path}: {strerror}; set CIM_AUDIT_KEY_FILE to a "
                "writable place outside the data directory"
            ),
            path=path,
            strerror=exc.strerror or exc,
        ) from exc


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# -- anchors ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Anchor:
    """The chain head (entry id, its hash, its time) as recorded outside the database at one moment."""

    id: int
    hash: str
    entry_at: str | None
    #: When the anchor was written (None for one typed from paper).
    at: str | None
    reason: str
    generation: int | None = None
    mac: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    #: Where it was read: `file:line`, `paper`.
    source: str = ""

    def body(self) -> dict[str, Any]:
        """The MACed fields, in one canonical form."""
        return {
            "id": self.id,
            "hash": self.hash,
            "entry_at": self.entry_at,
            "at": self.at,
            "reason": self.reason,
            "generation": self.generation,
            **({"extra": self.extra} if self.extra else {}),
        }

    def message(self) -> str:
        return "cim-anchor\n" + json.dumps(self.body(), ensure_ascii=False, sort_keys=True, separators=(",", ":"))

    def line(self) -> str:
        return json.dumps({**self.body(), "mac": self.mac}, ensure_ascii=False, sort_keys=True, separators=(",", ":"))

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "hash": self.hash,
            "entry_at": self.entry_at,
            "at": self.at,
            "reason": self.reason,
            "source": self.source,
            **({"backup": self.extra["backup"]} if "backup" in self.extra else {}),
        }

    def printed(self) -> str:
        """The line printed on reports and letters (Polish first): enough to check with `cim audit verify --anchor`."""
        when = f", {self.entry_at[:19]}Z" if self.entry_at else ""
        return f"Kotwica dziennika zdarzeń CIM (audit anchor): {self.id}:{self.hash}{when}"


def parse_anchor_line(text: str, source: str) -> Anchor | None:
    """One anchor from a line of the anchors file or of a syslog/journal export; None for other lines."""
    if SYSLOG_MARKER in text:
        text = text[text.index(SYSLOG_MARKER) + len(SYSLOG_MARKER) :]
    start = text.find("{")
    if start < 0:
        return None
    try:
        doc, _ = json.JSONDecoder().raw_decode(text, start)  # a syslog line may end in NUL or more text
        return Anchor(
            id=int(doc["id"]),
            hash=str(doc["hash"]),
            entry_at=doc.get("entry_at"),
            at=doc.get("at"),
            reason=str(doc.get("reason", "")),
            generation=doc.get("generation"),
            mac=doc.get("mac"),
            extra=doc.get("extra") or {},
            source=source,
        )
    except (ValueError, KeyError, TypeError):
        return None


def parse_paper_anchor(text: str) -> Anchor:
    """`ID:HASH` as printed on a report or a letter (the hash may be shortened to 16 hex digits or more)."""
    ident, _, digest = text.strip().partition(":")
    digest = digest.strip().lower()
    if not ident.strip().isdigit() or len(digest) < 16 or any(c not in "0123456789abcdef" for c in digest):
        raise InvalidInput(
            N_("an anchor is ID:HASH as printed (at least 16 hex digits of the hash), not {text!r}"), text=text
        )
    return Anchor(id=int(ident), hash=digest, entry_at=None, at=None, reason="paper", source="paper")


def read_anchors(path: Path) -> tuple[list[Anchor], str | None]:
    """Anchors in a file (missing file: none), and a problem reading it, if any."""
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except FileNotFoundError:
        return [], None
    except OSError as exc:
        return [], f"cannot read the anchors file {path}: {exc.strerror}"
    anchors = [a for n, line in enumerate(lines, 1) if (a := parse_anchor_line(line, f"{path}:{n}")) is not None]
    return anchors, None


def append_anchor(path: Path, anchor: Anchor) -> None:
    """One line at the end of the anchors file (O_APPEND, 0600, fsynced)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, (anchor.line() + "\n").encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)


def syslog_address(setting: str) -> str | None:
    """The Unix socket syslog lines go to: `auto` = /dev/log when present, `off` = none, else a socket path."""
    value = setting.strip()
    if value.lower() == "off":
        return None
    if value.lower() == "auto":
        return "/dev/log" if Path("/dev/log").exists() else None
    return value


class _SysLogHandler(logging.handlers.SysLogHandler):
    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 (logging's name)
        raise  # called inside emit's `except`: the caller reports the failure instead of a traceback on stderr


def send_syslog(address: str, anchor: Anchor) -> None:
    """One line to the system log (journald/rsyslog forward it to the log server), facility authpriv."""
    handler = _SysLogHandler(
        address=address, facility=logging.handlers.SysLogHandler.LOG_AUTHPRIV, socktype=socket.SOCK_DGRAM
    )
    handler.ident = "cim: "
    try:
        record = logging.LogRecord(
            "cim.audit", logging.INFO, __file__, 0, "%s %s", (SYSLOG_MARKER, anchor.line()), None
        )
        handler.emit(record)
    finally:
        handler.close()


def write_anchor(anchor: Anchor, anchors_file: Path, syslog: str | None) -> list[str]:
    """Write an anchor to the anchors file and syslog; the failures, as sentences (the caller logs them)."""
    failures = []
    try:
        append_anchor(anchors_file, anchor)
    except OSError as exc:
        failures.append(f"cannot append to the anchors file {anchors_file}: {exc.strerror or exc}")
    if syslog:
        try:
            send_syslog(syslog, anchor)
        except OSError as exc:
            failures.append(f"cannot write the anchor to syslog at {syslog}: {exc.strerror or exc}")
    return failures


def all_anchors(paths: Iterable[Path]) -> tuple[list[Anchor], list[str]]:
    anchors, problems = [], []
    for path in paths:
        found, problem = read_anchors(path)
        anchors += found
        if problem:
            problems.append(problem)
    return anchors, problems
