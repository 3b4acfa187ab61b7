"""`cim notices ...`: the versioned notices, and exporting the phone notice (§1.4) for the PBX."""

from __future__ import annotations

from pathlib import Path

import click

from cim.common import cli_actor, data_dir_option, json_option, print_json, with_store
from store.i18n import _
from store.phone_notice import PhoneNotices


def register(cli: click.Group) -> None:
    cli.add_command(notices)


@click.group()
def notices() -> None:
    """Data-protection notices of the chat (§1.5) and phone (§1.4) channels."""


@notices.command("list")
@click.option("--channel", type=click.Choice(["chat", "phone"]), required=True, help="Which channel's notices.")
@data_dir_option
@json_option
@with_store
async def notices_list(store, channel, as_json):
    """List every version of a channel's notice."""
    history = await store.notices.history(channel)
    if as_json:
        print_json(
            [{"id": n.id, "version": n.version, "lang": n.lang, "legal": n.legal, "text": n.text} for n in history]
        )
    else:
        for n in history:
            click.echo(f"v{n.version} {n.lang}{_(' (legal)') if n.legal else ''}: {n.text[:70]}...")


@notices.command("export-phone")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--full-text",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="UTF-8 file with the full information played after key 1 (default: a built-in summary).",
)
@click.option("--no-audio", is_flag=True, help="Write only the dialplan and the prompt texts.")
@click.option("--context", default="cim-incoming-notice", show_default=True, help="Dialplan context name.")
@click.option("--queue", default="cim", show_default=True, help="Queue the caller waits in after the notice.")
@data_dir_option
@json_option
@with_store
async def export_phone(store, directory, full_text, no_audio, context, queue, as_json):
    """Write DIRECTORY/extensions_cim.conf and the prompts (8 kHz WAV via espeak-ng + sox when installed)."""
    text = full_text.read_text(encoding="utf-8") if full_text else None
    result = await PhoneNotices(store).export(
        cli_actor("notices"), directory, render_audio=not no_audio, full_text=text, context=context, queue=queue
    )
    if as_json:
        print_json(
            {
                "version": result.version,
                "dialplan": str(result.dialplan),
                "texts": [str(p) for p in result.texts],
                "audio": [str(p) for p in result.audio],
                "audio_skipped": result.audio_skipped,
            }
        )
        return
    click.echo(_("phone notice v{version}: {path}").format(version=result.version, path=result.dialplan))
    for path in result.texts + result.audio:
        click.echo(f"  {path}")
    if result.audio_skipped:
        click.echo(_("no audio: {why}").format(why=result.audio_skipped), err=True)
