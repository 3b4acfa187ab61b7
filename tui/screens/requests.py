"""Residents' requests (§4, GDPR Art. 15): each role's inbox, the register, a request's detail and every step."""

from __future__ import annotations

import asyncio
import shlex
from datetime import date, datetime, time
from pathlib import Path
from typing import Any, Awaitable, Callable
from zoneinfo import ZoneInfo

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.coordinate import Coordinate
from textual.widgets import DataTable, Footer, Header, Label, Static

from store.errors import CimError, InvalidInput
from store.keys import feed_player, player_input
from store.i18n import N_, _
from store.models import Role
from store.policy import Permission, allowed
from store.requests import (
    ACCESS, COPY, DELIVERIES, DELIVERY_LABELS, STATE_LABELS, AccessRequest, Candidate, RequestDetail, RequestInput,
)
from store.session_record import SESSION_OUTCOMES, SESSION_RECORD
from tui.context import TuiContext
from tui.screens.base import CimScreen
from tui.widgets.listen_link import listening_status, offer_listening_link
from tui.widgets.literal import literal
from tui.widgets.request_forms import ContentModal, Field, FormModal

STATE_FILTERS: list[str | None] = [None, "open", *STATE_LABELS]


def due_cell(r: AccessRequest) -> Text:
    """The due date, red when overdue and yellow when due soon, so they stand out in every list."""
    if r.overdue:
        return Text(f"{r.effective_due} overdue", style="bold red")
    if r.due_soon:
        return Text(f"{r.effective_due} due soon", style="bold yellow")
    return Text(str(r.effective_due))


def asks(r: AccessRequest) -> str:
    """What is asked, in one short word: listen (call) or read (chat) under §4, or an Art. 15 copy."""
    return f"copy {r.channel}" if r.kind == COPY else r.asked


def _local(moment: datetime | None, tz: ZoneInfo) -> str:
    return moment.astimezone(tz).strftime("%Y-%m-%d %H:%M") if moment else ""


class RequestsScreen(CimScreen[None]):
    """The inbox (what waits for me) and the register (every request, filtered); Enter opens a request."""

    AUTO_FOCUS = "#requests-table"
    DEFAULT_CSS = """
    RequestsScreen #requests-title { width: 100%; padding: 0 1; background: $boost; text-style: bold; }
    RequestsScreen #requests-table { height: 1fr; }
    RequestsScreen #requests-empty { padding: 1 2; color: $text-muted; height: auto; }
    """
    BINDINGS = [
        Binding("n", "new", "New request"),
        Binding("i", "toggle_view", "Inbox/register"),
        Binding("t", "next_filter", "State filter"),
        Binding("r", "reload", "Refresh"),
    ]

    def __init__(self, ctx: TuiContext) -> None:
        super().__init__()
        self.ctx = ctx
        actor = ctx.actor
        inbox_roles = {Role.DPO, Role.DEPARTMENT_HEAD, Role.BOI_DIRECTOR}
        self.showing = "inbox" if (actor.roles & inbox_roles or not allowed(actor, Permission.VIEW_REQUESTS)) \
            else "register"
        self.state_filter: str | None = None
        self.requests: list[AccessRequest] = []

    def compose(self) -> ComposeResult:
        yield Header()
        yield Label("", id="requests-title")
        yield DataTable(id="requests-table", cursor_type="row", zebra_stripes=True)
        yield Static("", id="requests-empty")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#requests-table", DataTable)
        table.add_columns("Number", "Asks", "State", "Due", "Requester")
        self.reload()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        actor = self.ctx.actor
        if action == "new":
            return allowed(actor, Permission.REGISTER_REQUESTS) or allowed(actor, Permission.HANDLE_COPY_REQUESTS)
        if action in ("toggle_view", "next_filter"):
            return allowed(actor, Permission.VIEW_REQUESTS)
        return True

    def _heading(self) -> str:
        if self.showing == "inbox":
            return f"Requests — my inbox ({len(self.requests)} waiting)"
        shown = STATE_LABELS.get(self.state_filter or "", self.state_filter or "all states")
        return f"Requests — register ({shown}, {len(self.requests)})"

    @work(exclusive=True, exit_on_error=False, group="load")
    async def reload(self, keep: int | None = None) -> None:
        store = self.ctx.store
        try:
            if self.showing == "inbox":
                self.requests = await store.requests.inbox(self.ctx.actor)
            else:
                self.requests = await store.requests.list(self.ctx.actor, state=self.state_filter)
        except CimError as exc:
            self.notify(exc.message, title="Cannot list requests", severity="error")
            return
        table = self.query_one("#requests-table", DataTable)
        current = keep if keep is not None else (self.current_request().id if self.current_request() else None)
        table.clear()
        for r in self.requests:
            table.add_row(r.number, asks(r), r.state_label, due_cell(r), literal(r.requester_name), key=str(r.id))
        ids = [r.id for r in self.requests]
        if current in ids:
            table.move_cursor(row=ids.index(current))
        self.query_one("#requests-title", Label).update(self._heading())
        empty = self.query_one("#requests-empty", Static)
        empty.update("Nothing waits for you." if self.showing == "inbox" else "No requests.")
        empty.display = not self.requests

    def current_request(self) -> AccessRequest | None:
        table = self.query_one("#requests-table", DataTable)
        row = table.cursor_row
        return self.requests[row] if self.requests and row is not None and 0 <= row < len(self.requests) else None

    def action_reload(self) -> None:
        self.reload()

    def action_toggle_view(self) -> None:
        self.showing = "register" if self.showing == "inbox" else "inbox"
        self.reload()

    def action_next_filter(self) -> None:
        self.showing = "register"
        self.state_filter = STATE_FILTERS[(STATE_FILTERS.index(self.state_filter) + 1) % len(STATE_FILTERS)]
        self.reload()

    @on(DataTable.RowSelected, "#requests-table")
    def _open(self, event: DataTable.RowSelected) -> None:
        request_id = int(str(event.row_key.value))
        self.app.push_screen(RequestDetailScreen(self.ctx, request_id), lambda _: self.reload(request_id))

    def action_new(self) -> None:
        self.new_request()

    @work(exclusive=True, exit_on_error=False, group="edit")
    async def new_request(self) -> None:
        created = await self.app.push_screen_wait(register_form(self.ctx))
        if created is not None:
            self.notify(f"Registered {created.number}; due {created.due_on}.")
            self.reload(created.id)


