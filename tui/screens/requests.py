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

from store.chats import SYSTEM_EVENTS, render_event
from store.errors import CimError, InvalidInput
from store.i18n import N_, _, current_language, format_date, format_datetime
from store.keys import feed_player, player_input
from store.models import Role
from store.policy import Permission, allowed
from store.requests import (
    ACCESS,
    COPY,
    DELIVERIES,
    DELIVERY_LABELS,
    STATE_LABELS,
    AccessRequest,
    Attendee,
    Candidate,
    RequestDetail,
    RequestInput,
)
from store.requests.lifecycle import may_register
from store.session_record import SESSION_OUTCOMES
from tui.context import TuiContext
from tui.screens.base import CimScreen, failure_title, set_failure_title
from tui.widgets.listen_link import listening_status, offer_listening_link
from tui.widgets.literal import literal
from tui.widgets.request_forms import ContentModal, Field, FormModal

STATE_FILTERS: list[str | None] = [None, "open", *STATE_LABELS]


def due_cell(r: AccessRequest) -> Text:
    """The due date, red when overdue and yellow when due soon, so they stand out in every list."""
    if r.overdue:
        return Text(_("{date} overdue").format(date=format_date(r.effective_due)), style="bold red")
    if r.due_soon:
        return Text(_("{date} due soon").format(date=format_date(r.effective_due)), style="bold yellow")
    return Text(format_date(r.effective_due))


def asks(r: AccessRequest) -> str:
    """What is asked, in one short word: listen (call) or read (chat) under §4, or an Art. 15 copy."""
    if r.kind == COPY:
        return _(_COPY_OF.get(r.channel, r.channel))
    return _(_ASKED[r.asked]) if r.asked in _ASKED else r.asked


_ASKED = {"listen": N_("listen"), "read": N_("read"), "copy": N_("a copy")}
_COPY_OF = {"call": N_("copy call"), "chat": N_("copy chat")}
_KINDS: dict[str, str] = {ACCESS: N_("§4 access"), COPY: N_("GDPR Art. 15 copy")}
_CHANNELS = {"call": N_("phone call"), "chat": N_("chat")}
_VERDICTS = {"favourable": N_("favourable"), "unfavourable": N_("unfavourable")}
_DECISIONS = {"granted": N_("granted"), "refused": N_("refused")}
_SENDERS = {"resident": N_("resident"), "consultant": N_("consultant"), "system": N_("system")}
_SESSION_OUTCOMES = {
    "completed": N_("completed"),
    "interrupted": N_("interrupted"),
    "requester_absent": N_("requester absent"),
    "refused_identity": N_("refused identity"),
}


def _word(table: dict[str, str], code: str | None) -> str:
    """A stored code in the staff language (the code itself when the table does not know it)."""
    return _(table[code]) if code in table else (code or "")


def _local(moment: datetime | None, tz: ZoneInfo) -> str:
    return format_datetime(moment, tz=tz.key) if moment else ""


