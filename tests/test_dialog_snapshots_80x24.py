"""Issue 16: a snapshot at 80x24, in Polish and in English, of every dialog and sub-screen not in
tests/test_i18n_tui.py's DIALOGS, each opened the way a person does (keys), on demo-like data and a fixed clock;
and a test that fails when a CimModal subclass in tui/ has no snapshot."""

from __future__ import annotations

import asyncio
import importlib
import inspect
import pkgutil
import random
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Awaitable, Callable

import pyotp
import pytest
import socketio
from textual.widgets import DataTable

import tui
from store import Store
from store.calls import seed_demo_calls
from store.clock import ManualClock
from store.settings import Settings
from tests.fixtures.requests import CALL_AT, PHONE, call_request, chat_request, insert_call, insert_chat
from tests.fixtures.store import PASSWORD, SYSTEM
from tests.fixtures.tui import settled, sign_in, wait_until
from tests.test_i18n_tui import DIALOGS, LANGS, _settle, _still_cursors
from tui.app import make_app
from tui.demo import embedded_chat_server, reserve_port
from tui.screens.base import CimModal

START = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)
SESSION_AT = datetime(2026, 3, 2, 9, 30, tzinfo=timezone.utc)
PURPOSE = "Wniosek CIM/2026/0007 Józefa Ślązaka o odsłuchanie rozmowy z 24 lutego w sprawie zasiłku"
OFFLINE = [
    ("Jan Kowalski", "jan.kowalski@example.pl", "Proszę o informację, do kiedy trzeba zapłacić podatek."),
    (None, "601 234 567", "Zgubiłam Kartę Mieszkańca, jak zamówić duplikat?"),
]
STAFF = (  # name, roles, department, full name
    ("rejestr", ["designated"], None, "Renata Rejestr"),
    ("dyrektor", ["boi_director"], None, "Damian Dyrektor"),
    ("iod", ["dpo"], None, "Irena Iodowska"),
    ("naczelnik", ["department_head"], "WO", "Norbert Naczelnik"),
    ("swiadek", ["designated"], None, "Sabina Świadek"),
    ("kierownik", ["cim_manager"], None, "Kamil Kierownik"),
    ("root", ["it_admin"], None, "Robert Root"),
    ("anna", ["consultant"], None, "Anna Nowak"),
    ("piotr", ["consultant"], None, "Piotr Wiśniewski"),
    ("sekretarz", ["secretary"], None, "Sylwia Sekretarz"),  # the one role with a second factor here
)


def fixed_random(n: int) -> bytes:
    """A predictable listening token for the snapshot (the real one comes from secrets.token_bytes)."""
    return bytes(range(7, 7 + n))


@dataclass
class Office:
    app: object
    url: str
    clock: ManualClock
    #: the requests by their part in the scenarios: their ids
    requests: dict[str, int]


