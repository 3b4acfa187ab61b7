"""„Ruch telefoniczny”: the live wallboard of the PBX's queues, members and calls, and the consultant's call card.

The screen holds its own /staff socket (python-socketio, reconnecting) and shows each `traffic`
event it gets (docs/PROTOCOL.md). Numbers arrive already masked for staff without archive access.
A consultant pauses or unpauses themselves in the queues with `p` (AMI QueuePause, audited).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.message import Message
from textual.widgets import DataTable, Footer, Header, Static

from store.i18n import N_, _, format_time, ngettext
from store.policy import Permission, allowed
from tui.context import TuiContext
from tui.live.errors import ack_refusal
from tui.widgets.literal import literal
from tui.screens.base import CimScreen

log = logging.getLogger(__name__)

#: A queue member's state and a call's direction (docs/PROTOCOL.md `traffic`) as words.
STATE_LABELS = {
    "free": N_("free"),
    "ringing": N_("ringing"),
    "on_call": N_("on a call"),
    "paused": N_("on a break"),
    "unavailable": N_("unavailable"),
    "unknown": "?",
}
DIRECTION_LABELS = {"incoming": N_("incoming"), "outgoing": N_("outgoing"), "internal": N_("internal")}


def _word(table: dict[str, str], code: str) -> str:
    known = table.get(code)
    return (_(known) if known != "?" else known) if known else code


def _clock(iso: str | None, zone: ZoneInfo) -> str:
    if not iso:
        return "?"
    return format_time(datetime.fromisoformat(iso.replace("Z", "+00:00")), tz=str(zone))


def _mmss(seconds: int | None) -> str:
    if seconds is None:
        return "—"
    return f"{seconds // 60}:{seconds % 60:02d}"


class TrafficScreen(CimScreen[None]):
    """The wallboard; `state` is the last `traffic` payload (None before the first)."""

    DEFAULT_CSS = """
    TrafficScreen #traffic-status { height: auto; padding: 0 1; text-style: bold; }
    TrafficScreen #traffic-status.down { color: $text-error; }
    TrafficScreen #traffic-today { height: auto; padding: 0 1; }
    TrafficScreen #traffic-card { height: auto; padding: 0 1; border: round $accent; display: none; }
    TrafficScreen #traffic-card.active { display: block; }
    TrafficScreen .traffic-title { text-style: bold; padding: 0 1; }
    TrafficScreen DataTable { height: auto; max-height: 14; }
    TrafficScreen #traffic-queues { height: auto; }
    """
    BINDINGS = [Binding("p", "toggle_pause", "Break / back"), Binding("k", "describe_call", "Category and note")]

    class Updated(Message):
        """A `traffic` payload arrived (or the socket's state changed: payload None)."""

        def __init__(self, payload: dict | None, connection: str) -> None:
            super().__init__()
            self.payload = payload
            self.connection = connection

    def __init__(self, ctx: TuiContext) -> None:
        super().__init__()
        self.ctx = ctx
        self.state: dict | None = None
        self.connection = "connecting"
        self.extensions: set[str] = set()
        #: The last call seen at one of this consultant's extensions (the card), to describe during or after it.
        self.last_call: dict | None = None
        self._client: Any = None
        self._zone = ZoneInfo(ctx.settings.timezone)

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(_("Connecting to the CIM server…"), id="traffic-status")
        yield Static("", id="traffic-today")
        yield Static("", id="traffic-card")
        with VerticalScroll():
            yield Static(_("Queues — waiting callers"), classes="traffic-title")
            yield DataTable(id="traffic-callers", cursor_type="row", zebra_stripes=True)
            yield Static(_("Consultants in the queues"), classes="traffic-title")
            yield DataTable(id="traffic-members", cursor_type="row", zebra_stripes=True)
            yield Static(_("Calls in progress"), classes="traffic-title")
            yield DataTable(id="traffic-calls", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        self.title = _("Phone traffic")
        self.query_one("#traffic-callers", DataTable).add_columns(_("queue"), _("pos."), _("number"), _("waits"))
        self.query_one("#traffic-members", DataTable).add_columns(
            _("queue"), _("consultant"), _("ext."), _("state"), _("reason")
        )
        self.query_one("#traffic-calls", DataTable).add_columns(
            _("direction"), _("number"), _("ext."), _("queue"), _("since"), _("time"), _("transf.")
        )
        self.follow()

    async def on_unmount(self) -> None:
        if self._client is not None:
            try:
                await self._client.disconnect()
            except Exception:  # already gone
                pass

    # -- the socket -----------------------------------------------------------------------------

    @work(exclusive=True, exit_on_error=False, group="traffic-socket")
    async def follow(self) -> None:
        import socketio

        if not self.ctx.server_url:
            self.post_message(self.Updated(None, "no_server"))
            return
        self.extensions = await self.ctx.store.extensions.of_staff(self.ctx.actor.staff_id)
        delay = 0.2
        while True:
            client = socketio.AsyncClient(reconnection=False, logger=False, engineio_logger=False)
            lost = asyncio.Event()
            client.on("traffic", lambda data: self.post_message(self.Updated(data, "online")), namespace="/staff")
            client.on("disconnect", lambda *a, lost=lost: lost.set(), namespace="/staff")
            try:
                await client.connect(
                    self.ctx.server_url,
                    auth={"token": self.ctx.token},
                    namespaces=["/staff"],
                    transports=["websocket"],
                    wait_timeout=5,
                )
            except socketio.exceptions.ConnectionError as exc:
                log.info("wallboard: server not reachable or refused: %s", exc)
                self.post_message(self.Updated(None, "offline"))
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            self._client = client
            delay = 0.2
            await lost.wait()
            self._client = None
            self.post_message(self.Updated(None, "offline"))
            await asyncio.sleep(delay)

    # -- showing ----------------------------------------------------------------------------------

    def on_traffic_screen_updated(self, event: "TrafficScreen.Updated") -> None:
        self.connection = event.connection
        if event.payload is not None:
            self.state = event.payload
        self.render_state()

    def status_line(self) -> tuple[str, bool]:
        """The status line and whether it is an alarm (PBX or server out of reach)."""
        if self.connection == "no_server":
            return _("No CIM server (cim tui --server): phone traffic is not available."), True
        if self.connection == "offline" and self.state is None:
            return _("No connection to the CIM server."), True
        if self.state is None:
            return _("Connecting to the CIM server…"), False
        pbx = self.state.get("pbx", {})
        if not pbx.get("connected"):
            since = _clock(pbx.get("down_since"), self._zone)
            return _("No connection to the PBX since {time}. The data below may be out of date.").format(
                time=since
            ), True
        if self.connection == "offline":
            return _("No connection to the CIM server: the data may be out of date."), True
        return _("PBX connected · as of {time}").format(time=_clock(self.state.get("at"), self._zone)), False

    def render_state(self) -> None:
        text, alarm = self.status_line()
        status = self.query_one("#traffic-status", Static)
        status.update(text)
        status.set_class(alarm, "down")
        if self.state is None:
            return
        t = self.state.get("today", {})
        self.query_one("#traffic-today", Static).update(
            _("Today: {offered}, {answered} answered, {abandoned} abandoned ({short} within 5 s)").format(
                offered=ngettext("{n} call in the queues", "{n} calls in the queues", t.get("offered", 0)).format(
                    n=t.get("offered", 0)
                ),
                answered=t.get("answered", 0),
                abandoned=t.get("abandoned", 0),
                short=t.get("abandoned_short", 0),
            )
        )
        callers = self.query_one("#traffic-callers", DataTable)
        members = self.query_one("#traffic-members", DataTable)
        calls = self.query_one("#traffic-calls", DataTable)
        for table in (callers, members, calls):
            table.clear()
        for q in self.state.get("queues", []):
            for c in q["callers"]:
                callers.add_row(
                    literal(q["queue"]), str(c["position"]), literal(c["number"] or "—"), _mmss(c["wait_s"])
                )
            for m in q["members"]:
                members.add_row(
                    literal(q["queue"]),
                    literal(m["consultant"] or m["name"]),
                    literal(m["extension"] or "—"),
                    _word(STATE_LABELS, m["state"]),
                    literal(m["reason"] or ""),
                )
        for c in self.state.get("calls", []):
            calls.add_row(
                _word(DIRECTION_LABELS, c["direction"]),
                literal(c["number"] or "—"),
                literal(", ".join(c["extensions"]) or "—"),
                literal(c["queue"] or "—"),
                _clock(c["since"], self._zone),
                _mmss(c["duration_s"]),
                str(c.get("transfers", 0)),
            )
        self._render_card()

    def my_call(self) -> dict | None:
        """The call at one of this consultant's extensions, if any."""
        for c in (self.state or {}).get("calls", []):
            if self.extensions & set(c["extensions"]):
                return c
        return None

    def ringing_me(self) -> tuple[str, dict] | None:
        """(queue, caller) of a queue caller whose call is ringing at one of this consultant's members."""
        mine = {m["interface"] for m in self.my_members()}
        for q in (self.state or {}).get("queues", []):
            for c in q["callers"]:
                if c.get("ringing") and c["ringing"] in mine:
                    return q["queue"], c
        return None

    def _render_card(self) -> None:
        card = self.query_one("#traffic-card", Static)
        call = self.my_call()
        ringing = self.ringing_me()
        card.set_class(call is not None or ringing is not None, "active")
        text = Text()
        if ringing is not None:
            queue, caller = ringing
            text.append(_("Ringing for you: "), style="bold")
            text.append(
                _("number {number} from the queue {queue}, waiting {wait}").format(
                    number=caller["number"] or "—", queue=queue, wait=_mmss(caller["wait_s"])
                )
            )
            if call is None:
                self.last_call = {"linkedid": caller["uniqueid"], "number": caller["number"]}
                card.update(text)
                return
            text.append("\n")
        if call is None:
            return
        self.last_call = call
        text.append(_("Your call: "), style="bold")
        text.append(_("{direction}, number ").format(direction=_word(DIRECTION_LABELS, call["direction"])))
        text.append(call["number"] or "—")
        if call["queue"]:
            text.append(" " + _("from the queue") + " ")
            text.append(call["queue"])
        text.append(", " + _("lasting {time}").format(time=_mmss(call["duration_s"])))
        text.append("  ·  " + _("k: category and note"), style="dim")
        card.update(text)

    # -- describing the call ----------------------------------------------------------------------

    def action_describe_call(self) -> None:
        from store.call_notes import CALL_CATEGORIES
        from tui.widgets.call_note import CallNoteModal

        call = self.my_call() or self.last_call
        if call is None:
            self.notify(_("You have no call to describe."), severity="warning")
            return
        if not allowed(self.ctx.actor, Permission.ANNOTATE_CALLS):
            self.notify(_("Only a consultant describes their own calls."), severity="warning")
            return
        linkedid = call["linkedid"]

        async def submit(result: tuple[str, str]) -> tuple[str, str]:
            category, note = result
            await self.ctx.store.call_notes.annotate(self.ctx.actor, linkedid, category, note)
            return result

        def described(result: tuple[str, str] | None) -> None:
            if result:
                self.notify(_("The call's category and note are saved."), title=_("Call"))

        # a refusal stays in the dialog with the category and note kept (issue 16)
        self.app.push_screen(
            CallNoteModal(
                _("Call {number}: category and note").format(number=call["number"] or ""),
                CALL_CATEGORIES,
                submit=submit,
            ),
            described,
        )

    # -- pausing oneself --------------------------------------------------------------------------

    def my_members(self) -> list[dict]:
        return [
            m for q in (self.state or {}).get("queues", []) for m in q["members"] if m["extension"] in self.extensions
        ]

    def action_toggle_pause(self) -> None:
        if not allowed(self.ctx.actor, Permission.PAUSE_QUEUE):
            self.notify(_("Only a consultant can take a break in the queue."), severity="warning")
            return
        mine = self.my_members()
        if not mine:
            self.notify(_("Your extensions are not in any queue."), severity="warning")
            return
        self.pause(not all(m["state"] == "paused" for m in mine))

    @work(exclusive=True, exit_on_error=False, group="traffic-pause")
    async def pause(self, paused: bool) -> None:
        if self._client is None:
            self.notify(_("No connection to the CIM server."), severity="error")
            return
        # the reason goes to the PBX and the wallboard of everyone: the office's language
        ack = await self._client.call(
            "queue_pause", {"paused": paused, "reason": "Przerwa" if paused else ""}, namespace="/staff", timeout=10
        )
        if ack.get("ok"):
            self.notify(_("Break started.") if paused else _("Back in the queue."), title=_("Queue"))
        else:
            self.notify(ack_refusal(ack), title=_("Queue"), severity="error")
