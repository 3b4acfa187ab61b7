"""Refusals of the chat, desk, callbacks, listening, SQLite and settings areas speak the staff language:
Polish by default, English with CIM_STAFF_LANG=en or `set_language("en")`, read through the store's own API
and from the real `cim` command."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from store import i18n
from store.errors import ConfigError, ConversationNotFound, InvalidInput, NotFound, StoreUnavailable
from store.settings import check_redis_url
from store.sqlite.database import check_data_dir

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.staff_lang(None)
async def test_a_missing_chat_topic_and_callback_are_refused_in_polish_then_english(store) -> None:
    with pytest.raises(ConversationNotFound) as chat:
        await store.chats.get(9999)
    with pytest.raises(NotFound) as topic:
        await store.desk.topic(4242)
    with pytest.raises(NotFound) as callback:
        await store.callbacks.get(777)
    assert (chat.value.message, topic.value.message, callback.value.message) == (
        "nie ma czatu 9999",
        "nie ma tematu sprawy 4242",
        "nie ma oddzwonienia 777",
    )
    i18n.set_language("en")  # the same errors, read again by an English-speaking person
    assert (str(chat.value), str(topic.value), str(callback.value)) == (
        "no chat 9999",
        "no topic 4242",
        "no callback 777",
    )
    assert chat.value.message_in("pl") == "nie ma czatu 9999"


@pytest.mark.staff_lang("pl")
async def test_a_field_label_inside_a_desk_refusal_is_translated_with_it(store, make_staff) -> None:
    manager = (await make_staff("maria", "cim_manager")).as_actor()
    with pytest.raises(InvalidInput) as empty:
        await store.desk.add_topic(manager, "   ", "Waste")
    assert empty.value.message == "nazwa polska: pole jest puste"
    assert empty.value.message_in("en") == "the Polish label is empty"
    with pytest.raises(InvalidInput) as long:
        await store.desk.add_topic(manager, "Śmieci", "x" * 81)
    assert long.value.message == "nazwa angielska: więcej niż 80 znaków"
    assert long.value.message_in("en") == "the English label is longer than 80 characters"


async def test_desk_refusals_stay_english_under_cim_staff_lang_en(store, make_staff) -> None:
    manager = (await make_staff("maria", "cim_manager")).as_actor()
    with pytest.raises(InvalidInput) as bad:
        await store.desk.set_max_chats(manager, "maria", 0)
    assert bad.value.message == "the maximum of concurrent chats is a number from 1 to 50"
    assert bad.value.message_in("pl") == "limit jednoczesnych czatów to liczba od 1 do 50"


@pytest.mark.staff_lang("pl")
def test_redis_url_and_data_directory_refusals_in_polish_and_english(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as no_scheme:
        check_redis_url("localhost:6379")
    assert no_scheme.value.message == (
        "CIM_REDIS_URL musi być adresem redis://, rediss:// lub unix:// (podano adres bez schematu)"
    )
    assert no_scheme.value.message_in("en") == (
        "CIM_REDIS_URL must be a redis://, rediss:// or unix:// URL (it has no scheme)"
    )
    with pytest.raises(ConfigError) as http:
        check_redis_url("http://localhost")
    assert http.value.message.endswith("(podano http://)")
    with pytest.raises(StoreUnavailable) as missing:
        check_data_dir(tmp_path / "nowhere", create=False)
    where = tmp_path / "nowhere"
    assert missing.value.message == f"katalog danych {where} nie istnieje; najpierw uruchom `cim init`"
    assert missing.value.message_in("en") == f"data directory {where} does not exist; run `cim init` first"


def cim(*args: str, lang: str | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("CIM_STAFF_LANG", "CIM_DATA_DIR")}
    if lang:
        env["CIM_STAFF_LANG"] = lang
    return subprocess.run(
        [sys.executable, "-m", "cim", *args], capture_output=True, text=True, env=env, cwd=ROOT, timeout=60
    )


def test_the_cim_command_on_a_missing_data_directory_refuses_in_polish_by_default(tmp_path: Path) -> None:
    where = tmp_path / "nowhere"
    polish = cim("users", "list", "--data-dir", str(where), lang=None)
    assert polish.returncode == 1
    assert polish.stderr.strip() == f"cim: katalog danych {where} nie istnieje; najpierw uruchom `cim init`"
    english = cim("users", "list", "--data-dir", str(where), lang="en")
    assert english.returncode == 1
    assert english.stderr.strip() == f"cim: data directory {where} does not exist; run `cim init` first"


@pytest.mark.staff_lang(None)
def test_the_contact_refusals_the_widget_recognises_stay_english_in_a_polish_office() -> None:
    from store.resident_desk import clean_contact

    for bad in ("", "not a contact", "x@", "a\x00b@example.pl"):
        with pytest.raises(InvalidInput) as refused:
            clean_contact(bad)
        assert "contact" in refused.value.message and refused.value.message == refused.value.message_in("en")
