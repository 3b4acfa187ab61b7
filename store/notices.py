"""Versioned data-protection notices for the chat (§1.5) and phone (§1.4) channels."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .audit import AuditLog
from .clock import Clock, from_iso, to_iso
from .errors import InvalidInput, NotFound
from .i18n import N_
from .models import Actor, Notice
from .policy import Permission

if TYPE_CHECKING:  # the service names the repository's type only; its SQL is the backend's (store/sqlite/)
    from .sqlite.notices import NoticesRepository

CHANNELS = ("chat", "phone")
LANGS = ("pl", "en")
MAX_NOTICE = 5000


def _notice(r: Any) -> Notice:
    return Notice(
        id=r["id"],
        channel=r["channel"],
        version=r["version"],
        lang=r["lang"],
        text=r["text"],
        legal=bool(r["legal"]),
        created_at=from_iso(r["created_at"]),
    )


class Notices:
    def __init__(self, repo: "NoticesRepository", audit: AuditLog, clock: Clock) -> None:
        self.repo = repo
        self.audit = audit
        self.clock = clock

    async def current(self, channel: str, lang: str = "pl") -> Notice:
        """The newest version of the channel's notice in `lang`, or the legal Polish one if untranslated."""
        if channel not in CHANNELS:
            raise InvalidInput(N_("unknown notice channel {channel!r}"), channel=channel)
        rows = await self.repo.version_rows(channel, await self.repo.latest_version(channel), lang)
        by_lang = {r["lang"]: r for r in rows}
        return _notice(by_lang.get(lang) or by_lang["pl"])

    async def get(self, notice_id: int) -> Notice:
        row = await self.repo.by_id(notice_id)
        if row is None:
            raise NotFound(N_("no notice with id {notice_id}"), notice_id=notice_id)
        return _notice(row)

    async def history(self, channel: str) -> list[Notice]:
        rows = await self.repo.history(channel)
        return [_notice(r) for r in rows]

    async def add_version(self, actor: Actor, channel: str, texts: dict[str, str]) -> list[Notice]:
        """A new version (Polish text required, translations optional); old versions stay for the record."""
        await self.audit.guard(actor, Permission.MANAGE_NOTICES, "notice.add")
        if channel not in CHANNELS:
            raise InvalidInput(N_("unknown notice channel {channel!r}"), channel=channel)
        if not texts.get("pl", "").strip():
            raise InvalidInput(N_("a notice version needs its Polish text"))
        for lang, text in texts.items():
            if lang not in LANGS:
                raise InvalidInput(N_("unsupported language {lang!r}"), lang=lang)
            if not isinstance(text, str) or not text.strip():
                raise InvalidInput(N_("the {lang} notice text is empty; leave the language out instead"), lang=lang)
            if len(text) > MAX_NOTICE:
                raise InvalidInput(N_("the notice text is longer than {max} characters"), max=MAX_NOTICE)
        async with self.repo.transaction() as tx:
            stripped = {lang: text.strip() for lang, text in texts.items()}
            version = await self.repo.add_version(tx, channel, stripped, to_iso(self.clock()), actor.name)
            await self.audit.append(tx, actor, "notice.add", target_kind="notice", target_id=f"{channel}:{version}")
        return [n for n in await self.history(channel) if n.version == version]
