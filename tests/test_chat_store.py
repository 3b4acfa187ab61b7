"""store.chats: the transcript, the queue and the consultants' actions, against a real SQLite file."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import date

import pytest

from store import Store
from store.archive import SearchFilters
from store.chats import CLOSE_CATEGORIES, clean_text, render_event
from store.errors import (
    ChatClosed,
    Conflict,
    ConversationNotFound,
    InvalidInput,
    MessageEmpty,
    MessageTooLong,
    NotPermitted,
    ResumeInvalid,
)
from store.models import Actor
from tests.fixtures.audit_log import audit_log
from tests.fixtures.store import SYSTEM


async def open_chat(store: Store, lang: str = "pl"):
    notice = await store.notices.current("chat", lang)
    return await store.chats.open(notice.id, lang)


async def audit_actions(store: Store) -> list[tuple[str, str, str | None]]:
    entries = await audit_log(store)
    return [(e.action, e.outcome, e.target_id if e.target_kind == "conversation" else None) for e in entries]


# ---------------------------------------------------------------- hostile input first


@pytest.mark.parametrize("text", [None, 42, 4.2, True, ["x"], {"t": "x"}, b"bytes"])
def test_non_text_is_invalid(text):
    with pytest.raises(InvalidInput) as info:
        clean_text(text, 2000)
    assert info.value.code == "invalid"


@pytest.mark.parametrize("text", ["", " ", "\n\t \r\n", "\x00\x01\x1b", " \x7f\x85 "])
def test_empty_and_whitespace_only_are_empty(text):
    with pytest.raises(MessageEmpty):
        clean_text(text, 2000)


def test_length_limit_counts_characters_after_cleaning():
    assert clean_text("ż" * 2000, 2000) == "ż" * 2000
    with pytest.raises(MessageTooLong):
        clean_text("ż" * 2001, 2000)
    # control characters do not count against the limit: they are removed first
    assert clean_text("a" * 2000 + "\x00" * 50, 2000) == "a" * 2000


def test_control_characters_are_stripped_but_text_oddities_are_kept():
    assert clean_text("a\x00b\x07c\x1b[31md\x7fe\x9bf", 2000) == "abc[31mdef"
    assert clean_text("line1\r\nline2\rline3\ttab", 2000) == "line1\nline2\nline3\ttab"
    oddities = "שלום \u200f RTL, zero\u200bwidth, e\u0301 combining, 👩‍👩‍👧 emoji, <script>alert(1)</script>"
    assert clean_text(oddities, 2000) == oddities


async def test_open_refuses_unknown_or_foreign_notice(store):
    phone = next(n for n in await store.notices.history("phone"))
    for notice_id in (None, "1", 1.0, True, 99999, phone.id):
        with pytest.raises(InvalidInput):
            await store.chats.open(notice_id)
    assert (await store.archive.search(SYSTEM, SearchFilters())).items == ()


async def test_open_refuses_a_superseded_notice_version(store):
    old = await store.notices.current("chat")
    await store.notices.add_version(SYSTEM, "chat", {"pl": "Nowa treść informacji."})
    with pytest.raises(InvalidInput):
        await store.chats.open(old.id)


@pytest.mark.parametrize("token", [None, 7, "", "short", "x" * 43, "y" * 500])
async def test_forged_resume_tokens_are_refused(store, token):
    await open_chat(store)
    with pytest.raises(ResumeInvalid):
        await store.chats.resume(token)


async def test_consultant_actions_need_the_consultant_role(store, make_staff):
    designated = (await make_staff("dora", "designated")).as_actor()
    opened = await open_chat(store)
    for action in (
        store.chats.accept(designated, opened.chat.id),
        store.chats.post_consultant(designated, opened.chat.id, "x"),
        store.chats.close(designated, opened.chat.id, "other"),
        store.chats.canned(designated),
    ):
        with pytest.raises(NotPermitted):
            await action
    refused = [a for a in await audit_actions(store) if a[1] == "refused"]
    assert [a[0] for a in refused] == ["chat.accept", "chat.send", "chat.close", "canned.list"]
    assert (await store.chats.get(opened.chat.id)).status == "queued"


async def test_the_host_service_account_does_not_take_chats(store):
    opened = await open_chat(store)
    with pytest.raises(NotPermitted):
        await store.chats.accept(Actor.system("cli"), opened.chat.id)


async def test_a_consultant_cannot_write_into_someone_elses_chat(store, make_staff):
    anna = (await make_staff("anna")).as_actor()
    bob = (await make_staff("bob")).as_actor()
    opened = await open_chat(store)
    with pytest.raises(NotPermitted):  # still queued: nobody's
        await store.chats.post_consultant(anna, opened.chat.id, "hello")
    await store.chats.accept(anna, opened.chat.id)
    with pytest.raises(NotPermitted):
        await store.chats.post_consultant(bob, opened.chat.id, "hello")
    with pytest.raises(NotPermitted):
        await store.chats.close(bob, opened.chat.id, "other")
    with pytest.raises(NotPermitted):
        await store.chats.history_for(bob, opened.chat.id)


async def test_close_needs_a_known_category(store, make_staff):
    anna = (await make_staff("anna")).as_actor()
    opened = await open_chat(store)
    await store.chats.accept(anna, opened.chat.id)
    for category in (None, "", "made_up", 1, ["other"]):
        with pytest.raises(InvalidInput):
            await store.chats.close(anna, opened.chat.id, category)
    assert (await store.chats.get(opened.chat.id)).status == "active"


async def test_nothing_is_written_to_a_closed_chat(store, make_staff):
    anna = (await make_staff("anna")).as_actor()
    opened = await open_chat(store)
    await store.chats.accept(anna, opened.chat.id)
    await store.chats.close(anna, opened.chat.id, "information_given")
    before = await store.chats.history(opened.chat.id)
    with pytest.raises(ChatClosed):
        await store.chats.post_resident(opened.chat.id, "still there?")
    with pytest.raises(ChatClosed):
        await store.chats.post_consultant(anna, opened.chat.id, "bye")
    with pytest.raises(ChatClosed):
        await store.chats.close(anna, opened.chat.id, "other")
    with pytest.raises(ChatClosed):
        await store.chats.accept(anna, opened.chat.id)
    assert await store.chats.history(opened.chat.id) == before


async def test_posting_to_a_missing_chat_fails(store):
    with pytest.raises(ConversationNotFound):
        await store.chats.post_resident(12345, "hello")


@pytest.mark.parametrize("client_msg_id", [5, "", "x" * 101, ["a"]])
async def test_malformed_client_msg_id_is_invalid(store, client_msg_id):
    opened = await open_chat(store)
    with pytest.raises(InvalidInput):
        await store.chats.post_resident(opened.chat.id, "hello", client_msg_id)


# ---------------------------------------------------------------- the transcript


@pytest.mark.ordinance("§1.5")
async def test_opening_writes_the_acceptance_with_the_notice_version_into_the_transcript(store, clock):
    notice = await store.notices.current("chat", "en")
    opened = await store.chats.open(notice.id, "en")
    chat = await store.chats.get(opened.chat.id)  # a chat: `get` finds only conversations of that channel
    assert chat.status == "queued" and chat.lang == "en"
    assert chat.notice_id == notice.id
    assert chat.notice_accepted_at == clock()
    first, second = await store.chats.history(opened.chat.id)
    assert (first.seq, first.sender) == (1, "system")
    assert f"wersja {notice.version}" in first.text and "język en" in first.text
    assert (second.seq, second.sender) == (2, "system") and "kolejce" in second.text


@pytest.mark.ordinance("§6")
async def test_purge_after_is_fixed_at_creation_from_the_retention_setting(store, clock):
    opened = await open_chat(store)
    assert (await store.chats.get(opened.chat.id)).created_at == clock()
    detail = await store.archive.details(SYSTEM, opened.chat.id)
    assert detail.purge_after == store.settings.retention_duration.after(clock())


async def test_the_resume_token_is_stored_only_as_its_hash(store):
    import hashlib

    opened = await open_chat(store)
    # what the file holds is the subject here (the token never rests in it), so the row is read raw
    row = await store.db.fetchone("SELECT resume_token_hash FROM conversations WHERE id = ?", (opened.chat.id,))
    assert row["resume_token_hash"] == hashlib.sha256(opened.resume_token.encode()).hexdigest()
    assert len(opened.resume_token) >= 40  # 256 bits, url-safe
    assert (await store.chats.resume(opened.resume_token)).id == opened.chat.id


async def test_resume_expires_after_the_grace_period_once_closed(store, clock):
    opened = await open_chat(store)
    await store.chats.end_by_resident(opened.chat.id)
    clock.advance(minutes=store.settings.chat_resume_minutes - 1)
    assert (await store.chats.resume(opened.resume_token)).status == "closed"
    clock.advance(minutes=1)
    with pytest.raises(ResumeInvalid):
        await store.chats.resume(opened.resume_token)


async def test_sequence_numbers_are_per_chat_and_gapless(store):
    a, b = await open_chat(store), await open_chat(store)
    seqs_a = [(await store.chats.post_resident(a.chat.id, f"a{i}")).message.seq for i in range(3)]
    seqs_b = [(await store.chats.post_resident(b.chat.id, f"b{i}")).message.seq for i in range(2)]
    assert seqs_a == [3, 4, 5] and seqs_b == [3, 4]


async def test_a_repeated_client_msg_id_is_stored_once_and_returns_the_first_seq(store):
    opened = await open_chat(store)
    first = await store.chats.post_resident(opened.chat.id, "hello", "m-1")
    again = await store.chats.post_resident(opened.chat.id, "hello (retry)", "m-1")
    assert first.new and not again.new
    assert again.message.seq == first.message.seq and again.message.text == "hello"
    texts = [m.text for m in await store.chats.history(opened.chat.id) if m.sender == "resident"]
    assert texts == ["hello"]


async def test_concurrent_posts_are_batched_yet_each_gets_its_own_seq(store):
    """Group commit: many coroutines at once, duplicates among them, every result distinct and stored."""
    chats = [await open_chat(store) for _ in range(5)]
    jobs = [store.chats.post_resident(c.chat.id, f"m{i}", f"id-{i % 40}") for i in range(200) for c in [chats[i % 5]]]
    results = await asyncio.gather(*jobs)
    for c in chats:
        rows = await store.db.fetchall(
            "SELECT seq, client_msg_id FROM messages WHERE conversation_id = ? AND sender = 'resident' ORDER BY seq",
            (c.chat.id,),
        )
        assert [r["seq"] for r in rows] == list(range(3, 3 + len(rows)))  # gapless
        assert len({r["client_msg_id"] for r in rows}) == len(rows) == 8  # 40 ids over 5 chats
    assert sum(r.new for r in results) == 40
    # every duplicate got the seq of the stored original
    stored = {
        (c.chat.id, r["client_msg_id"]): r["seq"]
        for c in chats
        for r in await store.db.fetchall(
            "SELECT seq, client_msg_id FROM messages WHERE conversation_id = ? AND client_msg_id IS NOT NULL",
            (c.chat.id,),
        )
    }
    for i, result in enumerate(results):
        assert result.message.seq == stored[(chats[i % 5].chat.id, f"id-{i % 40}")]


async def test_one_bad_message_in_a_batch_does_not_sink_the_others(store):
    good, closed = await open_chat(store), await open_chat(store)
    await store.chats.end_by_resident(closed.chat.id)
    results = await asyncio.gather(
        store.chats.post_resident(good.chat.id, "one"),
        store.chats.post_resident(closed.chat.id, "lost"),
        store.chats.post_resident(good.chat.id, "two"),
        return_exceptions=True,
    )
    assert isinstance(results[1], ChatClosed)
    assert [r.message.text for r in (results[0], results[2])] == ["one", "two"]


async def test_an_acknowledged_message_is_in_a_fresh_store_on_the_same_file(store, settings, clock):
    opened = await open_chat(store)
    posted = await store.chats.post_resident(opened.chat.id, "zapisane?", "c-1")
    fresh = await Store.open(settings, clock=clock)
    try:
        history = await fresh.chats.history(opened.chat.id)
    finally:
        await fresh.close()
    assert (history[-1].seq, history[-1].text) == (posted.message.seq, "zapisane?")


# ---------------------------------------------------------------- decline


@pytest.mark.ordinance("§1.5")
async def test_declining_stores_only_an_anonymous_count_per_day(store, clock):
    # what is stored is the subject (nothing about the resident, §1.5): every table is counted raw
    tables_before = {
        r["name"]: (await store.db.fetchone(f"SELECT count(*) AS n FROM {r['name']}"))["n"]
        for r in await store.db.fetchall("SELECT name FROM sqlite_master WHERE type = 'table'")
    }
    await store.chats.record_decline()
    await store.chats.record_decline()
    tables_after = {
        r["name"]: (await store.db.fetchone(f"SELECT count(*) AS n FROM {r['name']}"))["n"]
        for r in await store.db.fetchall("SELECT name FROM sqlite_master WHERE type = 'table'")
    }
    changed = {name for name in tables_after if tables_after[name] != tables_before.get(name)}
    assert changed == {"declined_notices"}
    assert await store.chats.declined_count(date(2026, 3, 2)) == 2
    rows = await store.db.fetchall("SELECT * FROM declined_notices")
    assert [tuple(r) for r in rows] == [("2026-03-02", 2)]
    clock.advance(days=1)
    await store.chats.record_decline()
    assert await store.chats.declined_count(date(2026, 3, 3)) == 1


# ---------------------------------------------------------------- consultants


async def test_exactly_one_of_two_concurrent_accepts_wins(store, make_staff):
    anna = (await make_staff("anna")).as_actor()
    bob = (await make_staff("bob")).as_actor()
    for name in ("anna", "bob"):  # more chats at once than the default capacity (store/desk.py)
        await store.desk.set_max_chats(Actor.system("test"), name, 10)
    for _ in range(5):
        opened = await open_chat(store)
        results = await asyncio.gather(
            store.chats.accept(anna, opened.chat.id), store.chats.accept(bob, opened.chat.id), return_exceptions=True
        )
        winners = [r for r in results if not isinstance(r, Exception)]
        losers = [r for r in results if isinstance(r, Exception)]
        assert len(winners) == 1 and len(losers) == 1 and isinstance(losers[0], Conflict)
        chat = await store.chats.get(opened.chat.id)
        assert chat.status == "active" and chat.consultant_id == winners[0][0].consultant_id
        assigned = [m for m in await store.chats.history(opened.chat.id) if m.event == "accepted"]
        assert len(assigned) == 1


async def test_accept_transfer_close_are_audited_without_content(store, make_staff):
    anna = (await make_staff("anna")).as_actor()
    bob = (await make_staff("bob")).as_actor()
    opened = await open_chat(store)
    chat_id = str(opened.chat.id)
    await store.chats.accept(anna, opened.chat.id)
    await store.chats.post_resident(opened.chat.id, "my PESEL is 90010112345")
    await store.chats.post_consultant(anna, opened.chat.id, "thank you")
    await store.chats.transfer(anna, opened.chat.id, bob)
    await store.chats.close(bob, opened.chat.id, "referred")
    actions = [a for a in await audit_actions(store) if a[2] == chat_id]
    assert actions == [("chat.accept", "ok", chat_id), ("chat.transfer", "ok", chat_id), ("chat.close", "ok", chat_id)]
    details = " ".join(json.dumps(e.details, ensure_ascii=False) for e in await audit_log(store))
    assert "90010112345" not in details and "thank you" not in details
    assert (await store.audit.verify()).ok
    system_lines = [m.text for m in await store.chats.history(opened.chat.id) if m.sender == "system"]
    assert "Czat zakończony przez konsultanta." in system_lines  # the category is the chat's, not the line's
    assert not any("referred" in t or "przekazał" in t for t in system_lines)
    chat = await store.chats.get(opened.chat.id)
    assert chat.status == "closed" and chat.close_category == "referred" and chat.ended_at


async def test_stored_system_lines_are_what_residents_read_without_log_in_names_or_codes(store, make_staff):
    """Issue 16: the stored fallback `text` of a system line is its gender-neutral Polish rendering with the
    display name, never a log-in name, a masculine form or the close category; the event stays the source."""
    anna = (await make_staff("anna.k")).as_actor()
    bob = (await make_staff("bob.n")).as_actor()
    boss = (await make_staff("szefowa.m", "cim_manager", "consultant")).as_actor()
    await store.chats.set_display_name(SYSTEM, "anna.k", "Anna")
    await store.accounts.set_signature(SYSTEM, "bob.n", full_name="Robert Nowak")
    opened = await open_chat(store)
    chat = opened.chat.id
    await store.chats.accept(anna, chat)
    await store.chats.transfer(anna, chat, bob)
    await store.chats.take_over(boss, chat)
    await store.chats.return_to_queue(boss.staff_id, "test")
    await store.chats.accept(anna, chat)
    await store.chats.close(anna, chat, "information_given")
    second = await open_chat(store)
    await store.chats.end_by_resident(second.chat.id)
    lines = [m for c in (chat, second.chat.id) for m in await store.chats.history(c) if m.sender == "system"]
    assert [m.event for m in lines] == [
        "notice_accepted",
        "queued",
        "accepted",
        "transferred",
        "taken_over",
        "requeued",
        "accepted",
        "closed_by_consultant",
        "notice_accepted",
        "queued",
        "ended_by_resident",
    ]
    for m in lines:
        if m.event == "notice_accepted":  # with the notice's language too (§1.5)
            assert m.text == "Zaakceptowano informację o przetwarzaniu danych osobowych (wersja 1, język pl).", m
        else:
            assert m.text == render_event(m.event, m.params, "pl"), m
        for word in ("anna.k", "bob.n", "szefowa.m", "information_given", "Mieszkaniec", "Konsultant zak"):
            assert word not in m.text, (word, m.text)
        assert not re.search(r"(przejął|przekazał|zaakceptował|zakończył|połączony)\b", m.text), m.text
    texts = [m.text for m in lines]
    assert texts[3] == "Rozmowa została przekazana. Odpowiada teraz: Robert." and "Odpowiada: Anna." in texts[2]
    # the same lines as stored: sealed like every other line, the take-over's too
    raw = await store.db.fetchall("SELECT text FROM messages WHERE conversation_id = ?", (chat,))
    assert raw and all(not isinstance(r["text"], str) for r in raw)


async def test_transfer_only_to_another_consultant(store, make_staff):
    anna = (await make_staff("anna")).as_actor()
    dora = (await make_staff("dora", "designated")).as_actor()
    opened = await open_chat(store)
    await store.chats.accept(anna, opened.chat.id)
    with pytest.raises(InvalidInput):
        await store.chats.transfer(anna, opened.chat.id, dora)
    with pytest.raises(InvalidInput):
        await store.chats.transfer(anna, opened.chat.id, anna)
    assert (await store.chats.get(opened.chat.id)).consultant_id == anna.staff_id


async def test_a_chat_the_resident_left_can_still_be_categorised_once(store, make_staff):
    anna = (await make_staff("anna")).as_actor()
    opened = await open_chat(store)
    await store.chats.accept(anna, opened.chat.id)
    chat, message = await store.chats.end_by_resident(opened.chat.id)
    assert chat.status == "closed" and chat.close_category is None and message is not None
    chat, message = await store.chats.close(anna, opened.chat.id, "no_reply")
    assert chat.close_category == "no_reply" and message is None
    with pytest.raises(ChatClosed):
        await store.chats.close(anna, opened.chat.id, "other")
    # ending twice changes nothing
    assert (await store.chats.end_by_resident(opened.chat.id))[1] is None


async def test_queue_positions_follow_arrival_and_shrink_on_accept(store, make_staff, clock):
    anna = (await make_staff("anna")).as_actor()
    chats = []
    for _ in range(3):
        chats.append(await open_chat(store))
        clock.advance(seconds=5)
    assert [(q.chat_id, q.position) for q in await store.chats.queue()] == [
        (c.chat.id, i + 1) for i, c in enumerate(chats)
    ]
    await store.chats.accept(anna, chats[0].chat.id)
    assert [(q.chat_id, q.position) for q in await store.chats.queue()] == [
        (chats[1].chat.id, 1),
        (chats[2].chat.id, 2),
    ]
    assert [c.id for c in await store.chats.open_chats_of(anna)] == [chats[0].chat.id]


# ---------------------------------------------------------------- canned responses


async def test_canned_responses_are_managed_by_the_cim_manager_only(store, make_staff):
    anna = (await make_staff("anna")).as_actor()
    manager = (await make_staff("maria", "cim_manager")).as_actor()
    with pytest.raises(NotPermitted):
        await store.chats.add_canned(anna, "Godziny", "Urząd jest czynny...")
    canned = await store.chats.add_canned(manager, "Godziny", "Urząd jest czynny w dni robocze.")
    with pytest.raises(NotPermitted):
        await store.chats.update_canned(anna, canned.id, "x", "y")
    with pytest.raises(NotPermitted):
        await store.chats.delete_canned(anna, canned.id)
    with pytest.raises(InvalidInput):
        await store.chats.add_canned(manager, " ", "text")
    with pytest.raises(MessageEmpty):
        await store.chats.add_canned(manager, "title", "  ")
    updated = await store.chats.update_canned(manager, canned.id, "Godziny pracy", "Pn 7:30–18:00.")
    assert [(c.title, c.text) for c in await store.chats.canned(anna)] == [("Godziny pracy", "Pn 7:30–18:00.")]
    assert updated.updated_by == manager.staff_id
    await store.chats.delete_canned(manager, canned.id)
    assert await store.chats.canned(anna) == []
    actions = [a[0] for a in await audit_actions(store) if a[0].startswith("canned.")]
    assert actions.count("canned.add") == 2 and "canned.update" in actions and "canned.delete" in actions


def test_close_categories_are_a_fixed_list():
    assert "other" in CLOSE_CATEGORIES and len(set(CLOSE_CATEGORIES)) == len(CLOSE_CATEGORIES)


async def test_next_seq_follows_every_insert_even_from_another_writer(store, settings, clock):
    """The writer's memory of a chat is a shortcut: a line written by another connection is respected."""
    opened = await open_chat(store)
    await store.chats.post_resident(opened.chat.id, "one", "a")  # the writer now remembers this chat
    other = await Store.open(settings, clock=clock)
    try:
        async with other.db.write() as tx:  # e.g. a repair tool appending a system line
            await tx.execute(
                "INSERT INTO messages(conversation_id, seq, sender, text, at) "
                "VALUES (?, 4, 'system', 'inserted elsewhere', '2026-03-02T09:00:00.000000Z')",
                (opened.chat.id,),
            )
    finally:
        await other.close()
    posted = await store.chats.post_resident(opened.chat.id, "two", "b")
    assert posted.message.seq == 5
    assert (await store.chats.post_resident(opened.chat.id, "one", "a")).message.seq == 3  # repeat still known
    assert [m.seq for m in await store.chats.history(opened.chat.id)] == [1, 2, 3, 4, 5]
    assert (await store.chats.post_resident(opened.chat.id, "three", "c")).message.seq == 6  # the counter moved on


async def test_a_repeat_within_one_batch_gets_the_first_seq(store):
    opened = await open_chat(store)
    first, second = await asyncio.gather(
        store.chats.post_resident(opened.chat.id, "x", "same"),
        store.chats.post_resident(opened.chat.id, "x again", "same"),
    )
    assert first.new and not second.new and first.message.seq == second.message.seq
    assert second.message.text == "x"
