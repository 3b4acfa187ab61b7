"""The listening link dialog: the link as a terminal hyperlink (OSC 8), its short code and a QR code for a phone."""

from __future__ import annotations

from datetime import datetime
from typing import Awaitable, Callable
from zoneinfo import ZoneInfo

from rich.style import Style
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Label, Static

from store.i18n import N_, _, format_time
from store.listening import ListenLink, LiveLink
from tui.screens.base import CimModal, set_failure_title

#: A QR module pair (top, bottom) as one character cell: dark modules are drawn, light ones are the background.
_HALF_BLOCKS = {(True, True): "█", (True, False): "▀", (False, True): "▄", (False, False): " "}


def qr_lines(text: str, *, border: int = 2) -> list[str]:
    """`text` as a QR code (segno, error correction L) drawn with half blocks: two module rows per line."""
    import segno  # imported here: only this dialog needs it, not every `cim tui` start

    code = segno.make(text, error="l", boost_error=False, micro=False)
    rows = [[bool(m) for m in row] for row in code.matrix_iter(scale=1, border=border)]
    if len(rows) % 2:
        rows.append([False] * len(rows[0]))
    return [
        "".join(_HALF_BLOCKS[(top, bottom)] for top, bottom in zip(rows[i], rows[i + 1]))
        for i in range(0, len(rows), 2)
    ]


def listening_status(links: list[LiveLink], zone: ZoneInfo) -> Text:
    """ "odsłuch w przeglądarce" while any of the links is live: its code, expiry and whether it was opened."""
    if not links:
        return Text("")
    parts = [
        _("{code} until {time}").format(code=link.code, time=format_time(link.expires_at, tz=zone.key))
        + (_(" (opened)") if link.opened else "")
        for link in links
    ]
    return Text(_("● Listening in the browser: {links}").format(links=", ".join(parts)))


def hyperlink(url: str) -> Text:
    """The URL as text that terminals with OSC 8 support open on click (others show it to copy)."""
    return Text(url, style=Style(link=url, underline=True))


class ListenLinkModal(CimModal[bool]):
    """Shows one new listening link; returns True when the staff member closed (revoked) it with X."""

    BINDINGS = [Binding("escape", "close", N_("Close")), Binding("x", "revoke", N_("Revoke link"))]

    DEFAULT_CSS = """
    ListenLinkModal { align: center middle; }
    ListenLinkModal > Vertical { width: 80; max-width: 100%; height: auto; min-height: 22; max-height: 100%;
                                 border: thick $primary;
                                 background: $surface; padding: 0 1; }
    ListenLinkModal .listen-title { text-style: bold; }
    ListenLinkModal #listen-body { height: auto; }
    ListenLinkModal #listen-text { width: 1fr; height: auto; padding-right: 1; }
    ListenLinkModal #listen-qr { width: auto; height: auto; color: black; background: white; }
    ListenLinkModal .listen-help { color: $text-muted; }
    """

    def __init__(self, url: str, code: str, expires_at: datetime, zone: ZoneInfo, what: str) -> None:
        super().__init__()
        self.url = url
        self.code = code
        self.expires_at = expires_at
        self.zone = zone
        self.what = what

    def compose(self) -> ComposeResult:
        until = format_time(self.expires_at, tz=self.zone.key)
        text = Text()
        text.append(_("Open this link in your own browser:") + "\n", style="bold")
        text.append_text(hyperlink(self.url))
        text.append("\n\n" + _("Code: "), style="bold")
        text.append(self.code, style="bold reverse")
        text.append(_("  (the page shows the same code)") + "\n")
        text.append(
            _(
                "Valid until {time}; it opens in one browser only, then in no other. "
                "Scan the QR code to listen on a phone. Signing out of CIM ends it."
            ).format(time=until)
        )
        with Vertical():
            yield Label(_("Listening in the browser — {what}").format(what=self.what), classes="listen-title")
            with Horizontal(id="listen-body"):
                yield Static(text, id="listen-text")
                yield Static("\n".join(qr_lines(self.url)), id="listen-qr")
            yield Static(_("Esc close (the link stays valid) · X revoke the link now"), classes="listen-help")

    def action_close(self) -> None:
        self.dismiss(False)

    def action_revoke(self) -> None:
        self.dismiss(True)


async def offer_listening_link(
    screen, make_link: "Callable[[], Awaitable[ListenLink]]", zone: ZoneInfo, label: str
) -> None:
    """Make a listening link (`make_link`: the store call), show it until the person closes the dialog, and
    revoke it when they ask; the screen's "odsłuch w przeglądarce" line (`show_listening`) follows each step.
    Used by the archive (after the purpose prompt) and by the §4.6 session."""
    from store.listening import link_url

    ctx = screen.ctx
    set_failure_title(_("Cannot make a listening link"))  # a refusal is told by the screen's worker base
    link = await make_link()
    set_failure_title(None)  # from here on a failure is the calling worker's own
    screen.show_listening()
    url = link_url(ctx.settings, link, ctx.server_url)
    if await screen.app.push_screen_wait(ListenLinkModal(url, link.code, link.expires_at, zone, label)):
        await ctx.store.listening.revoke(ctx.actor, link.id)
        screen.notify(_("The listening link is revoked."))
    screen.show_listening()
