"""Retention (§6): holds, the permanent purge with crash-safe file deletion, fsck, backups and the daily run."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, AsyncIterator, Awaitable, Callable, Iterable
from zoneinfo import ZoneInfo

from .audit import AuditLog
from .backend import BackendHooks
from .clock import Clock, Duration, add_months, from_iso, to_iso
from .keys import ContentDeleted, Keys, SealBroken, file_key_id, plain_size, sha256_plain
from .errors import Text, render_message
from .errors import (
    AlreadyPurged,
    CimError,
    ClockJumped,
    ConfigError,
    Conflict,
    ConversationNotFound,
    InvalidInput,
    InvalidTransition,
    NotFound,
    StoreUnavailable,
)
from .i18n import N_, current_language, translator
from .models import Actor
from .policy import Permission
from .settings import Settings

if TYPE_CHECKING:  # the service names the repository's types only; its SQL is the backend's (store/sqlite/)
    from .sqlite.database import Transaction
    from .sqlite.retention import RetentionRepository

log = logging.getLogger(__name__)

#: Test hook, documented in README.md (Retention): when this variable names a file, a real purge
#: creates that file right after its first batch has been committed (rows gone, paths recorded in
#: pending_unlinks, files not yet unlinked) and then waits forever, so a test can `kill -9` it at
#: exactly the dangerous moment. Never set it in production.
PAUSE_AFTER_COMMIT_ENV = "CIM_TEST_PURGE_PAUSE_AFTER_COMMIT"

#: The daily purge's actor (Actor.system) and how soon a daily run refused by another purge's lock is retried.
DAILY_PURGE_NAME = "daily-purge"
DAILY_PURGE_ACTOR = f"system:{DAILY_PURGE_NAME}"
CATCH_UP_RETRY_SECONDS = 10.0
#: How far the clock may read behind the newest audit entry before a purge refuses (NTP slew, two hosts).
CLOCK_TOLERANCE = timedelta(minutes=5)
_MAX_TEXT = 500
#: Conversations in the first purge batch; later batches adapt to settings.purge_batch_ms.
_FIRST_BATCH = 8


@dataclass(frozen=True)
class Hold:
    """An exception to retention: manual (legal basis, case) or automatic (an open access request)."""

    id: int
    conversation_id: int
    legal_basis: str
    case_reference: str
    request_id: int | None
    set_by: str | None
    set_at: datetime
    review_on: date | None
    released_by: str | None
    released_at: datetime | None
    #: Open and its review date has passed (§6: a hold is reviewed, not forgotten).
    overdue: bool = False

    @property
    def automatic(self) -> bool:
        return self.request_id is not None

    @property
    def open(self) -> bool:
        return self.released_at is None


@dataclass(frozen=True)
class HeldItem:
    """A conversation past its purge date that a hold or an open request keeps, with why."""

    conversation_id: int
    channel: str
    created_at: datetime
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class PurgePreview:
    cutoff: datetime
    calls: int
    chats: int
    files: int
    bytes: int
    held: int
    held_items: tuple[HeldItem, ...]
    #: Files of an interrupted earlier purge, deleted first by the next run.
    pending_files: int
    #: Earlier runs whose scrub could not truncate the WAL (purged text may remain; the next purge retries).
    remnant_runs: tuple[int, ...] = ()


@dataclass(frozen=True)
class PurgeProgress:
    """Reported after each committed batch: conversations purged so far out of those due."""

    done: int
    total: int


@dataclass(frozen=True)
class PurgeResult:
    run_id: int
    dry_run: bool
    cutoff: datetime
    calls: int
    chats: int
    files: int
    bytes: int
    held: int
    #: Files left by an interrupted earlier run and deleted by this one.
    resumed_files: int
    duration_s: float
    #: The WAL was checkpointed and truncated to zero bytes after the purge.
    wal_truncated: bool
    #: No purged text remains in cim.sqlite3 or -wal: this run's scrub and every earlier one's
    #: succeeded. False when another connection's read transaction outlasted the scrub's wait
    #: (`cim purge` exits 3; the next purge retries the scrub first). A dry run reports the state.
    remnants_cleared: bool = True

    def as_json(self) -> dict[str, Any]:
        """The `cim purge --json` document (DESIGN.md §5.1), plus run id, cutoff, resumed files, remnants."""
        return {
            "dry_run": self.dry_run,
            "purged": {"calls": self.calls, "chats": self.chats, "files": self.files, "bytes": self.bytes},
            "held": self.held,
            "remnants_cleared": self.remnants_cleared,
            "resumed_files": self.resumed_files,
            "run_id": self.run_id,
            "cutoff": to_iso(self.cutoff),
            "duration_s": round(self.duration_s, 3),
        }


@dataclass(frozen=True)
class PurgeRun:
    id: int
    started_at: datetime
    finished_at: datetime | None
    cutoff: datetime
    dry_run: bool
    started_by: str
    calls: int
    chats: int
    files: int
    bytes: int
    held: int
    status: str
    #: This run's scrub could not truncate the WAL and no later scrub has yet.
    remnants_pending: bool = False


#: Each fsck problem kind (the JSON's language-neutral code) in words, for the human output.
FSCK_KIND_LABELS: dict[str, str] = {
    "orphan_file": N_("file without a recording"),
    "missing_file": N_("missing file"),
    "missing_folder": N_("missing folder"),
    "unreadable_folder": N_("unreadable folder"),
    "unreadable_file": N_("unreadable file"),
    "invalid_path": N_("wrong path"),
    "empty_recording": N_("empty recording"),
    "checksum_mismatch": N_("checksum mismatch"),
    "pending_unlink": N_("unfinished deletion"),
    "unsealed_file": N_("unencrypted file"),
    "unsealed_lines": N_("unencrypted transcript lines"),
    "unsealed_notes": N_("unencrypted notes"),
    "tampered_file": N_("damaged file"),
    "tampered_line": N_("damaged transcript line"),
    "tampered_note": N_("damaged note"),
    "deleted_content": N_("deleted content"),
    "missing_key": N_("missing key"),
}


@dataclass(frozen=True)
class FsckProblem:
    """One thing `fsck` found wrong. `kind` is a language-neutral code (`cim fsck --json`); the sentence is an
    English msgid (marked with N_) with named `params`, like a CimError's, rendered for whoever reads it: the
    staff language when shown (`message`, `label`), English in the JSON and the logs (`detail`). A param that
    is a CimError (a seal that does not open) is rendered in the same language; a `Text` one is translated."""

    kind: str
    msgid: str
    params: dict[str, Any] = field(default_factory=dict, hash=False)

    @classmethod
    def of_error(cls, kind: str, error: CimError) -> "FsckProblem":
        return cls(kind, error.msgid, dict(error.params))

    def message_in(self, lang: str) -> str:
        params = {k: v.message_in(lang) if isinstance(v, CimError) else v for k, v in self.params.items()}
        return render_message(self.msgid, params, lang)

    @property
    def message(self) -> str:
        """The sentence in the current staff language."""
        return self.message_in(current_language())

    @property
    def detail(self) -> str:
        """The sentence in English: the JSON's `detail`, unchanged by the staff language."""
        return self.message_in("en")

    def label_in(self, lang: str) -> str:
        """The kind in words (the code itself for a kind without a label)."""
        label = FSCK_KIND_LABELS.get(self.kind)
        return translator(lang).gettext(label) if label else self.kind

    @property
    def label(self) -> str:
        return self.label_in(current_language())


