"""The resident chat widget in headless Chromium against the real chat server and a real consultant client."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
import socketio
from playwright.async_api import Page, expect

from tests.browser.conftest import EMBEDDING_ORIGIN

pytestmark = [pytest.mark.browser, pytest.mark.asyncio]

# §1.5 of ordinance 308/18, verbatim: every chat is preceded by this notice.
NOTICE_1_5 = (
    "Kontakt z Urzędem Miasta Szczecin za pośrednictwem usługi czat wiąże się z przetwarzaniem "
    "przez Urząd podanych danych osobowych. Jeżeli nie wyrażacie Państwo zgody na przetwarzanie "
    "danych osobowych prosimy o przerwanie korzystania z usługi czat. Administrator danych tj. "
    "Gmina Miasto Szczecin Urząd Miasta Szczecin pl. Armii Krajowej 1 Szczecin, zobowiązana jest "
    "wypełnić obowiązek informacyjny z art. 13, 14 i 15 ogólnego rozporządzenia o ochronie danych "
    "(RODO). Pełną informację, w tym informację o swoich prawach znajdziecie Państwo na stronie "
    "bip.um.szczecin.pl w zakładce Ochrona Danych Osobowych/RODO."
)
XSS = "<img src=x onerror=window.__pwned=1>"

LAUNCHER_PL = "Czat z urzędem"
ACCEPT_PL = "Akceptuję i rozpoczynam"
LEAVE_PL = "Opuść"


def squash(text: str) -> str:
    return " ".join(text.split())


# ---------------------------------------------------------------- helpers


async def open_widget(page: Page, url: str, path: str = "/") -> None:
    await page.goto(url + path)
    await page.get_by_role("button", name=LAUNCHER_PL).click()
    await expect(page.get_by_role("button", name=ACCEPT_PL)).to_be_visible()


async def start_chat(page: Page, url: str) -> None:
    await open_widget(page, url)
    await page.get_by_role("button", name=ACCEPT_PL).click()
    await expect(page.get_by_role("textbox", name="Twoja wiadomość")).to_be_enabled()


async def resident_send(page: Page, text: str) -> None:
    box = page.get_by_role("textbox", name="Twoja wiadomość")
    await box.fill(text)
    await box.press("Enter")
    bubble = page.locator('.cim-msg[data-from="resident"]').filter(has_text=text.splitlines()[0]).last
    await expect(bubble).to_have_attribute("data-state", "sent")


class Staff:
    """A consultant's python-socketio client on /staff, with the events it receives queued up."""

    def __init__(self, client: socketio.AsyncClient) -> None:
        self.client = client
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.messages: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.typing: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.chat_id: Any = None
        client.on("queue", self.queue.put_nowait, namespace="/staff")
        client.on("message", self.messages.put_nowait, namespace="/staff")
        client.on("typing", self.typing.put_nowait, namespace="/staff")

    async def take_next_chat(self) -> Any:
        while True:
            event = await asyncio.wait_for(self.queue.get(), 10)
            if event.get("chats"):
                break
        self.chat_id = event["chats"][0]["chat_id"]
        ack = await self.client.call("accept", {"chat_id": self.chat_id}, namespace="/staff", timeout=10)
        assert ack["ok"], ack
        return self.chat_id

    async def send(self, text: str) -> None:
        ack = await self.client.call(
            "send",
            {"chat_id": self.chat_id, "text": text, "client_msg_id": str(uuid.uuid4())},
            namespace="/staff",
            timeout=10,
        )
        assert ack["ok"], ack

    async def set_typing(self, active: bool) -> None:
        await self.client.call("typing", {"chat_id": self.chat_id, "active": active}, namespace="/staff", timeout=10)

    async def resident_messages(self, count: int) -> list[str]:
        texts: list[str] = []
        while len(texts) < count:
            m = await asyncio.wait_for(self.messages.get(), 10)
            if m.get("from") == "resident":
                texts.append(m["text"])
        return texts


