"""One place where a failure of a screen's worker becomes a clear notification and a log line."""

from __future__ import annotations

import logging

from textual.worker import Worker, WorkerState

from store.errors import CimError
from store.i18n import N_, _

log = logging.getLogger(__name__)

#: The notification's title for every failed worker (translated when shown).
FAILED_TITLE = N_("Not done")


def failure_message(error: BaseException | None) -> str:
    """What the person is told: a refusal's own sentence, or that something unexpected broke."""
    if isinstance(error, CimError):
        return error.message
    detail = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    return _("Unexpected error: {detail} (details are in the log).").format(detail=detail)


class ReportsWorkerErrors:
    """Mixin for the app and every screen (tui/screens/base.py): a worker that raised is reported, not lost.

    Textual posts `Worker.StateChanged` to the node that started the worker and does not bubble it, so
    each screen needs this handler itself; a CimError (a refusal) is told as it is, anything else also
    goes to the log with its traceback.
    """

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state != WorkerState.ERROR:
            return
        error = event.worker.error
        if isinstance(error, CimError):
            log.info("worker %s refused: %s", event.worker.name, error.message)
        else:
            log.error("worker %s of %s failed", event.worker.name, type(self).__name__, exc_info=error)
        self.notify(failure_message(error), title=_(FAILED_TITLE), severity="error",  # type: ignore[attr-defined]
                    markup=False)
