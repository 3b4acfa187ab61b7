"""The password policy for new passwords: length, a bundled list of common passwords, the person's name.

No composition rules (NIST SP 800-63B 5.1.1.2): a long passphrase is better than `P@ssw0rd1!`. Passwords
that already exist are not re-checked at sign-in; the policy applies whenever a password is set.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from pathlib import Path

from .errors import InvalidInput
from .i18n import N_

MIN_NEW_PASSWORD = 12
MAX_PASSWORD = 1024
#: Name parts shorter than this are too common inside ordinary words to refuse ("ola", "jan").
MIN_NAME_PART = 4
COMMON_PASSWORDS_FILE = Path(__file__).with_name("data") / "common_passwords.txt"

_SEPARATORS = re.compile(r"[\s._\-'`]+")
_EDGE_NOISE = re.compile(r"^[\d\W_]+|[\d\W_]+$")


@lru_cache(maxsize=1)
def common_passwords() -> frozenset[str]:
    lines = COMMON_PASSWORDS_FILE.read_text(encoding="utf-8").splitlines()
    return frozenset(_fold(line) for line in lines if line.strip() and not line.startswith("#"))


def _fold(text: str) -> str:
    """Lower case, Polish letters without their marks (ł→l), separators removed."""
    text = unicodedata.normalize("NFKD", text.lower().replace("ł", "l"))
    text = "".join(c for c in text if not unicodedata.combining(c))
    return _SEPARATORS.sub("", text)


def check_length(password: str) -> None:
    if not password or not password.strip():
        raise InvalidInput(N_("the password is empty"))
    if len(password) > MAX_PASSWORD:
        raise InvalidInput(N_("the password must have at most {max} characters"), max=MAX_PASSWORD)


def check_new_password(password: str, *, name: str, full_name: str = "") -> None:
    """Raise InvalidInput with the reason when `password` may not be set for this person."""
    check_length(password)
    if len(password) < MIN_NEW_PASSWORD:
        raise InvalidInput(N_("the password must have at least {min} characters"), min=MIN_NEW_PASSWORD)
    folded = _fold(password)
    common = common_passwords()
    core = _EDGE_NOISE.sub("", folded)
    if folded in common or core in common or _is_repetition(folded, common):
        raise InvalidInput(N_("the password is on the list of commonly used passwords; choose another"))
    if len(set(folded)) <= 2:
        raise InvalidInput(N_("the password repeats one or two characters; choose another"))
    for part in _name_parts(name, full_name):
        if part in folded:
            raise InvalidInput(N_("the password must not contain your user name or your name"))


def _is_repetition(folded: str, common: frozenset[str]) -> bool:
    """`haslohaslo123`, `qwertyqwerty`: a common password or a short run repeated."""
    core = _EDGE_NOISE.sub("", folded) or folded
    for size in range(1, len(core) // 2 + 1):
        unit = core[:size]
        if len(core) % size == 0 and unit * (len(core) // size) == core:
            return size <= 4 or unit in common
    return False


def _name_parts(name: str, full_name: str) -> set[str]:
    parts = {_fold(name)} | {_fold(p) for p in re.split(r"[\s.\-_]+", name)}
    parts |= {_fold(p) for p in re.split(r"\s+", full_name or "")}
    return {p for p in parts if len(p) >= MIN_NAME_PART}
