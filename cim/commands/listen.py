"""`cim listen-link`: a listening link to one recording, made on the host for support and tests."""

from __future__ import annotations

import click

from cim.common import cli_actor, data_dir_option, json_option, print_json, with_store
from store.clock import to_iso
from store.i18n import _, format_datetime
from store.listening import link_url


def register(cli: click.Group) -> None:
    cli.add_command(listen_link)


@click.command("listen-link")
@click.argument("conversation_id", type=int)
@click.option("--purpose", required=True, help="Why the recording is heard: a request number or a reason (audited).")
@click.option(
    "--minutes",
    type=click.IntRange(1, 1440),
    default=None,
    help="How long the link lives (default: setting listen_minutes, 10), plus the recording's length.",
)
@data_dir_option
@json_option
@with_store
async def listen_link(store, conversation_id: int, purpose: str, minutes: int | None, as_json: bool) -> None:
    """Print a single-use link to hear a call's recording in a browser, served by `cim serve` at /listen/.

    The link is audited as the host's service account, with the purpose; it opens in one browser only.
    """
    link = await store.listening.create(cli_actor("listen-link"), conversation_id, purpose, minutes=minutes)
    url = link_url(store.settings, link)
    if as_json:
        print_json({"url": url, "expires_at": to_iso(link.expires_at), "code": link.code})
        return
    click.echo(url)
    click.echo(
        _("code {code} · valid until {when} · opens in one browser only").format(
            code=link.code, when=format_datetime(link.expires_at, tz=store.settings.timezone, seconds=True)
        )
    )
