"""A small text chart of a day per hour: calls' average wait and abandoned calls and chats (no markup, plain Text)."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.widgets import Static

from store.i18n import _

BAR = "█"


def chart_text(hours: list[dict[str, Any]], width: int = 24) -> Text:
    """One line per hour with contacts: `10:00  ████████ 20 s  ▒▒ 2` from report `hours` entries."""
    text = Text()
    if not hours:
        text.append(_("No calls or chats in this period."), style="dim")
        return text
    waits = [h["calls"]["wait_avg_s"] or 0 for h in hours]
    abandoned = [h["calls"]["abandoned"] + h["chats"]["abandoned"] for h in hours]
    top_wait, top_abandoned = max(waits) or 1, max(abandoned) or 1
    hour, wait_title, lost_title = _("hour"), _("avg. wait (calls)"), _("abandoned (calls + chats)")
    first = max(6, len(hour))  # '10:00' rows line up under a longer word ('godzina')
    text.append(f"{hour:{first}} {wait_title:{width + 8}} {lost_title}\n", style="bold")
    for h, wait, lost in zip(hours, waits, abandoned):
        bar = BAR * max(1 if wait else 0, round(wait / top_wait * width))
        lost_bar = "▒" * max(1 if lost else 0, round(lost / top_abandoned * (width // 2)))
        text.append(f"{h['hour']:02d}:00".ljust(first) + " ")
        text.append(f"{bar:{width}}", style="bold")
        text.append(f" {wait:>5g} s  ")
        text.append(lost_bar, style="bold red")
        text.append(f" {lost}\n")
    return text


class HourChart(Static):
    """Shows `chart_text` of the report's hours."""

    DEFAULT_CSS = "HourChart { height: auto; padding: 0 1; }"

    def show(self, hours: list[dict[str, Any]]) -> None:
        self.update(chart_text(hours))
