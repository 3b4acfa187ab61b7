"""The persistence boundary (store/backend.py): nothing outside store/ touches a database connection.

webchat/, cim/ and tui/ reach the records through the store's services only: no `.db` attribute
(the Store's or a service's Database), no connection (`.writer`, `write()` transactions taken from
it), no sqlite3/aiosqlite import and no store.db / store.sqlite import. Checked on the syntax tree,
so a comment or a message that mentions "a sqlite3 shell" is no finding, and shown to catch a
planted example so the check can fail.

bench/ is held to the same rule about the store's connection; it may open the database file on a
sqlite3 connection of its own (bench/sqlfile.py, the dataset generator, the purge's concurrent
reader), as any other process beside the store would.
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
#: What bench/ may import that the packages above may not: its own connection to the file, never the store's.
BENCH_OWN_FILE = ("sqlite3",)


def connection_uses(path: Path, allowed: tuple[str, ...] = ()) -> list[str]:
    """Every place in one module that reaches past the store's services to the database (line: what);
    `allowed` names modules it may import all the same."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in _ATTRIBUTES:
            found.append(f"{node.lineno}: .{node.attr}")
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("getattr", "setattr")
            and len(node.args) >= 2
            and isinstance(node.args[1], ast.Constant)
            and node.args[1].value in _ATTRIBUTES
        ):
            found.append(f"{node.lineno}: {node.func.id}(..., {node.args[1].value!r})")
        elif isinstance(node, ast.Import):
            found += [
                f"{node.lineno}: import {a.name}"
                for a in node.names
                if _is_database_module(a.name) and not _is_database_module(a.name, allowed)
            ]
        elif isinstance(node, ast.ImportFrom):
            module = ("." * node.level) + (node.module or "")
            if (_is_database_module(node.module or "") and not _is_database_module(node.module or "", allowed)) or (
                node.level and (node.module or "").split(".")[0] in ("db", "sqlite")
            ):
                found.append(f"{node.lineno}: from {module} import ...")
            found += [
                f"{node.lineno}: import {a.name}"
                for a in node.names
                if a.name in _NAMES or (node.module == "store" and a.name in ("db", "sqlite"))
            ]
        elif isinstance(node, ast.Name) and node.id in _NAMES:
            found.append(f"{node.lineno}: {node.id}")
    return found


def _is_database_module(name: str, modules: tuple[str, ...] = _MODULES) -> bool:
    return any(name == m or name.startswith(m + ".") for m in modules)


def test_no_module_outside_the_store_touches_a_connection() -> None:
    findings = {}
    files = [
        p for package in OUTSIDE_STORE for p in sorted((REPO / package).rglob("*.py")) if "node_modules" not in p.parts
    ]
    assert len(files) > 40  # the scan sees the real trees (webchat, cim, tui), not an empty folder
    for path in files:
        uses = connection_uses(path)
        if uses:
            findings[str(path.relative_to(REPO))] = uses
    assert findings == {}, "use a store method instead (README, Layout: the persistence boundary)"


def test_the_benchmarks_never_borrow_the_stores_connection() -> None:
    """bench/ reads through public store methods; its baselines and fixtures use a connection of its own."""
    files = sorted((REPO / "bench").rglob("*.py"))
    assert len(files) > 10
    findings = {str(p.relative_to(REPO)): uses for p in files if (uses := connection_uses(p, BENCH_OWN_FILE))}
    assert findings == {}, "use a store method, or bench/sqlfile.py's own connection for a baseline"


@pytest.mark.parametrize(
    "planted",
    [
        'rows = await store.db.fetchall("SELECT id, department_id FROM staff")',
        "await store.db.write_call(fill)",
        "import aiosqlite",
        "from store.sqlite.database import run_on_thread",
    ],
)
def test_the_bench_check_finds_the_stores_connection_and_allows_its_own_file(tmp_path, planted) -> None:
    module = tmp_path / "planted.py"
    module.write_text(
        f'"""A benchmark."""\n\nimport sqlite3\n\nasync def f(store, fill):\n    {planted}\n', encoding="utf-8"
    )
    found = connection_uses(module, BENCH_OWN_FILE)
    assert found and not any("sqlite3" in f for f in found), found
    own = tmp_path / "own.py"
    own.write_text('"""A benchmark\'s own file."""\n\nimport sqlite3\n', encoding="utf-8")
    assert connection_uses(own, BENCH_OWN_FILE) == [] and connection_uses(own) != []


@pytest.mark.parametrize(
    "planted",
    [
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
    ],
)
def test_the_check_finds_a_planted_connection_use(tmp_path, planted) -> None:
    module = tmp_path / "planted.py"
    module.write_text(
        '"""A module that reaches for the database."""\n\nasync def f(store, hub, actor):\n'
        + "".join(f"    {line}\n" for line in planted.splitlines()),
        encoding="utf-8",
    )
    assert connection_uses(module), planted


def test_store_methods_and_words_are_no_finding(tmp_path) -> None:
    module = tmp_path / "clean.py"
    module.write_text(
        '"""Fine: services, and text that merely names SQLite."""\n\n'
        "async def f(store):\n"
        "    await store.ping()\n"
        "    print('another connection (a report, a backup, a sqlite3 shell) held it')\n"
        "    return store.settings.db_path, await store.applied_migrations()\n",
        encoding="utf-8",
    )
    assert connection_uses(module) == []
