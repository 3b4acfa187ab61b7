"""The archive service: refusals first, then number/date/direction/channel/consultant search, paging, audited opening."""

from __future__ import annotations

import json
from datetime import date

import pytest

from store.archive import SearchFilters
from store.errors import InvalidInput, NotFound, NotPermitted
from store.models import Actor, AuditEntry
from tests.fixtures.audit_log import audit_log
from tests.fixtures.calls import FakePbx, asterisk_row, write_pcm_wav

SYSTEM = Actor.system("tests")


@pytest.fixture
async def archive_data(store, pbx: FakePbx, make_staff):
    """Four calls (incoming, outgoing, withheld, another day) with recordings and one closed chat."""
    anna = await make_staff("anna", "consultant", department="OC", extensions=("201",))
    pbx.add_rows(
        [
            asterisk_row(
                "1772442000.1",
                src="601234567",
                start="2026-03-02 10:00:00",
                answer="2026-03-02 10:00:05",
                end="2026-03-02 10:02:05",
            ),
            asterisk_row(
                "1772442000.2",
                src="201",
                dst="512345678",
                channel="PJSIP/201-1",
                dstchannel="PJSIP/trunk-2",
                start="2026-03-02 11:00:00",
                answer="2026-03-02 11:00:05",
                end="2026-03-02 11:02:05",
            ),
            asterisk_row(
                "1772442000.3",
                src="anonymous",
                start="2026-03-02 12:00:00",
                answer="2026-03-02 12:00:05",
                end="2026-03-02 12:02:05",
            ),
            asterisk_row(
                "1772442000.4",
                src="+48 601 234 567",
                start="2026-03-05 09:00:00",
                answer="2026-03-05 09:00:05",
                end="2026-03-05 09:02:05",
            ),
        ]
    )
    for uid in ("1772442000.1", "1772442000.2", "1772442000.4"):
        write_pcm_wav(pbx.monitor / f"{uid}.wav", 0.5)
    await store.calls.ingest(SYSTEM, store.calls.source("asterisk", pbx.cdr, pbx.monitor))
    notice = await store.notices.current("chat", "pl")
    opened = await store.chats.open(notice.id, "pl")
    await store.chats.post_resident(opened.chat.id, "[bold]Dzień dobry[/bold] <script>alert(1)</script>")
    await store.chats.accept(anna.as_actor(), opened.chat.id)
    await store.chats.post_consultant(anna.as_actor(), opened.chat.id, "Dzień dobry, w czym mogę pomóc?")
    await store.chats.close(anna.as_actor(), opened.chat.id, "information_given")
    ids = {
        r["pbx_uniqueid"]: r["id"]
        for r in await store.db.fetchall("SELECT id, pbx_uniqueid FROM conversations WHERE channel = 'call'")
    }
    return {"anna": anna, "calls": ids, "chat": opened.chat.id}


async def audit_rows(store, action: str) -> list[AuditEntry]:
    return await audit_log(store, action=action)


# -- refusals -----------------------------------------------------------------------------------


@pytest.mark.ordinance("§5")
async def test_consultant_may_not_search_or_open_and_the_attempts_are_audited(store, archive_data, make_staff) -> None:
    consultant = archive_data["anna"].as_actor()
    call_id = archive_data["calls"]["1772442000.1"]
    with pytest.raises(NotPermitted):
        await store.archive.search(consultant, SearchFilters(number="601234567"))
    with pytest.raises(NotPermitted):
        await store.archive.open_recording(consultant, call_id, "W/2026/0001")
    with pytest.raises(NotPermitted):
        await store.archive.open_transcript(consultant, archive_data["chat"], "W/2026/0001")
    refused = [{"action": r.action, "outcome": r.outcome} for r in await audit_log(store, outcome="refused")]
    assert refused == [
        {"action": "archive.search", "outcome": "refused"},
        {"action": "archive.open_recording", "outcome": "refused"},
        {"action": "archive.open_transcript", "outcome": "refused"},
    ]
    director = (await make_staff("dyr", "boi_director")).as_actor()  # decides requests, does not open content (§5)
    with pytest.raises(NotPermitted):
        await store.archive.open_recording(director, call_id, "W/2026/0001")


