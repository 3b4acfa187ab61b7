"""§3 in the resident's widget (Chromium): a take-over reads "another consultant continues" in the widget's
language, with the supervisor's display name only; a whisper never reaches the page."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from store.chats import render_event
from store.models import Actor
from tests.browser.test_widget import Staff
from tests.browser.test_widget_texts import UI, open_page, system_lines

pytestmark = [pytest.mark.browser, pytest.mark.asyncio, pytest.mark.ordinance("§3")]

SYSTEM = Actor.system("test")


@pytest.mark.parametrize("lang", ["pl", "en"])
async def test_a_take_over_reads_another_consultant_continues_and_a_whisper_never_shows(
    chat_server, resident_page, consultant, consultant_client, lang
):
    anna = Staff(await consultant(name="akowalska"))
    boss = await consultant_client("bnadzorcza", "cim_manager", "consultant")
    await chat_server.store.chats.set_display_name(SYSTEM, "bnadzorcza", "Barbara")
    page, ui = resident_page, UI[lang]
    await open_page(page, chat_server.url, lang)
    await page.get_by_role("button", name=ui["accept"]).click()
    await expect(page.get_by_role("textbox", name=ui["box"])).to_be_enabled()
    chat_id = await anna.take_next_chat()
    assert (await boss.call("monitor", {"chat_id": chat_id, "purpose": "kontrola jakości"}))["ok"]
    whisper = await boss.call("whisper", {"chat_id": chat_id, "text": "TAJNA PODPOWIEDŹ", "client_msg_id": "w"})
    assert whisper["ok"], whisper
    await anna.send("Dzień dobry")
    await expect(page.locator(".cim-msg").filter(has_text="Dzień dobry")).to_have_count(1)
    assert (await boss.call("take_over", {"chat_id": chat_id}))["ok"]
    await expect(page.locator('.cim-msg[data-event="taken_over"]')).to_have_count(1)
    lines = await system_lines(page)
    assert lines[-1] == ("taken_over", render_event("taken_over", {"consultant": "Barbara"}, lang))
    panel = await page.locator("#cim-panel").inner_text()
    assert "TAJNA" not in panel and "bnadzorcza" not in panel and "akowalska" not in panel
