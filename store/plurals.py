"""Counts of the office's things in words with the right plural (pl: 1 połączenie, 2 połączenia, 5 połączeń),
shared by the TUI, the CLI and the reports; `lang` None means the staff language in force."""

from __future__ import annotations

from .i18n import current_language, translator


def _t(lang: str | None):
    # each count below calls .ngettext with its literal texts, so the catalog test sees them
    return translator(lang or current_language())


def calls(n: int, lang: str | None = None) -> str:
    return _t(lang).ngettext("{n} call", "{n} calls", n).format(n=n)


def chats(n: int, lang: str | None = None) -> str:
    return _t(lang).ngettext("{n} chat transcript", "{n} chat transcripts", n).format(n=n)


def files(n: int, lang: str | None = None) -> str:
    return _t(lang).ngettext("{n} file", "{n} files", n).format(n=n)


def recordings(n: int, lang: str | None = None) -> str:
    return _t(lang).ngettext("{n} recording", "{n} recordings", n).format(n=n)


def requests(n: int, lang: str | None = None) -> str:
    return _t(lang).ngettext("{n} request", "{n} requests", n).format(n=n)


def holds(n: int, lang: str | None = None) -> str:
    return _t(lang).ngettext("{n} hold", "{n} holds", n).format(n=n)


def accesses(n: int, lang: str | None = None) -> str:
    return _t(lang).ngettext("{n} access", "{n} accesses", n).format(n=n)


def refused_attempts(n: int, lang: str | None = None) -> str:
    return _t(lang).ngettext("{n} refused attempt", "{n} refused attempts", n).format(n=n)


def purges(n: int, lang: str | None = None) -> str:
    return _t(lang).ngettext("{n} purge", "{n} purges", n).format(n=n)


def days(n: int, lang: str | None = None) -> str:
    return _t(lang).ngettext("{n} day", "{n} days", n).format(n=n)
