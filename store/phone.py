"""Telephone numbers as CIM compares them: normalised to E.164 (+48... by default), or not identifiable (§4.7)."""

from __future__ import annotations

import re

#: Values PBXs put in the caller-id field when the number is not known (§4.7: not identifiable).
WITHHELD = frozenset({"anonymous", "unknown", "restricted", "private", "withheld", "unavailable"})
_SEPARATORS = re.compile(r"[\s\-\.\(\)/]")


def normalise_number(raw: str | None, *, country_code: str = "48") -> str | None:
    """The number in E.164 form (`+48601234567`), or None when it is not an identifiable number.

    Accepted: spaces, dashes, dots, slashes and parentheses as separators; `+CC...` and `00CC...`
    international forms; nine-digit Polish numbers with or without the national `0` trunk prefix or
    the `48` country code. Withheld markers (`anonymous`, `unknown`, `restricted`, ...), empty text,
    letters and digit strings of implausible length are not identifiable.
    """
    if raw is None:
        return None
    text = raw.strip()
    if not text or text.lower() in WITHHELD:
        return None
    text = _SEPARATORS.sub("", text)
    if text.startswith("+"):
        digits = text[1:]
    elif text.startswith("00"):
        digits = text[2:]
    else:
        digits = None
    if digits is not None:
        if digits.isascii() and digits.isdigit() and 8 <= len(digits) <= 15 and not digits.startswith("0"):
            return "+" + digits
        return None
    if not (text.isascii() and text.isdigit()):
        return None
    if len(text) == 10 and text.startswith("0"):
        text = text[1:]
    if len(text) == 9:
        return f"+{country_code}{text}"
    if len(text) == 9 + len(country_code) and text.startswith(country_code):
        return "+" + text
    return None


def is_identifiable(raw: str | None) -> bool:
    return normalise_number(raw) is not None
