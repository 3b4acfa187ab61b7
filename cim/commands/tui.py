"""`cim tui` (the staff terminal UI) and `cim demo` (chat server + UI + demo data in one process)."""

from __future__ import annotations

import errno
import logging
import os
import socket
import tempfile
from pathlib import Path

import click

from cim.common import data_dir_option, fail, load_settings, non_empty_path, open_store, run
from store.i18n import _
from store.settings import Settings


def register(cli: click.Group) -> None:
    cli.add_command(tui)
    cli.add_command(demo)


def _log_to_file(settings: Settings) -> None:
    """While the UI owns the terminal, warnings go to <data dir>/cim-tui.log instead of garbling it."""
    path = settings.data_dir / "cim-tui.log"
    old_umask = os.umask(0o077)
    try:
        handler = logging.FileHandler(path, encoding="utf-8")
    finally:
        os.umask(old_umask)
    os.chmod(path, 0o600)  # a log an older version created under a looser umask names staff too
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.WARNING, handlers=[handler], force=True)


@click.command()
@data_dir_option
@click.option(
    "--server",
    "server_url",
    metavar="URL",
    help="Chat server for live chats (default: http://HOST:PORT from the settings, as `cim serve` uses).",
)
@click.option("--no-server", is_flag=True, help="Start without live chats (archive and administration only).")
def tui(data_dir: str | None, server_url: str | None, no_server: bool) -> None:
    """The staff terminal UI: sign in, live chats (consultants) and the areas your roles open."""
    from tui.app import make_app

    settings = load_settings(data_dir)
    if not settings.db_path.exists():
        fail(_("no CIM database in {path}; run `cim init` first").format(path=settings.data_dir))
    if server_url is None and not no_server:
        server_url = f"http://{settings.host}:{settings.port}"
    if server_url and not server_url.startswith(("http://", "https://")):
        fail(_("--server must be an http:// or https:// URL, not {url!r}").format(url=server_url))
    _log_to_file(settings)
    make_app(settings, server_url=None if no_server else server_url).run()


def default_demo_dir() -> Path:
    return Path(tempfile.gettempdir()) / "cim-demo"


#: The demo's chat server port when it is free (the same as `cim serve`'s), so the README's URL works.
DEMO_PORT = 8080


def demo_socket(host: str, port: int | None, preferred: int = DEMO_PORT) -> tuple[socket.socket, str | None]:
    """The demo server's listening socket: `port` if given (0: any free one), else `preferred` unless taken.

    Returns the socket and, when the preferred port was taken, a line saying which port is used instead.
    """
    from tui.demo import reserve_port

    if port is not None:
        return reserve_port(host, port), None
    try:
        return reserve_port(host, preferred), None
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
    sock = reserve_port(host, 0)
    return sock, _("port {preferred} is taken; the demo listens on {port} instead").format(
        preferred=preferred, port=sock.getsockname()[1]
    )


def demo_banner(settings: Settings, url: str, *, created: bool, moved: str | None = None) -> list[str]:
    """What `cim demo` prints before the UI starts, in the staff language (Polish unless CIM_STAFF_LANG=en)."""
    from tui.demo import DEMO_STAFF
    from tui.words import role_names

    lines = [
        _("CIM demo — data directory: {path} ({state})").format(
            path=settings.data_dir, state=_("new") if created else _("existing")
        )
    ]
    if moved:
        lines.append(moved)
    lines.append(_("Resident chat widget: {url}/").format(url=url))
    lines.append(_("Demo sign-ins (user / password / roles):"))
    for name, password, roles, _department, _full in DEMO_STAFF:
        lines.append(f"  {name:<10} {password:<18} {role_names(roles)}")
    if not settings.mfa_role_names:
        lines.append(_("Second factor: off in the demo (CIM_MFA_ROLES=default cim demo turns it on)."))
    lines.append(_("Starting the staff UI… (F12 signs out, Ctrl+Q quits)"))
    return lines


@click.command()
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=str),
    callback=non_empty_path,
    help="Demo data directory (default: cim-demo in the system temp folder, e.g. /tmp/cim-demo).",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=None,
    help=f"Port of the embedded chat server (default {DEMO_PORT}, or a free one when it is taken; 0: any free port).",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address the chat server listens on.")
def demo(data_dir: str | None, port: int | None, host: str) -> None:
    """Everything in one process: demo accounts and data, the chat server (always open) and the staff UI.

    Prints the demo sign-ins and the resident widget's URL; open the URL in a browser, chat with
    yourself, and answer as `anna` in the UI.
    """
    from tui.app import make_app
    from tui.demo import embedded_chat_server, seed_demo

    directory = Path(data_dir) if data_dir else default_demo_dir()
    # The demo's accounts sign in with a password alone unless CIM_MFA_ROLES is set (e.g. `default`):
    # then the UI sets up the second factor at the first sign-in of each account that needs one.
    settings = load_settings(
        str(directory), opening_hours="always", mfa_roles=None if "CIM_MFA_ROLES" in os.environ else "none"
    )

    async def prepare() -> object:
        store = await open_store(settings, create=True)
        try:
            return await seed_demo(store)
        finally:
            await store.close()

    info = run(prepare())
    try:
        sock, moved = demo_socket(host, port)
    except OSError as exc:
        fail(
            _("cannot listen on {host}:{port}: {error}").format(
                host=host, port=DEMO_PORT if port is None else port, error=exc.strerror
            )
        )
    bound_port = sock.getsockname()[1]
    url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{bound_port}"
    for line in demo_banner(settings, url, created=bool(info.created_staff), moved=moved):
        click.echo(line)
    _log_to_file(settings)
    banner = _("Demo widget: {url}/  ·  consultant: anna / demo-1-szczecin").format(url=url)
    app = make_app(settings, server_url=url, services=[embedded_chat_server(sock)], banner=banner)
    try:
        app.run()
    finally:
        sock.close()
    if app.return_code:
        raise SystemExit(app.return_code)
