"""Internal codes shown to staff as words in their language (store/i18n.py): roles, close categories, chat states."""

from __future__ import annotations

from typing import Iterable

from store.i18n import N_, _

#: Roles as the ordinance names them (/work/shared/GLOSSARY.md), gender-neutral where a person is meant.
ROLE_LABELS = {
    "consultant": N_("consultant"),
    "designated": N_("designated BOI employee"),
    "cim_manager": N_("CIM manager"),
    "it_admin": N_("system administrator"),
    "boi_director": N_("BOI director"),
    "dpo": N_("Data Protection Officer"),
    "department_head": N_("head of department"),
    "secretary": N_("City Secretary"),
}

#: How a consultant closes a chat (store.chats.CLOSE_CATEGORIES).
CLOSE_CATEGORY_LABELS = {
    "information_given": N_("information given"),
    "referred": N_("referred elsewhere"),
    "case_registered": N_("case registered"),
    "no_reply": N_("no reply from the resident"),
    "out_of_scope": N_("not a city hall matter"),
    "abusive": N_("abusive or spam"),
    "other": N_("other"),
}

#: A live chat's state on the consultant's desk (tui/live/desk.py LiveChat.status).
CHAT_STATUS_LABELS = {
    "active": N_("active"),
    "left": N_("the resident left"),
    "closed": N_("closed"),
}


def word(table: dict[str, str], code: object) -> str:
    """The code's word in the current staff language; an unknown code is shown as it is."""
    known = table.get(str(code))
    return _(known) if known else str(code).replace("_", " ")


def role_names(roles: Iterable[object]) -> str:
    """'consultant, CIM manager' (sorted by their words), or 'no roles'."""
    names = sorted(word(ROLE_LABELS, getattr(r, "value", r)) for r in roles)
    return ", ".join(names) or _("no roles")
