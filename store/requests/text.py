"""The one cleaning of free text a request records: register fields, opinions, reasons, notes, justifications.

All of it may end up in a letter, a session record or a CSV cell, so every field gets the same treatment:
C0 and C1 control characters go (a pasted escape sequence, a stray NUL), and so do the bidirectional
overrides and isolates (U+202A-U+202E, U+2066-U+2069) that would make a printed line read other than it is
stored; newlines and tabs stay where a field may hold several lines. Over-long text is refused, not cut.
"""

from __future__ import annotations

import re
from typing import Any

from ..errors import InvalidInput, Text
from ..i18n import N_
from .model import MAX_TEXT

#: C0 (but tab and newline), DEL and C1; carriage returns go too (a CRLF paste becomes LF first)
_CONTROLS_MULTILINE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
#: on one line, tabs and newlines go as well
_CONTROLS_LINE = re.compile(r"[\x00-\x1f\x7f-\x9f]")
#: LRE, RLE, PDF, LRO, RLO and LRI, RLI, FSI, PDI: they reorder what a reader sees
_BIDI = re.compile(r"[\u202a-\u202e\u2066-\u2069]")


def clean_text(
    value: Any,
    label: str,
    *,
    required: bool = False,
    limit: int = MAX_TEXT,
    multiline: bool = True,
    missing: str | None = None,
    plural: bool = False,
) -> str:
    """`value` as it may be stored: controls and bidi overrides removed, trimmed, within `limit`.

    Raises InvalidInput naming `label` (`plural`: "the reasons are ...") when a `required` field is empty
    (or with `missing`, when given) and when the text is longer than `limit` characters.
    """
    text = "" if value is None else str(value)
    text = text.replace("\r\n", "\n")
    text = (_CONTROLS_MULTILINE if multiline else _CONTROLS_LINE).sub("", text)
    text = _BIDI.sub("", text).strip()
    if required and not text:
        if missing:
            raise InvalidInput(missing)
        raise InvalidInput(
            N_("the {label} are required") if plural else N_("the {label} is required"), label=Text(label)
        )
    if len(text) > limit:
        raise InvalidInput(
            N_("the {label} are longer than {limit} characters")
            if plural
            else N_("the {label} is longer than {limit} characters"),
            label=Text(label),
            limit=limit,
        )
    return text
