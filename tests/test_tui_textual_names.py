"""Screens do not shadow what Textual's DOMNode offers under the same name: the supervision screen's
`watch` (Textual's reactive watch, used by data binding) and the desk's `toggle` action (Textual's
`toggle('attribute')`) stay Textual's, and the screens' own actions still work under their own names."""

from __future__ import annotations

from store.chats import LANGS  # noqa: F401  (the store's chat module loads before the TUI's)
from tests.fixtures.store import PASSWORD, SYSTEM
from tests.fixtures.tui import SIZE, sign_in, wait_until
from tests.test_supervision_tui import open_supervision


async def test_the_supervision_screen_keeps_textuals_watch(tui_app, make_staff, chat_server) -> None:
    await make_staff("kierownik", "cim_manager")
    app = tui_app(chat_server.url)
    async with app.run_test(size=SIZE) as pilot:
        await sign_in(pilot, "kierownik", PASSWORD)
        screen = await open_supervision(pilot, app)
        seen: list[str] = []

        def told(theme: str) -> None:
            seen.append(theme)

        screen.watch(app, "theme", told, init=False)
        other = next(name for name in app.available_themes if name != app.theme)
        app.theme = other
        await wait_until(pilot, lambda: seen == [other], what="the theme change told to the watcher")
        assert not [w for w in screen.workers if w.group == "watch"]  # no chat watching was started
        await pilot.pause(0.1)


async def test_o_on_the_desk_screen_stops_offering_a_topic_and_toggle_stays_textuals(
    tui_app, make_staff, store
) -> None:
    await make_staff("maria", "cim_manager")
    await store.desk.seed_default_topics(SYSTEM)
    first = (await store.desk.topics())[0]
    assert first.active
    app = tui_app()
    async with app.run_test(size=SIZE) as pilot:
        await sign_in(pilot, "maria", PASSWORD)
        from tui.screens.desk import DeskScreen

        await app.push_screen(DeskScreen(app.ctx))
        screen = await wait_until(pilot, lambda: isinstance(app.screen, DeskScreen) and app.screen, what="the desk")
        await wait_until(pilot, lambda: screen.query_one("#topics").row_count > 0, what="the topics listed")
        await pilot.press("o")

        async def offered() -> bool:
            return (await store.desk.topic(first.id)).active

        for _ in range(100):
            if not await offered():
                break
            await pilot.pause(0.05)
        assert not await offered()
        screen.styles_toggled = False  # a plain attribute: Textual's own toggle('attribute') action flips it
        await screen.run_action("toggle('styles_toggled')")
        assert screen.styles_toggled is True
        await pilot.pause(0.1)
