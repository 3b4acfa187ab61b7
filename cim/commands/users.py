"""`cim users ...` and `cim departments ...`: staff accounts, roles and departments."""

from __future__ import annotations

import click

from cim.common import cli_actor, data_dir_option, json_option, print_json, read_password_stdin, with_store
from store.models import Role

ROLE_HELP = "Role (repeatable): " + ", ".join(r.value for r in Role) + "."


def register(cli: click.Group) -> None:
    cli.add_command(users)
    cli.add_command(departments)


@click.group()
def users() -> None:
    """Staff accounts: add, list, disable, enable, passwd, roles, signature."""


def _staff_json(s) -> dict:
    return {"id": s.id, "name": s.name, "full_name": s.full_name, "job_title": s.job_title, "roles": sorted(r.value for r in s.roles),
            "department": s.department, "disabled": s.disabled, "extensions": list(s.extensions)}


@users.command("add")
@click.argument("name")
@click.option("--role", "roles", multiple=True, required=True, help=ROLE_HELP)
@click.option("--department", help="Department code (see `cim departments list`).")
@click.option("--full-name", default="", help="Full name shown in letters and lists.")
@click.option("--title", "job_title", default="", help="Title printed under the name on letters this person signs.")
@click.option("--extension", "extensions", multiple=True, help="PBX extension of this person (repeatable).")
@click.option("--password-stdin", is_flag=True, required=True, help="Read the password from standard input.")
@data_dir_option
@json_option
@with_store
async def users_add(store, name, roles, department, full_name, job_title, extensions, password_stdin, as_json):
    """Add a staff member NAME with one or more roles; the password is read from stdin."""
    staff = await store.accounts.add_staff(
        cli_actor("users"), name, roles, read_password_stdin(), department=department, full_name=full_name,
        extensions=extensions, job_title=job_title)
    if as_json:
        print_json(_staff_json(staff))
    else:
        click.echo(f"added {staff.name} ({', '.join(sorted(r.value for r in staff.roles))})")


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
        state = " (disabled)" if s.disabled else ""
        dept = f" [{s.department}]" if s.department else ""
        click.echo(f"{s.name}{dept}: {', '.join(sorted(r.value for r in s.roles))}{state}")


@users.command("disable")
@click.argument("name")
@data_dir_option
@with_store
async def users_disable(store, name):
    """Disable NAME's account and end their sessions."""
    await store.accounts.set_disabled(cli_actor("users"), name, True)
    click.echo(f"disabled {name}")


@users.command("enable")
@click.argument("name")
@data_dir_option
@with_store
async def users_enable(store, name):
    """Enable NAME's account again."""
    await store.accounts.set_disabled(cli_actor("users"), name, False)
    click.echo(f"enabled {name}")


@users.command("passwd")
@click.argument("name")
@click.option("--password-stdin", is_flag=True, required=True, help="Read the new password from standard input.")
@data_dir_option
@with_store
async def users_passwd(store, name, password_stdin):
    """Set NAME's password (read from stdin); their sessions end."""
    await store.accounts.set_password(cli_actor("users"), name, read_password_stdin())
    click.echo(f"password of {name} changed")


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
        raise click.UsageError("give --full-name, --title or both")
    staff = await store.accounts.set_signature(cli_actor("users"), name, full_name=full_name, job_title=job_title)
    if as_json:
        print_json(_staff_json(staff))
    else:
        click.echo(f"{staff.name} signs letters as: {staff.full_name or '(no full name)'}, "
                   f"{staff.job_title or '(the title of the role)'}")


@users.command("extensions")
@click.argument("name")
@click.argument("extensions", nargs=-1)
@data_dir_option
@with_store
async def users_extensions(store, name, extensions):
    """Replace NAME's PBX extensions (used to match calls to consultants)."""
    staff = await store.accounts.set_extensions(cli_actor("users"), name, extensions)
    click.echo(f"{staff.name}: {', '.join(staff.extensions) or 'no extensions'}")


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
    click.echo(f"added department {dept.code}: {dept.name}")


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
