"""English leftovers in a Polish office (issue 16): click's own error sentences of the `cim` command ("Error:
Missing option ...", "Usage:", "Try ... for help.") and Textual's command palette ("No matches found") speak
the staff language: Polish by default, English with CIM_STAFF_LANG=en."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner
from textual.command import CommandList, CommandPalette

from cim.cli import StaffCli, cli, click_message
from store.i18n import _
from tests.fixtures.store import PASSWORD
from tests.fixtures.tui import SIZE, sign_in, wait_until
from tui.widgets.command_palette import StaffCommandPalette

ROOT = Path(__file__).resolve().parents[1]

#: (arguments, Polish error line, English error line): each of click's sentences a person meets.
REFUSED = [
    (["users", "add"], "Błąd: Brak wymaganego argumentu 'NAME'.", "Error: Missing argument 'NAME'."),
    (
        ["users", "add", "anna", "--password-stdin"],
        "Błąd: Brak wymaganej opcji '--role'.",
        "Error: Missing option '--role'.",
    ),
    (
        ["initt"],
        "Błąd: Nie ma polecenia 'initt'. Czy chodziło o 'init'?",
        "Error: No such command 'initt'. Did you mean 'init'?",
    ),
    (["init", "--bogus"], "Błąd: Nie ma opcji '--bogus'.", "Error: No such option '--bogus'."),
    (
        ["init", "a", "b"],
        "Błąd: Nieoczekiwane dodatkowe argumenty (a b)",
        "Error: Got unexpected extra arguments (a b)",
    ),
    (
        ["users", "add", "x", "--role"],
        "Błąd: Opcja '--role' wymaga wartości.",
        "Error: Option '--role' requires an argument.",
    ),
    (  # a value click's own type refuses: its sentence is worded again, never passed through in English
        ["audit", "list", "--limit", "abc"],
        "Błąd: Nieprawidłowa wartość '--limit': 'abc' nie jest liczbą całkowitą.",
        "Error: Invalid value for '--limit': 'abc' is not a whole number.",
    ),
    (
        ["audit", "list", "--limit", "0"],
        "Błąd: Nieprawidłowa wartość '--limit': 0 jest poza zakresem 1<=x<=100000.",
        "Error: Invalid value for '--limit': 0 is not in the range 1<=x<=100000.",
    ),
]


def run(args: list[str], lang: str):
    return CliRunner().invoke(cli, args, prog_name="cim", env={"CIM_STAFF_LANG": lang})


@pytest.mark.staff_lang("pl")
@pytest.mark.parametrize("args, polish, english", REFUSED)
def test_clicks_errors_are_polish_by_default_and_english_on_request(args, polish, english) -> None:
    pl = run(args, "pl")
    assert pl.exit_code == 2, pl.output
    assert pl.output.strip().splitlines()[-1] == polish, pl.output
    assert "Error:" not in pl.output and "Usage:" not in pl.output and "for help" not in pl.output
    en = run(args, "en")
    assert en.exit_code == 2 and en.output.strip().splitlines()[-1] == english, en.output


@pytest.mark.staff_lang("pl")
def test_a_usage_error_shows_the_usage_and_the_help_hint_in_the_staff_language() -> None:
    pl = run(["users", "add"], "pl").output.splitlines()
    assert pl[:2] == ["Użycie: cim users add [OPCJE] NAME", "Pomoc: 'cim users add --help'."], pl
    en = run(["users", "add"], "en").output.splitlines()
    assert en[:2] == ["Usage: cim users add [OPTIONS] NAME", "Try 'cim users add --help' for help."], en


@pytest.mark.staff_lang(None)
def test_the_real_command_refuses_in_polish_by_default_on_stderr(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "CIM_STAFF_LANG"}
    refused = subprocess.run(
        [sys.executable, "-m", "cim", "users", "add"], capture_output=True, text=True, env=env, cwd=ROOT, timeout=60
    )
    assert refused.returncode == 2 and refused.stdout == ""
    assert refused.stderr.splitlines() == [
        "Użycie: cim users add [OPCJE] NAME",
        "Pomoc: 'cim users add --help'.",
        "",
        "Błąd: Brak wymaganego argumentu 'NAME'.",
    ], refused.stderr
    english = subprocess.run(
        [sys.executable, "-m", "cim", "users", "add"],
        capture_output=True,
        text=True,
        env={**env, "CIM_STAFF_LANG": "en"},
        cwd=ROOT,
        timeout=60,
    )
    assert english.returncode == 2 and english.stderr.splitlines()[-1] == "Error: Missing argument 'NAME'."


@pytest.mark.staff_lang("pl")
def test_a_usage_error_the_cli_words_itself_keeps_its_words_under_the_translated_frame() -> None:
    pl = run(["report", "--from", "2026-03-01"], "pl")
    assert pl.exit_code == 2 and pl.output.splitlines()[-1] == "Błąd: " + _("--from and --to are required")
    assert pl.output.startswith("Użycie: cim report")
    en = run(["report", "--from", "2026-03-01"], "en")
    assert en.exit_code == 2 and en.output.splitlines()[-1] == "Error: --from and --to are required"


def test_textuals_palette_still_has_what_the_staff_palette_replaces() -> None:
    """StaffCommandPalette rewrites one private method of Textual's palette: fail loudly when Textual changes it."""
    import inspect

    source = inspect.getsource(CommandPalette._start_no_matches_countdown)
    assert '"No matches found"' in source
    for name in ("_stop_no_matches_countdown", "_NO_MATCHES", "_NO_MATCHES_COUNTDOWN"):
        assert hasattr(CommandPalette, name), name
    assert "_no_matches_timer" in source and "_list_visible" in source


