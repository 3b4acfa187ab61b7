"""`cim keys ...`: crypto-shredding's keys (store/keys.py): status, sealing existing data, rotating the master key."""

from __future__ import annotations

import time
from typing import Any

import click

from cim.common import cli_actor, data_dir_option, json_option, print_json, with_store
from store.i18n import _
from store.sealing import SealingProgress, encrypt_existing


def register(cli: click.Group) -> None:
    cli.add_command(keys)


@click.group()
def keys() -> None:
    """Data keys of conversations and the master key that wraps them (docs/DEPLOY.md, docs/SECURITY.md)."""


async def _status(store) -> dict:
    return {
        **store.keys.describe(),
        "master_key_file": str(store.settings.master_key_path),
        **await store.keys.sealing_counts(),
    }


@keys.command("status")
@data_dir_option
@json_option
@with_store
async def status(store, as_json: bool) -> None:
    """Which master key and key ring the data needs, and how much is sealed (no key material is shown)."""
    document = await _status(store)
    if as_json:
        print_json(document)
        return
    click.echo(
        _("master key {id} (generation {generation}) in {path}").format(
            id=document["master_key_id"], generation=document["master_key_generation"], path=document["master_key_file"]
        )
    )
    click.echo(
        _("key ring {path}: {held} data keys, {shredded} destroyed by purges").format(
            path=document["keyring"], held=document["keys_held"], shredded=document["shredded"]
        )
    )
    click.echo(
        _("{sealed} of {total} conversations sealed; {lines} transcript lines not sealed yet").format(
            sealed=document["sealed"], total=document["conversations"], lines=document["unsealed_lines"]
        )
    )
    if document["unsealed_notes"]:
        click.echo(
            _("{notes} staff notes (whispers and call notes) not sealed yet").format(notes=document["unsealed_notes"])
        )


@keys.command("encrypt-existing")
@data_dir_option
@click.option(
    "--batch", type=click.IntRange(1, 100_000), default=500, show_default=True, help="Lines sealed per transaction."
)
@json_option
@with_store
async def encrypt_existing_command(store, batch: int, as_json: bool) -> None:
    """Seal every transcript line, staff note and recording stored before crypto-shredding, in place.

    Resumable: a killed run continues where it stopped when started again. Progress goes to stderr.
    """
    names = {
        "keys": _("data keys"),
        "lines": _("transcript lines"),
        "notes": _("staff notes"),
        "files": _("recordings"),
    }

    last: dict[str, Any] = {"at": 0.0, "phase": ""}

    def progress(p: SealingProgress) -> None:  # about once a second, and at the end of each phase
        now = time.monotonic()
        if p.done < p.total and p.phase == last["phase"] and now - last["at"] < 1.0:
            return
        last.update(at=now, phase=p.phase)
        click.echo(_("{what}: {done} of {total}").format(what=names[p.phase], done=p.done, total=p.total), err=True)

    result = await encrypt_existing(store, progress, batch=batch)
    await store.audit.record(cli_actor("keys"), "keys.encrypt_existing", details=result.as_json())
    if as_json:
        print_json(result.as_json())
        return
    click.echo(
        _("sealed {lines} transcript lines and {files} recordings; {keys} data keys created ({rate} lines/s)").format(
            lines=result.lines_sealed,
            files=result.files_sealed,
            keys=result.keys_created,
            rate=round(result.rows_per_second),
        )
    )
    if result.notes_sealed:
        click.echo(_("sealed {notes} staff notes (whispers and call notes)").format(notes=result.notes_sealed))
    for path in result.files_missing:
        click.echo(_("missing recording file: {path} (run `cim fsck`)").format(path=path), err=True)


@keys.command("rotate-master")
@data_dir_option
@json_option
@with_store
async def rotate_master(store, as_json: bool) -> None:
    """Add a new master key generation and wrap every data key with it (escrow the new file: docs/DEPLOY.md)."""
    generation, count = await store.keys.rotate_master()
    dropped = await store.keys.retire_master(generation)
    document = {**store.keys.describe(), "rewrapped": count, "retired_generations": dropped}
    await store.audit.record(
        cli_actor("keys"),
        "keys.rotate_master",
        details={
            "master_key_id": document["master_key_id"],
            "generation": generation,
            "rewrapped": count,
            "retired_generations": dropped,
        },
    )
    if as_json:
        print_json(document)
        return
    click.echo(
        _(
            "master key generation {generation} ({id}) now wraps {count} data keys; escrow the new master key file"
        ).format(generation=generation, id=document["master_key_id"], count=count)
    )
