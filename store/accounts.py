"""Staff accounts: argon2id passwords, roles, departments, lockout, and session tokens."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
from datetime import timedelta
from typing import Iterable

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from .audit import AuditLog
from .clock import Clock, from_iso, to_iso
from .db import Database
from .errors import (
    AccountLocked, AlreadyExists, AuthenticationFailed, InvalidInput, SessionExpired, StaffNotFound,
)
from .models import Actor, Department, Role, Session, Staff
from .policy import Permission
from .session_watch import DISABLED, PASSWORD_CHANGED, ROLE_REMOVED, SIGNED_OUT, AccountChange, AccountChanges
from .settings import Settings

MIN_PASSWORD = 8
MAX_PASSWORD = 1024
MAX_NAME = 64
_LOGIN_FAILED = "wrong user name or password"


def make_hasher(profile: str) -> PasswordHasher:
    if profile == "fast":  # tests only: cheap, still argon2id
        return PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    return PasswordHasher()  # argon2-cffi's default: RFC 9106 low-memory profile, argon2id


def parse_roles(names: Iterable[str]) -> frozenset[Role]:
    roles = set()
    for name in names:
        try:
            roles.add(Role(name.strip()))
        except ValueError:
            raise InvalidInput(
                f"{name!r} is not a role; roles are: {', '.join(r.value for r in Role)}"
            ) from None
    if not roles:
        raise InvalidInput("a staff member needs at least one role")
    return frozenset(roles)


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _check_password(password: str) -> None:
    if not password or not password.strip():
        raise InvalidInput("the password is empty")
    if len(password) < MIN_PASSWORD:
        raise InvalidInput(f"the password must have at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise InvalidInput(f"the password must have at most {MAX_PASSWORD} characters")


def _check_signature(full_name: str, job_title: str) -> tuple[str, str]:
    """A full name and title as letters print them: one line each, no control characters, of sane length."""
    out = []
    for label, value in (("full name", full_name), ("title", job_title)):
        value = " ".join((value or "").split())
        if any(ord(ch) < 32 or 0x7f <= ord(ch) < 0xa0 for ch in value):
            raise InvalidInput(f"the {label} has control characters")
        if len(value) > 200:
            raise InvalidInput(f"the {label} is longer than 200 characters")
        out.append(value)
    return out[0], out[1]


def _check_name(name: str, what: str = "user name") -> str:
    name = name.strip()
    if not name or len(name) > MAX_NAME or not all(c.isalnum() or c in "._-" for c in name):
        raise InvalidInput(
            f"{what} {name[:MAX_NAME]!r} must be 1-{MAX_NAME} letters, digits, dots, dashes or underscores"
        )
    return name


class Accounts:
    def __init__(self, db: Database, audit: AuditLog, settings: Settings, clock: Clock) -> None:
        self.db = db
        self.audit = audit
        self.settings = settings
        self.clock = clock
        self.hasher = make_hasher(settings.password_profile)
        # Verified against when the name is unknown, so both paths cost one argon2 verification.
        self._dummy_hash = self.hasher.hash(secrets.token_hex(16))
        self._name_key: bytes | None = None  # store_keys.login_name, read on the first sign-in
        #: Told after the COMMIT of anything that ends sessions (the chat server ends live sockets on it).
        self.changes = AccountChanges()

    # -- departments ---------------------------------------------------------------------------

    async def add_department(self, actor: Actor, code: str, name: str) -> Department:
        await self.audit.guard(actor, Permission.MANAGE_ACCOUNTS, "department.add")
        code = _check_name(code, "department code")
        if not name.strip():
            raise InvalidInput("the department needs a name")
        async with self.db.write() as tx:
            if await (await tx.execute("SELECT 1 FROM departments WHERE code = ?", (code,))).fetchone():
                raise AlreadyExists(f"department {code!r} already exists")
            cur = await tx.execute("INSERT INTO departments(code, name) VALUES (?, ?)", (code, name.strip()))
            await self.audit.append(tx, actor, "department.add", target_kind="department", target_id=code)
        return Department(id=cur.lastrowid, code=code, name=name.strip())

    async def departments(self) -> list[Department]:
        rows = await self.db.fetchall("SELECT id, code, name FROM departments ORDER BY code")
        return [Department(id=r["id"], code=r["code"], name=r["name"]) for r in rows]

    # -- staff ---------------------------------------------------------------------------------

    async def add_staff(
        self,
        actor: Actor,
        name: str,
        roles: Iterable[str | Role],
        password: str,
        *,
        department: str | None = None,
        full_name: str = "",
        extensions: Iterable[str] = (),
        job_title: str = "",
    ) -> Staff:
        await self.audit.guard(actor, Permission.MANAGE_ACCOUNTS, "staff.add")
        name = _check_name(name)
        role_set = parse_roles(roles)
        _check_password(password)
        full_name, job_title = _check_signature(full_name, job_title)
        if Role.DEPARTMENT_HEAD in role_set and not department:
            raise InvalidInput("a department head needs --department")
        password_hash = await asyncio.to_thread(self.hasher.hash, password)
        async with self.db.write() as tx:
            if await (await tx.execute("SELECT 1 FROM staff WHERE name = ?", (name,))).fetchone():
                raise AlreadyExists(f"user {name!r} already exists")
            department_id = await self._department_id(tx, department)
            cur = await tx.execute(
                "INSERT INTO staff(name, full_name, password_hash, department_id, created_at, job_title) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (name, full_name, password_hash, department_id, to_iso(self.clock()), job_title),
            )
            staff_id = cur.lastrowid
            await tx.executemany(
                "INSERT INTO staff_roles(staff_id, role) VALUES (?, ?)", [(staff_id, r.value) for r in role_set]
            )
            for ext in extensions:
                await self._add_extension(tx, staff_id, ext)
            await self.audit.append(
                tx, actor, "staff.add", target_kind="staff", target_id=staff_id,
                details={"name": name, "roles": sorted(r.value for r in role_set), "department": department},
            )
        return await self.get(name)

    async def _department_id(self, tx, code: str | None) -> int | None:
        if not code:
            return None
        row = await (await tx.execute("SELECT id FROM departments WHERE code = ?", (code,))).fetchone()
        if row is None:
            raise InvalidInput(f"department {code!r} does not exist; add it with `cim departments add`")
        return row["id"]

    async def _add_extension(self, tx, staff_id: int, extension: str) -> None:
        extension = extension.strip()
        if not extension.isdigit() or len(extension) > 16:
            raise InvalidInput(f"extension {extension!r} must be digits only")
        row = await (await tx.execute("SELECT staff_id FROM staff_extensions WHERE extension = ?", (extension,))).fetchone()
        if row and row["staff_id"] != staff_id:
            raise AlreadyExists(f"extension {extension} already belongs to someone else")
        await tx.execute("INSERT OR IGNORE INTO staff_extensions(extension, staff_id) VALUES (?, ?)", (extension, staff_id))

    async def set_extensions(self, actor: Actor, name: str, extensions: Iterable[str]) -> Staff:
        await self.audit.guard(actor, Permission.MANAGE_ACCOUNTS, "staff.extensions")
        staff = await self.get(name)
        exts = list(extensions)
        async with self.db.write() as tx:
            await tx.execute("DELETE FROM staff_extensions WHERE staff_id = ?", (staff.id,))
            for ext in exts:
                await self._add_extension(tx, staff.id, ext)
            await self.audit.append(tx, actor, "staff.extensions", target_kind="staff", target_id=staff.id,
                                    details={"extensions": exts})
        return await self.get(name)

    async def set_signature(self, actor: Actor, name: str, *, full_name: str | None = None,
                            job_title: str | None = None) -> Staff:
        """The full name and title a person signs letters with (None leaves a value as it is)."""
        await self.audit.guard(actor, Permission.MANAGE_ACCOUNTS, "staff.signature")
        staff = await self.get(name)
        new_name, new_title = _check_signature(staff.full_name if full_name is None else full_name,
                                               staff.job_title if job_title is None else job_title)
        async with self.db.write() as tx:
            await tx.execute("UPDATE staff SET full_name = ?, job_title = ? WHERE id = ?",
                             (new_name, new_title, staff.id))
            await self.audit.append(tx, actor, "staff.signature", target_kind="staff", target_id=staff.id,
                                    details={"full_name": new_name, "job_title": new_title})
        return await self.get(name)

    async def get(self, name: str) -> Staff:
        row = await self.db.fetchone(
            "SELECT s.*, d.code AS department FROM staff s LEFT JOIN departments d ON d.id = s.department_id "
            "WHERE s.name = ?", (name.strip(),))
        if row is None:
            raise StaffNotFound(f"no user named {name!r}")
        return await self._staff(row)

    async def get_by_id(self, staff_id: int) -> Staff:
        row = await self.db.fetchone(
            "SELECT s.*, d.code AS department FROM staff s LEFT JOIN departments d ON d.id = s.department_id "
            "WHERE s.id = ?", (staff_id,))
        if row is None:
            raise StaffNotFound(f"no user with id {staff_id}")
        return await self._staff(row)

    async def _staff(self, row) -> Staff:
        roles = await self.db.fetchall("SELECT role FROM staff_roles WHERE staff_id = ?", (row["id"],))
        exts = await self.db.fetchall(
            "SELECT extension FROM staff_extensions WHERE staff_id = ? ORDER BY extension", (row["id"],))
        return Staff(
            id=row["id"], name=row["name"], full_name=row["full_name"], job_title=row["job_title"],
            roles=frozenset(Role(r["role"]) for r in roles), department=row["department"],
            disabled=bool(row["disabled"]), created_at=from_iso(row["created_at"]),
            extensions=tuple(e["extension"] for e in exts),
        )

    async def list_staff(self, actor: Actor | None = None) -> list[Staff]:
        """All accounts. Names and roles are not resident data; any signed-in staff member may list them."""
        rows = await self.db.fetchall(
            "SELECT s.*, d.code AS department FROM staff s LEFT JOIN departments d ON d.id = s.department_id "
            "ORDER BY s.name")
        return [await self._staff(r) for r in rows]

    async def set_disabled(self, actor: Actor, name: str, disabled: bool) -> Staff:
        action = "staff.disable" if disabled else "staff.enable"
        await self.audit.guard(actor, Permission.MANAGE_ACCOUNTS, action)
        staff = await self.get(name)
        async with self.db.write() as tx:
            await tx.execute("UPDATE staff SET disabled = ? WHERE id = ?", (int(disabled), staff.id))
            if disabled:
                await tx.execute("UPDATE sessions SET revoked_at = ? WHERE staff_id = ? AND revoked_at IS NULL",
                                 (to_iso(self.clock()), staff.id))
            await self.audit.append(tx, actor, action, target_kind="staff", target_id=staff.id)
        if disabled:
            self.changes.notify(AccountChange(staff.id, DISABLED))
        return await self.get(name)

    async def set_password(self, actor: Actor, name: str, password: str) -> None:
        is_self = actor.staff_id is not None and actor.name.lower() == name.strip().lower()
        if not is_self:
            await self.audit.guard(actor, Permission.MANAGE_ACCOUNTS, "staff.password")
        staff = await self.get(name)
        _check_password(password)
        password_hash = await asyncio.to_thread(self.hasher.hash, password)
        async with self.db.write() as tx:
            await tx.execute("UPDATE staff SET password_hash = ? WHERE id = ?", (password_hash, staff.id))
            await tx.execute("UPDATE sessions SET revoked_at = ? WHERE staff_id = ? AND revoked_at IS NULL",
                             (to_iso(self.clock()), staff.id))
            await self.audit.append(tx, actor, "staff.password", target_kind="staff", target_id=staff.id)
        self.changes.notify(AccountChange(staff.id, PASSWORD_CHANGED))

    async def set_roles(self, actor: Actor, name: str, roles: Iterable[str | Role]) -> Staff:
        await self.audit.guard(actor, Permission.MANAGE_ACCOUNTS, "staff.roles")
        role_set = parse_roles(roles)
        staff = await self.get(name)
        if Role.DEPARTMENT_HEAD in role_set and not staff.department:
            raise InvalidInput("a department head needs a department")
        async with self.db.write() as tx:
            await tx.execute("DELETE FROM staff_roles WHERE staff_id = ?", (staff.id,))
            await tx.executemany("INSERT INTO staff_roles(staff_id, role) VALUES (?, ?)",
                                 [(staff.id, r.value) for r in role_set])
            await self.audit.append(tx, actor, "staff.roles", target_kind="staff", target_id=staff.id,
                                    details={"roles": sorted(r.value for r in role_set)})
        if Role.CONSULTANT in staff.roles and Role.CONSULTANT not in role_set:
            self.changes.notify(AccountChange(staff.id, ROLE_REMOVED))
        return await self.get(name)

    # -- login and sessions --------------------------------------------------------------------

    async def _failure_identity(self, name: str) -> tuple[str, str]:
        """(lockout key, audit name) of a typed sign-in name, neither of them the typed text when it is no account's.

        A password typed into the name field must not reach the audit log or login_failures: the
        lockout is keyed by an HMAC of the name (key in store_keys), and an unknown name is audited
        as `unknown-name#` + 12 hex digits of that HMAC, so repeated attempts still correlate.
        """
        if self._name_key is None:
            row = await self.db.fetchone("SELECT value FROM store_keys WHERE name = 'login_name'")
            self._name_key = bytes(row["value"])
        typed = name.strip()[:MAX_NAME * 4]
        digest = hmac.new(self._name_key, typed.lower().encode("utf-8", "replace"), hashlib.sha256).hexdigest()
        known = await self.db.fetchone("SELECT name FROM staff WHERE name = ?", (typed,)) if typed else None
        return digest, known["name"] if known else f"unknown-name#{digest[:12]}"

    async def login(self, name: str, password: str) -> Session:
        """Sign in. Unknown name and wrong password give the same error after the same work."""
        name_key, audit_name = await self._failure_identity(name)
        now = self.clock()
        window_start = to_iso(now - timedelta(minutes=self.settings.lockout_window_minutes))
        failures = await self.db.fetchall(
            "SELECT at FROM login_failures WHERE name_key = ? AND at >= ? ORDER BY at DESC",
            (name_key, window_start))
        if len(failures) >= self.settings.lockout_failures:
            locked_until = from_iso(failures[0]["at"]) + timedelta(minutes=self.settings.lockout_minutes)
            if now < locked_until:
                async with self.db.write() as tx:
                    await self.audit.append(tx, Actor(None, audit_name, frozenset()), "login", outcome="refused",
                                            details={"reason": "locked"})
                raise AccountLocked(
                    f"too many failed sign-ins; try again after {locked_until.astimezone().strftime('%H:%M')}"
                )
        row = await self.db.fetchone("SELECT id, password_hash, disabled FROM staff WHERE name = ?", (name.strip(),))
        stored_hash = row["password_hash"] if row else self._dummy_hash
        ok = await asyncio.to_thread(self._verify, stored_hash, password[:MAX_PASSWORD * 4])
        if not ok or row is None or row["disabled"]:
            async with self.db.write() as tx:
                await tx.execute("INSERT INTO login_failures(name_key, at) VALUES (?, ?)", (name_key, to_iso(now)))
                await self.audit.append(tx, Actor(row["id"] if row else None, audit_name, frozenset()), "login",
                                        outcome="refused")
            raise AuthenticationFailed(_LOGIN_FAILED)
        new_hash = None
        if self.hasher.check_needs_rehash(stored_hash):
            new_hash = await asyncio.to_thread(self.hasher.hash, password)
        token = secrets.token_urlsafe(32)
        expires = now + timedelta(hours=self.settings.session_hours)
        async with self.db.write() as tx:
            if new_hash:
                await tx.execute("UPDATE staff SET password_hash = ? WHERE id = ?", (new_hash, row["id"]))
            await tx.execute("DELETE FROM login_failures WHERE name_key = ?", (name_key,))
            await tx.execute(
                "INSERT INTO sessions(token_hash, staff_id, created_at, expires_at, last_seen_at) VALUES (?, ?, ?, ?, ?)",
                (_token_hash(token), row["id"], to_iso(now), to_iso(expires), to_iso(now)))
            staff = await self.get_by_id(row["id"])
            await self.audit.append(tx, staff.as_actor(), "login", target_kind="staff", target_id=row["id"],
                                    details={"rehashed": bool(new_hash)})
        return Session(token=token, staff=staff, expires_at=expires)

    def _verify(self, stored_hash: str, password: str) -> bool:
        try:
            return self.hasher.verify(stored_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    async def authenticate(self, token: str) -> Actor:
        """The actor behind a session token; refreshes the idle timer. Raises SessionExpired."""
        if not isinstance(token, str) or not token or len(token) > 200:
            raise SessionExpired("not signed in")
        row = await self.db.fetchone("SELECT * FROM sessions WHERE token_hash = ?", (_token_hash(token),))
        now = self.clock()
        if row is None or row["revoked_at"]:
            raise SessionExpired("the session has ended; sign in again")
        idle_limit = from_iso(row["last_seen_at"]) + timedelta(minutes=self.settings.session_idle_minutes)
        if now >= from_iso(row["expires_at"]) or now >= idle_limit:
            raise SessionExpired("the session has expired; sign in again")
        staff = await self.get_by_id(row["staff_id"])
        if staff.disabled:
            raise SessionExpired("the account is disabled")
        async with self.db.write() as tx:
            await tx.execute("UPDATE sessions SET last_seen_at = ? WHERE token_hash = ?",
                             (to_iso(now), row["token_hash"]))
        return staff.as_actor()

    async def logout(self, token: str) -> None:
        row = await self.db.fetchone("SELECT staff_id FROM sessions WHERE token_hash = ?", (_token_hash(token),))
        if row is None:
            return
        staff = await self.get_by_id(row["staff_id"])
        async with self.db.write() as tx:
            await tx.execute("UPDATE sessions SET revoked_at = ? WHERE token_hash = ? AND revoked_at IS NULL",
                             (to_iso(self.clock()), _token_hash(token)))
            await self.audit.append(tx, staff.as_actor(), "logout", target_kind="staff", target_id=staff.id)
        self.changes.notify(AccountChange(staff.id, SIGNED_OUT, _token_hash(token)))
