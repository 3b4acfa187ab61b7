"""`cim demo`'s calls: realistic WAVs and CDR lines ingested through the real path, visible in the archive."""

from __future__ import annotations

from store.archive import SearchFilters
from store.calls import seed_demo_calls
from store.models import Actor

SYSTEM = Actor.system("tests")


async def test_seed_demo_calls_registers_calls_with_recordings(store, make_staff, tmp_path) -> None:
    await make_staff("anna", "consultant")
    report = await store.calls.seed_demo(SYSTEM)
    assert report.rejected == [] and report.calls == 5 and report.recordings == 4
    page = await store.archive.search(SYSTEM, SearchFilters(channel="call"))
    assert len(page.items) == 5
    assert {i.direction for i in page.items} == {"incoming", "outgoing"}
    assert any(i.consultant == "anna" for i in page.items)
    assert [i.number_identifiable for i in page.items].count(False) == 1
    levels = await store.archive.recording_levels(SYSTEM, next(i.id for i in page.items if i.has_recording))
    assert levels and max(levels) > 0.1
    again = await seed_demo_calls(store, tmp_path / "second-spool")  # same moment: the same PBX records
    assert (again.imported, again.already_present, again.recordings_already_present) == (0, 5, 4)
