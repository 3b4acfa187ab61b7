"""`cim demo`'s data: demo departments, staff with documented passwords, a few closed chats, and the embedded server."""

from __future__ import annotations

import logging
import socket
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, AsyncIterator, cast

from store import Store
from store.errors import AlreadyExists
from store.models import Actor

log = logging.getLogger(__name__)

SYSTEM = Actor.system("demo")

#: The demo accounts: (name, password, roles, department, full name). Printed by `cim demo`.
DEMO_STAFF: tuple[tuple[str, str, tuple[str, ...], str | None, str], ...] = (
    ("anna", "demo-1-szczecin", ("consultant",), None, "Anna Nowak"),
    ("piotr", "demo-2-szczecin", ("consultant",), None, "Piotr Kowalski"),
    ("kierownik", "demo-3-szczecin", ("cim_manager", "consultant"), None, "Kierownik CIM"),
    ("dyrektor", "demo-4-szczecin", ("boi_director",), None, "Dyrektor BOI"),
    ("iod", "demo-5-szczecin", ("dpo",), None, "Inspektor Ochrony Danych"),
    ("pracownik", "demo-8-szczecin", ("designated",), None, "Pracownik BOI"),
    ("naczelnik", "demo-6-szczecin", ("department_head",), "WGK", "Naczelnik WGK"),
    ("admin", "demo-7-szczecin", ("it_admin",), None, "Administrator IT"),
)

DEMO_DEPARTMENTS = (
    ("WGK", "Wydział Gospodarki Komunalnej"),
    ("WKS", "Wydział Komunikacji"),
    ("WPS", "Wydział Podatków"),
)

DEMO_CANNED = (
    ("Powitanie", "Dzień dobry, nazywam się {consultant}, w czym mogę pomóc?"),  # filled per consultant
    (
        "Godziny otwarcia",
        "Biuro Obsługi Interesantów jest czynne w poniedziałki 7:30-18:00, od wtorku do piątku 7:30-15:30.",
    ),
    ("Pożegnanie", "Dziękuję za rozmowę. Życzę miłego dnia!"),
)

#: Closed demo chats: (resident lines, consultant lines, category), alternating resident first.
DEMO_CHATS = (
    (
        ["Dzień dobry, do kiedy trzeba zapłacić podatek od nieruchomości?", "Dziękuję, to wszystko."],
        ["Dzień dobry, pierwsza rata jest płatna do 15 marca.", "Proszę bardzo, miłego dnia."],
        "information_given",
    ),
    (
        ["Chciałbym zgłosić dziurę w jezdni na ul. Wojska Polskiego."],
        ["Przekazuję zgłoszenie do Wydziału Gospodarki Komunalnej; można je też złożyć przez formularz."],
        "referred",
    ),
    (
        ["How can I register a car bought abroad?"],
        ["Hello, you need an appointment at the Vehicle Registration Office (Wydział Komunikacji)."],
        "information_given",
    ),
)


@dataclass(frozen=True)
class DemoInfo:
    created_staff: list[str]
    created_chats: int


async def seed_demo(store: Store) -> DemoInfo:
    """Create the demo departments, accounts, canned responses and closed chats (idempotent).

    Extension point: other areas add their demo data in `seed_demo_extras` below (calls, requests...).
    """
    created: list[str] = []
    existing_departments = {d.code for d in await store.accounts.departments()}
    for code, name in DEMO_DEPARTMENTS:
        if code not in existing_departments:
            await store.accounts.add_department(SYSTEM, code, name)
    for name, password, roles, department, full_name in DEMO_STAFF:
        try:
            await store.accounts.add_staff(SYSTEM, name, roles, password, department=department, full_name=full_name)
            created.append(name)
        except AlreadyExists:
            pass
    chats = 0
    if created:  # a fresh demo directory: add the demo content once
        chats = await _seed_chats(store)
    await seed_demo_extras(store, fresh=bool(created))
    return DemoInfo(created_staff=created, created_chats=chats)


async def _seed_chats(store: Store) -> int:
    anna = (await store.accounts.get("anna")).as_actor()
    manager = (await store.accounts.get("kierownik")).as_actor()
    for title, text in DEMO_CANNED:
        await store.chats.add_canned(manager, title, text)
    notice = await store.notices.current("chat", "pl")
    for resident_lines, consultant_lines, category in DEMO_CHATS:
        opened = await store.chats.open(notice.id, "en" if resident_lines[0].startswith("How") else "pl")
        chat_id = opened.chat.id
        await store.chats.post_resident(chat_id, resident_lines[0])
        await store.chats.accept(anna, chat_id)
        for index, reply in enumerate(consultant_lines):
            await store.chats.post_consultant(anna, chat_id, reply)
            if index + 1 < len(resident_lines):
                await store.chats.post_resident(chat_id, resident_lines[index + 1])
        await store.chats.close(anna, chat_id, category)
    return len(DEMO_CHATS)


async def seed_demo_extras(store: Store, *, fresh: bool) -> None:
    """Demo data of other areas. Add a call here, e.g. demo calls and recordings from the calls area.

    `fresh` is True the first time the demo directory is seeded; keep additions idempotent.
    """
    seed_calls = getattr(getattr(store, "calls", None), "seed_demo", None)
    if fresh and seed_calls is not None:
        await seed_calls(SYSTEM)


def reserve_port(host: str, port: int = 0) -> socket.socket:
    """A bound listening socket (port 0: a free one), so the URL is known before the UI starts."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    sock.setblocking(False)
    return sock


def embedded_chat_server(sock: socket.socket):
    """A service for make_app: the chat server (create_app) on `sock`, in the UI's own event loop."""

    @asynccontextmanager
    async def serve(store: Store) -> AsyncIterator[None]:
        from aiohttp import web

        from webchat.app import create_app, runner_options

        # a short shutdown: the sockets are closed first (webchat.app), and Ctrl+Q should end the demo at once
        runner = web.AppRunner(
            create_app(store.settings, store),
            handle_signals=False,
            access_log=None,
            # keyword options as AppRunner takes them (a dict of floats cannot say which keyword is which)
            **cast("dict[str, Any]", {**runner_options(store.settings), "shutdown_timeout": 1.0}),
        )
        await runner.setup()
        site = web.SockSite(runner, sock)
        await site.start()
        try:
            yield None
        finally:
            await runner.cleanup()

    return serve
