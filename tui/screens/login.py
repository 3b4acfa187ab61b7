"""The sign-in screen: a staff member's own name and password (local or city directory), then the steps
store.accounts asks for: a new password in place of a temporary one, a second-factor code, or setting one up."""

from __future__ import annotations

from textual import events, on, work
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import Button, Footer, Header, Input, Label, Static

from store import Store
from store.errors import (
    AccountLocked,
    AuthenticationFailed,
    CimError,
    DirectoryUnavailable,
    NoMappedRole,
    PasswordChangeRequired,
    SecondFactorEnrolmentRequired,
    SecondFactorRequired,
)
from store.i18n import _
from store.mfa import Enrolment
from store.models import Session
from tui.screens.base import CimScreen
from tui.widgets.modals import EnrolmentModal, RecoveryCodesModal


class NameInput(Input):
    """The user-name field. A Tab, Enter or line break inside a paste (or a fast burst of keys) ends the name:
    the rest goes to the masked password field, so a pasted "name<Tab>password" never shows the password."""

    def _on_paste(self, event: events.Paste) -> None:
        event.stop()
        event.prevent_default()
        self.take(event.text)

    def take(self, text: str) -> None:
        """Put `text` up to the first Tab/line break in the name; hand the rest to the password field."""
        for i, char in enumerate(text):
            if char in "\t\r\n":
                self.insert_text_at_cursor(text[:i])
                rest = text[i + 1 :]
                submit = rest.endswith(("\r", "\n"))
                self.screen.query_one("#password", Input).value += rest.rstrip("\r\n").split("\t")[0]
                self.screen.query_one("#password", Input).focus()
                if submit and isinstance(self.screen, LoginScreen):
                    self.screen.submit()
                return
        self.insert_text_at_cursor(text)

    def on_input_changed(self, event: Input.Changed) -> None:
        # a burst whose Tab arrived as a plain character rather than as a focus key
        if any(char in event.value for char in "\t\r\n"):
            value = event.value
            self.value = ""
            self.take(value)


