"""The staff terminal UI: `make_app(...)` builds it for `cim tui`, `cim demo` and the tests alike."""

from __future__ import annotations

import asyncio
import logging
from contextlib import AsyncExitStack
from typing import Any, AsyncContextManager, Callable, Iterable, Sequence

from textual import events, on, work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.command import CommandPalette
from textual.screen import Screen
from textual.signal import Signal

from store import Store
from store.clock import Clock, system_clock
from store.errors import CimError, SessionExpired
from store.models import Session
from store.policy import Permission, allowed
from store.i18n import N_, _, current_language, ngettext, set_language
from store.settings import Settings
from tui.screens.base import translate_bindings
from tui.areas import AREAS, Area, areas_for
from tui.context import TuiContext
from tui.live import STATE_LABELS, STOP_TIMEOUT, ConnectionState, Desk, Live, LiveClient, LiveMessage, release_reason
from tui.live.errors import session_ended_text
from tui.screens.home import HomeScreen
from tui.screens.login import LoginScreen
from tui.widgets.command_palette import StaffCommandPalette
from tui.widgets.help_panel import StaffHelpPanel
from tui.widgets.worker_errors import ReportsWorkerErrors

log = logging.getLogger(__name__)

#: Seconds from confirming Ctrl+Q to the app exiting, at most (a dead link or a stalled database too): one
#: deadline the session's revocation and the live link's stop share (`_leave`), not waits added one to another.
QUIT_DEADLINE = 0.8
#: Of QUIT_DEADLINE, at most this long for revoking the session in the store; the live link gets what is left
#: (STOP_TIMEOUT when the revocation took it all: LOGOUT_TIMEOUT + STOP_TIMEOUT <= QUIT_DEADLINE).
LOGOUT_TIMEOUT = 0.3

#: Textual's own command-palette key in the footer ("palette"): translated with the app's other bindings.
PALETTE = N_("palette")
PALETTE_TOOLTIP = N_("Open the command palette")

#: Textual's own command-palette entries (textual 8.2.8 App.get_system_commands), in its English words: the
#: msgids under which CimApp.get_system_commands shows them in the staff language. A title or help text
#: Textual adds or rewords later is shown as Textual writes it (English) until it is listed here.
TEXTUAL_COMMANDS = (
    N_("Theme"),
    N_("Change the current theme"),
    N_("Quit"),
    N_("Quit the application as soon as possible"),
    N_("Keys"),
    N_("Hide the keys and widget help panel"),
    N_("Show help for the focused widget and a summary of available keys"),
    N_("Minimize"),
    N_("Minimize the widget and restore to normal size"),
    N_("Maximize"),
    N_("Maximize the focused widget"),
    N_("Screenshot"),
    N_("Save an SVG 'screenshot' of the current screen"),
)
SEARCH_COMMANDS = N_("Search for commands…")
SEARCH_THEMES = N_("Search for themes…")

#: Something started with the store before sign-in and stopped when the app ends (`cim demo`'s server).
Service = Callable[[Store], AsyncContextManager[object]]


