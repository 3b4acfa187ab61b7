"""`cim serve`: the chat server (widget, /resident and /staff Socket.IO namespaces) as a long-running service."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import sys
from typing import Any

import click

from cim.common import data_dir_option, fail, load_settings
from store import Store
from store.errors import CimError
from store.i18n import _

log = logging.getLogger("cim.serve")
#: One line per event: time, level, logger, then `event key=value ...` (never message contents).
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
#: Access log without referrer or user agent; Socket.IO query strings carry only session ids.
#: Seconds a stopping server waits for open requests (sockets are closed first, see webchat.app).
SHUTDOWN_SECONDS = 5.0
#: The collector's thresholds in `cim serve` (Python's default is 700, 10, 10). With 2,000 sockets open,
#: every queue change makes thousands of payloads that wait in the sockets' queues long enough to survive
#: a young collection; with the default thresholds they reached the oldest generation within a second and
#: set off a full collection of the whole heap about once a second (150-400 ms each, collecting nothing:
#: the desk benchmark's p99 tail, bench/FINDINGS.md finding 11). A young collection every 10,000 allocations
#: and a full one after 100 middle ones keep the pauses short and rare; reference counting still frees
#: everything that is not in a cycle at once, and cycles are still collected.
GC_THRESHOLDS = (10_000, 50, 100)
ACCESS_LOG_FORMAT = 'http.request peer=%a request="%r" status=%s bytes=%b duration_s=%Tf'


def register(cli: click.Group) -> None:
    cli.add_command(serve)


@click.command()
@data_dir_option
@click.option("--host", default=None, help="Address to listen on (default: setting `host`, 127.0.0.1).")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=None,
    help="Port to listen on (default: setting `port`, 8080; 0 picks a free one).",
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    show_default=True,
    help="Least severe log lines written to stderr.",
)
def serve(data_dir: str | None, host: str | None, port: int | None, log_level: str) -> None:
    """Run the chat server until SIGTERM or Ctrl-C: the widget at /widget/, a demo page at /, /healthz."""
    settings = load_settings(data_dir, host=host, port=port)
    logging.basicConfig(level=log_level.upper(), format=LOG_FORMAT, stream=sys.stderr)
    try:
        asyncio.run(_serve(settings))
    except CimError as exc:
        fail(exc.message)
    except OSError as exc:
        fail(
            _("cannot listen on {host}:{port}: {error}").format(
                host=settings.host, port=settings.port, error=exc.strerror or exc
            )
        )
    except KeyboardInterrupt:
        pass


def tune_garbage_collector() -> None:
    """After start-up: freeze what exists (it lives as long as the process) and set GC_THRESHOLDS."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


async def _serve(settings) -> None:
    # aiohttp and the chat server are imported here, not at module level: `cim` imports every command,
    # and `cim tui` should not pay for the server's imports (bench/: TUI start-up).
    from aiohttp import web

    from webchat.app import create_app, runner_options

    store = await Store.open(settings)
    try:
        app = create_app(settings, store)
        # AppRunner's keyword arguments are of several types; runner_options names only its float timeouts
        options: dict[str, Any] = runner_options(settings)
        runner = web.AppRunner(
            app,
            handle_signals=False,
            access_log_format=ACCESS_LOG_FORMAT,
            shutdown_timeout=SHUTDOWN_SECONDS,
            **options,
        )
        await runner.setup()
        try:
            site = web.TCPSite(runner, settings.host, settings.port)
            await site.start()
            # Start-up objects (modules, the app, the store) live as long as the process: freeze them out of
            # the collector's generations, so full collections with thousands of sockets open stay short
            # (bench/: chat p99 at 2,000 residents 12-51 ms → 6-22 ms, the longest pause 115 → 65 ms).
            tune_garbage_collector()
            server = site._server
            bound = (
                server.sockets[0].getsockname()
                if isinstance(server, asyncio.Server)
                else (settings.host, settings.port)
            )
            log.info("serve.listening url=http://%s:%s data_dir=%s", bound[0], bound[1], settings.data_dir)
            log.info(
                "serve.letters sealed=%s until=%s",
                "yes" if store.requests.seal else "no",
                f"{store.requests.seal.not_after:%Y-%m-%d}" if store.requests.seal else "-",
            )
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, stop.set)
            await stop.wait()
            log.info("serve.stopping")
        finally:
            await runner.cleanup()
    finally:
        await store.close()
