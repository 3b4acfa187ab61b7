"""System lines as structured events (issue 16): rendered in the resident's language, with a display name,
never a log-in name or a close category; the stored Polish line is the same rendering; canned placeholders;
offline info."""

from __future__ import annotations

import json
import re
from datetime import date
from pathlib import Path

import pytest

from store.chats import (
    CLOSE_CATEGORIES,
    DEFAULT_DISPLAY_NAME,
    SYSTEM_EVENTS,
    SYSTEM_EVENTS_UNNAMED,
    display_name,
    fill_canned,
    render_event,
)
from store.errors import InvalidInput
from store.models import Actor
from tests.test_cli_foundation import cim


SYSTEM = Actor.system("test")
#: Log-in names chosen so that no rendered line can contain them by chance.
ANNA, BOB = "akowalska", "bnowak"
WIDGET_JS = Path(__file__).resolve().parents[1] / "webchat" / "static" / "cim-widget.js"
POLISH_LETTERS = re.compile("[ąćęłńóśźżĄĆĘŁŃÓŚŹŻ]")
#: Words of the English lines that a Polish line never has, and the other way round.
ENGLISH_WORDS = re.compile(r"\b(the|chat|consultant|you|queue|notice)\b", re.IGNORECASE)
POLISH_WORDS = re.compile(r"(rozmow|konsultant|kolejk|czat\b|zaakceptowano|połączono)", re.IGNORECASE)


async def staffed(chat_server, consultant_client):
    """anna (full name set: residents see "Anna") and bob (display name set: "Robert B.")."""
    anna, bob = await consultant_client(ANNA), await consultant_client(BOB)
    await chat_server.store.accounts.set_signature(SYSTEM, ANNA, full_name="Anna Kowalska")
    assert await chat_server.store.chats.set_display_name(SYSTEM, BOB, "  Robert   B. ") == "Robert B."
    return anna, bob


async def full_chat(resident, anna, bob, lang: str):
    """Open, accept, transfer and close with a category; returns the resident and every system line it got."""
    r = await resident(lang)
    await r.start()
    await anna.wait_for("queue", lambda q: r.chat_id in [c["chat_id"] for c in q["chats"]])
    assert (await anna.call("accept", {"chat_id": r.chat_id}))["ok"]
    assert (await anna.call("transfer", {"chat_id": r.chat_id, "to_staff_id": bob.staff.id}))["ok"]
    await bob.wait_for("assigned", lambda a: a["chat_id"] == r.chat_id)
    assert (await bob.call("close", {"chat_id": r.chat_id, "category": "information_given"}))["ok"]
    await r.wait_for("message", lambda m: m.get("event") == "closed_by_consultant")
    return r, [m for m in r.of("message") if m["from"] == "system"]


def assert_clean(lines: list[dict], lang: str) -> None:
    """Every line is an event rendered in `lang`; no log-in name, no close category, no other language."""
    assert [m["event"] for m in lines] == [
        "notice_accepted",
        "queued",
        "accepted",
        "transferred",
        "closed_by_consultant",
    ]
    for m in lines:
        assert m["text"] == render_event(m["event"], m["params"], lang)
        assert ANNA not in m["text"] and BOB not in m["text"] and ANNA not in json.dumps(m["params"])
        assert BOB not in json.dumps(m["params"])
        assert not any(c in m["text"] for c in CLOSE_CATEGORIES) and "category" not in m["params"]
        if lang == "en":
            assert not POLISH_LETTERS.search(m["text"]) and not POLISH_WORDS.search(m["text"]), m["text"]
        else:
            assert not ENGLISH_WORDS.search(m["text"]), m["text"]


@pytest.mark.parametrize("lang", ["pl", "en"])
async def test_system_lines_reach_the_resident_in_their_language_without_internal_words(
    resident, consultant_client, chat_server, lang
):
    anna, bob = await staffed(chat_server, consultant_client)
    r, lines = await full_chat(resident, anna, bob, lang)
    assert_clean(lines, lang)
    assert "Anna" in lines[2]["text"] and "Robert B." in lines[3]["text"]
    # the same after a resume: the history is rendered for the resident too
    again = await resident(lang, resume=r.resume_token)
    history = await again.wait_for("history")
    assert_clean([m for m in history["messages"] if m["from"] == "system"], lang)


async def test_the_staff_get_the_stored_polish_line_without_log_in_names_or_the_category(
    resident, consultant_client, chat_server
):
    anna, bob = await staffed(chat_server, consultant_client)
    r, _ = await full_chat(resident, anna, bob, "en")
    staff_lines = {m["event"]: m for m in bob.of("message") if m.get("chat_id") == r.chat_id}
    closed = staff_lines["closed_by_consultant"]
    assert closed["text"] == "Czat zakończony przez konsultanta."  # the TUI words the category from the chat
    stored = {m.event: m for m in await chat_server.store.chats.history(r.chat_id)}
    assert stored["accepted"].text == "Połączono z konsultantem. Odpowiada: Anna."
    assert stored["transferred"].text == render_event("transferred", {"consultant": "Robert B."}, "pl")
    assert not any(ANNA in m.text or BOB in m.text for m in stored.values())
    assert stored["accepted"].params == {"consultant": "Anna"}
    assert stored["notice_accepted"].params == {"version": 1, "lang": "en"}
    (third,) = [m for m in await chat_server.store.chats.history(r.chat_id) if m.seq == 3]
    assert third.event == "accepted" and third.params == {"consultant": "Anna"}


