"""The live PBX state: AMI events (Asterisk 16-22 formats) into TrafficState, and the panoramisk link
against a loopback AMI server — rebuild on reconnect, refused login, half-sent and unknown events, a flood."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone
from pathlib import Path

import pytest

from store.clock import ManualClock
from store.errors import ConfigError
from store.traffic import TrafficState, mask_number
from tests.fixtures.ami import AmiReplayServer, _headers, read_transcript
from webchat.ami import AmiLink, parse_ami_url

B = 1772442000
AT_60 = datetime.fromtimestamp(B + 60, timezone.utc)

EXPECTED_QUEUES = [
    {
        "queue": "cim",
        "callers": [{"uniqueid": f"{B + 10}.2", "position": 1, "number": "512345678", "wait_s": 50, "ringing": None}],
        "members": [
            {
                "interface": "Local/201@from-queue/n",
                "name": "Jan Nowak",
                "extension": "201",
                "consultant": None,
                "state": "paused",
                "reason": "Przerwa",
            },
            {
                "interface": "Local/202@from-queue/n",
                "name": "Ewa Lis",
                "extension": "202",
                "consultant": "ewa",
                "state": "on_call",
                "reason": None,
            },
        ],
    }
]
EXPECTED_CALLS = [
    {
        "linkedid": f"{B}.1",
        "direction": "incoming",
        "number": "601234567",
        "extensions": ["202"],
        "queue": "cim",
        "since": "2026-03-02T09:00:00.000000Z",
        "duration_s": 60,
        "legs": 2,
        "transfers": 0,
    }
]
EXPECTED_TODAY = {"day": "2026-03-02", "offered": 3, "answered": 1, "abandoned": 1, "abandoned_short": 1}


def replay(state: TrafficState, name: str) -> None:
    for block in read_transcript(name):
        state.apply(_headers(block), AT_60)


# -- configuration ------------------------------------------------------------------------------------


def test_the_ami_url_and_its_secret_file(tmp_path: Path) -> None:
    address = parse_ami_url("ami://cim:p%40ss@pbx.local:5039")
    assert (address.host, address.port, address.username, address.secret) == ("pbx.local", 5039, "cim", "p@ss")
    assert "p@ss" not in repr(address)
    secret = tmp_path / "ami.secret"
    secret.write_text("from-file\n")
    assert parse_ami_url("ami://cim@pbx.local", str(secret)).secret == "from-file"
    assert parse_ami_url("ami://cim@pbx.local", str(secret)).port == 5038
    for bad in ("http://cim:x@pbx:5038", "ami://pbx:5038", "ami://cim:x@pbx:port", "ami://cim@pbx"):
        with pytest.raises(ConfigError):
            parse_ami_url(bad)
    with pytest.raises(ConfigError, match="cannot read"):
        parse_ami_url("ami://cim@pbx", str(tmp_path / "missing"))


# -- the state model --------------------------------------------------------------------------------


def test_a_morning_of_events_gives_queues_members_calls_and_counters() -> None:
    state = TrafficState()
    replay(state, "ami_morning.txt")
    snap = state.snapshot(AT_60, masked=False, names={"202": "ewa"})
    assert snap == {"queues": EXPECTED_QUEUES, "calls": EXPECTED_CALLS, "today": EXPECTED_TODAY}
    assert state.events_ignored == 2  # VarSet and RTCPSent: not read, not an error


def test_numbers_are_cut_to_their_last_three_digits_for_staff_without_archive_access() -> None:
    state = TrafficState()
    replay(state, "ami_morning.txt")
    snap = state.snapshot(AT_60, masked=True)
    assert snap["queues"][0]["callers"][0]["number"] == "•••678"
    assert snap["calls"][0]["number"] == "•••567" and snap["calls"][0]["extensions"] == ["202"]
    assert mask_number("anonymous") == "•••" and mask_number("") == "" and mask_number("201", internal=True) == "201"
    assert "512345678" not in repr(snap) and "601234567" not in repr(snap)


def test_rebuilding_from_queue_status_and_core_show_channels_gives_the_same_state() -> None:
    before = TrafficState()
    replay(before, "ami_morning.txt")
    status = [_headers(b) for b in read_transcript("ami_status_after_morning.txt")]
    channels = [_headers(b) for b in read_transcript("ami_channels_after_morning.txt")]
    after = before.rebuild(status, channels, AT_60)
    assert after.snapshot(AT_60, masked=False) == before.snapshot(AT_60, masked=False)


def test_a_transfer_is_counted_on_its_call_and_kept_across_a_rebuild() -> None:
    state = TrafficState()
    replay(state, "ami_morning.txt")
    transfer = {
        "Event": "BlindTransfer",
        "Result": "Success",
        "TransfererLinkedid": f"{B}.1",
        "TransfereeLinkedid": f"{B}.1",
        "TransfererUniqueid": f"{B + 12}.3",
        "TransfereeUniqueid": f"{B}.1",
        "IsExternal": "No",
        "Context": "from-internal",
        "Extension": "230",
    }
    state.apply({**transfer, "Result": "Fail"}, AT_60)
    state.apply(transfer, AT_60)
    assert state.snapshot(AT_60, masked=False)["calls"][0]["transfers"] == 1
    status = [_headers(b) for b in read_transcript("ami_status_after_morning.txt")]
    channels = [_headers(b) for b in read_transcript("ami_channels_after_morning.txt")]
    assert state.rebuild(status, channels, AT_60).snapshot(AT_60, masked=False)["calls"][0]["transfers"] == 1
    for uid in (f"{B}.1", f"{B + 12}.3"):
        state.apply({"Event": "Hangup", "Uniqueid": uid, "Linkedid": f"{B}.1"}, AT_60)
    assert state.transfers == {} and state.snapshot(AT_60, masked=False)["calls"] == []


def test_a_new_office_day_starts_the_counters_again() -> None:
    state = TrafficState()
    replay(state, "ami_morning.txt")
    next_day = B + 86400
    state.apply(
        {
            "Event": "QueueCallerJoin",
            "Timestamp": f"{next_day}.0",
            "Queue": "cim",
            "Uniqueid": "x.1",
            "Channel": "PJSIP/trunk-9",
            "CallerIDNum": "601000000",
            "Position": "2",
        },
        AT_60,
    )
    assert state.counters.as_json() == {
        "day": "2026-03-03",
        "offered": 1,
        "answered": 0,
        "abandoned": 0,
        "abandoned_short": 0,
    }


# -- the link to a (loopback) PBX -------------------------------------------------------------------


async def _until(predicate, what: str, limit: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + limit
    while not predicate():
        if loop.time() > end:
            raise AssertionError(f"not reached: {what}")
        await asyncio.sleep(0.01)


def link_to(server: AmiReplayServer, clock: ManualClock, **kw) -> AmiLink:
    return AmiLink(parse_ami_url(server.url), TrafficState(), clock=clock, backoff=(0.02, 0.1), **kw)


async def test_after_a_reconnect_the_rebuilt_state_equals_the_state_before(ami_server: AmiReplayServer) -> None:
    clock = ManualClock(AT_60)
    changes: list[int] = []
    link = link_to(ami_server, clock, on_change=lambda: changes.append(1))
    link.start()
    try:
        await _until(lambda: link.connected, "the first connection")
        assert [a["Action"] for a in ami_server.actions[:3]] == ["Login", "QueueStatus", "CoreShowChannels"]
        assert ami_server.actions[0]["Events"] == "call,agent"
        morning = read_transcript("ami_morning.txt")
        await ami_server.send(morning)
        await _until(lambda: link.state.events_applied == len(morning) - 2, "the morning")  # all but VarSet, RTCPSent
        before = link.state.snapshot(clock(), masked=False)
        assert before["queues"][0]["callers"][0]["wait_s"] == 50 and before["today"] == EXPECTED_TODAY
        ami_server.status_events = read_transcript("ami_status_after_morning.txt")
        ami_server.channel_events = read_transcript("ami_channels_after_morning.txt")
        ami_server.drop()
        await _until(lambda: not link.connected, "the loss noticed")
        assert link.status()["connected"] is False and link.status()["down_since"] is not None
        await _until(lambda: link.connects == 2, "the reconnect")
        assert link.state.events_applied == 0  # a fresh state, from the lists alone
        assert link.state.snapshot(clock(), masked=False) == before
        assert link.status() == {"connected": True, "down_since": None, "error": None}
    finally:
        await link.stop()


async def test_a_refused_login_is_reported_and_retried_until_it_works(ami_server: AmiReplayServer) -> None:
    clock = ManualClock(AT_60)
    link = AmiLink(
        parse_ami_url(ami_server.url.replace("s3cret", "wrong")), TrafficState(), clock=clock, backoff=(0.02, 0.1)
    )
    link.start()
    try:
        await _until(lambda: sum(1 for a in ami_server.actions if a.get("Action") == "Login") >= 2, "two attempts")
        assert not link.connected and "refused the AMI login of 'cim'" in link.last_error
        assert "Authentication failed" in link.last_error and link.status()["down_since"] == AT_60.isoformat()
        ami_server.secret = "wrong"  # the PBX's manager.conf now says what CIM says
        await _until(lambda: link.connected, "the connection after the fix")
    finally:
        await link.stop()


async def test_a_pbx_that_is_not_there_is_retried_and_shown_down() -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: nothing listens there
    clock = ManualClock(AT_60)
    link = AmiLink(parse_ami_url(f"ami://cim:x@127.0.0.1:{port}"), TrafficState(), clock=clock, backoff=(0.02, 0.05))
    link.start()
    try:
        await _until(lambda: link.last_error and "cannot reach the PBX" in link.last_error, "the error")
        assert not link.connected and link.down_since == AT_60
    finally:
        await link.stop()


async def test_half_sent_and_unknown_events_do_not_disturb_the_state(ami_server: AmiReplayServer) -> None:
    clock = ManualClock(AT_60)
    link = link_to(ami_server, clock)
    link.start()
    try:
        await _until(lambda: link.connected, "connected")
        join = read_transcript("ami_morning.txt")[4]  # QueueCallerJoin of the first caller
        assert join.startswith("Event: QueueCallerJoin")
        await ami_server.send_raw(join[:50].encode())
        await asyncio.sleep(0.05)
        assert link.state.events_applied == 0  # half an event waits for its end
        await ami_server.send_raw(join[50:].encode())
        await ami_server.send("Event: SomethingFromAsterisk23\r\nFoo: bar\r\n\r\nnot a header at all\r\n\r\n")
        await _until(lambda: link.state.events_applied == 1, "the joined event")
        assert link.state.counters.offered == 1
        await _until(lambda: link.state.events_ignored == 2, "the unknown event ignored")  # and FullyBooted
        # half an event, then the PBX goes away: nothing of it is applied, and the link comes back
        await ami_server.send_raw(join[:70].encode())
        ami_server.drop()
        await _until(lambda: link.connects == 2, "the reconnect")
        assert link.state.counters.offered == 1 and link.state.queues == {}
    finally:
        await link.stop()


async def test_a_flood_of_events_is_applied_without_growing_anything(ami_server: AmiReplayServer) -> None:
    clock = ManualClock(AT_60)
    changes = []
    link = link_to(ami_server, clock, on_change=lambda: changes.append(1))
    link.start()
    try:
        await _until(lambda: link.connected, "connected")
        member = read_transcript("ami_morning.txt")[0]
        n = 10_000
        await ami_server.send([member.replace("Status: 1", f"Status: {1 + i % 2}") for i in range(n)])
        await _until(lambda: link.state.events_applied == n, "the flood", limit=60)
        assert len(link.state.members) == 1 and link.state.members[("cim", "Local/201@from-queue/n")].status == 2
        assert len(link.state.channels) == 0
    finally:
        await link.stop()


async def test_queue_pause_is_sent_to_the_pbx(ami_server: AmiReplayServer) -> None:
    link = link_to(ami_server, ManualClock(AT_60))
    link.start()
    try:
        await _until(lambda: link.connected, "connected")
        answer = await link.queue_pause("Local/201@from-queue/n", True, queue="cim", reason="Przerwa")
        assert "paused" in answer
        pause = [a for a in ami_server.actions if a.get("Action") == "QueuePause"][-1]
        assert (pause["Interface"], pause["Paused"], pause["Queue"], pause["Reason"]) == (
            "Local/201@from-queue/n",
            "true",
            "cim",
            "Przerwa",
        )
    finally:
        await link.stop()
