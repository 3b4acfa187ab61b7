"""The chat desk's routing (issue 17): topics a resident picks before a chat, consultants' skills and
capacity, auto-assignment, decline, idle chats and the queue's estimated wait.

Topics are managed by the CIM manager (Permission.MANAGE_CANNED: the desk's set-up, like canned
responses); each maps to a department, whose head gives the §4.3 opinion on a request about the chat.
"""

from __future__ import annotations

import re
import statistics
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Iterable

from .audit import AuditLog
from .chats import LANGS, ChatMessage, Chats, _seal, is_id, stored_line
from .clock import Clock, from_iso, to_iso
from .errors import ChatClosed, ConversationNotFound, InvalidInput, NotFound, NotPermitted, StaffNotFound, Text
from .i18n import N_
from .models import Actor
from .policy import Permission
from .settings import Settings

if TYPE_CHECKING:  # the service names the repository's type only; its SQL is the backend's (store/sqlite/)
    from .sqlite.database import Transaction
    from .sqlite.desk import DeskRepository

#: The close category of a chat the desk closed itself (a silent resident, or nobody free in time);
#: consultants never pick it (store.chats.CLOSE_CATEGORIES).
ABANDONED = "abandoned"
#: `cim init` seeds these when no topic was ever defined: (Polish, English).
DEFAULT_TOPICS = (
    ("Karta Mieszkańca", "Resident Card"),
    ("Podatki i opłaty", "Taxes and fees"),
    ("Meldunki", "Residence registration"),
    ("Inne", "Other"),
)
MAX_TOPIC_LABEL = 80
#: A consultant's availability on the desk: away consultants are given nothing new (auto mode).
AVAILABLE, AWAY = "available", "away"
AVAILABILITY = (AVAILABLE, AWAY)
MAX_CHATS_LIMIT = 50
#: The estimated wait is the median wait of the chats accepted within this window.
ESTIMATE_WINDOW = timedelta(hours=1)
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


@dataclass(frozen=True)
class Topic:
    id: int
    label_pl: str
    label_en: str
    department: str | None  # department code
    position: int
    active: bool

    def label(self, lang: str) -> str:
        return self.label_en if lang == "en" else self.label_pl


@dataclass(frozen=True)
class DeskPerson:
    """A consultant as the desk routes to them: skills (topic ids; empty = every topic) and capacity."""

    staff_id: int
    name: str
    max_chats: int
    skills: frozenset[int]

    def can_answer(self, topic_id: int | None) -> bool:
        return not self.skills or topic_id is None or topic_id in self.skills


def someone_can_answer(free: Iterable[DeskPerson], topic_id: int | None) -> bool:
    """The desk's one definition of "someone free can answer this": one of the consultants with a free seat
    (webchat/routing.py `Routing.free_seats`) has the topic's skill (no topic: anyone free). The queue's time
    limit closes a chat only when this is False; the offline message form is refused only when it is True."""
    return any(p.can_answer(topic_id) for p in free)


