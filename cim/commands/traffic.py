"""`cim ingest queue-log` and `cim report service`: queue facts from Asterisk and the centre's service figures."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import click

from cim.common import cli_actor, print_json
from store.queue_log import QueueLogReport


async def run_queue_log(store, file: Path, watch: bool, interval: float, iterations: int | None,
                        as_json: bool) -> None:
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
                click.echo(f"{polled.imported} new queue_log lines, {len(polled.rejected)} rejected", err=True)
                for r in polled.rejected:
                    click.echo(f"  line {r.line}: {r.reason}", err=True)

        if not as_json:
            click.echo(f"watching {src.path} (Ctrl-C to stop)", err=True)
        report = await store.queue_log.watch(actor, src, stop, interval=interval, iterations=iterations,
                                             on_poll=on_poll)
    else:
        report = await store.queue_log.ingest(actor, src)
    if as_json:
        print_json(report.as_json())
        return
    click.echo(f"imported {report.imported} queue_log lines ({report.queue_calls} queue stays, "
               f"{report.member_events} member events), {report.already_present} already present, "
               f"{len(report.rejected)} rejected; {report.linked_to_calls} stays linked to calls")
    if report.unknown_events:
        click.echo("events not used: " + ", ".join(f"{k} ×{v}" for k, v in sorted(report.unknown_events.items())))
    if not watch:
        for r in report.rejected:
            click.echo(f"rejected line {r.line}: {r.reason}", err=True)
