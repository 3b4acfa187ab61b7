"""Refusals travel as codes, never as the server's words: every error ack on /resident carries `code` (and
`reason` when the code alone does not say what was refused) with an English `message` for logs, whatever the
server's staff language; the widget keeps its own copy of the reasons (webchat/static/cim-widget-core.js)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.test_desk_resident import chat_with_consultant, message, offline_resident
from webchat import protocol

ROOT = Path(__file__).resolve().parents[1]


def refusal(ack: dict) -> tuple[str, str | None]:
    assert ack["ok"] is False, ack
    return ack["error"]["code"], ack["error"].get("reason")


def test_the_widgets_refusal_reasons_are_the_protocols():
    node = shutil.which("node")
    assert node, "node is not installed (README: The two commands)"
    core = ROOT / "webchat" / "static" / "cim-widget-core.js"
    out = subprocess.run(
        [node, "-e", f"console.log(JSON.stringify(require({json.dumps(str(core))}).ERROR_REASONS))"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    reasons = json.loads(out.stdout)
    assert len(reasons) == len(set(reasons)) and set(reasons) == protocol.RESIDENT_REASONS


def test_docs_protocol_names_every_refusal_reason():
    text = (ROOT / "docs" / "PROTOCOL.md").read_text(encoding="utf-8")
    missing = [r for r in sorted(protocol.REFUSAL_REASONS) if f"`{r}`" not in text]
    assert not missing, missing


def test_an_unknown_reason_is_never_put_on_the_wire():
    with pytest.raises(AssertionError):
        protocol.error(protocol.INVALID, "x", "made_up")
    assert protocol.error(protocol.INVALID, "x") == {"ok": False, "error": {"code": "invalid", "message": "x"}}


@pytest.mark.staff_lang("pl")
@pytest.mark.parametrize(
    "fields, expected",
    [
        ({"contact": "   "}, ("invalid", "contact_missing")),
        ({"contact": "jan@"}, ("invalid", "contact_invalid")),
        ({"contact": ["jan@example.pl"]}, ("invalid", "contact_invalid")),
        ({"contact": "x" * 190 + "@example.pl"}, ("too_long", "contact_too_long")),
        ({"name": "N" * 201}, ("too_long", "name_too_long")),
        ({"text": ""}, ("empty", None)),
    ],
)
async def test_offline_message_refusals_carry_their_reason_and_no_polish_words(
    make_chat_server, resident, fields, expected
):
    """Under a Polish-speaking server the message stays English: no client shows it; the reason says what."""
    _, r, offline = await offline_resident(
        make_chat_server, resident, chat_open_rate_limit="off", chat_open_address_rate_limit="off"
    )
    ack = await r.call("offline_message", message(offline["notice"]["notice_id"], **fields))
    assert refusal(ack) == expected
    assert ack["error"]["message"].isascii()


async def test_an_offline_message_while_a_consultant_is_available_says_so_by_reason(resident, consultant):
    await consultant("anna")
    r = await resident()
    notice = await r.wait_for("notice")
    assert refusal(await r.call("offline_message", message(notice["notice_id"]))) == (
        "invalid",
        "consultant_available",
    )


@pytest.mark.staff_lang("pl")
async def test_the_copy_and_the_rating_refusals_carry_reasons_and_the_copy_its_reference(resident, consultant_client):
    anna, r = await chat_with_consultant(resident, consultant_client)
    assert refusal(await r.call("transcript", {})) == ("invalid", "not_ended")
    assert refusal(await r.call("rate", {"rating": 5})) == ("invalid", "not_ended")
    assert refusal(await r.call("accept_notice", {"notice_id": 1})) == ("invalid", "chat_open")
    assert refusal(await r.call("decline_notice", {})) == ("invalid", "chat_open")
    assert (await anna.call("close", {"chat_id": r.chat_id, "category": "information_given"}))["ok"]
    state = await r.wait_for("state", lambda s: s.get("status") == "closed")
    copy = await r.call("transcript", {})
    assert copy["reference"] == state["receipt"]["reference"]  # the widget reads it here, not from the text
    assert refusal(await r.call("rate", {"rating": 9})) == ("invalid", "rating_invalid")
    assert refusal(await r.call("rate", {"rating": 4, "comment": "x" * 1001})) == ("too_long", "comment_too_long")
    assert (await r.call("rate", {"rating": 4}))["ok"]
    again = await r.call("rate", {"rating": 5})
    assert refusal(again) == ("invalid", "already_rated")
    assert again["error"]["message"] == "this chat has already been rated"
