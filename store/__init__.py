"""CIM's domain on SQLite: the only layer that touches the database and the recordings folder.

Open it with `await Store.open(settings)`; every operation that reads personal content or changes
state takes the acting `Actor`, checks the permission policy and audits in the same transaction.
"""

from __future__ import annotations

from .accounts import Accounts
from .archive import Archive
from .audit import AuditLog
from .backend import open_backend
from .call_notes import CallNotes
from .callbacks import Callbacks
from .calls import Calls
from .chats import Chats
from .clock import Clock, system_clock
from .db import Database, check_data_dir
from .desk import Desk
from .leases import Leases
from .errors import CimError, NotPermitted
from .extensions import Extensions
from .keys import Keys
from .listening import Listening
from .models import Actor, Role
from .notices import Notices
from .queue_log import QueueLog
from .requests import Requests
from .reports import Reports
from .resident_desk import ResidentDesk
from .retention import Retention
from .seal import load_seal
from .sealing import Sealing
from .sqlite.accounts import AccountsRepository
from .sqlite.archive import ArchiveRepository
from .sqlite.audit import AuditRepository
from .sqlite.call_notes import CallNotesRepository
from .sqlite.callbacks import CallbacksRepository
from .sqlite.calls import CallsRepository
from .sqlite.desk import DeskRepository
from .sqlite.chats import ChatsRepository
from .sqlite.extensions import ExtensionsRepository
from .sqlite.keys import KeysRepository
from .sqlite.queue_log import QueueLogRepository
from .sqlite.reports import ReportsRepository
from .sqlite.requests import RequestRepository
from .sqlite.resident_desk import ResidentDeskRepository
from .sqlite.service_report import ServiceReportRepository
from .sqlite.leases import LeasesRepository
from .sqlite.listening import ListeningRepository
from .sqlite.notices import NoticesRepository
from .sqlite.retention import RetentionRepository
from .sqlite.sealing import SealingRepository
from .sqlite.supervision import SupervisionRepository
from .service_report import ServiceFigures
from .settings import Settings
from .supervision import Supervision

__all__ = ["Store", "Settings", "Actor", "Role", "CimError", "NotPermitted"]


class Store:
    """The facade over the domain services; one per process, closed on shutdown."""

    def __init__(self, settings: Settings, db: Database, clock: Clock) -> None:
        self.settings = settings
        self.db = db
        self.clock = clock
        self.audit = AuditLog(AuditRepository(db), clock, settings)
        self.keys = Keys(KeysRepository(db), settings)
        self.accounts = Accounts(AccountsRepository(db), self.audit, settings, clock)
        self.notices = Notices(NoticesRepository(db), self.audit, clock)
        self.requests = Requests(db, self.audit, settings, clock, self.keys, repo=RequestRepository(db))
        self.chats = Chats(ChatsRepository(db), self.audit, settings, clock, self.keys)
        self.sealing = Sealing(self, SealingRepository(db))  # `cim keys encrypt-existing`
        self.desk = Desk(DeskRepository(db), self.audit, settings, clock, self.chats)  # topics, routing, capacity
        self.chats.check_topic = self.desk.check_topic  # a resident's topic is the desk's rule
        #: the engine's own mechanics the domain asks for (store/backend.py), e.g. the purge's scrub
        self.backend = db.hooks()
        self.retention = Retention(RetentionRepository(db), self.audit, settings, clock, self.backend)
        self.retention.keys = self.keys
        self.reports = Reports(ReportsRepository(db), self.audit, clock, settings.timezone)
        self.calls = Calls(self, CallsRepository(db))
        self.archive = Archive(self, ArchiveRepository(db))
        self.queue_log = QueueLog(self, QueueLogRepository(db))
        self.service = ServiceFigures(self, ServiceReportRepository(db))
        # offline messages, receipts and copies, satisfaction ratings (issue 17)
        self.resident_desk = ResidentDesk(ResidentDeskRepository(db), self.audit, settings, clock)
        self.resident_desk.keys = self.keys
        self.requests.resident_desk = self.resident_desk
        self.call_notes = CallNotes(self, CallNotesRepository(db))
        self.leases = Leases(LeasesRepository(db), clock)  # which node runs the jobs meant for one
        self.callbacks = Callbacks(self, CallbacksRepository(db))
        self.extensions = Extensions(ExtensionsRepository(db), self.audit)
        self.listening = Listening(self, ListeningRepository(db))
        self.supervision = Supervision(self, SupervisionRepository(db))

    @classmethod
    async def open(cls, settings: Settings, *, create: bool = False, clock: Clock = system_clock) -> "Store":
        """Open (with `create`, first make) the data directory and database, applying pending migrations.

        The backend is the one CIM_DATABASE_URL's scheme names (store/backend.py); only `sqlite:` exists.
        """
        backend = open_backend(settings.database.scheme)  # an unsupported scheme: ConfigError, nothing created
        check_data_dir(settings.data_dir, create=create)
        seal = load_seal(settings)  # a misconfigured seal fails here, at start-up, not at the first letter
        for folder in (settings.recordings_dir, settings.letters_dir):
            if create:
                folder.mkdir(mode=0o700, exist_ok=True)
        db = await backend.open_database(settings, clock, create=create)
        try:
            store = cls(settings, db, clock)  # a bad setting found by a service (CIM_LDAP_ROLE_MAP...) raises here
            store.requests.seal = seal
            await store.audit.open_keys()
            await store.keys.open()  # a missing or wrong master key is refused here, before anything is written
        except BaseException:  # no thread left behind
            await db.close()
            raise
        return store

    async def ping(self) -> None:
        """Raise when the database does not answer (the server's /healthz)."""
        await self.backend.ping()

    async def applied_migrations(self) -> list[str]:
        """Names of the migrations recorded in the database, in order (`cim init`)."""
        return await self.backend.applied_migrations()

    async def close(self) -> None:
        self.listening.stop()
        self.keys.close()
        await self.db.close()

    async def __aenter__(self) -> "Store":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
