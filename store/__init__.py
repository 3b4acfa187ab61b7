"""CIM's domain on SQLite: the only layer that touches the database and the recordings folder.

Open it with `await Store.open(settings)`; every operation that reads personal content or changes
state takes the acting `Actor`, checks the permission policy and audits in the same transaction.
"""

from __future__ import annotations

from .accounts import Accounts
from .archive import Archive
from .audit import AuditLog
from .calls import Calls
from .chats import Chats
from .clock import Clock, system_clock
from .db import Database, check_data_dir
from .errors import CimError, NotPermitted
from .listening import Listening
from .models import Actor, Role
from .notices import Notices
from .requests import Requests
from .reports import Reports
from .retention import Retention
from .settings import Settings

__all__ = ["Store", "Settings", "Actor", "Role", "CimError", "NotPermitted"]


class Store:
    """The facade over the domain services; one per process, closed on shutdown."""

    def __init__(self, settings: Settings, db: Database, clock: Clock) -> None:
        self.settings = settings
        self.db = db
        self.clock = clock
        self.audit = AuditLog(db, clock)
        self.accounts = Accounts(db, self.audit, settings, clock)
        self.notices = Notices(db, self.audit, clock)
        self.requests = Requests(db, self.audit, settings, clock)
        self.chats = Chats(db, self.audit, settings, clock)
        self.retention = Retention(db, self.audit, settings, clock)
        self.reports = Reports(db, self.audit, clock, settings.timezone)
        self.calls = Calls(self)
        self.archive = Archive(self)
        self.listening = Listening(self)

    @classmethod
    async def open(cls, settings: Settings, *, create: bool = False, clock: Clock = system_clock) -> "Store":
        """Open (with `create`, first make) the data directory and database, applying pending migrations."""
        check_data_dir(settings.data_dir, create=create)
        for folder in (settings.recordings_dir, settings.letters_dir):
            if create:
                folder.mkdir(mode=0o700, exist_ok=True)
        db = Database(settings.db_path, clock)
        await db.open(create=create)
        return cls(settings, db, clock)

    async def close(self) -> None:
        self.listening.stop()
        await self.db.close()

    async def __aenter__(self) -> "Store":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
