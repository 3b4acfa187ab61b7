"""The resident's side of the desk over a real server and socket clients: offline messages, the receipt and
copy of a chat, the receipt pair in the §4 register, satisfaction ratings surviving the purge."""

from __future__ import annotations

import base64
import json

import pytest

from store.archive import SearchFilters
from store.errors import ChatClosed, ConversationNotFound, InvalidInput, NotPermitted
from store.requests import RequestInput
from store.resident_desk import RECEIPT_TRIES, ReceiptRefused, normalise_secret
from tests.fixtures.audit_log import audit_log
from tests.fixtures.store import SYSTEM
from tests.test_webchat_resident import code, table_counts

CLOSED_NOW = "sun 08:00-09:00"  # the fixtures' clock reads Monday morning: the desk is closed


async def offline_resident(make_chat_server, resident, **overrides):
    server = await make_chat_server(opening_hours=CLOSED_NOW, **overrides)
    r = await resident(url=server.url)
    offline = await r.wait_for("offline")
    return server, r, offline


async def all_ratings(store):
    """The figures of every rating ever given (the public read takes a range of office days)."""
    overall, _, _ = await store.resident_desk.rating_figures("0001-01-01", "9999-12-31")
    return overall


def message(notice, **fields):
    return {"notice_id": notice, "contact": "jan@example.pl", "text": "Proszę o kontakt w sprawie podatku.", **fields}


# ---------------------------------------------------------------- offline messages: refusals first


async def test_an_offline_message_is_refused_while_a_consultant_is_available(resident, consultant, chat_server):
    await consultant("anna")
    r = await resident()
    notice = await r.wait_for("notice")
    assert notice["consultants_available"] is True
    before = await table_counts(chat_server.store)
    assert code(await r.call("offline_message", message(notice["notice_id"]))) == "invalid"
    assert await table_counts(chat_server.store) == before


@pytest.mark.parametrize(
    "fields, expected",
    [
        ({"contact": None}, "invalid"),
        ({"contact": ""}, "invalid"),
        ({"contact": "   "}, "invalid"),
        ({"contact": "jan@"}, "invalid"),
        ({"contact": "not a contact"}, "invalid"),
        ({"contact": "12"}, "invalid"),
        ({"contact": ["jan@example.pl"]}, "invalid"),
        ({"contact": "x" * 190 + "@example.pl"}, "too_long"),
        ({"name": "N" * 201}, "too_long"),
        ({"name": 5}, "invalid"),
        ({"text": ""}, "empty"),
        ({"text": "x" * 2001}, "too_long"),
        ({"text": None}, "invalid"),
        ({"notice_id": "1"}, "invalid"),
        ({"notice_id": 99999}, "invalid"),
    ],
)
async def test_bad_offline_messages_store_nothing(make_chat_server, resident, fields, expected):
    server, r, offline = await offline_resident(
        make_chat_server,
        resident,
        resident_rate_limit="off",
        chat_open_rate_limit="off",
        chat_open_address_rate_limit="off",
    )
    before = await table_counts(server.store)
    ack = await r.call("offline_message", message(offline["notice"]["notice_id"], **fields))
    assert code(ack) == expected
    assert await table_counts(server.store) == before


# ---------------------------------------------------------------- offline messages: the happy path


