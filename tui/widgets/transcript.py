"""The transcript of one live chat: time, sender and the literal text of every line."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from rich.text import Text
from textual.widgets import RichLog

from tui.live import ChatLine
from tui.widgets.literal import literal

SENDER_LABELS = {"resident": "Resident", "consultant": "Consultant", "system": "System"}


def format_line(line: ChatLine, tz: ZoneInfo) -> Text:
    at = line.at.astimezone(tz).strftime("%H:%M") if isinstance(line.at, datetime) else "--:--"
    label = SENDER_LABELS.get(line.sender, line.sender)
    style = {"resident": "bold cyan", "consultant": "bold green", "system": "italic"}.get(line.sender, "")
    head = Text.assemble((at, "dim"), " ", (f"{label}:", style), " ")
    body = literal(line.text, "italic dim" if line.sender == "system" else "")
    return Text.assemble(head, body)


class Transcript(RichLog):
    """A scrolling transcript; resident text goes in as Text objects, so markup is never parsed."""

    DEFAULT_CSS = """
    Transcript { height: 1fr; border: round $primary-darken-1; padding: 0 1; overflow-y: auto; }
    """

    def __init__(self, *, tz: ZoneInfo, id: str | None = None) -> None:
        super().__init__(wrap=True, markup=False, highlight=False, auto_scroll=True, min_width=20, id=id)
        self.tz = tz
        self.shown_seqs: set[int] = set()

    def show(self, lines: list[ChatLine]) -> None:
        """Replace the transcript with these lines."""
        self.clear()
        self.shown_seqs = set()
        for line in lines:
            self.add(line)

    def add(self, line: ChatLine) -> None:
        if line.seq in self.shown_seqs:
            return
        self.shown_seqs.add(line.seq)
        self.write(format_line(line, self.tz))

    def plain_text(self) -> str:
        """What is on the transcript, as plain text (for tests and screen readers' copy)."""
        return "\n".join(strip.text for strip in self.lines)
