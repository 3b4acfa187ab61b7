"""What leaves the register as files: the register as CSV, and a GDPR Art. 15 copy as a folder or a ZIP."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import shutil
import zipfile
from datetime import datetime
from pathlib import Path
from typing import Any, Iterable
from zoneinfo import ZoneInfo

from ..chats import SYSTEM_EVENTS, render_event, staff_only_line
from ..clock import from_iso, to_iso
from ..i18n import N_, format_datetime, translator
from ..keys import open_plain
from .letters import write_private
from .model import AccessRequest

#: The register's columns: the lifecycle, then every field of the §4.2 annex the register records (the
#: requester, their address and contact, the conversation concerned with its date, time and reference, the
#: reason and the route of the answer) and whether a chat receipt proved the requester took part (§4.1).
CSV_COLUMNS = (
    "number",
    "kind",
    "state",
    "channel",
    "asked",
    "received_on",
    "due_on",
    "extended_until",
    "effective_due",
    "due_soon",
    "overdue",
    "requester_name",
    "eligible",
    "decision",
    "decided_at",
    "session_at",
    "closed_at",
    "withdrawn_at",
    "requester_address",
    "requester_phone",
    "requester_email",
    "conversation_date",
    "conversation_time",
    "conversation_reference",
    "receipt_verified",
    "receipt_verified_at",
    "justification",
    "delivery",
)


def _iso_or_blank(moment: datetime | None) -> str:
    return to_iso(moment) if moment else ""


def cell(value: Any) -> str:
    """A CSV cell a spreadsheet will not run as a formula."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _row(r: AccessRequest) -> tuple[Any, ...]:
    return (
        r.number,
        r.kind,
        r.state,
        r.channel,
        r.asked,
        r.received_on,
        r.due_on,
        r.extended_until or "",
        r.effective_due,
        int(r.due_soon),
        int(r.overdue),
        r.requester_name,
        int(r.eligible),
        r.decision or "",
        _iso_or_blank(r.decided_at),
        _iso_or_blank(r.session_at),
        _iso_or_blank(r.closed_at),
        _iso_or_blank(r.withdrawn_at),
        r.requester_address,
        r.requester_phone or "",
        r.requester_email or "",
        r.hint.get("date", ""),
        r.hint.get("time", ""),
        r.conversation_reference or "",
        int(r.receipt_verified_at is not None),
        _iso_or_blank(r.receipt_verified_at),
        r.justification,
        r.delivery,
    )


def register_csv(requests: Iterable[AccessRequest]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for r in requests:
        writer.writerow([cell(v) for v in _row(r)])
    return out.getvalue()


#: Who wrote a line, in the copy's words (Polish, gender-neutral: GLOSSARY.md); a consultant's lines carry the
#: display name the resident saw, this word only while the chat had none.
COPY_SENDERS = {
    "resident": N_("Resident writing"),
    "consultant": N_("Consultant answering"),
    "system": N_("Chat notice"),
}
#: The copy is in Polish, like the letters (issue 16): the office's language, whatever the chat's was.
COPY_LANG = "pl"


def copy_lines(rows: Iterable[Any], texts: Iterable[str], tz: str) -> list[dict[str, Any]]:
    """A chat's lines as the requester reads them in the copy: what the resident saw and nothing staff-only.

    System lines are rendered from their event (render_event, Polish): the consultant's display name, never a
    log-in name or the close category, whatever the stored text says; a system line with no known event (an
    older line, a staff line) is left out, as in the resident's own copy (store/resident_desk.py). Times are in
    the office's time zone `tz`: `at` as ISO 8601 with its offset, `time` in words (store.i18n)."""
    words = translator(COPY_LANG)
    zone = ZoneInfo(tz)
    consultant: str | None = None
    lines: list[dict[str, Any]] = []
    for row, text in zip(rows, texts):
        if staff_only_line(row):
            continue
        sender = row["sender"]
        if sender == "system":
            if row["event"] not in SYSTEM_EVENTS:
                continue
            params = json.loads(row["params"]) if row["params"] else {}
            if row["event"] in ("accepted", "transferred", "taken_over"):
                consultant = params.get("consultant") or None
            text = render_event(row["event"], params, COPY_LANG)
            who = words.gettext(COPY_SENDERS["system"])
        elif sender == "consultant":
            who = str(consultant) if consultant else words.gettext(COPY_SENDERS["consultant"])
        else:
            who = words.gettext(COPY_SENDERS["resident"])
        at = from_iso(row["at"]).astimezone(zone)
        lines.append(
            {
                "seq": row["seq"],
                "at": at.isoformat(timespec="seconds"),
                "time": format_datetime(at, lang=COPY_LANG, tz=tz, seconds=True),
                "sender": who,
                "text": text,
            }
        )
    return lines


def transcript_files(conversation_id: int, lines: list[dict[str, Any]], tz: str) -> list[tuple[str, bytes, int]]:
    """A chat's transcript in the copy (`copy_lines`): as text to read and as JSON."""
    title = translator(COPY_LANG).gettext(N_("Chat transcript {conversation}; times in the {zone} time zone"))
    head = title.format(conversation=conversation_id, zone=tz) + "\n\n"
    transcript = head + "".join(f"[{m['time']}] {m['sender']}: {m['text']}\n" for m in lines)
    messages = [{k: m[k] for k in ("seq", "at", "sender", "text")} for m in lines]
    return [
        (f"chat-{conversation_id}.txt", transcript.encode("utf-8"), conversation_id),
        (
            f"chat-{conversation_id}.json",
            json.dumps(messages, ensure_ascii=False, indent=2).encode("utf-8"),
            conversation_id,
        ),
    ]


def remove(target: Path) -> None:
    if target.is_dir():
        shutil.rmtree(target, ignore_errors=True)
    elif target.exists():
        target.unlink()


def _payloads(items: list[tuple[str, bytes | Path, int]]) -> tuple[list[tuple[str, bytes]], list[dict[str, Any]]]:
    files: list[dict[str, Any]] = []
    payloads: list[tuple[str, bytes]] = []
    for name, source, conversation_id in items:
        if isinstance(source, Path):  # a sealed recording is opened here, in the store, for the copy
            with open_plain(source) as fh:
                data = fh.read()
        else:
            data = source
        payloads.append((name, data))
        files.append(
            {
                "name": name,
                "conversation_id": conversation_id,
                "size": len(data),
                "sha256": hashlib.sha256(data).hexdigest(),
            }
        )
    return payloads, files


def write_copy(
    target: Path, items: list[tuple[str, bytes | Path, int]], as_zip: bool, header: dict[str, Any]
) -> tuple[list[dict[str, Any]], bytes]:
    """Blocking: copy the files, then write manifest.json and SHA256SUMS; runs in a worker thread."""
    payloads, files = _payloads(items)
    manifest = json.dumps({**header, "files": files}, ensure_ascii=False, indent=2).encode("utf-8")
    sums = "".join(f"{f['sha256']}  {f['name']}\n" for f in files).encode("utf-8")
    try:
        if as_zip:
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as raw, zipfile.ZipFile(raw, "w", zipfile.ZIP_DEFLATED) as zf:
                for name, data in payloads:
                    zf.writestr(name, data)
                zf.writestr("manifest.json", manifest)
                zf.writestr("SHA256SUMS", sums)
        else:
            target.mkdir(mode=0o700)
            for name, data in [*payloads, ("manifest.json", manifest), ("SHA256SUMS", sums)]:
                write_private(target / name, data)
    except BaseException:
        remove(target)
        raise
    return files, manifest
