"""What residents read in the widget (issue 16), in Chromium: system lines in the widget's own language only,
no close category, no staff log-in name, a confirmation before "end chat", the offline view's contact lines."""

from __future__ import annotations

import pytest
from playwright.async_api import Page, expect

from store.chats import CLOSE_CATEGORIES, SYSTEM_EVENTS, SYSTEM_EVENTS_UNNAMED, render_event
from store.models import Actor
from tests.browser.test_widget import Staff, axe_serious_violations

pytestmark = [pytest.mark.browser, pytest.mark.asyncio]

SYSTEM = Actor.system("test")
ANNA, BOB = "akowalska", "bnowak"  # log-in names; residents must never read them
UI = {
    "pl": {
        "launcher": "Czat z urzędem",
        "accept": "Akceptuję i rozpoczynam",
        "box": "Twoja wiadomość",
        "end": "Zakończ czat",
        "yes": "Tak, zakończ",
        "no": "Nie, wróć do rozmowy",
        "new": "Rozpocznij nowy czat",
    },
    "en": {
        "launcher": "Chat with us",
        "accept": "Accept and start",
        "box": "Your message",
        "end": "End chat",
        "yes": "Yes, end it",
        "no": "No, go back to the chat",
        "new": "Start a new chat",
    },
}
EVENTS = ["notice_accepted", "queued", "accepted", "transferred", "closed_by_consultant"]


async def open_page(page: Page, url: str, lang: str) -> None:
    """The city's page on the server's origin with the widget in `lang` (see test_english_widget_via_data_lang)."""
    await page.goto(url + "/healthz")
    await page.set_content(
        f'<!DOCTYPE html><html lang="{lang}"><head><meta charset="utf-8"><title>Szczecin</title></head>'
        f'<body><main><h1>Miasto</h1></main><script src="/widget/cim-widget.js" data-lang="{lang}" defer>'
        "</script></body></html>"
    )
    await page.get_by_role("button", name=UI[lang]["launcher"]).click()


async def system_lines(page: Page) -> list[tuple[str | None, str]]:
    items = page.locator('.cim-msg[data-from="system"]')
    return [
        (await items.nth(i).get_attribute("data-event"), await items.nth(i).locator("[data-cim-text]").inner_text())
        for i in range(await items.count())
    ]


def other_language_lines(lang: str) -> list[str]:
    other = 1 if lang == "pl" else 0
    lines = [texts[other] for texts in {**SYSTEM_EVENTS, **SYSTEM_EVENTS_UNNAMED}.values()]
    # the fixed part of each line (before a parameter), long enough to be unmistakable
    return [line.split("{")[0].strip() for line in lines if len(line.split("{")[0].strip()) >= 12]


async def assert_what_residents_read(page: Page, lang: str) -> None:
    lines = await system_lines(page)
    assert [event for event, _ in lines] == EVENTS
    expected = [
        render_event("notice_accepted", {"version": 1}, lang),
        render_event("queued", {}, lang),
        render_event("accepted", {"consultant": "Anna"}, lang),
        render_event("transferred", {"consultant": "Robert B."}, lang),
        render_event("closed_by_consultant", {}, lang),
    ]
    assert [text for _, text in lines] == expected
    panel = await page.locator("#cim-panel").inner_text()
    assert ANNA not in panel and BOB not in panel
    assert not [c for c in CLOSE_CATEGORIES if c in panel]
    assert not [line for line in other_language_lines(lang) if line in panel]


