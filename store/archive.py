"""The archive (§5): audited search of calls and chats, and opening recordings and transcripts for a stated purpose."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from dataclasses import asdict, dataclass
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO
from zoneinfo import ZoneInfo

from .audio import level_envelope
from .calls import _digits, normalise_number
from .clock import from_iso
from .errors import ConversationNotFound, InvalidInput, NotFound
from .i18n import N_
from .keys import DELETED_MARK, ContentDeleted, SealBroken, file_key_id, open_plain
from .models import Actor
from .policy import Permission, allowed

if TYPE_CHECKING:  # the service names the repository's type only; its SQL is the backend's (store/sqlite/)
    from . import Store
    from .sqlite.archive import ArchiveRepository

PAGE_SIZE_MAX = 500
PURPOSE_MAX = 500
DIRECTIONS = ("incoming", "outgoing", "internal")
CHANNELS = ("call", "chat")


@dataclass(frozen=True)
class SearchFilters:
    """What the archive is searched by; dates are office-local calendar days, both inclusive."""

    number: str | None = None
    date_from: date | None = None
    date_to: date | None = None
    direction: str | None = None
    channel: str | None = None
    consultant: str | None = None  # staff name
    department: str | None = None  # department code


@dataclass(frozen=True)
class ConversationSummary:
    id: int
    channel: str
    status: str
    created_at: datetime
    ended_at: datetime | None
    direction: str | None
    resident_number: str | None
    number_identifiable: bool | None
    consultant: str | None
    department: str | None
    duration_s: int | None
    disposition: str | None
    has_recording: bool
    notice_played: bool | None
    full_info_requested: bool | None
    #: Its data key was destroyed by the purge (§6): shown as DELETED_MARK, never opened (store/keys.py).
    deleted: bool = False
    #: A chat's topic (store/desk.py) as (Polish label, English label), or None.
    topic: tuple[str, str] | None = None


@dataclass(frozen=True)
class SearchPage:
    items: tuple[ConversationSummary, ...]
    #: Pass back as `after` for the next (older) page; None on the last page.
    next_cursor: str | None


@dataclass(frozen=True)
class RecordingInfo:
    id: int
    conversation_id: int
    pbx_uniqueid: str
    path: str  # relative to the recordings folder
    sha256: str
    size_bytes: int
    duration_s: float | None
    format: str
    is_empty: bool
    imported_at: datetime


@dataclass(frozen=True)
class ConversationDetail:
    summary: ConversationSummary
    extension: str | None
    pbx_uniqueid: str | None
    pbx_linkedid: str | None
    billsec_s: int | None
    purge_after: datetime
    notice_version: int | None
    lang: str | None
    recordings: tuple[RecordingInfo, ...]
    message_count: int
    held: bool


@dataclass(frozen=True)
class TranscriptLine:
    seq: int
    sender: str
    text: str
    at: datetime
    staff_name: str | None
    #: a system line's event code and parameters (store/chats.py), rendered in the reader's language
    event: str | None = None
    params: dict[str, Any] | None = None
    #: the full name of the staff member on the line (the log-in name when none is set)
    staff_full_name: str | None = None


@dataclass(frozen=True)
class Transcript:
    conversation_id: int
    lines: tuple[TranscriptLine, ...]
    #: the chat's close category code (staff see it in words); None while open or uncategorised
    close_category: str | None = None


@dataclass(frozen=True)
class OpenedRecording:
    recording: RecordingInfo
    #: Absolute path inside the managed recordings folder, for the player.
    path: Path
    #: Sealed at rest (store/keys.py): the player reads `plaintext()` from a pipe, never the file.
    sealed: bool = False

    def plaintext(self) -> BinaryIO:
        """The recording's plaintext, decrypted segment by segment (blocking: read it in a thread)."""
        return open_plain(self.path)


@dataclass(frozen=True)
class IntegrityResult:
    recording_id: int
    ok: bool
    expected_sha256: str
    actual_sha256: str | None
    problem: str | None


def _opt_bool(value: Any) -> bool | None:
    return None if value is None else bool(value)


