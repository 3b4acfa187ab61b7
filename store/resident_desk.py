"""The resident's side of the desk (issue 17): offline messages, the receipt and copy of a chat, satisfaction.

- An offline message is a conversation like a chat (channel `chat`, status `offline_message`): the accepted
  notice and the resident's text are its transcript lines, their name and contact sit in `offline_messages`;
  it has the same `purge_after`, holds and purge as any chat. Recording the answer (who, when, how) closes it.
- The receipt: at the end of a chat the resident gets a reference (`CZ-2026-12-01-4F7K`) and a secret shown
  once; only an HMAC-SHA256 of the secret (80 random bits; key in store_keys) is kept with the chat. A §4
  request carrying a valid pair proves that the requester took part in the chat (§4.1) and is linked to it.
- Satisfaction: a 1–5 rating and an optional comment in `chat_ratings`, apart from the conversation. While the
  chat exists the row names it (one rating per chat); the chat's purge clears that link and the comment
  (a trigger of migration 1300), so the figure survives §6 with only the office day, consultant and topic.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from .audit import AuditLog
from .chats import (
    _CONTROL,
    LANGS,
    SYSTEM_EVENTS,
    _need_utf8,
    _seal,
    _token_hash,
    clean_text,
    is_id,
    notice_accepted_line,
    render_event,
    staff_only_line,
)
from .clock import Clock, from_iso, to_iso
from .errors import ChatClosed, CimError, ConversationNotFound, InvalidInput, MessageTooLong, NotPermitted
from .i18n import N_
from .keys import DELETED_MARK, text_of
from .models import Actor
from .phone import normalise_number
from .policy import Permission
from .settings import Settings

if TYPE_CHECKING:  # the service names the repository's type only; its SQL is the backend's (store/sqlite/)
    from .sqlite.database import Transaction
    from .sqlite.resident_desk import ResidentDeskRepository

#: The "line numbers" (associated data) an offline message's name, contact and answer note are sealed under,
#: apart from its transcript lines (1, 2, ...) and a rating's comment (0).
NAME_LINE, CONTACT_LINE, NOTE_LINE = -1, -2, -3
#: Answers an offline message can be given (the office records how it answered).
ANSWER_METHODS = ("phone", "email", "letter")
MAX_NAME = 200
MAX_CONTACT = 200
MAX_COMMENT = 1000
MAX_ANSWER_NOTE = 1000
#: Crockford's base32 without I, L, O, U: nothing to misread when a resident copies it onto a form.
_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_REFERENCE = re.compile(r"^CZ-\d{4}-\d{2}-\d{2}-[0-9A-HJKMNP-TV-Z]{4}$")
#: 16 symbols of 5 bits: an 80-bit secret, which an HMAC protects even if the database leaks.
SECRET_SYMBOLS = 16
#: Wrong secrets tolerated per reference (and per staff member) in RECEIPT_WINDOW before further tries wait.
RECEIPT_TRIES = 5
RECEIPT_WINDOW = timedelta(hours=1)
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
#: How long after its end a chat's copy can still be fetched with the chat's resume token.
COPY_HOURS = 24

# the resident's copy of the transcript: who said what, in the resident's language
_COPY_TEXTS = {
    "pl": {
        "title": "Zapis czatu z Centrum Informacji Mieszkańców",
        "reference": "Numer czatu",
        "date": "Data",
        "resident": "Ty",
        "consultant": "Konsultant",
        "system": "Informacja",
        "footer": (
            "To jest kopia rozmowy dla Ciebie. Zachowaj numer czatu i kod: są potrzebne, gdy "
            "zechcesz złożyć wniosek o odczytanie zapisu czatu (§ 4 zarządzenia nr 308/18)."
        ),
    },
    "en": {
        "title": "Chat transcript, Resident Information Centre",
        "reference": "Chat reference",
        "date": "Date",
        "resident": "You",
        "consultant": "Consultant",
        "system": "Notice",
        "footer": (
            "This is your copy of the conversation. Keep the chat reference and code: you need them "
            "to request the reading of the chat record (§ 4 of ordinance 308/18)."
        ),
    },
}


class RecordConflict(Exception):
    """A write the records refused (a receipt reference drawn twice, a second rating of a chat): raised by
    the repository (store/sqlite/resident_desk.py) after rolling the unit of work back, and always handled
    here (drawn again, or refused in words), so it is never shown to anyone."""


class ReceiptRefused(CimError):
    """A reference/secret pair that does not match, or too many wrong tries."""

    code = "receipt_refused"


@dataclass(frozen=True)
class Receipt:
    reference: str
    secret: str  # shown once; never stored


@dataclass(frozen=True)
class OfflineMessage:
    conversation_id: int
    reference: str
    created_at: datetime
    lang: str
    name: str | None
    contact: str
    contact_kind: str
    text: str
    answered_at: datetime | None
    answered_by: str | None
    answered_how: str | None
    answer_note: str | None

    @property
    def answered(self) -> bool:
        return self.answered_at is not None


@dataclass(frozen=True)
class RatingFigures:
    """Ratings of a group (a consultant, a topic): how many, the mean, and the count of each mark 1..5."""

    key: str
    count: int
    average: float | None
    marks: tuple[int, int, int, int, int]


def new_reference(day: datetime) -> str:
    return f"CZ-{day:%Y-%m-%d}-" + "".join(secrets.choice(_ALPHABET) for _ in range(4))


def new_secret() -> str:
    raw = "".join(secrets.choice(_ALPHABET) for _ in range(SECRET_SYMBOLS))
    return "-".join(raw[i : i + 4] for i in range(0, SECRET_SYMBOLS, 4))


def normalise_secret(value: Any) -> str:
    """A secret as typed from paper: case, spaces and dashes do not matter; O→0, I/L→1 (Crockford)."""
    if not isinstance(value, str):
        return ""
    text = re.sub(r"[\s-]+", "", value).upper().translate(str.maketrans("OIL", "011"))
    return text if len(text) == SECRET_SYMBOLS and all(c in _ALPHABET for c in text) else ""


def normalise_reference(value: Any) -> str:
    if not isinstance(value, str):
        return ""
    text = re.sub(r"\s+", "", value).upper()
    return text if _REFERENCE.match(text) else ""


def clean_contact(value: Any) -> tuple[str, str]:
    """(contact, kind) of an offline message's e-mail address or phone number; InvalidInput otherwise.

    Each refusal carries its `reason` (webchat/protocol.py REFUSAL_REASONS): the resident's widget shows its own
    words for it (webchat/static/cim-widget.js), never this sentence."""
    if value is None or (isinstance(value, str) and not value.strip()):
        raise InvalidInput(
            "a contact (an e-mail address or a phone number) is required", refusal_reason="contact_missing"
        )
    if not isinstance(value, str):
        raise InvalidInput("the contact must be text", refusal_reason="contact_invalid")
    value = value.strip()
    if len(value) > MAX_CONTACT:
        raise MessageTooLong(f"the contact is longer than {MAX_CONTACT} characters", refusal_reason="contact_too_long")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput(
            "the contact is not valid Unicode text (a lone surrogate)", refusal_reason="contact_invalid"
        ) from None
    if _CONTROL.search(value):
        raise InvalidInput("the contact has control characters", refusal_reason="contact_invalid")
    if "@" in value:
        if not _EMAIL.match(value):
            raise InvalidInput(
                "the contact is not an e-mail address (name@domain) or a phone number", refusal_reason="contact_invalid"
            )
        return value, "email"
    number = normalise_number(value)
    if number is None or not re.fullmatch(r"\+?\d{6,15}", number):
        raise InvalidInput(
            "the contact is not an e-mail address (name@domain) or a phone number", refusal_reason="contact_invalid"
        )
    return number, "phone"


class ResidentDesk:
    """`store.resident_desk`: offline messages, receipts and transcripts for residents, satisfaction ratings.

    The SQL is the repository's (store/sqlite/resident_desk.py); every change runs in its unit of work,
    which the audit entry joins.
    """

    #: the data keys (store/keys.py), set by Store: offline messages and answers are sealed at rest
    keys: Any = None

    async def _data_key(self, tx: "Transaction", conversation_id: int) -> Any:
        if self.keys is None:
            return None
        return await self.repo.data_key(tx, self.keys, conversation_id, to_iso(self.clock()))

    async def _opened(self, rows: list[Any]) -> list[dict[str, Any]]:
        """Offline rows with the resident's text opened with each conversation's data key."""
        out = []
        keys = await self.keys.read_keys(r["conversation_id"] for r in rows) if self.keys is not None else {}
        for r in rows:
            row = dict(r)
            key = keys.get(r["conversation_id"])
            if row["text"] is not None and not isinstance(row["text"], str):
                row["text"] = text_of(row["text"], key, row["text_seq"], deleted=DELETED_MARK)
            for column, line in (("name", NAME_LINE), ("contact", CONTACT_LINE), ("answer_note", NOTE_LINE)):
                if row[column] is not None and not isinstance(row[column], str):
                    row[column] = text_of(row[column], key, line, deleted=DELETED_MARK)
            out.append(row)
        return out

    def __init__(self, repo: "ResidentDeskRepository", audit: AuditLog, settings: Settings, clock: Clock) -> None:
        self.repo = repo
        self.audit = audit
        self.settings = settings
        self.clock = clock
        self._receipt_key: bytes | None = None  # the HMAC key of receipt secrets (store_keys 'receipt')

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.settings.timezone)

    def _local(self, moment: datetime) -> datetime:
        return moment.astimezone(self.zone)

    async def _mac(self, secret: str) -> str:
        if self._receipt_key is None:
            self._receipt_key = await self.repo.receipt_key()
        return hmac.new(self._receipt_key, secret.encode("ascii"), hashlib.sha256).hexdigest()

    # ------------------------------------------------------------------ offline messages (resident side)

    async def leave_message(self, notice_id: Any, lang: str, name: Any, contact: Any, text: Any) -> str:
        """Store an offline message after the accepted notice `notice_id`; returns its reference once committed.
        Bad input (no contact, a malformed one, too long) raises before anything is stored."""
        if not is_id(notice_id):
            raise InvalidInput(N_("notice_id must be a number"))
        lang = lang if lang in LANGS else "pl"
        contact_value, contact_kind = clean_contact(contact)
        if name is not None and not isinstance(name, str):
            raise InvalidInput(N_("the name must be text"))
        name_value = " ".join((name or "").split())
        if len(name_value) > MAX_NAME:
            raise MessageTooLong(f"the name is longer than {MAX_NAME} characters", refusal_reason="name_too_long")
        if _CONTROL.search(name_value):
            raise InvalidInput(N_("the name has control characters"))
        _need_utf8(name_value, N_("the name"))
        body = clean_text(text, self.settings.max_message_length)
        notice = await self.repo.notice(notice_id)
        if notice is None or notice["channel"] != "chat":
            raise InvalidInput(N_("unknown chat notice"))
        if notice["version"] != await self.repo.current_chat_notice_version():
            raise InvalidInput(
                N_("this notice version is no longer current; read the current notice"),
                refusal_reason="notice_outdated",
            )
        now = self.clock()
        purge_after = self.settings.retention_duration.after(now)
        params_of = {"lang": notice["lang"], "version": notice["version"]}
        accepted = notice_accepted_line(notice["version"], notice["lang"], " Zostawiono wiadomość poza czatem.")
        params = json.dumps(params_of, sort_keys=True)
        for _ in range(8):  # a reference already taken today (1 in a million): draw again
            reference = new_reference(self._local(now))
            try:
                async with self.repo.transaction(conflict=True) as tx:
                    chat_id = await self.repo.insert_offline_conversation(
                        tx,
                        created_at=to_iso(now),
                        purge_after=to_iso(purge_after),
                        lang=lang,
                        notice_id=notice_id,
                        reference=reference,
                    )
                    key = await self._data_key(tx, chat_id)  # sealed at rest (store/keys.py)
                    await self.repo.insert_lines(
                        tx,
                        [
                            (chat_id, 1, "system", _seal(key, 1, accepted), to_iso(now), "notice_accepted", params),
                            (chat_id, 2, "resident", _seal(key, 2, body), to_iso(now), None, None),
                        ],
                    )
                    if key is not None:  # the blind index of the resident's words (request matching)
                        await self.repo.insert_words(tx, chat_id, key.tokens(body))
                    # the name and the contact are the resident's too: sealed like the text (line numbers below 1)
                    await self.repo.insert_offline_message(
                        tx,
                        chat_id,
                        _seal(key, NAME_LINE, name_value) if name_value else None,
                        _seal(key, CONTACT_LINE, contact_value),
                        contact_kind,
                    )
                return reference
            except RecordConflict:
                continue
        raise InvalidInput(N_("no free reference could be drawn; please try again"))

    # ------------------------------------------------------------------ offline messages (staff side)

    async def waiting_count(self) -> int:
        """Offline messages not answered yet (a count names no one: no permission needed)."""
        return await self.repo.waiting_count()

    async def offline_messages(self, actor: Actor, *, include_answered: bool = False) -> list[OfflineMessage]:
        """The offline messages for consultants, the oldest first; reading them is audited."""
        await self.audit.guard(actor, Permission.HANDLE_CHATS, "offline.list")
        rows = await self._opened(await self.repo.offline_messages(include_answered=include_answered))
        async with self.repo.transaction() as tx:
            # which messages were shown (ids only, never their content), like the archive's reading entries
            await self.audit.append(
                tx,
                actor,
                "offline.list",
                details={
                    "count": len(rows),
                    "answered": include_answered,
                    "conversations": [r["conversation_id"] for r in rows[:200]],
                },
            )
        return [_offline(r) for r in rows]

    async def answer(self, actor: Actor, conversation_id: Any, how: Any, note: Any = "") -> OfflineMessage:
        """Record that the office answered an offline message (by phone, e-mail or letter); it is then closed."""
        await self.audit.guard(
            actor,
            Permission.HANDLE_CHATS,
            "offline.answer",
            target_kind="conversation",
            target_id=conversation_id if is_id(conversation_id) else None,
        )
        if actor.is_system or actor.staff_id is None:
            raise NotPermitted(N_("an offline message is answered by a signed-in consultant"))
        if not is_id(conversation_id):
            raise InvalidInput(N_("the message number must be a number"))
        if how not in ANSWER_METHODS:
            raise InvalidInput(N_("the answer was given by one of: {choices}"), choices=", ".join(ANSWER_METHODS))
        note_value = _CONTROL.sub("", note if isinstance(note, str) else "").strip()
        if len(note_value) > MAX_ANSWER_NOTE:
            raise MessageTooLong(
                N_("the note is longer than {max_answer_note} characters"), max_answer_note=MAX_ANSWER_NOTE
            )
        now = self.clock()
        async with self.repo.transaction() as tx:
            row = await self.repo.offline_state(tx, conversation_id)
            if row is None:
                raise ConversationNotFound(N_("no offline message {conversation_id}"), conversation_id=conversation_id)
            if row["answered_at"] is not None:
                raise ChatClosed(N_("this message has already been answered"))
            note_stored = (
                _seal(await self._data_key(tx, conversation_id), NOTE_LINE, note_value) if note_value else None
            )
            await self.repo.record_answer(
                tx, conversation_id, at=to_iso(now), staff_id=actor.staff_id, how=how, note=note_stored
            )
            seq = row["next_seq"]
            text = f"Konsultant {actor.name} odpowiedział na wiadomość ({how})."
            await self.repo.insert_staff_line(
                tx,
                conversation_id,
                seq,
                actor.staff_id,
                _seal(await self._data_key(tx, conversation_id), seq, text),
                to_iso(now),
            )
            await self.repo.close_answered(
                tx, conversation_id, at=to_iso(now), staff_id=actor.staff_id, next_seq=seq + 1
            )
            await self.audit.append(
                tx, actor, "offline.answer", target_kind="conversation", target_id=conversation_id, details={"how": how}
            )
        row = await self.repo.offline_message(conversation_id)
        return _offline((await self._opened([row]))[0] if row is not None else row)

    # ------------------------------------------------------------------ receipts and the resident's copy

    async def issue_receipt(self, chat_id: int) -> Receipt | None:
        """The chat's receipt, made once when it ends: None if it has one already (it is shown only once)."""
        now = self.clock()
        for _ in range(8):
            reference, secret = new_reference(self._local(now)), new_secret()
            mac = await self._mac(normalise_secret(secret))
            try:
                async with self.repo.transaction(conflict=True) as tx:
                    if not await self.repo.set_receipt(tx, chat_id, reference, mac):
                        return None
                return Receipt(reference, secret)
            except RecordConflict:
                continue
        return None

    async def chat_for_copy(self, token: Any) -> int:
        """The ended chat behind its resume token, for the resident's copy: until COPY_HOURS after the end
        (the widget keeps the token of the last chat for its copy; it no longer resumes anything)."""
        if not isinstance(token, str) or not 20 <= len(token) <= 100 or not token.isascii():
            raise InvalidInput(N_("the copy token is not valid"))
        row = await self.repo.chat_by_resume_token(_token_hash(token))
        if row is None or row["status"] != "closed" or not row["ended_at"]:
            raise InvalidInput(N_("the copy token is not valid"))
        if self.clock() >= from_iso(row["ended_at"]) + timedelta(hours=COPY_HOURS):
            raise InvalidInput(N_("the copy of this chat is no longer available"))
        return row["id"]

    async def receipt_reference(self, chat_id: int) -> str | None:
        """The chat's receipt reference (`CZ-...`), None before the end (or for a chat without a receipt)."""
        return await self.repo.receipt_reference(chat_id)

    async def transcript_text(self, chat_id: int) -> str:
        """The resident's copy of their chat, in the chat's language: what the resident saw, nothing staff-only."""
        chat = await self.repo.chat(chat_id)
        if chat is None:
            raise ConversationNotFound(N_("no chat {chat_id}"), chat_id=chat_id)
        lang = chat["lang"] if chat["lang"] in LANGS else "pl"
        t = _COPY_TEXTS[lang]
        lines = [t["title"]]
        if chat["receipt_reference"]:
            lines.append(f"{t['reference']}: {chat['receipt_reference']}")
        lines.append(f"{t['date']}: {self._local(from_iso(chat['created_at'])):%Y-%m-%d %H:%M}")
        lines.append("")
        consultant = t["consultant"]
        rows = await self.repo.lines(chat_id)
        texts = await self.keys.texts(chat_id, rows) if self.keys is not None else [r["text"] for r in rows]
        for m in ({**dict(r), "text": t} for r, t in zip(rows, texts)):  # opened in the store (store/keys.py)
            at = self._local(from_iso(m["at"])).strftime("%H:%M")
            event = m["event"]
            if staff_only_line(m):
                continue
            if m["sender"] == "system":
                if event not in SYSTEM_EVENTS:
                    continue  # staff-only lines (notes, answers) are never part of the resident's copy
                params = json.loads(m["params"]) if m["params"] else {}
                if params.get("consultant"):
                    consultant = str(params["consultant"])
                lines.append(f"[{at}] {t['system']}: {render_event(event, params, lang)}")
            elif m["sender"] == "resident":
                lines.append(f"[{at}] {t['resident']}: {m['text']}")
            elif m["sender"] == "consultant":
                lines.append(f"[{at}] {consultant}: {m['text']}")
        lines += ["", t["footer"]]
        return "\n".join(lines) + "\n"

    async def transcript_pdf(self, chat_id: int) -> bytes:
        """The same copy as a PDF (A4, the store's embedded DejaVu fonts), for the widget's download."""
        import asyncio

        text = await self.transcript_text(chat_id)
        chat = await self.repo.conversation_lang(chat_id)
        return await asyncio.to_thread(_text_pdf, text, chat["lang"] if chat else "pl")

    async def verify_receipt(self, actor: Actor, reference: Any, secret: Any) -> int:
        """The chat a reference/secret pair belongs to. A wrong pair is audited and counted: after
        RECEIPT_TRIES wrong tries for a reference, or by one staff member, within RECEIPT_WINDOW, every try
        waits (ReceiptRefused) even with the right secret, so guessing gains nothing."""
        ref, code = normalise_reference(reference), normalise_secret(secret)
        now = self.clock()
        since = to_iso(now - RECEIPT_WINDOW)
        tries = await self.repo.receipt_failures(ref or str(reference)[:40], actor.staff_id, since)
        if tries["per_ref"] >= RECEIPT_TRIES or tries["per_staff"] >= RECEIPT_TRIES:
            await self.audit.record(
                actor,
                "requests.receipt",
                outcome="refused",
                details={"reason": "rate_limited", "reference": ref or None},
            )
            raise ReceiptRefused("too many wrong chat codes; try again in an hour")
        row: Any = await self.repo.chat_by_reference(ref) if ref else None
        good = bool(
            row
            and row["receipt_secret_hash"]
            and code
            and hmac.compare_digest(row["receipt_secret_hash"], await self._mac(code))
        )
        if not good:
            async with self.repo.transaction() as tx:
                await self.repo.record_receipt_failure(
                    tx, ref or str(reference)[:40], actor.staff_id, to_iso(now), to_iso(now - timedelta(days=1))
                )
                await self.audit.append(
                    tx,
                    actor,
                    "requests.receipt",
                    outcome="refused",
                    details={"reason": "no_match", "reference": ref or None},
                )
            if not ref:
                raise ReceiptRefused("the chat reference is not of the form CZ-YYYY-MM-DD-XXXX")
            raise ReceiptRefused("the chat reference and code do not match a chat")
        await self.audit.record(
            actor, "requests.receipt", target_kind="conversation", target_id=row["id"], details={"reference": ref}
        )
        return row["id"]

    # ------------------------------------------------------------------ satisfaction

    async def rate(self, chat_id: int, rating: Any, comment: Any = None) -> None:
        """The resident's rating of an ended chat; a second one for the same chat is refused."""
        if not isinstance(rating, int) or isinstance(rating, bool) or not 1 <= rating <= 5:
            raise InvalidInput(N_("the rating must be a whole number from 1 to 5"), refusal_reason="rating_invalid")
        comment_value = None
        if comment is not None:
            if not isinstance(comment, str):
                raise InvalidInput(N_("the comment must be text"))
            comment_value = _CONTROL.sub("", comment).strip() or None
            if comment_value and len(comment_value) > MAX_COMMENT:
                raise MessageTooLong(
                    N_("the comment is longer than {max_comment} characters"),
                    max_comment=MAX_COMMENT,
                    refusal_reason="comment_too_long",
                )
            if comment_value:
                _need_utf8(comment_value, N_("the comment"))
        chat = await self.repo.chat(chat_id)
        if chat is None:
            raise ConversationNotFound(N_("no chat {chat_id}"), chat_id=chat_id)
        if chat["status"] != "closed":
            raise InvalidInput(N_("a chat is rated after it has ended"), refusal_reason="not_ended")
        consultant = ""
        if chat["consultant_id"] is not None:
            consultant = await self.repo.staff_name(chat["consultant_id"]) or ""
        topic = await self._topic_of(chat)
        day = self._local(from_iso(chat["created_at"])).date().isoformat()
        try:
            async with self.repo.transaction(conflict=True) as tx:
                # the comment is the resident's free text: sealed with the chat's data key like its lines (line
                # number 0 in the key's associated data), so a backup loses it when the purge destroys the key
                stored = _seal(await self._data_key(tx, chat_id), 0, comment_value) if comment_value else None
                await self.repo.insert_rating(
                    tx,
                    chat_id,
                    day=day,
                    consultant_id=chat["consultant_id"],
                    consultant=consultant,
                    topic=topic,
                    rating=rating,
                    comment=stored,
                )
        except RecordConflict:
            raise InvalidInput(N_("this chat has already been rated"), refusal_reason="already_rated") from None

    async def rating_comment(self, chat_id: int) -> str | None:
        """A rated chat's comment, opened (None: no comment, or the chat is purged and the comment with it)."""
        row = await self.repo.rating_comment(chat_id)
        if row is None or row["comment"] is None:
            return None
        keys = await self.keys.read_keys([chat_id]) if self.keys is not None else {}
        return text_of(row["comment"], keys.get(chat_id), 0, deleted=DELETED_MARK)

    async def _topic_of(self, chat: Any) -> str | None:
        """The chat's topic as staff read it (chat_topics.label_pl, migration 1200), or None without one."""
        if "topic_id" not in chat.keys() or chat["topic_id"] is None:
            return None
        return await self.repo.topic_label(chat["topic_id"])

    async def rating_figures(
        self, first_day: str, last_day: str
    ) -> tuple[RatingFigures, list[RatingFigures], list[RatingFigures]]:
        """(all, per consultant, per topic) for office days first_day..last_day (ISO dates, inclusive)."""
        rows = await self.repo.ratings(first_day, last_day)
        return (_figures("", [r["rating"] for r in rows]), _grouped(rows, "consultant"), _grouped(rows, "topic"))


