"""Property-based fuzzing of every /resident and /staff event with arbitrary JSON: documented answers, a consistent store.

One real server (create_app on a loopback port) serves every example from a background loop; the
examples drive python-socketio clients on that loop. `CIM_FUZZ_PROFILE=cim-stress` (or CIM_STRESS=1)
runs many more examples.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fixtures.chat import ConnectionRefused, connect_client
from tests.fixtures.reliability import FUZZ, LiveServer
from webchat import protocol

#: docs/PROTOCOL.md (webchat/protocol.py): the codes an acknowledgement may carry on each namespace, never
#: server_error for bad input (that would be a crash).
RESIDENT_CODES = protocol.RESIDENT_CODES - {protocol.SERVER_ERROR}
STAFF_CODES = protocol.STAFF_CODES - {protocol.SERVER_ERROR}
#: Refusals at connect.
CONNECT_CODES = (protocol.RESIDENT_CONNECT_CODES | protocol.STAFF_CONNECT_CODES) - {protocol.SERVER_ERROR}

RESIDENT_EVENTS = ["accept_notice", "decline_notice", "send", "typing", "end"]
STAFF_EVENTS = [
    "accept",
    "send",
    "typing",
    "transfer",
    "close",
    "my_chats",
    "canned",
    "close_categories",
    "activity",
    "history",
]
KEYS = ["text", "client_msg_id", "notice_id", "active", "chat_id", "category", "to_staff_id", "lang", "resume", "token"]

texts = st.one_of(
    st.text(max_size=50),
    st.text(min_size=1900, max_size=2100),
    st.sampled_from(
        [
            "",
            " ",
            "\x00",
            "\u202e",
            "[b]x[/b]",
            "<script>alert(1)</script>",
            "'; DROP TABLE messages; --",
            "🙂" * 10,
            "a" * 5000,
            "other",
            "information_given",
        ]
    ),
)
numbers = st.one_of(
    st.integers(),
    st.integers(min_value=-3, max_value=50),
    st.floats(allow_nan=True),
    st.just(2**63),
    st.just(-(2**63) - 1),
    st.booleans(),
)
scalars = st.one_of(st.none(), numbers, texts)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=10)), inner, max_size=4),
    ),
    max_leaves=12,
)
payloads = st.one_of(
    st.dictionaries(st.sampled_from(KEYS), json_values, max_size=5),
    json_values,
)
#: (event, args): usually one payload, sometimes none or several; sometimes an event nobody defined.
calls = st.tuples(
    st.one_of(st.sampled_from(RESIDENT_EVENTS + STAFF_EVENTS), st.text(max_size=20)),
    st.one_of(st.tuples(payloads), st.just(()), st.tuples(payloads, payloads)),
)

FUZZ_SETTINGS = settings(FUZZ, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def check_ack(ack: Any, codes: set[str], what: Any) -> None:
    assert isinstance(ack, dict), (what, ack)
    if ack.get("ok") is True:
        return
    assert ack.get("ok") is False, (what, ack)
    error = ack["error"]
    assert error["code"] in codes, (what, ack)  # never server_error for bad input: that would be a crash
    assert isinstance(error["message"], str) and "Traceback" not in error["message"]


async def call(client, event: str, args: tuple) -> Any:
    data = args[0] if len(args) == 1 else (tuple(args) if args else None)
    if data is None and not args:
        return await client.client.call(event, namespace=client.namespace, timeout=15)
    return await client.client.call(event, data, namespace=client.namespace, timeout=15)


async def consistent(live: LiveServer) -> None:
    """The store after fuzzing: seq gapless per chat, next_seq right after it, the audit chain intact."""
    db = live.store.db
    gaps = await db.fetchall(
        "SELECT conversation_id, count(*) AS n, min(seq) AS lo, max(seq) AS hi FROM messages "
        "GROUP BY conversation_id HAVING lo != 1 OR hi != n"
    )
    assert gaps == [], [dict(r) for r in gaps]
    behind = await db.fetchall(
        "SELECT c.id FROM conversations c WHERE c.channel = 'chat' AND "
        "c.next_seq != (SELECT coalesce(max(seq), 0) + 1 FROM messages m WHERE m.conversation_id = c.id)"
    )
    assert behind == [], [dict(r) for r in behind]
    assert (await live.store.audit.verify()).ok
    health = await db.fetchone("SELECT count(*) AS n FROM conversations")
    assert health["n"] >= 0


@pytest.fixture(scope="module")
def staff_token(live_server: LiveServer) -> str:
    from store.models import Actor

    async def make() -> str:
        await live_server.store.accounts.add_staff(
            Actor.system("fuzz"), "fuzz", ["consultant"], "random events passphrase 1"
        )
        await live_server.store.accounts.add_staff(
            Actor.system("fuzz"), "fuzz2", ["consultant"], "random events passphrase 2"
        )
        return (await live_server.store.accounts.login("fuzz", "random events passphrase 1")).token

    return live_server.run(make())


@pytest.mark.ordinance("GDPR 32")
def test_fuzz_resident_events(live_server: LiveServer) -> None:
    counter = itertools.count()

    @FUZZ_SETTINGS
    @given(st.lists(calls, min_size=1, max_size=4), st.booleans(), st.sampled_from(["pl", "en", "xx", None]))
    def example(sequence: list[tuple[str, tuple]], accept_first: bool, lang: Any) -> None:
        async def run() -> None:
            client = await connect_client(live_server.url, "/resident", {"lang": lang})
            try:
                if accept_first:
                    notice = await client.wait_for("notice")
                    assert (await client.call("accept_notice", {"notice_id": notice["notice_id"]}))["ok"]
                for event, args in sequence:
                    check_ack(await call(client, event, args), RESIDENT_CODES, (event, args))
                # the connection is still good for an ordinary message afterwards
                check_ack(
                    await client.call("send", {"text": "ok?", "client_msg_id": f"z{next(counter)}"}),
                    RESIDENT_CODES,
                    "after",
                )
            finally:
                await client.disconnect()

        live_server.run(run())

    example()
    live_server.run(consistent(live_server))


@pytest.mark.ordinance("GDPR 32")
def test_fuzz_staff_events(live_server: LiveServer, staff_token: str) -> None:
    @FUZZ_SETTINGS
    @given(st.lists(calls, min_size=1, max_size=4), st.booleans())
    def example(sequence: list[tuple[str, tuple]], with_chat: bool) -> None:
        async def run() -> None:
            resident = None
            staff = await connect_client(live_server.url, "/staff", {"token": staff_token})
            try:
                if with_chat:  # a real chat in the queue, so chat ids sometimes hit something
                    resident = await connect_client(live_server.url, "/resident", {"lang": "pl"})
                    notice = await resident.wait_for("notice")
                    opened = await resident.call("accept_notice", {"notice_id": notice["notice_id"]})
                    check_ack(await staff.call("accept", {"chat_id": opened["chat_id"]}), STAFF_CODES, "accept")
                for event, args in sequence:
                    check_ack(await call(staff, event, args), STAFF_CODES, (event, args))
                check_ack(await staff.call("my_chats", {}), STAFF_CODES, "after")
            finally:
                await staff.disconnect()
                if resident is not None:
                    await resident.disconnect()

        live_server.run(run())

    example()
    live_server.run(consistent(live_server))


#: What a Socket.IO client can send as auth: an object or nothing. (A bare number is not a valid CONNECT
#: packet: python-socketio's decoder drops it unanswered; test_fuzz_raw_packets covers such frames.)
auths = st.one_of(
    st.none(), st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=10)), json_values, max_size=5)
)


def test_fuzz_connect_auth(live_server: LiveServer) -> None:
    @FUZZ_SETTINGS
    @given(st.sampled_from(["/resident", "/staff"]), auths)
    def example(namespace: str, auth: Any) -> None:
        async def run() -> None:
            try:
                client = await connect_client(live_server.url, namespace, auth)
            except ConnectionRefused as refused:
                assert refused.code in CONNECT_CODES, (namespace, auth, refused.data)
                return
            try:
                assert namespace == "/resident", "only a consultant's token opens /staff"
                greeting = await client.wait_for("notice")
                assert greeting["lang"] in ("pl", "en")
            finally:
                await client.disconnect()

        live_server.run(run())

    example()
    live_server.run(consistent(live_server))


def test_fuzz_raw_packets(live_server: LiveServer) -> None:
    """Arbitrary Engine.IO/Socket.IO frames on a raw WebSocket: the server drops what it cannot parse and stays up."""
    import aiohttp

    frames = st.one_of(
        st.text(max_size=200),
        st.builds(
            lambda kind, ns, body: f"{kind}{ns}{body}",
            st.sampled_from(["4", "40", "41", "42", "43", "44", "45", "46", "2", "3", "5", "6", "1"]),
            st.sampled_from(["", "/resident,", "/staff,", "/x,"]),
            st.text(max_size=100),
        ),
    )

    @FUZZ_SETTINGS
    @given(st.lists(frames, min_size=1, max_size=5))
    def example(sequence: list[str]) -> None:
        async def run() -> None:
            async with aiohttp.ClientSession() as http:
                async with http.ws_connect(f"{live_server.url}/socket.io/?EIO=4&transport=websocket") as ws:
                    await ws.receive_str()
                    for frame in sequence:
                        if ws.closed:
                            break
                        await ws.send_str(frame)
            async with aiohttp.ClientSession() as http:
                async with http.get(live_server.url + "/healthz") as response:
                    assert response.status == 200

        live_server.run(run())

    example()
    live_server.run(consistent(live_server))


def test_the_server_is_healthy_after_the_fuzzing(live_server: LiveServer) -> None:
    async def probe() -> None:
        import aiohttp

        async with aiohttp.ClientSession() as http:
            async with http.get(live_server.url + "/healthz") as response:
                assert response.status == 200 and await response.text() == "ok"
        client = await connect_client(live_server.url, "/resident", {"lang": "pl"})
        try:
            notice = await client.wait_for("notice")
            opened = await client.call("accept_notice", {"notice_id": notice["notice_id"]})
            assert (await client.call("send", {"text": "czy działa?", "client_msg_id": "h"}))["ok"]
            assert opened["ok"]
        finally:
            await client.disconnect()

    live_server.run(probe())
