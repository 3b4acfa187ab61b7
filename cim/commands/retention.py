"""`cim purge`, `cim fsck`, `cim backup`, `cim holds ...` and `cim report`: retention (§6) and supervision (§3, §7)."""

from __future__ import annotations

import sys
from datetime import date
from pathlib import Path

import click

from cim.common import cli_actor, data_dir_option, json_option, print_json, with_store
from store.clock import to_iso
from store.errors import InvalidInput
from store.i18n import _
from store.reports import parse_period, report_json, write_csv, write_pdf


#: `cim purge` exit status when the rows are gone but purged text remains in the database files.
EXIT_INCOMPLETE = 3


def register(cli: click.Group) -> None:
    for command in (purge, fsck, backup, holds, report):
        cli.add_command(command)


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


@click.command()
@data_dir_option
@click.option("--dry-run", is_flag=True, help="Count what would be purged; change nothing.")
@json_option
@with_store
async def purge(store, dry_run: bool, as_json: bool) -> None:
    """Permanently delete ended conversations past their purge date that are not held (§6).

    Rows and recording files go for good; the database's freed pages are zeroed and the WAL is
    truncated. An interrupted earlier purge is finished first. Refused while another purge runs.
    Exit 3 when purged text remains in the database files because another connection held a read
    transaction longer than CIM_PURGE_SCRUB_WAIT_SECONDS ("remnants_cleared": false); the next
    purge retries that first.
    """
    result = await store.retention.purge(cli_actor("purge"), dry_run=dry_run)
    if as_json:
        print_json(result.as_json())
    else:
        verb = "would purge" if dry_run else "purged"
        click.echo(f"{verb} {result.calls} calls, {result.chats} chats, {result.files} files "
                   f"({_size(result.bytes)}); {result.held} held back; cutoff {to_iso(result.cutoff)[:19]}Z")
        if result.resumed_files:
            click.echo(f"finished {result.resumed_files} file deletions left by an interrupted purge")
    if not result.remnants_cleared:
        what = "an earlier purge left" if dry_run else "the purge is incomplete:"
        click.echo(f"cim: {what} purged text in {store.settings.db_path.name} and its -wal because another "
                   "connection (a report, a backup, a sqlite3 shell) held a read transaction; close it and run "
                   "`cim purge` again (the next purge retries this first)", err=True)
        if not dry_run:
            sys.exit(EXIT_INCOMPLETE)


@click.command()
@data_dir_option
@json_option
@with_store
async def fsck(store, as_json: bool) -> None:
    """Check the recordings folder against the database: orphan files, missing files, checksum
    mismatches, empty recordings, leftovers of an interrupted purge. Exit 1 when anything is wrong."""
    report = await store.retention.fsck(cli_actor("fsck"))
    if as_json:
        print_json(report.as_json())
    else:
        for problem in report.problems:
            click.echo(f"{problem.kind}: {problem.detail}")
        click.echo(f"{report.recordings_checked} recordings checked, {report.files_seen} files seen, "
                   f"{len(report.problems)} problems", err=not report.ok)
    if not report.ok:
        sys.exit(1)


@click.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@data_dir_option
@json_option
@with_store
async def backup(store, directory: Path, as_json: bool) -> None:
    """Make a consistent online copy of the database and the recordings into DIRECTORY (new or empty).

    A backup holds the same personal data as the store: keep it no longer than backup_keep
    (backup.json says destroy_by), and after a restore run `cim purge` before anything else.
    """
    result = await store.retention.backup(cli_actor("backup"), directory)
    document = {"path": str(result.path), "created_at": to_iso(result.created_at), "db_bytes": result.db_bytes,
                "files": result.files, "bytes": result.bytes, "missing_files": result.missing_files,
                "destroy_by": to_iso(result.destroy_by), **{k: v for k, v in result.keys.items()
                                                             if k in ("master_key_id", "master_key_generation", "keyring")}}
    if as_json:
        print_json(document)
    else:
        click.echo(f"backup written to {result.path}: database {_size(result.db_bytes)}, {result.files} recordings "
                   f"({_size(result.bytes)}); destroy by {to_iso(result.destroy_by)[:10]}")
        if result.keys:
            click.echo(_("reading it needs master key {id} (generation {generation}) and the key ring {keyring}; "
                         "conversations purged later stay unreadable in it").format(
                id=result.keys["master_key_id"], generation=result.keys["master_key_generation"],
                keyring=result.keys["keyring"]))
        if result.missing_files:
            click.echo(f"{result.missing_files} recordings were missing and not copied; run `cim fsck`", err=True)


@click.group()
def holds() -> None:
    """Holds: exceptions to retention required by other law (§6)."""


