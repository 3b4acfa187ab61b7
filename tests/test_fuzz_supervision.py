"""Random §3 supervision events on /staff from a supervisor (and a consultant who also supervises): every
answer is an ack with a documented code, never a crash, and the store stays consistent."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.fixtures.chat import connect_client
from tests.fixtures.reliability import LiveServer
from tests.test_fuzz_events import FUZZ_SETTINGS, STAFF_CODES, call, check_ack, consistent, json_values, texts

EVENTS = ["supervision", "monitor", "unmonitor", "whisper", "take_over", "notes", "accept", "send", "my_chats"]
KEYS = ["chat_id", "purpose", "text", "client_msg_id"]
values = st.one_of(json_values, texts, st.integers(min_value=-2, max_value=60))
payloads = st.one_of(st.dictionaries(st.sampled_from(KEYS), values, max_size=4), json_values)
calls = st.tuples(
    st.one_of(st.sampled_from(EVENTS), st.text(max_size=12)),
    st.one_of(st.tuples(payloads), st.just(()), st.tuples(payloads, payloads)),
)


_made = itertools.count()


@pytest.fixture
def tokens(live_server: LiveServer) -> dict[str, str]:
    """Fresh accounts per test (function scope: made after conftest switched the second factor off)."""
    from store.models import Actor

    n = next(_made)

    async def make() -> dict[str, str]:
        out = {}
        for name, roles in (
            ("fuzzboss", ["cim_manager"]),
            ("fuzzboth", ["boi_director", "consultant"]),
            ("fuzzcons", ["consultant"]),
        ):
            login = f"{name}{n}"
            await live_server.store.accounts.add_staff(
                Actor.system("fuzz"), login, roles, "random supervision passphrase 7"
            )
            out[name] = (await live_server.store.accounts.login(login, "random supervision passphrase 7")).token
        return out

    return live_server.run(make())


@pytest.mark.ordinance("§3")
@pytest.mark.parametrize("who", ["fuzzboss", "fuzzboth"])
def test_fuzz_supervision_events(live_server: LiveServer, tokens: dict[str, str], who: str) -> None:
    counter = itertools.count()

    @FUZZ_SETTINGS
    @given(st.lists(calls, min_size=1, max_size=4), st.booleans())
    def example(sequence: list[tuple[str, tuple]], with_chat: bool) -> None:
        async def run() -> None:
            resident = consultant = None
            staff = await connect_client(live_server.url, "/staff", {"token": tokens[who]})
            try:
                if with_chat:  # a chat a consultant answers, watched, so ids and whispers sometimes hit
                    consultant = await connect_client(live_server.url, "/staff", {"token": tokens["fuzzcons"]})
                    resident = await connect_client(live_server.url, "/resident", {"lang": "pl"})
                    notice = await resident.wait_for("notice")
                    opened = await resident.call("accept_notice", {"notice_id": notice["notice_id"]})
                    check_ack(await consultant.call("accept", {"chat_id": opened["chat_id"]}), STAFF_CODES, "accept")
                    check_ack(
                        await staff.call("monitor", {"chat_id": opened["chat_id"], "purpose": "fuzz check"}),
                        STAFF_CODES,
                        "monitor",
                    )
                for event, args in sequence:
                    check_ack(await call(staff, event, args), STAFF_CODES, (event, args))
                check_ack(await staff.call("supervision", {}), STAFF_CODES, "after")
                if with_chat:
                    check_ack(
                        await staff.call(
                            "whisper",
                            {"chat_id": opened["chat_id"], "text": "ok?", "client_msg_id": f"f{next(counter)}"},
                        ),
                        STAFF_CODES,
                        "w",
                    )
            finally:
                for client in (staff, consultant, resident):
                    if client is not None:
                        await client.disconnect()

        live_server.run(run())

    example()
    live_server.run(consistent(live_server))
