"""The desk's routing as the resident sees it in the real widget in Chromium (issue 17): auto-assignment by skill
and capacity, a chat re-queued when its consultant's connection stays lost past the grace period, an idle chat
warned then closed, the receipt pair linking a §4 request, and a rating outliving the purge of its chat; against
the real chat server, real consultant socket clients and the real store (the clock is the tests' ManualClock)."""

from __future__ import annotations

import pytest
from playwright.async_api import Page, expect

from store.chats import render_event
from tests.browser.conftest import EMBEDDING_ORIGIN
from tests.browser.test_widget_texts import UI, open_page, other_language_lines, system_lines
from tests.fixtures.chat import ChatClient
from tests.fixtures.store import SYSTEM
from tests.test_desk_resident import chat_request
from tests.test_desk_routing import gone, routing

pytestmark = [pytest.mark.browser, pytest.mark.asyncio]

GRACE_SECONDS = 5
IDLE_MINUTES = 2

#: The widget's status bar in each language (cim-widget.js STRINGS: queued, wait, active, closed).
STATUS = {
    "pl": {"position": "Twoja pozycja: {n}.", "active": "Połączono z konsultantem.", "closed": "Czat zakończony."},
    "en": {
        "position": "Your position: {n}.",
        "active": "You are connected with a consultant.",
        "closed": "The chat has ended.",
    },
}
#: Fixed words of the other language's status bar and after-chat section, never shown in this one.
OTHER_WORDS = {
    "pl": ["Your position", "Estimated wait", "You are connected", "The chat has ended", "Start a new chat"],
    "en": ["Twoja pozycja", "Szacowany czas", "Połączono z konsultantem", "Czat zakończony", "Rozpocznij nowy czat"],
}


@pytest.fixture
def chat_settings(settings, request):
    """Always open, the embedding origin allowed, a short grace and idle time (the clock is moved by the tests);
    `@pytest.mark.parametrize("chat_settings", [{...}], indirect=True)` overrides a setting (auto mode)."""
    defaults = {
        "opening_hours": "always",
        "allowed_origins": EMBEDDING_ORIGIN,
        "chat_assignment": "pick",
        "staff_reconnect_grace_seconds": GRACE_SECONDS,
        "chat_idle_minutes": IDLE_MINUTES,
        "chat_queue_limit_minutes": 0,
        "chat_open_rate_limit": "off",
        "chat_open_address_rate_limit": "off",
    }
    return settings.with_(**{**defaults, **getattr(request, "param", {})})


def status_bar(page: Page):
    return page.locator("#cim-panel .cim-status")


async def start_in_widget(page: Page, url: str, lang: str, topic: str | None = None) -> None:
    await open_page(page, url, lang)
    if topic is not None:
        await page.get_by_role("radio", name=topic).check()
    await page.get_by_role("button", name=UI[lang]["accept"]).click()
    await expect(page.get_by_role("textbox", name=UI[lang]["box"])).to_be_enabled()


async def pick_the_chat(staff: ChatClient) -> int:
    """Pick mode: the consultant accepts the chat at the queue's front."""
    queue = await staff.wait_for("queue", lambda q: bool(q.get("chats")))
    chat_id = queue["chats"][0]["chat_id"]
    ack = await staff.call("accept", {"chat_id": chat_id})
    assert ack["ok"], ack
    return chat_id


async def assert_only_its_language(page: Page, lang: str) -> None:
    panel = await page.locator("#cim-panel").inner_text()
    assert not [line for line in other_language_lines(lang) if line in panel], panel
    assert not [word for word in OTHER_WORDS[lang] if word in panel], panel


# ---------------------------------------------------------------- auto-assignment by skill and capacity


