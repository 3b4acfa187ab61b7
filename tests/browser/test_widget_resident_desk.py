"""The resident's side of the desk in Chromium (issue 17): the offline message form, the receipt and the copy
of a chat, the rating; against the real server, a real consultant client and the real store."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from tests.browser.test_widget import Staff, axe_serious_violations
from tests.browser.test_widget_texts import UI, open_page
from tests.fixtures.store import SYSTEM

pytestmark = [pytest.mark.browser, pytest.mark.asyncio]


async def closed_server(settings, store):
    from tests.fixtures.chat import start_chat_server

    tomorrow = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")[(store.clock().weekday() + 1) % 7]
    return await start_chat_server(settings.with_(opening_hours=f"{tomorrow} 08:00-16:00"), store)


@pytest.mark.ordinance("§1.5")
async def test_an_offline_message_from_the_widget_reaches_the_consultants_and_is_answered(
    settings, store, resident_page, make_staff
):
    server, runner = await closed_server(settings, store)
    page = resident_page
    try:
        await open_page(page, server.url, "pl")
        await expect(page.locator("[data-cim-offline]")).to_be_visible()
        await page.get_by_role("button", name="Zostaw wiadomość").click()
        form = page.locator("[data-cim-offline-form]")
        await expect(form).to_be_visible()
        # the §1.5 notice comes first, in full
        await expect(form.locator("[data-cim-notice]")).to_contain_text("Kontakt z Urzędem Miasta Szczecin")
        await expect(form.get_by_role("heading", name="Zostaw wiadomość")).to_be_focused()
        # no contact: the widget says so and nothing is sent
        await form.get_by_role("textbox", name="Treść wiadomości").fill("Proszę o informację o podatku.")
        await form.get_by_role("button", name="Wyślij wiadomość").click()
        await expect(form.get_by_role("alert")).to_contain_text("adres e-mail lub numer telefonu")
        await expect(form.get_by_role("textbox", name="E-mail lub numer telefonu do odpowiedzi")).to_be_focused()
        # a malformed contact: the server refuses it, nothing is stored
        await form.get_by_role("textbox", name="E-mail lub numer telefonu do odpowiedzi").fill("jan@")
        await form.get_by_role("button", name="Wyślij wiadomość").click()
        await expect(form.get_by_role("alert")).to_contain_text("To nie jest adres e-mail")
        await expect(form.get_by_role("textbox", name="E-mail lub numer telefonu do odpowiedzi")).to_have_attribute(
            "aria-invalid", "true"
        )
        assert await store.resident_desk.offline_messages(SYSTEM, include_answered=True) == []
        await form.get_by_role("textbox", name="Imię i nazwisko (nieobowiązkowe)").fill("Jan Kowalski")
        await form.get_by_role("textbox", name="E-mail lub numer telefonu do odpowiedzi").fill("jan@example.pl")
        await form.get_by_role("button", name="Wyślij wiadomość").click()
        sent = page.locator("[data-cim-offline-sent]")
        await expect(sent).to_be_visible()
        reference = await sent.locator("[data-cim-offline-reference]").inner_text()
        assert reference.startswith("CZ-")
        assert await axe_serious_violations(page, server.url) == []
    finally:
        await page.close()
        await runner.cleanup()
    # the consultants' list in the TUI when the desk opens, and the answer recorded there
    from textual.widgets import DataTable

    from tests.fixtures.tui import wait_until
    from tests.test_desk_staff import ScreenApp
    from tui.context import TuiContext
    from tui.screens.offline import OfflineMessagesScreen
    from tui.widgets.request_forms import FormModal

    actor = (await make_staff("anna", "consultant")).as_actor()
    app = ScreenApp(OfflineMessagesScreen(TuiContext(store=store, settings=store.settings, actor=actor, token="")))
    async with app.run_test(size=(100, 32)) as pilot:
        screen = await wait_until(
            pilot,
            lambda: app.screen if isinstance(app.screen, OfflineMessagesScreen) and app.screen.items else None,
            what="the offline list",
        )
        row = [str(c) for c in screen.query_one(DataTable).get_row_at(0)]
        assert (row[0], row[2], row[3]) == (reference, "Jan Kowalski", "jan@example.pl")
        await pilot.press("a")
        form = await wait_until(
            pilot, lambda: app.screen if isinstance(app.screen, FormModal) else None, what="the answer form"
        )
        form.set_value("how", "letter")
        await pilot.press("ctrl+s")
        await wait_until(
            pilot,
            lambda: isinstance(app.screen, OfflineMessagesScreen) and not app.screen.items,
            what="the list to empty",
        )
    [answered] = await store.resident_desk.offline_messages(actor, include_answered=True)
    assert (answered.reference, answered.answered_by, answered.answered_how) == (reference, "anna", "letter")
    assert answered.text == "Proszę o informację o podatku."


@pytest.mark.ordinance("§4.1")
async def test_the_receipt_the_copy_and_the_rating_after_the_end(chat_server, store, resident_page, consultant):
    staff = Staff(await consultant("anna"))
    page = resident_page
    page.context.set_default_timeout(10_000)
    await open_page(page, chat_server.url, "pl")
    await page.get_by_role("button", name=UI["pl"]["accept"]).click()
    await staff.take_next_chat()
    box = page.get_by_role("textbox", name=UI["pl"]["box"])
    await box.fill("Czy mogę zapłacić podatek online?")
    await box.press("Enter")
    await staff.send("Tak, przez e-Urząd.")
    await expect(page.locator('.cim-msg[data-from="consultant"]')).to_contain_text("e-Urząd")
    ack = await staff.client.call(
        "close", {"chat_id": staff.chat_id, "category": "information_given"}, namespace="/staff", timeout=10
    )
    assert ack["ok"], ack

    receipt = page.locator("[data-cim-receipt]")
    await expect(receipt).to_be_visible()
    reference = await receipt.locator("[data-cim-receipt-reference]").inner_text()
    secret = await receipt.locator("[data-cim-receipt-secret]").inner_text()
    row = await store.db.fetchone("SELECT receipt_reference FROM conversations WHERE id = ?", (staff.chat_id,))
    assert row["receipt_reference"] == reference and len(secret.replace("-", "")) == 16
    stored = await page.evaluate("JSON.stringify(Object.assign({}, sessionStorage))")
    assert secret not in stored  # shown once, never kept in the browser

    async with page.expect_download() as download_info:
        await page.get_by_role("button", name="Pobierz zapis rozmowy (tekst)").click()
    text = (await (await download_info.value).path()).read_text(encoding="utf-8")
    assert reference in text and "Ty: Czy mogę zapłacić podatek online?" in text and "Tak, przez e-Urząd." in text
    rating = page.locator("[data-cim-rating]")
    await rating.get_by_role("button", name="Wyślij ocenę").click()
    await expect(rating.get_by_role("alert")).to_contain_text("Wybierz ocenę")
    await rating.get_by_role("radio", name="5 – bardzo dobrze").check()
    await rating.get_by_role("textbox", name="Komentarz (nieobowiązkowy)").fill("Szybko i konkretnie.")
    await rating.get_by_role("button", name="Wyślij ocenę").click()
    await expect(rating.get_by_role("status")).to_have_text("Dziękujemy za ocenę.")
    overall, per_consultant, _ = await store.resident_desk.rating_figures("0001-01-01", "9999-12-31")
    assert overall.marks == (0, 0, 0, 0, 1) and [(f.key, f.marks) for f in per_consultant] == [
        ("anna", (0, 0, 0, 0, 1))
    ]
    assert await store.resident_desk.rating_comment(staff.chat_id) == "Szybko i konkretnie."
    assert await axe_serious_violations(page, chat_server.url) == []

    # a new chat in the same browser session: the last chat's copy is still there to download
    await page.get_by_role("button", name=UI["pl"]["new"]).click()
    last = page.locator("[data-cim-last-copy]")
    await expect(last).to_contain_text(reference)
    async with page.expect_download() as download_info:
        await last.get_by_role("button", name="Pobierz zapis rozmowy (tekst)").click()
    assert reference in (await (await download_info.value).path()).read_text(encoding="utf-8")
    async with page.expect_download() as download_info:
        await last.get_by_role("button", name="Pobierz zapis rozmowy (PDF)").click()
    assert (await (await download_info.value).path()).read_bytes().startswith(b"%PDF-")


async def test_with_nobody_connected_the_english_notice_offers_a_message_too(
    chat_server, store, resident_page, make_staff
):
    page = resident_page
    await open_page(page, chat_server.url, "en")
    await expect(page.get_by_role("button", name=UI["en"]["accept"])).to_be_visible()  # a chat is still possible
    await page.get_by_role("button", name="Send us a message").click()
    form = page.locator("[data-cim-offline-form]")
    await form.get_by_role("textbox", name="E-mail or phone number for the reply").fill("+48 601 234 567")
    await form.get_by_role("textbox", name="Your message").fill("x" * 2000 + "y")  # maxlength keeps 2000
    await form.get_by_role("button", name="Send the message").click()
    await expect(page.locator("[data-cim-offline-sent]")).to_contain_text("Your message has been saved")
    [left] = await store.resident_desk.offline_messages((await make_staff("anna", "consultant")).as_actor())
    assert (left.lang, (await store.chats.get(left.conversation_id)).status) == ("en", "offline_message")
    assert (left.contact, left.text) == ("+48601234567", "x" * 2000)  # opened through the store (sealed at rest)


#: The offline form in each language, and the widget's own words for a refused contact (cim-widget.js reasons).
OFFLINE_FORM = {
    "pl": {
        "offer": "Zostaw wiadomość",
        "contact": "E-mail lub numer telefonu do odpowiedzi",
        "text": "Treść wiadomości",
        "send": "Wyślij wiadomość",
        "refused": "To nie jest adres e-mail (nazwa@domena) ani numer telefonu. Popraw kontakt.",
    },
    "en": {
        "offer": "Send us a message",
        "contact": "E-mail or phone number for the reply",
        "text": "Your message",
        "send": "Send the message",
        "refused": "This is neither an e-mail address (name@domain) nor a phone number. Please correct it.",
    },
}


@pytest.mark.staff_lang("pl")
@pytest.mark.parametrize("lang", ["pl", "en"])
async def test_a_refused_contact_is_told_in_the_widgets_words_and_language_never_the_servers(
    settings, store, resident_page, lang
):
    """The server refuses by code and reason (its message is English, its staff language Polish here): the
    resident reads the widget's own sentence in the widget's language, and no word of the server's."""
    server, runner = await closed_server(settings, store)
    page = resident_page
    words = OFFLINE_FORM[lang]
    sent: list[dict] = []
    page.on("websocket", lambda ws: ws.on("framereceived", lambda frame: sent.append({"frame": frame})))
    try:
        await open_page(page, server.url, lang)
        await page.get_by_role("button", name=words["offer"]).click()
        form = page.locator("[data-cim-offline-form]")
        await form.get_by_role("textbox", name=words["text"]).fill("Proszę o kontakt.")
        await form.get_by_role("textbox", name=words["contact"]).fill("jan@")
        await form.get_by_role("button", name=words["send"]).click()
        alert = form.get_by_role("alert")
        await expect(alert).to_have_text(words["refused"])
        await expect(form.get_by_role("textbox", name=words["contact"])).to_be_focused()
        # the server did send its own sentence, with the reason: the page shows none of it
        frames = " ".join(str(f["frame"]) for f in sent)
        assert '"reason":"contact_invalid"' in frames and "the contact is not an e-mail address" in frames
        shown = await form.inner_text()
        assert "the contact is not" not in shown and "contact_invalid" not in shown
        other = OFFLINE_FORM["en" if lang == "pl" else "pl"]["refused"]
        assert other not in shown
        assert (await store.db.fetchone("SELECT count(*) AS n FROM offline_messages"))["n"] == 0
    finally:
        await page.close()
        await runner.cleanup()
