"""Live supervision of chats (§3): the supervisors' view of the desk, watching a chat with a purpose, whispers.

The CIM manager and the BOI director (SUPERVISE_CHATS) see every open chat and the queue (`live_chats`,
times and names only, never content), open a live chat for a stated purpose (`start_monitoring`, audited
as a reading, like the archive's transcripts) and send the consultant a whisper (`whisper`): a staff note
stored with the chat in `chat_staff_notes`, never in `messages`, so that nothing a resident is given (the
widget's history, a §4 reading, a copy) can carry it. Taking a chat over is `Chats.take_over`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Iterable

from .archive import PURPOSE_MAX
from .chats import ChatMessage, _client_msg_id, _message, clean_text, is_id
from .clock import from_iso, to_iso
from .errors import ChatClosed, ConversationNotFound, InvalidInput
from .i18n import N_
from .keys import ContentDeleted, DataKey, sealed_of
from .models import Actor
from .policy import ROLE_PERMISSIONS, Permission

if TYPE_CHECKING:  # the service names the repository's type only; its SQL is the backend's (store/sqlite/)
    from . import Store
    from .sqlite.supervision import SupervisionRepository

#: Assignment lines: the last one of a chat says since when its consultant holds it.
HANDOVER_EVENTS = ("accepted", "transferred", "taken_over", "requeued", "declined")
#: Audit actions of supervision, listed by the supervision report (store/reports.py).
MONITOR = "chat.monitor"
MONITOR_END = "chat.unmonitor"
WHISPER = "chat.whisper"
TAKE_OVER = "chat.take_over"


@dataclass(frozen=True)
class StaffNote:
    """A supervisor's whisper to the consultant of a chat; it follows transcript line `after_seq`."""

    id: int
    chat_id: int
    after_seq: int
    staff_id: int | None
    author: str  # the author's full name (their log-in name when they have none)
    to_staff_id: int | None
    text: str
    at: datetime

    def as_payload(self) -> dict[str, Any]:
        """The /staff `whisper` payload (docs/PROTOCOL.md)."""
        return {
            "chat_id": self.chat_id,
            "note_id": self.id,
            "after_seq": self.after_seq,
            "from": "note",
            "by": {"staff_id": self.staff_id, "name": self.author},
            "text": self.text,
            "at": to_iso(self.at),
        }


@dataclass(frozen=True)
class Whispered:
    note: StaffNote
    #: False when a repeated client_msg_id returned the note stored the first time.
    new: bool


@dataclass(frozen=True)
class LiveChatRow:
    """One open chat as supervisors see it: who handles it and the times, never what was said."""

    chat_id: int
    status: str  # queued / active
    lang: str
    created_at: datetime
    #: Queued: since when it waits (its creation, or its return to the queue).
    waiting_since: datetime | None
    consultant_id: int | None
    consultant_name: str | None  # full name
    #: When its consultant got it (accepted, transferred, taken over).
    assigned_at: datetime | None
    last_line_at: datetime | None
    #: The resident's oldest line since the consultant last wrote (None: nothing unanswered).
    unanswered_since: datetime | None
    lines: int
    #: The topic the resident chose (store/desk.py): {"id", "pl", "en"} labels, or None.
    topic: dict[str, Any] | None = None

    def as_payload(self) -> dict[str, Any]:
        def iso(moment: datetime | None) -> str | None:
            return to_iso(moment) if moment is not None else None

        return {
            "chat_id": self.chat_id,
            "status": self.status,
            "lang": self.lang,
            "created_at": iso(self.created_at),
            "waiting_since": iso(self.waiting_since),
            "consultant": (
                {"staff_id": self.consultant_id, "name": self.consultant_name}
                if self.consultant_id is not None
                else None
            ),
            "assigned_at": iso(self.assigned_at),
            "last_line_at": iso(self.last_line_at),
            "unanswered_since": iso(self.unanswered_since),
            "lines": self.lines,
            "topic": self.topic,
        }


@dataclass(frozen=True)
class Monitored:
    """What a supervisor sees on opening a live chat: the transcript so far and the notes in it."""

    chat_id: int
    status: str
    lang: str
    consultant_id: int | None
    consultant_name: str | None
    messages: tuple[ChatMessage, ...]
    notes: tuple[StaffNote, ...]
    audit_id: int


def _time(value: Any) -> datetime | None:
    return from_iso(value) if value else None


