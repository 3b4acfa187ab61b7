"""Supervisors on `/staff` (§3, docs/PROTOCOL.md): the supervision view, `monitor`, `whisper`, `take_over`.

Staff with SUPERVISE_CHATS (the CIM manager, the BOI director) connect without the consultant role; such
a socket is kept here (`SupervisionHub.conns`), not among the consultants' (`Hub.staff`), so it is never
offered a chat, never counted as present for transfers, and obeys its session like the others: the
session sweep of webchat/staff.py asks `check_sessions`, account changes reach `account_changed`. A
consultant who also supervises uses their consultant socket for both.

Live without reaching into every handler: one task (`_run`) recomputes the view when poked (a relayed
line, a queue change, a watch begun or ended) and at least once a second while anyone supervises, sends
it when it changed, forwards the new transcript lines of watched chats to their `watch:<id>` rooms, and
tells each consultant who watches their chat (`supervised`) — watching is never silent.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import socketio

from store.chats import is_id
from store.clock import to_iso
from store.errors import NotPermitted, SessionExpired
from store.models import Actor
from store.policy import Permission, allowed
from store.session_watch import ENDED_REASONS, EXPIRED, ROLE_REMOVED, AccountChange, session_verdicts, token_hash
from store.tasks import stop_task

from . import traffic
from .broadcast import ChatTakenOver, NoteStored, watch_room
from .hub import ALL_STAFF, STAFF, StaffConn, acked, consultant_room, error, ok
from .protocol import INVALID, NOT_WATCHING, session_ended_payload, staff_line_payload

if TYPE_CHECKING:
    from .hub import Hub
    from .staff import StaffSessions

log = logging.getLogger("cim.webchat")

SUPERVISORS = "supervisors"
#: The view is recomputed at least this often while anyone supervises (seconds), and at once when poked.
REFRESH_SECONDS = 1.0
#: Two pushes of the view are at least this far apart (a burst of lines becomes one push).
MIN_PUSH_SECONDS = 0.5
#: A supervisor's socket re-checks its session in the store at least this often while it acts (seconds).
RECHECK_SECONDS = 60.0
#: What a supervisor is told when their supervising role is removed (the other reasons: webchat/staff.py).
ROLE_REMOVED_MESSAGE = (
    "Twoja sesja nadzoru została zakończona: nie masz już roli uprawniającej do nadzoru.",
    "Your supervision session has ended: you no longer have a supervising role.",
)


def may_supervise(actor: Actor) -> bool:
    return allowed(actor, Permission.SUPERVISE_CHATS)


@dataclass
class Watch:
    """One socket watching one chat: who, since when (store clock), for the audit's end entry."""

    actor: Actor
    name: str  # full name, as the consultant sees it
    started: datetime


