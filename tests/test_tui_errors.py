"""Loud TUI errors: a failing worker on any screen is told to the person and logged, never lost."""

from __future__ import annotations

import importlib
import inspect
import logging
import pkgutil

import pytest
from textual.screen import Screen
from textual.worker import WorkerState

import tui
from store.errors import NotPermitted
from store.models import Role
from tests.fixtures.audit_log import audit_log
from tests.fixtures.store import PASSWORD
from tests.fixtures.tui import SIZE, notifications, sign_in, wait_until
from tui.areas import AREAS
from tui.screens.base import CimModal, CimScreen, set_failure_title
from tui.widgets.worker_errors import ReportsWorkerErrors


def screen_classes() -> list[type]:
    """Every Screen subclass defined in the tui package (screens, modals, forms)."""
    found = []
    for module_info in pkgutil.walk_packages(tui.__path__, "tui."):
        module = importlib.import_module(module_info.name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, Screen) and cls.__module__ == module.__name__:
                found.append(cls)
    return found


def test_every_area_screen_derives_from_the_base() -> None:
    assert AREAS
    for area in AREAS:
        assert issubclass(area.screen_class(), CimScreen), area.screen


#: Textual's own screens, subclassed only to reword them: their workers are Textual's, which handle their errors.
TEXTUAL_OWN = {"tui.widgets.command_palette.StaffCommandPalette"}


def test_every_screen_and_modal_of_the_tui_reports_worker_errors() -> None:
    classes = [cls for cls in screen_classes() if f"{cls.__module__}.{cls.__qualname__}" not in TEXTUAL_OWN]
    names = {cls.__name__ for cls in classes}
    assert {"LoginScreen", "HomeScreen", "ChatsScreen", "RequestDetailScreen", "FormModal"} <= names, names
    uncovered = [
        f"{cls.__module__}.{cls.__qualname__}"
        for cls in classes
        if cls not in (CimScreen, CimModal) and not issubclass(cls, (CimScreen, CimModal))
    ]
    assert not uncovered, f"screens without the worker-error base (tui/screens/base.py): {uncovered}"
    assert all(issubclass(cls, ReportsWorkerErrors) for cls in classes)


async def test_a_failing_worker_is_told_and_logged_in_every_area(tui_app, make_staff, caplog) -> None:
    await make_staff("wszystko", *Role, department="OC")  # every role: every area is open to them
    app = tui_app()
    caplog.set_level(logging.ERROR, logger="tui.widgets.worker_errors")
    async with app.run_test(size=SIZE) as pilot:
        await sign_in(pilot, "wszystko", PASSWORD)
        for area in AREAS:
            if area.binding:
                await pilot.press(area.binding)
            else:  # areas without a function key are opened from the home list or the command palette
                await app.run_action(f"open_area('{area.key}')")
            await wait_until(pilot, lambda: type(app.screen) is area.screen_class(), what=f"the {area.key} screen")
            screen = app.screen

            async def boom(key: str = area.key) -> None:
                raise RuntimeError(f"awaria w {key}")

            screen.run_worker(boom(), exit_on_error=False)
            expected = f"Unexpected error: RuntimeError: awaria w {area.key} (details are in the log)"
            await wait_until(
                pilot, lambda: any(expected in m for m in notifications(app)), what=f"the failure notice of {area.key}"
            )
            assert app.screen is screen  # the screen stays; the person can go on
            assert any(f"awaria w {area.key}" in str(r.exc_info[1]) for r in caplog.records if r.exc_info), area.key


# -- the modals the areas open ------------------------------------------------------------------------

#: (area, the action on its screen that opens a modal, the modal's class): a modal's own failing worker
#: (a form's save, a confirmation's follow-up) is posted to the modal, not to the screen under it.
MODALS_OF_AREAS = [
    ("accounts", "add", "NewStaffModal"),
    ("accounts", "add_department", "FormModal"),
    ("requests", "new", "FormModal"),
    ("retention", "add_hold", "HoldModal"),
    ("retention", "purge", "ConfirmModal"),
    ("canned", "add", "CannedEditModal"),
    ("notices", "new_version('chat')", "NoticeVersionModal"),
    ("desk", "add", "TopicModal"),
]


