"""Regressions of the archive-search speed-up (bench/ §6): the audit entry still decides whether results are returned."""

from __future__ import annotations


async def test_a_search_whose_audit_entry_fails_returns_an_error_not_results(store) -> None:
    """The search's audit entry now commits in one call on the writer's thread; a refused entry still
    means no page for the searcher, and the failed transaction is rolled back (the writer stays usable)."""
    import sqlite3

    import pytest

    from store.archive import SearchFilters
    from store.models import Actor

    actor = Actor.system("tests")
    await store.archive.search(actor, SearchFilters())
    before = (await store.db.fetchone("SELECT count(*) AS n FROM audit"))["n"]
    async with store.db.write() as tx:
        await tx.execute(
            "CREATE TEMP TRIGGER refuse_audit BEFORE INSERT ON main.audit"
            " BEGIN SELECT RAISE(ABORT, 'audit refused'); END"
        )
    with pytest.raises(sqlite3.IntegrityError, match="audit refused"):
        await store.archive.search(actor, SearchFilters())
    assert not store.db.writer._conn.in_transaction
    async with store.db.write() as tx:
        await tx.execute("DROP TRIGGER temp.refuse_audit")
    page = await store.archive.search(actor, SearchFilters())
    assert page.items == ()
    rows = await store.db.fetchall("SELECT action FROM audit WHERE id > (SELECT max(id) FROM audit) - 2")
    assert (await store.db.fetchone("SELECT count(*) AS n FROM audit"))["n"] == before + 1
    assert [r["action"] for r in rows][-1] == "archive.search"


async def test_write_call_commits_its_work_and_rolls_back_on_error(store) -> None:
    import pytest

    def insert(conn, code):
        conn.execute("INSERT INTO departments(code, name) VALUES (?, 'x')", (code,))
        if code == "BAD":
            raise ValueError("refused")
        return code

    assert await store.db.write_call(insert, "OK1") == "OK1"
    with pytest.raises(ValueError):
        await store.db.write_call(insert, "BAD")
    codes = {r["code"] for r in await store.db.fetchall("SELECT code FROM departments WHERE code IN ('OK1', 'BAD')")}
    assert codes == {"OK1"}