def register_form(ctx: TuiContext) -> FormModal[AccessRequest]:
    """The register form: the store checks every rule and the message appears under the form."""
    today = ctx.store.requests.today().isoformat()
    kinds = [("§4 access (listen / read)", ACCESS), ("GDPR Art. 15 copy", COPY)]
    if not allowed(ctx.actor, Permission.REGISTER_REQUESTS):
        kinds = [k for k in kinds if k[1] == COPY]
    # the §4.2 annex's order (store/request_form.py): who asks, which call or chat, why, how to answer
    fields = [
        Field("kind", "Kind of request", "select", kinds[0][1], kinds),
        Field("received_on", "Date received (YYYY-MM-DD)", default=today),
        Field("requester_name", "Requester's name"),
        Field("requester_address", "Correspondence address"),
        Field("requester_phone", "Phone (for a call: the number it was made from)", placeholder="601 234 567"),
        Field("requester_email", "E-mail or e-Doręczenia address (AE:PL-…; optional)"),
        Field("channel", "Channel", "select", "call", [("phone call", "call"), ("chat", "chat")]),
        Field("date", "Date of the conversation (YYYY-MM-DD)"),
        Field("time", "Approximate time (HH:MM, optional)"),
        Field("conversation_reference", _("Chat reference from the receipt (CZ-…) or the number called from; optional")),
        Field("receipt_secret", _("Chat code from the receipt (optional; a valid pair links the chat, §4.1)"),
              password=True),
        Field("duration_min", "Approximate duration in minutes (optional)"),
        Field("consultant", "Consultant, if known (optional)"),
        Field("topic", "Topic (optional)"),
        Field("name_or_email", "Chat: name or e-mail given in it (optional)"),
        Field("justification", "Justification (§4.1; not needed for a copy)", "text"),
        Field("delivery", "Reply delivered by", "select", "post", [(DELIVERY_LABELS[d], d) for d in DELIVERIES]),
        Field("addressed_as", "Letters address the requester as", "select", "",
              [("— (not stated: neutral forms)", ""), ("Pani", "pani"), ("Pan", "pan")]),
    ]

    async def submit(v: dict[str, Any]) -> AccessRequest:
        hint = {k: v[k].strip() for k in ("date", "time", "duration_min", "consultant", "topic", "name_or_email")
                if v[k].strip()}
        return await ctx.store.requests.register(ctx.actor, RequestInput(
            kind=v["kind"], channel=v["channel"], received_on=v["received_on"], requester_name=v["requester_name"],
            requester_address=v["requester_address"], requester_phone=v["requester_phone"] or None,
            requester_email=v["requester_email"] or None, justification=v["justification"],
            delivery=v["delivery"], addressed_as=v["addressed_as"] or "", hint=hint,
            conversation_reference=v["conversation_reference"], receipt_secret=v["receipt_secret"]))

    return FormModal("Register a request", fields, submit, save_label="Register")