async def axe_serious_violations(page: Page, url: str) -> list[dict[str, Any]]:
    if not await page.evaluate("typeof window.axe !== 'undefined'"):
        await page.add_script_tag(url=url + "/widget/vendor/axe.min.js")
    violations = await page.evaluate(
        """async () => {
            const r = await axe.run(document, {resultTypes: ['violations']});
            return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                nodes: v.nodes.slice(0, 5).map(n => n.target.join(' '))}));
        }"""
    )
    return [v for v in violations if v["impact"] in ("serious", "critical")]


# ---------------------------------------------------------------- the notice


@pytest.mark.ordinance("§1.5")
async def test_notice_is_shown_in_full_before_any_input_is_possible(chat_server, resident_page):
    page = resident_page
    await open_widget(page, chat_server.url)

    notice = page.locator("[data-cim-notice]")
    await expect(notice).to_be_visible()
    assert squash(await notice.inner_text()) == squash(NOTICE_1_5)
    # Nothing to type into before the notice is accepted: no text field, and no enabled one.
    panel = page.locator("#cim-panel")
    assert await panel.locator("textarea, input:not([type=hidden]), [contenteditable]").count() == 0
    await expect(page.get_by_role("button", name=ACCEPT_PL)).to_be_enabled()
    await expect(page.get_by_role("button", name=LEAVE_PL)).to_be_enabled()
    # The panel speaks Polish and focus moved into it.
    await expect(panel).to_have_attribute("lang", "pl")
    assert await page.evaluate("document.getElementById('cim-panel').contains(document.activeElement)")


async def test_accepting_the_notice_opens_the_chat_with_a_queue_position(chat_server, resident_page):
    page = resident_page
    await start_chat(page, chat_server.url)

    await expect(page.locator("[data-cim-notice]")).to_have_count(0)
    status = page.get_by_role("status")
    await expect(status).to_contain_text("kolejce")
    await expect(page.get_by_role("log")).to_be_visible()
    await expect(page.get_by_role("button", name="Zakończ czat")).to_be_enabled()
    # Focus lands in the message box, ready to type.
    await expect(page.get_by_role("textbox", name="Twoja wiadomość")).to_be_focused()


async def test_declining_the_notice_leaves_without_a_chat(chat_server, resident_page, consultant):
    staff = Staff(await consultant(name="anna"))
    page = resident_page
    await open_widget(page, chat_server.url)

    await page.get_by_role("button", name=LEAVE_PL).click()

    await expect(page.get_by_role("heading", name="Czat nie został rozpoczęty")).to_be_visible()
    assert await page.locator("#cim-panel textarea").count() == 0
    await page.wait_for_function("!window.__cimWidget.socket || !window.__cimWidget.socket.connected")
    assert await page.evaluate("Object.keys(sessionStorage).filter(k => /token|outbox/.test(k))") == []
    # No chat reached the consultants' queue.
    await asyncio.sleep(0.5)
    while not staff.queue.empty():
        assert staff.queue.get_nowait().get("chats") == []


# ---------------------------------------------------------------- chatting


async def test_resident_and_consultant_exchange_messages(chat_server, resident_page, consultant):
    staff = Staff(await consultant(name="anna"))
    page = resident_page
    await start_chat(page, chat_server.url)
    await staff.take_next_chat()
    await expect(page.get_by_role("status")).to_contain_text("Połączono z konsultantem")

    await resident_send(page, "Dzień dobry, kiedy odbiór gabarytów?")
    assert await staff.resident_messages(1) == ["Dzień dobry, kiedy odbiór gabarytów?"]

    await staff.set_typing(True)
    await expect(page.locator("[data-cim-typing]")).to_have_text("Konsultant pisze…")

    await staff.send("Dzień dobry! W przyszły wtorek.")
    reply = page.locator('.cim-msg[data-from="consultant"]').last
    await expect(reply.locator("[data-cim-text]")).to_have_text("Dzień dobry! W przyszły wtorek.")
    await expect(reply.locator(".cim-msg__who")).to_have_text("Konsultant")
    assert await reply.locator("time").get_attribute("datetime")
    await expect(page.locator("[data-cim-typing]")).to_be_empty()

    # The resident's typing reaches the consultant.
    await page.get_by_role("textbox", name="Twoja wiadomość").type("Dzię")
    typing = await asyncio.wait_for(staff.typing.get(), 10)
    assert typing["active"] is True

    # With the panel closed, a reply shows up as a count on the launcher.
    await page.keyboard.press("Escape")
    await staff.send("Czy mogę jeszcze w czymś pomóc?")
    badge = page.locator(".cim-launcher__badge")
    await expect(badge).to_have_text("Nowe wiadomości: 1")
    await page.get_by_role("button", name=LAUNCHER_PL).click()
    await expect(badge).to_be_hidden()
    await expect(page.get_by_role("log")).to_contain_text("Czy mogę jeszcze w czymś pomóc?")


