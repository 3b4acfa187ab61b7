"""Listening links end to end over HTTP on a real server: refusals first, then the page, Range, GSM and the audit."""

from __future__ import annotations

import re
import wave
from pathlib import Path

import aiohttp
import pytest

from store.keys import plain_size

from store.errors import InvalidInput, NotFound, NotPermitted
from store.listening import mask_number
from tests.fixtures.audit_log import audit_log
from tests.fixtures.calls import FakePbx
from tests.fixtures.listening import ingest_call
from tests.fixtures.store import SYSTEM


def session() -> aiohttp.ClientSession:
    """A browser stand-in: its own cookie jar (unsafe=True keeps cookies for 127.0.0.1)."""
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))


async def fetch(client: aiohttp.ClientSession, url: str, **kw) -> tuple[int, dict[str, str], bytes]:
    async with client.get(url, allow_redirects=False, **kw) as response:
        return response.status, dict(response.headers), await response.read()


async def audit(store, action: str) -> list[dict]:
    return [
        {
            "actor_name": e.actor_name,
            "outcome": e.outcome,
            "purpose": e.purpose,
            "request_id": e.request_id,
            "details": e.details,
        }
        for e in await audit_log(store, action=action)
    ]


async def recording_path(store, conversation_id: int) -> Path:
    """The managed file of the conversation's (one) recording, as the archive names it."""
    (recording,) = (await store.archive.details(SYSTEM, conversation_id)).recordings
    return store.settings.recordings_dir / recording.path


# ---------------------------------------------------------------- refusals


async def test_a_consultant_cannot_make_a_link_and_the_attempt_is_audited(store, pcm_call, make_staff) -> None:
    anna = (await make_staff("anna", "consultant")).as_actor()
    with pytest.raises(NotPermitted):
        await store.listening.create(anna, pcm_call.conversation_id, "skarga 1/2026")
    assert [e["outcome"] for e in await audit(store, "listen.link_create")] == ["refused"]


async def test_a_purpose_is_required(store, pcm_call, listener) -> None:
    with pytest.raises(InvalidInput):
        await store.listening.create(listener.actor, pcm_call.conversation_id, "  ")


async def test_links_per_person_are_bounded(store, pcm_call, listener, settings) -> None:
    for _ in range(settings.listen_max_links):
        await store.listening.create(listener.actor, pcm_call.conversation_id, "kontrola jakości")
    with pytest.raises(NotPermitted, match="live listening links"):
        await store.listening.create(listener.actor, pcm_call.conversation_id, "kontrola jakości")
    outcomes = [e["outcome"] for e in await audit(store, "listen.link_create")]
    assert outcomes == ["ok"] * settings.listen_max_links + ["refused"]
    # a closed link frees its place
    first = (await store.listening.live_links(listener.actor))[0]
    assert await store.listening.revoke(listener.actor, first.id)
    await store.listening.create(listener.actor, pcm_call.conversation_id, "kontrola jakości")


async def test_forged_expired_and_foreign_browser_links_are_refused_with_a_clear_page(
    store, chat_server, pcm_call, listener, clock
) -> None:
    link = await store.listening.create(
        listener.actor, pcm_call.conversation_id, "skarga 12/2026", session_token=listener.token
    )
    async with session() as forger:
        status, headers, body = await fetch(forger, chat_server.url + "/listen/" + "A" * 22)
        assert status == 403 and "nie został wydany przez CIM" in body.decode()
        assert headers["Cache-Control"] == "no-store"
    async with session() as first, session() as second:
        assert (await fetch(first, chat_server.url + link.path))[0] == 200
        status, _, body = await fetch(second, chat_server.url + link.path + "?lang=en")
        assert status == 403 and "already opened in another browser" in body.decode()
        status, _, _ = await fetch(second, chat_server.url + link.path + "/audio", headers={"Range": "bytes=0-"})
        assert status == 403
        clock.advance(minutes=store.settings.listen_minutes + 1)
        status, _, body = await fetch(first, chat_server.url + link.path)
        assert status == 410 and "Link wygasł" in body.decode()
    reasons = [(e["outcome"], e["details"].get("reason")) for e in await audit(store, "listen.page")]
    assert reasons == [("refused", "forged"), ("ok", None), ("refused", "foreign_browser"), ("refused", "expired")]
    refused_audio = await audit(store, "listen.audio")
    assert [(e["outcome"], e["details"]["reason"]) for e in refused_audio] == [("refused", "foreign_browser")]
    assert all(e["purpose"] == "skarga 12/2026" for e in (await audit(store, "listen.page"))[1:])