@dataclass
class SupervisionHub:
    sio: socketio.AsyncServer
    hub: "Hub"
    #: Supervisor-only sockets (no consultant role): sid → connection.
    conns: dict[str, StaffConn] = field(default_factory=dict)
    #: Every socket in the supervisors' room (supervisor-only ones and consultants who supervise): sid → actor.
    members: dict[str, Actor] = field(default_factory=dict)
    #: chat id → the sockets watching it.
    watches: dict[int, dict[str, Watch]] = field(default_factory=dict)
    #: chat id → the last transcript line forwarded to its watchers.
    forwarded: dict[int, int] = field(default_factory=dict)
    #: chat id → (consultant told, the names they were told) — `supervised` is sent when either changes.
    told: dict[int, tuple[int | None, tuple[str, ...]]] = field(default_factory=dict)
    last_view: Any = None
    pushes: int = 0

    def __post_init__(self) -> None:
        self._poked = asyncio.Event()
        self._task: asyncio.Task | None = None

    # -- the loop -------------------------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="supervision-view")

    async def stop(self) -> None:
        if self._task is not None:
            await stop_task(self._task, name="supervision-view")
            self._task = None

    def poke(self) -> None:
        """Something changed (a line, the queue, a watch): the view is recomputed now, not in a second."""
        if self.members or self.watches or self.told:
            self._poked.set()

    async def _run(self) -> None:
        failing = False
        while True:
            try:
                await asyncio.wait_for(self._poked.wait(), REFRESH_SECONDS)
            except TimeoutError:
                pass
            self._poked.clear()
            if not (self.members or self.watches or self.told):
                continue
            try:
                await self.refresh()
                failing = False
            except Exception:
                if not failing:  # one traceback per outage
                    log.exception("supervision.refresh_failed")
                failing = True
            await asyncio.sleep(MIN_PUSH_SECONDS)

    async def view(self) -> dict[str, Any]:
        rows = await self.hub.store.supervision.live_chats()
        chats = []
        for row in rows:
            item = row.as_payload()
            item["watchers"] = self.watchers_of(row.chat_id)
            chats.append(item)
        return {"chats": chats, "at": to_iso(self.hub.store.clock())}

    def watchers_of(self, chat_id: int) -> list[dict[str, Any]]:
        seen: dict[int | None, str] = {}
        for watch in self.watches.get(chat_id, {}).values():
            seen.setdefault(watch.actor.staff_id, watch.name)
        return [{"staff_id": staff_id, "name": name} for staff_id, name in sorted(seen.items(), key=lambda kv: kv[1])]

    async def refresh(self) -> None:
        """One round: the view to the supervisors (if it changed), watched chats' new lines, `supervised`."""
        doc = await self.view()
        by_id = {c["chat_id"]: c for c in doc["chats"]}
        comparable = doc["chats"]
        if comparable != self.last_view and self.members:
            self.last_view = comparable
            await self.sio.emit("supervision", doc, room=SUPERVISORS, namespace=STAFF)
            self.pushes += 1
        for chat_id in list(self.watches):
            await self._forward_lines(chat_id)
            if chat_id not in by_id:  # closed: nothing more to watch
                await self.end_watches(chat_id, reason="closed")
        for chat_id in set(self.told) | set(self.watches):
            chat = by_id.get(chat_id)
            consultant = chat["consultant"]["staff_id"] if chat and chat["consultant"] else None
            await self._tell(chat_id, consultant)

    async def _forward_lines(self, chat_id: int) -> None:
        lines = await self.hub.store.supervision.lines_after(chat_id, self.forwarded.get(chat_id, 0))
        for line in lines:
            payload = await self.hub.staff_line(chat_id, line)
            await self.sio.emit("message", payload, room=watch_room(chat_id), namespace=STAFF)
        if lines:
            self.forwarded[chat_id] = lines[-1].seq

    async def _tell(self, chat_id: int, consultant: int | None) -> None:
        """`supervised` to the consultant of the chat whenever who watches it (or who that consultant is) changes."""
        names = tuple(w["name"] for w in self.watchers_of(chat_id)) if consultant is not None else ()
        before = self.told.get(chat_id)
        now = (consultant, names) if names else None
        if before == now:
            return
        if (
            before is not None and before[0] is not None and before[0] != consultant
        ):  # the chat moved on (or closed): they are told it ended
            await self.sio.emit(
                "supervised", {"chat_id": chat_id, "by": []}, room=consultant_room(before[0]), namespace=STAFF
            )
        if consultant is not None and (now is not None or (before is not None and before[0] == consultant)):
            await self.sio.emit(
                "supervised",
                {"chat_id": chat_id, "by": self.watchers_of(chat_id)},
                room=consultant_room(consultant),
                namespace=STAFF,
            )
        if now is None:
            self.told.pop(chat_id, None)
        else:
            self.told[chat_id] = now

    async def greet_consultant(self, sid: str, actor: Actor) -> None:
        """A consultant (re)connected: who is watching which of their chats."""
        for chat_id, (consultant, _names) in list(self.told.items()):
            if consultant == actor.staff_id:
                await self.sio.emit(
                    "supervised", {"chat_id": chat_id, "by": self.watchers_of(chat_id)}, to=sid, namespace=STAFF
                )

    # -- joining and leaving ------------------------------------------------------------------------

    async def join(self, sid: str, actor: Actor) -> None:
        self.members[sid] = actor
        await self.sio.enter_room(sid, SUPERVISORS, namespace=STAFF)
        self.start()
        await self.sio.emit("supervision", await self.view(), to=sid, namespace=STAFF)

    async def end_watches(
        self, chat_id: int, *, sid: str | None = None, reason: str = "stopped", staff_id: int | None = None
    ) -> list[str]:
        """End the watches of `chat_id` (all, or one socket's, or one person's): audited, the watchers told."""
        watching = self.watches.get(chat_id, {})
        ended = [
            s
            for s, w in watching.items()
            if (sid is None or s == sid) and (staff_id is None or w.actor.staff_id == staff_id)
        ]
        for s in ended:
            watch = watching.pop(s)
            try:  # audited first, then told
                await self.hub.store.supervision.stop_monitoring(watch.actor, chat_id, watch.started, reason=reason)
            except Exception:
                log.exception("supervision.audit_end_failed chat_id=%s", chat_id)
            try:
                await self.sio.leave_room(s, watch_room(chat_id), namespace=STAFF)
                await self.sio.emit("monitor_ended", {"chat_id": chat_id, "reason": reason}, to=s, namespace=STAFF)
            except Exception:  # the socket is already gone
                pass
        if not watching:
            self.watches.pop(chat_id, None)
            self.forwarded.pop(chat_id, None)
        if ended:
            self.poke()
        return ended

    async def leave(self, sid: str, reason: str = "disconnected") -> None:
        """A socket went (or lost the right to supervise): its watches end, it leaves the room."""
        self.members.pop(sid, None)
        for chat_id in [c for c, w in self.watches.items() if sid in w]:
            await self.end_watches(chat_id, sid=sid, reason=reason)
        try:
            await self.sio.leave_room(sid, SUPERVISORS, namespace=STAFF)
        except Exception:
            pass


