"""Data-protection notices for the CIM manager: every chat and phone version, the current one marked, and new versions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Awaitable, Callable
from zoneinfo import ZoneInfo

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, DataTable, Footer, Header, Label, Static, TextArea

from store.i18n import N_, _, format_datetime
from store.models import Notice
from store.notices import MAX_NOTICE
from tui.context import TuiContext
from tui.screens.base import CimModal, CimScreen
from tui.widgets.dialog import FitsTheScreen, SubmitsInPlace
from tui.widgets.literal import literal

#: The ordinance's provision for each channel's notice.
PROVISION = {"chat": "§1.5", "phone": "§1.4"}
CHANNEL_TITLE = {"chat": N_("Chat"), "phone": N_("Phone")}

#: Saves {"pl": ..., "en": ...?} as a new version through the store and returns its rows; raises the store's errors.
SaveVersion = Callable[[dict[str, str]], Awaitable[list[Notice]]]


@dataclass(frozen=True)
class NoticeRow:
    """One row of the history table: a notice text and whether its version is the channel's current one."""

    notice: Notice
    current: bool


class NoticeVersionModal(FitsTheScreen, SubmitsInPlace, CimModal[list[Notice] | None]):
    """A new version of one channel's notice: Polish required (legally binding), English optional.

    A refusal (the dialog's own check or the store's) is shown in the dialog, both texts kept.
    """

    BINDINGS = [Binding("escape", "cancel", "Cancel"), Binding("ctrl+s", "save", "Save")]
    ERROR_FIELDS = (("polish", "notice-pl"), ("en notice", "notice-en"), ("notice text", "notice-pl"))

    # Own classes, not app.tcss's `.dialog` (whose rules would win over DEFAULT_CSS): both text areas
    # share what is left of an 80x24 terminal; the body scrolls when they do not fit.
    DEFAULT_CSS = """
    NoticeVersionModal #notice-dialog { width: 78; max-width: 100%; height: auto; max-height: 100%; padding: 0 1;
                                        border: thick $primary; background: $surface; }
    NoticeVersionModal .editor-title { text-style: bold; }
    NoticeVersionModal .notice-warning { color: $text-warning; text-style: bold; }
    NoticeVersionModal TextArea { height: 6; }
    NoticeVersionModal .editor-buttons { height: 1; }
    NoticeVersionModal .editor-buttons Button { margin-right: 2; }
    NoticeVersionModal .editor-help { color: $text-muted; }
    """

    def __init__(self, channel: str, save: SaveVersion, *, polish: str = "", english: str = "") -> None:
        super().__init__()
        self.channel = channel
        self.save = save
        self.initial = {"pl": polish, "en": english}

        async def submit(texts: dict[str, str]) -> list[Notice]:
            return await self.save(texts)

        self.submit = submit

    def compose(self) -> ComposeResult:
        with Vertical(id="notice-dialog"):
            heading = (
                _("New chat notice version ({provision})")
                if self.channel == "chat"
                else _("New phone notice version ({provision})")
            )
            yield Label(heading.format(provision=PROVISION[self.channel]), classes="editor-title")
            yield Static(
                _("Warning: the Polish text is the legally binding one; English is only a translation."),
                classes="notice-warning",
            )
            with VerticalScroll(classes="dialog-body"):
                yield Label(_("Polish (required):"))
                yield TextArea(self.initial["pl"], id="notice-pl", soft_wrap=True, tab_behavior="focus")
                yield Static("", id="err-notice-pl", classes="field-error")
                yield Label(_("English (optional; empty: residents choosing English see the Polish text):"))
                yield TextArea(self.initial["en"], id="notice-en", soft_wrap=True, tab_behavior="focus")
                yield Static("", id="err-notice-en", classes="field-error")
            yield Static("", id="dialog-error", classes="dialog-error")
            with Horizontal(classes="editor-buttons"):
                yield Button(_("Save"), id="save", variant="primary", compact=True)
                yield Button(_("Cancel"), id="cancel", compact=True)
            yield Static(
                _("Up to {n} characters each · Tab next · Ctrl+S save · Esc cancel").format(n=MAX_NOTICE),
                classes="editor-help",
            )

    def _texts(self) -> dict[str, str]:
        return {"pl": self.query_one("#notice-pl", TextArea).text, "en": self.query_one("#notice-en", TextArea).text}

    def _check(self, texts: dict[str, str]) -> tuple[str, str | None]:
        """The dialog's own check: the message and the field it is about ('' when the texts can be saved)."""
        if not texts["pl"].strip():
            return _("Enter the Polish text: it is the legally binding notice."), "notice-pl"
        too_long = {
            "pl": N_("The Polish text is {n} characters long; at most {limit} are allowed."),
            "en": N_("The English text is {n} characters long; at most {limit} are allowed."),
        }
        for lang in ("pl", "en"):
            if len(texts[lang]) > MAX_NOTICE:
                return _(too_long[lang]).format(n=len(texts[lang]), limit=MAX_NOTICE), f"notice-{lang}"
        if all(texts[lang].strip() == self.initial[lang].strip() for lang in texts):
            return _("The texts are the same as the current version; change them or press Esc."), None
        return "", None

    @on(Button.Pressed, "#save")
    def action_save(self) -> None:
        texts = self._texts()
        error, field = self._check(texts)
        if error:
            self.show_error(error, field)
            return
        # An empty translation is left out, so residents choosing English get the Polish text.
        self.finish({lang: text for lang, text in texts.items() if text.strip()})

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)