async def test_the_end_of_the_staff_session_stops_audio_at_the_next_range(
    store, chat_server, pcm_call, listener
) -> None:
    link = await store.listening.create(
        listener.actor, pcm_call.conversation_id, "kontrola", session_token=listener.token
    )
    async with session() as browser:
        assert (await fetch(browser, chat_server.url + link.path))[0] == 200
        assert (await fetch(browser, chat_server.url + link.path + "/audio", headers={"Range": "bytes=0-"}))[0] == 206
        await store.accounts.logout(listener.token)
        status, _, body = await fetch(browser, chat_server.url + link.path + "/audio", headers={"Range": "bytes=100-"})
        assert status == 403 and b"session" in body
        assert (await fetch(browser, chat_server.url + link.path))[0] == 403
    assert await store.listening.live_links(listener.actor) == []
    assert (await audit(store, "listen.audio"))[-1]["details"]["reason"] == "session_ended"


async def test_a_recording_purged_or_changed_after_the_link_is_refused_naming_the_fsck_kind(
    store, chat_server, pbx: FakePbx, listener
) -> None:
    call = await ingest_call(store, pbx, "1772443000.7")
    link = await store.listening.create(listener.actor, call.conversation_id, "kontrola")
    path = await recording_path(store, call.conversation_id)
    original = path.read_bytes()
    async with session() as browser:
        path.write_bytes(original[:-10] + b"\x00" * 10)
        status, _, body = await fetch(browser, chat_server.url + link.path)
        assert status == 409 and "checksum_mismatch" in body.decode()
        path.unlink()
        status, _, body = await fetch(browser, chat_server.url + link.path)
        assert status == 404 and "missing_file" in body.decode()
        path.write_bytes(original)
        async with store.db.write() as tx:  # what a purge leaves: no rows, a tombstone
            await tx.execute("DELETE FROM recordings WHERE conversation_id = ?", (call.conversation_id,))
            await tx.execute(
                "INSERT INTO purged_conversations(id, purged_at) VALUES (?, '2026-09-02T00:00:00.000000Z')",
                (call.conversation_id,),
            )
        status, _, body = await fetch(browser, chat_server.url + link.path)
        assert status == 410 and "trwale usunięte" in body.decode()
    reasons = [e["details"]["reason"] for e in await audit(store, "listen.page")]
    assert reasons == ["checksum_mismatch", "missing_file", "purged"]


async def test_a_missing_file_is_reported_when_the_link_is_asked_for(store, pcm_call, listener) -> None:
    (await recording_path(store, pcm_call.conversation_id)).unlink()
    with pytest.raises(NotFound, match="missing_file"):
        await store.listening.create(listener.actor, pcm_call.conversation_id, "kontrola")


# ---------------------------------------------------------------- the page and the audio


