"""`cim ingest asterisk|freepbx` (call records and recordings from the PBX) and `cim calls routes` (DID -> department)."""

from __future__ import annotations

import asyncio
import functools
import signal
import sys
from pathlib import Path

import click

from cim.common import cli_actor, data_dir_option, json_option, print_json, with_store
from store.calls import IngestReport
from store.i18n import _


def register(cli: click.Group) -> None:
    cli.add_command(ingest)
    cli.add_command(calls)


@click.group()
def ingest() -> None:
    """Register the PBX's calls and recordings (idempotent: running again adds nothing)."""


def _common(func):
    options = [
        click.option(
            "--cdr",
            "cdr",
            required=True,
            type=click.Path(dir_okay=False, path_type=Path),
            help="The CDR file (Asterisk: /var/log/asterisk/cdr-csv/Master.csv; FreePBX: a CSV export).",
        ),
        click.option(
            "--recordings",
            "recordings",
            type=click.Path(file_okay=False, path_type=Path),
            help="The PBX's recordings folder (e.g. /var/spool/asterisk/monitor).",
        ),
        click.option(
            "--columns",
            help="Comma-separated CDR columns. Asterisk: the optional columns after the 16 "
            "fixed ones as on in cdr.conf, or any complete layout (cdr_custom's "
            "mapping may be pasted as is; - skips a column). Default: by each "
            "line's column count. FreePBX: the columns when the export has no header.",
        ),
        click.option(
            "--timezone",
            "timezone_name",
            help="Zone of the PBX's local times (default: the `timezone` setting, Europe/Warsaw).",
        ),
        click.option(
            "--move",
            is_flag=True,
            help="Delete each source recording once it is safely registered "
            "(hard-linked, not copied, on the same filesystem).",
        ),
        click.option(
            "--watch",
            is_flag=True,
            help="Keep running: pick up appended CDR lines and new recordings as the PBX writes them, until Ctrl-C.",
        ),
        click.option(
            "--interval",
            default=2.0,
            show_default=True,
            type=click.FloatRange(0.05, 3600),
            help="Seconds between polls in --watch mode.",
        ),
        click.option(
            "--watch-iterations",
            type=click.IntRange(1),
            hidden=True,
            help="Stop --watch after this many polls (tests).",
        ),
        data_dir_option,
        json_option,
    ]
    for option in reversed(options):
        func = option(func)
    return func


#: --encoding, for the two CDR commands (kept out of _common: not every ingest subcommand reads CDRs)
_encoding_option = click.option(
    "--encoding",
    help="Encoding of the CDR file (e.g. iso-8859-2, cp1250). Default: UTF-8, and a line that is "
    "not UTF-8 is read as ISO-8859-2 (Windows-1250 when it has bytes 0x80-0x9F).",
)


