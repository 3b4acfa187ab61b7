"""The archive (§5): search calls and chats, see a conversation's metadata, check, play and read it with a purpose."""

from __future__ import annotations

import asyncio
import logging
import shlex
from datetime import date
from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, DataTable, Footer, Header, Input, Select, Sparkline, Static

from store.archive import ConversationDetail, ConversationSummary, RecordingInfo, SearchFilters
from store.chats import SYSTEM_EVENTS, render_event
from store.desk import staff_topic_label as topic_label
from store.errors import CimError
from store.i18n import N_, _, current_language, format_date, format_datetime, format_time, ngettext
from store.keys import feed_player, player_input
from store.policy import Permission, allowed
from tui.context import TuiContext
from tui.screens.base import CimScreen, failure_title
from tui.widgets.listen_link import listening_status, offer_listening_link
from tui.widgets.literal import literal
from tui.widgets.purpose import PurposeModal

log = logging.getLogger(__name__)

PAGE_SIZE = 50

# The screens bring their own layout so they look the same inside the app and in a bare test app.
_CSS = """
ArchiveScreen #archive-form { height: auto; padding: 0 1; }
ArchiveScreen .form-row { height: auto; }
ArchiveScreen .form-row Input { width: 1fr; }
ArchiveScreen #direction { width: 18; }
ArchiveScreen #channel { width: 16; }
ArchiveScreen #search { min-width: 10; }
ArchiveScreen #results { height: 1fr; }
ArchiveScreen #archive-status { height: 1; padding: 0 1; color: $text-muted; }
ArchiveDetailScreen #detail { height: auto; padding: 0 1; }
ArchiveDetailScreen #levels { height: 3; margin: 0 1; }
ArchiveDetailScreen #levels-label { padding: 0 1; color: $text-muted; }
ArchiveDetailScreen #integrity { height: auto; padding: 0 1; }
ArchiveDetailScreen #listening { height: auto; padding: 0 1; color: $text-accent; text-style: bold; display: none; }
ArchiveDetailScreen #detail-actions { height: auto; padding: 0 1; }
ArchiveDetailScreen #detail-actions Button { margin-right: 1; }
ArchiveDetailScreen #transcript { height: 1fr; border-top: solid $primary; padding: 0 1; }
"""


def player_argv(command: str, path: Path | str) -> list[str]:
    """The player's argument vector: `{path}` replaced inside its words, or the path appended. Never a shell."""
    words = shlex.split(command)
    if not words:
        raise ValueError(_("no player command is configured (setting player_command)"))
    if any("{path}" in w for w in words):
        return [w.replace("{path}", str(path)) for w in words]
    return [*words, str(path)]


def _when(summary: ConversationSummary, zone) -> str:
    # no comma between date and time: the results table fits 80 columns
    return f"{format_date(summary.created_at, tz=zone.key)} {format_time(summary.created_at, tz=zone.key)}"


def _duration(seconds: int | None) -> str:
    if seconds is None:
        return ""
    return f"{seconds // 60}:{seconds % 60:02d}"


_SHORT_DIRECTION = {"incoming": N_("call in"), "outgoing": N_("call out"), "internal": N_("internal")}
_DIRECTIONS = {"incoming": N_("incoming"), "outgoing": N_("outgoing"), "internal": N_("internal")}
_CHANNELS = {"call": N_("call"), "chat": N_("chat")}


