"""The chat desk's set-up for the CIM manager: the topics residents pick (each mapped to a department), and
the consultants' skills and maximum of concurrent chats. Every change goes through store.desk, audited."""

from __future__ import annotations

from typing import Any, Awaitable, Callable

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, DataTable, Footer, Header, Input, Label, SelectionList, Static

from store.desk import MAX_CHATS_LIMIT, MAX_TOPIC_LABEL, DeskPerson, Topic
from store.errors import CimError
from store.i18n import _
from tui.context import TuiContext
from tui.refusals import department_missing, is_department_missing
from tui.screens.base import CimModal, CimScreen
from tui.widgets.dialog import FitsTheScreen, SubmitsInPlace
from tui.widgets.literal import literal


class TopicModal(FitsTheScreen, SubmitsInPlace, CimModal[Topic | None]):
    """Add or edit a topic: Polish and English labels and a department code; the store's refusals are shown here,
    with everything typed kept."""

    BINDINGS = [Binding("escape", "cancel", "Cancel"), Binding("ctrl+s", "save", "Save")]
    REASON_FIELDS = {"department_missing": "department"}
    ERROR_FIELDS = (
        ("department", "department"),
        ("polish", "label-pl"),
        ("english", "label-en"),
        ("label", "label-pl"),
    )

    def __init__(
        self,
        heading: str,
        save: Callable[[str, str, str], Awaitable[Topic]],
        topic: Topic | None = None,
        ctx: TuiContext | None = None,
    ):
        super().__init__()
        self.heading = heading
        self.save = save
        self.topic = topic
        self.ctx = ctx

        self._refusal: str | None = None

        async def submit(values: tuple[str, str, str]) -> Topic:
            self._refusal = None
            try:
                return await self.save(*values)
            except CimError as exc:
                if is_department_missing(exc):
                    # not the CLI's `cim departments list`: the codes that exist, and who adds one (F9, N)
                    known = [d.code for d in await self.ctx.store.accounts.departments()] if self.ctx else None
                    self._refusal = department_missing(exc, self.ctx.actor if self.ctx else None, known)
                raise

        self.submit = submit

    def explain_refusal(self, exc: CimError) -> str:
        return self._refusal if self._refusal is not None else super().explain_refusal(exc)

    def compose(self) -> ComposeResult:
        t = self.topic
        with Vertical(classes="dialog"):
            yield Label(self.heading, classes="dialog-title")
            with VerticalScroll(classes="dialog-body"):
                yield Input(
                    t.label_pl if t else "",
                    placeholder=_("Polish label (residents see it)"),
                    id="label-pl",
                    max_length=MAX_TOPIC_LABEL,
                )
                yield Static("", id="err-label-pl", classes="field-error")
                yield Input(
                    t.label_en if t else "", placeholder=_("English label"), id="label-en", max_length=MAX_TOPIC_LABEL
                )
                yield Static("", id="err-label-en", classes="field-error")
                yield Input(
                    (t.department or "") if t else "",
                    placeholder=_("department code (§4.3 opinion)"),
                    id="department",
                    max_length=32,
                )
                yield Static("", id="err-department", classes="field-error")
            yield Static("", id="dialog-error", classes="dialog-error")
            with Horizontal(classes="dialog-buttons"):
                yield Button(_("Save"), id="save", variant="primary")
                yield Button(_("Cancel"), id="cancel")
            yield Static(_("Tab next field · Ctrl+S save · Esc cancel"), classes="dialog-help")

    @on(Input.Submitted)
    @on(Button.Pressed, "#save")
    def action_save(self) -> None:
        pl, en, dept = (self.query_one(f"#{name}", Input).value for name in ("label-pl", "label-en", "department"))
        self.finish((pl, en, dept))

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)


