"""The retention repository on SQLite: every statement of holds, purge runs, the purge's batches and fsck's reads.

store/retention.py holds the rules (who may, what is due, the order of a crash-safe purge, what
is audited); this module holds the SQL it needs and nothing else. Reads go to the reader
connection; writes take the caller's `Transaction`, which the audit entry joins (AuditLog.append),
so a change and its entry commit or roll back together.
"""

from __future__ import annotations

import sqlite3
from typing import Any, Iterable

from ..errors import StoreUnavailable
from ..i18n import N_
from .database import Repository, Transaction, inserted_id, one_row, run_on_thread
from .keys import shred_orphans_sync, shred_sync, shred_unlinked_notes_sync
from .service_report import absorb_conversations, purge_unlinked_queue_facts

# an unanswered offline message (store/resident_desk.py) is purged at its purge_after like an ended conversation
_SQL_ENDED = "c.status IN ('closed', 'ended', 'offline_message') AND c.purge_after <= ?"
_SQL_HELD = (
    "(EXISTS (SELECT 1 FROM holds h WHERE h.conversation_id = c.id AND h.released_at IS NULL)"
    " OR EXISTS (SELECT 1 FROM request_conversations rc JOIN access_requests r ON r.id = rc.request_id"
    "            WHERE rc.conversation_id = c.id AND r.closed_at IS NULL AND r.withdrawn_at IS NULL))"
)
# Tables whose rows of a purged conversation the purge deletes itself (others are found from their FKs).
_OWN_TABLES = {"messages", "recordings", "holds", "conversations"}

Row = dict[str, Any]


