"""The desk's topics, skills and capacity in the store and the CLI, and the topic's department in §4.3."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from store.desk import DEFAULT_TOPICS
from store.errors import InvalidInput, NotFound, NotPermitted
from tests.fixtures.audit_log import audit_log
from tests.fixtures.requests import CALL_AT, chat_request, insert_chat
from tests.fixtures.store import SYSTEM

ROOT = Path(__file__).resolve().parents[1]


async def test_default_topics_are_seeded_once(store):
    assert await store.desk.seed_default_topics(SYSTEM) == len(DEFAULT_TOPICS)
    topics = await store.desk.topics()
    assert [(t.label_pl, t.label_en) for t in topics] == list(DEFAULT_TOPICS)
    await store.desk.set_topic_active(SYSTEM, topics[0].id, False)
    assert await store.desk.seed_default_topics(SYSTEM) == 0  # the manager's list is never reset
    assert len(await store.desk.topics()) == len(DEFAULT_TOPICS) - 1
    assert len(await store.desk.topics(include_inactive=True)) == len(DEFAULT_TOPICS)


async def test_only_the_cim_manager_edits_topics_and_bad_labels_are_refused(store, make_staff):
    consultant = (await make_staff("anna", "consultant")).as_actor()
    manager = (await make_staff("maria", "cim_manager")).as_actor()
    with pytest.raises(NotPermitted):
        await store.desk.add_topic(consultant, "Śmieci", "Waste")
    with pytest.raises(NotPermitted):
        await store.desk.set_max_chats(consultant, "anna", 10)
    for bad in ("", "   ", None, 5, "x" * 81, "a\x00b", "\ud800"):
        with pytest.raises(InvalidInput):
            await store.desk.add_topic(manager, bad, "Waste")
    with pytest.raises(NotFound):
        await store.desk.add_topic(manager, "Śmieci", "Waste", "NOPE")
    await store.accounts.add_department(SYSTEM, "WGK", "Wydział Gospodarki Komunalnej")
    topic = await store.desk.add_topic(manager, "  Śmieci  i odpady ", "Waste", "WGK")
    assert (topic.label_pl, topic.department, topic.active) == ("Śmieci i odpady", "WGK", True)
    assert (await store.desk.topics_for("en")) == [{"id": topic.id, "label": "Waste"}]
    rows = await audit_log(store, action_prefix="topic.")
    assert [(r.action, r.outcome) for r in rows] == [("topic.add", "refused"), ("topic.add", "ok")]


async def test_capacity_and_skills_are_checked(store, make_staff):
    await make_staff("anna", "consultant")
    await store.desk.seed_default_topics(SYSTEM)
    topics = await store.desk.topics()
    for bad in (0, -1, 51, "3", True, 2.5):
        with pytest.raises(InvalidInput):
            await store.desk.set_max_chats(SYSTEM, "anna", bad)
    await store.desk.set_max_chats(SYSTEM, "anna", 7)
    with pytest.raises(NotFound):
        await store.desk.set_skills(SYSTEM, "anna", [topics[0].id, 999])
    with pytest.raises(InvalidInput):
        await store.desk.set_skills(SYSTEM, "anna", ["1"])
    await store.desk.set_skills(SYSTEM, "anna", [topics[1].id])
    (person,) = (await store.desk.people()).values()
    assert person.max_chats == 7 and person.skills == {topics[1].id}
    assert person.can_answer(topics[1].id) and not person.can_answer(topics[0].id)
    await store.desk.set_max_chats(SYSTEM, "anna", None)
    await store.desk.set_skills(SYSTEM, "anna", [])
    (person,) = (await store.desk.people()).values()
    assert person.max_chats == store.settings.chat_max_concurrent == 3 and person.can_answer(topics[0].id)


@pytest.mark.ordinance("§4.3")
async def test_the_head_of_the_chat_topics_department_gives_the_opinion(store, people):
    """The chat's own department is empty; its topic names WO: WO's head gives the opinion, WK's cannot."""
    topic = await store.desk.add_topic(SYSTEM, "Podatki i opłaty", "Taxes and fees", "WO")
    chat = await insert_chat(store, at=CALL_AT, lines=[("resident", "Pytanie o podatek.")])
    async with store.db.write() as tx:
        await tx.execute("UPDATE conversations SET topic_id = ? WHERE id = ?", (topic.id, chat))
    req = await store.requests.register(people.registrar, chat_request())
    await store.requests.link(people.registrar, req.id, chat)
    assert [r.id for r in await store.requests.inbox(people.head)] == [req.id]
    assert await store.requests.inbox(people.other_head) == []
    with pytest.raises(NotPermitted, match="not the head of the department concerned"):
        await store.requests.give_opinion(people.other_head, req.id, "department", "favourable", "Zgoda.")
    detail = await store.requests.get(people.registrar, req.id)
    assert [c.department for c in detail.conversations] == ["WO"]
    await store.requests.give_opinion(people.head, req.id, "department", "favourable", "Zgoda.")


