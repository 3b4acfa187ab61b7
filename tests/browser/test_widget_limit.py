"""The widget's message length limit is the server's (`max_message_length` in notice/history), not a constant."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from tests.browser.test_widget import Staff, resident_send, start_chat

pytestmark = [pytest.mark.browser, pytest.mark.asyncio]


@pytest.fixture
def settings(settings, limit):
    """The store (which enforces the limit) and so the chat server with `limit` instead of 2000."""
    return settings.with_(max_message_length=limit)


async def force_text(page, text: str) -> None:
    """Put text into the message box past its maxlength (as a script or a paste tool could) and send it."""
    await page.evaluate(
        """(text) => {
        const box = document.getElementById('cim-input');
        box.value = text;
        box.dispatchEvent(new Event('input', {bubbles: true}));
    }""",
        text,
    )
    await page.get_by_role("textbox", name="Twoja wiadomość").press("Enter")


@pytest.mark.parametrize("limit", [50])
async def test_a_server_with_a_lower_limit_lowers_the_widgets(chat_server, resident_page, consultant, limit):
    staff = Staff(await consultant(name="anna"))
    page = resident_page
    await start_chat(page, chat_server.url)
    box = page.get_by_role("textbox", name="Twoja wiadomość")
    await expect(page.locator("#cim-counter")).to_have_text("0 / 50 znaków")
    assert await box.get_attribute("maxlength") == "50"
    await box.fill("x" * 60)  # typing stops at the server's limit
    assert await box.input_value() == "x" * 50
    await expect(page.locator("#cim-counter")).to_have_text("50 / 50 znaków")
    await expect(page.locator("#cim-counter")).to_have_class("cim-composer__counter cim-composer__counter--limit")
    # one character more is refused by the widget itself, in words that name the server's limit
    await force_text(page, "y" * 51)
    await expect(page.locator("[data-cim-error]")).to_have_text("Wiadomość jest za długa. Limit to 50 znaków.")
    assert await page.locator('.cim-msg[data-from="resident"]').count() == 0
    assert await box.input_value() == "y" * 51  # kept, to be shortened
    # exactly the limit goes through
    await staff.take_next_chat()
    await box.fill("")
    await resident_send(page, "z" * 50)
    assert await staff.resident_messages(1) == ["z" * 50]


@pytest.mark.parametrize("limit", [2500])
async def test_a_server_with_a_higher_limit_lets_longer_messages_through(chat_server, resident_page, consultant, limit):
    staff = Staff(await consultant(name="anna"))
    page = resident_page
    await start_chat(page, chat_server.url)
    await expect(page.locator("#cim-counter")).to_have_text("0 / 2500 znaków")
    await staff.take_next_chat()
    await resident_send(page, "w" * 2400)  # over the old fixed 2000
    assert await staff.resident_messages(1) == ["w" * 2400]
    # after a reload the limit comes with the history
    await page.reload()
    await expect(page.locator("#cim-counter")).to_have_text("0 / 2500 znaków")
    assert await page.get_by_role("textbox", name="Twoja wiadomość").get_attribute("maxlength") == "2500"