async def test_an_offline_message_is_a_conversation_answered_and_closed_by_a_consultant(
    make_chat_server, resident, make_staff, store
):
    server, r, offline = await offline_resident(make_chat_server, resident)
    assert offline["notice"]["text"].startswith("Kontakt z Urzędem Miasta Szczecin")  # §1.5 before the form
    ack = await r.call(
        "offline_message", message(offline["notice"]["notice_id"], name=" Jan  Kowalski ", contact="601 234 567")
    )
    assert ack["ok"] is True and ack["reference"].startswith("CZ-2026-03-02-")
    (found,) = (await store.archive.search(SYSTEM, SearchFilters())).items
    assert (found.channel, found.status) == ("chat", "offline_message")
    assert (await store.archive.details(SYSTEM, found.id)).purge_after > found.created_at  # as a chat's retention
    assert await store.resident_desk.waiting_count() == 1

    anna = await make_staff("anna", "consultant")
    actor = _actor(anna)
    with pytest.raises(NotPermitted):
        await store.resident_desk.offline_messages(_actor(await make_staff("dora", "designated")))
    waiting = await store.resident_desk.offline_messages(actor)
    assert [(m.conversation_id, m.reference, m.name, m.contact, m.contact_kind, m.text) for m in waiting] == [
        (found.id, ack["reference"], "Jan Kowalski", "+48601234567", "phone", "Proszę o kontakt w sprawie podatku.")
    ]
    with pytest.raises(InvalidInput):
        await store.resident_desk.answer(actor, found.id, "pigeon")
    answered = await store.resident_desk.answer(actor, found.id, "phone", "oddzwoniono")
    assert (answered.answered_by, answered.answered_how, answered.answer_note) == ("anna", "phone", "oddzwoniono")
    with pytest.raises(ChatClosed):
        await store.resident_desk.answer(actor, found.id, "email")
    assert (await store.chats.get(found.id)).status == "closed"
    assert await store.resident_desk.offline_messages(actor) == []
    listed = [
        json.dumps(e.details, ensure_ascii=False) for e in await audit_log(store, action="offline.list", outcome="ok")
    ]
    assert json.loads(listed[0])["conversations"] == [found.id]
    assert all("Kowalski" not in details and "601" not in details for details in listed)
    audit = await audit_log(store, action="offline.answer")
    assert len(audit) == 1 and audit[0].details == {"how": "phone"}


async def test_an_offline_message_is_allowed_when_the_desk_is_open_but_nobody_is_connected(resident, chat_server):
    r = await resident()
    notice = await r.wait_for("notice")
    assert notice["consultants_available"] is False
    ack = await r.call("offline_message", message(notice["notice_id"]))
    assert ack["ok"] is True


async def test_an_unanswered_offline_message_is_purged_at_its_purge_after(make_chat_server, resident, store, clock):
    server, r, offline = await offline_resident(make_chat_server, resident)
    ack = await r.call("offline_message", message(offline["notice"]["notice_id"]))
    (waiting,) = await store.resident_desk.offline_messages(SYSTEM)
    assert waiting.reference == ack["reference"]
    clock.advance(days=200)
    result = await store.retention.purge(SYSTEM)
    assert result.chats == 1
    with pytest.raises(ConversationNotFound):
        await store.archive.details(SYSTEM, waiting.conversation_id)
    assert await store.resident_desk.offline_messages(SYSTEM, include_answered=True) == []
    # and no row of the name and contact is left behind the conversation (the public read joins the two)
    assert (await store.db.fetchone("SELECT count(*) AS n FROM offline_messages"))["n"] == 0


@pytest.mark.ordinance("§6")
async def test_a_hold_keeps_an_unanswered_offline_message_past_its_purge_date(
    make_chat_server, resident, make_staff, store, clock
):
    server, r, offline = await offline_resident(make_chat_server, resident)
    ack = await r.call("offline_message", message(offline["notice"]["notice_id"], name="Jan Kowalski"))
    (waiting,) = await store.resident_desk.offline_messages(SYSTEM)
    director = _actor(await make_staff("dyrektor", "boi_director"))
    (hold,) = await store.retention.add_hold(
        director, [waiting.conversation_id], legal_basis="KPA art. 73", case_reference="SO-II.7/2026"
    )
    clock.advance(days=200)
    assert (await store.archive.details(SYSTEM, waiting.conversation_id)).purge_after < clock()  # past its date
    result = await store.retention.purge(SYSTEM)
    assert (result.chats, result.held) == (0, 1)
    (kept,) = await store.resident_desk.offline_messages(SYSTEM)  # still waiting, with its name and contact
    assert (kept.conversation_id, kept.reference, kept.name, kept.contact, kept.text) == (
        waiting.conversation_id,
        ack["reference"],
        "Jan Kowalski",
        "jan@example.pl",
        "Proszę o kontakt w sprawie podatku.",
    )
    # released, the next run purges it, the name and contact with it
    await store.retention.release_hold(director, hold.id)
    assert (await store.retention.purge(SYSTEM)).chats == 1
    with pytest.raises(ConversationNotFound):
        await store.archive.details(SYSTEM, waiting.conversation_id)
    assert (await store.db.fetchone("SELECT count(*) AS n FROM offline_messages"))["n"] == 0


# ---------------------------------------------------------------- the receipt and the copy


