"""`cim purge`, `cim holds`, `cim backup` and `cim audit list` through the real click commands."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timezone
from pathlib import Path

import pytest
from click.testing import CliRunner

from cim.cli import cli
from store import Store
from store.settings import Settings
from tests.fixtures.retention import RetentionData

OLD = datetime(2025, 8, 31, 10, 0, tzinfo=timezone.utc)
RECENT_FOR_REAL_CLOCK = datetime.now(timezone.utc)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    result = CliRunner().invoke(cli, ["init", "--data-dir", str(tmp_path / "d")])
    assert result.exit_code == 0, result.output
    return tmp_path / "d"


def seed(data_dir: Path, *makers: str) -> list[int]:
    """Insert conversations with the fixture builder: 'old-chat', 'old-call', 'new-chat'."""

    async def body() -> list[int]:
        store = await Store.open(Settings.load(data_dir, env={}))
        try:
            data, ids = RetentionData(store), []
            for kind in makers:
                if kind == "old-chat":
                    ids.append(await data.chat(OLD))
                elif kind == "old-call":
                    ids.append((await data.call(OLD))[0])
                else:
                    ids.append(await data.chat(RECENT_FOR_REAL_CLOCK))
            return ids
        finally:
            await store.close()

    return asyncio.run(body())


def run(data_dir: Path, *args: str):
    return CliRunner().invoke(cli, [*args, "--data-dir", str(data_dir)])


def test_purge_json_contract_and_dry_run(data_dir):
    seed(data_dir, "old-chat", "old-chat", "old-call", "new-chat")
    dry = run(data_dir, "purge", "--dry-run", "--json")
    assert dry.exit_code == 0, dry.output
    document = json.loads(dry.stdout)
    assert document["dry_run"] is True and document["held"] == 0
    assert {k: document["purged"][k] for k in ("calls", "chats", "files")} == {"calls": 1, "chats": 2, "files": 1}
    assert document["purged"]["bytes"] > 0
    real = json.loads(run(data_dir, "purge", "--json").stdout)
    assert real["dry_run"] is False and real["purged"] == document["purged"]
    again = json.loads(run(data_dir, "purge", "--json").stdout)
    assert again["purged"] == {"calls": 0, "chats": 0, "files": 0, "bytes": 0}
    text = run(data_dir, "purge")
    assert text.exit_code == 0 and text.stdout.startswith("purged 0 calls, 0 chat transcripts, 0 files")


def test_holds_add_list_release_and_the_purged_case(data_dir):
    old, gone = seed(data_dir, "old-chat", "old-chat")
    added = run(
        data_dir,
        "holds",
        "add",
        str(old),
        "--legal-basis",
        "art. 6 ust. 1 lit. c RODO",
        "--case",
        "SO.1",
        "--review-on",
        "2099-01-01",
        "--json",
    )
    assert added.exit_code == 0, added.output
    hold_id = json.loads(added.stdout)["holds"][0]["id"]
    assert json.loads(run(data_dir, "purge", "--json").stdout)["held"] == 1
    listed = json.loads(run(data_dir, "holds", "list", "--json").stdout)
    assert [(h["id"], h["conversation_id"], h["overdue"]) for h in listed] == [(hold_id, old, False)]

    refused = run(data_dir, "holds", "add", str(gone), "--legal-basis", "KPA", "--case", "X")
    assert refused.exit_code == 1
    assert refused.stderr.strip().startswith(f"cim: conversation {gone} was already purged on ")
    bad_date = run(data_dir, "holds", "add", str(old), "--legal-basis", "KPA", "--case", "X", "--review-on", "1.1.26")
    assert bad_date.exit_code == 1 and "YYYY-MM-DD" in bad_date.stderr

    released = run(data_dir, "holds", "release", str(hold_id))
    assert released.exit_code == 0 and f"hold {hold_id}" in released.stdout
    assert run(data_dir, "holds", "release", str(hold_id)).exit_code == 1
    assert json.loads(run(data_dir, "purge", "--json").stdout)["purged"]["chats"] == 1


def test_backup_command(data_dir, tmp_path):
    seed(data_dir, "new-chat")
    done = run(data_dir, "backup", str(tmp_path / "bk"), "--json")
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["files"] == 0
    assert (tmp_path / "bk" / "cim.sqlite3").exists()
    again = run(data_dir, "backup", str(tmp_path / "bk"))
    assert again.exit_code == 1 and "not an empty directory" in again.stderr


def test_audit_list_filters(data_dir):
    seed(data_dir, "old-chat")
    run(data_dir, "purge")
    listed = json.loads(run(data_dir, "audit", "list", "--action", "retention.purge", "--json").stdout)
    assert [e["action"] for e in listed] == ["retention.purge"]
    assert listed[0]["details"]["chats"] == 1
    bad = run(data_dir, "audit", "list", "--from", "yesterday")
    assert bad.exit_code == 1 and "YYYY-MM-DD" in bad.stderr