async def test_page_range_and_audit_for_a_pcm_recording(store, chat_server, pcm_call, listener) -> None:
    link = await store.listening.create(
        listener.actor, pcm_call.conversation_id, "skarga 12/2026", session_token=listener.token
    )
    async with session() as browser:
        status, headers, body = await fetch(browser, chat_server.url + link.path)
        page = body.decode()
        assert status == 200 and headers["Cache-Control"] == "no-store"
        assert (
            "media-src 'self'" in headers["Content-Security-Policy"]
            and "'unsafe-inline'" not in headers["Content-Security-Policy"]
        )
        assert 'lang="pl"' in page and "Odsłuch nagrania" in page and link.code in page
        assert "••• ••• 567" in page and "601234567" not in page and "skarga 12/2026" in page
        assert 'controlslist="nodownload' in page and "<style" not in page and "<script>" not in page
        assert len(re.findall(r"<rect ", page)) > 50  # the level bar
        size = plain_size(await recording_path(store, pcm_call.conversation_id))
        status, headers, body = await fetch(
            browser, chat_server.url + link.path + "/audio", headers={"Range": "bytes=0-99"}
        )
        assert status == 206 and headers["Content-Range"] == f"bytes 0-99/{size}" and len(body) == 100
        assert headers["Content-Disposition"] == "inline" and headers["Cache-Control"] == "no-store"
        assert headers["Accept-Ranges"] == "bytes" and body[:4] == b"RIFF"
        status, headers, body = await fetch(
            browser, chat_server.url + link.path + "/audio", headers={"Range": f"bytes={size}-"}
        )
        assert status == 416 and headers["Content-Range"] == f"bytes */{size}"
        status, headers, body = await fetch(
            browser, chat_server.url + link.path + "/audio", headers={"Range": "bytes=-10"}
        )
        assert status == 206 and len(body) == 10
        status, _, body = await fetch(browser, chat_server.url + link.path + "/audio")
        assert status == 200 and len(body) == size
    audio = await audit(store, "listen.audio")
    assert [e["outcome"] for e in audio] == ["ok", "refused", "ok", "ok"]  # one entry per request
    assert audio[1]["details"]["reason"] == "range_not_satisfiable"
    assert [e["details"]["range"] for e in audio] == ["bytes=0-99", f"bytes={size}-", "bytes=-10", ""]
    assert all(e["actor_name"] == "maria" and e["purpose"] == "skarga 12/2026" for e in audio)


async def test_a_gsm_recording_is_served_as_pcm_wav(store, chat_server, gsm_call, listener, tmp_path) -> None:
    assert gsm_call.format == "wav-gsm"
    link = await store.listening.create(listener.actor, gsm_call.conversation_id, "kontrola")
    async with session() as browser:
        assert (await fetch(browser, chat_server.url + link.path))[0] == 200
        status, headers, body = await fetch(browser, chat_server.url + link.path + "/audio")
        assert status == 200 and headers["Content-Type"] == "audio/wav"
    out = tmp_path / "decoded.wav"
    out.write_bytes(body)
    with wave.open(str(out)) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 8000)
        assert abs(w.getnframes() / 8000 - gsm_call.duration_s) < 0.01


async def test_the_host_account_can_make_a_link(store, pcm_call) -> None:
    link = await store.listening.create(SYSTEM, pcm_call.conversation_id, "support check", minutes=2)
    assert (link.expires_at - link.created_at).total_seconds() == 120 + 3  # the 3-second recording is added
    entry = (await audit(store, "listen.link_create"))[0]
    assert entry["actor_name"] == "system:tests" and entry["details"]["expires_at"]


def test_the_number_is_masked_but_its_last_three_digits() -> None:
    assert mask_number("+48601234567") == "••• ••• 567"
    assert mask_number(None) == "—" and mask_number("12") == "•••"


async def test_tokens_have_128_bits_are_unique_and_only_their_hash_is_stored(
    store, pcm_call, listener, settings
) -> None:
    tokens = set()
    for _ in range(settings.listen_max_links):
        link = await store.listening.create(listener.actor, pcm_call.conversation_id, "kontrola")
        assert re.fullmatch(r"[A-Za-z0-9_-]{22}", link.token)  # 16 random bytes, URL-safe base64
        tokens.add(link.token)
    assert len(tokens) == settings.listen_max_links
    await store.db.checkpoint_truncate()
    raw = store.settings.db_path.read_bytes()
    assert not any(token.encode() in raw for token in tokens)
    rows = await store.db.fetchall("SELECT token_hash FROM listen_links")
    assert all(len(r["token_hash"]) == 64 for r in rows)


