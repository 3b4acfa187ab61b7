"""`cim purge`, `cim fsck`, `cim backup`, `cim holds ...` and `cim report`: retention (§6) and supervision (§3, §7)."""

from __future__ import annotations

import sys
from datetime import date
from pathlib import Path

import click

from cim.common import cli_actor, data_dir_option, json_option, lang_option, print_json, with_store
from store import plurals
from store.i18n import _, format_date, format_datetime
from store.clock import to_iso
from store.errors import InvalidInput
from store.reports import parse_period, report_json, write_csv, write_pdf


#: `cim purge` exit status when the rows are gone but purged text remains in the database files.
EXIT_INCOMPLETE = 3


def register(cli: click.Group) -> None:
    for command in (purge, fsck, backup, holds, report):
        cli.add_command(command)


def _size(n: int) -> str:
    value: float = n
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{n} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return str(value)


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
        counts = dict(
            calls=plurals.calls(result.calls),
            chats=plurals.chats(result.chats),
            files=plurals.files(result.files),
            size=_size(result.bytes),
            held=result.held,
            cutoff=format_datetime(result.cutoff, tz=store.settings.timezone, seconds=True),
        )
        if dry_run:
            text = _("would purge {calls}, {chats}, {files} ({size}); {held} held back; cutoff {cutoff}")
        else:
            text = _("purged {calls}, {chats}, {files} ({size}); {held} held back; cutoff {cutoff}")
        click.echo(text.format(**counts))
        if result.resumed_files:
            click.echo(_("finished {n} file deletions left by an interrupted purge").format(n=result.resumed_files))
    if not result.remnants_cleared:
        what = _("an earlier purge left") if dry_run else _("the purge is incomplete:")
        click.echo(
            "cim: "
            + _(
                "{what} purged text in {db} and its -wal because another "
                "connection (a report, a backup, a sqlite3 shell) held a read transaction; close it "
                "and run `cim purge` again (the next purge retries this first)"
            ).format(what=what, db=store.settings.db_path.name),
            err=True,
        )
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
            click.echo(f"{problem.label}: {problem.message}")
        click.echo(
            _("{recordings} checked, {files} seen, {problems} problems").format(
                recordings=plurals.recordings(report.recordings_checked),
                files=plurals.files(report.files_seen),
                problems=len(report.problems),
            ),
            err=not report.ok,
        )
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
    document = {
        "path": str(result.path),
        "created_at": to_iso(result.created_at),
        "db_bytes": result.db_bytes,
        "files": result.files,
        "bytes": result.bytes,
        "missing_files": result.missing_files,
        "destroy_by": to_iso(result.destroy_by),
        **{k: v for k, v in result.keys.items() if k in ("master_key_id", "master_key_generation", "keyring")},
    }
    if as_json:
        print_json(document)
    else:
        click.echo(
            _("backup written to {path}: database {db}, {recordings} ({size}); destroy by {date}").format(
                path=result.path,
                db=_size(result.db_bytes),
                recordings=plurals.recordings(result.files),
                size=_size(result.bytes),
                date=format_date(result.destroy_by, tz=store.settings.timezone),
            )
        )
        if result.keys:
            click.echo(
                _(
                    "reading it needs master key {id} (generation {generation}) and the key ring {keyring}; "
                    "conversations purged later stay unreadable in it"
                ).format(
                    id=result.keys["master_key_id"],
                    generation=result.keys["master_key_generation"],
                    keyring=result.keys["keyring"],
                )
            )
        if result.missing_files:
            click.echo(
                _("{recordings} missing and not copied; run `cim fsck`").format(
                    recordings=plurals.recordings(result.missing_files)
                ),
                err=True,
            )


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
        print_json(
            [
                {
                    "id": h.id,
                    "conversation_id": h.conversation_id,
                    "legal_basis": h.legal_basis,
                    "case_reference": h.case_reference,
                    "request_id": h.request_id,
                    "set_by": h.set_by,
                    "set_at": to_iso(h.set_at),
                    "review_on": h.review_on.isoformat() if h.review_on else None,
                    "released_at": to_iso(h.released_at) if h.released_at else None,
                    "overdue": h.overdue,
                }
                for h in items
            ]
        )
        return
    if not items:
        click.echo(_("no holds"))
    for h in items:
        flag = "!" if h.overdue else " "
        state = (
            _("released {date}").format(date=format_date(h.released_at, tz=store.settings.timezone))
            if h.released_at
            else _("in force")
        )
        origin = (
            _("request {n}").format(n=h.request_id)
            if h.automatic
            else _("{basis}; case {case}").format(basis=h.legal_basis, case=h.case_reference)
        )
        review = format_date(h.review_on) if h.review_on else "-"
        click.echo(
            f"{flag} "
            + _("hold {id}  conversation {n}  review {review}  {state}  {origin}").format(
                id=h.id, n=h.conversation_id, review=review, state=state, origin=origin
            )
        )


