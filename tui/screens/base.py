"""The bases of every TUI screen and modal: a worker's failure is always told (tui/widgets/worker_errors.py).

A screen derives from `CimScreen[...]`, a modal from `CimModal[...]`; tests/test_tui_errors.py
fails when a screen class in tui/ does not.
"""

from __future__ import annotations

from typing import TypeVar

from textual.screen import ModalScreen, Screen

from tui.widgets.worker_errors import ReportsWorkerErrors

ResultType = TypeVar("ResultType")


class CimScreen(ReportsWorkerErrors, Screen[ResultType]):
    """A full screen whose failed workers are reported."""


class CimModal(ReportsWorkerErrors, ModalScreen[ResultType]):
    """A modal whose failed workers are reported."""
