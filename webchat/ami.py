"""The link to the PBX's Manager Interface (AMI) through panoramisk: log in, rebuild, follow events, reconnect.

On every (re)connect the state is rebuilt from QueueStatus and CoreShowChannels before any event
is applied; events that arrive while the answers are still coming are held and applied after, in
order. A lost connection or a refused login is retried with an exponential backoff, and the link
says since when the PBX is out of reach, so the wallboard can say so.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Mapping
from urllib.parse import unquote, urlsplit

from panoramisk import Manager
from panoramisk.ami_protocol import AMIProtocol

from store.clock import Clock, system_clock
from store.errors import ConfigError
from store.tasks import stop_task
from store.traffic import TrafficState

log = logging.getLogger("cim.ami")

#: Seconds to wait for the banner+login answer and for each list (QueueStatus, CoreShowChannels).
ACTION_TIMEOUT = 10.0


@dataclass(frozen=True)
class AmiAddress:
    host: str
    port: int
    username: str
    secret: str

    def __repr__(self) -> str:  # never the secret in a log line
        return f"AmiAddress({self.username}@{self.host}:{self.port})"


def parse_ami_url(url: str, secret_file: str = "") -> AmiAddress:
    """`ami://user:secret@host:5038`; the secret may instead come from a file (CIM_AMI_SECRET_FILE)."""
    parts = urlsplit(url.strip())
    if parts.scheme != "ami" or not parts.hostname or not parts.username:
        raise ConfigError("CIM_AMI_URL must look like ami://user:secret@host:5038")
    try:
        port = parts.port or 5038
    except ValueError:
        raise ConfigError("CIM_AMI_URL has a port that is not a number") from None
    secret = unquote(parts.password or "")
    if secret_file:
        try:
            secret = Path(secret_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"cannot read the AMI secret file {secret_file}: {exc.strerror}") from None
    if not secret:
        raise ConfigError("the AMI secret is missing: put it in CIM_AMI_URL or in CIM_AMI_SECRET_FILE")
    return AmiAddress(parts.hostname, port, unquote(parts.username), secret)


class LoginRefused(Exception):
    pass


class BoundedAMIProtocol(AMIProtocol):
    """panoramisk's protocol, fed in slices so a flood of events cannot take the chat server's event loop.

    What arrives is parsed SLICE bytes (cut at a line end) at a time; while more is waiting, reading
    from the PBX pauses (TCP pushes back) and the next slice comes after a pause that keeps AMI work
    at about SHARE of the loop's time. Live chats keep the rest (bench/traffic.py measures it).
    """

    SLICE = 16 * 1024
    SHARE = 0.2

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self._pending = bytearray()
        self._scheduled = False
        self._paused = False

    def data_received(self, data: bytes) -> None:
        self._pending += data
        if not self._scheduled:
            self._next_slice()

    def _next_slice(self) -> None:
        self._scheduled = False
        if self.closed or not self._pending:
            return
        cut = len(self._pending)
        if cut > self.SLICE:
            end = self._pending.rfind(b"\r\n", 0, self.SLICE)
            cut = end + 2 if end > 0 else self.SLICE
        piece = bytes(self._pending[:cut])
        del self._pending[:cut]
        started = time.perf_counter()
        super().data_received(piece)
        spent = time.perf_counter() - started
        if self._pending:
            if not self._paused:
                self.transport.pause_reading()
                self._paused = True
            self._scheduled = True
            asyncio.get_running_loop().call_later(spent * (1 - self.SHARE) / self.SHARE, self._next_slice)
        elif self._paused and not self.closed:
            self.transport.resume_reading()
            self._paused = False


class _Manager(Manager):
    """panoramisk's Manager, reconnecting through AmiLink (with backoff) instead of on its own fixed timer."""

    pinger: Any  # panoramisk's keep-alive handle (an asyncio timer handle, or None), set by Manager

    def __init__(self, on_lost: Callable[[], None], **config: Any) -> None:
        super().__init__(**config)
        self._on_lost = on_lost

    def connection_lost(self, exc: Any) -> None:
        self._connected = False
        if self.pinger:
            self.pinger.cancel()
            self.pinger = None
        self._on_lost()


