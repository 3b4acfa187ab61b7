"""The `Requests` service: every step of a request, through the lifecycle, audited with its change.

Each step asks lifecycle.py whether this actor may take it on this request (a refusal is audited and raised
as NotPermitted) and whether the state and the guards allow it (InvalidTransition), cleans what was typed
(text.py), and writes the change and its audit entry in one transaction, re-checking the state on the row
as it is inside that transaction. The SQL is in repository.py, the §4.7 matching in matching.py, the letters
in letters.py, the files that leave the register in export.py.
"""

from __future__ import annotations

import asyncio
import builtins
import hashlib
import json
from datetime import date, datetime
from pathlib import Path
from typing import Any, Callable, Iterable
from zoneinfo import ZoneInfo

import aiosqlite

from .. import letters as L
from .. import session_record as SR
from ..audit import AuditLog
from ..clock import Clock, add_months_to_date, from_iso, to_iso
from ..db import Database
from ..errors import ConversationNotFound, IneligibleForGrant, InvalidInput, InvalidTransition, NotPermitted, Text
from ..i18n import N_
from ..keys import words
from ..models import Actor, Role
from ..policy import Permission, allowed
from ..seal import Seal
from ..settings import Settings, case_mark
from . import export as X
from . import letters as RL
from . import lifecycle, matching
from . import validation as V
from .lifecycle import Facts, Refusal
from .model import (
    ACCESS,
    ANSWER_PENDING,
    CHANNELS,
    COPY,
    FINAL_STATES,
    JUSTIFICATION,
    KINDS,
    MAX_EXTENSION_MONTHS,
    MAX_NAME,
    MAX_TEXT,
    OPEN_STATES,
    OPINION_KINDS,
    STATE_LABELS,
    VERDICTS,
    AccessRequest,
    Attendee,
    Candidate,
    CopyApproval,
    ExportResult,
    LetterRecord,
    LinkedConversation,
    Opinion,
    RequestDetail,
    RequestInput,
    SessionMaterial,
    TranscriptLine,
)
from ..sqlite.requests import RequestRepository, build_facts
from .text import clean_text

#: the longest list of other people present at a session (§4.6)
MAX_OTHERS = 20


def _dt(text: str | None) -> datetime | None:
    return from_iso(text) if text else None


def _person_id(actor: Actor, action: str) -> int:
    """The staff id the step's record names (a NOT NULL column): the host account is refused, as `_allow` does."""
    missing = lifecycle.person_missing(actor, action)
    if missing is not None:
        raise missing
    if actor.staff_id is None:  # an action without a `person` rule that nevertheless records one
        raise RuntimeError(f"the {action!r} step records a staff member but has no person rule")
    return actor.staff_id


def _bool(value: int | None) -> bool | None:
    return None if value is None else bool(value)


