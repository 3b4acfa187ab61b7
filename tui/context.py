"""What every screen of the TUI is given: the store, the settings and the signed-in actor."""

from __future__ import annotations

from dataclasses import dataclass

from store import Store
from store.models import Actor
from store.settings import Settings


@dataclass
class TuiContext:
    store: Store
    settings: Settings
    actor: Actor
    #: The store session token (also used to authenticate on the server's /staff namespace).
    token: str
    #: Base URL of the chat server, e.g. http://127.0.0.1:8080 (None: live chats unavailable).
    server_url: str | None = None
