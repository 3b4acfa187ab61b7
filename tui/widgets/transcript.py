"""The transcript of one live chat: time, sender and the literal text of every line."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from rich.text import Text
from textual.events import Resize
from textual.widgets import RichLog

from store.i18n import N_, _, format_time
from tui.live import ChatLine
from tui.widgets.literal import literal

SENDER_LABELS = {"resident": N_("Resident"), "consultant": N_("Consultant"), "system": N_("System")}


def format_line(line: ChatLine, tz: ZoneInfo) -> Text:
    at = format_time(line.at, tz=str(tz)) if isinstance(line.at, datetime) else "--:--"
    if line.sender == "note":  # a supervisor's whisper (§3): for staff only, never sent to the resident
        head = Text.assemble(
            (at, "dim"), " ", (_("Note from {name}:").format(name=line.author or "?"), "bold magenta"), " "
        )
        return Text.assemble(head, literal(line.text, "magenta"))
    label = _(SENDER_LABELS[line.sender]) if line.sender in SENDER_LABELS else line.sender
    style = {"resident": "bold cyan", "consultant": "bold green", "system": "italic"}.get(line.sender, "")
    head = Text.assemble((at, "dim"), " ", (f"{label}:", style), " ")
    body = literal(line.shown, "italic dim" if line.sender == "system" else "")
    return Text.assemble(head, body)


class Transcript(RichLog):
    """A scrolling transcript; resident text goes in as Text objects, so markup is never parsed.

    RichLog wraps a line once, at the width it has when the line is written. The scrollbar's gutter
    is therefore always reserved (a scrollbar appearing later does not cover the ends of lines), and
    every change of width wraps all lines again from their text.
    """

    DEFAULT_CSS = """
    Transcript { height: 1fr; border: round $primary-darken-1; padding: 0 1; overflow-y: auto;
                 overflow-x: hidden; scrollbar-gutter: stable; }
    """

    def __init__(self, *, tz: ZoneInfo, id: str | None = None) -> None:
        super().__init__(wrap=True, markup=False, highlight=False, auto_scroll=True, min_width=20, id=id)
        self.tz = tz
        self.shown_seqs: set = set()  # line keys (ChatLine.key): seqs, and ("note", id) for whispers
        #: The formatted lines, kept to wrap them again when the width changes.
        self._texts: list[Text] = []
        self._wrapped_at = 0

    def show(self, lines: list[ChatLine]) -> None:
        """Replace the transcript with these lines."""
        self.clear()
        self.shown_seqs = set()
        self._texts = []
        for line in lines:
            self.add(line)

    def add(self, line: ChatLine) -> None:
        if line.key in self.shown_seqs:  # a seq, or ("note", id) for a whisper
            return
        self.shown_seqs.add(line.key)
        text = format_line(line, self.tz)
        self._texts.append(text)
        self.write(text)

    def on_resize(self, event: Resize) -> None:
        # RichLog's own on_resize (run after this one) renders the writes made before the size was known
        if not self._size_known:
            return
        self._rewrap()

    def _rewrap(self) -> None:
        width = self.scrollable_content_region.width
        if width == self._wrapped_at or not width:
            return
        self._wrapped_at = width
        RichLog.clear(self)
        for text in self._texts:
            self.write(text)

    def plain_text(self) -> str:
        """What is on the transcript, as plain text (for tests and screen readers' copy)."""
        return "\n".join(strip.text for strip in self.lines)
