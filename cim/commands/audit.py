"""`cim audit verify`: check the audit log's hash chain."""

from __future__ import annotations

import sys

import click

from cim.common import data_dir_option, json_option, load_settings, open_store, print_json, run


def register(cli: click.Group) -> None:
    cli.add_command(audit)


@click.group()
def audit() -> None:
    """The audit log."""


@audit.command("verify")
@data_dir_option
@json_option
def audit_verify(data_dir: str | None, as_json: bool) -> None:
    """Recompute the hash chain; exit 0 when intact, 1 when an entry was edited, deleted or reordered."""
    settings = load_settings(data_dir)

    async def body():
        store = await open_store(settings)
        try:
            return await store.audit.verify()
        finally:
            await store.close()

    check = run(body())
    if as_json:
        print_json({"ok": check.ok, "entries": check.entries, "first_broken": check.first_broken})
    elif check.ok:
        click.echo(f"audit chain intact: {check.entries} entries")
    else:
        click.echo(f"audit chain BROKEN at entry {check.first_broken} ({check.entries} entries)", err=True)
    sys.exit(0 if check.ok else 1)
