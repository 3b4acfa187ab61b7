"""Authentication and authorisation: indistinguishable sign-in failures, lockout, tokens, /staff refusals, store-side checks."""

from __future__ import annotations

import base64
import json
import re
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Awaitable, Callable

import aiohttp
import pytest
from argon2 import PasswordHasher

from store.accounts import make_hasher
from store.archive import SearchFilters
from store.errors import AccountLocked, AuthenticationFailed, NotPermitted, SessionExpired
from store.models import Actor
from tests.fixtures.audit_log import audit_log
from tests.fixtures.chat import ConnectionRefused, connect_client
from tests.fixtures.requests import CALL_AT, PHONE, call_request, insert_call
from tests.fixtures.store import PASSWORD, SYSTEM

URLSAFE = re.compile(r"^[A-Za-z0-9_-]+$")


class CountingHasher(PasswordHasher):
    """argon2-cffi's own hasher (same parameters), counting verifications; injected into the real Accounts."""

    def __init__(self, base: PasswordHasher) -> None:
        super().__init__(
            time_cost=base.time_cost,
            memory_cost=base.memory_cost,
            parallelism=base.parallelism,
            hash_len=base.hash_len,
            salt_len=base.salt_len,
            type=base.type,
        )
        self.verifications = 0

    def verify(self, hash: str | bytes, password: str | bytes) -> bool:  # noqa: A002 (argon2's own name)
        self.verifications += 1
        return super().verify(hash, password)


# -- sign-in failures reveal nothing -------------------------------------------------------------------------


@pytest.mark.ordinance("GDPR 32")
async def test_unknown_user_and_wrong_password_cost_one_argon2_verification_each_and_read_alike(store, make_staff):
    await make_staff("anna", "consultant")
    counting = CountingHasher(make_hasher(store.settings.password_profile))
    store.accounts.hasher = counting
    answers = []
    for name, password in (("anna", "wrong password!"), ("nobody", "wrong password!"), ("", "x"), ("anna", "")):
        before = counting.verifications
        with pytest.raises(AuthenticationFailed) as failed:
            await store.accounts.login(name, password)
        assert counting.verifications - before == 1, f"{name!r}: the same argon2 work on every path"
        answers.append(failed.value.message)
    assert len(set(answers)) == 1
    # the audit names the attempt, never whether the account exists, and never the password
    rows = await audit_log(store, action="login", outcome="refused")
    assert len(rows) == 4 and not any("wrong password" in json.dumps(r.details, ensure_ascii=False) for r in rows)


async def test_a_disabled_account_fails_exactly_like_a_wrong_password(store, make_staff):
    await make_staff("ewa", "consultant")
    await store.accounts.set_disabled(SYSTEM, "ewa", True)
    with pytest.raises(AuthenticationFailed) as disabled:
        await store.accounts.login("ewa", PASSWORD)
    with pytest.raises(AuthenticationFailed) as wrong:
        await store.accounts.login("nobody", PASSWORD)
    assert disabled.value.message == wrong.value.message


@pytest.mark.ordinance("GDPR 32")
async def test_lockout_holds_for_existing_and_unknown_names_alike_and_ends(store, make_staff, clock):
    await make_staff("anna", "consultant")
    for name in ("anna", "ghost"):
        for _ in range(store.settings.lockout_failures):
            with pytest.raises(AuthenticationFailed):
                await store.accounts.login(name, "guess guess")
    locked = []
    for name, password in (("anna", PASSWORD), ("ghost", PASSWORD)):
        with pytest.raises(AccountLocked) as exc:
            await store.accounts.login(name, password)
        locked.append(exc.value.message)
    assert locked[0] == locked[1]
    clock.advance(minutes=store.settings.lockout_minutes + 1)
    assert (await store.accounts.login("anna", PASSWORD)).staff.name == "anna"


# -- tokens --------------------------------------------------------------------------------------------------


def _entropy_bits(token: str) -> int:
    assert URLSAFE.match(token), token
    return len(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))) * 8


