"""The incoming-call notice (§1.4) exported for Asterisk, and its CDR stamp read back by ingestion."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from cim.cli import cli
from store.archive import SearchFilters
from store.audio import probe_file
from store.errors import InvalidInput
from store.models import Actor
from store.notice_texts import PHONE_PL
from store.phone_notice import PhoneNotices
from tests.fixtures.calls import FakePbx, asterisk_row

SYSTEM = Actor.system("tests")


async def test_hostile_context_or_queue_names_are_refused(store, tmp_path: Path) -> None:
    for bad in (
        {"context": "x]\nexten => s,1,System(rm -rf /)"},
        {"queue": "cim,t)\n same => n,System(id"},
        {"context": ""},
    ):
        with pytest.raises(InvalidInput):
            await PhoneNotices(store).export(SYSTEM, tmp_path / "out", render_audio=False, **bad)
    assert not (tmp_path / "out").exists()


async def test_consultant_may_not_export(store, make_staff, tmp_path: Path) -> None:
    from store.errors import NotPermitted

    anna = await make_staff("anna", "consultant")
    with pytest.raises(NotPermitted):
        await PhoneNotices(store).export(anna.as_actor(), tmp_path / "out", render_audio=False)


@pytest.mark.ordinance("§1.4")
async def test_dialplan_plays_the_notice_offers_1_queues_and_stamps(store, pbx: FakePbx, tmp_path: Path) -> None:
    result = await PhoneNotices(store).export(SYSTEM, tmp_path / "out", render_audio=False)
    plan = result.dialplan.read_text(encoding="utf-8")
    assert "[cim-incoming-notice]" in plan
    body = [line for line in plan.splitlines() if not line.startswith(";")]
    background = next(i for i, line in enumerate(body) if "Background(cim/notice-v1-pl)" in line)
    stamp_no = next(i for i, line in enumerate(body) if r"Set(CDR(userfield)=cim:notice=1\;full=0)" in line)
    assert stamp_no < background  # a caller who hangs up during the notice still has it on record
    assert any(line.startswith("exten => 1,1,") and r"cim:notice=1\;full=1" in line for line in body)
    assert any("Playback(cim/notice-full-v1-pl)" in line for line in body)
    assert any(line.startswith("exten => t,1,Goto(cim-incoming-notice,queue,1)") for line in body)
    assert any("Queue(cim,t)" in line for line in body)
    texts = {p.name: p.read_text(encoding="utf-8").strip() for p in result.texts}
    assert texts["notice-v1-pl.txt"] == PHONE_PL  # the ordinance's wording, verbatim
    assert "proszę wcisnąć 1" in texts["notice-v1-pl.txt"]
    assert result.audio == () and "switched off" in result.audio_skipped
    # what the dialplan writes is what ingestion reads back
    stamps = [s.replace("\\;", ";") for s in re.findall(r"userfield\)=([^)]*)\)", plan)]
    assert stamps == ["cim:notice=1;full=0", "cim:notice=1;full=1"]
    pbx.add_rows([asterisk_row("1.1", userfield=stamps[0]), asterisk_row("1.2", userfield=stamps[1])])
    await store.calls.ingest(SYSTEM, store.calls.source("asterisk", pbx.cdr, None))
    calls = sorted((await store.archive.search(SYSTEM, SearchFilters())).items, key=lambda c: c.id)
    assert [(c.notice_played, c.full_info_requested) for c in calls] == [(True, False), (True, True)]


@pytest.mark.ordinance("§1.4")
async def test_new_notice_version_is_exported_and_linked(store, pbx: FakePbx, tmp_path: Path) -> None:
    await store.notices.add_version(SYSTEM, "phone", {"pl": PHONE_PL + " Wersja druga."})
    result = await PhoneNotices(store).export(SYSTEM, tmp_path / "out", render_audio=False)
    assert result.version == 2 and r"cim:notice=2\;full=0" in result.dialplan.read_text(encoding="utf-8")
    pbx.add_rows([asterisk_row("1.1", userfield="cim:notice=2;full=0")])
    await store.calls.ingest(SYSTEM, store.calls.source("asterisk", pbx.cdr, None))
    (call,) = (await store.archive.search(SYSTEM, SearchFilters())).items
    assert (await store.archive.details(SYSTEM, call.id)).notice_version == 2


@pytest.mark.skipif(not (shutil.which("espeak-ng") and shutil.which("sox")), reason="espeak-ng and sox needed")
def test_cli_renders_8khz_mono_prompts(tmp_path: Path) -> None:
    env = {"CIM_DATA_DIR": str(tmp_path / "data")}
    runner = CliRunner()
    assert runner.invoke(cli, ["init"], env=env).exit_code == 0
    full = tmp_path / "clause.txt"
    full.write_text("Administratorem danych jest Gmina Miasto Szczecin.", encoding="utf-8")
    result = runner.invoke(
        cli, ["notices", "export-phone", str(tmp_path / "out"), "--full-text", str(full), "--json"], env=env
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["version"] == 1 and doc["audio_skipped"] is None and len(doc["audio"]) == 2
    for path in doc["audio"]:
        info = probe_file(Path(path))
        assert (info.format, info.sample_rate, info.channels, info.bits_per_sample) == ("wav-pcm", 8000, 1, 16)
        assert info.duration_s > 1
    assert (tmp_path / "out/cim/notice-full-v1-pl.txt").read_text(
        encoding="utf-8"
    ).strip() == "Administratorem danych jest Gmina Miasto Szczecin."