@pytest.mark.parametrize("lang", ["pl", "en"])
async def test_the_widget_shows_system_lines_in_its_language_without_codes_or_log_in_names(
    chat_server, resident_page, consultant, lang
):
    anna, bob = Staff(await consultant(name=ANNA)), Staff(await consultant(name=BOB))
    await chat_server.store.accounts.set_signature(SYSTEM, ANNA, full_name="Anna Kowalska")
    await chat_server.store.chats.set_display_name(SYSTEM, BOB, "Robert B.")
    bob_id = (await chat_server.store.accounts.get(BOB)).id
    page, ui = resident_page, UI[lang]
    await open_page(page, chat_server.url, lang)
    await page.get_by_role("button", name=ui["accept"]).click()
    await expect(page.get_by_role("textbox", name=ui["box"])).to_be_enabled()
    chat_id = await anna.take_next_chat()
    ack = await anna.client.call(
        "transfer", {"chat_id": chat_id, "to_staff_id": bob_id}, namespace="/staff", timeout=10
    )
    assert ack["ok"], ack
    await expect(page.locator('.cim-msg[data-event="transferred"]')).to_have_count(1)
    ack = await bob.client.call(
        "close", {"chat_id": chat_id, "category": "information_given"}, namespace="/staff", timeout=10
    )
    assert ack["ok"], ack
    await expect(page.get_by_role("button", name=ui["new"])).to_be_visible()
    await assert_what_residents_read(page, lang)


@pytest.mark.parametrize("lang", ["pl", "en"])
async def test_ending_the_chat_asks_first_and_is_keyboard_operable(chat_server, resident_page, consultant, lang):
    staff = Staff(await consultant(name=ANNA))
    page, ui = resident_page, UI[lang]
    await open_page(page, chat_server.url, lang)
    await page.get_by_role("button", name=ui["accept"]).click()
    await expect(page.get_by_role("textbox", name=ui["box"])).to_be_enabled()
    await staff.take_next_chat()
    await expect(page.locator('.cim-msg[data-event="accepted"]')).to_have_count(1)

    end = page.get_by_role("button", name=ui["end"], exact=True)
    await end.focus()
    await page.keyboard.press("Enter")
    dialog = page.get_by_role("alertdialog")
    await expect(dialog).to_be_visible()
    no = dialog.get_by_role("button", name=ui["no"])
    await expect(no).to_be_focused()  # the safe answer first
    assert await axe_serious_violations(page, chat_server.url) == []
    await page.keyboard.press("Escape")  # cancels the question, not the panel
    await expect(dialog).to_have_count(0)
    await expect(page.locator("#cim-panel")).to_be_visible()
    await expect(end).to_be_focused()

    await page.keyboard.press("Enter")
    await expect(no).to_be_focused()
    await page.keyboard.press("Shift+Tab")
    await expect(dialog.get_by_role("button", name=ui["yes"])).to_be_focused()
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("button", name=ui["new"])).to_be_visible()
    lines = await system_lines(page)
    assert lines[-1] == ("ended_by_resident", render_event("ended_by_resident", {}, lang))
    panel = await page.locator("#cim-panel").inner_text()
    assert ANNA not in panel and not [line for line in other_language_lines(lang) if line in panel]


@pytest.mark.parametrize("lang", ["pl", "en"])
async def test_offline_view_shows_the_hours_once_and_the_office_phone_and_address(settings, store, resident_page, lang):
    from tests.fixtures.chat import start_chat_server

    tomorrow = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")[(store.clock().weekday() + 1) % 7]
    server, runner = await start_chat_server(
        settings.with_(opening_hours=f"{tomorrow} 08:00-16:00", office_phone="+48 91 424 50 00"), store
    )
    page = resident_page
    try:
        await open_page(page, server.url, lang)
        offline = page.locator("[data-cim-offline]")
        await expect(offline).to_be_visible()
        text = await offline.inner_text()
        assert text.count("08:00") == 1, text
        await expect(offline.locator('[data-cim-office="phone"] a')).to_have_attribute("href", "tel:+48914245000")
        await expect(offline.locator('[data-cim-office="phone"]')).to_contain_text("+48 91 424 50 00")
        await expect(offline.locator('[data-cim-office="address"]')).to_contain_text(settings.office_address)
    finally:
        await page.close()  # first, so the server need not wait for the page's socket on shutdown
        await runner.cleanup()
