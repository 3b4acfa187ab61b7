"""Retention and accounts split into services (rules, no SQL) and repositories (SQL) sharing a unit of work with the audit."""

from __future__ import annotations

import ast
import re
from datetime import datetime, timezone
from pathlib import Path

import pytest

from store.backend import BackendHooks
from store.models import Actor, Role

REPO = Path(__file__).resolve().parents[1]
_SQL = re.compile(r"\b(SELECT|INSERT\s+INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM|PRAGMA|sqlite_master)\b")
OLD = datetime(2025, 8, 31, 10, 0, tzinfo=timezone.utc)


def sql_in(path: Path) -> list[str]:
    """SQL text, a `.db` / connection reach, or an import of sqlite3 or the SQLite package, in one module."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and _SQL.search(node.value):
            found.append(f"{node.lineno}: {node.value[:60]!r}")
        elif isinstance(node, ast.Attribute) and node.attr in (
            "db",
            "execute",
            "execute_fetchall",
            "executemany",
            "connection",
            "fetchall",
            "fetchone",
        ):
            found.append(f"{node.lineno}: .{node.attr}")
        elif isinstance(node, ast.Import) and any(a.name.split(".")[0] in ("sqlite3", "aiosqlite") for a in node.names):
            found.append(f"{node.lineno}: import")
    return found


@pytest.mark.parametrize(
    "service, repository",
    [
        ("retention.py", "retention.py"),
        ("accounts.py", "accounts.py"),
        ("session_watch.py", "accounts.py"),
        ("listening.py", "listening.py"),
        ("callbacks.py", "callbacks.py"),
        ("call_notes.py", "call_notes.py"),
        ("queue_log.py", "queue_log.py"),
        ("service_report.py", "service_report.py"),
        ("reports.py", "reports.py"),
        ("extensions.py", "extensions.py"),
    ],
)
def test_the_split_services_hold_no_sql(service, repository) -> None:
    assert sql_in(REPO / "store" / service) == []
    assert sql_in(REPO / "store" / "sqlite" / repository)  # the repository is where it went


@pytest.mark.parametrize(
    "planted",
    [
        'rows = await self.db.fetchall("SELECT * FROM holds")',
        'await tx.execute("UPDATE holds SET released_at = ?", (now,))',
        'q = "DELETE FROM messages WHERE conversation_id = ?"',
        "import sqlite3",
    ],
)
def test_the_check_finds_planted_sql(tmp_path, planted) -> None:
    module = tmp_path / "service.py"
    module.write_text(f'"""A service."""\n\nasync def f(self, tx, now):\n    {planted}\n', encoding="utf-8")
    assert sql_in(module)


def test_the_backend_hooks_are_what_the_domain_asks_for(store) -> None:
    assert isinstance(store.backend, BackendHooks)
    assert store.retention.backend is store.backend


async def test_an_audit_entry_joins_the_repositorys_unit_of_work(store, retention_data, make_staff) -> None:
    """The change and the entry that records it commit together, or neither does."""
    manager = (await make_staff("kierownik", Role.CIM_MANAGER)).as_actor()
    chat = await retention_data.chat(OLD)
    repo = store.retention.repo
    with pytest.raises(RuntimeError):
        async with repo.transaction() as tx:
            await repo.insert_hold(tx, chat, "art. 6", "SO/1/26", manager.staff_id, "2026-03-02T09:00:00.000000Z", None)
            await store.audit.append(tx, manager, "retention.hold_set", target_kind="conversation", target_id=chat)
            raise RuntimeError("the caller fails after both writes")
    assert await repo.holds(include_released=True, conversation_id=chat) == []
    assert [e for e in await store.audit.entries(Actor.system("tests")) if e.action == "retention.hold_set"] == []
    async with repo.transaction() as tx:
        hold_id = await repo.insert_hold(
            tx, chat, "art. 6", "SO/1/26", manager.staff_id, "2026-03-02T09:00:00.000000Z", None
        )
        await store.audit.append(tx, manager, "retention.hold_set", target_kind="conversation", target_id=chat)
    assert [h["id"] for h in await repo.holds(include_released=True, conversation_id=chat)] == [hold_id]
    assert [
        e.target_id for e in await store.audit.entries(Actor.system("tests")) if e.action == "retention.hold_set"
    ] == [str(chat)]


@pytest.mark.ordinance("§6")
async def test_a_hold_on_a_missing_conversation_leaves_no_hold_and_no_entry(store, retention_data, make_staff) -> None:
    """All or nothing through the service: one unknown id, no hold for the known one and no `ok` entry."""
    manager = (await make_staff("kierownik", Role.CIM_MANAGER)).as_actor()
    chat = await retention_data.chat(OLD)
    with pytest.raises(Exception, match="no conversation 999999"):
        await store.retention.add_hold(manager, [chat, 999999], legal_basis="art. 6", case_reference="SO/1/26")
    assert await store.retention.repo.holds(include_released=True, conversation_id=chat) == []
    assert [
        e
        for e in await store.audit.entries(Actor.system("tests"))
        if e.action == "retention.hold_set" and e.outcome == "ok"
    ] == []
