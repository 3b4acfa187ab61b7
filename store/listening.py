"""Listening links: short-lived, single-use, audited capabilities to hear one recording in a browser (§3.2, §4.6).

Staff reach CIM over SSH, so the server has no speakers near them: the TUI asks for a link here and
`cim serve` answers it at `/listen/<token>` (webchat/listen.py). The rules live here, not in the web
layer: a 128-bit token kept only as its SHA-256; a life of `listen_minutes` (plus the recording's own
length, so a long call can be heard to its end); bound to the staff member, their purpose and their
staff session; pinned to the first browser that opens it by a cookie; a bounded number live per
person; every page open, every audio request and every refusal an audit entry under the purpose or
the request.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import math
import secrets
from collections import OrderedDict
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from .archive import ConversationSummary, RecordingInfo, _recording, _summary
from .audio import AudioError, level_envelope, probe_file
from .clock import from_iso, to_iso
from .errors import CimError, InvalidInput, NotFound, NotPermitted
from .i18n import N_
from .gsm610 import iter_wav49, wav49_levels, wav_header
from .keys import ContentDeleted, SealBroken, open_plain, plain_size
from .models import Actor, Role
from .policy import Permission, allowed

if TYPE_CHECKING:  # the service names the repository's type only; its SQL is the backend's (store/sqlite/)
    from . import Store
    from .settings import Settings
    from .sqlite.listening import ListeningRepository

#: Bytes of randomness in a token (128 bits).
TOKEN_BYTES = 16
#: Decoded GSM recordings kept in memory for the links that play them (bytes in all).
TRANSCODE_CACHE_BYTES = 64 * 1024 * 1024
#: Buckets of the level bar drawn on the page.
LEVEL_BUCKETS = 120
ARCHIVE, SESSION = "archive", "session"
#: Formats the page can play: the browser plays PCM WAV and MP3 itself; GSM 6.10 is decoded here.
PLAYABLE = ("wav-pcm", "wav-gsm", "mp3")
_CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read aloud and typed from a phone


class LinkRefused(CimError):
    """A link that cannot be used: the page says `reason` in words; `status` is the HTTP status."""

    code = "link_refused"

    def __init__(self, reason: str, message: str, status: int = 403, fsck_kind: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.status = status
        self.fsck_kind = fsck_kind


@dataclass(frozen=True)
class ListenLink:
    """A link as created: `token` is known only to its holder (the TUI shows it once); the store keeps its hash."""

    id: int
    token: str
    code: str
    conversation_id: int
    recording_id: int
    purpose: str
    request_id: int | None
    created_at: datetime
    expires_at: datetime

    @property
    def path(self) -> str:
        return f"/listen/{self.token}"


@dataclass(frozen=True)
class LiveLink:
    """A link that is still usable, as the archive and request screens list it (no token)."""

    id: int
    code: str
    conversation_id: int
    request_id: int | None
    expires_at: datetime
    opened: bool


@dataclass(frozen=True)
class ListenGrant:
    """What one admitted browser request may see: the recording, its call, the purpose, the expiry."""

    link_id: int
    code: str
    actor: Actor
    summary: ConversationSummary
    recording: RecordingInfo
    path: Path
    purpose: str
    request_id: int | None
    expires_at: datetime
    #: a new pin cookie to set (the first open of the link), else None
    new_pin: str | None = None


@dataclass(frozen=True)
class AudioSource:
    """The bytes the browser plays: the file itself (PCM WAV, MP3) or a WAV decoded from GSM."""

    content_type: str
    size: int
    read: Callable[[int, int], Awaitable[bytes]]  # (start, end inclusive) -> bytes
    transcoded: bool


def base_url(settings: "Settings", server_url: str | None = None) -> str:
    """Where staff browsers reach `cim serve`: listen_base_url, else the TUI's server URL, else http://HOST:PORT."""
    base = settings.listen_base_url or server_url or f"http://{settings.host}:{settings.port}"
    return base.rstrip("/")


def link_url(settings: "Settings", link: ListenLink, server_url: str | None = None) -> str:
    return base_url(settings, server_url) + link.path


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _code(digest: str) -> str:
    """A short code from the token's hash (not a secret): shown in the TUI and on the page, to compare."""
    n = int(digest[:16], 16)
    chars = []
    for _ in range(6):
        n, i = divmod(n, len(_CODE_ALPHABET))
        chars.append(_CODE_ALPHABET[i])
    return "".join(chars[:3]) + "-" + "".join(chars[3:])