@dataclass(frozen=True)
class FsckReport:
    problems: tuple[FsckProblem, ...]
    recordings_checked: int
    files_seen: int
    lines_checked: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_json(self) -> dict[str, Any]:
        """The `cim fsck --json` document (DESIGN.md §5.1)."""
        return {
            "ok": self.ok,
            "problems": [{"kind": p.kind, "detail": p.detail} for p in self.problems],
            "recordings_checked": self.recordings_checked,
            "files_seen": self.files_seen,
            "lines_checked": self.lines_checked,
        }


@dataclass(frozen=True)
class BackupResult:
    path: Path
    created_at: datetime
    db_bytes: int
    files: int
    bytes: int
    #: Recordings whose file was missing when copied (fsck will have reported them as missing_file).
    missing_files: int
    destroy_by: datetime
    #: What the copy needs to be read (store/keys.py): master key id and generation, the key ring; no key material.
    keys: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Counts:
    calls: int = 0
    chats: int = 0
    files: int = 0
    bytes: int = 0
    resumed: int = 0
    #: data keys of conversations this database no longer has, created before the cutoff (crypto-shredding)
    orphan_keys: int = 0
    paths: list[str] = field(default_factory=list)


class Retention:
    """Holds, purges and integrity checks over the conversations and the managed recordings folder.

    The rules live here (who may, what is due, the crash-safe order of a purge, what is audited);
    the SQL is the repository's (store/sqlite/retention.py) and the engine's upkeep the backend's
    hooks (store/backend.py). Every change runs in the repository's unit of work, which its audit
    entry joins.
    """

    def __init__(
        self, repo: RetentionRepository, audit: AuditLog, settings: Settings, clock: Clock, backend: BackendHooks
    ) -> None:
        self.repo = repo
        #: the engine's own mechanics: checkpoints, search-index upkeep, the scrub, the backup copy
        self.backend = backend
        self.audit = audit
        self.settings = settings
        self.clock = clock
        self._purging = asyncio.Lock()
        #: the data keys (store/keys.py), set by Store: fsck checks them, backups name the generation they need
        self.keys: Keys | None = None
        self._lines_checked = 0

    # ----------------------------------------------------------------------------------- holds

    def _today(self) -> date:
        return self.clock().astimezone(ZoneInfo(self.settings.timezone)).date()

    async def holds(
        self, actor: Actor, *, include_released: bool = False, conversation_id: int | None = None
    ) -> list[Hold]:
        """Holds, open ones first and the most overdue review at the top (cim_manager, boi_director)."""
        await self.audit.guard(actor, Permission.MANAGE_HOLDS, "retention.holds_list")
        rows = await self.repo.holds(include_released=include_released, conversation_id=conversation_id)
        today = self._today()
        return [_hold(r, today) for r in rows]

    async def add_hold(
        self,
        actor: Actor,
        conversation_ids: Iterable[int],
        *,
        legal_basis: str,
        case_reference: str,
        review_on: date | None = None,
    ) -> list[Hold]:
        """Hold one conversation or a whole search result; all or nothing, one audit entry per hold."""
        ids = sorted({_conversation_id(i) for i in conversation_ids})
        await self.audit.guard(
            actor,
            Permission.MANAGE_HOLDS,
            "retention.hold_set",
            target_kind="conversation",
            target_id=",".join(map(str, ids[:20])) or None,
        )
        if not ids:
            raise InvalidInput(N_("name at least one conversation to hold"))
        legal_basis = _required_text(legal_basis, N_("the legal basis"))
        case_reference = _required_text(case_reference, N_("the case reference"))
        if review_on is not None and review_on < self._today():
            raise InvalidInput(N_("the review date {review_on} is in the past"), review_on=review_on.isoformat())
        now = to_iso(self.clock())
        review = review_on.isoformat() if review_on else None
        created: list[int] = []
        async with self.repo.transaction() as tx:
            present = await self.repo.existing_conversations(tx, ids)
            missing = [i for i in ids if i not in present]
            if missing:
                purged = await self.repo.purged_on(tx, missing)
                if purged:
                    first = min(purged)
                    if len(purged) > 1:
                        raise AlreadyPurged(
                            N_(
                                "conversation {first} was already purged on {day}; nothing is left to hold "
                                "(also purged: {others})"
                            ),
                            first=first,
                            day=purged[first][:10],
                            others=", ".join(map(str, sorted(purged)[1:])),
                        )
                    raise AlreadyPurged(
                        N_("conversation {first} was already purged on {day}; nothing is left to hold"),
                        first=first,
                        day=purged[first][:10],
                    )
                raise ConversationNotFound(
                    N_("no conversation {items}; nothing was held"), items=", ".join(map(str, missing))
                )
            for conversation_id in ids:
                hold_id = await self.repo.insert_hold(
                    tx, conversation_id, legal_basis, case_reference, actor.staff_id, now, review
                )
                created.append(hold_id)
                await self.audit.append(
                    tx,
                    actor,
                    "retention.hold_set",
                    target_kind="conversation",
                    target_id=conversation_id,
                    details={"hold_id": hold_id, "review_on": review},
                )
        held = await self.holds(actor, include_released=True)
        return [h for h in held if h.id in set(created)]

    async def release_hold(self, actor: Actor, hold_id: int) -> Hold:
        """Release a manual hold; the conversation is purged by the next run if it is past its date."""
        await self.audit.guard(
            actor, Permission.MANAGE_HOLDS, "retention.hold_released", target_kind="hold", target_id=hold_id
        )
        async with self.repo.transaction() as tx:
            row = await self.repo.hold_for_update(tx, hold_id)
            if row is None:
                raise NotFound(N_("no hold {hold_id}"), hold_id=hold_id)
            if row["released_at"] is not None:
                raise InvalidTransition(
                    N_("hold {hold_id} was already released on {day}"), hold_id=hold_id, day=row["released_at"][:10]
                )
            if row["request_id"] is not None:
                raise InvalidTransition(
                    N_("hold {hold_id} belongs to access request {request_id} and ends when that request closes"),
                    hold_id=hold_id,
                    request_id=row["request_id"],
                )
            await self.repo.release_hold(tx, hold_id, to_iso(self.clock()), actor.staff_id)
            await self.audit.append(
                tx,
                actor,
                "retention.hold_released",
                target_kind="conversation",
                target_id=row["conversation_id"],
                details={"hold_id": hold_id},
            )
        (hold,) = [h for h in await self.holds(actor, include_released=True) if h.id == hold_id]
        return hold

    # ----------------------------------------------------------------------------------- purge

    async def preview(self, actor: Actor) -> PurgePreview:
        """What a purge would delete now and what is held back, and why (counts, ids; never content)."""
        await self.audit.guard(actor, Permission.RUN_PURGE, "retention.preview")
        return await self._preview(self.clock())

    async def _preview(self, cutoff: datetime) -> PurgePreview:
        c_iso = to_iso(cutoff)
        by_channel = await self.repo.due_by_channel(c_iso)
        files, size = await self.repo.due_files(c_iso)
        held_rows = await self.repo.held_back(c_iso)
        reasons: dict[int, list[str]] = {r["id"]: [] for r in held_rows}
        if reasons:
            for h in await self.repo.open_holds_of_due(c_iso):
                if h["request_id"] is not None:
                    text = f"hold {h['id']}: open access request {h['request_id']}"
                else:
                    text = f"hold {h['id']}: {h['legal_basis']}, case {h['case_reference']}"
                    if h["review_on"]:
                        text += f", review {h['review_on']}"
                reasons.setdefault(h["conversation_id"], []).append(text)
            for q in await self.repo.open_requests_of_due(c_iso):
                reasons.setdefault(q["conversation_id"], []).append(f"linked to open request {q['number']}")
        pending = await self.repo.pending_unlinks()
        remnant_runs = await self.repo.remnant_runs()
        return PurgePreview(
            cutoff=cutoff,
            calls=by_channel.get("call", 0),
            chats=by_channel.get("chat", 0),
            files=files,
            bytes=size,
            held=len(held_rows),
            held_items=tuple(
                HeldItem(r["id"], r["channel"], from_iso(r["created_at"]), tuple(reasons[r["id"]])) for r in held_rows
            ),
            pending_files=len(pending),
            remnant_runs=remnant_runs,
        )

    async def purge(
        self,
        actor: Actor,
        *,
        dry_run: bool = False,
        progress: Callable[[PurgeProgress], None] | None = None,
        batch_size: int | None = None,
    ) -> PurgeResult:
        """Permanently delete every ended conversation past purge_after that is not held (§6).

        Rows go in short batches; each batch's file paths are recorded in pending_unlinks in the
        same transaction, and the files are unlinked after the commit, so a run killed at any point
        leaves no row without its file and the next run deletes the leftover files first.
        """
        await self.audit.guard(actor, Permission.RUN_PURGE, "retention.purge")
        started = time.monotonic()
        cutoff = self.clock()
        await self._check_clock(cutoff)
        if dry_run:
            return await self._dry_run(actor, cutoff, started)
        if self._purging.locked():
            raise Conflict(N_("a purge is already running in this process; wait for it to finish"))
        async with self._purging:
            with _FileLock(self.settings.data_dir / "purge.lock"):
                result = await self._purge(
                    actor, cutoff, started, progress, batch_size or self.settings.purge_batch_size
                )
        await self.audit.anchor("purge", purge_run=result.run_id)  # the chain head outside the database
        return result

    async def daily_run_missed(self, due: datetime, daily_actor: str = DAILY_PURGE_ACTOR) -> bool:
        """Whether the daily purge due at `due` (the last one, already past) still has to happen: the newest
        real run since then was cut off (a node killed mid-run leaves it 'running'; a failure, 'failed'), or
        there was none since although the daily purge ran before (the node was down at that hour)."""
        last = await self.repo.last_real_run()
        if last is None:
            return False
        if from_iso(last["started_at"]) >= due:
            return last["status"] != "finished"
        return await self.repo.last_real_run(started_by=daily_actor) is not None

    async def _check_clock(self, now: datetime) -> None:
        last = await self.repo.latest_audit_time()
        if last is not None and now < from_iso(last) - CLOCK_TOLERANCE:
            raise ClockJumped(
                N_(
                    "the clock reads {now}Z, earlier than the last audit entry ({last}Z); fix the system time before "
                    "purging"
                ),
                now=to_iso(now)[:19],
                last=last[:19],
            )

    async def _dry_run(self, actor: Actor, cutoff: datetime, started: float) -> PurgeResult:
        preview = await self._preview(cutoff)
        async with self.repo.transaction() as tx:
            run_id = await self._insert_run(tx, actor, cutoff, dry_run=True, status="finished", preview=preview)
            await self.audit.append(
                tx,
                actor,
                "retention.purge",
                target_kind="purge_run",
                target_id=run_id,
                details=_counts_details(
                    preview.calls, preview.chats, preview.files, preview.bytes, preview.held, dry_run=True
                ),
            )
        return PurgeResult(
            run_id,
            True,
            cutoff,
            preview.calls,
            preview.chats,
            preview.files,
            preview.bytes,
            preview.held,
            0,
            time.monotonic() - started,
            False,
            remnants_cleared=not preview.remnant_runs,
        )

    async def _insert_run(
        self,
        tx: Transaction,
        actor: Actor,
        cutoff: datetime,
        *,
        dry_run: bool,
        status: str,
        preview: PurgePreview | None = None,
    ) -> int:
        now = to_iso(self.clock())
        p = preview
        return await self.repo.insert_run(
            tx,
            started_at=now,
            finished_at=now if status != "running" else None,
            cutoff=to_iso(cutoff),
            dry_run=dry_run,
            started_by=actor.name,
            calls=p.calls if p else 0,
            chats=p.chats if p else 0,
            files=p.files if p else 0,
            size=p.bytes if p else 0,
            held=p.held if p else 0,
            status=status,
        )

    async def _purge(
        self,
        actor: Actor,
        cutoff: datetime,
        started: float,
        progress: Callable[[PurgeProgress], None] | None,
        batch_size: int,
    ) -> PurgeResult:
        if batch_size < 1:
            raise InvalidInput(N_("the purge batch size must be at least 1"))
        preview = await self._preview(cutoff)
        c_iso = to_iso(cutoff)
        if preview.files or preview.pending_files:
            await asyncio.to_thread(_probe_writable, self.settings.recordings_dir)
        if preview.remnant_runs:  # an earlier run left purged text behind: scrub that first
            await self._record_scrub(actor, preview.remnant_runs, await self._scrub(), retry=True)
        async with self.repo.transaction() as tx:
            await self._recover_stale_runs(tx, actor)
            run_id = await self._insert_run(tx, actor, cutoff, dry_run=False, status="running")
            await self.audit.append(
                tx,
                actor,
                "retention.purge_started",
                target_kind="purge_run",
                target_id=run_id,
                details={"cutoff": c_iso},
            )
        counts = _Counts()
        try:
            counts.resumed = await self._finish_pending()
            total = preview.calls + preview.chats
            if progress:
                progress(PurgeProgress(0, total))
            dependents = await self.repo.dependent_tables()
            paused = False
            # The batch size adapts to the write-lock time each batch took (benchmark 5): a chat
            # commit queued behind a batch waits about purge_batch_ms, not a whole 100-row batch.
            budget = max(1, self.settings.purge_batch_ms) / 1000
            limit = min(batch_size, _FIRST_BATCH)
            await self.backend.begin_bulk_delete()  # no WAL checkpoint inside a batch's commit (bench/FINDINGS.md)
            try:
                while True:
                    purged, paths, held = await self._delete_batch(run_id, c_iso, limit, dependents, counts)
                    if not purged:
                        break
                    limit = _next_limit(limit, held, budget, batch_size)
                    self.backend.bulk_batch_committed()
                    if not paused and os.environ.get(PAUSE_AFTER_COMMIT_ENV):
                        paused = True
                        _pause_for_test(os.environ[PAUSE_AFTER_COMMIT_ENV])
                    await self._unlink(paths)
                    if progress:
                        progress(PurgeProgress(counts.calls + counts.chats, max(total, counts.calls + counts.chats)))
                    await asyncio.sleep(0)  # let live chat writes in between batches
                # data keys older than a whole retention period: whatever conversation they sealed is past its date
                period = self.settings.retention_duration
                aged = add_months(cutoff, -period.months) - period.exact - timedelta(days=1)
                async with self.repo.transaction() as tx:
                    counts.orphan_keys = await self.repo.purge_leftovers(
                        tx,
                        cutoff=c_iso,
                        timezone=self.settings.timezone,
                        keys_made_before=to_iso(aged),
                        now=to_iso(self.clock()),
                    )
            finally:
                await self.backend.end_bulk_delete()
        except BaseException as exc:
            try:
                async with self.repo.transaction() as tx:
                    await self.repo.end_run(tx, run_id, "failed", to_iso(self.clock()))
                    await self.audit.append(
                        tx,
                        actor,
                        "retention.purge",
                        outcome="failed",
                        target_kind="purge_run",
                        target_id=run_id,
                        details={
                            **_counts_details(
                                counts.calls, counts.chats, counts.files, counts.bytes, preview.held, dry_run=False
                            ),
                            "error": type(exc).__name__,
                        },
                    )
            except Exception:  # the store itself is failing: the next run recovers this one as stale
                log.exception("could not record the failed purge run %s", run_id)
            raise
        async with self.repo.transaction() as tx:
            await self.repo.end_run(tx, run_id, "finished", to_iso(self.clock()), held=preview.held)
            await self.audit.append(
                tx,
                actor,
                "retention.purge",
                target_kind="purge_run",
                target_id=run_id,
                details={
                    **_counts_details(
                        counts.calls, counts.chats, counts.files, counts.bytes, preview.held, dry_run=False
                    ),
                    "resumed_files": counts.resumed,
                    "orphan_keys": counts.orphan_keys,
                },
            )
        if counts.calls or counts.chats or counts.resumed:
            await self.backend.optimise_search()  # no index segment keeps a purged message's words
        await self.backend.checkpoint()  # most of the log folded in beside the writer: the scrub is short
        wal_truncated = await self._scrub()
        earlier = await self.repo.remnant_runs()
        if not wal_truncated:
            await self._record_scrub(actor, (*earlier, run_id), False, retry=False)
        elif earlier:  # the retry at the start failed but this scrub folded everything
            await self._record_scrub(actor, earlier, True, retry=True)
        return PurgeResult(
            run_id,
            False,
            cutoff,
            counts.calls,
            counts.chats,
            counts.files,
            counts.bytes,
            preview.held,
            counts.resumed,
            time.monotonic() - started,
            wal_truncated,
            remnants_cleared=wal_truncated,
        )

    async def _recover_stale_runs(self, tx: Transaction, actor: Actor) -> None:
        """Runs still 'running' while we hold the purge lock were killed: mark them failed, in the audit too."""
        for r in await self.repo.running_runs(tx):
            await self.repo.end_run(tx, r["id"], "failed", to_iso(self.clock()))
            await self.audit.append(
                tx,
                actor,
                "retention.purge_recovered",
                target_kind="purge_run",
                target_id=r["id"],
                details={"calls": r["calls"], "chats": r["chats"], "files": r["files"], "bytes": r["bytes"]},
            )

    async def _delete_batch(
        self, run_id: int, c_iso: str, batch_size: int, dependents: list[tuple[str, str]], counts: _Counts
    ) -> tuple[int, list[str], float]:
        """One short transaction: delete a batch of conversations and record their files as pending.

        Returns the number purged, their files, and the seconds the write lock was held (to the commit).
        """
        async with self.repo.transaction() as tx:
            began = time.monotonic()
            rows, recs = await self.repo.delete_due_batch(
                tx,
                run_id=run_id,
                cutoff=c_iso,
                limit=batch_size,
                dependents=dependents,
                timezone=self.settings.timezone,
                now=to_iso(self.clock()),
            )
            if not rows:
                return 0, [], 0.0
        held = time.monotonic() - began
        calls = sum(1 for r in rows if r["channel"] == "call")
        counts.calls += calls
        counts.chats += len(rows) - calls
        counts.files += len(recs)
        counts.bytes += sum(r["size_bytes"] for r in recs)
        return len(rows), [r["path"] for r in recs], held

    async def _unlink(self, paths: list[str]) -> None:
        """Unlink committed-away files, then forget them; a failure leaves them pending for the next run."""
        if not paths:
            return
        done, error = await asyncio.to_thread(_unlink_files, self.settings.recordings_dir, paths)
        if done:
            async with self.repo.transaction() as tx:
                await self.repo.forget_pending(tx, done)
        if error:
            raise StoreUnavailable(
                N_(
                    "the recordings folder {recordings_dir} refused a deletion ({error}); the rows are gone and the "
                    "files are listed for the next purge to finish"
                ),
                recordings_dir=self.settings.recordings_dir,
                error=error,
            )

    async def _finish_pending(self) -> int:
        """Delete the files an interrupted run left behind (its rows are already gone)."""
        paths = await self.repo.pending_unlinks()
        if not paths:
            return 0
        await self._unlink(paths)
        return len(paths)

    async def _scrub(self) -> bool:
        """The backend's scrub after a purge: no page of purged text left in the database files (or False)."""
        return await self.backend.scrub_after_purge(self.settings.purge_scrub_wait_seconds)

    async def _record_scrub(self, actor: Actor, runs: tuple[int, ...], cleared: bool, *, retry: bool) -> None:
        """Mark the runs' remnants pending or cleared, with a `retention.purge_scrub` audit entry (ok/failed)."""
        async with self.repo.transaction() as tx:
            await self.repo.set_remnants(tx, runs, pending=not cleared)
            await self.audit.append(
                tx,
                actor,
                "retention.purge_scrub",
                outcome="ok" if cleared else "failed",
                target_kind="purge_run",
                target_id=runs[-1],
                details={
                    "runs": list(runs),
                    "retry": retry,
                    "remnants_cleared": cleared,
                    "waited_s": self.settings.purge_scrub_wait_seconds,
                },
            )

    async def runs(self, actor: Actor, *, limit: int = 50) -> list[PurgeRun]:
        """The latest purge runs (counts only)."""
        await self.audit.guard(actor, Permission.RUN_PURGE, "retention.runs")
        return [_run(r) for r in await self.repo.runs(limit)]

    # ----------------------------------------------------------------------------------- fsck

    async def fsck(self, actor: Actor) -> FsckReport:
        """Compare the recordings folder with the rows: orphans, missing files, checksums, empty recordings;
        every conversation's data key and every sealed line and file (crypto-shredding, store/keys.py)."""
        await self.audit.guard(actor, Permission.CHECK_INTEGRITY, "retention.fsck")
        self._lines_checked = 0
        rows = await self.repo.recordings()
        pending = await self.repo.pending_unlinks()
        report = await asyncio.to_thread(_scan, self.settings.recordings_dir, rows, pending)
        if self.keys is not None:
            problems = tuple(await self._check_keys(self.keys))
            report = FsckReport(
                report.problems + problems, report.recordings_checked, report.files_seen, self._lines_checked
            )
        kinds: dict[str, int] = {}
        for p in report.problems:
            kinds[p.kind] = kinds.get(p.kind, 0) + 1
        async with self.repo.transaction() as tx:
            await self.audit.append(
                tx,
                actor,
                "retention.fsck",
                details={"ok": report.ok, "problems": kinds, "recordings_checked": report.recordings_checked},
            )
        return report

    async def _check_keys(self, keys: Keys) -> list[FsckProblem]:
        """Every conversation with content has its data key (or a purge's tombstone), and every sealed line opens."""
        problems: list[FsckProblem] = []
        for r in await self.repo.conversations_without_key():
            if r["shredded"]:
                problems.append(
                    FsckProblem(
                        "deleted_content",
                        N_(
                            "conversation {conversation}: deleted (§6), its key was destroyed by the purge; "
                            "this copy can never be read (run `cim purge`)"
                        ),
                        {"conversation": r["id"]},
                    )
                )
            else:
                problems.append(
                    FsckProblem(
                        "missing_key",
                        N_(
                            "conversation {conversation}: its data key is missing from the key ring {keyring}; "
                            "its content cannot be read"
                        ),
                        {"conversation": r["id"], "keyring": str(self.settings.keyring_path)},
                    )
                )
        unsealed = await self.repo.unsealed_line_count()
        if unsealed:
            problems.append(
                FsckProblem(
                    "unsealed_lines",
                    N_("{lines} transcript lines are not sealed yet; run `cim keys encrypt-existing`"),
                    {"lines": unsealed},
                )
            )
        bad = 0
        for cid in await self.repo.conversations_with_sealed_lines():
            key = await keys.read_key(cid)
            if key is None:
                continue  # reported above
            for seq, sealed in await self.repo.sealed_lines(cid):
                self._lines_checked += 1
                try:
                    key.open_text(seq, sealed)
                except SealBroken as exc:
                    bad += 1
                    if bad <= 20:
                        problems.append(FsckProblem.of_error("tampered_line", exc))
        return problems + await self._check_notes(keys)

    async def _check_notes(self, keys: Keys) -> list[FsckProblem]:
        """Supervisors' whispers and consultants' call notes are sealed too (store/keys.py): none left plain,
        every sealed one opens, every call note's key is held (or was destroyed by a purge)."""
        problems: list[FsckProblem] = []
        plain = await self.repo.plain_note_counts()
        if plain["whispers"] or plain["call_notes"]:
            problems.append(
                FsckProblem(
                    "unsealed_notes",
                    N_(
                        "{whispers} supervisors' whispers and {call_notes} call notes are not sealed yet; "
                        "run `cim keys encrypt-existing`"
                    ),
                    {"whispers": plain["whispers"], "call_notes": plain["call_notes"]},
                )
            )
        bad = 0

        def broken(exc: SealBroken) -> None:
            nonlocal bad
            bad += 1
            if bad <= 20:
                problems.append(FsckProblem.of_error("tampered_note", exc))

        for conversation_id in await self.repo.conversations_with_sealed_whispers():
            key = await keys.read_key(conversation_id)
            if key is None:
                continue  # the conversation's key: reported with the conversation
            for n in await self.repo.sealed_whispers(conversation_id):
                try:
                    key.open_staff_note(n["id"], bytes(n["text"]))
                except SealBroken as exc:
                    broken(exc)
        for n in await self.repo.sealed_call_notes():
            if not n["held"]:
                if n["the_calls"]:
                    continue  # the call's own key: reported with the conversation
                if n["shredded"]:
                    problems.append(
                        FsckProblem(
                            "deleted_content",
                            N_(
                                "the note on call {call}: deleted (§6), its key was destroyed by the purge; "
                                "this copy can never be read (run `cim purge`)"
                            ),
                            {"call": n["linkedid"]},
                        )
                    )
                else:
                    problems.append(
                        FsckProblem(
                            "missing_key",
                            N_("the note on call {call}: its data key is missing from the key ring {keyring}"),
                            {"call": n["linkedid"], "keyring": str(self.settings.keyring_path)},
                        )
                    )
                continue
            key = await keys.read_key_id(n["key_id"])
            if key is None:
                continue  # destroyed by a purge since the notes were listed: the next check reports it
            try:
                key.open_call_note(n["linkedid"], bytes(n["note"]))
            except SealBroken as exc:
                broken(exc)
        return problems

    # ----------------------------------------------------------------------------------- backup

    async def backup(self, actor: Actor, destination: Path) -> BackupResult:
        """A consistent online copy: the backend's copy of the database, then the recordings the copied rows name."""
        await self.audit.guard(actor, Permission.CONFIGURE, "retention.backup")
        destination = Path(destination).absolute()
        data_dir = self.settings.data_dir.absolute()
        if destination == data_dir or data_dir in destination.parents:
            raise InvalidInput(N_("a backup cannot go inside the data directory {data_dir}"), data_dir=data_dir)
        if destination.exists() and (not destination.is_dir() or any(destination.iterdir())):
            raise InvalidInput(
                N_("{destination} already exists and is not an empty directory"), destination=destination
            )
        if not destination.parent.is_dir():  # a missing volume must not send personal data to the root disk
            raise InvalidInput(
                N_("the folder {parent} does not exist (is the backup volume mounted?); nothing was written"),
                parent=destination.parent,
            )
        created = self.clock()
        keep = Duration.parse(self.settings.backup_keep)
        keys = self.keys.describe() if self.keys is not None and self.keys.master is not None else {}
        result = await asyncio.to_thread(
            _copy_backup, self.backend, self.settings.recordings_dir, destination, created, keep.after(created), keys
        )
        async with self.repo.transaction() as tx:
            await self.audit.append(
                tx,
                actor,
                "retention.backup",
                details={
                    "files": result.files,
                    "bytes": result.bytes,
                    "db_bytes": result.db_bytes,
                    "missing_files": result.missing_files,
                    "destroy_by": to_iso(result.destroy_by),
                    "master_key_id": keys.get("master_key_id"),
                    "master_key_generation": keys.get("master_key_generation"),
                },
            )
        # the head the copy holds: a database restored from it is recognised by this anchor
        await self.audit.anchor("backup", database=destination / self.settings.db_path.name, backup=str(destination))
        return result


