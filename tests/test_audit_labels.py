"""Audit outcomes and target kinds in words (store/audit_actions.py): every code the code base writes has a label,
`cim audit list` shows the words in the staff language (Polish by default) and --json keeps the codes."""

from __future__ import annotations

import ast
import asyncio
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from cim.cli import cli
from store import Store
from store.audit_actions import OUTCOME_LABELS, TARGET_KIND_LABELS, outcome_label, target_kind_label
from store.models import Actor
from store.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
#: the methods of store.audit that write an entry: `outcome=` elsewhere (a report row, a session record) is not one
WRITERS = {"append", "record", "guard", "entry"}


def _codes(value: ast.expr) -> set[str]:
    """The string codes a keyword's value can be: a literal, or the literals of `a if c else b` / `a or b`."""
    if isinstance(value, ast.Constant):
        return {value.value} if isinstance(value.value, str) else set()
    if isinstance(value, ast.IfExp):
        return _codes(value.body) | _codes(value.orelse)
    if isinstance(value, ast.BoolOp):
        return set().union(*(_codes(v) for v in value.values))
    return set()


def written_codes() -> tuple[dict[str, str], dict[str, str]]:
    """(outcome -> where, target kind -> where) for every literal written into an audit entry in store/ and webchat/:
    `outcome=` given to an audit writer, `target_kind=` given to any call, and a "target_kind" key of a dict."""
    outcomes: dict[str, str] = {}
    kinds: dict[str, str] = {}
    for package in ("store", "webchat"):
        for path in sorted((ROOT / package).rglob("*.py")):
            where = str(path.relative_to(ROOT))
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Call):
                    name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
                    for kw in node.keywords:
                        if kw.arg == "outcome" and name in WRITERS:
                            outcomes.update({code: f"{where}:{kw.value.lineno}" for code in _codes(kw.value)})
                        elif kw.arg == "target_kind":
                            kinds.update({code: f"{where}:{kw.value.lineno}" for code in _codes(kw.value)})
                elif isinstance(node, ast.Dict):
                    for key, value in zip(node.keys, node.values):
                        if isinstance(key, ast.Constant) and key.value == "target_kind":
                            kinds.update({code: f"{where}:{value.lineno}" for code in _codes(value)})
    return outcomes, kinds


def test_every_outcome_and_target_kind_written_has_a_label():
    outcomes, kinds = written_codes()
    # the walk finds what it is meant to (a walk that finds nothing would pass on anything)
    assert {"ok", "refused", "failed"} <= set(outcomes) and {"conversation", "request", "staff"} <= set(kinds)
    missing = [f"  {w}: outcome {c!r}" for c, w in outcomes.items() if c not in OUTCOME_LABELS]
    missing += [f"  {w}: target kind {c!r}" for c, w in kinds.items() if c not in TARGET_KIND_LABELS]
    assert not missing, "audit codes without a label in store/audit_actions.py:\n" + "\n".join(sorted(missing))


def test_labels_in_polish_and_english_and_an_unknown_code_as_itself():
    assert outcome_label("refused", "pl") == "odmowa" and outcome_label("refused", "en") == "refused"
    assert outcome_label("ok", "pl") == "wykonano" and outcome_label("failed", "pl") == "nieudane"
    assert target_kind_label("conversation", "pl") == "rozmowa" and target_kind_label("request", "pl") == "wniosek"
    assert target_kind_label("staff", "en") == "account" and target_kind_label("topic", "pl") == "temat"
    assert outcome_label("exploded", "pl") == "exploded" and target_kind_label("planet", "pl") == "planet"


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    result = CliRunner().invoke(cli, ["init", "--data-dir", str(tmp_path / "d")])
    assert result.exit_code == 0, result.output
    data = tmp_path / "d"

    async def entries() -> None:
        store = await Store.open(Settings.load(data, env={}))
        try:
            actor = Actor.system("test")
            await store.audit.record(actor, "archive.view", outcome="refused", target_kind="conversation", target_id=7)
            await store.audit.record(actor, "requests.view", target_kind="request", target_id=3, request_id=3)
        finally:
            await store.close()

    asyncio.run(entries())
    return data


def listed(data_dir: Path, lang: str | None, *extra: str) -> list[str]:
    env = {"CIM_STAFF_LANG": lang} if lang else {}
    result = CliRunner().invoke(cli, ["audit", "list", "--data-dir", str(data_dir), *extra], env=env)
    assert result.exit_code == 0, result.output
    return result.stdout.splitlines()


def line_of(lines: list[str], action: str) -> str:
    (line,) = [line for line in lines if f" {action} (" in line]
    return line


@pytest.mark.staff_lang(None)
def test_audit_list_shows_outcome_and_target_kind_in_polish_by_default(data_dir):
    lines = listed(data_dir, None)
    refused, viewed = line_of(lines, "archive.view"), line_of(lines, "requests.view")
    assert refused.endswith("archive.view (archiwum: szczegóły rozmowy) odmowa rozmowa 7"), refused
    assert viewed.endswith("requests.view (wniosek: wgląd) wykonano wniosek 3"), viewed
    assert " refused" not in refused and " conversation " not in refused and " request " not in viewed


@pytest.mark.staff_lang(None)
def test_audit_list_in_english_on_request_and_json_keeps_the_codes(data_dir):
    lines = listed(data_dir, "en")
    assert line_of(lines, "archive.view").endswith(
        "archive.view (archive: conversation details) refused conversation 7"
    )
    assert line_of(lines, "requests.view").endswith("requests.view (request: viewed) ok request 3")
    entries = json.loads("\n".join(listed(data_dir, None, "--json")))
    codes = {e["action"]: (e["outcome"], e["target_kind"], e["target_id"]) for e in entries}
    assert codes["archive.view"] == ("refused", "conversation", "7")
    assert codes["requests.view"] == ("ok", "request", "3")


@pytest.mark.staff_lang(None)
async def test_the_audit_viewer_and_its_entry_show_outcome_and_target_kind_in_polish(tui_app, make_staff, store):
    from textual.widgets import DataTable, Static

    from tests.fixtures.store import PASSWORD
    from tests.fixtures.tui import sign_in, wait_until
    from tui.screens.audit import AuditEntryModal, AuditScreen

    await make_staff("dyrektor", "boi_director")
    actor = Actor.system("test")
    # a failed outcome and a topic target: the two codes the viewer's own tables used to miss
    await store.audit.record(actor, "topic.update", outcome="failed", target_kind="topic", target_id=4)
    app = tui_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await sign_in(pilot, "dyrektor", PASSWORD)
        await pilot.press("f6")
        screen = await wait_until(pilot, lambda: isinstance(app.screen, AuditScreen) and app.screen)
        await wait_until(pilot, lambda: screen.entries, what="the log")
        table = screen.query_one("#audit-table", DataTable)
        rows = [[str(cell) for cell in table.get_row_at(i)] for i in range(table.row_count)]
        (row,) = [r for r in rows if r[3] == "temat: zmiana"]
        assert (row[5], row[6]) == ("nieudane", "temat 4"), row
        table.focus()
        table.move_cursor(row=rows.index(row))
        await pilot.press("enter")
        modal = await wait_until(pilot, lambda: isinstance(app.screen, AuditEntryModal) and app.screen)
        await pilot.pause()
        assert str(modal.query_one("#entry-outcome", Static).render()).endswith("nieudane")
        assert str(modal.query_one("#entry-target", Static).render()).endswith("temat 4")