async def test_session_tokens_have_256_bits_are_urlsafe_and_unique(store, make_staff):
    await make_staff("anna", "consultant")
    tokens = [(await store.accounts.login("anna", PASSWORD)).token for _ in range(200)]
    assert len(set(tokens)) == len(tokens)
    assert min(_entropy_bits(t) for t in tokens) >= 256
    # and only their hashes are kept
    stored = {r["token_hash"] for r in await store.db.fetchall("SELECT token_hash FROM sessions")}
    assert not stored & set(tokens)


async def test_resume_tokens_have_256_bits_are_urlsafe_and_unique(store):
    notice = await store.notices.current("chat", "pl")
    tokens = [(await store.chats.open(notice.id)).resume_token for _ in range(200)]
    assert len(set(tokens)) == len(tokens)
    assert min(_entropy_bits(t) for t in tokens) >= 256


async def test_sessions_expire_when_idle_and_absolutely(store, make_staff, clock):
    await make_staff("anna", "consultant")
    idle = await store.accounts.login("anna", PASSWORD)
    clock.advance(minutes=store.settings.session_idle_minutes + 1)
    with pytest.raises(SessionExpired):
        await store.accounts.authenticate(idle.token)
    busy = await store.accounts.login("anna", PASSWORD)
    for _ in range(store.settings.session_hours * 60 // (store.settings.session_idle_minutes - 1) + 1):
        clock.advance(minutes=store.settings.session_idle_minutes - 1)
        try:
            await store.accounts.authenticate(busy.token)
        except SessionExpired:
            break
    else:
        pytest.fail("an always-busy session never reached its absolute expiry")
    assert clock() - busy.staff.created_at >= timedelta(hours=store.settings.session_hours)


# -- the /staff namespace ---------------------------------------------------------------------------------


async def _refusal(url: str, auth: Any) -> str | None:
    with pytest.raises(ConnectionRefused) as refused:
        client = await connect_client(url, "/staff", auth)
        await client.disconnect()
    return refused.value.code


@pytest.mark.ordinance("§5")
async def test_staff_namespace_refuses_residents_forged_and_expired_tokens(chat_server, resident, make_staff, clock):
    url = chat_server.url
    r = await resident()
    await r.start()
    for auth in (
        None,
        {},
        {"token": None},
        {"token": ""},
        {"token": "x" * 43},
        {"token": ["a"]},
        {"token": r.resume_token},
        {"resume": r.resume_token},
        {"token": "A" * 10_000},
    ):
        assert await _refusal(url, auth) == "unauthorised", auth
    # beyond the packet size limit the connection is simply dropped
    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(f"{url}/socket.io/?EIO=4&transport=websocket") as ws:
            assert (await ws.receive_str()).startswith("0")
            await ws.send_str('40/staff,{"token":"' + "A" * 100_000 + '"}')
            reply = await ws.receive(timeout=10)
            assert reply.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING)
    # a signed-in member of staff without the consultant role
    await make_staff("iod", "dpo")
    dpo = await chat_server.store.accounts.login("iod", PASSWORD)
    assert await _refusal(url, {"token": dpo.token}) == "unauthorised"
    # a consultant whose session ran out
    await make_staff("anna", "consultant")
    session = await chat_server.store.accounts.login("anna", PASSWORD)
    clock.advance(minutes=chat_server.settings.session_idle_minutes + 1)
    assert await _refusal(url, {"token": session.token}) == "unauthorised"
    # a consultant whose session was ended by signing out
    fresh = await chat_server.store.accounts.login("anna", PASSWORD)
    await chat_server.store.accounts.logout(fresh.token)
    assert await _refusal(url, {"token": fresh.token}) == "unauthorised"


async def test_a_consultant_who_loses_the_role_is_disconnected_at_once(consultant_client, resident, chat_server):
    r = await resident()
    await r.start()
    c = await consultant_client("anna")
    await chat_server.store.accounts.set_roles(SYSTEM, "anna", ["designated"])
    ended = await c.wait_for("session_ended")  # pushed by the store's change, not found at the next action
    assert ended["code"] == "role_removed"
    await c.wait_for("disconnect")
    chat = await chat_server.store.chats.get(r.chat_id)
    assert chat.status == "queued"