# --------------------------------------------------------------------------------- daily run


def next_daily_run(now: datetime, at: str, tz: str) -> datetime | None:
    """The next moment (aware, UTC) the daily purge is due at local time `at` (HH:MM); None when 'off'."""
    if at.strip().lower() == "off":
        return None
    match = re.fullmatch(r"([01]?\d|2[0-3]):([0-5]\d)", at.strip())
    if not match:
        raise ConfigError(N_("CIM_PURGE_DAILY_AT must be HH:MM or 'off', not {at!r}"), at=at)
    zone = ZoneInfo(tz)
    local = now.astimezone(zone)
    candidate = local.replace(hour=int(match[1]), minute=int(match[2]), second=0, microsecond=0)
    if candidate <= local:
        candidate = (candidate.replace(tzinfo=None) + timedelta(days=1)).replace(tzinfo=zone)
    return candidate.astimezone(ZoneInfo("UTC"))


async def _missed_daily_run(store: Any, settings: Settings) -> datetime | None:
    """The last due moment of the daily purge, when that run has still to happen (`daily_run_missed`)."""
    now = store.clock()
    previous = next_daily_run(now - timedelta(days=1), settings.purge_daily_at, settings.timezone)
    if previous is None or previous > now:
        return None
    try:
        return previous if await store.retention.daily_run_missed(previous) else None
    except Exception:  # the store did not answer: the regular schedule goes on, the next start checks again
        log.exception("daily purge: could not check for a missed run")
        return None


