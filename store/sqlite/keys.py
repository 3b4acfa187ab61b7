"""The key service's repository on SQLite: every statement of store/keys.py's Keys (crypto-shredding).

store/keys.py holds the rules and the cryptography: the master key and its checks, wrapping and
unwrapping data keys, sealed lines and files, what a destroyed key means. This module holds the SQL
on the key ring (attached to every connection as `keyring`, store/sqlite/keyring.py) and on the
conversations and notes that name their keys. The `*_sync` functions run on a connection's own
thread inside the caller's transaction (the purge's, a chat's, an ingest's); the async methods read
on the reader, and the rewrap of `cim keys rotate-master` is one write transaction of its own.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any, Callable, Iterable, NamedTuple, TypeVar

import aiosqlite

from .database import Database, Transaction, run_on_thread

T = TypeVar("T")

#: A wrapped data key as stored: (conversation id or key id, generation, wrapped bytes), by the query.
KeyRow = tuple[Any, int, bytes]


class KeyRingState(NamedTuple):
    """What the master key is checked against when the store opens (store/keys.py `check_master`)."""

    #: the database holds a conversation sealed under a data key
    sealed_rows: bool
    #: wrapped data keys held, and tombstones of destroyed ones
    keys_held: int
    shredded: int
    #: the master key ids the key ring was last opened with (JSON {generation: id}), None before the first
    master_ids: str | None
    #: the key ring's file, for a message
    ring_file: str
    #: the master key generations that wrap data keys
    generations: set[int]
    #: one wrapped data key (key id, generation, wrapped), to prove the master key by a real unwrap
    sample: tuple[bytes, int, bytes] | None


def keyring_state_sync(conn: sqlite3.Connection) -> KeyRingState:
    sealed = conn.execute("SELECT 1 FROM conversations WHERE key_id IS NOT NULL LIMIT 1").fetchone()
    keys_held = conn.execute("SELECT count(*) FROM keyring.data_keys").fetchone()[0]
    shredded = conn.execute("SELECT count(*) FROM keyring.shredded").fetchone()[0]
    ids = conn.execute("SELECT value FROM keyring.meta WHERE name = 'master_ids'").fetchone()
    ring_file = conn.execute("PRAGMA database_list").fetchall()[-1][2]
    generations = {r[0] for r in conn.execute("SELECT DISTINCT generation FROM keyring.data_keys")}
    sample = conn.execute("SELECT key_id, generation, wrapped FROM keyring.data_keys LIMIT 1").fetchone()
    return KeyRingState(
        sealed_rows=sealed is not None,
        keys_held=keys_held,
        shredded=shredded,
        master_ids=None if ids is None else ids[0],
        ring_file=ring_file,
        generations=generations,
        sample=None if sample is None else (sample[0], sample[1], sample[2]),
    )


def save_master_ids_sync(conn: sqlite3.Connection, master_ids: str) -> None:
    conn.execute(
        "INSERT INTO keyring.meta(name, value) VALUES ('master_ids', ?) ON CONFLICT(name) DO UPDATE "
        "SET value = excluded.value",
        (master_ids,),
    )


def insert_data_key_sync(
    conn: sqlite3.Connection, key_id: bytes, conversation_id: int, generation: int, wrapped: bytes, now: str
) -> None:
    """Record a wrapped data key in the key ring (conversation 0: content whose conversation does not exist yet)."""
    conn.execute(
        "INSERT INTO keyring.data_keys(key_id, conversation_id, generation, wrapped, created_at) "
        "VALUES (?, ?, ?, ?, ?)",
        (key_id, conversation_id, generation, wrapped, now),
    )


def set_conversation_key_sync(conn: sqlite3.Connection, conversation_id: int, key_id: bytes) -> None:
    conn.execute("UPDATE conversations SET key_id = ? WHERE id = ?", (key_id, conversation_id))


def data_key_sync(conn: sqlite3.Connection, key_id: bytes) -> KeyRow | None:
    """A wrapped data key by its id: (conversation id, generation, wrapped); None when there is none."""
    row = conn.execute(
        "SELECT conversation_id, generation, wrapped FROM keyring.data_keys WHERE key_id = ?", (key_id,)
    ).fetchone()
    return None if row is None else (row[0], row[1], row[2])


def conversation_key_sync(conn: sqlite3.Connection, conversation_id: int) -> tuple[Any, Any, Any] | None:
    """A conversation's (key id, generation, wrapped): None without such a conversation; the key id None when
    it has no key yet; generation and wrapped None when its key was destroyed or lost."""
    row = conn.execute(
        "SELECT c.key_id, k.generation, k.wrapped FROM conversations c LEFT JOIN keyring.data_keys k "
        "ON k.key_id = c.key_id WHERE c.id = ?",
        (conversation_id,),
    ).fetchone()
    return None if row is None else (row[0], row[1], row[2])


def _shred_keys(conn: sqlite3.Connection, pairs: list[tuple[Any, int]], now: str) -> None:
    conn.executemany(
        "INSERT OR IGNORE INTO keyring.shredded(key_id, conversation_id, shredded_at) VALUES (?, ?, ?)",
        [(k, c, now) for k, c in pairs],
    )
    conn.executemany("DELETE FROM keyring.data_keys WHERE key_id = ?", [(k,) for k, _ in pairs])


def shred_unlinked_notes_sync(conn: sqlite3.Connection, cutoff: str, now: str) -> int:
    """Destroy the keys of call notes that never met their call record and are past their purge date
    (deleted by the purge with the other unlinked queue facts, store/service_report.py)."""
    rows = conn.execute(
        "SELECT key_id FROM call_notes WHERE conversation_id IS NULL AND purge_after <= ? AND key_id IS NOT NULL",
        (cutoff,),
    ).fetchall()
    _shred_keys(conn, [(r[0], 0) for r in rows], now)
    return len(rows)


def shred_sync(conn: sqlite3.Connection, conversation_ids: list[int], now: str) -> int:
    """Destroy the data keys of these conversations (in the purge's transaction), leaving tombstones."""
    if not conversation_ids:
        return 0
    marks = ",".join("?" * len(conversation_ids))
    rows = conn.execute(
        f"SELECT id, key_id FROM conversations WHERE id IN ({marks}) AND key_id IS NOT NULL", conversation_ids
    ).fetchall()
    # a call's note sealed before its CDR came has a key of its own, adopted by the call: it dies with it
    notes = conn.execute(
        f"SELECT conversation_id, key_id FROM call_notes WHERE conversation_id IN ({marks}) AND key_id IS NOT NULL",
        conversation_ids,
    ).fetchall()
    own = {bytes(r[1]) for r in rows}
    _shred_keys(conn, [(r[1], r[0]) for r in rows] + [(r[1], r[0]) for r in notes if bytes(r[1]) not in own], now)
    conn.execute(f"DELETE FROM message_words WHERE conversation_id IN ({marks})", conversation_ids)
    return len(rows)


def shred_orphans_sync(conn: sqlite3.Connection, cutoff: str, now: str) -> int:
    """Destroy data keys whose conversation this database does not have and that were made before `cutoff`
    (a whole retention period before the purge's): after a restore of an older backup, the keys of
    conversations the restore lost would otherwise keep them readable in newer backups for ever. Such a
    conversation is past its purge date (its key is as old as it, or older), and a held one is always in
    the database."""
    rows = conn.execute(
        "SELECT key_id, conversation_id FROM keyring.data_keys k WHERE k.created_at < ? AND NOT "
        "EXISTS (SELECT 1 FROM conversations c WHERE c.key_id = k.key_id) AND NOT EXISTS "
        "(SELECT 1 FROM call_notes n WHERE n.key_id = k.key_id)",
        (cutoff,),
    ).fetchall()
    _shred_keys(conn, [(r[0], r[1]) for r in rows], now)
    return len(rows)


class KeysRepository:
    """The SQL of store/keys.py's Keys."""

    def __init__(self, db: Database) -> None:
        self.db = db
        #: a read-only connection of its own to the key ring file, for sealed files opened on any thread
        self._sync_conn: sqlite3.Connection | None = None
        self._sync_lock = threading.Lock()

    # the statements that run inside a caller's transaction, on its connection's thread
    insert_data_key_sync = staticmethod(insert_data_key_sync)
    set_conversation_key_sync = staticmethod(set_conversation_key_sync)
    data_key_sync = staticmethod(data_key_sync)
    conversation_key_sync = staticmethod(conversation_key_sync)

    async def open_master(self, check: Callable[[KeyRingState], tuple[T, str | None]]) -> T:
        """Read the key ring's state on the writer, `check` the master key against it and, when `check` returns
        new master key ids, store them; one call on the writer's thread (the store is opening)."""

        def run(conn: sqlite3.Connection) -> T:
            master, master_ids = check(keyring_state_sync(conn))
            if master_ids is not None:
                save_master_ids_sync(conn, master_ids)
            return master

        return await run_on_thread(self.db.writer, run)

    async def run_in(self, tx: Transaction | aiosqlite.Connection, fn: Callable[[sqlite3.Connection], T]) -> T:
        """`fn(connection)` on the writer's thread inside the caller's write transaction."""
        conn = tx.connection if isinstance(tx, Transaction) else tx
        return await run_on_thread(conn, fn)

    async def data_key(self, key_id: bytes) -> KeyRow | None:
        """data_key_sync on the reader connection."""
        row = await self.db.fetchone(
            "SELECT conversation_id, generation, wrapped FROM keyring.data_keys WHERE key_id = ?", (key_id,)
        )
        return None if row is None else (row["conversation_id"], row["generation"], row["wrapped"])

    async def conversation_key(self, conversation_id: int) -> tuple[Any, Any, Any] | None:
        """conversation_key_sync on the reader connection."""
        row = await self.db.fetchone(
            "SELECT c.key_id, k.generation, k.wrapped FROM conversations c LEFT JOIN keyring.data_keys k "
            "ON k.key_id = c.key_id WHERE c.id = ?",
            (conversation_id,),
        )
        return None if row is None else (row["key_id"], row["generation"], row["wrapped"])

    async def conversation_keys(self, conversation_ids: Iterable[int]) -> list[tuple[int, bytes, int, bytes]]:
        """(conversation id, key id, generation, wrapped) of those of these conversations whose key is held."""
        ids = sorted(set(conversation_ids))
        found: list[tuple[int, bytes, int, bytes]] = []
        for start in range(0, len(ids), 500):  # within SQLite's limit of bound parameters
            part = ids[start : start + 500]
            for row in await self.db.fetchall(
                f"SELECT c.id, c.key_id, k.generation, k.wrapped FROM conversations c JOIN keyring.data_keys k "
                f"ON k.key_id = c.key_id WHERE c.id IN ({','.join('?' * len(part))})",
                part,
            ):
                found.append((row["id"], row["key_id"], row["generation"], row["wrapped"]))
        return found

    async def is_shredded(self, conversation_id: int) -> bool:
        """The conversation names a key that the key ring no longer holds."""
        row = await self.db.fetchone(
            "SELECT c.key_id IS NOT NULL AND k.key_id IS NULL AS gone FROM conversations c LEFT JOIN "
            "keyring.data_keys k ON k.key_id = c.key_id WHERE c.id = ?",
            (conversation_id,),
        )
        return bool(row and row["gone"])

    def data_key_readonly(self, keyring: Path, key_id: bytes) -> KeyRow | None:
        """data_key_sync on a read-only connection of its own to the key ring file (blocking; any thread)."""
        with self._sync_lock:
            if self._sync_conn is None:
                self._sync_conn = sqlite3.connect(f"file:{keyring}?mode=ro", uri=True, check_same_thread=False)
            row = self._sync_conn.execute(
                "SELECT conversation_id, generation, wrapped FROM data_keys WHERE key_id = ?", (key_id,)
            ).fetchone()
        return None if row is None else (row[0], row[1], row[2])

    def close(self) -> None:
        with self._sync_lock:
            if self._sync_conn is not None:
                self._sync_conn.close()
                self._sync_conn = None

    async def sealing_counts(self) -> dict[str, int]:
        row = await self.db.fetchone(
            "SELECT (SELECT count(*) FROM conversations) AS conversations, "
            "(SELECT count(*) FROM conversations WHERE key_id IS NOT NULL) AS sealed, "
            "(SELECT count(*) FROM keyring.data_keys) AS keys_held, "
            "(SELECT count(*) FROM keyring.shredded) AS shredded, "
            "(SELECT count(*) FROM messages WHERE typeof(text) = 'text') AS unsealed_lines, "
            "(SELECT count(*) FROM chat_staff_notes WHERE typeof(text) = 'text') + "
            "(SELECT count(*) FROM call_notes WHERE typeof(note) = 'text' AND note <> '') AS unsealed_notes"
        )
        return dict(row) if row is not None else {}

    async def rewrap(self, rewrap_one: Callable[[bytes, int, bytes], tuple[int, bytes]], master_ids: str) -> int:
        """Wrap every data key again (`rewrap_one(key_id, generation, wrapped)` gives the new generation and
        wrapped key) and store the master key ids, in one write transaction on the writer's thread; returns
        how many keys were rewrapped."""

        def run(conn: sqlite3.Connection) -> int:
            rows = conn.execute("SELECT key_id, generation, wrapped FROM keyring.data_keys").fetchall()
            for key_id, gen, wrapped in rows:
                generation, new = rewrap_one(key_id, gen, wrapped)
                conn.execute(
                    "UPDATE keyring.data_keys SET generation = ?, wrapped = ? WHERE key_id = ?",
                    (generation, new, key_id),
                )
            save_master_ids_sync(conn, master_ids)
            return len(rows)

        return await self.db.write_call(run)

    async def generations(self) -> set[int]:
        """The master key generations that wrap data keys."""
        return {r["generation"] for r in await self.db.fetchall("SELECT DISTINCT generation FROM keyring.data_keys")}