async def chat_with_consultant(resident, consultant_client):
    anna = await consultant_client("anna")
    r = await resident()
    await r.start()
    assert (await anna.call("accept", {"chat_id": r.chat_id}))["ok"]
    await r.send("Dzień dobry, pytanie o Kartę Mieszkańca.", "m1")
    assert (await anna.call("send", {"chat_id": r.chat_id, "text": "Chętnie pomogę.", "client_msg_id": "c1"}))["ok"]
    return anna, r


@pytest.mark.ordinance("§4.1")
async def test_the_resident_gets_a_receipt_once_at_the_end_and_a_copy(resident, consultant_client, chat_server):
    anna, r = await chat_with_consultant(resident, consultant_client)
    assert code(await r.call("transcript", {})) == "invalid"  # not before the end
    assert code(await r.call("rate", {"rating": 5})) == "invalid"
    assert (await anna.call("close", {"chat_id": r.chat_id, "category": "information_given"}))["ok"]
    state = await r.wait_for("state", lambda s: s.get("status") == "closed")
    receipt = state["receipt"]
    assert receipt["reference"].startswith("CZ-2026-03-02-") and len(normalise_secret(receipt["secret"])) == 16
    # what the file holds is the subject (the secret rests only as its hash), so the row is read raw
    row = await chat_server.store.db.fetchone(
        "SELECT receipt_reference, receipt_secret_hash FROM conversations WHERE id = ?", (r.chat_id,)
    )
    assert row["receipt_reference"] == receipt["reference"]
    assert receipt["secret"] not in row["receipt_secret_hash"] and len(row["receipt_secret_hash"]) == 64
    assert await chat_server.store.resident_desk.issue_receipt(r.chat_id) is None  # shown once
    copy = await r.call("transcript", {})
    assert copy["ok"] and receipt["reference"] in copy["text"]
    assert "Ty: Dzień dobry, pytanie o Kartę Mieszkańca." in copy["text"]
    assert "Chętnie pomogę." in copy["text"] and receipt["secret"] not in copy["text"]
    pdf = await r.call("transcript", {"format": "pdf"})
    assert base64.b64decode(pdf["pdf"]).startswith(b"%PDF-")
    assert code(await r.call("transcript", {"format": "docx"})) == "invalid"


async def test_a_resident_ending_the_chat_gets_the_receipt_in_english(resident, chat_server):
    r = await resident("en")
    await r.start()
    await r.send("Hello", "m1")
    assert (await r.call("end", {}))["ok"]
    state = await r.wait_for("state", lambda s: s.get("status") == "closed")
    assert state["receipt"]["reference"].startswith("CZ-")
    copy = await r.call("transcript", {})
    assert copy["text"].startswith("Chat transcript") and "You: Hello" in copy["text"]


# ---------------------------------------------------------------- the receipt pair in the §4 register


def _actor(staff):
    from store.models import Actor

    return Actor(staff.id, staff.name, frozenset(staff.roles), staff.department)


def chat_request(**fields):
    return RequestInput(
        kind="access",
        channel="chat",
        received_on="2026-03-02",
        requester_name="Jan Kowalski",
        requester_address="ul. Wały Chrobrego 1, 70-500 Szczecin",
        justification="Spór o treść.",
        hint={"date": "2026-03-02"},
        **fields,
    )


async def ended_chat_receipt(resident):
    r = await resident()
    await r.start()
    await r.send("Pytanie", "m1")
    await r.call("end", {})
    return r, (await r.wait_for("state", lambda s: s.get("status") == "closed"))["receipt"]


@pytest.mark.ordinance("§4.1")
async def test_a_valid_receipt_pair_links_the_chat_to_the_request(resident, chat_server, make_staff, store):
    r, receipt = await ended_chat_receipt(resident)
    clerk = _actor(await make_staff("ewa", "designated"))
    secret = receipt["secret"].lower().replace("-", " ")  # as typed from a paper form
    req = await store.requests.register(
        clerk, chat_request(conversation_reference=receipt["reference"], receipt_secret=secret)
    )
    assert req.receipt_verified_at is not None and req.conversation_reference == receipt["reference"]
    detail = await store.requests.get(clerk, req.id)
    assert [c.conversation_id for c in detail.conversations] == [r.chat_id]
    held = await store.retention.holds(SYSTEM, conversation_id=r.chat_id)
    assert [h.request_id for h in held] == [req.id]
    checked = (await audit_log(store, action="requests.receipt"))[0]
    assert (checked.outcome, checked.target_id) == ("ok", str(r.chat_id))
    plain = await store.requests.register(clerk, chat_request(conversation_reference=receipt["reference"]))
    assert plain.receipt_verified_at is None  # without the code: today's manual matching
    assert [c.conversation_id for c in (await store.requests.get(clerk, plain.id)).conversations] == []


