"""`cim listen-link` through the real click command: the JSON contract, the audit as the host account, a bad id."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import datetime, timezone
from pathlib import Path

import aiohttp
import pytest
from click.testing import CliRunner

from cim.cli import cli
from store import Store
from store.settings import Settings
from tests.fixtures.audit_log import audit_log
from tests.fixtures.chat import start_chat_server
from tests.fixtures.retention import RetentionData


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    result = CliRunner().invoke(cli, ["init", "--data-dir", str(tmp_path / "d")])
    assert result.exit_code == 0, result.output
    return tmp_path / "d"


def _call(data_dir: Path) -> int:
    async def body() -> int:
        store = await Store.open(Settings.load(data_dir, env={}))
        try:
            return (await RetentionData(store).call(datetime.now(timezone.utc)))[0]
        finally:
            await store.close()

    return asyncio.run(body())


def test_listen_link_prints_url_and_expiry_and_is_audited_as_the_host(data_dir: Path) -> None:
    conversation = _call(data_dir)
    result = CliRunner().invoke(
        cli,
        [
            "listen-link",
            str(conversation),
            "--purpose",
            "support: playback check",
            "--minutes",
            "5",
            "--json",
            "--data-dir",
            str(data_dir),
        ],
    )
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert set(document) >= {"url", "expires_at"}
    assert re.fullmatch(r"http://127\.0\.0\.1:8080/listen/[A-Za-z0-9_-]{22}", document["url"])

    async def check() -> None:
        settings = Settings.load(data_dir, env={})
        store = await Store.open(settings)
        server, runner = await start_chat_server(settings, store)
        try:
            row = (await audit_log(store, action="listen.link_create"))[0]
            assert row.actor_name.startswith("system:listen-link:") and row.purpose == "support: playback check"
            assert row.details["expires_at"] == document["expires_at"]
            path = document["url"].split(":8080", 1)[1]
            async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as browser:
                async with browser.get(server.url + path) as response:
                    assert response.status == 200
                async with browser.get(server.url + path + "/audio", headers={"Range": "bytes=0-"}) as response:
                    assert response.status == 206
        finally:
            await runner.cleanup()
            await store.close()

    asyncio.run(check())


def test_listen_link_to_nothing_is_one_clear_error(data_dir: Path) -> None:
    result = CliRunner().invoke(cli, ["listen-link", "999", "--purpose", "support", "--data-dir", str(data_dir)])
    assert result.exit_code == 1
    assert "no conversation 999" in result.stderr
    short = CliRunner().invoke(cli, ["listen-link", "1", "--purpose", "x", "--data-dir", str(data_dir)])
    assert short.exit_code == 1 and "purpose" in short.stderr
