"""The Socket.IO server with CIM's packet rules: no binary frames, one log line per refused frame, and
Engine.IO sessions that never join a namespace counted per address and closed after a short grace."""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from typing import Any

import socketio

from .limits import ClientAddress, RateLimiter

log = logging.getLogger("cim.webchat")

#: Refused or malformed frames logged: at most this many lines per this many seconds (the rest are counted).
FRAME_LOG_RATE = (10, 60.0)
#: Socket.IO packet types that announce binary attachments (BINARY_EVENT, BINARY_ACK).
_BINARY_TYPES = ("5", "6")


class CimSocketServer(socketio.AsyncServer):
    """python-socketio's AsyncServer, refusing what CIM's protocol never uses.

    - Binary frames (and the packets that announce binary attachments) on any namespace close the
      session: the protocol is JSON text only, and attachments escaped the 64 KiB packet limit.
    - A frame that cannot be decoded is dropped with one rate-limited log line, never a traceback.
    - An Engine.IO session counts against its address until it joins a namespace; beyond the
      limit a new one is refused (HTTP 401), and one that has not joined within the grace period
      is closed.
    """

    def __init__(
        self, *args: Any, address: ClientAddress, pending_limit: int | None, join_grace: float, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.address = address
        self.pending_limit = pending_limit
        self.join_grace = join_grace
        self._pending: dict[str, str] = {}  # eio sid → address, until it joins a namespace
        self._pending_by_address: dict[str, int] = defaultdict(int)
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._frame_log = RateLimiter(FRAME_LOG_RATE)
        self._frames_unlogged = 0
        self._closing: set[asyncio.Task] = set()

    # -- sessions that never join -------------------------------------------------------------------

    def pending_count(self, address: str) -> int:
        return self._pending_by_address.get(address, 0)

    async def _handle_eio_connect(self, eio_sid: str, environ: dict) -> Any:
        request = environ.get("aiohttp.request")
        address = self.address.of(request) if request is not None else "unknown"
        if self.pending_limit is not None and self.pending_count(address) >= self.pending_limit:
            log.warning("socket.refused reason=too_many_sessions")
            return False  # Engine.IO answers 401 and forgets the session
        await super()._handle_eio_connect(eio_sid, environ)
        self._pend(eio_sid, address)
        return None

    def _pend(self, eio_sid: str, address: str) -> None:
        self._pending[eio_sid] = address
        self._pending_by_address[address] += 1
        self._timers[eio_sid] = asyncio.get_running_loop().call_later(self.join_grace, self._grace_over, eio_sid)

    def _joined(self, eio_sid: str) -> None:
        address = self._pending.pop(eio_sid, None)
        timer = self._timers.pop(eio_sid, None)
        if timer is not None:
            timer.cancel()
        if address is not None:
            self._pending_by_address[address] -= 1
            if self._pending_by_address[address] <= 0:
                del self._pending_by_address[address]

    def _grace_over(self, eio_sid: str) -> None:
        self._timers.pop(eio_sid, None)
        if eio_sid in self._pending:
            log.info("socket.closed reason=no_namespace")
            self._close_session(eio_sid)

    def _close_session(self, eio_sid: str) -> None:
        task = asyncio.get_running_loop().create_task(self._close(eio_sid))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def _close(self, eio_sid: str) -> None:
        socket = self.eio.sockets.get(eio_sid)
        await self.eio.disconnect(eio_sid)
        if socket is not None:
            # Engine.IO's WebSocket writer sends the close packet and then waits for the client to hang
            # up (up to ping interval + timeout, 45 s): a client that never does would keep it; this
            # wakes the writer, which closes the WebSocket itself
            await socket.queue.put(None)

    def _in_a_namespace(self, eio_sid: str) -> bool:
        return any(self.manager.sid_from_eio_sid(eio_sid, ns) is not None for ns in self.namespaces)

    async def _handle_connect(self, eio_sid: str, namespace: str, data: Any) -> Any:
        result = await super()._handle_connect(eio_sid, namespace, data)
        if self._in_a_namespace(eio_sid):
            self._joined(eio_sid)  # it is in a namespace now: the namespace's own limits count it
        return result

    async def _handle_disconnect(self, eio_sid: str, namespace: str, reason: Any = None) -> None:
        await super()._handle_disconnect(eio_sid, namespace, reason)
        socket = self.eio.sockets.get(eio_sid)
        if (
            socket is not None
            and not socket.closing
            and not socket.closed
            and eio_sid not in self._pending
            and eio_sid in self.environ
            and not self._in_a_namespace(eio_sid)
        ):
            # it left every namespace but kept the session: pending again, with a new grace period
            request = self.environ[eio_sid].get("aiohttp.request")
            self._pend(eio_sid, self.address.of(request) if request is not None else "unknown")

    async def _handle_eio_disconnect(self, eio_sid: str, reason: Any) -> None:
        await super()._handle_eio_disconnect(eio_sid, reason)
        self._joined(eio_sid)  # after: leaving the namespaces above must not count it as pending again

    # -- frames ----------------------------------------------------------------------------------------

    def _refused_frame(self, kind: str) -> None:
        if self._frame_log.allow("frames"):
            log.warning("socket.frame_refused kind=%s unlogged_before=%d", kind, self._frames_unlogged)
            self._frames_unlogged = 0
        else:
            self._frames_unlogged += 1

    async def _handle_eio_message(self, eio_sid: str, data: Any) -> None:
        if isinstance(data, (bytes, bytearray)) or (isinstance(data, str) and data[:1] in _BINARY_TYPES):
            self._refused_frame("binary")
            self._binary_packet.pop(eio_sid, None)
            self._close_session(eio_sid)
            return
        try:
            await super()._handle_eio_message(eio_sid, data)
        except (ValueError, TypeError, KeyError, IndexError, AttributeError):
            # python-socketio's decoder on a frame no client of ours sends; our handlers catch their own errors
            self._refused_frame("malformed")