@pytest.mark.ordinance("§4.1")
async def test_a_guessed_receipt_secret_is_refused_audited_and_rate_limited(resident, chat_server, make_staff, store):
    r, receipt = await ended_chat_receipt(resident)
    clerk = _actor(await make_staff("ewa", "designated"))
    before = len(await store.requests.list(SYSTEM))
    for i in range(RECEIPT_TRIES):
        with pytest.raises(ReceiptRefused):
            await store.requests.register(
                clerk,
                chat_request(conversation_reference=receipt["reference"], receipt_secret=f"AAAA-AAAA-AAAA-AAA{i}"),
            )
    with pytest.raises(ReceiptRefused, match="too many"):  # even the right code waits now
        await store.requests.register(
            clerk, chat_request(conversation_reference=receipt["reference"], receipt_secret=receipt["secret"])
        )
    assert len(await store.requests.list(SYSTEM)) == before
    refused = [
        json.dumps(e.details, ensure_ascii=False)
        for e in await audit_log(store, action="requests.receipt", outcome="refused")
    ]
    assert len(refused) == RECEIPT_TRIES + 1 and all(receipt["secret"] not in details for details in refused)
    with pytest.raises(InvalidInput):  # a code for a call request makes no sense
        await store.requests.register(
            clerk,
            RequestInput(
                kind="access",
                channel="call",
                received_on="2026-03-02",
                requester_name="Jan",
                requester_address="x",
                requester_phone="601234567",
                justification="j",
                hint={"date": "2026-03-02"},
                conversation_reference=receipt["reference"],
                receipt_secret=receipt["secret"],
            ),
        )


# ---------------------------------------------------------------- satisfaction


@pytest.mark.parametrize(
    "payload",
    [{"rating": 0}, {"rating": 6}, {"rating": "5"}, {"rating": True}, {"rating": 4.5}, {}, {"rating": 3, "comment": 7}],
)
async def test_bad_ratings_are_refused(resident, chat_server, payload):
    r, _ = await ended_chat_receipt(resident)
    assert code(await r.call("rate", payload)) == "invalid"
    assert (await all_ratings(chat_server.store)).count == 0


async def test_a_rating_survives_the_purge_of_its_chat_with_no_link_back(
    resident, consultant_client, chat_server, store, clock
):
    anna, r = await chat_with_consultant(resident, consultant_client)
    await anna.call("close", {"chat_id": r.chat_id, "category": "information_given"})
    await r.wait_for("state", lambda s: s.get("status") == "closed")
    assert code(await r.call("rate", {"rating": 4, "comment": "x" * 1001})) == "too_long"
    assert (await r.call("rate", {"rating": 4, "comment": "Pani Anna pomogła, mój PESEL 80010112345"}))["ok"]
    assert code(await r.call("rate", {"rating": 1})) == "invalid"  # one rating per chat
    # what the file holds is the subject (sealed comment; after the purge, no link back): the row is read raw
    row = await store.db.fetchone("SELECT * FROM chat_ratings")
    assert (row["conversation_id"], row["consultant"], row["rating"]) == (r.chat_id, "anna", 4)
    assert b"PESEL" not in bytes(row["comment"])  # sealed with the chat's data key
    assert await store.resident_desk.rating_comment(r.chat_id) == "Pani Anna pomogła, mój PESEL 80010112345"
    clock.advance(days=200)
    await store.retention.purge(SYSTEM)
    with pytest.raises(ConversationNotFound):
        await store.archive.details(SYSTEM, r.chat_id)
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
    overall, per_consultant, per_topic = await store.resident_desk.rating_figures("2026-03-01", "2026-03-31")
    assert (overall.count, overall.average, overall.marks) == (1, 4.0, (0, 0, 0, 1, 0))
    assert [(f.key, f.count) for f in per_consultant] == [("anna", 1)]
    assert [(f.key, f.count) for f in per_topic] == [("", 1)]