class RequestsScreen(CimScreen[None]):
    """The inbox (what waits for me) and the register (every request, filtered); Enter opens a request."""

    AUTO_FOCUS = "#requests-table"
    DEFAULT_CSS = """
    RequestsScreen #requests-title { width: 100%; padding: 0 1; background: $boost; text-style: bold; }
    RequestsScreen #requests-table { height: 1fr; }
    RequestsScreen #requests-empty { padding: 1 2; color: $text-muted; height: auto; }
    """
    BINDINGS = [
        Binding("n", "new", N_("New request")),
        Binding("i", "toggle_view", N_("Inbox/register")),
        Binding("t", "next_filter", N_("State filter")),
        Binding("r", "reload", N_("Refresh")),
    ]

    def __init__(self, ctx: TuiContext) -> None:
        super().__init__()
        self.ctx = ctx
        actor = ctx.actor
        inbox_roles = {Role.DPO, Role.DEPARTMENT_HEAD, Role.BOI_DIRECTOR}
        self.showing = (
            "inbox" if (actor.roles & inbox_roles or not allowed(actor, Permission.VIEW_REQUESTS)) else "register"
        )
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
        table.add_columns(_("Number"), _("Asks"), _("State"), _("Due"), _("Requester"))
        self.reload()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        actor = self.ctx.actor
        if action == "new":  # the registrars, and the DPO for the copy requests addressed to them
            return any(may_register(actor, kind) is None for kind in (ACCESS, COPY))
        if action in ("toggle_view", "next_filter"):
            return allowed(actor, Permission.VIEW_REQUESTS)
        return True

    def _heading(self) -> str:
        if self.showing == "inbox":
            return _("Requests — my inbox ({n} waiting)").format(n=len(self.requests))
        if self.state_filter in STATE_LABELS:
            shown = _(STATE_LABELS[self.state_filter])
        else:
            shown = _("open") if self.state_filter == "open" else _("all states")
        return _("Requests — register ({state}, {n})").format(state=shown, n=len(self.requests))

    @failure_title(N_("Cannot list requests"))
    @work(exclusive=True, exit_on_error=False, group="load")
    async def reload(self, keep: int | None = None) -> None:
        store = self.ctx.store
        if self.showing == "inbox":
            self.requests = await store.requests.inbox(self.ctx.actor)
        else:
            self.requests = await store.requests.list(self.ctx.actor, state=self.state_filter)
        table = self.query_one("#requests-table", DataTable)
        shown = self.current_request()
        current = keep if keep is not None else (shown.id if shown else None)
        table.clear()
        for r in self.requests:
            table.add_row(r.number, asks(r), _(r.state_label), due_cell(r), literal(r.requester_name), key=str(r.id))
        ids = [r.id for r in self.requests]
        if current in ids:
            table.move_cursor(row=ids.index(current))
        self.query_one("#requests-title", Label).update(self._heading())
        empty = self.query_one("#requests-empty", Static)
        empty.update(_("Nothing waits for you.") if self.showing == "inbox" else _("No requests."))
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

        def closed(_result: None) -> None:
            self.reload(request_id)

        self.app.push_screen(RequestDetailScreen(self.ctx, request_id), closed)

    def action_new(self) -> None:
        self.new_request()

    @work(exclusive=True, exit_on_error=False, group="edit")
    async def new_request(self) -> None:
        created = await self.app.push_screen_wait(register_form(self.ctx))
        if created is not None:
            self.notify(
                _("Registered {number}; due {date}.").format(number=created.number, date=format_date(created.due_on))
            )
            self.reload(created.id)


def register_form(ctx: TuiContext) -> FormModal[AccessRequest]:
    """The register form: the store checks every rule and the message appears under the form."""
    today = ctx.store.requests.today().isoformat()
    kinds = [(N_("§4 access (listen / read)"), ACCESS), (N_("GDPR Art. 15 copy"), COPY)]
    if not allowed(ctx.actor, Permission.REGISTER_REQUESTS):
        kinds = [k for k in kinds if k[1] == COPY]
    # the §4.2 annex's order (store/request_form.py): who asks, which call or chat, why, how to answer
    fields = [
        Field("kind", N_("Kind of request"), "select", kinds[0][1], kinds),
        Field("received_on", N_("Date received (YYYY-MM-DD)"), default=today),
        Field("requester_name", N_("Requester's name")),
        Field("requester_address", N_("Correspondence address")),
        Field("requester_phone", N_("Phone (for a call: the number it was made from)"), placeholder="601 234 567"),
        Field("requester_email", N_("E-mail or e-Doręczenia address (AE:PL-…; optional)")),
        Field("channel", N_("Channel"), "select", "call", [(N_("phone call"), "call"), (N_("chat"), "chat")]),
        Field("date", N_("Date of the conversation (YYYY-MM-DD)")),
        Field("time", N_("Approximate time (HH:MM, optional)")),
        Field(
            "conversation_reference", _("Chat reference from the receipt (CZ-…) or the number called from; optional")
        ),
        Field(
            "receipt_secret",
            _("Chat code from the receipt (optional; a valid pair links the chat, §4.1)"),
            password=True,
        ),
        Field("duration_min", N_("Approximate duration in minutes (optional)")),
        Field("consultant", N_("Consultant, if known (optional)")),
        Field("topic", N_("Topic (optional)")),
        Field("name_or_email", N_("Chat: name or e-mail given in it (optional)")),
        Field("justification", N_("Justification (§4.1; not needed for a copy)"), "text"),
        Field("delivery", N_("Reply delivered by"), "select", "post", [(DELIVERY_LABELS[d], d) for d in DELIVERIES]),
        Field(
            "addressed_as",
            N_("Letters address the requester as"),
            "select",
            "",
            [(N_("— (not stated: neutral forms)"), ""), ("Pani", "pani"), ("Pan", "pan")],
        ),
    ]

    async def submit(v: dict[str, Any]) -> AccessRequest:
        hint = {
            k: v[k].strip()
            for k in ("date", "time", "duration_min", "consultant", "topic", "name_or_email")
            if v[k].strip()
        }
        return await ctx.store.requests.register(
            ctx.actor,
            RequestInput(
                kind=v["kind"],
                channel=v["channel"],
                received_on=v["received_on"],
                requester_name=v["requester_name"],
                requester_address=v["requester_address"],
                requester_phone=v["requester_phone"] or None,
                requester_email=v["requester_email"] or None,
                justification=v["justification"],
                delivery=v["delivery"],
                addressed_as=v["addressed_as"] or "",
                hint=hint,
                conversation_reference=v["conversation_reference"],
                receipt_secret=v["receipt_secret"],
            ),
        )

    return FormModal(_("Register a request"), fields, submit, save_label=_("Register"))