async def test_keyboard_only_use(chat_server, resident_page):
    page = resident_page
    await page.goto(chat_server.url + "/")
    launcher = page.get_by_role("button", name=LAUNCHER_PL)
    await launcher.focus()
    await page.keyboard.press("Enter")
    await expect(page.locator(".cim-launcher")).to_have_attribute("aria-expanded", "true")
    assert await page.evaluate("document.getElementById('cim-panel').contains(document.activeElement)")

    await page.get_by_role("button", name=ACCEPT_PL).focus()
    await page.keyboard.press("Enter")
    box = page.get_by_role("textbox", name="Twoja wiadomość")
    await expect(box).to_be_focused()

    # Enter on an empty box explains instead of sending.
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("alert").filter(has_text="pusta")).to_be_visible()

    # Shift+Enter is a new line, Enter sends; the counter follows the text.
    await page.keyboard.type("pierwsza linia")
    await page.keyboard.press("Shift+Enter")
    await page.keyboard.type("druga")
    await expect(page.locator("#cim-counter")).to_have_text("20 / 2000 znaków")
    await page.keyboard.press("Enter")
    bubble = page.locator('.cim-msg[data-from="resident"]').last
    await expect(bubble.locator("[data-cim-text]")).to_have_text("pierwsza linia\ndruga")
    await expect(bubble).to_have_attribute("data-state", "sent")
    await expect(box).to_have_value("")
    assert await box.get_attribute("maxlength") == "2000"

    # Escape closes the panel and gives focus back to the launcher.
    await page.keyboard.press("Escape")
    await expect(page.locator("#cim-panel")).to_be_hidden()
    await expect(launcher).to_be_focused()
    await expect(launcher).to_have_attribute("aria-expanded", "false")


async def test_reload_resumes_the_chat_and_rerenders_history(chat_server, resident_page, consultant):
    staff = Staff(await consultant(name="anna"))
    page = resident_page
    await start_chat(page, chat_server.url)
    await staff.take_next_chat()
    await resident_send(page, "Pytanie przed odświeżeniem")
    await staff.resident_messages(1)
    await staff.send("Odpowiedź przed odświeżeniem")
    await expect(page.get_by_role("log")).to_contain_text("Odpowiedź przed odświeżeniem")

    await page.reload()

    log = page.get_by_role("log")
    await expect(log).to_contain_text("Pytanie przed odświeżeniem")
    await expect(log).to_contain_text("Odpowiedź przed odświeżeniem")
    assert await page.locator('.cim-msg[data-from="resident"]', has_text="Pytanie przed").count() == 1
    await expect(page.locator("[data-cim-notice]")).to_have_count(0)
    # The same chat goes on after the reload.
    await resident_send(page, "Po odświeżeniu")
    assert await staff.resident_messages(1) == ["Po odświeżeniu"]


