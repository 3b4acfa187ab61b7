"""`cim users ...` and `cim departments ...`: staff accounts, roles and departments."""

from __future__ import annotations

import sys

import click

from cim.common import cli_actor, data_dir_option, fail, json_option, print_json, read_password_stdin, with_store
from store.i18n import _
from store.models import Role

ROLE_HELP = "Role (repeatable): " + ", ".join(r.value for r in Role) + "."


def register(cli: click.Group) -> None:
    cli.add_command(users)
    cli.add_command(departments)


@click.group()
def users() -> None:
    """Staff accounts: add, list, disable, enable, passwd, roles, signature, display-name, verify, mfa-reset."""


def _staff_json(s) -> dict:
    return {
        "id": s.id,
        "name": s.name,
        "full_name": s.full_name,
        "job_title": s.job_title,
        "roles": sorted(r.value for r in s.roles),
        "department": s.department,
        "disabled": s.disabled,
        "extensions": list(s.extensions),
        "source": s.source,
        "second_factor": s.second_factor,
        "must_change_password": s.must_change_password,
    }


@users.command("add")
@click.argument("name")
@click.option("--role", "roles", multiple=True, required=True, help=ROLE_HELP)
@click.option("--department", help="Department code (see `cim departments list`).")
@click.option("--full-name", default="", help="Full name shown in letters and lists.")
@click.option("--title", "job_title", default="", help="Title printed under the name on letters this person signs.")
@click.option("--extension", "extensions", multiple=True, help="PBX extension of this person (repeatable).")
@click.option("--password-stdin", is_flag=True, required=True, help="Read the password from standard input.")
@click.option("--temporary", is_flag=True, help="A temporary password: the person must change it at first sign-in.")
@data_dir_option
@json_option
@with_store
async def users_add(
    store, name, roles, department, full_name, job_title, extensions, password_stdin, temporary, as_json
):
    """Add a local staff member NAME with one or more roles; the password (12+ characters) is read from stdin."""
    staff = await store.accounts.add_staff(
        cli_actor("users"),
        name,
        roles,
        read_password_stdin(),
        department=department,
        full_name=full_name,
        extensions=extensions,
        job_title=job_title,
        temporary=temporary,
    )
    if as_json:
        print_json(_staff_json(staff))
    else:
        click.echo(
            _("added {name} ({roles})").format(name=staff.name, roles=", ".join(sorted(r.value for r in staff.roles)))
        )


@users.command("list")
@data_dir_option
@json_option
@with_store
async def users_list(store, as_json):
    """List staff accounts with their roles."""
    staff = await store.accounts.list_staff()
    if as_json:
        print_json([_staff_json(s) for s in staff])
        return
    for s in staff:
        state = _(" (disabled)") if s.disabled else ""
        dept = f" [{s.department}]" if s.department else ""
        roles = ", ".join(sorted(r.value for r in s.roles)) or _("no mapped role")
        factor = " +totp" if s.second_factor == "active" else ""
        click.echo(f"{s.name}{dept}: {roles} ({s.source}{factor}){state}")


@users.command("disable")
@click.argument("name")
@data_dir_option
@with_store
async def users_disable(store, name):
    """Disable NAME's account and end their sessions."""
    await store.accounts.set_disabled(cli_actor("users"), name, True)
    click.echo(_("disabled {name}").format(name=name))


@users.command("enable")
@click.argument("name")
@data_dir_option
@with_store
async def users_enable(store, name):
    """Enable NAME's account again."""
    await store.accounts.set_disabled(cli_actor("users"), name, False)
    click.echo(_("enabled {name}").format(name=name))


@users.command("passwd")
@click.argument("name")
@click.option("--password-stdin", is_flag=True, required=True, help="Read the new password from standard input.")
@click.option("--temporary", is_flag=True, help="The person must change it at their next sign-in.")
@click.option(
    "--self",
    "as_self",
    is_flag=True,
    help="NAME changes their own password: stdin holds the current password, then the new one, one a line.",
)
@data_dir_option
@with_store
async def users_passwd(store, name, password_stdin, temporary, as_self):
    """Set NAME's local password (read from stdin); their sessions end. New passwords need 12+ characters."""
    if as_self:
        lines = sys.stdin.read().splitlines()
        if len(lines) != 2:
            fail(_("with --self, standard input must hold two lines: the current password, then the new one"))
        person = (await store.accounts.get(name)).as_actor()
        await store.accounts.change_own_password(person, lines[0], lines[1])
    else:
        await store.accounts.set_password(cli_actor("users"), name, read_password_stdin(), temporary=temporary)
    click.echo(_("password of {name} changed").format(name=name))