async def test_a_failing_worker_of_a_modal_opened_from_an_area_is_told_and_logged(tui_app, make_staff, caplog) -> None:
    await make_staff("wszystko", *Role, department="OC")
    app = tui_app()
    caplog.set_level(logging.ERROR, logger="tui.widgets.worker_errors")
    by_key = {a.key: a for a in AREAS}
    async with app.run_test(size=SIZE) as pilot:
        await sign_in(pilot, "wszystko", PASSWORD)
        for key, action, modal_name in MODALS_OF_AREAS:
            area = by_key[key]
            await app.run_action(f"open_area('{key}')")
            await wait_until(pilot, lambda: type(app.screen) is area.screen_class(), what=f"the {key} screen")
            await app.screen.run_action(action)
            await wait_until(pilot, lambda: type(app.screen).__name__ == modal_name, what=f"{modal_name} of {key}")
            modal = app.screen
            assert isinstance(modal, CimModal)

            async def boom(where: str = f"{key}/{modal_name}") -> None:
                raise KeyError(where)

            modal.run_worker(boom(), exit_on_error=False)
            await wait_until(
                pilot,
                lambda: any(f"KeyError: '{key}/{modal_name}'" in m for m in notifications(app)),
                what=f"the failure notice of {modal_name}",
            )
            assert app.screen is modal  # what was typed is still there
            assert any(
                r.exc_info and isinstance(r.exc_info[1], KeyError) and r.exc_info[1].args == (f"{key}/{modal_name}",)
                for r in caplog.records
            ), modal_name
            modal.dismiss(None)
            await wait_until(pilot, lambda: type(app.screen) is area.screen_class(), what=f"back on {key}")


# -- the notice itself: a refusal in its own words, under what failed -----------------------------------


def _notices(app) -> list[tuple[str, str, str]]:
    return [(n.title, n.message, n.severity) for n in app._notifications]


async def test_a_refusal_is_told_in_its_own_words_under_the_title_of_what_failed(tui_app, make_staff, caplog) -> None:
    from tui.screens.archive import ArchiveDetailScreen

    await make_staff("kierownik", "cim_manager")
    app = tui_app()
    caplog.set_level(logging.INFO, logger="tui.widgets.worker_errors")
    async with app.run_test(size=SIZE) as pilot:
        await sign_in(pilot, "kierownik", PASSWORD)
        # a conversation that does not exist: the store's NotFound, through @failure_title(N_("Cannot open"))
        await app.push_screen(ArchiveDetailScreen(app.ctx, 987654))
        found = await wait_until(
            pilot, lambda: [n for n in _notices(app) if n[0] == "Cannot open"], what="the refusal notice"
        )
        title, message, severity = found[0]
        assert severity == "error" and "987654" in message and "Unexpected" not in message, found
        assert message in str(app.screen.query_one("#detail").render())  # and where the conversation would be
        assert isinstance(app.screen, ArchiveDetailScreen)
        refusals = [r for r in caplog.records if r.name == "tui.widgets.worker_errors"]
        assert refusals and all(r.levelno == logging.INFO and not r.exc_info for r in refusals)  # a refusal is no fault

        # a title set while the worker runs (tui/screens/requests.py _step, accounts' enable/disable)
        async def refused() -> None:
            set_failure_title("Cannot frobnicate")
            raise NotPermitted("you may not frobnicate")

        app.screen.run_worker(refused(), exit_on_error=False)
        await wait_until(
            pilot,
            lambda: ("Cannot frobnicate", "you may not frobnicate", "error") in _notices(app),
            what="the titled refusal",
        )
        # a worker that names nothing: "Not done"
        app.screen.run_worker(_raise(NotPermitted("not today")), exit_on_error=False)
        await wait_until(pilot, lambda: ("Not done", "not today", "error") in _notices(app), what="the plain refusal")


async def _raise(error: BaseException) -> None:
    raise error


@pytest.mark.staff_lang("pl")
async def test_the_unexpected_error_is_told_in_polish_by_default(tui_app, make_staff) -> None:
    await make_staff("kierownik", "cim_manager")
    app = tui_app()
    async with app.run_test(size=SIZE) as pilot:
        await sign_in(pilot, "kierownik", PASSWORD)
        app.screen.run_worker(_raise(ZeroDivisionError("division by zero")), exit_on_error=False)
        await wait_until(
            pilot,
            lambda: (
                (
                    "Nie wykonano",
                    "Nieoczekiwany błąd: ZeroDivisionError: division by zero (szczegóły w dzienniku).",
                    "error",
                )
                in _notices(app)
            ),
            what="the Polish notice",
        )


