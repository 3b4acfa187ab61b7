"""The anchored audit: MACs under a key outside the database, and chain heads anchored outside it.

Each attack is what an administrator with write access to the database file (but neither the key
nor the remote log) could do: cut the tail with the triggers dropped and put back, rewrite entries
with every hash recomputed, restore an older copy of the database.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import sqlite3
import stat
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest
from pypdf import PdfReader

from store import Store
from store.anchors import Anchor, parse_anchor_line
from store.audit import GENESIS, entry_hash, entry_mac_message
from store.errors import ConfigError, InvalidInput, InvalidTransition, StoreUnavailable
from store.settings import Settings
from tests.fixtures.requests import call_request
from tests.fixtures.store import SYSTEM

TRIGGERS = (
    "CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END",
    "CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END",
)
FIELDS = (
    "id",
    "at",
    "actor_id",
    "actor_name",
    "action",
    "outcome",
    "target_kind",
    "target_id",
    "purpose",
    "request_id",
    "details",
)


async def _fill(store, n: int, start: int = 0) -> None:
    for i in range(start, start + n):
        await store.audit.record(SYSTEM, "test.event", target_kind="thing", target_id=i, details={"i": i})


def _admin(db_path: Path, *statements: str, rehash: bool = False) -> None:
    """Drop the guard triggers, run the statements, optionally recompute every hash, put the triggers back."""
    conn = sqlite3.connect(db_path)
    conn.row_factory = sqlite3.Row
    conn.execute("DROP TRIGGER audit_no_update")
    conn.execute("DROP TRIGGER audit_no_delete")
    for sql in statements:
        conn.execute(sql)
    if rehash:
        prev = GENESIS
        for row in conn.execute("SELECT * FROM audit ORDER BY id").fetchall():
            digest = entry_hash(prev, {f: row[f] for f in FIELDS})
            conn.execute("UPDATE audit SET prev_hash = ?, hash = ? WHERE id = ?", (prev, digest, row["id"]))
            prev = digest
    for sql in TRIGGERS:
        conn.execute(sql)
    conn.commit()
    conn.close()


def _anchor_lines(settings) -> list[dict]:
    return [json.loads(line) for line in settings.audit_anchors_path.read_text().splitlines()]


# -- the key -----------------------------------------------------------------------------------------


async def test_the_key_file_is_made_outside_the_data_directory_private_and_entries_carry_macs(store, settings):
    key = settings.audit_key_path
    assert settings.data_dir.absolute() not in key.parents and key.parent == settings.data_dir.absolute().with_name(
        "data-audit"
    )
    assert stat.S_IMODE(key.stat().st_mode) == 0o600 and stat.S_IMODE(key.parent.stat().st_mode) == 0o700
    await _fill(store, 3)
    rows = await store.db.fetchall("SELECT hash, mac, key_gen FROM audit ORDER BY id")
    assert (
        all(r["key_gen"] == 1 and r["mac"] == store.audit.ring.mac(1, entry_mac_message(1, r["hash"])) for r in rows)
        and len(rows) == 3
    )
    # the key is nowhere in the database file
    secret = store.audit.ring.keys[1]
    await store.db.checkpoint_truncate()
    raw = settings.db_path.read_bytes()
    assert secret not in raw and secret.hex().encode() not in raw


def test_a_key_file_inside_the_data_directory_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="outside the data directory"):
        Settings.load(tmp_path / "d", env={"CIM_AUDIT_KEY_FILE": str(tmp_path / "d" / "audit.key")})
    with pytest.raises(ConfigError, match="outside the data directory"):
        Settings.load(tmp_path / "d", env={}, audit_anchors_file=str(tmp_path / "d" / "sub" / "a.jsonl"))


async def test_a_key_file_others_can_read_is_refused(store, settings, clock):
    await store.close()
    os.chmod(settings.audit_key_path, 0o644)
    with pytest.raises(StoreUnavailable, match="chmod 600"):
        await Store.open(settings, clock=clock)


async def test_a_missing_key_with_maced_entries_refuses_to_open_and_is_not_silently_recreated(store, settings, clock):
    await _fill(store, 2)
    await store.close()
    settings.audit_key_path.unlink()
    with pytest.raises(StoreUnavailable, match="escrow"):
        await Store.open(settings, clock=clock)
    assert not settings.audit_key_path.exists()


@pytest.mark.ordinance("§3")
async def test_a_database_from_before_the_key_reports_unmaced_legacy_entries_not_breakage(store, settings, clock):
    await _fill(store, 4)
    await store.close()
    # what a database made by an earlier version looks like: no MACs, and no key file
    _admin(settings.db_path, "UPDATE audit SET mac = NULL, key_gen = NULL")
    settings.audit_key_path.unlink()
    upgraded = await Store.open(settings, clock=clock)
    try:
        assert upgraded.audit.ring.legacy_until == 4
        await _fill(upgraded, 2, start=4)
        check = await upgraded.audit.verify()
        assert (check.ok, check.entries, check.legacy_entries) == (True, 6, 4)
        # stripping the MAC of an entry written after the key existed is not "legacy"
        await upgraded.close()
        _admin(settings.db_path, "UPDATE audit SET mac = NULL, key_gen = NULL WHERE id = 6")
        upgraded = await Store.open(settings, clock=clock)
        check = await upgraded.audit.verify()
        assert (check.ok, check.first_broken, check.problems[0].kind) == (False, 6, "unmaced")
    finally:
        await upgraded.close()


# -- the three attacks ---------------------------------------------------------------------------------


@pytest.mark.ordinance("§3")
async def test_triggers_dropped_tail_deleted_triggers_recreated_is_detected_through_the_anchor(store, settings, clock):
    await _fill(store, 10)
    anchor = await store.audit.anchor("periodic")
    assert anchor.id == 10
    # without the anchor the chain alone cannot tell: what is left still links up
    _admin(settings.db_path, "DELETE FROM audit WHERE id > 7")
    check = await store.audit.verify()
    assert (check.ok, check.entries, check.first_broken, check.truncated_after) == (False, 7, 8, 7)
    assert check.anchors_checked == 1
    problem = check.problems[0]
    assert problem.kind == "truncated" and problem.anchor["id"] == 10
    assert problem.anchor["source"] == f"{settings.audit_anchors_path}:1"


@pytest.mark.ordinance("§3")
async def test_entries_rewritten_with_every_hash_recomputed_are_caught_by_the_mac(store, settings):
    await _fill(store, 8)
    _admin(settings.db_path, "UPDATE audit SET actor_name = 'someone else' WHERE id = 3", rehash=True)
    check = await store.audit.verify()
    assert (check.ok, check.first_broken, check.problems[0].kind) == (False, 3, "mac")
    # nor can the forger pass the whole log off as legacy by dropping every MAC
    _admin(settings.db_path, "UPDATE audit SET mac = NULL, key_gen = NULL")
    check = await store.audit.verify()
    assert (check.ok, check.first_broken, check.problems[0].kind) == (False, 1, "unmaced")


async def _restored(store, settings, clock, tmp_path):
    """Entries, a backup, more entries and an anchor; then the older copy put back in place of the database."""
    await _fill(store, 5)
    in_copy = await store.audit.head()  # the backup's own entry comes after the copy
    await store.retention.backup(SYSTEM, tmp_path / "backup")
    await _fill(store, 4, start=5)
    clock.advance(minutes=20)
    lost = await store.audit.anchor("periodic")
    await store.close()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{settings.db_path}{suffix}").unlink(missing_ok=True)
    shutil.copy2(tmp_path / "backup" / settings.db_path.name, settings.db_path)
    clock.advance(hours=1)
    return await Store.open(settings, clock=clock), in_copy[0], lost


@pytest.mark.ordinance("§3")
async def test_a_restored_older_database_is_recognised_and_must_be_acknowledged(store, settings, clock, tmp_path):
    restored, fork, lost = await _restored(store, settings, clock, tmp_path)
    try:
        assert [a["reason"] for a in _anchor_lines(settings)] == ["backup", "periodic"]
        check = await restored.audit.verify()
        assert (check.ok, check.first_broken, check.truncated_after) == (False, fork + 1, fork)
        problem = check.problems[0]
        assert problem.kind == "restored_backup" and problem.anchor["id"] == lost.id
        assert [(r["fork_at"], r["backup"], r["lost_through"], r["acknowledged"]) for r in check.restores] == [
            (fork, str(tmp_path / "backup"), lost.id, False)
        ]
        # the restored service carries on: still reported, entries after the fork are not the lost ones
        await _fill(restored, 6, start=100)
        assert (await restored.audit.verify()).problems[0].kind == "restored_backup"

        with pytest.raises(InvalidInput, match="reason"):
            await restored.audit.acknowledge_restore(SYSTEM, "  ")
        done = await restored.audit.acknowledge_restore(SYSTEM, "Awaria dysku 3 marca; przywrócono kopię nocną.")
        assert [r["fork_at"] for r in done] == [fork]
        check = await restored.audit.verify()
        assert check.ok and check.restores[0]["acknowledged"] is True and check.anchors_checked >= 3
        ack = await restored.db.fetchone("SELECT * FROM audit WHERE action = 'audit.restore_acknowledged'")
        assert ack["purpose"].startswith("Awaria dysku") and json.loads(ack["details"])["lost_through"] == lost.id
        assert ack["mac"] is not None
        with pytest.raises(InvalidTransition, match="no restored backup"):
            await restored.audit.acknowledge_restore(SYSTEM, "once more")
    finally:
        await restored.close()


async def test_an_acknowledgement_forged_into_the_database_does_not_count(store, settings, clock, tmp_path):
    restored, fork, lost = await _restored(store, settings, clock, tmp_path)
    await restored.close()
    # the admin writes the acknowledgement row himself, with a valid chain hash but no key
    conn = sqlite3.connect(settings.db_path)
    conn.row_factory = sqlite3.Row
    last = conn.execute("SELECT * FROM audit ORDER BY id DESC LIMIT 1").fetchone()
    row = {
        "id": last["id"] + 1,
        "at": "2026-03-02T12:00:00.000000Z",
        "actor_id": None,
        "actor_name": "system:x",
        "action": "audit.restore_acknowledged",
        "outcome": "ok",
        "target_kind": None,
        "target_id": None,
        "purpose": "x",
        "request_id": None,
        "details": json.dumps({"fork_at": fork}),
    }
    conn.execute(
        f"INSERT INTO audit({', '.join(FIELDS)}, prev_hash, hash, mac, key_gen) VALUES "
        f"({', '.join('?' * len(FIELDS))}, ?, ?, ?, 1)",
        (*row.values(), last["hash"], entry_hash(last["hash"], row), "0" * 64),
    )
    conn.commit()
    conn.close()
    again = await Store.open(settings, clock=clock)
    try:
        check = await again.audit.verify()
        assert (check.ok, check.first_broken, [p.kind for p in check.problems]) == (False, row["id"], ["mac"])
    finally:
        await again.close()


async def test_a_cut_that_is_not_a_restore_cannot_be_acknowledged(store, settings):
    await _fill(store, 6)
    await store.audit.anchor("periodic")
    _admin(settings.db_path, "DELETE FROM audit WHERE id > 4")
    with pytest.raises(InvalidTransition, match="not a restore"):
        await store.audit.acknowledge_restore(SYSTEM, "trying my luck")


async def test_an_anchor_line_not_written_by_cim_is_reported(store, settings):
    await _fill(store, 3)
    await store.audit.anchor("periodic")
    fake = Anchor(
        id=3,
        hash="ab" * 32,
        entry_at=None,
        at="2026-03-02T09:00:00.000000Z",
        reason="periodic",
        generation=1,
        mac="cd" * 32,
    )
    with settings.audit_anchors_path.open("a") as fh:
        fh.write(fake.line() + "\n")
    check = await store.audit.verify()
    assert [p.kind for p in check.problems] == ["forged_anchor"] and check.anchors_checked == 1


# -- where anchors go --------------------------------------------------------------------------------


async def test_anchors_go_to_syslog_and_an_export_of_it_proves_a_cut_when_the_anchors_file_is_gone(
    settings, clock, tmp_path
):
    address = tmp_path / "log.sock"
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind(str(address))
    receiver.settimeout(10)
    store = await Store.open(settings.with_(audit_syslog=str(address)), create=True, clock=clock)
    try:
        await _fill(store, 5)
        await store.audit.anchor("periodic")
        line = receiver.recv(65536).decode()
        assert line.startswith("<") and "cim: cim-audit-anchor {" in line  # <priority>ident message
        assert parse_anchor_line(line, "x").id == 5
        export = tmp_path / "journal-export.txt"
        export.write_text(f"Mar  2 10:00:00 host {line[line.index('cim:') :]}\n")
        settings.audit_anchors_path.unlink()  # the local file can be removed; the log server's copy cannot
        _admin(settings.db_path, "DELETE FROM audit WHERE id > 3")
        assert (await store.audit.verify()).ok  # the chain alone: intact
        check = await store.audit.verify(anchor_files=[export])
        assert (check.ok, check.truncated_after, check.problems[0].kind) == (False, 3, "truncated")
    finally:
        receiver.close()
        await store.close()


async def test_purges_and_serve_anchor_the_head(store, settings):
    from store.audit import anchor_context

    await store.retention.purge(SYSTEM)
    context = anchor_context(store, settings.with_(audit_anchor_minutes=0))(None)
    await context.__anext__()
    with pytest.raises(StopAsyncIteration):
        await context.__anext__()
    reasons = [a["reason"] for a in _anchor_lines(settings)]
    assert reasons == ["purge", "serve_start", "serve_stop"]
    head = await store.audit.head()
    assert _anchor_lines(settings)[-1]["id"] == head[0] and _anchor_lines(settings)[-1]["hash"] == head[1]


@pytest.mark.ordinance("§3")
async def test_the_report_prints_the_anchor_and_the_printed_anchor_proves_a_cut(store, settings, tmp_path):
    from store.reports import write_pdf

    await _fill(store, 6)
    report = await store.reports.supervision(SYSTEM, date(2026, 3, 1), date(2026, 3, 31))
    pdf = await write_pdf(report, tmp_path / "r.pdf")
    text = "".join(p.extract_text() for p in PdfReader(pdf).pages)
    match = re.search(r"auditanchor\):(\d+):([0-9a-f]{64})", re.sub(r"\s+", "", text))
    assert match, text
    ident, digest = int(match.group(1)), match.group(2)
    assert (ident, digest) == (await store.audit.head())[:2]
    settings.audit_anchors_path.unlink()
    _admin(settings.db_path, f"DELETE FROM audit WHERE id > {ident - 2}")
    from store.anchors import parse_paper_anchor

    check = await store.audit.verify([parse_paper_anchor(f"{ident}:{digest[:16]}")])
    assert (check.ok, check.truncated_after, check.problems[0].kind) == (False, ident - 2, "truncated")


async def test_every_letter_carries_the_anchor_in_its_footer(store, people):
    req = await store.requests.register(
        people.registrar, call_request(received_on=date(2026, 1, 31), hint={"date": "2026-01-30"})
    )
    await store.requests.extend(people.director, req.id, 2, "Znaczna liczba wniosków.")
    detail = await store.requests.get(people.director, req.id)
    text = re.sub(r"\s+", "", "".join(p.extract_text() for p in PdfReader(detail.letters[0].path).pages))
    anchor = _anchor_lines(store.settings)[-1]
    assert anchor["reason"] == "letter" and f"{anchor['id']}:{anchor['hash']}" in text


# -- rotation ----------------------------------------------------------------------------------------


async def test_rotating_the_key_is_recorded_and_an_entry_forged_with_the_old_key_is_caught(store, settings):
    await _fill(store, 3)
    old, new = await store.audit.rotate_key(SYSTEM)
    assert (old, new) == (1, 2)
    await _fill(store, 2, start=3)
    rows = await store.db.fetchall("SELECT action, key_gen, details FROM audit ORDER BY id")
    rotation = rows[3]
    assert rotation["action"] == "audit.key_rotated" and rotation["key_gen"] == 1
    assert json.loads(rotation["details"])["to_generation"] == 2
    assert [r["key_gen"] for r in rows[4:]] == [2, 2]
    assert (await store.audit.verify()).ok
    assert settings.audit_key_path.read_text().count('"generation"') == 2
    # someone who kept the old key re-signs the last entry with it after the rotation
    last = await store.db.fetchone("SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1")
    forged = store.audit.ring.mac(1, entry_mac_message(1, last["hash"]))
    _admin(settings.db_path, f"UPDATE audit SET mac = '{forged}', key_gen = 1 WHERE id = {last['id']}")
    check = await store.audit.verify()
    assert (check.ok, check.first_broken, check.problems[0].kind) == (False, last["id"], "retired_key")


async def test_another_process_picks_up_a_rotated_key(store, settings, clock):
    other = await Store.open(settings, clock=clock)
    try:
        await other.audit.rotate_key(SYSTEM)
        await _fill(store, 1)
        row = await store.db.fetchone("SELECT key_gen FROM audit ORDER BY id DESC LIMIT 1")
        assert row["key_gen"] == 2 and (await store.audit.verify()).ok
    finally:
        await other.close()


# -- the command line --------------------------------------------------------------------------------


def _cim(data_dir: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CIM_")}
    env.update(CIM_DATA_DIR=str(data_dir), CIM_PASSWORD_PROFILE="fast", CIM_STAFF_LANG="en", PYTHONPATH=os.getcwd())
    return subprocess.run([sys.executable, "-m", "cim", *args], capture_output=True, text=True, env=env, timeout=120)


def test_the_cli_reports_a_restore_then_acknowledges_it(tmp_path):
    data = tmp_path / "data"
    assert _cim(data, "init").returncode == 0
    assert (tmp_path / "data-audit" / "audit.key").exists()
    assert _cim(data, "backup", str(tmp_path / "copy")).returncode == 0
    assert _cim(data, "audit", "anchor").returncode == 0
    assert _cim(data, "purge").returncode == 0  # more entries, anchored
    shutil.copy2(tmp_path / "copy" / "cim.sqlite3", data / "cim.sqlite3")
    for suffix in ("-wal", "-shm"):
        Path(f"{data / 'cim.sqlite3'}{suffix}").unlink(missing_ok=True)
    r = _cim(data, "audit", "verify", "--json")
    doc = json.loads(r.stdout)
    assert r.returncode == 1 and doc["ok"] is False
    assert set(doc) >= {"ok", "entries", "first_broken", "anchors_checked", "truncated_after"}
    assert doc["problems"][0]["kind"] == "restored_backup" and doc["truncated_after"] == doc["entries"]
    assert _cim(data, "audit", "acknowledge-restore").returncode != 0  # --reason is required
    r = _cim(data, "audit", "acknowledge-restore", "--reason", "Test odtworzenia kopii")
    assert r.returncode == 0, r.stderr
    r = _cim(data, "audit", "verify")
    assert r.returncode == 0 and "restore acknowledged" in r.stdout
    r = _cim(data, "audit", "verify", "--anchor", "1:nothex")
    assert r.returncode == 1 and "ID:HASH" in r.stderr