class Requests:
    """The request register and every transition of a request."""

    def __init__(
        self,
        db: Database,
        audit: AuditLog,
        settings: Settings,
        clock: Clock,
        keys: Any = None,
        repo: RequestRepository | None = None,
    ) -> None:
        self.db = db
        #: the register's SQL (store/sqlite/requests.py), wired by the Store
        self.repo = repo if repo is not None else RequestRepository(db)
        self.audit = audit
        #: the data keys (store/keys.py): transcripts are opened here, behind the request's checks
        self.keys = keys
        self.settings = settings
        self.clock = clock
        #: the office's seal for letters (store/seal.py), set by Store.open; None = letters go out unsigned
        self.seal: "Seal | None" = None
        #: store.resident_desk (receipts of chats), set by Store: a receipt pair links its chat to the request (§4.1)
        self.resident_desk: Any = None

    # -- time -----------------------------------------------------------------------------------

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.settings.timezone)

    def today(self) -> date:
        """The office's local date: deadlines are days in Poland, not in UTC."""
        return self.clock().astimezone(self.tz).date()

    due_date = staticmethod(V.due_date)

    def _now(self) -> str:
        return to_iso(self.clock())

    # -- the lifecycle's door ---------------------------------------------------------------------------

    async def _refuse(self, actor: Actor, action: str, request_id: int | None, refusal: Refusal) -> None:
        """Audit the refused attempt (in its own transaction) and raise NotPermitted."""
        await self.audit.record(
            actor,
            action,
            outcome="refused",
            target_kind="request" if request_id else None,
            target_id=request_id,
            request_id=request_id,
            details={"permission": refusal.permission.value},
        )
        if refusal.msgid:
            raise NotPermitted(refusal.msgid, **refusal.params)
        raise NotPermitted(
            N_("{name} is not permitted to {action}"),
            name=actor.name,
            action=action.replace("_", " ").replace(".", ": "),
        )

    async def _facts(self, conn: Any, request_id: int) -> Facts:
        return await build_facts(self.repo, conn, await self._read(conn, request_id))

    async def _allow(self, actor: Actor, action: str, request_id: int, variant: str | None = None) -> Facts:
        """May `actor` take `action` on the request now? Refusals are audited; returns the facts looked at."""
        facts = await self._facts(self.db, request_id)
        refusal = lifecycle.refusal(actor, action, facts, variant)
        if refusal is not None:
            await self._refuse(actor, lifecycle.audit_action(action, variant), request_id, refusal)
        missing = lifecycle.person_missing(actor, action)
        if missing is not None:
            raise missing
        lifecycle.check(action, facts, variant)
        return facts

    async def _take(
        self, tx: aiosqlite.Connection, action: str, request_id: int, variant: str | None = None
    ) -> tuple[Facts, str]:
        """Inside the write transaction: the request as it is now, and the state `action` leads it to."""
        facts = await self._facts(tx, request_id)
        return facts, lifecycle.check(action, facts, variant)

    async def allowed_actions(self, actor: Actor, request_id: int) -> tuple[str, ...]:
        """What `actor` may do with the request now (lifecycle.allowed_actions)."""
        return lifecycle.allowed_actions(actor, await self._facts(self.db, request_id))

    # -- registering ----------------------------------------------------------------------------

    async def register(self, actor: Actor, data: RequestInput) -> AccessRequest:
        """Register a request; the number is CIM/<year>/<nnnn>, counted per year of receipt."""
        refusal = lifecycle.may_register(actor, data.kind)
        if refusal is not None:
            await self._refuse(actor, "requests.register", None, refusal)
        if actor.staff_id is None:
            raise InvalidInput(
                N_("registering a request must be done by a signed-in staff member, not by the host account")
            )
        clean = V.validate(data, self.today())
        reference, receipt_chat = await self._receipt(actor, data, clean)
        now = self._now()
        async with self.db.write() as tx:
            number = await self.repo.next_number(tx, clean["received_on"][:4])
            request_id = await self.repo.insert(tx, number, clean, actor.staff_id, now)
            await self.audit.append(
                tx,
                actor,
                "requests.register",
                target_kind="request",
                target_id=request_id,
                request_id=request_id,
                details={"number": number, "kind": clean["kind"], "channel": clean["channel"]},
            )
            if reference:
                await self.repo.update(tx, request_id, now, conversation_reference=reference)
            if receipt_chat is not None:
                await self._link_by_receipt(tx, actor, request_id, number, receipt_chat, now)
        return await self._get(request_id)

    async def _receipt(self, actor: Actor, data: RequestInput, clean: dict[str, Any]) -> tuple[str, int | None]:
        """(the annex's conversation reference, the chat a valid receipt pair proves) — §4.1, §4.2."""
        from ..resident_desk import normalise_reference

        raw = V.reference(data.conversation_reference)
        secret = str(data.receipt_secret or "").strip()
        if not secret:
            return normalise_reference(raw) or raw, None
        if clean["channel"] != "chat":
            raise InvalidInput(N_("a chat code belongs to a chat request; this request concerns a call"))
        if not raw:
            raise InvalidInput(N_("the chat code needs the chat reference (CZ-YYYY-MM-DD-XXXX) beside it"))
        chat_id = await self.resident_desk.verify_receipt(actor, raw, secret)
        return normalise_reference(raw), chat_id

    async def _link_by_receipt(
        self, tx: aiosqlite.Connection, actor: Actor, request_id: int, number: str, chat_id: int, now: str
    ) -> None:
        """Link the chat a receipt pair proved (§4.1) and hold it against the purge, as `link` does."""
        await self.repo.link(tx, request_id, number, chat_id, _person_id(actor, "link_receipt"), now)
        await self.repo.update(tx, request_id, now, receipt_verified_at=now)
        await self.audit.append(
            tx,
            actor,
            "requests.link",
            target_kind="conversation",
            target_id=chat_id,
            request_id=request_id,
            details={"eligible": True, "by_receipt": True},
        )

    # -- reading ----------------------------------------------------------------------------------

    async def _read(self, conn: Any, request_id: int) -> AccessRequest:
        row = await self.repo.row(conn, request_id)
        given = await self.repo.opinion_kinds(conn, [request_id])
        return self._request(row, frozenset(given.get(request_id, ())))

    async def _get(self, request_id: int) -> AccessRequest:
        return await self._read(self.db, request_id)

    def _request(self, r: Any, opinions: frozenset[str] = frozenset()) -> AccessRequest:
        due = date.fromisoformat(r["due_on"])
        extended = date.fromisoformat(r["extended_until"]) if r["extended_until"] else None
        effective = extended or due
        pending = r["state"] in ANSWER_PENDING[r["kind"]]
        today = self.today()
        return AccessRequest(
            id=r["id"],
            number=r["number"],
            kind=r["kind"],
            state=r["state"],
            received_on=date.fromisoformat(r["received_on"]),
            due_on=due,
            extended_until=extended,
            extension_reason=r["extension_reason"],
            requester_name=r["requester_name"],
            requester_address=r["requester_address"],
            requester_email=r["requester_email"],
            requester_phone=r["requester_phone"],
            channel=r["channel"],
            hint=json.loads(r["conversation_hint"]),
            justification=r["justification"],
            asked=r["asked"],
            delivery=r["delivery"],
            registered_by=r["registered_by"],
            registered_at=from_iso(r["registered_at"]),
            decision=r["decision"],
            decision_reasons=r["decision_reasons"],
            decided_by=r["decided_by"],
            decided_at=_dt(r["decided_at"]),
            session_at=_dt(r["session_at"]),
            session_place=r["session_place"],
            session_started_at=_dt(r["session_started_at"]),
            session_ended_at=_dt(r["session_ended_at"]),
            session_notes=r["session_notes"],
            closed_at=_dt(r["closed_at"]),
            withdrawn_at=_dt(r["withdrawn_at"]),
            ineligible_reason=r["ineligible_reason"],
            exported_at=_dt(r["exported_at"]),
            export_path=r["export_path"],
            withdrawal_note=r["withdrawal_note"],
            addressed_as=r["addressed_as"],
            session_others=tuple(json.loads(r["session_others"])) if r["session_others"] else (),
            session_outcome=r["session_outcome"],
            overdue=pending and today > effective,
            due_soon=pending and today <= effective and (effective - today).days <= self.settings.request_due_soon_days,
            opinions_given=opinions,
            conversation_reference=r["conversation_reference"],
            receipt_verified_at=_dt(r["receipt_verified_at"]),
        )

    async def _may_view(self, actor: Actor, facts: Facts) -> None:
        refusal = lifecycle.may_view(actor, facts)
        if refusal is not None:
            await self._refuse(actor, "requests.view", facts.request.id, refusal)

    async def get(self, actor: Actor, request_id: int) -> RequestDetail:
        """The request with its conversations, opinions, attendees and letters; the view is audited."""
        facts = await self._facts(self.db, request_id)
        await self._may_view(actor, facts)
        request = facts.request
        conversations = tuple(
            LinkedConversation(
                conversation_id=r["id"],
                channel=r["channel"],
                created_at=from_iso(r["created_at"]),
                resident_number=r["resident_number"],
                number_identifiable=_bool(r["number_identifiable"]),
                department=r["department"],
                linked_at=from_iso(r["linked_at"]),
                has_recording=r["recordings"] > 0,
            )
            for r in await self.repo.linked_detail(request_id)
        )
        opinions = tuple(
            Opinion(
                kind=r["kind"],
                staff_id=r["staff_id"],
                staff_name=r["name"],
                verdict=r["verdict"],
                text=r["text"],
                at=from_iso(r["at"]),
            )
            for r in await self.repo.opinions(request_id)
        )
        attendees = tuple(
            Attendee(staff_id=r["staff_id"], name=r["name"], full_name=r["full_name"], present=_bool(r["present"]))
            for r in await self.repo.attendees(request_id)
        )
        letters = tuple(self._letter(r) for r in await self.repo.letters(request_id))
        async with self.db.write() as tx:
            await self.audit.append(
                tx, actor, "requests.view", target_kind="request", target_id=request_id, request_id=request_id
            )
        return RequestDetail(
            request=request,
            conversations=conversations,
            opinions=opinions,
            attendees=attendees,
            letters=letters,
            next_actions=lifecycle.moves(request.kind, request.state),
            approval=await self._approval_record(request_id),
            allowed_actions=lifecycle.allowed_actions(actor, facts),
        )

    def _letter(self, r: Any) -> LetterRecord:
        return LetterRecord(
            id=r["id"],
            kind=r["kind"],
            path=self.settings.letters_dir / r["path"],
            sha256=r["sha256"],
            created_at=from_iso(r["created_at"]),
            sealed=bool(r["sealed"]),
            sealed_by=r["sealed_by"],
        )

    async def get_by_number(self, actor: Actor, number: str) -> RequestDetail:
        return await self.get(actor, await self.repo.id_by_number(number))

    async def list(
        self,
        actor: Actor,
        *,
        state: str | None = None,
        kind: str | None = None,
        channel: str | None = None,
        due_before: date | None = None,
        flagged_only: bool = False,
    ) -> builtins.list[AccessRequest]:
        """The register, oldest due first; `flagged_only` keeps the requests due soon or overdue."""
        await self.audit.guard(actor, Permission.VIEW_REQUESTS, "requests.list")
        if state is not None and state not in STATE_LABELS and state != "open":
            raise InvalidInput(
                N_("unknown state {state!r}; states are: open, {states}"), state=state, states=", ".join(STATE_LABELS)
            )
        if kind is not None and kind not in KINDS:
            raise InvalidInput(N_("the kind must be one of: {kinds}"), kinds=", ".join(KINDS))
        if channel is not None and channel not in CHANNELS:
            raise InvalidInput(N_("the channel must be 'call' or 'chat'"))
        rows = await self.repo.rows(
            state=None if state == "open" else state,
            open_only=state == "open",
            kind=kind,
            channel=channel,
            due_before=due_before,
            final_states=sorted(FINAL_STATES),
        )
        result = await self._with_opinions(rows)
        if flagged_only:
            result = [r for r in result if r.due_soon or r.overdue]
        return result

    async def _with_opinions(self, rows: builtins.list[Any]) -> builtins.list[AccessRequest]:
        given = await self.repo.opinion_kinds(self.db, [r["id"] for r in rows])
        return [self._request(r, frozenset(given.get(r["id"], ()))) for r in rows]

    async def inbox(self, actor: Actor) -> builtins.list[AccessRequest]:
        """What waits for this person: the DPO's opinions and copy requests, a head's department
        opinions, the director's decisions, sessions and closings, the registrars' linking, a second
        person's confirmation, an attendee's session. The states come from the lifecycle."""
        rows: dict[int, Any] = {}
        for found in await self._inbox_rows(actor):
            rows.update((r["id"], r) for r in found)
        result = await self._with_opinions(list(rows.values()))
        return sorted(result, key=lambda r: (r.effective_due, r.number))

    async def _inbox_rows(self, actor: Actor) -> builtins.list[builtins.list[Any]]:
        states, repo, system = lifecycle.states_for, self.repo, actor.is_system
        found: builtins.list[builtins.list[Any]] = []
        if actor.has(Role.DPO) or system:
            found.append(await repo.awaiting_opinion("dpo", states(ACCESS, "opinion")))
            found.append(await repo.in_states(COPY, tuple(s for s in lifecycle.KIND_STATES[COPY] if s in OPEN_STATES)))
        if actor.has(Role.DEPARTMENT_HEAD) or system:
            found.append(await repo.awaiting_department(states(ACCESS, "opinion"), actor.department, system))
        if actor.has(Role.BOI_DIRECTOR) or system:
            found.append(
                await repo.in_states(ACCESS, states(ACCESS, "grant", "refuse", "start_session", "end_session", "close"))
            )
        if allowed(actor, Permission.REGISTER_REQUESTS) and not system:
            found.append(await repo.unlinked(states(None, "link")))
        if allowed(actor, Permission.CONFIRM_COPY_EXPORT) and actor.staff_id is not None:
            found.append(await repo.prepared_by_others(actor.staff_id, states(COPY, "confirm_export")))
        if actor.staff_id is not None:
            found.append(await repo.attending(actor.staff_id, states(ACCESS, "start_session", "end_session")))
        return found

    async def register_csv(self, actor: Actor, **filters: Any) -> str:
        """The register as CSV for the director (cells that a spreadsheet would run as formulas are quoted)."""
        requests = await self.list(actor, **filters)
        text = X.register_csv(requests)
        async with self.db.write() as tx:
            await self.audit.append(
                tx,
                actor,
                "requests.export_csv",
                details={"rows": len(requests), "filters": {k: str(v) for k, v in filters.items() if v is not None}},
            )
        return text

    # -- matching and linking ----------------------------------------------------------------------

    async def candidates(self, actor: Actor, request_id: int, *, limit: int = 50) -> builtins.list[Candidate]:
        """Conversations that may be the one meant: calls by number and time window, chats by time and details."""
        facts = await self._facts(self.db, request_id)
        refusal = lifecycle.may_link(actor, facts)
        if refusal is not None:
            await self._refuse(actor, "requests.candidates", request_id, refusal)
        request = facts.request
        w = matching.window(request.hint, self.tz, self.settings.request_match_window_minutes)
        # Roles that cannot search the archive (the DPO, the director) see only what matching needs.
        masked = not allowed(actor, Permission.SEARCH_ARCHIVE)
        details: set[int] = set()
        if request.channel == "call":
            rows = await self.repo.calls_near(
                matching.utc(w.start),
                matching.utc(w.end),
                request.requester_phone,
                matching.utc(w.day_start),
                matching.utc(w.day_end),
            )
        else:
            rows = await self.repo.chats_between(matching.utc(w.start), matching.utc(w.end))
            needle = (request.hint.get("name_or_email") or "").strip()
            if needle and rows and not masked and self.keys is not None:
                # no search in chat text for who may not search it; for who may: the blind index of
                # residents' words (HMAC with each chat's data key), every word of the detail must occur
                details = await self._blind_match([r["id"] for r in rows], needle)
        result = matching.candidates(
            rows,
            request,
            masked=masked,
            details=details,
            centre=w.centre,
            linked=await self.repo.linked_ids(request_id),
        )
        async with self.db.write() as tx:
            await self.audit.append(
                tx,
                actor,
                "requests.candidates",
                target_kind="request",
                target_id=request_id,
                request_id=request_id,
                details={"found": len(result), "masked": masked},
            )
        return result[:limit]

    async def _blind_match(self, ids: builtins.list[int], needle: str) -> set[int]:
        """Chats among `ids` whose residents wrote every word of `needle` (store/keys.py `words`), found by
        the keyed blind index; a purged chat's tokens and key are gone, so it can never match."""
        wanted = words(needle)
        if not wanted:
            return set()
        keys = await self.keys.read_keys(ids)
        found: set[int] = set()
        for conversation_id, key in keys.items():
            tokens = [key.token(w) for w in wanted]
            if await self.repo.tokens_found(conversation_id, tokens) == len(tokens):
                found.add(conversation_id)
        return found

    async def _texts(self, conversation_id: int, rows: builtins.list[Any]) -> builtins.list[str]:
        """Transcript texts opened with the conversation's data key (a line not sealed yet is read as it is)."""
        if self.keys is None:
            return [r["text"] for r in rows]
        return await self.keys.texts(conversation_id, rows)

    async def _recheck_eligibility(self, tx: aiosqlite.Connection, facts: Facts, now: str) -> str | None:
        reason = matching.ineligibility(
            await self.repo.linked_numbers(tx, facts.request.id), facts.request.requester_phone
        )
        await self.repo.update(tx, facts.request.id, now, ineligible_reason=reason)
        return reason

    async def link(self, actor: Actor, request_id: int, conversation_id: int) -> AccessRequest:
        """Link a conversation (and hold it against the purge); §4.7 is checked and recorded at once."""
        await self._allow(actor, "link", request_id)
        async with self.db.write() as tx:
            facts, _ = await self._take(tx, "link", request_id)
            req = facts.request
            conv = await self.repo.conversation(tx, conversation_id)
            if conv is None:
                raise ConversationNotFound(
                    N_("no conversation with id {conversation_id}"), conversation_id=conversation_id
                )
            if conv["channel"] != req.channel:
                raise InvalidInput(
                    N_("the request concerns a {channel}; conversation {conversation_id} is a {conv_channel}"),
                    channel=Text(req.channel),
                    conversation_id=conversation_id,
                    conv_channel=Text(conv["channel"]),
                )
            if await self.repo.is_linked(tx, request_id, conversation_id):
                raise InvalidInput(
                    N_("conversation {conversation_id} is already linked to {number}"),
                    conversation_id=conversation_id,
                    number=req.number,
                )
            now = self._now()
            await self.repo.link(tx, request_id, req.number, conversation_id, _person_id(actor, "link"), now)
            reason = await self._recheck_eligibility(tx, facts, now)
            await self.audit.append(
                tx,
                actor,
                "requests.link",
                target_kind="conversation",
                target_id=conversation_id,
                request_id=request_id,
                details={"eligible": reason is None},
            )
        return await self._get(request_id)

    async def link_by_receipt(self, actor: Actor, request_id: int, reference: str, secret: str) -> AccessRequest:
        """§4.1: the requester brought the chat's receipt after registering; a valid pair links that chat."""
        from ..resident_desk import normalise_reference

        facts = await self._allow(actor, "link_receipt", request_id)
        if facts.request.channel != "chat":
            raise InvalidInput(N_("a chat code belongs to a chat request; this request concerns a call"))
        chat_id = await self.resident_desk.verify_receipt(actor, reference, secret)
        async with self.db.write() as tx:
            facts, _ = await self._take(tx, "link_receipt", request_id)
            if await self.repo.is_linked(tx, request_id, chat_id):
                raise InvalidInput(N_("that chat is already linked to {number}"), number=facts.number)
            now = self._now()
            await self.repo.update(tx, request_id, now, conversation_reference=normalise_reference(reference))
            await self._link_by_receipt(tx, actor, request_id, facts.number, chat_id, now)
        return await self._get(request_id)

    async def unlink(self, actor: Actor, request_id: int, conversation_id: int) -> AccessRequest:
        """Undo a wrong link before the decision; its automatic hold is released."""
        await self._allow(actor, "unlink", request_id)
        async with self.db.write() as tx:
            facts, _ = await self._take(tx, "unlink", request_id)
            now = self._now()
            if not await self.repo.unlink(tx, request_id, conversation_id, actor.staff_id, now):
                raise InvalidInput(
                    N_("conversation {conversation_id} is not linked to {number}"),
                    conversation_id=conversation_id,
                    number=facts.number,
                )
            await self._recheck_eligibility(tx, facts, now)
            await self.audit.append(
                tx,
                actor,
                "requests.unlink",
                target_kind="conversation",
                target_id=conversation_id,
                request_id=request_id,
            )
        return await self._get(request_id)

    # -- opinions and the decision -------------------------------------------------------------------

    async def give_opinion(self, actor: Actor, request_id: int, kind: str, verdict: str, text: str) -> AccessRequest:
        """§4.3: the DPO's or the concerned department head's reasoned opinion; the second moves the request on."""
        if kind not in OPINION_KINDS:
            raise InvalidInput(N_("the opinion is 'dpo' or 'department'"))
        await self._allow(actor, "opinion", request_id, kind)
        if verdict not in VERDICTS:
            raise InvalidInput(N_("the verdict is 'favourable' or 'unfavourable'"))
        text = clean_text(text, "opinion", required=True, missing="an opinion needs its reasons")
        async with self.db.write() as tx:
            _, new_state = await self._take(tx, "opinion", request_id, kind)
            now = self._now()
            await self.repo.add_opinion(tx, request_id, kind, _person_id(actor, "opinion"), verdict, text, now)
            await self.repo.update(tx, request_id, now, state=new_state)
            await self.audit.append(
                tx,
                actor,
                f"requests.opinion_{kind}",
                target_kind="request",
                target_id=request_id,
                request_id=request_id,
                details={"verdict": verdict},
            )
        return await self._get(request_id)

    async def _session_attendees(
        self, session_at: datetime | None, place: str | None, attendee_ids: Iterable[int]
    ) -> tuple[datetime, str, builtins.list[Any]]:
        """§4.4, §4.6: the session's time, its place and its designated attendees, checked."""
        if session_at is None or session_at.tzinfo is None:
            raise InvalidInput(N_("the session needs a date and time (with its time zone)"))
        if session_at <= self.clock():
            raise InvalidInput(N_("the session cannot be scheduled in the past"))
        place = clean_text(place, "place", required=True, limit=MAX_NAME, missing="the session needs a place")
        ids = sorted(set(int(i) for i in attendee_ids))
        if not ids:
            raise InvalidInput(N_("designate at least one staff member to attend the session (§4.6)"))
        attendees = await self.repo.staff(ids)
        missing = set(ids) - {a["id"] for a in attendees}
        if missing:
            raise InvalidInput(N_("no staff member with id {items}"), items=", ".join(map(str, sorted(missing))))
        disabled = [a["name"] for a in attendees if a["disabled"]]
        if disabled:
            raise InvalidInput(N_("disabled accounts cannot attend: {disabled}"), disabled=", ".join(disabled))
        return session_at, place, attendees

    async def grant(
        self,
        actor: Actor,
        request_id: int,
        *,
        session_at: datetime | None = None,
        place: str | None = None,
        attendee_ids: Iterable[int] = (),
    ) -> AccessRequest:
        """Grant. Access (§4.4, §4.6): the director sets the session and its attendees and the notice is
        written. Copy (GDPR Art. 15): the DPO approves; the copy follows with `export_copy`."""
        request = (await self._allow(actor, "grant", request_id)).request
        rendered: RL.RenderedLetter | None = None
        attendees: builtins.list[Any] = []
        if request.kind == ACCESS:
            session_at, place, attendees = await self._session_attendees(session_at, place, attendee_ids)
            letter = L.grant_letter(
                **self._letter_common(request),
                ordinance=self.settings.ordinance_reference,
                received_on=request.received_on,
                channel=request.channel,
                session_local=session_at.astimezone(self.tz),
                place=place,
                attendees=[a["full_name"] or a["name"] for a in attendees],
                conversations=await self._concerned(request_id),
                form=request.addressed_as,
            )
            rendered = await self._render(letter, actor, request)
        async with self.db.write() as tx:
            facts, new_state = await self._take(tx, "grant", request_id)
            now = self._now()
            if facts.kind == ACCESS:  # a link may have changed since we looked
                reason = matching.ineligibility(
                    await self.repo.linked_numbers(tx, request_id), facts.request.requester_phone
                )
                if reason is not None:
                    raise IneligibleForGrant(
                        N_("{number} cannot be granted: {reason}"), number=facts.number, reason=reason
                    )
            await self.repo.update(
                tx,
                request_id,
                now,
                state=new_state,
                decision="granted",
                decided_by=actor.staff_id,
                decided_at=now,
                session_at=to_iso(session_at) if session_at else None,
                session_place=place or None,
            )
            await self.repo.add_attendees(tx, request_id, [a["id"] for a in attendees])
            if rendered is not None:
                await self._store_letter(tx, actor, facts.request, L.GRANT, rendered)
            await self.audit.append(
                tx,
                actor,
                "requests.grant",
                target_kind="request",
                target_id=request_id,
                request_id=request_id,
                details={"attendees": [a["id"] for a in attendees]},
            )
        return await self._get(request_id)

    async def refuse(self, actor: Actor, request_id: int, reasons: str) -> AccessRequest:
        """§4.5: refuse in writing, with reasons and the information on the right to complain and to a court."""
        request = (await self._allow(actor, "refuse", request_id)).request
        reasons = clean_text(
            reasons, "reasons", plural=True, required=True, missing="a refusal needs its reasons (§4.5)"
        )
        letter = L.refusal_letter(
            **self._letter_common(request),
            ordinance=self.settings.ordinance_reference,
            received_on=request.received_on,
            channel=request.channel,
            reasons=reasons,
            kind=request.kind,
            form=request.addressed_as,
        )
        rendered = await self._render(letter, actor, request)
        async with self.db.write() as tx:
            facts, new_state = await self._take(tx, "refuse", request_id)
            now = self._now()
            await self.repo.update(
                tx,
                request_id,
                now,
                state=new_state,
                decision="refused",
                decision_reasons=reasons,
                decided_by=actor.staff_id,
                decided_at=now,
            )
            await self._store_letter(tx, actor, facts.request, L.REFUSAL, rendered)
            await self.audit.append(
                tx, actor, "requests.refuse", target_kind="request", target_id=request_id, request_id=request_id
            )
        return await self._get(request_id)

    async def extend(self, actor: Actor, request_id: int, months: int, reasons: str) -> AccessRequest:
        """GDPR Art. 12(3): extend the answer by one or two months in all, with reasons and a letter."""
        request = (await self._allow(actor, "extend", request_id)).request
        if not isinstance(months, int) or months < 1:
            raise InvalidInput(N_("the extension is a whole number of months (1 or 2)"))
        reasons = clean_text(
            reasons, "reasons", plural=True, required=True, missing="an extension needs its reasons (GDPR Art. 12(3))"
        )
        limit = add_months_to_date(request.due_on, MAX_EXTENSION_MONTHS)
        until = add_months_to_date(request.effective_due, months)
        if until > limit:
            raise InvalidTransition(
                N_("the answer can be extended by at most {months} months, to {limit}"),
                months=MAX_EXTENSION_MONTHS,
                limit=limit.isoformat(),
            )
        letter = L.extension_letter(
            **self._letter_common(request),
            received_on=request.received_on,
            due_on=request.due_on,
            extended_until=until,
            reasons=reasons,
            kind=request.kind,
            form=request.addressed_as,
        )
        rendered = await self._render(letter, actor, request)
        async with self.db.write() as tx:
            facts, _ = await self._take(tx, "extend", request_id)
            if facts.request.effective_due != request.effective_due:
                raise InvalidTransition(N_("{number} was extended meanwhile; look again"), number=facts.number)
            previous = facts.request.extension_reason
            await self.repo.update(
                tx,
                request_id,
                self._now(),
                extended_until=until.isoformat(),
                extension_reason=f"{previous}\n{reasons}" if previous else reasons,
            )
            await self._store_letter(tx, actor, facts.request, L.EXTENSION, rendered)
            await self.audit.append(
                tx,
                actor,
                "requests.extend",
                target_kind="request",
                target_id=request_id,
                request_id=request_id,
                details={"until": until.isoformat()},
            )
        return await self._get(request_id)

    async def withdraw(self, actor: Actor, request_id: int, note: str = "") -> AccessRequest:
        """The requester withdraws before the decision; the automatic holds are released."""
        await self._allow(actor, "withdraw", request_id)
        note = clean_text(note, "note")
        return await self._end(
            actor, request_id, "withdraw", lambda now: {"withdrawn_at": now, "withdrawal_note": note or None}
        )

    async def close(self, actor: Actor, request_id: int) -> AccessRequest:
        """Close after the session, the refusal or the export; the automatic holds are released."""
        await self._allow(actor, "close", request_id)
        return await self._end(actor, request_id, "close", lambda now: {"closed_at": now})

    async def _end(
        self, actor: Actor, request_id: int, action: str, fields: Callable[[str], dict[str, Any]]
    ) -> AccessRequest:
        """Withdraw or close: the move, its time fields, the automatic holds released, one audit entry."""
        async with self.db.write() as tx:
            _, new_state = await self._take(tx, action, request_id)
            now = self._now()
            await self.repo.update(tx, request_id, now, state=new_state, **fields(now))
            released = await self.repo.release_holds(tx, request_id, actor.staff_id, now)
            await self.audit.append(
                tx,
                actor,
                f"requests.{action}",
                target_kind="request",
                target_id=request_id,
                request_id=request_id,
                details={"holds_released": released},
            )
        return await self._get(request_id)

    # -- the listening session (§4.4, §4.6) -----------------------------------------------------------

    async def start_session(self, actor: Actor, request_id: int) -> AccessRequest:
        await self._allow(actor, "start_session", request_id)
        async with self.db.write() as tx:
            _, new_state = await self._take(tx, "start_session", request_id)
            now = self._now()
            await self.repo.update(tx, request_id, now, state=new_state, session_started_at=now)
            await self.audit.append(
                tx, actor, "requests.session_start", target_kind="request", target_id=request_id, request_id=request_id
            )
        return await self._get(request_id)

    async def open_for_session(self, actor: Actor, request_id: int, conversation_id: int) -> SessionMaterial:
        """The recording's path or the chat's transcript, for playback during the session; audited under the request."""
        facts = await self._allow(actor, "open_content", request_id)
        if not await self.repo.is_linked(self.db, request_id, conversation_id):
            raise InvalidInput(
                N_("conversation {conversation_id} is not linked to {number}"),
                conversation_id=conversation_id,
                number=facts.number,
            )
        conv = await self.repo.conversation(self.db, conversation_id)
        if conv is None:
            raise ConversationNotFound(
                N_("conversation {conversation_id} no longer exists"), conversation_id=conversation_id
            )
        recordings = await self.repo.recordings(conversation_id)
        msgs = await self.repo.messages(conversation_id)
        texts = await self._texts(conversation_id, msgs)
        lines = tuple(
            TranscriptLine(
                seq=m["seq"],
                sender=m["sender"],
                text=t,
                at=from_iso(m["at"]),
                event=m["event"],
                params=json.loads(m["params"]) if m["event"] and m["params"] else None,
            )
            for m, t in zip(msgs, texts)
        )
        async with self.db.write() as tx:
            await self.audit.append(
                tx,
                actor,
                "requests.session_playback",
                target_kind="conversation",
                target_id=conversation_id,
                request_id=request_id,
                purpose=f"§4 session {facts.number}",
            )
        return SessionMaterial(
            conversation_id=conversation_id,
            channel=conv["channel"],
            recording_path=self.settings.recordings_dir / recordings[0]["path"] if recordings else None,
            transcript=lines,
        )

    @staticmethod
    def _session_input(notes: str, others: Iterable[str], outcome: str) -> tuple[str, builtins.list[str], str]:
        notes = clean_text(notes, "notes", plural=True)
        other_names = [n for n in (clean_text(n, "name", limit=10 * MAX_TEXT, multiline=False) for n in others) if n]
        if len(other_names) > MAX_OTHERS or any(len(n) > MAX_NAME for n in other_names):
            raise InvalidInput(
                N_("list at most {others} other people, each name at most {max} characters"),
                others=MAX_OTHERS,
                max=MAX_NAME,
            )
        outcome = (outcome or "completed").strip()
        if outcome not in SR.SESSION_OUTCOMES:
            raise InvalidInput(N_("the outcome must be one of {outcomes}"), outcomes=", ".join(SR.SESSION_OUTCOMES))
        return notes, other_names, outcome

    async def end_session(
        self,
        actor: Actor,
        request_id: int,
        present_ids: Iterable[int],
        notes: str = "",
        *,
        others: Iterable[str] = (),
        outcome: str = "completed",
    ) -> AccessRequest:
        """Record who attended (designated staff by id, anyone else by name), the end time, the outcome and
        notes (§4.6). Ended by the director, the session record is signed off and written at once; ended by
        an attendee, it waits for the director's `sign_session_record`."""
        await self._allow(actor, "end_session", request_id)
        notes, other_names, outcome = self._session_input(notes, others, outcome)
        present = set(int(i) for i in present_ids)
        async with self.db.write() as tx:
            facts, new_state = await self._take(tx, "end_session", request_id)
            if present - facts.attendees:
                raise InvalidInput(
                    N_(
                        "only designated attendees can be recorded as present by account; name anyone "
                        "else among the others present (§4.6)"
                    )
                )
            if not present:
                raise InvalidInput(N_("at least one designated attendee must have been present (§4.6)"))
            await self.repo.mark_present(tx, request_id, facts.attendees, present)
            now = self._now()
            await self.repo.update(
                tx,
                request_id,
                now,
                state=new_state,
                session_ended_at=now,
                session_notes=notes or None,
                session_others=json.dumps(other_names, ensure_ascii=False),
                session_outcome=outcome,
            )
            await self.audit.append(
                tx,
                actor,
                "requests.session_end",
                target_kind="request",
                target_id=request_id,
                request_id=request_id,
                details={"present": sorted(present), "others": len(other_names), "outcome": outcome},
            )
        if actor.staff_id is not None and allowed(actor, Permission.DECIDE_REQUESTS):
            await self.sign_session_record(actor, request_id)
        return await self._get(request_id)

    async def sign_session_record(self, actor: Actor, request_id: int) -> LetterRecord:
        """The director signs off the §4.6 session record: the PDF "protokół odsłuchu/odczytu" is written and
        stored with the request's letters (a later sign-off writes a new version; both stay listed)."""
        request = (await self._allow(actor, "sign_record", request_id)).request
        record = await self._session_record(actor, request)
        pdf = await asyncio.to_thread(SR.render_session_record, record, self.seal)
        async with self.db.write() as tx:
            facts, _ = await self._take(tx, "sign_record", request_id)
            await self._store_letter(
                tx,
                actor,
                facts.request,
                SR.SESSION_RECORD,
                RL.RenderedLetter(pdf=pdf, sealed_by=self.seal.subject if self.seal else None),
            )
            await self.audit.append(
                tx,
                actor,
                "requests.session_record",
                target_kind="request",
                target_id=request_id,
                request_id=request_id,
                details={"played": len(record.played)},
            )
        latest = (await self.repo.letters(request_id))[-1]
        return LetterRecord(
            id=latest["id"],
            kind=latest["kind"],
            path=self.settings.letters_dir / latest["path"],
            sha256=latest["sha256"],
            created_at=from_iso(latest["created_at"]),
        )

    async def _session_record(self, actor: Actor, request: AccessRequest) -> SR.SessionRecord:
        """What the record states: attendees, times, and what was played or read (from the audit log)."""
        label = [(a["full_name"] or a["name"], a["present"]) for a in await self.repo.attendees(request.id)]
        me = await self.repo.signer(actor.staff_id)
        tz = self.tz
        return SR.SessionRecord(
            office_name=self.settings.office_name,
            office_address=self.settings.office_address,
            reference=request.number,
            channel=request.channel,
            requester_name=request.requester_name,
            place=request.session_place or "",
            scheduled=RL.local(request.session_at, tz),
            started=RL.local(request.session_started_at, tz),
            ended=RL.local(request.session_ended_at, tz),
            present=tuple(n for n, p in label if p),
            absent=tuple(n for n, p in label if not p),
            others=request.session_others,
            played=tuple(RL.played_lines(await self.repo.played(request.id), tz)),
            outcome=request.session_outcome or "completed",
            notes=request.session_notes or "",
            approved_by=(me["full_name"] or me["name"]) if me else actor.name,
            approved_at=self.clock().astimezone(tz),
        )

    # -- GDPR Art. 15 copy ------------------------------------------------------------------------------

    async def _copy_items(
        self, request_id: int, convs: builtins.list[Any]
    ) -> builtins.list[tuple[str, bytes | Path, int]]:
        """The files of the copy: each call's recordings, each chat's transcript (text and JSON)."""
        items: builtins.list[tuple[str, bytes | Path, int]] = []
        for c in convs:
            if c["channel"] == "call":
                for rec in await self.repo.recordings(c["id"]):
                    items.append(
                        (
                            f"call-{c['id']}-{Path(rec['path']).name}",
                            self.settings.recordings_dir / rec["path"],
                            c["id"],
                        )
                    )
                continue
            rows = await self.repo.messages(c["id"])
            lines = X.copy_lines(rows, await self._texts(c["id"], rows), self.settings.timezone)
            items.extend(X.transcript_files(c["id"], lines, self.settings.timezone))
        return items

    def _copy_target(self, request: AccessRequest, destination: Path, as_zip: bool) -> Path:
        destination = Path(destination)
        if not destination.is_dir():
            raise InvalidInput(N_("{destination} is not an existing folder"), destination=destination)
        safe = request.number.replace("/", "-")
        target = destination / (f"{safe}.zip" if as_zip else safe)
        if target.exists():
            raise InvalidInput(N_("{target} already exists; choose another folder"), target=target)
        return target

    async def export_copy(
        self, actor: Actor, request_id: int, destination: Path, *, as_zip: bool = False
    ) -> ExportResult:
        """Write the copy (recordings, transcripts, manifest.json, SHA256SUMS) to a new folder or ZIP under
        `destination`, with a cover letter; audited."""
        facts = await self._allow(actor, "export", request_id)
        request = facts.request
        target = self._copy_target(request, destination, as_zip)
        convs = await self.repo.linked_times(request_id)
        items = await self._copy_items(request_id, convs)
        if not items:
            raise InvalidTransition(
                N_("{number} has nothing to export: link the conversation first"), number=request.number
            )
        now = self.clock()
        files, manifest_bytes = await asyncio.to_thread(
            X.write_copy,
            target,
            items,
            as_zip,
            {
                "request": request.number,
                "kind": "GDPR Art. 15 copy",
                "created_at": to_iso(now),
                "created_by": actor.name,
            },
        )
        manifest_sha = hashlib.sha256(manifest_bytes).hexdigest()
        try:
            letter = L.copy_letter(
                **self._letter_common(request),
                received_on=request.received_on,
                files=[(f["name"], f["sha256"]) for f in files],
                controller=self.settings.controller,
                recipients=self.settings.data_recipients,
                retention_months=self.settings.retention_duration.months,
                ordinance=self.settings.ordinance_reference,
                conversations=[(c["channel"], from_iso(c["created_at"]).astimezone(self.tz)) for c in convs],
                form=request.addressed_as,
            )
            rendered = await self._render(letter, actor, request)
            async with self.db.write() as tx:
                fresh, new_state = await self._take(tx, "export", request_id)
                await self.repo.update(
                    tx, request_id, to_iso(now), state=new_state, exported_at=to_iso(now), export_path=str(target)
                )
                await self._store_letter(tx, actor, fresh.request, L.COPY, rendered)
                await self.audit.append(
                    tx,
                    actor,
                    "requests.export",
                    target_kind="request",
                    target_id=request_id,
                    request_id=request_id,
                    details={
                        "files": len(files),
                        "bytes": sum(f["size"] for f in files),
                        "format": "zip" if as_zip else "folder",
                        "manifest_sha256": manifest_sha,
                        "prepared_by": fresh.prepared_by,
                        "confirmed_by": fresh.confirmed_by,
                    },
                )
        except BaseException:
            await asyncio.to_thread(X.remove, target)
            raise
        return ExportResult(path=target, files=tuple(files), manifest_sha256=manifest_sha)

    # -- two people for a copy --------------------------------------------------------------------------

    async def copy_basis(self, actor: Actor, request_id: int) -> dict[int, str]:
        """How each linked conversation is tied to the requester: the §4.7 number match, or it needs a justification."""
        facts = await self._facts(self.db, request_id)
        await self._may_view(actor, facts)
        return await self._copy_basis(facts.request)

    async def _copy_basis(self, request: AccessRequest) -> dict[int, str]:
        return matching.copy_basis(await self.repo.linked_numbers(self.db, request.id), request.requester_phone)

    async def prepare_export(self, actor: Actor, request_id: int, justification: str = "") -> AccessRequest:
        """The DPO prepares the copy; a second person confirms it before `export_copy` may write it.

        A conversation not tied to the requester by the §4.7 number match (any chat; a call from another
        or an unidentifiable number) needs the preparer's justification, and later the confirmer's.
        """
        request = (await self._allow(actor, "prepare_export", request_id)).request
        basis = await self._copy_basis(request)
        justification = clean_text(justification, "justification")
        unmatched = sorted(c for c, b in basis.items() if b == JUSTIFICATION)
        if unmatched and not justification:
            raise InvalidInput(
                N_(
                    "conversation {items} is not tied to the requester by the caller's number (§4.7): "
                    "record a justification"
                ),
                items=", ".join(map(str, unmatched)),
            )
        recorded = {str(k): v for k, v in basis.items()}
        async with self.db.write() as tx:
            _, new_state = await self._take(tx, "prepare_export", request_id)
            now = self._now()
            await self.repo.prepare(
                tx, request_id, _person_id(actor, "prepare_export"), now, json.dumps(recorded), justification or None
            )
            await self.repo.update(tx, request_id, now, state=new_state)
            await self.audit.append(
                tx,
                actor,
                "requests.export_prepare",
                target_kind="request",
                target_id=request_id,
                request_id=request_id,
                purpose=justification or None,
                details={"basis": recorded},
            )
        return await self._get(request_id)

    async def confirm_export(self, actor: Actor, request_id: int, justification: str = "") -> AccessRequest:
        """The second person (a designated employee or the director, never the preparer) confirms the copy."""
        await self._allow(actor, "confirm_export", request_id)
        approval = await self.repo.approval(request_id)
        justification = clean_text(justification, "justification")
        if approval["prepare_justification"] and not justification:
            raise InvalidInput(
                N_("the link to the requester rests on a justification: the second person records theirs too")
            )
        async with self.db.write() as tx:
            facts, new_state = await self._take(tx, "confirm_export", request_id)
            now = self._now()
            await self.repo.confirm(tx, request_id, _person_id(actor, "confirm_export"), now, justification or None)
            await self.repo.update(tx, request_id, now, state=new_state)
            await self.audit.append(
                tx,
                actor,
                "requests.export_confirm",
                target_kind="request",
                target_id=request_id,
                request_id=request_id,
                purpose=justification or None,
                details={"prepared_by": facts.prepared_by},
            )
        return await self._get(request_id)

    async def cancel_export(self, actor: Actor, request_id: int) -> AccessRequest:
        """Withdraw a prepared (or confirmed, not yet written) copy; the DPO or the second person may."""
        await self._allow(actor, "cancel_export", request_id)
        async with self.db.write() as tx:
            _, new_state = await self._take(tx, "cancel_export", request_id)
            await self.repo.cancel(tx, request_id)
            await self.repo.update(tx, request_id, self._now(), state=new_state)
            await self.audit.append(
                tx, actor, "requests.export_cancel", target_kind="request", target_id=request_id, request_id=request_id
            )
        return await self._get(request_id)

    async def _approval_record(self, request_id: int) -> CopyApproval | None:
        a = await self.repo.approval(request_id)
        if a is None:
            return None
        return CopyApproval(
            prepared_by=a["preparer"],
            prepared_at=from_iso(a["prepared_at"]),
            basis={int(k): v for k, v in json.loads(a["basis"]).items()},
            prepare_justification=a["prepare_justification"],
            confirmed_by=a["confirmer"],
            confirmed_at=_dt(a["confirmed_at"]),
            confirm_justification=a["confirm_justification"],
        )

    # -- letters ------------------------------------------------------------------------------------------

    async def _render(self, letter: L.Letter, actor: Actor, request: AccessRequest) -> RL.RenderedLetter:
        """The PDF/A-2b letter, signed by `actor` (name and title from their account), sealed when the office's
        seal is configured, with the audit chain head anchored and printed in its footer."""
        anchor = await self.audit.anchor("letter")
        letter = RL.signed(letter, request, await self.repo.signer(actor.staff_id), anchor.printed())
        pdf = await asyncio.to_thread(L.render, letter, self.seal)
        return RL.RenderedLetter(pdf=pdf, sealed_by=self.seal.subject if self.seal else None)

    async def _concerned(self, request_id: int) -> builtins.list[tuple[str, datetime]]:
        """The linked calls and chats as (channel, local start time), for the letters that name them."""
        return [
            (r["channel"], from_iso(r["created_at"]).astimezone(self.tz))
            for r in await self.repo.linked_times(request_id)
        ]

    def case_mark(self, request: AccessRequest) -> str:
        """The case mark printed on the request's letters (`CIM_CASE_MARK`, e.g. BOI-CIM.1510.7.2026)."""
        return case_mark(self.settings.case_mark, request.number)

    def _letter_common(self, request: AccessRequest) -> dict[str, Any]:
        return RL.common(self.settings, request, self.today())

    async def _store_letter(
        self, tx: aiosqlite.Connection, actor: Actor, request: AccessRequest, kind: str, rendered: RL.RenderedLetter
    ) -> None:
        """Write the PDF under the letters folder and list it with the request, in the caller's transaction."""
        relative = RL.relative_path(request.number, await self.repo.letter_count(tx, request.id), kind)
        path = self.settings.letters_dir / relative
        await asyncio.to_thread(RL.write_private, path, rendered.pdf)
        try:
            await self.repo.add_letter(
                tx,
                request.id,
                kind,
                relative,
                hashlib.sha256(rendered.pdf).hexdigest(),
                self._now(),
                actor.staff_id,
                rendered.sealed_by,
            )
            await self.audit.append(
                tx,
                actor,
                "requests.letter",
                target_kind="letter",
                target_id=relative,
                request_id=request.id,
                details={"kind": kind, "sealed": rendered.sealed_by is not None},
            )
        except BaseException:
            await asyncio.to_thread(path.unlink, True)
            raise
