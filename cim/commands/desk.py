"""`cim topics ...` and `cim users capacity|skills`: the chat desk's topics, consultants' skills and capacity."""

from __future__ import annotations

import click

from cim.common import cli_actor, data_dir_option, fail, json_option, print_json, with_store
from store.i18n import _


def register(cli: click.Group) -> None:
    cli.add_command(topics)
    users = cli.commands["users"]
    users.add_command(users_capacity)  # type: ignore[attr-defined]
    users.add_command(users_skills)  # type: ignore[attr-defined]


def _topic_json(t) -> dict:
    return {
        "id": t.id,
        "label_pl": t.label_pl,
        "label_en": t.label_en,
        "department": t.department,
        "position": t.position,
        "active": t.active,
    }


@click.group()
def topics() -> None:
    """Chat topics residents pick before a chat (each mapped to a department): list, add, edit, disable, enable."""


@topics.command("list")
@click.option("--all", "include_inactive", is_flag=True, help="Also topics no longer offered.")
@data_dir_option
@json_option
@with_store
async def topics_list(store, include_inactive, as_json):
    """List the topics in the order the widget offers them."""
    found = await store.desk.topics(include_inactive=include_inactive)
    if as_json:
        print_json([_topic_json(t) for t in found])
        return
    for t in found:
        state = "" if t.active else " " + _("(not offered)")
        click.echo(f"{t.id}: {t.label_pl} / {t.label_en} -> {t.department or '-'}{state}")


@topics.command("add")
@click.argument("label_pl")
@click.argument("label_en")
@click.option("--department", help="Department code whose head gives the §4.3 opinion on these chats.")
@data_dir_option
@with_store
async def topics_add(store, label_pl, label_en, department):
    """Add a topic with its Polish and English labels."""
    topic = await store.desk.add_topic(cli_actor("topics"), label_pl, label_en, department)
    click.echo(_("added topic {id}: {label}").format(id=topic.id, label=topic.label_pl))


@topics.command("edit")
@click.argument("topic_id", type=int)
@click.argument("label_pl")
@click.argument("label_en")
@click.option("--department", help="Department code (empty: none).")
@data_dir_option
@with_store
async def topics_edit(store, topic_id, label_pl, label_en, department):
    """Change a topic's labels and department."""
    topic = await store.desk.update_topic(cli_actor("topics"), topic_id, label_pl, label_en, department)
    click.echo(_("topic {id}: {label}").format(id=topic.id, label=topic.label_pl))


@topics.command("disable")
@click.argument("topic_id", type=int)
@data_dir_option
@with_store
async def topics_disable(store, topic_id):
    """Stop offering a topic (chats that have it keep it)."""
    topic = await store.desk.set_topic_active(cli_actor("topics"), topic_id, False)
    click.echo(_("topic {id} is no longer offered").format(id=topic.id))


@topics.command("enable")
@click.argument("topic_id", type=int)
@data_dir_option
@with_store
async def topics_enable(store, topic_id):
    """Offer a topic again."""
    topic = await store.desk.set_topic_active(cli_actor("topics"), topic_id, True)
    click.echo(_("topic {id} is offered").format(id=topic.id))


@click.command("capacity")
@click.argument("name")
@click.argument("max_chats")
@data_dir_option
@with_store
async def users_capacity(store, name, max_chats):
    """Set the most chats NAME handles at once (1-50), or `default` for the setting CIM_CHAT_MAX_CONCURRENT."""
    if max_chats.strip().lower() == "default":
        value = None
    elif max_chats.strip().isdigit():
        value = int(max_chats)
    else:
        fail(_("MAX_CHATS is a number from 1 to 50, or default"))
    await store.desk.set_max_chats(cli_actor("users"), name, value)
    shown = value if value is not None else _("default ({n})").format(n=store.settings.chat_max_concurrent)
    click.echo(_("{name}: at most {max} chats at once").format(name=name.strip(), max=shown))


@click.command("skills")
@click.argument("name")
@click.argument("topic_ids", nargs=-1, type=int)
@data_dir_option
@with_store
async def users_skills(store, name, topic_ids):
    """Replace NAME's skills with these topic ids (see `cim topics list`); none: every topic."""
    skills = await store.desk.set_skills(cli_actor("users"), name, topic_ids)
    click.echo(
        _("{name}: topics {topics}").format(name=name.strip(), topics=", ".join(map(str, sorted(skills))) or _("all"))
    )