async def test_a_link_whose_owner_lost_the_right_is_refused(store, chat_server, pcm_call, listener) -> None:
    link = await store.listening.create(listener.actor, pcm_call.conversation_id, "kontrola")
    await store.accounts.set_roles(SYSTEM, "maria", ["consultant"])
    async with session() as browser:
        status, _, body = await fetch(browser, chat_server.url + link.path)
        assert status == 403 and "nie jest już dostępne" in body.decode()
    assert (await audit(store, "listen.page"))[-1]["details"]["reason"] == "withheld"


async def test_the_demo_server_answers_listening_links_on_its_own_port(store, pcm_call, listener) -> None:
    from tui.demo import embedded_chat_server, reserve_port

    sock = reserve_port("127.0.0.1")
    port = sock.getsockname()[1]
    try:
        async with embedded_chat_server(sock)(store):
            link = await store.listening.create(listener.actor, pcm_call.conversation_id, "demo")
            async with session() as browser:
                status, _, body = await fetch(browser, f"http://127.0.0.1:{port}{link.path}")
                assert status == 200 and link.code in body.decode()
                status, _, _ = await fetch(
                    browser, f"http://127.0.0.1:{port}{link.path}/audio", headers={"Range": "bytes=0-"}
                )
                assert status == 206
    finally:
        sock.close()


async def test_the_access_log_never_holds_a_listening_token(store, settings, pcm_call, listener, caplog) -> None:
    import logging

    from aiohttp import web

    from cim.commands.serve import ACCESS_LOG_FORMAT
    from webchat.app import create_app

    link = await store.listening.create(listener.actor, pcm_call.conversation_id, "kontrola")
    # as `cim serve` runs it: aiohttp's own access logger with the serve command's format
    runner = web.AppRunner(
        create_app(settings, store), handle_signals=False, access_log_format=ACCESS_LOG_FORMAT, shutdown_timeout=1.0
    )
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"
    try:
        with caplog.at_level(logging.INFO, logger="aiohttp.access"):
            async with session() as browser:
                assert (await fetch(browser, url + link.path + "?lang=en"))[0] == 200
                assert (await fetch(browser, url + link.path + "/audio", headers={"Range": "bytes=0-"}))[0] == 206
                assert (await fetch(browser, url + "/listen/static/listen.js"))[0] == 200
    finally:
        await runner.cleanup()
    lines = [r.getMessage() for r in caplog.records if r.name == "aiohttp.access"]
    assert len(lines) == 3 and not any(link.token in line for line in lines)
    assert 'request="GET /listen/…/audio HTTP/1.1" status=206' in "\n".join(lines)
    assert "/listen/static/listen.js" in "\n".join(lines)


async def test_a_format_no_browser_plays_gets_a_page_saying_so(store, chat_server, listener) -> None:
    import hashlib

    data = b"\x00\x01" * 400  # not audio CIM can decode
    path = store.settings.recordings_dir / "2026/03/call.aac"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    async with store.db.write() as tx:
        cur = await tx.execute(
            "INSERT INTO conversations(channel, status, created_at, ended_at, purge_after, direction, resident_number,"
            " number_identifiable) VALUES ('call', 'ended', '2026-03-01T09:00:00.000000Z', "
            "'2026-03-01T09:02:00.000000Z', '2026-09-01T09:00:00.000000Z', 'incoming', '+48601234567', 1)"
        )
        await tx.execute(
            "INSERT INTO recordings(conversation_id, pbx_uniqueid, path, sha256, size_bytes, duration_s, format, "
            "imported_at) VALUES (?, 'x.1', '2026/03/call.aac', ?, ?, 12, 'aac', '2026-03-01T09:03:00.000000Z')",
            (cur.lastrowid, hashlib.sha256(data).hexdigest(), len(data)),
        )
    link = await store.listening.create(listener.actor, cur.lastrowid, "kontrola")
    async with session() as browser:
        status, _, body = await fetch(browser, chat_server.url + link.path)
    assert status == 415 and "Tego formatu nagrania przeglądarka nie odtworzy" in body.decode()
    assert (await audit(store, "listen.page"))[-1]["details"]["reason"] == "unplayable"
