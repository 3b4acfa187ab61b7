"""Generated archives for the benchmarks: calls and chats written with executemany into a store made by Store.open.

Realistic shape: office-hours calls over a span of days (ids grow with time), a skewed pool of
repeat callers (mobile and Szczecin landline numbers, some withheld), 40 consultants with
extensions in 8 departments, recordings for answered calls, chats with short transcripts.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import random
import sqlite3
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

log = logging.getLogger("bench.dataset")

DEPARTMENTS = (
    ("WO", "Wydział Obsługi Mieszkańców"),
    ("USC", "Urząd Stanu Cywilnego"),
    ("WK", "Wydział Komunikacji"),
    ("WGK", "Wydział Gospodarki Komunalnej"),
    ("WPiOŚ", "Wydział Podatków i Opłat"),
    ("WSS", "Wydział Spraw Społecznych"),
    ("WUiAB", "Wydział Urbanistyki"),
    ("BOI", "Biuro Obsługi Interesantów"),
)
CONSULTANTS = 40
#: The staff member who searches the archive in the benchmarks.
SEARCHER = "archiwistka"
PASSWORD = "bench-password-not-secret"
#: 44 bytes: the empty WAV Asterisk leaves when a call ends before any audio (enough for a purge).
EMPTY_WAV = (
    b"RIFF$\x00\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00\x01\x00@\x1f\x00\x00\x80>\x00\x00"
    b"\x02\x00\x10\x00data\x00\x00\x00\x00"
)
ISO = "%Y-%m-%dT%H:%M:%S.%fZ"
CHAT_LINES = (
    "Dzień dobry, chciałabym zapytać o termin odbioru dowodu osobistego.",
    "Dzień dobry, dowód będzie do odbioru w ciągu 30 dni od złożenia wniosku.",
    "Czy mogę zapłacić podatek od nieruchomości przelewem?",
    "Tak, numer rachunku jest w decyzji podatkowej.",
)


@dataclass(frozen=True)
class Dataset:
    data_dir: Path
    calls: int
    chats: int
    start: datetime
    end: datetime
    #: A frequent caller's number (national form) and a few digits of another, for the searches.
    frequent_number: str
    partial_digits: str
    consultant: str

    def as_json(self) -> dict:
        return {
            "calls": self.calls,
            "chats": self.chats,
            "start": self.start.strftime(ISO),
            "end": self.end.strftime(ISO),
            "frequent_number": self.frequent_number,
            "partial_digits": self.partial_digits,
            "consultant": self.consultant,
        }


def _iso(moment: datetime) -> str:
    return moment.strftime(ISO)


def _numbers(rng: random.Random, count: int) -> list[str]:
    out = []
    for _ in range(count):
        if rng.random() < 0.8:
            out.append(str(rng.choice((5, 6, 7, 8))) + "".join(rng.choice("0123456789") for _ in range(8)))
        else:
            out.append("91" + "".join(rng.choice("0123456789") for _ in range(7)))
    return out


def _moments(rng: random.Random, count: int, start: datetime, end: datetime) -> list[datetime]:
    """`count` office-hours moments (Mon–Fri 06:30–16:30 UTC, a few outside), sorted."""
    span = (end - start).total_seconds()
    out = []
    while len(out) < count:
        moment = start + timedelta(seconds=rng.random() * span)
        if moment.weekday() < 5 and (6.5 <= moment.hour + moment.minute / 60 <= 16.5 or rng.random() < 0.03):
            out.append(moment.replace(microsecond=rng.randrange(1000) * 1000))
    out.sort()
    return out


async def _make_store(data_dir: Path) -> tuple[list[int], dict[int, int], int, int]:
    """Store.open (schema, migrations), departments, consultants with extensions, the searcher."""
    from store import Store
    from store.models import Actor
    from store.settings import Settings

    settings = Settings.load(data_dir, env={}, password_profile="fast", opening_hours="always")
    store = await Store.open(settings, create=True)
    try:
        system = Actor.system("bench")
        for code, name in DEPARTMENTS:
            await store.accounts.add_department(system, code, name)
        consultant_ids, dept_of = [], {}
        department_ids = {d.code: d.id for d in await store.accounts.departments()}
        for i in range(CONSULTANTS):
            code = DEPARTMENTS[i % len(DEPARTMENTS)][0]
            staff = await store.accounts.add_staff(
                system, f"konsultant{i:02d}", ("consultant",), PASSWORD, department=code, extensions=(str(201 + i),)
            )
            consultant_ids.append(staff.id)
            dept_of[staff.id] = department_ids.get(staff.department)
        searcher = await store.accounts.add_staff(system, SEARCHER, ("designated",), PASSWORD)
        chat_notice = (await store.notices.current("chat", "pl")).id
        phone_notice = (await store.notices.current("phone", "pl")).id
        del searcher
        return consultant_ids, dept_of, chat_notice, phone_notice
    finally:
        await store.close()


def generate(
    data_dir: Path, calls: int, chats: int, *, start: datetime, end: datetime, files: bool = False, seed: int = 308
) -> Dataset:
    """Write `calls` calls and `chats` chats between start and end (and, with `files`, their recordings)."""
    from store.clock import Duration

    began = time.monotonic()
    consultant_ids, dept_of, chat_notice, phone_notice = asyncio.run(_make_store(data_dir))
    rng = random.Random(seed)
    pool = _numbers(rng, max(1000, calls // 4))
    # a skewed distribution of callers: a few call very often
    weights = [1.0 / (i + 1) ** 0.6 for i in range(len(pool))]
    six_months = Duration.parse("P6M")
    recordings_dir = data_dir / "recordings"
    conn = sqlite3.connect(data_dir / "cim.sqlite3", isolation_level=None)
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("PRAGMA foreign_keys=OFF")
    conn.execute("PRAGMA secure_delete=OFF")
    conn.execute("BEGIN")
    moments = _moments(rng, calls, start, end)
    callers = rng.choices(pool, weights=weights, k=calls)
    sha = hashlib.sha256(EMPTY_WAV).hexdigest()
    conv_rows, leg_rows, rec_rows, dirs = [], [], [], set()
    next_id = (conn.execute("SELECT coalesce(max(id), 0) FROM conversations").fetchone()[0]) + 1
    for i, moment in enumerate(moments):
        conv_id = next_id + i
        kind = rng.random()
        direction = "incoming" if kind < 0.75 else "outgoing" if kind < 0.96 else "internal"
        r = rng.random()
        disposition = "ANSWERED" if r < 0.8 else "NO ANSWER" if r < 0.95 else "BUSY"
        consultant = rng.choice(consultant_ids) if disposition == "ANSWERED" or direction != "incoming" else None
        number, identifiable, rev = None, None, None
        if direction != "internal":
            if rng.random() < 0.06:
                number, identifiable = "anonymous", 0
            else:
                number, identifiable = "+48" + callers[i], 1
                rev = callers[i][::-1] + "84"
        billsec = rng.randint(20, 600) if disposition == "ANSWERED" else 0
        duration = billsec + rng.randint(3, 40)
        uniqueid = f"{int(moment.timestamp())}.{conv_id}"
        ended = moment + timedelta(seconds=duration)
        conv_rows.append(
            (
                conv_id,
                _iso(moment),
                _iso(ended),
                _iso(six_months.after(moment)),
                dept_of.get(consultant) if consultant else None,
                consultant,
                direction,
                number,
                identifiable,
                str(201 + consultant_ids.index(consultant)) if consultant else None,
                uniqueid,
                uniqueid,
                disposition,
                duration,
                billsec,
                1 if direction == "incoming" else None,
                (1 if rng.random() < 0.1 else 0) if direction == "incoming" else None,
                phone_notice if direction == "incoming" else None,
                rev,
            )
        )
        leg_rows.append((uniqueid, uniqueid, conv_id, "bench", _iso(ended)))
        if disposition == "ANSWERED":
            folder = moment.strftime("%Y/%m/%d")
            path = f"{folder}/{uniqueid}.wav"
            rec_rows.append((conv_id, uniqueid, path, sha, len(EMPTY_WAV), 0.0, "wav-pcm", 1, _iso(ended)))
            if files:
                if folder not in dirs:
                    (recordings_dir / folder).mkdir(parents=True, exist_ok=True)
                    dirs.add(folder)
                (recordings_dir / path).write_bytes(EMPTY_WAV)
        if len(conv_rows) >= 50_000:
            _flush_calls(conn, conv_rows, leg_rows, rec_rows)
    _flush_calls(conn, conv_rows, leg_rows, rec_rows)
    # chats
    chat_moments = _moments(rng, chats, start, end)
    categories = ("information_given", "referred", "case_registered", "no_reply", "other")
    first_chat = conn.execute("SELECT coalesce(max(id), 0) FROM conversations").fetchone()[0] + 1
    chat_rows, msg_rows = [], []
    for j, moment in enumerate(chat_moments):
        chat_id = first_chat + j
        consultant = rng.choice(consultant_ids)
        ended = moment + timedelta(seconds=rng.randint(60, 900))
        chat_rows.append(
            (
                chat_id,
                _iso(moment),
                _iso(ended),
                _iso(six_months.after(moment)),
                dept_of[consultant],
                consultant,
                "pl" if rng.random() < 0.9 else "en",
                chat_notice,
                _iso(moment),
                rng.choice(categories),
            )
        )
        at = _iso(moment)
        msg_rows += [
            (chat_id, 1, "system", None, "Mieszkaniec zaakceptował informację (wersja 1, język pl).", at),
            (chat_id, 2, "resident", None, CHAT_LINES[j % 2 * 2], at),
            (chat_id, 3, "system", consultant, "Rozmowę przejął konsultant.", at),
            (chat_id, 4, "consultant", consultant, CHAT_LINES[j % 2 * 2 + 1], at),
            (chat_id, 5, "system", consultant, "Konsultant zakończył rozmowę.", _iso(ended)),
        ]
        if len(chat_rows) >= 20_000:
            _flush_chats(conn, chat_rows, msg_rows)
    _flush_chats(conn, chat_rows, msg_rows)
    conn.execute("COMMIT")
    conn.execute("ANALYZE")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    frequent = max(set(callers[:5000]), key=callers[:5000].count)
    other = callers[len(callers) // 2]
    dataset = Dataset(data_dir, calls, chats, start, end, frequent, other[-4:], "konsultant07")
    (data_dir / "bench-dataset.json").write_text(json.dumps(dataset.as_json()))
    log.info(
        "generated %s calls and %s chats%s in %.1f s",
        calls,
        chats,
        " with files" if files else "",
        time.monotonic() - began,
    )
    return dataset


def _flush_calls(conn: sqlite3.Connection, conv_rows: list, leg_rows: list, rec_rows: list) -> None:
    conn.executemany(
        "INSERT INTO conversations(id, channel, status, created_at, ended_at, purge_after, department_id, "
        "consultant_id, direction, resident_number, number_identifiable, extension, pbx_uniqueid, pbx_linkedid, "
        "disposition, duration_s, billsec_s, notice_played, full_info_requested, notice_id, number_rev) "
        "VALUES (?, 'call', 'ended', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        conv_rows,
    )
    conn.executemany(
        "INSERT INTO call_legs(leg_key, uniqueid, conversation_id, fingerprint, imported_at) VALUES (?, ?, ?, ?, ?)",
        leg_rows,
    )
    conn.executemany(
        "INSERT INTO recordings(conversation_id, pbx_uniqueid, path, sha256, size_bytes, duration_s, "
        "format, is_empty, imported_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        rec_rows,
    )
    conv_rows.clear()
    leg_rows.clear()
    rec_rows.clear()


def _flush_chats(conn: sqlite3.Connection, chat_rows: list, msg_rows: list) -> None:
    conn.executemany(
        "INSERT INTO conversations(id, channel, status, created_at, ended_at, purge_after, department_id, "
        "consultant_id, lang, notice_id, notice_accepted_at, close_category, next_seq) "
        "VALUES (?, 'chat', 'closed', ?, ?, ?, ?, ?, ?, ?, ?, ?, 6)",
        chat_rows,
    )
    conn.executemany(
        "INSERT INTO messages(conversation_id, seq, sender, staff_id, text, at) VALUES (?, ?, ?, ?, ?, ?)", msg_rows
    )
    chat_rows.clear()
    msg_rows.clear()


def load(data_dir: Path) -> Dataset | None:
    """The dataset cached in `data_dir`, or None when there is none (or it is incomplete)."""
    meta = data_dir / "bench-dataset.json"
    if not meta.is_file():
        return None
    m = json.loads(meta.read_text())
    parse = lambda text: datetime.strptime(text, ISO).replace(tzinfo=timezone.utc)  # noqa: E731
    return Dataset(
        data_dir,
        m["calls"],
        m["chats"],
        parse(m["start"]),
        parse(m["end"]),
        m["frequent_number"],
        m["partial_digits"],
        m["consultant"],
    )


def cached_archive(cache: Path, calls: int, chats: int) -> Dataset:
    """The archive of `calls` calls and `chats` chats over the six months before it was made, from the cache."""
    import shutil

    data_dir = cache / f"archive-{calls}-{chats}-v1"
    found = load(data_dir)
    if found is not None:
        return found
    if data_dir.exists():
        shutil.rmtree(data_dir)
    end = datetime.now(timezone.utc).replace(microsecond=0)
    return generate(data_dir, calls, chats, start=end - timedelta(days=183), end=end)