@users.command("verify")
@click.argument("name")
@click.option("--password-stdin", is_flag=True, required=True, help="Read the password from standard input.")
@click.option("--otp", help="A code of the person's authenticator app (or a recovery code).")
@data_dir_option
@json_option
@with_store
async def users_verify(store, name, password_stdin, otp, as_json):
    """Say whether NAME could sign in with this password (and code), and if not, why; audited.

    Creates no session, counts no failure and does not spend the code. Exit 0 when the sign-in would
    succeed, 1 otherwise. Reasons: locked, disabled, wrong_password, unknown_user, directory_unreachable,
    no_mapped_role, password_change_required, second_factor_missing, second_factor_not_enrolled,
    second_factor_wrong.
    """
    check = await store.accounts.verify_sign_in(cli_actor("users"), name, read_password_stdin(), otp=otp)
    if as_json:
        print_json({"ok": check.ok, "reason": check.reason, "message": check.message})
    else:
        verdict = (
            _("sign-in would succeed")
            if check.ok
            else _("refused ({reason}): {message}").format(
                reason=check.reason, message=check.error.message if check.error is not None else check.message
            )
        )
        click.echo(f"{name}: {verdict}")
    if not check.ok:
        raise SystemExit(1)


@users.command("mfa-reset")
@click.argument("name")
@data_dir_option
@with_store
async def users_mfa_reset(store, name):
    """Remove NAME's second factor (a lost phone); they set up a new one at their next sign-in."""
    await store.accounts.reset_second_factor(cli_actor("users"), name)
    click.echo(_("second factor of {name} removed; a new one is set up at the next sign-in").format(name=name))


@users.command("roles")
@click.argument("name")
@click.option("--role", "roles", multiple=True, required=True, help=ROLE_HELP)
@data_dir_option
@with_store
async def users_roles(store, name, roles):
    """Replace NAME's roles with the given ones."""
    staff = await store.accounts.set_roles(cli_actor("users"), name, roles)
    click.echo(f"{staff.name}: {', '.join(sorted(r.value for r in staff.roles))}")


@users.command("signature")
@click.argument("name")
@click.option("--full-name", default=None, help="Full name, e.g. 'Anna Nowak'.")
@click.option("--title", "job_title", default=None, help="Title, e.g. 'Dyrektor Biura Obsługi Interesantów'.")
@data_dir_option
@json_option
@with_store
async def users_signature(store, name, full_name, job_title, as_json):
    """Set the full name and title NAME signs letters with (an option left out keeps its value)."""
    if full_name is None and job_title is None:
        raise click.UsageError(_("give --full-name, --title or both"))
    staff = await store.accounts.set_signature(cli_actor("users"), name, full_name=full_name, job_title=job_title)
    if as_json:
        print_json(_staff_json(staff))
    else:
        click.echo(
            _("{name} signs letters as: {full_name}, {title}").format(
                name=staff.name,
                full_name=staff.full_name or _("(no full name)"),
                title=staff.job_title or _("(the title of the role)"),
            )
        )


@users.command("display-name")
@click.argument("name")
@click.argument("text")
@data_dir_option
@with_store
async def users_display_name(store, name, text):
    """Set the name residents see for NAME in the chat (e.g. 'Anna'); an empty TEXT goes back to the default
    (the full name's first word, else 'Konsultant CIM'). The log-in name is never shown to residents."""
    shown = await store.chats.set_display_name(cli_actor("users"), name, text)
    click.echo(_("{name}: name shown to residents: {shown}").format(name=name.strip(), shown=shown or _("(default)")))


@users.command("extensions")
@click.argument("name")
@click.argument("extensions", nargs=-1)
@data_dir_option
@with_store
async def users_extensions(store, name, extensions):
    """Replace NAME's PBX extensions (used to match calls to consultants)."""
    staff = await store.accounts.set_extensions(cli_actor("users"), name, extensions)
    click.echo(f"{staff.name}: {', '.join(staff.extensions) or _('no extensions')}")


@click.group()
def departments() -> None:
    """Departments of the city hall (for requests' department opinions)."""


@departments.command("add")
@click.argument("code")
@click.argument("name")
@data_dir_option
@with_store
async def departments_add(store, code, name):
    """Add a department with a short CODE and its full NAME."""
    dept = await store.accounts.add_department(cli_actor("departments"), code, name)
    click.echo(_("added department {code}: {name}").format(code=dept.code, name=dept.name))


@departments.command("list")
@data_dir_option
@json_option
@with_store
async def departments_list(store, as_json):
    """List departments."""
    depts = await store.accounts.departments()
    if as_json:
        print_json([{"code": d.code, "name": d.name} for d in depts])
    else:
        for d in depts:
            click.echo(f"{d.code}: {d.name}")
