"""`/listen/<token>`: the listening page and its audio (HTTP Range, no-store, inline), for links made by store.listening."""

from __future__ import annotations

import html
import logging
import re
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from aiohttp import web

from store import Store
from store.errors import CimError
from store.letters import polish_date
from store.listening import ListenGrant, LinkRefused, mask_number

log = logging.getLogger("cim.webchat.listen")

STORE = web.AppKey("listen_store", Store)
STATIC = Path(__file__).with_name("static") / "listen"
PIN_COOKIE = "cim_listen"
#: Longest answer to one audio request: an open-ended Range gets at most this much, so the browser
#: comes back for the next part and a link that died meanwhile (session ended, expired) stops there.
MAX_CHUNK = 256 * 1024
#: The page's own policy: the default one of webchat/app.py plus media from this server; no inline code.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; media-src 'self'; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")

TEXT = {
    "pl": {
        "title": "Odsłuch nagrania",
        "code": "Kod linku",
        "code_hint": "porównaj z kodem pokazanym w CIM",
        "date": "Data",
        "time": "Godzina",
        "direction": "Kierunek",
        "duration": "Czas trwania",
        "number": "Numer rozmówcy",
        "purpose": "Cel odsłuchu",
        "expires": "Link ważny do",
        "levels": "Poziom głośności nagrania od początku do końca",
        "play": "Odtwórz",
        "pause": "Wstrzymaj",
        "back": "−10 s",
        "fwd": "+10 s",
        "back_label": "cofnij o 10 sekund",
        "fwd_label": "naprzód o 10 sekund",
        "note": "Nagranie jest udostępnione tylko do odsłuchu w tej przeglądarce: nie można go pobrać. "
        "Każde otwarcie strony i każde odtworzenie jest zapisywane w rejestrze zdarzeń.",
        "no_audio": "Ta przeglądarka nie odtwarza dźwięku HTML5.",
        "stopped": "Odtwarzanie zostało przerwane: link wygasł, został zamknięty albo sesja pracownika w CIM "
        "się zakończyła. Utwórz nowy link w CIM.",
        "refused_title": "Nie można odsłuchać nagrania",
        "fsck": "Rodzaj problemu według „cim fsck”",
        "what_now": "Utwórz nowy link w CIM (archiwum albo sesja odsłuchu) i otwórz go w tej przeglądarce.",
        "other_lang": "English",
        "other_lang_code": "en",
        "incoming": "przychodząca",
        "outgoing": "wychodząca",
        "internal": "wewnętrzna",
    },
    "en": {
        "title": "Listening to a recording",
        "code": "Link code",
        "code_hint": "compare it with the code CIM shows",
        "date": "Date",
        "time": "Time",
        "direction": "Direction",
        "duration": "Length",
        "number": "Caller's number",
        "purpose": "Purpose",
        "expires": "Link valid until",
        "levels": "Level of the recording from start to end",
        "play": "Play",
        "pause": "Pause",
        "back": "−10 s",
        "fwd": "+10 s",
        "back_label": "back 10 seconds",
        "fwd_label": "forward 10 seconds",
        "note": "The recording can only be heard in this browser: it cannot be downloaded. Every page open "
        "and every playback is written to the audit log.",
        "no_audio": "This browser does not play HTML5 audio.",
        "stopped": "Playback stopped: the link expired, was closed, or the staff session in CIM ended. "
        "Create a new link in CIM.",
        "refused_title": "The recording cannot be played",
        "fsck": "Kind of problem as `cim fsck` names it",
        "what_now": "Create a new link in CIM (the archive or the listening session) and open it in this browser.",
        "other_lang": "Polski",
        "other_lang_code": "pl",
        "incoming": "incoming",
        "outgoing": "outgoing",
        "internal": "internal",
    },
}

#: Why a link is refused, in words, by `LinkRefused.reason`.
REASONS = {
    "forged": (
        "Ten link nie został wydany przez CIM (albo jest niepełny).",
        "This link was not issued by CIM (or it is incomplete).",
    ),
    "expired": ("Link wygasł.", "The link has expired."),
    "revoked": (
        "Link został zamknięty przez osobę, która go utworzyła.",
        "The link was closed by the person who created it.",
    ),
    "session_ended": (
        "Sesja pracownika w CIM, do której należał link, zakończyła się.",
        "The staff session in CIM that the link belonged to has ended.",
    ),
    "foreign_browser": (
        "Link został już otwarty w innej przeglądarce; linków nie można przekazywać dalej.",
        "The link was already opened in another browser; links cannot be forwarded.",
    ),
    "not_opened": ("Najpierw otwórz stronę odsłuchu.", "Open the listening page first."),
    "withheld": (
        "Nagranie nie jest już dostępne dla tego linku (uprawnienia lub sesja odsłuchu się zmieniły).",
        "The recording is no longer available to this link (permissions or the session changed).",
    ),
    "purged": (
        "Nagranie zostało trwale usunięte z systemu po utworzeniu linku.",
        "The recording was permanently deleted after the link was created.",
    ),
    "missing_file": ("Brak pliku nagrania w katalogu nagrań.", "The recording file is missing."),
    "checksum_mismatch": (
        "Plik nagrania różni się od zapisanego przy imporcie (suma SHA-256 się nie zgadza).",
        "The recording file differs from the one imported (its SHA-256 does not match).",
    ),
    "unplayable": (
        "Tego formatu nagrania przeglądarka nie odtworzy, a CIM nie umie go przekodować.",
        "Browsers cannot play this recording's format and CIM cannot transcode it.",
    ),
}


