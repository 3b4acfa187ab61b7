"""The SQLite backend (`CIM_DATABASE_URL=sqlite:`): connections, migrations, the engine's upkeep and repositories.

Everything that knows it is talking to SQLite lives in this package: the connection owner
(database.py: one writer behind a lock, one reader, BEGIN IMMEDIATE transactions), the hooks the
domain calls for SQLite's own mechanics (hooks.py: WAL checkpoints, FTS5 optimise, the purge's
scrub, the backup copy), the key ring file and its tables (keyring.py) and the repositories that
hold a domain area's SQL (retention.py, accounts.py, listening.py, callbacks.py, call_notes.py,
queue_log.py, service_report.py, reports.py, extensions.py, requests.py, calls.py, notices.py,
archive.py, audit.py, keys.py).
"""

from __future__ import annotations

from ..clock import Clock
from .database import Database
from .keyring import prepare_keyring


async def open_database(settings, clock: Clock, *, create: bool) -> Database:
    """The database CIM_DATABASE_URL names, opened (with `create`, made) and migrated, with the key ring attached."""
    if create or settings.db_path.exists():
        prepare_keyring(settings.keyring_path)  # outside the data directory: backups never carry a key
    db = Database(settings.database.path, clock, keyring=settings.keyring_path)
    await db.open(create=create)
    return db