def _grouped(rows: list[Any], column: str) -> list[RatingFigures]:
    groups: dict[str, list[int]] = {}
    for r in rows:
        groups.setdefault(r[column] or "", []).append(r["rating"])
    return [_figures(key, marks) for key, marks in sorted(groups.items(), key=lambda kv: (kv[0] == "", kv[0]))]


def _figures(key: str, marks: list[int]) -> RatingFigures:
    counts = tuple(marks.count(i) for i in range(1, 6))
    return RatingFigures(key, len(marks), round(sum(marks) / len(marks), 2) if marks else None, counts)  # type: ignore[arg-type]


def _offline(r: Any) -> OfflineMessage:
    return OfflineMessage(
        conversation_id=r["conversation_id"],
        reference=r["receipt_reference"] or "",
        created_at=from_iso(r["created_at"]),
        lang=r["lang"] or "pl",
        name=r["name"],
        contact=r["contact"],
        contact_kind=r["contact_kind"],
        text=r["text"] or "",
        answered_at=from_iso(r["answered_at"]) if r["answered_at"] else None,
        answered_by=r["answered_by_name"],
        answered_how=r["answered_how"],
        answer_note=r["answer_note"],
    )


def _text_pdf(text: str, lang: str = "pl") -> bytes:
    from fpdf.enums import WrapMode, XPos, YPos

    from . import pdfa
    from .letters import in_font, printable

    lines = text.splitlines()
    pdf = pdfa.document(title=lines[0] if lines else "CIM", author="CIM")
    pdf.set_lang("en-GB" if lang == "en" else "pl-PL")
    pdf.add_page()
    for i, line in enumerate(lines):
        pdf.set_font("DejaVu", "B" if i == 0 else "", 12 if i == 0 else 10)
        line = in_font(printable(line)) or " "
        pdf.multi_cell(
            0,
            5,
            line,
            new_x=XPos.LMARGIN,
            new_y=YPos.NEXT,
            wrapmode=WrapMode.CHAR if any(len(w) > 60 for w in line.split()) else WrapMode.WORD,
        )
    return pdfa.finish(pdf)