def supervision_of(hub: "Hub") -> SupervisionHub:
    return hub.supervision


# ---------------------------------------------------------------------- hooks called by webchat/staff.py


async def add_supervisor(hub: "Hub", sid: str, actor: Actor, address: str, token: str) -> None:
    """A signed-in supervisor without the consultant role: the queue, presence and the supervision view."""
    sup = supervision_of(hub)
    sup.conns[sid] = StaffConn(address, actor, token, time.monotonic(), touched_at=hub.store.clock())
    await hub.sio.enter_room(sid, ALL_STAFF, namespace=STAFF)
    log.info("staff.connected supervisor=1 staff_id=%s", actor.staff_id)
    hub.spawn(_greet_supervisor(hub, sid, actor))


async def _greet_supervisor(hub: "Hub", sid: str, actor: Actor) -> None:
    try:
        await hub.sio.emit("queue", await hub.queue_payload(), to=sid, namespace=STAFF)
        await hub.sio.emit("presence", hub.presence_payload(), to=sid, namespace=STAFF)
        await supervision_of(hub).join(sid, actor)
        await traffic.on_staff_connect(hub, sid, actor)  # the manager's wallboard too, when a PBX is linked
    except Exception:
        log.exception("staff.greet_supervisor_failed")


async def on_consultant_connect(hub: "Hub", sid: str, actor: Actor) -> None:
    """A consultant connected: told who watches their chats; one who also supervises joins the view."""
    sup = supervision_of(hub)
    try:
        await sup.greet_consultant(sid, actor)
        if may_supervise(actor):
            await sup.join(sid, actor)
    except Exception:
        log.exception("staff.greet_supervision_failed")


async def on_disconnect(hub: "Hub", sid: str) -> bool:
    """Any /staff socket went: its watches end. True when it was a supervisor-only socket (handled here)."""
    sup = supervision_of(hub)
    await sup.leave(sid)
    conn = sup.conns.pop(sid, None)
    if conn is None:
        return False
    hub.connections.release(conn.address)
    log.info("staff.disconnected supervisor=1 staff_id=%s", conn.actor.staff_id)
    return True


async def refuse_consultant_event(hub: "Hub", sid: str) -> None:
    """A consultant's event from a supervisor-only socket: `not_permitted`, audited (only consultants accept)."""
    conn = supervision_of(hub).conns[sid]
    if conn.ended:
        raise SessionExpired("the session has ended; sign in again")
    await hub.store.audit.guard(conn.actor, Permission.HANDLE_CHATS, "chat.consultant_event")
    raise NotPermitted("only consultants handle chats")  # the policy allowed it: the role came since connecting


def account_changed(sessions: "StaffSessions", change: AccountChange) -> None:
    """A committed account change (pushed by the store): end the supervisor sockets it concerns."""
    for sid, conn in list(supervision_of(sessions.hub).conns.items()):
        if conn.actor.staff_id == change.staff_id and (
            change.token_hash is None or token_hash(conn.token) == change.token_hash
        ):
            sessions.hub.spawn(end_supervisor(sessions, sid, change.reason))


async def end_supervisor(sessions: "StaffSessions", sid: str, reason: str) -> None:
    """Tell the supervisor why (`session_ended`), then disconnect the socket."""
    from .staff import ENDED_ACK_SECONDS, ENDED_MESSAGES

    conn = supervision_of(sessions.hub).conns.get(sid)
    if conn is None or conn.ended:
        return
    conn.ended = reason
    if reason == ROLE_REMOVED:
        polish, english = ROLE_REMOVED_MESSAGE
    else:
        polish, english = ENDED_MESSAGES.get(reason, ENDED_MESSAGES[EXPIRED])
    log.info("staff.session_ended supervisor=1 staff_id=%s reason=%s", conn.actor.staff_id, reason)
    try:
        await sessions.sio.call(
            "session_ended",
            session_ended_payload(reason, polish, english),
            to=sid,
            namespace=STAFF,
            timeout=ENDED_ACK_SECONDS,
        )
    except Exception:  # no answer: end it regardless
        pass
    finally:
        await sessions.sio.disconnect(sid, namespace=STAFF)


