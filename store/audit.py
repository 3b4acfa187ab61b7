"""The append-only, SHA-256 hash-chained audit log, and the guard that audits every permission check."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from typing import Any

import aiosqlite

from .clock import Clock, from_iso, to_iso
from .db import Database, run_on_thread
from .errors import NotPermitted
from .models import Actor, AuditEntry, ChainCheck
from .policy import Permission, allowed

GENESIS = "0" * 64
_FIELDS = ("id", "at", "actor_id", "actor_name", "action", "outcome", "target_kind", "target_id",
           "purpose", "request_id", "details")


def entry_hash(prev_hash: str, row: dict[str, Any]) -> str:
    """SHA-256 over the previous hash and a canonical JSON encoding of the entry (id included, so reordering shows)."""
    canonical = json.dumps([row[f] for f in _FIELDS], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(f"{prev_hash}\n{canonical}".encode("utf-8")).hexdigest()


def _append_entry(conn: sqlite3.Connection, row: dict[str, Any]) -> int:
    """Link `row` to the chain's last entry and insert it (blocking: runs on the writer's thread)."""
    last = conn.execute("SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1").fetchone()
    prev_hash = last[1] if last else GENESIS
    row = {"id": (last[0] + 1) if last else 1, **row}
    conn.execute(
        f"INSERT INTO audit({', '.join(_FIELDS)}, prev_hash, hash) VALUES ({', '.join('?' * len(_FIELDS))}, ?, ?)",
        (*[row[f] for f in _FIELDS], prev_hash, entry_hash(prev_hash, row)),
    )
    return row["id"]


class AuditLog:
    def __init__(self, db: Database, clock: Clock) -> None:
        self.db = db
        self.clock = clock

    async def append(self, tx: aiosqlite.Connection, actor: Actor, action: str, **fields: Any) -> int:
        """Append one entry inside the caller's write transaction; returns its id.

        `fields` are those of `entry()`. Never put resident content in details.
        """
        # Read the chain's head, hash and insert in ONE call on the writer's thread (inside the caller's
        # transaction): four awaited round trips made the audit entry the larger part of an archive
        # search (bench/).
        return await run_on_thread(tx, _append_entry, self.entry(actor, action, **fields))

    def entry(self, actor: Actor, action: str, *, outcome: str = "ok", target_kind: str | None = None,
              target_id: object = None, purpose: str | None = None, request_id: int | None = None,
              details: dict[str, Any] | None = None) -> dict[str, Any]:
        """One entry's fields, not yet chained (`_append_entry` links and inserts it on the writer's thread)."""
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
        return await self.db.write_call(_append_entry, self.entry(actor, action, **fields))

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
        await self.record(actor, action, outcome="refused", target_kind=target_kind, target_id=target_id,
                          request_id=request_id, details={"permission": permission.value})
        raise NotPermitted(f"{actor.name} is not permitted to {action.replace('_', ' ').replace('.', ': ')}")

    async def verify(self) -> ChainCheck:
        """Recompute the chain; the first entry whose link or content does not match is reported."""
        prev_hash, expected_id = GENESIS, 1
        rows = await self.db.fetchall(f"SELECT {', '.join(_FIELDS)}, prev_hash, hash FROM audit ORDER BY id")
        for r in rows:
            row = {f: r[f] for f in _FIELDS}
            if r["id"] != expected_id or r["prev_hash"] != prev_hash or entry_hash(prev_hash, row) != r["hash"]:
                return ChainCheck(ok=False, entries=len(rows), first_broken=r["id"])
            prev_hash, expected_id = r["hash"], expected_id + 1
        return ChainCheck(ok=True, entries=len(rows), first_broken=None)

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
        limit: int = 200,
        offset: int = 0,
    ) -> list[AuditEntry]:
        """Read the log (dpo, boi_director); the read itself is audited."""
        await self.guard(actor, Permission.READ_AUDIT, "audit.read")
        where, params = [], []
        for column, value in (("actor_id", staff_id), ("action", action), ("target_kind", target_kind),
                              ("request_id", request_id)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        if target_id is not None:
            where.append("target_id = ?")
            params.append(str(target_id))
        if since:
            where.append("at >= ?")
            params.append(since)
        if until:
            where.append("at < ?")
            params.append(until)
        sql = "SELECT * FROM audit" + (" WHERE " + " AND ".join(where) if where else "")
        sql += " ORDER BY id DESC LIMIT ? OFFSET ?"
        rows = await self.db.fetchall(sql, (*params, limit, offset))
        async with self.db.write() as tx:
            await self.append(tx, actor, "audit.read", details={"filters": {
                "staff_id": staff_id, "action": action, "since": since, "until": until,
                "target_kind": target_kind, "request_id": request_id}})
        return [_entry(r) for r in rows]


def _entry(r: Any) -> AuditEntry:
    return AuditEntry(
        id=r["id"], at=from_iso(r["at"]), actor_id=r["actor_id"], actor_name=r["actor_name"],
        action=r["action"], outcome=r["outcome"], target_kind=r["target_kind"], target_id=r["target_id"],
        purpose=r["purpose"], request_id=r["request_id"], details=json.loads(r["details"]),
    )