class ArchiveScreen(CimScreen[None]):
    """Search form and paged results; Enter opens a conversation. Every search is audited by store.archive."""

    DEFAULT_CSS = _CSS
    AUTO_FOCUS = "#number"
    BINDINGS = [
        Binding("ctrl+s", "search", N_("Search")),
        Binding("n", "next_page", N_("Next page")),
        Binding("p", "previous_page", N_("Previous page")),
    ]

    def __init__(self, ctx: TuiContext) -> None:
        super().__init__()
        self.ctx = ctx
        self.filters = SearchFilters()
        self.items: list[ConversationSummary] = []
        #: cursors of the pages shown so far: [None, cursor of page 2, ...]; the last is the current page
        self.pages: list[str | None] = [None]
        self.next_cursor: str | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        with Vertical(id="archive-form"):
            with Horizontal(classes="form-row"):
                yield Input(placeholder=_("number (full, or 3+ digits)"), id="number", max_length=40)
                yield Input(placeholder=_("from YYYY-MM-DD"), id="date-from", max_length=10)
                yield Input(placeholder=_("to YYYY-MM-DD"), id="date-to", max_length=10)
            with Horizontal(classes="form-row"):
                yield Select(
                    [(_(_DIRECTIONS[d]), d) for d in ("incoming", "outgoing", "internal")],
                    prompt=_("direction"),
                    id="direction",
                )
                yield Select([(_("calls"), "call"), (_("chats"), "chat")], prompt=_("channel"), id="channel")
                yield Input(placeholder=_("consultant"), id="consultant", max_length=64)
                yield Input(placeholder=_("dept code"), id="department", max_length=32)
                yield Button(_("Search"), id="search", variant="primary")
        yield DataTable(id="results", cursor_type="row", zebra_stripes=True)
        yield Static(_("Enter a filter and press Enter or Ctrl+S."), id="archive-status")
        yield Footer()

    def on_mount(self) -> None:
        self.title = _("Archive")
        table = self.query_one("#results", DataTable)
        # short headers: the results table fits 80 columns in both languages
        table.add_columns(
            _("When"), _("Type"), _("Number"), _("Consultant"), _("Dept"), _("Length"), _("Rec"), _("Notice")
        )

    # -- the search ------------------------------------------------------------------------------

    def _read_form(self) -> SearchFilters | None:
        def text(widget_id: str) -> str | None:
            return self.query_one(f"#{widget_id}", Input).value.strip() or None

        def choice(widget_id: str) -> str | None:
            value = self.query_one(f"#{widget_id}", Select).value
            return value if isinstance(value, str) else None

        days: dict[str, date | None] = {}
        for widget_id in ("date-from", "date-to"):
            raw = text(widget_id)
            try:
                days[widget_id] = date.fromisoformat(raw) if raw else None
            except ValueError:
                self.notify(_("{text!r} is not a date (YYYY-MM-DD).").format(text=raw), severity="error")
                return None
        return SearchFilters(
            number=text("number"),
            date_from=days["date-from"],
            date_to=days["date-to"],
            direction=choice("direction"),
            channel=choice("channel"),
            consultant=text("consultant"),
            department=text("department"),
        )

    @on(Input.Submitted)
    @on(Button.Pressed, "#search")
    def action_search(self) -> None:
        filters = self._read_form()
        if filters is None:
            return
        self.filters = filters
        self.pages = [None]
        self.load_page()

    def action_next_page(self) -> None:
        if self.next_cursor is None:
            self.notify(_("This is the last page."))
            return
        self.pages.append(self.next_cursor)
        self.load_page()

    def action_previous_page(self) -> None:
        if len(self.pages) == 1:
            self.notify(_("This is the first page."))
            return
        self.pages.pop()
        self.load_page()

    @failure_title(N_("Cannot search"))
    @work(exclusive=True, exit_on_error=False, group="search")
    async def load_page(self) -> None:
        try:
            page = await self.ctx.store.archive.search(
                self.ctx.actor, self.filters, after=self.pages[-1], page_size=PAGE_SIZE
            )
        except Exception:  # the page asked for is not shown: the list stays on the one before
            if len(self.pages) > 1:
                self.pages.pop()
            raise
        self.items = list(page.items)
        self.next_cursor = page.next_cursor
        zone = self.ctx.store.archive.zone
        table = self.query_one("#results", DataTable)
        table.clear()
        for s in self.items:
            number = literal(s.resident_number or "")
            if s.resident_number and s.number_identifiable is False:
                number.stylize("dim italic")
            kind = _("chat") if s.channel == "chat" else _(_SHORT_DIRECTION.get(s.direction or "", N_("call")))
            if s.topic is not None:  # the topic the resident picked (README: topics)
                kind = f"{kind} · {topic_label(s.topic)}"
            table.add_row(
                _when(s, zone),
                kind,
                number,
                literal(s.consultant or ""),
                s.department or "",
                _duration(s.duration_s),
                _("deleted (§6)") if s.deleted else "●" if s.has_recording else "",
                (_("played") if s.notice_played else _("not played"))
                if s.channel == "call" and s.notice_played is not None
                else "",
                key=str(s.id),
            )
        more = _(" · n: next page") if self.next_cursor else ""
        back = _(" · p: previous page") if len(self.pages) > 1 else ""
        self.query_one("#archive-status", Static).update(
            _("page {page}").format(page=len(self.pages))
            + " · "
            + ngettext("{n} shown", "{n} shown", len(self.items)).format(n=len(self.items))
            + more
            + back
            + _(" · Enter: open")
        )
        if self.items:
            table.focus()

    @on(DataTable.RowSelected, "#results")
    def _open(self, event: DataTable.RowSelected) -> None:
        if event.row_key.value is not None:
            self.app.push_screen(ArchiveDetailScreen(self.ctx, int(event.row_key.value)))


