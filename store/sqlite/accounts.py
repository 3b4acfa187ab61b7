"""The accounts repository on SQLite: every statement of departments, staff, roles, sessions, lockout and second factors.

store/accounts.py holds the rules (permissions, password and name checks, the steps of a sign-in,
lockout, what is audited, who is told); this module holds the SQL. Reads go to the reader
connection; writes take the caller's `Transaction`, which the audit entry joins.
"""

from __future__ import annotations

import sqlite3
from typing import Any, Iterable

from ..errors import StaffNotFound
from ..i18n import N_
from .database import Repository, Transaction, inserted_id, one_row

Row = dict[str, Any]
_STAFF = "SELECT s.*, d.code AS department FROM staff s LEFT JOIN departments d ON d.id = s.department_id "
_SIGN_IN = "SELECT id, password_hash, disabled, source FROM staff "


class AccountsRepository(Repository):
    """The SQL of store/accounts.py's Accounts service (and session_watch.py's read-only checks)."""

    # -- departments ---------------------------------------------------------------------------

    async def department_exists(self, tx: Transaction, code: str) -> bool:
        return await _one(tx, "SELECT 1 FROM departments WHERE code = ?", (code,)) is not None

    async def insert_department(self, tx: Transaction, code: str, name: str) -> int:
        cur = await tx.connection.execute("INSERT INTO departments(code, name) VALUES (?, ?)", (code, name))
        return inserted_id(cur)

    async def departments(self) -> list[Row]:
        return _dicts(await self.db.fetchall("SELECT id, code, name FROM departments ORDER BY code"))

    async def department_id(self, code: str, tx: Transaction | None = None) -> int | None:
        """The id of a department code, in `tx` when given (else the reader); None when there is none."""
        sql, params = "SELECT id FROM departments WHERE code = ?", (code,)
        row = await _one(tx, sql, params) if tx is not None else await self.db.fetchone(sql, params)
        return None if row is None else row["id"]

    # -- staff ---------------------------------------------------------------------------------

    async def name_taken(self, tx: Transaction, name: str) -> bool:
        return await _one(tx, "SELECT 1 FROM staff WHERE name = ?", (name,)) is not None

    async def insert_staff(
        self,
        tx: Transaction,
        *,
        name: str,
        full_name: str,
        password_hash: str,
        department_id: int | None,
        created_at: str,
        job_title: str,
        must_change: bool,
    ) -> int:
        cur = await tx.connection.execute(
            "INSERT INTO staff(name, full_name, password_hash, department_id, created_at, job_title, "
            "must_change_password) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (name, full_name, password_hash, department_id, created_at, job_title, int(must_change)),
        )
        return inserted_id(cur)

    async def insert_directory_staff(
        self,
        tx: Transaction,
        *,
        name: str,
        full_name: str,
        password_hash: str,
        department_id: int | None,
        at: str,
        dn: str,
    ) -> int:
        cur = await tx.connection.execute(
            "INSERT INTO staff(name, full_name, password_hash, department_id, created_at, source, directory_dn, "
            "directory_checked_at) VALUES (?, ?, ?, ?, ?, 'directory', ?, ?)",
            (name, full_name, password_hash, department_id, at, dn, at),
        )
        return inserted_id(cur)

    async def update_directory_staff(
        self, tx: Transaction, staff_id: int, *, full_name: str, department_id: int | None, dn: str, checked_at: str
    ) -> None:
        await tx.connection.execute(
            "UPDATE staff SET full_name = ?, department_id = ?, directory_dn = ?, directory_checked_at = ? WHERE id = ?",
            (full_name, department_id, dn, checked_at, staff_id),
        )

    async def mark_directory_checked(self, tx: Transaction, staff_id: int, at: str) -> None:
        await tx.connection.execute("UPDATE staff SET directory_checked_at = ? WHERE id = ?", (at, staff_id))

    async def roles_and_department(self, tx: Transaction, staff_id: int) -> tuple[list[str], int | None]:
        """Inside `tx`: the staff member's roles (sorted) and department id, to compare with the directory's."""
        roles = await tx.connection.execute_fetchall(
            "SELECT role FROM staff_roles WHERE staff_id = ? ORDER BY role", (staff_id,)
        )
        current = await _one(tx, "SELECT department_id FROM staff WHERE id = ?", (staff_id,))
        if current is None:
            raise StaffNotFound(N_("no user with id {staff_id}"), staff_id=staff_id)
        return [r["role"] for r in roles], current["department_id"]

    async def add_roles(self, tx: Transaction, staff_id: int, roles: Iterable[str]) -> None:
        await tx.connection.executemany(
            "INSERT INTO staff_roles(staff_id, role) VALUES (?, ?)", [(staff_id, r) for r in roles]
        )

    async def clear_roles(self, tx: Transaction, staff_id: int) -> None:
        await tx.connection.execute("DELETE FROM staff_roles WHERE staff_id = ?", (staff_id,))

    async def extension_owner(self, tx: Transaction, extension: str) -> int | None:
        row = await _one(tx, "SELECT staff_id FROM staff_extensions WHERE extension = ?", (extension,))
        return None if row is None else row["staff_id"]

    async def add_extension(self, tx: Transaction, staff_id: int, extension: str) -> None:
        await tx.connection.execute(
            "INSERT OR IGNORE INTO staff_extensions(extension, staff_id) VALUES (?, ?)", (extension, staff_id)
        )

    async def clear_extensions(self, tx: Transaction, staff_id: int) -> None:
        await tx.connection.execute("DELETE FROM staff_extensions WHERE staff_id = ?", (staff_id,))

    async def set_signature(self, tx: Transaction, staff_id: int, full_name: str, job_title: str) -> None:
        await tx.connection.execute(
            "UPDATE staff SET full_name = ?, job_title = ? WHERE id = ?", (full_name, job_title, staff_id)
        )

    async def set_disabled(self, tx: Transaction, staff_id: int, disabled: bool) -> None:
        await tx.connection.execute("UPDATE staff SET disabled = ? WHERE id = ?", (int(disabled), staff_id))

    async def set_password_hash(self, tx: Transaction, staff_id: int, password_hash: str, *, must_change: bool) -> None:
        await tx.connection.execute(
            "UPDATE staff SET password_hash = ?, must_change_password = ? WHERE id = ?",
            (password_hash, int(must_change), staff_id),
        )

    async def set_language(self, tx: Transaction, staff_id: int, language: str | None) -> None:
        await tx.connection.execute("UPDATE staff SET staff_lang = ? WHERE id = ?", (language, staff_id))

    async def set_display_name(self, tx: Transaction, staff_id: int, display_name: str | None) -> None:
        await tx.connection.execute("UPDATE staff SET display_name = ? WHERE id = ?", (display_name, staff_id))

    async def staff_by_name(self, name: str) -> Row | None:
        return _dict(await self.db.fetchone(_STAFF + "WHERE s.name = ?", (name,)))

    async def staff_by_id(self, staff_id: int) -> Row | None:
        return _dict(await self.db.fetchone(_STAFF + "WHERE s.id = ?", (staff_id,)))

    async def all_staff(self) -> list[Row]:
        return _dicts(await self.db.fetchall(_STAFF + "ORDER BY s.name"))

    async def staff_details(self, staff_id: int) -> tuple[list[str], list[str], Row | None]:
        """(roles, extensions in order, the second factor's row with its confirmed_at, or None)."""
        roles = await self.db.fetchall("SELECT role FROM staff_roles WHERE staff_id = ?", (staff_id,))
        exts = await self.db.fetchall(
            "SELECT extension FROM staff_extensions WHERE staff_id = ? ORDER BY extension", (staff_id,)
        )
        totp = await self.db.fetchone("SELECT confirmed_at FROM staff_totp WHERE staff_id = ?", (staff_id,))
        return [r["role"] for r in roles], [e["extension"] for e in exts], _dict(totp)

    async def exact_name(self, typed: str) -> str | None:
        """The account name exactly as typed, when there is one."""
        row = await self.db.fetchone("SELECT name FROM staff WHERE name = ?", (typed,))
        return None if row is None else row["name"]

    async def staff_exists(self, staff_id: int) -> Row | None:
        return _dict(await self.db.fetchone("SELECT id FROM staff WHERE id = ?", (staff_id,)))

    async def password_hash(self, staff_id: int) -> str:
        row = await self.db.fetchone("SELECT password_hash FROM staff WHERE id = ?", (staff_id,))
        if row is None:  # removed since the caller read the account
            raise StaffNotFound(N_("no user with id {staff_id}"), staff_id=staff_id)
        return row["password_hash"]

    # -- sign-in -------------------------------------------------------------------------------

    async def sign_in_row(self, name: str) -> Row | None:
        """(id, password_hash, disabled, source) of the account with this name."""
        return _dict(await self.db.fetchone(_SIGN_IN + "WHERE name = ?", (name,)))

    async def sign_in_row_by_id(self, staff_id: int) -> Row | None:
        return _dict(await self.db.fetchone(_SIGN_IN + "WHERE id = ?", (staff_id,)))

    async def login_name_key(self) -> bytes:
        """The key of the HMAC that the lockout and the audit use for a typed sign-in name (store_keys)."""
        row = await self.db.fetchone("SELECT value FROM store_keys WHERE name = 'login_name'")
        if row is None:  # migration 0411 creates it; a database without it is damaged
            raise RuntimeError("store_keys has no 'login_name' key")
        return bytes(row["value"])

    async def failures_since(self, name_key: str, since: str) -> list[str]:
        """Times of failed sign-ins under this name key since `since`, newest first."""
        return [
            r["at"]
            for r in await self.db.fetchall(
                "SELECT at FROM login_failures WHERE name_key = ? AND at >= ? ORDER BY at DESC", (name_key, since)
            )
        ]

    async def add_failure(self, tx: Transaction, name_key: str, at: str) -> None:
        await tx.connection.execute("INSERT INTO login_failures(name_key, at) VALUES (?, ?)", (name_key, at))

    async def clear_failures(self, tx: Transaction, name_key: str) -> None:
        await tx.connection.execute("DELETE FROM login_failures WHERE name_key = ?", (name_key,))

    # -- sessions ------------------------------------------------------------------------------

    async def insert_session(
        self, tx: Transaction, token_hash: str, staff_id: int, *, created_at: str, expires_at: str
    ) -> None:
        await tx.connection.execute(
            "INSERT INTO sessions(token_hash, staff_id, created_at, expires_at, last_seen_at) VALUES (?, ?, ?, ?, ?)",
            (token_hash, staff_id, created_at, expires_at, created_at),
        )

    async def session(self, token_hash: str) -> Row | None:
        return _dict(await self.db.fetchone("SELECT * FROM sessions WHERE token_hash = ?", (token_hash,)))

    async def touch_session(self, tx: Transaction, token_hash: str, at: str) -> None:
        await tx.connection.execute("UPDATE sessions SET last_seen_at = ? WHERE token_hash = ?", (at, token_hash))

    async def revoke_session(self, tx: Transaction, token_hash: str, at: str) -> None:
        await tx.connection.execute(
            "UPDATE sessions SET revoked_at = ? WHERE token_hash = ? AND revoked_at IS NULL", (at, token_hash)
        )

    async def revoke_sessions(
        self, tx: Transaction, staff_id: int, at: str, *, keep_token_hash: str | None = None
    ) -> None:
        """Revoke every open session of a staff member but `keep_token_hash`'s."""
        if keep_token_hash is None:
            await tx.connection.execute(
                "UPDATE sessions SET revoked_at = ? WHERE staff_id = ? AND revoked_at IS NULL", (at, staff_id)
            )
        else:
            await tx.connection.execute(
                "UPDATE sessions SET revoked_at = ? WHERE staff_id = ? AND revoked_at IS NULL AND token_hash IS NOT ?",
                (at, staff_id, keep_token_hash),
            )

    async def directory_names_with_sessions(self, now: str) -> list[str]:
        """Names of the directory accounts holding a session that has not expired, in order."""
        return [
            r["name"]
            for r in await self.db.fetchall(
                "SELECT DISTINCT s.name FROM staff s JOIN sessions x ON x.staff_id = s.id "
                "WHERE s.source = 'directory' AND x.revoked_at IS NULL AND x.expires_at > ? ORDER BY s.name",
                (now,),
            )
        ]

    async def directory_checked_at(self, staff_id: int) -> str | None:
        row = await self.db.fetchone("SELECT directory_checked_at FROM staff WHERE id = ?", (staff_id,))
        return None if row is None else row["directory_checked_at"]

    async def session_states(self, token_hashes: list[str], role: str) -> list[Row]:
        """(token_hash, revoked_at, expires_at, last_seen_at, disabled, has_role) of these sessions, in one query."""
        return _dicts(
            await self.db.fetchall(
                "SELECT s.token_hash, s.revoked_at, s.expires_at, s.last_seen_at, st.disabled, "
                "EXISTS (SELECT 1 FROM staff_roles r WHERE r.staff_id = st.id AND r.role = ?) AS has_role "
                f"FROM sessions s JOIN staff st ON st.id = s.staff_id WHERE s.token_hash IN ({_marks(token_hashes)})",
                (role, *token_hashes),
            )
        )

    async def staff_with_live_sessions(self, staff_ids: list[int], *, now: str, idle_since: str, role: str) -> set[int]:
        """Which of these hold a session not revoked, expired or idle, on an enabled account (with `role`, if any)."""
        return {
            r["staff_id"]
            for r in await self.db.fetchall(
                "SELECT DISTINCT s.staff_id FROM sessions s JOIN staff st ON st.id = s.staff_id "
                f"WHERE s.staff_id IN ({_marks(staff_ids)}) AND s.revoked_at IS NULL AND st.disabled = 0 "
                "AND s.expires_at > ? AND s.last_seen_at > ? "
                "AND (? = '' OR EXISTS (SELECT 1 FROM staff_roles r WHERE r.staff_id = st.id AND r.role = ?))",
                (*staff_ids, now, idle_since, role, role),
            )
        }

    # -- second factor -------------------------------------------------------------------------

    async def totp(self, staff_id: int) -> Row | None:
        return _dict(await self.db.fetchone("SELECT * FROM staff_totp WHERE staff_id = ?", (staff_id,)))

    async def unused_recovery_code(self, staff_id: int, code_hash: str) -> int | None:
        row = await self.db.fetchone(
            "SELECT id FROM staff_recovery_codes WHERE staff_id = ? AND code_hash = ? AND used_at IS NULL",
            (staff_id, code_hash),
        )
        return None if row is None else row["id"]

    async def spend_recovery_code(self, tx: Transaction, code_id: int, at: str) -> bool:
        """Mark the code used; False when another sign-in spent it first."""
        cur = await tx.connection.execute(
            "UPDATE staff_recovery_codes SET used_at = ? WHERE id = ? AND used_at IS NULL", (at, code_id)
        )
        return cur.rowcount == 1

    async def advance_totp(self, tx: Transaction, staff_id: int, step: int, at: str, sealed: bytes) -> bool:
        """Spend a TOTP step (confirming a pending secret); False when that step or a later one was spent first,
        or the secret changed meanwhile."""
        cur = await tx.connection.execute(
            "UPDATE staff_totp SET last_step = ?, confirmed_at = COALESCE(confirmed_at, ?) "
            "WHERE staff_id = ? AND last_step < ? AND secret_sealed = ?",
            (step, at, staff_id, step, sealed),
        )
        return cur.rowcount == 1

    async def replace_recovery_codes(self, tx: Transaction, staff_id: int, code_hashes: Iterable[str]) -> None:
        await tx.connection.execute("DELETE FROM staff_recovery_codes WHERE staff_id = ?", (staff_id,))
        await tx.connection.executemany(
            "INSERT INTO staff_recovery_codes(staff_id, code_hash) VALUES (?, ?)", [(staff_id, h) for h in code_hashes]
        )

    async def start_totp(self, tx: Transaction, staff_id: int, sealed: bytes, at: str) -> bool:
        """A new pending secret, replacing an unconfirmed one; False when a confirmed one is in place."""
        cur = await tx.connection.execute(
            "INSERT INTO staff_totp(staff_id, secret_sealed, created_at) VALUES (?, ?, ?) "
            "ON CONFLICT(staff_id) DO UPDATE SET secret_sealed = excluded.secret_sealed, "
            "created_at = excluded.created_at, last_step = -1 WHERE staff_totp.confirmed_at IS NULL",
            (staff_id, sealed, at),
        )
        return cur.rowcount == 1

    async def remove_second_factor(self, tx: Transaction, staff_id: int) -> None:
        await tx.connection.execute("DELETE FROM staff_totp WHERE staff_id = ?", (staff_id,))
        await tx.connection.execute("DELETE FROM staff_recovery_codes WHERE staff_id = ?", (staff_id,))

    async def unused_recovery_code_count(self, staff_id: int) -> int:
        sql = "SELECT COUNT(*) AS n FROM staff_recovery_codes WHERE staff_id = ? AND used_at IS NULL"
        return one_row(await self.db.fetchone(sql, (staff_id,)), "COUNT(*)")["n"]


async def _one(tx: Transaction, sql: str, params: tuple[Any, ...]) -> sqlite3.Row | None:
    cursor = await tx.connection.execute(sql, params)
    try:
        return await cursor.fetchone()
    finally:
        await cursor.close()


def _marks(values: list[Any]) -> str:
    return ",".join("?" * len(values))


def _dict(row: sqlite3.Row | None) -> Row | None:
    return None if row is None else dict(row)


def _dicts(rows: Iterable[sqlite3.Row]) -> list[Row]:
    return [dict(r) for r in rows]
