"""The /staff connection: kept alive with back-off, requests with acknowledgements, and the outboxes.

`StaffConnection` is the connection itself (shared with the supervisors' client, tui/live/supervision.py);
`LiveClient` is the consultant's: it folds the server's events into a Desk (tui/live/desk.py) and posts a
Textual message for each change (tui/live/messages.py) through `post` (the app's `post_message`).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Callable, Protocol

from tui.live.desk import Desk, LiveChat, Outgoing
from tui.live.errors import RETRYABLE, LiveError
from tui.live.messages import Live, LiveMessage
from tui.live.payloads import READERS, ChatLine, lines_of, notes_of
from tui.live.state import ConnectionState

if TYPE_CHECKING:
    import socketio

log = logging.getLogger(__name__)

NAMESPACE = "/staff"
#: Seconds to wait for an acknowledgement before telling the consultant the server did not answer.
ACK_TIMEOUT = 10.0
#: Seconds a whole stop of the live connection may take: its task cancelled, a polite disconnect tried, the
#: socket dropped. One deadline for all three (`stop`), never one wait after another each with its own.
STOP_TIMEOUT = 0.5
#: Of STOP_TIMEOUT, at most this long for the polite disconnect (the rest is for dropping the socket).
DISCONNECT_TIMEOUT = 0.3


def refusal_code(refusal: dict) -> str:
    """The code of a refused connection. PROTOCOL.md says `{"code": ...}`; python-socketio delivers a
    ConnectionRefusedError's single argument as `{"message": str(arg)}` and a second one as `data`,
    so all three shapes are read."""
    for candidate in (refusal, refusal.get("data")):
        if isinstance(candidate, dict) and isinstance(candidate.get("code"), str):
            return candidate["code"]
    message = str(refusal.get("message", ""))
    return "unauthorised" if "unauthorised" in message else ""


def _left(deadline: float, cap: float | None = None) -> float:
    """Seconds until `deadline` (the event loop's clock), never below 0, at most `cap`."""
    left = max(0.0, deadline - asyncio.get_running_loop().time())
    return left if cap is None else min(cap, left)


async def _close_quickly(client: socketio.AsyncClient, deadline: float) -> None:
    """Disconnect politely if the server answers at once, else drop the connection; all by `deadline`.

    A polite disconnect waits for the server's WebSocket close frame (aiohttp: up to 10 s); over a
    dead link or to a server that stopped answering, quitting the TUI waited that long on a blank
    terminal. The server notices a dropped socket by its ping timeout, so nothing is lost. The polite
    try gets at most DISCONNECT_TIMEOUT of what is left, closing the HTTP session the rest: together
    never more than the time to `deadline`.
    """
    try:
        await asyncio.wait_for(client.disconnect(), _left(deadline, DISCONNECT_TIMEOUT))
        return
    except (asyncio.TimeoutError, Exception):  # gone or not answering: abort below
        pass
    eio = client.eio
    for name in ("read_loop_task", "write_loop_task"):
        task = getattr(eio, name, None)
        if task is not None and not task.done():
            task.cancel()
    http = getattr(eio, "http", None)
    if http is not None and not http.closed:
        try:
            await asyncio.wait_for(http.close(), _left(deadline))
        except (asyncio.TimeoutError, Exception):  # the process is ending; the OS closes the socket
            pass


class Holder(Protocol):
    """What a connection keeps its state in: a consultant's Desk or a supervisor's board."""

    state: ConnectionState
    chats: dict[int, LiveChat]


class StaffConnection:
    """One /staff connection kept alive (reconnecting with back-off); subclasses say what its events do."""

    #: The server events this connection follows.
    EVENTS: tuple[str, ...] = ()

    def __init__(
        self,
        server_url: str,
        token: str,
        holder: Holder,
        *,
        retry_min: float = 0.2,
        retry_max: float = 5.0,
        clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
        ack_timeout: float = ACK_TIMEOUT,
    ) -> None:
        self.server_url = server_url.rstrip("/")
        self.token = token
        self.holder = holder
        self.retry_min = retry_min
        self.retry_max = retry_max
        #: The time stamped on our own lines until the server's history replaces them.
        self.clock = clock
        self.ack_timeout = ack_timeout
        self._client: socketio.AsyncClient | None = None
        self._task: asyncio.Task | None = None
        self._disconnected = asyncio.Event()
        #: The server's reason for refusing the last connection attempt ({"code": ..., "message": ...}).
        self._refusal: dict = {}
        #: The server's `session_ended` ({"code", "message", "message_en"}): the session is over, no reconnect.
        self.ended: dict | None = None
        self._stopping = False

    # -- what a subclass does with the connection ------------------------------------------------

    def _state_changed(self, state: ConnectionState) -> None:
        raise NotImplementedError

    def _session_ended(self, data: dict) -> None:
        raise NotImplementedError

    def _event(self, event: str, data: Any) -> None:
        raise NotImplementedError

    async def _after_connect(self) -> None:
        """Once connected (again)."""

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        """Run the connection in a task of its own (the supervision screen, tests)."""
        if self._task is None:
            self._task = asyncio.create_task(self.run(), name="cim-live-client")

    async def run(self) -> None:
        """The connection loop until `stop`: in `start`'s task, or as a Textual worker (the app's, whose
        failure is then reported like any worker's, tui/widgets/worker_errors.py)."""
        self._task = asyncio.current_task()
        await self._run()

    async def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Stop the connection within `timeout` seconds overall (tui/app.py gives quitting one deadline)."""
        deadline = asyncio.get_running_loop().time() + timeout
        self._stopping = True
        if self._task and self._task is not asyncio.current_task():
            self._task.cancel()
            # a cancelled task ends at its next await; one stuck in a call that ignores the cancel is left
            await asyncio.wait({self._task}, timeout=_left(deadline))
            if self._task.done() and not self._task.cancelled():
                self._task.exception()  # stopping: the reason it ended is moot (retrieved, so never logged)
        client, self._client = self._client, None
        if client is not None:
            await _close_quickly(client, deadline)
        self._set_state(ConnectionState.OFFLINE)

    def _set_state(self, state: ConnectionState) -> None:
        if self.holder.state != state:
            self.holder.state = state
            self._state_changed(state)

    async def _run(self) -> None:
        import socketio  # here, not at module level: ~0.3 s less for every `cim tui` start (bench/)

        delay = self.retry_min
        first = True
        while not self._stopping:
            self._set_state(ConnectionState.CONNECTING if first else ConnectionState.RECONNECTING)
            client = self._new_client()
            try:
                await client.connect(
                    self.server_url,
                    auth={"token": self.token},
                    namespaces=[NAMESPACE],
                    transports=["websocket"],
                    wait_timeout=5,
                )
            except socketio.exceptions.ConnectionError as exc:
                if refusal_code(self._refusal) == "unauthorised":
                    self._set_state(ConnectionState.REFUSED)
                    return
                log.info("chat server not reachable: %s", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.retry_max)
                continue
            first = False
            delay = self.retry_min
            self._client = client
            self._set_state(ConnectionState.ONLINE)
            await self._after_connect()
            await self._disconnected.wait()
            self._client = None
            try:
                await client.disconnect()
            except Exception:  # the transport is already closed
                pass
            if self.ended is not None:  # the server ended our session: reconnecting would be refused
                self._set_state(ConnectionState.REFUSED)
                return
            if not self._stopping:
                self._set_state(ConnectionState.RECONNECTING)
                await asyncio.sleep(delay)

    def _new_client(self) -> socketio.AsyncClient:
        import socketio

        # Our own loop reconnects (it also covers a server that was down at start-up).
        client = socketio.AsyncClient(reconnection=False, logger=False, engineio_logger=False)
        self._disconnected = asyncio.Event()
        self._refusal = {}

        async def on_disconnect(*_: Any) -> None:
            self._disconnected.set()

        async def on_connect_error(data: Any = None, *_: Any) -> None:
            self._refusal = data if isinstance(data, dict) else {"code": str(data)}

        async def on_session_ended(data: Any = None, *_: Any) -> None:
            self.ended = data if isinstance(data, dict) else {"code": "session_expired"}
            self._session_ended(dict(self.ended))

        client.on("disconnect", on_disconnect, namespace=NAMESPACE)
        client.on("connect_error", on_connect_error, namespace=NAMESPACE)
        client.on("session_ended", on_session_ended, namespace=NAMESPACE)
        for event in self.EVENTS:
            client.on(event, self._handler(event), namespace=NAMESPACE)
        return client

    def _handler(self, event: str) -> Callable:
        async def handle(data: Any = None, *_: Any) -> None:
            self._event(event, data)

        return handle

    # -- requests --------------------------------------------------------------------------------

    async def call(self, event: str, payload: dict) -> dict:
        """Emit and wait for the acknowledgement; raise LiveError on a refusal, a timeout or no connection.

        A connection that drops while we wait is `disconnected` at once (python-socketio would wait out
        the timeout): what was sent stays in its outbox and goes again, with its id, on the reconnect."""
        import socketio

        client = self._client
        if client is None or not client.connected:
            raise LiveError("disconnected")
        try:
            ack = await self._ack(client, event, payload)
        except socketio.exceptions.TimeoutError:
            raise LiveError("timeout") from None
        except socketio.exceptions.SocketIOError:
            raise LiveError("disconnected") from None
        if not isinstance(ack, dict):
            raise LiveError("server_error")
        if not ack.get("ok"):
            raw_error = ack.get("error")
            error = raw_error if isinstance(raw_error, dict) else {}
            reason = error.get("reason")
            raise LiveError(
                str(error.get("code") or "server_error"),
                error.get("message"),
                reason if isinstance(reason, str) else None,
            )
        return ack

    async def _ack(self, client: socketio.AsyncClient, event: str, payload: dict) -> Any:
        """The acknowledgement, or LiveError("disconnected") as soon as this connection drops."""
        gone = asyncio.ensure_future(self._disconnected.wait())
        answer = asyncio.ensure_future(client.call(event, payload, namespace=NAMESPACE, timeout=self.ack_timeout))
        try:
            await asyncio.wait({answer, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
            dropped = not answer.done()
            if dropped:
                answer.cancel()
        if dropped:
            raise LiveError("disconnected")
        return answer.result()

    async def typing(self, chat_id: int, active: bool) -> None:
        import socketio

        client = self._client
        if client is not None and client.connected:
            try:
                await client.emit("typing", {"chat_id": chat_id, "active": active}, namespace=NAMESPACE)
            except socketio.exceptions.SocketIOError:
                pass  # a typing hint lost to a dropped connection does not matter

    async def activity(self) -> None:
        """Tell the server the person is working, so the session's idle timeout starts again."""
        try:
            await self.call("activity", {})
        except LiveError as exc:  # not connected, or the session is over (session_ended says why)
            log.info("activity not reported: %s", exc.code)

    def _forget(self, chat_id: int, item: Outgoing) -> None:
        chat = self.holder.chats.get(chat_id)
        if chat is not None:
            chat.forget(item)


class LiveClient(StaffConnection):
    """The consultant's connection: server events folded into the Desk, a Textual message for each change.

    Replies go through the chat's outbox (`LiveChat.outbox`): a reply not acknowledged keeps its
    `client_msg_id` for every retry and is sent again, oldest first, after a reconnect; the server stores
    a message once per id (store.chats.post_consultant), so a lost acknowledgement never stores it twice.
    """

    EVENTS = tuple(READERS)

    def __init__(
        self, server_url: str, token: str, desk: Desk, post: Callable[[LiveMessage], object], **options: Any
    ) -> None:
        super().__init__(server_url, token, desk, **options)
        self.desk = desk
        #: Where the messages go (the app's `post_message`); replaced by a no-op while stopping.
        self.post = post

    def _state_changed(self, state: ConnectionState) -> None:
        self.post(Live.ConnectionChanged(state))

    def _session_ended(self, data: dict) -> None:
        self.post(
            Live.SessionEnded(
                str(data.get("code") or ""), str(data.get("message") or ""), str(data.get("message_en") or "")
            )
        )

    def _event(self, event: str, data: Any) -> None:
        message = self.desk.apply(event, data)
        if message is not None:
            self.post(message)

    async def _after_connect(self) -> None:
        """Our open chats from the server, their whispers, then the replies still in the outboxes."""
        try:
            ack = await self.call("my_chats", {})
            self.desk.resync(ack.get("chats"))
            await self._fetch_notes()
            self.post(Live.Resynced())
            await self._flush_outbox()
        except LiveError as exc:
            log.info("could not list my chats or resend replies after connecting: %s", exc.code)

    async def _fetch_notes(self) -> None:
        """The supervisors' whispers (§3) in our open chats: the transcripts of `my_chats` leave them out."""
        for chat in list(self.desk.chats.values()):
            if chat.status != "active":
                continue
            try:
                ack = await self.call("notes", {"chat_id": chat.chat_id})
            except LiveError as exc:  # a server without supervision, or the chat moved on: the lines stay
                if exc.code in RETRYABLE:
                    raise
                continue
            for line in notes_of(ack.get("notes")):
                chat.add(line)

    async def accept(self, chat_id: int) -> None:
        ack = await self.call("accept", {"chat_id": chat_id})
        self.desk.take(chat_id, str(ack.get("lang") or "") or None, lines_of(ack.get("history")))
        self.post(Live.ChatAssigned(chat_id))

    async def send(self, chat_id: int, text: str) -> int:
        """Send a reply; returns its seq. A reply still in the chat's outbox (not acknowledged) with the
        same text is sent again with its first `client_msg_id`, so a retry never stores it twice."""
        chat = self.desk.chats.get(chat_id)
        item = chat.outgoing(text) if chat is not None else Outgoing(client_msg_id=uuid.uuid4().hex, text=text)
        return await self._deliver(chat_id, item)

    async def _deliver(self, chat_id: int, item: Outgoing) -> int:
        try:
            ack = await self.call("send", {"chat_id": chat_id, "text": item.text, "client_msg_id": item.client_msg_id})
        except LiveError as exc:
            if exc.code not in RETRYABLE:  # refused: it was not stored, and sending it again would not help
                self._forget(chat_id, item)
            raise
        self._forget(chat_id, item)
        seq = int(ack.get("seq") or 0)
        if seq:
            self.desk.add_own_line(chat_id, ChatLine(seq=seq, sender="consultant", text=item.text, at=self.clock()))
        return seq

    async def _flush_outbox(self) -> None:
        """After a reconnect: send every unacknowledged reply again, with its first id, oldest first."""
        for chat in list(self.desk.chats.values()):
            for item in list(chat.outbox):
                if chat.status != "active":
                    chat.outbox.clear()
                    break
                try:
                    await self._deliver(chat.chat_id, item)
                except LiveError as exc:
                    if exc.code in RETRYABLE:
                        raise
                    self.post(Live.SendFailed(chat.chat_id, item.text, exc.message))
                    continue
                if chat.draft == item.text:  # the reply line still held it: it is sent now
                    chat.draft = ""
                self.post(Live.Sent(chat.chat_id, item.text))

    async def transfer(self, chat_id: int, to_staff_id: int) -> None:
        await self.call("transfer", {"chat_id": chat_id, "to_staff_id": to_staff_id})
        self.desk.drop(chat_id)

    async def close(self, chat_id: int, category: str) -> None:
        await self.call("close", {"chat_id": chat_id, "category": category})

    async def set_availability(self, status: str) -> None:
        """available / away: away consultants are given no new chats (webchat/routing.py)."""
        await self.call("availability", {"status": status})
        self.desk.availability = status
        self.post(Live.AvailabilityChanged(status))

    async def decline(self, chat_id: int) -> None:
        """Auto mode: give back a chat the server assigned; it goes to the next consultant."""
        await self.call("decline", {"chat_id": chat_id})
        self.desk.drop(chat_id)
        self.post(Live.Released(chat_id, "declined"))
