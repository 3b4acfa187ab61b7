"""What every `cim` command shares: the --data-dir/--json options, opening the store, clear errors."""

from __future__ import annotations

import asyncio
import functools
import getpass
import json
import sys
from typing import Any, Awaitable, Callable, Coroutine, NoReturn

import click

from store import Store
from store.errors import CimError
from store.i18n import STAFF_LANGS, _, current_language
from store.models import Actor
from store.settings import Settings


def non_empty_path(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    # an empty --data-dir ("" from an unset shell variable) would silently mean the default directory
    if value is not None and not value.strip():
        fail(
            _(
                "the data directory path is empty (--data-dir or CIM_DATA_DIR); give the directory's path, "
                "or leave both out to use the default"
            )
        )
    return value


def data_dir_option(func: Callable) -> Callable:
    return click.option(
        "--data-dir",
        type=click.Path(file_okay=False, path_type=str),
        envvar="CIM_DATA_DIR",
        callback=non_empty_path,
        help="Data directory (default: $CIM_DATA_DIR, else $XDG_DATA_HOME/cim or ~/.local/share/cim).",
    )(func)


def json_option(func: Callable) -> Callable:
    return click.option("--json", "as_json", is_flag=True, help="Print one JSON document on stdout.")(func)


def lang_option(func: Callable) -> Callable:
    """--lang pl|en: the language of a report (its files and what is printed); default the staff language."""

    def chosen(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str:
        from store.i18n import set_language

        # the whole command then speaks it: the files, the table printed and its messages
        return set_language(value) if value else current_language()

    return click.option(
        "--lang",
        type=click.Choice(list(STAFF_LANGS)),
        callback=chosen,
        expose_value=True,
        help="Language of the report (default: $CIM_STAFF_LANG, else pl).",
    )(func)


def load_settings(data_dir: str | None, **overrides: Any) -> Settings:
    try:
        return Settings.load(data_dir, **overrides)
    except CimError as exc:
        fail(exc.message)


def fail(message: str, code: int = 1) -> NoReturn:
    click.echo(f"cim: {message}", err=True)
    sys.exit(code)


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine; a CimError becomes one sentence on stderr and exit status 1."""
    try:
        return asyncio.run(coro)
    except CimError as exc:
        fail(exc.message)
    except KeyboardInterrupt:
        fail(_("interrupted"), 130)


async def open_store(settings: Settings, *, create: bool = False) -> Store:
    return await Store.open(settings, create=create)


def cli_actor(command: str) -> Actor:
    """The host's service account acting through a command (audited as system:<command>:<os user>)."""
    try:
        user = getpass.getuser()
    except Exception:  # no passwd entry in a container: the audit still names the command
        user = "unknown"
    return Actor.system(f"{command}:{user}")


def with_store(func: Callable[..., Awaitable[Any]]) -> Callable[..., Any]:
    """Decorate an async command body taking (store, **kwargs); opens and closes the store around it."""

    @functools.wraps(func)
    def wrapper(data_dir: str | None, **kwargs: Any) -> Any:
        settings = load_settings(data_dir)

        async def body() -> Any:
            store = await open_store(settings)
            try:
                return await func(store, **kwargs)
            finally:
                await store.close()

        return run(body())

    return wrapper


def print_json(document: Any) -> None:
    click.echo(json.dumps(document, ensure_ascii=False, indent=2, default=str))


def read_password_stdin() -> str:
    data = sys.stdin.read()
    # one trailing newline (echo, a here-string) is not part of the password
    if data.endswith("\r\n"):
        data = data[:-2]
    elif data.endswith("\n"):
        data = data[:-1]
    return data
