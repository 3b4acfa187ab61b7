"""`cim audit verify` (check the hash chain) and `cim audit list` (read entries with filters)."""

from __future__ import annotations

import sys

import click

from cim.common import cli_actor, data_dir_option, json_option, load_settings, open_store, print_json, run, with_store


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
async def audit_list(store, person: str | None, action: str | None, start: str | None, end: str | None,
                     conversation: int | None, request_id: int | None, limit: int, as_json: bool) -> None:
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
        raise InvalidInput(f"--to {last} is before --from {first}")

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
        cli_actor("audit"), staff_id=staff_id, action=action, since=since, until=until,
        target_kind="conversation" if conversation is not None else None, target_id=conversation,
        request_id=request_id, limit=limit)
    if as_json:
        print_json([{"id": e.id, "at": to_iso(e.at), "actor": e.actor_name, "action": e.action,
                     "outcome": e.outcome, "target_kind": e.target_kind, "target_id": e.target_id,
                     "purpose": e.purpose, "request_id": e.request_id, "details": e.details} for e in entries])
        return
    for e in entries:
        target = f" {e.target_kind} {e.target_id}" if e.target_kind else ""
        purpose = f" purpose: {e.purpose}" if e.purpose else ""
        click.echo(f"{e.id:>7} {e.at.astimezone(zone):%Y-%m-%d %H:%M:%S} {e.actor_name} {e.action} "
                   f"{e.outcome}{target}{purpose}")
