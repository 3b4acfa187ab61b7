"""The reply line of a live chat: announces sends and the start/stop of typing as messages."""

from __future__ import annotations

from textual import on
from textual.message import Message
from textual.timer import Timer
from textual.widgets import Input

from store.i18n import _

#: Seconds without a keystroke after which the consultant counts as no longer typing.
TYPING_IDLE = 3.0


class Composer(Input):
    """An Input for replies. Enter posts `Composer.Sent`; keystrokes post `Composer.Typing`."""

    class Sent(Message):
        def __init__(self, composer: "Composer", text: str) -> None:
            super().__init__()
            self.composer = composer
            self.text = text

    class Typing(Message):
        def __init__(self, composer: "Composer", active: bool) -> None:
            super().__init__()
            self.composer = composer
            self.active = active

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(placeholder=_("Type a reply; Enter sends"), id=id)
        self._typing = False
        self._idle_timer: Timer | None = None

    def set_draft(self, text: str) -> None:
        with self.prevent(Input.Changed):
            self.value = text
        self.cursor_position = len(text)
        self._stop_typing()

    @on(Input.Changed)
    def _changed(self, event: Input.Changed) -> None:
        if event.input is not self:
            return
        if self._idle_timer is not None:
            self._idle_timer.stop()
        if event.value and not self._typing:
            self._typing = True
            self.post_message(self.Typing(self, True))
        if not event.value:
            self._stop_typing()
        else:
            self._idle_timer = self.set_timer(TYPING_IDLE, self._stop_typing)

    def _stop_typing(self) -> None:
        if self._typing:
            self._typing = False
            self.post_message(self.Typing(self, False))

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        if event.input is not self:
            return
        event.stop()
        if event.value.strip():
            self.post_message(self.Sent(self, event.value))
