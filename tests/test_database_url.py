"""CIM_DATABASE_URL (store/backend.py): `sqlite:` is today's database file; anything else is refused by name."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from store import Store
from store.backend import SUPPORTED_SCHEMES, parse_database_url
from store.errors import ConfigError
from store.models import Actor
from store.settings import Settings

REPO = Path(__file__).resolve().parents[1]


def test_the_default_is_the_data_directorys_database_file(tmp_path) -> None:
    for env in ({}, {"CIM_DATABASE_URL": ""}, {"CIM_DATABASE_URL": "sqlite:"}, {"CIM_DATABASE_URL": " SQLite: "}):
        settings = Settings.load(tmp_path, env=env)
        assert settings.database.scheme == "sqlite"
        assert settings.db_path == tmp_path / "cim.sqlite3"


@pytest.mark.parametrize(
    "value",
    [
        "sqlite:other.sqlite3",
        "sqlite:{dir}/other.sqlite3",
        "sqlite://{dir}/other.sqlite3",
        "sqlite:{dir}/../data/other.sqlite3",
    ],
)
def test_another_file_in_the_data_directory(tmp_path, value) -> None:
    data = tmp_path / "data"
    settings = Settings.load(data, env={"CIM_DATABASE_URL": value.format(dir=data)})
    assert settings.db_path == data / "other.sqlite3"


def test_cim_toml_names_it_and_the_variable_wins(tmp_path) -> None:
    (tmp_path / "cim.toml").write_text('database_url = "sqlite:from-toml.sqlite3"\n', encoding="utf-8")
    assert Settings.load(tmp_path, env={}).db_path == tmp_path / "from-toml.sqlite3"
    assert Settings.load(tmp_path, env={"CIM_DATABASE_URL": "sqlite:"}).db_path == tmp_path / "cim.sqlite3"


@pytest.mark.parametrize(
    "value",
    [
        "postgresql://cim:s3cret-pw@db.example/cim",
        "mysql+pymysql://cim:s3cret-pw@db/cim",
        "sqlite",
        "s3cret-pw",
        "://",
        "ßqlite:x",
        "SQLITE3:x.db",
        "file:cim.sqlite3",
        "C:\\cim\\cim.sqlite3",
    ],
)
def test_an_unsupported_scheme_is_refused_naming_the_supported_ones(tmp_path, value) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.load(tmp_path, env={"CIM_DATABASE_URL": value})
    assert "supported: sqlite:" in caught.value.message
    assert "s3cret" not in caught.value.message  # another scheme's URL may carry a password: never echoed
    assert SUPPORTED_SCHEMES == ("sqlite",)


@pytest.mark.parametrize(
    "value",
    [
        "sqlite::memory:",
        "sqlite:file:cim.sqlite3?mode=memory",
        "sqlite:cim.sqlite3?mode=ro",
        "sqlite:x.db#frag",
        "sqlite:x\x00.db",
        "sqlite://db-host/cim.sqlite3",
        "sqlite:/etc/passwd",
        "sqlite:///tmp/elsewhere.sqlite3",
        "sqlite:../outside.sqlite3",
        "sqlite:recordings/x.sqlite3",
        "sqlite:sub/x.sqlite3",
        "sqlite:.",
        "sqlite:..",
        "sqlite:cim.toml",
        "sqlite:mfa.key",
        "sqlite:purge.lock",
        "sqlite:recordings",
        "sqlite:cim.sqlite3-wal",
        "sqlite:cim.sqlite3-shm",
    ],
)
def test_hostile_sqlite_urls_are_refused(tmp_path, value) -> None:
    with pytest.raises(ConfigError, match="CIM_DATABASE_URL"):
        Settings.load(tmp_path / "data", env={"CIM_DATABASE_URL": value})


async def test_store_open_refuses_an_unsupported_scheme_before_creating_anything(tmp_path) -> None:
    settings = Settings(data_dir=tmp_path / "data", database_url="postgresql://cim@db/cim")
    with pytest.raises(ConfigError, match="supported: sqlite:"):
        await Store.open(settings, create=True)
    assert not (tmp_path / "data").exists()


async def test_the_store_keeps_its_records_in_the_named_file(tmp_path, clock) -> None:
    data = tmp_path / "data"
    settings = Settings.load(data, env={"CIM_DATABASE_URL": "sqlite:office.sqlite3"}, password_profile="fast")
    async with await Store.open(settings, create=True, clock=clock) as store:
        await store.audit.record(Actor.system("tests"), "test.marker")
        await store.ping()  # the database answers
    assert (data / "office.sqlite3").is_file() and not (data / "cim.sqlite3").exists()
    assert os.stat(data / "office.sqlite3").st_mode & 0o077 == 0
    async with await Store.open(settings, clock=clock) as store:  # opened again, the entry is there
        actions = [e.action for e in await store.audit.entries(Actor.system("tests"))]
        assert "test.marker" in actions
    with pytest.raises(Exception, match="cim init"):  # the default file was never made
        await Store.open(settings.with_(database_url="sqlite:"), clock=clock)


def test_cim_init_reports_and_creates_the_named_database(tmp_path) -> None:
    data = tmp_path / "data"
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "CIM_DATA_DIR": str(data),
        "CIM_DATABASE_URL": "sqlite:office.sqlite3",
        "CIM_PASSWORD_PROFILE": "fast",
    }
    out = subprocess.run(
        [sys.executable, "-m", "cim", "init", "--json"], env=env, capture_output=True, text=True, cwd=REPO, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert f'"database": "{data / "office.sqlite3"}"' in out.stdout
    assert (data / "office.sqlite3").is_file()
    bad = subprocess.run(
        [sys.executable, "-m", "cim", "init"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
        env={**env, "CIM_DATABASE_URL": "postgresql://cim:s3cret@db/cim"},
    )
    assert bad.returncode != 0
    assert "supported: sqlite:" in bad.stderr and "s3cret" not in bad.stderr + bad.stdout


def test_parse_is_what_settings_use(tmp_path) -> None:
    assert parse_database_url("sqlite:a.sqlite3", tmp_path).path == tmp_path / "a.sqlite3"
