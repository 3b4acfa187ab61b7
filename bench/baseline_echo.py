"""The chat benchmark's baseline: a bare python-socketio relay on aiohttp, same protocol shape, nothing stored.

Residents connect to /resident and get a `notice`; `accept_notice` opens an in-memory chat;
consultants on /staff `accept` it; a resident's `send` is acked and relayed to the consultant as
`message`. It is what `cim serve` does minus validation, durability, auditing and opening hours, so
the ratio between the two is the price of those. Run: `python -m bench.baseline_echo --port P`.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import logging
import signal

import socketio
from aiohttp import web

log = logging.getLogger("bench.baseline_echo")


def create_app() -> web.Application:
    sio = socketio.AsyncServer(async_mode="aiohttp", cors_allowed_origins="*", logger=False, engineio_logger=False)
    app = web.Application()
    sio.attach(app)
    chats: dict[str, int] = {}  # resident sid → chat id
    assignee: dict[int, str] = {}  # chat id → consultant sid
    seqs: dict[int, int] = {}
    ids = itertools.count(1)

    @sio.on("connect", namespace="/resident")
    async def resident_connect(sid, environ, auth=None):
        asyncio.get_running_loop().create_task(
            sio.emit(
                "notice", {"notice_id": 1, "version": 1, "lang": "pl", "text": "notice"}, to=sid, namespace="/resident"
            )
        )

    @sio.on("disconnect", namespace="/resident")
    async def resident_disconnect(sid, reason=None):
        chats.pop(sid, None)

    @sio.on("accept_notice", namespace="/resident")
    async def accept_notice(sid, data):
        chat_id = next(ids)
        chats[sid] = chat_id
        seqs[chat_id] = 3
        return {"ok": True, "chat_id": chat_id, "resume_token": "x" * 43, "position": 1}

    @sio.on("send", namespace="/resident")
    async def resident_send(sid, data):
        chat_id = chats.get(sid)
        if chat_id is None or not isinstance(data, dict):
            return {"ok": False, "error": {"code": "notice_not_accepted", "message": "accept first"}}
        seq = seqs[chat_id]
        seqs[chat_id] = seq + 1
        staff_sid = assignee.get(chat_id)
        if staff_sid is not None:
            await sio.emit(
                "message",
                {"chat_id": chat_id, "seq": seq, "from": "resident", "text": data.get("text"), "at": ""},
                to=staff_sid,
                namespace="/staff",
            )
        return {"ok": True, "seq": seq}

    @sio.on("connect", namespace="/staff")
    async def staff_connect(sid, environ, auth=None):
        return None

    @sio.on("accept", namespace="/staff")
    async def staff_accept(sid, data):
        chat_id = data.get("chat_id") if isinstance(data, dict) else None
        if chat_id not in seqs:
            return {"ok": False, "error": {"code": "not_found", "message": "no such chat"}}
        assignee[chat_id] = sid
        return {"ok": True, "chat_id": chat_id, "history": []}

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    app.router.add_get("/healthz", healthz)
    return app


async def _serve(host: str, port: int) -> None:
    runner = web.AppRunner(create_app(), handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    log.info("baseline.listening port=%s", port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        parser.error("the baseline listens on loopback only")
    logging.basicConfig(level="INFO", format="%(asctime)s %(levelname)s %(name)s %(message)s")
    from bench.common import raise_fd_limit

    raise_fd_limit()
    asyncio.run(_serve(args.host, args.port))


if __name__ == "__main__":
    main()