@pytest.mark.ordinance("§5")
async def test_opening_content_requires_a_purpose(store, archive_data, make_staff) -> None:
    designated = (await make_staff("maria", "designated")).as_actor()
    for purpose in ("", "  ", "ab", "x" * 501):
        with pytest.raises(InvalidInput):
            await store.archive.open_recording(designated, archive_data["calls"]["1772442000.1"], purpose)
    assert await audit_rows(store, "archive.open_recording") == []


async def test_hostile_search_input_is_refused_clearly(store, archive_data, make_staff) -> None:
    designated = (await make_staff("maria", "designated")).as_actor()
    with pytest.raises(InvalidInput, match="3 digits"):
        await store.archive.search(designated, SearchFilters(number="60"))
    with pytest.raises(InvalidInput, match="direction"):
        await store.archive.search(designated, SearchFilters(direction="sideways"))
    with pytest.raises(InvalidInput, match="ends before"):
        await store.archive.search(designated, SearchFilters(date_from=date(2026, 3, 5), date_to=date(2026, 3, 1)))
    with pytest.raises(InvalidInput, match="cursor"):
        await store.archive.search(designated, SearchFilters(), after="x' OR 1=1 --")
    with pytest.raises(NotFound):
        await store.archive.search(designated, SearchFilters(consultant="nobody"))
    page = await store.archive.search(designated, SearchFilters(number="'; DROP TABLE conversations; --"))
    assert page.items == ()
    with pytest.raises(InvalidInput, match="no transcript"):
        await store.archive.open_transcript(designated, archive_data["calls"]["1772442000.1"], "reason given")


# -- search -------------------------------------------------------------------------------------


async def test_search_by_full_and_partial_number(store, archive_data, make_staff) -> None:
    designated = (await make_staff("maria", "designated")).as_actor()
    calls = archive_data["calls"]

    async def ids(**kwargs) -> list[int]:
        return [i.id for i in (await store.archive.search(designated, SearchFilters(**kwargs))).items]

    both = [calls["1772442000.4"], calls["1772442000.1"]]  # newest first
    assert await ids(number="601234567") == both
    assert await ids(number="+48 601-234-567") == both
    assert await ids(number="0048601234567") == both
    assert await ids(number="4567") == both  # ends with
    assert await ids(number="601 23") == both  # starts with (national form)
    assert await ids(number="512") == [calls["1772442000.2"]]
    assert await ids(number="999") == []
    assert await ids(number="anonymous") == [calls["1772442000.3"]]


async def test_search_by_date_direction_channel_consultant_department(store, archive_data, make_staff) -> None:
    designated = (await make_staff("maria", "designated")).as_actor()
    calls = archive_data["calls"]

    async def ids(**kwargs) -> set[int]:
        return {i.id for i in (await store.archive.search(designated, SearchFilters(**kwargs))).items}

    assert await ids(date_from=date(2026, 3, 5), date_to=date(2026, 3, 5)) == {calls["1772442000.4"]}
    assert await ids(direction="outgoing") == {calls["1772442000.2"]}
    assert await ids(channel="chat") == {archive_data["chat"]}
    assert len(await ids(channel="call")) == 4
    assert await ids(consultant="anna", channel="call") == set(calls.values())
    assert archive_data["chat"] in await ids(consultant="anna")
    assert await ids(department="OC", channel="call") == set(calls.values())


async def test_keyset_paging_visits_every_row_once(store, archive_data, make_staff) -> None:
    designated = (await make_staff("maria", "designated")).as_actor()
    seen, cursor, pages = [], None, 0
    while True:
        page = await store.archive.search(designated, SearchFilters(), after=cursor, page_size=2)
        seen += [i.id for i in page.items]
        pages += 1
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert pages == 3 and len(seen) == 5 and len(set(seen)) == 5
    created = [i.created_at for i in (await store.archive.search(designated, SearchFilters(), page_size=10)).items]
    assert created == sorted(created, reverse=True)


