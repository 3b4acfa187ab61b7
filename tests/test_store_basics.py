"""Opening the store: migrations, bad database files, data directory permissions, notices, settings, import hygiene."""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest

from store import Store
from store.clock import Duration, add_months_to_date
from store.db import migration_names
from store.errors import ConfigError, InvalidInput, NotPermitted, StoreUnavailable
from store.notice_texts import CHAT_PL, PHONE_PL
from store.settings import Settings

SEED = Path(__file__).resolve().parents[2] / "shared" / "seed" / "zarzadzenie-308-18-szczecin.txt"


async def test_migrations_are_applied_once_and_recorded(settings, clock) -> None:
    for _ in range(3):
        st = await Store.open(settings, create=True, clock=clock)
        applied = await st.db.applied_migrations()
        await st.close()
        assert applied == migration_names()
    conn = sqlite3.connect(settings.db_path)
    assert conn.execute("SELECT count(*) FROM notices WHERE version = 1").fetchone()[0] == 4
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


async def test_missing_database_without_create(settings, clock) -> None:
    with pytest.raises(StoreUnavailable, match="cim init"):
        await Store.open(settings, clock=clock)


async def test_a_corrupted_file_is_refused(settings, clock) -> None:
    settings.data_dir.mkdir(mode=0o700)
    settings.db_path.write_bytes(b"this is not a database at all" * 100)
    with pytest.raises(StoreUnavailable, match="not a usable CIM database"):
        await Store.open(settings, clock=clock)


async def test_a_foreign_sqlite_database_is_refused_and_left_alone(settings, clock) -> None:
    settings.data_dir.mkdir(mode=0o700)
    conn = sqlite3.connect(settings.db_path)
    conn.execute("CREATE TABLE photos (id INTEGER)")
    conn.commit()
    conn.close()
    before = settings.db_path.read_bytes()
    with pytest.raises(StoreUnavailable, match="another application"):
        await Store.open(settings, create=True, clock=clock)
    assert settings.db_path.read_bytes() == before


async def test_data_directory_is_private(settings, clock) -> None:
    st = await Store.open(settings, create=True, clock=clock)
    await st.close()
    assert settings.data_dir.stat().st_mode & 0o777 == 0o700
    assert settings.db_path.stat().st_mode & 0o777 == 0o600
    os.chmod(settings.data_dir, 0o755)
    with pytest.raises(StoreUnavailable, match="chmod 700"):
        await Store.open(settings, clock=clock)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere; permission is checked for service accounts")
async def test_unwritable_data_directory(tmp_path, clock) -> None:
    d = tmp_path / "ro"
    d.mkdir(mode=0o500)
    with pytest.raises(StoreUnavailable, match="not writable"):
        await Store.open(Settings.load(d, env={}), create=True, clock=clock)


async def test_unwritable_parent_of_a_new_data_directory(tmp_path, clock) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StoreUnavailable, match="cannot create|not a directory"):
        await Store.open(Settings.load(blocker / "data", env={}), create=True, clock=clock)


