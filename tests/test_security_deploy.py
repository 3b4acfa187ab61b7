"""The deployment files and the security document agree with the code: real commands, real options, real tests."""

from __future__ import annotations

import ast
import re
import shlex
import shutil
import subprocess
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


# ------------------------------------------------------------------ two or more nodes (issue 21)

#: Keys of cim.service that the template unit of the nodes may set otherwise.
PER_NODE_KEYS = {"Description", "After", "ExecStart", "EnvironmentFile"}


def nginx_statements(text: str) -> list[tuple[tuple[str, ...], list[str]]]:
    """(enclosing blocks, directive and arguments) of every simple directive of an nginx file.

    A parse check of what these tests rely on where nginx is not installed: quoted strings, comments,
    `;` after every directive and balanced braces (an unbalanced file or a directive without `;` fails).
    """
    tokens = re.findall(r"'[^']*'|\"[^\"]*\"|#[^\n]*|[{};]|[^\s{};]+", text)
    statements: list[tuple[tuple[str, ...], list[str]]] = []
    blocks: list[str] = []
    words: list[str] = []
    for token in tokens:
        if token.startswith("#"):
            continue
        if token == ";":
            assert words, "an empty directive"
            statements.append((tuple(blocks), words))
            words = []
        elif token == "{":
            assert words, "a block without a name"
            blocks.append(" ".join(words))
            words = []
        elif token == "}":
            assert not words, f"{words} has no ;"
            assert blocks, "a } too many"
            blocks.pop()
        else:
            words.append(token)
    assert not words and not blocks, f"unclosed: {blocks} {words}"
    return statements


def test_the_node_template_unit_has_the_hardening_of_the_service_and_reads_redis_from_a_file():
    single, nodes = unit("cim.service"), unit("cim@.service")
    # every setting of the one-node service, the hardening above all, is the same on each node
    for key, values in single.items():
        if key not in PER_NODE_KEYS:
            assert nodes.get(key) == values, key
    assert set(nodes) - set(single) == {"EnvironmentFile"}
    # the Redis URL (with its password) comes from a file, never from the unit itself
    assert nodes["EnvironmentFile"] == ["/etc/cim/redis.env"]
    assert not any("CIM_REDIS_URL" in value for value in nodes["Environment"])
    # one node per port: the instance name is the port, on loopback only
    for port in ("8081", "8082"):
        name, ctx = parse_cim(shlex.split(nodes["ExecStart"][0].replace("%i", port)))
        assert name == "serve" and ctx.params["host"] == "127.0.0.1" and ctx.params["port"] == int(port)


def test_nginx_for_two_nodes_balances_sticky_over_the_node_ports_with_the_one_node_site_headers():
    two = nginx_statements((DEPLOY / "nginx-cim-two-nodes.conf").read_text(encoding="utf-8"))
    one = nginx_statements((DEPLOY / "nginx-cim.conf").read_text(encoding="utf-8"))
    upstream = [words for blocks, words in two if blocks == ("upstream cim_nodes",)]
    servers = [words[1] for words in upstream if words[0] == "server"]
    assert len(servers) >= 2 and all(s.startswith("127.0.0.1:") for s in servers)
    # stickiness for long-polling, declared before keepalive as nginx requires of a balancing method
    names = [words[0] for words in upstream]
    assert "ip_hash" in names and names.index("ip_hash") < names.index("keepalive")
    # each upstream port is a node the template unit can run
    exec_start = unit("cim@.service")["ExecStart"][0]
    for server in servers:
        _, ctx = parse_cim(shlex.split(exec_start.replace("%i", server.split(":")[1])))
        assert ctx.params["port"] == int(server.split(":")[1])
    for blocks, words in two:
        if words[0] == "proxy_pass":
            assert words[1] == "http://cim_nodes", blocks
    # WebSocket upgrade on the Socket.IO location
    socketio_location = [words for blocks, words in two if blocks[-1:] == ("location /socket.io/",)]
    assert ["proxy_set_header", "Upgrade", "$http_upgrade"] in socketio_location
    assert ["proxy_set_header", "Connection", "$connection_upgrade"] in socketio_location

    # every other directive of the one-node site (TLS, HSTS, logs, body limit, headers) is there as well
    def site(statements: list[tuple[tuple[str, ...], list[str]]]) -> set[tuple[tuple[str, ...], tuple[str, ...]]]:
        return {
            (blocks, tuple(words))
            for blocks, words in statements
            if not blocks[:1] == ("upstream cim_chat",) and words[0] != "proxy_pass"
        }

    assert site(one) - site(two) == set()


@pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx is not installed (the parse check above still runs)")
def test_nginx_accepts_both_sites(tmp_path: Path):
    for name in ("nginx-cim.conf", "nginx-cim-two-nodes.conf"):
        site = (DEPLOY / name).read_text(encoding="utf-8")
        # nginx -t needs the certificates: a throwaway self-signed pair stands in for Let's Encrypt's
        key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
        if not cert.exists():
            subprocess.run(
                [
                    "openssl",
                    "req",
                    "-x509",
                    "-newkey",
                    "rsa:2048",
                    "-nodes",
                    "-subj",
                    "/CN=czat.szczecin.eu",
                    "-keyout",
                    str(key),
                    "-out",
                    str(cert),
                    "-days",
                    "1",
                ],
                check=True,
                capture_output=True,
            )
        site = re.sub(r"ssl_certificate\s+\S+;", f"ssl_certificate {cert};", site)
        site = re.sub(r"ssl_certificate_key\s+\S+;", f"ssl_certificate_key {key};", site)
        site = site.replace("/var/log/nginx/", f"{tmp_path}/")
        conf = tmp_path / "nginx.conf"
        conf.write_text(
            f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\nevents {{}}\nhttp {{\n{site}\n}}\n",
            encoding="utf-8",
        )
        checked = subprocess.run(["nginx", "-t", "-c", str(conf), "-p", str(tmp_path)], capture_output=True, text=True)
        assert checked.returncode == 0, (name, checked.stderr)


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
