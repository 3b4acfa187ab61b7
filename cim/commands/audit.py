"""`cim audit verify` (chain, MACs, anchors), `list`, `anchor`, `rotate-key` and `acknowledge-restore`."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from cim.common import cli_actor, data_dir_option, json_option, load_settings, open_store, print_json, run, with_store
from store.audit_actions import action_label, outcome_label, target_kind_label
from store.i18n import _, format_datetime, ngettext


def register(cli: click.Group) -> None:
    cli.add_command(audit)


@click.group()
def audit() -> None:
    """The audit log."""


def _anchor_options(func):
    func = click.option(
        "--anchors",
        "anchor_files",
        multiple=True,
        type=click.Path(dir_okay=False, path_type=Path),
        help="Also check the anchor lines in this file (a syslog/journal export, a copy of the "
        "anchors file kept elsewhere); repeatable.",
    )(func)
    return click.option(
        "--anchor",
        "paper",
        multiple=True,
        metavar="ID:HASH",
        help="Also check an anchor printed on a report or a letter; repeatable.",
    )(func)


def _paper(values: tuple[str, ...]):
    from store.anchors import parse_paper_anchor

    return [parse_paper_anchor(v) for v in values]


def check_json(check) -> dict:
    return {
        "ok": check.ok,
        "entries": check.entries,
        "first_broken": check.first_broken,
        "anchors_checked": check.anchors_checked,
        "truncated_after": check.truncated_after,
        "legacy_unmaced": check.legacy_entries,
        "problems": [
            {"kind": p.kind, "entry": p.entry, "message": p.message, "anchor": p.anchor} for p in check.problems
        ],
        "restores": list(check.restores),
    }


@audit.command("verify")
@data_dir_option
@_anchor_options
@json_option
def audit_verify(data_dir: str | None, anchor_files: tuple[Path, ...], paper: tuple[str, ...], as_json: bool) -> None:
    """Recompute the hash chain and the MACs and check every anchor; exit 0 when intact, 1 when an entry was
    edited, deleted, reordered or rewritten, the tail cut off, or an older copy restored unacknowledged."""
    settings = load_settings(data_dir)

    async def body():
        extra = _paper(paper)
        store = await open_store(settings)
        try:
            return await store.audit.verify(extra, anchor_files)
        finally:
            await store.close()

    check = run(body())
    if as_json:
        print_json(check_json(check))
    elif check.ok:
        legacy = _(", {n} unMACed legacy").format(n=check.legacy_entries) if check.legacy_entries else ""
        click.echo(
            _("audit chain intact: {entries}{legacy}, {anchors} anchors agree").format(
                entries=ngettext("{n} entry", "{n} entries", check.entries).format(n=check.entries),
                legacy=legacy,
                anchors=check.anchors_checked,
            )
        )
        for restore in check.restores:
            click.echo(
                _("restore acknowledged: entries after {n} replaced by the restored backup").format(
                    n=restore["fork_at"]
                )
            )
    else:
        click.echo(
            _("audit chain BROKEN at entry {first} ({entries} entries)").format(
                first=check.first_broken, entries=check.entries
            ),
            err=True,
        )
        for problem in check.problems:
            click.echo(f"  {problem.kind}: {problem.message}", err=True)
    sys.exit(0 if check.ok else 1)


@audit.command("acknowledge-restore")
@data_dir_option
@click.option("--reason", required=True, help="Why the backup was restored (kept in the audit log).")
@_anchor_options
@json_option
@with_store
async def audit_acknowledge_restore(
    store, reason: str, anchor_files: tuple[Path, ...], paper: tuple[str, ...], as_json: bool
) -> None:
    """Record, in the audit log, that the database was knowingly restored from a backup (the lost entries stay named)."""
    acknowledged = await store.audit.acknowledge_restore(cli_actor("audit"), reason, _paper(paper), anchor_files)
    if as_json:
        print_json({"acknowledged": acknowledged})
        return
    for r in acknowledged:
        click.echo(
            _("restore acknowledged: backup at entry {n} ({backup}); entries {first}..{last} or more are lost").format(
                n=r["fork_at"], backup=r["backup"] or _("backup"), first=r["fork_at"] + 1, last=r["lost_through"]
            )
        )


@audit.command("rotate-key")
@data_dir_option
@with_store
async def audit_rotate_key(store) -> None:
    """A new MAC key signs every entry from now on; older keys stay in the file to verify older entries."""
    old, new = await store.audit.rotate_key(cli_actor("audit"))
    click.echo(
        _("audit key rotated: generation {old} -> {new} ({path}); put the new file in escrow (docs/DEPLOY.md)").format(
            old=old, new=new, path=store.settings.audit_key_path
        )
    )


@audit.command("anchor")
@data_dir_option
@json_option
@with_store
async def audit_anchor(store, as_json: bool) -> None:
    """Write the chain head to the anchors file and syslog now, and print it."""
    anchor = await store.audit.anchor("manual")
    if as_json:
        print_json(anchor.as_json())
    else:
        click.echo(anchor.printed())


@audit.command("list")
@data_dir_option
@click.option("--person", help="Only this staff member's entries (user name).")
@click.option("--action", help="Only this action, e.g. archive.open_recording.")
@click.option("--from", "start", help="From this day (YYYY-MM-DD, office time).")
@click.option("--to", "end", help="Up to and including this day (YYYY-MM-DD).")
@click.option("--conversation", type=int, help="Only entries about this conversation.")
@click.option("--request", "request_id", type=int, help="Only entries about this request.")
@click.option("--limit", type=click.IntRange(1, 100_000), default=200, show_default=True, help="At most this many.")
@json_option
@with_store
async def audit_list(
    store,
    person: str | None,
    action: str | None,
    start: str | None,
    end: str | None,
    conversation: int | None,
    request_id: int | None,
    limit: int,
    as_json: bool,
) -> None:
    """Show audit entries, newest first (the read itself is audited)."""
    from datetime import date, datetime, time, timedelta
    from zoneinfo import ZoneInfo

    from store.clock import to_iso
    from store.errors import InvalidInput
    from store.reports import parse_day

    zone = ZoneInfo(store.settings.timezone)
    # each day is checked on its own, so an error names the option typed wrong and only what was typed
    first = parse_day(start, "--from") if start is not None else None
    last = parse_day(end, "--to") if end is not None else None
    if first and last and last < first:
        raise InvalidInput(_("--to {last} is before --from {first}").format(last=last, first=first))

    def midnight(day):
        """The day's start in office time as stored; None at the calendar's ends (no bound there)."""
        try:
            return to_iso(datetime.combine(day, time(0), zone))
        except OverflowError:
            return None

    since = midnight(first) if first else None
    until = midnight(last + timedelta(days=1)) if last and last < date.max else None
    staff_id = (await store.accounts.get(person)).id if person else None
    entries = await store.audit.entries(
        cli_actor("audit"),
        staff_id=staff_id,
        action=action,
        since=since,
        until=until,
        target_kind="conversation" if conversation is not None else None,
        target_id=conversation,
        request_id=request_id,
        limit=limit,
    )
    if as_json:
        print_json(
            [
                {
                    "id": e.id,
                    "at": to_iso(e.at),
                    "actor": e.actor_name,
                    "action": e.action,
                    "outcome": e.outcome,
                    "target_kind": e.target_kind,
                    "target_id": e.target_id,
                    "purpose": e.purpose,
                    "request_id": e.request_id,
                    "details": e.details,
                }
                for e in entries
            ]
        )
        return
    for e in entries:
        target = f" {target_kind_label(e.target_kind)} {e.target_id}" if e.target_kind else ""
        purpose = _(" purpose: {purpose}").format(purpose=e.purpose) if e.purpose else ""
        # the action's code stays: it is what --action filters on
        click.echo(
            f"{e.id:>7} {format_datetime(e.at, tz=store.settings.timezone, seconds=True)} {e.actor_name} "
            f"{e.action} ({action_label(e.action)}) {outcome_label(e.outcome)}{target}{purpose}"
        )
