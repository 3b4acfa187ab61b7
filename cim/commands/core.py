"""`cim init`."""

from __future__ import annotations

import click

from cim.common import cli_actor, data_dir_option, json_option, load_settings, open_store, print_json, run
from store.i18n import _


def register(cli: click.Group) -> None:
    cli.add_command(init)


@click.command()
@data_dir_option
@json_option
def init(data_dir: str | None, as_json: bool) -> None:
    """Create the data directory (mode 0700) and the database, applying migrations, and the audit key file
    outside it when missing. Idempotent."""
    settings = load_settings(data_dir)

    async def body() -> list[str]:
        store = await open_store(settings, create=True)
        try:
            await store.desk.seed_default_topics(cli_actor("init"))  # the chat topics, once (README: topics)
            return await store.applied_migrations()
        finally:
            await store.close()

    migrations = run(body())
    if as_json:
        print_json(
            {
                "data_dir": str(settings.data_dir),
                "database": str(settings.db_path),
                "migrations": migrations,
                "audit_key_file": str(settings.audit_key_path),
                "audit_anchors_file": str(settings.audit_anchors_path),
                "master_key_file": str(settings.master_key_path),
                "keyring": str(settings.keyring_path),
            }
        )
    else:
        click.echo(
            _("CIM data directory ready: {path} ({n} migrations applied)").format(
                path=settings.data_dir, n=len(migrations)
            )
        )
        click.echo(
            _("audit key file: {path} (keep an escrow copy: docs/DEPLOY.md)").format(path=settings.audit_key_path)
        )
        click.echo(
            _("master key file: {path} (keep an escrow copy: docs/DEPLOY.md)").format(path=settings.master_key_path)
        )
