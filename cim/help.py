"""`cim --help` in the staff language: the commands' help texts go through the Babel catalog.

The help of a command is its docstring (or `help=`), an option's its `help=`; they are msgids (English, the
source text) and `store/locale/pl/cli_pl.po` holds their Polish. `localise(cli)` runs when click first
formats help or usage (`StaffContext.make_formatter`, set on every command by the root group's `main()`), so
`--help` is printed in `current_language()` (CIM_STAFF_LANG, else Polish). Each command keeps its source
texts, so one process may switch languages (the tests do). Click's own words go through
`StaffHelpFormatter`: "Usage:", the "Options"/"Commands" headings, the help option's "Show this message and
exit.", "[required]", "[default: ...]", and the names of the values options take (`TEXT`, `INTEGER`, `DIRECTORY`, ...:
`TYPE_METAVARS`). Click's error messages are worded in cim/cli.py.

`help_texts(cli)` lists every help msgid of the command tree; tests/test_i18n_catalogs.py checks that each
has a Polish entry.
"""

from __future__ import annotations

import inspect
import re
from typing import Iterator, Sequence

import click

from store.i18n import N_, _

#: Click's own texts that the formatter translates (msgids as click spells them).
CLICK_TEXTS = (
    N_("Usage:"),
    N_("Options"),
    N_("Commands"),
    N_("Show this message and exit."),
    N_("Show the version and exit."),
    N_("required"),
    N_("[OPTIONS]"),
    N_("COMMAND [ARGS]..."),
)
#: Click's names for the value an option takes (its types' metavars, shown after the option in help).
TYPE_METAVARS = {
    "INTEGER RANGE": N_("INTEGER RANGE"),
    "FLOAT RANGE": N_("FLOAT RANGE"),
    "INTEGER": N_("INTEGER"),
    "FLOAT": N_("FLOAT"),
    "TEXT": N_("TEXT"),
    "DIRECTORY": N_("DIRECTORY"),
    "FILENAME": N_("FILENAME"),
    "FILE": N_("FILE"),
    "PATH": N_("PATH"),
    "DATETIME": N_("DATETIME"),
}
_METAVAR = re.compile(r"(?<= )(" + "|".join(re.escape(m) for m in TYPE_METAVARS) + r")(?=$|\.\.\.|,| )")
_EXTRA = re.compile(r"^(?P<help>.*?)(?P<gap>\s*)\[(?P<extra>[^\[\]]*)\]$", re.S)
_DEFAULT = "default: "


def _clean(text: str | None) -> str | None:
    return inspect.cleandoc(text) if text else text


def _tr(text: str | None) -> str | None:
    return _(text) if text else text


class StaffHelpFormatter(click.HelpFormatter):
    """Click's help layout, with its fixed words in the staff language."""

    def write_usage(self, prog: str, args: str = "", prefix: str | None = None) -> None:
        if prefix is None:
            prefix = _("Usage:") + " "
        pieces = args.split(" ") if args else []
        args = " ".join(_(p) if p == "[OPTIONS]" else p for p in pieces)
        args = args.replace("COMMAND [ARGS]...", _("COMMAND [ARGS]..."))
        super().write_usage(prog, args, prefix)

    def write_heading(self, heading: str) -> None:
        super().write_heading(_(heading))

    def write_dl(self, rows: Sequence[tuple[str, str]], col_max: int = 30, col_spacing: int = 2) -> None:
        super().write_dl([(_term(term), _row_help(text)) for term, text in rows], col_max, col_spacing)


def _term(term: str) -> str:
    """An option's term (`--limit INTEGER RANGE`) with click's value names in the staff language."""
    return _METAVAR.sub(lambda m: _(TYPE_METAVARS[m.group(1)]), term)


def _row_help(text: str) -> str:
    """An option's help as click composed it: its text, then `[required]`/`[default: x]` extras."""
    if not text:
        return text
    match = _EXTRA.match(text)
    if match is None or (match.group("help") and match.group("gap") != "  "):
        return _(text)
    extras = []
    for item in match.group("extra").split("; "):
        if item.startswith(_DEFAULT):
            extras.append(_("default: {default}").format(default=item[len(_DEFAULT) :]))
        else:
            extras.append(_(item))
    head = _(match.group("help")) if match.group("help") else ""
    return f"{head}{match.group('gap')}[{'; '.join(extras)}]"


class StaffContext(click.Context):
    """Localises the help texts when click first formats help or usage (a command that prints neither
    does not load the catalog for them)."""

    formatter_class = StaffHelpFormatter

    def make_formatter(self) -> click.HelpFormatter:
        localise(self.find_root().command)
        return super().make_formatter()


def _walk(command: click.Command, path: str = "") -> Iterator[tuple[str, click.Command]]:
    yield path, command
    if isinstance(command, click.Group):
        for name in sorted(command.commands):
            yield from _walk(command.commands[name], f"{path} {name}".strip())


def help_texts(root: click.Command) -> dict[str, str]:
    """msgid -> where it is used, for every help text of `root`'s command tree (source texts)."""
    found: dict[str, str] = {}
    for path, command in _walk(root):
        source = _source(command)
        where = path or "(the group)"
        for text in (source["help"], source["short_help"], source["epilog"]):
            if text:
                found.setdefault(text, where)
        for param_name, text in source["params"].items():
            if text:
                found.setdefault(text, f"{where} {param_name}")
    return found


def _source(command: click.Command) -> dict:
    """The English texts of a command, kept on it the first time it is localised."""
    kept = command.__dict__.get("_cim_source")
    if kept is None:
        params = {}
        for param in command.params:
            if isinstance(param, click.Option):
                params[param.name] = _clean(param.help)
        help_text = command.help.partition("\f")[0] if command.help else command.help
        kept = {
            "help": _clean(help_text),
            "short_help": _clean(command.short_help),
            "epilog": _clean(command.epilog),
            "params": params,
        }
        command.__dict__["_cim_source"] = kept
    return kept


def localise(root: click.Command) -> None:
    """Put every help text of the tree in the current staff language (before click parses arguments)."""
    for _path, command in _walk(root):
        source = _source(command)
        command.context_class = StaffContext
        command.help = _tr(source["help"])
        command.short_help = _tr(source["short_help"])
        command.epilog = _tr(source["epilog"])
        for param in command.params:
            if isinstance(param, click.Option) and param.name in source["params"]:
                param.help = _tr(source["params"][param.name])


class StaffGroup(click.Group):
    """The root `cim` group: every command of the tree makes a StaffContext, which localises the help
    texts before click prints any (`--help`, a usage error)."""

    def main(self, *args, **kwargs):
        for _path, command in _walk(self):
            command.context_class = StaffContext
        return super().main(*args, **kwargs)
