"""Modal dialogs of the staff UI, each returning a typed result through `dismiss`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, Sequence, TypeVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, Input, Label, OptionList, SelectionList, Static
from textual.widgets.option_list import Option
from store.errors import CimError
from store.i18n import _
from store.models import Actor
from tui.refusals import DEPARTMENT_MISSING, department_missing, is_department_missing
from tui.screens.base import CimModal
from tui.widgets.dialog import FitsTheScreen, SubmitsInPlace
from tui.widgets.literal import literal
from tui.words import CLOSE_CATEGORY_LABELS, ROLE_LABELS, word

T = TypeVar("T")


class PickModal(CimModal[T | None], Generic[T]):
    """Pick one of a list with the arrows and Enter; Escape cancels (result None)."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, title: str, choices: Sequence[tuple[str | Text, T]], *, empty: str = "") -> None:
        super().__init__()
        self.title_text = title
        self.choices = list(choices)
        self.empty = empty or _("Nothing to choose.")

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.title_text, classes="dialog-title")
            if self.choices:
                yield OptionList(*[Option(label, id=str(i)) for i, (label, _) in enumerate(self.choices)], id="choices")
            else:
                yield Static(self.empty, classes="dialog-empty")
            yield Static(_("Enter choose · Esc cancel"), classes="dialog-help")

    @on(OptionList.OptionSelected, "#choices")
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(self.choices[int(event.option.id or 0)][1])

    def action_cancel(self) -> None:
        self.dismiss(None)


class CloseChatModal(PickModal[str]):
    """Close a chat: returns the chosen category."""

    def __init__(self, chat_id: int, categories: Sequence[str]) -> None:
        super().__init__(
            _("Close chat #{id}: category").format(id=chat_id),
            [(word(CLOSE_CATEGORY_LABELS, c), c) for c in categories],
        )


class TransferModal(PickModal[int]):
    """Transfer a chat: returns the staff id of an online consultant."""

    def __init__(self, chat_id: int, consultants: Sequence[dict]) -> None:
        super().__init__(
            _("Transfer chat #{id} to").format(id=chat_id),
            [(literal(str(c.get("name") or c.get("staff_id"))), int(c["staff_id"])) for c in consultants],
            empty=_("No other consultant is online."),
        )


class CannedModal(PickModal[str]):
    """Insert a canned response: returns its text."""

    def __init__(self, responses: Sequence[tuple[str, str]]) -> None:
        choices = []
        for title, text in responses:
            label = Text.assemble((title, "bold"), "\n", literal(text[:140] + ("…" if len(text) > 140 else ""), "dim"))
            choices.append((label, text))
        super().__init__(
            _("Canned responses"), choices, empty=_("No canned responses yet (the CIM manager adds them).")
        )


class ConfirmModal(CimModal[bool]):
    """Yes or no. A `Text` question carries literal parts (resident or staff text) safely."""

    BINDINGS = [Binding("escape", "no", "No"), Binding("y", "yes", "Yes"), Binding("n", "no", "No")]

    def __init__(self, question: str | Text, help: str = "") -> None:
        super().__init__()
        self.question = question
        self.help = help

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.question, classes="dialog-title")
            if self.help:
                yield Static(self.help, classes="dialog-help")
            with Horizontal(classes="dialog-buttons"):
                yield Button(_("Yes"), id="yes", variant="warning")
                yield Button(_("No"), id="no")

    @on(Button.Pressed, "#yes")
    def action_yes(self) -> None:
        self.dismiss(True)

    @on(Button.Pressed, "#no")
    def action_no(self) -> None:
        self.dismiss(False)


