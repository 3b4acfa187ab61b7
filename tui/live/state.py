"""The live connection's states and how the status line shows them."""

from __future__ import annotations

from enum import StrEnum

from store.i18n import N_


class ConnectionState(StrEnum):
    OFFLINE = "offline"  # no server configured, or stopped
    CONNECTING = "connecting"
    ONLINE = "online"
    RECONNECTING = "reconnecting"
    REFUSED = "refused"  # the server refused our session: sign in again


#: What each connection state looks like in the status line.
STATE_LABELS = {
    ConnectionState.OFFLINE: N_("○ offline"),
    ConnectionState.CONNECTING: N_("◌ connecting…"),
    ConnectionState.ONLINE: N_("● connected"),
    ConnectionState.RECONNECTING: N_("◌ reconnecting…"),
    ConnectionState.REFUSED: N_("✕ refused: sign in again"),
}
