"""The SQLite connection owner's old place: it lives in store/sqlite/database.py; this name stays for old imports."""

from __future__ import annotations

from .sqlite.database import (
    APPLICATION_ID,
    BUSY_TIMEOUT_MS,
    MIGRATIONS_DIR,
    Database,
    check_data_dir,
    migration_names,
    run_on_thread,
)

__all__ = [
    "APPLICATION_ID",
    "BUSY_TIMEOUT_MS",
    "MIGRATIONS_DIR",
    "Database",
    "check_data_dir",
    "migration_names",
    "run_on_thread",
]
