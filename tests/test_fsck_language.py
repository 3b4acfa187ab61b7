"""`cim fsck` speaks the staff language: each problem's kind in words and its sentence (Polish by default,
English with CIM_STAFF_LANG=en), while `--json` keeps the kind codes and English details whatever the language."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest

from store import Store
from store.keys import DELETED_MARK
from store.models import Actor
from store.retention import FSCK_KIND_LABELS, FsckProblem
from store.settings import Settings
from tests.fixtures.retention import RetentionData

ROOT = Path(__file__).resolve().parents[1]
WHEN = datetime(2026, 2, 10, 9, 0, tzinfo=timezone.utc)


def _cim(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cim", *args], env=env, capture_output=True, text=True)


@pytest.fixture
def damaged(tmp_path) -> tuple[dict, dict]:
    """A real data directory (`cim init`) with four kinds of damage planted: transcript lines and a recording
    left unsealed (data from before crypto-shredding), a recording whose file was deleted, and a stray file."""
    data = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if k != "CIM_STAFF_LANG"}
    env.update(CIM_DATA_DIR=str(data), CIM_PASSWORD_PROFILE="fast")
    assert _cim(env, "init").returncode == 0

    async def seed() -> dict:
        st = await Store.open(Settings.load(data, env={}))
        try:
            maker = RetentionData(st)
            maker.seal = False
            now = datetime.now(timezone.utc)
            await maker.chat(now, texts=("Dzień dobry", "Mam pytanie", "Dziękuję"))
            _, unsealed_wav = await maker.call(now)
            maker.seal = True
            _, gone_wav = await maker.call(now)
            gone_wav.unlink()
            planted = {}
            for name, wav in (("unsealed", unsealed_wav), ("gone", gone_wav)):
                relative = wav.relative_to(st.settings.recordings_dir).as_posix()
                rows = await st.db.fetchall("SELECT id FROM recordings WHERE path = ?", (relative,))
                planted[name] = (rows[0][0], relative)  # the recording's id, which fsck names
            return planted
        finally:
            await st.close()

    planted = asyncio.run(seed())
    (data / "recordings" / "lost.wav").write_bytes(b"RIFF")
    return env, planted


def _lines(result: subprocess.CompletedProcess) -> list[str]:
    return result.stdout.splitlines()


@pytest.mark.staff_lang(None)
def test_fsck_human_output_is_polish_by_default(damaged):
    env, planted = damaged
    result = _cim(env, "fsck")
    assert result.returncode == 1
    unsealed, unsealed_path = planted["unsealed"]
    gone, gone_path = planted["gone"]
    assert sorted(_lines(result)) == sorted(
        [
            "niezaszyfrowane wiersze zapisu: niezaszyfrowane jeszcze wiersze zapisu: 3; "
            "uruchom `cim keys encrypt-existing`",
            f"niezaszyfrowany plik: nagranie {unsealed} ({unsealed_path}) nie jest jeszcze zaszyfrowane; "
            "uruchom `cim keys encrypt-existing`",
            f"brak pliku: nagranie {gone} ({gone_path}): brak pliku",
            "plik bez nagrania: lost.wav: plik w folderze nagrań bez odpowiadającego mu nagrania w bazie",
        ]
    )
    for code in ("unsealed_lines", "unsealed_file", "missing_file", "orphan_file"):
        assert code not in result.stdout


def test_fsck_human_output_in_english_with_cim_staff_lang_en(damaged):
    env, planted = damaged
    result = _cim({**env, "CIM_STAFF_LANG": "en"}, "fsck")
    assert result.returncode == 1
    gone, gone_path = planted["gone"]
    assert f"missing file: recording {gone} ({gone_path}): the file is missing" in _lines(result)
    assert "file without a recording: lost.wav: a file in the recordings folder without a recording row" in _lines(
        result
    )
    assert (
        "unencrypted transcript lines: 3 transcript lines are not sealed yet; run `cim keys encrypt-existing`"
        in _lines(result)
    )
    assert "orphan_file" not in result.stdout


@pytest.mark.staff_lang(None)
def test_fsck_json_keeps_the_codes_and_english_whatever_the_language(damaged):
    env, planted = damaged
    polish = _cim(env, "fsck", "--json")
    english = _cim({**env, "CIM_STAFF_LANG": "en"}, "fsck", "--json")
    assert polish.returncode == english.returncode == 1
    assert polish.stdout == english.stdout
    unsealed, unsealed_path = planted["unsealed"]
    gone, gone_path = planted["gone"]
    problems = json.loads(polish.stdout)["problems"]
    assert sorted(problems, key=lambda p: p["kind"]) == [
        {"kind": "missing_file", "detail": f"recording {gone} ({gone_path}): the file is missing"},
        {"kind": "orphan_file", "detail": "lost.wav: a file in the recordings folder without a recording row"},
        {
            "kind": "unsealed_file",
            "detail": f"recording {unsealed} ({unsealed_path}) is not sealed yet; run `cim keys encrypt-existing`",
        },
        {"kind": "unsealed_lines", "detail": "3 transcript lines are not sealed yet; run `cim keys encrypt-existing`"},
    ]


async def test_a_broken_seal_is_worded_in_the_readers_language(store, retention_data):
    _, path = await retention_data.call(WHEN)
    path.write_bytes(path.read_bytes()[:100])
    (problem,) = (await store.retention.fsck(Actor.system("tests"))).problems
    assert problem.kind == "tampered_file"
    assert problem.detail.endswith(f"{path.name} does not open at segment 0: the file was changed or cut")
    assert problem.message_in("pl").endswith(
        f"{path.name} nie otwiera się przy segmencie 0: plik zmieniono lub obcięto"
    )
    assert problem.message_in("pl").startswith("nagranie ") and problem.label_in("pl") == "uszkodzony plik"


def test_every_fsck_kind_has_words_and_the_deleted_mark_matches():
    source = (ROOT / "store" / "retention.py").read_text()
    kinds = set(re.findall(r'FsckProblem(?:\.of_error)?\(\s*"(\w+)"', source))
    assert len(kinds) >= 15, kinds
    assert kinds == set(FSCK_KIND_LABELS), "every fsck kind needs its words in FSCK_KIND_LABELS"
    # the sentences spell the archive's mark out (a msgid must be a literal): they follow store/keys.py
    for sentence in re.findall(r'"([^"]*deleted \(§6\)[^"]*)"', source):
        assert DELETED_MARK in sentence
    assert FsckProblem("some_new_kind", "x").label_in("pl") == "some_new_kind"
