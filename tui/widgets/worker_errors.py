"""One place where a failure of a screen's worker becomes a clear notification and a log line.

A worker method lets its errors go: no `try/except CimError: self.notify(...)` around a store call.
`ReportsWorkerErrors` (the base of the app, every screen and every modal: tui/screens/base.py) tells a
refusal (CimError) as its own sentence and anything else as an unexpected error, logged with its traceback
(`cim tui`/`cim demo`: <data dir>/cim-tui.log). What the worker was doing titles the notification:

    @failure_title(N_("Cannot search"))
    @work(exclusive=True, exit_on_error=False, group="search")
    async def load_page(self) -> None: ...

or, when the title depends on what the worker is about to do, `set_failure_title(_("Cannot enable the account"))`
inside it.
A worker still catches what it answers differently: an error shown next to a form's field, a fallback.
"""

from __future__ import annotations

import logging
from typing import Callable, Protocol, TypeVar

from textual.notifications import SeverityLevel
from textual.worker import NoActiveWorker, Worker, WorkerState, get_current_worker

from store.errors import CimError
from store.i18n import N_, _

log = logging.getLogger(__name__)

#: The notification's title for a failed worker that names none (translated when shown).
FAILED_TITLE = N_("Not done")
#: The attribute `failure_title` sets on a worker method.
TITLE_ATTRIBUTE = "cim_failure_title"

F = TypeVar("F", bound=Callable)


def failure_title(title: str) -> Callable[[F], F]:
    """Name what a worker method does, as the title of its failure's notification (an English msgid, N_)."""

    def mark(method: F) -> F:
        setattr(method, TITLE_ATTRIBUTE, title)
        return method

    return mark


def set_failure_title(title: str | None) -> None:
    """Title the failure notification of the worker running now (a translated text; None: its method's title
    again). Outside a worker: nothing."""
    try:
        worker = get_current_worker()
    except NoActiveWorker:
        return
    setattr(worker, TITLE_ATTRIBUTE, title)


def title_of(node: object, worker: Worker) -> str:
    """The translated title for `worker`'s failure: set while it ran, else its method's, else "Not done"."""
    title = getattr(worker, TITLE_ATTRIBUTE, None)
    if title:
        return title
    method = getattr(type(node), worker.name, None) if worker.name.isidentifier() else None
    return _(getattr(method, TITLE_ATTRIBUTE, FAILED_TITLE))


def failure_message(error: BaseException | None) -> str:
    """What the person is told: a refusal's own sentence, or that something unexpected broke."""
    if isinstance(error, CimError):
        return _(error.message) if error.message else type(error).__name__  # a store sentence the catalog knows
    detail = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    return _("Unexpected error: {detail} (details are in the log).").format(detail=detail)


class _Notifies(Protocol):
    """What `ReportsWorkerErrors` needs of the App or Screen it is mixed into."""

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
        markup: bool = True,
    ) -> None: ...


class ReportsWorkerErrors:
    """Mixin for the app and every screen (tui/screens/base.py): a worker that raised is reported, not lost.

    Textual posts `Worker.StateChanged` to the node that started the worker and does not bubble it, so
    each screen needs this handler itself; a CimError (a refusal) is told as it is, anything else also
    goes to the log with its traceback.
    """

    def on_worker_state_changed(self: _Notifies, event: Worker.StateChanged) -> None:
        if event.state != WorkerState.ERROR:
            return
        error = event.worker.error
        if isinstance(error, CimError):
            log.info("worker %s refused: %s", event.worker.name, error.message)
        else:
            log.error("worker %s of %s failed", event.worker.name, type(self).__name__, exc_info=error)
        self.notify(
            failure_message(error),
            title=title_of(self, event.worker),
            severity="error",
            markup=False,
        )