#: One line of a conversation's description: its label and its value.
_Line = tuple[str, Text | str]


def _call_lines(d: ConversationDetail) -> list[_Line]:
    """What only a call has: the resident's number, the extension, its length, the §1.4 notice, its recordings."""
    s = d.summary
    ident = _("identifiable") if s.number_identifiable else _("not identifiable (§4.7)")
    lines: list[_Line] = [
        (_("Number"), Text.assemble(literal(s.resident_number or "—"), f"  {ident}")),
        (_("Extension"), literal(d.extension or "—")),
        (
            _("Length"),
            _("{length} (talk {talk})").format(length=_duration(s.duration_s), talk=_duration(d.billsec_s))
            + f" · {s.disposition or ''}",
        ),
        (_("Notice (§1.4)"), _call_notice(d)),
        (_("PBX id"), literal(d.pbx_uniqueid or "—")),
    ]
    lines += [(_("Recording"), _recording_line(r)) for r in d.recordings]
    return lines


def _call_notice(d: ConversationDetail) -> str:
    """Whether the §1.4 notice was played, its version, and whether full information was asked for."""
    if not d.summary.notice_played:
        return _("not on record")
    return (
        _("played")
        + (f", v{d.notice_version}" if d.notice_version else "")
        + (_(", full information requested") if d.summary.full_info_requested else "")
    )


def _recording_line(r: RecordingInfo) -> str:
    """A recording's format, length and size, and a warning when it is empty."""
    length = f"{r.duration_s:.1f} s" if r.duration_s is not None else _("length unknown")
    size = ngettext("{n} byte", "{n} bytes", r.size_bytes).format(n=r.size_bytes)
    return f"{r.format}, {length}, {size}" + (_(" — EMPTY") if r.is_empty else "")


def _chat_lines(d: ConversationDetail) -> list[_Line]:
    """What only a chat has: its language, how many messages, the §1.5 notice and the topic chosen."""
    lines: list[_Line] = [
        (_("Language"), d.lang or "—"),
        (_("Messages"), str(d.message_count)),
        (_("Notice (§1.5)"), _("accepted, v{version}").format(version=d.notice_version) if d.notice_version else "—"),
    ]
    if d.summary.topic is not None:
        lines.append((_("Topic"), topic_label(d.summary.topic)))
    return lines


def _aligned(lines: list[_Line]) -> Text:
    """The lines with their labels right-aligned to the longest, one per row."""
    text = Text()
    width = max(len(label) for label, _value in lines)  # the labels' length depends on the language
    for label, value in lines:
        text.append(f"{label:>{width}}: ", style="bold")
        text.append(value if isinstance(value, Text) else Text(value))
        text.append("\n")
    return text