def mask_number(number: str | None) -> str:
    """The resident's number with all but its last 3 digits hidden: `••• ••• 567`."""
    if not number:
        return "—"
    digits = [c for c in number if c.isdigit()]
    if len(digits) < 4:
        return "•••"
    return "••• ••• " + "".join(digits[-3:])


class Listening:
    """Creates, checks and revokes listening links; serves what an admitted link may play.

    The SQL is the repository's (store/sqlite/listening.py); every change runs in its unit of work,
    which the audit entry joins.
    """

    def __init__(self, store: "Store", repo: "ListeningRepository") -> None:
        self.store = store
        self.repo = repo
        self.random: Callable[[int], bytes] = secrets.token_bytes  # tests make the token predictable
        self._transcoded: OrderedDict[tuple[int, str], _Transcode] = OrderedDict()

    # -- creating ------------------------------------------------------------------------------------

    async def create(
        self,
        actor: Actor,
        conversation_id: int,
        purpose: str,
        *,
        session_token: str | None = None,
        minutes: int | None = None,
        recording_id: int | None = None,
    ) -> ListenLink:
        """A link to a call's recording for a stated purpose (the archive, §3.2); audited with the purpose."""
        await self.store.audit.guard(
            actor, Permission.OPEN_CONTENT, "listen.link_create", target_kind="conversation", target_id=conversation_id
        )
        text, request_id = await self.store.archive._purpose(purpose)
        return await self._create(
            actor, ARCHIVE, conversation_id, text, request_id, session_token, minutes, recording_id
        )

    async def create_for_session(
        self, actor: Actor, request_id: int, conversation_id: int, *, session_token: str | None = None
    ) -> ListenLink:
        """A link for the §4.6 session: only while it runs, by the director or a designated attendee."""
        material = await self.store.requests.open_for_session(actor, request_id, conversation_id)
        if material.recording_path is None:
            raise InvalidInput(
                N_("conversation {conversation_id} has no recording to listen to"), conversation_id=conversation_id
            )
        number = await self.repo.request_number(request_id)
        return await self._create(
            actor, SESSION, conversation_id, f"§4 session {number}", request_id, session_token, None, None
        )

    async def _create(
        self,
        actor: Actor,
        kind: str,
        conversation_id: int,
        purpose: str,
        request_id: int | None,
        session_token: str | None,
        minutes: int | None,
        recording_id: int | None,
    ) -> ListenLink:
        minutes = self.store.settings.listen_minutes if minutes is None else minutes
        if not isinstance(minutes, int) or not 1 <= minutes <= 24 * 60:
            raise InvalidInput(N_("a listening link lives between 1 and 1440 minutes"))
        row = await self.store.archive._recording_row(conversation_id, recording_id)
        path = self.store.archive._managed_path(row["path"])
        if not await asyncio.to_thread(path.is_file):
            raise NotFound(
                N_(
                    "the recording file of conversation {conversation_id} is missing (`cim fsck` reports "
                    "it as missing_file)"
                ),
                conversation_id=conversation_id,
            )
        now = self.store.clock()
        limit = self.store.settings.listen_max_links
        live = len(await self.live_links(actor))  # links of an ended staff session no longer count
        if live >= limit:
            await self.store.audit.record(
                actor,
                "listen.link_create",
                outcome="refused",
                target_kind="conversation",
                target_id=conversation_id,
                purpose=purpose,
                request_id=request_id,
                details={"reason": "too_many_links", "live": live},
            )
            raise NotPermitted(
                N_(
                    "{name} already has {live} live listening links (at most {limit}); wait until one "
                    "expires or close one"
                ),
                name=actor.name,
                live=live,
                limit=limit,
            )
        token = base64.urlsafe_b64encode(self.random(TOKEN_BYTES)).rstrip(b"=").decode("ascii")
        digest = token_hash(token)
        code = _code(digest)
        duration = row["duration_s"] or 0
        expires = now + timedelta(minutes=minutes, seconds=math.ceil(duration))
        async with self.repo.transaction() as tx:
            link_id = await self.repo.insert_link(
                tx,
                token_hash=digest,
                kind=kind,
                code=code,
                staff_id=actor.staff_id,
                actor_name=actor.name,
                session_hash=token_hash(session_token) if session_token else None,
                conversation_id=conversation_id,
                recording_id=row["id"],
                recording_sha256=row["sha256"],
                purpose=purpose,
                request_id=request_id,
                created_at=to_iso(now),
                expires_at=to_iso(expires),
            )
            await self.store.audit.append(
                tx,
                actor,
                "listen.link_create",
                target_kind="conversation",
                target_id=conversation_id,
                purpose=purpose,
                request_id=request_id,
                details={
                    "link_id": link_id,
                    "kind": kind,
                    "code": code,
                    "recording_id": row["id"],
                    "expires_at": to_iso(expires),
                    "bound_to_session": bool(session_token),
                },
            )
        return ListenLink(
            id=link_id,
            token=token,
            code=code,
            conversation_id=conversation_id,
            recording_id=row["id"],
            purpose=purpose,
            request_id=request_id,
            created_at=now,
            expires_at=expires,
        )

    # -- what is live ------------------------------------------------------------------------------

    async def live_links(
        self, actor: Actor, *, conversation_id: int | None = None, request_id: int | None = None
    ) -> list[LiveLink]:
        """The actor's own links still usable (for "odsłuch w przeglądarce" on the archive and request screens)."""
        rows = await self.repo.live_links(
            actor.name, to_iso(self.store.clock()), conversation_id=conversation_id, request_id=request_id
        )
        out = []
        for r in rows:
            if r["session_hash"] and await self._session_ended(r["session_hash"]):
                continue
            out.append(
                LiveLink(
                    id=r["id"],
                    code=r["code"],
                    conversation_id=r["conversation_id"],
                    request_id=r["request_id"],
                    expires_at=from_iso(r["expires_at"]),
                    opened=r["opened_at"] is not None,
                )
            )
        return out

    async def revoke(self, actor: Actor, link_id: int, reason: str = "closed") -> bool:
        """End one of the actor's own links now (the TUI closes it); True if it was live."""
        async with self.repo.transaction() as tx:
            row = await self.repo.revoke_own(tx, link_id, actor.name, to_iso(self.store.clock()), reason)
            if row is not None:
                await self.store.audit.append(
                    tx,
                    actor,
                    "listen.link_revoke",
                    target_kind="conversation",
                    target_id=row["conversation_id"],
                    purpose=row["purpose"],
                    request_id=row["request_id"],
                    details={"link_id": link_id, "reason": reason},
                )
        return row is not None

    # -- the browser's requests --------------------------------------------------------------------

    async def open_page(self, token: str, pin: str | None, *, client: str = "") -> ListenGrant:
        """Admit a page open: the first one pins the link to this browser (a new pin is returned to set)."""
        link = await self._admit(token, pin, "listen.page", client=client, may_pin=True)
        grant = await self._grant(link)
        await self._check_file(link, grant)
        if await self._format(grant) not in PLAYABLE:
            await self.store.audit.record(
                grant.actor,
                "listen.page",
                outcome="refused",
                **self._where(link),
                details=self._details(link, "unplayable", client),
            )
            raise LinkRefused(
                "unplayable", f"recordings in the format {grant.recording.format!r} cannot be played in a browser", 415
            )
        new_pin = None
        pinned_elsewhere = False
        async with self.repo.transaction() as tx:
            if link["pin_hash"] is None:
                new_pin = secrets.token_urlsafe(24)
                # another browser pinned it between our read and this write
                pinned_elsewhere = not await self.repo.pin(
                    tx, link["id"], token_hash(new_pin), to_iso(self.store.clock())
                )
            if pinned_elsewhere:
                await self.store.audit.append(
                    tx,
                    grant.actor,
                    "listen.page",
                    outcome="refused",
                    **self._where(link),
                    details=self._details(link, "foreign_browser", client),
                )
            else:
                await self.store.audit.append(
                    tx,
                    grant.actor,
                    "listen.page",
                    **self._where(link),
                    details={**self._details(link, None, client), "first_open": new_pin is not None},
                )
        if pinned_elsewhere:
            raise LinkRefused("foreign_browser", "this link has already been opened in another browser")
        return replace(grant, new_pin=new_pin)

    async def open_audio(self, token: str, pin: str | None, *, client: str = "") -> ListenGrant:
        """Admit one audio request (checked at every range, so a staff session that ended stops playback at the
        next one); a refusal is audited here, an admitted request by `record_audio` once its range is known."""
        link = await self._admit(token, pin, "listen.audio", client=client, may_pin=False)
        return await self._grant(link)

    async def record_audio(
        self, grant: ListenGrant, range_header: str, *, served: bool, size: int, client: str = ""
    ) -> None:
        """The audit entry of one audio request: the range served, or refused as beyond the end (416)."""
        details: dict[str, Any] = {"link_id": grant.link_id, "code": grant.code, "range": range_header[:60]}
        if not served:
            details.update(reason="range_not_satisfiable", size=size)
        if client:
            details["client"] = client
        await self.store.audit.record(
            grant.actor,
            "listen.audio",
            outcome="ok" if served else "refused",
            target_kind="conversation",
            target_id=grant.summary.id,
            purpose=grant.purpose,
            request_id=grant.request_id,
            details=details,
        )

    async def _admit(self, token: str, pin: str | None, action: str, *, client: str, may_pin: bool) -> Any:
        """The link row, or LinkRefused after auditing why (forged, expired, revoked, foreign browser...)."""
        if not isinstance(token, str) or not 10 <= len(token) <= 64:
            row = None
        else:
            row = await self.repo.link_by_token(token_hash(token))
        if row is None:
            await self.store.audit.record(
                Actor(None, "browser", frozenset()),
                action,
                outcome="refused",
                target_kind="listen_link",
                details={"reason": "forged", "client": client},
            )
            raise LinkRefused("forged", "this listening link is not one CIM gave out")
        owner = await self._owner(row)
        refusal = (
            await self._lapsed(row, self.store.clock())
            or self._unpinned(row, pin, may_pin)
            or await self._withheld(row, owner)
        )
        if refusal is not None:
            reason, message, status = refusal
            await self.store.audit.record(
                owner, action, outcome="refused", **self._where(row), details=self._details(row, reason, client)
            )
            raise LinkRefused(reason, message, status)
        return row

    async def _lapsed(self, row: Any, now: datetime) -> tuple[str, str, int] | None:
        """(reason, message, status) when the link itself is over: closed, expired, its staff session ended."""
        if row["revoked_at"]:
            if row["revoked_reason"] == "session_ended":
                return "session_ended", "the staff session this link belonged to has ended", 403
            return "revoked", "this listening link was closed by the person who created it", 403
        if now >= from_iso(row["expires_at"]):
            return "expired", "this listening link has expired; create a new one in CIM", 410
        if row["session_hash"] and await self._session_ended(row["session_hash"]):
            await self._revoke_row(row["id"], "session_ended")
            return "session_ended", "the staff session this link belonged to has ended", 403
        return None

    @staticmethod
    def _unpinned(row: Any, pin: str | None, may_pin: bool) -> tuple[str, str, int] | None:
        """(reason, message, status) when this browser is not the one the link is pinned to (or may not pin it)."""
        if row["pin_hash"] is not None:
            if not pin or token_hash(pin) != row["pin_hash"]:
                return (
                    "foreign_browser",
                    "this link has already been opened in another browser; links cannot be forwarded",
                    403,
                )
        elif not may_pin:
            return "not_opened", "open the listening page first", 403
        return None

    async def _withheld(self, row: Any, owner: Actor) -> tuple[str, str, int] | None:
        """(reason, message, status) when the owner, the §4.6 session or the recording no longer allow it."""
        if row["staff_id"] is not None:
            disabled = await self.repo.staff_disabled(row["staff_id"])
            may = allowed(owner, Permission.OPEN_CONTENT) or row["kind"] == SESSION
            if disabled is None or disabled or not may:
                return "withheld", "the person who created this link may no longer open recordings", 403
        if row["kind"] == SESSION:
            if await self.repo.request_state(row["request_id"]) != "session_in_progress":
                return "withheld", "the listening session this link belonged to is over", 410
        if not await self.repo.recording_unchanged(
            row["recording_id"], row["conversation_id"], row["recording_sha256"]
        ):
            purged = await self.repo.was_purged(row["conversation_id"])
            return (
                "purged",
                "the recording was permanently deleted (purged, §6) after the link was made"
                if purged
                else "the recording is no longer in the archive",
                410,
            )
        return None

    async def _revoke_row(self, link_id: int, reason: str) -> None:
        await self.repo.revoke(link_id, to_iso(self.store.clock()), reason)

    async def _owner(self, row: Any) -> Actor:
        if row["staff_id"] is None:
            return Actor.system(row["actor_name"].removeprefix("system:"))
        roles = await self.repo.roles(row["staff_id"])
        return Actor(staff_id=row["staff_id"], name=row["actor_name"], roles=frozenset(Role(r) for r in roles))

    async def _session_ended(self, session_hash: str) -> bool:
        s = await self.repo.session(session_hash)
        if s is None or s["revoked_at"]:
            return True
        now = self.store.clock()
        idle = from_iso(s["last_seen_at"]) + timedelta(minutes=self.store.settings.session_idle_minutes)
        return now >= from_iso(s["expires_at"]) or now >= idle

    async def _grant(self, row: Any) -> ListenGrant:
        conv = await self.repo.summary(row["conversation_id"])
        rec = await self.repo.recording(row["recording_id"])
        return ListenGrant(
            link_id=row["id"],
            code=row["code"],
            actor=await self._owner(row),
            summary=_summary(conv),
            recording=_recording(rec),
            path=self.store.archive._managed_path(rec["path"]),
            purpose=row["purpose"],
            request_id=row["request_id"],
            expires_at=from_iso(row["expires_at"]),
        )

    async def _check_file(self, row: Any, grant: ListenGrant) -> None:
        """The file is there and unchanged since ingestion, or the page names fsck's kind of the problem."""
        try:
            actual = await asyncio.to_thread(_sha256_or_none, grant.path)
        except ContentDeleted as exc:
            await self.store.audit.record(
                grant.actor,
                "listen.page",
                outcome="refused",
                **self._where(row),
                details=self._details(row, "deleted", ""),
            )
            raise LinkRefused("deleted", exc.message, 410) from None
        except SealBroken:
            actual = "sealed file does not open"
        if actual == grant.recording.sha256:
            return
        kind = "missing_file" if actual is None else "checksum_mismatch"
        await self.store.audit.record(
            grant.actor, "listen.page", outcome="refused", **self._where(row), details=self._details(row, kind, "")
        )
        if actual is None:
            raise LinkRefused(kind, "the recording file is missing from the recordings folder", 404, kind)
        raise LinkRefused(
            kind, "the recording file differs from the one recorded (its SHA-256 does not match)", 409, kind
        )

    @staticmethod
    def _where(row: Any) -> dict[str, Any]:
        return {
            "target_kind": "conversation",
            "target_id": row["conversation_id"],
            "purpose": row["purpose"],
            "request_id": row["request_id"],
        }

    @staticmethod
    def _details(row: Any, reason: str | None, client: str) -> dict[str, Any]:
        details: dict[str, Any] = {"link_id": row["id"], "code": row["code"]}
        if reason:
            details["reason"] = reason
        if client:
            details["client"] = client
        return details

    # -- the audio ---------------------------------------------------------------------------------

    async def audio_source(self, grant: ListenGrant) -> AudioSource:
        """What to send for the grant's recording: the file for PCM WAV and MP3; GSM decoded to a PCM WAV."""
        fmt = await self._format(grant)
        if fmt == "wav-gsm":
            transcode = await self._transcode(grant)
            return AudioSource("audio/wav", transcode.size, transcode.read, transcoded=True)
        if fmt in ("wav-pcm", "mp3"):
            size = await asyncio.to_thread(plain_size, grant.path)
            path = grant.path

            async def read(start: int, end: int) -> bytes:
                return await asyncio.to_thread(_read_range, path, start, end)

            return AudioSource("audio/wav" if fmt == "wav-pcm" else "audio/mpeg", size, read, transcoded=False)
        raise LinkRefused("unplayable", f"recordings in the format {fmt!r} cannot be played in a browser", 415)

    async def _format(self, grant: ListenGrant) -> str:
        """The recording's format as ingestion named it, else as its header says (rows from older imports)."""
        if grant.recording.format in PLAYABLE:
            return grant.recording.format
        try:
            return (await asyncio.to_thread(probe_file, grant.path)).format
        except (OSError, InvalidInput, SealBroken, ContentDeleted):
            return grant.recording.format

    async def _transcode(self, grant: ListenGrant) -> "_Transcode":
        key = (grant.recording.id, grant.recording.sha256)
        found = self._transcoded.get(key)
        if found is not None and not found.failed:
            self._transcoded.move_to_end(key)
            return found
        transcode = await _Transcode.start(grant.path)
        self._transcoded[key] = transcode
        while sum(t.size for t in self._transcoded.values()) > TRANSCODE_CACHE_BYTES and len(self._transcoded) > 1:
            self._transcoded.popitem(last=False)  # a reader still holding it gets its bytes; then it is freed
        return transcode

    def stop(self) -> None:
        """Stop decoding (the store is closing); nothing half-decoded is kept."""
        for transcode in self._transcoded.values():
            transcode.cancel()
        self._transcoded.clear()

    async def levels(self, grant: ListenGrant, buckets: int = LEVEL_BUCKETS) -> list[float]:
        """Peak level (0..1) of equal slices of the recording, for the page's level bar (no audio leaves here)."""
        fmt = await self._format(grant)
        try:
            if fmt == "wav-gsm":
                return await asyncio.to_thread(_gsm_levels, grant.path, buckets)
            if fmt == "wav-pcm":
                return await asyncio.to_thread(level_envelope, grant.path, buckets)
        except (OSError, InvalidInput, SealBroken, ContentDeleted):
            pass
        return []