async def _run_daily_purge(store: Any, actor: Actor) -> bool:
    """One daily purge; False when another purge held the lock (it is tried again soon), else True."""
    try:
        result = await store.retention.purge(actor)
        if result.remnants_cleared:
            log.info("daily purge: %s", json.dumps(result.as_json()))
        else:  # audited as retention.purge_scrub failed; the next run retries the scrub first
            log.warning(
                "daily purge incomplete, purged text remains in the database files: %s",
                json.dumps(result.as_json()),
            )
    except Conflict as exc:
        log.warning("daily purge skipped: %s", exc.message_in("en"))
        return False
    except CimError as exc:
        log.error("daily purge refused: %s", exc.message_in("en"))
    except Exception:  # the loop must survive one bad night; the failure is logged and audited
        log.exception("daily purge failed")
    return True


async def daily_purge_loop(store: Any, settings: Settings) -> None:
    """Run the purge every day at settings.purge_daily_at (local office time) until cancelled.

    At its start (a node starting, or taking the purge's lease over from a node that died) it first makes up
    the last due run if that one did not finish: cut off by a killed node, failed, or missed while no node
    ran (`Retention.daily_run_missed`). A run refused because another purge holds the lock (a node that
    stopped answering but still holds it, an operator's `cim purge`) is tried again every
    CATCH_UP_RETRY_SECONDS until that run is no longer missing.
    """
    actor = Actor.system(DAILY_PURGE_NAME)
    check_missed = True
    while True:
        due = next_daily_run(store.clock(), settings.purge_daily_at, settings.timezone)
        if due is None:
            log.info("daily purge is off (CIM_PURGE_DAILY_AT=off)")
            return
        if check_missed:
            check_missed = False
            missed = await _missed_daily_run(store, settings)
            if missed is not None:
                log.warning("daily purge: the run due at %s did not finish; running it now", to_iso(missed))
                due = store.clock()
        await asyncio.sleep(max(0.0, (due - store.clock()).total_seconds()))
        if not await _run_daily_purge(store, actor):
            check_missed = True
            await asyncio.sleep(CATCH_UP_RETRY_SECONDS)
            continue
        await asyncio.sleep(1)  # never run twice within the same minute