async def test_unacknowledged_message_is_retried_after_reconnect(chat_server, resident_page, consultant):
    staff = Staff(await consultant(name="anna"))
    page = resident_page
    await start_chat(page, chat_server.url)
    await staff.take_next_chat()

    # Cut the connection and keep it down while the resident writes.
    await page.evaluate("() => { const s = window.__cimWidget.socket; s.io.reconnection(false); s.io.engine.close(); }")
    await expect(page.get_by_role("status")).to_contain_text("ponowne łączenie")
    box = page.get_by_role("textbox", name="Twoja wiadomość")
    await box.fill("Wysłane bez połączenia")
    await box.press("Enter")
    pending = page.locator('.cim-msg[data-from="resident"]').last
    await expect(pending).to_have_attribute("data-state", "pending")
    await expect(pending).to_contain_text("Wysyłanie")

    await page.evaluate("() => { const s = window.__cimWidget.socket; s.io.reconnection(true); s.connect(); }")

    await expect(
        page.locator('.cim-msg[data-from="resident"]').filter(has_text="Wysłane bez połączenia")
    ).to_have_attribute("data-state", "sent")
    await expect(page.get_by_role("status")).not_to_contain_text("ponowne łączenie")
    assert await staff.resident_messages(1) == ["Wysłane bez połączenia"]
    await asyncio.sleep(0.5)
    assert staff.messages.empty() or all(
        m.get("from") != "resident" for m in [staff.messages.get_nowait() for _ in range(staff.messages.qsize())]
    )


async def test_ending_the_chat(chat_server, resident_page):
    page = resident_page
    await start_chat(page, chat_server.url)
    await page.get_by_role("button", name="Zakończ czat").click()
    # it asks first; "No" keeps the chat as it was
    dialog = page.get_by_role("alertdialog")
    await expect(dialog).to_contain_text("Czy na pewno zakończyć czat?")
    await dialog.get_by_role("button", name="Nie, wróć do rozmowy").click()
    await expect(dialog).to_have_count(0)
    await expect(page.get_by_role("textbox", name="Twoja wiadomość")).to_be_enabled()
    await page.get_by_role("button", name="Zakończ czat").click()
    await page.get_by_role("alertdialog").get_by_role("button", name="Tak, zakończ").click()

    await expect(page.get_by_role("status")).to_contain_text("zakończony")
    await expect(page.get_by_role("button", name="Rozpocznij nowy czat")).to_be_visible()
    assert await page.locator("#cim-panel textarea:enabled").count() == 0
    # A new chat starts again with the notice.
    await page.get_by_role("button", name="Rozpocznij nowy czat").click()
    await expect(page.locator("[data-cim-notice]")).to_be_visible()


async def test_consultant_closing_the_chat_ends_it_for_the_resident(chat_server, resident_page, consultant):
    from store.chats import CLOSE_CATEGORIES

    staff = Staff(await consultant(name="anna"))
    page = resident_page
    await start_chat(page, chat_server.url)
    chat_id = await staff.take_next_chat()
    ack = await staff.client.call(
        "close", {"chat_id": chat_id, "category": CLOSE_CATEGORIES[0]}, namespace="/staff", timeout=10
    )
    assert ack["ok"], ack

    await expect(page.get_by_role("status")).to_contain_text("zakończony")
    await expect(page.get_by_role("button", name="Rozpocznij nowy czat")).to_be_visible()
    assert await page.locator("#cim-panel textarea:enabled").count() == 0
    # The finished chat is not resumed after a reload: the resident gets a fresh notice.
    await page.reload()
    await page.get_by_role("button", name=LAUNCHER_PL).click()
    await expect(page.locator("[data-cim-notice]")).to_be_visible()


async def test_forged_resume_token_is_dropped_and_the_chat_starts_over(chat_server, resident_page):
    page = resident_page
    await page.goto(chat_server.url + "/")
    await page.evaluate(
        """origin => {
            sessionStorage.setItem('cim-widget:' + origin + ':token', JSON.stringify('forged-token'));
            sessionStorage.setItem('cim-widget:' + origin + ':open', 'true');
        }""",
        chat_server.url,
    )
    await page.reload()

    await expect(page.locator("[data-cim-notice]")).to_be_visible()
    await expect(page.get_by_role("status")).to_contain_text("Nie można wznowić")
    tokens = await page.evaluate("Object.keys(sessionStorage).filter(k => k.endsWith(':token'))")
    assert tokens == []


# ---------------------------------------------------------------- text stays text