class _Transcode:
    """A GSM recording being decoded to a PCM WAV in a worker thread; each read waits for the bytes it needs.

    The size is known from the header before decoding starts, so the first Range answer goes out as
    soon as its bytes are decoded (about 40 times faster than real time), not after the whole call.
    """

    def __init__(self, size: int, header: bytes) -> None:
        self.size = size
        self.buf = bytearray(header)
        self.finished = False
        self.failed = False
        self.cancelled = False
        self._progress = asyncio.Event()
        self._loop = asyncio.get_running_loop()

    @classmethod
    async def start(cls, path: Path) -> "_Transcode":
        info = await asyncio.to_thread(probe_file, path)
        samples = round((info.duration_s or 0) * (info.sample_rate or 8000))
        transcode = cls(44 + samples * 2, wav_header(samples, info.sample_rate or 8000))
        transcode._loop.run_in_executor(None, transcode._run, path, info, samples)
        return transcode

    def _run(self, path: Path, info, samples: int) -> None:
        try:
            with open_plain(path) as fh:
                fh.seek(info.data_offset or 0)
                data = fh.read(info.data_size or 0)
            for chunk in iter_wav49(data, samples):
                if self.cancelled:
                    return
                self.buf.extend(chunk)
                self._notify()
            if len(self.buf) < self.size:  # fewer whole blocks than the header counts: silence, same length
                self.buf.extend(bytes(self.size - len(self.buf)))
        except (OSError, AudioError, SealBroken, ContentDeleted):
            self.failed = True
        finally:
            self.finished = True
            self._notify()

    def _notify(self) -> None:
        """Wake the readers (from the decoding thread); once the loop has closed nobody waits: stop."""
        try:
            self._loop.call_soon_threadsafe(self._tick)
        except RuntimeError:
            self.cancelled = True

    def _tick(self) -> None:
        event, self._progress = self._progress, asyncio.Event()
        event.set()

    def cancel(self) -> None:
        self.cancelled = True

    async def read(self, start: int, end: int) -> bytes:
        end = min(end, self.size - 1)
        while len(self.buf) <= end and not self.finished:
            await self._progress.wait()
        if self.failed:
            raise LinkRefused("unplayable", "the GSM recording could not be decoded", 415)
        return bytes(self.buf[start : end + 1])


def _sha256_or_none(path: Path) -> str | None:
    digest = hashlib.sha256()
    try:
        with open_plain(path) as fh:
            while chunk := fh.read(1 << 20):
                digest.update(chunk)
    except OSError:
        return None
    return digest.hexdigest()


def _read_range(path: Path, start: int, end: int) -> bytes:
    with open_plain(path) as fh:  # a sealed file: only the 64 KiB segments of the range are decrypted
        fh.seek(start)
        return fh.read(end - start + 1)


def _gsm_levels(path: Path, buckets: int) -> list[float]:
    info = probe_file(path)
    with open_plain(path) as fh:
        fh.seek(info.data_offset or 0)
        return wav49_levels(fh.read(info.data_size or 0), buckets)
