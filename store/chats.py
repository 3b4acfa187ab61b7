"""Live chats (§1.5): opening on an accepted notice, the durable transcript, queue, accept/transfer/close, canned responses."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import secrets
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Iterable, TypeGuard

from .audit import AuditLog
from .clock import Clock, from_iso, to_iso
from .i18n import N_, current_language, translator
from .errors import (
    AtCapacity,
    ChatClosed,
    Conflict,
    ConversationNotFound,
    InvalidInput,
    MessageEmpty,
    MessageTooLong,
    NotFound,
    NotPermitted,
    ResumeInvalid,
    StaffNotFound,
    Text,
)
from .keys import DataKey, Keys
from .models import Actor
from .policy import Permission, allowed
from .settings import Settings

if TYPE_CHECKING:  # the service names the repository's type only; its SQL is the backend's (store/sqlite/)
    from .sqlite.chats import ChatsRepository
    from .sqlite.database import Transaction

log = logging.getLogger("cim.store")

#: Categories a consultant closes a chat with (reports count them).
CLOSE_CATEGORIES = (
    "information_given",  # the question was answered
    "referred",  # referred to a department, another office or a form
    "case_registered",  # a matter or request was registered for the resident
    "no_reply",  # the resident stopped answering
    "out_of_scope",  # not a matter for the city hall
    "abusive",  # closed for abusive or spam content
    "other",
)
#: At most this many chats the resident left without a category are listed to their consultant at a time
#: (`Chats.left_uncategorised_of`, the oldest first; the next come as these get their category).
LEFT_UNCATEGORISED_LIMIT = 100
LANGS = ("pl", "en")
#: System lines as residents read them (docs/PROTOCOL.md), by event code: (Polish, English). The widget keeps
#: the same texts; `{consultant}` is the consultant's display name (never a log-in name), `{version}` the
#: notice version. No category and no staff word is ever part of these. Gender-neutral Polish throughout.
SYSTEM_EVENTS: dict[str, tuple[str, str]] = {
    "notice_accepted": (
        "Zaakceptowano informację o przetwarzaniu danych osobowych (wersja {version}).",
        "You accepted the personal data notice (version {version}).",
    ),
    "queued": ("Rozmowa czeka w kolejce na konsultanta.", "The chat is waiting in the queue for a consultant."),
    "accepted": (
        "Połączono z konsultantem. Odpowiada: {consultant}.",
        "You are now connected with a consultant. Answering: {consultant}.",
    ),
    "transferred": (
        "Rozmowa została przekazana. Odpowiada teraz: {consultant}.",
        "The chat was handed over. Now answering: {consultant}.",
    ),
    "taken_over": (
        "Rozmowę kontynuuje inna osoba z zespołu konsultantów. Odpowiada teraz: {consultant}.",
        "The conversation continues with another consultant. Now answering: {consultant}.",
    ),
    "requeued": (
        "Osoba konsultująca jest teraz niedostępna; rozmowa wraca do kolejki.",
        "The consultant is not available now; the chat goes back to the queue.",
    ),
    "closed_by_consultant": ("Czat zakończony przez konsultanta.", "The consultant ended the chat."),
    "ended_by_resident": ("Czat zakończony.", "You ended the chat."),
    # the chat desk's routing (store/desk.py)
    "declined": (
        "Rozmowa zostanie przekazana innemu konsultantowi.",
        "The chat is being passed to another consultant.",
    ),
    "idle_warning": (
        "Czy nadal tu jesteś? Jeśli nic nie napiszesz, czat zostanie wkrótce zakończony.",
        "Are you still there? If you write nothing, the chat will end soon.",
    ),
    "closed_idle": ("Czat zakończony z powodu braku odpowiedzi.", "The chat ended because there was no reply."),
    "queue_timeout": (
        "Wszyscy konsultanci są teraz zajęci, więc czat został zakończony. Możesz zostawić wiadomość.",
        "All consultants are busy now, so the chat has ended. You can leave a message.",
    ),
}
#: The same lines when the consultant has neither a display name nor a full name.
SYSTEM_EVENTS_UNNAMED: dict[str, tuple[str, str]] = {
    "accepted": ("Połączono z konsultantem.", "You are now connected with a consultant."),
    "transferred": (
        "Rozmowa została przekazana innemu konsultantowi.",
        "The chat was handed over to another consultant.",
    ),
    "taken_over": (
        "Rozmowę kontynuuje inna osoba z zespołu konsultantów.",
        "The conversation continues with another consultant.",
    ),
}
#: A consultant with neither a display name nor a full name signs canned responses ({consultant}) as this.
DEFAULT_DISPLAY_NAME = {"pl": "Konsultant CIM", "en": "CIM consultant"}
MAX_DISPLAY_NAME = 60
MAX_CLIENT_MSG_ID = 100
#: Largest id SQLite can hold (INTEGER is a signed 64-bit number); a larger one is `invalid`, not a crash.
MAX_ID = 2**63 - 1
MAX_CANNED_TITLE = 200
#: C0 and C1 control characters and DEL, except tab and newline (a resident's text is kept as text).
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def clean_text(text: Any, max_length: int) -> str:
    """Validate and clean a chat message: control characters removed, everything else kept verbatim."""
    if not isinstance(text, str):
        raise InvalidInput(N_("the message must be text"))
    text = _CONTROL.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
    if not text.strip():
        raise MessageEmpty(N_("the message is empty"))
    if len(text) > max_length:
        raise MessageTooLong(N_("the message is longer than {max_length} characters"), max_length=max_length)
    _need_utf8(text, N_("the message"))
    return text


def _need_utf8(text: str, what: str) -> None:
    """Refuse text that cannot be stored: a lone surrogate (JSON's "\\ud800") has no UTF-8 encoding."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput(N_("{what} is not valid Unicode text (a lone surrogate)"), what=Text(what)) from None


#: System lines as staff read them (the TUI transcript, the archive), English source text of the staff catalogs
#: (store/locale/pl/tui_records.po): `{staff}` is the full name of the person on the line, `{consultant}` the
#: name the chat went to, `{category}` the close category in words (never its code).
STAFF_EVENTS: dict[str, str] = {
    "notice_accepted": N_("The resident accepted the personal data notice (version {version}, language {lang})."),
    "queued": N_("The chat is waiting in the queue."),
    "accepted": N_("Chat taken: {staff}."),
    "transferred": N_("Chat handed over: {staff} → {consultant}."),
    "requeued": N_("The consultant is not available; the chat goes back to the queue."),
    "closed_by_consultant": N_("Chat closed: {staff} (category: {category})."),
    "closed_by_consultant_uncategorised": N_("Chat closed: {staff}."),
    "ended_by_resident": N_("The resident ended the chat."),
    "taken_over": N_("Chat taken over: {staff} → {consultant}."),
    "declined": N_("Chat declined: {staff}; it goes to another consultant."),
    "idle_warning": N_("The resident was asked whether they are still there."),
    "closed_idle": N_("Chat closed: no reply from the resident."),
    "queue_timeout": N_("Chat closed: no consultant was free in time."),
}
#: The close categories in words, for staff (reports and transcripts show these, never the codes).
CLOSE_CATEGORY_LABELS: dict[str, str] = {
    "information_given": N_("information given"),
    "referred": N_("referred elsewhere"),
    "case_registered": N_("case registered"),
    "no_reply": N_("no reply from the resident"),
    "out_of_scope": N_("not a matter for the city hall"),
    "abusive": N_("abusive or spam"),
    "other": N_("other"),
}


def category_label(category: str | None, lang: str | None = None) -> str:
    """A close category in words in `lang` (default: the staff language); an unknown code as it is."""
    if not category:
        return ""
    label = CLOSE_CATEGORY_LABELS.get(category)
    return translator(lang or current_language()).gettext(label) if label else category


def render_event(
    event: str,
    params: dict[str, Any] | None,
    lang: str,
    *,
    staff: bool = False,
    staff_name: str | None = None,
    category: str | None = None,
) -> str:
    """A system line in `lang` (pl or en): as a resident reads it, or with `staff` as staff read it.

    For staff, `staff_name` names the person on the line (their full name; else the display name in the
    parameters, else "consultant") and `category` is the chat's close category code, shown in words."""
    values = {"version": "", **(params or {})}
    if staff:
        reader = translator(lang if lang in LANGS else current_language())
        who = staff_name or values.get("consultant") or reader.gettext("consultant")
        values = {
            "lang": "",
            "consultant": reader.gettext("consultant"),
            **values,
            "staff": who,
            "category": category_label(category, lang),
        }
        key = event
        if event == "closed_by_consultant" and not category:
            key = "closed_by_consultant_uncategorised"
        if key in STAFF_EVENTS:
            return reader.gettext(STAFF_EVENTS[key]).format(**values)
        # an event with no staff wording yet: the resident's line, in the staff member's language
        lang = "en" if lang == "en" else "pl"
        values = {"version": "", **(params or {})}
    unnamed = not values.get("consultant") and event in SYSTEM_EVENTS_UNNAMED
    polish, english = (SYSTEM_EVENTS_UNNAMED if unnamed else SYSTEM_EVENTS)[event]
    lang = lang if lang in LANGS else "pl"
    return (english if lang == "en" else polish).format(**values)


def stored_line(event: str, params: dict[str, Any] | None = None) -> str:
    """A system line's stored `text`: the Polish line residents read (render_event), with the display name and
    never a log-in name or a close category. The event and its parameters stay the source of truth; the text is
    the fallback for a reader that does not know the event."""
    return render_event(event, params, "pl")


#: Columns that mark a transcript line as staff-only (a supervisor's note); such a line is never in a copy.
_STAFF_ONLY_COLUMNS = ("staff_only", "internal", "is_note", "note", "whisper", "visibility")


def staff_only_line(m: Any) -> bool:
    """A line the resident never saw (never in the resident's copy nor the §4 copy): a non-system line with an
    event code, or one marked staff-only."""
    if m["sender"] not in ("resident", "consultant", "system"):
        return True
    if m["sender"] != "system" and m["event"] is not None:
        return True
    keys = m.keys()
    for column in _STAFF_ONLY_COLUMNS:
        if column in keys and m[column] not in (None, 0, "", "resident", "all", "public"):
            return True
    return False


def notice_accepted_line(version: Any, lang: str, suffix: str = "") -> str:
    """The stored `text` of a `notice_accepted` line: gender-neutral Polish, with the notice's version and
    language (§1.5); `suffix` adds a sentence (an offline message)."""
    return f"Zaakceptowano informację o przetwarzaniu danych osobowych (wersja {version}, język {lang}).{suffix}"


def display_name(display: str | None, full_name: str | None) -> str | None:
    """What residents call a consultant: the display name they set, else their full name's first word
    (None: the generic DEFAULT_DISPLAY_NAME of the reader's language). Never the log-in name."""
    if display and display.strip():
        return display.strip()
    first = (full_name or "").split()
    return first[0] if first else None


def clean_display_name(text: Any) -> str:
    """A display name as it may be stored: one line, runs of spaces made one, at most MAX_DISPLAY_NAME
    characters ('' is no display name: the default). Refused, never quietly cleaned, since residents read
    it: not text, a lone surrogate, control characters (a pasted escape sequence, a NUL, a line break) and
    the bidirectional overrides and isolates that would make it read other than it is stored (the cleaning
    of every request's free text, store/requests/text.py, decides which those are)."""
    if not isinstance(text, str):
        raise InvalidInput(N_("the display name must be text"))
    _need_utf8(text, N_("the display name"))
    if _CONTROL.search(text.replace("\r\n", " ").replace("\n", " ")):
        raise InvalidInput(N_("the display name has control characters"), refusal_reason="display_name_invalid")
    spaced = " ".join(text.split())
    # imported here: store.requests (its export renders chat lines) imports this module
    from .requests.text import clean_text as clean_field

    if clean_field(spaced, N_("display name"), limit=len(spaced), multiline=False) != spaced:
        raise InvalidInput(
            N_("the display name has characters that change the direction of the text"),
            refusal_reason="display_name_invalid",
        )
    if len(spaced) > MAX_DISPLAY_NAME:
        raise InvalidInput(
            N_("the display name is longer than {max_display_name} characters"),
            max_display_name=MAX_DISPLAY_NAME,
            refusal_reason="display_name_too_long",
        )
    return spaced


def fill_canned(text: str, *, consultant: str, day: date) -> str:
    """A canned response with its placeholders filled: `{consultant}` (the display name) and `{date}`
    (DD.MM.YYYY). Other braces stay as they are, so a text with no placeholders is never changed."""
    return text.replace("{consultant}", consultant).replace("{date}", day.strftime("%d.%m.%Y"))


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class ChatMessage:
    """One line of a transcript; `sender` is resident, consultant or system."""

    chat_id: int
    seq: int
    sender: str
    text: str
    at: datetime
    staff_id: int | None = None
    #: A system line's event code (SYSTEM_EVENTS) and parameters; None for older lines and for messages.
    event: str | None = None
    params: dict[str, Any] | None = None

    def as_payload(self, lang: str | None = None) -> dict[str, Any]:
        """The protocol's `message` payload; with `lang` (a resident reading) a system event's text is
        rendered in that language, otherwise `text` is the stored Polish line."""
        text = render_event(self.event, self.params, lang) if lang and self.event in SYSTEM_EVENTS else self.text
        payload: dict[str, Any] = {"seq": self.seq, "from": self.sender, "text": text, "at": to_iso(self.at)}
        if self.event is not None:
            payload["event"] = self.event
            payload["params"] = dict(self.params or {})
        return payload


@dataclass(frozen=True)
class Chat:
    id: int
    status: str  # queued / active / closed
    lang: str
    created_at: datetime
    consultant_id: int | None
    notice_id: int
    notice_accepted_at: datetime
    ended_at: datetime | None
    close_category: str | None
    topic_id: int | None = None  # the topic the resident picked (store/desk.py)


@dataclass(frozen=True)
class OpenedChat:
    """A chat just opened: the resident's only copy of the resume token, and the first system lines."""

    chat: Chat
    resume_token: str
    messages: tuple[ChatMessage, ...]


@dataclass(frozen=True)
class Posted:
    """A stored message; `new` is False when a repeated client_msg_id returned the first one."""

    message: ChatMessage
    new: bool


@dataclass(frozen=True)
class QueuedChat:
    chat_id: int
    lang: str
    waiting_since: datetime
    position: int
    topic_id: int | None = None


@dataclass(frozen=True)
class CannedResponse:
    id: int
    title: str
    text: str
    updated_at: datetime
    updated_by: int | None


def _chat(r: Any) -> Chat:
    return Chat(
        id=r["id"],
        status=r["status"],
        lang=r["lang"],
        created_at=from_iso(r["created_at"]),
        consultant_id=r["consultant_id"],
        notice_id=r["notice_id"],
        notice_accepted_at=from_iso(r["notice_accepted_at"]),
        ended_at=from_iso(r["ended_at"]) if r["ended_at"] else None,
        close_category=r["close_category"],
        topic_id=r["topic_id"] if "topic_id" in r.keys() else None,
    )


def _message(r: Any, text: str | None = None) -> ChatMessage:
    """A stored row as a message; `text` is the row's text opened (store/keys.py), else the row's own."""
    keys = r.keys()
    event = r["event"] if "event" in keys else None
    params = json.loads(r["params"]) if event is not None and r["params"] else None
    return ChatMessage(
        chat_id=r["conversation_id"],
        seq=r["seq"],
        sender=r["sender"],
        text=r["text"] if text is None else text,
        at=from_iso(r["at"]),
        staff_id=r["staff_id"],
        event=event,
        params=params,
    )


def _word_tokens(key: DataKey, lines: list[tuple[int, Any]]) -> set[bytes]:
    """The blind index tokens of a closing chat's resident lines, (seq, stored text) each: HMAC tokens of their
    words under the chat's data key (store/keys.py)."""
    from .keys import text_of

    tokens: set[bytes] = set()
    for seq, text in lines:
        tokens |= key.tokens(text_of(text, key, seq))
    return tokens


def _seal(key: DataKey | None, seq: int, text: str) -> str | bytes:
    return text if key is None else key.seal_text(seq, text)


def _open_text(row: Any, key: DataKey | None) -> str:
    from .keys import text_of

    return text_of(row["text"], key, row["seq"])


def _params(params: dict[str, Any]) -> str:
    return json.dumps(params, ensure_ascii=False, sort_keys=True)


@dataclass
class _Pending:
    chat_id: int
    sender: str
    staff_id: int | None
    text: str
    client_msg_id: str | None
    future: asyncio.Future


@dataclass
class _ChatState:
    """What the writer knows of a chat it is writing to: committed values only."""

    status: str
    next_seq: int
    consultant_id: int | None
    client_ids: dict[str, int]  # client_msg_id → seq
    #: The chat's unwrapped data key, held only while the chat is remembered here (forgotten on close).
    key: DataKey | None = None


@dataclass
class _BatchPlan:
    """One batch planned against copies: the remembered chat state changes only once the COMMIT succeeded."""

    now: datetime
    at: str  # `now` as stored
    results: list[Posted | Exception] = field(default_factory=list)
    next_seq: dict[int, int] = field(default_factory=dict)
    new_ids: dict[tuple[int, str], int] = field(default_factory=dict)
    repeats: list[tuple[int, int, int]] = field(default_factory=list)  # (index in results, chat id, seq)
    inserts: list[tuple] = field(default_factory=list)

    def take(self, item: _Pending, state: _ChatState | None) -> None:
        """The item's answer, in batch order: a refusal, a repeat (answered after the INSERT) or a new line."""
        if state is None:
            self.results.append(ConversationNotFound(f"no chat {item.chat_id}"))
        # the permission first: a repeated client_msg_id never answers someone else's chat
        elif item.sender == "consultant" and state.consultant_id != item.staff_id:
            self.results.append(NotPermitted("this chat is not assigned to you"))
        elif (seq := self._known_seq(item, state)) is not None:
            self.repeats.append((len(self.results), item.chat_id, seq))
            self.results.append(None)  # type: ignore[arg-type]  # filled in by _GroupCommit._answer_repeats
        elif state.status == "closed":
            self.results.append(ChatClosed("the chat has ended"))
        elif item.sender == "consultant" and state.status != "active":
            self.results.append(NotPermitted("this chat is not assigned to you"))
        else:
            self.results.append(self._insert(item, state))

    def _known_seq(self, item: _Pending, state: _ChatState) -> int | None:
        """The seq already given to this client_msg_id, committed before or earlier in this batch."""
        if item.client_msg_id is None:
            return None
        return state.client_ids.get(item.client_msg_id) or self.new_ids.get((item.chat_id, item.client_msg_id))

    def _insert(self, item: _Pending, state: _ChatState) -> Posted:
        seq = self.next_seq.get(item.chat_id, state.next_seq)
        self.next_seq[item.chat_id] = seq + 1
        if item.client_msg_id is not None:
            self.new_ids[(item.chat_id, item.client_msg_id)] = seq
        key = state.key
        # sealed at rest (store/keys.py); residents' words go into the blind index when the chat closes
        stored: str | bytes = item.text if key is None else key.seal_text(seq, item.text)
        self.inserts.append((item.chat_id, seq, item.sender, item.staff_id, stored, self.at, item.client_msg_id))
        return Posted(ChatMessage(item.chat_id, seq, item.sender, item.text, self.now, item.staff_id), new=True)


class LineRefused(Exception):
    """The database refused a batch's line (another writer took its sequence number): the batch is replayed."""


class _GroupCommit:
    """Batches message inserts from many coroutines into one write transaction.

    Each caller's future is resolved only after the COMMIT that holds its row, so nothing is
    acknowledged before it is durable; while one batch commits, the next one gathers.

    It remembers, per chat, the committed status, next sequence number and client_msg_ids, so a
    batch is one INSERT statement (next_seq follows by a trigger) instead of four statements. The
    memory is only a shortcut: every change of a chat's state in `Chats` forgets the chat, and the
    UNIQUE (conversation_id, seq) constraint catches another writer's line (the batch is then
    replayed once from the database). Chats are opened, accepted, transferred and closed only by
    the chat server's process (the TUI goes through /staff), so no other process changes a status.
    """

    MAX_REMEMBERED_CHATS = 10_000

    def __init__(self, repo: "ChatsRepository", clock: Clock, keys: Keys | None = None) -> None:
        self.repo = repo
        self.clock = clock
        self.keys = keys
        self._pending: list[_Pending] = []
        self._task: asyncio.Task | None = None
        self._chats: OrderedDict[int, _ChatState] = OrderedDict()

    def forget(self, chat_id: int) -> None:
        self._chats.pop(chat_id, None)

    async def submit(
        self, chat_id: int, sender: str, staff_id: int | None, text: str, client_msg_id: str | None
    ) -> Posted:
        future = asyncio.get_running_loop().create_future()
        self._pending.append(_Pending(chat_id, sender, staff_id, text, client_msg_id, future))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._drain())
        # shield: a cancelled caller (a dropped socket) must not cancel the others' commit
        return await asyncio.shield(future)

    async def _drain(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                try:
                    results = await self._write(batch)
                except LineRefused:
                    # something outside this writer changed one of these chats: trust the database
                    for item in batch:
                        self.forget(item.chat_id)
                    results = await self._write(batch)
            except Exception as exc:
                # the batch rolled back: one bad item must not fail the others, so each is written
                # alone and only the one(s) that still fail get the error
                for item in batch:
                    self.forget(item.chat_id)
                results = await self._write_each(batch) if len(batch) > 1 else [exc]
            except BaseException:  # cancelled (shutdown): every caller learns it
                for item in batch:
                    self.forget(item.chat_id)
                    if not item.future.done():
                        item.future.set_exception(RuntimeError("cancelled"))
                raise
            for item, result in zip(batch, results):
                if item.future.done():
                    continue
                if isinstance(result, Exception):
                    item.future.set_exception(result)
                else:
                    item.future.set_result(result)

    async def _write_each(self, batch: list[_Pending]) -> list[Posted | Exception]:
        """The items of a failed batch one transaction each (rare: only after a batch raised)."""
        results: list[Posted | Exception] = []
        for item in batch:
            try:
                results.extend(await self._write([item]))
            except Exception as exc:
                self.forget(item.chat_id)
                log.error("chat.message_failed chat_id=%s error=%s", item.chat_id, type(exc).__name__)
                results.append(exc)
        return results

    async def _load(self, tx: "Transaction", chat_ids: list[int]) -> None:
        states = {
            r["id"]: _ChatState(r["status"], r["next_seq"], r["consultant_id"], {})
            for r in await self.repo.chat_states(tx, chat_ids)
        }
        for r in await self.repo.client_msg_ids(tx, chat_ids):
            states[r["conversation_id"]].client_ids[r["client_msg_id"]] = r["seq"]
        if self.keys is not None and states:
            keys = await self.repo.data_keys(tx, self.keys, list(states), to_iso(self.clock()))
            for chat_id, key in keys.items():
                states[chat_id].key = key
        for chat_id, state in states.items():
            self._chats[chat_id] = state
        while len(self._chats) > self.MAX_REMEMBERED_CHATS:
            self._chats.popitem(last=False)

    async def _write(self, batch: list[_Pending]) -> list[Posted | Exception]:
        async with self.repo.transaction() as tx:
            missing = sorted({item.chat_id for item in batch} - self._chats.keys())
            if missing:
                await self._load(tx, missing)
            now = self.clock()
            plan = _BatchPlan(now, to_iso(now))
            for item in batch:
                plan.take(item, self._chats.get(item.chat_id))
            if plan.inserts:  # one statement; conversations.next_seq follows by a trigger
                await self.repo.insert_messages(tx, plan.inserts)
            await self._answer_repeats(tx, plan)
        self._remember(plan)
        return plan.results

    async def _answer_repeats(self, tx: "Transaction", plan: _BatchPlan) -> None:
        """A retry is answered with the stored original (rare): from this batch, else from the database."""
        results = plan.results
        for index, chat_id, seq in plan.repeats:
            stored = {
                r.message.seq: r for r in results[:index] if isinstance(r, Posted) and r.message.chat_id == chat_id
            }
            if seq in stored:
                results[index] = Posted(stored[seq].message, new=False)
                continue
            row = await self.repo.message(tx, chat_id, seq)
            state = self._chats.get(chat_id)
            text = _open_text(row, state.key if state else None)
            results[index] = Posted(_message(row, text), new=False)

    def _remember(self, plan: _BatchPlan) -> None:
        """The committed batch's sequence numbers and client_msg_ids, for the next batch."""
        for chat_id, seq in plan.next_seq.items():
            self._chats[chat_id].next_seq = seq
        for (chat_id, client_msg_id), seq in plan.new_ids.items():
            self._chats[chat_id].client_ids[client_msg_id] = seq


class Chats:
    """The chat channel's domain. Consultant operations take the consultant's Actor and check HANDLE_CHATS."""

    def __init__(
        self, repo: "ChatsRepository", audit: AuditLog, settings: Settings, clock: Clock, keys: Keys | None = None
    ) -> None:
        self.repo = repo
        self.audit = audit
        self.settings = settings
        self.clock = clock
        self.keys = keys
        self._group = _GroupCommit(repo, clock, keys)
        #: The desk's rule for the topic a resident picks (store/desk.py `Desk.check_topic`), wired by the Store.
        self.check_topic: Callable[[Any], Awaitable[int | None]] = _no_desk

    # ------------------------------------------------------------------ resident side

    async def open(self, notice_id: Any, lang: str = "pl", topic_id: Any = None) -> OpenedChat:
        """Open a chat for a resident who accepted notice `notice_id`: the acceptance is the first transcript line.
        `topic_id` is the topic picked (required once topics are offered: store/desk.py)."""
        if not is_id(notice_id):
            raise InvalidInput(N_("notice_id must be a number"))
        topic_id = await self.check_topic(topic_id)
        lang = lang if lang in LANGS else "pl"
        notice = await self.repo.notice(notice_id)
        if notice is None or notice["channel"] != "chat":
            raise InvalidInput(N_("unknown chat notice"))
        if notice["version"] != await self.repo.latest_chat_notice_version():
            raise InvalidInput(N_("this notice version is no longer current; read the current notice"))
        token = secrets.token_urlsafe(32)
        now = self.clock()
        purge_after = self.settings.retention_duration.after(now)
        # `text` is the Polish line residents read (stored_line), gender-neutral; every reader renders the event.
        # The acceptance keeps the notice's language in it too (§1.5: which notice, in which language)
        accepted_params = {"version": notice["version"], "lang": notice["lang"]}
        accepted = notice_accepted_line(notice["version"], notice["lang"])
        queued = stored_line("queued")
        at = to_iso(now)
        async with self.repo.transaction() as tx:
            chat_id = await self.repo.insert_chat(
                tx,
                created_at=at,
                purge_after=to_iso(purge_after),
                lang=lang,
                notice_id=notice_id,
                resume_token_hash=_token_hash(token),
                topic_id=topic_id,
            )
            key = await self._key(tx, chat_id)
            await self.repo.insert_system_lines(
                tx,
                [
                    (chat_id, 1, None, _seal(key, 1, accepted), at, "notice_accepted", _params(accepted_params)),
                    (chat_id, 2, None, _seal(key, 2, queued), at, "queued", _params({})),
                ],
            )
        chat = await self.get(chat_id)
        return OpenedChat(
            chat,
            token,
            (
                ChatMessage(chat_id, 1, "system", accepted, now, event="notice_accepted", params=accepted_params),
                ChatMessage(chat_id, 2, "system", queued, now, event="queued", params={}),
            ),
        )

    async def record_decline(self) -> None:
        """Count a declined notice for today (office time zone); nothing about the resident is stored."""
        from zoneinfo import ZoneInfo

        day = self.clock().astimezone(ZoneInfo(self.settings.timezone)).date().isoformat()
        async with self.repo.transaction() as tx:
            await self.repo.count_decline(tx, day)

    async def declined_count(self, day: date) -> int:
        return await self.repo.declined_count(day.isoformat())

    async def resume(self, token: Any) -> Chat:
        """The chat behind a resume token: open, or closed less than chat_resume_minutes ago."""
        if not isinstance(token, str) or not 20 <= len(token) <= 100 or not token.isascii():  # URL-safe text
            raise ResumeInvalid(N_("the resume token is not valid"))
        row = await self.repo.chat_by_token(_token_hash(token))
        if row is None:
            raise ResumeInvalid(N_("the resume token is not valid"))
        chat = _chat(row)
        grace = timedelta(minutes=self.settings.chat_resume_minutes)
        if chat.status == "closed" and chat.ended_at is not None and self.clock() >= chat.ended_at + grace:
            raise ResumeInvalid(N_("the chat ended and can no longer be resumed"))
        return chat

    async def post_resident(self, chat_id: int, text: Any, client_msg_id: Any = None) -> Posted:
        """Store a resident's message; returns only after it is committed."""
        text = clean_text(text, self.settings.max_message_length)
        return await self._group.submit(chat_id, "resident", None, text, _client_msg_id(client_msg_id))

    async def end_by_resident(self, chat_id: int) -> tuple[Chat, ChatMessage | None]:
        """The resident left. Returns the chat and the system line, or None if it was already closed."""
        chat = await self.get(chat_id)
        if chat.status == "closed":
            return chat, None
        message = await self._close(
            chat_id, None, stored_line("ended_by_resident"), actor=None, event="ended_by_resident"
        )
        return await self.get(chat_id), message

    # ------------------------------------------------------------------ reading

    async def get(self, chat_id: int) -> Chat:
        row = await self.repo.chat(chat_id)
        if row is None:
            raise ConversationNotFound(N_("no chat {chat_id}"), chat_id=chat_id)
        return _chat(row)

    async def timed_out_in_queue(self, chat_id: int) -> bool:
        """Whether the chat was closed by the queue's time limit (nobody free could answer it in time)."""
        return await self.repo.has_line(chat_id, "queue_timeout")

    async def history(self, chat_id: int) -> list[ChatMessage]:
        """The transcript so far, for the resident of the chat (after a resume) and the live handling."""
        rows = await self.repo.messages(chat_id)
        if self.keys is None:
            return [_message(r) for r in rows]
        texts = await self.keys.texts(chat_id, rows)
        return [_message(r, t) for r, t in zip(rows, texts)]

    async def queue(self, limit: int | None = None) -> list[QueuedChat]:
        """The queued chats in order (re-queued ones first, store/desk.py); `limit`: only the front ones."""
        rows = await self.repo.queued(limit)
        return [
            QueuedChat(r["id"], r["lang"], from_iso(r["created_at"]), i + 1, r["topic_id"]) for i, r in enumerate(rows)
        ]

    async def queue_position(self, chat_id: int) -> int | None:
        """A queued chat's place in `queue()` (1 at the front), or None when it is not queued: counted by SQLite
        over the queue's index, without reading the queue."""
        return await self.repo.queue_position(chat_id)

    async def open_chats_of(self, actor: Actor) -> list[Chat]:
        """The consultant's active chats (to restore after a reconnect)."""
        await self.audit.guard(actor, Permission.HANDLE_CHATS, "chat.list")
        return [_chat(r) for r in await self.repo.active_chats_of(actor.staff_id)]

    async def left_uncategorised_of(self, actor: Actor) -> list[Chat]:
        """The consultant's chats the resident ended that still have no close category (issue 16: none stays
        uncategorised), the oldest first, at most LEFT_UNCATEGORISED_LIMIT: listed at every (re)connect with
        the open chats until `close` gives each its category."""
        await self.audit.guard(actor, Permission.HANDLE_CHATS, "chat.list")
        return [_chat(r) for r in await self.repo.left_uncategorised_of(actor.staff_id, LEFT_UNCATEGORISED_LIMIT)]

    async def history_for(self, actor: Actor, chat_id: int) -> list[ChatMessage]:
        """The transcript of a chat assigned to the consultant."""
        await self.audit.guard(
            actor, Permission.HANDLE_CHATS, "chat.read", target_kind="conversation", target_id=chat_id
        )
        chat = await self.get(chat_id)
        if chat.consultant_id != actor.staff_id or chat.status == "queued":
            await self.refuse_unassigned(actor, "chat.read", chat_id)
        return await self.history(chat_id)

    async def refuse_unassigned(self, actor: Actor, action: str, chat_id: int) -> None:
        """Audit an attempt on a colleague's (or nobody's) chat like a refused permission, then raise NotPermitted."""
        await self.audit.record(
            actor,
            action,
            outcome="refused",
            target_kind="conversation",
            target_id=chat_id,
            details={"reason": "not_assigned"},
        )
        raise NotPermitted(N_("this chat is not assigned to you"))

    # ------------------------------------------------------------------ consultant side

    async def accept(self, actor: Actor, chat_id: int, *, assigned: bool = False) -> tuple[Chat, ChatMessage]:
        """Take a queued chat. Of two consultants accepting at once exactly one wins; the other gets Conflict.
        A consultant at their maximum of concurrent chats gets AtCapacity; `assigned`: the chat server gave it
        (auto mode, store/desk.py), audited as its act."""
        await self.audit.guard(
            actor, Permission.HANDLE_CHATS, "chat.accept", target_kind="conversation", target_id=chat_id
        )
        _need_person(actor)
        now = self.clock()
        params = {"consultant": await self.display_name_of(actor.staff_id)}
        text = stored_line("accepted", params)
        async with self.repo.transaction() as tx:
            row = await self.repo.chat_position(tx, chat_id)
            if row is None:
                raise ConversationNotFound(N_("no chat {chat_id}"), chat_id=chat_id)
            if row["status"] == "closed":
                raise ChatClosed(N_("the chat has ended"))
            if row["status"] != "queued":
                raise Conflict(N_("another consultant has already taken this chat"))
            await self._check_capacity(tx, actor)
            seq = row["next_seq"]
            await self.repo.mark_accepted(tx, chat_id, actor.staff_id, seq + 1)
            await self.repo.insert_system_line(
                tx,
                chat_id,
                seq,
                actor.staff_id,
                _seal(await self._key(tx, chat_id), seq, text),
                to_iso(now),
                "accepted",
                _params(params),
            )
            if assigned:
                await self.audit.append(
                    tx,
                    Actor.system("chat-server"),
                    "chat.assign",
                    target_kind="conversation",
                    target_id=chat_id,
                    details={"to_staff_id": actor.staff_id},
                )
            else:
                await self.audit.append(tx, actor, "chat.accept", target_kind="conversation", target_id=chat_id)
        self._group.forget(chat_id)
        return await self.get(chat_id), ChatMessage(
            chat_id, seq, "system", text, now, actor.staff_id, event="accepted", params=params
        )

    async def _check_capacity(self, tx: "Transaction", actor: Actor) -> None:
        row = await self.repo.consultant_load(tx, actor.staff_id)
        limit = row["max_chats"] or self.settings.chat_max_concurrent
        if row["n"] >= limit:
            raise AtCapacity(N_("you already handle {n} chats, your maximum at once"), n=row["n"])

    async def post_consultant(self, actor: Actor, chat_id: int, text: Any, client_msg_id: Any = None) -> Posted:
        """Store the assigned consultant's message; returns only after it is committed."""
        await self.audit.guard(
            actor, Permission.HANDLE_CHATS, "chat.send", target_kind="conversation", target_id=chat_id
        )
        _need_person(actor)
        text = clean_text(text, self.settings.max_message_length)
        try:
            return await self._group.submit(chat_id, "consultant", actor.staff_id, text, _client_msg_id(client_msg_id))
        except NotPermitted:
            await self.refuse_unassigned(actor, "chat.send", chat_id)
            raise

    async def transfer(self, actor: Actor, chat_id: int, to: Actor) -> tuple[Chat, ChatMessage]:
        """Hand an active chat to another consultant (who must be entitled to handle chats)."""
        await self.audit.guard(
            actor, Permission.HANDLE_CHATS, "chat.transfer", target_kind="conversation", target_id=chat_id
        )
        _need_person(actor)
        if to.is_system or not allowed(to, Permission.HANDLE_CHATS):
            raise InvalidInput(N_("{name} does not handle chats"), name=to.name)
        now = self.clock()
        params = {"consultant": await self.display_name_of(to.staff_id)}
        text = stored_line("transferred", params)
        try:
            async with self.repo.transaction() as tx:
                row = await self._assigned_row(tx, actor, chat_id)
                if to.staff_id == actor.staff_id:
                    raise InvalidInput(N_("the chat is already yours"))
                seq = row["next_seq"]
                await self.repo.reassign(tx, chat_id, to.staff_id, seq + 1)
                await self.repo.insert_system_line(
                    tx,
                    chat_id,
                    seq,
                    actor.staff_id,
                    _seal(await self._key(tx, chat_id), seq, text),
                    to_iso(now),
                    "transferred",
                    _params(params),
                )
                await self.audit.append(
                    tx,
                    actor,
                    "chat.transfer",
                    target_kind="conversation",
                    target_id=chat_id,
                    details={"to_staff_id": to.staff_id},
                )
        except NotPermitted:  # rolled back; the refusal is audited in a transaction of its own
            await self.refuse_unassigned(actor, "chat.transfer", chat_id)
        self._group.forget(chat_id)
        return await self.get(chat_id), ChatMessage(
            chat_id, seq, "system", text, now, actor.staff_id, event="transferred", params=params
        )

    async def take_over(self, actor: Actor, chat_id: int) -> tuple[Chat, ChatMessage, int]:
        """A supervisor (§3) takes an active chat over from its consultant; returns the chat, the system line
        and the consultant who lost it. Needs SUPERVISE_CHATS and HANDLE_CHATS (the supervisor then handles
        the chat); a refusal is audited. The take-over succeeds only if the chat is still answered by the
        consultant read at the start of the call (a compare-and-swap on the handler): of two supervisors
        taking over at once exactly one wins and the other gets Conflict (`already_taken`), while a later
        take-over (another supervisor's, from the one who took it) succeeds like the first."""
        await self.audit.guard(
            actor, Permission.SUPERVISE_CHATS, "chat.take_over", target_kind="conversation", target_id=chat_id
        )
        await self.audit.guard(
            actor, Permission.HANDLE_CHATS, "chat.take_over", target_kind="conversation", target_id=chat_id
        )
        _need_person(actor)
        seen = await self.repo.chat(chat_id)  # who answers it as the call starts: the swap's expected value
        now = self.clock()
        params = {"consultant": await self.display_name_of(actor.staff_id)}
        text = stored_line("taken_over", params)
        async with self.repo.transaction() as tx:
            row = await self.repo.take_over_position(tx, chat_id)
            if row is None:
                raise ConversationNotFound(N_("no chat {chat_id}"), chat_id=chat_id)
            if row["status"] == "closed":
                raise ChatClosed(N_("the chat has ended"))
            if row["status"] != "active" or row["consultant_id"] is None:
                raise InvalidInput(
                    N_("only a chat a consultant is answering can be taken over; accept it from the queue"),
                    refusal_reason="not_answered",
                )
            if row["consultant_id"] == actor.staff_id:
                raise InvalidInput(N_("the chat is already yours"), refusal_reason="own_chat")
            seq, previous = row["next_seq"], row["consultant_id"]
            expected = None if seen is None else seen["consultant_id"]
            if expected is None or not await self.repo.take_over(tx, chat_id, actor.staff_id, seq + 1, expected):
                # another supervisor took it over (or it was transferred) since this call began
                raise Conflict(N_("the chat has just passed to someone else; look at it again before taking it over"))
            await self.repo.insert_system_line(
                tx,
                chat_id,
                seq,
                actor.staff_id,
                _seal(await self._key(tx, chat_id), seq, text),
                to_iso(now),
                "taken_over",
                _params(params),
            )
            await self.audit.append(
                tx,
                actor,
                "chat.take_over",
                target_kind="conversation",
                target_id=chat_id,
                details={"from_staff_id": previous},
            )
        self._group.forget(chat_id)
        return (
            await self.get(chat_id),
            ChatMessage(chat_id, seq, "system", text, now, actor.staff_id, event="taken_over", params=params),
            previous,
        )

    async def close(self, actor: Actor, chat_id: int, category: Any) -> tuple[Chat, ChatMessage | None]:
        """Close the consultant's chat with a category; a chat the resident already left only gets its category."""
        await self.audit.guard(
            actor, Permission.HANDLE_CHATS, "chat.close", target_kind="conversation", target_id=chat_id
        )
        _need_person(actor)
        if category not in CLOSE_CATEGORIES:
            raise InvalidInput(
                N_("the category must be one of: {choices}"),
                choices=", ".join(CLOSE_CATEGORIES),
                refusal_reason="category_invalid",
            )
        chat = await self.get(chat_id)
        if chat.consultant_id != actor.staff_id:
            await self.refuse_unassigned(actor, "chat.close", chat_id)
        if chat.status == "closed":
            if chat.close_category is not None:
                raise ChatClosed(N_("the chat is already closed"))
            async with self.repo.transaction() as tx:
                if not await self.repo.set_close_category(tx, chat_id, category):
                    raise ChatClosed(N_("the chat is already closed"))
                await self.audit.append(
                    tx,
                    actor,
                    "chat.close",
                    target_kind="conversation",
                    target_id=chat_id,
                    details={"category": category, "after_resident_left": True},
                )
            return await self.get(chat_id), None
        try:
            message = await self._close(
                chat_id,
                category,
                stored_line("closed_by_consultant"),  # the category is the chat's, never in the line
                actor=actor,
                event="closed_by_consultant",
            )
        except NotPermitted:  # transferred away or returned to the queue a moment ago
            await self.refuse_unassigned(actor, "chat.close", chat_id)
        return await self.get(chat_id), message

    async def consultants_holding_chats(self) -> set[int]:
        """Staff ids with at least one active chat (the chat server checks that someone can still answer)."""
        return await self.repo.consultants_holding_chats()

    async def return_to_queue(self, staff_id: int, reason: str) -> list[tuple[Chat, ChatMessage]]:
        """A consultant's session ended (disabled, signed out, expired, role removed): each active chat of
        theirs goes back to the front of the queue, with a system line for the resident."""
        now = self.clock()
        returned: list[tuple[int, ChatMessage]] = []
        async with self.repo.transaction() as tx:
            for row in await self.repo.active_chats_for_requeue(tx, staff_id):
                chat_id, seq = row["id"], row["next_seq"]
                text = stored_line("requeued")
                await self.repo.requeue(tx, chat_id, seq + 1, to_iso(now))
                await self.repo.insert_system_line(
                    tx, chat_id, seq, None, _seal(await self._key(tx, chat_id), seq, text), to_iso(now), "requeued"
                )
                await self.audit.append(
                    tx,
                    Actor.system("chat-server"),
                    "chat.requeue",
                    target_kind="conversation",
                    target_id=chat_id,
                    details={"from_staff_id": staff_id, "reason": reason},
                )
                returned.append((chat_id, ChatMessage(chat_id, seq, "system", text, now, event="requeued", params={})))
        for chat_id, _ in returned:
            self._group.forget(chat_id)
        return [(await self.get(chat_id), message) for chat_id, message in returned]

    async def _close(
        self, chat_id: int, category: str | None, text: str, *, actor: Actor | None, event: str
    ) -> ChatMessage:
        now = self.clock()
        async with self.repo.transaction() as tx:
            row = await self.repo.conversation_position(tx, chat_id)
            if row is None:
                raise ConversationNotFound(N_("no chat {chat_id}"), chat_id=chat_id)
            if row["status"] == "closed":
                raise ChatClosed(N_("the chat has already ended"))
            if actor is not None and row["consultant_id"] != actor.staff_id:
                raise NotPermitted(N_("this chat is not assigned to you"))
            seq = row["next_seq"]
            await self.repo.mark_closed(tx, chat_id, to_iso(now), category, seq + 1)
            # the event has no parameters: the close category is never shown to the resident
            key = await self._key(tx, chat_id)
            await self.repo.insert_system_line(
                tx, chat_id, seq, actor.staff_id if actor else None, _seal(key, seq, text), to_iso(now), event
            )
            if key is not None:  # the blind index of the residents' words, once, off the relay's path
                sealed_with = key
                await self.repo.index_resident_words(tx, chat_id, lambda lines: _word_tokens(sealed_with, lines))
            if actor is not None:
                await self.audit.append(
                    tx,
                    actor,
                    "chat.close",
                    target_kind="conversation",
                    target_id=chat_id,
                    details={"category": category},
                )
        self._group.forget(chat_id)
        return ChatMessage(chat_id, seq, "system", text, now, actor.staff_id if actor else None, event=event, params={})

    async def _key(self, tx: Any, chat_id: int) -> DataKey | None:
        """The chat's data key inside a write transaction `tx` (a unit of work of the repository, or the
        connection `Database.write()` yields, as store/desk.py still passes): the group commit's while it
        holds one, else unwrapped (or, for a chat that never had one, created) now."""
        state = self._group._chats.get(chat_id)
        if state is not None and state.key is not None:
            return state.key
        if self.keys is None:
            return None
        return await self.repo.data_key(tx, self.keys, chat_id, to_iso(self.clock()))

    async def _assigned_row(self, tx: "Transaction", actor: Actor, chat_id: int) -> Any:
        row = await self.repo.chat_position(tx, chat_id)
        if row is None:
            raise ConversationNotFound(N_("no chat {chat_id}"), chat_id=chat_id)
        if row["status"] == "closed":
            raise ChatClosed(N_("the chat has ended"))
        if row["status"] != "active" or row["consultant_id"] != actor.staff_id:
            raise NotPermitted(N_("this chat is not assigned to you"))
        return row

    async def display_name_of(self, staff_id: int | None) -> str | None:
        """The name residents see for a consultant (see `display_name`); None: the generic one."""
        row = await self.repo.staff_names(staff_id)
        return display_name(row["display_name"], row["full_name"]) if row else None

    async def staff_on_lines(self, messages: Iterable[ChatMessage]) -> dict[int, dict[str, Any]]:
        """For staff only: who each system line is by, by staff id: `{"staff_id", "login", "full_name",
        "display_name"}` (docs/PROTOCOL.md `staff`). Never for a resident's payload."""
        ids = sorted({m.staff_id for m in messages if m.sender == "system" and m.staff_id is not None})
        return {
            r["id"]: {
                "staff_id": r["id"],
                "login": r["name"],
                "full_name": (r["full_name"] or "").strip(),
                "display_name": display_name(r["display_name"], r["full_name"]) or "",
            }
            for r in await self.repo.staff_of(ids)
        }

    async def set_display_name(self, actor: Actor, name: str, text: Any) -> str | None:
        """Set (or with an empty text clear) the name residents see for account `name`."""
        await self.audit.guard(actor, Permission.MANAGE_ACCOUNTS, "staff.display_name")
        text = clean_display_name(text)
        async with self.repo.transaction() as tx:
            staff_id = await self.repo.staff_id_by_name(tx, name.strip())
            if staff_id is None:
                raise StaffNotFound(N_("no user named {name!r}"), name=name)
            await self.repo.set_display_name(tx, staff_id, text or None)
            await self.audit.append(
                tx,
                actor,
                "staff.display_name",
                target_kind="staff",
                target_id=staff_id,
                details={"display_name": text or None},
            )
        return text or None

    # ------------------------------------------------------------------ canned responses

    async def canned_filled(self, actor: Actor) -> list[CannedResponse]:
        """The canned responses as the consultant inserts them: placeholders filled (`fill_canned`) with
        their display name and today's date in the office's time zone."""
        from zoneinfo import ZoneInfo

        responses = await self.canned(actor)
        consultant = await self.display_name_of(actor.staff_id) or DEFAULT_DISPLAY_NAME["pl"]
        today = self.clock().astimezone(ZoneInfo(self.settings.timezone)).date()
        return [
            CannedResponse(
                c.id, c.title, fill_canned(c.text, consultant=consultant, day=today), c.updated_at, c.updated_by
            )
            for c in responses
        ]

    async def canned(self, actor: Actor) -> list[CannedResponse]:
        """Every canned response: for consultants to insert, and for the CIM manager (who handles no chats) to manage."""
        permission = Permission.MANAGE_CANNED if allowed(actor, Permission.MANAGE_CANNED) else Permission.HANDLE_CHATS
        await self.audit.guard(actor, permission, "canned.list")
        return [_canned(r) for r in await self.repo.canned()]

    async def add_canned(self, actor: Actor, title: str, text: str) -> CannedResponse:
        await self.audit.guard(actor, Permission.MANAGE_CANNED, "canned.add")
        title, text = _canned_fields(title, text, self.settings.max_message_length)
        async with self.repo.transaction() as tx:
            canned_id = await self.repo.insert_canned(tx, title, text, to_iso(self.clock()), actor.staff_id)
            await self.audit.append(tx, actor, "canned.add", target_kind="canned", target_id=canned_id)
        return await self._canned_by_id(canned_id)

    async def update_canned(self, actor: Actor, canned_id: int, title: str, text: str) -> CannedResponse:
        await self.audit.guard(
            actor, Permission.MANAGE_CANNED, "canned.update", target_kind="canned", target_id=canned_id
        )
        title, text = _canned_fields(title, text, self.settings.max_message_length)
        async with self.repo.transaction() as tx:
            if not await self.repo.update_canned(tx, canned_id, title, text, to_iso(self.clock()), actor.staff_id):
                raise NotFound(N_("no canned response {canned_id}"), canned_id=canned_id)
            await self.audit.append(tx, actor, "canned.update", target_kind="canned", target_id=canned_id)
        return await self._canned_by_id(canned_id)

    async def delete_canned(self, actor: Actor, canned_id: int) -> None:
        await self.audit.guard(
            actor, Permission.MANAGE_CANNED, "canned.delete", target_kind="canned", target_id=canned_id
        )
        async with self.repo.transaction() as tx:
            if not await self.repo.delete_canned(tx, canned_id):
                raise NotFound(N_("no canned response {canned_id}"), canned_id=canned_id)
            await self.audit.append(tx, actor, "canned.delete", target_kind="canned", target_id=canned_id)

    async def _canned_by_id(self, canned_id: int) -> CannedResponse:
        row = await self.repo.canned_by_id(canned_id)
        if row is None:
            raise NotFound(N_("no canned response {canned_id}"), canned_id=canned_id)
        return _canned(row)


def _canned(r: Any) -> CannedResponse:
    return CannedResponse(r["id"], r["title"], r["text"], from_iso(r["updated_at"]), r["updated_by"])


def _canned_fields(title: Any, text: Any, max_length: int) -> tuple[str, str]:
    if not isinstance(title, str) or not title.strip():
        raise InvalidInput(N_("a canned response needs a title"))
    if len(title) > MAX_CANNED_TITLE:
        raise InvalidInput(
            N_("the title is longer than {max_canned_title} characters"), max_canned_title=MAX_CANNED_TITLE
        )
    return title.strip(), clean_text(text, max_length)


def _client_msg_id(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not 0 < len(value) <= MAX_CLIENT_MSG_ID:
        raise InvalidInput(
            N_("client_msg_id must be text of 1 to {max_client_msg_id} characters"), max_client_msg_id=MAX_CLIENT_MSG_ID
        )
    _need_utf8(value, N_("client_msg_id"))
    return value


def is_id(value: Any) -> TypeGuard[int]:
    """A positive whole number SQLite can hold (not a bool, not 2**63)."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_ID


async def _no_desk(topic_id: Any) -> int | None:
    raise RuntimeError("Chats.check_topic is not wired to the desk (store/__init__.py wires it)")


def _need_person(actor: Actor) -> None:
    """Live chats are handled by a signed-in person; the host's service account has no seat in the queue."""
    if actor.is_system or actor.staff_id is None:
        raise NotPermitted(N_("chats are handled by a signed-in consultant"))
