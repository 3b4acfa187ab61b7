"""The staff language at the edges: `cim ... --help`, the CLI's refusals and the TUI's show the store's
errors in Polish by default and in English with CIM_STAFF_LANG=en; JSON documents do not change."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from cim.cli import cli
from cim.help import help_texts
from store import i18n
from store.errors import AlreadyExists, InvalidInput, Text
from store.i18n import N_
from tests.fixtures.store import PASSWORD
from tests.fixtures.tui import SIZE, sign_in, wait_until

ROOT = Path(__file__).resolve().parents[1]


def command_paths(command=cli, path=()) -> list[tuple[str, ...]]:
    paths = [path]
    for name in sorted(getattr(command, "commands", {})):
        paths += command_paths(command.commands[name], path + (name,))
    return paths


def command_at(path: tuple[str, ...]):
    command = cli
    for name in path:
        command = command.commands[name]
    return command


def first_words(text: str) -> str:
    """The help's opening words, as click prints them (wrapped lines joined)."""
    return " ".join(text.split()[:2])


def run_help(path: tuple[str, ...], lang: str) -> str:
    result = CliRunner().invoke(cli, [*path, "--help"], prog_name="cim", env={"CIM_STAFF_LANG": lang})
    assert result.exit_code == 0, result.output
    return " ".join(result.output.split())


@pytest.mark.parametrize("path", command_paths(), ids=lambda p: " ".join(p) or "cim")
def test_every_commands_help_is_polish_by_default_and_english_on_request(path) -> None:
    command = command_at(path)
    polish = run_help(path, "pl")
    assert polish.startswith("Użycie: cim") and "Opcje:" in polish and "Pokaż tę pomoc i zakończ." in polish
    assert "Usage:" not in polish and "Show this message and exit." not in polish
    source = command.__dict__["_cim_source"]
    shown = [source["help"], *(source["params"].get(p.name) for p in command.params if not getattr(p, "hidden", True))]
    for text in shown:
        if text:
            translated = i18n.translator("pl").gettext(text)
            assert translated != text, text
            assert first_words(translated) in polish, (path, text)
    english = run_help(path, "en")
    assert english.startswith("Usage: cim") and "Options:" in english and "Show this message and exit." in english
    for text in shown:
        if text:
            assert first_words(text) in english, (path, text)
    if getattr(command, "commands", None):
        assert "Polecenia:" in polish and "Commands:" in english


def test_clicks_own_words_in_polish() -> None:
    polish = run_help(("users", "add"), "pl")
    assert "[OPCJE] NAME" in polish and "[wymagane]" in polish and "[required]" not in polish
    assert "[domyślnie: info]" in run_help(("serve",), "pl")
    assert "POLECENIE [ARGUMENTY]..." in run_help((), "pl")
    assert "[default: info]" in run_help(("serve",), "en")


def test_every_help_text_of_the_command_tree_is_found() -> None:
    texts = help_texts(cli)
    assert len(texts) > 100
    assert "List departments." in texts and "Print one JSON document on stdout." in texts
    assert any(t.startswith("Say whether NAME could sign in") for t in texts)  # a multi-paragraph docstring


def cim(data_dir: Path, *args: str, stdin: str | None = None, lang: str | None = None):
    env = {**os.environ, "CIM_PASSWORD_PROFILE": "fast"}
    env.pop("CIM_DATA_DIR", None)
    env.pop("CIM_STAFF_LANG", None)
    if lang:
        env["CIM_STAFF_LANG"] = lang
    return subprocess.run(
        [sys.executable, "-m", "cim", *args, "--data-dir", str(data_dir)],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
    )


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    d = tmp_path / "data"
    assert cim(d, "init").returncode == 0
    assert (
        cim(d, "users", "add", "anna", "--role", "consultant", "--password-stdin", stdin="a good password\n").returncode
        == 0
    )
    return d


def test_the_real_command_speaks_polish_by_default(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "CIM_STAFF_LANG"}
    polish = subprocess.run(
        [sys.executable, "-m", "cim", "users", "--help"], capture_output=True, text=True, env=env, cwd=ROOT, timeout=60
    )
    assert polish.returncode == 0 and "Użycie: cim users" in polish.stdout and "Konta personelu" in polish.stdout
    english = subprocess.run(
        [sys.executable, "-m", "cim", "users", "--help"],
        capture_output=True,
        text=True,
        env={**env, "CIM_STAFF_LANG": "en"},
        cwd=ROOT,
        timeout=60,
    )
    assert "Usage: cim users" in english.stdout and "Staff accounts: add, list" in english.stdout