@pytest.mark.ordinance("§3")
async def test_search_is_audited_without_the_number_searched_for(store, archive_data, make_staff) -> None:
    designated = (await make_staff("maria", "designated")).as_actor()
    await store.archive.search(designated, SearchFilters(number="601234567", direction="incoming"))
    (entry,) = await audit_rows(store, "archive.search")
    assert entry.actor_name == "maria" and entry.outcome == "ok"
    details = entry.details
    assert details["filters"] == {"number": "full", "direction": "incoming"} and details["results"] == 2
    assert "601234567" not in json.dumps(entry.details, ensure_ascii=False)


# -- opening ------------------------------------------------------------------------------------


@pytest.mark.ordinance("§5")
async def test_open_recording_with_purpose_is_audited(store, archive_data, make_staff) -> None:
    manager = (await make_staff("kier", "cim_manager")).as_actor()
    call_id = archive_data["calls"]["1772442000.1"]
    opened = await store.archive.open_recording(manager, call_id, "complaint about a consultant")
    assert opened.path.is_file() and store.settings.recordings_dir.resolve() in opened.path.parents
    assert opened.recording.format == "wav-pcm"
    (entry,) = await audit_rows(store, "archive.open_recording")
    assert (entry.actor_name, entry.purpose, entry.target_id) == (
        "kier",
        "complaint about a consultant",
        str(call_id),
    )
    with pytest.raises(NotFound):
        await store.archive.open_recording(manager, archive_data["calls"]["1772442000.3"], "no recording here")
    with pytest.raises(NotFound):
        await store.archive.open_recording(manager, 999999, "no such call")


@pytest.mark.ordinance("§5")
async def test_open_transcript_returns_resident_text_verbatim_and_audits(store, archive_data, make_staff) -> None:
    admin = (await make_staff("it", "it_admin")).as_actor()
    transcript = await store.archive.open_transcript(admin, archive_data["chat"], "incident INC-42")
    texts = [line.text for line in transcript.lines if line.sender == "resident"]
    assert texts == ["[bold]Dzień dobry[/bold] <script>alert(1)</script>"]
    (entry,) = await audit_rows(store, "archive.open_transcript")
    assert entry.purpose == "incident INC-42" and "Dzień" not in json.dumps(entry.details, ensure_ascii=False)


async def test_integrity_check_detects_a_changed_or_missing_file(store, archive_data, make_staff) -> None:
    designated = (await make_staff("maria", "designated")).as_actor()
    call_id = archive_data["calls"]["1772442000.1"]
    assert (await store.archive.check_integrity(designated, call_id)).ok
    opened = await store.archive.open_recording(designated, call_id, "integrity test")
    data = bytearray(opened.path.read_bytes())
    data[100] ^= 0xFF
    opened.path.write_bytes(bytes(data))
    tampered = await store.archive.check_integrity(designated, call_id)
    assert not tampered.ok and "checksum" in tampered.problem
    opened.path.unlink()
    missing = await store.archive.check_integrity(designated, call_id)
    assert not missing.ok and "missing" in missing.problem
    outcomes = [r.outcome for r in await audit_rows(store, "archive.integrity_check")]
    assert outcomes == ["ok", "failed", "failed"]
    with pytest.raises(NotFound, match="missing"):
        await store.archive.open_recording(designated, call_id, "after deletion")


async def test_details_and_levels(store, archive_data, make_staff) -> None:
    designated = (await make_staff("maria", "designated")).as_actor()
    call_id = archive_data["calls"]["1772442000.1"]
    detail = await store.archive.details(designated, call_id)
    assert detail.summary.resident_number == "+48601234567" and len(detail.recordings) == 1
    assert detail.extension == "201" and detail.pbx_uniqueid == "1772442000.1"
    levels = await store.archive.recording_levels(designated, call_id, buckets=20)
    assert len(levels) == 20 and max(levels) > 0.2
    chat = await store.archive.details(designated, archive_data["chat"])
    assert chat.summary.channel == "chat" and chat.message_count >= 2
    assert [r.action for r in await audit_log(store) if r.actor_name == "maria"] == [
        "archive.view",
        "archive.levels",
        "archive.view",
    ]
