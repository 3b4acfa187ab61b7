"""The staff's language: gettext catalogs (Babel) for the TUI, the CLI's human messages and the reports.

Source strings (msgids) are English; `store/locale/pl/*.po` hold the Polish translations, which are the
default for everyone in the office. English is the source text itself (no catalog needed). Several `.po`
files per language are merged when loaded, so each area of the code keeps its own file (`tui.po`,
`cli.po`, `reports.po`, `desk.po`, ...); a msgid translated in two files must say the same in both
(tests/test_i18n_catalogs.py checks that, and that every msgid used in code has a Polish entry).

Use:
    from store.i18n import _, ngettext, N_
    _("Signed in as {name}").format(name=...)
    ngettext("{n} chat", "{n} chats", n).format(n=n)   # pl: 1 rozmowa, 2 rozmowy, 5 rozmów
    TITLE = N_("Archive")    # marked for extraction at import time; translate with _(TITLE) when shown

The language of the process (one TUI is one person) is `current_language()`: set by `set_language()` at
sign-in from the account's preference, else `CIM_STAFF_LANG`, else Polish. Code that renders for another
reader (a report in a chosen language, a letter: always Polish) uses `translator(lang)` explicitly.
Dates and times for people go through `format_datetime` / `format_date` / `format_time`, in the office's
time zone (`CIM_TIMEZONE`), never as UTC ISO text.
"""

from __future__ import annotations

import io
import os
from datetime import date, datetime, timezone
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo

from babel import Locale
from babel.dates import format_date as _babel_date
from babel.dates import format_datetime as _babel_datetime
from babel.dates import format_time as _babel_time
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations

#: Languages staff may choose; the first is the default.
STAFF_LANGS: tuple[str, ...] = ("pl", "en")
DEFAULT_LANG = "pl"
LOCALE_DIR = Path(__file__).with_name("locale")
_LOCALES = {"pl": "pl_PL", "en": "en_GB"}

_current: str | None = None


def normalise_language(value: str | None) -> str | None:
    """'pl', 'PL', 'pl_PL.UTF-8', 'en-GB' -> 'pl'/'en'; anything else -> None."""
    if not value:
        return None
    head = value.strip().lower().replace("-", "_").split(".")[0].split("_")[0]
    return head if head in STAFF_LANGS else None


def env_language() -> str:
    """`CIM_STAFF_LANG` when it names a staff language, else Polish."""
    return normalise_language(os.environ.get("CIM_STAFF_LANG")) or DEFAULT_LANG


def current_language() -> str:
    return _current or env_language()


def set_language(lang: str | None) -> str:
    """Set the process's staff language (None: back to CIM_STAFF_LANG / Polish); returns the one in force."""
    global _current
    _current = normalise_language(lang)
    return current_language()


@lru_cache(maxsize=None)
def translator(lang: str) -> NullTranslations:
    """The merged catalog of `lang` (English: the identity)."""
    lang = normalise_language(lang) or DEFAULT_LANG
    folder = LOCALE_DIR / lang
    files = sorted(folder.glob("*.po")) if folder.is_dir() else []
    if not files:
        return NullTranslations()
    first, *rest = files
    with first.open("rb") as handle:
        merged = read_po(handle, locale=_LOCALES[lang])
    for path in rest:
        with path.open("rb") as handle:
            catalog = read_po(handle, locale=_LOCALES[lang])
        for message in catalog:
            if message.id and message.id not in merged:
                merged[message.id] = message
    buffer = io.BytesIO()
    write_mo(buffer, merged)
    buffer.seek(0)
    return Translations(buffer)


def _(message: str) -> str:
    """Translate into the current staff language."""
    return translator(current_language()).gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    """The plural form for `n` in the current staff language (Polish has three)."""
    return translator(current_language()).ngettext(singular, plural, n)


def pgettext(context: str, message: str) -> str:
    # babel annotates pgettext `-> str | object` (its internal "missing" sentinel), but it returns a str
    return translator(current_language()).pgettext(context, message)  # type: ignore[return-value]


def N_(message: str) -> str:
    """Mark a string for extraction without translating it now (module-level constants)."""
    return message


def _zone(tz: str | None) -> ZoneInfo:
    return ZoneInfo(tz or os.environ.get("CIM_TIMEZONE") or "Europe/Warsaw")


def _local(moment: datetime, tz: str | None) -> datetime:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(_zone(tz))


def format_datetime(moment: datetime, *, lang: str | None = None, tz: str | None = None, seconds: bool = False) -> str:
    """'2 gru 2026, 14:05' style (pl) / '2 Dec 2026, 14:05' (en), in the office's time zone."""
    lang = normalise_language(lang) or current_language()
    local = _local(moment, tz)
    pattern = "d MMM y, HH:mm:ss" if seconds else "d MMM y, HH:mm"
    return _babel_datetime(local, pattern, locale=Locale.parse(_LOCALES[lang]))


def format_date(day: date | datetime, *, lang: str | None = None, tz: str | None = None, long: bool = False) -> str:
    lang = normalise_language(lang) or current_language()
    if isinstance(day, datetime):
        day = _local(day, tz).date()
    return _babel_date(day, "d MMMM y" if long else "d MMM y", locale=Locale.parse(_LOCALES[lang]))


def format_time(moment: datetime, *, lang: str | None = None, tz: str | None = None, seconds: bool = False) -> str:
    lang = normalise_language(lang) or current_language()
    return _babel_time(_local(moment, tz), "HH:mm:ss" if seconds else "HH:mm", locale=Locale.parse(_LOCALES[lang]))