def test_a_store_refusal_on_the_command_line_is_polish_by_default_english_on_request(data_dir: Path) -> None:
    polish = cim(
        data_dir, "users", "add", "anna", "--role", "consultant", "--password-stdin", stdin="another good password\n"
    )
    assert polish.returncode == 1 and polish.stderr.strip() == "cim: użytkownik 'anna' już istnieje"
    english = cim(
        data_dir,
        "users",
        "add",
        "anna",
        "--role",
        "consultant",
        "--password-stdin",
        stdin="another good password\n",
        lang="en",
    )
    assert english.returncode == 1 and english.stderr.strip() == "cim: user 'anna' already exists"
    short = cim(data_dir, "users", "passwd", "anna", "--password-stdin", stdin="short\n")
    assert short.returncode == 1 and short.stderr.strip() == "cim: hasło musi mieć co najmniej 12 znaków"
    missing = cim(data_dir.parent / "nowhere", "users", "list", lang="en")
    assert missing.returncode == 1 and "does not exist" in missing.stderr
    # a label inside the sentence is translated with it
    polish = cim(data_dir, "holds", "add", "1", "--legal-basis", "", "--case", "x")
    assert polish.returncode == 1, polish.stderr
    assert "podstawa prawna" in polish.stderr and "legal basis" not in polish.stderr
    english = cim(data_dir, "holds", "add", "1", "--legal-basis", "", "--case", "x", lang="en")
    assert "the legal basis is required for a hold" in english.stderr


def test_json_documents_do_not_change_with_the_language(data_dir: Path) -> None:
    polish = cim(data_dir, "users", "verify", "anna", "--password-stdin", "--json", stdin="a wrong password\n")
    english = cim(
        data_dir, "users", "verify", "anna", "--password-stdin", "--json", stdin="a wrong password\n", lang="en"
    )
    assert polish.returncode == english.returncode == 1
    assert (
        json.loads(polish.stdout)
        == json.loads(english.stdout)
        == {"ok": False, "reason": "wrong_password", "message": "wrong user name or password"}
    )
    human = cim(data_dir, "users", "verify", "anna", "--password-stdin", stdin="a wrong password\n")
    assert human.stdout.strip() == "anna: odmowa (wrong_password): błędna nazwa użytkownika lub hasło"
    assert cim(data_dir, "users", "list", "--json").stdout == cim(data_dir, "users", "list", "--json", lang="en").stdout


def test_an_error_renders_in_the_language_in_force_when_read() -> None:
    error = AlreadyExists(N_("user {name!r} already exists"), name="anna")
    i18n.set_language("pl")
    assert error.message == str(error) == "użytkownik 'anna' już istnieje"
    i18n.set_language("en")
    assert error.message == "user 'anna' already exists"
    assert error.message_in("pl") == "użytkownik 'anna' już istnieje"
    labelled = InvalidInput(N_("{what} is required for a hold"), what=Text(N_("the legal basis")))
    assert labelled.message_in("pl") == "pole „podstawa prawna” jest wymagane do wstrzymania usunięcia"
    assert labelled.message_in("en") == "the legal basis is required for a hold"
    composed = InvalidInput("a sentence {with braces} composed elsewhere")  # no params: shown as it is
    assert composed.message_in("pl") == "a sentence {with braces} composed elsewhere"


async def _new_account_refused(tui_app, signed_in_as: str) -> str:
    from textual.widgets import DataTable

    app = tui_app()
    async with app.run_test(size=SIZE) as pilot:
        await sign_in(pilot, signed_in_as, PASSWORD)
        await pilot.press("f9")
        await wait_until(pilot, lambda: type(app.screen).__name__ == "AccountsScreen", what="the accounts screen")
        table = app.screen.query_one("#accounts-table", DataTable)
        await wait_until(pilot, lambda: table.row_count > 0, what="the staff list")
        await pilot.press("a")
        await wait_until(pilot, lambda: type(app.screen).__name__ == "NewStaffModal", what="the dialog")
        modal = app.screen
        modal.query_one("#name").value = signed_in_as  # exists already
        modal.query_one("#password").value = "a long enough password"
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: bool(modal.error), what="the refusal, shown in the dialog")
        return modal.error


@pytest.mark.staff_lang("pl")
async def test_the_tui_shows_a_store_refusal_in_polish(tui_app, make_staff) -> None:
    await make_staff("root", "it_admin")
    assert "użytkownik 'root' już istnieje" in await _new_account_refused(tui_app, "root")


async def test_the_tui_shows_a_store_refusal_in_english_with_cim_staff_lang_en(tui_app, make_staff) -> None:
    await make_staff("root", "it_admin")
    assert "user 'root' already exists" in await _new_account_refused(tui_app, "root")


@pytest.mark.staff_lang("pl")
async def test_the_tui_speaks_the_signed_in_persons_language(tui_app, make_staff, store) -> None:
    root = await make_staff("root", "it_admin")
    await store.accounts.set_own_language(root.as_actor(), "en")  # an English-speaking person, Polish office
    assert "user 'root' already exists" in await _new_account_refused(tui_app, "root")