_TOKEN_IN_PATH = re.compile(r"/listen/(?!static/)[^/?\s\"]+")
#: The logger aiohttp writes its access log to (`cim serve` keeps the default).
ACCESS_LOGGER = "aiohttp.access"


class RedactTokens(logging.Filter):
    """Cuts listening tokens out of access-log lines: a link is a key until it expires, and logs travel."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "/listen/" in message:
            record.msg, record.args = _TOKEN_IN_PATH.sub("/listen/…", message), None
        return True


async def _redacted_access_log(app: web.Application):
    logger, redact = logging.getLogger(ACCESS_LOGGER), RedactTokens()
    logger.addFilter(redact)
    try:
        yield
    finally:
        logger.removeFilter(redact)


def register(app: web.Application, store: Store) -> None:
    """Add the listening routes to the chat server's app (webchat/app.py)."""
    app[STORE] = store
    app.cleanup_ctx.append(_redacted_access_log)
    app.router.add_get("/listen/static/listen.css", _static("listen.css", "text/css; charset=utf-8"))
    app.router.add_get("/listen/static/listen.js", _static("listen.js", "text/javascript; charset=utf-8"))
    app.router.add_get("/listen/{token}", _page)
    app.router.add_get("/listen/{token}/audio", _audio)


def _static(name: str, content_type: str):
    async def serve(request: web.Request) -> web.StreamResponse:
        return web.FileResponse(STATIC / name, headers={"Content-Type": content_type, "Cache-Control": "no-cache"})

    return serve


def _lang(request: web.Request) -> str:
    return "en" if request.query.get("lang") == "en" else "pl"


def _headers(extra: dict[str, str] | None = None) -> dict[str, str]:
    return {
        "Cache-Control": "no-store",
        "Pragma": "no-cache",
        "Content-Security-Policy": CSP,
        "X-Robots-Tag": "noindex",
        **(extra or {}),
    }


def _client(request: web.Request) -> str:
    return request.remote or ""


async def _page(request: web.Request) -> web.StreamResponse:
    store, lang = request.app[STORE], _lang(request)
    token = request.match_info["token"]
    try:
        grant = await store.listening.open_page(token, request.cookies.get(PIN_COOKIE), client=_client(request))
        try:
            levels = await store.listening.levels(grant)
        except CimError:
            levels = []
    except LinkRefused as exc:
        return _refusal(exc, lang)
    body = _page_html(grant, levels, lang, token, ZoneInfo(store.settings.timezone))
    response = web.Response(text=body, content_type="text/html", charset="utf-8", headers=_headers())
    if grant.new_pin:
        remaining = max(1, int((grant.expires_at - store.clock()).total_seconds()))
        response.set_cookie(
            PIN_COOKIE,
            grant.new_pin,
            path=f"/listen/{token}",
            max_age=remaining,
            httponly=True,
            samesite="Strict",
            secure=request.secure,
        )
    return response


async def _audio(request: web.Request) -> web.StreamResponse:
    store = request.app[STORE]
    token = request.match_info["token"]
    range_header = request.headers.get("Range", "")
    client = _client(request)
    try:
        grant = await store.listening.open_audio(token, request.cookies.get(PIN_COOKIE), client=client)
        source = await store.listening.audio_source(grant)
    except LinkRefused as exc:
        return web.Response(status=exc.status, text=exc.message, headers=_headers())
    size = source.size
    common = {"Accept-Ranges": "bytes", "Content-Disposition": "inline", "Content-Type": source.content_type}
    if not range_header:
        start, end, status = 0, size - 1, 200
    else:
        parsed = _parse_range(range_header, size)
        if parsed is None:
            await store.listening.record_audio(grant, range_header, served=False, size=size, client=client)
            return web.Response(status=416, headers=_headers({"Content-Range": f"bytes */{size}", **common}))
        start, end = parsed
        status = 206
        end = min(end, start + MAX_CHUNK - 1)
    await store.listening.record_audio(grant, range_header, served=True, size=size, client=client)
    data = await source.read(start, end) if size else b""
    headers = _headers(common)
    if status == 206:
        headers["Content-Range"] = f"bytes {start}-{start + len(data) - 1}/{size}"
    return web.Response(status=status, body=data, headers=headers)


