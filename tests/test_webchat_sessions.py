"""Live sockets obey the account (§5): a session that ends — disabled, signed out, role removed, expired, idle —
ends that person's /staff sockets, pushed from the store; every refused /staff action is audited.

A real server (create_app) on loopback with real python-socketio clients; the store's manual clock
moves time for the lifetime and idle timeout.
"""

from __future__ import annotations

import time

import pytest

from store import Store
from tests.fixtures.audit_log import audit_log
from tests.fixtures.chat import ConnectionRefused, connect_client
from tests.fixtures.store import PASSWORD, SYSTEM
from webchat.protocol import REFUSAL_REASONS

pytestmark = pytest.mark.ordinance("§5")


def code(ack: dict) -> str | None:
    assert ack["ok"] is False and set(ack["error"]) - {"reason"} == {"code", "message"}, ack
    assert ack["error"].get("reason") in REFUSAL_REASONS | {None}, ack  # a reason is optional
    return ack["error"]["code"]


async def refused_audit(store: Store, action: str) -> list:
    return await audit_log(store, action=action, outcome="refused")


async def ended_and_gone(client, reason: str) -> dict:
    """The socket was told why (`session_ended`, Polish first) and then disconnected by the server."""
    ended = await client.wait_for("session_ended")
    assert ended["code"] == reason, ended
    assert ended["message"].startswith("Twoja sesja została zakończona: "), ended
    assert ended["message_en"].startswith("Your session has ended: "), ended
    await client.wait_for("disconnect")
    assert not client.client.connected
    return ended


async def anna_with_a_chat(consultant_client, resident):
    """anna (consultant) has accepted a resident's chat; bob (consultant) is online too."""
    anna, bob = await consultant_client("anna"), await consultant_client("bob")
    person = await resident()
    await person.start()
    assert (await anna.call("accept", {"chat_id": person.chat_id}))["ok"]
    await person.wait_for("state", lambda s: s.get("status") == "active")
    return anna, bob, person


async def check_consequences(chat_server, anna, bob, person) -> None:
    """Off presence, the chat back in the queue with a system line, transfers to anna refused."""
    await bob.wait_for("presence", lambda p: [c["name"] for c in p["consultants"]] == ["bob"])
    line = await person.wait_for("message", lambda m: m["from"] == "system" and "wraca do kolejki" in m["text"])
    assert line["event"] == "requeued" and "anna" not in line["text"]  # residents never see a log-in name
    stored = [m for m in await chat_server.store.chats.history(person.chat_id) if m.event == "requeued"]
    assert stored[-1].text == line["text"]  # the stored line is the resident's: no log-in name either
    await person.wait_for("state", lambda s: s.get("status") == "queued")
    await bob.wait_for("queue", lambda q: person.chat_id in [c["chat_id"] for c in q["chats"]])
    chat = await chat_server.store.chats.get(person.chat_id)
    assert chat.status == "queued" and chat.consultant_id is None
    # bob takes it, and cannot hand it to anna: she is not online any more
    assert (await bob.call("accept", {"chat_id": person.chat_id}))["ok"]
    assert code(await bob.call("transfer", {"chat_id": person.chat_id, "to_staff_id": anna.staff.id})) == "not_online"
    # anna's old socket receives nothing more of the chat (it is closed); bob has the whole history
    history = (await bob.call("history", {"chat_id": person.chat_id}))["messages"]
    assert [m["seq"] for m in history if m.get("event") == "requeued"] == [line["seq"]]


# ---------------------------------------------------------------- pushed from the store's change


async def test_disabling_an_account_ends_its_sockets_and_returns_its_chats(chat_server, consultant_client, resident):
    anna, bob, person = await anna_with_a_chat(consultant_client, resident)
    started = time.perf_counter()
    await chat_server.store.accounts.set_disabled(SYSTEM, "anna", True)
    await ended_and_gone(anna, "account_disabled")
    print(f"\nsession_ended after {1000 * (time.perf_counter() - started):.0f} ms (pushed)")
    await check_consequences(chat_server, anna, bob, person)
    with pytest.raises(ConnectionRefused) as refused:  # and she cannot come back
        await connect_client(chat_server.url, "/staff", {"token": anna.token})
    assert refused.value.code == "unauthorised"