class RequestDetailScreen(CimScreen[None]):
    """One request: its facts, deadlines, §4.7 verdict, conversations, candidates, opinions and letters.

    The footer offers only the steps the lifecycle allows now and the signed-in person may take;
    the store checks both again.
    """

    AUTO_FOCUS = "#candidates"
    DEFAULT_CSS = """
    RequestDetailScreen #detail { height: 1fr; }
    RequestDetailScreen .section { width: 100%; background: $boost; text-style: bold; padding: 0 1; margin-top: 1; }
    RequestDetailScreen #summary { padding: 0 1; height: auto; }
    RequestDetailScreen #eligibility { padding: 0 1; height: auto; }
    RequestDetailScreen #eligibility.ineligible { color: $text-error; text-style: bold; }
    RequestDetailScreen DataTable { height: auto; max-height: 10; }
    RequestDetailScreen #opinions, RequestDetailScreen #letters, RequestDetailScreen #session { padding: 0 1; height: auto; }
    RequestDetailScreen #listening { padding: 0 1; height: auto; color: $text-accent; text-style: bold; display: none; }
    """
    BINDINGS = [
        Binding("escape", "back", "Back"),
        Binding("l", "link", "Link"),
        Binding("u", "unlink", "Unlink"),
        Binding("o", "opinion", "Opinion"),
        Binding("g", "grant", "Grant"),
        Binding("x", "refuse", "Refuse"),
        Binding("e", "extend", "Extend"),
        Binding("w", "withdraw", "Withdraw"),
        Binding("s", "start_session", "Start session"),
        Binding("v", "view_content", "Listen/read"),
        Binding("f", "end_session", "End session"),
        Binding("r", "sign_record", "Sign record"),  # p is "prepare copy" (the two never apply to one request)
        Binding("k", "export", "Export copy"),
        Binding("p", "prepare_copy", "Prepare copy"),
        Binding("a", "confirm_copy", "Confirm copy"),
        Binding("c", "close_request", "Close"),
        Binding("b", "receipt", N_("Chat receipt")),  # §4.1: the chat's reference and code, brought later
    ]

    def __init__(self, ctx: TuiContext, request_id: int) -> None:
        super().__init__()
        self.ctx = ctx
        self.request_id = request_id
        self.detail: RequestDetail | None = None
        self.candidates: list[Candidate] = []
        self.tz = ZoneInfo(ctx.settings.timezone)

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll(id="detail"):
            yield Static("", id="summary")
            yield Static("", id="eligibility")
            yield Label("Linked conversations (u unlinks, v plays or reads during the session)", classes="section")
            yield DataTable(id="linked", cursor_type="row")
            yield Label("Candidates (l links the highlighted one)", classes="section", id="candidates-title")
            yield DataTable(id="candidates", cursor_type="row")
            yield Label("Opinions (§4.3)", classes="section")
            yield Static("", id="opinions")
            yield Label("Session (§4.4, §4.6)", classes="section")
            yield Static("", id="session")
            yield Static("", id="listening")
            yield Label("Letters", classes="section")
            yield Static("", id="letters")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#linked", DataTable).add_columns("Conversation", "Channel", "Began", "Number", "Dept",
                                                         "Recording")
        self.query_one("#candidates", DataTable).add_columns("Conversation", "Began", "Number", "Match", "Dept",
                                                             "Consultant", "Minutes off")
        self.reload()

    # -- loading ------------------------------------------------------------------------------------

    @work(exclusive=True, exit_on_error=False, group="load")
    async def reload(self) -> None:
        requests = self.ctx.store.requests
        try:
            self.detail = await requests.get(self.ctx.actor, self.request_id)
            self.candidates = []
            if self._may_link():
                self.candidates = await requests.candidates(self.ctx.actor, self.request_id)
        except CimError as exc:
            self.notify(exc.message, title="Cannot show the request", severity="error")
            return
        self._show()
        self.refresh_bindings()
        self.show_listening()

    @work(exclusive=True, exit_on_error=False, group="listening")
    async def show_listening(self) -> None:
        """"odsłuch w przeglądarce" while one of the signed-in person's links for this request is live."""
        try:
            links = await self.ctx.store.listening.live_links(self.ctx.actor, request_id=self.request_id)
        except CimError:
            links = []
        line = self.query_one("#listening", Static)
        line.update(listening_status(links, self.tz))
        line.display = bool(links)

    def _may_link(self) -> bool:
        d = self.detail
        if d is None or "link" not in d.next_actions:
            return False
        return allowed(self.ctx.actor, Permission.REGISTER_REQUESTS) or (
            d.request.kind == COPY and allowed(self.ctx.actor, Permission.HANDLE_COPY_REQUESTS))

    def _show(self) -> None:
        assert self.detail is not None
        d, r = self.detail, self.detail.request
        self.sub_title = f"{r.number} · {r.state_label}"
        summary = Text()
        summary.append(f"{r.number}", style="bold")
        summary.append(f"  {r.kind} · {r.channel} · asks to {r.asked} · {r.state_label}\n")
        summary.append("Requester: ")
        summary.append_text(literal(r.requester_name))
        summary.append("\nAddress: ")
        summary.append_text(literal(r.requester_address))
        summary.append(f"\nPhone: {r.requester_phone or '—'} · e-mail/e-Doręczenia: ")
        summary.append_text(literal(r.requester_email or "—"))
        summary.append(f" · reply by {DELIVERY_LABELS.get(r.delivery, r.delivery)}\n")
        summary.append(f"Received {r.received_on} · due {r.due_on}")
        if r.extended_until:
            summary.append(f" · extended to {r.extended_until}")
        summary.append("  ")
        summary.append_text(due_cell(r) if (r.overdue or r.due_soon) else Text(""))
        summary.append("\nConversation: ")
        summary.append_text(literal(", ".join(f"{k}={v}" for k, v in r.hint.items())))
        if r.conversation_reference:
            summary.append(" · " + _("reference {reference}").format(reference=r.conversation_reference))
        if r.receipt_verified_at:
            summary.append(" · " + _("receipt verified (§4.1)"))
        if r.justification:
            summary.append("\nJustification: ")
            summary.append_text(literal(r.justification))
        if r.decision:
            summary.append(f"\nDecision: {r.decision} on {_local(r.decided_at, self.tz)}")
            if r.decision_reasons:
                summary.append(" — ")
                summary.append_text(literal(r.decision_reasons))
        self.query_one("#summary", Static).update(summary)
        eligibility = self.query_one("#eligibility", Static)
        if r.ineligible_reason:
            eligibility.update(Text(f"Only refusal is possible: {r.ineligible_reason}"))
            eligibility.add_class("ineligible")
        else:
            eligibility.update("§4.7: no obstacle found." if d.conversations else "No conversation linked yet.")
            eligibility.remove_class("ineligible")
        linked = self.query_one("#linked", DataTable)
        linked.clear()
        for c in d.conversations:
            linked.add_row(str(c.conversation_id), c.channel, _local(c.created_at, self.tz),
                           literal(c.resident_number or ("—" if c.channel == "chat" else "withheld")),
                           c.department or "", "yes" if c.has_recording else "", key=str(c.conversation_id))
        cands = self.query_one("#candidates", DataTable)
        cands.clear()
        for c in self.candidates:
            match = "number" if c.number_matches else ("details" if c.detail_matches else "")
            cands.add_row(str(c.conversation_id) + (" (linked)" if c.linked else ""), _local(c.created_at, self.tz),
                          literal(c.resident_number or ""), Text(match, style="bold green") if match else "",
                          c.department or "", literal(c.consultant or ""),
                          "" if c.minutes_from_hint is None else str(c.minutes_from_hint),
                          key=str(c.conversation_id))
        show = self._may_link()
        cands.display = show
        self.query_one("#candidates-title").display = show
        opinions = Text()
        for kind in ("dpo", "department"):
            o = next((o for o in d.opinions if o.kind == kind), None)
            label = "DPO" if kind == "dpo" else "Department"
            if o is None:
                opinions.append(f"{label}: awaited\n" if r.kind == ACCESS else "")
            else:
                opinions.append(f"{label}: {o.verdict} ({o.staff_name}, {_local(o.at, self.tz)}) — ")
                opinions.append_text(literal(o.text))
                opinions.append("\n")
        opinions.rstrip()
        self.query_one("#opinions", Static).update(opinions if r.kind == ACCESS else "No opinions for a copy request.")
        session = Text()
        if r.session_at:
            session.append(f"{_local(r.session_at, self.tz)} at ")
            session.append_text(literal(r.session_place or ""))
            session.append("\nAttendees: " + ", ".join(
                a.name + ("" if a.present is None else (" (present)" if a.present else " (absent)"))
                for a in d.attendees))
        if r.session_started_at:
            session.append(f"\nStarted {_local(r.session_started_at, self.tz)}")
        if r.session_ended_at:
            session.append(f" · ended {_local(r.session_ended_at, self.tz)}")
        if r.session_others:
            session.append("\nAlso present: ")
            session.append_text(literal(", ".join(r.session_others)))
        if r.session_outcome:
            session.append(f"\nOutcome: {r.session_outcome.replace('_', ' ')}")
        if r.session_notes:
            session.append("\nNotes: ")
            session.append_text(literal(r.session_notes))
        if r.export_path:
            session.append(f"Copy exported to {r.export_path}")
        self._append_approval(session, d)
        self.query_one("#session", Static).update(session if session.plain else "—")
        self.query_one("#letters", Static).update(
            "\n".join(f"{x.kind}: {x.path} (SHA-256 {x.sha256[:16]}…) · "
                      f"{'sealed (PAdES)' if x.sealed else 'not sealed'}" for x in d.letters) or "—")

    # -- which steps are offered ------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "back":
            return True
        d = self.detail
        if d is None:
            return False
        actor, r, moves = self.ctx.actor, d.request, d.next_actions
        decider = Permission.DECIDE_REQUESTS if r.kind == ACCESS else Permission.HANDLE_COPY_REQUESTS
        session_staff = allowed(actor, Permission.SCHEDULE_SESSIONS) or any(
            a.staff_id == actor.staff_id for a in d.attendees)
        rules: dict[str, bool] = {
            "link": self._may_link(),
            "unlink": self._may_link() and bool(d.conversations),
            "opinion": "opinion" in moves and (allowed(actor, Permission.GIVE_DPO_OPINION)
                                               or allowed(actor, Permission.GIVE_DEPARTMENT_OPINION)),
            "grant": "grant" in moves and allowed(actor, decider),
            "refuse": "refuse" in moves and allowed(actor, decider),
            "extend": "extend" in moves and allowed(actor, decider),
            "withdraw": "withdraw" in moves and any(allowed(actor, p) for p in (
                Permission.REGISTER_REQUESTS, Permission.DECIDE_REQUESTS, Permission.HANDLE_COPY_REQUESTS)),
            "start_session": "start_session" in moves and session_staff,
            "view_content": r.state == "session_in_progress" and session_staff,
            "end_session": "end_session" in moves and session_staff,
            "sign_record": r.kind == ACCESS and r.session_ended_at is not None
            and allowed(actor, Permission.DECIDE_REQUESTS) and not any(x.kind == SESSION_RECORD for x in d.letters),
            "export": "export" in moves and allowed(actor, Permission.HANDLE_COPY_REQUESTS),
            "close_request": "close" in moves and allowed(actor, decider),
            "receipt": self._may_link() and r.channel == "chat" and r.receipt_verified_at is None,
            **self._copy_rules(),
        }
        return rules.get(action, True)

    # -- steps ----------------------------------------------------------------------------------------

    def action_back(self) -> None:
        self.dismiss(None)

    def _selected(self, table_id: str) -> int | None:
        table = self.query_one(f"#{table_id}", DataTable)
        if table.row_count == 0 or table.cursor_row is None:
            return None
        return int(str(table.coordinate_to_cell_key(Coordinate(table.cursor_row, 0)).row_key.value))

    async def _step(self, what: str, call: Awaitable[Any]) -> Any:
        try:
            result = await call
        except CimError as exc:
            self.notify(exc.message, title=f"Cannot {what}", severity="error")
            return None
        self.reload()
        return result if result is not None else True

    @work(exclusive=True, exit_on_error=False, group="step")
    async def action_link(self) -> None:
        conv = self._selected("candidates")
        if conv is None:
            self.notify("No candidate is highlighted.", severity="warning")
            return
        r = await self._step("link", self.ctx.store.requests.link(self.ctx.actor, self.request_id, conv))
        if r:
            self.notify(f"Conversation {conv} linked and held." + ("" if r.eligible else f" {r.ineligible_reason}"),
                        severity="information" if r.eligible else "warning")

    @work(exclusive=True, exit_on_error=False, group="step")
    async def action_unlink(self) -> None:
        conv = self._selected("linked")
        if conv is not None and await self._step(
                "unlink", self.ctx.store.requests.unlink(self.ctx.actor, self.request_id, conv)):
            self.notify(f"Conversation {conv} unlinked; its hold is released.")

    @work(exclusive=True, exit_on_error=False, group="step")
    async def action_receipt(self) -> None:
        fields = [Field("reference", _("Chat reference (CZ-YYYY-MM-DD-XXXX)")),
                  Field("code", _("Chat code"), password=True)]

        async def submit(v: dict[str, Any]) -> AccessRequest:
            return await self.ctx.store.requests.link_by_receipt(self.ctx.actor, self.request_id, v["reference"],
                                                                 v["code"])

        await self._form(FormModal(_("The chat's receipt (§4.1)"), fields, submit, save_label=_("Check and link"),
                                   intro=_("A valid pair proves that the requester took part in the chat; the chat "
                                           "is linked and held. Wrong codes are audited and, after 5, refused for "
                                           "an hour.")),
                         _("The receipt is valid: the chat is linked and held."))

    async def _form(self, form: FormModal[Any], done: str) -> None:
        result = await self.app.push_screen_wait(form)
        if result is not None:
            self.notify(done)
            self.reload()

    @work(exclusive=True, exit_on_error=False, group="step")
    async def action_opinion(self) -> None:
        actor = self.ctx.actor
        kinds = [(label, k) for label, k, p in (("DPO opinion", "dpo", Permission.GIVE_DPO_OPINION),
                                                ("Department opinion", "department",
                                                 Permission.GIVE_DEPARTMENT_OPINION)) if allowed(actor, p)]
        fields = [Field("kind", "Opinion", "select", kinds[0][1], kinds),
                  Field("verdict", "Verdict", "select", "favourable",
                        [("favourable", "favourable"), ("unfavourable", "unfavourable")]),
                  Field("text", "Reasons", "text")]

        async def submit(v: dict[str, Any]) -> AccessRequest:
            return await self.ctx.store.requests.give_opinion(actor, self.request_id, v["kind"], v["verdict"], v["text"])

        await self._form(FormModal("Opinion on " + self._number(), fields, submit), "Opinion recorded.")

    def _number(self) -> str:
        return self.detail.request.number if self.detail else ""

    @work(exclusive=True, exit_on_error=False, group="step")
    async def action_grant(self) -> None:
        assert self.detail is not None
        store, actor = self.ctx.store, self.ctx.actor
        if self.detail.request.kind == COPY:
            async def approve(v: dict[str, Any]) -> AccessRequest:
                return await store.requests.grant(actor, self.request_id)

            await self._form(FormModal(f"Grant the copy requested in {self._number()}", [], approve,
                                       intro="The copy is then prepared with P and confirmed by a second person.",
                                       save_label="Grant"),
                             "Granted; prepare the copy with P.")
            return
        staff = [s for s in await store.accounts.list_staff(actor) if not s.disabled]
        fields = [Field("date", "Session date (YYYY-MM-DD)"), Field("time", "Session time (HH:MM, local)"),
                  Field("place", "Place"),
                  Field("attendees", "Designated attendees (§4.6; space selects)", "multi", (),
                        [(f"{s.name} {s.full_name}".strip(), s.id) for s in staff])]

        async def submit(v: dict[str, Any]) -> AccessRequest:
            at = self._parse_local(v["date"], v["time"])
            return await store.requests.grant(actor, self.request_id, session_at=at, place=v["place"],
                                              attendee_ids=v["attendees"])

        await self._form(FormModal(f"Grant {self._number()}: schedule the session", fields, submit,
                                   save_label="Grant"), "Granted; the notification letter is written.")

    def _parse_local(self, day: str, hhmm: str) -> datetime:
        try:
            d = date.fromisoformat(day.strip())
        except ValueError:
            raise InvalidInput("the session date must be YYYY-MM-DD") from None
        try:
            t = time.fromisoformat(hhmm.strip())
        except ValueError:
            raise InvalidInput("the session time must be HH:MM") from None
        return datetime.combine(d, t, self.tz)

    @work(exclusive=True, exit_on_error=False, group="step")
    async def action_refuse(self) -> None:
        async def submit(v: dict[str, Any]) -> AccessRequest:
            return await self.ctx.store.requests.refuse(self.ctx.actor, self.request_id, v["reasons"])

        await self._form(FormModal(f"Refuse {self._number()}", [Field("reasons", "Reasons (in the letter)", "text")],
                                   submit, save_label="Refuse",
                                   intro="The letter adds the right to complain to the President of the Personal "
                                         "Data Protection Office and to go to court."),
                         "Refused; the refusal letter is written.")

    @work(exclusive=True, exit_on_error=False, group="step")
    async def action_extend(self) -> None:
        async def submit(v: dict[str, Any]) -> AccessRequest:
            return await self.ctx.store.requests.extend(self.ctx.actor, self.request_id, int(v["months"]), v["reasons"])

        await self._form(FormModal(f"Extend the answer to {self._number()} (GDPR Art. 12(3))",
                                   [Field("months", "By", "select", 1, [("one month", 1), ("two months", 2)]),
                                    Field("reasons", "Reasons for the delay", "text")], submit, save_label="Extend"),
                         "Extended; the letter is written.")

    @work(exclusive=True, exit_on_error=False, group="step")
    async def action_withdraw(self) -> None:
        async def submit(v: dict[str, Any]) -> AccessRequest:
            return await self.ctx.store.requests.withdraw(self.ctx.actor, self.request_id, v["note"])

        await self._form(FormModal(f"Withdraw {self._number()}", [Field("note", "How it was withdrawn (optional)")],
                                   submit, save_label="Withdraw"), "Withdrawn; the holds are released.")

    @work(exclusive=True, exit_on_error=False, group="step")
    async def action_start_session(self) -> None:
        if await self._step("start the session", self.ctx.store.requests.start_session(self.ctx.actor,
                                                                                        self.request_id)):
            self.notify("Session started: highlight a conversation and press V.")

    @work(exclusive=True, exit_on_error=False, group="step")
    async def action_view_content(self) -> None:
        conv = self._selected("linked")
        if conv is None:
            self.notify("No conversation is highlighted.", severity="warning")
            return
        has_recording = any(c.conversation_id == conv and c.has_recording for c in self.detail.conversations) \
            if self.detail else False
        if has_recording and not self.ctx.settings.player_command.strip():
            await self._listen_in_browser(conv)
            return
        try:
            material = await self.ctx.store.requests.open_for_session(self.ctx.actor, self.request_id, conv)
        except CimError as exc:
            self.notify(exc.message, title="Cannot open", severity="error")
            return
        lines: list[Text] = []
        for m in material.transcript:
            line = Text(f"{_local(m.at, self.tz)} {m.sender}: ", style="bold")
            line.append_text(literal(m.text))
            lines.append(line)
        play: Callable[[], Awaitable[str]] | None = None
        if material.recording_path is not None:
            lines.insert(0, Text(f"Recording: {material.recording_path}"))
            path = material.recording_path
            play = lambda: self._play(path)  # noqa: E731
        await self.app.push_screen_wait(ContentModal(f"{self._number()} · conversation {conv}", lines, play=play))

    async def _listen_in_browser(self, conv: int) -> None:
        """The recording heard in the browser of the staff member running the session, through a listening link."""
        await offer_listening_link(
            self, lambda: self.ctx.store.listening.create_for_session(self.ctx.actor, self.request_id, conv,
                                                                      session_token=self.ctx.token or None),
            self.tz, f"{self._number()} · conversation {conv}")

    async def _play(self, path: Path) -> str:
        """Run the configured player (no shell: the path is one argument)."""
        source, plain = await asyncio.to_thread(player_input, path)  # a sealed recording is fed through a pipe
        argv = [part.replace("{path}", source) for part in shlex.split(self.ctx.settings.player_command)]
        proc = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.DEVNULL,
                                                    stdin=asyncio.subprocess.PIPE if plain else None,
                                                    stderr=asyncio.subprocess.DEVNULL)
        if plain is not None:
            asyncio.create_task(feed_player(proc.stdin, plain))
        code = await proc.wait()
        if code != 0:
            raise InvalidInput(f"the player ({argv[0]}) ended with status {code}")
        return "Playback finished."

    @work(exclusive=True, exit_on_error=False, group="step")
    async def action_end_session(self) -> None:
        assert self.detail is not None
        fields = [Field("present", "Designated staff present (space selects)", "multi", (),
                        [(a.name, a.staff_id) for a in self.detail.attendees]),
                  Field("others", "Others present, by name (comma-separated)"),
                  Field("outcome", "Outcome", "select", "completed",
                        [(text, key) for key, text in SESSION_OUTCOMES.items()]),
                  Field("notes", "Notes", "text")]

        async def submit(v: dict[str, Any]) -> AccessRequest:
            others = [name.strip() for name in (v.get("others") or "").split(",") if name.strip()]
            return await self.ctx.store.requests.end_session(self.ctx.actor, self.request_id, v["present"], v["notes"],
                                                             others=others, outcome=v.get("outcome") or "completed")

        await self._form(FormModal(f"End the session of {self._number()}", fields, submit, save_label="End session"),
                         "Session recorded; close the request with C.")

    @work(exclusive=True, exit_on_error=False, group="step")
    async def action_sign_record(self) -> None:
        record = await self._step("sign the session record",
                                  self.ctx.store.requests.sign_session_record(self.ctx.actor, self.request_id))
        if record:
            self.notify("The session record (protokół) is signed and stored with the letters.")

    @work(exclusive=True, exit_on_error=False, group="step")
    async def action_export(self) -> None:
        async def submit(v: dict[str, Any]) -> Any:
            return await self.ctx.store.requests.export_copy(self.ctx.actor, self.request_id,
                                                             Path(v["folder"].strip()).expanduser(), as_zip=v["zip"])

        await self._form(FormModal(f"Export the copy for {self._number()} (GDPR Art. 15)",
                                   [Field("folder", "Into the existing folder", default=str(Path.home())),
                                    Field("zip", "as one ZIP file", "check", False)], submit, save_label="Export"),
                         "Copy exported with manifest.json and SHA256SUMS.")

    # -- two people for a copy (GDPR Art. 15) ----------------------------------------------------------

    def _copy_rules(self) -> dict[str, bool]:
        d, actor = self.detail, self.ctx.actor
        moves = d.next_actions if d else ()
        return {
            "prepare_copy": "prepare_export" in moves and allowed(actor, Permission.HANDLE_COPY_REQUESTS),
            "confirm_copy": "confirm_export" in moves and allowed(actor, Permission.CONFIRM_COPY_EXPORT)
            and d.approval is not None and d.approval.prepared_by != actor.name,
        }

    def _append_approval(self, text: Text, d: RequestDetail) -> None:
        a = d.approval
        if a is None:
            return
        text.append(f"\nCopy prepared by {a.prepared_by} {_local(a.prepared_at, self.tz)}")
        if a.prepare_justification:
            text.append(" — why it is the requester's: ")
            text.append_text(literal(a.prepare_justification))
        if a.confirmed_by:
            text.append(f"\nConfirmed by {a.confirmed_by} {_local(a.confirmed_at, self.tz)}")
            if a.confirm_justification:
                text.append(": ")
                text.append_text(literal(a.confirm_justification))
        else:
            text.append("\nAwaiting the second person (a designated employee or the director).")

    @work(exclusive=True, exit_on_error=False, group="step")
    async def action_prepare_copy(self) -> None:
        async def submit(v: dict[str, Any]) -> Any:
            return await self.ctx.store.requests.prepare_export(self.ctx.actor, self.request_id, v["why"])

        await self._form(FormModal(f"Prepare the copy for {self._number()} (GDPR Art. 15)", [Field(
            "why", "Why these conversations are the requester's (needed unless every call matches the "
                   "requester's number, §4.7)", "text")], submit, save_label="Prepare"),
            "Prepared; a designated employee or the director confirms it (four-eyes).")

    @work(exclusive=True, exit_on_error=False, group="step")
    async def action_confirm_copy(self) -> None:
        async def submit(v: dict[str, Any]) -> Any:
            return await self.ctx.store.requests.confirm_export(self.ctx.actor, self.request_id, v["why"])

        await self._form(FormModal(f"Confirm the copy for {self._number()} (four-eyes)", [Field(
            "why", "Your own justification (needed when the preparer gave one)", "text")], submit,
            save_label="Confirm"), "Confirmed; the DPO may now export the copy with K.")

    @work(exclusive=True, exit_on_error=False, group="step")
    async def action_close_request(self) -> None:
        if await self._step("close", self.ctx.store.requests.close(self.ctx.actor, self.request_id)):
            self.notify(f"{self._number()} closed; its holds are released.")
