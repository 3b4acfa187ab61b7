"""The audit log's repository on SQLite: every statement of store/audit.py's AuditLog.

store/audit.py holds the rules: the chain (what an entry's hash covers, the MAC, the key generation
in force), who may read the log, the verification. This module holds the SQL. An entry is appended
in ONE call on the writer's thread: the chain's head is read, the entry linked to it by the domain's
`link` (store/audit.py `chain_entry`) and inserted, all inside the caller's transaction, so no other
entry can come between the read and the insert (the writer is the only connection that writes, behind
the database's write lock).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any, Callable

import aiosqlite

from .database import Repository, Transaction, run_on_thread

#: What a linked entry is: the domain's link of the chain's last (id, hash), or None, to the entry's columns.
Link = Callable[[tuple[int, str] | None], dict[str, Any]]

_CHAIN_COLUMNS = (
    "id, at, actor_id, actor_name, action, outcome, target_kind, target_id, purpose, request_id, details, "
    "prev_hash, hash, mac, key_gen"
)


def append_linked(conn: sqlite3.Connection, link: Link) -> int:
    """Read the chain's last entry, link the new one to it and insert it (blocking: on the writer's thread,
    inside the caller's transaction); returns its id."""
    last = conn.execute("SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1").fetchone()
    columns = link((last[0], last[1]) if last else None)
    conn.execute(
        f"INSERT INTO audit({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})", tuple(columns.values())
    )
    return columns["id"]


def _mac_state(conn: sqlite3.Connection) -> tuple[int, int]:
    maced = conn.execute("SELECT count(*) FROM audit WHERE mac IS NOT NULL").fetchone()[0]
    head = conn.execute("SELECT coalesce(max(id), 0) FROM audit").fetchone()[0]
    return maced, head


def head_of_file(database: Path) -> tuple[int, str, str | None] | None:
    """The last entry (id, hash, at) of another database file (a backup's copy), read-only; None when empty."""
    conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        row = conn.execute("SELECT id, hash, at FROM audit ORDER BY id DESC LIMIT 1").fetchone()
    finally:
        conn.close()
    return (row[0], row[1], row[2]) if row else None


class AuditRepository(Repository):
    """The SQL of store/audit.py's AuditLog."""

    async def append(self, tx: Transaction | aiosqlite.Connection, link: Link) -> int:
        """Append one entry inside the caller's write transaction (a repository's unit of work, or the
        connection `Database.write()` yields), in one call on the writer's thread."""
        conn = tx.connection if isinstance(tx, Transaction) else tx
        return await run_on_thread(conn, append_linked, link)

    async def append_alone(self, link: Link) -> int:
        """Append one entry in a write transaction of its own (BEGIN … COMMIT in one call on the writer's thread)."""
        return await self.db.write_call(append_linked, link)

    #: the last entry of another database file (a backup's copy), blocking: run it in a thread
    head_of_file = staticmethod(head_of_file)

    async def mac_state(self) -> tuple[int, int]:
        """(entries carrying a MAC, the last entry's id or 0), read on the writer."""
        return await run_on_thread(self.db.writer, _mac_state)

    async def chain(self) -> list[Any]:
        """Every entry with its chain columns, in id order (the verification)."""
        return await self.db.fetchall(f"SELECT {_CHAIN_COLUMNS} FROM audit ORDER BY id")

    async def head(self) -> tuple[int, str, str | None] | None:
        """The last committed entry (id, hash, at); None for an empty log."""
        row = await self.db.fetchone("SELECT id, hash, at FROM audit ORDER BY id DESC LIMIT 1")
        return (row["id"], row["hash"], row["at"]) if row else None

    async def entries(
        self,
        *,
        equal: dict[str, Any],
        action_prefix: str | None,
        purpose_words: list[str],
        since: str | None,
        until: str | None,
        limit: int,
        offset: int,
    ) -> list[Any]:
        """Entries newest first: `equal` maps actor_id, action, target_kind, request_id, target_id to the value
        each must have; `action_prefix` keeps actions starting with it; each of `purpose_words` (casefolded)
        must be in the purpose; `since` (inclusive) and `until` (exclusive) bound the time."""
        where, params = [], []
        for column in ("actor_id", "action", "target_kind", "request_id", "target_id"):
            if equal.get(column) is not None:
                where.append(f"{column} = ?")
                params.append(equal[column])
        if action_prefix:
            where.append("substr(action, 1, ?) = ?")
            params += [len(action_prefix), action_prefix]
        for word in purpose_words:
            where.append("instr(cim_fold(coalesce(purpose, '')), ?) > 0")
            params.append(word)
        if since:
            where.append("at >= ?")
            params.append(since)
        if until:
            where.append("at < ?")
            params.append(until)
        sql = "SELECT * FROM audit" + (" WHERE " + " AND ".join(where) if where else "")
        sql += " ORDER BY id DESC LIMIT ? OFFSET ?"
        return await self.db.fetchall(sql, (*params, limit, offset))
