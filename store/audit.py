"""The append-only, SHA-256 hash-chained audit log, MACed and anchored outside the database, and the guard
that audits every permission check."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, AsyncIterator, Callable, Iterable

from . import anchors as A
from .clock import Clock, from_iso, to_iso
from .errors import InvalidInput, InvalidTransition, NotPermitted, StoreUnavailable
from .i18n import N_
from .models import Actor, AuditEntry, AuditProblem, ChainCheck
from .policy import Permission, allowed

if TYPE_CHECKING:  # the service names the repository's types only; its SQL is the backend's (store/sqlite/)
    import sqlite3

    import aiosqlite

    from .sqlite.audit import AuditRepository
    from .sqlite.database import Transaction

log = logging.getLogger("cim.audit")

GENESIS = "0" * 64
ROTATED = "audit.key_rotated"
RESTORE_ACKNOWLEDGED = "audit.restore_acknowledged"
_FIELDS = (
    "id",
    "at",
    "actor_id",
    "actor_name",
    "action",
    "outcome",
    "target_kind",
    "target_id",
    "purpose",
    "request_id",
    "details",
)


def entry_hash(prev_hash: str, row: dict[str, Any]) -> str:
    """SHA-256 over the previous hash and a canonical JSON encoding of the entry (id included, so reordering shows)."""
    canonical = json.dumps([row[f] for f in _FIELDS], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(f"{prev_hash}\n{canonical}".encode("utf-8")).hexdigest()


def entry_mac_message(generation: int, digest: str) -> str:
    """What the MAC of an entry covers: its hash (which covers its content, its id and the chain before it)."""
    return f"cim-audit-entry\n{generation}\n{digest}"


def chain_entry(
    last: tuple[int, str] | None, row: dict[str, Any], ring: A.KeyRing | None, generation: int | None = None
) -> dict[str, Any]:
    """Link `row` to the chain's last entry (id, hash), or start the chain, and MAC it: the columns to insert.

    Called by the repository on the writer's thread between reading the head and inserting (one call,
    inside the caller's transaction), so the entry follows the head it was hashed on.
    """
    prev_hash = last[1] if last else GENESIS
    row = {"id": (last[0] + 1) if last else 1, **row}
    digest = entry_hash(prev_hash, row)
    mac = None
    if ring is not None:
        if generation is None:
            ring.refresh()  # a key rotated by another process signs from now on (one stat per entry)
            generation = ring.current
        mac = ring.mac(generation, entry_mac_message(generation, digest))
    return {
        **{f: row[f] for f in _FIELDS},
        "prev_hash": prev_hash,
        "hash": digest,
        "mac": mac,
        "key_gen": generation if mac else None,
    }


def _append_entry(
    conn: "sqlite3.Connection", row: dict[str, Any], ring: A.KeyRing | None, generation: int | None = None
) -> int:
    """Link `row` to the chain's last entry, MAC it and insert it (blocking: runs on the writer's thread,
    inside the caller's transaction): for services that still write on a connection of their own."""
    from .sqlite.audit import append_linked

    return append_linked(conn, partial(chain_entry, row=row, ring=ring, generation=generation))