class CapacityModal(FitsTheScreen, SubmitsInPlace, CimModal[bool]):
    """A consultant's maximum of concurrent chats (empty: the default setting); a refusal keeps what was typed."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]
    ERROR_FIELDS = (("", "max-chats"),)  # its one field: every refusal is said next to it

    def __init__(self, person: DeskPerson, save: Callable[[int | None], Awaitable[Any]], default: int) -> None:
        super().__init__()
        self.person = person
        self.save = save
        self.default = default

        async def submit(n: int | None) -> bool:
            await self.save(n)
            return True

        self.submit = submit

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(
                Text.assemble(_("Most chats at once for "), literal(self.person.name, "bold")), classes="dialog-title"
            )
            with VerticalScroll(classes="dialog-body"):
                yield Input(
                    str(self.person.max_chats),
                    placeholder=_("1 to {n}; empty: the default ({d})").format(n=MAX_CHATS_LIMIT, d=self.default),
                    id="max-chats",
                    max_length=3,
                )
                yield Static("", id="err-max-chats", classes="field-error")
            yield Static("", id="dialog-error", classes="dialog-error")
            yield Static(_("Enter save · Esc cancel"), classes="dialog-help")

    @on(Input.Submitted, "#max-chats")
    def _submitted(self, event: Input.Submitted) -> None:
        text = event.value.strip()
        if text and not text.isdigit():
            self.show_error(
                _("Enter a number from 1 to {n}, or leave it empty.").format(n=MAX_CHATS_LIMIT), "max-chats"
            )
            return
        self.finish(int(text) if text else None)

    def action_cancel(self) -> None:
        self.dismiss(False)


class SkillsModal(FitsTheScreen, SubmitsInPlace, CimModal[bool]):
    """The topics a consultant answers in auto mode (none ticked: every topic); a refusal keeps the ticks."""

    BINDINGS = [Binding("escape", "cancel", "Cancel"), Binding("ctrl+s", "save", "Save")]
    ERROR_FIELDS = (("", "skills"),)  # its one field: every refusal is said next to it

    def __init__(self, person: DeskPerson, topics: list[Topic], save: Callable[[list[int]], Awaitable[Any]]):
        super().__init__()
        self.person = person
        self.topics = topics
        self.save = save

        async def submit(ids: list[int]) -> bool:
            await self.save(ids)
            return True

        self.submit = submit

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(Text.assemble(_("Topics of "), literal(self.person.name, "bold")), classes="dialog-title")
            with VerticalScroll(classes="dialog-body"):
                yield SelectionList[int](
                    *[(literal(t.label_pl), t.id, t.id in self.person.skills) for t in self.topics], id="skills"
                )
                yield Static("", id="err-skills", classes="field-error")
            yield Static("", id="dialog-error", classes="dialog-error")
            yield Static(_("Space tick · Ctrl+S save · Esc cancel · none ticked: every topic"), classes="dialog-help")

    def action_save(self) -> None:
        self.finish(list(self.query_one("#skills", SelectionList).selected))

    def action_cancel(self) -> None:
        self.dismiss(False)


class DeskScreen(CimScreen[None]):
    """Topics (what residents pick before a chat) and consultants (skills, most chats at once)."""

    AUTO_FOCUS = "#topics"

    DEFAULT_CSS = """
    DeskScreen #topics { height: 1fr; }
    DeskScreen #people { height: 1fr; }
    """

    BINDINGS = [
        Binding("a", "add", "Add topic"),
        Binding("e", "edit", "Edit topic"),
        Binding("o", "toggle_offered", "Offered"),
        Binding("c", "capacity", "Capacity"),
        Binding("s", "skills", "Skills"),
    ]

    def __init__(self, ctx: TuiContext) -> None:
        super().__init__()
        self.ctx = ctx
        self.topics: list[Topic] = []
        self.people: list[DeskPerson] = []

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(_("Topics residents pick before a chat (in this order)"), classes="section")
        yield DataTable(id="topics", cursor_type="row", zebra_stripes=True)
        yield Static(
            _("Consultants: most chats at once and topics (auto mode: CIM_CHAT_ASSIGNMENT=auto)"), classes="section"
        )
        yield DataTable(id="people", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#topics", DataTable).add_columns(_("Polish"), _("English"), _("Department"), _("Offered"))
        self.query_one("#people", DataTable).add_columns(_("Consultant"), _("At once"), _("Topics"))
        self.reload()

    @work(exclusive=True, exit_on_error=False, group="load")
    async def reload(self) -> None:
        desk = self.ctx.store.desk
        self.topics = await desk.topics(include_inactive=True)
        self.people = list((await desk.people()).values())
        labels = {t.id: t.label_pl for t in self.topics}
        topics = self.query_one("#topics", DataTable)
        row = topics.cursor_row
        topics.clear()
        for t in self.topics:
            topics.add_row(
                literal(t.label_pl),
                literal(t.label_en),
                t.department or "—",
                _("yes") if t.active else _("no"),
                key=str(t.id),
            )
        if row is not None and self.topics:
            topics.move_cursor(row=min(row, len(self.topics) - 1))
        people = self.query_one("#people", DataTable)
        row = people.cursor_row
        people.clear()
        for p in self.people:
            skills = ", ".join(labels.get(t, str(t)) for t in sorted(p.skills)) or _("all")
            people.add_row(literal(p.name), str(p.max_chats), literal(skills), key=str(p.staff_id))
        if row is not None and self.people:
            people.move_cursor(row=min(row, len(self.people) - 1))

    def _topic(self) -> Topic | None:
        row = self.query_one("#topics", DataTable).cursor_row
        return self.topics[row] if self.topics and row is not None and 0 <= row < len(self.topics) else None

    def _person(self) -> DeskPerson | None:
        row = self.query_one("#people", DataTable).cursor_row
        return self.people[row] if self.people and row is not None and 0 <= row < len(self.people) else None

    def action_add(self) -> None:
        self.add()

    @work(exclusive=True, exit_on_error=False, group="edit")
    async def add(self) -> None:
        store, actor = self.ctx.store, self.ctx.actor
        saved = await self.app.push_screen_wait(
            TopicModal(
                _("New topic"),
                lambda pl, en, dept: store.desk.add_topic(actor, pl, en, dept.strip() or None),
                ctx=self.ctx,
            )
        )
        if saved is not None:
            self.notify(_("Topic added."))
            self.reload()

    def action_edit(self) -> None:
        topic = self._topic()
        if topic is not None:
            self.edit(topic)

    @work(exclusive=True, exit_on_error=False, group="edit")
    async def edit(self, topic: Topic) -> None:
        store, actor = self.ctx.store, self.ctx.actor
        saved = await self.app.push_screen_wait(
            TopicModal(
                _("Edit topic"),
                lambda pl, en, dept: store.desk.update_topic(actor, topic.id, pl, en, dept.strip() or None),
                topic,
                ctx=self.ctx,
            )
        )
        if saved is not None:
            self.notify(_("Topic saved."))
            self.reload()

    def action_toggle_offered(self) -> None:
        topic = self._topic()
        if topic is not None:
            self.toggle(topic)

    @work(exclusive=True, exit_on_error=False, group="edit")
    async def toggle(self, topic: Topic) -> None:
        saved = await self.ctx.store.desk.set_topic_active(self.ctx.actor, topic.id, not topic.active)
        self.notify(
            _("Residents are offered this topic.") if saved.active else _("Residents are no longer offered this topic.")
        )
        self.reload()

    def action_capacity(self) -> None:
        person = self._person()
        if person is not None:
            self.capacity(person)

    @work(exclusive=True, exit_on_error=False, group="edit")
    async def capacity(self, person: DeskPerson) -> None:
        store, actor = self.ctx.store, self.ctx.actor
        if await self.app.push_screen_wait(
            CapacityModal(
                person, lambda n: store.desk.set_max_chats(actor, person.name, n), self.ctx.settings.chat_max_concurrent
            )
        ):
            self.reload()

    def action_skills(self) -> None:
        person = self._person()
        if person is not None:
            self.skills(person)

    @work(exclusive=True, exit_on_error=False, group="edit")
    async def skills(self, person: DeskPerson) -> None:
        store, actor = self.ctx.store, self.ctx.actor
        if await self.app.push_screen_wait(
            SkillsModal(
                person, [t for t in self.topics if t.active], lambda ids: store.desk.set_skills(actor, person.name, ids)
            )
        ):
            self.reload()
