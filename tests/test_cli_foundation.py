"""The `cim` command as a real subprocess: init, users, departments, audit verify, and bad input."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def cim(data_dir: Path, *args: str, stdin: str | None = None, **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "CIM_PASSWORD_PROFILE": "fast"}
    env.pop("CIM_DATA_DIR", None)
    return subprocess.run(
        [sys.executable, "-m", "cim", *args, "--data-dir", str(data_dir)],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
        **kw,
    )


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    d = tmp_path / "data"
    assert cim(d, "init").returncode == 0
    return d


def test_init_is_idempotent_and_private(tmp_path: Path) -> None:
    d = tmp_path / "data"
    first = cim(d, "init", "--json")
    second = cim(d, "init", "--json")
    assert first.returncode == second.returncode == 0
    assert json.loads(first.stdout)["migrations"] == json.loads(second.stdout)["migrations"]
    assert d.stat().st_mode & 0o777 == 0o700


def test_users_add_list_and_audit_verify(data_dir: Path) -> None:
    r = cim(
        data_dir,
        "users",
        "add",
        "anna",
        "--role",
        "consultant",
        "--role",
        "designated",
        "--password-stdin",
        stdin="a good password\n",
    )
    assert r.returncode == 0, r.stderr
    listed = json.loads(cim(data_dir, "users", "list", "--json").stdout)
    assert [(u["name"], u["roles"]) for u in listed] == [("anna", ["consultant", "designated"])]
    verify = cim(data_dir, "audit", "verify", "--json")
    assert verify.returncode == 0
    assert {k: v for k, v in json.loads(verify.stdout).items() if k in ("ok", "entries", "first_broken")} == {
        "ok": True,
        "entries": 1,
        "first_broken": None,
    }
    row = sqlite3.connect(data_dir / "cim.sqlite3").execute("SELECT actor_name, action FROM audit").fetchone()
    assert row[0].startswith("system:users:") and row[1] == "staff.add"


def test_disable_enable_passwd_roles(data_dir: Path) -> None:
    cim(data_dir, "users", "add", "anna", "--role", "consultant", "--password-stdin", stdin="a good password")
    assert cim(data_dir, "users", "disable", "anna").returncode == 0
    assert json.loads(cim(data_dir, "users", "list", "--json").stdout)[0]["disabled"] is True
    assert cim(data_dir, "users", "enable", "anna").returncode == 0
    assert cim(data_dir, "users", "passwd", "anna", "--password-stdin", stdin="another password").returncode == 0
    r = cim(data_dir, "users", "roles", "anna", "--role", "dpo")
    assert r.returncode == 0 and "dpo" in r.stdout
    assert cim(data_dir, "departments", "add", "WSO", "Wydział Spraw Obywatelskich").returncode == 0
    r = cim(
        data_dir,
        "users",
        "add",
        "szef",
        "--role",
        "department_head",
        "--department",
        "WSO",
        "--password-stdin",
        stdin="a good password",
    )
    assert r.returncode == 0, r.stderr


def test_tampered_audit_log_fails_verification(data_dir: Path) -> None:
    for name in ("anna", "piotr", "ewa"):
        cim(data_dir, "users", "add", name, "--role", "consultant", "--password-stdin", stdin="a good password")
    conn = sqlite3.connect(data_dir / "cim.sqlite3")
    conn.execute("DROP TRIGGER audit_no_update")
    conn.execute("UPDATE audit SET actor_name = 'nobody' WHERE id = 2")
    conn.commit()
    conn.close()
    r = cim(data_dir, "audit", "verify", "--json")
    assert r.returncode == 1
    doc = json.loads(r.stdout)
    assert {k: doc[k] for k in ("ok", "entries", "first_broken")} == {"ok": False, "entries": 3, "first_broken": 2}
    assert doc["problems"][0]["kind"] == "chain" and doc["truncated_after"] is None


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (["users", "add", "x", "--role", "chef", "--password-stdin"], "a good password", "not a role"),
        (["users", "add", "x", "--role", "consultant", "--password-stdin"], "", "password is empty"),
        (["users", "add", "x", "--role", "consultant", "--password-stdin"], "y" * 100_000, "at most"),
        (["users", "add", "x y", "--role", "consultant", "--password-stdin"], "a good password", "user name"),
        (
            ["users", "add", "x", "--role", "consultant", "--department", "NOPE", "--password-stdin"],
            "a good password",
            "department",
        ),
        (["users", "disable", "ghost"], None, "no user named"),
        (["users", "roles", "ghost", "--role", "dpo"], None, "no user named"),
    ],
)
def test_bad_input_gives_one_sentence_and_changes_nothing(data_dir: Path, args, stdin, message) -> None:
    before = cim(data_dir, "users", "list", "--json").stdout
    r = cim(data_dir, *args, stdin=stdin)
    assert r.returncode != 0
    assert message in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert cim(data_dir, "users", "list", "--json").stdout == before


def test_duplicate_user(data_dir: Path) -> None:
    cim(data_dir, "users", "add", "anna", "--role", "consultant", "--password-stdin", stdin="a good password")
    r = cim(data_dir, "users", "add", "Anna", "--role", "dpo", "--password-stdin", stdin="a good password")
    assert r.returncode == 1 and "already exists" in r.stderr


def test_commands_on_missing_or_foreign_data(tmp_path: Path) -> None:
    r = cim(tmp_path / "nothing", "users", "list")
    assert r.returncode == 1 and "cim init" in r.stderr
    foreign = tmp_path / "foreign"
    foreign.mkdir(mode=0o700)
    (foreign / "cim.sqlite3").write_bytes(b"\x00garbage" * 1000)
    r = cim(foreign, "audit", "verify")
    assert r.returncode == 1 and "not a usable CIM database" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("chattr") is None,
    reason="needs root and chattr to make a directory nobody can write",
)
def test_data_directory_without_write_permission(tmp_path: Path) -> None:
    target = tmp_path / "data"
    target.mkdir(mode=0o700)
    # root ignores mode bits; the immutable flag stops even root from creating files
    if subprocess.run(["chattr", "+i", str(target)], capture_output=True).returncode != 0:
        pytest.skip("this file system has no immutable flag")
    try:
        r = cim(target, "init")
        assert r.returncode == 1, r.stderr
        assert "cim:" in r.stderr and "Traceback" not in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1
        assert list(target.iterdir()) == []
    finally:
        subprocess.run(["chattr", "-i", str(target)], check=True)


def test_help_on_every_command() -> None:
    for args in (
        ["--help"],
        ["init", "--help"],
        ["users", "--help"],
        ["users", "add", "--help"],
        ["audit", "verify", "--help"],
        ["departments", "add", "--help"],
    ):
        r = subprocess.run([sys.executable, "-m", "cim", *args], capture_output=True, text=True, cwd=ROOT)
        assert r.returncode == 0 and "Usage:" in r.stdout and "--help" in r.stdout