class PasswordModal(FitsTheScreen, SubmitsInPlace, CimModal[str | None]):
    """A new password, typed twice. With `submit`, the store's answer is shown here and the dialog stays open."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]
    ERROR_FIELDS = (("differ", "again"), ("password", "password"))

    def __init__(self, name: str, submit=None) -> None:
        super().__init__()
        self.staff_name = name
        self.submit = submit

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(_("New password for {name}").format(name=self.staff_name), classes="dialog-title")
            with VerticalScroll(classes="dialog-body"):
                yield Input(password=True, placeholder=_("new password (at least 12 characters)"), id="password")
                yield Static("", id="err-password", classes="field-error")
                yield Input(password=True, placeholder=_("the same again"), id="again")
                yield Static("", id="err-again", classes="field-error")
            yield Static("", id="dialog-error", classes="dialog-error")
            yield Static(_("Enter confirm · Esc cancel"), classes="dialog-help")

    @on(Input.Submitted)
    def _submit(self) -> None:
        first = self.query_one("#password", Input).value
        second = self.query_one("#again", Input).value
        if not first:
            self.show_error(_("Enter the new password."), "password")
            return
        if first != second:
            self.show_error(_("The two passwords differ."), "again")
            return
        self.finish(first)

    def action_cancel(self) -> None:
        self.dismiss(None)


class RolesModal(FitsTheScreen, SubmitsInPlace, CimModal[frozenset[str] | None]):
    """Choose a staff member's roles (space toggles, Enter on the button saves)."""

    BINDINGS = [Binding("escape", "cancel", "Cancel"), Binding("ctrl+s", "save", "Save")]
    ERROR_FIELDS = (("role", "roles"), ("department", "roles"))

    def __init__(self, title: str, all_roles: Sequence[str], current: frozenset[str], submit=None) -> None:
        super().__init__()
        self.title_text = title
        self.all_roles = list(all_roles)
        self.current = current
        self.submit = submit

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.title_text, classes="dialog-title")
            with VerticalScroll(classes="dialog-body"):
                yield SelectionList[str](
                    *[(word(ROLE_LABELS, r), r, r in self.current) for r in self.all_roles], id="roles"
                )
            yield Static("", id="dialog-error", classes="dialog-error")
            with Horizontal(classes="dialog-buttons"):
                yield Button(_("Save"), id="save", variant="primary")
                yield Button(_("Cancel"), id="cancel")
            yield Static(_("Space toggle · Ctrl+S save · Esc cancel"), classes="dialog-help")

    @on(Button.Pressed, "#save")
    def action_save(self) -> None:
        chosen = frozenset(self.query_one("#roles", SelectionList).selected)
        if not chosen:
            self.show_error(_("Choose at least one role."), "roles")
            return
        self.finish(chosen)

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)


@dataclass(frozen=True)
class NewStaff:
    name: str
    full_name: str
    roles: frozenset[str]
    department: str | None
    password: str


class NewStaffModal(FitsTheScreen, SubmitsInPlace, CimModal[NewStaff | None]):
    """A new staff account: name, full name, department, roles and a first password.

    With `submit` (the store call), a refusal is shown in the dialog and everything typed stays.
    """

    BINDINGS = [Binding("escape", "cancel", "Cancel"), Binding("ctrl+s", "save", "Save")]
    ERROR_FIELDS = (
        ("department", "department"),
        ("password", "password"),
        ("role", "roles"),
        ("full name", "full-name"),
        ("user name", "name"),
        ("already exists", "name"),
    )

    REASON_FIELDS = {DEPARTMENT_MISSING: "department"}

    def __init__(self, all_roles: Sequence[str], submit=None, actor: Actor | None = None) -> None:
        super().__init__()
        self.all_roles = list(all_roles)
        self.submit = submit
        self.actor = actor

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog dialog-wide"):
            yield Label(_("New staff account"), classes="dialog-title")
            with VerticalScroll(classes="dialog-body"):
                yield Input(placeholder=_("user name (letters, digits, . _ -)"), id="name")
                yield Static("", id="err-name", classes="field-error")
                yield Input(placeholder=_("full name"), id="full-name")
                yield Static("", id="err-full-name", classes="field-error")
                yield Input(placeholder=_("department code (optional)"), id="department")
                yield Static("", id="err-department", classes="field-error")
                yield Input(password=True, placeholder=_("first password (at least 8 characters)"), id="password")
                yield Static("", id="err-password", classes="field-error")
                yield SelectionList[str](
                    *[(word(ROLE_LABELS, r), r, r == "consultant") for r in self.all_roles], id="roles"
                )
                yield Static("", id="err-roles", classes="field-error")
            yield Static("", id="dialog-error", classes="dialog-error")
            with Horizontal(classes="dialog-buttons"):
                yield Button(_("Save"), id="save", variant="primary")
                yield Button(_("Cancel"), id="cancel")

    def explain_refusal(self, exc: CimError) -> str:
        # the TUI's own way to add a department (F9, N) instead of a command an SSH user cannot run
        return department_missing(exc, self.actor) if is_department_missing(exc) else exc.message

    @on(Input.Submitted)
    @on(Button.Pressed, "#save")
    def action_save(self) -> None:
        name = self.query_one("#name", Input).value.strip()
        password = self.query_one("#password", Input).value
        roles = frozenset(self.query_one("#roles", SelectionList).selected)
        error, field = (
            (_("Enter a user name."), "name")
            if not name
            else (_("Enter a first password."), "password")
            if not password
            else (_("Choose at least one role."), "roles")
            if not roles
            else ("", None)
        )
        if error:
            self.show_error(error, field)
            return
        self.finish(
            NewStaff(
                name=name,
                full_name=self.query_one("#full-name", Input).value.strip(),
                roles=roles,
                department=self.query_one("#department", Input).value.strip() or None,
                password=password,
            )
        )

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)


