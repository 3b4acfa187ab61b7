"""Real PBX call scenarios (Asterisk 12+ CDRs as cdr_csv writes them, FreePBX exports): one call per call, its legs,
who answered, direction, DST, and a re-run that imports nothing new."""

from __future__ import annotations

import pytest

from store.models import Actor
from tests.fixtures.calls import FakePbx, freepbx_csv
from tests.fixtures.pbx_scenarios import (
    CALLER,
    CSV_18,
    CSV_21,
    abandon,
    asterisk_sound,
    attended_transfer,
    blind_transfer,
    busy,
    fork_cdr,
    freepbx_queue_call,
    leg,
    parallel_dial,
    queue_member_attempts,
    voicemail,
    withheld,
)

SYSTEM = Actor.system("tests")


async def ingest(store, pbx: FakePbx, kind: str = "asterisk", **kwargs):
    return await store.calls.ingest(SYSTEM, store.calls.source(kind, pbx.cdr, pbx.monitor, **kwargs))


async def only_call(store) -> dict:
    rows = await store.db.fetchall("SELECT * FROM conversations WHERE channel = 'call'")
    assert len(rows) == 1, [dict(r) for r in rows]
    return dict(rows[0])


async def legs_of(store, conv_id: int) -> list[dict]:
    return [
        dict(r)
        for r in await store.db.fetchall(
            "SELECT * FROM call_legs WHERE conversation_id = ? ORDER BY start_at, rowid", (conv_id,)
        )
    ]


@pytest.fixture
async def staff(make_staff):
    anna = await make_staff("anna", "consultant", department="OC", extensions=("201",))
    bob = await make_staff("bob", "consultant", department="OC", extensions=("202",))
    return {"201": anna.id, "202": bob.id}


async def assert_rerun_adds_nothing(store, pbx: FakePbx, legs: int, **kwargs) -> None:
    before = [dict(r) for r in await store.db.fetchall("SELECT * FROM conversations ORDER BY id")]
    again = await ingest(store, pbx, **kwargs)
    assert (again.imported, again.calls, again.already_present, again.rejected) == (0, 0, legs, [])
    assert [dict(r) for r in await store.db.fetchall("SELECT * FROM conversations ORDER BY id")] == before


# -- several CDRs of one call ------------------------------------------------------------------


@pytest.mark.parametrize("columns", [CSV_18, CSV_21], ids=["18-columns", "newcdrcolumns"])
async def test_queue_member_attempts_make_one_call_answered_by_the_member_who_answered(
    store, pbx, staff, columns
) -> None:
    pbx.add_rows(queue_member_attempts(linked=columns == CSV_21), columns)
    report = await ingest(store, pbx)
    assert (report.imported, report.calls, report.rejected) == (2, 1, [])
    call = await only_call(store)
    assert (call["disposition"], call["extension"], call["consultant_id"]) == ("ANSWERED", "202", staff["202"])
    assert (call["created_at"], call["ended_at"]) == ("2026-03-02T09:00:00.000000Z", "2026-03-02T09:03:00.000000Z")
    assert (call["duration_s"], call["billsec_s"]) == (180, 155)
    legs = await legs_of(store, call["id"])
    assert [(leg["dstchannel"], leg["disposition"]) for leg in legs] == [
        ("PJSIP/201-00000011", "NO ANSWER"),
        ("PJSIP/202-00000012", "ANSWERED"),
    ]  # who rang is kept as a leg
    await assert_rerun_adds_nothing(store, pbx, 2)


@pytest.mark.parametrize("linked", [False, True])
async def test_parallel_dial_is_one_call_with_the_answering_phone(store, pbx, staff, linked) -> None:
    pbx.add_rows(parallel_dial(linked=linked), CSV_21 if linked else CSV_18)
    await ingest(store, pbx)
    call = await only_call(store)
    assert (call["disposition"], call["consultant_id"], call["billsec_s"], call["duration_s"]) == (
        "ANSWERED",
        staff["202"],
        120,
        128,
    )
    assert len(await legs_of(store, call["id"])) == 2


