"""One place where an unexpected failure of a screen's worker becomes a clear notification."""

from __future__ import annotations

import logging

from textual.worker import Worker, WorkerState

from store.errors import CimError

log = logging.getLogger(__name__)


class ReportsWorkerErrors:
    """Mixin for screens: a worker that raised (exit_on_error=False) is reported, not lost."""

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state != WorkerState.ERROR:
            return
        error = event.worker.error
        if isinstance(error, CimError):
            message = error.message
        else:
            log.error("worker %s failed", event.worker.name, exc_info=error)
            message = f"Something went wrong ({type(error).__name__}: {error}); the details are in the log."
        self.notify(message, title="Not done", severity="error")  # type: ignore[attr-defined]
