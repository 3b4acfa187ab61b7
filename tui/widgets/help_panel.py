"""The keys panel (Ctrl+P → *Klawisze*, Textual's `HelpPanel`) in the staff language.

The panel lists the bindings of the focused widget and of everything around it. CIM's own screens and widgets
translate their descriptions when they are made (tui/screens/base.py `translate_bindings`); Textual's own
widgets (Input, DataTable, TextArea, Select, ...) carry English descriptions that nothing translates. This
panel translates every node of the focus chain before it is drawn, from each node's English source (kept on
the node the first time), so a language switch later translates again from English, never from Polish. The
msgids are listed in tui/textual_words.py (catalog: store/locale/pl/textual.po).
"""

from __future__ import annotations

from dataclasses import replace

from textual.dom import DOMNode
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import HelpPanel

from store.i18n import _

_SOURCE = "_cim_source_bindings"


def translate_node(node: DOMNode) -> None:
    """The node's binding descriptions and tooltips in today's staff language, from their English source."""
    source = getattr(node, _SOURCE, None)
    if source is None:
        source = node._bindings.copy()
        setattr(node, _SOURCE, source)
    translated = source.copy()
    keys = translated.key_to_bindings
    for key, bindings in list(keys.items()):
        keys[key] = [
            replace(
                b,
                description=_(b.description) if b.description else b.description,
                tooltip=_(b.tooltip) if b.tooltip else b.tooltip,
            )
            for b in bindings
        ]
    node._bindings = translated


def translate_focus_chain(screen: Screen) -> None:
    """Every node whose bindings the keys panel and footer show for the focused widget, translated."""
    focused = screen.focused
    chain: list[DOMNode] = list(focused.ancestors_with_self) if focused is not None else [screen]
    for node in chain:
        if node is not screen.app:  # the app translates its own (tui/app.py `_retranslate`)
            translate_node(node)


class StaffHelpPanel(HelpPanel):
    """Textual's keys panel whose descriptions are in the staff language for whatever widget has the focus."""

    def update_help(self, focused_widget: Widget | None) -> None:
        translate_focus_chain(self.screen)
        self.screen.refresh_bindings()
        super().update_help(focused_widget)