async def test_a_resident_ending_the_chat_and_a_requeue_are_events_too(resident, consultant_client, chat_server):
    anna = await consultant_client(ANNA)
    r = await resident("en")
    await r.start()
    await anna.wait_for("queue", lambda q: r.chat_id in [c["chat_id"] for c in q["chats"]])
    assert (await anna.call("accept", {"chat_id": r.chat_id}))["ok"]
    accepted = await r.wait_for("message", lambda m: m.get("event") == "accepted")
    # no display name and no full name: a generic line, not the log-in name
    assert accepted["text"] == "You are now connected with a consultant." and accepted["params"] == {"consultant": None}
    await chat_server.store.chats.return_to_queue(anna.staff.id, "test")
    requeued = (await chat_server.store.chats.history(r.chat_id))[-1]
    assert requeued.event == "requeued" and ANNA not in requeued.text
    assert render_event("requeued", requeued.params, "en") == SYSTEM_EVENTS["requeued"][1]
    assert (await r.call("end", {}))["ok"]
    ended = await r.wait_for("message", lambda m: m.get("event") == "ended_by_resident")
    assert ended["text"] == "You ended the chat."


def test_every_event_has_both_languages_and_no_masculine_only_polish_forms():
    for event, (polish, english) in {**SYSTEM_EVENTS, **SYSTEM_EVENTS_UNNAMED}.items():
        assert polish and english and polish != english
        # the masculine-only forms the widget used to have
        assert not re.search(r"(przejął|przekazał|zaakceptował|zakończył|połączony|Opuściłeś)\b", polish), event
    assert render_event("accepted", {"consultant": "Anna"}, "pl") == "Połączono z konsultantem. Odpowiada: Anna."
    assert render_event("transferred", {}, "en") == "The chat was handed over to another consultant."


def test_the_display_name_is_set_else_the_first_word_of_the_full_name_else_none():
    assert display_name("Konsultantka Ewa", "Ewa Nowak") == "Konsultantka Ewa"
    assert display_name(None, "Ewa Nowak") == "Ewa"
    assert display_name("  ", "") is None and display_name(None, None) is None


async def test_set_display_name_refuses_bad_text_and_clears_with_an_empty_one(store, make_staff):
    await make_staff("ewa")
    with pytest.raises(InvalidInput):
        await store.chats.set_display_name(SYSTEM, "ewa", "x" * 61)
    with pytest.raises(InvalidInput):
        await store.chats.set_display_name(SYSTEM, "ewa", "Ewa\x07")
    staff = await store.accounts.get("ewa")
    assert await store.chats.set_display_name(SYSTEM, "ewa", "Ewa") == "Ewa"
    assert await store.chats.display_name_of(staff.id) == "Ewa"
    assert await store.chats.set_display_name(SYSTEM, "ewa", "") is None
    assert await store.chats.display_name_of(staff.id) is None


def test_cim_users_display_name(tmp_path):
    data = tmp_path / "data"
    assert cim(data, "init").returncode == 0
    assert (
        cim(
            data, "users", "add", "kasia", "--role", "consultant", "--password-stdin", stdin="another passphrase"
        ).returncode
        == 0
    )
    r = cim(data, "users", "display-name", "kasia", "Katarzyna")
    assert r.returncode == 0 and "Katarzyna" in r.stdout, r.stderr
    missing = cim(data, "users", "display-name", "nikt", "X")
    assert missing.returncode != 0 and "nikt" in missing.stderr


def test_canned_placeholders_are_filled_and_other_braces_kept():
    text = "Dzień dobry, nazywam się {consultant}. Dziś {date} urząd jest czynny. {inne}"
    assert fill_canned(text, consultant="Anna", day=date(2026, 3, 9)) == (
        "Dzień dobry, nazywam się Anna. Dziś 09.03.2026 urząd jest czynny. {inne}"
    )
    assert fill_canned("bez pól", consultant="Anna", day=date(2026, 3, 9)) == "bez pól"


async def test_canned_responses_are_filled_per_consultant(store, make_staff):
    from store.models import Role

    ewa = await make_staff("ewa")
    await store.accounts.set_signature(SYSTEM, "ewa", full_name="Ewa Nowak")
    actor = Actor(staff_id=ewa.id, name="ewa", roles=frozenset({Role.CONSULTANT}))
    await store.chats.add_canned(SYSTEM, "Powitanie", "Nazywam się {consultant}, dziś {date}.")
    filled = await store.chats.canned_filled(actor)
    today = store.clock().astimezone(__import__("zoneinfo").ZoneInfo(store.settings.timezone)).date()
    assert [c.text for c in filled] == [f"Nazywam się Ewa, dziś {today:%d.%m.%Y}."]
    # the stored text keeps its placeholders (the CIM manager edits it as written)
    assert (await store.chats.canned(actor))[0].text == "Nazywam się {consultant}, dziś {date}."
    assert DEFAULT_DISPLAY_NAME["pl"] == "Konsultant CIM"


async def test_the_offline_greeting_names_the_hours_once_and_the_office_phone_and_address(
    make_chat_server, store, resident
):
    from tests.fixtures.chat import connect_client

    tomorrow = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")[(store.clock().weekday() + 1) % 7]
    server = await make_chat_server(opening_hours=f"{tomorrow} 08:00-16:00", office_phone="+48 91 000 00 00")
    client = await connect_client(server.url, "/resident", {"lang": "en"})
    try:
        offline = await client.wait_for("offline")
    finally:
        await client.disconnect()
    assert offline["phone"] == "+48 91 000 00 00"
    assert offline["address"] == server.settings.office_address
    assert offline["hours"] and offline["hours"] in offline["message"]


def test_the_widget_knows_every_system_line_the_store_renders():
    """The widget renders events itself (in its own language): its catalog must match store/chats.py."""
    source = WIDGET_JS.read_text(encoding="utf-8")
    for event, texts in {**SYSTEM_EVENTS, **SYSTEM_EVENTS_UNNAMED}.items():
        for text in texts:
            assert f'"{text}"' in source, (event, text)