def _summary(r: Any) -> ConversationSummary:
    # Unpacked by position, in the column order of the repository's summary rows (store/sqlite/archive.py):
    # sqlite3.Row's lookup by name scans the column names each time, a third of building a page of 50
    # summaries (bench/).
    (
        id_,
        channel,
        status,
        created_at,
        ended_at,
        direction,
        resident_number,
        number_identifiable,
        consultant,
        department,
        duration_s,
        disposition,
        notice_played,
        full_info_requested,
        has_recording,
        topic_pl,
        topic_en,
        deleted,
    ) = r
    return ConversationSummary(
        id=id_,
        channel=channel,
        status=status,
        created_at=from_iso(created_at),
        ended_at=from_iso(ended_at) if ended_at else None,
        direction=direction,
        resident_number=resident_number,
        number_identifiable=_opt_bool(number_identifiable),
        consultant=consultant,
        department=department,
        duration_s=duration_s,
        disposition=disposition,
        has_recording=bool(has_recording),
        notice_played=_opt_bool(notice_played),
        full_info_requested=_opt_bool(full_info_requested),
        topic=(topic_pl, topic_en) if topic_pl is not None else None,
        deleted=bool(deleted),
    )


def _recording(r: Any) -> RecordingInfo:
    return RecordingInfo(
        id=r["id"],
        conversation_id=r["conversation_id"],
        pbx_uniqueid=r["pbx_uniqueid"],
        path=r["path"],
        sha256=r["sha256"],
        size_bytes=r["size_bytes"],
        duration_s=r["duration_s"],
        format=r["format"],
        is_empty=bool(r["is_empty"]),
        imported_at=from_iso(r["imported_at"]),
    )


def number_match(text: str) -> tuple[str, list[Any]]:
    """A number filter as ("full"|"partial"|"raw", values), the kind of search and what it compares.

    A whole number (national 9 digits, +48..., 0048..., or another +CC number) matches exactly on
    its normalised form ("full": [it]). Three or more digits match numbers that start with them
    (national or international form) or end with them ("partial": [prefix, prefix + ':', reversed
    digits, reversed digits + ':'], each a range: ':' sorts right after '9'); anything else matches
    as typed ("raw": [text]). The repository turns each kind into its condition.
    """
    text = text.strip()
    info = normalise_number(text)
    digits = _digits(text)
    if info.identifiable and info.normalised and info.normalised.startswith("+") and len(digits) >= 9:
        return "full", [info.normalised]
    if digits and len(digits) == len(text.replace(" ", "").replace("-", "").lstrip("+")):
        if len(digits) < 3:
            raise InvalidInput(N_("give at least 3 digits of the number"))
        international = text.lstrip().startswith("+") or digits.startswith("00")
        prefix = "+" + (digits[2:] if digits.startswith("00") else digits) if international else "+48" + digits
        return "partial", [prefix, prefix + ":", digits[::-1], digits[::-1] + ":"]
    if not text:
        raise InvalidInput(N_("the number to search for is empty"))
    return "raw", [text]


