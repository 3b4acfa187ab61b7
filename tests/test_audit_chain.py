"""The audit log is append-only and hash-chained: edits, deletions and reordering are detected."""

from __future__ import annotations

import sqlite3

import pytest

from store.audit import GENESIS
from tests.fixtures.audit_log import audit_log
from tests.fixtures.store import SYSTEM


async def _fill(store, n: int = 6) -> None:
    for i in range(n):
        async with store.db.write() as tx:
            await store.audit.append(tx, SYSTEM, "test.event", target_kind="thing", target_id=i, details={"i": i})


def _tamper(db_path, *statements: str) -> None:
    """What an attacker with the file could do: drop the guard triggers and rewrite rows."""
    conn = sqlite3.connect(db_path)
    conn.execute("DROP TRIGGER audit_no_update")
    conn.execute("DROP TRIGGER audit_no_delete")
    for sql in statements:
        conn.execute(sql)
    conn.commit()
    conn.close()


@pytest.mark.ordinance("§3")
async def test_intact_chain_verifies(store) -> None:
    await _fill(store)
    check = await store.audit.verify()
    assert (check.ok, check.entries, check.first_broken) == (True, 6, None)
    first = await store.db.fetchone("SELECT prev_hash FROM audit WHERE id = 1")
    assert first["prev_hash"] == GENESIS


async def test_the_database_refuses_updates_and_deletes(store) -> None:
    await _fill(store, 2)
    for sql in ("UPDATE audit SET action = 'x' WHERE id = 1", "DELETE FROM audit WHERE id = 1"):
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            async with store.db.write() as tx:
                await tx.execute(sql)
    assert (await store.audit.verify()).ok


@pytest.mark.ordinance("§3")
@pytest.mark.parametrize(
    ("statements", "first_broken"),
    [
        (["UPDATE audit SET actor_name = 'someone else' WHERE id = 3"], 3),
        (["UPDATE audit SET details = '{\"i\":99}' WHERE id = 4"], 4),
        (["DELETE FROM audit WHERE id = 2"], 3),
        # swap the contents of entries 2 and 5 (reordering), hashes and all
        (
            [
                "UPDATE audit SET id = 100 WHERE id = 2",
                "UPDATE audit SET id = 2 WHERE id = 5",
                "UPDATE audit SET id = 5 WHERE id = 100",
            ],
            2,
        ),
    ],
    ids=["edited", "edited-details", "deleted", "reordered"],
)
async def test_tampering_is_detected_at_the_first_broken_entry(store, settings, statements, first_broken) -> None:
    await _fill(store)
    _tamper(settings.db_path, *statements)
    check = await store.audit.verify()
    assert check.ok is False and check.first_broken == first_broken


async def test_edit_with_recomputed_own_hash_is_caught_by_its_mac(store, settings) -> None:
    """The chain alone would only break at the next link (4); the MAC, made with a key the database does
    not hold, names the rewritten entry itself."""
    await _fill(store)
    from store.audit import entry_hash

    row = await store.db.fetchone("SELECT * FROM audit WHERE id = 3")
    forged = dict(row)
    forged["actor_name"] = "forger"
    new_hash = entry_hash(row["prev_hash"], forged)
    _tamper(settings.db_path, f"UPDATE audit SET actor_name = 'forger', hash = '{new_hash}' WHERE id = 3")
    check = await store.audit.verify()
    assert (check.ok, check.first_broken) == (False, 3)
    assert check.problems[0].kind == "mac"


async def test_reading_the_log_needs_the_role_and_is_itself_audited(store, make_staff) -> None:
    from store.errors import NotPermitted

    consultant = (await make_staff("anna", "consultant")).as_actor()
    dpo = (await make_staff("iod", "dpo")).as_actor()
    with pytest.raises(NotPermitted):
        await store.audit.entries(consultant)
    entries = await store.audit.entries(dpo, action="audit.read")
    assert [e.outcome for e in entries] == ["refused"]
    last = (await audit_log(store))[-1]  # the helper leaves out its own reads, never iod's
    assert (last.actor_name, last.action) == ("iod", "audit.read")