async def _without_supervising_role(hub: "Hub", staff_ids: set[int]) -> set[int]:
    return await hub.store.supervision.without_supervising_role(staff_ids)


async def check_sessions(sessions: "StaffSessions") -> None:
    """The sweep (about once a second): supervisor sockets whose session ended, or whose person lost the
    supervising role, end; a consultant who lost it leaves the view and their watches end."""
    hub = sessions.hub
    sup = supervision_of(hub)
    if sup.conns:
        conns = dict(sup.conns)
        verdicts = await session_verdicts(hub.store.accounts, {c.token for c in conns.values()})
        demoted = await _without_supervising_role(
            hub, {c.actor.staff_id for c in conns.values() if c.actor.staff_id is not None}
        )
        for sid, conn in conns.items():
            reason = verdicts.get(conn.token) or (ROLE_REMOVED if conn.actor.staff_id in demoted else None)
            if reason and not conn.ended:
                await end_supervisor(sessions, sid, reason)
    consultants = {sid: actor for sid, actor in sup.members.items() if sid not in sup.conns}
    if consultants:
        demoted = await _without_supervising_role(
            hub, {a.staff_id for a in consultants.values() if a.staff_id is not None}
        )
        for sid, actor in consultants.items():
            if actor.staff_id in demoted:
                await sup.leave(sid, reason=ROLE_REMOVED)
                await hub.sio.emit("supervision", {"chats": [], "ended": ROLE_REMOVED}, to=sid, namespace=STAFF)


assert ROLE_REMOVED in ENDED_REASONS


# ---------------------------------------------------------------------- the events


