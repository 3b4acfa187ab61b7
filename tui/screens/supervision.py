"""Live chat supervision (§3) for the CIM manager and the BOI director: every open chat and the queue, live;
a chat opened read-only after a purpose (audited as a reading), whispers to its consultant, take-over.

The screen holds its own /staff connection (tui/live/supervision.py SupervisionClient) while it is shown. Watching is
never silent: the consultant's chat says "supervised by <name>" for as long as the watch lasts, and one
watch at a time is open here (opening another chat ends the previous watch).
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.coordinate import Coordinate
from textual.widgets import DataTable, Footer, Header, Input, Static

from store.i18n import N_, _, current_language, format_time, ngettext
from store.models import Role
from tui.context import TuiContext
from tui.live import STATE_LABELS, ConnectionState, LiveError, SupervisedChat, SupervisionBoard, SupervisionClient
from tui.screens.base import CimScreen
from tui.widgets.literal import literal
from tui.widgets.modals import ConfirmModal
from tui.widgets.purpose import PurposeModal
from tui.widgets.transcript import Transcript

#: What a supervisor reads for the server's refusals of supervision events (docs/PROTOCOL.md).
SUPERVISION_ERRORS = {
    "not_permitted": N_("You are not permitted to do that (taking a chat over needs the consultant role as well)."),
    "already_taken": N_("Someone else took this chat over first."),
    "invalid": N_("The server refused it: {message}"),
    "closed": N_("That chat has ended; its transcript is in the archive."),
    "not_found": N_("That chat no longer exists."),
    "disconnected": N_("Not connected to the chat server; try again when it reconnects."),
    "timeout": N_("The chat server did not answer in time; try again."),
}
#: Why a watch ended, as the supervisor reads it.
ENDED_REASONS = {
    "closed": N_("the chat has ended"),
    "taken_over": N_("you took the chat over"),
    "renewed": N_("the watch was opened again"),
}


def duration(since: datetime | None, now: datetime) -> str:
    if since is None:
        return "—"
    seconds = max(0, int((now - since).total_seconds()))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60:02d}:{rest % 60:02d}"


def consultant_load(board: SupervisionBoard) -> Text:
    """Who handles what: each consultant online with the number of chats they answer now."""
    names: dict[int | None, str] = {
        c.consultant_id: c.consultant_name for c in board.view if c.consultant_id is not None
    }
    load: dict[int | None, int] = {}
    for c in board.view:
        if c.status == "active":
            load[c.consultant_id] = load.get(c.consultant_id, 0) + 1
    parts = []
    for person in board.presence:
        staff_id = person.get("staff_id")
        name = names.get(staff_id) or str(person.get("name") or staff_id)
        parts.append(f"{name}: {load.pop(staff_id, 0)}")
    for staff_id, count in load.items():  # answering, but not connected now (a dropped link)
        parts.append(_("{name}: {n} (not connected)").format(name=names.get(staff_id) or staff_id, n=count))
    return Text.assemble((_("Consultants: "), "bold"), literal(" · ".join(parts) or _("nobody online")))


def board_summary(board: SupervisionBoard) -> str:
    """How many chats are answered, how many wait in the queue and how many consultants are online."""
    active = [c for c in board.view if c.status == "active"]
    queued = [c for c in board.view if c.status == "queued"]
    online = len(board.presence)
    return " · ".join(
        (
            ngettext("{n} chat answered", "{n} chats answered", len(active)).format(n=len(active)),
            ngettext("{n} waiting in the queue", "{n} waiting in the queue", len(queued)).format(n=len(queued)),
            ngettext("{n} consultant online", "{n} consultants online", online).format(n=online),
        )
    )


def chat_cells(c: SupervisedChat, now: datetime, timezone: str) -> tuple[Text | str, ...]:
    """One open chat's row: who handles it, since when, its last line, how long unanswered, topic and watchers."""
    status = _("waiting") if c.status == "queued" else _("answered")
    since = duration(c.waiting_since if c.status == "queued" else c.assigned_at, now)
    last = format_time(c.last_line_at, tz=timezone, seconds=True) if c.last_line_at else "—"
    unanswered = duration(c.unanswered_since, now) if c.unanswered_since else "—"
    topic = str((c.topic or {}).get(current_language()) or (c.topic or {}).get("pl") or "—")
    return (
        Text(f"#{c.chat_id} {c.lang}", "bold"),
        status,
        literal(c.consultant_name or "—"),
        since,
        last,
        unanswered,
        literal(topic),
        literal(", ".join(c.watchers) or "—"),
    )


