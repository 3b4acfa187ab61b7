"""Property-based fuzzing of the resident's desk events (offline_message, transcript, rate) with arbitrary JSON:
documented answers only, and a refused offline message or rating stores nothing."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.fixtures.chat import connect_client
from tests.fixtures.reliability import LiveServer
from tests.test_fuzz_events import FUZZ_SETTINGS, RESIDENT_CODES, check_ack, consistent, json_values, texts

fields = st.dictionaries(
    st.sampled_from(["notice_id", "name", "contact", "text", "rating", "comment", "format", "token"]),
    json_values,
    max_size=5,
)
contacts = st.one_of(texts, st.sampled_from(["jan@example.pl", "601 234 567", "+48601234567", "@", "a@b", "a@b.c"]))
events = st.tuples(
    st.sampled_from(["offline_message", "transcript", "rate"]),
    st.one_of(
        fields,
        st.fixed_dictionaries({"contact": contacts, "text": texts}),
        st.fixed_dictionaries(
            {"rating": st.one_of(st.integers(-2, 8), json_values)}, optional={"comment": json_values}
        ),
    ),
)


async def counts(live: LiveServer) -> tuple[int, int]:
    db = live.store.db
    return (
        (await db.fetchone("SELECT count(*) AS n FROM offline_messages"))["n"],
        (await db.fetchone("SELECT count(*) AS n FROM chat_ratings"))["n"],
    )


@pytest.mark.ordinance("GDPR 32")
def test_fuzz_the_desk_events(live_server: LiveServer) -> None:
    @FUZZ_SETTINGS
    @given(st.lists(events, min_size=1, max_size=4), st.sampled_from(["none", "open", "ended"]))
    def example(sequence: list[tuple[str, Any]], chat: str) -> None:
        async def run() -> None:
            client = await connect_client(live_server.url, "/resident", {"lang": "pl"})
            try:
                notice = await client.wait_for("notice")
                if chat != "none":
                    assert (await client.call("accept_notice", {"notice_id": notice["notice_id"]}))["ok"]
                if chat == "ended":
                    assert (await client.call("end", {}))["ok"]
                for event, payload in sequence:
                    if event == "offline_message" and isinstance(payload, dict) and "notice_id" not in payload:
                        payload = {**payload, "notice_id": notice["notice_id"]}
                    before = await counts(live_server)
                    ack = await client.call(event, payload)
                    check_ack(ack, RESIDENT_CODES, (event, payload))
                    if not ack["ok"]:
                        assert await counts(live_server) == before, (event, payload)
            finally:
                await client.disconnect()

        live_server.run(run())

    example()
    live_server.run(consistent(live_server))
