"""The TUI's own wording of store refusals whose sentence is written for the CLI.

The store's message for a missing department names a `cim` command (`cim departments add`), which a staff
member working in the TUI over SSH cannot run. The store marks such a refusal with a `refusal_reason`; the
TUI branches on that code (never on the translated text) and says what to do in the TUI instead.
"""

from __future__ import annotations

from store.errors import CimError
from store.i18n import _
from store.models import Actor
from store.policy import Permission, allowed

#: store/accounts.py and store/desk.py `_department_id`: the department code typed does not exist.
DEPARTMENT_MISSING = "department_missing"


def department_missing(exc: CimError, actor: Actor | None, known: list[str] | None = None) -> str:
    """The refusal of an unknown department code, with the way to add one for whoever may (F9, N), or who can.

    `known`: the department codes that exist, named in the sentence (none yet: said so)."""
    code = exc.params.get("code", "")
    if actor is None or allowed(actor, Permission.MANAGE_ACCOUNTS):
        text = _("Department {code!r} does not exist; add it first with N (New department) in F9.")
    else:
        text = _("Department {code!r} does not exist; a system administrator adds departments (F9, N).")
    text = text.format(code=code)
    if known is not None:
        text += " " + _("Departments: {codes}.").format(codes=", ".join(known) if known else _("none yet"))
    return text


def is_department_missing(exc: CimError) -> bool:
    return exc.refusal_reason == DEPARTMENT_MISSING
