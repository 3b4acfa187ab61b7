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
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static

from store.policy import Permission, allowed
from tui.context import TuiContext
from tui.widgets.literal import literal
from tui.screens.base import CimScreen

log = logging.getLogger(__name__)

STATE_PL = {"free": "wolny", "ringing": "dzwoni", "on_call": "rozmawia", "paused": "przerwa",
            "unavailable": "niedostępny", "unknown": "?"}
DIRECTION_PL = {"incoming": "przychodzące", "outgoing": "wychodzące", "internal": "wewnętrzne"}


def _clock(iso: str | None, zone: ZoneInfo) -> str:
    if not iso:
        return "?"
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).astimezone(zone).strftime("%H:%M")


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
    BINDINGS = [Binding("p", "toggle_pause", "Przerwa / powrót"),
                Binding("k", "describe_call", "Kategoria i notatka")]

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
        yield Static("Łączenie z serwerem CIM…", id="traffic-status")
        yield Static("", id="traffic-today")
        yield Static("", id="traffic-card")
        with VerticalScroll():
            yield Static("Kolejki — oczekujący", classes="traffic-title")
            yield DataTable(id="traffic-callers", cursor_type="row", zebra_stripes=True)
            yield Static("Konsultanci w kolejkach", classes="traffic-title")
            yield DataTable(id="traffic-members", cursor_type="row", zebra_stripes=True)
            yield Static("Trwające rozmowy", classes="traffic-title")
            yield DataTable(id="traffic-calls", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        self.title = "Ruch telefoniczny"
        self.query_one("#traffic-callers", DataTable).add_columns("kolejka", "poz.", "numer", "czeka")
        self.query_one("#traffic-members", DataTable).add_columns("kolejka", "konsultant", "wewn.", "stan", "powód")
        self.query_one("#traffic-calls", DataTable).add_columns("kierunek", "numer", "wewn.", "kolejka", "od", "czas",
                                                               "przek.")
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
            client.on("disconnect", lambda *a: lost.set(), namespace="/staff")
            try:
                await client.connect(self.ctx.server_url, auth={"token": self.ctx.token}, namespaces=["/staff"],
                                     transports=["websocket"], wait_timeout=5)
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
            return "Brak serwera CIM (cim tui --server) — ruch telefoniczny niedostępny.", True
        if self.connection == "offline" and self.state is None:
            return "Brak połączenia z serwerem CIM.", True
        if self.state is None:
            return "Łączenie z serwerem CIM…", False
        pbx = self.state.get("pbx", {})
        if not pbx.get("connected"):
            since = _clock(pbx.get("down_since"), self._zone)
            return f"Brak połączenia z centralą od {since}. Dane poniżej mogą być nieaktualne.", True
        if self.connection == "offline":
            return "Brak połączenia z serwerem CIM — dane mogą być nieaktualne.", True
        return f"Centrala połączona · stan z {_clock(self.state.get('at'), self._zone)}", False

    def render_state(self) -> None:
        text, alarm = self.status_line()
        status = self.query_one("#traffic-status", Static)
        status.update(text)
        status.set_class(alarm, "down")
        if self.state is None:
            return
        t = self.state.get("today", {})
        self.query_one("#traffic-today", Static).update(
            f"Dziś: {t.get('offered', 0)} połączeń w kolejkach, {t.get('answered', 0)} odebranych, "
            f"{t.get('abandoned', 0)} porzuconych (w tym {t.get('abandoned_short', 0)} do 5 s)")
        callers = self.query_one("#traffic-callers", DataTable)
        members = self.query_one("#traffic-members", DataTable)
        calls = self.query_one("#traffic-calls", DataTable)
        for table in (callers, members, calls):
            table.clear()
        for q in self.state.get("queues", []):
            for c in q["callers"]:
                callers.add_row(literal(q["queue"]), str(c["position"]), literal(c["number"] or "—"),
                                _mmss(c["wait_s"]))
            for m in q["members"]:
                members.add_row(literal(q["queue"]), literal(m["consultant"] or m["name"]),
                                literal(m["extension"] or "—"), STATE_PL.get(m["state"], m["state"]),
                                literal(m["reason"] or ""))
        for c in self.state.get("calls", []):
            calls.add_row(DIRECTION_PL.get(c["direction"], c["direction"]), literal(c["number"] or "—"),
                          literal(", ".join(c["extensions"]) or "—"), literal(c["queue"] or "—"),
                          _clock(c["since"], self._zone), _mmss(c["duration_s"]), str(c.get("transfers", 0)))
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
            text.append("Dzwoni do Ciebie: ", style="bold")
            text.append(f"numer {caller['number'] or '—'} z kolejki {queue}, czeka {_mmss(caller['wait_s'])}")
            if call is None:
                self.last_call = {"linkedid": caller["uniqueid"], "number": caller["number"]}
                card.update(text)
                return
            text.append("\n")
        if call is None:
            return
        self.last_call = call
        text.append("Twoje połączenie: ", style="bold")
        text.append(f"{DIRECTION_PL.get(call['direction'], call['direction'])}, numer ")
        text.append(call["number"] or "—")
        if call["queue"]:
            text.append(" z kolejki ")
            text.append(call["queue"])
        text.append(f", trwa {_mmss(call['duration_s'])}")
        text.append("  ·  k: kategoria i notatka", style="dim")
        card.update(text)

    # -- describing the call ----------------------------------------------------------------------

    def action_describe_call(self) -> None:
        from store.call_notes import CALL_CATEGORIES
        from tui.widgets.call_note import CallNoteModal

        call = self.my_call() or self.last_call
        if call is None:
            self.notify("Brak Twojego połączenia do opisania.", severity="warning")
            return
        if not allowed(self.ctx.actor, Permission.ANNOTATE_CALLS):
            self.notify("Tylko konsultant opisuje swoje połączenia.", severity="warning")
            return
        linkedid = call["linkedid"]
        self.app.push_screen(CallNoteModal(f"Połączenie {call['number'] or ''}: kategoria i notatka",
                                           CALL_CATEGORIES),
                             lambda result: self.save_note(linkedid, result) if result else None)

    @work(exit_on_error=False, group="traffic-note")
    async def save_note(self, linkedid: str, result: tuple[str, str]) -> None:
        from store.errors import CimError

        category, note = result
        try:
            await self.ctx.store.call_notes.annotate(self.ctx.actor, linkedid, category, note)
        except CimError as exc:
            self.notify(exc.message, title="Połączenie", severity="error")
            return
        self.notify("Zapisano kategorię i notatkę połączenia.", title="Połączenie")

    # -- pausing oneself --------------------------------------------------------------------------

    def my_members(self) -> list[dict]:
        return [m for q in (self.state or {}).get("queues", []) for m in q["members"]
                if m["extension"] in self.extensions]

    def action_toggle_pause(self) -> None:
        if not allowed(self.ctx.actor, Permission.PAUSE_QUEUE):
            self.notify("Tylko konsultant może ogłosić przerwę w kolejce.", severity="warning")
            return
        mine = self.my_members()
        if not mine:
            self.notify("Twoje numery wewnętrzne nie są w żadnej kolejce.", severity="warning")
            return
        self.pause(not all(m["state"] == "paused" for m in mine))

    @work(exclusive=True, exit_on_error=False, group="traffic-pause")
    async def pause(self, paused: bool) -> None:
        if self._client is None:
            self.notify("Brak połączenia z serwerem CIM.", severity="error")
            return
        ack = await self._client.call("queue_pause", {"paused": paused, "reason": "Przerwa" if paused else ""},
                                      namespace="/staff", timeout=10)
        if ack.get("ok"):
            self.notify("Przerwa ogłoszona." if paused else "Powrót do kolejki.", title="Kolejka")
        else:
            self.notify(ack.get("error", {}).get("message", "odmowa"), title="Kolejka", severity="error")