def _parse_range(header: str, size: int) -> tuple[int, int] | None:
    """The first range of a `bytes=` header as (start, end) inclusive, or None when it cannot be satisfied."""
    first = header.split(",")[0].strip()
    m = _RANGE.match(first)
    if not m or (not m.group(1) and not m.group(2)):
        return None
    if m.group(1):
        start = int(m.group(1))
        end = int(m.group(2)) if m.group(2) else size - 1
        if start >= size or end < start:
            return None
        return start, min(end, size - 1)
    suffix = int(m.group(2))
    if suffix == 0 or size == 0:
        return None
    return max(0, size - suffix), size - 1


def _esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    whole = int(round(seconds))
    return f"{whole // 60}:{whole % 60:02d}"


def _shell(lang: str, title: str, content: str, *, other_href: str) -> str:
    t = TEXT[lang]
    return (
        f'<!doctype html>\n<html lang="{lang}">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<meta name="robots" content="noindex, nofollow">\n'
        f"<title>{_esc(title)} — CIM</title>\n"
        '<link rel="stylesheet" href="/listen/static/listen.css">\n'
        '<script src="/listen/static/listen.js" defer></script>\n</head>\n<body>\n<main>\n'
        f'<p class="lang"><a href="{_esc(other_href)}" hreflang="{t["other_lang_code"]}" '
        f'lang="{t["other_lang_code"]}">{t["other_lang"]}</a></p>\n'
        f"<h1>{_esc(title)}</h1>\n{content}\n</main>\n</body>\n</html>\n"
    )


def _page_html(grant: ListenGrant, levels: list[float], lang: str, token: str, zone: ZoneInfo) -> str:
    t = TEXT[lang]
    s = grant.summary
    began: datetime = s.created_at.astimezone(zone)
    date_text = polish_date(began) if lang == "pl" else began.strftime("%d %B %Y")
    rows = [
        (t["date"], date_text),
        (t["time"], began.strftime("%H:%M")),
        (t["direction"], t.get(s.direction or "", s.direction or "—")),
        (t["duration"], _duration(grant.recording.duration_s)),
        (t["number"], mask_number(s.resident_number)),
        (t["purpose"], grant.purpose),
        (t["expires"], grant.expires_at.astimezone(zone).strftime("%H:%M")),
    ]
    meta = "".join(f"<dt>{_esc(k)}</dt><dd>{_esc(v)}</dd>" for k, v in rows)
    bars = "".join(
        f'<rect x="{i}" y="{40 - max(1.0, v * 40):.1f}" width="0.8" height="{max(1.0, v * 40):.1f}"/>'
        for i, v in enumerate(levels)
    )
    width = max(1, len(levels))
    audio_src = f"/listen/{token}/audio"
    content = (
        f'<p class="code">{t["code"]}: <strong id="code">{_esc(grant.code)}</strong> '
        f'<span class="hint">({t["code_hint"]})</span></p>\n'
        f'<dl class="meta">{meta}</dl>\n'
        f'<figure class="player" data-stopped="{_esc(t["stopped"])}" data-play="{_esc(t["play"])}" '
        f'data-pause="{_esc(t["pause"])}">\n'
        f'<svg id="levels" class="levels" role="img" aria-label="{_esc(t["levels"])}" viewBox="0 0 {width} 40" '
        f'preserveAspectRatio="none">{bars}<rect id="position" class="position" x="0" y="0" width="0.6" '
        f'height="40"/></svg>\n'
        f'<audio id="player" controls controlslist="nodownload noplaybackrate noremoteplayback" '
        f'disableremoteplayback preload="auto" src="{_esc(audio_src)}">{t["no_audio"]}</audio>\n'
        # the accessible names start with the visible text (WCAG 2.5.3, label in name)
        f'<div class="buttons"><button type="button" id="back" aria-label="{_esc(t["back"] + ": " + t["back_label"])}">'
        f'{t["back"]}</button> <button type="button" id="toggle">{t["play"]}</button> '
        f'<button type="button" id="fwd" aria-label="{_esc(t["fwd"] + ": " + t["fwd_label"])}">{t["fwd"]}</button>'
        f"</div>\n"
        f'</figure>\n<p id="status" class="status" role="status" aria-live="polite"></p>\n'
        f'<p class="note">{t["note"]}</p>'
    )
    return _shell(lang, t["title"], content, other_href=f"?lang={t['other_lang_code']}")


def _refusal(exc: LinkRefused, lang: str) -> web.Response:
    t = TEXT[lang]
    pl, en = REASONS.get(exc.reason, (exc.message, exc.message))
    content = f'<p class="refused" role="alert">{_esc(pl if lang == "pl" else en)}</p>\n'
    if exc.fsck_kind:
        content += f"<p>{t['fsck']}: <code>{_esc(exc.fsck_kind)}</code></p>\n"
    content += f"<p>{t['what_now']}</p>"
    body = _shell(lang, t["refused_title"], content, other_href=f"?lang={t['other_lang_code']}")
    return web.Response(status=exc.status, text=body, content_type="text/html", charset="utf-8", headers=_headers())