def _normalised(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


@pytest.mark.ordinance("§1.4")
@pytest.mark.ordinance("§1.5")
async def test_notices_version_1_are_the_ordinance_texts_verbatim(store) -> None:
    chat = await store.notices.current("chat", "pl")
    phone = await store.notices.current("phone", "pl")
    assert (chat.version, chat.legal, phone.version) == (1, True, 1)
    assert chat.text == CHAT_PL and phone.text == PHONE_PL
    if SEED.exists():  # the ordinance itself, when the shared folder is beside the checkout
        quoted = re.findall(r'"([^"]+)"', SEED.read_text(encoding="utf-8"))
        assert _normalised(PHONE_PL) == _normalised(quoted[0])
        assert _normalised(CHAT_PL) == _normalised(quoted[1])


async def test_new_notice_versions_keep_the_old_ones(store, make_staff) -> None:
    manager = (await make_staff("kierownik", "cim_manager")).as_actor()
    consultant = (await make_staff("anna", "consultant")).as_actor()
    with pytest.raises(NotPermitted):
        await store.notices.add_version(consultant, "chat", {"pl": "nowy"})
    with pytest.raises(InvalidInput):
        await store.notices.add_version(manager, "chat", {"en": "no Polish text"})
    with pytest.raises(InvalidInput, match="empty"):
        await store.notices.add_version(manager, "chat", {"pl": "Tekst.", "en": "   "})
    assert (await store.notices.current("chat", "en")).version == 1
    await store.notices.add_version(manager, "chat", {"pl": "Wersja druga."})
    assert (await store.notices.current("chat", "pl")).text == "Wersja druga."
    # no English translation of version 2 yet: the legal Polish text is shown
    assert (await store.notices.current("chat", "en")).text == "Wersja druga."
    assert [n.version for n in await store.notices.history("chat")] == [1, 1, 2]


@pytest.mark.ordinance("§6")
@pytest.mark.parametrize(
    ("start", "duration", "expected"),
    [
        ("2026-08-31T10:00", "P6M", "2027-02-28T10:00"),
        ("2027-08-31T10:00", "P6M", "2028-02-29T10:00"),  # leap year
        ("2026-01-15T08:30", "P6M", "2026-07-15T08:30"),
        ("2026-12-31T23:59", "P3M", "2027-03-31T23:59"),
        ("2026-03-01T00:00", "PT0S", "2026-03-01T00:00"),
        ("2026-03-01T00:00", "P1Y2M3DT4H", "2027-05-04T04:00"),
    ],
)
def test_retention_durations_clamp_to_month_end(start, duration, expected) -> None:
    begin = datetime.fromisoformat(start).replace(tzinfo=timezone.utc)
    assert Duration.parse(duration).after(begin) == datetime.fromisoformat(expected).replace(tzinfo=timezone.utc)


def test_add_months_to_a_date() -> None:
    from datetime import date

    assert add_months_to_date(date(2026, 1, 31), 1) == date(2026, 2, 28)
    assert add_months_to_date(date(2026, 11, 30), 3) == date(2027, 2, 28)


@pytest.mark.parametrize("bad", ["6M", "P", "PT", "P6X", "six months", "", "P-1M"])
def test_bad_durations_are_refused_by_name(tmp_path, bad) -> None:
    with pytest.raises(ConfigError):
        Settings.load(tmp_path, env={"CIM_RETENTION": bad})


def test_settings_precedence_and_errors(tmp_path) -> None:
    (tmp_path / "cim.toml").write_text('retention = "P3M"\nport = 9000\n', encoding="utf-8")
    assert Settings.load(tmp_path, env={}).retention == "P3M"
    assert Settings.load(tmp_path, env={"CIM_RETENTION": "PT0S"}).retention == "PT0S"
    assert Settings.load(tmp_path, env={}).port == 9000
    with pytest.raises(ConfigError, match="whole number"):
        Settings.load(tmp_path, env={"CIM_PORT": "eighty"})
    (tmp_path / "cim.toml").write_text("nonsense = 1\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="unknown settings: nonsense"):
        Settings.load(tmp_path, env={})
    (tmp_path / "cim.toml").write_text("retention = \n", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid TOML"):
        Settings.load(tmp_path, env={})
    assert Settings.load(None, env={"CIM_DATA_DIR": str(tmp_path / "x")}).data_dir == tmp_path / "x"


def test_store_imports_no_ui_or_web_module() -> None:
    """STYLE.md 3: store/ knows no screen and no socket."""
    code = (
        "import sys, store, store.accounts, store.audit, store.policy, store.notices, store.db\n"
        "import pkgutil, importlib\n"
        "for m in pkgutil.walk_packages(store.__path__, 'store.'):\n"
        "    importlib.import_module(m.name)\n"
        "bad = sorted(n for n in sys.modules if n.split('.')[0] in "
        "{'tui', 'webchat', 'textual', 'aiohttp', 'socketio', 'engineio'})\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert out.stdout.strip() == ""


async def test_conversation_ids_are_never_reused_after_a_deletion(store) -> None:
    """Audit entries keep the ids of purged conversations; a new conversation must not take one."""
    insert = (
        "INSERT INTO conversations(channel, status, created_at, purge_after) "
        "VALUES ('chat', 'closed', '2026-01-01T00:00:00.000000Z', '2026-07-01T00:00:00.000000Z')"
    )
    async with store.db.write() as tx:
        first = (await tx.execute(insert)).lastrowid
        newest = (await tx.execute(insert)).lastrowid
        await tx.execute("DELETE FROM conversations WHERE id = ?", (newest,))
        again = (await tx.execute(insert)).lastrowid
    assert first < newest < again


async def test_run_on_thread_runs_in_the_callers_transaction(store) -> None:
    """The one use of aiosqlite's private API: it must still run on the connection, inside the transaction."""
    from store.db import run_on_thread

    def insert_and_count(conn, day):
        conn.execute("INSERT INTO declined_notices(day, count) VALUES (?, 1)", (day,))
        return conn.execute("SELECT count(*) FROM declined_notices").fetchone()[0]

    with pytest.raises(RuntimeError):
        async with store.db.write() as tx:
            assert await run_on_thread(tx, insert_and_count, "2026-01-01") == 1
            raise RuntimeError("roll back")
    assert (await store.db.fetchone("SELECT count(*) AS n FROM declined_notices"))["n"] == 0
    async with store.db.write() as tx:
        assert await run_on_thread(tx, insert_and_count, "2026-01-02") == 1
    assert (await store.db.fetchone("SELECT count(*) AS n FROM declined_notices"))["n"] == 1
