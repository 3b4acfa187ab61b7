"""The areas of the TUI's navigation; each is shown only to staff holding one of its permissions.

An area is added here when its screen exists (no placeholders). A screen class is constructed as
`ScreenClass(ctx: TuiContext)`; it is imported lazily so the login screen starts fast.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from store.i18n import N_
from store.models import Actor
from store.policy import Permission, allowed


@dataclass(frozen=True)
class Area:
    key: str
    #: English source (N_); shown through store.i18n._ in the staff's language
    title: str
    binding: str
    permissions: tuple[Permission, ...]
    #: "module:ClassName" of the screen
    screen: str

    def visible_to(self, actor: Actor) -> bool:
        return any(allowed(actor, p) for p in self.permissions)

    def screen_class(self) -> type:
        module, _, name = self.screen.partition(":")
        return getattr(importlib.import_module(module), name)


AREAS: list[Area] = [  # in the order of their keys, as the home screen and the footer list them
    Area("chats", N_("Live chats"), "f2", (Permission.HANDLE_CHATS,), "tui.screens.chats:ChatsScreen"),
    Area(
        "supervision",
        N_("Live chat supervision"),
        "",
        (Permission.SUPERVISE_CHATS,),
        "tui.screens.supervision:SupervisionScreen",
    ),
    Area("traffic", N_("Phone traffic"), "", (Permission.VIEW_TRAFFIC,), "tui.screens.traffic:TrafficScreen"),
    Area("callbacks", N_("Callbacks"), "", (Permission.HANDLE_CALLBACKS,), "tui.screens.callbacks:CallbacksScreen"),
    Area("archive", N_("Archive"), "f3", (Permission.SEARCH_ARCHIVE,), "tui.screens.archive:ArchiveScreen"),
    Area(
        "requests",
        N_("Requests"),
        "f4",
        (
            Permission.VIEW_REQUESTS,
            Permission.GIVE_DPO_OPINION,
            Permission.GIVE_DEPARTMENT_OPINION,
            Permission.HANDLE_COPY_REQUESTS,
        ),
        "tui.screens.requests:RequestsScreen",
    ),
    Area(
        "retention",
        N_("Retention and holds"),
        "f5",
        (Permission.MANAGE_HOLDS, Permission.RUN_PURGE),
        "tui.screens.retention:RetentionScreen",
    ),
    Area("audit", N_("Audit log"), "f6", (Permission.READ_AUDIT,), "tui.screens.audit:AuditScreen"),
    Area("reports", N_("Supervision reports"), "f7", (Permission.VIEW_REPORTS,), "tui.screens.reports:ReportsScreen"),
    Area("service", N_("Service report"), "f8", (Permission.VIEW_REPORTS,), "tui.screens.service:ServiceScreen"),
    Area("accounts", N_("Staff accounts"), "f9", (Permission.MANAGE_ACCOUNTS,), "tui.screens.accounts:AccountsScreen"),
    Area("canned", N_("Canned responses"), "f10", (Permission.MANAGE_CANNED,), "tui.screens.canned:CannedScreen"),
    Area("notices", N_("Notices"), "f11", (Permission.MANAGE_NOTICES,), "tui.screens.notices:NoticesScreen"),
    # the chat desk's topics, skills and capacity (README "Topics, routing and capacity")
    Area("desk", N_("Topics and desk"), "", (Permission.MANAGE_CANNED,), "tui.screens.desk:DeskScreen"),
]


def areas_for(actor: Actor) -> list[Area]:
    return [a for a in AREAS if a.visible_to(actor)]
