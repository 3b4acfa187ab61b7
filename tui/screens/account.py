"""The signed-in person's own account: change their password, set up a second factor, choose the staff language,
set the name residents see in the chat."""

from __future__ import annotations

from dataclasses import dataclass, replace

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.widgets import Footer, Header, Input, Label, Static

from store.chats import MAX_DISPLAY_NAME, display_name
from store.i18n import N_, _, current_language, env_language, ngettext
from store.models import Staff
from tui.context import TuiContext
from tui.widgets.dialog import FitsTheScreen, SubmitsInPlace
from tui.widgets.literal import literal
from tui.widgets.modals import EnrolmentModal, PickModal, RecoveryCodesModal
from tui.words import role_names
from tui.screens.base import CimModal, CimScreen, failure_title


#: A staff language's name (store/locale/pl/core.po has them), shown in the current language.
LANGUAGE_NAMES = {"pl": N_("Polish"), "en": N_("English")}


@dataclass(frozen=True)
class PasswordChange:
    current: str
    new: str


class ChangePasswordModal(FitsTheScreen, SubmitsInPlace, CimModal[PasswordChange | None]):
    """Current password, then the new one twice. With `submit`, the store's refusal stays in the dialog."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]
    ERROR_FIELDS = (("current", "current"), ("differ", "again"), ("password", "new"), ("name", "new"))

    def __init__(self, submit=None) -> None:
        super().__init__()
        self.submit = submit

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="change-password"):
            yield Label(_("Change your password"), classes="dialog-title")
            with VerticalScroll(classes="dialog-body"):
                yield Static(
                    _("At least 12 characters; not a common password, not your name. A passphrase is best."),
                    classes="dialog-help",
                )
                yield Input(placeholder=_("current password"), password=True, id="current")
                yield Static("", id="err-current", classes="field-error")
                yield Input(placeholder=_("new password"), password=True, id="new")
                yield Static("", id="err-new", classes="field-error")
                yield Input(placeholder=_("new password again"), password=True, id="again")
                yield Static("", id="err-again", classes="field-error")
            yield Static("", id="dialog-error", classes="dialog-error")
            yield Static(_("Enter next/confirm · Esc cancel"), classes="dialog-help")

    def on_mount(self) -> None:
        self.query_one("#current", Input).focus()

    @on(Input.Submitted, "#current")
    def _to_new(self) -> None:
        self.query_one("#new", Input).focus()

    @on(Input.Submitted, "#new")
    def _to_again(self) -> None:
        self.query_one("#again", Input).focus()

    @on(Input.Submitted, "#again")
    def _submit(self) -> None:
        current = self.query_one("#current", Input).value
        new = self.query_one("#new", Input).value
        if not current or not new:
            self.show_error(_("Fill in the current and the new password."), "current" if not current else "new")
            return
        if new != self.query_one("#again", Input).value:
            self.show_error(_("The two new passwords differ."), "again")
            return
        self.finish(PasswordChange(current, new))

    def explain(self, message: str) -> str:
        return message[:1].upper() + message[1:] + ("" if message.endswith(".") else ".")

    def action_cancel(self) -> None:
        self.dismiss(None)


#: what the display-name dialog returns to go back to the default name (the store's None)
DEFAULT_NAME = ""


class DisplayNameModal(FitsTheScreen, SubmitsInPlace, CimModal[str | None]):
    """The name residents see in the chat. Enter saves what is typed; Ctrl+R goes back to the default.

    With `submit` (the store call, given the text or None for the default) a refusal stays in the dialog with
    the text kept. Dismisses with the name now shown ('' for the default) or None when cancelled."""

    BINDINGS = [Binding("escape", "cancel", "Cancel"), Binding("ctrl+r", "default", "Default name")]
    REASON_FIELDS = {
        "display_name_invalid": "display-name",
        "display_name_too_long": "display-name",
        "display_name_missing": "display-name",
    }

    def __init__(self, current: str | None, default: Text, submit=None) -> None:
        super().__init__()
        self.current = current
        self.default = default
        self.submit = submit

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="display-name-dialog"):
            yield Label(_("Name residents see"), classes="dialog-title")
            with VerticalScroll(classes="dialog-body"):
                help_text = Text(_("Residents see this name in the chat, never your user name. Without one they see: "))
                help_text.append(self.default)
                yield Static(help_text, classes="dialog-help")
                yield Input(
                    self.current or "",
                    placeholder=_("e.g. Anna"),
                    id="display-name",
                    max_length=MAX_DISPLAY_NAME * 2,  # the store refuses over MAX_DISPLAY_NAME, with a message
                )
                yield Static("", id="err-display-name", classes="field-error")
            yield Static("", id="dialog-error", classes="dialog-error")
            yield Static(_("Enter save · Ctrl+R default name · Esc cancel"), classes="dialog-help")

    def on_mount(self) -> None:
        self.query_one("#display-name", Input).focus()

    @on(Input.Submitted, "#display-name")
    def action_save(self) -> None:
        text = self.query_one("#display-name", Input).value
        if not text.strip():
            self.show_error(_("Enter the name residents see, or press Ctrl+R for the default."), "display-name")
            return
        self.finish(text)

    def action_default(self) -> None:
        self.finish(None)

    def explain(self, message: str) -> str:
        return message[:1].upper() + message[1:] + ("" if message.endswith(".") else ".")

    def action_cancel(self) -> None:
        self.dismiss(None)


class AccountScreen(CimScreen[None]):
    """Ctrl+U or the command palette: the person's own password, second factor and staff language."""

    BINDINGS = [
        Binding("p", "password", "Change password"),
        Binding("t", "second_factor", "Set up second factor"),
        Binding("l", "language", "Language"),
        Binding("d", "display_name", "Name in chats"),
    ]

    def __init__(self, ctx: TuiContext) -> None:
        super().__init__()
        self.ctx = ctx

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(_("My account"), classes="section")
        yield Static("", id="account-facts")
        yield Footer()

    def on_mount(self) -> None:
        self.reload()

    @work(exclusive=True, exit_on_error=False, group="load")
    async def reload(self) -> None:
        accounts = self.ctx.store.accounts
        staff_id = self.ctx.actor.staff_id
        assert staff_id is not None  # the TUI's actor is a signed-in staff member
        staff = await accounts.get_by_id(staff_id)
        required = accounts.mfa_required(staff)
        factor = {"active": _("set up"), "pending": _("set-up not finished"), "none": _("not set up")}[
            staff.second_factor
        ]
        if staff.second_factor == "active":
            left = await accounts.unused_recovery_codes(self.ctx.actor)
            factor += " (" + ngettext("{n} recovery code left", "{n} recovery codes left", left).format(n=left) + ")"
        if required:
            factor += " " + _("(required for your roles)")
        facts = Text()
        facts.append(_("Name: "))
        facts.append(literal(staff.name))
        facts.append(
            "\n"
            + _("Signs in with: ")
            + (_("the city directory") if staff.source == "directory" else _("a CIM password"))
        )
        facts.append("\n" + _("Roles: ") + role_names(staff.roles))
        facts.append("\n" + _("Second factor: ") + factor)
        facts.append(
            "\n"
            + _("Language: ")
            + _(LANGUAGE_NAMES[current_language()])
            + " "
            + (_("(your choice; L changes it)") if staff.language else _("(office default; L changes it)"))
        )
        facts.append("\n" + _("Name residents see: "))
        facts.append(shown_name(staff))
        facts.append(
            " " + (_("(your choice; D changes it)") if staff.display_name else _("(the default; D changes it)"))
        )
        self.query_one("#account-facts", Static).update(facts)

    def action_password(self) -> None:
        self.change_password()

    @work(exclusive=True, exit_on_error=False, group="edit")
    async def change_password(self) -> None:
        staff_id = self.ctx.actor.staff_id
        assert staff_id is not None  # the TUI's actor is a signed-in staff member
        staff = await self.ctx.store.accounts.get_by_id(staff_id)
        if staff.source == "directory":
            self.notify(_("You sign in with the city directory; change your password there."), severity="warning")
            return

        async def submit(change: PasswordChange) -> PasswordChange:
            await self.ctx.store.accounts.change_own_password(
                self.ctx.actor, change.current, change.new, keep_token=self.ctx.token
            )
            return change

        if await self.app.push_screen_wait(ChangePasswordModal(submit)) is None:
            return
        self.notify(_("Password changed; your other sessions were ended."))

    def action_second_factor(self) -> None:
        self.second_factor()

    @failure_title(N_("Second factor not set up"))
    @work(exclusive=True, exit_on_error=False, group="edit")
    async def second_factor(self) -> None:
        accounts = self.ctx.store.accounts
        enrolment = await accounts.begin_enrolment(self.ctx.actor)

        async def confirm(code: str) -> list[str]:
            return await accounts.confirm_enrolment(self.ctx.actor, code)

        # a wrong code stays in the dialog, with the same key (the app already has it): no new key to scan
        codes = await self.app.push_screen_wait(EnrolmentModal(enrolment.secret, enrolment.uri, submit=confirm))
        if codes is None:
            self.notify(_("The second factor was not set up."), severity="warning")
            self.reload()
            return
        assert isinstance(codes, list)  # with submit the dialog returns the recovery codes
        await self.app.push_screen_wait(RecoveryCodesModal(codes))
        self.notify(_("Second factor set up; it is asked for at every sign-in."))
        self.reload()

    def action_language(self) -> None:
        self.choose_language()

    @work(exclusive=True, exit_on_error=False, group="edit")
    async def choose_language(self) -> None:
        """The person's staff language, kept with their account (store.accounts.set_own_language)."""
        office = env_language()
        choices = [
            ("polski", "pl"),
            ("English", "en"),
            (_("office default ({language})").format(language=_(LANGUAGE_NAMES[office])), ""),
        ]
        chosen = await self.app.push_screen_wait(PickModal(_("Language of your CIM screens"), choices))
        if chosen is None:
            return
        staff = await self.ctx.store.accounts.set_own_language(self.ctx.actor, chosen or None)
        from tui.app import CimApp  # not at the top: tui.app imports this module

        app = self.app
        assert isinstance(app, CimApp)
        # the app rebuilds its screens, this one included: its own worker, not this screen's (which ends with it)
        app.run_worker(app.change_language(staff.language), group="language", exit_on_error=False)

    def action_display_name(self) -> None:
        self.change_display_name()

    @work(exclusive=True, exit_on_error=False, group="edit")
    async def change_display_name(self) -> None:
        """The name residents see in the chat (store.accounts.set_own_display_name), audited."""
        staff_id = self.ctx.actor.staff_id
        assert staff_id is not None  # the TUI's actor is a signed-in staff member
        staff = await self.ctx.store.accounts.get_by_id(staff_id)

        async def submit(text: str | None) -> str:
            saved = await self.ctx.store.accounts.set_own_display_name(self.ctx.actor, text)
            return saved.display_name or DEFAULT_NAME

        default = shown_name(replace(staff, display_name=None))
        shown = await self.app.push_screen_wait(DisplayNameModal(staff.display_name, default, submit))
        if shown is None:
            return
        self.notify(
            _("Residents now see you as: {name}").format(name=shown)
            if shown
            else _("Residents now see the default name: {name}").format(name=default.plain)
        )
        self.reload()


def shown_name(staff: Staff) -> Text:
    """The name residents see for this person (store.chats.display_name); without a display name and a full name
    none: the chat says "a consultant" ("Połączono z konsultantem.")."""
    name = display_name(staff.display_name, staff.full_name)
    return literal(name) if name else Text(_("none, the chat says “a consultant”"))