async def test_consultants_connected_while_the_desk_is_closed_hear_of_a_new_offline_message(
    make_chat_server, resident, consultant_client
):
    server, r, offline = await offline_resident(make_chat_server, resident)
    anna = await consultant_client("anna", url=server.url)
    ack = await r.call("offline_message", message(offline["notice"]["notice_id"]))
    assert ack["ok"], ack
    assert (await anna.wait_for("offline_messages"))["waiting"] == 1


async def test_asking_for_the_copy_in_a_loop_is_rate_limited(resident, chat_server):
    r, _ = await ended_chat_receipt(resident)
    codes = [(await r.call("transcript", {"format": "pdf"})).get("error", {}).get("code") for _ in range(12)]
    assert codes[0] is None and "rate_limited" in codes


@pytest.mark.ordinance("§6")
async def test_a_purged_chat_leaves_no_readable_comment_contact_or_message_text_in_the_database_files(
    resident, chat_server, make_chat_server, store, clock, settings
):
    from tests.test_purge_remnants import MARKER, marker_in_files

    r, _ = await ended_chat_receipt(resident)
    assert (await r.call("rate", {"rating": 2, "comment": MARKER}))["ok"]
    server, o, offline = await offline_resident(make_chat_server, resident)
    assert (await o.call("offline_message", message(offline["notice"]["notice_id"], name=MARKER, text=MARKER)))["ok"]
    assert marker_in_files(settings) == []  # sealed at rest (store/keys.py): not readable even before the purge
    clock.advance(days=200)
    result = await store.retention.purge(SYSTEM)
    assert result.chats == 2 and result.remnants_cleared is True
    assert marker_in_files(settings) == []
    assert (await all_ratings(store)).marks == (0, 1, 0, 0, 0)  # the rating itself survives


async def test_the_copy_is_fetched_with_the_ended_chats_token_from_a_later_connection_for_a_day(
    resident, chat_server, clock
):
    r, receipt = await ended_chat_receipt(resident)
    later = await resident()
    await later.wait_for("notice")
    for bad in ("x" * 10, 5, "A" * 43, None):
        assert code(await later.call("transcript", {"token": bad})) == "invalid"
    copy = await later.call("transcript", {"token": r.resume_token})
    assert copy["ok"] and receipt["reference"] in copy["text"]
    other = await resident()
    await other.start()  # an open chat's token gives no copy
    assert code(await later.call("transcript", {"token": other.resume_token})) == "invalid"
    clock.advance(hours=25)
    assert code(await later.call("transcript", {"token": r.resume_token})) == "invalid"


async def test_the_copy_leaves_out_lines_the_resident_never_saw(resident, consultant_client, chat_server, store):
    anna, r = await chat_with_consultant(resident, consultant_client)
    await anna.call("close", {"chat_id": r.chat_id, "category": "information_given"})
    await r.wait_for("state", lambda s: s.get("status") == "closed")
    async with store.db.write() as tx:  # a staff note (a supervisor's whisper) and an unknown system event
        seq = (await (await tx.execute("SELECT next_seq FROM conversations WHERE id = ?", (r.chat_id,))).fetchone())[0]
        await tx.execute(
            "INSERT INTO messages(conversation_id, seq, sender, staff_id, text, at, event, params) "
            "VALUES (?, ?, 'consultant', ?, 'NOTATKA-WEWNĘTRZNA', '2026-03-02T09:00:00.000000Z', "
            "'whisper', '{}')",
            (r.chat_id, seq, anna.staff.id),
        )
        await tx.execute(
            "INSERT INTO messages(conversation_id, seq, sender, text, at, event, params) "
            "VALUES (?, ?, 'system', 'NADZÓR-WEWNĘTRZNY', '2026-03-02T09:00:00.000000Z', "
            "'monitor_started', '{}')",
            (r.chat_id, seq + 1),
        )
    copy = (await r.call("transcript", {}))["text"]
    assert "Chętnie pomogę." in copy
    assert "NOTATKA" not in copy and "NADZÓR" not in copy
    assert "information_given" not in copy and "anna" not in copy  # no category, no log-in name