class EnrolmentModal(FitsTheScreen, SubmitsInPlace, CimModal[str | list[str] | None]):
    """Set up a second factor: the key as a QR code and as text (shown this once); returns the code typed.

    With `submit` (the store's confirmation), a wrong code is shown here and the dialog stays open with the same
    key, so the app already set up needs no new scan; it then returns what `submit` returned (the recovery codes).
    """

    BINDINGS = [Binding("escape", "cancel", "Cancel")]
    ERROR_FIELDS = (("code", "enrolment-code"),)

    def __init__(self, secret: str, uri: str, *, message: str = "", submit=None) -> None:
        super().__init__()
        self.secret = secret
        self.uri = uri
        self.message = message
        self.submit = submit

    def compose(self) -> ComposeResult:
        from tui.widgets.qr import qr_text

        with Vertical(classes="dialog", id="enrolment"):
            yield Label(_("Second factor: set up your authenticator app"), classes="dialog-title")
            with VerticalScroll(classes="dialog-body"):
                yield Static(
                    self.message or _("Scan the code with an authenticator app (TOTP), or type the key."),
                    classes="dialog-help",
                )
                yield Static(qr_text(self.uri), id="enrolment-qr")
                yield Static(
                    Text(_("Key: "))
                    + Text(" ".join(self.secret[i : i + 4] for i in range(0, len(self.secret), 4)), style="bold"),
                    id="enrolment-secret",
                )
                yield Input(placeholder=_("6-digit code from the app"), id="enrolment-code", max_length=8)
                yield Static("", id="err-enrolment-code", classes="field-error")
            yield Static("", id="dialog-error", classes="dialog-error")
            yield Static(_("Enter confirm · Esc cancel · the key is not shown again"), classes="dialog-help")

    def on_mount(self) -> None:
        self.query_one("#enrolment-code", Input).focus()

    @on(Input.Submitted, "#enrolment-code")
    def _submit(self, event: Input.Submitted) -> None:
        code = event.value.strip().replace(" ", "")
        if not (code.isdigit() and len(code) == 6):
            self.show_error(_("Enter the 6 digits the app shows."), "enrolment-code")
            return
        self.finish(code)

    def explain(self, message: str) -> str:
        return message[:1].upper() + message[1:] + ("" if message.endswith(".") else ".")

    def action_cancel(self) -> None:
        self.dismiss(None)


class RecoveryCodesModal(CimModal[None]):
    """The recovery codes made at enrolment, shown once: each signs in once when the phone is lost."""

    BINDINGS = [Binding("escape", "close", "Close"), Binding("enter", "close", "Close")]

    def __init__(self, codes: Sequence[str]) -> None:
        super().__init__()
        self.codes = list(codes)

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="recovery-codes"):
            yield Label(_("Recovery codes (shown only now)"), classes="dialog-title")
            yield Static(
                _("Write them down and keep them apart from your phone. Each works once, in place of a code."),
                classes="dialog-help",
            )
            yield Static(Text("\n".join(self.codes), style="bold"), id="recovery-code-list")
            yield Static(_("Enter or Esc: I have written them down"), classes="dialog-help")

    def action_close(self) -> None:
        self.dismiss(None)
