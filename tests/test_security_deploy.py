"""The deployment files and the security document agree with the code: real commands, real options, real tests."""

from __future__ import annotations

import ast
import re
import shlex
from pathlib import Path

import click
import pytest

from cim.cli import cli

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"


def unit(name: str) -> dict[str, list[str]]:
    """key → values of a systemd unit file (keys may repeat)."""
    values: dict[str, list[str]] = {}
    for line in (DEPLOY / name).read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith(("#", "[")) and "=" in line:
            key, _, value = line.partition("=")
            values.setdefault(key, []).append(value)
    return values


def parse_cim(argv: list[str]) -> tuple[str, click.Context]:
    """Parse a `cim ...` command line exactly as the real CLI would, without running it."""
    assert Path(argv[0]).name == "cim", argv
    name, *rest = argv[1:]
    command = cli.get_command(click.Context(cli), name)
    assert command is not None, f"`cim {name}` is not a command"
    return name, command.make_context(name, rest)


def test_the_service_runs_cim_serve_as_cim_with_a_private_data_dir_and_hardening():
    service = unit("cim.service")
    name, ctx = parse_cim(shlex.split(service["ExecStart"][0]))
    assert name == "serve" and ctx.params["host"] == "127.0.0.1"
    assert service["User"] == ["cim"] and service["UMask"] == ["0077"]
    assert "CIM_DATA_DIR=/var/lib/cim" in service["Environment"]
    assert service["StateDirectory"] == ["cim cim-audit cim-keys"] and service["StateDirectoryMode"] == ["0700"]
    for key, value in {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "PrivateDevices": "yes",
        "CapabilityBoundingSet": "",
    }.items():
        assert service[key] == [value], key
    assert service["ReadWritePaths"] == ["/var/lib/cim /var/lib/cim-audit /var/lib/cim-keys"]
    # the audit key and anchors default to the sibling state directory, which the unit makes writable
    from store.settings import Settings

    audit = Settings.load("/var/lib/cim", env={})
    assert str(audit.audit_key_path.parent) == str(audit.audit_anchors_path.parent) == "/var/lib/cim-audit"
    # so do the master key and the key ring of crypto-shredding (never inside the data directory)
    assert str(audit.master_key_path.parent) == str(audit.keyring_path.parent) == "/var/lib/cim-keys"
    assert service["KillSignal"] == ["SIGTERM"]


def test_the_backup_job_runs_cim_backup_and_removes_old_backups():
    backup = unit("cim-backup.service")
    command = shlex.split(backup["ExecStart"][0])
    inner = shlex.split(command[-1])  # sh -c "exec cim backup DIR"
    name, ctx = parse_cim(inner[1:])
    assert name == "backup" and str(ctx.params["directory"]).startswith("/var/backups/cim/")
    assert backup["User"] == ["cim"] and "-mtime" in backup["ExecStartPost"][0]
    assert "OnCalendar" in unit("cim-backup.timer")


def test_ssh_forces_cim_tui_and_forbids_forwarding():
    text = (DEPLOY / "sshd-cim.conf").read_text(encoding="utf-8")
    settings = dict(
        line.strip().split(None, 1) for line in text.splitlines() if line.strip() and not line.strip().startswith("#")
    )
    assert settings["Match"] == "User cim"
    name, ctx = parse_cim(shlex.split(settings["ForceCommand"]))
    assert name == "tui" and ctx.params["data_dir"] == "/var/lib/cim"
    for key in (
        "AllowTcpForwarding",
        "AllowStreamLocalForwarding",
        "AllowAgentForwarding",
        "X11Forwarding",
        "PermitTunnel",
        "PasswordAuthentication",
    ):
        assert settings[key] == "no", key
    assert settings["AuthenticationMethods"] == "publickey"


def test_nginx_upgrades_websockets_to_the_port_the_service_listens_on():
    from webchat.app import MAX_REQUEST_BYTES

    text = (DEPLOY / "nginx-cim.conf").read_text(encoding="utf-8")
    _, ctx = parse_cim(shlex.split(unit("cim.service")["ExecStart"][0]))
    assert f"server 127.0.0.1:{ctx.params['port']};" in text
    assert "proxy_set_header Upgrade $http_upgrade;" in text
    assert "proxy_set_header Connection $connection_upgrade;" in text
    assert "location /socket.io/" in text and "ssl_certificate" in text
    assert f"client_max_body_size {MAX_REQUEST_BYTES // 1024}k;" in text
    assert "X-Forwarded-For $proxy_add_x_forwarded_for" in text
    proxies = re.search(r"CIM_TRUSTED_PROXIES=(\S+)", "\n".join(unit("cim.service")["Environment"])).group(1)
    assert proxies == "127.0.0.1"


def test_deploy_md_names_every_deploy_file():
    text = (ROOT / "docs" / "DEPLOY.md").read_text(encoding="utf-8")
    for path in DEPLOY.iterdir():
        assert f"deploy/{path.name}" in text, path.name


def _tests_named_in(document: Path) -> list[tuple[str, str]]:
    return re.findall(r"(tests/[\w/]+\.py)::(\w+)", document.read_text(encoding="utf-8"))


@pytest.mark.parametrize("document", ["docs/SECURITY.md", "docs/DEPLOY.md", "README.md"])
def test_every_test_a_document_names_exists(document: str):
    named = _tests_named_in(ROOT / document)
    assert named or document != "docs/SECURITY.md"
    for file, name in named:
        path = ROOT / file
        assert path.is_file(), f"{document} names {file}, which does not exist"
        defined = {
            node.name
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        }
        assert name in defined, f"{document} names {file}::{name}, which does not exist"