#: The detail screen's keys and the lifecycle's actions they take (store/requests/lifecycle.py).
_STEPS = {
    "link": "link",
    "unlink": "unlink",
    "opinion": "opinion",
    "grant": "grant",
    "refuse": "refuse",
    "extend": "extend",
    "withdraw": "withdraw",
    "start_session": "start_session",
    "view_content": "open_content",
    "end_session": "end_session",
    "sign_record": "sign_record",
    "export": "export",
    "close_request": "close",
    "receipt": "link_receipt",
    "prepare_copy": "prepare_export",
    "confirm_copy": "confirm_export",
}


def _append_requester(summary: Text, r: AccessRequest) -> None:
    """Who asks, where they live, how to reach them and how the reply goes."""
    summary.append(_("Requester: "))
    summary.append_text(literal(r.requester_name))
    summary.append("\n" + _("Address: "))
    summary.append_text(literal(r.requester_address))
    summary.append("\n" + _("Phone: {phone} · e-mail/e-Doręczenia: ").format(phone=r.requester_phone or "—"))
    summary.append_text(literal(r.requester_email or "—"))
    summary.append(" · " + _("reply by {route}").format(route=DELIVERY_LABELS.get(r.delivery, r.delivery)) + "\n")


def _append_dates(summary: Text, r: AccessRequest) -> None:
    """Received, due, extended, and the red or yellow warning when it is overdue or due soon."""
    summary.append(
        _("Received {received} · due {due}").format(received=format_date(r.received_on), due=format_date(r.due_on))
    )
    if r.extended_until:
        summary.append(" · " + _("extended to {date}").format(date=format_date(r.extended_until)))
    summary.append("  ")
    summary.append_text(due_cell(r) if (r.overdue or r.due_soon) else Text(""))


#: what the requester told about the conversation (RequestInput.hint), each part in the staff's language
_HINTS = {
    "date": N_("date {value}"),
    "time": N_("about {value}"),
    "duration_min": N_("about {value} min"),
    "consultant": N_("consultant: {value}"),
    "topic": N_("topic: {value}"),
    "name_or_email": N_("name or e-mail given: {value}"),
}


def _append_conversation_hint(summary: Text, r: AccessRequest) -> None:
    """What the requester told about the conversation, its chat reference and whether the receipt was checked."""
    summary.append("\n" + _("Conversation: "))
    summary.append_text(
        literal(", ".join(_(_HINTS[k]).format(value=v) if k in _HINTS else f"{k}: {v}" for k, v in r.hint.items()))
    )
    if r.conversation_reference:
        summary.append(" · " + _("reference {reference}").format(reference=r.conversation_reference))
    if r.receipt_verified_at:
        summary.append(" · " + _("receipt verified (§4.1)"))


def _attendee(a: Attendee) -> str:
    """An attendee's name, with whether they came once the record says so."""
    return a.name + ("" if a.present is None else (_(" (present)") if a.present else _(" (absent)")))