def _note(r: Any, key: DataKey | None) -> StaffNote:
    """A stored whisper, opened with its chat's data key (store/keys.py); `deleted (§6)` once the purge
    destroyed that key (a restored backup)."""
    text = sealed_of(r["text"], key, lambda k, blob: k.open_staff_note(r["id"], blob))
    return StaffNote(
        id=r["id"],
        chat_id=r["conversation_id"],
        after_seq=r["after_seq"],
        staff_id=r["staff_id"],
        author=r["author"] or "",
        to_staff_id=r["to_staff_id"],
        text=text,
        at=from_iso(r["at"]),
    )


async def _key_for(store: Any, chat_id: int, rows: list[Any]) -> DataKey | None:
    return await store.keys.read_key(chat_id) if any(not isinstance(r["text"], str) for r in rows) else None


class Supervision:
    """The supervisors' side of live chats; every reading is audited with its purpose.

    The SQL is the repository's (store/sqlite/supervision.py); every change runs in its unit of work,
    which the audit entry joins.
    """

    def __init__(self, store: "Store", repo: "SupervisionRepository") -> None:
        self.store = store
        self.repo = repo
        self.audit = store.audit

    async def full_name_of(self, staff_id: int | None) -> str | None:
        """How staff are named to each other here ("supervised by ..."): the full name, else the log-in name."""
        row = await self.repo.staff_names(staff_id)
        if row is None:
            return None
        return (row["full_name"] or "").strip() or row["name"]

    async def live_chats(self) -> list[LiveChatRow]:
        """Every queued and active chat, oldest first (for the chat server's supervision view: the sockets
        that receive it were checked for SUPERVISE_CHATS; no content is in it, as in the queue)."""
        rows = await self.repo.live_chats()
        out = []
        for r in rows:
            queued = r["status"] == "queued"
            out.append(
                LiveChatRow(
                    chat_id=r["id"],
                    status=r["status"],
                    lang=r["lang"] or "pl",
                    created_at=from_iso(r["created_at"]),
                    # a chat back in the queue waits since it came back (desk routing's queue_front)
                    waiting_since=(_time(r["queue_front"]) or from_iso(r["created_at"])) if queued else None,
                    consultant_id=None if queued else r["consultant_id"],
                    consultant_name=None if queued else r["consultant_name"],
                    assigned_at=None if queued else _time(r["handed_at"]),
                    last_line_at=_time(r["last_line_at"]),
                    unanswered_since=None if queued else _time(r["unanswered_since"]),
                    lines=r["lines"],
                    topic=(
                        {"id": r["topic_id"], "pl": r["label_pl"], "en": r["label_en"]}
                        if r["topic_id"] is not None
                        else None
                    ),
                )
            )
        return out

    async def _open_chat(self, chat_id: Any) -> Any:
        if not is_id(chat_id):
            raise InvalidInput(N_("chat_id must be a chat number"))
        row = await self.repo.chat(chat_id)
        if row is None:
            raise ConversationNotFound(N_("no chat {chat_id}"), chat_id=chat_id)
        if row["status"] not in ("queued", "active"):
            raise ChatClosed(N_("the chat has ended; its transcript is in the archive"))
        return row

    async def _purpose(self, purpose: Any) -> tuple[str, int | None]:
        """As the archive asks it (store/archive.py): a reason or a request number, 3 to PURPOSE_MAX characters."""
        text = purpose.strip() if isinstance(purpose, str) else ""
        if len(text) < 3:
            raise InvalidInput(
                N_("state the purpose: a request number or a reason (at least 3 characters)"),
                refusal_reason="purpose_invalid",
            )
        if len(text) > PURPOSE_MAX:
            raise InvalidInput(
                N_("the purpose is longer than {purpose_max} characters"),
                purpose_max=PURPOSE_MAX,
                refusal_reason="purpose_invalid",
            )
        text = clean_text(text, PURPOSE_MAX)
        return text, await self.repo.request_id(text)

    async def start_monitoring(self, actor: Actor, chat_id: Any, purpose: Any) -> Monitored:
        """Open a live chat read-only for a stated purpose: audited as a reading, with the purpose (§3, §5)."""
        await self.audit.guard(
            actor,
            Permission.SUPERVISE_CHATS,
            MONITOR,
            target_kind="conversation",
            target_id=chat_id if is_id(chat_id) else None,
        )
        text, request_id = await self._purpose(purpose)
        row = await self._open_chat(chat_id)
        if row["status"] == "active" and row["consultant_id"] == actor.staff_id:
            raise InvalidInput(N_("the chat is yours: it is on your live chats"), refusal_reason="own_chat")
        messages = await self.store.chats.history(chat_id)
        notes = await self.notes(chat_id)
        async with self.repo.transaction() as tx:
            audit_id = await self.audit.append(
                tx,
                actor,
                MONITOR,
                target_kind="conversation",
                target_id=chat_id,
                purpose=text,
                request_id=request_id,
                details={"messages": len(messages), "consultant_id": row["consultant_id"]},
            )
        return Monitored(
            chat_id,
            row["status"],
            row["lang"] or "pl",
            row["consultant_id"],
            row["name"],
            tuple(messages),
            tuple(notes),
            audit_id,
        )

    async def stop_monitoring(self, actor: Actor, chat_id: int, started: datetime, *, reason: str = "stopped") -> None:
        """The end of a watch (the supervisor closed it, left, or the chat ended): audited, for the report."""
        seconds = max(0, int((self.store.clock() - started).total_seconds()))
        await self.audit.record(
            actor,
            MONITOR_END,
            target_kind="conversation",
            target_id=chat_id,
            details={"seconds": seconds, "reason": reason},
        )

    async def lines_after(self, chat_id: int, seq: int) -> list[ChatMessage]:
        """A watched chat's transcript lines after `seq` (the chat server forwards them to its watchers)."""
        rows = await self.repo.lines_after(chat_id, seq)
        texts = await self.store.keys.texts(chat_id, rows)  # sealed at rest (store/keys.py)
        return [_message(r, t) for r, t in zip(rows, texts)]

    async def without_supervising_role(self, staff_ids: set[int]) -> set[int]:
        """Which of these staff members hold no role with SUPERVISE_CHATS now (read-only, one query)."""
        if not staff_ids:
            return set()
        roles = sorted(
            r.value for r, permissions in ROLE_PERMISSIONS.items() if Permission.SUPERVISE_CHATS in permissions
        )
        ids = sorted(staff_ids)
        return set(staff_ids) - await self.repo.staff_holding(ids, roles)

    async def notes(self, chat_id: int) -> list[StaffNote]:
        """The chat's staff notes in order (for staff only: the consultant, supervisors, the archive)."""
        rows = await self.repo.notes(chat_id)
        key = await _key_for(self.store, chat_id, rows)  # sealed at rest, like the transcript (store/keys.py)
        return [_note(r, key) for r in rows]

    async def whisper(self, actor: Actor, chat_id: Any, text: Any, client_msg_id: Any = None) -> Whispered:
        """A note only the consultant of the chat sees, stored before it is acknowledged; a repeated
        `client_msg_id` returns the first note. The audit entry names the chat and the consultant, not the text."""
        await self.audit.guard(
            actor,
            Permission.SUPERVISE_CHATS,
            WHISPER,
            target_kind="conversation",
            target_id=chat_id if is_id(chat_id) else None,
        )
        text = clean_text(text, self.store.settings.max_message_length)
        client_id = _client_msg_id(client_msg_id)
        if actor.is_system or actor.staff_id is None:
            raise InvalidInput(N_("a whisper comes from a signed-in supervisor"))
        async with self.repo.transaction() as tx:
            row = await self.repo.chat_for_note(tx, chat_id)
            if row is None:
                raise ConversationNotFound(N_("no chat {chat_id}"), chat_id=chat_id)
            if client_id is not None:
                again = await self.repo.note_by_client_id(tx, chat_id, client_id)
                if again is not None:
                    note_id, new = again, False
                    row = None
            if row is not None:
                if row["status"] == "closed":
                    raise ChatClosed(N_("the chat has ended"))
                if row["status"] != "active" or row["consultant_id"] is None:
                    raise InvalidInput(
                        N_("nobody is answering this chat yet: a whisper goes to its consultant"),
                        refusal_reason="not_answered",
                    )
                if row["consultant_id"] == actor.staff_id:
                    raise InvalidInput(
                        N_("the chat is yours: write to the resident instead"), refusal_reason="own_chat"
                    )
                now = to_iso(self.store.clock())
                # sealed with the chat's data key before it is written (store/keys.py): the note's id is in
                # the seal's associated data, so it is chosen here, inside the write transaction
                key = await self.repo.data_key(tx, self.store.keys, chat_id, now)
                if key is None:  # its key was destroyed by the purge (a restored backup): nothing is written
                    raise ContentDeleted(N_("this chat was deleted (§6): its key was destroyed by the purge"))
                note_id = await self.repo.next_note_id(tx)
                await self.repo.insert_note(
                    tx,
                    note_id=note_id,
                    chat_id=chat_id,
                    after_seq=row["next_seq"] - 1,
                    staff_id=actor.staff_id,
                    to_staff_id=row["consultant_id"],
                    text=key.seal_staff_note(note_id, text),
                    at=now,
                    client_msg_id=client_id,
                )
                new = True
                await self.audit.append(
                    tx,
                    actor,
                    WHISPER,
                    target_kind="conversation",
                    target_id=chat_id,
                    details={"note_id": note_id, "to_staff_id": row["consultant_id"]},
                )
        stored = await self.repo.note(note_id)
        return Whispered(_note(stored, await _key_for(self.store, stored["conversation_id"], [stored])), new)


