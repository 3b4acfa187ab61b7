"""Listening links in headless Chromium: the page plays, seeks with Range (206), refuses a second browser and expiry."""

from __future__ import annotations

import asyncio

import pytest
from playwright.async_api import Browser, Page, Response

from tests.fixtures.audit_log import audit_log
from tests.fixtures.listening import RecordedCall, ingest_call

pytestmark = [pytest.mark.browser, pytest.mark.asyncio]

#: Long enough that Chromium does not buffer the whole file at once, so a seek to the middle must fetch it.
LONG_SECONDS = 300


class AudioLog:
    """Every answer to the page's audio requests: (status, Range asked, Content-Range answered)."""

    def __init__(self, page: Page) -> None:
        self.answers: list[tuple[int, str, str]] = []
        page.on("response", self._seen)

    async def wait_for(self, predicate, timeout: float = 30.0):
        """The first truthy predicate(answers); the response handler runs after the page has moved on."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not (found := predicate(self.answers)) and loop.time() < deadline:
            await asyncio.sleep(0.05)
        return found

    async def _seen(self, response: Response) -> None:
        if response.url.endswith("/audio"):
            headers = await response.request.all_headers()
            self.answers.append((response.status, headers.get("range", ""), response.headers.get("content-range", "")))


async def _wait_js(page: Page, expression: str, arg=None) -> None:
    # a function, not an expression string: the page's CSP forbids eval, which Playwright would use for one
    await page.wait_for_function(expression, arg=arg, timeout=30_000)


async def _play_seek_and_refuse(browser: Browser, store, chat_server, listener, call: RecordedCall, clock) -> None:
    link = await store.listening.create(
        listener.actor, call.conversation_id, "skarga 12/2026", session_token=listener.token
    )
    context = await browser.new_context(locale="pl-PL")
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    log = AudioLog(page)
    response = await page.goto(chat_server.url + link.path)
    assert response is not None and response.status == 200
    assert await page.locator("#code").inner_text() == link.code
    await _wait_js(page, "() => document.getElementById('player').readyState >= 3")
    duration = await page.evaluate("() => document.getElementById('player').duration")
    assert abs(duration - call.duration_s) <= 0.1, (duration, call.duration_s)
    # seek to the middle: a Range request from there on, answered 206
    asked_before = len(log.answers)
    await page.evaluate(
        "p => { const a = document.getElementById('player'); a.muted = true; a.currentTime = p; }", duration / 2
    )
    await _wait_js(
        page, "() => { const a = document.getElementById('player'); return a.readyState >= 3 && !a.seeking; }"
    )
    middle = await log.wait_for(
        lambda answers: [a for a in answers[asked_before:] if a[1].startswith("bytes=") and a[1] != "bytes=0-"]
    )
    assert middle and all(status == 206 for status, _, _ in middle), log.answers
    start = await page.evaluate("() => document.getElementById('player').currentTime")
    await page.locator("#toggle").click()  # the page's own Play button
    await _wait_js(page, "t => document.getElementById('player').currentTime > t + 0.3", start)
    assert not errors
    # a second browser context (a forwarded link) is refused
    other = await browser.new_context()
    foreign = await other.new_page()
    refused = await foreign.goto(chat_server.url + link.path)
    assert refused is not None and refused.status == 403
    assert "innej przeglądarce" in await foreign.locator("[role=alert]").inner_text()
    await other.close()
    # after expiry the page is refused, even in the browser that opened it
    clock.advance(minutes=store.settings.listen_minutes, seconds=call.duration_s + 1)
    expired = await page.goto(chat_server.url + link.path)
    assert expired is not None and expired.status == 410
    await context.close()
    rows = await audit_log(store, action_prefix="listen.")
    steps = [(r.action, r.outcome, r.details.get("reason")) for r in rows]
    assert steps[0] == ("listen.link_create", "ok", None)
    assert ("listen.page", "ok", None) in steps
    assert sum(1 for s in steps if s == ("listen.audio", "ok", None)) >= 2  # the first load and the seek
    # the first page keeps fetching audio while the others are refused: compare the page opens alone
    assert [s for s in steps if s[0] == "listen.page"] == [
        ("listen.page", "ok", None),
        ("listen.page", "refused", "foreign_browser"),
        ("listen.page", "refused", "expired"),
    ]
    assert all(r.purpose == "skarga 12/2026" and r.actor_name == "maria" for r in rows)


async def test_a_pcm_recording_plays_seeks_and_is_refused_elsewhere(
    browser, store, chat_server, pbx, listener, clock
) -> None:
    call = await ingest_call(store, pbx, "1772442000.1", long_seconds=LONG_SECONDS)
    await _play_seek_and_refuse(browser, store, chat_server, listener, call, clock)


async def test_a_gsm_recording_plays_seeks_and_is_refused_elsewhere(
    browser, store, chat_server, pbx, listener, clock
) -> None:
    call = await ingest_call(store, pbx, "1772442100.2", gsm=True, long_seconds=LONG_SECONDS)
    assert call.format == "wav-gsm"
    await _play_seek_and_refuse(browser, store, chat_server, listener, call, clock)


async def test_the_page_is_accessible_keyboard_operable_and_bilingual(
    browser, store, chat_server, pcm_call, listener
) -> None:
    from tests.browser.test_widget import axe_serious_violations

    link = await store.listening.create(
        listener.actor, pcm_call.conversation_id, "kontrola jakości", session_token=listener.token
    )
    context = await browser.new_context(locale="pl-PL")
    page = await context.new_page()
    await page.goto(chat_server.url + link.path)
    assert await page.locator("html").get_attribute("lang") == "pl"
    assert await page.get_by_role("heading", level=1).inner_text() == "Odsłuch nagrania"
    assert await axe_serious_violations(page, chat_server.url) == []
    # keyboard only: Tab reaches the page's Play button, Enter starts playback
    await page.evaluate("() => { document.getElementById('player').muted = true; }")
    for _ in range(10):
        await page.keyboard.press("Tab")
        if await page.evaluate("() => document.activeElement && document.activeElement.id === 'toggle'"):
            break
    else:
        raise AssertionError("Tab never reached the Play button")
    await page.keyboard.press("Enter")
    await _wait_js(page, "() => document.getElementById('player').currentTime > 0.2")
    assert await page.locator("#toggle").inner_text() == "Wstrzymaj"
    # the same page in English, in the same (pinned) browser
    await page.get_by_role("link", name="English").click()
    await page.wait_for_load_state()
    assert await page.locator("html").get_attribute("lang") == "en"
    assert await page.get_by_role("heading", level=1).inner_text() == "Listening to a recording"
    assert await axe_serious_violations(page, chat_server.url) == []
    await context.close()


async def test_signing_out_of_cim_stops_playback_at_the_next_range_and_the_page_says_why(
    browser, store, chat_server, pbx, listener
) -> None:
    call = await ingest_call(store, pbx, "1772442000.3", long_seconds=LONG_SECONDS)
    link = await store.listening.create(listener.actor, call.conversation_id, "kontrola", session_token=listener.token)
    context = await browser.new_context(locale="pl-PL")
    page = await context.new_page()
    log = AudioLog(page)
    await page.goto(chat_server.url + link.path)
    await _wait_js(page, "() => document.getElementById('player').readyState >= 3")
    await store.accounts.logout(listener.token)  # the staff member signs out of the TUI
    await page.evaluate(
        "() => { const a = document.getElementById('player'); a.muted = true;"
        " a.currentTime = a.duration - 5; a.play().catch(() => {}); }"
    )
    await _wait_js(page, "() => document.getElementById('status').textContent.length > 0")
    assert "sesja pracownika" in await page.locator("#status").inner_text()
    refused = await log.wait_for(lambda answers: [a for a in answers if a[0] == 403])
    assert refused
    await context.close()
    row = (await audit_log(store, action="listen.audio"))[-1]
    assert row.outcome == "refused" and row.details["reason"] == "session_ended"