def _label(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise InvalidInput(N_("the {what} must be text"), what=Text(what))
    value = " ".join(value.split())
    if not value:
        raise InvalidInput(N_("the {what} is empty"), what=Text(what))
    if len(value) > MAX_TOPIC_LABEL:
        raise InvalidInput(N_("the {what} is longer than {limit} characters"), what=Text(what), limit=MAX_TOPIC_LABEL)
    if _CONTROL.search(value):
        raise InvalidInput(N_("the {what} has control characters"), what=Text(what))
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput(N_("the {what} is not valid Unicode text"), what=Text(what)) from None
    return value


def _checked_topic(offered: set[int], topic_id: Any) -> int | None:
    """`topic_id` as a resident may pick it among the `offered` topic ids."""
    if not offered:
        if topic_id is None:
            return None
        raise InvalidInput(N_("no topics are offered; leave topic_id out"))
    if not is_id(topic_id):
        raise InvalidInput(N_("topic_id must be the id of one of the topics (see the topics event)"))
    if topic_id not in offered:
        raise InvalidInput(N_("unknown topic"))
    return topic_id


def _topic(r: Any) -> Topic:
    return Topic(r["id"], r["label_pl"], r["label_en"], r["department"], r["position"], bool(r["active"]))


class Desk:
    """Topics, skills and capacity (managed by the CIM manager), and the routing queries of the chat server.

    The SQL is the repository's (store/sqlite/desk.py); every change runs in its unit of work, which the
    audit entry joins.
    """

    def __init__(self, repo: "DeskRepository", audit: AuditLog, settings: Settings, clock: Clock, chats: Chats) -> None:
        self.repo = repo
        self.audit = audit
        self.settings = settings
        self.clock = clock
        self.chats = chats

    # ------------------------------------------------------------------ topics

    async def topics(self, *, include_inactive: bool = False) -> list[Topic]:
        return [_topic(r) for r in await self.repo.topics(include_inactive=include_inactive)]

    async def topic(self, topic_id: int) -> Topic:
        row = await self.repo.topic(topic_id) if is_id(topic_id) else None
        if row is None:
            raise NotFound(N_("no topic {topic_id}"), topic_id=topic_id)
        return _topic(row)

    async def topics_for(self, lang: str) -> list[dict[str, Any]]:
        """The `topics` ack's list: the active topics with their labels in the resident's language."""
        lang = lang if lang in LANGS else "pl"
        return [{"id": t.id, "label": t.label(lang)} for t in await self.topics()]

    async def _department_id(self, tx: "Transaction", code: Any) -> int | None:
        if code is None or code == "":
            return None
        if not isinstance(code, str):
            raise InvalidInput(N_("the department is a department code"))
        department_id = await self.repo.department_id(tx, code.strip())
        if department_id is None:
            # the CLI's sentence; the TUI words it from the reason (tui/refusals.py)
            raise NotFound(
                N_("no department {code!r} (see `cim departments list`)"),
                code=code,
                refusal_reason="department_missing",
            )
        return department_id

    async def add_topic(self, actor: Actor, label_pl: Any, label_en: Any, department: Any = None) -> Topic:
        await self.audit.guard(actor, Permission.MANAGE_CANNED, "topic.add")
        label_pl, label_en = _label(label_pl, N_("Polish label")), _label(label_en, N_("English label"))
        async with self.repo.transaction() as tx:
            department_id = await self._department_id(tx, department)
            topic_id = await self.repo.insert_topic(tx, label_pl, label_en, department_id, to_iso(self.clock()))
            await self.audit.append(
                tx,
                actor,
                "topic.add",
                target_kind="topic",
                target_id=topic_id,
                details={"label_pl": label_pl, "department": department or None},
            )
        return await self.topic(topic_id)

    async def update_topic(
        self,
        actor: Actor,
        topic_id: int,
        label_pl: Any,
        label_en: Any,
        department: Any = None,
        *,
        active: bool | None = None,
    ) -> Topic:
        await self.audit.guard(actor, Permission.MANAGE_CANNED, "topic.update", target_kind="topic", target_id=topic_id)
        label_pl, label_en = _label(label_pl, N_("Polish label")), _label(label_en, N_("English label"))
        async with self.repo.transaction() as tx:
            department_id = await self._department_id(tx, department)
            updated = await self.repo.update_topic(
                tx,
                topic_id,
                label_pl,
                label_en,
                department_id,
                None if active is None else int(active),
                to_iso(self.clock()),
            )
            if not updated:
                raise NotFound(N_("no topic {topic_id}"), topic_id=topic_id)
            await self.audit.append(
                tx,
                actor,
                "topic.update",
                target_kind="topic",
                target_id=topic_id,
                details={"label_pl": label_pl, "department": department or None, "active": active},
            )
        return await self.topic(topic_id)

    async def set_topic_active(self, actor: Actor, topic_id: int, active: bool) -> Topic:
        """Offer a topic again, or stop offering it (old chats keep it: a topic is never deleted)."""
        topic = await self.topic(topic_id)
        return await self.update_topic(actor, topic_id, topic.label_pl, topic.label_en, topic.department, active=active)

    async def seed_default_topics(self, actor: Actor) -> int:
        """`cim init`: the default topics, once (nothing when a topic was ever defined); returns how many."""
        await self.audit.guard(actor, Permission.MANAGE_CANNED, "topic.seed")
        async with self.repo.transaction() as tx:
            if await self.repo.any_topic(tx):
                return 0
            now = to_iso(self.clock())
            # set-up data, like the notices of migration 0002: not audited (every later change is)
            await self.repo.insert_topics(tx, [(pl, en, i + 1, now) for i, (pl, en) in enumerate(DEFAULT_TOPICS)])
        return len(DEFAULT_TOPICS)

    async def check_topic(self, topic_id: Any) -> int | None:
        return _checked_topic(await self.repo.active_topic_ids(), topic_id)

    # ------------------------------------------------------------------ skills and capacity

    async def _staff_id(self, tx: "Transaction", name: str) -> int:
        staff_id = await self.repo.staff_id(tx, name.strip())
        if staff_id is None:
            raise StaffNotFound(N_("no user named {name!r}"), name=name)
        return staff_id

    async def set_max_chats(self, actor: Actor, name: str, max_chats: Any) -> int | None:
        """A consultant's own maximum of concurrent chats; None: the setting chat_max_concurrent."""
        await self.audit.guard(actor, Permission.MANAGE_CANNED, "staff.max_chats")
        if max_chats is not None and (not is_id(max_chats) or max_chats > MAX_CHATS_LIMIT):
            raise InvalidInput(
                N_("the maximum of concurrent chats is a number from 1 to {limit}"), limit=MAX_CHATS_LIMIT
            )
        async with self.repo.transaction() as tx:
            staff_id = await self._staff_id(tx, name)
            await self.repo.set_max_chats(tx, staff_id, max_chats)
            await self.audit.append(
                tx, actor, "staff.max_chats", target_kind="staff", target_id=staff_id, details={"max_chats": max_chats}
            )
        return max_chats

    async def set_skills(self, actor: Actor, name: str, topic_ids: Iterable[Any]) -> frozenset[int]:
        """Set a consultant's skills, in place of those they had (topic ids; none: every topic)."""
        await self.audit.guard(actor, Permission.MANAGE_CANNED, "staff.skills")
        ids = list(topic_ids)
        if not all(is_id(t) for t in ids):
            raise InvalidInput(N_("skills are topic ids"))
        async with self.repo.transaction() as tx:
            staff_id = await self._staff_id(tx, name)
            if ids:
                known = await self.repo.known_topics(tx, sorted(set(ids)))
                missing = sorted(set(ids) - known)
                if missing:
                    raise NotFound(N_("no topic {topic_id}"), topic_id=missing[0])
            await self.repo.replace_skills(tx, staff_id, sorted(set(ids)))
            await self.audit.append(
                tx, actor, "staff.skills", target_kind="staff", target_id=staff_id, details={"topics": sorted(set(ids))}
            )
        return frozenset(ids)

    async def people(self, staff_ids: Iterable[int] | None = None) -> dict[int, DeskPerson]:
        """Consultants' capacity and skills (all consultants, or these)."""
        ids = None if staff_ids is None else sorted(set(staff_ids))
        if ids is not None and not ids:
            return {}
        rows = await self.repo.consultants(ids)
        skills: dict[int, set[int]] = {}
        for r in await self.repo.skills():
            skills.setdefault(r["staff_id"], set()).add(r["topic_id"])
        default = self.settings.chat_max_concurrent
        return {
            r["id"]: DeskPerson(r["id"], r["name"], r["max_chats"] or default, frozenset(skills.get(r["id"], ())))
            for r in rows
        }

    async def load(self) -> dict[int, int]:
        """Active chats per consultant."""
        return {r["consultant_id"]: r["n"] for r in await self.repo.load()}

    # ------------------------------------------------------------------ availability

    async def availability(self, staff_ids: Iterable[int]) -> dict[int, str]:
        """Each consultant's availability (available / away) as they last set it; available when never set."""
        ids = sorted(set(staff_ids))
        if not ids:
            return {}
        found = await self.repo.availability(ids)
        return {staff_id: found.get(staff_id, AVAILABLE) for staff_id in ids}

    async def set_availability(self, actor: Actor, status: Any) -> str:
        """The consultant sets themselves available or away (the chat server asks; kept across restarts)."""
        if status not in AVAILABILITY:
            raise InvalidInput(N_("status must be 'available' or 'away'"))
        if actor.staff_id is None:
            raise NotPermitted(N_("only staff members set their availability"))
        async with self.repo.transaction() as tx:
            await self.repo.set_availability(tx, actor.staff_id, status, to_iso(self.clock()))
        return status

    # ------------------------------------------------------------------ auto mode

    async def assign(self, chat_id: int, to: Actor) -> tuple[Any, ChatMessage]:
        """Auto mode: give a queued chat to a consultant (checked against their capacity in the same
        transaction); audited as the chat server's act."""
        return await self.chats.accept(to, chat_id, assigned=True)

    async def decline(self, actor: Actor, chat_id: int) -> tuple[Any, ChatMessage]:
        """Auto mode: the consultant gives back a chat assigned to them; it waits at the front for the next."""
        await self.audit.guard(
            actor, Permission.HANDLE_CHATS, "chat.decline", target_kind="conversation", target_id=chat_id
        )
        now = self.clock()
        text = stored_line("declined")
        async with self.repo.transaction() as tx:
            row = await self.repo.chat_state(tx, chat_id)
            if row is None:
                raise ConversationNotFound(N_("no chat {chat_id}"), chat_id=chat_id)
            if row["status"] == "closed":
                raise ChatClosed(N_("the chat has ended"))
            if row["status"] != "active" or row["consultant_id"] != actor.staff_id:
                raise NotPermitted(N_("this chat is not assigned to you"))
            seq = row["next_seq"]
            await self.repo.requeue_at_front(tx, chat_id, to_iso(now), seq + 1)
            key = await self.repo.data_key(tx, self.chats, chat_id)
            await self.repo.insert_system_line(
                tx, chat_id, seq, actor.staff_id, _seal(key, seq, text), to_iso(now), "declined"
            )
            await self.audit.append(tx, actor, "chat.decline", target_kind="conversation", target_id=chat_id)
        self.chats._group.forget(chat_id)
        return await self.chats.get(chat_id), ChatMessage(
            chat_id, seq, "system", text, now, actor.staff_id, event="declined", params={}
        )

    # ------------------------------------------------------------------ idle chats and the queue's limit

    async def idle_chats(self, minutes: int | None = None) -> tuple[list[int], list[int]]:
        """Active chats whose resident has been silent: (to warn, to close as abandoned), by chat_idle_minutes.

        Silent since the resident's last line, or since a consultant took the chat (accepted, transferred);
        the warning counts from the `idle_warning` line, and a resident's line after it starts again."""
        minutes = self.settings.chat_idle_minutes if minutes is None else minutes
        if minutes <= 0:
            return [], []
        now = self.clock()
        limit = timedelta(minutes=minutes)
        # one query: per active chat, the last line that shows the resident (or a consultant taking the chat)
        # and the last warning, each as "seq at"
        rows = await self.repo.idle_candidates()

        def split(value: str | None) -> tuple[int, datetime] | None:
            if not value:
                return None
            seq, at = value.split(" ", 1)
            return int(seq), from_iso(at)

        warn, close = [], []
        for r in rows:
            seen, warned = split(r["seen"]), split(r["warned"])
            if seen is None:
                continue
            if warned is not None and warned[0] > seen[0]:
                if now >= warned[1] + limit:
                    close.append(r["id"])
            elif now >= seen[1] + limit:
                warn.append(r["id"])
        return warn, close

    async def warn_idle(self, chat_id: int) -> ChatMessage | None:
        return await self._system_line(
            chat_id, "idle_warning", "Brak odpowiedzi mieszkańca; wysłano pytanie, czy rozmowa nadal trwa."
        )

    async def close_abandoned(self, chat_id: int, event: str = "closed_idle") -> ChatMessage | None:
        """Close a chat as `abandoned` (a silent resident: closed_idle; nobody free in time: queue_timeout)."""
        text = (
            "Czat zakończony: brak odpowiedzi mieszkańca."
            if event == "closed_idle"
            else "Czat zakończony: nikt nie był wolny w dopuszczalnym czasie oczekiwania."
        )
        try:
            message = await self.chats._close(chat_id, ABANDONED, text, actor=None, event=event)
        except ChatClosed:
            return None
        await self.audit.record(
            Actor.system("chat-server"),
            "chat.close",
            target_kind="conversation",
            target_id=chat_id,
            details={"category": ABANDONED, "reason": event},
        )
        return message

    async def overdue_in_queue(self, minutes: int | None = None) -> list[int]:
        """Queued chats that waited longer than chat_queue_limit_minutes (oldest first)."""
        minutes = self.settings.chat_queue_limit_minutes if minutes is None else minutes
        if minutes <= 0:
            return []
        since = to_iso(self.clock() - timedelta(minutes=minutes))
        return await self.repo.queued_since(since)

    async def _system_line(self, chat_id: int, event: str, text: str) -> ChatMessage | None:
        now = self.clock()
        async with self.repo.transaction() as tx:
            row = await self.repo.conversation_state(tx, chat_id)
            if row is None or row["status"] == "closed":
                return None
            seq = row["next_seq"]
            await self.repo.set_next_seq(tx, chat_id, seq + 1)
            key = await self.repo.data_key(tx, self.chats, chat_id)
            await self.repo.insert_system_line(tx, chat_id, seq, None, _seal(key, seq, text), to_iso(now), event)
        self.chats._group.forget(chat_id)
        return ChatMessage(chat_id, seq, "system", text, now, event=event, params={})

    # ------------------------------------------------------------------ the estimated wait

    async def estimated_wait(self) -> timedelta | None:
        """The median wait of the chats accepted in the last hour (from the queued/requeued line to the
        accepted one); None when no chat was accepted in the hour."""
        now = self.clock()
        rows = await self.repo.accepted_waits(to_iso(now - ESTIMATE_WINDOW), to_iso(now))
        waits = [
            (from_iso(r["accepted_at"]) - from_iso(r["queued_at"])).total_seconds() for r in rows if r["queued_at"]
        ]
        if not waits:
            return None
        return timedelta(seconds=statistics.median(waits))


def topic_label(topic: Topic | None, lang: str) -> str | None:
    return topic.label(lang) if topic is not None else None


def staff_topic_label(topic: tuple[str, str] | None) -> str:
    """A topic (Polish label, English label) in the staff's language (store/i18n.py); '' for none."""
    from .i18n import current_language

    if topic is None:
        return ""
    return topic[1] if current_language() == "en" else topic[0]
