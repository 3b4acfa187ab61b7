"""The README's staff walkthrough quotes the UI as the office sees it: in Polish.

In the walkthrough sections (a consultant's day with the IT administrators' paragraph, and the CIM
manager's sections), every UI label quoted in *italics* must be real Polish text the program shows:

- a msgstr of the Polish catalogs (store/locale/pl/*.po), whole; a `{placeholder}` of the msgstr stands
  for whatever the README writes there (`N`, `<name>`);
- or, for the resident's side, text of the widget's Polish strings (webchat/static/cim-widget.js; the
  pieces between numbers), or a topic `cim init` seeds (store.desk.DEFAULT_TOPICS);
- an English gloss in brackets right after a Polish label from the catalogs, `*Czaty na żywo* (Live
  chats)`, must be that label's msgid (case aside; the gloss is the bracket's text up to a `;`).

A `code` span there holding several words (or a symbol such as ●) must not be an English msgid that is
not also Polish text: `● connected` is refused, `● połączono` passes, `cim topics list` is no msgid.
Bold text and single-word code spans (role and category codes such as `consultant`, `abandoned`) are not
checked: they are not quotations of the UI, or cannot be told from one.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from babel.messages.pofile import read_po

from store.desk import DEFAULT_TOPICS

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
WIDGET = ROOT / "webchat" / "static" / "cim-widget.js"

#: The walkthrough sections (headings as they start); each runs to the next heading.
SECTIONS = (
    "### A consultant's day",
    "### Canned responses and notices",
    "### Topics, routing and capacity",
    "### Supervising the live chats",
)
ITALIC = re.compile(r"(?<![*\w])\*(?!\s)([^*]+?)(?<!\s)\*(?![*\w])")
GLOSS = re.compile(r"\A \(([^()]*)\)")
CODE = re.compile(r"`([^`]+)`")


def _flat(text: str) -> str:
    return " ".join(text.split())


def _pattern(message: str) -> re.Pattern[str] | None:
    """A catalog text as a whole-string pattern, `{name}` matching anything; None when it is too little
    text to recognise (a bare placeholder, `{a}: {b}`)."""
    parts = re.split(r"\{[^{}]*\}", message)
    if sum(len(re.findall(r"[^\W\d_]", p)) for p in parts) < 3:
        return None
    return re.compile(r"\A" + r".+?".join(re.escape(_flat(p)) for p in parts) + r"\Z", re.IGNORECASE)


def _catalog() -> list[tuple[re.Pattern[str], re.Pattern[str] | None]]:
    """(msgstr pattern, msgid pattern) for every form of every translated entry of the Polish catalogs."""
    pairs = []
    for path in sorted((ROOT / "store" / "locale" / "pl").glob("*.po")):
        with path.open("rb") as handle:
            for message in read_po(handle, locale="pl_PL"):
                if not message.id:
                    continue
                ids = [message.id] if isinstance(message.id, str) else list(message.id)
                strings = [message.string] if isinstance(message.string, str) else list(message.string)
                for text in strings:
                    polish = _pattern(text) if text else None
                    if polish is None:
                        continue
                    for msgid in ids:
                        pairs.append((polish, _pattern(msgid)))
    return pairs


CATALOG = _catalog()
ENGLISH = [p for p in {m.pattern: m for _s, m in CATALOG if m is not None}.values()]


def _sections(text: str) -> dict[str, str]:
    found = {}
    for heading in SECTIONS:
        start = text.find("\n" + heading)
        assert start >= 0, f"README.md has no section {heading!r} any more: update SECTIONS in this test"
        end = re.compile(r"\n#{1,3} ").search(text, start + len(heading) + 1)
        found[heading] = text[start : end.start() if end else len(text)]
    return found


def _in_widget(label: str, widget: str) -> bool:
    pieces = [p.strip(" .,:;") for p in re.split(r"\d+", label)]
    pieces = [p for p in pieces if p]
    return bool(pieces) and len("".join(pieces)) >= 8 and all(p in widget for p in pieces)


def check_italics(section: str, widget: str) -> list[str]:
    """What is wrong with the section's italic quotations (empty: all are real Polish UI text)."""
    wrong = []
    topics = {pl for pl, _en in DEFAULT_TOPICS}
    glossed: list[tuple[int, int]] = []
    for match in ITALIC.finditer(section):
        if any(a <= match.start() < b for a, b in glossed):
            continue  # an italic word inside a gloss, e.g. (English: *What is your question about?*)
        label = _flat(match.group(1))
        gloss = GLOSS.match(section[match.end() :])
        msgids = [m for polish, m in CATALOG if polish.match(label)]
        if gloss:
            glossed.append((match.end(), match.end() + gloss.end()))
        if msgids:
            if gloss:
                whole = _flat(gloss.group(1)).removeprefix("English: ").strip("*")
                english = (whole, whole.split(";")[0])
                if not any(m is not None and m.match(e) for m in msgids for e in english):
                    wrong.append(f"*{label}* is glossed ({whole}), which is not its msgid")
        elif label not in topics and not _in_widget(label, widget):
            wrong.append(f"*{label}* is not Polish text the UI shows (no msgstr in store/locale/pl/*.po)")
    return wrong


def check_code(section: str) -> list[str]:
    wrong = []
    for match in CODE.finditer(section):
        text = _flat(match.group(1)).strip("()")
        if " " not in text and text.isascii():
            continue
        if any(m.match(text) for m in ENGLISH) and not any(p.match(text) for p, _m in CATALOG):
            wrong.append(f"`{text}` quotes the English UI text")
    return wrong


@pytest.mark.parametrize("heading", SECTIONS)
def test_the_walkthrough_quotes_the_polish_ui(heading):
    section = _sections(README.read_text(encoding="utf-8"))[heading]
    widget = WIDGET.read_text(encoding="utf-8")
    assert not check_italics(section, widget) + check_code(section)


def test_the_checks_refuse_english_labels_and_wrong_glosses():
    widget = WIDGET.read_text(encoding="utf-8")
    assert check_italics("F2 opens *Czaty na żywo* (Live chats).", widget) == []
    assert check_italics("told *Notatka od: <name>:* (Note from <name>:; it rings)", widget) == []
    assert check_italics("the topic (*Podatki i opłaty*) and *Czy nadal tu jesteś?*", widget) == []
    assert check_italics("F2 opens *Live chats*.", widget)
    assert check_italics("F2 opens *Czaty na żywo* (My account).", widget)
    assert check_italics("told *Ten czat przyjęła już ktoś*.", widget)
    assert check_code("state `● połączono`, counts `(2 nowe)`, `cim topics list`, `abandoned`") == []
    assert check_code("state `● connected`") and check_code("counts `(2 new)`")