def _append_session_record(session: Text, r: AccessRequest) -> None:
    """Who else was present, how the session ended and its notes."""
    if r.session_others:
        session.append("\n" + _("Also present: "))
        session.append_text(literal(", ".join(r.session_others)))
    if r.session_outcome:
        outcome = (
            _word(_SESSION_OUTCOMES, r.session_outcome)
            if r.session_outcome in _SESSION_OUTCOMES
            else r.session_outcome.replace("_", " ")
        )
        session.append("\n" + _("Outcome: {outcome}").format(outcome=outcome))
    if r.session_notes:
        session.append("\n" + _("Notes: "))
        session.append_text(literal(r.session_notes))


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
        Binding("escape", "back", N_("Back")),
        Binding("l", "link", N_("Link")),
        Binding("u", "unlink", N_("Unlink")),
        Binding("o", "opinion", N_("Opinion")),
        Binding("g", "grant", N_("Grant")),
        Binding("x", "refuse", N_("Refuse")),
        Binding("e", "extend", N_("Extend")),
        Binding("w", "withdraw", N_("Withdraw")),
        Binding("s", "start_session", N_("Start session")),
        Binding("v", "view_content", N_("Listen/read")),
        Binding("f", "end_session", N_("End session")),
        Binding("r", "sign_record", N_("Sign record")),  # p is "prepare copy" (the two never apply to one request)
        Binding("k", "export", N_("Export copy")),
        Binding("p", "prepare_copy", N_("Prepare copy")),
        Binding("a", "confirm_copy", N_("Confirm copy")),
        Binding("c", "close_request", N_("Close")),
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
            yield Label(_("Linked conversations (u unlinks, v plays or reads during the session)"), classes="section")
            yield DataTable(id="linked", cursor_type="row")
            yield Label(_("Candidates (l links the highlighted one)"), classes="section", id="candidates-title")
            yield DataTable(id="candidates", cursor_type="row")
            yield Label(_("Opinions (§4.3)"), classes="section")
            yield Static("", id="opinions")
            yield Label(_("Session (§4.4, §4.6)"), classes="section")
            yield Static("", id="session")
            yield Static("", id="listening")
            yield Label(_("Letters"), classes="section")
            yield Static("", id="letters")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#linked", DataTable).add_columns(
            _("Conversation"), _("Channel"), _("Began"), _("Number"), _("Dept"), _("Recording")
        )
        self.query_one("#candidates", DataTable).add_columns(
            _("Conversation"), _("Began"), _("Number"), _("Match"), _("Dept"), _("Consultant"), _("Minutes off")
        )
        self.reload()

    # -- loading ------------------------------------------------------------------------------------

    @failure_title(N_("Cannot show the request"))
    @work(exclusive=True, exit_on_error=False, group="load")
    async def reload(self) -> None:
        requests = self.ctx.store.requests
        self.detail = await requests.get(self.ctx.actor, self.request_id)
        self.candidates = []
        if self._may_link():
            self.candidates = await requests.candidates(self.ctx.actor, self.request_id)
        self._show()
        self.refresh_bindings()
        self.show_listening()

    @work(exclusive=True, exit_on_error=False, group="listening")
    async def show_listening(self) -> None:
        """ "odsłuch w przeglądarce" while one of the signed-in person's links for this request is live."""
        try:
            links = await self.ctx.store.listening.live_links(self.ctx.actor, request_id=self.request_id)
        except CimError:
            links = []
        line = self.query_one("#listening", Static)
        line.update(listening_status(links, self.tz))
        line.display = bool(links)

    def _may_link(self) -> bool:
        return self.detail is not None and "link" in self.detail.allowed_actions

    def _show(self) -> None:
        assert self.detail is not None
        d, r = self.detail, self.detail.request
        self.sub_title = f"{r.number} · {_(r.state_label)}"
        self.query_one("#summary", Static).update(self._summary(r))
        self._show_eligibility(d)
        self._fill_linked(d)
        self._fill_candidates()
        self.query_one("#opinions", Static).update(
            self._opinions(d) if r.kind == ACCESS else _("No opinions for a copy request.")
        )
        session = self._session(d)
        self.query_one("#session", Static).update(session if session.plain else "—")
        self.query_one("#letters", Static).update(
            "\n".join(
                f"{x.kind}: {x.path} (SHA-256 {x.sha256[:16]}…) · "
                + (_("sealed (PAdES)") if x.sealed else _("not sealed"))
                for x in d.letters
            )
            or "—"
        )

    def _summary(self, r: AccessRequest) -> Text:
        """Who asks for what, how to reply, the dates, the conversation asked about and the decision."""
        summary = Text()
        summary.append(f"{r.number}", style="bold")
        summary.append(
            f"  {_word(_KINDS, r.kind)} · {_word(_CHANNELS, r.channel)} · "
            + _("asks to {what}").format(what=_word(_ASKED, r.asked))
            + f" · {_(r.state_label)}\n"
        )
        _append_requester(summary, r)
        _append_dates(summary, r)
        _append_conversation_hint(summary, r)
        if r.justification:
            summary.append("\n" + _("Justification: "))
            summary.append_text(literal(r.justification))
        if r.decision:
            summary.append(
                "\n"
                + _("Decision: {decision} on {when}").format(
                    decision=_word(_DECISIONS, r.decision), when=_local(r.decided_at, self.tz)
                )
            )
            if r.decision_reasons:
                summary.append(" — ")
                summary.append_text(literal(r.decision_reasons))
        return summary

    def _show_eligibility(self, d: RequestDetail) -> None:
        r = d.request
        eligibility = self.query_one("#eligibility", Static)
        if r.ineligible_reason:
            eligibility.update(Text(_("Only refusal is possible: {reason}").format(reason=r.ineligible_reason)))
            eligibility.add_class("ineligible")
        else:
            eligibility.update(_("§4.7: no obstacle found.") if d.conversations else _("No conversation linked yet."))
            eligibility.remove_class("ineligible")

    def _fill_linked(self, d: RequestDetail) -> None:
        linked = self.query_one("#linked", DataTable)
        linked.clear()
        for c in d.conversations:
            linked.add_row(
                str(c.conversation_id),
                _word(_CHANNELS, c.channel),
                _local(c.created_at, self.tz),
                literal(c.resident_number or ("—" if c.channel == "chat" else _("withheld"))),
                c.department or "",
                _("yes") if c.has_recording else "",
                key=str(c.conversation_id),
            )

    def _fill_candidates(self) -> None:
        """The conversations that may be the one asked about; shown only to whoever may link them."""
        cands = self.query_one("#candidates", DataTable)
        cands.clear()
        for c in self.candidates:
            match = _("number") if c.number_matches else (_("details") if c.detail_matches else "")
            cands.add_row(
                str(c.conversation_id) + (_(" (linked)") if c.linked else ""),
                _local(c.created_at, self.tz),
                literal(c.resident_number or ""),
                Text(match, style="bold green") if match else "",
                c.department or "",
                literal(c.consultant or ""),
                "" if c.minutes_from_hint is None else str(c.minutes_from_hint),
                key=str(c.conversation_id),
            )
        show = self._may_link()
        cands.display = show
        self.query_one("#candidates-title").display = show

    def _opinions(self, d: RequestDetail) -> Text:
        """The DPO's and the department's opinions on a §4 request, each one or "awaited"."""
        opinions = Text()
        for kind in ("dpo", "department"):
            o = next((o for o in d.opinions if o.kind == kind), None)
            label = _("DPO") if kind == "dpo" else _("Department")
            if o is None:
                opinions.append(_("{who}: awaited").format(who=label) + "\n")
            else:
                opinions.append(f"{label}: {_word(_VERDICTS, o.verdict)} ({o.staff_name}, {_local(o.at, self.tz)}) — ")
                opinions.append_text(literal(o.text))
                opinions.append("\n")
        opinions.rstrip()
        return opinions

    def _session(self, d: RequestDetail) -> Text:
        """The listening or reading session (§4.8–§4.10), the copy's export and its approval."""
        r = d.request
        session = Text()
        if r.session_at:
            session.append(_("{when} at ").format(when=_local(r.session_at, self.tz)))
            session.append_text(literal(r.session_place or ""))
            session.append("\n" + _("Attendees: ") + ", ".join(_attendee(a) for a in d.attendees))
        if r.session_started_at:
            session.append("\n" + _("Started {when}").format(when=_local(r.session_started_at, self.tz)))
        if r.session_ended_at:
            session.append(" · " + _("ended {when}").format(when=_local(r.session_ended_at, self.tz)))
        _append_session_record(session, r)
        if r.export_path:
            session.append(_("Copy exported to {path}").format(path=r.export_path))
        self._append_approval(session, d)
        return session

    # -- which steps are offered ------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Offer exactly what the lifecycle allows this person now (RequestDetail.allowed_actions)."""
        if action == "back":
            return True
        d = self.detail
        if d is None:
            return False
        step = _STEPS.get(action)
        return True if step is None else step in d.allowed_actions

    # -- steps ----------------------------------------------------------------------------------------

    def action_back(self) -> None:
        self.dismiss(None)

    def _selected(self, table_id: str) -> int | None:
        table = self.query_one(f"#{table_id}", DataTable)
        if table.row_count == 0 or table.cursor_row is None:
            return None
        return int(str(table.coordinate_to_cell_key(Coordinate(table.cursor_row, 0)).row_key.value))

    async def _step(self, what: str, call: Awaitable[Any]) -> Any:
        set_failure_title(what)  # a refusal is told under `what` (tui/widgets/worker_errors.py)
        result = await call
        self.reload()
        return result if result is not None else True

    @work(exclusive=True, exit_on_error=False, group="step")
    async def action_link(self) -> None:
        conv = self._selected("candidates")
        if conv is None:
            self.notify(_("No candidate is highlighted."), severity="warning")
            return
        r = await self._step(_("Cannot link"), self.ctx.store.requests.link(self.ctx.actor, self.request_id, conv))
        if r:
            self.notify(
                _("Conversation {n} linked and held.").format(n=conv)
                + ("" if r.eligible else f" {r.ineligible_reason}"),
                severity="information" if r.eligible else "warning",
            )

    @work(exclusive=True, exit_on_error=False, group="step")
    async def action_unlink(self) -> None:
        conv = self._selected("linked")
        if conv is not None and await self._step(
            _("Cannot unlink"), self.ctx.store.requests.unlink(self.ctx.actor, self.request_id, conv)
        ):
            self.notify(_("Conversation {n} unlinked; its hold is released.").format(n=conv))

    @work(exclusive=True, exit_on_error=False, group="step")
    async def action_receipt(self) -> None:
        fields = [
            Field("reference", _("Chat reference (CZ-YYYY-MM-DD-XXXX)")),
            Field("code", _("Chat code"), password=True),
        ]

        async def submit(v: dict[str, Any]) -> AccessRequest:
            return await self.ctx.store.requests.link_by_receipt(
                self.ctx.actor, self.request_id, v["reference"], v["code"]
            )

        await self._form(
            FormModal(
                _("The chat's receipt (§4.1)"),
                fields,
                submit,
                save_label=_("Check and link"),
                intro=_(
                    "A valid pair proves that the requester took part in the chat; the chat "
                    "is linked and held. Wrong codes are audited and, after 5, refused for "
                    "an hour."
                ),
            ),
            _("The receipt is valid: the chat is linked and held."),
        )

    async def _form(self, form: FormModal[Any], done: str) -> None:
        result = await self.app.push_screen_wait(form)
        if result is not None:
            self.notify(done)
            self.reload()

    @work(exclusive=True, exit_on_error=False, group="step")
    async def action_opinion(self) -> None:
        actor = self.ctx.actor
        kinds = [
            (label, k)
            for label, k, p in (
                (N_("DPO opinion"), "dpo", Permission.GIVE_DPO_OPINION),
                (N_("Department opinion"), "department", Permission.GIVE_DEPARTMENT_OPINION),
            )
            if allowed(actor, p)
        ]
        fields = [
            Field("kind", N_("Opinion"), "select", kinds[0][1], kinds),
            Field(
                "verdict",
                N_("Verdict"),
                "select",
                "favourable",
                [(N_("favourable"), "favourable"), (N_("unfavourable"), "unfavourable")],
            ),
            Field("text", N_("Reasons"), "text"),
        ]

        async def submit(v: dict[str, Any]) -> AccessRequest:
            return await self.ctx.store.requests.give_opinion(
                actor, self.request_id, v["kind"], v["verdict"], v["text"]
            )

        await self._form(
            FormModal(_("Opinion on {number}").format(number=self._number()), fields, submit, save_label=_("Save")),
            _("Opinion recorded."),
        )

    def _number(self) -> str:
        return self.detail.request.number if self.detail else ""

    @work(exclusive=True, exit_on_error=False, group="step")
    async def action_grant(self) -> None:
        assert self.detail is not None
        store, actor = self.ctx.store, self.ctx.actor
        if self.detail.request.kind == COPY:

            async def approve(v: dict[str, Any]) -> AccessRequest:
                return await store.requests.grant(actor, self.request_id)

            await self._form(
                FormModal(
                    _("Grant the copy requested in {number}").format(number=self._number()),
                    [],
                    approve,
                    intro=_("The copy is then prepared with P and confirmed by a second person."),
                    save_label=_("Grant"),
                ),
                _("Granted; prepare the copy with P."),
            )
            return
        staff = [s for s in await store.accounts.list_staff(actor) if not s.disabled]
        fields = [
            Field("date", N_("Session date (YYYY-MM-DD)")),
            Field("time", N_("Session time (HH:MM, local)")),
            Field("place", N_("Place")),
            Field(
                "attendees",
                N_("Designated attendees (§4.6; space selects)"),
                "multi",
                (),
                [(f"{s.name} {s.full_name}".strip(), s.id) for s in staff],
            ),
        ]

        async def submit(v: dict[str, Any]) -> AccessRequest:
            at = self._parse_local(v["date"], v["time"])
            return await store.requests.grant(
                actor, self.request_id, session_at=at, place=v["place"], attendee_ids=v["attendees"]
            )

        await self._form(
            FormModal(
                _("Grant {number}: schedule the session").format(number=self._number()),
                fields,
                submit,
                save_label=_("Grant"),
            ),
            _("Granted; the notification letter is written."),
        )

    def _parse_local(self, day: str, hhmm: str) -> datetime:
        try:
            d = date.fromisoformat(day.strip())
        except ValueError:
            raise InvalidInput(_("the session date must be YYYY-MM-DD")) from None
        try:
            t = time.fromisoformat(hhmm.strip())
        except ValueError:
            raise InvalidInput(_("the session time must be HH:MM")) from None
        return datetime.combine(d, t, self.tz)

    @work(exclusive=True, exit_on_error=False, group="step")
    async def action_refuse(self) -> None:
        async def submit(v: dict[str, Any]) -> AccessRequest:
            return await self.ctx.store.requests.refuse(self.ctx.actor, self.request_id, v["reasons"])

        await self._form(
            FormModal(
                _("Refuse {number}").format(number=self._number()),
                [Field("reasons", N_("Reasons (in the letter)"), "text")],
                submit,
                save_label=_("Refuse"),
                intro=_(
                    "The letter adds the right to complain to the President of the Personal "
                    "Data Protection Office and to go to court."
                ),
            ),
            _("Refused; the refusal letter is written."),
        )

    @work(exclusive=True, exit_on_error=False, group="step")
    async def action_extend(self) -> None:
        async def submit(v: dict[str, Any]) -> AccessRequest:
            return await self.ctx.store.requests.extend(self.ctx.actor, self.request_id, int(v["months"]), v["reasons"])

        await self._form(
            FormModal(
                _("Extend the answer to {number} (GDPR Art. 12(3))").format(number=self._number()),
                [
                    Field("months", N_("By"), "select", 1, [(N_("one month"), 1), (N_("two months"), 2)]),
                    Field("reasons", N_("Reasons for the delay"), "text"),
                ],
                submit,
                save_label=_("Extend"),
            ),
            _("Extended; the letter is written."),
        )

    @work(exclusive=True, exit_on_error=False, group="step")
    async def action_withdraw(self) -> None:
        async def submit(v: dict[str, Any]) -> AccessRequest:
            return await self.ctx.store.requests.withdraw(self.ctx.actor, self.request_id, v["note"])

        await self._form(
            FormModal(
                _("Withdraw {number}").format(number=self._number()),
                [Field("note", N_("How it was withdrawn (optional)"))],
                submit,
                save_label=_("Withdraw"),
            ),
            _("Withdrawn; the holds are released."),
        )

    @work(exclusive=True, exit_on_error=False, group="step")
    async def action_start_session(self) -> None:
        if await self._step(
            _("Cannot start the session"), self.ctx.store.requests.start_session(self.ctx.actor, self.request_id)
        ):
            self.notify(_("Session started: highlight a conversation and press V."))

    @work(exclusive=True, exit_on_error=False, group="step")
    async def action_view_content(self) -> None:
        conv = self._selected("linked")
        if conv is None:
            self.notify(_("No conversation is highlighted."), severity="warning")
            return
        has_recording = (
            any(c.conversation_id == conv and c.has_recording for c in self.detail.conversations)
            if self.detail
            else False
        )
        if has_recording and not self.ctx.settings.player_command.strip():
            await self._listen_in_browser(conv)
            return
        set_failure_title(_("Cannot open"))
        material = await self.ctx.store.requests.open_for_session(self.ctx.actor, self.request_id, conv)
        lines: list[Text] = []
        for m in material.transcript:
            line = Text(f"{_local(m.at, self.tz)} {_word(_SENDERS, m.sender)}: ", style="bold")
            text = m.text
            if m.sender == "system" and m.event in SYSTEM_EVENTS:
                # read to the requester: the lines as a resident saw them (no close category, no log-in name),
                # in the language of the staff member running the session
                text = render_event(m.event, m.params, current_language())
            line.append_text(literal(text))
            lines.append(line)
        play: Callable[[], Awaitable[str]] | None = None
        if material.recording_path is not None:
            lines.insert(0, Text(_("Recording: {path}").format(path=material.recording_path)))
            path = material.recording_path
            play = lambda: self._play(path)  # noqa: E731
        await self.app.push_screen_wait(
            ContentModal(_("{number} · conversation {n}").format(number=self._number(), n=conv), lines, play=play)
        )

    async def _listen_in_browser(self, conv: int) -> None:
        """The recording heard in the browser of the staff member running the session, through a listening link."""
        await offer_listening_link(
            self,
            lambda: self.ctx.store.listening.create_for_session(
                self.ctx.actor, self.request_id, conv, session_token=self.ctx.token or None
            ),
            self.tz,
            _("{number} · conversation {n}").format(number=self._number(), n=conv),
        )

    async def _play(self, path: Path) -> str:
        """Run the configured player (no shell: the path is one argument)."""
        source, plain = await asyncio.to_thread(player_input, path)  # a sealed recording is fed through a pipe
        argv = [part.replace("{path}", source) for part in shlex.split(self.ctx.settings.player_command)]
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdout=asyncio.subprocess.DEVNULL,
            stdin=asyncio.subprocess.PIPE if plain else None,
            stderr=asyncio.subprocess.DEVNULL,
        )
        if plain is not None:
            asyncio.create_task(feed_player(proc.stdin, plain))
        code = await proc.wait()
        if code != 0:
            raise InvalidInput(_("the player ({player}) ended with status {code}").format(player=argv[0], code=code))
        return _("Playback finished.")

    @work(exclusive=True, exit_on_error=False, group="step")
    async def action_end_session(self) -> None:
        assert self.detail is not None
        fields = [
            Field(
                "present",
                N_("Designated staff present (space selects)"),
                "multi",
                (),
                [(a.name, a.staff_id) for a in self.detail.attendees],
            ),
            Field("others", N_("Others present, by name (comma-separated)")),
            Field(
                "outcome", N_("Outcome"), "select", "completed", [(text, key) for key, text in SESSION_OUTCOMES.items()]
            ),
            Field("notes", N_("Notes"), "text"),
        ]

        async def submit(v: dict[str, Any]) -> AccessRequest:
            others = [name.strip() for name in (v.get("others") or "").split(",") if name.strip()]
            return await self.ctx.store.requests.end_session(
                self.ctx.actor,
                self.request_id,
                v["present"],
                v["notes"],
                others=others,
                outcome=v.get("outcome") or "completed",
            )

        await self._form(
            FormModal(
                _("End the session of {number}").format(number=self._number()),
                fields,
                submit,
                save_label=_("End session"),
            ),
            _("Session recorded; close the request with C."),
        )

    @work(exclusive=True, exit_on_error=False, group="step")
    async def action_sign_record(self) -> None:
        record = await self._step(
            _("Cannot sign the session record"),
            self.ctx.store.requests.sign_session_record(self.ctx.actor, self.request_id),
        )
        if record:
            self.notify(_("The session record (protokół) is signed and stored with the letters."))

    @work(exclusive=True, exit_on_error=False, group="step")
    async def action_export(self) -> None:
        async def submit(v: dict[str, Any]) -> Any:
            return await self.ctx.store.requests.export_copy(
                self.ctx.actor, self.request_id, Path(v["folder"].strip()).expanduser(), as_zip=v["zip"]
            )

        await self._form(
            FormModal(
                _("Export the copy for {number} (GDPR Art. 15)").format(number=self._number()),
                [
                    Field("folder", N_("Into the existing folder"), default=str(Path.home())),
                    Field("zip", N_("as one ZIP file"), "check", False),
                ],
                submit,
                save_label=_("Export"),
            ),
            _("Copy exported with manifest.json and SHA256SUMS."),
        )

    # -- two people for a copy (GDPR Art. 15) ----------------------------------------------------------

    def _append_approval(self, text: Text, d: RequestDetail) -> None:
        a = d.approval
        if a is None:
            return
        text.append(
            "\n" + _("Copy prepared by {who} {when}").format(who=a.prepared_by, when=_local(a.prepared_at, self.tz))
        )
        if a.prepare_justification:
            text.append(_(" — why it is the requester's: "))
            text.append_text(literal(a.prepare_justification))
        if a.confirmed_by:
            text.append(
                "\n" + _("Confirmed by {who} {when}").format(who=a.confirmed_by, when=_local(a.confirmed_at, self.tz))
            )
            if a.confirm_justification:
                text.append(": ")
                text.append_text(literal(a.confirm_justification))
        else:
            text.append("\n" + _("Awaiting the second person (a designated employee or the director)."))

    @work(exclusive=True, exit_on_error=False, group="step")
    async def action_prepare_copy(self) -> None:
        async def submit(v: dict[str, Any]) -> Any:
            return await self.ctx.store.requests.prepare_export(self.ctx.actor, self.request_id, v["why"])

        title = _("Prepare the copy for {number} (GDPR Art. 15)").format(number=self._number())
        await self._form(
            FormModal(
                title,
                [
                    Field(
                        "why",
                        N_(
                            "Why these conversations are the requester's (needed unless every call matches the "
                            "requester's number, §4.7)"
                        ),
                        "text",
                    )
                ],
                submit,
                save_label=_("Prepare"),
            ),
            _("Prepared; a designated employee or the director confirms it (four-eyes)."),
        )

    @work(exclusive=True, exit_on_error=False, group="step")
    async def action_confirm_copy(self) -> None:
        async def submit(v: dict[str, Any]) -> Any:
            return await self.ctx.store.requests.confirm_export(self.ctx.actor, self.request_id, v["why"])

        await self._form(
            FormModal(
                _("Confirm the copy for {number} (four-eyes)").format(number=self._number()),
                [Field("why", N_("Your own justification (needed when the preparer gave one)"), "text")],
                submit,
                save_label=_("Confirm"),
            ),
            _("Confirmed; the DPO may now export the copy with K."),
        )

    @work(exclusive=True, exit_on_error=False, group="step")
    async def action_close_request(self) -> None:
        if await self._step(_("Cannot close"), self.ctx.store.requests.close(self.ctx.actor, self.request_id)):
            self.notify(_("{number} closed; its holds are released.").format(number=self._number()))
