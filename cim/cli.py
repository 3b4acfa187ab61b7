"""The `cim` command group; each area's commands live in a module of cim/commands/."""

from __future__ import annotations

import re
import sys
from typing import Any, Callable, Sequence

import click

from cim.commands import audit, core, users
from cim.commands import serve
from cim.commands import requests as requests_commands
from cim.commands import ingest, notices
from cim.commands import tui as tui_commands
from cim.commands import retention
from cim.commands import traffic
from cim.commands import listen
from cim.commands import keys as keys_commands
from cim.commands import desk
from cim.help import StaffGroup
from store.i18n import N_, _, ngettext

#: Click's own error sentences (click 8.4 exceptions.py, core.py, parser.py), rebuilt from what each
#: exception carries and said in the staff language. Click marks them with the standard library's gettext but
#: ships no catalog, so without this a Polish office read "Error: Missing option ..." in English.
CLICK_ERRORS = (
    N_("Error: {message}"),
    N_("Try '{command} {option}' for help."),
    N_("Missing option{hint}."),
    N_("Missing argument{hint}."),
    N_("Missing parameter{hint}."),
    N_("No such option {name}."),
    N_("No such command {name}."),
    N_("Option {name} requires an argument."),
    N_("Option {name} does not take a value."),
    N_("Missing command."),
    N_("Invalid value for {hint}: {message}"),
    N_("Invalid value: {message}"),
)
#: Click's sentences of a plain UsageError, which keeps no data apart from the sentence itself.
_EXTRA_ARGUMENTS = re.compile(r"^Got unexpected extra arguments? \((?P<args>.*)\)$", re.S)


def _hints(hint: Sequence[str] | str | None) -> str:
    if hint is not None and not isinstance(hint, str):
        return " / ".join(repr(x) for x in hint)
    return hint or ""


def _possibilities(found: list[str] | None) -> str:
    if not found:
        return ""
    listed = ", ".join(repr(p) for p in sorted(found))
    return " " + ngettext("Did you mean {possibility}?", "(Did you mean one of: {possibilities}?)", len(found)).format(
        possibility=listed, possibilities=listed
    )


#: click's sentences for a value its types refuse (click/types.py), already formatted: matched, then worded again.
_VALUE_SENTENCES = [
    (re.compile(r"^(?P<value>.+) is not a valid integer\.$", re.S), N_("{value} is not a whole number.")),
    (re.compile(r"^(?P<value>.+) is not a valid float\.$", re.S), N_("{value} is not a number.")),
    (re.compile(r"^(?P<value>.+) is not a valid integer range\.$", re.S), N_("{value} is not a whole number.")),
    (re.compile(r"^(?P<value>.+) is not a valid float range\.$", re.S), N_("{value} is not a number.")),
    (re.compile(r"^(?P<value>.+) is not one of (?P<choices>.+)\.$", re.S), N_("{value} is not one of {choices}.")),
    (
        re.compile(r"^(?P<value>.+) is not in the range (?P<range>.+)\.$", re.S),
        N_("{value} is not in the range {range}."),
    ),
    (
        re.compile(r"^(?:Path|File|Directory) (?P<value>.+) does not exist\.$", re.S),
        N_("The path {value} does not exist."),
    ),
    (
        re.compile(r"^(?:Path|File) (?P<value>.+) is a directory\.$", re.S),
        N_("The path {value} is a folder, not a file."),
    ),
    (
        re.compile(r"^(?:Path|Directory) (?P<value>.+) is a file\.$", re.S),
        N_("The path {value} is a file, not a folder."),
    ),
    (re.compile(r"^(?P<value>.+) is not (?P<choice>'.*')\.$", re.S), N_("{value} is not {choice}.")),
]


#: click's sentences with a count in them (click words them with ngettext): matched, then worded again with
#: the staff language's plural forms (Polish has three: 2 argumenty, 5 argumentów).
_OPTION_ARGUMENTS = re.compile(r"^Option (?P<name>.+) requires (?P<nargs>\d+) arguments\.$", re.S)
_COUNTED_VALUE_SENTENCES: list[tuple[re.Pattern[str], str, Callable[[int], str]]] = [
    (
        re.compile(r"^Takes (?P<nargs>\d+) values but (?P<len>\d+) (?:was|were) given\.$", re.S),
        "len",
        lambda n: ngettext(
            "Takes {nargs} values but {len} was given.", "Takes {nargs} values but {len} were given.", n
        ),
    ),
    (
        re.compile(r"^(?P<len_type>\d+) values are required, but (?P<len_value>\d+) (?:was|were) given\.$", re.S),
        "len_value",
        lambda n: ngettext(
            "{len_type} values are required, but {len_value} was given.",
            "{len_type} values are required, but {len_value} were given.",
            n,
        ),
    ),
]


def _value_message(message: str) -> str:
    """A refused value's sentence in the staff language: click's own (matched) or CIM's (a catalog msgid)."""
    for pattern, template in _VALUE_SENTENCES:
        found = pattern.match(message)
        if found:
            return _(template).format(**found.groupdict())
    for pattern, count, sentence in _COUNTED_VALUE_SENTENCES:
        found = pattern.match(message)
        if found:
            return sentence(int(found.group(count))).format(**found.groupdict())
    return _(message)


