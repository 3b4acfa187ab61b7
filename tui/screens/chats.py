"""Live chats for consultants: the queue, their open chats, the transcript and the reply line."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Footer, Header, Input, OptionList, Static
from textual.widgets.option_list import Option

from store.chats import CLOSE_CATEGORIES
from store.desk import staff_topic_label as topic_label
from store.i18n import N_, _, ngettext
from tui.context import TuiContext
from tui.app import CimApp
from tui.live import (
    STATE_LABELS,
    ConnectionState,
    Desk,
    Live,
    LiveChat,
    LiveClient,
    LiveError,
    LiveMessage,
    copy_message,
)
from tui.screens.base import CimScreen
from tui.widgets.composer import Composer
from tui.widgets.literal import literal
from tui.widgets.modals import CannedModal, CloseChatModal, TransferModal
from tui.widgets.transcript import Transcript
from tui.words import CHAT_STATUS_LABELS, CLOSE_CATEGORY_LABELS, word


def waited(since: datetime | None, now: datetime) -> str:
    if since is None:
        return "--:--"
    seconds = max(0, int((now - since).total_seconds()))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60:02d}:{rest % 60:02d}"


class ChatsScreen(CimScreen[None]):
    """The consultant's desk. The app relays the live client's messages (tui/live/messages.py) here, where
    `@on(Live.X)` handlers show them; actions go to the LiveClient, and a refusal is told where it happened."""

    AUTO_FOCUS = "#composer"

    BINDINGS = [
        # Ctrl keys the reply line does not use, and F8: F1-F7, F9 and F12 switch areas app-wide
        # (tui/areas.py), and a key here would shadow them while this screen is shown.
        Binding("ctrl+g", "accept", "Accept"),
        Binding("ctrl+r", "canned", "Canned"),
        Binding("ctrl+t", "transfer", "Transfer"),
        Binding("f8", "close_chat", "Close"),
        Binding("ctrl+b", "availability", "Away"),
        Binding("ctrl+y", "decline", "Decline", show=False),
        # in the keys panel (command palette: "Keys"), left out of the footer for 80 columns
        Binding("ctrl+pageup", "previous_chat", "Previous chat", show=False),
        Binding("ctrl+n,ctrl+pagedown", "next_chat", "Next chat", show=False),
        Binding("ctrl+o", "offline_messages", N_("Offline messages"), show=False),  # tui/screens/offline.py
    ]

    def __init__(self, ctx: TuiContext) -> None:
        super().__init__()
        self.ctx = ctx
        self.tz = ZoneInfo(ctx.settings.timezone)
        self._shown_chat: int | None = None
        self._refresh_due = False

    @property
    def cim_app(self) -> CimApp | None:
        """The staff app (None when the screen is shown on its own, as in a test: then without live chats)."""
        return self.app if isinstance(self.app, CimApp) else None

    @property
    def desk(self) -> Desk | None:
        return self.cim_app.desk if self.cim_app is not None else None

    @property
    def live(self) -> LiveClient | None:
        return self.cim_app.live if self.cim_app is not None else None

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="desk"):
            with Vertical(id="sidebar"):
                yield Static("", id="connection")
                yield Static(_("Queue"), id="queue-title", classes="section")
                yield OptionList(id="queue")
                offline = Static("", id="offline-count", classes="section")
                offline.display = False  # shown while offline messages wait (refresh_offline_count)
                yield offline
                yield Static(_("My chats"), id="mine-title", classes="section")
                yield OptionList(id="my-chats")
                yield Static("", id="presence")
            with Vertical(id="conversation"):
                yield Static("", id="chat-title")
                yield Transcript(tz=self.tz, id="transcript")
                yield Static("", id="typing")
                yield Composer(id="composer")
        yield Footer()

    def on_mount(self) -> None:
        if self.cim_app is not None:
            self.cim_app.live_signal.subscribe(self, self._relayed)
        self.set_interval(1.0, self._refresh_queue, name="waiting-times")
        self.refresh_desk()
        self.set_interval(10.0, self.refresh_offline_count, name="offline-count")
        self.refresh_offline_count()

    # -- rendering ---------------------------------------------------------------------------------

    def _relayed(self, message: LiveMessage) -> None:
        """Every change of the desk: its message (a copy: the app handles the original) to the handlers
        below, then the desk shown again."""
        self.post_message(copy_message(message))
        if not self._refresh_due:  # a burst of changes (a reconnect, a resident leaving) is shown once
            self._refresh_due = True
            self.call_later(self._refresh_now)

    def _refresh_now(self) -> None:
        self._refresh_due = False
        self.refresh_desk()

    @on(Live.Sent)
    def _resent(self, message: Live.Sent) -> None:
        composer = self.query_one("#composer", Composer)
        if message.chat_id == self._shown_chat and composer.value == message.text:
            composer.set_draft("")  # resent after a reconnect: the reply line had it

    @on(Live.SendFailed)
    def _not_resent(self, message: Live.SendFailed) -> None:
        self.notify(message.message, title=_("Not sent (chat #{id})").format(id=message.chat_id), severity="error")

    def refresh_desk(self) -> None:
        desk = self.desk
        connection = self.query_one("#connection", Static)
        if desk is None:
            connection.update(_("○ no chat server"))
            self.query_one("#chat-title", Static).update(
                _("Live chats need the chat server: start `cim serve`, then `cim tui --server URL`.")
            )
            self.query_one("#composer", Composer).disabled = True
            return
        connection.update(
            _(STATE_LABELS[desk.state]) + (" · " + _("away: no new chats") if desk.availability == "away" else "")
        )
        connection.set_class(desk.state == ConnectionState.ONLINE, "online")
        connection.set_class(desk.state != ConnectionState.ONLINE, "offline")
        self._refresh_queue()
        self._refresh_mine()
        others = desk.others_online()
        names = ", ".join(str(c.get("name") or c.get("staff_id")) for c in others) or _("nobody else")
        self.query_one("#presence", Static).update(literal(_("Online: {names}").format(names=names)))
        self._show_selected()

    def _now(self) -> datetime:
        return self.ctx.store.clock()

    def _refresh_queue(self) -> None:
        desk = self.desk
        if desk is None:
            return
        now = self._now()
        self.query_one("#queue-title", Static).update(
            _("Queue ({n})").format(n=max(len(desk.queue), desk.queue_total))
        )  # a long queue: its total
        options = [
            Option(
                Text.assemble(
                    (f"#{q.chat_id}", "bold"),
                    f" {q.lang}  ",
                    (waited(q.waiting_since, now), ""),
                    literal(f"  {topic_label(q.topic)}" if q.topic else ""),
                ),
                id=str(q.chat_id),
            )
            for q in desk.queue
        ]
        self._replace(self.query_one("#queue", OptionList), options)

    def _refresh_mine(self) -> None:
        desk = self.desk
        assert desk is not None
        self.query_one("#mine-title", Static).update(_("My chats ({n})").format(n=len(desk.chats)))
        options = []
        for chat in desk.chats.values():
            label = Text.assemble((f"#{chat.chat_id}", "bold"), f" {chat.lang}")
            if chat.unread:
                label.append(
                    "  (" + ngettext("{n} new", "{n} new", chat.unread).format(n=chat.unread) + ")", "bold reverse"
                )
            if chat.status != "active":
                label.append(f"  {word(CHAT_STATUS_LABELS, chat.status)}", "italic")
            elif chat.resident_typing:
                label.append("  ✎")
            options.append(Option(label, id=str(chat.chat_id)))
        mine = self.query_one("#my-chats", OptionList)
        self._replace(mine, options, keep=str(desk.selected) if desk.selected else None)

    @staticmethod
    def _replace(option_list: OptionList, options: list[Option], keep: str | None = None) -> None:
        highlighted = keep
        if highlighted is None and option_list.highlighted is not None and option_list.option_count:
            highlighted = option_list.get_option_at_index(option_list.highlighted).id
        with option_list.prevent(OptionList.OptionHighlighted):
            option_list.clear_options()
            option_list.add_options(options)
            ids = [o.id for o in options]
            if highlighted in ids:
                option_list.highlighted = ids.index(highlighted)
            elif options:
                option_list.highlighted = 0

    def _selected_chat(self) -> LiveChat | None:
        desk = self.desk
        if desk is None or desk.selected is None:
            return None
        return desk.chats.get(desk.selected)

    def _show_selected(self) -> None:
        chat = self._selected_chat()
        transcript = self.query_one("#transcript", Transcript)
        composer = self.query_one("#composer", Composer)
        title = self.query_one("#chat-title", Static)
        typing = self.query_one("#typing", Static)
        if chat is None:
            if self._shown_chat is not None:
                transcript.show([])
            self._shown_chat = None
            title.update(_("No open chat. Accept one from the queue (Ctrl+G)."))
            typing.update("")
            composer.set_draft("")
            composer.disabled = True
            return
        was_disabled = composer.disabled
        composer.disabled = chat.status != "active"
        if was_disabled and not composer.disabled and not isinstance(self.focused, Input):
            # a chat became active here (accepted, transferred to us, back after a reconnect): keys
            # typed from now on go to its reply line, not to a list that ignores them
            composer.focus()
        if self._shown_chat != chat.chat_id:
            self._shown_chat = chat.chat_id
            transcript.show(chat.lines)
            composer.set_draft(chat.draft)
        else:
            for line in chat.lines:
                transcript.add(line)
        if self.desk is not None:
            self.desk.select(chat.chat_id)
        state = (
            _("the resident left; F8 closes it with a category")
            if chat.status == "left"
            else word(CHAT_STATUS_LABELS, chat.status)
        )
        heading = Text.assemble(
            (_("Chat #{id}").format(id=chat.chat_id), "bold"),
            f" · {chat.lang} · {state}",
            literal(f" · {topic_label(chat.topic)}" if chat.topic else ""),
        )
        heading.append_text(supervised_label(chat))
        title.update(heading)
        typing.update(_("The resident is typing…") if chat.resident_typing else "")

    # -- choosing chats ---------------------------------------------------------------------------

    @on(OptionList.OptionHighlighted, "#my-chats")
    def _highlight_mine(self, event: OptionList.OptionHighlighted) -> None:
        if self.desk is not None and event.option.id:
            self.desk.select(int(event.option.id))
            self._show_selected()
            self._refresh_mine()

    @on(OptionList.OptionSelected, "#my-chats")
    def _select_mine(self, event: OptionList.OptionSelected) -> None:
        self.query_one("#composer", Composer).focus()

    @on(OptionList.OptionSelected, "#queue")
    def _select_queued(self, event: OptionList.OptionSelected) -> None:
        if event.option.id:
            self.accept(int(event.option.id))

    def _step(self, offset: int) -> None:
        desk = self.desk
        if desk is None or not desk.chats:
            return
        ids = list(desk.chats)
        index = ids.index(desk.selected) if desk.selected in ids else 0
        desk.select(ids[(index + offset) % len(ids)])
        self.refresh_desk()

    def action_previous_chat(self) -> None:
        self._step(-1)

    def action_next_chat(self) -> None:
        self._step(1)

    # -- actions -------------------------------------------------------------------------------------

    def action_accept(self) -> None:
        desk = self.desk
        if desk is None or not desk.queue:
            self.notify(_("Nobody is waiting in the queue."))
            return
        queue = self.query_one("#queue", OptionList)
        index = queue.highlighted if queue.highlighted is not None else 0
        chosen = queue.get_option_at_index(index).id if queue.option_count else str(desk.queue[0].chat_id)
        self.accept(int(chosen or desk.queue[0].chat_id))

    @work(exclusive=True, exit_on_error=False, group="accept")
    async def accept(self, chat_id: int) -> None:
        live = self.live
        if live is None:
            self.notify(_("Not connected to the chat server."), severity="error")
            return
        try:
            await live.accept(chat_id)
        except LiveError as exc:
            self.notify(exc.message, title=_("Chat #{id}").format(id=chat_id), severity="error")
            return
        if self.desk is not None:
            self.desk.select(chat_id)
        self.refresh_desk()
        self.query_one("#composer", Composer).focus()

    @on(Input.Changed, "#composer")
    def _keep_draft(self, event: Input.Changed) -> None:
        chat = self._selected_chat()
        if chat is not None and self._shown_chat == chat.chat_id:
            chat.draft = event.value

    @on(Composer.Sent)
    def _sent(self, event: Composer.Sent) -> None:
        chat = self._selected_chat()
        if chat is None:
            return
        limit = self.ctx.settings.max_message_length
        if len(event.text) > limit:
            self.notify(
                _("The reply has {n} characters; at most {limit} can be sent. Shorten it or split it.").format(
                    n=len(event.text), limit=limit
                ),
                severity="error",
            )
            return
        self.send(chat.chat_id, event.text)

    @work(exit_on_error=False, group="send")
    async def send(self, chat_id: int, text: str) -> None:
        live = self.live
        try:
            if live is None:
                raise LiveError("disconnected")
            seq = await live.send(chat_id, text)
        except LiveError as exc:
            # the draft stays in the reply line, so nothing typed is lost
            self.notify(exc.message, title=_("Not sent"), severity="error")
            return
        chat = self.desk.chats.get(chat_id) if self.desk else None
        if seq:
            self.refresh_desk()  # the LiveClient placed our line on the desk by the ack's seq
        if chat is not None and chat.draft == text:
            chat.draft = ""
            if self._shown_chat == chat_id:
                self.query_one("#composer", Composer).set_draft("")

    @on(Composer.Typing)
    def _typing(self, event: Composer.Typing) -> None:
        chat = self._selected_chat()
        live = self.live
        if chat is not None and live is not None:
            self.run_worker(live.typing(chat.chat_id, event.active), group="typing", exit_on_error=False)

    def action_canned(self) -> None:
        if self._selected_chat() is None:
            self.notify(_("Open a chat first."))
            return
        self.load_canned()

    @work(exclusive=True, exit_on_error=False, group="canned")
    async def load_canned(self) -> None:
        responses = await canned_responses(self.ctx)  # a refusal (CimError): told by the base screen
        text = await self.app.push_screen_wait(CannedModal(responses))
        if text:
            composer = self.query_one("#composer", Composer)
            composer.insert_text_at_cursor(text)
            composer.focus()

    def action_transfer(self) -> None:
        chat = self._selected_chat()
        if chat is None or self.desk is None:
            self.notify(_("Open a chat first."))
            return
        self.transfer(chat.chat_id, self.desk.others_online())

    @work(exclusive=True, exit_on_error=False, group="transfer")
    async def transfer(self, chat_id: int, consultants: list[dict]) -> None:
        to_staff_id = await self.app.push_screen_wait(TransferModal(chat_id, consultants))
        if to_staff_id is None:
            return
        live = self.live
        try:
            if live is None:
                raise LiveError("disconnected")
            await live.transfer(chat_id, to_staff_id)
        except LiveError as exc:
            self.notify(exc.message, title=_("Not transferred"), severity="error")
            return
        name = next((c.get("name") for c in consultants if c.get("staff_id") == to_staff_id), to_staff_id)
        self.notify(_("Chat #{id} transferred to {name}.").format(id=chat_id, name=name))
        self.refresh_desk()  # the LiveClient took it off the desk

    def action_availability(self) -> None:
        desk = self.desk
        if desk is None:
            return
        self.set_availability("available" if desk.availability == "away" else "away")

    @work(exclusive=True, exit_on_error=False, group="availability")
    async def set_availability(self, status: str) -> None:
        live = self.live
        try:
            if live is None:
                raise LiveError("disconnected")
            await live.set_availability(status)
        except LiveError as exc:
            self.notify(exc.message, severity="error")
            return
        self.notify(
            _("You are away: no new chats come to you.") if status == "away" else _("You are available for new chats.")
        )
        self.refresh_desk()

    def action_decline(self) -> None:
        chat = self._selected_chat()
        if chat is None or chat.status != "active":
            self.notify(_("Open a chat first."))
            return
        self.decline(chat.chat_id)

    @work(exclusive=True, exit_on_error=False, group="decline")
    async def decline(self, chat_id: int) -> None:
        live = self.live
        try:
            if live is None:
                raise LiveError("disconnected")
            await live.decline(chat_id)
        except LiveError as exc:
            self.notify(exc.message, title=_("Not declined"), severity="error")
            return
        self.notify(_("Chat #{id} declined: it goes to another consultant.").format(id=chat_id))
        self.refresh_desk()

    def action_close_chat(self) -> None:
        chat = self._selected_chat()
        if chat is None or self.desk is None:
            self.notify(_("Open a chat first."))
            return
        if chat.status not in ("active", "left"):  # closed elsewhere (seen after a reconnect): nothing to record
            self.desk.drop(chat.chat_id)
            self.refresh_desk()
            return
        # a chat the resident left is closed already but still needs its category, like any other close
        self.close_chat(chat.chat_id)

    @work(exclusive=True, exit_on_error=False, group="close")
    async def close_chat(self, chat_id: int) -> None:
        category = await self.app.push_screen_wait(CloseChatModal(chat_id, CLOSE_CATEGORIES))
        if category is None:
            return
        live = self.live
        try:
            if live is None:
                raise LiveError("disconnected")
            await live.close(chat_id, category)
        except LiveError as exc:
            if exc.code not in ("closed", "not_found"):
                self.notify(exc.message, title=_("Not closed"), severity="error")
                return
        self.notify(
            _("Chat #{id} closed ({category}).").format(id=chat_id, category=word(CLOSE_CATEGORY_LABELS, category))
        )
        if self.desk is not None:
            self.desk.drop(chat_id)
        self.refresh_desk()

    # -- offline messages (issue 17): the count under the queue, the list on Ctrl+O --------------------

    @work(exclusive=True, exit_on_error=False, group="offline-count")
    async def refresh_offline_count(self) -> None:
        n = await self.ctx.store.resident_desk.waiting_count()
        label = self.query_one("#offline-count", Static)
        label.update(
            ngettext("{n} offline message (Ctrl+O)", "{n} offline messages (Ctrl+O)", n).format(n=n) if n else ""
        )
        label.display = bool(n)

    def action_offline_messages(self) -> None:
        from tui.screens.offline import OfflineMessagesScreen

        def closed(_result: None) -> None:
            self.refresh_offline_count()

        self.app.push_screen(OfflineMessagesScreen(self.ctx), closed)


async def canned_responses(ctx: TuiContext) -> list[tuple[str, str]]:
    """(title, text) of the canned responses the CIM manager keeps, placeholders filled (store.chats.fill_canned)."""
    return [(c.title, c.text) for c in await ctx.store.chats.canned_filled(ctx.actor)]


def supervised_label(chat: LiveChat) -> Text:
    """§3, no silent monitoring: while a supervisor watches the chat, its consultant sees by whom."""
    if not chat.supervised_by:
        return Text()
    return Text.assemble("  ", (_("supervised by {names}").format(names=", ".join(chat.supervised_by)), "bold reverse"))