@pytest.mark.parametrize("linked", [True, False], ids=["linkedid", "channel-chain"])
async def test_blind_transfer_names_the_last_consultant_and_keeps_the_first_as_a_leg(store, pbx, staff, linked) -> None:
    pbx.add_rows(blind_transfer(linked=linked), CSV_21 if linked else CSV_18)
    report = await ingest(store, pbx)
    assert (report.imported, report.calls, report.rejected) == (3, 1, [])
    call = await only_call(store)
    assert (call["consultant_id"], call["extension"], call["direction"]) == (staff["202"], "202", "incoming")
    assert (call["resident_number"], call["notice_played"], call["full_info_requested"]) == ("+48601234567", 1, 1)
    assert call["billsec_s"] == 55 + 176 and call["duration_s"] == 240
    legs = await legs_of(store, call["id"])
    assert {leg["dstchannel"] for leg in legs} >= {"PJSIP/201-00000031", "PJSIP/202-00000032"}
    await assert_rerun_adds_nothing(store, pbx, 3)


async def test_attended_transfer_joins_the_consultation_and_names_who_took_the_call(store, pbx, staff) -> None:
    pbx.add_rows(attended_transfer(), CSV_21)
    report = await ingest(store, pbx)
    assert (report.imported, report.calls) == (3, 1)  # the consultation (own linkedid) joins by its channel
    call = await only_call(store)
    assert (call["consultant_id"], call["direction"], call["resident_number"]) == (
        staff["202"],
        "incoming",
        "+48601234567",
    )
    assert call["billsec_s"] == 295  # 10:00:05-10:05:00, the overlapping consultation counted once


async def test_a_failed_attended_transfer_keeps_the_consultant_who_talked_with_the_caller(store, pbx, staff) -> None:
    pbx.add_rows(attended_transfer("1772442000.45", failed=True), CSV_21)
    await ingest(store, pbx)
    rows = {r["direction"]: dict(r) for r in await store.db.fetchall("SELECT * FROM conversations")}
    # nothing links the consultation to the caller's call: it stays an internal call of its own
    assert set(rows) == {"incoming", "internal"}
    assert rows["incoming"]["consultant_id"] == staff["201"] and rows["incoming"]["resident_number"] == "+48601234567"


async def test_legs_of_a_transfer_arriving_in_separate_runs_join_one_call(store, pbx, staff) -> None:
    first, transferer, second = blind_transfer(linked=False)
    pbx.add_rows([first], CSV_18)
    await ingest(store, pbx)
    assert (await only_call(store))["consultant_id"] == staff["201"]
    pbx.add_rows([transferer, second], CSV_18)
    later = await ingest(store, pbx)
    assert (later.imported, later.calls, later.already_present) == (2, 0, 1)
    assert (await only_call(store))["consultant_id"] == staff["202"]


async def test_fork_cdr_records_are_one_call(store, pbx, staff) -> None:
    pbx.add_rows(fork_cdr(), CSV_18)
    report = await ingest(store, pbx)
    assert (report.imported, report.calls, report.rejected) == (2, 1, [])
    call = await only_call(store)
    assert (call["consultant_id"], call["created_at"], call["notice_played"]) == (
        staff["201"],
        "2026-03-02T09:00:00.000000Z",
        1,
    )
    await assert_rerun_adds_nothing(store, pbx, 2)


# -- nobody answered: no consultant, the rung extensions kept as legs -------------------------


@pytest.mark.parametrize(
    "scenario,disposition,legs",
    [(voicemail, "NO ANSWER", 2), (busy, "BUSY", 1), (abandon, "NO ANSWER", 3)],
    ids=["voicemail", "busy", "abandon"],
)
async def test_unanswered_calls_name_no_consultant(store, pbx, staff, scenario, disposition, legs) -> None:
    pbx.add_rows(scenario(), CSV_18)
    await ingest(store, pbx)
    call = await only_call(store)
    assert (call["disposition"], call["consultant_id"], call["extension"], call["billsec_s"]) == (
        disposition,
        None,
        None,
        0,
    )
    assert call["direction"] == "incoming" and call["resident_number"] == "+48601234567"
    rung = [leg["dstchannel"] for leg in await legs_of(store, call["id"]) if leg["dstchannel"]]
    assert rung and all(ch.startswith(("PJSIP/201", "PJSIP/202")) for ch in rung)