@holds.command("list")
@data_dir_option
@click.option("--all", "include_released", is_flag=True, help="Include released holds.")
@json_option
@with_store
async def holds_list(store, include_released: bool, as_json: bool) -> None:
    """List open holds (overdue reviews marked with !)."""
    items = await store.retention.holds(cli_actor("holds"), include_released=include_released)
    if as_json:
        print_json([{"id": h.id, "conversation_id": h.conversation_id, "legal_basis": h.legal_basis,
                     "case_reference": h.case_reference, "request_id": h.request_id, "set_by": h.set_by,
                     "set_at": to_iso(h.set_at), "review_on": h.review_on.isoformat() if h.review_on else None,
                     "released_at": to_iso(h.released_at) if h.released_at else None, "overdue": h.overdue}
                    for h in items])
        return
    if not items:
        click.echo("no holds")
    for h in items:
        flag = "!" if h.overdue else " "
        state = f"released {h.released_at:%Y-%m-%d}" if h.released_at else "open"
        origin = f"request {h.request_id}" if h.automatic else f"{h.legal_basis}; case {h.case_reference}"
        review = h.review_on.isoformat() if h.review_on else "-"
        click.echo(f"{flag} hold {h.id}  conversation {h.conversation_id}  review {review}  {state}  {origin}")


@holds.command("add")
@click.argument("conversation_ids", nargs=-1, required=True, type=int)
@click.option("--legal-basis", required=True, help="The law that requires keeping it (e.g. art. 6 ust. 1 lit. c RODO).")
@click.option("--case", "case_reference", required=True, help="The case reference (sygnatura sprawy).")
@click.option("--review-on", help="Date to review the hold, YYYY-MM-DD.")
@data_dir_option
@json_option
@with_store
async def holds_add(store, conversation_ids: tuple[int, ...], legal_basis: str, case_reference: str,
                    review_on: str | None, as_json: bool) -> None:
    """Hold one or more conversations (e.g. a search result): nothing held is purged."""
    try:
        review = date.fromisoformat(review_on) if review_on else None
    except ValueError:
        raise InvalidInput(f"--review-on must be YYYY-MM-DD, not {review_on!r}") from None
    created = await store.retention.add_hold(cli_actor("holds"), conversation_ids, legal_basis=legal_basis,
                                             case_reference=case_reference, review_on=review)
    if as_json:
        print_json({"holds": [{"id": h.id, "conversation_id": h.conversation_id} for h in created]})
    else:
        click.echo(f"{len(created)} hold(s) set: " + ", ".join(f"{h.id} on conversation {h.conversation_id}"
                                                             for h in created))


@holds.command("release")
@click.argument("hold_id", type=int)
@data_dir_option
@with_store
async def holds_release(store, hold_id: int) -> None:
    """Release a manual hold; the conversation is purged by the next run if it is past its date."""
    hold = await store.retention.release_hold(cli_actor("holds"), hold_id)
    click.echo(f"hold {hold.id} on conversation {hold.conversation_id} released")


@click.group(invoke_without_command=True)
@click.option("--from", "start", help="First day, YYYY-MM-DD.")
@click.option("--to", "end", help="Last day (inclusive), YYYY-MM-DD.")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False, path_type=Path), help="Also write CSV here.")
@click.option("--pdf", "pdf_path", type=click.Path(dir_okay=False, path_type=Path), help="Also write PDF here.")
@click.option("--force", is_flag=True, help="Replace an existing --csv/--pdf file.")
@data_dir_option
@json_option
@click.pass_context
def report(ctx: click.Context, data_dir: str | None, start: str | None, end: str | None, **options) -> None:
    """Supervision report (§3, §7): accesses per person and purpose, requests by outcome and days to
    answer, purges, for the days FROM..TO. The files are written 0600 (they name staff); an existing
    file is replaced only with --force. `cim report service` is the service report (§1.2)."""
    if ctx.invoked_subcommand is not None:
        return
    if not start or not end:
        raise click.UsageError("--from and --to are required")
    _supervision(data_dir, start=start, end=end, **options)


@with_store
async def _supervision(store, start: str, end: str, csv_path: Path | None, pdf_path: Path | None, force: bool,
                       as_json: bool) -> None:
    first, last = parse_period(start, end, names=("--from", "--to"))
    for path in (csv_path, pdf_path):
        if path is None:
            continue
        if not path.parent.is_dir():
            raise InvalidInput(f"folder {path.parent} does not exist")
        if (path.exists() or path.is_symlink()) and not force:
            raise InvalidInput(f"{path} already exists; use --force to replace it")
    if csv_path is not None and csv_path == pdf_path:
        raise InvalidInput("--csv and --pdf name the same file")
    result = await store.reports.supervision(cli_actor("report"), first, last)
    if csv_path:
        await write_csv(result, csv_path, replace=force)
    if pdf_path:
        await write_pdf(result, pdf_path, store.settings.office_name, replace=force)
    if as_json:
        print_json(report_json(result))
        return
    rows = result.rows()
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