# -- every TUI action is checked again in the store --------------------------------------------------------

Call = Callable[[Any, Actor, dict], Awaitable[Any]]

#: (what the TUI calls, the permission it needs). Each is called by someone without that permission.
STORE_ACTIONS: list[tuple[str, Call, str]] = [
    ("chats.open_chats_of", lambda s, a, t: s.chats.open_chats_of(a), "handle_chats"),
    ("chats.accept", lambda s, a, t: s.chats.accept(a, t["chat"]), "handle_chats"),
    ("chats.post_consultant", lambda s, a, t: s.chats.post_consultant(a, t["chat"], "tekst"), "handle_chats"),
    ("chats.close", lambda s, a, t: s.chats.close(a, t["chat"], "other"), "handle_chats"),
    ("chats.transfer", lambda s, a, t: s.chats.transfer(a, t["chat"], t["consultant"]), "handle_chats"),
    ("chats.history_for", lambda s, a, t: s.chats.history_for(a, t["chat"]), "handle_chats"),
    ("chats.canned", lambda s, a, t: s.chats.canned(a), "handle_chats"),
    ("chats.add_canned", lambda s, a, t: s.chats.add_canned(a, "Tytuł", "Treść"), "manage_canned"),
    ("archive.search", lambda s, a, t: s.archive.search(a, SearchFilters()), "search_archive"),
    ("archive.details", lambda s, a, t: s.archive.details(a, t["call"]), "search_archive"),
    ("archive.open_transcript", lambda s, a, t: s.archive.open_transcript(a, t["chat"], "kontrola"), "open_content"),
    ("archive.open_recording", lambda s, a, t: s.archive.open_recording(a, t["call"], "kontrola"), "open_content"),
    ("archive.check_integrity", lambda s, a, t: s.archive.check_integrity(a, t["call"]), None),
    ("archive.recording_levels", lambda s, a, t: s.archive.recording_levels(a, t["call"]), None),
    ("requests.register", lambda s, a, t: s.requests.register(a, call_request()), "register_requests"),
    ("requests.list", lambda s, a, t: s.requests.list(a), "view_requests"),
    ("requests.get", lambda s, a, t: s.requests.get(a, t["request"]), None),
    ("requests.candidates", lambda s, a, t: s.requests.candidates(a, t["request"]), None),
    ("requests.link", lambda s, a, t: s.requests.link(a, t["request"], t["call"]), None),
    ("requests.unlink", lambda s, a, t: s.requests.unlink(a, t["request"], t["call"]), None),
    (
        "requests.give_opinion",
        lambda s, a, t: s.requests.give_opinion(a, t["request"], "dpo", "favourable", "ok"),
        None,
    ),
    (
        "requests.grant",
        lambda s, a, t: s.requests.grant(a, t["request"], session_at=CALL_AT + timedelta(days=20), place="pokój 1"),
        None,
    ),
    ("requests.refuse", lambda s, a, t: s.requests.refuse(a, t["request"], "powody"), "decide_requests"),
    ("requests.extend", lambda s, a, t: s.requests.extend(a, t["request"], 1, "powody"), None),
    ("requests.withdraw", lambda s, a, t: s.requests.withdraw(a, t["request"]), None),
    ("requests.close", lambda s, a, t: s.requests.close(a, t["request"]), None),
    ("requests.start_session", lambda s, a, t: s.requests.start_session(a, t["request"]), None),
    ("requests.open_for_session", lambda s, a, t: s.requests.open_for_session(a, t["request"], t["call"]), None),
    ("requests.end_session", lambda s, a, t: s.requests.end_session(a, t["request"], []), None),
    ("requests.export_copy", lambda s, a, t: s.requests.export_copy(a, t["request"], t["tmp"]), None),
    ("retention.holds", lambda s, a, t: s.retention.holds(a), "manage_holds"),
    (
        "retention.add_hold",
        lambda s, a, t: s.retention.add_hold(a, [t["call"]], legal_basis="art. 1", case_reference="A/1"),
        "manage_holds",
    ),
    ("retention.release_hold", lambda s, a, t: s.retention.release_hold(a, t["hold"]), "manage_holds"),
    ("retention.preview", lambda s, a, t: s.retention.preview(a), "run_purge"),
    ("retention.purge", lambda s, a, t: s.retention.purge(a), "run_purge"),
    ("retention.fsck", lambda s, a, t: s.retention.fsck(a), "check_integrity"),
    ("retention.backup", lambda s, a, t: s.retention.backup(a, t["tmp"] / "backup"), None),
    (
        "accounts.add_staff",
        lambda s, a, t: s.accounts.add_staff(a, "nowy", ["consultant"], PASSWORD),
        "manage_accounts",
    ),
    ("accounts.add_department", lambda s, a, t: s.accounts.add_department(a, "XX", "Wydział"), "manage_accounts"),
    ("accounts.set_disabled", lambda s, a, t: s.accounts.set_disabled(a, "anna", True), "manage_accounts"),
    ("accounts.set_roles", lambda s, a, t: s.accounts.set_roles(a, "anna", ["it_admin"]), "manage_accounts"),
    (
        "accounts.set_password",
        lambda s, a, t: s.accounts.set_password(a, "anna", "another password"),
        "manage_accounts",
    ),
    ("notices.add_version", lambda s, a, t: s.notices.add_version(a, "chat", {"pl": "x", "en": "y"}), "manage_notices"),
    (
        "reports.supervision",
        lambda s, a, t: s.reports.supervision(a, date(2026, 1, 1), date(2026, 3, 31)),
        "view_reports",
    ),
    ("audit.entries", lambda s, a, t: s.audit.entries(a), "read_audit"),
]