@holds.command("add")
@click.argument("conversation_ids", nargs=-1, required=True, type=int)
@click.option("--legal-basis", required=True, help="The law that requires keeping it (e.g. art. 6 ust. 1 lit. c RODO).")
@click.option("--case", "case_reference", required=True, help="The case reference (sygnatura sprawy).")
@click.option("--review-on", help="Date to review the hold, YYYY-MM-DD.")
@data_dir_option
@json_option
@with_store
async def holds_add(
    store,
    conversation_ids: tuple[int, ...],
    legal_basis: str,
    case_reference: str,
    review_on: str | None,
    as_json: bool,
) -> None:
    """Hold one or more conversations (e.g. a search result): nothing held is purged."""
    try:
        review = date.fromisoformat(review_on) if review_on else None
    except ValueError:
        raise InvalidInput(_("--review-on must be YYYY-MM-DD, not {text!r}").format(text=review_on)) from None
    created = await store.retention.add_hold(
        cli_actor("holds"), conversation_ids, legal_basis=legal_basis, case_reference=case_reference, review_on=review
    )
    if as_json:
        print_json({"holds": [{"id": h.id, "conversation_id": h.conversation_id} for h in created]})
    else:
        click.echo(
            _("{holds} set: ").format(holds=plurals.holds(len(created)))
            + ", ".join(_("{id} on conversation {n}").format(id=h.id, n=h.conversation_id) for h in created)
        )


@holds.command("release")
@click.argument("hold_id", type=int)
@data_dir_option
@with_store
async def holds_release(store, hold_id: int) -> None:
    """Release a manual hold; the conversation is purged by the next run if it is past its date."""
    hold = await store.retention.release_hold(cli_actor("holds"), hold_id)
    click.echo(_("hold {id} on conversation {n} released").format(id=hold.id, n=hold.conversation_id))


@click.group(invoke_without_command=True)
@click.option("--from", "start", help="First day, YYYY-MM-DD.")
@click.option("--to", "end", help="Last day (inclusive), YYYY-MM-DD.")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False, path_type=Path), help="Also write CSV here.")
@click.option("--pdf", "pdf_path", type=click.Path(dir_okay=False, path_type=Path), help="Also write PDF here.")
@click.option("--force", is_flag=True, help="Replace an existing --csv/--pdf file.")
@lang_option
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
        raise click.UsageError(_("--from and --to are required"))
    _supervision(data_dir, start=start, end=end, **options)


@with_store
async def _supervision(
    store, start: str, end: str, csv_path: Path | None, pdf_path: Path | None, force: bool, as_json: bool, lang: str
) -> None:
    first, last = parse_period(start, end, names=("--from", "--to"))
    for path in (csv_path, pdf_path):
        if path is None:
            continue
        if not path.parent.is_dir():
            raise InvalidInput(_("folder {folder} does not exist").format(folder=path.parent))
        if (path.exists() or path.is_symlink()) and not force:
            raise InvalidInput(_("{path} already exists; use --force to replace it").format(path=path))
    if csv_path is not None and csv_path == pdf_path:
        raise InvalidInput(_("--csv and --pdf name the same file"))
    result = await store.reports.supervision(cli_actor("report"), first, last)
    if csv_path:
        await write_csv(result, csv_path, replace=force, lang=lang)
    if pdf_path:
        await write_pdf(result, pdf_path, store.settings.office_name, replace=force, lang=lang)
    if as_json:
        print_json(report_json(result))
        return
    rows = result.rows(lang, tz=store.settings.timezone)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