async def test_signing_out_ends_the_sockets_of_that_session(chat_server, consultant_client, resident):
    anna, bob, person = await anna_with_a_chat(consultant_client, resident)
    await chat_server.store.accounts.logout(anna.token)
    await ended_and_gone(anna, "signed_out")
    await check_consequences(chat_server, anna, bob, person)
    assert bob.client.connected  # only anna's session ended


async def test_removing_the_consultant_role_ends_the_sockets(chat_server, consultant_client, resident):
    anna, bob, person = await anna_with_a_chat(consultant_client, resident)
    await chat_server.store.accounts.set_roles(SYSTEM, "anna", ["designated"])
    await ended_and_gone(anna, "role_removed")
    await check_consequences(chat_server, anna, bob, person)


async def test_a_password_reset_ends_the_sockets(chat_server, consultant_client, resident):
    anna, bob, person = await anna_with_a_chat(consultant_client, resident)
    await chat_server.store.accounts.set_password(SYSTEM, "anna", "a new long password")
    await ended_and_gone(anna, "password_changed")
    await check_consequences(chat_server, anna, bob, person)


async def test_a_change_made_by_another_process_is_found_by_the_sweep(
    chat_server, consultant_client, resident, settings
):
    """The TUI and `cim users` change accounts through their own store: no listener here hears it."""
    anna, bob, person = await anna_with_a_chat(consultant_client, resident)
    other = await Store.open(settings)  # another connection to the same file, as another process has
    try:
        await other.accounts.set_disabled(SYSTEM, "anna", True)
    finally:
        await other.close()
    started = time.perf_counter()
    await ended_and_gone(anna, "account_disabled")
    print(f"\nsession_ended after {1000 * (time.perf_counter() - started):.0f} ms (swept)")
    await check_consequences(chat_server, anna, bob, person)


# ---------------------------------------------------------------- time: lifetime and idle timeout


async def test_the_session_lifetime_ends_the_sockets(chat_server, consultant_client, resident, clock):
    anna, bob, person = await anna_with_a_chat(consultant_client, resident)
    # bob keeps working all along; anna too, but her session reaches its maximum length
    for _ in range(chat_server.settings.session_hours * 4 - 1):
        clock.advance(minutes=15)
        assert (await bob.call("activity", {}))["ok"]
        assert (await anna.call("activity", {}))["ok"]
    assert not anna.of("session_ended")
    clock.advance(minutes=15)  # 12 hours since they signed in
    await ended_and_gone(anna, "session_expired")
    await ended_and_gone(bob, "session_expired")  # bob signed in at the same moment


