"""`cim requests list/show/export-csv` on a real data directory, through click's runner."""

from __future__ import annotations

import asyncio
import csv
import json

import pytest
from click.testing import CliRunner

from cim.cli import cli
from store import Store
from tests.fixtures.requests import call_request, chat_request
from tests.fixtures.store import PASSWORD, SYSTEM


@pytest.fixture
def data_dir(settings, clock):
    async def seed():
        st = await Store.open(settings, create=True, clock=clock)
        try:
            registrar = (await st.accounts.add_staff(SYSTEM, "rejestr", ["designated"], PASSWORD)).as_actor()
            await st.requests.register(registrar, call_request(requester_name="=cmd|' /C calc'!A0"))
            chat = await st.requests.register(registrar, chat_request())
            await st.requests.withdraw(registrar, chat.id)
        finally:
            await st.close()

    asyncio.run(seed())
    return str(settings.data_dir)


def invoke(*args):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_show_unknown_number_is_one_sentence_on_stderr(data_dir):
    result = invoke("requests", "show", "CIM/1999/0042", "--data-dir", data_dir)
    assert result.exit_code == 1
    assert result.stderr.strip() == "cim: no request numbered 'CIM/1999/0042'"
    assert result.stdout == ""


def test_export_csv_refuses_to_overwrite(data_dir, tmp_path):
    target = tmp_path / "register.csv"
    target.write_text("keep me")
    result = invoke("requests", "export-csv", str(target), "--data-dir", data_dir)
    assert result.exit_code == 1 and "already exists" in result.stderr
    assert target.read_text() == "keep me"


def test_bad_state_filter_is_rejected(data_dir):
    result = invoke("requests", "list", "--state", "lost", "--data-dir", data_dir)
    assert result.exit_code == 2 and "lost" in result.stderr


def test_list_json_and_filters(data_dir):
    result = invoke("requests", "list", "--json", "--data-dir", data_dir)
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert [r["number"] for r in doc["requests"]] == ["CIM/2026/0001", "CIM/2026/0002"]
    assert {r["state"] for r in doc["requests"]} == {"registered", "withdrawn"}
    open_only = json.loads(invoke("requests", "list", "--state", "open", "--json", "--data-dir", data_dir).stdout)
    assert [r["number"] for r in open_only["requests"]] == ["CIM/2026/0001"]
    text = invoke("requests", "list", "--channel", "chat", "--data-dir", data_dir).stdout
    assert "CIM/2026/0002" in text and "CIM/2026/0001" not in text


def test_export_csv_and_show(data_dir, tmp_path):
    target = tmp_path / "register.csv"
    result = invoke("requests", "export-csv", str(target), "--data-dir", data_dir)
    assert result.exit_code == 0, result.stderr
    assert "wrote 2 requests" in result.stdout
    rows = list(csv.DictReader(target.open(encoding="utf-8")))
    assert [r["number"] for r in rows] == ["CIM/2026/0001", "CIM/2026/0002"]
    assert rows[0]["requester_name"].startswith("'=")  # no formula injection into the director's spreadsheet
    assert oct(target.stat().st_mode & 0o777) == "0o600"
    shown = json.loads(invoke("requests", "show", "CIM/2026/0002", "--json", "--data-dir", data_dir).stdout)
    assert shown["state"] == "withdrawn" and shown["next_actions"] == []


def test_show_json_says_what_the_state_allows_and_what_the_host_account_may_do(data_dir, tmp_path):
    shown = json.loads(invoke("requests", "show", "CIM/2026/0001", "--json", "--data-dir", data_dir).stdout)
    assert shown["next_actions"] == ["link", "unlink", "opinion", "extend", "withdraw"]
    # the host account names no person: it may withdraw, not link, give an opinion or sign a letter
    assert shown["allowed_actions"] == ["withdraw"]
    target = tmp_path / "register.csv"
    assert invoke("requests", "export-csv", str(target), "--data-dir", data_dir).exit_code == 0
    first = next(csv.DictReader(target.open(encoding="utf-8")))
    assert (first["receipt_verified"], first["conversation_date"], first["conversation_time"]) == (
        "0",
        "2026-02-24",
        "10:20",
    )
    assert first["requester_address"] == "ul. Łąkowa 5/7, 71-001 Szczecin" and first["delivery"] == "post"