class AmiLink:
    """One AMI connection kept alive; `state` is the current TrafficState, `on_change()` is called after changes."""

    def __init__(
        self,
        address: AmiAddress,
        state: TrafficState,
        *,
        clock: Clock = system_clock,
        on_change: Callable[[], None] = lambda: None,
        backoff: tuple[float, float] = (0.5, 30.0),
        ping_seconds: int = 20,
    ) -> None:
        self.address = address
        self.state = state
        self.clock = clock
        self.on_change = on_change
        self.backoff = backoff
        self.ping_seconds = ping_seconds
        self.connected = False
        #: When the PBX was last lost (or first tried), None while connected.
        self.down_since: datetime | None = clock()
        self.last_error: str | None = "not connected yet"
        self.connects = 0
        self._manager: _Manager | None = None
        self._lost = asyncio.Event()
        self._held: list[Mapping[str, str]] | None = None
        self._task: asyncio.Task | None = None

    # -- life cycle --------------------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="ami-link")

    async def stop(self) -> None:
        if self._task is not None:
            await stop_task(self._task, name="ami-link")
            self._task = None
        self._close()

    def status(self) -> dict[str, Any]:
        return {
            "connected": self.connected,
            "down_since": None if self.down_since is None else self.down_since.isoformat(),
            "error": None if self.connected else self.last_error,
        }

    async def _run(self) -> None:
        delay = self.backoff[0]
        while True:
            try:
                await self._connect_once()
                delay = self.backoff[0]  # a session that got as far as the rebuild resets the backoff
                await self._lost.wait()
                self._went_down("the connection to the PBX was lost")
            except LoginRefused as exc:
                self._went_down(str(exc))
                delay = max(delay, self.backoff[1] / 4)  # a wrong password does not get better at once
            except (OSError, asyncio.TimeoutError, ConnectionError) as exc:
                detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                self._went_down(f"cannot reach the PBX ({detail})")
            self._close()
            await asyncio.sleep(delay * (0.8 + 0.4 * random.random()))
            delay = min(delay * 2, self.backoff[1])

    def _went_down(self, why: str) -> None:
        if self.connected or self.down_since is None:
            self.down_since = self.clock()
        self.connected = False
        if why != self.last_error:
            log.warning("ami.down reason=%r", why)
        self.last_error = why
        self.on_change()

    def _close(self) -> None:
        if self._manager is not None:
            manager, self._manager = self._manager, None
            manager.close()

    # -- one session -----------------------------------------------------------------------------

    async def _connect_once(self) -> None:
        loop = asyncio.get_running_loop()
        self._lost = asyncio.Event()
        manager = _Manager(
            self._lost.set,
            host=self.address.host,
            port=self.address.port,
            loop=loop,
            ping_delay=self.ping_seconds,
            ping_interval=self.ping_seconds,
            events="on",
        )
        manager.register_event("*", self._on_event)
        self._manager = manager
        transport, protocol = await asyncio.wait_for(
            loop.create_connection(BoundedAMIProtocol, self.address.host, self.address.port), ACTION_TIMEOUT
        )
        made = loop.create_future()
        made.set_result((transport, protocol))
        self._held = []  # events before the rebuild is done wait here
        manager.connection_made(made)
        reply = await self._action(
            {
                "Action": "Login",
                "Username": self.address.username,
                "Secret": self.address.secret,
                "Events": "call,agent",
            }
        )
        if not getattr(reply, "success", False):
            raise LoginRefused(
                f"the PBX refused the AMI login of {self.address.username!r} "
                f"({reply.get('Message', 'no reason given')})"
            )
        status = await self._action({"Action": "QueueStatus"}, as_list=True)
        channels = await self._action({"Action": "CoreShowChannels"}, as_list=True)
        now = self.clock()
        fresh = self.state.rebuild(_events(status), _events(channels), now)
        held, self._held = self._held, None
        for ev in held:
            fresh.apply(ev, now)
        self.state = fresh
        self.connected, self.down_since, self.last_error = True, None, None
        self.connects += 1
        log.info(
            "ami.connected host=%s queues=%d channels=%d held_events=%d",
            self.address.host,
            len(fresh.queues),
            len(fresh.channels),
            len(held),
        )
        self.on_change()

    async def _action(self, action: dict[str, str], *, as_list: bool | None = None) -> Any:
        """Send an action and wait for its answer (a list for EventList actions); a lost link ends the wait."""
        assert self._manager is not None
        future = self._manager.send_action(action, as_list=as_list)
        lost = asyncio.ensure_future(self._lost.wait())
        try:
            done, _ = await asyncio.wait({future, lost}, timeout=ACTION_TIMEOUT, return_when=asyncio.FIRST_COMPLETED)
        finally:
            lost.cancel()
        if future in done:
            return future.result()
        if lost in done:
            raise ConnectionError(f"the PBX closed the connection during {action['Action']}")
        raise asyncio.TimeoutError(f"no answer to {action['Action']} within {ACTION_TIMEOUT:g} s")

    def _on_event(self, manager: Manager, event: Mapping[str, str]) -> None:
        if manager is not self._manager:
            return  # a late event of a session already closed
        if self._held is not None:
            self._held.append(event)
            return
        try:
            changed = self.state.apply(event, self.clock())
        except Exception:  # one odd event must not end the link; it is logged and skipped
            log.exception("ami.event_failed event=%s", event.get("Event"))
            return
        if changed:
            self.on_change()

    async def queue_pause(self, interface: str, paused: bool, *, queue: str | None = None, reason: str = "") -> str:
        """AMI QueuePause for a member's interface (in one queue, or in all); the PBX's answer message."""
        if not self.connected or self._manager is None:
            raise ConnectionError("no connection to the PBX")
        action = {"Action": "QueuePause", "Interface": interface, "Paused": "true" if paused else "false"}
        if queue:
            action["Queue"] = queue
        if reason:
            action["Reason"] = reason
        reply = await self._action(action)
        if not getattr(reply, "success", False):
            raise ConnectionError(f"the PBX refused the pause: {reply.get('Message', 'no reason given')}")
        return reply.get("Message", "")


def _events(reply: Any) -> list[Mapping[str, str]]:
    """The events of an EventList answer (panoramisk gives [response, event, ..., ...Complete])."""
    messages = reply if isinstance(reply, list) else [reply]
    if messages and not getattr(messages[0], "success", True):
        raise ConnectionError(f"the PBX refused the list: {messages[0].get('Message', '')}")
    return [m for m in messages if "Event" in m]
