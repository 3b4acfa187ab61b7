"""The bases of every TUI screen and modal: a worker's failure is always told (tui/widgets/worker_errors.py),
and the footer speaks the staff's language (store/i18n.py).

A screen derives from `CimScreen[...]`, a modal from `CimModal[...]`; tests/test_tui_errors.py
fails when a screen class in tui/ does not. Workers let their errors go to the base: no
`try/except CimError → notify` in a screen; `@failure_title(N_(...))` over `@work` (or `set_failure_title`
inside the worker) names what failed. Binding descriptions are written in English in BINDINGS
(the msgid, marked with N_ where they are not literal in a Binding(...) call) and translated when the
screen is made; a widget with its own BINDINGS calls `translate_bindings(self)` in its __init__.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TypeVar

from textual.dom import DOMNode
from textual.screen import ModalScreen, Screen

from store.i18n import _
from tui.widgets.worker_errors import ReportsWorkerErrors, failure_title, set_failure_title

__all__ = ["CimModal", "CimScreen", "failure_title", "set_failure_title", "translate_bindings"]

ResultType = TypeVar("ResultType")


def translate_bindings(node: DOMNode) -> None:
    """Replace the node's binding descriptions and tooltips with the current staff language's."""
    keys = node._bindings.key_to_bindings
    for key, bindings in list(keys.items()):
        keys[key] = [
            replace(
                b,
                description=_(b.description) if b.description else b.description,
                tooltip=_(b.tooltip) if b.tooltip else b.tooltip,
            )
            for b in bindings
        ]


class CimScreen(ReportsWorkerErrors, Screen[ResultType]):
    """A full screen whose failed workers are reported."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        translate_bindings(self)


class CimModal(ReportsWorkerErrors, ModalScreen[ResultType]):
    """A modal whose failed workers are reported."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        translate_bindings(self)
