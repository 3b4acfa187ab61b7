"""The home screen after sign-in: who is signed in and the areas their roles open."""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import Footer, Header, Label, OptionList, Static
from textual.widgets.option_list import Option

from store.i18n import _
from tui.areas import Area
from tui.context import TuiContext
from tui.screens.base import CimScreen
from tui.words import role_names


class HomeScreen(CimScreen[None]):
    """Navigation built from the areas the actor may use (tui/areas.py); posts `HomeScreen.OpenArea`."""

    AUTO_FOCUS = "#areas"

    class OpenArea(Message):
        def __init__(self, key: str) -> None:
            super().__init__()
            self.key = key

    def __init__(self, ctx: TuiContext, areas: list[Area], *, banner: str = "") -> None:
        super().__init__()
        self.ctx = ctx
        self.areas = areas
        self.banner = banner

    def compose(self) -> ComposeResult:
        actor = self.ctx.actor
        yield Header()
        with Vertical(id="home"):
            # a Static, not a Label: a long list of roles (Polish words are longer) wraps instead of being cut
            yield Static(
                Text.assemble(_("Signed in as "), (actor.name, "bold"), "  ·  ", _("roles: "), role_names(actor.roles)),
                id="whoami",
            )
            if self.areas:
                yield Label(_("Your areas (Enter opens, or press the key):"), classes="muted")
                yield OptionList(
                    *[
                        Option(Text.assemble((f"{a.binding.upper():>4}  ", "bold"), _(a.title)), id=a.key)
                        for a in self.areas
                    ],
                    id="areas",
                )
            else:
                yield Static(
                    _(
                        "Your roles do not open any area of this terminal yet. "
                        "Ask the IT administrators if this is a mistake."
                    ),
                    id="no-areas",
                )
            if self.banner:
                yield Static(self.banner, id="banner")
        yield Footer()

    @on(OptionList.OptionSelected, "#areas")
    def _open(self, event: OptionList.OptionSelected) -> None:
        self.post_message(self.OpenArea(str(event.option.id)))
