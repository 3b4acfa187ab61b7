"""Staff accounts for the IT administrators: list, add, disable/enable, roles, password and second-factor reset."""

from __future__ import annotations

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Footer, Header, Static

from store.i18n import N_, _
from store.models import Department, Role, Staff
from tui.context import TuiContext
from tui.screens.base import CimScreen, failure_title, set_failure_title
from tui.widgets.literal import literal
from tui.widgets.modals import ConfirmModal, NewStaff, NewStaffModal, PasswordModal, RolesModal
from tui.widgets.request_forms import Field, FormModal
from tui.words import role_names

ALL_ROLES = [r.value for r in Role]


class AccountsScreen(CimScreen[None]):
    """Every change goes through store.accounts with the signed-in actor, so it is checked and audited there."""

    AUTO_FOCUS = "#accounts-table"

    BINDINGS = [
        Binding("a", "add", "Add"),
        Binding("n", "add_department", "New department"),
        Binding("d", "toggle_disabled", "Disable/enable"),
        Binding("r", "roles", "Roles"),
        Binding("p", "password", "Password"),
        Binding("t", "reset_second_factor", "Reset 2nd factor"),
    ]

    def __init__(self, ctx: TuiContext) -> None:
        super().__init__()
        self.ctx = ctx
        self.staff: list[Staff] = []

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(_("Staff accounts"), classes="section")
        yield DataTable(id="accounts-table", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#accounts-table", DataTable)
        # roles last: a person with many roles (long words in Polish) does not push the other columns off 80 columns
        table.add_columns(_("Name"), _("Full name"), _("Dept"), _("Source"), _("Status"), _("Roles"))
        self.reload()

    @work(exclusive=True, exit_on_error=False, group="load")
    async def reload(self, keep: str | None = None) -> None:
        self.staff = await self.ctx.store.accounts.list_staff(self.ctx.actor)
        table = self.query_one("#accounts-table", DataTable)
        shown = self._current()
        current = keep or (shown.name if shown else None)
        table.clear()
        for s in self.staff:
            status = Text(_("disabled"), style="bold red") if s.disabled else Text(_("active"))
            source = (_("directory") if s.source == "directory" else _("local")) + (
                " +totp" if s.second_factor == "active" else ""
            )
            table.add_row(
                literal(s.name),
                literal(s.full_name),
                s.department or "",
                source,
                status,
                role_names(s.roles),
                key=s.name,
            )
        names = [s.name for s in self.staff]
        if current in names:
            table.move_cursor(row=names.index(current))

    def _current(self) -> Staff | None:
        table = self.query_one("#accounts-table", DataTable)
        if not self.staff or table.cursor_row is None or table.cursor_row >= len(self.staff):
            return None
        return self.staff[table.cursor_row]

    def action_add(self) -> None:
        self.add()

    @work(exclusive=True, exit_on_error=False, group="edit")
    async def add(self) -> None:
        async def submit(new: NewStaff) -> NewStaff:
            await self.ctx.store.accounts.add_staff(
                self.ctx.actor,
                new.name,
                sorted(new.roles),
                new.password,
                department=new.department,
                full_name=new.full_name,
            )
            return new

        new = await self.app.push_screen_wait(NewStaffModal(ALL_ROLES, submit=submit, actor=self.ctx.actor))
        if new is not None:
            self.notify(_("Account {name} added.").format(name=new.name))
            self.reload(new.name)

    def action_add_department(self) -> None:
        self.add_department()

    @work(exclusive=True, exit_on_error=False, group="edit")
    async def add_department(self) -> None:
        async def submit(v: dict) -> Department:
            return await self.ctx.store.accounts.add_department(self.ctx.actor, v["code"].strip(), v["name"])

        existing = ", ".join(d.code for d in await self.ctx.store.accounts.departments()) or _("none yet")
        added = await self.app.push_screen_wait(
            FormModal(
                _("New department"),
                [Field("code", _("Code (letters, digits, . _ -), e.g. USC")), Field("name", _("Name"))],
                submit,
                intro=_("Departments now: {codes}.").format(codes=existing),
            )
        )
        if added is not None:
            self.notify(_("Department {code} added.").format(code=added.code))

    def action_toggle_disabled(self) -> None:
        staff = self._current()
        if staff is not None:
            self.toggle_disabled(staff)

    @work(exclusive=True, exit_on_error=False, group="edit")
    async def toggle_disabled(self, staff: Staff) -> None:
        if staff.id == self.ctx.actor.staff_id and not staff.disabled:
            self.notify(_("You cannot disable your own account."), severity="error")
            return
        if staff.disabled:
            question, refused, done = (
                N_("Enable the account {name}?"),
                N_("Cannot enable the account"),
                N_("Account {name} enabled."),
            )
        else:
            question, refused, done = (
                N_("Disable the account {name}?"),
                N_("Cannot disable the account"),
                N_("Account {name} disabled."),
            )
        if not await self.app.push_screen_wait(ConfirmModal(_(question).format(name=staff.name))):
            return
        set_failure_title(_(refused))
        await self.ctx.store.accounts.set_disabled(self.ctx.actor, staff.name, not staff.disabled)
        self.notify(_(done).format(name=staff.name))
        self.reload(staff.name)

    def action_roles(self) -> None:
        staff = self._current()
        if staff is not None:
            self.roles(staff)

    @work(exclusive=True, exit_on_error=False, group="edit")
    async def roles(self, staff: Staff) -> None:
        async def submit(chosen: frozenset[str]) -> frozenset[str]:
            await self.ctx.store.accounts.set_roles(self.ctx.actor, staff.name, sorted(chosen))
            return chosen

        chosen = await self.app.push_screen_wait(
            RolesModal(
                _("Roles of {name}").format(name=staff.name),
                ALL_ROLES,
                frozenset(r.value for r in staff.roles),
                submit=submit,
            )
        )
        if chosen is not None:
            self.notify(_("Roles of {name}: {roles}.").format(name=staff.name, roles=role_names(chosen)))
            self.reload(staff.name)

    def action_password(self) -> None:
        staff = self._current()
        if staff is not None:
            self.password(staff)

    @work(exclusive=True, exit_on_error=False, group="edit")
    async def password(self, staff: Staff) -> None:
        async def submit(password: str) -> str:
            await self.ctx.store.accounts.set_password(self.ctx.actor, staff.name, password)
            return password

        if await self.app.push_screen_wait(PasswordModal(staff.name, submit=submit)) is not None:
            self.notify(_("Password of {name} reset; their open sessions were ended.").format(name=staff.name))

    def action_reset_second_factor(self) -> None:
        staff = self._current()
        if staff is not None:
            self.reset_second_factor(staff)

    @failure_title(N_("Cannot reset the second factor"))
    @work(exclusive=True, exit_on_error=False, group="edit")
    async def reset_second_factor(self, staff: Staff) -> None:
        if staff.second_factor == "none":
            self.notify(_("{name} has no second factor set up.").format(name=staff.name))
            return
        if not await self.app.push_screen_wait(
            ConfirmModal(
                _("Remove the second factor of {name}? A new one is set up at the next sign-in.").format(
                    name=staff.name
                )
            )
        ):
            return
        await self.ctx.store.accounts.reset_second_factor(self.ctx.actor, staff.name)
        self.notify(_("Second factor of {name} removed; their open sessions were ended.").format(name=staff.name))
        self.reload(staff.name)
