"""Resident text made safe to show: control characters made visible, never markup or escape sequences."""

from __future__ import annotations

import re

from rich.text import Text

# C0 controls except newline, DEL, C1 controls, and the bidirectional overrides/isolates that can
# reorder what a consultant reads (a "Trojan Source" style trick).
_UNSAFE = re.compile("[\x00-\x09\x0b-\x1f\x7f\x80-\x9f\u202a-\u202e\u2066-\u2069\u200e\u200f]")


def _visible(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    if char == "\t":
        return "    "
    if code < 0x20:
        return chr(0x2400 + code)  # the Unicode "control pictures": ␛ for ESC, ␍ for CR ...
    if code == 0x7F:
        return "\u2421"  # ␡
    return "\ufffd"


def visible_text(text: str) -> str:
    """The text with every control character replaced by a visible stand-in (newlines kept)."""
    return _UNSAFE.sub(_visible, text)


def literal(text: str, style: str = "") -> Text:
    """A Rich Text that shows `text` exactly as typed: square brackets and markup are just characters."""
    return Text(visible_text(text), style=style, end="")