class Archive:
    """Search and open conversations; every read is checked against the policy and audited (§3, §5)."""

    def __init__(self, store: "Store", repo: "ArchiveRepository") -> None:
        self.store = store
        self.repo = repo

    @property
    def zone(self) -> ZoneInfo:
        """The office time zone: search dates are its calendar days."""
        return ZoneInfo(self.store.settings.timezone)

    async def search(
        self, actor: Actor, filters: SearchFilters, *, after: str | None = None, page_size: int = 50
    ) -> SearchPage:
        """One page of conversations, newest first; `after` is the previous page's next_cursor (keyset paging)."""
        await self.store.audit.guard(actor, Permission.SEARCH_ARCHIVE, "archive.search")
        if not 1 <= page_size <= PAGE_SIZE_MAX:
            raise InvalidInput(N_("page size must be between 1 and {max}"), max=PAGE_SIZE_MAX)
        number, plain = self._plain_filters(filters)
        consultant_id, department_id = await self._staff_filters(filters)
        rows = await self.repo.search(
            number=number,
            **plain,
            consultant_id=consultant_id,
            department_id=department_id,
            after=self._cursor(after) if after else None,
            limit=page_size + 1,
        )
        audited = self._audited_filters(filters, number[0] if number else None)
        # The audit entry is its own transaction, as before, now in one call on the writer's thread; it
        # commits while this coroutine builds the page (bench/), and the page is returned only once the
        # entry is committed: a failed entry is an error for the searcher, never results.
        audit = asyncio.ensure_future(
            self.store.audit.record(
                actor,
                "archive.search",
                target_kind="archive",
                details={"filters": audited, "page": bool(after), "results": min(len(rows), page_size)},
            )
        )
        try:
            items = tuple(_summary(r) for r in rows[:page_size])
            next_cursor = None
            if len(rows) > page_size:
                last = rows[page_size - 1]
                next_cursor = f"{last['created_at']}|{last['id']}"
        finally:
            await audit
        return SearchPage(items, next_cursor)

    def _plain_filters(self, filters: SearchFilters) -> tuple[tuple[str, list[Any]] | None, dict[str, str | None]]:
        """The number filter (its kind and values, or None) and the date, direction and channel filters, checked."""
        number = None
        if filters.number and filters.number.strip():
            number = number_match(filters.number)
        if filters.date_from and filters.date_to and filters.date_from > filters.date_to:
            raise InvalidInput(N_("the date range ends before it starts"))
        if filters.direction and filters.direction not in DIRECTIONS:
            raise InvalidInput(N_("direction must be one of {directions}"), directions=", ".join(DIRECTIONS))
        if filters.channel and filters.channel not in CHANNELS:
            raise InvalidInput(N_("channel must be call or chat"))
        return number, {
            "created_from": self._day_start(filters.date_from) if filters.date_from else None,
            "created_before": self._day_start(filters.date_to + timedelta(days=1)) if filters.date_to else None,
            "direction": filters.direction or None,
            "channel": filters.channel or None,
        }

    async def _staff_filters(self, filters: SearchFilters) -> tuple[int | None, int | None]:
        """The consultant and department filters as ids, each looked up by its name or code."""
        consultant_id = department_id = None
        if filters.consultant:
            consultant_id = await self.repo.staff_id(filters.consultant.strip())
            if consultant_id is None:
                raise NotFound(N_("no staff member named {consultant!r}"), consultant=filters.consultant.strip())
        if filters.department:
            department_id = await self.repo.department_id(filters.department.strip())
            if department_id is None:
                raise NotFound(N_("no department with code {department!r}"), department=filters.department.strip())
        return consultant_id, department_id

    @staticmethod
    def _audited_filters(filters: SearchFilters, number_kind: str | None) -> dict[str, Any]:
        audited = {k: (str(v) if isinstance(v, date) else v) for k, v in asdict(filters).items() if v}
        if "number" in audited:
            # the number searched for is personal data; the log keeps only what kind of search it was
            audited["number"] = number_kind
        return audited

    def _day_start(self, day: date) -> str:
        local = datetime.combine(day, time(0), tzinfo=self.zone)
        return local.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    @staticmethod
    def _cursor(text: str) -> tuple[str, int]:
        created, _, conv_id = text.partition("|")
        try:
            from_iso(created)
            return created, int(conv_id)
        except ValueError:
            raise InvalidInput(N_("the page cursor is not one this archive gave out")) from None

    async def _conversation_row(self, conversation_id: int) -> Any:
        row = await self.repo.summary(conversation_id)
        if row is None:
            raise ConversationNotFound(N_("no conversation {conversation_id}"), conversation_id=conversation_id)
        return row

    async def details(self, actor: Actor, conversation_id: int) -> ConversationDetail:
        """Metadata of one conversation and its recordings (no content); audited as a view."""
        await self.store.audit.guard(
            actor, Permission.SEARCH_ARCHIVE, "archive.view", target_kind="conversation", target_id=conversation_id
        )
        summary = _summary(await self._conversation_row(conversation_id))
        extra = await self.repo.detail(conversation_id)
        recordings = await self.repo.recordings(conversation_id)
        async with self.repo.transaction() as tx:
            await self.store.audit.append(
                tx, actor, "archive.view", target_kind="conversation", target_id=conversation_id
            )
        return ConversationDetail(
            summary=summary,
            extension=extra["extension"],
            pbx_uniqueid=extra["pbx_uniqueid"],
            pbx_linkedid=extra["pbx_linkedid"],
            billsec_s=extra["billsec_s"],
            purge_after=from_iso(extra["purge_after"]),
            notice_version=extra["version"],
            lang=extra["lang"],
            recordings=tuple(_recording(r) for r in recordings),
            message_count=extra["messages"],
            held=bool(extra["held"]),
        )

    async def _purpose(self, purpose: str | None) -> tuple[str, int | None]:
        text = (purpose or "").strip()
        if len(text) < 3:
            raise InvalidInput(N_("state the purpose: a request number or a reason (at least 3 characters)"))
        if len(text) > PURPOSE_MAX:
            raise InvalidInput(N_("the purpose is longer than {max} characters"), max=PURPOSE_MAX)
        return text, await self.repo.request_id(text)

    async def open_transcript(self, actor: Actor, conversation_id: int, purpose: str) -> Transcript:
        """A chat's transcript, for a stated purpose (request number or reason), audited with it."""
        await self.store.audit.guard(
            actor,
            Permission.OPEN_CONTENT,
            "archive.open_transcript",
            target_kind="conversation",
            target_id=conversation_id,
        )
        text, request_id = await self._purpose(purpose)
        row = await self._conversation_row(conversation_id)
        if row["channel"] != "chat":
            raise InvalidInput(N_("a call has no transcript; open its recording instead"))
        if row["deleted"]:
            await self._refuse_deleted(actor, "archive.open_transcript", conversation_id, text)
        messages = await self.repo.transcript(conversation_id)
        texts = await self.store.keys.texts(conversation_id, messages)
        notes = await self.store.supervision.notes(conversation_id)  # §3 whispers: staff notes, shown as such
        async with self.repo.transaction() as tx:
            await self.store.audit.append(
                tx,
                actor,
                "archive.open_transcript",
                target_kind="conversation",
                target_id=conversation_id,
                purpose=text,
                request_id=request_id,
                details={"messages": len(messages), **({"notes": len(notes)} if notes else {})},
            )
        category = await self.repo.close_category(conversation_id)
        lines = [
            TranscriptLine(
                seq=m["seq"],
                sender=m["sender"],
                text=t,
                at=from_iso(m["at"]),
                staff_name=m["staff_name"],
                event=m["event"],
                params=json.loads(m["params"]) if m["event"] and m["params"] else None,
                staff_full_name=(m["full_name"] or "").strip() or m["staff_name"],
            )
            for m, t in zip(messages, texts)
        ]
        return Transcript(
            conversation_id,
            tuple(with_staff_notes(lines, notes)),
            close_category=category,
        )

    async def _refuse_deleted(self, actor: Actor, action: str, conversation_id: int, purpose: str) -> None:
        """A conversation whose key the purge destroyed: a clear refusal, audited, never a trace."""
        await self.store.audit.record(
            actor,
            action,
            outcome="refused",
            target_kind="conversation",
            target_id=conversation_id,
            purpose=purpose,
            details={"reason": "deleted"},
        )
        raise ContentDeleted(
            N_(
                "conversation {conversation_id}: {mark} — its key was destroyed by the purge; this "
                "copy (a restored backup) can never be read"
            ),
            conversation_id=conversation_id,
            mark=DELETED_MARK,
        )

    async def _recording_row(self, conversation_id: int, recording_id: int | None) -> Any:
        row = await self.repo.recording(conversation_id, recording_id)
        if row is None:
            await self._conversation_row(conversation_id)
            raise NotFound(N_("conversation {conversation_id} has no such recording"), conversation_id=conversation_id)
        return row

    def _managed_path(self, relative: str) -> Path:
        root = self.store.settings.recordings_dir.resolve()
        path = (root / relative).resolve()
        if root not in path.parents:
            raise InvalidInput(N_("the recording's path lies outside the recordings folder"))
        return path

    async def open_recording(
        self, actor: Actor, conversation_id: int, purpose: str, recording_id: int | None = None
    ) -> OpenedRecording:
        """A call's recording file for playing, for a stated purpose, audited with it."""
        await self.store.audit.guard(
            actor,
            Permission.OPEN_CONTENT,
            "archive.open_recording",
            target_kind="conversation",
            target_id=conversation_id,
        )
        text, request_id = await self._purpose(purpose)
        if (await self._conversation_row(conversation_id))["deleted"]:
            await self._refuse_deleted(actor, "archive.open_recording", conversation_id, text)
        row = await self._recording_row(conversation_id, recording_id)
        path = self._managed_path(row["path"])
        if not await asyncio.to_thread(path.is_file):
            raise NotFound(
                N_("the recording file of conversation {conversation_id} is missing (run `cim fsck`)"),
                conversation_id=conversation_id,
            )
        sealed = await asyncio.to_thread(file_key_id, path) is not None
        async with self.repo.transaction() as tx:
            await self.store.audit.append(
                tx,
                actor,
                "archive.open_recording",
                target_kind="conversation",
                target_id=conversation_id,
                purpose=text,
                request_id=request_id,
                details={"recording_id": row["id"]},
            )
        return OpenedRecording(_recording(row), path, sealed)

    async def check_integrity(
        self, actor: Actor, conversation_id: int, recording_id: int | None = None
    ) -> IntegrityResult:
        """Recompute a recording's SHA-256 and compare it with the one taken at ingestion."""
        if not allowed(actor, Permission.CHECK_INTEGRITY):
            await self.store.audit.guard(
                actor,
                Permission.SEARCH_ARCHIVE,
                "archive.integrity_check",
                target_kind="conversation",
                target_id=conversation_id,
            )
        row = await self._recording_row(conversation_id, recording_id)
        path = self._managed_path(row["path"])
        actual = await asyncio.to_thread(_sha256_or_none, path)
        if actual is None:
            result = IntegrityResult(row["id"], False, row["sha256"], None, "the file is missing")
        elif actual == _UNOPENABLE:
            result = IntegrityResult(
                row["id"],
                False,
                row["sha256"],
                None,
                "the checksum does not match: the sealed file was changed or cut (it does not open)",
            )
        elif actual != row["sha256"]:
            result = IntegrityResult(row["id"], False, row["sha256"], actual, "the checksum does not match")
        else:
            result = IntegrityResult(row["id"], True, row["sha256"], actual, None)
        async with self.repo.transaction() as tx:
            await self.store.audit.append(
                tx,
                actor,
                "archive.integrity_check",
                outcome="ok" if result.ok else "failed",
                target_kind="conversation",
                target_id=conversation_id,
                details={"recording_id": row["id"], "ok": result.ok, "problem": result.problem},
            )
        return result

    async def recording_levels(
        self, actor: Actor, conversation_id: int, recording_id: int | None = None, buckets: int = 120
    ) -> list[float]:
        """The level envelope (0..1 peaks) of a recording for a sparkline: shape only, no audio leaves the store."""
        await self.store.audit.guard(
            actor, Permission.SEARCH_ARCHIVE, "archive.levels", target_kind="conversation", target_id=conversation_id
        )
        row = await self._recording_row(conversation_id, recording_id)
        path = self._managed_path(row["path"])
        try:
            levels = await asyncio.to_thread(level_envelope, path, buckets)
        except (OSError, InvalidInput):
            levels = []
        async with self.repo.transaction() as tx:
            await self.store.audit.append(
                tx,
                actor,
                "archive.levels",
                target_kind="conversation",
                target_id=conversation_id,
                details={"recording_id": row["id"]},
            )
        return levels


def _sha256_or_none(path: Path) -> str | None:
    from .keys import open_plain

    digest = hashlib.sha256()
    try:
        fh = open_plain(path, getattr(os, "O_NOFOLLOW", 0))  # a sealed file is hashed as its plaintext
    except OSError:
        return None
    try:
        with fh:
            while chunk := fh.read(1 << 20):
                digest.update(chunk)
    except SealBroken:
        return _UNOPENABLE
    return digest.hexdigest()


_UNOPENABLE = "unopenable"


def with_staff_notes(lines: list[TranscriptLine], notes: list[Any]) -> list[TranscriptLine]:
    """The transcript with the supervisors' whispers (store/supervision.py) as `note` lines, each after the
    line it followed; a note's `seq` is that line's."""
    if not notes:
        return lines
    merged = [(line.seq, 0, i, line) for i, line in enumerate(lines)]
    merged += [
        (n.after_seq, 1, i, TranscriptLine(seq=n.after_seq, sender="note", text=n.text, at=n.at, staff_name=n.author))
        for i, n in enumerate(notes)
    ]
    return [line for *_key, line in sorted(merged, key=lambda item: item[:3])]
