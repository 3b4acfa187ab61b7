"""Chats and sealing split into services (rules, no SQL) and repositories (SQL) sharing a unit of work with the audit."""

from __future__ import annotations

from pathlib import Path

import pytest

from store.clock import to_iso
from store.models import Actor, Role
from tests.test_retention_repository import sql_in

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("module", ["chats.py", "sealing.py"])
def test_the_chat_services_hold_no_sql(module) -> None:
    assert sql_in(REPO / "store" / module) == []
    assert sql_in(REPO / "store" / "sqlite" / module)  # the repository is where it went


async def test_a_canned_response_and_its_audit_entry_commit_together_or_not_at_all(store, make_staff) -> None:
    manager = (await make_staff("kierownik", Role.CIM_MANAGER)).as_actor()
    repo = store.chats.repo
    at = to_iso(store.clock())
    with pytest.raises(RuntimeError):
        async with repo.transaction() as tx:
            canned_id = await repo.insert_canned(tx, "Godziny", "Urząd jest czynny od 8:00.", at, manager.staff_id)
            await store.audit.append(tx, manager, "canned.add", target_kind="canned", target_id=canned_id)
            raise RuntimeError("the caller fails after both writes")
    assert await repo.canned() == []
    assert [e for e in await store.audit.entries(Actor.system("tests")) if e.action == "canned.add"] == []
    added = await store.chats.add_canned(manager, "Godziny", "Urząd jest czynny od 8:00.")
    assert [r["id"] for r in await repo.canned()] == [added.id]
    entries = [e for e in await store.audit.entries(Actor.system("tests")) if e.action == "canned.add"]
    assert [e.target_id for e in entries] == [str(added.id)]


async def test_a_line_another_writer_stored_makes_the_group_commit_replay_its_batch(store) -> None:
    """The group commit remembers each chat's next seq; a line stored past it (another process) takes that seq,
    the batch's INSERT is refused, and the batch is written again from the database: nothing lost, nothing twice."""
    notice = await store.notices.current("chat", "pl")
    chat_id = (await store.chats.open(notice.id, "pl")).chat.id
    first = await store.chats.post_resident(chat_id, "pierwsza", "c1")
    taken = first.message.seq + 1
    async with store.chats.repo.transaction() as tx:  # as a second writer would, behind the group commit's back
        await store.chats.repo.insert_messages(
            tx, [(chat_id, taken, "resident", None, "z innego procesu", to_iso(store.clock()), "other")]
        )
    second = await store.chats.post_resident(chat_id, "druga", "c2")
    assert second.new and second.message.seq == taken + 1
    again = await store.chats.post_resident(chat_id, "druga", "c2")  # a retry: answered with the stored line
    assert not again.new and again.message.seq == second.message.seq
    lines = [(m.seq, m.text) for m in await store.chats.history(chat_id) if m.sender == "resident"]
    assert lines == [(first.message.seq, "pierwsza"), (taken, "z innego procesu"), (taken + 1, "druga")]
