"""`cim ingest queue-log` and `cim report service`: queue facts from Asterisk and the centre's service figures."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import click

from cim.common import cli_actor, data_dir_option, json_option, lang_option, print_json, with_store
from store.i18n import _
from store.errors import InvalidInput
from store.queue_log import QueueLogReport
from store.reports import parse_period
from store.service_report import BY_CHOICES, category_words, close_category_words, write_csv, write_pdf


async def run_queue_log(store, file: Path, watch: bool, interval: float, iterations: int | None, as_json: bool) -> None:
    actor = cli_actor("ingest-queue-log")
    src = store.queue_log.source(file)
    if watch:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(signum, stop.set)
            except (NotImplementedError, RuntimeError):  # not the main thread (tests)
                pass

        def on_poll(polled: QueueLogReport) -> None:
            if polled.imported or polled.rejected:
                click.echo(
                    _("{imported} new queue_log lines, {rejected} rejected").format(
                        imported=polled.imported, rejected=len(polled.rejected)
                    ),
                    err=True,
                )
                for r in polled.rejected:
                    click.echo("  " + _("line {n}: {reason}").format(n=r.line, reason=r.reason), err=True)

        if not as_json:
            click.echo(_("watching {path} (Ctrl-C to stop)").format(path=src.path), err=True)
        report = await store.queue_log.watch(
            actor, src, stop, interval=interval, iterations=iterations, on_poll=on_poll
        )
    else:
        report = await store.queue_log.ingest(actor, src)
    if as_json:
        print_json(report.as_json())
        return
    click.echo(
        _(
            "imported {imported} queue_log lines ({stays} queue stays, {members} member events), {present} "
            "already present, {rejected} rejected; {linked} stays linked to calls"
        ).format(
            imported=report.imported,
            stays=report.queue_calls,
            members=report.member_events,
            present=report.already_present,
            rejected=len(report.rejected),
            linked=report.linked_to_calls,
        )
    )
    if report.unknown_events:
        click.echo(_("events not used: ") + ", ".join(f"{k} ×{v}" for k, v in sorted(report.unknown_events.items())))
    if not watch:
        for r in report.rejected:
            click.echo(_("rejected line {n}: {reason}").format(n=r.line, reason=r.reason), err=True)


def register(cli: click.Group) -> None:
    """`cim report service` joins the `cim report` group (the supervision report stays `cim report --from --to`)."""
    group = cli.commands["report"]
    if not isinstance(group, click.Group):
        raise RuntimeError("`cim report` must be a command group before `cim report service` can join it")
    group.add_command(service)


@click.command("service")
@click.option("--from", "start", required=True, help="First day, YYYY-MM-DD.")
@click.option("--to", "end", required=True, help="Last day (inclusive), YYYY-MM-DD.")
@click.option("--by", type=click.Choice(BY_CHOICES), help="Also group the figures by this.")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False, path_type=Path), help="Also write CSV here.")
@click.option("--pdf", "pdf_path", type=click.Path(dir_okay=False, path_type=Path), help="Also write PDF here.")
@click.option("--force", is_flag=True, help="Replace an existing --csv/--pdf file.")
@lang_option
@data_dir_option
@json_option
@with_store
async def service(
    store,
    start: str,
    end: str,
    by: str | None,
    csv_path: Path | None,
    pdf_path: Path | None,
    force: bool,
    as_json: bool,
    lang: str,
) -> None:
    """Service report (§1.2): calls and chats offered, answered, abandoned, waiting, service level, handle time.
    The files are written 0600 (they name consultants); an existing file is replaced only with --force."""
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
    result = await store.service.report(cli_actor("report-service"), first, last, by)
    if csv_path:
        await write_csv(result, csv_path, replace=force, lang=lang)
    if pdf_path:
        await write_pdf(result, pdf_path, store.settings.office_name, replace=force, lang=lang)
    if as_json:
        print_json(result.as_json())
        return
    rows = result.rows(lang)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    for title, counts in (
        (_("close categories"), close_category_words(result)),
        (_("call categories"), category_words(result.call_categories)),
        (_("chats per consultant"), result.chats_per_consultant),
    ):
        if counts:
            click.echo(f"{title}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    for line in result.rating_lines():  # satisfaction (store/resident_desk.py)
        click.echo(line)
