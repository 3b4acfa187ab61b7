"""The resident desk's writes that the records refuse (store/resident_desk.py over store/sqlite/resident_desk.py):
a second rating of a chat is refused in words and leaves the first, and a receipt reference drawn twice is
drawn again, with nothing of the refused attempt left behind."""

from __future__ import annotations

import pytest

import store.resident_desk as resident_desk
from store import Store
from store.errors import InvalidInput


async def ended_chat(store: Store, make_staff, name: str = "anna") -> int:
    anna = (await make_staff(name, "consultant")).as_actor()
    notice = await store.notices.current("chat", "pl")
    opened = await store.chats.open(notice.id, "pl")
    await store.chats.accept(anna, opened.chat.id)
    await store.chats.close(anna, opened.chat.id, "information_given")
    return opened.chat.id


async def test_a_second_rating_of_a_chat_is_refused_and_the_first_is_kept(store, make_staff):
    chat_id = await ended_chat(store, make_staff)
    await store.resident_desk.rate(chat_id, 5, "bardzo dobrze")
    with pytest.raises(InvalidInput, match="already been rated"):
        await store.resident_desk.rate(chat_id, 1, "źle")
    rows = await store.db.fetchall("SELECT rating FROM chat_ratings WHERE conversation_id = ?", (chat_id,))
    assert [r["rating"] for r in rows] == [5]
    assert await store.resident_desk.rating_comment(chat_id) == "bardzo dobrze"


async def test_an_offline_message_whose_reference_is_taken_draws_another_and_leaves_no_trace(
    store, make_staff, monkeypatch
):
    notice = await store.notices.current("chat", "pl")
    first = await store.resident_desk.leave_message(notice.id, "pl", "Jan", "jan@example.pl", "Pierwsza wiadomość")
    before = (await store.db.fetchone("SELECT count(*) AS n FROM messages"))["n"]
    drawn = iter([first, first, "CZ-2026-03-02-ZZZZ"])
    monkeypatch.setattr(resident_desk, "new_reference", lambda day: next(drawn))
    second = await store.resident_desk.leave_message(notice.id, "pl", "Ola", "ola@example.pl", "Druga wiadomość")
    assert second == "CZ-2026-03-02-ZZZZ"
    conversations = await store.db.fetchall("SELECT receipt_reference FROM conversations ORDER BY id")
    assert [r["receipt_reference"] for r in conversations] == [first, second]
    # the two refused attempts rolled back whole: two lines more (the notice and the text), one offline row more
    assert (await store.db.fetchone("SELECT count(*) AS n FROM messages"))["n"] == before + 2
    assert (await store.db.fetchone("SELECT count(*) AS n FROM offline_messages"))["n"] == 2


async def test_a_receipt_whose_reference_is_taken_is_drawn_again(store, make_staff, monkeypatch):
    notice = await store.notices.current("chat", "pl")
    taken = await store.resident_desk.leave_message(notice.id, "pl", "Jan", "jan@example.pl", "Wiadomość")
    chat_id = await ended_chat(store, make_staff)
    drawn = iter([taken, "CZ-2026-03-02-YYYY", "CZ-2026-03-02-XXXX"])
    monkeypatch.setattr(resident_desk, "new_reference", lambda day: next(drawn))
    receipt = await store.resident_desk.issue_receipt(chat_id)
    assert receipt is not None and receipt.reference == "CZ-2026-03-02-YYYY"
    assert await store.resident_desk.issue_receipt(chat_id) is None  # made once
    from tests.fixtures.store import SYSTEM

    assert await store.resident_desk.verify_receipt(SYSTEM, receipt.reference, receipt.secret) == chat_id
