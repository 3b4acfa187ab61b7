"""`cim users verify`, `passwd --self`, `--temporary`, `mfa-reset` and the account source, as real subprocesses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.fixtures.directory import USERS
from tests.test_cli_foundation import cim


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    d = tmp_path / "data"
    assert cim(d, "init").returncode == 0
    return d


def verify(data_dir: Path, name: str, password: str, *extra: str) -> tuple[int, dict]:
    r = cim(data_dir, "users", "verify", name, "--password-stdin", "--json", *extra, stdin=password + "\n")
    return r.returncode, json.loads(r.stdout)


def test_verify_uses_the_product_default_second_factor_roles(data_dir):
    named = cim(
        data_dir,
        "users",
        "add",
        "ala",
        "--role",
        "designated",
        "--full-name",
        "Alicja Nowak",
        "--password-stdin",
        stdin="alicja's long passphrase",
    )
    assert named.returncode == 1 and "your name" in named.stderr
    assert (
        cim(
            data_dir, "users", "add", "ala", "--role", "designated", "--password-stdin", stdin="a long passphrase x"
        ).returncode
        == 0
    )
    assert (
        cim(
            data_dir, "users", "add", "kasia", "--role", "consultant", "--password-stdin", stdin="another passphrase"
        ).returncode
        == 0
    )
    assert verify(data_dir, "kasia", "another passphrase") == (
        0,
        {"ok": True, "reason": None, "message": "the sign-in would succeed"},
    )
    code, doc = verify(data_dir, "ala", "a long passphrase x")
    assert (code, doc["reason"]) == (1, "second_factor_not_enrolled")
    code, doc = verify(data_dir, "kasia", "a wrong passphrase")
    assert (code, doc["reason"]) == (1, "wrong_password")
    # verify counted nothing: kasia is not locked after many wrong tries
    for _ in range(6):
        verify(data_dir, "kasia", "a wrong passphrase")
    assert verify(data_dir, "kasia", "another passphrase")[0] == 0
    r = cim(data_dir, "audit", "verify", "--json")
    assert json.loads(r.stdout)["ok"]


def test_temporary_password_self_change_and_list(data_dir):
    assert (
        cim(
            data_dir,
            "users",
            "add",
            "marek",
            "--role",
            "consultant",
            "--temporary",
            "--password-stdin",
            stdin="temporary passphrase 1",
        ).returncode
        == 0
    )
    assert verify(data_dir, "marek", "temporary passphrase 1")[1]["reason"] == "password_change_required"
    bad = cim(
        data_dir,
        "users",
        "passwd",
        "marek",
        "--self",
        "--password-stdin",
        stdin="wrong current one\nmy new passphrase\n",
    )
    assert bad.returncode == 1 and "current password is wrong" in bad.stderr
    short = cim(
        data_dir, "users", "passwd", "marek", "--self", "--password-stdin", stdin="temporary passphrase 1\nshort\n"
    )
    assert short.returncode == 1 and "at least 12" in short.stderr
    ok = cim(
        data_dir,
        "users",
        "passwd",
        "marek",
        "--self",
        "--password-stdin",
        stdin="temporary passphrase 1\nmy new passphrase\n",
    )
    assert ok.returncode == 0, ok.stderr
    assert verify(data_dir, "marek", "my new passphrase")[0] == 0
    listed = cim(data_dir, "users", "list")
    assert "marek: consultant (local)" in listed.stdout
    doc = json.loads(cim(data_dir, "users", "list", "--json").stdout)
    assert doc[0]["source"] == "local" and doc[0]["second_factor"] == "none"
    assert cim(data_dir, "users", "mfa-reset", "marek").returncode == 0


def test_verify_says_the_directory_is_unreachable_and_local_accounts_still_work(data_dir, slapd):
    overrides = slapd.settings_overrides()
    role_map = json.loads(overrides.pop("ldap_role_map"))
    lines = [f"{k} = {json.dumps(v) if isinstance(v, (str, int)) else json.dumps(v)}" for k, v in overrides.items()]
    lines.append("[ldap_role_map]")
    lines += [f"{json.dumps(dn)} = {json.dumps(v)}" for dn, v in role_map.items()]
    (data_dir / "cim.toml").write_text("\n".join(lines) + "\n")
    assert (
        cim(
            data_dir,
            "users",
            "add",
            "breakglass",
            "--role",
            "consultant",
            "--password-stdin",
            stdin="an emergency passphrase",
        ).returncode
        == 0
    )
    assert verify(data_dir, "ewa", USERS["ewa"][0]) == (
        0,
        {"ok": True, "reason": None, "message": "the sign-in would succeed"},
    )
    assert verify(data_dir, "olga", USERS["olga"][0])[1]["reason"] == "no_mapped_role"
    assert verify(data_dir, "*)(uid=*", USERS["ewa"][0])[1]["reason"] == "unknown_user"
    listed = cim(data_dir, "users", "list").stdout
    assert "ewa: consultant (directory)" in listed and "breakglass: consultant (local)" in listed
    slapd.stop()
    code, doc = verify(data_dir, "ewa", USERS["ewa"][0])
    assert (code, doc["reason"]) == (1, "directory_unreachable") and "cannot be reached" in doc["message"]
    assert verify(data_dir, "breakglass", "an emergency passphrase")[0] == 0