class RetentionRepository(Repository):
    """The SQL of store/retention.py's Retention service."""

    @property
    def seals_keys(self) -> bool:
        """Crypto-shredding is on: the key ring is attached, so a purge destroys the conversations' data keys."""
        return self.db.keyring is not None

    # ----------------------------------------------------------------------------------- holds

    async def holds(self, *, include_released: bool, conversation_id: int | None) -> list[Row]:
        where, params = [], []
        if not include_released:
            where.append("h.released_at IS NULL")
        if conversation_id is not None:
            where.append("h.conversation_id = ?")
            params.append(conversation_id)
        return _dicts(
            await self.db.fetchall(
                "SELECT h.*, s.name AS set_by_name, r.name AS released_by_name FROM holds h"
                " LEFT JOIN staff s ON s.id = h.set_by LEFT JOIN staff r ON r.id = h.released_by"
                + (" WHERE " + " AND ".join(where) if where else "")
                + " ORDER BY h.released_at IS NOT NULL, h.review_on IS NULL, h.review_on, h.id",
                params,
            )
        )

    async def existing_conversations(self, tx: Transaction, ids: list[int]) -> set[int]:
        return {
            r[0]
            for r in await tx.connection.execute_fetchall(
                f"SELECT id FROM conversations WHERE id IN ({_marks(ids)})", ids
            )
        }

    async def purged_on(self, tx: Transaction, ids: list[int]) -> dict[int, str]:
        """When each of these conversations was purged (ISO time), for those that were."""
        return {
            r[0]: r[1]
            for r in await tx.connection.execute_fetchall(
                f"SELECT id, purged_at FROM purged_conversations WHERE id IN ({_marks(ids)})", ids
            )
        }

    async def insert_hold(
        self,
        tx: Transaction,
        conversation_id: int,
        legal_basis: str,
        case_reference: str,
        set_by: int | None,
        set_at: str,
        review_on: str | None,
    ) -> int:
        cursor = await tx.connection.execute(
            "INSERT INTO holds(conversation_id, legal_basis, case_reference, set_by, set_at, review_on)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (conversation_id, legal_basis, case_reference, set_by, set_at, review_on),
        )
        return inserted_id(cursor)

    async def hold_for_update(self, tx: Transaction, hold_id: int) -> Row | None:
        rows = await tx.connection.execute_fetchall("SELECT * FROM holds WHERE id = ?", (hold_id,))
        row = next(iter(rows), None)
        return None if row is None else dict(row)

    async def release_hold(self, tx: Transaction, hold_id: int, released_at: str, released_by: int | None) -> None:
        await tx.connection.execute(
            "UPDATE holds SET released_at = ?, released_by = ? WHERE id = ?", (released_at, released_by, hold_id)
        )

    # ----------------------------------------------------------------------------------- preview

    async def due_by_channel(self, cutoff: str) -> dict[str, int]:
        """Conversations due and not held, per channel."""
        return {
            r["channel"]: r["n"]
            for r in await self.db.fetchall(
                f"SELECT c.channel, count(*) AS n FROM conversations c WHERE {_SQL_ENDED} AND NOT {_SQL_HELD}"
                " GROUP BY c.channel",
                (cutoff,),
            )
        }

    async def due_files(self, cutoff: str) -> tuple[int, int]:
        """(files, bytes) of the recordings of the conversations due and not held."""
        row = await self.db.fetchone(
            "SELECT count(*) AS n, coalesce(sum(rec.size_bytes), 0) AS b FROM recordings rec"
            f" JOIN conversations c ON c.id = rec.conversation_id WHERE {_SQL_ENDED} AND NOT {_SQL_HELD}",
            (cutoff,),
        )
        row = one_row(row, "count(*)")
        return row["n"], row["b"]

    async def held_back(self, cutoff: str) -> list[Row]:
        """Conversations due but held (id, channel, created_at), in id order."""
        return _dicts(
            await self.db.fetchall(
                f"SELECT c.id, c.channel, c.created_at FROM conversations c WHERE {_SQL_ENDED} AND {_SQL_HELD}"
                " ORDER BY c.id",
                (cutoff,),
            )
        )

    async def open_holds_of_due(self, cutoff: str) -> list[Row]:
        return _dicts(
            await self.db.fetchall(
                "SELECT h.id, h.conversation_id, h.legal_basis, h.case_reference, h.request_id, h.review_on"
                " FROM holds h JOIN conversations c ON c.id = h.conversation_id"
                f" WHERE h.released_at IS NULL AND {_SQL_ENDED} ORDER BY h.id",
                (cutoff,),
            )
        )

    async def open_requests_of_due(self, cutoff: str) -> list[Row]:
        """(conversation_id, number) of the open access requests that keep a due conversation."""
        return _dicts(
            await self.db.fetchall(
                "SELECT rc.conversation_id, r.number FROM request_conversations rc"
                " JOIN access_requests r ON r.id = rc.request_id JOIN conversations c ON c.id = rc.conversation_id"
                f" WHERE r.closed_at IS NULL AND r.withdrawn_at IS NULL AND {_SQL_ENDED}",
                (cutoff,),
            )
        )

    async def pending_unlinks(self) -> list[str]:
        """Files an interrupted purge committed away but did not delete yet."""
        return [r["path"] for r in await self.db.fetchall("SELECT path FROM pending_unlinks ORDER BY path")]

    async def latest_audit_time(self) -> str | None:
        row = await self.db.fetchone("SELECT at FROM audit ORDER BY id DESC LIMIT 1")
        return None if row is None else row["at"]

    # ----------------------------------------------------------------------------------- purge runs

    async def last_real_run(self, started_by: str | None = None) -> Row | None:
        """The newest purge run that was not a dry run (of `started_by`, when given): started_at, status."""
        if started_by is None:
            row = await self.db.fetchone(
                "SELECT started_at, status, started_by FROM purge_runs WHERE dry_run = 0 ORDER BY id DESC LIMIT 1"
            )
        else:
            row = await self.db.fetchone(
                "SELECT started_at, status, started_by FROM purge_runs WHERE dry_run = 0 AND started_by = ?"
                " ORDER BY id DESC LIMIT 1",
                (started_by,),
            )
        return None if row is None else dict(row)

    async def insert_run(
        self,
        tx: Transaction,
        *,
        started_at: str,
        finished_at: str | None,
        cutoff: str,
        dry_run: bool,
        started_by: str,
        calls: int,
        chats: int,
        files: int,
        size: int,
        held: int,
        status: str,
    ) -> int:
        cursor = await tx.connection.execute(
            "INSERT INTO purge_runs(started_at, finished_at, cutoff, dry_run, started_by, calls, chats, files, bytes,"
            " held, status) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (started_at, finished_at, cutoff, int(dry_run), started_by, calls, chats, files, size, held, status),
        )
        return inserted_id(cursor)

    async def running_runs(self, tx: Transaction) -> list[Row]:
        return _dicts(
            await tx.connection.execute_fetchall(
                "SELECT id, calls, chats, files, bytes FROM purge_runs WHERE status = 'running'"
            )
        )

    async def end_run(
        self, tx: Transaction, run_id: int, status: str, finished_at: str, held: int | None = None
    ) -> None:
        if held is None:
            await tx.connection.execute(
                "UPDATE purge_runs SET status = ?, finished_at = ? WHERE id = ?", (status, finished_at, run_id)
            )
        else:
            await tx.connection.execute(
                "UPDATE purge_runs SET status = ?, finished_at = ?, held = ? WHERE id = ?",
                (status, finished_at, held, run_id),
            )

    async def remnant_runs(self) -> tuple[int, ...]:
        return tuple(
            r["id"] for r in await self.db.fetchall("SELECT id FROM purge_runs WHERE remnants_pending = 1 ORDER BY id")
        )

    async def set_remnants(self, tx: Transaction, runs: Iterable[int], pending: bool) -> None:
        runs = list(runs)
        await tx.connection.execute(
            f"UPDATE purge_runs SET remnants_pending = ? WHERE id IN ({_marks(runs)})", (1 if pending else 0, *runs)
        )

    async def runs(self, limit: int) -> list[Row]:
        return _dicts(await self.db.fetchall("SELECT * FROM purge_runs ORDER BY id DESC LIMIT ?", (limit,)))

    # ----------------------------------------------------------------------------------- the purge's batches

    async def dependent_tables(self) -> list[tuple[str, str]]:
        """(table, column) of every other table whose FK to conversations does not cascade by itself."""
        found = []
        for t in await self.db.fetchall(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        ):
            if t["name"] in _OWN_TABLES:
                continue
            for fk in await self.db.fetchall("SELECT * FROM pragma_foreign_key_list(?)", (t["name"],)):
                if fk["table"] == "conversations" and fk["on_delete"].upper() in ("NO ACTION", "RESTRICT"):
                    found.append((t["name"], fk["from"]))
        return found

    async def delete_due_batch(
        self,
        tx: Transaction,
        *,
        run_id: int,
        cutoff: str,
        limit: int,
        dependents: list[tuple[str, str]],
        timezone: str,
        now: str,
    ) -> tuple[list[Row], list[Row]]:
        """Delete up to `limit` conversations due and not held, oldest purge_after first, in the caller's transaction.

        Their files are recorded in pending_unlinks first (the files are unlinked after the commit),
        their service figures absorbed (§1.2), their data keys destroyed when the key ring is on,
        their ids kept in purged_conversations and the run's counts moved on. Returns the purged
        conversations (id, channel) and their recordings (path, size_bytes); none when nothing is due.
        """
        conn = tx.connection
        rows = _dicts(
            await conn.execute_fetchall(
                f"SELECT c.id, c.channel FROM conversations c WHERE {_SQL_ENDED} AND NOT {_SQL_HELD}"
                " ORDER BY c.purge_after, c.id LIMIT ?",
                (cutoff, limit),
            )
        )
        if not rows:
            return [], []
        ids = [r["id"] for r in rows]
        marks = _marks(ids)
        recs = _dicts(
            await conn.execute_fetchall(
                f"SELECT path, size_bytes FROM recordings WHERE conversation_id IN ({marks})", ids
            )
        )
        await conn.executemany(
            "INSERT OR IGNORE INTO pending_unlinks(path, purge_run) VALUES (?, ?)", [(r["path"], run_id) for r in recs]
        )
        await absorb_conversations(conn, ids, timezone)  # service figures survive (§1.2)
        if self.seals_keys:  # crypto-shredding: every copy of these conversations dies with the keys
            await run_on_thread(conn, shred_sync, ids, now)
        try:
            for table, column in dependents:
                await conn.execute(f'DELETE FROM "{table}" WHERE "{column}" IN ({marks})', ids)
            await conn.execute(f"DELETE FROM holds WHERE conversation_id IN ({marks})", ids)
            await conn.execute(f"DELETE FROM messages WHERE conversation_id IN ({marks})", ids)
            await conn.execute(f"DELETE FROM recordings WHERE conversation_id IN ({marks})", ids)
            await conn.execute(f"DELETE FROM conversations WHERE id IN ({marks})", ids)
        except sqlite3.IntegrityError as exc:
            raise StoreUnavailable(
                N_("the purge was blocked by data that still refers to a conversation ({exc})"), exc=exc
            ) from exc
        await conn.executemany(
            "INSERT OR REPLACE INTO purged_conversations(id, purged_at, purge_run) VALUES (?, ?, ?)",
            [(i, now, run_id) for i in ids],
        )
        calls = sum(1 for r in rows if r["channel"] == "call")
        await conn.execute(
            "UPDATE purge_runs SET calls = calls + ?, chats = chats + ?, files = files + ?, bytes = bytes + ?"
            " WHERE id = ?",
            (calls, len(rows) - calls, len(recs), sum(r["size_bytes"] for r in recs), run_id),
        )
        return rows, recs

    async def purge_leftovers(
        self, tx: Transaction, *, cutoff: str, timezone: str, keys_made_before: str | None, now: str
    ) -> int:
        """After the batches: traffic facts past the cutoff that no conversation took along (§6), and, when
        `keys_made_before` is given and the key ring is on, the data keys of conversations this database no
        longer has; returns how many such keys were destroyed."""
        if self.seals_keys:  # call notes that never met their call: their keys go with them
            await run_on_thread(tx.connection, shred_unlinked_notes_sync, cutoff, now)
        await purge_unlinked_queue_facts(tx.connection, cutoff, timezone)
        if keys_made_before is None or not self.seals_keys:
            return 0
        return await run_on_thread(tx.connection, shred_orphans_sync, keys_made_before, now)

    async def forget_pending(self, tx: Transaction, paths: list[str]) -> None:
        await tx.connection.executemany("DELETE FROM pending_unlinks WHERE path = ?", [(p,) for p in paths])

    # ----------------------------------------------------------------------------------- fsck

    async def recordings(self) -> list[Row]:
        return _dicts(
            await self.db.fetchall("SELECT id, path, sha256, size_bytes, is_empty FROM recordings ORDER BY id")
        )

    async def plain_note_counts(self) -> Row:
        """How many supervisors' whispers and call notes are still stored in plaintext (before encrypt-existing)."""
        row = await self.db.fetchone(
            "SELECT (SELECT count(*) FROM chat_staff_notes WHERE typeof(text) = 'text') AS whispers, "
            "(SELECT count(*) FROM call_notes WHERE typeof(note) = 'text' AND note <> '') AS call_notes"
        )
        return dict(one_row(row, "count(*)"))

    async def conversations_with_sealed_whispers(self) -> list[int]:
        return [
            r["conversation_id"]
            for r in await self.db.fetchall(
                "SELECT DISTINCT conversation_id FROM chat_staff_notes WHERE typeof(text) = 'blob'"
            )
        ]

    async def sealed_whispers(self, conversation_id: int) -> list[Row]:
        return _dicts(
            await self.db.fetchall(
                "SELECT id, text FROM chat_staff_notes WHERE conversation_id = ? AND typeof(text) = 'blob'",
                (conversation_id,),
            )
        )

    async def sealed_call_notes(self) -> list[Row]:
        """Sealed call notes with whether their key is held, was destroyed by a purge, or is the call's own."""
        return _dicts(
            await self.db.fetchall(
                "SELECT n.linkedid, n.key_id, n.note, k.key_id IS NOT NULL AS held, s.key_id IS NOT NULL AS shredded, "
                "EXISTS (SELECT 1 FROM conversations c WHERE c.key_id = n.key_id) AS the_calls FROM call_notes n "
                "LEFT JOIN keyring.data_keys k ON k.key_id = n.key_id LEFT JOIN keyring.shredded s "
                "ON s.key_id = n.key_id WHERE typeof(n.note) = 'blob' ORDER BY n.id"
            )
        )

    async def conversations_without_key(self) -> list[Row]:
        """Sealed conversations whose data key is not in the key ring: (id, shredded) - destroyed by a purge or lost."""
        return _dicts(
            await self.db.fetchall(
                "SELECT c.id, c.key_id, k.key_id IS NOT NULL AS held, s.key_id IS NOT NULL AS shredded FROM conversations c "
                "LEFT JOIN keyring.data_keys k ON k.key_id = c.key_id LEFT JOIN keyring.shredded s ON s.key_id = c.key_id "
                "WHERE c.key_id IS NOT NULL AND k.key_id IS NULL ORDER BY c.id"
            )
        )

    async def unsealed_line_count(self) -> int:
        sql = "SELECT count(*) AS n FROM messages WHERE typeof(text) = 'text'"
        return one_row(await self.db.fetchone(sql), "count(*)")["n"]

    async def conversations_with_sealed_lines(self) -> list[int]:
        return [
            r["conversation_id"]
            for r in await self.db.fetchall("SELECT DISTINCT conversation_id FROM messages WHERE typeof(text) = 'blob'")
        ]

    async def sealed_lines(self, conversation_id: int) -> list[tuple[int, bytes]]:
        """(seq, sealed text) of one conversation's sealed transcript lines."""
        return [
            (m["seq"], bytes(m["text"]))
            for m in await self.db.fetchall(
                "SELECT seq, text FROM messages WHERE conversation_id = ? AND typeof(text) = 'blob'", (conversation_id,)
            )
        ]


def _marks(values: list[Any]) -> str:
    return ",".join("?" * len(values))


def _dicts(rows: Iterable[sqlite3.Row]) -> list[Row]:
    return [dict(r) for r in rows]