# -- real faults of the real store ----------------------------------------------------------------------


async def _read_only(store, on: bool) -> None:
    """SQLite's own refusal to write (PRAGMA query_only) on the store's writer: every write then fails with
    sqlite3.OperationalError, as it would on a read-only or full disk; no CIM code is replaced."""
    await store.db.writer.execute(f"PRAGMA query_only = {'ON' if on else 'OFF'}")


async def test_a_database_that_cannot_write_fails_an_archive_search_loudly_and_the_ui_goes_on(
    tui_app, store, make_staff, caplog
) -> None:
    from tui.screens.archive import ArchiveScreen

    await make_staff("kierownik", "cim_manager")
    app = tui_app()
    caplog.set_level(logging.ERROR, logger="tui.widgets.worker_errors")
    async with app.run_test(size=SIZE) as pilot:
        await sign_in(pilot, "kierownik", PASSWORD)
        await pilot.press("f3")
        await wait_until(pilot, lambda: isinstance(app.screen, ArchiveScreen), what="the archive")
        await _read_only(store, True)  # the search's audit entry (written before any result) cannot be written
        await app.screen.run_action("search")
        shown = await wait_until(
            pilot, lambda: [n for n in _notices(app) if "OperationalError" in n[1]], what="the failed search's notice"
        )
        title, message, severity = shown[0]
        assert (title, severity) == ("Cannot search", "error")
        assert message == (
            "Unexpected error: OperationalError: attempt to write a readonly database (details are in the log)."
        )
        logged = [r for r in caplog.records if r.exc_info and "readonly" in str(r.exc_info[1])]
        assert logged and "ArchiveScreen" in logged[0].getMessage(), [r.getMessage() for r in caplog.records]
        assert "page 1" not in str(app.screen.query_one("#archive-status").render())  # no page was shown
        assert app.is_running and isinstance(app.screen, ArchiveScreen)

        await _read_only(store, False)  # the disk is back: the same screen searches again
        before = await audit_log(store, action="archive.search")
        await app.screen.run_action("search")
        await wait_until(
            pilot,
            lambda: "page 1" in str(app.screen.query_one("#archive-status").render()),
            what="a search after the fault",
        )
        after = await audit_log(store, action="archive.search")
        assert len(after) == len(before) + 1
        await pilot.press("f1")  # and the rest of the UI still answers
        await wait_until(pilot, lambda: type(app.screen).__name__ == "HomeScreen", what="home")


async def test_a_database_that_cannot_write_keeps_the_canned_response_form_open_with_the_text(
    tui_app, store, make_staff, caplog
) -> None:
    from textual.widgets import Input, TextArea

    from tui.screens.canned import CannedEditModal, CannedScreen

    manager = await make_staff("kierownik", "cim_manager")
    app = tui_app()
    caplog.set_level(logging.ERROR, logger="tui.widgets.worker_errors")
    async with app.run_test(size=SIZE) as pilot:
        await sign_in(pilot, "kierownik", PASSWORD)
        await pilot.press("f10")
        await wait_until(pilot, lambda: isinstance(app.screen, CannedScreen), what="the canned responses")
        await pilot.press("a")
        modal = await wait_until(
            pilot, lambda: isinstance(app.screen, CannedEditModal) and app.screen, what="the editor"
        )
        modal.query_one("#canned-title", Input).value = "Godziny"
        modal.query_one("#canned-text", TextArea).text = "Pn–Pt 7:30–15:30."
        await _read_only(store, True)
        await pilot.press("ctrl+s")
        await wait_until(
            pilot,
            lambda: any("OperationalError: attempt to write a readonly database" in n[1] for n in _notices(app)),
            what="the failed save's notice",
        )
        assert app.screen is modal  # nothing typed is lost
        assert modal.query_one("#canned-title", Input).value == "Godziny"
        assert modal.query_one("#canned-text", TextArea).text == "Pn–Pt 7:30–15:30."
        assert any(r.exc_info and "CannedEditModal" in r.getMessage() for r in caplog.records)
        assert await store.chats.canned(manager.as_actor()) == []

        await _read_only(store, False)
        await pilot.press("ctrl+s")  # the same form saves once the database writes again
        await wait_until(pilot, lambda: isinstance(app.screen, CannedScreen), what="the list after saving")
        assert [c.title for c in await store.chats.canned(manager.as_actor())] == ["Godziny"]


