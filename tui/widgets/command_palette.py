"""Textual's command palette with its own words in the staff language ("No matches found" included)."""

from __future__ import annotations

from rich.align import Align
from rich.text import Text
from textual.command import CommandList, CommandPalette
from textual.widgets.option_list import Option

from store.i18n import N_, _

NO_MATCHES = N_("No matches found")


class StaffCommandPalette(CommandPalette):
    """Textual's palette; the line it shows when a search finds nothing is in the staff language.

    Textual writes that line in English inside `_start_no_matches_countdown` (textual/command.py), with no
    hook for its text: this is that method again with the text translated, using the same timer, option id
    and visibility flag (tests/test_tui_errors.py fails if a Textual upgrade changes them)."""

    def _start_no_matches_countdown(self, search_value: str) -> None:
        self._stop_no_matches_countdown()

        def show_no_matches() -> None:
            if search_value:  # a search that found nothing; an empty search (discover mode) shows no such line
                self.query_one(CommandList).add_option(
                    Option(Align.center(Text(_(NO_MATCHES), style="not bold")), disabled=True, id=self._NO_MATCHES)
                )
                self._list_visible = True
            else:
                self._list_visible = False

        self._no_matches_timer = self.set_timer(self._NO_MATCHES_COUNTDOWN, show_no_matches)