class SupervisionEvents:
    """`supervision`, `monitor`, `unmonitor`, `whisper`, `take_over` and `notes` on /staff (docs/PROTOCOL.md;
    mixed into webchat.staff.StaffNamespace)."""

    hub: "Hub"
    sio: socketio.AsyncServer

    @property
    def sup(self) -> SupervisionHub:
        return self.hub.supervision

    async def supervisor_of(self, sid: str, *, fresh: bool = False) -> Actor:
        """The person behind the socket (a supervisor, or a consultant: the store decides what they may do)."""
        conn = self.hub.staff.get(sid) or self.sup.conns.get(sid)
        if conn is None or conn.ended:
            raise SessionExpired("the session has ended; sign in again")
        if fresh or time.monotonic() - conn.checked_at > RECHECK_SECONDS:
            try:
                actor = await self.hub.store.accounts.authenticate(conn.token)
            except SessionExpired:
                self.hub.spawn(self._recheck(sid))
                raise
            conn.actor, conn.checked_at, conn.touched_at = actor, time.monotonic(), self.hub.store.clock()
            if sid in self.sup.members:
                self.sup.members[sid] = actor
        return conn.actor

    async def _recheck(self, sid: str) -> None:
        sessions = self.hub.staff_sessions
        if sid in self.sup.conns:
            await check_sessions(sessions)
        else:
            await sessions.check([sid])

    def chat_id_of(self, data: dict) -> int | None:
        value = data.get("chat_id")
        return value if is_id(value) else None

    @acked(STAFF)
    async def on_supervision(self, sid: str, data: dict) -> dict:
        actor = await self.supervisor_of(sid)
        await self.hub.store.audit.guard(actor, Permission.SUPERVISE_CHATS, "chat.supervision")
        return ok(**await self.sup.view())

    @acked(STAFF)
    async def on_monitor(self, sid: str, data: dict) -> dict:
        actor = await self.supervisor_of(sid, fresh=True)
        watched = await self.hub.store.supervision.start_monitoring(actor, data.get("chat_id"), data.get("purpose"))
        chat_id = watched.chat_id
        name = await self.hub.store.supervision.full_name_of(actor.staff_id) or actor.name
        previous = self.sup.watches.setdefault(chat_id, {}).get(sid)
        if previous is not None:  # watching again (a reconnecting client): the first watch ends here
            await self.hub.store.supervision.stop_monitoring(
                previous.actor, chat_id, previous.started, reason="renewed"
            )
        self.sup.watches[chat_id][sid] = Watch(actor, name, self.hub.store.clock())
        await self.sio.enter_room(sid, watch_room(chat_id), namespace=STAFF)
        if watched.messages:  # lines after these come from the loop; a chat watched already keeps its mark
            self.sup.forwarded.setdefault(chat_id, watched.messages[-1].seq)
        log.info("chat.monitor chat_id=%s staff_id=%s", chat_id, actor.staff_id)
        self.sup.poke()
        staff = await self.hub.store.chats.staff_on_lines(watched.messages)
        return ok(
            chat_id=chat_id,
            status=watched.status,
            lang=watched.lang,
            consultant=(
                {"staff_id": watched.consultant_id, "name": watched.consultant_name}
                if watched.consultant_id is not None and watched.status == "active"
                else None
            ),
            history=[staff_line_payload(m, staff) for m in watched.messages],
            notes=[n.as_payload() for n in watched.notes],
        )

    @acked(STAFF)
    async def on_unmonitor(self, sid: str, data: dict) -> dict:
        await self.supervisor_of(sid)
        chat_id = self.chat_id_of(data)
        if chat_id is None:
            return error(INVALID, "chat_id must be a chat number")
        ended = await self.sup.end_watches(chat_id, sid=sid, reason="stopped")
        return ok(chat_id=chat_id, watching=False, ended=bool(ended))

    @acked(STAFF)
    async def on_whisper(self, sid: str, data: dict) -> dict:
        actor = await self.supervisor_of(sid, fresh=True)
        chat_id = self.chat_id_of(data)
        await self.hub.store.audit.guard(
            actor, Permission.SUPERVISE_CHATS, "chat.whisper", target_kind="conversation", target_id=chat_id
        )  # a refusal is audited and answered not_permitted
        if chat_id is None:
            return error(INVALID, "chat_id must be a chat number")
        if sid not in self.sup.watches.get(chat_id, {}):
            return error(INVALID, "watch the chat first (monitor, with a purpose), then whisper", NOT_WATCHING)
        whispered = await self.hub.store.supervision.whisper(
            actor, chat_id, data.get("text"), data.get("client_msg_id")
        )
        if whispered.new and whispered.note.to_staff_id is not None:
            await self.hub.publish(NoteStored(whispered.note, skip_sid=sid))
            log.info("chat.whisper chat_id=%s staff_id=%s", chat_id, actor.staff_id)
        return ok(note=whispered.note.as_payload())

    @acked(STAFF)
    async def on_take_over(self, sid: str, data: dict) -> dict:
        actor = await self.supervisor_of(sid, fresh=True)
        chat_id = self.chat_id_of(data)
        for permission in (Permission.SUPERVISE_CHATS, Permission.HANDLE_CHATS):  # both: the supervisor then answers
            await self.hub.store.audit.guard(
                actor, permission, "chat.take_over", target_kind="conversation", target_id=chat_id
            )
        if chat_id is None:
            return error(INVALID, "chat_id must be a chat number")
        chat, message, previous = await self.hub.chats.take_over(actor, chat_id)
        name = await self.hub.store.supervision.full_name_of(actor.staff_id) or actor.name
        log.info("chat.taken_over chat_id=%s from=%s to=%s", chat_id, previous, actor.staff_id)
        history = await self.hub.history_payload(chat_id)
        await self.hub.publish(
            ChatTakenOver(chat, message, previous, {"staff_id": actor.staff_id, "name": name}, lines=history)
        )
        # whoever takes a chat over handles it now: their own watches of it end
        for s in [s for s, w in self.sup.watches.get(chat_id, {}).items() if w.actor.staff_id == actor.staff_id]:
            await self.sup.end_watches(chat_id, sid=s, reason="taken_over")
        self.sup.poke()
        return ok(chat_id=chat_id, lang=chat.lang, history=history)

    @acked(STAFF)
    async def on_notes(self, sid: str, data: dict) -> dict:
        """The whispers of a chat, for its consultant (after a reconnect) or a supervisor watching it."""
        actor = await self.supervisor_of(sid)
        chat_id = self.chat_id_of(data)
        if chat_id is None:
            return error(INVALID, "chat_id must be a chat number")
        if sid not in self.sup.watches.get(chat_id, {}) and await self.hub.assignee(chat_id) != actor.staff_id:
            await self.hub.chats.refuse_unassigned(actor, "chat.notes", chat_id)  # audited, not_permitted
        return ok(chat_id=chat_id, notes=[n.as_payload() for n in await self.hub.store.supervision.notes(chat_id)])


def register(sio: socketio.AsyncServer, hub: "Hub") -> SupervisionHub:
    """The supervision view's live state for `hub` (its events: SupervisionEvents on /staff)."""
    sup = hub.supervision = SupervisionHub(sio, hub)
    return sup
