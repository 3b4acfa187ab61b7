"""The persistence boundary (store/backend.py): nothing outside store/ touches a database connection.

webchat/, cim/ and tui/ reach the records through the store's services only: no `.db` attribute
(the Store's or a service's Database), no connection (`.writer`, `write()` transactions taken from
it), no sqlite3/aiosqlite import and no store.db / store.sqlite import. Checked on the syntax tree,
so a comment or a message that mentions "a sqlite3 shell" is no finding, and shown to catch a
planted example so the check can fail.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
#: The packages outside the store; none of them may open, borrow or query a connection.
OUTSIDE_STORE = ("webchat", "cim", "tui")
_ATTRIBUTES = {"db", "writer", "_writer", "_reader", "write_call", "checkpoint_truncate"}
_MODULES = ("sqlite3", "aiosqlite", "store.db", "store.sqlite")
_NAMES = {"run_on_thread", "Database"}


def connection_uses(path: Path) -> list[str]:
    """Every place in one module that reaches past the store's services to the database (line: what)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in _ATTRIBUTES:
            found.append(f"{node.lineno}: .{node.attr}")
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("getattr", "setattr")
              and len(node.args) >= 2 and isinstance(node.args[1], ast.Constant) and node.args[1].value in _ATTRIBUTES):
            found.append(f"{node.lineno}: {node.func.id}(..., {node.args[1].value!r})")
        elif isinstance(node, ast.Import):
            found += [f"{node.lineno}: import {a.name}" for a in node.names if _is_database_module(a.name)]
        elif isinstance(node, ast.ImportFrom):
            module = ("." * node.level) + (node.module or "")
            if _is_database_module(node.module or "") or (node.level and (node.module or "").split(".")[0] in
                                                          ("db", "sqlite")):
                found.append(f"{node.lineno}: from {module} import ...")
            found += [f"{node.lineno}: import {a.name}" for a in node.names
                      if a.name in _NAMES or (node.module == "store" and a.name in ("db", "sqlite"))]
        elif isinstance(node, ast.Name) and node.id in _NAMES:
            found.append(f"{node.lineno}: {node.id}")
    return found


def _is_database_module(name: str) -> bool:
    return any(name == m or name.startswith(m + ".") for m in _MODULES)


def test_no_module_outside_the_store_touches_a_connection() -> None:
    findings = {}
    files = [p for package in OUTSIDE_STORE for p in sorted((REPO / package).rglob("*.py"))
             if "node_modules" not in p.parts]
    assert len(files) > 40  # the scan sees the real trees (webchat, cim, tui), not an empty folder
    for path in files:
        uses = connection_uses(path)
        if uses:
            findings[str(path.relative_to(REPO))] = uses
    assert findings == {}, "use a store method instead (README, Layout: the persistence boundary)"


@pytest.mark.parametrize("planted", [
    'await hub.store.db.fetchone("SELECT 1")',
    "async with store.db.write() as tx:\n    await store.audit.append(tx, actor, 'x')",
    "rows = await store.retention.db.fetchall('SELECT * FROM holds')",
    "conn = store.db.writer",
    "db = getattr(store, 'db')",
    "import sqlite3",
    "import aiosqlite as a",
    "from store.db import run_on_thread",
    "from store.sqlite.database import Database",
    "from store import sqlite",
    "from ..db import Database",
])
def test_the_check_finds_a_planted_connection_use(tmp_path, planted) -> None:
    module = tmp_path / "planted.py"
    module.write_text('"""A module that reaches for the database."""\n\nasync def f(store, hub, actor):\n'
                      + "".join(f"    {line}\n" for line in planted.splitlines()), encoding="utf-8")
    assert connection_uses(module), planted


def test_store_methods_and_words_are_no_finding(tmp_path) -> None:
    module = tmp_path / "clean.py"
    module.write_text('"""Fine: services, and text that merely names SQLite."""\n\n'
                      "async def f(store):\n"
                      "    await store.ping()\n"
                      "    print('another connection (a report, a backup, a sqlite3 shell) held it')\n"
                      "    return store.settings.db_path, await store.applied_migrations()\n", encoding="utf-8")
    assert connection_uses(module) == []