class NoticesScreen(CimScreen[None]):
    """The chat (§1.5) and phone (§1.4) notice history; new versions go through store.notices with the actor."""

    AUTO_FOCUS = "#notices-table"

    DEFAULT_CSS = """
    NoticesScreen #notices-table { height: 1fr; }
    NoticesScreen #notice-preview-box { height: 9; border-top: solid $primary; padding: 0 1; }
    """

    BINDINGS = [
        Binding("c", "new_version('chat')", "New chat notice"),
        Binding("p", "new_version('phone')", "New phone notice"),
    ]

    def __init__(self, ctx: TuiContext) -> None:
        super().__init__()
        self.ctx = ctx
        self.rows: list[NoticeRow] = []
        self.zone = ZoneInfo(ctx.settings.timezone)

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(_("Data-protection notices (the Polish text is legally binding)"), classes="section")
        yield DataTable(id="notices-table", cursor_type="row", zebra_stripes=True)
        with VerticalScroll(id="notice-preview-box"):
            yield Static("", id="notice-preview")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#notices-table", DataTable).add_columns(
            _("Channel"), _("Ver."), _("Lang"), _("Created"), _("Status")
        )
        self.reload()

    @work(exclusive=True, exit_on_error=False, group="load")
    async def reload(self, keep: tuple[str, int] | None = None) -> None:
        rows: list[NoticeRow] = []
        for channel in PROVISION:
            history = await self.ctx.store.notices.history(channel)
            latest = max((n.version for n in history), default=None)
            # newest first, the binding Polish text before its translation
            ordered = sorted(history, key=lambda n: (-n.version, n.lang != "pl", n.lang))
            rows += [NoticeRow(n, n.version == latest) for n in ordered]
        self.rows = rows
        table = self.query_one("#notices-table", DataTable)
        table.clear()
        for row in rows:
            n = row.notice
            status = Text(_("● current"), style="bold green") if row.current else Text(_("superseded"), style="dim")
            table.add_row(
                _(CHANNEL_TITLE[n.channel]),
                str(n.version),
                n.lang + (" " + _("(binding)") if n.legal else ""),
                format_datetime(n.created_at, tz=self.ctx.settings.timezone),
                status,
                key=str(n.id),
            )
        if keep is not None:
            wanted = next((i for i, r in enumerate(rows) if (r.notice.channel, r.notice.version) == keep), None)
            if wanted is not None:
                table.move_cursor(row=wanted)
        self._preview()

    def _current_row(self) -> NoticeRow | None:
        table = self.query_one("#notices-table", DataTable)
        if not self.rows or table.cursor_row is None or not 0 <= table.cursor_row < len(self.rows):
            return None
        return self.rows[table.cursor_row]

    @on(DataTable.RowHighlighted, "#notices-table")
    def _preview(self) -> None:
        row = self._current_row()
        preview = self.query_one("#notice-preview", Static)
        if row is None:
            preview.update(Text(_("No notice versions."), style="italic"))
            return
        n = row.notice
        heading = (
            _("Chat notice, version {version}, {lang}")
            if n.channel == "chat"
            else _("Phone notice, version {version}, {lang}")
        ).format(version=n.version, lang=n.lang)
        heading += " — " + (_("legally binding") if n.legal else _("translation"))
        preview.update(Text.assemble((heading, "bold"), "\n", literal(n.text)))

    def action_new_version(self, channel: str) -> None:
        self.new_version(channel)

    @work(exclusive=True, exit_on_error=False, group="edit")
    async def new_version(self, channel: str) -> None:
        current = [r.notice for r in self.rows if r.current and r.notice.channel == channel]
        texts = {n.lang: n.text for n in current}
        store, actor = self.ctx.store, self.ctx.actor
        saved = await self.app.push_screen_wait(
            NoticeVersionModal(
                channel,
                lambda wanted: store.notices.add_version(actor, channel, wanted),
                polish=texts.get("pl", ""),
                english=texts.get("en", ""),
            )
        )
        if not saved:
            return
        version = saved[0].version
        message = (
            _("The chat notice is now version {version}.")
            if channel == "chat"
            else _("The phone notice is now version {version}.")
        ).format(version=version)
        if channel == "phone":
            message += " " + _(
                "The PBX plays it after the IT administrator regenerates the prompts on the server"
                " (`cim notices export-phone`); ask them to."
            )
        self.notify(message, markup=False)
        self.reload((channel, version))