# ---------------------------------------------------------------------- the supervision report (§3, §7)


@dataclass(frozen=True)
class WatchEntry:
    """One watch of a live chat: who, when, which chat, for what purpose, for how long (if it ended)."""

    at: datetime
    person: str
    chat_id: int | None
    purpose: str
    seconds: int | None


@dataclass(frozen=True)
class WhisperEntry:
    at: datetime
    person: str
    chat_id: int | None
    to_person: str


@dataclass(frozen=True)
class TakeOverEntry:
    at: datetime
    person: str
    chat_id: int | None
    from_person: str


@dataclass(frozen=True)
class RestoreAcknowledgement:
    """`cim audit acknowledge-restore`: the audit log knowingly restored from a backup (store/audit.py)."""

    at: datetime
    person: str
    reason: str
    fork_at: int | None
    lost_through: int | None
    backup: str


@dataclass(frozen=True)
class SupervisionActivity:
    watches: tuple[WatchEntry, ...] = ()
    whispers: tuple[WhisperEntry, ...] = ()
    take_overs: tuple[TakeOverEntry, ...] = ()
    restores: tuple[RestoreAcknowledgement, ...] = ()


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def activity_of(rows: Iterable[Any], staff: Iterable[Any]) -> SupervisionActivity:
    """The monitoring itself from the audit log's entries of supervision (`rows`, in id order; `staff`: every
    staff member's id, name and full_name): watches (with their purpose and, when it ended, their length),
    whispers, take-overs and acknowledged audit restores. The entries are read in store/sqlite/supervision.py."""
    names = {r["id"]: (r["full_name"] or "").strip() or r["name"] for r in staff}
    watches: list[dict[str, Any]] = []
    open_watches: dict[tuple[Any, Any], dict[str, Any]] = {}
    whispers, take_overs, restores = [], [], []
    for r in rows:
        details = json.loads(r["details"] or "{}")
        at, person, chat_id = from_iso(r["at"]), r["actor_name"], _int(r["target_id"])
        if r["action"] == MONITOR:
            watch = {"at": at, "person": person, "chat_id": chat_id, "purpose": r["purpose"] or "", "seconds": None}
            watches.append(watch)
            open_watches[(r["actor_id"], chat_id)] = watch
        elif r["action"] == MONITOR_END:
            ended = open_watches.pop((r["actor_id"], chat_id), None)
            if ended is not None:
                ended["seconds"] = _int(details.get("seconds"))
        elif r["action"] == WHISPER:
            whispers.append(WhisperEntry(at, person, chat_id, names.get(_int(details.get("to_staff_id")), "")))
        elif r["action"] == TAKE_OVER:
            take_overs.append(TakeOverEntry(at, person, chat_id, names.get(_int(details.get("from_staff_id")), "")))
        else:
            restores.append(
                RestoreAcknowledgement(
                    at,
                    person,
                    r["purpose"] or "",
                    _int(details.get("fork_at")),
                    _int(details.get("lost_through")),
                    str(details.get("backup") or ""),
                )
            )
    return SupervisionActivity(
        tuple(WatchEntry(**w) for w in watches), tuple(whispers), tuple(take_overs), tuple(restores)
    )
