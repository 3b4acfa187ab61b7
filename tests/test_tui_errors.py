"""Loud TUI errors: a failing worker on any screen is told to the person and logged, never lost."""

from __future__ import annotations

import importlib
import inspect
import logging
import pkgutil

from textual.screen import Screen

import tui
from store.models import Role
from tests.fixtures.store import PASSWORD
from tests.fixtures.tui import SIZE, notifications, sign_in, wait_until
from tui.areas import AREAS
from tui.screens.base import CimModal, CimScreen
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


def test_every_screen_and_modal_of_the_tui_reports_worker_errors() -> None:
    classes = screen_classes()
    names = {cls.__name__ for cls in classes}
    assert {"LoginScreen", "HomeScreen", "ChatsScreen", "RequestDetailScreen", "FormModal"} <= names, names
    uncovered = [f"{cls.__module__}.{cls.__qualname__}" for cls in classes
                 if cls not in (CimScreen, CimModal) and not issubclass(cls, (CimScreen, CimModal))]
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
            await wait_until(pilot, lambda: any(expected in m for m in notifications(app)),
                             what=f"the failure notice of {area.key}")
            assert app.screen is screen  # the screen stays; the person can go on
            assert any(f"awaria w {area.key}" in str(r.exc_info[1]) for r in caplog.records if r.exc_info), area.key