class ArchiveDetailScreen(CimScreen[None]):
    """One conversation: metadata, level sparkline, integrity check, playback and the chat transcript."""

    DEFAULT_CSS = _CSS
    BINDINGS = [
        Binding("escape", "app.pop_screen", N_("Back")),
        Binding("i", "integrity", N_("Integrity")),
        Binding("l", "play", N_("Listen")),
        Binding("t", "transcript", N_("Transcript")),
        Binding("s", "stop", N_("Stop playing")),
    ]

    def __init__(self, ctx: TuiContext, conversation_id: int) -> None:
        super().__init__()
        self.ctx = ctx
        self.conversation_id = conversation_id
        self.detail: ConversationDetail | None = None
        self.player: asyncio.subprocess.Process | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(_("Loading…"), id="detail")
        yield Static("", id="levels-label")
        yield Sparkline([], id="levels")
        yield Static("", id="integrity")
        yield Static("", id="listening")
        with Horizontal(id="detail-actions"):
            yield Button(_("Check integrity (i)"), id="integrity-button")
            yield Button(_("Listen (l)"), id="play-button")
            yield Button(_("Transcript (t)"), id="transcript-button")
        yield VerticalScroll(id="transcript")
        yield Footer()

    def on_mount(self) -> None:
        self.title = _("Conversation #{n}").format(n=self.conversation_id)
        self.load()
        self.set_interval(20, self.show_listening)

    @work(exclusive=True, exit_on_error=False, group="listening")
    async def show_listening(self) -> None:
        """The "odsłuch w przeglądarce" line: the signed-in person's live links to this conversation."""
        try:
            links = await self.ctx.store.listening.live_links(self.ctx.actor, conversation_id=self.conversation_id)
        except CimError:
            links = []
        line = self.query_one("#listening", Static)
        line.update(listening_status(links, self.ctx.store.archive.zone))
        line.display = bool(links)

    @failure_title(N_("Cannot open"))
    @work(exclusive=True, exit_on_error=False, group="detail")
    async def load(self) -> None:
        try:
            self.detail = await self.ctx.store.archive.details(self.ctx.actor, self.conversation_id)
        except CimError as exc:  # the reason also stands where the conversation would be
            self.query_one("#detail", Static).update(Text(exc.message))
            raise
        self.query_one("#detail", Static).update(self._describe(self.detail))
        self.refresh_bindings()
        is_call = self.detail.summary.channel == "call"
        recorded = is_call and bool(self.detail.recordings)
        self.query_one("#play-button", Button).display = recorded
        self.query_one("#integrity-button", Button).display = recorded
        self.query_one("#transcript-button", Button).display = not is_call
        self.query_one("#levels", Sparkline).display = False
        if recorded:
            self.show_listening()
            await self._load_levels()
        elif is_call:
            self.query_one("#levels-label", Static).update(_("No recording of this call."))

    async def _load_levels(self) -> None:
        try:
            levels = await self.ctx.store.archive.recording_levels(self.ctx.actor, self.conversation_id)
        except CimError as exc:
            self.query_one("#levels-label", Static).update(Text(exc.message))
            return
        label = self.query_one("#levels-label", Static)
        if levels:
            sparkline = self.query_one("#levels", Sparkline)
            sparkline.data = levels
            sparkline.display = True
            label.update(_("Recording levels (start → end):"))
        else:
            label.update(_("No level display for this format (or the recording is empty)."))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Show only the keys that apply: transcript for chats, play/integrity for recorded calls."""
        if self.detail is None:
            return True
        recorded = self.detail.summary.channel == "call" and bool(self.detail.recordings)
        if action == "transcript":
            return self.detail.summary.channel == "chat"
        if action in ("integrity", "play", "stop"):
            return recorded
        return True

    def _describe(self, d: ConversationDetail) -> Text:
        s = d.summary
        zone = self.ctx.store.archive.zone
        channel = _(_CHANNELS.get(s.channel, s.channel))
        direction = _(_DIRECTIONS[s.direction]) if s.direction in _DIRECTIONS else s.direction
        lines: list[_Line] = [
            (_("Channel"), channel + (f" ({direction})" if s.direction else "")),
            (_("Started"), format_datetime(s.created_at, tz=zone.key, seconds=True)),
            (_("Ended"), format_datetime(s.ended_at, tz=zone.key, seconds=True) if s.ended_at else "—"),
            (_("Consultant"), literal(s.consultant or "—")),
            (_("Department"), s.department or "—"),
            (_("Purge after"), format_date(d.purge_after, tz=zone.key) + (_(" (held)") if d.held else "")),
        ]
        lines += _call_lines(d) if s.channel == "call" else _chat_lines(d)
        if s.deleted:  # a restored backup's conversation whose key the purge destroyed: never readable
            lines.append((_("Content"), _("deleted (§6): its key was destroyed by the purge")))
        return _aligned(lines)

    # -- actions ------------------------------------------------------------------------------

    @on(Button.Pressed, "#integrity-button")
    def action_integrity(self) -> None:
        if self.detail and self.detail.summary.channel == "call":
            self.integrity()

    @work(exclusive=True, exit_on_error=False, group="integrity")
    async def integrity(self) -> None:
        out = self.query_one("#integrity", Static)
        try:
            result = await self.ctx.store.archive.check_integrity(self.ctx.actor, self.conversation_id)
        except CimError as exc:
            out.update(Text(exc.message, style="bold red"))
            return
        if result.ok:
            out.update(
                Text(
                    _("Integrity OK: SHA-256 {sha}… matches.").format(sha=(result.actual_sha256 or "")[:16]),
                    style="green",
                )
            )
        else:
            out.update(Text(_("INTEGRITY PROBLEM: {problem}.").format(problem=result.problem), style="bold red"))

    @on(Button.Pressed, "#play-button")
    def action_play(self) -> None:
        if self.detail and self.detail.summary.channel == "call":
            self.play()

    @failure_title(N_("Cannot play"))
    @work(exclusive=True, exit_on_error=False, group="play")
    async def play(self) -> None:
        if not allowed(self.ctx.actor, Permission.OPEN_CONTENT):
            # still go through the store so the refusal is audited; no purpose is asked first
            await self.ctx.store.archive.open_recording(self.ctx.actor, self.conversation_id, "-")
            return
        purpose = await self.app.push_screen_wait(PurposeModal(_("the recording")))
        if purpose is None:
            return
        if not self.ctx.settings.player_command.strip():
            await self._listen_in_browser(purpose)
            return
        opened = await self.ctx.store.archive.open_recording(self.ctx.actor, self.conversation_id, purpose)
        try:
            source, plain = await asyncio.to_thread(player_input, opened.path)  # sealed: fed through a pipe
            argv = player_argv(self.ctx.settings.player_command, source)
        except ValueError as exc:  # the recording or the configured player command cannot be used
            self.notify(str(exc), title=_("Cannot play"), severity="error")
            return
        try:
            self.player = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE if plain else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
            )
            if plain is not None:
                asyncio.create_task(feed_player(self.player.stdin, plain))
        except OSError as exc:
            if plain is not None:
                plain.close()
            self.notify(
                _("The player {player!r} could not start: {error}.").format(player=argv[0], error=exc.strerror),
                title=_("Cannot play"),
                severity="error",
            )
            return
        self.notify(_("Playing… (s stops)"))
        _out, err = await self.player.communicate()
        code, self.player = self.player.returncode, None
        if code not in (0, -15):
            last = err.decode("utf-8", "replace").strip().splitlines()[-1:] or [f"exit status {code}"]
            self.notify(_("The player stopped: {why}").format(why=last[0]), severity="warning")

    async def _listen_in_browser(self, purpose: str) -> None:
        """The default: a single-use link the staff member opens in their own browser (no speakers on the server)."""
        await offer_listening_link(
            self,
            lambda: self.ctx.store.listening.create(
                self.ctx.actor, self.conversation_id, purpose, session_token=self.ctx.token or None
            ),
            self.ctx.store.archive.zone,
            _("conversation #{n}").format(n=self.conversation_id),
        )

    def action_stop(self) -> None:
        if self.player is not None and self.player.returncode is None:
            self.player.terminate()

    @on(Button.Pressed, "#transcript-button")
    def action_transcript(self) -> None:
        if self.detail and self.detail.summary.channel == "chat":
            self.transcript()

    @failure_title(N_("Cannot open the transcript"))
    @work(exclusive=True, exit_on_error=False, group="transcript")
    async def transcript(self) -> None:
        if not allowed(self.ctx.actor, Permission.OPEN_CONTENT):
            await self.ctx.store.archive.open_transcript(self.ctx.actor, self.conversation_id, "-")
            return
        purpose = await self.app.push_screen_wait(PurposeModal(_("the chat transcript")))
        if purpose is None:
            return
        transcript = await self.ctx.store.archive.open_transcript(self.ctx.actor, self.conversation_id, purpose)
        box = self.query_one("#transcript", VerticalScroll)
        await box.remove_children()
        zone = self.ctx.store.archive.zone
        widgets = []
        lang = current_language()
        for line in transcript.lines:
            who = {"resident": _("Resident"), "system": _("System")}.get(
                line.sender, line.staff_full_name or line.staff_name or _("Consultant")
            )
            style = {"resident": "bold cyan", "system": "dim"}.get(line.sender, "bold green")
            if line.sender == "note":  # a supervisor's whisper (§3): the consultant saw it, the resident never did
                who, style = (
                    _("Staff note from {name} (not shown to the resident)").format(name=line.staff_name or "?"),
                    "bold magenta",
                )
            label = Text.assemble((f"{format_time(line.at, tz=zone.key, seconds=True)} ", "dim"), (f"{who}: ", style))
            text = line.text
            if line.sender == "system" and line.event in SYSTEM_EVENTS:  # a stored event: in the staff language
                text = render_event(
                    line.event,
                    line.params,
                    lang,
                    staff=True,
                    staff_name=line.staff_full_name,
                    category=transcript.close_category,
                )
            label.append_text(literal(text))  # resident text shown literally: never markup
            widgets.append(Static(label, classes="transcript-line"))
        if not widgets:
            widgets.append(Static(_("The transcript is empty.")))
        await box.mount_all(widgets)

    async def on_unmount(self) -> None:
        self.action_stop()
