"""Browser-test fixtures: Debian's Chromium driven by Playwright, and a resident page on the widget."""

from __future__ import annotations

import os
from pathlib import Path
from typing import AsyncIterator

import pytest
import pytest_asyncio
from playwright.async_api import Browser, Page, async_playwright

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


@pytest.fixture
def chromium_executable() -> str:
    """Debian's Chromium; skipped on a developer machine without it, a failure in CI (CI=...)."""
    if CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK):
        return str(CHROMIUM)
    reason = f"{CHROMIUM} is not installed (apt-get install chromium); the browser tests need it"
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


@pytest_asyncio.fixture
async def browser(chromium_executable: str) -> AsyncIterator[Browser]:
    async with async_playwright() as pw:
        b = await pw.chromium.launch(executable_path=chromium_executable, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            await b.close()


@pytest_asyncio.fixture
async def resident_page(browser: Browser) -> AsyncIterator[Page]:
    """A fresh browser context (own sessionStorage) whose page must end without script errors."""
    context = await browser.new_context(viewport={"width": 1280, "height": 800}, locale="pl-PL")
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.set_default_timeout(10_000)
    try:
        yield page
    finally:
        await context.close()
    assert not errors, f"uncaught errors in the page: {errors}"


#: The city website the cross-origin test embeds the widget in (served by Playwright's router).
#: https because Chromium only lets secure contexts reach a loopback server (local network access).
EMBEDDING_ORIGIN = "https://www.city.example"


@pytest.fixture
def chat_settings(settings):
    """The chat server's settings for browser tests: always open, EMBEDDING_ORIGIN allowed."""
    return settings.with_(opening_hours="always", allowed_origins=EMBEDDING_ORIGIN)