@pytest.mark.parametrize("chat_settings", [{"chat_assignment": "auto"}], indirect=True)
async def test_auto_assignment_gives_the_chat_to_the_consultant_with_the_skill_within_capacity(
    chat_server, resident_page, browser, consultant_client
):
    store = chat_server.store
    await store.desk.seed_default_topics(SYSTEM)
    card, taxes, registration, _ = await store.desk.topics()
    anna, bob = await consultant_client("anna"), await consultant_client("bob")
    await store.desk.set_skills(SYSTEM, "anna", [registration.id])
    await store.desk.set_max_chats(SYSTEM, "anna", 1)
    await store.desk.set_skills(SYSTEM, "bob", [taxes.id, card.id])  # bob is free but cannot answer "Meldunki"
    await store.chats.set_display_name(SYSTEM, "anna", "Anna K.")
    page: Page = resident_page
    await start_in_widget(page, chat_server.url, "pl", "Meldunki")
    assigned = await anna.wait_for("assigned")
    assert assigned["auto"] is True and assigned["topic"]["pl"] == "Meldunki"
    first = assigned["chat_id"]
    await expect(status_bar(page)).to_have_text(STATUS["pl"]["active"])
    line = page.locator('.cim-msg[data-from="system"][data-event="accepted"]')
    await expect(line.locator("[data-cim-text]")).to_have_text(
        render_event("accepted", {"consultant": "Anna K."}, "pl")
    )
    assert (await store.chats.get(first)).consultant_id == anna.staff.id
    assert bob.of("assigned") == []

    # a second resident on the same topic: anna is at capacity and bob has not the skill, so it waits
    other_context = await browser.new_context(locale="pl-PL")
    try:
        other = await other_context.new_page()
        await start_in_widget(other, chat_server.url, "pl", "Meldunki")
        await expect(status_bar(other)).to_contain_text(STATUS["pl"]["position"].format(n=1))
        assert await routing(chat_server).assign_waiting() == 0  # a pass now gives nothing to anybody
        [waiting] = await store.chats.queue()
        assert (await store.chats.get(waiting.chat_id)).status == "queued"
        assert len(anna.of("assigned")) == 1 and bob.of("assigned") == []
        await expect(other.locator('.cim-msg[data-event="accepted"]')).to_have_count(0)
        # anna's seat frees: the waiting chat is hers, and the second widget is connected
        assert (await anna.call("close", {"chat_id": first, "category": "information_given"}))["ok"]
        await anna.wait_for("assigned", lambda a: a["chat_id"] == waiting.chat_id)
        await expect(status_bar(other)).to_have_text(STATUS["pl"]["active"])
        await expect(other.locator('.cim-msg[data-event="accepted"] [data-cim-text]')).to_have_text(
            render_event("accepted", {"consultant": "Anna K."}, "pl")
        )
        assert bob.of("assigned") == []
        await assert_only_its_language(other, "pl")
    finally:
        await other_context.close()
    await expect(status_bar(page)).to_have_text(STATUS["pl"]["closed"])
    await assert_only_its_language(page, "pl")


# ---------------------------------------------------------------- re-queued when the consultant's connection drops


@pytest.mark.parametrize("lang", ["pl", "en"])
async def test_the_widget_shows_the_chat_requeued_after_the_consultants_grace_period(
    chat_server, resident_page, consultant_client, clock, lang
):
    store = chat_server.store
    anna = await consultant_client("anna")
    page: Page = resident_page
    await start_in_widget(page, chat_server.url, lang)
    chat_id = await pick_the_chat(anna)
    await expect(status_bar(page)).to_have_text(STATUS[lang]["active"])
    await gone(chat_server, anna)  # the consultant's connection drops; the session goes on
    desk = routing(chat_server)
    clock.advance(seconds=GRACE_SECONDS - 1)
    await desk.requeue_dropped()
    assert (await store.chats.get(chat_id)).status == "active"
    await expect(page.locator('.cim-msg[data-event="requeued"]')).to_have_count(0)
    clock.advance(seconds=2)
    await desk.requeue_dropped()
    requeued = page.locator('.cim-msg[data-from="system"][data-event="requeued"]')
    await expect(requeued).to_have_count(1)
    await expect(requeued.locator("[data-cim-text]")).to_have_text(render_event("requeued", {}, lang))
    await expect(status_bar(page)).to_contain_text(STATUS[lang]["position"].format(n=1))
    assert (await store.chats.get(chat_id)).status == "queued"
    await expect(page.get_by_role("textbox", name=UI[lang]["box"])).to_be_enabled()  # the resident can still write
    assert [event for event, _ in await system_lines(page)][-2:] == ["accepted", "requeued"]
    await assert_only_its_language(page, lang)


# ---------------------------------------------------------------- an idle chat is warned, then closed


@pytest.mark.parametrize("lang", ["pl", "en"])
async def test_a_silent_resident_sees_the_idle_warning_then_the_chat_closed(
    chat_server, resident_page, consultant_client, clock, lang
):
    store = chat_server.store
    anna = await consultant_client("anna")
    page: Page = resident_page
    await start_in_widget(page, chat_server.url, lang)
    chat_id = await pick_the_chat(anna)
    await expect(status_bar(page)).to_have_text(STATUS[lang]["active"])
    desk = routing(chat_server)
    clock.advance(minutes=IDLE_MINUTES - 1)
    await desk.sweep_idle()
    await expect(page.locator('.cim-msg[data-event="idle_warning"]')).to_have_count(0)
    clock.advance(minutes=1)
    await desk.sweep_idle()
    warning = page.locator('.cim-msg[data-from="system"][data-event="idle_warning"]')
    await expect(warning).to_have_count(1)
    await expect(warning.locator("[data-cim-text]")).to_have_text(render_event("idle_warning", {}, lang))
    await expect(page.get_by_role("textbox", name=UI[lang]["box"])).to_be_enabled()  # still open
    clock.advance(minutes=IDLE_MINUTES)
    await desk.sweep_idle()
    closing = page.locator('.cim-msg[data-from="system"][data-event="closed_idle"]')
    await expect(closing.locator("[data-cim-text]")).to_have_text(render_event("closed_idle", {}, lang))
    # the closed view: no message box, the status, the receipt and a new chat offered
    await expect(status_bar(page)).to_have_text(STATUS[lang]["closed"])
    await expect(page.get_by_role("textbox", name=UI[lang]["box"])).to_be_hidden()
    await expect(page.get_by_role("button", name=UI[lang]["new"])).to_be_visible()
    await expect(page.locator("[data-cim-receipt]")).to_be_visible()
    assert (await store.chats.get(chat_id)).status == "closed"
    assert [event for event, _ in await system_lines(page)][-2:] == ["idle_warning", "closed_idle"]
    await assert_only_its_language(page, lang)


