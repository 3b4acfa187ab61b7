"""The sign-in screen: a staff member's own name and password, checked by store.accounts."""

from __future__ import annotations

from textual import on, work
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import Button, Footer, Header, Input, Label, Static

from store import Store
from store.errors import AccountLocked, AuthenticationFailed, CimError
from store.models import Session
from tui.screens.base import CimScreen


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
            yield Label("CIM: Resident Information Centre", id="login-title")
            yield Label("Sign in with your own CIM account.", classes="muted")
            yield Input(placeholder="user name", id="name")
            yield Input(placeholder="password", password=True, id="password")
            yield Button("Sign in", id="sign-in", variant="primary")
            yield Static(self.notice, id="login-message", classes="notice" if self.notice else "")
            if self.banner:
                yield Static(self.banner, id="banner")
        yield Footer()

    @on(Input.Submitted, "#name")
    def _to_password(self) -> None:
        self.query_one("#password", Input).focus()

    @on(Input.Submitted, "#password")
    @on(Button.Pressed, "#sign-in")
    def _submit(self) -> None:
        name = self.query_one("#name", Input).value
        password = self.query_one("#password", Input).value
        if not name.strip():
            self._show("Enter your user name.", error=True)
            self.query_one("#name", Input).focus()
            return
        if not password:
            self._show("Enter your password.", error=True)
            self.query_one("#password", Input).focus()
            return
        self._show("Signing in…", error=False)
        self.query_one("#sign-in", Button).disabled = True
        self.sign_in(name, password)

    def _show(self, text: str, *, error: bool) -> None:
        message = self.query_one("#login-message", Static)
        message.update(text)
        message.set_class(error, "error")
        message.set_class(not error, "notice")

    @work(exclusive=True, exit_on_error=False)
    async def sign_in(self, name: str, password: str) -> None:
        try:
            session = await self.store.accounts.login(name, password)
        except AuthenticationFailed:
            self._failed("Wrong user name or password.")
            return
        except AccountLocked as exc:
            self._failed(f"Account locked: {exc.message}.")
            return
        except CimError as exc:
            self._failed(f"Cannot sign in: {exc.message}.")
            return
        except Exception:
            # reported by ReportsWorkerErrors; the person can try again
            self._failed("Cannot sign in right now.")
            raise
        self.post_message(self.SignedIn(session))

    def _failed(self, text: str) -> None:
        self._show(text, error=True)
        self.query_one("#sign-in", Button).disabled = False
        password = self.query_one("#password", Input)
        password.value = ""
        password.focus()