async def test_a_broken_read_on_the_callbacks_screen_is_told_and_the_next_refresh_works(
    tui_app, store, make_staff, caplog, monkeypatch
) -> None:
    import sqlite3

    from tui.screens.callbacks import CallbacksScreen

    await make_staff("wszystko", *Role, department="OC")
    app = tui_app()
    caplog.set_level(logging.ERROR, logger="tui.widgets.worker_errors")
    real_worklist = store.callbacks.worklist

    async def corrupt(*args, **kwargs):  # the fault injected: what SQLite says of a damaged file
        raise sqlite3.DatabaseError("database disk image is malformed")

    async with app.run_test(size=SIZE) as pilot:
        await sign_in(pilot, "wszystko", PASSWORD)
        monkeypatch.setattr(store.callbacks, "worklist", corrupt)
        await app.run_action("open_area('callbacks')")
        await wait_until(pilot, lambda: isinstance(app.screen, CallbacksScreen), what="the callbacks")
        await wait_until(
            pilot,
            lambda: (
                (
                    "Callbacks",
                    "Unexpected error: DatabaseError: database disk image is malformed (details are in the log).",
                    "error",
                )
                in _notices(app)
            ),
            what="the failed list's notice",
        )
        assert any(r.exc_info and isinstance(r.exc_info[1], sqlite3.DatabaseError) for r in caplog.records)
        monkeypatch.setattr(store.callbacks, "worklist", real_worklist)
        count = len(_notices(app))
        worker = app.screen.load()  # the same screen lists again
        await worker.wait()
        await pilot.pause()
        assert worker.state == WorkerState.SUCCESS and app.screen.items == []
        assert not [n for n in _notices(app)[count:] if n[2] == "error"]
        assert app.is_running and isinstance(app.screen, CallbacksScreen)


# -- the staff language beyond the screens: the command palette and `cim demo`'s banner (issue 16) --------


@pytest.mark.staff_lang("pl")
async def test_the_command_palette_speaks_polish_textuals_own_entries_too(tui_app, make_staff) -> None:
    from textual.app import App
    from textual.command import CommandInput, CommandPalette

    await make_staff("kierownik", "cim_manager")
    app = tui_app()
    async with app.run_test(size=SIZE) as pilot:
        await sign_in(pilot, "kierownik", PASSWORD)
        textual_own = list(App.get_system_commands(app, app.screen))  # Textual's entries, in its English
        assert {c.title for c in textual_own} >= {"Theme", "Quit", "Keys", "Screenshot"}
        shown = list(app.get_system_commands(app.screen))
        titles = [c.title for c in shown]
        assert {"Motyw", "Zakończ", "Klawisze", "Zrzut ekranu", "Wyloguj", "Moje konto"} <= set(titles), titles
        for english in textual_own:  # every entry Textual yields today has its Polish words (tui/app.py)
            assert english.title not in titles and english.help not in [c.help for c in shown], english
        await pilot.press("ctrl+p")
        palette = await wait_until(
            pilot, lambda: isinstance(app.screen, CommandPalette) and app.screen, what="the command palette"
        )
        assert palette.query_one(CommandInput).placeholder == "Szukaj polecenia…"
        await pilot.press("escape")
        await wait_until(pilot, lambda: type(app.screen).__name__ == "HomeScreen", what="home again")


@pytest.mark.staff_lang(None)
def test_the_demo_banner_is_polish_by_default(settings) -> None:
    from cim.commands.tui import demo_banner

    lines = demo_banner(settings, "http://127.0.0.1:8080", created=True)
    text = "\n".join(lines)
    assert lines[0] == f"Demo CIM — katalog danych: {settings.data_dir} (nowy)", lines[0]
    assert "Czat dla mieszkańców: http://127.0.0.1:8080/" in text
    assert "Konta demonstracyjne (użytkownik / hasło / role):" in text
    anna = next(line for line in lines if line.strip().startswith("anna"))
    assert "demo-1-szczecin" in anna and "konsultant" in anna and "consultant" not in anna
    assert not any(code in text for code in ("cim_manager", "boi_director", "it_admin")), text
    assert "Uruchamianie interfejsu pracowników" in text