class AuditLog:
    def __init__(self, repo: "AuditRepository", clock: Clock, settings: Any = None) -> None:
        self.repo = repo
        self.clock = clock
        self.settings = settings
        #: The MAC keys (None until `open_keys`; a bare AuditLog without settings writes unMACed entries).
        self.ring: A.KeyRing | None = None
        self.last_anchor: A.Anchor | None = None

    async def open_keys(self) -> None:
        """Load (or, for a log without MACed entries, create) the key file named by the settings."""
        path = self.settings.audit_key_path
        now = to_iso(self.clock())
        ring = await asyncio.to_thread(A.load_keys, path)
        if ring is None:
            ring = await self._create_keys(path, now)
        self.ring = ring

    async def _create_keys(self, path: Path, now: str) -> A.KeyRing:
        """Make the key file when the log has no MACed entry yet (a new or a legacy database); refuse otherwise."""
        maced, head = await self.repo.mac_state()
        if maced:
            raise StoreUnavailable(
                N_(
                    "the audit key file {path} is missing, but the audit log has {maced} MACed entries: put the key "
                    "back from its escrow copy (docs/DEPLOY.md); without it no entry can be written or verified"
                ),
                path=path,
                maced=maced,
            )
        try:
            return await asyncio.to_thread(A.create_keys, path, legacy_until=head, now=now)
        except StoreUnavailable:
            ring = await asyncio.to_thread(A.load_keys, path)  # another process created it a moment ago
            if ring is None:
                raise
            return ring

    async def append(self, tx: "Transaction | aiosqlite.Connection", actor: Actor, action: str, **fields: Any) -> int:
        """Append one entry inside the caller's write transaction (a repository's unit of work, or the
        connection `Database.write()` yields); returns its id. The entry commits or rolls back with it.

        `fields` are those of `entry()`. Never put resident content in details.
        """
        # Read the chain's head, hash and insert in ONE call on the writer's thread (inside the caller's
        # transaction): four awaited round trips made the audit entry the larger part of an archive
        # search (bench/).
        return await self.repo.append(tx, partial(chain_entry, row=self.entry(actor, action, **fields), ring=self.ring))

    def entry(
        self,
        actor: Actor,
        action: str,
        *,
        outcome: str = "ok",
        target_kind: str | None = None,
        target_id: object = None,
        purpose: str | None = None,
        request_id: int | None = None,
        details: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """One entry's fields, not yet chained (`chain_entry` links it on the writer's thread, where it is inserted)."""
        return {
            "at": to_iso(self.clock()),
            "actor_id": actor.staff_id,
            "actor_name": actor.name,
            "action": action,
            "outcome": outcome,
            "target_kind": target_kind,
            "target_id": None if target_id is None else str(target_id),
            "purpose": purpose,
            "request_id": request_id,
            "details": json.dumps(details or {}, ensure_ascii=False, sort_keys=True, separators=(",", ":")),
        }

    async def record(self, actor: Actor, action: str, **fields: Any) -> int:
        """Append one entry in a write transaction of its own (BEGIN … COMMIT in one call on the writer's thread)."""
        return await self.repo.append_alone(
            partial(chain_entry, row=self.entry(actor, action, **fields), ring=self.ring)
        )

    async def guard(
        self,
        actor: Actor,
        permission: Permission,
        action: str,
        *,
        target_kind: str | None = None,
        target_id: object = None,
        request_id: int | None = None,
    ) -> None:
        """Raise NotPermitted, after auditing the refused attempt in its own transaction, unless allowed."""
        if allowed(actor, permission):
            return
        await self.record(
            actor,
            action,
            outcome="refused",
            target_kind=target_kind,
            target_id=target_id,
            request_id=request_id,
            details={"permission": permission.value},
        )
        raise NotPermitted(
            N_("{name} is not permitted to {action}"),
            name=actor.name,
            action=action.replace("_", " ").replace(".", ": "),
        )

    async def verify(self, extra_anchors: Iterable[A.Anchor] = (), anchor_files: Iterable[Path] = ()) -> ChainCheck:
        """Recompute the chain and the MACs, and hold the log against every anchor that can be read.

        Reported, each with the first entry concerned: an entry edited, deleted or reordered (chain), an
        entry rewritten with recomputed hashes (MAC), a tail cut off or a restored older copy (an anchor
        names an entry the log lacks or has otherwise). Entries from before the key existed are counted as
        legacy, not broken. Read-only: `acknowledge_restore` is the one that writes.
        """
        files = [self.settings.audit_anchors_path] if self.settings is not None else []
        anchors, unreadable = await asyncio.to_thread(A.all_anchors, [*files, *anchor_files])
        anchors += list(extra_anchors)
        rows = await self.repo.chain()
        return await asyncio.to_thread(_verify, rows, self.ring, anchors, unreadable)

    async def head(self) -> tuple[int, str, str | None]:
        """The chain's last committed entry: (id, hash, at); (0, GENESIS, None) for an empty log."""
        return await self.repo.head() or (0, GENESIS, None)

    async def anchor(self, reason: str, *, database: Path | None = None, **extra: Any) -> A.Anchor:
        """Write the chain head (of `database`, a backup's copy, when given) to the anchors file and syslog.

        A failure to write is logged, not raised: the purge, backup or report that asked has happened.
        """
        if database is not None:
            of_file = await asyncio.to_thread(self.repo.head_of_file, database)
            ident, digest, entry_at = of_file or (0, GENESIS, None)
        else:
            ident, digest, entry_at = await self.head()
        anchor = A.Anchor(id=ident, hash=digest, entry_at=entry_at, at=to_iso(self.clock()), reason=reason, extra=extra)
        if self.ring is not None:
            generation = self.ring.current
            anchor = replace(anchor, generation=generation)
            anchor = replace(anchor, mac=self.ring.mac(generation, anchor.message()))
        if self.settings is not None:
            failures = await asyncio.to_thread(
                A.write_anchor, anchor, self.settings.audit_anchors_path, A.syslog_address(self.settings.audit_syslog)
            )
            for failure in failures:
                log.error("audit.anchor_failed %s", failure)
        self.last_anchor = anchor
        return anchor

    async def rotate_key(self, actor: Actor) -> tuple[int, int]:
        """A new key signs from now on; the record of the rotation is the last entry signed with the old one."""
        await self.guard(actor, Permission.CONFIGURE, ROTATED)
        if self.ring is None:
            raise StoreUnavailable(N_("the audit key file is not open"))
        async with self.repo.transaction() as tx:  # under the write lock: no entry is signed between the two steps
            old = self.ring.current
            fresh = await asyncio.to_thread(A.add_generation, self.ring, to_iso(self.clock()))
            await self.repo.append(
                tx,
                partial(
                    chain_entry,
                    row=self.entry(
                        actor,
                        ROTATED,
                        target_kind="audit_key",
                        target_id=fresh.current,
                        details={
                            "from_generation": old,
                            "to_generation": fresh.current,
                            "fingerprint": fresh.fingerprint(fresh.current),
                        },
                    ),
                    ring=self.ring,
                    generation=old,
                ),
            )
            self.ring = fresh
        await self.anchor("key_rotated")
        return old, fresh.current

    async def acknowledge_restore(
        self, actor: Actor, reason: str, extra_anchors: Iterable[A.Anchor] = (), anchor_files: Iterable[Path] = ()
    ) -> list[dict]:
        """Record that the log was knowingly restored from a backup (which entries were lost, why); audited."""
        await self.guard(actor, Permission.CHECK_INTEGRITY, RESTORE_ACKNOWLEDGED)
        reason = (reason or "").strip()
        if not reason:
            raise InvalidInput(N_("say why the backup was restored (--reason)"))
        if len(reason) > 2000:
            raise InvalidInput(N_("the reason is longer than 2000 characters"))
        extra_anchors, anchor_files = list(extra_anchors), list(anchor_files)
        check = await self.verify(extra_anchors, anchor_files)
        others = [p for p in check.problems if p.kind != "restored_backup"]
        if others:
            raise InvalidTransition(
                N_("the audit log has a problem that is not a restore, so none can be acknowledged: {text}"),
                text=others[0].message,
            )
        pending = [r for r in check.restores if not r["acknowledged"]]
        if not pending:
            raise InvalidTransition(N_("there is no restored backup to acknowledge: the log agrees with every anchor"))
        async with self.repo.transaction() as tx:
            for restore in pending:
                await self.append(
                    tx,
                    actor,
                    RESTORE_ACKNOWLEDGED,
                    target_kind="audit_entry",
                    target_id=restore["fork_at"],
                    purpose=reason,
                    details={k: restore[k] for k in ("fork_at", "backup", "lost_through", "anchor")},
                )
        await self.anchor("restore_acknowledged")
        return pending

    async def entries(
        self,
        actor: Actor,
        *,
        staff_id: int | None = None,
        action: str | None = None,
        since: str | None = None,
        until: str | None = None,
        target_kind: str | None = None,
        target_id: object = None,
        request_id: int | None = None,
        action_prefix: str | None = None,
        purpose_words: str | None = None,
        limit: int = 200,
        offset: int = 0,
    ) -> list[AuditEntry]:
        """Read the log (dpo, boi_director); the read itself is audited.

        `action_prefix` keeps actions starting with it ("archive." or "requests.session");
        `purpose_words` keeps entries whose purpose contains every word (case-insensitive).
        """
        await self.guard(actor, Permission.READ_AUDIT, "audit.read")
        rows = await self.repo.entries(
            equal={
                "actor_id": staff_id,
                "action": action,
                "target_kind": target_kind,
                "request_id": request_id,
                "target_id": None if target_id is None else str(target_id),
            },
            action_prefix=action_prefix,
            purpose_words=[word.casefold() for word in (purpose_words or "").split()],
            since=since,
            until=until,
            limit=limit,
            offset=offset,
        )
        async with self.repo.transaction() as tx:
            await self.append(
                tx,
                actor,
                "audit.read",
                details={
                    "filters": {
                        "staff_id": staff_id,
                        "action": action,
                        "since": since,
                        "until": until,
                        "target_kind": target_kind,
                        "request_id": request_id,
                        "action_prefix": action_prefix,
                        "purpose_words": purpose_words,
                    }
                },
            )
        return [_entry(r) for r in rows]


def _entry(r: Any) -> AuditEntry:
    return AuditEntry(
        id=r["id"],
        at=from_iso(r["at"]),
        actor_id=r["actor_id"],
        actor_name=r["actor_name"],
        action=r["action"],
        outcome=r["outcome"],
        target_kind=r["target_kind"],
        target_id=r["target_id"],
        purpose=r["purpose"],
        request_id=r["request_id"],
        details=json.loads(r["details"]),
    )


# -- verification ---------------------------------------------------------------------------------------


def _verify(rows: list[Any], ring: A.KeyRing | None, anchors: list[A.Anchor], unreadable: list[str]) -> ChainCheck:
    """The whole check on a worker thread (HMACs for every entry; anchors compared at the ids they name)."""
    problems = [AuditProblem("anchors_unreadable", None, u) for u in unreadable]
    broken, legacy, head, hashes, acks = _walk_chain(rows, ring, {a.id for a in anchors})
    if broken:
        problems.append(broken)
    checked, agree, disagree = _compare_anchors(anchors, ring, broken, hashes, problems)
    restores, truncated_after = _explain_disagreements(disagree, agree, acks, head, problems)
    truncated_after = _unacknowledged_restores(restores, truncated_after, problems)
    firsts = [p.entry for p in problems if p.entry is not None]
    return ChainCheck(
        ok=not problems,
        entries=len(rows),
        first_broken=min(firsts) if firsts else None,
        anchors_checked=checked,
        truncated_after=truncated_after,
        legacy_entries=legacy,
        problems=tuple(problems),
        restores=tuple(restores.values()),
    )


def _walk_chain(
    rows: list[Any], ring: A.KeyRing | None, wanted: set[int]
) -> tuple[AuditProblem | None, int, int, dict[int, str], list[tuple[str, dict]]]:
    """Follow the chain from the first entry to the first break: (the break or None, entries without a MAC
    from before the key, the last good id, the hashes at the ids in `wanted`, the restore acknowledgements)."""
    hashes: dict[int, str] = {0: GENESIS}  # an anchor of the empty log (a backup before any entry)
    acks: list[tuple[str, dict]] = []
    broken: AuditProblem | None = None
    legacy, in_force, head = 0, 1, 0
    prev_hash, expected_id = GENESIS, 1
    for r in rows:
        ident = r["id"]
        broken = _entry_problem(r, ring, prev_hash, expected_id, in_force)
        if broken:
            break
        if r["mac"] is None:
            legacy += 1
        if r["outcome"] == "ok" and r["action"] in (ROTATED, RESTORE_ACKNOWLEDGED):
            details = json.loads(r["details"])
            if r["action"] == ROTATED:
                in_force = int(details["to_generation"])
            else:
                acks.append((r["at"], details))
        if ident in wanted:
            hashes[ident] = r["hash"]
        prev_hash, expected_id, head = r["hash"], ident + 1, ident
    return broken, legacy, head, hashes, acks


def _entry_problem(
    r: Any, ring: A.KeyRing | None, prev_hash: str, expected_id: int, in_force: int
) -> AuditProblem | None:
    """What is wrong with one entry (its place in the chain, its MAC, its key generation), or None."""
    ident = r["id"]
    digest = entry_hash(prev_hash, {f: r[f] for f in _FIELDS})
    if ident != expected_id or r["prev_hash"] != prev_hash or digest != r["hash"]:
        return AuditProblem(
            "chain",
            ident,
            f"entry {ident} does not follow from the one before it: an entry was edited, deleted or reordered",
        )
    if r["mac"] is None:
        if ring is None or ident <= ring.legacy_until:
            return None
        return AuditProblem(
            "unmaced",
            ident,
            f"entry {ident} has no MAC, though the key existed when it "
            "was written: it was inserted or rewritten without the key",
        )
    if ring is None or r["key_gen"] not in ring.keys:
        return AuditProblem(
            "unknown_key",
            ident,
            f"entry {ident} is MACed with key generation {r['key_gen']}, which the key file does not hold",
        )
    if not ring.check(r["key_gen"], entry_mac_message(r["key_gen"], r["hash"]), r["mac"]):
        return AuditProblem(
            "mac",
            ident,
            f"entry {ident} does not carry a valid MAC: it was rewritten "
            "(its hashes recomputed) by someone without the key",
        )
    if r["key_gen"] < in_force:
        return AuditProblem(
            "retired_key",
            ident,
            f"entry {ident} is MACed with key generation {r['key_gen']}, "
            f"retired by the rotation to generation {in_force}",
        )
    return None


def _compare_anchors(
    anchors: list[A.Anchor],
    ring: A.KeyRing | None,
    broken: AuditProblem | None,
    hashes: dict[int, str],
    problems: list[AuditProblem],
) -> tuple[int, list[tuple[int, A.Anchor]], list[tuple[int, A.Anchor]]]:
    """(anchors checked, those that agree with the chain, those that do not), each with its place in the list;
    a forged anchor is reported and left out, and so is one past the chain's break."""
    checked: int = 0
    agree: list[tuple[int, A.Anchor]] = []
    disagree: list[tuple[int, A.Anchor]] = []
    for seq, a in enumerate(anchors):
        if a.id < 0 or (broken and broken.entry is not None and a.id >= broken.entry):
            continue  # past a break, where the chain itself is already reported
        if a.mac is not None and (ring is None or not ring.check(a.generation, a.message(), a.mac)):
            problems.append(
                AuditProblem(
                    "forged_anchor",
                    None,
                    f"the anchor at {a.source} does not carry a valid MAC: CIM did not write it",
                    a.as_json(),
                )
            )
            continue
        checked += 1
        digest = hashes.get(a.id)
        ok = digest is not None and (digest == a.hash if a.source != "paper" else digest.startswith(a.hash))
        (agree if ok else disagree).append((seq, a))
    return checked, agree, disagree


def _precedes(x: tuple[int, A.Anchor], d: tuple[int, A.Anchor]) -> bool:
    (xs, xa), (ds, da) = x, d
    if xa.at is None or da.at is None:
        return True
    return (xa.at, xs) <= (da.at, ds)


def _explain_disagreements(
    disagree: list[tuple[int, A.Anchor]],
    agree: list[tuple[int, A.Anchor]],
    acks: list[tuple[str, dict]],
    head: int,
    problems: list[AuditProblem],
) -> tuple[dict[int, dict], int | None]:
    """Each anchor the chain disagrees with, as a restore from a backup (collected by the entry it forks at)
    or, unless acknowledged, a truncation or a rewrite (reported); returns (restores, truncated_after)."""
    restores: dict[int, dict] = {}
    truncated_after = None
    for d in sorted(disagree, key=lambda item: item[1].id):
        da = d[1]
        fork = max((xa.id for xs, xa in agree if xa.id < da.id and _precedes((xs, xa), d)), default=0)
        backup = next((x for _, x in agree if x.id == fork and x.reason == "backup"), None)
        acked = any(ack.get("fork_at") == fork and (da.at is None or da.at <= at) for at, ack in acks)
        if backup is not None:
            _note_restore(restores, fork, backup, da, acked)
            continue
        if acked or truncated_after is not None:
            continue  # acknowledged; or a later anchor of a cut already reported at its first
        truncated_after = head if da.id > head else fork
        problems.append(_cut_problem(da, head, fork))
    return restores, truncated_after


def _note_restore(restores: dict[int, dict], fork: int, backup: A.Anchor, da: A.Anchor, acked: bool) -> None:
    restore = restores.setdefault(
        fork,
        {
            "fork_at": fork,
            "backup": backup.extra.get("backup"),
            "backup_anchor": backup.as_json(),
            "lost_through": da.id,
            "anchor": da.as_json(),
            "acknowledged": True,
        },
    )
    if da.id >= restore["lost_through"]:
        restore["lost_through"], restore["anchor"] = da.id, da.as_json()
    restore["acknowledged"] = restore["acknowledged"] and acked


def _cut_problem(da: A.Anchor, head: int, fork: int) -> AuditProblem:
    if da.id > head:
        return AuditProblem(
            "truncated",
            head + 1,
            (
                f"the log ends at entry {head}, but the anchor written {da.at or 'on paper'} ({da.source}) proves that "
                f"entry {da.id} existed: entries from {head + 1} on were removed"
            ),
            da.as_json(),
        )
    return AuditProblem(
        "rewritten",
        fork + 1,
        (
            f"entry {da.id} is not the one the anchor written {da.at or 'on paper'} ({da.source}) names: the "
            f"entries after {fork} were replaced"
        ),
        da.as_json(),
    )


def _unacknowledged_restores(
    restores: dict[int, dict], truncated_after: int | None, problems: list[AuditProblem]
) -> int | None:
    """Report each restore nobody acknowledged; returns truncated_after, the first such fork if not set yet."""
    for fork, restore in sorted(restores.items()):
        if not restore["acknowledged"]:
            if truncated_after is None:
                truncated_after = fork
            problems.append(
                AuditProblem(
                    "restored_backup",
                    fork + 1,
                    (
                        f"the database was restored from the backup anchored at entry {fork} ({restore['backup'] or 'backup'}"
                        f", {restore['backup_anchor']['at']}): entries from {fork + 1} to at least {restore['lost_through']} "
                        f"(anchor {restore['anchor']['source']}) are lost; acknowledge it with "
                        "`cim audit acknowledge-restore --reason`"
                    ),
                    restore["anchor"],
                )
            )
    return truncated_after


def anchor_context(store: Any, settings: Any) -> Callable[[object], AsyncIterator[None]]:
    """A cleanup context for `cim serve`: anchors at start and stop, and every CIM_AUDIT_ANCHOR_MINUTES when the head moved."""

    async def loop() -> None:
        minutes = settings.audit_anchor_minutes
        last = store.audit.last_anchor
        while minutes > 0:
            await asyncio.sleep(minutes * 60)
            try:
                head = await store.audit.head()
                if last is None or (last.id, last.hash) != head[:2]:
                    last = await store.audit.anchor("periodic")
            except Exception:  # the loop must outlive one failing write; the next round tries again
                log.exception("audit.anchor_failed periodic")

    async def context(_app: object) -> AsyncIterator[None]:
        await store.audit.anchor("serve_start")
        task = asyncio.create_task(loop(), name="cim-audit-anchor")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            with contextlib.suppress(Exception):
                await store.audit.anchor("serve_stop")

    return context
