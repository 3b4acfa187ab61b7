"""The `cim` command group; each area's commands live in a module of cim/commands/."""

from __future__ import annotations

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


@click.group(cls=StaffGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
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
