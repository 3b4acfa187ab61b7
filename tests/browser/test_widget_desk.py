"""The widget's topic picker and its queue position with the estimated wait (issue 17), in Chromium against the
real chat server and a real consultant client."""

from __future__ import annotations

import pytest
from playwright.async_api import Page, expect

from store.archive import PAGE_SIZE_MAX, SearchFilters
from tests.browser.conftest import CHROMIUM_ARGS  # noqa: F401  (the browser fixtures' module)
from tests.browser.test_widget import Staff, axe_serious_violations
from tests.browser.test_widget_texts import UI, open_page
from tests.fixtures.store import SYSTEM

pytestmark = [pytest.mark.browser, pytest.mark.asyncio]


async def chat_count(store) -> int:
    return len((await store.archive.search(SYSTEM, SearchFilters(channel="chat"), page_size=PAGE_SIZE_MAX)).items)


async def test_the_resident_picks_a_topic_before_the_chat(chat_server, resident_page, consultant):
    store = chat_server.store
    await store.desk.seed_default_topics(SYSTEM)
    registration = (await store.desk.topics())[2]
    staff = Staff(await consultant(name="anna"))
    page: Page = resident_page
    await open_page(page, chat_server.url, "pl")
    picker = page.locator("[data-cim-topics]")
    await expect(picker).to_be_visible()
    await expect(picker.locator("legend")).to_have_text("Czego dotyczy Twoja sprawa?")
    radios = page.get_by_role("radio")
    await expect(radios).to_have_count(4)
    await expect(page.get_by_role("radio", name="Karta Mieszkańca")).to_be_visible()
    # without a topic the chat does not start, and nothing is stored
    await page.get_by_role("button", name=UI["pl"]["accept"]).click()
    await expect(page.get_by_role("alert")).to_have_text("Wybierz temat rozmowy.")
    assert await chat_count(store) == 0
    await page.get_by_role("radio", name="Meldunki").check()
    await page.get_by_role("button", name=UI["pl"]["accept"]).click()
    await expect(page.get_by_role("textbox", name=UI["pl"]["box"])).to_be_enabled()
    chat_id = await staff.take_next_chat()
    assert (await store.chats.get(chat_id)).topic_id == registration.id
    assert not await axe_serious_violations(page, chat_server.url)


async def test_english_topics_and_no_picker_without_topics(chat_server, resident_page, browser):
    page: Page = resident_page
    await open_page(page, chat_server.url, "en")
    await expect(page.get_by_role("button", name=UI["en"]["accept"])).to_be_visible()
    await expect(page.locator("[data-cim-topics]")).to_be_hidden()  # no topics defined: no question
    await chat_server.store.desk.seed_default_topics(SYSTEM)
    context = await browser.new_context(locale="en-GB")
    try:
        other = await context.new_page()
        await open_page(other, chat_server.url, "en")
        await expect(other.get_by_role("radio", name="Residence registration")).to_be_visible()
        await expect(other.locator("[data-cim-topics] legend")).to_have_text("What is your question about?")
    finally:
        await context.close()


async def test_the_queue_position_and_estimated_wait_follow_the_queue(
    chat_server, resident_page, browser, consultant, clock
):
    staff = Staff(await consultant(name="anna"))
    first_context = await browser.new_context(locale="pl-PL")
    try:
        first = await first_context.new_page()
        await open_page(first, chat_server.url, "pl")
        await first.get_by_role("button", name=UI["pl"]["accept"]).click()
        await expect(first.get_by_role("status")).to_contain_text("Twoja pozycja: 1.")
        page: Page = resident_page
        await open_page(page, chat_server.url, "en")
        await page.get_by_role("button", name=UI["en"]["accept"]).click()
        status = page.get_by_role("status")
        await expect(status).to_contain_text("Your position: 2.")
        await expect(status).to_contain_text("Estimated wait: unknown.")
        await expect(first.get_by_role("status")).to_contain_text("Szacowany czas oczekiwania: nieznany.")
        clock.advance(seconds=180)  # the first chat waited three minutes
        await staff.take_next_chat()
        await expect(status).to_contain_text("Your position: 1.")
        await expect(status).to_contain_text("Estimated wait: about 3 min.")
    finally:
        await first_context.close()
