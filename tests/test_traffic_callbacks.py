"""Call notes (category + note by uniqueid/linkedid, linked on CDR ingest) and the callback worklist (§4.7, §6)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from store.calls import ASTERISK_FIXED
from store.errors import Conflict, InvalidInput, NotPermitted
from store.models import Actor
from tests.fixtures.audit_log import audit_log
from tests.fixtures.calls import asterisk_row, call_by_pbx_ids, cdr_csv_line

SYSTEM = Actor.system("tests")


COLUMNS = ASTERISK_FIXED + ("uniqueid", "userfield", "peeraccount", "linkedid", "sequence")
SERVICE = Path(__file__).parent / "fixtures" / "traffic" / "queue_log_service.txt"


async def ingest_cdr(store, path: Path, rows: list[dict]) -> None:
    path.write_text("".join(cdr_csv_line(r, COLUMNS) + "\n" for r in rows))
    report = await store.calls.ingest(
        SYSTEM, store.calls.source("asterisk", path, None, columns=",".join(COLUMNS[16:]))
    )
    assert report.rejected == [], report.rejected


# -- notes ----------------------------------------------------------------------------------------------


async def test_a_note_written_during_the_call_joins_its_record_when_the_cdr_arrives(store, make_staff, tmp_path):
    ewa = (await make_staff("ewa", "consultant", extensions=("202",))).as_actor()
    note = await store.call_notes.annotate(
        ewa, "1772442000.1", "referred", "Skierowana do Wydziału Podatków", uniqueid="1772442012.3"
    )
    assert note.conversation_id is None  # no record yet
    await ingest_cdr(
        store,
        tmp_path / "Master.csv",
        [
            asterisk_row("1772442000.1", linkedid="1772442000.1", sequence="1"),
            asterisk_row(
                "1772442012.3",
                linkedid="1772442000.1",
                sequence="2",
                start="2026-03-02 10:00:12",
                answer="2026-03-02 10:00:15",
                end="2026-03-02 10:02:05",
                duration=113,
                billsec=110,
            ),
        ],
    )
    call = await call_by_pbx_ids(store, linkedid="1772442000.1")
    linked = await store.call_notes.of_conversation(call.summary.id)
    assert linked is not None and (linked.category, linked.note) == ("referred", "Skierowana do Wydziału Podatków")
    entry = (await audit_log(store, action="calls.annotate"))[0]
    assert "Podatków" not in json.dumps(entry.details, ensure_ascii=False)  # what was done, not the note's text


async def test_notes_are_checked_and_belong_to_their_author(store, make_staff):
    ewa = (await make_staff("ewa", "consultant")).as_actor()
    jan = (await make_staff("jan", "consultant")).as_actor()
    boss = (await make_staff("szef", "secretary")).as_actor()
    with pytest.raises(InvalidInput):
        await store.call_notes.annotate(ewa, "1772442000.1", "gossip")
    with pytest.raises(InvalidInput):
        await store.call_notes.annotate(ewa, "", "other")
    with pytest.raises(InvalidInput):
        await store.call_notes.annotate(ewa, "1772442000.1", "other", "x" * 501)
    with pytest.raises(NotPermitted):
        await store.call_notes.annotate(boss, "1772442000.1", "other")
    await store.call_notes.annotate(ewa, "1772442000.1", "other", "pierwsza")
    assert (await store.call_notes.annotate(ewa, "1772442000.1", "referred", "poprawiona")).note == "poprawiona"
    with pytest.raises(NotPermitted):
        await store.call_notes.annotate(jan, "1772442000.1", "other", "nie moja")


async def test_call_categories_appear_in_the_service_report(store, make_staff):
    from datetime import date

    ewa = (await make_staff("ewa", "consultant", extensions=("202",))).as_actor()
    await store.queue_log.ingest(SYSTEM, store.queue_log.source(SERVICE))
    await store.call_notes.annotate(ewa, "1772442000.1", "information_given")
    await store.call_notes.annotate(ewa, "1772445600.6", "referred")
    report = await store.service.report(SYSTEM, date(2026, 3, 2), date(2026, 3, 2), by="topic")
    doc = report.as_json()
    assert doc["call_categories"] == {"information_given": 1, "referred": 1}
    topics = {g["key"]: g["calls"]["offered"] for g in doc["by"]}
    assert topics == {"information_given": 1, "referred": 1, "": 6}


# -- callbacks ----------------------------------------------------------------------------------------


@pytest.mark.ordinance("§4.7")
async def test_missed_and_abandoned_identifiable_calls_make_a_worklist_oldest_first_once_per_number_and_day(
    store, make_staff, tmp_path
):
    ewa = (await make_staff("ewa", "consultant")).as_actor()
    await store.queue_log.ingest(SYSTEM, store.queue_log.source(SERVICE))
    # the CDR of C2 (abandoned in the queue) and of another missed call from C2's number the same day,
    # plus one from an anonymous caller: the abandoned call is not counted twice, the anonymous one never
    await ingest_cdr(
        store,
        tmp_path / "Master.csv",
        [
            asterisk_row(
                "1772442300.2",
                src="512345678",
                start="2026-03-02 10:05:00",
                answer="",
                end="2026-03-02 10:05:03",
                duration=3,
                billsec=0,
                disposition="NO ANSWER",
                linkedid="1772442300.2",
                sequence="1",
            ),
            asterisk_row(
                "1772450000.20",
                src="512345678",
                start="2026-03-02 12:13:20",
                answer="",
                end="2026-03-02 12:13:40",
                duration=20,
                billsec=0,
                disposition="NO ANSWER",
                linkedid="1772450000.20",
                sequence="1",
            ),
            asterisk_row(
                "1772450100.21",
                src="anonymous",
                clid='"" <anonymous>',
                start="2026-03-02 12:15:00",
                answer="",
                end="2026-03-02 12:15:10",
                duration=10,
                billsec=0,
                disposition="NO ANSWER",
                linkedid="1772450100.21",
                sequence="1",
            ),
        ],
    )
    items = await store.callbacks.worklist(ewa)
    assert [(c.number, c.missed, c.queue) for c in items] == [
        ("+48512345678", 2, "cim"),
        ("+48601234571", 1, "wydzialy"),
        ("+48601234573", 1, "cim"),
    ]
    again = await store.callbacks.worklist(ewa)
    assert [(c.id, c.missed) for c in again] == [(c.id, c.missed) for c in items]  # refresh adds nothing twice


async def test_a_callback_is_taken_called_back_linked_and_closed(store, make_staff, tmp_path, clock):
    ewa = (await make_staff("ewa", "consultant", extensions=("202",))).as_actor()
    jan = (await make_staff("jan", "consultant")).as_actor()
    await store.queue_log.ingest(SYSTEM, store.queue_log.source(SERVICE))
    first = (await store.callbacks.worklist(ewa))[0]
    with pytest.raises(Conflict):
        await store.callbacks.close(ewa, first.id, "reached")  # take it first
    await store.callbacks.take(ewa, first.id)
    with pytest.raises(Conflict):
        await store.callbacks.take(jan, first.id)
    with pytest.raises(InvalidInput):
        await store.callbacks.close(ewa, first.id, "maybe")
    with pytest.raises(NotPermitted):
        await store.callbacks.close(jan, first.id, "reached")
    # ewa calls the number back (taken at 09:00 UTC = 10:00 local; the call at 10:30 local)
    await ingest_cdr(
        store,
        tmp_path / "Master.csv",
        [
            asterisk_row(
                "1772443800.30",
                src="202",
                dst="0512345678",
                channel="PJSIP/202-00000030",
                dstchannel="PJSIP/trunk-00000031",
                start="2026-03-02 10:30:00",
                answer="2026-03-02 10:30:05",
                end="2026-03-02 10:31:05",
                duration=65,
                billsec=60,
                dcontext="from-internal",
                clid='"Ewa" <202>',
                linkedid="1772443800.30",
                sequence="1",
            )
        ],
    )
    done = await store.callbacks.close(ewa, first.id, "reached")
    outgoing = (await call_by_pbx_ids(store, uniqueid="1772443800.30")).summary
    assert outgoing.direction == "outgoing"
    assert (done.status, done.outcome, done.conversation_id) == ("done", "reached", outgoing.id)
    assert [c.id for c in await store.callbacks.worklist(ewa)] != [] and first.id not in [
        c.id for c in await store.callbacks.worklist(ewa)
    ]
    actions = [r.action for r in await audit_log(store, action_prefix="callbacks.", outcome="ok")]
    assert "callbacks.take" in actions and "callbacks.close" in actions


async def test_only_consultants_work_the_callbacks(store, make_staff):
    boss = (await make_staff("szef", "secretary")).as_actor()
    with pytest.raises(NotPermitted):
        await store.callbacks.worklist(boss)