def _exit_status(func):
    """Exit with the status the command body returned (after its store is closed)."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        status = func(*args, **kwargs)
        if status:
            sys.exit(status)

    return wrapper


@ingest.command("asterisk")
@_common
@_encoding_option
@_exit_status
@with_store
async def ingest_asterisk(store, **options):
    """Ingest Asterisk cdr_csv records (no header; 16 fixed columns + the optional ones) and their recordings.

    Exit status 0 when every line was imported or already present, 3 when some line or recording was
    rejected (the JSON lists them), 1 when the run could not be done (a missing file, an unknown column).
    """
    return await _run(store, "asterisk", **options)


@ingest.command("freepbx")
@_common
@_encoding_option
@_exit_status
@with_store
async def ingest_freepbx(store, **options):
    """Ingest a FreePBX CDR export (asteriskcdrdb.cdr as CSV with a header) and its YYYY/MM/DD recordings tree.

    Exit status as for `cim ingest asterisk`: 0 all imported or present, 3 some rejected, 1 not run.
    """
    return await _run(store, "freepbx", **options)


#: Exit status when the run completed but something was rejected (a line or a recording): cron can notice.
EXIT_REJECTED = 3


async def _run(
    store, kind, cdr, recordings, columns, encoding, timezone_name, move, watch, interval, watch_iterations, as_json
) -> int:
    actor = cli_actor(f"ingest-{kind}")
    src = store.calls.source(
        kind, cdr, recordings, columns=columns, timezone_name=timezone_name, move=move, encoding=encoding
    )
    if watch:
        report = await _watch(store, actor, src, interval, watch_iterations, as_json)
    else:
        report = await _once(store, actor, src, as_json)
    if as_json:
        print_json(report.as_json())
    else:
        _print_summary(report)
    return EXIT_REJECTED if report.rejected else 0


async def _once(store, actor, src, as_json: bool) -> IngestReport:
    if as_json or not sys.stderr.isatty():
        return await store.calls.ingest(actor, src)
    total = await store.calls.count_lines(src)
    with click.progressbar(length=total, label=_("Registering calls"), file=sys.stderr) as bar:
        return await store.calls.ingest(actor, src, progress=bar.update)


async def _watch(store, actor, src, interval, iterations, as_json: bool) -> IngestReport:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(signum, stop.set)
        except (NotImplementedError, RuntimeError):  # not the main thread (tests), or no signals here
            pass

    def on_poll(polled: IngestReport) -> None:
        if polled.imported or polled.rejected or polled.recordings:
            click.echo(
                _("{imported} new call records, {recordings} recordings, {rejected} rejected").format(
                    imported=polled.imported, recordings=polled.recordings, rejected=len(polled.rejected)
                ),
                err=True,
            )
            for r in polled.rejected:
                click.echo(f"  {_where(r)}: {r.reason}", err=True)

    if not as_json:
        click.echo(_("watching {path} (Ctrl-C to stop)").format(path=src.cdr), err=True)
    return await store.calls.watch(actor, src, stop, interval=interval, iterations=iterations, on_poll=on_poll)


def _where(r) -> str:
    parts = []
    if r.line is not None:
        parts.append(_("line {n}").format(n=r.line))
    if r.file:
        parts.append(r.file)
    return ", ".join(parts) or "?"


def _print_summary(report: IngestReport) -> None:
    click.echo(
        _(
            "imported {imported} call records ({calls} new calls), {present} already present, {rejected} rejected"
        ).format(
            imported=report.imported, calls=report.calls, present=report.already_present, rejected=len(report.rejected)
        )
    )
    click.echo(
        _(
            "recordings: {recordings} registered, {present} already present; {without} calls without a "
            "recording, {orphans} recordings without a call"
        ).format(
            recordings=report.recordings,
            present=report.recordings_already_present,
            without=report.calls_without_recording,
            orphans=report.recordings_without_call,
        )
    )
    for amb in report.ambiguous_recordings:
        click.echo(
            _("not attached {file}: its time and parties fit {n} calls ({calls})").format(
                file=amb["file"], n=len(amb["calls"]), calls=", ".join(map(str, amb["calls"]))
            ),
            err=True,
        )
    for r in report.rejected:
        click.echo(_("rejected {where}: {reason}").format(where=_where(r), reason=r.reason), err=True)


@click.group()
def calls() -> None:
    """Call settings: which department a dialled number (DID, queue) concerns."""


@calls.group("routes")
def routes() -> None:
    """Dialled number -> department, used when registering calls."""


@routes.command("add")
@click.argument("number")
@click.argument("department")
@data_dir_option
@with_store
async def routes_add(store, number, department):
    """Calls to NUMBER (DID, queue or ring group) concern DEPARTMENT (its code)."""
    await store.calls.set_route(cli_actor("calls"), number, department)
    click.echo(_("calls to {number} concern {department}").format(number=number, department=department))


@routes.command("remove")
@click.argument("number")
@data_dir_option
@with_store
async def routes_remove(store, number):
    """Forget the department of calls to NUMBER."""
    await store.calls.remove_route(cli_actor("calls"), number)
    click.echo(_("route for {number} removed").format(number=number))


@routes.command("list")
@data_dir_option
@json_option
@with_store
async def routes_list(store, as_json):
    """List dialled numbers and their departments."""
    rows = await store.calls.routes()
    if as_json:
        print_json([{"number": n, "department": d} for n, d in rows])
    else:
        for number, dept in rows:
            click.echo(f"{number}: {dept}")


@ingest.command("queue-log")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--watch", is_flag=True, help="Keep running: pick up lines as Asterisk appends them, until Ctrl-C.")
@click.option(
    "--interval",
    default=2.0,
    show_default=True,
    type=click.FloatRange(0.05, 3600),
    help="Seconds between polls in --watch mode.",
)
@click.option(
    "--watch-iterations", type=click.IntRange(1), hidden=True, help="Stop --watch after this many polls (tests)."
)
@data_dir_option
@json_option
@with_store
async def ingest_queue_log(store, file, watch, interval, watch_iterations, as_json):
    """Ingest Asterisk's queue_log (/var/log/asterisk/queue_log): waits, answers, abandonments, pauses."""
    from cim.commands.traffic import run_queue_log  # the traffic area's own module (issue 18)

    await run_queue_log(store, file, watch, interval, watch_iterations, as_json)
