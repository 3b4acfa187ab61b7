"""The staff's message catalogs (store/i18n.py): every string marked in code has a Polish entry, the
catalogs agree with each other, keep the placeholders, and Polish plurals and dates come out right."""

from __future__ import annotations

import string
from datetime import datetime, timezone
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from store import i18n

ROOT = Path(__file__).resolve().parents[1]
KEYWORDS = {"_": None, "N_": None, "ngettext": (1, 2), "pgettext": ((1, "c"), 2)}
PL = ROOT / "store" / "locale" / "pl"


def used_in_code() -> dict[str, str]:
    """msgid -> where it is first used, for every marked string in cim/, store/, tui/, webchat/."""
    found: dict[str, str] = {}
    for package in ("cim", "store", "tui", "webchat"):
        for filename, lineno, message, _comments, _context in extract_from_dir(
            ROOT / package, method_map=[("**.py", "python")], keywords=KEYWORDS
        ):
            msgid = message[0] if isinstance(message, (tuple, list)) else message
            if msgid:
                found.setdefault(msgid, f"{package}/{filename}:{lineno}")
    return found


def help_in_code() -> dict[str, str]:
    """msgid -> command, for every help text of `cim` (docstrings and `help=` are not `_()` calls, so they
    are read from the click command tree itself: cim/help.py)."""
    from cim.cli import cli
    from cim.help import help_texts

    return {text: f"cim {where} (help)" for text, where in help_texts(cli).items()}


def catalogs() -> list[tuple[Path, object]]:
    result = []
    for path in sorted(PL.glob("*.po")):
        with path.open("rb") as handle:
            result.append((path, read_po(handle, locale="pl_PL")))
    return result


def fields(text: str) -> set[str]:
    return {name for _lit, name, _spec, _conv in string.Formatter().parse(text) if name is not None}


def test_every_marked_string_has_a_polish_entry():
    known = {m.id if isinstance(m.id, str) else m.id[0] for _p, cat in catalogs() for m in cat if m.id}
    missing = {msgid: where for msgid, where in {**help_in_code(), **used_in_code()}.items() if msgid not in known}
    assert not missing, "strings marked in code without a Polish entry in store/locale/pl/*.po:\n" + "\n".join(
        f"  {where}: {msgid!r}" for msgid, where in sorted(missing.items(), key=lambda kv: kv[1])
    )


def test_the_help_of_every_command_is_found_and_in_polish():
    found = help_in_code()
    assert len(found) > 100 and "List departments." in found
    polish = i18n.translator("pl")
    assert all(polish.gettext(text) != text for text in found), [t for t in found if polish.gettext(t) == t]


def test_catalogs_translate_everything_and_keep_placeholders():
    problems = []
    for path, catalog in catalogs():
        assert "nplurals=3" in (catalog.plural_forms or ""), f"{path.name}: Polish Plural-Forms header missing"
        for message in catalog:
            if not message.id:
                continue
            ids = message.id if isinstance(message.id, tuple) else (message.id,)
            strs = message.string if isinstance(message.string, tuple) else (message.string,)
            if not all(strs):
                problems.append(f"{path.name}: untranslated {ids[0]!r}")
                continue
            if "fuzzy" in message.flags:
                problems.append(f"{path.name}: fuzzy {ids[0]!r}")
            want = fields(ids[-1]) | fields(ids[0])
            for text in strs:
                if fields(text) - want:
                    problems.append(f"{path.name}: {ids[0]!r} -> {text!r} adds placeholders {fields(text) - want}")
                if len(ids) == 1 and fields(text) != fields(ids[0]):
                    problems.append(f"{path.name}: {ids[0]!r} -> {text!r} changes placeholders")
    assert not problems, "\n".join(problems)


def test_a_string_translated_in_two_files_says_the_same():
    seen: dict[str, tuple[str, object]] = {}
    clashes = []
    for path, catalog in catalogs():
        for message in catalog:
            if not message.id:
                continue
            key = message.id if isinstance(message.id, str) else message.id[0]
            if key in seen and seen[key][1] != message.string:
                clashes.append(f"{key!r}: {seen[key][0]} vs {path.name}")
            seen.setdefault(key, (path.name, message.string))
    assert not clashes, "\n".join(clashes)


@pytest.mark.parametrize(
    ("n", "want"),
    [
        (1, "1 rozmowa"),
        (2, "2 rozmowy"),
        (4, "4 rozmowy"),
        (5, "5 rozmów"),
        (12, "12 rozmów"),
        (22, "22 rozmowy"),
        (25, "25 rozmów"),
        (0, "0 rozmów"),
    ],
)
def test_polish_plurals(n, want):
    assert i18n.translator("pl").ngettext("{n} chat", "{n} chats", n).format(n=n) == want
    assert i18n.translator("en").ngettext("{n} chat", "{n} chats", n).format(n=n) == (
        f"{n} chat" if n == 1 else f"{n} chats"
    )


def test_dates_are_local_and_in_the_reader_language():
    moment = datetime(2026, 7, 2, 22, 30, tzinfo=timezone.utc)  # 3 July, 00:30 in Warsaw (CEST)
    assert i18n.format_datetime(moment, lang="pl", tz="Europe/Warsaw") == "3 lip 2026, 00:30"
    assert i18n.format_datetime(moment, lang="en", tz="Europe/Warsaw") == "3 Jul 2026, 00:30"
    assert i18n.format_date(moment, lang="pl", tz="Europe/Warsaw", long=True) == "3 lipca 2026"
    assert "Z" not in i18n.format_datetime(moment, lang="pl") and "+" not in i18n.format_datetime(moment, lang="pl")


@pytest.mark.staff_lang(None)
def test_language_choice(monkeypatch):
    monkeypatch.setenv("CIM_STAFF_LANG", "en_GB.UTF-8")
    i18n.set_language(None)
    assert i18n.current_language() == "en"
    monkeypatch.setenv("CIM_STAFF_LANG", "klingon")
    assert i18n.current_language() == "pl"
    monkeypatch.delenv("CIM_STAFF_LANG")
    assert i18n.current_language() == "pl"
    assert i18n.set_language("EN") == "en" and i18n._("Polish") == "Polish"
    assert i18n.set_language(None) == "pl" and i18n._("Polish") == "polski"
