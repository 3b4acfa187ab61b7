"""Issue 16: the live transcript shows system lines as staff read them, in the staff member's language
(from the line's `event` and `params`, as the archive does), never the stored Polish line for residents."""

from __future__ import annotations

import pytest

from tests.fixtures.store import PASSWORD
from tests.fixtures.tui import SIZE, sign_in, wait_until
from tests.test_tui_live import accept_new_chat, open_desk, transcript_text


def words(app) -> str:
    return " ".join(transcript_text(app).split())


async def test_the_live_transcript_shows_system_lines_in_english(
    tui_app, make_staff, chat_server, resident, store
) -> None:
    await make_staff("anna", "consultant")
    app = tui_app(chat_server.url)
    async with app.run_test(size=SIZE) as pilot:
        await sign_in(pilot, "anna", PASSWORD)
        await open_desk(pilot, app)
        person = await accept_new_chat(pilot, app, resident)
        await wait_until(pilot, lambda: "Chat taken:" in words(app), what="the acceptance line")
        stored = [m for m in await store.chats.history(person.chat_id) if m.sender == "system"]
        assert [m.event for m in stored] == ["notice_accepted", "queued", "accepted"]
        shown = words(app)
        assert (
            "The chat is waiting in the queue." in shown and "The resident accepted the personal data notice" in shown
        )
        for line in stored:  # the stored (Polish, residents') text is nowhere
            assert " ".join(line.text.split()) not in shown
        # a line arriving live reads the same way: the resident ends the chat
        assert (await person.call("end", {}))["ok"]
        await wait_until(pilot, lambda: "The resident ended the chat." in words(app), what="the resident's end")


@pytest.mark.staff_lang("pl")
async def test_the_live_transcript_shows_system_lines_in_polish_staff_words(
    tui_app, make_staff, chat_server, resident, store
) -> None:
    await make_staff("anna", "consultant")
    app = tui_app(chat_server.url)
    async with app.run_test(size=SIZE) as pilot:
        await sign_in(pilot, "anna", PASSWORD)
        await open_desk(pilot, app)
        await accept_new_chat(pilot, app, resident)
        await wait_until(pilot, lambda: "Rozmowę przyjmuje:" in words(app), what="the acceptance line")
        shown = words(app)
        assert "Rozmowa czeka w kolejce." in shown and "Osoba pisząca zaakceptowała" in shown
        assert "Połączono z konsultantem" not in shown  # the resident's wording stays the resident's


async def test_the_live_transcript_names_the_colleague_by_full_name(
    tui_app, make_staff, chat_server, resident, store
) -> None:
    """Issue 16: staff read the full name on a system line, not the display name residents see."""
    from tests.fixtures.store import SYSTEM

    await make_staff("anna", "consultant")
    await store.accounts.set_signature(SYSTEM, "anna", full_name="Anna Nowak")
    await store.chats.set_display_name(SYSTEM, "anna", "Konsultant CIM")
    app = tui_app(chat_server.url)
    async with app.run_test(size=SIZE) as pilot:
        await sign_in(pilot, "anna", PASSWORD)
        await open_desk(pilot, app)
        await accept_new_chat(pilot, app, resident)
        await wait_until(pilot, lambda: "Chat taken:" in words(app), what="the acceptance line")
        assert "Chat taken: Anna Nowak." in words(app)
        assert "Konsultant CIM" not in words(app)
