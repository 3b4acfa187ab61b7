"""`cim requests ...`: the register of residents' requests (§4, GDPR Art. 15) from the host's command line."""

from __future__ import annotations

import asyncio
import csv
import io
from pathlib import Path

import click

from cim.common import cli_actor, data_dir_option, fail, json_option, print_json, read_password_stdin, with_store
from store import plurals
from store.files import write_private
from store.i18n import N_, _, format_date, format_datetime
from store.requests import CHANNELS, DELIVERY_LABELS, KINDS, STATE_LABELS, AccessRequest

STATE_CHOICES = ["open", *STATE_LABELS]


def register(cli: click.Group) -> None:
    cli.add_command(requests)


@click.group()
def requests() -> None:
    """Residents' requests to listen to a recording or read a chat (§4) and GDPR Art. 15 copies."""


def _filters(f):
    f = click.option(
        "--state",
        type=click.Choice(STATE_CHOICES),
        help="Only requests in this state ('open': not closed or withdrawn).",
    )(f)
    f = click.option("--kind", type=click.Choice(KINDS), help="access (§4) or copy (GDPR Art. 15).")(f)
    f = click.option("--channel", type=click.Choice(CHANNELS), help="call or chat.")(f)
    f = click.option("--flagged", is_flag=True, help="Only requests due within the warning period or overdue.")(f)
    return f


def request_json(r: AccessRequest) -> dict:
    return {
        "number": r.number,
        "kind": r.kind,
        "state": r.state,
        "channel": r.channel,
        "asked": r.asked,
        "received_on": r.received_on.isoformat(),
        "due_on": r.due_on.isoformat(),
        "extended_until": r.extended_until.isoformat() if r.extended_until else None,
        "effective_due": r.effective_due.isoformat(),
        "due_soon": r.due_soon,
        "overdue": r.overdue,
        "requester_name": r.requester_name,
        "eligible": r.eligible,
        "ineligible_reason": r.ineligible_reason,
        "opinions": sorted(r.opinions_given),
        "decision": r.decision,
        "session_at": r.session_at.isoformat() if r.session_at else None,
        "conversation_reference": r.conversation_reference,
        "receipt_verified_at": r.receipt_verified_at.isoformat() if r.receipt_verified_at else None,
    }


@requests.command("list")
@_filters
@data_dir_option
@json_option
@with_store
async def requests_list(store, state, kind, channel, flagged, as_json):
    """List the request register, the earliest due first (! marks overdue, ~ due soon)."""
    found = await store.requests.list(
        cli_actor("requests"), state=state, kind=kind, channel=channel, flagged_only=flagged
    )
    if as_json:
        print_json({"requests": [request_json(r) for r in found]})
        return
    for r in found:
        flag = "!" if r.overdue else ("~" if r.due_soon else " ")
        click.echo(
            f"{flag} {r.number}  {r.kind:<6} {r.channel:<4} {_(r.state_label):<20} "
            + _("due {date}").format(date=format_date(r.effective_due))
            + f"  {r.requester_name}"
        )
    if not found:
        click.echo(_("no requests"))


@requests.command("show")
@click.argument("number")
@data_dir_option
@json_option
@with_store
async def requests_show(store, number, as_json):
    """Show one request, NUMBER such as CIM/2026/0001, with its conversations, opinions and letters."""
    d = await store.requests.get_by_number(cli_actor("requests"), number)
    doc = request_json(d.request) | {
        "conversations": [c.conversation_id for c in d.conversations],
        "opinions": [{"kind": o.kind, "by": o.staff_name, "verdict": o.verdict} for o in d.opinions],
        "attendees": [{"name": a.name, "present": a.present} for a in d.attendees],
        "case_mark": store.requests.case_mark(d.request),
        "delivery": d.request.delivery,
        "addressed_as": d.request.addressed_as,
        "letters": [
            {"kind": x.kind, "path": str(x.path), "sha256": x.sha256, "sealed": x.sealed, "sealed_by": x.sealed_by}
            for x in d.letters
        ],
        "next_actions": list(d.next_actions),
        # what the host account itself may do (store/requests/lifecycle.py allowed_actions)
        "allowed_actions": list(d.allowed_actions),
    }
    if as_json:
        print_json(doc)
        return
    for label, value in _show_lines(store, d):
        click.echo(f"{label}: {value}")


_KINDS = {"access": N_("§4 access (listen / read)"), "copy": N_("GDPR Art. 15 copy")}
_CHANNELS = {"call": N_("phone call"), "chat": N_("chat")}
_VERDICTS = {"favourable": N_("favourable"), "unfavourable": N_("unfavourable")}
_OPINIONS = {"dpo": N_("DPO"), "department": N_("Department")}
_ACTIONS = {
    "link": N_("link a conversation"),
    "unlink": N_("unlink a conversation"),
    "opinion": N_("opinion"),
    "grant": N_("grant"),
    "refuse": N_("refuse"),
    "extend": N_("extend the deadline"),
    "withdraw": N_("withdraw"),
    "start_session": N_("start the session"),
    "end_session": N_("end the session"),
    "close": N_("close"),
    "prepare_export": N_("prepare the copy"),
    "confirm_export": N_("confirm the copy"),
    "cancel_export": N_("cancel the copy"),
    "export": N_("export the copy"),
}