async def test_markup_from_resident_and_consultant_is_shown_as_literal_text(chat_server, resident_page, consultant):
    staff = Staff(await consultant(name="anna"))
    page = resident_page
    await start_chat(page, chat_server.url)
    await staff.take_next_chat()

    await resident_send(page, XSS)
    assert await staff.resident_messages(1) == [XSS]
    await staff.send(XSS)

    texts = page.locator("[data-cim-text]", has_text=XSS)
    await expect(texts).to_have_count(2)
    assert await page.locator(".cim-msg img").count() == 0
    assert await page.evaluate("typeof window.__pwned") == "undefined"

    # And again after a reload, when the transcript comes back as history.
    await page.reload()
    await expect(page.locator("[data-cim-text]", has_text=XSS)).to_have_count(2)
    assert await page.locator(".cim-msg img").count() == 0
    assert await page.evaluate("typeof window.__pwned") == "undefined"


# ---------------------------------------------------------------- language and embedding


async def test_english_widget_via_data_lang(chat_server, resident_page):
    from store.notice_texts import CHAT_EN

    page = resident_page
    url = chat_server.url
    # An English page of the city's site on the server's origin: written into a page the server
    # answered (its health check will do). A page made up by Playwright's router would count as "public" for
    # Chromium's local-network rules, and its websocket to 127.0.0.1 would be refused.
    await page.goto(url + "/healthz")
    await page.set_content(
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>City of Szczecin</title>'
        "</head><body><main><h1>News</h1><p>English page.</p></main>"
        '<script src="/widget/cim-widget.js" data-lang="en" defer></script></body></html>'
    )
    await page.get_by_role("button", name="Chat with us").click()
    panel = page.locator("#cim-panel")
    await expect(panel).to_have_attribute("lang", "en")
    await expect(page.get_by_role("button", name="Accept and start")).to_be_visible()
    await expect(page.get_by_role("button", name="Leave")).to_be_visible()
    notice = page.locator("[data-cim-notice]")
    assert squash(await notice.inner_text()) == squash(CHAT_EN)

    await page.get_by_role("button", name="Accept and start").click()
    await expect(page.get_by_role("textbox", name="Your message")).to_be_enabled()
    await expect(page.get_by_role("status")).to_contain_text("queue")
    await expect(page.get_by_role("button", name="End chat")).to_be_visible()
    assert await page.evaluate("window.__cimWidget.socket.io.engine.transport.name") == "websocket"


async def test_widget_embedded_in_a_page_of_another_origin_talks_to_its_own_server(chat_server, browser):
    """The city's website and the chat server are different origins: the script src decides the server.

    The city page is served by Playwright at EMBEDDING_ORIGIN. Chromium lets a page reach a
    loopback server only from a secure context and with the local-network-access permission,
    hence https and the permission (a real deployment has a public server and no such rule).
    """
    context = await browser.new_context(permissions=["local-network-access"])
    errors: list[str] = []
    try:
        page = await context.new_page()
        page.set_default_timeout(10_000)
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        await page.route(
            EMBEDDING_ORIGIN + "/",
            lambda route: route.fulfill(
                content_type="text/html; charset=utf-8",
                body='<!DOCTYPE html><html lang="pl"><head><meta charset="utf-8"><title>Miasto</title></head>'
                "<body><main><h1>Aktualności</h1></main>"
                f'<script src="{chat_server.url}/widget/cim-widget.js" defer></script></body></html>',
            ),
        )
        await page.goto(EMBEDDING_ORIGIN + "/")
        await page.get_by_role("button", name=LAUNCHER_PL).click()
        notice = page.locator("[data-cim-notice]")
        await expect(notice).to_be_visible()
        assert squash(await notice.inner_text()) == squash(NOTICE_1_5)
        await page.get_by_role("button", name=ACCEPT_PL).click()
        await resident_send(page, "Pisze z innej strony")
    finally:
        await context.close()
    assert not errors


# ---------------------------------------------------------------- accessibility and small screens


async def test_no_serious_accessibility_violations_with_notice_and_with_chat(chat_server, resident_page, consultant):
    staff = Staff(await consultant(name="anna"))
    page = resident_page
    await page.emulate_media(reduced_motion="reduce")
    await open_widget(page, chat_server.url)
    assert await axe_serious_violations(page, chat_server.url) == []

    await page.get_by_role("button", name=ACCEPT_PL).click()
    await expect(page.get_by_role("textbox", name="Twoja wiadomość")).to_be_enabled()
    await staff.take_next_chat()
    await resident_send(page, "Dzień dobry")
    await staff.send("Dzień dobry, w czym mogę pomóc?")
    await expect(page.get_by_role("log")).to_contain_text("w czym mogę pomóc")
    assert await axe_serious_violations(page, chat_server.url) == []