class LoginScreen(CimScreen[None]):
    """Sign in; posts `LoginScreen.SignedIn` with the new session."""

    AUTO_FOCUS = "#name"
    #: Its own (empty) sub-title, so the previous person's name and connection state never show here.
    SUB_TITLE = ""

    class SignedIn(Message):
        def __init__(self, session: Session) -> None:
            super().__init__()
            self.session = session

    def __init__(self, store: Store, *, notice: str = "", banner: str = "") -> None:
        super().__init__()
        self.store = store
        self.notice = notice
        self.banner = banner

    def compose(self) -> ComposeResult:
        yield Header()
        with Vertical(id="login-box"):
            yield Label(_("CIM: Resident Information Centre"), id="login-title")
            yield Label(_("Sign in with your own CIM account."), classes="muted")
            yield NameInput(placeholder=_("user name"), id="name")
            yield Input(placeholder=_("password"), password=True, id="password")
            with Vertical(id="new-password-box", classes="login-step"):
                yield Label(_("Your password was temporary: choose a new one (12+ characters)."), classes="muted")
                yield Input(placeholder=_("new password"), password=True, id="new-password")
                yield Input(placeholder=_("new password again"), password=True, id="new-password-again")
            with Vertical(id="otp-box", classes="login-step"):
                yield Label(_("Code from your authenticator app (or a recovery code)."), classes="muted")
                yield Input(placeholder=_("6-digit code"), id="otp", max_length=24)
            yield Button(_("Sign in"), id="sign-in", variant="primary")
            yield Static(self.notice, id="login-message", classes="notice" if self.notice else "")
            if self.banner:
                yield Static(self.banner, id="banner")
        yield Footer()

    @on(Input.Submitted, "#name")
    def _to_password(self) -> None:
        self.query_one("#password", Input).focus()

    @on(Input.Submitted, "#new-password")
    def _to_again(self) -> None:
        self.query_one("#new-password-again", Input).focus()

    @on(Input.Submitted, "#password")
    @on(Input.Submitted, "#new-password-again")
    @on(Input.Submitted, "#otp")
    @on(Button.Pressed, "#sign-in")
    def _submit(self) -> None:
        self.submit()

    def submit(self) -> None:
        name = self.query_one("#name", Input).value
        password = self.query_one("#password", Input).value
        if not name.strip():
            self._show(_("Enter your user name."), error=True)
            self.query_one("#name", Input).focus()
            return
        if not password:
            self._show(_("Enter your password."), error=True)
            self.query_one("#password", Input).focus()
            return
        new_password = None
        if self.query_one("#new-password-box").display:
            new_password = self.query_one("#new-password", Input).value
            if new_password != self.query_one("#new-password-again", Input).value:
                self._show(_("The two new passwords differ."), error=True)
                self.query_one("#new-password-again", Input).focus()
                return
        otp = None
        if self.query_one("#otp-box").display:
            otp = self.query_one("#otp", Input).value.strip()
            if not otp:
                self._show(_("Enter the code from your authenticator app."), error=True)
                self.query_one("#otp", Input).focus()
                return
        self._show(_("Signing in…"), error=False)
        self.query_one("#sign-in", Button).disabled = True
        self.sign_in(name, password, new_password, otp)

    def _show(self, text: str, *, error: bool) -> None:
        message = self.query_one("#login-message", Static)
        message.update(text)
        message.set_class(error, "error")
        message.set_class(not error, "notice")

    def _step(self, box: str, focus: str, text: str) -> None:
        self.query_one(box).display = True
        self.query_one("#sign-in", Button).disabled = False
        self._show(text, error=False)
        self.query_one(focus, Input).focus()

    @work(exclusive=True, exit_on_error=False)
    async def sign_in(self, name: str, password: str, new_password: str | None = None, otp: str | None = None) -> None:
        accounts = self.store.accounts
        try:
            try:
                session = await accounts.login(name, password, otp=otp, new_password=new_password)
            except SecondFactorEnrolmentRequired as needed:
                enrolment = needed.enrolment
                assert isinstance(enrolment, Enrolment)  # a sign-in (not a dry run) always starts one
                code = await self.app.push_screen_wait(
                    EnrolmentModal(
                        enrolment.secret, enrolment.uri, message=needed.message[:1].upper() + needed.message[1:] + "."
                    )
                )
                if code is None:
                    self._failed(_("Signing in needs a second factor; it was not set up."), keep_password=True)
                    return
                assert isinstance(code, str)  # without submit the dialog returns the code typed
                session = await accounts.login(name, password, otp=code, new_password=new_password)
        except PasswordChangeRequired:
            self._step("#new-password-box", "#new-password", _("Your password was temporary: choose a new one."))
            return
        except SecondFactorRequired:
            self._step("#otp-box", "#otp", _("Enter the code from your authenticator app."))
            return
        except AuthenticationFailed as exc:
            if otp is not None:
                self._failed(_("Wrong or already used code."), keep_password=True, clear="#otp")
            else:
                self._failed(
                    _("Wrong user name or password.")
                    if "password" in exc.message_in("en")
                    else f"{exc.message.capitalize()}."
                )
            return
        except AccountLocked as exc:
            self._failed(_("Account locked: {reason}.").format(reason=exc.message))
            return
        except DirectoryUnavailable as exc:
            self._failed(
                _(
                    "The city directory cannot be reached right now; local accounts can still sign in. ({reason})"
                ).format(reason=exc.message),
                keep_password=True,
            )
            return
        except NoMappedRole as exc:
            self._failed(_("Cannot sign in: {reason}.").format(reason=exc.message))
            return
        except CimError as exc:
            self._failed(
                _("Cannot sign in: {reason}.").format(reason=exc.message), keep_password=new_password is not None
            )
            return
        except Exception:
            # reported by ReportsWorkerErrors; the person can try again
            self._failed(_("Cannot sign in right now."))
            raise
        if session.recovery_codes:
            await self.app.push_screen_wait(RecoveryCodesModal(session.recovery_codes))
        self.post_message(self.SignedIn(session))

    def _failed(self, text: str, *, keep_password: bool = False, clear: str | None = None) -> None:
        self._show(text, error=True)
        self.query_one("#sign-in", Button).disabled = False
        if clear:
            field = self.query_one(clear, Input)
            field.value = ""
            field.focus()
            return
        password = self.query_one("#password", Input)
        if not keep_password:
            password.value = ""
            for box in self.query(".login-step"):
                box.display = False
        password.focus()