def cim(data_dir: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(ROOT),
        "CIM_DATA_DIR": str(data_dir),
        "CIM_PASSWORD_PROFILE": "fast",
        "CIM_STAFF_LANG": "en",
        "HOME": str(data_dir.parent),
    }
    return subprocess.run(
        [sys.executable, "-m", "cim", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
    )


def test_cim_init_seeds_the_topics_and_the_cli_edits_them(tmp_path):
    data = tmp_path / "data"
    assert cim(data, "init").returncode == 0
    assert cim(data, "init").returncode == 0  # idempotent: still four topics
    listed = json.loads(cim(data, "topics", "list", "--json").stdout)
    assert [t["label_pl"] for t in listed] == [pl for pl, _ in DEFAULT_TOPICS]
    assert cim(data, "departments", "add", "WPiO", "Wydział Podatków i Opłat").returncode == 0
    edited = cim(
        data, "topics", "edit", str(listed[1]["id"]), "Podatki i opłaty", "Taxes and fees", "--department", "WPiO"
    )
    assert edited.returncode == 0, edited.stderr
    assert cim(data, "topics", "disable", str(listed[3]["id"])).returncode == 0
    listed = json.loads(cim(data, "topics", "list", "--json").stdout)
    assert [t["department"] for t in listed] == [None, "WPiO", None]
    assert (
        cim(
            data, "users", "add", "anna", "--role", "consultant", "--password-stdin", stdin="correct horse battery\n"
        ).returncode
        == 0
    )
    assert "at most 5 chats" in cim(data, "users", "capacity", "anna", "5").stdout
    bad = cim(data, "users", "capacity", "anna", "many")
    assert bad.returncode != 0 and "1 to 50" in bad.stderr
    assert cim(data, "users", "skills", "anna", str(listed[0]["id"])).returncode == 0
    bad = cim(data, "users", "skills", "anna", "999")
    assert bad.returncode != 0 and "no topic 999" in bad.stderr


async def test_the_archive_shows_a_chats_topic(store, make_staff):
    from store.archive import SearchFilters

    designated = (await make_staff("dora", "designated")).as_actor()
    await store.desk.seed_default_topics(SYSTEM)
    card = (await store.desk.topics())[0]
    notice = await store.notices.current("chat", "pl")
    with_topic = await store.chats.open(notice.id, "pl", card.id)
    page = await store.archive.search(designated, SearchFilters())
    (found,) = [s for s in page.items if s.id == with_topic.chat.id]
    assert found.topic == ("Karta Mieszkańca", "Resident Card")
    detail = await store.archive.details(designated, with_topic.chat.id)
    assert detail.summary.topic == ("Karta Mieszkańca", "Resident Card")


async def test_the_desks_frequent_reads_use_the_partial_indexes(store):
    """The chat server reads the queue and the active chats every second: never a scan of the archive."""
    queries = [
        "SELECT id, lang, created_at, topic_id FROM conversations WHERE channel = 'chat' AND status = 'queued' "
        "ORDER BY queue_front IS NULL, created_at, id",
        "SELECT consultant_id, count(*) AS n FROM conversations WHERE status = 'active' AND channel = 'chat' "
        "AND consultant_id IS NOT NULL GROUP BY consultant_id",
        "SELECT c.id FROM conversations c WHERE c.status = 'active' AND c.channel = 'chat'",
    ]
    for sql in queries:
        plan = " ".join(str(r[3]) for r in await store.db.fetchall("EXPLAIN QUERY PLAN " + sql))
        assert "conversations_queued" in plan or "conversations_active" in plan, (sql, plan)


async def test_a_queued_chats_position_is_counted_as_the_queue_orders_it(store, make_staff, clock):
    """chats.queue_position (a resident's place when their chat opens) agrees with queue(): a re-queued chat
    first, then by arrival; None for a chat that is not waiting."""
    anna = (await make_staff("anna", "consultant")).as_actor()
    notice = await store.notices.current("chat", "pl")
    ids = []
    for _ in range(5):
        ids.append((await store.chats.open(notice.id, "pl")).chat.id)
        clock.advance(seconds=1)
    await store.chats.accept(anna, ids[1])
    await store.chats.accept(anna, ids[3])
    await store.desk.decline(anna, ids[3])  # back at the front
    await store.chats.end_by_resident(ids[4])
    queue = await store.chats.queue()
    assert [q.chat_id for q in queue] == [ids[3], ids[0], ids[2]]
    for q in queue:
        assert await store.chats.queue_position(q.chat_id) == q.position
    assert [await store.chats.queue_position(i) for i in (ids[1], ids[4], 10**6)] == [None, None, None]
    assert [q.chat_id for q in await store.chats.queue(limit=2)] == [ids[3], ids[0]]