# ---------------------------------------------------------------- the receipt links a §4 request


async def ended_chat_in_widget(page: Page, chat_server, consultant_client) -> tuple[ChatClient, int]:
    anna = await consultant_client("anna")
    await start_in_widget(page, chat_server.url, "pl")
    chat_id = await pick_the_chat(anna)
    box = page.get_by_role("textbox", name=UI["pl"]["box"])
    await box.fill("Kiedy mogę odebrać Kartę Mieszkańca?")
    await box.press("Enter")
    await anna.wait_for("message", lambda m: m.get("from") == "resident")
    assert (await anna.call("close", {"chat_id": chat_id, "category": "information_given"}))["ok"]
    await expect(page.locator("[data-cim-receipt]")).to_be_visible()
    return anna, chat_id


@pytest.mark.ordinance("§4.1")
async def test_the_receipt_read_from_the_widget_links_the_chat_to_a_section_4_request(
    chat_server, resident_page, consultant_client, make_staff
):
    store = chat_server.store
    page: Page = resident_page
    _, chat_id = await ended_chat_in_widget(page, chat_server, consultant_client)
    receipt = page.locator("[data-cim-receipt]")
    reference = (await receipt.locator("[data-cim-receipt-reference]").inner_text()).strip()
    secret = (await receipt.locator("[data-cim-receipt-secret]").inner_text()).strip()
    assert reference.startswith("CZ-") and secret
    clerk = (await make_staff("ewa", "designated")).as_actor()
    req = await store.requests.register(clerk, chat_request(conversation_reference=reference, receipt_secret=secret))
    assert req.receipt_verified_at is not None and req.conversation_reference == reference
    detail = await store.requests.get(clerk, req.id)
    assert [c.conversation_id for c in detail.conversations] == [chat_id]
    assert [h.request_id for h in await store.retention.holds(SYSTEM, conversation_id=chat_id)] == [req.id]


# ---------------------------------------------------------------- a rating outlives the purge of its chat


async def test_a_rating_given_in_the_widget_survives_the_purge_of_its_chat_with_no_link_back(
    chat_server, resident_page, consultant_client, clock
):
    from store.errors import ConversationNotFound

    store = chat_server.store
    page: Page = resident_page
    anna, chat_id = await ended_chat_in_widget(page, chat_server, consultant_client)
    rating = page.locator("[data-cim-rating]")
    await rating.get_by_role("radio", name="4", exact=True).check()
    await rating.get_by_role("textbox", name="Komentarz (nieobowiązkowy)").fill("Pomocna odpowiedź.")
    await rating.get_by_role("button", name="Wyślij ocenę").click()
    await expect(rating.get_by_role("status")).to_have_text("Dziękujemy za ocenę.")
    row = await store.db.fetchone("SELECT * FROM chat_ratings")
    assert (row["conversation_id"], row["consultant"], row["rating"]) == (chat_id, "anna", 4)
    assert await store.resident_desk.rating_comment(chat_id) == "Pomocna odpowiedź."
    await page.close()  # the resident has gone; months later the chat's retention period is over
    clock.advance(days=200)
    await store.retention.purge(SYSTEM)
    with pytest.raises(ConversationNotFound):
        await store.archive.details(SYSTEM, chat_id)
    row = await store.db.fetchone("SELECT * FROM chat_ratings")
    assert dict(row) | {"id": 0} == {
        "id": 0,
        "conversation_id": None,
        "day": "2026-03-02",
        "consultant_id": anna.staff.id,
        "consultant": "anna",
        "topic": None,
        "rating": 4,
        "comment": None,
    }
    overall, per_consultant, _ = await store.resident_desk.rating_figures("2026-03-01", "2026-03-31")
    assert (overall.count, overall.marks) == (1, (0, 0, 0, 1, 0))
    assert [(f.key, f.count) for f in per_consultant] == [("anna", 1)]