def click_message(exc: click.ClickException) -> str:
    """Click's sentence for `exc` in the staff language (a sentence CIM wrote itself is already translated)."""
    ctx = getattr(exc, "ctx", None)
    param = getattr(exc, "param", None)
    if isinstance(exc, click.MissingParameter):
        hint = _hints(exc.param_hint if exc.param_hint is not None else param.get_error_hint(ctx) if param else None)
        kind = exc.param_type or (param.param_type_name if param is not None else "parameter")
        template = {"option": N_("Missing option{hint}."), "argument": N_("Missing argument{hint}.")}.get(
            kind, N_("Missing parameter{hint}.")
        )
        extra = " ".join(
            x for x in (exc.message, param.type.get_missing_message(param=param, ctx=ctx) if param else "") if x
        )
        return _(template).format(hint=f" {hint}" if hint else "") + (f" {extra}" if extra else "")
    if isinstance(exc, click.NoSuchOption):
        return _("No such option {name}.").format(name=repr(exc.option_name)) + _possibilities(exc.possibilities)
    if isinstance(exc, click.exceptions.NoSuchCommand):
        return _("No such command {name}.").format(name=repr(exc.command_name)) + _possibilities(exc.possibilities)
    if isinstance(exc, click.BadOptionUsage):
        for template in (N_("Option {name} requires an argument."), N_("Option {name} does not take a value.")):
            if exc.message == template.format(name=repr(exc.option_name)):
                return _(template).format(name=repr(exc.option_name))
        several = _OPTION_ARGUMENTS.match(exc.message)
        if several:
            nargs = int(several.group("nargs"))
            return ngettext(
                "Option {name} requires {nargs} argument.", "Option {name} requires {nargs} arguments.", nargs
            ).format(name=repr(exc.option_name), nargs=nargs)
        return _(exc.message)
    if isinstance(exc, click.BadParameter):
        which = exc.param_hint if exc.param_hint is not None else param.get_error_hint(ctx) if param else None
        if which is None:
            return _("Invalid value: {message}").format(message=_value_message(exc.message))
        return _("Invalid value for {hint}: {message}").format(hint=_hints(which), message=_value_message(exc.message))
    if isinstance(exc, click.UsageError):
        surplus = _EXTRA_ARGUMENTS.match(exc.message)
        if surplus:
            count = len(surplus.group("args").split(" "))
            return ngettext(
                "Got unexpected extra argument ({args})", "Got unexpected extra arguments ({args})", count
            ).format(args=surplus.group("args"))
        return _(exc.message)
    return exc.format_message()


class StaffClickError(click.ClickException):
    """A click error as click shows it (the usage, the help hint, "Error: ..."), in the staff language."""

    def __init__(self, original: click.ClickException) -> None:
        super().__init__(click_message(original))
        self.original = original
        self.exit_code = original.exit_code
        self.ctx: click.Context | None = getattr(original, "ctx", None)

    def show(self, file: Any = None) -> None:
        ctx = self.ctx
        if isinstance(self.original, click.UsageError) and ctx is not None:
            hint = ""
            if ctx.command.get_help_option(ctx) is not None:
                option = max(ctx.command.get_help_option_names(ctx), key=len)
                hint = _("Try '{command} {option}' for help.").format(command=ctx.command_path, option=option) + "\n"
            click.echo(f"{ctx.get_usage()}\n{hint}", file=file, err=file is None, color=ctx.color)
        click.echo(_("Error: {message}").format(message=self.message), file=file, err=file is None)


def _in_staff_language(exc: click.ClickException) -> click.ClickException:
    if isinstance(exc, (StaffClickError, click.exceptions.NoArgsIsHelpError)):  # the latter is the help itself
        return exc
    return StaffClickError(exc)


class StaffCli(StaffGroup):
    """The root group: click's own errors (a missing option, an unknown command, ...) in the staff language.
    Every parse of the tree happens in the root's make_context or below its invoke, so both are covered."""

    def make_context(self, info_name: str | None, args: list[str], parent: click.Context | None = None, **extra: Any):
        try:
            return super().make_context(info_name, args, parent, **extra)
        except click.ClickException as exc:
            raise _in_staff_language(exc) from None

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.ClickException as exc:
            raise _in_staff_language(exc) from None
        except (click.Abort, KeyboardInterrupt, EOFError):  # click would say "Aborted!" in English
            click.echo(file=sys.stderr)
            click.echo(_("Aborted."), err=True)
            sys.exit(1)


@click.group(cls=StaffCli, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="cim")
def cli() -> None:
    """CIM: contact records of the Resident Information Centre (calls and chats).

    Every command takes --data-dir (default $CIM_DATA_DIR). Errors go to stderr with a non-zero exit.
    """


core.register(cli)
users.register(cli)
audit.register(cli)
serve.register(cli)
requests_commands.register(cli)
tui_commands.register(cli)
ingest.register(cli)
notices.register(cli)
retention.register(cli)
traffic.register(cli)
listen.register(cli)
keys_commands.register(cli)
desk.register(cli)  # after users: adds `cim users capacity|skills`


def main() -> None:
    cli(prog_name="cim")