def _highlighted_key(table: DataTable) -> str | None:
    """The key of the highlighted row, so a refresh can put the cursor back on it."""
    if table.row_count and table.cursor_row is not None and 0 <= table.cursor_row < table.row_count:
        return table.coordinate_to_cell_key(Coordinate(table.cursor_row, 0)).row_key.value
    return None


def explain(exc: LiveError) -> str:
    template = SUPERVISION_ERRORS.get(exc.code)
    return _(template).format(message=exc.message) if template else exc.message


class SupervisionScreen(CimScreen[None]):
    """Every open chat (who handles it, how long it waits, its last line) and one watched chat."""

    AUTO_FOCUS = "#sup-chats"
    DEFAULT_CSS = """
    SupervisionScreen #sup-desk { height: 1fr; }
    SupervisionScreen #sup-side { width: 3fr; }
    SupervisionScreen #sup-watch { width: 2fr; }
    SupervisionScreen #sup-connection, SupervisionScreen #sup-summary, SupervisionScreen #sup-title,
    SupervisionScreen #sup-consultants {
        height: auto; padding: 0 1; }
    SupervisionScreen #sup-chats { height: 1fr; }
    SupervisionScreen #sup-title { text-style: bold; }
    """
    BINDINGS = [
        Binding("ctrl+w", "whisper", "Whisper"),
        Binding("ctrl+t", "take_over", "Take over"),
        Binding("ctrl+e", "stop_watching", "Stop watching"),
    ]

    def __init__(self, ctx: TuiContext) -> None:
        super().__init__()
        self.ctx = ctx
        self.tz = ZoneInfo(ctx.settings.timezone)
        self.board = SupervisionBoard(staff_id=ctx.actor.staff_id)
        self.client: SupervisionClient | None = None
        self._shown: int | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="sup-desk"):
            with Vertical(id="sup-side"):
                yield Static("", id="sup-connection")
                yield Static("", id="sup-summary")
                yield Static("", id="sup-consultants")
                yield DataTable(id="sup-chats", cursor_type="row", zebra_stripes=True)
            with Vertical(id="sup-watch"):
                yield Static(_("Enter on a chat opens it read-only, after you state the purpose."), id="sup-title")
                yield Transcript(tz=self.tz, id="sup-transcript")
                yield Input(
                    placeholder=_("whisper to the consultant (only they see it), Enter sends"),
                    id="sup-whisper",
                    disabled=True,
                )
        yield Footer()

    def on_mount(self) -> None:
        self.title = _("Live chat supervision")
        table = self.query_one("#sup-chats", DataTable)
        table.add_columns(
            _("chat"),
            _("status"),
            _("consultant"),
            _("waiting / handled for"),
            _("last line"),
            _("unanswered for"),
            _("topic"),
            _("watched by"),
        )
        if self.ctx.server_url:
            retry_min, retry_max = getattr(self.app, "live_retry", (0.2, 5.0))  # as the consultants' desk
            self.client = SupervisionClient(
                self.ctx.server_url,
                self.ctx.token,
                self.board,
                self._on_live,
                retry_min=retry_min,
                retry_max=retry_max,
                clock=self.ctx.store.clock,
            )
            self.client.start()
        self.set_interval(1.0, self._refresh_table, name="supervision-times")
        self.refresh_board()

    async def on_unmount(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            client.listener = lambda event, facts: None
            await client.stop()  # the server ends the watches of this socket (and tells the consultants)

    # -- rendering -----------------------------------------------------------------------------------

    def _on_live(self, event: str, facts: dict) -> None:
        if not self.is_mounted:
            return
        if event == "monitor_ended":
            reason = ENDED_REASONS.get(str(facts.get("reason")), str(facts.get("reason")))
            self.notify(_("The watch of chat #{id} ended: {reason}.").format(id=facts.get("chat_id"), reason=_(reason)))
        elif event == "send_failed":
            self.notify(str(facts.get("message")), title=_("Whisper not sent"), severity="error")
        elif event == "supervision" and self.board.refused:
            self.notify(_("You no longer have a supervising role."), severity="error")
        self.refresh_board()

    def refresh_board(self) -> None:
        connection = self.query_one("#sup-connection", Static)
        if self.client is None:
            connection.update(_("Supervision needs the chat server: start `cim serve`, then `cim tui --server URL`."))
            self._refresh_table()  # the figures at once, not only from the first tick of the 1 s timer
            return
        connection.update(STATE_LABELS[self.board.state])
        self._refresh_table()
        self._show_watch()

    def _now(self) -> datetime:
        return self.ctx.store.clock()

    def _refresh_table(self) -> None:
        board, now = self.board, self._now()
        self.query_one("#sup-summary", Static).update(board_summary(board))
        self.query_one("#sup-consultants", Static).update(consultant_load(board))
        table = self.query_one("#sup-chats", DataTable)
        keep = _highlighted_key(table)
        table.clear()
        for c in board.view:
            table.add_row(*chat_cells(c, now, self.ctx.settings.timezone), key=str(c.chat_id))
        if keep is not None:
            try:
                table.move_cursor(row=table.get_row_index(keep))
            except Exception:  # the chat is gone from the view
                pass

    def _show_watch(self) -> None:
        board = self.board
        chat = board.chats.get(board.selected) if board.selected is not None else None
        transcript = self.query_one("#sup-transcript", Transcript)
        whisper = self.query_one("#sup-whisper", Input)
        title = self.query_one("#sup-title", Static)
        if chat is None:
            if self._shown is not None:
                transcript.show([])
            self._shown = None
            title.update(_("Enter on a chat opens it read-only, after you state the purpose."))
            whisper.disabled = True
            return
        if self._shown != chat.chat_id:
            self._shown = chat.chat_id
            transcript.show(chat.lines)
        else:
            for line in chat.lines:
                transcript.add(line)
        row = board.row(chat.chat_id)
        ended = board.ended.get(chat.chat_id)
        heading = Text.assemble(
            (_("Watching chat #{id}").format(id=chat.chat_id), "bold"), " · ", _("read-only"), " · ", _("purpose: ")
        )
        heading.append_text(literal(board.purposes.get(chat.chat_id, "")))
        if row is not None and row.consultant_name:
            heading.append(" · " + _("answering: "))
            heading.append_text(literal(row.consultant_name))
        if ended is not None:
            heading.append(
                " · " + _("the watch has ended ({reason})").format(reason=_(ENDED_REASONS.get(ended, ended))), "italic"
            )
        title.update(heading)
        whisper.disabled = ended is not None or row is None or row.status != "active"

    # -- watching ----------------------------------------------------------------------------------

    @on(DataTable.RowSelected, "#sup-chats")
    def _selected(self, event: DataTable.RowSelected) -> None:
        if event.row_key.value:
            self.start_watching(int(event.row_key.value))

    @work(exclusive=True, exit_on_error=False, group="watch")
    async def start_watching(self, chat_id: int) -> None:
        if self.client is None:
            self.notify(_("Not connected to the chat server."), severity="error")
            return
        if chat_id in self.board.chats and chat_id not in self.board.ended:
            self.board.selected = chat_id
            self.refresh_board()
            return
        purpose = await self.app.push_screen_wait(PurposeModal(_("the live chat #{id}").format(id=chat_id)))
        if purpose is None:
            return
        for other in [c for c in self.board.chats if c != chat_id]:  # one watch at a time: the previous ends
            try:
                await self.client.unmonitor(other)
            except LiveError:
                pass
        try:
            await self.client.monitor(chat_id, purpose)
        except LiveError as exc:
            self.notify(explain(exc), title=_("Chat #{id}").format(id=chat_id), severity="error")
            return
        self.refresh_board()

    def action_stop_watching(self) -> None:
        if self.board.selected is not None:
            self.stop_watching(self.board.selected)

    @work(exclusive=True, exit_on_error=False, group="watch")
    async def stop_watching(self, chat_id: int) -> None:
        if self.client is not None:
            try:
                await self.client.unmonitor(chat_id)
            except LiveError as exc:
                self.notify(explain(exc), severity="error")
        self.refresh_board()
        self.query_one("#sup-chats", DataTable).focus()

    def action_whisper(self) -> None:
        whisper = self.query_one("#sup-whisper", Input)
        if whisper.disabled:
            self.notify(_("Open a chat a consultant is answering first (Enter on it)."))
            return
        whisper.focus()

    @on(Input.Submitted, "#sup-whisper")
    def _whisper(self, event: Input.Submitted) -> None:
        text = event.value
        if not text.strip() or self.board.selected is None:
            return
        limit = self.ctx.settings.max_message_length
        if len(text) > limit:
            self.notify(
                _("The whisper has {n} characters; at most {limit} can be sent.").format(n=len(text), limit=limit),
                severity="error",
            )
            return
        self.send_whisper(self.board.selected, text)

    @work(exit_on_error=False, group="whisper")
    async def send_whisper(self, chat_id: int, text: str) -> None:
        try:
            if self.client is None:
                raise LiveError("disconnected")
            await self.client.whisper(chat_id, text)
        except LiveError as exc:  # the text stays in the line, so nothing typed is lost
            self.notify(explain(exc), title=_("Whisper not sent"), severity="error")
            return
        whisper = self.query_one("#sup-whisper", Input)
        if whisper.value == text:
            whisper.value = ""
        self.refresh_board()

    # -- taking over -------------------------------------------------------------------------------

    def _chosen(self) -> int | None:
        if self.board.selected is not None and self.board.selected not in self.board.ended:
            return self.board.selected
        table = self.query_one("#sup-chats", DataTable)
        if table.row_count and table.cursor_row is not None and 0 <= table.cursor_row < table.row_count:
            key = table.coordinate_to_cell_key(Coordinate(table.cursor_row, 0)).row_key.value
            return int(key) if key is not None else None
        return None

    def action_take_over(self) -> None:
        chat_id = self._chosen()
        if chat_id is None:
            self.notify(_("Choose a chat first."))
            return
        self.take_over(chat_id)

    @work(exclusive=True, exit_on_error=False, group="take-over")
    async def take_over(self, chat_id: int) -> None:
        row = self.board.row(chat_id)
        question = Text(
            _("Take chat #{id} over from {name}?").format(
                id=chat_id, name=row.consultant_name if row and row.consultant_name else "?"
            )
        )
        help_text = _(
            "The consultant is told; the resident reads that the conversation continues with another "
            "consultant. You then answer it under Live chats."
        )
        if not self.ctx.actor.has(Role.CONSULTANT):
            help_text += " " + _("Taking over needs the consultant role as well: the server will refuse it.")
        if not await self.app.push_screen_wait(ConfirmModal(question, help_text)):
            return
        try:
            if self.client is None:
                raise LiveError("disconnected")
            await self.client.take_over(chat_id)
        except LiveError as exc:
            self.notify(explain(exc), title=_("Not taken over"), severity="error")
            return
        self.notify(_("Chat #{id} is yours now (F2: live chats).").format(id=chat_id), title=_("Supervision"))
        self.refresh_board()

    @property
    def connected(self) -> bool:
        return self.board.state == ConnectionState.ONLINE