@pytest.mark.parametrize(("width", "height"), [(320, 640), (640, 360)], ids=["320px", "200pct-zoom"])
async def test_panel_fits_narrow_viewports_without_horizontal_scrolling(chat_server, browser, width, height):
    context = await browser.new_context(viewport={"width": width, "height": height})
    try:
        page = await context.new_page()
        page.set_default_timeout(10_000)
        await start_chat(page, chat_server.url)
        await resident_send(page, "x" * 300)

        box = await page.locator("#cim-panel").bounding_box()
        assert box is not None
        assert box["x"] >= 0 and box["x"] + box["width"] <= width + 0.5
        assert box["y"] >= 0 and box["y"] + box["height"] <= height + 0.5
        overflow = await page.evaluate(
            """() => {
                const panel = document.getElementById('cim-panel');
                const wide = [...panel.querySelectorAll('*')].filter(e => {
                    const r = e.getBoundingClientRect(); return r.width > 0 && r.right > window.innerWidth + 0.5;
                }).map(e => e.className);
                return {doc: document.documentElement.scrollWidth - document.documentElement.clientWidth,
                        panel: panel.scrollWidth - panel.clientWidth, wide};
            }"""
        )
        assert overflow == {"doc": 0, "panel": 0, "wide": []}
        # Every control of the chat is on screen and reachable.
        for name in ("Wyślij", "Zakończ czat", "Zamknij okno czatu"):
            await expect(page.get_by_role("button", name=name)).to_be_in_viewport()
    finally:
        await context.close()


# ---------------------------------------------------------------- closed hours and refused sends


async def test_outside_opening_hours_the_widget_shows_the_offline_message_and_hours(settings, store, resident_page):
    from tests.fixtures.chat import start_chat_server

    # Open on one day only: the day after the store clock's today.
    tomorrow = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")[(store.clock().weekday() + 1) % 7]
    server, runner = await start_chat_server(settings.with_(opening_hours=f"{tomorrow} 08:00-16:00"), store)
    page = resident_page
    try:
        await page.goto(server.url + "/")
        await page.get_by_role("button", name=LAUNCHER_PL).click()
        offline = page.locator("[data-cim-offline]")
        await expect(offline).to_be_visible()
        await expect(offline.get_by_role("heading")).to_have_text("Czat jest teraz nieczynny")
        assert len(squash(await offline.inner_text())) > len("Czat jest teraz nieczynny")
        assert await page.locator("#cim-panel textarea").count() == 0
        assert await page.get_by_role("button", name=ACCEPT_PL).count() == 0
    finally:
        await page.close()  # first, so the server need not wait for the page's socket on shutdown
        await runner.cleanup()


async def test_flooding_is_refused_with_a_clear_message(settings, store, resident_page):
    from tests.fixtures.chat import start_chat_server

    server, runner = await start_chat_server(settings.with_(opening_hours="always", resident_rate_limit="2/60"), store)
    page = resident_page
    try:
        await start_chat(page, server.url)
        box = page.get_by_role("textbox", name="Twoja wiadomość")
        for n in range(1, 6):
            await box.fill(f"wiadomość {n}")
            await box.press("Enter")
        await expect(page.get_by_role("alert").filter(has_text="zbyt szybko")).to_be_visible()
        failed = page.locator('.cim-msg[data-state="failed"]')
        await expect(failed.first).to_contain_text("Nie wysłano")
        await expect(failed.first.get_by_role("button", name="Wyślij ponownie")).to_be_visible()
        # Nothing stays pending for ever: every message was either stored or refused.
        await expect(page.locator('.cim-msg[data-state="pending"]')).to_have_count(0)
    finally:
        await page.close()  # first, so the server need not wait for the page's socket on shutdown
        await runner.cleanup()