@pytest.mark.ordinance("§4.7")
async def test_withheld_number_in_a_queue_call(store, pbx, staff) -> None:
    pbx.add_rows(withheld(), CSV_18)
    await ingest(store, pbx)
    call = await only_call(store)
    assert (call["resident_number"], call["number_identifiable"], call["number_rev"]) == ("anonymous", 0, None)
    assert (call["direction"], call["consultant_id"]) == ("incoming", staff["201"])


# -- FreePBX: direction from the trunk/DID side whatever the row order -------------------------


@pytest.mark.parametrize("order", ["caller-first", "member-first"])
async def test_freepbx_queue_call_with_empty_caller_id_in_either_row_order(store, pbx, staff, order) -> None:
    await store.calls.set_route(SYSTEM, "914245000", "OC")
    pbx.cdr.write_text(freepbx_csv(freepbx_queue_call(order)))
    asterisk_sound(pbx.monitor / "2026/03/02/q-800--20260302-100000-1772442000.100.wav", kind="wav")
    report = await ingest(store, pbx, "freepbx")
    assert (report.imported, report.calls, report.recordings, report.rejected) == (2, 1, 1, [])
    call = await only_call(store)
    assert call["direction"] == "incoming"  # not "internal with 202 as the caller"
    assert (call["resident_number"], call["number_identifiable"]) == (None, 0)
    assert (call["consultant_id"], call["extension"]) == (staff["202"], "202")
    dept = await store.db.fetchone("SELECT id FROM departments WHERE code = 'OC'")
    assert call["department_id"] == dept["id"] and call["pbx_uniqueid"] == "1772442000.100"
    await assert_rerun_adds_nothing(store, pbx, 2, kind="freepbx")


async def test_internal_call_to_a_routed_queue_number_stays_internal(store, pbx, staff) -> None:
    await store.calls.set_route(SYSTEM, "800", "OC")
    pbx.add_rows(
        [
            leg(
                "1772442000.110",
                src="201",
                dst="800",
                clid='"Anna" <201>',
                channel="PJSIP/201-00000110",
                dstchannel="PJSIP/202-00000111",
                start="2026-03-02 10:00:00",
                answer="2026-03-02 10:00:03",
                end="2026-03-02 10:01:00",
                duration=60,
                billsec=57,
                disposition="ANSWERED",
                dcontext="from-internal",
            )
        ],
        CSV_18,
    )
    await ingest(store, pbx)
    call = await only_call(store)
    assert (call["direction"], call["extension"]) == ("internal", "202")


# -- usegmtime=no across the DST changes -------------------------------------------------------


async def test_autumn_dst_call_is_kept_and_its_recording_matched(store, pbx) -> None:
    # 2026-10-25 03:00 CEST -> 02:00 CET: 02:50 (first, CEST) to 02:10 (second, CET) is 20 minutes
    uid = "1792889400.5"  # 2026-10-25T00:50:00Z
    pbx.add_rows(
        [
            leg(
                uid,
                channel="PJSIP/trunk-00000200",
                dstchannel="PJSIP/201-00000201",
                start="2026-10-25 02:50:00",
                answer="2026-10-25 02:50:10",
                end="2026-10-25 02:10:00",
                duration=1200,
                billsec=1190,
                disposition="ANSWERED",
            )
        ],
        CSV_18,
    )
    asterisk_sound(pbx.monitor / f"{uid}.wav", kind="wav")
    report = await ingest(store, pbx)
    assert (report.imported, report.rejected, report.recordings, report.recordings_without_call) == (1, [], 1, 0)
    call = await only_call(store)
    assert (call["created_at"], call["ended_at"], call["duration_s"]) == (
        "2026-10-25T00:50:00.000000Z",
        "2026-10-25T01:10:00.000000Z",
        1200,
    )


