"""The key ring file (store/keys.py, crypto-shredding): an SQLite database outside the data directory, attached as `keyring`."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from ..errors import StoreUnavailable
from ..i18n import N_

#: The key ring's tables (`{db}`: the schema they are made in), see store/keys.py.
KEYRING_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS {db}.data_keys (key_id BLOB PRIMARY KEY, conversation_id INTEGER NOT NULL, "
    "generation INTEGER NOT NULL, wrapped BLOB NOT NULL, created_at TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS {db}.shredded (key_id BLOB PRIMARY KEY, conversation_id INTEGER NOT NULL, "
    "shredded_at TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS {db}.meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
)


def prepare_keyring(path: Path) -> None:
    """Create the key ring (0600 in a 0700 folder) and its tables; blocking, before the database opens."""
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        old = os.umask(0o077)
        try:
            conn = sqlite3.connect(path)
        finally:
            os.umask(old)
    except (OSError, sqlite3.Error) as exc:
        raise StoreUnavailable(
            N_(
                "cannot open the key ring {path}: {exc}; set CIM_KEYRING_FILE to a writable place "
                "outside the data directory"
            ),
            path=path,
            exc=exc,
        ) from exc
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        for sql in KEYRING_SCHEMA:
            conn.execute(sql.format(db="main"))
        conn.commit()
    except sqlite3.DatabaseError as exc:
        raise StoreUnavailable(N_("{path} is not a usable CIM key ring ({exc})"), path=path, exc=exc) from exc
    finally:
        conn.close()
    os.chmod(path, 0o600)