@pytest.fixture
async def targets(store, make_staff, tmp_path: Path) -> dict[str, Any]:
    """One of everything an action can point at: a chat, a call with a recording, a request, a hold."""
    anna = await make_staff("anna", "consultant")
    piotr = await make_staff("piotr", "consultant")
    registrar = await make_staff("rejestr", "designated")
    notice = await store.notices.current("chat", "pl")
    opened = await store.chats.open(notice.id)
    await store.chats.accept(anna.as_actor(), opened.chat.id)
    call = await insert_call(store, at=CALL_AT, number=PHONE)
    request = await store.requests.register(registrar.as_actor(), call_request())
    hold = await store.retention.add_hold(SYSTEM, [call], legal_basis="art. 1", case_reference="A/0")
    hold_id = hold[0].id if isinstance(hold, list) else hold.id
    return {
        "chat": opened.chat.id,
        "call": call,
        "request": request.id,
        "hold": hold_id,
        "tmp": tmp_path,
        "consultant": piotr.as_actor(),
    }


@pytest.mark.ordinance("§5", "§3")
@pytest.mark.parametrize("name,action,permission", STORE_ACTIONS, ids=[a[0] for a in STORE_ACTIONS])
async def test_every_tui_action_is_refused_and_audited_by_the_store(
    store, make_staff, targets, name, action, permission
):
    # a secretary (§7: reads supervision reports only); for the reports, a consultant
    outsider = await make_staff("sekretarz", "consultant" if name == "reports.supervision" else "secretary")
    actor = outsider.as_actor()
    before = await audit_log(store)
    with pytest.raises(NotPermitted):
        await action(store, actor, targets)
    refused = (await audit_log(store))[len(before) :]
    assert [r.outcome for r in refused] == ["refused"], f"{name}: the refusal is audited exactly once"
    assert refused[0].actor_id == actor.staff_id
    if permission is not None:
        assert refused[0].details["permission"] == permission
    assert (await store.audit.verify()).ok


async def test_a_secretarys_inbox_shows_no_request(store, make_staff, targets):
    secretary = await make_staff("sekretarz", "secretary")
    assert await store.requests.inbox(secretary.as_actor()) == []