@pytest.mark.parametrize(
    "uid,expected",
    [("1792891200.7", "2026-10-25T01:20:00.000000Z"), ("1792887600.7", "2026-10-25T00:20:00.000000Z")],
    ids=["second-02:20", "first-02:20"],
)
async def test_a_call_inside_the_repeated_hour_takes_the_fold_of_its_uniqueid(store, pbx, uid, expected) -> None:
    pbx.add_rows(
        [
            leg(
                uid,
                channel="PJSIP/trunk-00000210",
                dstchannel="PJSIP/201-00000211",
                start="2026-10-25 02:20:00",
                answer="2026-10-25 02:20:05",
                end="2026-10-25 02:30:00",
                duration=600,
                billsec=595,
                disposition="ANSWERED",
            )
        ],
        CSV_18,
    )
    await ingest(store, pbx)
    assert (await only_call(store))["created_at"] == expected


async def test_spring_dst_call_has_its_real_length(store, pbx) -> None:
    # 2026-03-29 02:00 CET -> 03:00 CEST: 01:50 to 03:10 local is 20 minutes
    pbx.add_rows(
        [
            leg(
                "1774745400.3",
                channel="PJSIP/trunk-00000220",
                dstchannel="PJSIP/201-00000221",
                start="2026-03-29 01:50:00",
                answer="2026-03-29 01:50:05",
                end="2026-03-29 03:10:00",
                duration=1200,
                billsec=1195,
                disposition="ANSWERED",
            )
        ],
        CSV_18,
    )
    report = await ingest(store, pbx)
    assert report.rejected == []
    call = await only_call(store)
    assert (call["created_at"], call["ended_at"], call["duration_s"]) == (
        "2026-03-29T00:50:00.000000Z",
        "2026-03-29T01:10:00.000000Z",
        1200,
    )


async def test_freepbx_calldate_in_the_repeated_hour_follows_the_uniqueid(store, pbx) -> None:
    from tests.fixtures.calls import freepbx_row

    row = freepbx_row("1792891800.9", calldate="2026-10-25 02:30:00", duration=60, billsec=50)
    pbx.cdr.write_text(freepbx_csv([row]))
    await ingest(store, pbx, "freepbx")
    assert (await only_call(store))["created_at"] == "2026-10-25T01:30:00.000000Z"  # CET, the second 02:30


# -- the caller's number is never the queue member ---------------------------------------------


async def test_caller_number_comes_from_the_caller_leg_even_when_it_arrives_later(store, pbx, staff) -> None:
    rows = blind_transfer(linked=True)
    pbx.add_rows([rows[2], rows[1], rows[0]], CSV_21)
    await ingest(store, pbx)
    call = await only_call(store)
    assert (call["resident_number"], call["consultant_id"]) == ("+48" + CALLER, staff["202"])


async def test_a_call_registered_before_legs_kept_their_details_joins_its_new_legs(store, pbx, staff) -> None:
    first, second = queue_member_attempts()
    pbx.add_rows([first], CSV_18)
    await ingest(store, pbx)

    def as_before_migration_0500(conn) -> None:
        conn.execute(
            "UPDATE call_legs SET leg_key = uniqueid, start_at = NULL, end_at = NULL, channel = NULL, "
            "dstchannel = NULL, disposition = NULL"
        )

    await store.db.write_call(as_before_migration_0500)
    again = await ingest(store, pbx)
    assert (again.imported, again.already_present, again.rejected) == (0, 1, [])
    pbx.add_rows([second], CSV_18)
    later = await ingest(store, pbx)
    assert (later.imported, later.calls, later.already_present) == (1, 0, 1)
    call = await only_call(store)
    assert (call["disposition"], call["consultant_id"], call["created_at"]) == (
        "ANSWERED",
        staff["202"],
        "2026-03-02T09:00:00.000000Z",
    )