class CimApp(ReportsWorkerErrors, App[None]):
    """Sign-in, home navigation from tui/areas.py, and the live-chat connection of a consultant."""

    CSS_PATH = "app.tcss"
    TITLE = "CIM"
    BINDINGS = [
        Binding("f1", "home", "Home"),
        Binding("f12", "sign_out", "Sign out"),
        # not in the footer (its keys are the areas'); the live-chats screen keeps F8 for closing a chat
        Binding("ctrl+u", "my_account", "My account", show=False),  # F8 is the service report (tui/areas.py)
    ]

    def __init__(
        self,
        settings: Settings,
        *,
        store: Store | None = None,
        server_url: str | None = None,
        clock: Clock = system_clock,
        services: Sequence[Service] = (),
        banner: str = "",
        session_check_seconds: float = 30.0,
        live_retry: tuple[float, float] = (0.2, 5.0),
    ) -> None:
        super().__init__()
        #: the bindings in their English source (Textual's command-palette key included), to translate again
        self._source_bindings = self._bindings.copy()
        translate_bindings(self)
        self.settings = settings
        self.store: Store | None = store
        self._owns_store = store is None
        self.server_url = server_url
        self.clock = clock
        self.services = list(services)
        self.banner = banner
        self.session_check_seconds = session_check_seconds
        self.live_retry = live_retry
        self.ctx: TuiContext | None = None
        #: The consultant's live chats and their connection (tui/live/), while a consultant is signed in.
        self.desk: Desk | None = None
        self.live: LiveClient | None = None
        #: Every live message (tui/live/messages.py) after the app saw it; the chats screen subscribes.
        self.live_signal: Signal[LiveMessage] = Signal(self, "live")
        self._exit_stack = AsyncExitStack()
        self._active_since_check = False
        self._bound_keys: set[str] = set()
        #: The chats the residents left that the person was told wait for their category (once each).
        self._told_uncategorised: set[int] = set()

    # -- start and stop --------------------------------------------------------------------------

    async def on_mount(self) -> None:
        if self.store is None:
            self.store = await Store.open(self.settings, clock=self.clock)
        for service in self.services:
            await self._exit_stack.enter_async_context(service(self.store))
        self.set_interval(self.session_check_seconds, self.check_session, name="session-check")
        await self.push_screen(LoginScreen(self.store, banner=self.banner))

    async def on_unmount(self) -> None:
        await self._stop_live()
        await self._exit_stack.aclose()
        if self._owns_store and self.store is not None:
            await self.store.close()

    # -- signing in and out ------------------------------------------------------------------------

    @on(LoginScreen.SignedIn)
    async def _signed_in(self, event: LoginScreen.SignedIn) -> None:
        await self.start_session(event.session)

    async def start_session(self, session: Session) -> None:
        assert self.store is not None
        actor = session.staff.as_actor()
        self.ctx = TuiContext(
            store=self.store, settings=self.settings, actor=actor, token=session.token, server_url=self.server_url
        )
        self._bind_areas()
        if self.server_url and allowed(actor, Permission.HANDLE_CHATS):
            self._told_uncategorised = set()
            self.desk = Desk(staff_id=actor.staff_id)
            self.live = LiveClient(
                self.server_url,
                session.token,
                self.desk,
                self._post_live,
                retry_min=self.live_retry[0],
                retry_max=self.live_retry[1],
                clock=self.clock,
            )
            self.run_worker(self.live.run(), name="live-client", group="live", exit_on_error=False)
        # the person's own language (My account) wins over CIM_STAFF_LANG from here until sign-out
        set_language(session.staff.language)
        self._retranslate()
        self._update_sub_title()
        await self.switch_screen(HomeScreen(self.ctx, areas_for(actor), banner=self.banner))

    async def change_language(self, language: str | None) -> None:
        """After the person chose a language (My account): every screen is built again in it."""
        if self.ctx is None:
            return
        set_language(language)
        self._retranslate()
        self._update_sub_title()
        while len(self.screen_stack) > 2:
            await self.pop_screen()
        await self.switch_screen(HomeScreen(self.ctx, areas_for(self.ctx.actor), banner=self.banner))
        from tui.screens.account import LANGUAGE_NAMES, AccountScreen

        await self.push_screen(AccountScreen(self.ctx))
        self.notify(_("Your screens now speak {language}.").format(language=_(LANGUAGE_NAMES[current_language()])))

    def _retranslate(self) -> None:
        """The app's key descriptions (footer, keys panel) again from their English source, in today's language."""
        self._bindings = self._source_bindings.copy()
        translate_bindings(self)
        self._bound_keys = set()
        self._bind_areas()
        self.refresh_bindings()

    async def end_session(self, notice: str = "", *, logout: bool = True) -> None:
        """Back to the sign-in screen; with `logout` the session is revoked in the store too."""
        ctx, self.ctx = self.ctx, None
        # signed out before the live connection closes: the chat server then sees a socket whose session
        # ended (not a dropped network) and returns this consultant's open chats to the queue
        if ctx is not None and logout and self.store is not None:
            try:
                await self.store.accounts.logout(ctx.token)
            except CimError as exc:
                log.warning("logout failed: %s", exc.message)
        await self._stop_live()
        # app.sub_title is left alone here: a Header of a screen still being removed fails when the
        # sub-title changes under it (textual 8.2.8); the login screen shows its own empty sub-title.
        while len(self.screen_stack) > 1:
            await self.pop_screen()
        set_language(None)  # the next person signs in to the office's language
        self._retranslate()
        assert self.store is not None
        await self.push_screen(LoginScreen(self.store, notice=notice, banner=self.banner))

    async def _stop_live(self, timeout: float = STOP_TIMEOUT) -> None:
        live, self.live = self.live, None
        self.desk = None
        if live is not None:
            live.post = lambda message: None  # no UI updates from a connection being torn down
            await live.stop(timeout)

    def _bind_areas(self) -> None:
        # Every area's key is bound once; check_action hides the ones the actor may not use.
        for area in AREAS:
            if area.binding and area.binding not in self._bound_keys:
                self.bind(area.binding, f"open_area('{area.key}')", description=_(area.title))
                self._bound_keys.add(area.binding)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("home", "sign_out", "open_area", "my_account") and self.ctx is None:
            return False
        if action == "open_area":
            area = self._area(str(parameters[0])) if parameters else None
            return area is not None and self.ctx is not None and area.visible_to(self.ctx.actor)
        return True

    def _area(self, key: str) -> Area | None:
        return next((a for a in AREAS if a.key == key), None)

    # -- navigation ----------------------------------------------------------------------------------

    @on(HomeScreen.OpenArea)
    async def _open_from_home(self, event: HomeScreen.OpenArea) -> None:
        await self.action_open_area(event.key)

    async def action_open_area(self, key: str) -> None:
        area = self._area(key)
        if self.ctx is None or area is None or not area.visible_to(self.ctx.actor):
            self.notify(_("You are not permitted to open that area."), severity="error")
            return
        await self._to_home()
        try:
            screen = area.screen_class()(self.ctx)
        except Exception as exc:  # another area's screen failing to build must not end the session
            log.exception("cannot open area %s", key)
            self.notify(_("Cannot open {area}: {error}").format(area=_(area.title), error=exc), severity="error")
            return
        await self.push_screen(screen)

    async def _to_home(self) -> None:
        while len(self.screen_stack) > 2 and not isinstance(self.screen, HomeScreen):
            await self.pop_screen()

    async def action_home(self) -> None:
        await self._to_home()

    async def action_my_account(self) -> None:
        """The person's own password and second factor (tui/screens/account.py)."""
        if self.ctx is None:
            return
        from tui.screens.account import AccountScreen

        await self._to_home()
        await self.push_screen(AccountScreen(self.ctx))

    async def action_sign_out(self) -> None:
        await self.end_session(_("You have signed out."))

    async def action_quit(self) -> None:
        """Ctrl+Q: with chats still open the person is asked first (they return to the queue)."""
        from tui.widgets.modals import ConfirmModal

        open_chats = [c for c in self.desk.chats.values() if c.status == "active"] if self.desk else []
        uncategorised = self.desk.uncategorised() if self.desk else []
        if (open_chats or uncategorised) and not isinstance(self.screen, ConfirmModal):
            self._confirm_quit(len(open_chats), len(uncategorised))
            return
        await self._leave()

    async def _leave(self) -> None:
        """Quit: the session is revoked first, so the chat server ends this person's live sockets and returns
        their open chats to the queue at once (not only after the idle timeout); then the live link stops
        (tui/live/client.py `stop`) and the app exits. Both within one deadline, QUIT_DEADLINE: the revocation
        gets at most LOGOUT_TIMEOUT, the stop what is left of the deadline."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + QUIT_DEADLINE
        ctx, self.ctx = self.ctx, None
        if ctx is not None and self.store is not None:
            try:
                await asyncio.wait_for(self.store.accounts.logout(ctx.token), LOGOUT_TIMEOUT)
            except CimError as exc:
                log.warning("logout on quit failed: %s", exc.message)
            except asyncio.TimeoutError:  # a locked database: the session expires by itself, the sockets drop below
                log.warning("logout on quit took over %.1f s; quitting without it", LOGOUT_TIMEOUT)
        await self._stop_live(timeout=max(0.0, deadline - loop.time()))
        self.exit()

    @work(exclusive=True, exit_on_error=False, group="quit")
    async def _confirm_quit(self, count: int, uncategorised: int = 0) -> None:
        from tui.widgets.modals import ConfirmModal

        if not uncategorised:
            question = ngettext(
                "You have {n} open chat; quit CIM anyway?", "You have {n} open chats; quit CIM anyway?", count
            ).format(n=count)
        else:
            # issue 16: the chats the residents left are counted too; they wait for their category (F8)
            without = ngettext("{n} chat without a category", "{n} chats without a category", uncategorised).format(
                n=uncategorised
            )
            if count:
                opened = ngettext("{n} open chat", "{n} open chats", count).format(n=count)
                question = _("You have {open} and {uncategorised}; quit CIM anyway?").format(
                    open=opened, uncategorised=without
                )
            else:
                question = _("You have {uncategorised}; quit CIM anyway?").format(uncategorised=without)
        helps = []
        if count:
            helps.append(_("Your session ends and the chats return to the queue for a colleague."))
        if uncategorised:
            helps.append(
                ngettext(
                    "The chat without a category waits for it at your next sign-in (F8).",
                    "The chats without a category wait for theirs at your next sign-in (F8).",
                    uncategorised,
                )
            )
        if await self.push_screen_wait(ConfirmModal(question, " ".join(helps))):
            await self._leave()

    def action_show_help_panel(self) -> None:
        """The keys panel, its descriptions in the staff language (tui/widgets/help_panel.py)."""
        if not self.screen.query(StaffHelpPanel):
            self.screen.mount(StaffHelpPanel())

    def action_command_palette(self) -> None:
        """Ctrl+P: Textual's command palette, its search line in the staff language."""
        # Textual types is_open's app as App[object] (App is invariant in its result type), so no App[None] fits
        if self.use_command_palette and not CommandPalette.is_open(self):  # type: ignore[arg-type]
            self.push_screen(StaffCommandPalette(id="--command-palette", placeholder=_(SEARCH_COMMANDS)))

    def search_themes(self) -> None:
        """The palette's "Theme" entry: Textual's theme list, its search line in the staff language."""
        from textual.theme import ThemeProvider

        self.push_screen(StaffCommandPalette(providers=[ThemeProvider], placeholder=_(SEARCH_THEMES)))

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        """The palette (Ctrl+P): Textual's own entries (TEXTUAL_COMMANDS) and CIM's, all in the staff language."""
        for command in super().get_system_commands(screen):
            yield command._replace(title=_(command.title), help=_(command.help))
        if self.ctx is None:
            return
        yield SystemCommand(_("Home"), _("Back to the list of areas (F1)"), self.action_home)
        for area in areas_for(self.ctx.actor):
            title = _(area.title)
            help = (
                _("Go to {area} ({key})").format(area=title, key=area.binding.upper())
                if area.binding
                else _("Go to {area}").format(area=title)
            )
            yield SystemCommand(
                _("Open {area}").format(area=title),
                help,
                lambda key=area.key: self.run_worker(self.action_open_area(key)),
            )
        yield SystemCommand(
            _("My account"),
            _("Password, second factor, language (Ctrl+U)"),
            lambda: self.run_worker(self.action_my_account()),
        )
        yield SystemCommand(_("Sign out"), _("End your CIM session (F12)"), self.action_sign_out)

    # -- session expiry ----------------------------------------------------------------------------

    async def on_event(self, event: events.Event) -> None:
        if isinstance(event, (events.Key, events.MouseDown)):
            self._active_since_check = True
        await super().on_event(event)

    async def check_session(self, *, force: bool = False) -> bool:
        """Refresh the session if the person was active; an expired session returns to sign-in.

        An idle person is not refreshed, so the store's idle timeout still applies; the expiry is
        noticed at their next keystroke (within one check interval).
        """
        if self.ctx is None or self.store is None or not (force or self._active_since_check):
            return True
        self._active_since_check = False
        try:
            await self.store.accounts.authenticate(self.ctx.token)
        except SessionExpired as exc:
            await self.end_session(_("Your session has ended ({reason}).").format(reason=exc.message), logout=False)
            return False
        if self.live is not None:  # the chat server's idle timeout counts the same work (docs/PROTOCOL.md)
            await self.live.activity()
        return True

    # -- live chats ---------------------------------------------------------------------------------

    def _post_live(self, message: LiveMessage) -> None:
        """The LiveClient's sink (in the event loop, after it changed the desk): the app's handlers below
        give the notices; the screens that follow the desk get the message through `live_signal`."""
        self.post_message(message)
        self.live_signal.publish(message)

    @on(Live.SessionEnded)
    def _live_session_ended(self, message: Live.SessionEnded) -> None:
        self._session_ended(message.code)

    @on(Live.ConnectionChanged)
    def _live_connection(self, message: Live.ConnectionChanged) -> None:
        if self.live is None:  # from a connection stopped since (signed out): nothing to show
            return
        if message.state != ConnectionState.REFUSED:
            self._update_sub_title()
        elif not self.live.ended:  # else session_ended said why; its worker handles it
            # the sub-title waits: if the session is dead the screens are about to go, and a
            # Header refreshing while its screen is removed fails
            self._refused()

    @on(Live.QueueChanged)
    def _live_queue(self, message: Live.QueueChanged) -> None:
        if message.new:
            self.bell()
            count = len(message.new)
            self.notify(
                ngettext(
                    "{n} new chat waiting in the queue (F2: live chats).",
                    "{n} new chats waiting in the queue (F2: live chats).",
                    count,
                ).format(n=count),
                title=_("New chat"),
            )

    @on(Live.ChatAssigned)
    def _live_assigned(self, message: Live.ChatAssigned) -> None:
        if message.by:
            self.bell()
            self.notify(_("Chat #{id} was transferred to you.").format(id=message.chat_id), title=_("Transfer"))
        elif message.taken_over:  # §3: a supervisor took it over and handles it now
            self.notify(
                _("Chat #{id} is yours now (F2: live chats).").format(id=message.chat_id), title=_("Supervision")
            )
        elif message.auto:  # auto mode (webchat/routing.py): Ctrl+Y declines
            self.bell()
            self.notify(
                _("Chat #{id} was given to you (Ctrl+Y declines it once).").format(id=message.chat_id),
                title=_("New chat"),
            )

    @on(Live.Released)
    def _live_released(self, message: Live.Released) -> None:
        if message.reason == "taken_over":  # §3
            self.bell()
            self.notify(
                _("Chat #{id} was taken over by {name} (supervision).").format(
                    id=message.chat_id, name=message.by_name or "?"
                ),
                title=_("Supervision"),
                severity="warning",
            )
        elif message.reason == "resident_left":
            self._told_uncategorised.add(message.chat_id)
            self.notify(
                _("The resident left chat #{id}. F8 closes it with a category.").format(id=message.chat_id),
                severity="warning",
            )
        elif message.reason not in ("", "closed", "transferred"):
            self.notify(
                _("Chat #{id} is no longer yours ({reason}).").format(
                    id=message.chat_id, reason=release_reason(message.reason)
                )
            )

    @on(Live.Resynced)
    def _live_resynced(self, message: Live.Resynced) -> None:
        """Connected (again): the chats the residents left that still wait for a category (issue 16), told once."""
        if self.desk is None:
            return
        waiting = {c.chat_id for c in self.desk.uncategorised()}
        new = waiting - self._told_uncategorised
        self._told_uncategorised |= waiting
        if new:
            self.notify(
                ngettext(
                    "{n} chat the resident left waits for its category: F2, then F8.",
                    "{n} chats the residents left wait for their category: F2, then F8 on each.",
                    len(new),
                ).format(n=len(new)),
                severity="warning",
            )

    @on(Live.Supervised)
    def _live_supervised(self, message: Live.Supervised) -> None:
        if message.names:
            self.notify(
                _("Chat #{id} is supervised by {names}.").format(id=message.chat_id, names=", ".join(message.names)),
                title=_("Supervision"),
            )

    @on(Live.NoteReceived)
    def _live_note(self, message: Live.NoteReceived) -> None:
        self.bell()
        self.notify(
            _("A note from {name} in chat #{id}.").format(name=message.line.author or "?", id=message.chat_id),
            title=_("Supervision"),
        )

    @work(exclusive=True, exit_on_error=False, group="session-ended")
    async def _session_ended(self, code: str) -> None:
        """The chat server ended our session and said why by its code: told in the staff member's language."""
        shown = session_ended_text(code)
        assert self.store is not None
        try:
            if self.ctx is not None:
                await self.store.accounts.authenticate(self.ctx.token)
        except SessionExpired:
            await self.end_session(shown, logout=False)
            return
        # the session goes on for the other areas (e.g. the consultant role was removed): say so here
        self._update_sub_title()
        self.notify(shown, severity="error", timeout=30, markup=False)

    @work(exclusive=True, exit_on_error=False, group="refused")
    async def _refused(self) -> None:
        if await self.check_session(force=True):
            self._update_sub_title()
            self.notify(_("The chat server refused this session; sign out and in again."), severity="error")

    def connection_label(self) -> str:
        if self.desk is None:
            return (
                _("live chats: not connected") if self.ctx and allowed(self.ctx.actor, Permission.HANDLE_CHATS) else ""
            )
        return _("live chats: {state}").format(state=_(STATE_LABELS[self.desk.state]))

    def _update_sub_title(self) -> None:
        if self.ctx is None:
            self.sub_title = ""
            return
        parts = [self.ctx.actor.name]
        label = self.connection_label()
        if label:
            parts.append(label)
        self.sub_title = " · ".join(parts)


def make_app(
    settings: Settings,
    store: Store | None = None,
    server_url: str | None = None,
    **options: Any,
) -> CimApp:
    """The staff UI. Without `store` the app opens (and closes) its own on the settings' data dir.

    `server_url` is the chat server for live chats (None: no live chats); `services` start with
    the store before sign-in (`cim demo` runs the chat server this way, in the UI's event loop).
    `options` are CimApp's keyword options (clock, services, banner, session_check_seconds, live_retry).
    """
    return CimApp(settings, store=store, server_url=server_url, **options)
