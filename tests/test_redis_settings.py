"""CIM_REDIS_URL (issue 21): only Redis URLs are accepted, a password is never repeated in an error, and a
node whose Redis does not answer refuses to start with one clear sentence instead of retrying for ever."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import socketio
from socketio.async_pubsub_manager import AsyncPubSubManager

from store import Store
from store.errors import ConfigError
from store.settings import Settings
from tests.fixtures.chat import start_chat_server

REPO = Path(__file__).resolve().parents[1]
SECRET = "s3cret-Pa55"


@pytest.mark.parametrize(
    "url",
    [
        f"http://:{SECRET}@redis.example:6379/0",
        f"valkey://:{SECRET}@redis.example:6379/0",  # python-socketio speaks it, but CIM pins the redis client only
        f"redis+sentinel://:{SECRET}@redis.example:26379/0/cim",
        f"user:{SECRET}@redis.example:6379",  # no scheme at all
        f"redis://:{SECRET}@redis.example:63a79/0",  # a port that is not a number
        f"redis://:{SECRET}@redis.example:70000/0",
        f"redis://:{SECRET}@/0",  # no host
        f"rediss://:{SECRET}@redis.example/cim",  # a path that is not a database number
        "unix://redis.sock",  # no absolute path
    ],
)
def test_an_invalid_redis_url_is_refused_without_repeating_the_password(tmp_path: Path, url: str) -> None:
    with pytest.raises(ConfigError) as refused:
        Settings.load(tmp_path / "data", env={"CIM_REDIS_URL": url})
    assert "CIM_REDIS_URL" in refused.value.message
    assert SECRET not in refused.value.message


@pytest.mark.parametrize(
    "url",
    [
        "",
        "redis://127.0.0.1:6380/0",
        f"redis://:{SECRET}@redis.example:6379/2",
        "rediss://cim:pw@redis.example",
        "unix:///run/redis/redis-server.sock",
    ],
)
def test_redis_urls_are_accepted_from_the_variable_and_cim_toml(tmp_path: Path, url: str) -> None:
    assert Settings.load(tmp_path / "a", env={"CIM_REDIS_URL": url}).redis_url == url
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "cim.toml").write_text(f'redis_url = "{url}"\n', encoding="utf-8")
    assert Settings.load(tmp_path / "b", env={}).redis_url == url


def test_an_invalid_redis_url_in_cim_toml_is_refused(tmp_path: Path) -> None:
    (tmp_path / "cim.toml").write_text(f'redis_url = "http://:{SECRET}@redis.example"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="redis://, rediss:// or unix://") as refused:
        Settings.load(tmp_path, env={})
    assert SECRET not in refused.value.message


async def test_without_redis_the_server_keeps_its_in_process_manager(chat_server) -> None:
    from webchat.app import SIO

    manager = chat_server.app[SIO].manager
    assert not isinstance(manager, AsyncPubSubManager)
    assert type(manager) is socketio.AsyncManager


async def test_with_redis_the_node_listens_on_its_channel_from_the_start(
    chat_settings: Settings, store: Store, redis_url: str
) -> None:
    import redis.asyncio

    from webchat.app import SIO, redis_channel

    settings = chat_settings.with_(redis_url=redis_url)
    server, runner = await start_chat_server(settings, store)
    probe = redis.asyncio.Redis.from_url(redis_url)
    try:
        manager = server.app[SIO].manager
        assert isinstance(manager, socketio.AsyncRedisManager) and manager.channel == redis_channel(settings)
        # subscribed before any socket connected (python-socketio alone would wait for the first one)
        assert await probe.pubsub_numsub(manager.channel) == [(manager.channel.encode(), 1)]
    finally:
        await runner.cleanup()
    assert await probe.pubsub_numsub(manager.channel) == [(manager.channel.encode(), 0)]  # and it let go
    await probe.aclose()


async def test_nodes_of_one_database_share_a_channel_and_another_database_has_its_own(
    chat_settings: Settings, tmp_path: Path
) -> None:
    from webchat.app import redis_channel

    other = Settings.load(tmp_path / "other", env={})
    assert redis_channel(chat_settings) == redis_channel(Settings.load(chat_settings.data_dir, env={}))
    assert redis_channel(chat_settings) != redis_channel(other)
    assert redis_channel(chat_settings).startswith("cim-")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens there once the socket is closed


async def test_an_unreachable_redis_stops_the_start_with_a_clear_error(chat_settings: Settings, store: Store) -> None:
    url = f"redis://:{SECRET}@127.0.0.1:{_closed_port()}/0"
    started = time.monotonic()
    with pytest.raises(ConfigError) as refused:
        await start_chat_server(chat_settings.with_(redis_url=url), store)
    assert time.monotonic() - started < 5
    message = refused.value.message
    assert "Redis does not answer" in message and "CIM_REDIS_URL redis://127.0.0.1:" in message
    assert SECRET not in message


async def test_a_wrong_redis_password_stops_the_start_without_echoing_it(
    chat_settings: Settings, store: Store, redis_server
) -> None:
    import redis.asyncio

    admin = redis.asyncio.Redis.from_url(redis_server.url)
    await admin.config_set("requirepass", "the-right-one")
    await admin.aclose()
    for url in (f"redis://:{SECRET}@127.0.0.1:{redis_server.port}/0", redis_server.url):  # wrong, none
        with pytest.raises(ConfigError, match="Redis refused the connection") as refused:
            await start_chat_server(chat_settings.with_(redis_url=url), store)
        assert SECRET not in refused.value.message and "the-right-one" not in refused.value.message
    server, runner = await start_chat_server(
        chat_settings.with_(redis_url=f"redis://:the-right-one@127.0.0.1:{redis_server.port}/0"), store
    )
    await runner.cleanup()


async def test_a_redis_that_accepts_but_never_answers_stops_the_start_after_the_timeout(
    chat_settings: Settings, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    import webchat.app

    monkeypatch.setattr(webchat.app, "REDIS_CONNECT_SECONDS", 1.0)
    held: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)  # takes the connection and the PING, says nothing

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        started = time.monotonic()
        with pytest.raises(ConfigError, match="Redis does not answer"):
            await start_chat_server(chat_settings.with_(redis_url=f"redis://127.0.0.1:{port}/0"), store)
        assert time.monotonic() - started < 4  # the 1 s timeout (and one retry of redis-py's), not a hang
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


def test_cim_serve_with_an_unreachable_redis_exits_at_once_naming_it(tmp_path: Path) -> None:
    data_dir = tmp_path / "served"
    env = {**os.environ, "CIM_PASSWORD_PROFILE": "fast", "CIM_PURGE_DAILY_AT": "off"}
    env.pop("CIM_DATA_DIR", None)
    init = subprocess.run(
        [sys.executable, "-m", "cim", "init", "--data-dir", str(data_dir)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert init.returncode == 0, init.stderr
    env["CIM_REDIS_URL"] = f"redis://:{SECRET}@127.0.0.1:{_closed_port()}/0"
    started = time.monotonic()
    served = subprocess.run(
        [sys.executable, "-m", "cim", "serve", "--port", "0", "--data-dir", str(data_dir)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert served.returncode != 0
    assert time.monotonic() - started < 30
    assert "CIM_REDIS_URL redis://127.0.0.1:" in served.stderr and "Redis does not answer" in served.stderr
    assert SECRET not in served.stderr + served.stdout
    assert "serve.listening" not in served.stderr
    assert "Traceback" not in served.stderr


def test_cim_serve_refuses_an_invalid_redis_url(tmp_path: Path) -> None:
    env = {**os.environ, "CIM_REDIS_URL": f"http://:{SECRET}@redis.example"}
    env.pop("CIM_DATA_DIR", None)
    served = subprocess.run(
        [sys.executable, "-m", "cim", "serve", "--port", "0", "--data-dir", str(tmp_path / "data")],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert served.returncode != 0
    assert "CIM_REDIS_URL must be a redis://, rediss:// or unix:// URL" in served.stderr
    assert SECRET not in served.stderr + served.stdout


@pytest.mark.parametrize("value", ["0", "-1", "soon"])
def test_a_presence_heartbeat_under_a_second_is_refused(tmp_path: Path, value: str) -> None:
    with pytest.raises(ConfigError) as refused:
        Settings.load(tmp_path / "data", env={"CIM_PRESENCE_HEARTBEAT_SECONDS": value})
    assert "presence_heartbeat_seconds" in refused.value.message or "CIM_PRESENCE_HEARTBEAT_SECONDS" in (
        refused.value.message
    )
    assert Settings.load(tmp_path / "ok", env={"CIM_PRESENCE_HEARTBEAT_SECONDS": "1"}).presence_heartbeat_seconds == 1