def daily_purge_job(store: Any, settings: Settings) -> Callable[[], Awaitable[None]]:
    """The daily purge loop as a job for the node holding its lease (several nodes, store/leases.py).

    A malformed CIM_PURGE_DAILY_AT fails here, when the server is built, not at the first night.
    """
    next_daily_run(store.clock(), settings.purge_daily_at, settings.timezone)
    return lambda: daily_purge_loop(store, settings)


def daily_purge_context(store: Any, settings: Settings) -> Callable[[object], AsyncIterator[None]]:
    """A cleanup context for `cim serve` (aiohttp's app.cleanup_ctx): the daily purge runs while the server does.

    A malformed CIM_PURGE_DAILY_AT fails here, when the server is built, not at the first night.
    """
    next_daily_run(store.clock(), settings.purge_daily_at, settings.timezone)

    async def context(_app: object) -> AsyncIterator[None]:
        task = asyncio.create_task(daily_purge_loop(store, settings), name="cim-daily-purge")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    return context


# --------------------------------------------------------------------------------- helpers


def _next_limit(limit: int, held: float, budget: float, most: int) -> int:
    """The next batch size: halve it after a batch over the budget, grow it by a quarter under half of it."""
    if held > budget:
        return max(1, limit // 2)
    if held < budget / 2:
        return min(most, limit + max(1, limit // 4))
    return limit


class _FileLock:
    """An exclusive, non-blocking flock on a file in the data directory: one purge across processes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd: int | None = None

    def __enter__(self) -> "_FileLock":
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise Conflict(
                N_("another purge is running (another process holds the purge lock); wait for it to finish")
            ) from None
        self.fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None


def _pause_for_test(marker: str) -> None:
    Path(marker).write_text(str(os.getpid()), encoding="utf-8")
    while True:  # waits for the test's SIGKILL; blocking on purpose, nothing else may run now
        time.sleep(1)


def _inside(root: Path, relative: str) -> Path | None:
    """The absolute path of a recording, or None when the stored path would escape the folder."""
    if not relative or os.path.isabs(relative):
        return None
    candidate = root / relative
    try:
        candidate.resolve().relative_to(root.resolve())
    except ValueError:
        return None
    return candidate


def _probe_writable(root: Path) -> None:
    """Refuse before deleting any row when the recordings folder cannot delete files."""
    probe = root / f".cim-purge-probe-{os.getpid()}"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise StoreUnavailable(
            N_("the recordings folder {root} is not writable ({strerror}); nothing was purged"),
            root=root,
            strerror=exc.strerror,
        ) from exc


def _unlink_files(root: Path, paths: list[str]) -> tuple[list[str], str | None]:
    done: list[str] = []
    for relative in paths:
        target = _inside(root, relative)
        if target is None:
            log.warning("refused to delete a recording path outside the recordings folder: %r", relative)
            done.append(relative)
            continue
        try:
            target.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            reason = exc.strerror or (errno.errorcode.get(exc.errno, str(exc)) if exc.errno is not None else str(exc))
            return done, f"{relative}: {reason}"
        done.append(relative)
    return done, None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _walk_recordings(root: Path, problems: list[FsckProblem]) -> tuple[set[str], list[Path]]:
    on_disk: set[str] = set()
    unreadable: list[Path] = []

    def on_error(exc: OSError) -> None:
        unreadable.append(Path(exc.filename))
        problems.append(
            FsckProblem("unreadable_folder", N_("{path}: {error}"), {"path": exc.filename, "error": exc.strerror})
        )

    for folder, _dirs, files in os.walk(root, onerror=on_error):
        for name in files:
            on_disk.add((Path(folder) / name).relative_to(root).as_posix())
    return on_disk, unreadable


def _check_recording_file(target: Path, row: dict, label: dict[str, Any], problems: list[FsckProblem]) -> None:
    """`label`: the recording's id and path, the `{recording} ({path})` of every sentence here."""
    try:
        if file_key_id(target) is None:
            if target.stat().st_size:
                problems.append(
                    FsckProblem(
                        "unsealed_file",
                        N_("recording {recording} ({path}) is not sealed yet; run `cim keys encrypt-existing`"),
                        label,
                    )
                )
        else:
            sha256_plain(target)  # every segment opens, or SealBroken names where it does not
        size = plain_size(target)
        if size == 0 and not row["is_empty"]:
            problems.append(
                FsckProblem("empty_recording", N_("recording {recording} ({path}): the file has zero bytes"), label)
            )
        if size != row["size_bytes"]:
            problems.append(
                FsckProblem(
                    "checksum_mismatch",
                    N_("recording {recording} ({path}): {size} bytes on disk, {recorded} recorded"),
                    {**label, "size": size, "recorded": row["size_bytes"]},
                )
            )
            return
        if sha256_plain(target) != row["sha256"]:
            problems.append(
                FsckProblem(
                    "checksum_mismatch",
                    N_("recording {recording} ({path}): SHA-256 differs from the recorded one"),
                    label,
                )
            )
    except ContentDeleted:
        problems.append(
            FsckProblem(
                "deleted_content",
                N_(
                    "recording {recording} ({path}): deleted (§6), its key was destroyed by the purge; "
                    "this copy can never be read (run `cim purge`)"
                ),
                label,
            )
        )
    except SealBroken as exc:
        problems.append(
            FsckProblem("tampered_file", N_("recording {recording} ({path}): {error}"), {**label, "error": exc})
        )
    except OSError as exc:
        problems.append(
            FsckProblem(
                "unreadable_file",
                N_("recording {recording} ({path}): {error}"),
                {**label, "error": exc.strerror},
            )
        )


def _check_recording_row(
    root: Path, row: dict, on_disk: set[str], unreadable: list[Path], problems: list[FsckProblem]
) -> None:
    rel = row["path"]
    label = {"recording": row["id"], "path": rel}
    target = _inside(root, rel)
    if target is None:
        problems.append(
            FsckProblem(
                "invalid_path", N_("recording {recording} ({path}) points outside the recordings folder"), label
            )
        )
        return
    if rel not in on_disk:
        if any(u in target.parents for u in unreadable):
            return  # already reported as an unreadable folder
        problems.append(FsckProblem("missing_file", N_("recording {recording} ({path}): the file is missing"), label))
        return
    if row["is_empty"]:
        problems.append(
            FsckProblem("empty_recording", N_("recording {recording} ({path}) is an empty recording"), label)
        )
    _check_recording_file(target, row, label, problems)


def _scan(root: Path, rows: list[dict], pending: list[str]) -> FsckReport:
    problems: list[FsckProblem] = []
    if not root.exists():
        problems.append(
            FsckProblem("missing_folder", N_("the recordings folder {root} does not exist"), {"root": str(root)})
        )
        return FsckReport(tuple(problems), 0, 0)
    if not root.is_dir() or not os.access(root, os.R_OK | os.X_OK):
        problems.append(
            FsckProblem("unreadable_folder", N_("the recordings folder {root} cannot be read"), {"root": str(root)})
        )
        return FsckReport(tuple(problems), 0, 0)
    on_disk, unreadable = _walk_recordings(root, problems)
    known = set()
    for row in rows:
        known.add(row["path"])
        _check_recording_row(root, row, on_disk, unreadable, problems)
    for rel in pending:
        problems.append(
            FsckProblem(
                "pending_unlink",
                N_("{path}: left by an interrupted purge; the next `cim purge` deletes it"),
                {"path": rel},
            )
        )
    for rel in sorted(on_disk - known - set(pending)):
        if Path(rel).name.startswith(".cim-purge-probe-"):
            continue
        problems.append(
            FsckProblem(
                "orphan_file", N_("{path}: a file in the recordings folder without a recording row"), {"path": rel}
            )
        )
    return FsckReport(tuple(problems), len(rows), len(on_disk))


def _copy_backup(
    backend: BackendHooks,
    recordings: Path,
    destination: Path,
    created: datetime,
    destroy_by: datetime,
    keys: dict[str, Any] | None = None,
) -> BackupResult:
    old_umask = os.umask(0o077)
    try:
        destination.mkdir(mode=0o700, exist_ok=True)  # only the last level: backup() checked the parent
        copy = backend.copy_database(destination)  # a consistent snapshot while writers carry on
        target_db, oldest, sealed, unsealed = (
            copy.path,
            copy.earliest_purge_after,
            copy.sealed_conversations,
            copy.unsealed_lines,
        )
        unsealed_notes = copy.unsealed_notes
        files = size = missing = 0
        for relative in copy.recording_paths:
            src = _inside(recordings, relative)
            dst = _inside(destination / "recordings", relative)
            if src is None or dst is None or not src.is_file():
                missing += 1
                continue
            dst.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            shutil.copy2(src, dst)
            os.chmod(dst, 0o600)  # copy2 copies the source's mode, which an older version may have left looser
            files += 1
            size += dst.stat().st_size
        (destination / "recordings").mkdir(mode=0o700, exist_ok=True)
        manifest: dict[str, Any] = {
            "created_at": to_iso(created),
            "destroy_by": to_iso(destroy_by),
            "earliest_purge_after": oldest,
            "database": target_db.name,
            "recordings": files,
            "recording_bytes": size,
            "missing_files": missing,
            "restore": "copy into an empty data directory, then run `cim purge` before `cim serve`",
        }
        if keys:
            # crypto-shredding: the copy holds ciphertext and key ids only; reading it needs the key ring and
            # this master key generation, and a conversation purged after today stays unreadable in it
            manifest["keys"] = {
                **keys,
                "sealed_conversations": sealed,
                "unsealed_lines": unsealed,
                "unsealed_notes": unsealed_notes,
                "needs": f"master key {keys['master_key_id']} (generation {keys['master_key_generation']}) "
                f"and the key ring {keys['keyring']}; neither is in this backup",
            }
        (destination / "backup.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
        return BackupResult(
            destination,
            created,
            target_db.stat().st_size,
            files,
            size,
            missing,
            destroy_by,
            dict(manifest.get("keys", {})),
        )
    finally:
        os.umask(old_umask)


def _conversation_id(value: object) -> int:
    try:
        number = int(str(value).strip())
    except ValueError:
        raise InvalidInput(N_("{value!r} is not a conversation number"), value=value) from None
    if number < 1:
        raise InvalidInput(N_("{value!r} is not a conversation number"), value=value)
    return number


def _required_text(value: str, what: str) -> str:
    text = " ".join((value or "").split())
    if not text:
        raise InvalidInput(N_("{what} is required for a hold"), what=Text(what))
    if len(text) > _MAX_TEXT:
        raise InvalidInput(N_("{what} is longer than {max} characters"), what=Text(what), max=_MAX_TEXT)
    return text


def _counts_details(calls: int, chats: int, files: int, size: int, held: int, *, dry_run: bool) -> dict[str, Any]:
    return {"dry_run": dry_run, "calls": calls, "chats": chats, "files": files, "bytes": size, "held": held}


def _hold(r: Any, today: date) -> Hold:
    review = date.fromisoformat(r["review_on"]) if r["review_on"] else None
    released = from_iso(r["released_at"]) if r["released_at"] else None
    return Hold(
        id=r["id"],
        conversation_id=r["conversation_id"],
        legal_basis=r["legal_basis"],
        case_reference=r["case_reference"],
        request_id=r["request_id"],
        set_by=r["set_by_name"],
        set_at=from_iso(r["set_at"]),
        review_on=review,
        released_by=r["released_by_name"],
        released_at=released,
        overdue=released is None and review is not None and review < today,
    )


def _run(r: Any) -> PurgeRun:
    return PurgeRun(
        id=r["id"],
        started_at=from_iso(r["started_at"]),
        finished_at=from_iso(r["finished_at"]) if r["finished_at"] else None,
        cutoff=from_iso(r["cutoff"]),
        dry_run=bool(r["dry_run"]),
        started_by=r["started_by"],
        calls=r["calls"],
        chats=r["chats"],
        files=r["files"],
        bytes=r["bytes"],
        held=r["held"],
        status=r["status"],
        remnants_pending=bool(r["remnants_pending"]),
    )