@pytest.fixture
def office(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A data dir with the people of the office, demo calls, requests in each state, offline messages, a canned
    response and audited archive reads; the app (with the embedded chat server) then opens it itself."""
    from store import resident_desk

    picks = random.Random(16)  # fixed offline message references and recovery codes (secrets is one module)
    monkeypatch.setattr(resident_desk.secrets, "choice", picks.choice)
    monkeypatch.setenv("HOME", "/home/cim")  # the export form's default folder
    settings = Settings.load(
        tmp_path / "data",
        env={},
        password_profile="fast",
        opening_hours="always",
        mfa_roles="secretary",
        listen_base_url="https://cim.example.pl",  # the links' address, not the chat server's random port
    )
    clock = ManualClock(START)
    requests: dict[str, int] = {}

    async def prepare() -> None:
        store = await Store.open(settings, create=True, clock=clock)
        try:
            await store.accounts.add_department(SYSTEM, "WO", "Wydział Obsługi")
            people = {}
            for name, roles, dept, full in STAFF:
                staff = await store.accounts.add_staff(SYSTEM, name, roles, PASSWORD, department=dept, full_name=full)
                people[name] = staff.as_actor()
            manager = people["kierownik"]
            await store.chats.add_canned(manager, "Powitanie", "Dzień dobry, w czym mogę pomóc?")
            await store.chats.add_canned(manager, "Podatek", "Podatek od nieruchomości płaci się do 15 marca.")
            await seed_demo_calls(store, tmp_path / "pbx")
            r = store.requests
            # awaiting the opinions: a call request with its call linked
            req = await r.register(people["rejestr"], call_request())
            await r.link(people["rejestr"], req.id, await insert_call(store, at=CALL_AT, number=PHONE, department="WO"))
            requests["opinions"] = req.id
            # a chat request without its chat: the receipt links it
            requests["chat"] = (await r.register(people["rejestr"], chat_request())).id
            # both opinions given: the director grants
            req = await r.register(people["rejestr"], call_request(requester_name="Łucja Źrebię"))
            await r.link(people["rejestr"], req.id, await insert_call(store, at=CALL_AT, number=PHONE, department="WO"))
            await r.give_opinion(people["iod"], req.id, "dpo", "favourable", "Brak przeszkód.")
            await r.give_opinion(people["naczelnik"], req.id, "department", "favourable", "Zgoda.")
            requests["opinions_given"] = req.id
            # in session: one request with its call, one with its chat
            for part, form, conv in (
                ("session_call", call_request(requester_name="Józef Ślązak"), None),
                ("session", chat_request(), "chat"),
            ):
                req = await r.register(people["rejestr"], form)
                if conv == "chat":
                    linked = await insert_chat(
                        store,
                        at=CALL_AT,
                        lines=[("resident", "Dzień dobry, kiedy płacę podatek?"), ("consultant", "Do 15 marca.")],
                        department="WO",
                    )
                else:
                    linked = await insert_call(store, at=CALL_AT, number=PHONE, department="WO")
                await r.link(people["rejestr"], req.id, linked)
                await r.give_opinion(people["iod"], req.id, "dpo", "favourable", "Brak przeszkód.")
                await r.give_opinion(people["naczelnik"], req.id, "department", "favourable", "Zgoda.")
                await r.grant(
                    people["dyrektor"], req.id, session_at=SESSION_AT, place="Sala 12",
                    attendee_ids=[people["swiadek"].staff_id],
                )  # fmt: skip
                requests[part] = req.id
            clock.now = SESSION_AT
            for part in ("session_call", "session"):
                await r.start_session(people["swiadek"], requests[part])
            # copies: linked (to grant), granted (to prepare), prepared (to confirm), confirmed (to export)
            for step in ("copy_linked", "copy_granted", "copy_prepared", "copy_confirmed"):
                req = await r.register(people["iod"], call_request(kind="copy", asked="copy", justification=""))
                await r.link(people["iod"], req.id, await insert_call(store, at=CALL_AT, number=PHONE))
                requests[step] = req.id
                if step == "copy_linked":
                    continue
                await r.grant(people["iod"], req.id)
                if step == "copy_granted":
                    continue
                await r.prepare_export(people["iod"], req.id, "Numer telefonu z wniosku.")
                if step == "copy_confirmed":
                    await r.confirm_export(people["dyrektor"], req.id, "Sprawdziłem numer.")
            notice = await store.notices.current("chat", "pl")
            for name, contact, text in OFFLINE:
                await store.resident_desk.leave_message(notice.id, "pl", name, contact, text)
            async with store.db.write() as tx:
                await store.audit.append(
                    tx, people["rejestr"], "archive.open_transcript", target_kind="conversation", target_id=7,
                    purpose=PURPOSE,
                )  # fmt: skip
        finally:
            await store.close()

    asyncio.run(prepare())
    sock = reserve_port("127.0.0.1")
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    app = make_app(
        settings, server_url=url, clock=clock, services=[embedded_chat_server(sock)], session_check_seconds=3600
    )
    yield Office(app, url, clock, requests)
    sock.close()


# -- how each dialog is opened ---------------------------------------------------------------------------


async def _area(pilot, who: str, key: str, screen: str) -> None:
    await sign_in(pilot, who, PASSWORD)
    await pilot.press(key)
    await wait_until(pilot, lambda: type(pilot.app.screen).__name__ == screen, what=screen)
    await _settle(pilot)


async def _opened(pilot, modal: str) -> None:
    await wait_until(pilot, lambda: type(pilot.app.screen).__name__ == modal, what=f"the {modal}")
    await pilot.pause()  # not _settle: the worker that opened the dialog waits for it to close
    _still_cursors(pilot.app)
    await pilot.pause()


async def _request(pilot, office: Office, who: str, part: str) -> None:
    """Sign in, open the requests (F4), the register (I toggles from the inbox) and the request (Enter)."""
    await _area(pilot, who, "f4", "RequestsScreen")
    screen = pilot.app.screen
    request_id = office.requests[part]
    if request_id not in [r.id for r in screen.requests]:
        await pilot.press("i")
        await wait_until(pilot, lambda: request_id in [r.id for r in screen.requests], what="the register")
    table = screen.query_one("#requests-table", DataTable)
    table.focus()
    table.move_cursor(row=[r.id for r in screen.requests].index(request_id))
    await pilot.press("enter")
    await wait_until(
        pilot,
        lambda: type(pilot.app.screen).__name__ == "RequestDetailScreen" and pilot.app.screen.detail is not None,
        what="the request",
    )
    await _settle(pilot)


def _step(who: str, part: str, keys: tuple[str, ...], modal: str = "FormModal"):
    async def run(pilot, office: Office) -> None:
        await _request(pilot, office, who, part)
        await pilot.press(*keys)
        await _opened(pilot, modal)

    return run


async def _request_detail(pilot, office: Office) -> None:
    await _request(pilot, office, "rejestr", "opinions")


async def _register_refused(pilot, office: Office) -> None:
    await _area(pilot, "rejestr", "f4", "RequestsScreen")
    await pilot.press("n")
    await _opened(pilot, "FormModal")
    pilot.app.screen.set_value("requester_name", "Jan Kowalski")
    pilot.app.screen.set_value("requester_address", "ul. Polna 1")
    await pilot.press("ctrl+s")
    await wait_until(pilot, lambda: pilot.app.screen.error, what="the error")
    await settled(pilot)
    # the field with the error is in view either way, but the minimal scroll that brings it there depends on
    # where the body stood (one row more or less, by timing): the picture is taken with the body at its end
    body = pilot.app.screen.query_one(".dialog-body")
    body.scroll_end(animate=False, immediate=True)
    await pilot.pause()


async def _session_row(pilot, channel: str) -> None:
    screen = pilot.app.screen
    linked = screen.query_one("#linked", DataTable)
    rows = [c.conversation_id for c in screen.detail.conversations if c.channel == channel]
    linked.focus()
    linked.move_cursor(row=[c.conversation_id for c in screen.detail.conversations].index(rows[0]))
    await pilot.pause()


async def _session_content(pilot, office: Office) -> None:
    await _request(pilot, office, "swiadek", "session")
    await _session_row(pilot, "chat")
    await pilot.press("v")
    await _opened(pilot, "ContentModal")
    pilot.app.screen_stack[-2].query_one("#detail").scroll_home(animate=False)  # not the letters' temporary paths
    await pilot.pause()


async def _session_listen(pilot, office: Office) -> None:
    pilot.app.store.listening.random = fixed_random
    await _request(pilot, office, "swiadek", "session_call")
    await _session_row(pilot, "call")
    await pilot.press("v")
    await _opened(pilot, "ListenLinkModal")


async def _recovery_codes(pilot, office: Office) -> None:
    """The first sign-in of a role needing a second factor: the key is added (code typed), then the codes."""
    await sign_in(pilot, "sekretarz", PASSWORD, expect_home=False)
    await wait_until(pilot, lambda: type(pilot.app.screen).__name__ == "EnrolmentModal", what="the enrolment")
    modal = pilot.app.screen
    modal.query_one("#enrolment-code").value = pyotp.TOTP(modal.secret).at(office.clock())
    modal.query_one("#enrolment-code").focus()
    await pilot.press("enter")
    app = pilot.app

    def settled() -> bool:
        name = type(app.screen).__name__
        return name == "RecoveryCodesModal" or (
            name == "LoginScreen" and app.screen.query_one("#login-message").has_class("error")
        )

    await wait_until(pilot, settled, what="the recovery codes or a refusal")
    if type(app.screen).__name__ == "LoginScreen":
        raise AssertionError(str(app.screen.query_one("#login-message").render()))
    await _opened(pilot, "RecoveryCodesModal")


async def _hold_refused(pilot, office: Office) -> None:
    await _area(pilot, "kierownik", "f5", "RetentionScreen")
    await pilot.press("a")
    await _opened(pilot, "HoldModal")
    screen = pilot.app.screen
    for field, value in (("#hold-ids", "12 x"), ("#hold-basis", "KPA art. 73"), ("#hold-case", "SO.9/2026")):
        screen.query_one(field).value = value
    await pilot.press("ctrl+s")
    await wait_until(pilot, lambda: screen.error, what="the error")
    await pilot.pause()


async def _accounts_row(pilot, name: str) -> None:
    await _area(pilot, "root", "f9", "AccountsScreen")
    table = pilot.app.screen.query_one(DataTable)
    table.focus()
    for row in range(table.row_count):
        if str(table.get_row_at(row)[0]) == name:
            table.move_cursor(row=row)
    await pilot.pause()


async def _confirm_disable(pilot, office: Office) -> None:
    await _accounts_row(pilot, "anna")
    await pilot.press("d")
    await _opened(pilot, "ConfirmModal")


async def _password_reset(pilot, office: Office) -> None:
    await _accounts_row(pilot, "anna")
    await pilot.press("p")
    await _opened(pilot, "PasswordModal")


async def _delete_canned(pilot, office: Office) -> None:
    await _area(pilot, "kierownik", "f10", "CannedScreen")
    await wait_until(pilot, lambda: pilot.app.screen.query_one("#canned-table").row_count, what="the rows")
    pilot.app.screen.query_one("#canned-table").focus()
    await pilot.press("d")
    await _opened(pilot, "DeleteCannedModal")


async def _audit_entry(pilot, office: Office) -> None:
    await _area(pilot, "dyrektor", "f6", "AuditScreen")
    screen = pilot.app.screen
    screen.query_one("#audit-purpose-words").value = "ślązaka"
    screen.query_one("#audit-purpose-words").focus()
    await pilot.press("enter")
    await wait_until(pilot, lambda: len(screen.entries) == 1, what="the entry")
    await _settle(pilot)
    screen.query_one("#audit-table").focus()
    await pilot.press("enter")
    await _opened(pilot, "AuditEntryModal")


async def _archive_detail(pilot, office: Office) -> None:
    await _area(pilot, "rejestr", "f3", "ArchiveScreen")
    screen = pilot.app.screen
    await pilot.click("#number")
    await pilot.press("enter")
    await wait_until(pilot, lambda: screen.query_one("#results", DataTable).row_count >= 5, what="results")
    table = screen.query_one("#results", DataTable)
    table.focus()
    table.move_cursor(row=table.row_count - 1)  # the oldest: an answered incoming call with its recording
    await pilot.press("enter")
    await wait_until(
        pilot,
        lambda: type(pilot.app.screen).__name__ == "ArchiveDetailScreen" and pilot.app.screen.detail,
        what="the detail",
    )
    await wait_until(pilot, lambda: pilot.app.screen.query_one("#levels").display, what="the level sparkline")
    await pilot.pause()


async def _archive_listen(pilot, office: Office) -> None:
    pilot.app.store.listening.random = fixed_random
    await _archive_detail(pilot, office)
    await pilot.press("l")
    await wait_until(pilot, lambda: type(pilot.app.screen).__name__ == "PurposeModal", what="the purpose dialog")
    await pilot.press(*"skarga 12/2026", "enter")
    await _opened(pilot, "ListenLinkModal")


# -- the live desk ----------------------------------------------------------------------------------------


async def _resident(url: str) -> tuple[socketio.AsyncClient, int]:
    client = socketio.AsyncClient(reconnection=False)
    notice: asyncio.Future = asyncio.get_running_loop().create_future()
    client.on("notice", lambda data: notice.done() or notice.set_result(data), namespace="/resident")
    await client.connect(url, namespaces=["/resident"], auth={"lang": "pl"}, transports=["websocket"])
    data = await asyncio.wait_for(notice, 10)
    ack = await client.call("accept_notice", {"notice_id": data["notice_id"]}, namespace="/resident")
    return client, ack["chat_id"]


async def _colleague(pilot, url: str) -> socketio.AsyncClient:
    """piotr, online on the desk from his own socket (a transfer's target)."""
    session = await pilot.app.store.accounts.login("piotr", PASSWORD)
    client = socketio.AsyncClient(reconnection=False)
    await client.connect(url, namespaces=["/staff"], auth={"token": session.token}, transports=["websocket"])
    return client


async def _in_a_chat(pilot, office: Office, *, colleague: bool = False) -> list[socketio.AsyncClient]:
    app = pilot.app
    await sign_in(pilot, "anna", PASSWORD)
    await pilot.press("f2")
    await wait_until(pilot, lambda: app.desk is not None and app.desk.state == "online", what="online")
    clients = []
    if colleague:
        clients.append(await _colleague(pilot, office.url))
        await wait_until(pilot, lambda: app.desk.others_online(), what="piotr online")
    resident, chat_id = await _resident(office.url)
    clients.append(resident)
    await wait_until(pilot, lambda: app.desk.queue, what="the queued chat")
    await pilot.press("ctrl+g")
    await wait_until(pilot, lambda: chat_id in app.desk.chats, what="accepted")
    await resident.call(
        "send", {"text": "Dzień dobry, kiedy płacę podatek?", "client_msg_id": "m1"}, namespace="/resident"
    )
    await wait_until(pilot, lambda: len(app.desk.chats[chat_id].lines) >= 4, what="the resident's line")
    app.clear_notifications()
    return clients


def _chat_dialog(key: str, modal: str, *, colleague: bool = False):
    async def run(pilot, office: Office) -> None:
        clients = await _in_a_chat(pilot, office, colleague=colleague)
        await pilot.press(key)
        await _opened(pilot, modal)
        for client in clients:
            await client.disconnect()
        await pilot.pause(0.2)
        pilot.app.clear_notifications()
        await pilot.pause()

    return run


async def _offline_list(pilot, office: Office) -> None:
    await sign_in(pilot, "anna", PASSWORD)
    await pilot.press("f2")
    await wait_until(pilot, lambda: type(pilot.app.screen).__name__ == "ChatsScreen", what="the chats")
    await pilot.press("ctrl+o")
    await wait_until(pilot, lambda: type(pilot.app.screen).__name__ == "OfflineMessagesScreen", what="offline")
    await wait_until(pilot, lambda: pilot.app.screen.query_one(DataTable).row_count == len(OFFLINE), what="the list")
    pilot.app.clear_notifications()  # not _settle: the live desk's workers run on
    await pilot.pause(0.05)  # the columns take their content's width at the next refresh
    await pilot.pause()


async def _offline_answer(pilot, office: Office) -> None:
    await _offline_list(pilot, office)
    await pilot.press("a")
    await _opened(pilot, "FormModal")


#: id → (the dialog or screen shown, how it is opened)
SCENARIOS: dict[str, tuple[str, Callable[..., Awaitable[None]]]] = {
    "requests-register-FormModal": ("FormModal", _register_refused),
    "request-detail-RequestDetailScreen": ("RequestDetailScreen", _request_detail),
    "request-opinion-FormModal": ("FormModal", _step("iod", "opinions", ("o",))),
    "request-refuse-FormModal": ("FormModal", _step("dyrektor", "opinions_given", ("x",))),
    "request-extend-FormModal": ("FormModal", _step("dyrektor", "opinions", ("e",))),
    "request-withdraw-FormModal": ("FormModal", _step("rejestr", "opinions", ("w",))),
    "request-receipt-FormModal": ("FormModal", _step("rejestr", "chat", ("b",))),
    "request-grant-FormModal": ("FormModal", _step("dyrektor", "opinions_given", ("g",))),
    "request-end-session-FormModal": ("FormModal", _step("swiadek", "session", ("f",))),
    "request-content-ContentModal": ("ContentModal", _session_content),
    "request-listen-ListenLinkModal": ("ListenLinkModal", _session_listen),
    "request-copy-grant-FormModal": ("FormModal", _step("iod", "copy_linked", ("g",))),
    "request-copy-prepare-FormModal": ("FormModal", _step("iod", "copy_granted", ("p",))),
    "request-copy-confirm-FormModal": ("FormModal", _step("dyrektor", "copy_prepared", ("a",))),
    "request-copy-export-FormModal": ("FormModal", _step("iod", "copy_confirmed", ("k",))),
    "login-RecoveryCodesModal": ("RecoveryCodesModal", _recovery_codes),
    "retention-HoldModal": ("HoldModal", _hold_refused),
    "accounts-ConfirmModal": ("ConfirmModal", _confirm_disable),
    "accounts-PasswordModal": ("PasswordModal", _password_reset),
    "canned-DeleteCannedModal": ("DeleteCannedModal", _delete_canned),
    "audit-AuditEntryModal": ("AuditEntryModal", _audit_entry),
    "archive-ArchiveDetailScreen": ("ArchiveDetailScreen", _archive_detail),
    "archive-ListenLinkModal": ("ListenLinkModal", _archive_listen),
    "chat-CannedModal": ("CannedModal", _chat_dialog("ctrl+r", "CannedModal")),
    "chat-TransferModal": ("TransferModal", _chat_dialog("ctrl+t", "TransferModal", colleague=True)),
    "chat-CloseChatModal": ("CloseChatModal", _chat_dialog("f8", "CloseChatModal")),
    "offline-OfflineMessagesScreen": ("OfflineMessagesScreen", _offline_list),
    "offline-answer-FormModal": ("FormModal", _offline_answer),
}


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_dialog_and_sub_screen_at_80x24(snap_compare, office, scenario, lang) -> None:
    shown, opener = SCENARIOS[scenario]

    async def run_before(pilot) -> None:
        await opener(pilot, office)
        assert type(pilot.app.screen).__name__ == shown
        assert pilot.app.screen.size.height <= 24
        await settled(pilot)

    assert snap_compare(office.app, terminal_size=(80, 24), run_before=run_before)


# -- every dialog has its snapshot --------------------------------------------------------------------------

#: Dialogs with no snapshot here or in tests/test_i18n_tui.py's DIALOGS, and why.
EXEMPT: dict[str, str] = {
    # every dialog has its snapshot (here, or in tests/test_i18n_tui.py DIALOGS); add a reason here only for a
    # dialog that cannot be opened without an external system
}


def _modal_classes() -> set[str]:
    for info in pkgutil.walk_packages(tui.__path__, "tui."):
        importlib.import_module(info.name)
    found: set[str] = set()
    todo = [CimModal]
    while todo:
        cls = todo.pop()
        for sub in cls.__subclasses__():
            todo.append(sub)
            if sub.__module__.startswith("tui.") and not inspect.isabstract(sub):
                found.add(sub.__name__)
    return found


def test_every_cim_modal_has_a_snapshot() -> None:
    covered = {modal for _area_, _keys, modal in DIALOGS} | {shown for shown, _ in SCENARIOS.values()}
    modals = _modal_classes()
    assert {"FormModal", "HoldModal", "DeleteCannedModal", "CallNoteModal"} <= modals  # the walk finds them
    missing = modals - covered - set(EXEMPT)
    assert not missing, f"CimModal subclasses without a snapshot at 80x24 (add them to SCENARIOS): {sorted(missing)}"
    stale = set(EXEMPT) - modals
    assert not stale, f"exempt dialogs that no longer exist: {sorted(stale)}"