def _word(table: dict[str, str], code: str | None) -> str:
    return _(table[code]) if code in table else (code or "—")


def _show_lines(store, d) -> list[tuple[str, str]]:
    """`cim requests show` for people: labelled lines in the staff language, local dates (JSON stays as it is)."""
    r = d.request
    due = format_date(r.effective_due) + (_(" (overdue)") if r.overdue else (_(" (due soon)") if r.due_soon else ""))
    lines = [
        (_("Number"), r.number),
        (_("Case mark"), store.requests.case_mark(r)),
        (_("Kind"), _word(_KINDS, r.kind)),
        (_("Channel"), _word(_CHANNELS, r.channel)),
        (_("State"), _(r.state_label)),
        (_("Received"), format_date(r.received_on)),
        (_("Due"), due),
        (_("Requester"), r.requester_name),
        (_("Reply delivered by"), DELIVERY_LABELS.get(r.delivery, r.delivery)),
    ]
    if r.extended_until:
        lines.append((_("Extended to"), format_date(r.extended_until)))
    if not r.eligible:
        lines.append((_("Only refusal is possible"), r.ineligible_reason or ""))
    if r.decision:
        lines.append((_("Decision"), _(r.decision)))
    if r.session_at:
        lines.append((_("Session"), format_datetime(r.session_at, tz=store.settings.timezone)))
    lines.append((_("Conversations"), ", ".join(str(c.conversation_id) for c in d.conversations) or "—"))
    lines.append(
        (
            _("Opinions"),
            "; ".join(f"{_word(_OPINIONS, o.kind)}: {_word(_VERDICTS, o.verdict)} ({o.staff_name})" for o in d.opinions)
            or "—",
        )
    )
    if d.attendees:
        lines.append(
            (
                _("Attendees"),
                ", ".join(
                    a.name + ("" if a.present is None else (_(" (present)") if a.present else _(" (absent)")))
                    for a in d.attendees
                ),
            )
        )
    lines.append((_("Letters"), ", ".join(f"{x.kind} ({x.path})" for x in d.letters) or "—"))
    lines.append((_("Next steps"), ", ".join(_word(_ACTIONS, a) for a in d.next_actions) or "—"))
    return lines


@requests.command("export-csv")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@_filters
@click.option("--force", is_flag=True, help="Replace FILE if it exists.")
@data_dir_option
@with_store
async def requests_export_csv(store, file, state, kind, channel, flagged, force):
    """Write the request register as CSV to FILE (for the director), mode 0600; the export is audited."""
    if (file.exists() or file.is_symlink()) and not force:
        fail(_("{file} already exists; choose a new file name or use --force to replace it").format(file=file))
    text = await store.requests.register_csv(
        cli_actor("requests"), state=state, kind=kind, channel=channel, flagged_only=flagged
    )
    await asyncio.to_thread(write_private, file, text.encode("utf-8"), replace=force)
    rows = len(list(csv.reader(io.StringIO(text)))) - 1
    click.echo(_("wrote {requests} to {file}").format(requests=plurals.requests(rows), file=file))


@requests.command("blank-form")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Replace FILE if it exists.")
@data_dir_option
@with_store
async def requests_blank_form(store, file, force):
    """Write the §4.2 annex form, blank and printable (PDF, Polish), to FILE for residents to fill in."""
    from store.request_form import write_blank_form

    if (file.exists() or file.is_symlink()) and not force:
        fail(_("{file} already exists; choose a new file name or use --force to replace it").format(file=file))
    await write_blank_form(file, store.settings.office_name, store.settings.office_address, replace=force)
    click.echo(_("wrote the blank request form to {file}").format(file=file))


@requests.command("check-receipt")
@click.argument("reference")
@click.option("--code-stdin", is_flag=True, required=True, help="Read the chat's code from standard input.")
@data_dir_option
@json_option
@with_store
async def requests_check_receipt(store, reference, code_stdin, as_json):
    """Check a chat's receipt (REFERENCE such as CZ-2026-12-01-4F7K, its code on stdin): which chat it proves
    the requester took part in (§4.1). Wrong codes are audited and, after a few, refused for an hour."""
    chat_id = await store.resident_desk.verify_receipt(cli_actor("requests"), reference, read_password_stdin())
    if as_json:
        print_json({"valid": True, "conversation_id": chat_id})
        return
    click.echo(_("the receipt is valid: chat {chat_id}").format(chat_id=chat_id))
