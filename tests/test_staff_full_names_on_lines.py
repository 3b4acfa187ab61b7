"""Issue 16: residents see a consultant's display name, never a log-in name; staff see a colleague's full name.
Staff-side system lines carry `staff` (who the line is by: full name, display name, log-in name); the
resident's payloads never do, nor anywhere the full name or the log-in name (real server, real sockets)."""

from __future__ import annotations

import json

from tests.fixtures.store import SYSTEM

FULL = "Anna Zofia Wiśniewska"
LOGIN = "awisniewska"


async def test_staff_lines_name_the_colleague_in_full_and_the_residents_never(
    chat_server, consultant_client, resident
) -> None:
    anna = await consultant_client(LOGIN)
    bob = await consultant_client("bkowal")
    store = chat_server.store
    await store.accounts.set_signature(SYSTEM, LOGIN, full_name=FULL)
    await store.chats.set_display_name(SYSTEM, LOGIN, "Konsultant CIM")
    r = await resident("pl")
    await r.start()
    ack = await anna.call("accept", {"chat_id": r.chat_id})
    assert ack["ok"], ack
    accepted = ack["history"][-1]
    assert accepted["event"] == "accepted" and accepted["params"] == {"consultant": "Konsultant CIM"}
    assert accepted["staff"] == {
        "staff_id": anna.staff.id,
        "login": LOGIN,
        "full_name": FULL,
        "display_name": "Konsultant CIM",
    }
    assert all("staff" not in line for line in ack["history"][:-1])  # no staff member on these lines
    # a live line (the transfer) to the consultant who loses the chat, and in the history of the one who gets it
    assert (await anna.call("transfer", {"chat_id": r.chat_id, "to_staff_id": bob.staff.id}))["ok"]
    moved = await anna.wait_for("message", lambda m: m.get("event") == "transferred")
    assert moved["staff"]["full_name"] == FULL and moved["staff"]["login"] == LOGIN
    assigned = await bob.wait_for("assigned")
    assert [line["staff"]["full_name"] for line in assigned["history"] if "staff" in line] == [FULL, FULL]
    # a consultant's own words carry no `staff`; the `history` ack names the staff member too
    assert (await bob.call("send", {"chat_id": r.chat_id, "text": "Dzień dobry", "client_msg_id": "b1"}))["ok"]
    read = await bob.call("history", {"chat_id": r.chat_id})
    assert read["ok"], read
    assert [line["staff"]["full_name"] for line in read["messages"] if "staff" in line] == [FULL, FULL]
    assert "staff" not in read["messages"][-1]
    # the resident: the display name only, on every event it got, and in a resumed history
    await r.wait_for("message", lambda m: m.get("event") == "transferred")
    await r.wait_for("message", lambda m: m.get("from") == "consultant")
    resumed = await resident("pl", r.resume_token)
    history = await resumed.wait_for("history")
    assert [line.get("event") for line in history["messages"]][-2:] == ["transferred", None]
    seen = json.dumps([r.log.events, resumed.log.events], ensure_ascii=False)
    assert "Konsultant CIM" in seen  # the name residents are meant to see is there
    for secret in (FULL, "Wiśniewska", LOGIN, '"staff"', '"login"', '"full_name"'):
        assert secret not in seen, secret