async def _no_matches_line(tui_app, make_staff) -> str:
    await make_staff("kierownik", "cim_manager")
    app = tui_app()
    async with app.run_test(size=SIZE) as pilot:
        await sign_in(pilot, "kierownik", PASSWORD)
        await pilot.press("ctrl+p")
        palette = await wait_until(
            pilot, lambda: isinstance(app.screen, StaffCommandPalette) and app.screen, what="the command palette"
        )
        await pilot.press(*"qqzzxxq")
        options = palette.query_one(CommandList)

        def shown() -> str | None:
            if options.option_count and options.get_option_at_index(0).id == palette._NO_MATCHES:
                return str(options.get_option_at_index(0).prompt.renderable)
            return None

        line = await wait_until(pilot, shown, what="the no-matches line", timeout=5)
        await pilot.press("escape")
        return line


@pytest.mark.staff_lang("pl")
async def test_the_palette_says_no_matches_in_polish(tui_app, make_staff) -> None:
    assert await _no_matches_line(tui_app, make_staff) == "Nie znaleziono pasujących poleceń"


@pytest.mark.staff_lang("en")
async def test_the_palette_says_no_matches_in_english_with_cim_staff_lang_en(tui_app, make_staff) -> None:
    assert await _no_matches_line(tui_app, make_staff) == "No matches found"


@pytest.mark.staff_lang("pl")
def test_an_interrupted_command_says_so_in_the_staff_language(monkeypatch) -> None:
    """Ctrl+C inside a command: click would print "Aborted!" in English; the staff read it in their language."""
    command = cli.commands["init"]

    def interrupted(**kwargs) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(command, "callback", interrupted)
    pl = run(["init"], "pl")
    assert pl.exit_code == 1 and pl.output.strip().splitlines()[-1] == "Przerwano.", pl.output
    assert "Aborted" not in pl.output
    en = run(["init"], "en")
    assert en.exit_code == 1 and en.output.strip().splitlines()[-1] == "Aborted.", en.output


@click.group(cls=StaffCli)
def _counted() -> None:
    """A root like `cim`'s, with the option shapes whose click sentences carry a count."""


@_counted.command("pair")
@click.option("--span", nargs=2, type=int)
@click.option("--five", nargs=5)
@click.argument("point", nargs=2, required=False)
def _pair(span: Any, five: Any, point: Any) -> None:
    click.echo("ok")


#: (arguments, Polish line, English line): click's counted sentences in Polish plural forms, never in English.
COUNTED = [
    (
        ["pair", "--span", "1"],
        "Błąd: Opcja '--span' wymaga 2 argumentów.",
        "Error: Option '--span' requires 2 arguments.",
    ),
    (
        ["pair", "--five", "1", "2"],
        "Błąd: Opcja '--five' wymaga 5 argumentów.",
        "Error: Option '--five' requires 5 arguments.",
    ),
]


@pytest.mark.staff_lang("pl")
@pytest.mark.parametrize("args, polish, english", COUNTED)
def test_clicks_counted_sentences_use_the_staff_languages_plural_forms(args, polish, english) -> None:
    pl = CliRunner().invoke(_counted, args, prog_name="cim", env={"CIM_STAFF_LANG": "pl"})
    assert pl.exit_code == 2 and pl.output.strip().splitlines()[-1] == polish, pl.output
    en = CliRunner().invoke(_counted, args, prog_name="cim", env={"CIM_STAFF_LANG": "en"})
    assert en.exit_code == 2 and en.output.strip().splitlines()[-1] == english, en.output


@pytest.mark.staff_lang("pl")
@pytest.mark.parametrize(
    "given, polish",
    [
        ("1 was given", "Wymaga 2 wartości, a podano 1."),
        ("3 were given", "Wymaga 2 wartości, a podano 3."),
    ],
)
def test_a_wrong_number_of_values_is_said_in_polish(given: str, polish: str) -> None:
    """click says these from a value given programmatically (a default or an environment tuple): the sentence
    arrives in a BadParameter and is worded again like any refused value."""
    assert click_message(click.BadParameter(f"Takes 2 values but {given}.")) == f"Nieprawidłowa wartość: {polish}"


def _every_command_path() -> list[list[str]]:
    from cim.help import _walk

    return [path.split() for path, command in _walk(cli) if path and not isinstance(command, click.Group)]


@pytest.mark.staff_lang("pl")
def test_the_value_names_of_options_are_polish_in_every_commands_help() -> None:
    """`--limit INTEGER RANGE`, `--data-dir DIRECTORY`: click's value names are words of the staff language."""
    from cim.help import TYPE_METAVARS

    paths = _every_command_path()
    assert len(paths) > 30
    english = {}
    for path in paths:
        shown = run([*path, "--help"], "pl")
        assert shown.exit_code == 0, (path, shown.output)
        for line in shown.output.splitlines():
            option = line.strip().split("  ")[0]
            if option.startswith("-"):
                left = [m for m in TYPE_METAVARS if f" {m}" in option]
                if left:
                    english[" ".join(path)] = option
    assert not english, english
    assert "--data-dir KATALOG" in run(["audit", "list", "--help"], "pl").output
    assert "--data-dir DIRECTORY" in run(["audit", "list", "--help"], "en").output