async def test_an_idle_session_ends_and_a_working_one_does_not(chat_server, consultant_client, resident, clock):
    anna, bob, person = await anna_with_a_chat(consultant_client, resident)
    idle = chat_server.settings.session_idle_minutes
    # bob works (the TUI reports activity while he types); anna's TUI is unattended
    for _ in range(3):
        clock.advance(minutes=idle // 2)
        assert (await bob.call("activity", {}))["ok"]
    await ended_and_gone(anna, "idle_timeout")
    await check_consequences(chat_server, anna, bob, person)
    assert bob.client.connected and not bob.of("session_ended")


async def test_chats_of_a_consultant_who_left_and_whose_session_ended_return_to_the_queue(
    chat_server, consultant_client, resident, clock
):
    """A TUI that crashed: the socket dropped while the session was alive, so the chat stayed assigned."""
    from webchat.app import HUB

    chat_server.app[HUB].staff_sessions.orphan_sweep_every = 1  # every sweep (30 by default)
    anna, bob, person = await anna_with_a_chat(consultant_client, resident)
    await anna.disconnect()
    await bob.wait_for("presence", lambda p: [c["name"] for c in p["consultants"]] == ["bob"])
    assert (await chat_server.store.chats.get(person.chat_id)).status == "active"  # a blip keeps the chat
    for _ in range(3):
        clock.advance(minutes=chat_server.settings.session_idle_minutes // 2)
        assert (await bob.call("activity", {}))["ok"]
    await person.wait_for("message", lambda m: m["from"] == "system" and "wraca do kolejki" in m["text"])
    await person.wait_for("state", lambda s: s.get("status") == "queued")
    assert (await bob.call("accept", {"chat_id": person.chat_id}))["ok"]


# ---------------------------------------------------------------- refusals are audited


async def test_refused_connections_are_audited(chat_server, make_staff, clock):
    with pytest.raises(ConnectionRefused):
        await connect_client(chat_server.url, "/staff", {"token": "forged-" + "x" * 40})
    await make_staff("dora", "designated")
    session = await chat_server.store.accounts.login("dora", PASSWORD)
    with pytest.raises(ConnectionRefused):
        await connect_client(chat_server.url, "/staff", {"token": session.token})
    await make_staff("ewa")
    old = await chat_server.store.accounts.login("ewa", PASSWORD)
    clock.advance(minutes=chat_server.settings.session_idle_minutes + 1)
    with pytest.raises(ConnectionRefused):
        await connect_client(chat_server.url, "/staff", {"token": old.token})
    with pytest.raises(ConnectionRefused):  # not even text: refused as unauthorised, never server_error
        await connect_client(chat_server.url, "/staff", {"token": "\ud800" * 40})
    entries = await refused_audit(chat_server.store, "staff.connect")
    assert [(e.actor_name, e.details) for e in entries] == [
        ("unknown", {"reason": "session"}),
        ("dora", {"reason": "role"}),
        ("unknown", {"reason": "session"}),
        ("unknown", {"reason": "session"}),
    ]
    assert (await chat_server.store.audit.verify()).ok


async def test_every_action_on_a_colleagues_chat_is_refused_and_audited(chat_server, consultant_client, resident):
    anna, bob, person = await anna_with_a_chat(consultant_client, resident)
    chat_id = person.chat_id
    assert (
        code(await bob.call("send", {"chat_id": chat_id, "text": "przejmuję", "client_msg_id": "b1"}))
        == "not_permitted"
    )
    assert code(await bob.call("typing", {"chat_id": chat_id, "active": True})) == "not_permitted"
    assert code(await bob.call("close", {"chat_id": chat_id, "category": "other"})) == "not_permitted"
    assert code(await bob.call("transfer", {"chat_id": chat_id, "to_staff_id": bob.staff.id})) == "not_permitted"
    assert code(await bob.call("history", {"chat_id": chat_id})) == "not_permitted"
    for action in ("chat.send", "chat.typing", "chat.close", "chat.transfer", "chat.read"):
        entries = await refused_audit(chat_server.store, action)
        assert [(e.actor_id, e.target_id, e.details) for e in entries] == [
            (bob.staff.id, str(chat_id), {"reason": "not_assigned"})
        ], action
    assert [m for m in person.of("message") if m["from"] == "consultant"] == []
    assert (await anna.call("history", {"chat_id": chat_id}))["ok"]


async def test_a_repeated_client_msg_id_is_checked_for_permission_first(chat_server, consultant_client, resident):
    anna, bob, person = await anna_with_a_chat(consultant_client, resident)
    sent = await anna.call("send", {"chat_id": person.chat_id, "text": "Dzień dobry", "client_msg_id": "m-1"})
    assert sent["ok"]
    # bob guesses anna's client_msg_id: he gets no ack of her message, only the refusal
    ack = await bob.call("send", {"chat_id": person.chat_id, "text": "cokolwiek", "client_msg_id": "m-1"})
    assert code(ack) == "not_permitted"
    assert len(await refused_audit(chat_server.store, "chat.send")) == 1
    # anna's own retry still gets her first seq back, stored once
    again = await anna.call("send", {"chat_id": person.chat_id, "text": "Dzień dobry", "client_msg_id": "m-1"})
    assert again == {"ok": True, "seq": sent["seq"]}
    texts = [m.text for m in await chat_server.store.chats.history(person.chat_id)]
    assert texts.count("Dzień dobry") == 1
