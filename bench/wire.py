"""A light Socket.IO client speaking the Engine.IO v4 / Socket.IO v5 wire protocol over one aiohttp websocket.

python-socketio's AsyncClient costs a few tasks and ~100 kB per connection; a load generator
holding 2,000-5,000 residents in one process needs less. This client does only what the benchmarks
use: one namespace per connection, events, acknowledgements, and answering the server's pings.
`tests/test_bench_smoke.py` checks it against the real server.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, Callable

import aiohttp

#: Called as handler(event, payload, receive_time) for every server → client event.
EventHandler = Callable[[str, Any, float], None]


class ConnectRefused(Exception):
    """The server refused the namespace connect (the payload is its error data)."""


class WireClient:
    """One websocket, one namespace: `await connect()`, `emit()`, `await call()` (emit with ack)."""

    def __init__(
        self, session: aiohttp.ClientSession, url: str, namespace: str, on_event: EventHandler | None = None
    ) -> None:
        self.session = session
        self.url = url.rstrip("/") + "/socket.io/?EIO=4&transport=websocket"
        self.namespace = namespace
        self.on_event = on_event
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self._acks: dict[int, asyncio.Future] = {}
        self._next_ack = 0
        self._connected: asyncio.Future | None = None
        self._read_task: asyncio.Task | None = None
        self.closed = asyncio.Event()

    async def connect(self, auth: dict | None = None, timeout: float = 30.0) -> None:
        loop = asyncio.get_running_loop()
        self.ws = await self.session.ws_connect(
            self.url, timeout=aiohttp.ClientWSTimeout(ws_close=5.0), autoping=False, max_msg_size=1 << 20
        )
        opened = await asyncio.wait_for(self.ws.receive(), timeout)
        if opened.type != aiohttp.WSMsgType.TEXT or not opened.data.startswith("0"):
            raise ConnectionError(f"no Engine.IO open packet: {opened.type} {str(opened.data)[:80]}")
        self._connected = loop.create_future()
        self._read_task = loop.create_task(self._read())
        await self.ws.send_str(f"40{self.namespace}," + json.dumps(auth or {}, separators=(",", ":")))
        await asyncio.wait_for(self._connected, timeout)

    def emit(self, event: str, payload: Any) -> asyncio.Future:
        """Send an event asking for an ack; the returned future resolves to the ack's first argument."""
        assert self.ws is not None
        self._next_ack += 1
        ack_id = self._next_ack
        future = asyncio.get_running_loop().create_future()
        self._acks[ack_id] = future
        body = json.dumps([event, payload], separators=(",", ":"), ensure_ascii=False)
        asyncio.ensure_future(self.ws.send_str(f"42{self.namespace},{ack_id}{body}"))
        return future

    async def call(self, event: str, payload: Any, timeout: float = 30.0) -> Any:
        return await asyncio.wait_for(self.emit(event, payload), timeout)

    async def close(self) -> None:
        if self.ws is not None and not self.ws.closed:
            try:
                await self.ws.send_str(f"41{self.namespace},")
            except (ConnectionError, RuntimeError):
                pass
            await self.ws.close()
        if self._read_task is not None:
            self._read_task.cancel()
            try:
                await self._read_task
            except (asyncio.CancelledError, Exception):
                pass

    async def _read(self) -> None:
        assert self.ws is not None
        loop = asyncio.get_running_loop()
        try:
            async for msg in self.ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    break
                data: str = msg.data
                now = loop.time()
                if data == "2":
                    await self.ws.send_str("3")
                    continue
                if not data.startswith("4") or len(data) < 2:
                    continue
                kind = data[1]
                rest = data[2:]
                if rest.startswith(self.namespace + ","):
                    rest = rest[len(self.namespace) + 1 :]
                elif rest.startswith("/"):
                    continue  # another namespace: not ours
                if kind == "0":
                    if self._connected and not self._connected.done():
                        self._connected.set_result(json.loads(rest) if rest else {})
                elif kind == "4":
                    if self._connected and not self._connected.done():
                        self._connected.set_exception(ConnectRefused(rest))
                elif kind == "2":
                    start = rest.find("[")
                    packet = json.loads(rest[start:])
                    if self.on_event is not None:
                        self.on_event(packet[0], packet[1] if len(packet) > 1 else None, now)
                elif kind == "3":
                    start = rest.find("[")
                    ack_id = int(rest[:start])
                    future = self._acks.pop(ack_id, None)
                    if future is not None and not future.done():
                        args = json.loads(rest[start:])
                        future.set_result(args[0] if args else None)
                elif kind == "1":
                    break
        finally:
            self.closed.set()
            for future in self._acks.values():
                if not future.done():
                    future.set_exception(ConnectionError("the connection closed"))
            self._acks.clear()
            if self._connected and not self._connected.done():
                self._connected.set_exception(ConnectionError("closed before the namespace connected"))
