"""The ``donjon`` client commands, run as a user would: the real executable against a live donjon server."""

from __future__ import annotations

import base64
import json
import os
import pty
import stat
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from donjon.client import OpaqueData, open_key_manager
from tests.live_server import LiveServer, free_port

pytestmark = pytest.mark.live
DONJON = str(Path(sys.executable).with_name("donjon"))


class Cli:
    """``donjon`` with DONJON_URL and a project of its own, and a HOME without a client config."""

    def __init__(self, server: LiveServer, home: Path) -> None:
        self.project = f"cli-{uuid.uuid4()}"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("DONJON_", "OS_", "VAULT_"))}
        self.env.update(HOME=str(home), DONJON_URL=server.url, DONJON_PROJECT_ID=self.project)
        self.url = server.url

    def run(
        self, *args: str, input: bytes | None = None, env: dict[str, str] | None = None, code: int = 0
    ) -> subprocess.CompletedProcess[bytes]:
        result = subprocess.run(
            [DONJON, *args], input=input, capture_output=True, env={**self.env, **(env or {})}, timeout=120
        )
        assert result.returncode == code, (result.returncode, result.stdout[-2000:], result.stderr[-2000:])
        return result

    def json(self, *args: str, input: bytes | None = None) -> object:
        return json.loads(self.run(*args, "-f", "json", input=input).stdout)

    def store(self, data: bytes, *args: str) -> str:
        return str(self.json("secret", "store", "--file", "-", *args, input=data)["id"])  # type: ignore[index]


@pytest.fixture
def cli(live_server: LiveServer, tmp_path: Path) -> Cli:
    return Cli(live_server, tmp_path)


def test_store_and_get_binary_payload_byte_exact(cli: Cli) -> None:
    data = bytes(range(256)) + b"\n  \x00"
    result = cli.run("secret", "store", "-n", "bin", "-F", "-", "-f", "value", input=data)
    secret_id, ref = result.stdout.decode().split()
    assert ref.endswith(secret_id) and data not in result.stdout + result.stderr
    assert cli.run("secret", "get", secret_id, "--payload").stdout == data
    out = Path(cli.env["HOME"]) / "out.bin"
    cli.run("secret", "get", ref, "--payload", "--file", str(out))
    assert out.read_bytes() == data and stat.S_IMODE(out.stat().st_mode) == 0o600


def test_store_text_from_a_file_and_formats(cli: Cli, tmp_path: Path) -> None:
    source = tmp_path / "pw.txt"
    source.write_text("correct horse \N{SNOWMAN}\n")
    secret_id = str(
        cli.json("secret", "store", "-n", "pw", "-t", "passphrase", "--content-type", "text/plain", "-F", str(source))[
            "id"  # type: ignore[index]
        ]
    )
    meta = cli.json("secret", "get", secret_id)
    assert meta["secret_type"] == "passphrase" and meta["name"] == "pw"  # type: ignore[index]
    assert meta["content_types"] == {"default": "text/plain"}  # type: ignore[index]
    got = cli.run("secret", "get", secret_id, "-p", "--accept", "text/plain").stdout
    assert got == source.read_bytes()
    yaml = cli.run("secret", "get", secret_id, "-f", "yaml").stdout.decode()
    assert 'name: "pw"' in yaml and "secret_type: " in yaml
    table = cli.run("secret", "get", secret_id).stdout.decode()
    assert "| Field" in table and "passphrase" in table
    assert cli.run("secret", "get", secret_id, "-f", "value").stdout.decode().startswith(secret_id + " pw passphrase")


def test_list_every_page_and_filters(cli: Cli) -> None:
    with open_key_manager({"type": "donjon", "url": cli.url, "project_id": cli.project}) as km:
        ids = {km.store(OpaqueData(data=f"{i}".encode(), name=f"n{i}")) for i in range(103)}
    listed = cli.run("secret", "list", "-f", "value").stdout.decode().splitlines()
    assert {line.split()[0] for line in listed} == ids
    assert len(cli.run("secret", "list", "-f", "value", "--limit", "5").stdout.decode().splitlines()) == 5
    [only] = cli.json("secret", "list", "--name", "n42")  # type: ignore[misc]
    assert only["name"] == "n42"
    assert cli.json("secret", "list", "--type", "symmetric") == []


def test_update_and_delete(cli: Cli) -> None:
    secret_id = str(cli.json("secret", "store", "--no-payload", "-n", "later")["id"])  # type: ignore[index]
    cli.run("secret", "update", secret_id, "-F", "-", input=b"\x01\x02late")
    assert cli.run("secret", "get", secret_id, "-p").stdout == b"\x01\x02late"
    result = cli.run("secret", "update", secret_id, "-F", "-", input=b"again", code=7)  # 409: has a payload
    assert b"error:" in result.stderr
    cli.run("secret", "delete", secret_id)
    cli.run("secret", "get", secret_id, code=4)
    cli.run("secret", "delete", secret_id, code=4)


def test_orders(cli: Cli) -> None:
    key = cli.json("order", "create", "key", "-n", "disk", "-b", "128")
    assert key["status"] == "ACTIVE" and key["type"] == "key"  # type: ignore[index]
    secret_id = key["secret_ref"].rsplit("/", 1)[1]  # type: ignore[index]
    assert len(cli.run("secret", "get", secret_id, "-p").stdout) == 16
    pair = cli.json("order", "create", "asymmetric", "-a", "ec", "-b", "256")
    assert pair["container_ref"]  # type: ignore[index]
    pw = cli.json("order", "create", "password", "--length", "24")
    assert pw["status"] == "ACTIVE"  # type: ignore[index]
    assert cli.json("order", "get", key["id"])["meta"]["bit_length"] == 128  # type: ignore[index]
    # Every order the CLI made, password orders included, oldest first (the server lists those only by type).
    listed = [o["id"] for o in cli.json("order", "list")]  # type: ignore[attr-defined]
    assert listed == [key["id"], pair["id"], pw["id"]]  # type: ignore[index]
    assert [o["id"] for o in cli.json("order", "list", "--type", "password")] == [pw["id"]]  # type: ignore[attr-defined,index]
    cli.run("order", "delete", key["id"])  # type: ignore[index]
    cli.run("order", "get", key["id"], code=4)  # type: ignore[index]
    cli.run("order", "create", "key", "-b", "100", code=6)


def test_containers(cli: Cli) -> None:
    a, b = cli.store(b"a"), cli.store(b"b")
    created = cli.json("container", "create", "-n", "pair", "-s", f"one={a}", "-s", f"two={b}")
    cid = created["id"]  # type: ignore[index]
    got = cli.json("container", "get", cid)
    assert got["secret_refs"] == {"one": a, "two": b} and got["type"] == "generic"  # type: ignore[index]
    assert [c["id"] for c in cli.json("container", "list")] == [cid]  # type: ignore[attr-defined]
    cli.run("container", "create", "-s", "no-equals-sign", code=2)
    cli.run("container", "delete", cid)
    cli.run("container", "get", cid, code=4)


def test_acls(cli: Cli) -> None:
    secret_id = cli.store(b"shared")
    cli.run("acl", "set", secret_id, "-u", "alice", "--no-project-access")
    cli.run("acl", "set", secret_id, "-u", "bob", "--add", "--no-project-access")
    acl = cli.json("acl", "get", secret_id)
    assert sorted(acl["users"]) == ["alice", "bob"] and acl["project-access"] is False  # type: ignore[index]
    cli.run("acl", "delete", secret_id)
    assert cli.json("acl", "get", secret_id)["users"] == []  # type: ignore[index]
    cid = cli.json("container", "create", "-s", f"s={secret_id}")["id"]  # type: ignore[index]
    cli.run("acl", "set", str(cid), "--container", "-u", "carol")
    assert cli.json("acl", "get", f"{cli.url}/v1/containers/{cid}")["users"] == ["carol"]  # type: ignore[index]


def test_consumers_block_delete(cli: Cli) -> None:
    secret_id = cli.store(b"in use")
    consumer = ("-s", "cinder", "-t", "volume", "-i", "vol-1")
    cli.run("consumer", "add", secret_id, *consumer)
    [row] = cli.json("consumer", "list", secret_id)  # type: ignore[misc]
    assert (row["service"], row["resource_type"], row["resource_id"]) == ("cinder", "volume", "vol-1")
    result = cli.run("secret", "delete", secret_id, code=7)
    assert b"consumer" in result.stderr
    cli.run("consumer", "remove", secret_id, *consumer)
    assert cli.json("consumer", "list", secret_id) == []
    cli.run("consumer", "add", secret_id, *consumer)
    cli.run("secret", "delete", secret_id, "--force")
    cli.run("consumer", "add", secret_id, "-s", "x", code=2)  # missing options


def test_bad_input_and_exit_codes(cli: Cli, tmp_path: Path) -> None:
    cli.run("secret", "store", "--type", "nonsense", code=2)
    cli.run("secret", "get", code=2)
    cli.run("secret", "store", "-F", "-", input=b"", code=6)  # empty payload
    cli.run("secret", "store", "-F", str(tmp_path / "missing"), code=3)
    cli.run("secret", "store", "--content-type", "text/plain", "-F", "-", input=b"\xff\xfe", code=6)
    result = cli.run("secret", "list", env={"DONJON_URL": ""}, code=3)
    assert b"no server" in result.stderr
    cli.run("secret", "list", "--url", f"http://127.0.0.1:{free_port()}", code=8)
    cli.run("secret", "get", str(uuid.uuid4()), code=4)
    cli.run("secret", "store", "-F", "-", "-x", "2001-01-01T00:00:00", input=b"x", code=6)
    cli.run("secret", "list", "--client-config", str(tmp_path / "nope.toml"), code=3)
    result = cli.run("secret", "get", "x", "--file", "y", code=2)  # --file needs --payload
    assert b"--payload" in result.stderr


def test_store_with_payload_flag_as_barbican_does(cli: Cli) -> None:
    secret_id = str(cli.json("secret", "store", "-n", "flag", "-p", "s3cr3t words")["id"])  # type: ignore[index]
    assert cli.json("secret", "get", secret_id)["content_types"] == {"default": "text/plain"}  # type: ignore[index]
    assert cli.run("secret", "get", secret_id, "--payload").stdout == b"s3cr3t words"
    binary = str(cli.json("secret", "store", "--payload", "x", "--content-type", "application/octet-stream")["id"])  # type: ignore[index]
    assert cli.json("secret", "get", binary)["content_types"] == {"default": "application/octet-stream"}  # type: ignore[index]
    assert b"one of --payload" in cli.run("secret", "store", "-p", "x", "--file", "-", input=b"y", code=2).stderr
    cli.run("secret", "store", "-p", "", code=6)


def test_payloads_in_json_and_yaml(cli: Cli) -> None:
    text = cli.store(b"plain words", "--content-type", "text/plain")
    got = cli.json("secret", "get", text, "--payload", "--accept", "text/plain")
    assert got == {"content_type": "text/plain", "payload": "plain words"}
    binary = cli.store(b"\x00\xff\x10bin")
    got = cli.json("secret", "get", binary, "--payload")
    assert got == {
        "content_type": "application/octet-stream",
        "payload": "AP8QYmlu",
        "payload_content_encoding": "base64",
    }
    yaml = cli.run("secret", "get", text, "--payload", "-f", "yaml").stdout.decode()
    assert 'payload: "plain words"' in yaml
    assert cli.run("secret", "get", binary, "--payload", "-f", "value").stdout == b"\x00\xff\x10bin"


def _on_a_terminal(cli: Cli, *args: str) -> tuple[int, bytes, bytes]:
    """Run with stdout on a pseudo-terminal, as in an interactive shell: (exit code, what the terminal got, stderr)."""
    master, slave = pty.openpty()
    try:
        done = subprocess.run([DONJON, *args], stdout=slave, stderr=subprocess.PIPE, env=cli.env, timeout=120)
    finally:
        os.close(slave)
    shown = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # EIO: the terminal is closed and drained
            break
        if not chunk:
            break
        shown += chunk
    os.close(master)
    return done.returncode, shown, done.stderr


def test_a_binary_payload_is_not_written_to_a_terminal(cli: Cli) -> None:
    binary = cli.store(b"\x1b]0;pwned\x07\x00\xff")
    code, shown, err = _on_a_terminal(cli, "secret", "get", binary, "--payload")
    assert code == 6 and shown == b""
    assert b"binary" in err and b"--file" in err
    text = cli.store(b"fine to show", "--content-type", "text/plain")
    code, shown, _ = _on_a_terminal(cli, "secret", "get", text, "--payload")
    assert code == 0 and shown == b"fine to show"
    # Piped, the bytes go through untouched.
    assert cli.run("secret", "get", binary, "--payload").stdout == b"\x1b]0;pwned\x07\x00\xff"


def test_errors_name_the_command_that_failed(cli: Cli) -> None:
    missing = str(uuid.uuid4())
    # delete first reads the secret (for its consumers): the error still says delete.
    err = cli.run("secret", "delete", missing, code=4).stderr.decode()
    assert err.startswith(f"error: secret delete: secrets/{missing}: 404") and "GET" not in err
    err = cli.run("order", "get", missing, code=4).stderr.decode()
    assert err.startswith(f"error: order get: orders/{missing}: 404")


def test_max_reads_and_relative_expiration(cli: Cli) -> None:
    secret_id = str(cli.json("secret", "store", "-p", "once", "--max-reads", "1", "-x", "+1h")["id"])  # type: ignore[index]
    meta = cli.json("secret", "get", secret_id)
    expires = datetime.fromisoformat(str(meta["expiration"])).replace(tzinfo=UTC)  # type: ignore[index]
    assert timedelta(minutes=59) < expires - datetime.now(UTC) <= timedelta(hours=1)
    assert cli.json("secret", "lifecycle", secret_id)["reads_left"] == 1  # type: ignore[index]
    assert cli.run("secret", "get", secret_id, "--payload").stdout == b"once"
    cli.run("secret", "get", secret_id, "--payload", code=4)  # burnt after reading
    order = cli.json("order", "create", "key", "-x", "+2d")
    key_meta = cli.json("secret", "get", order["secret_ref"])  # type: ignore[index]
    key_expires = datetime.fromisoformat(str(key_meta["expiration"])).replace(tzinfo=UTC)  # type: ignore[index]
    assert key_expires > datetime.now(UTC) + timedelta(days=1)
    assert b"not a duration" in cli.run("secret", "store", "-p", "x", "-x", "+1y", code=2).stderr


def test_wrap_and_unwrap(cli: Cli) -> None:
    secret_id = cli.store(b"hand me over")
    wrapped = cli.json("secret", "wrap", secret_id, "--ttl", "5m")
    token = str(wrapped["wrap_token"])  # type: ignore[index]
    # The receiver has no credential, only the token (here on stdin, so it is not in ps).
    receiver = {"DONJON_PROJECT_ID": ""}
    got = cli.run("secret", "unwrap", input=token.encode(), env=receiver)
    assert got.stdout == b"hand me over"
    cli.run("secret", "unwrap", token, env=receiver, code=4)  # single use


def test_payload_refusals_and_structured_output(cli: Cli, tmp_path: Path) -> None:
    # Refused before anything is stored: an empty payload, and bytes that are not UTF-8 as text/plain.
    assert b"the payload is empty" in cli.run("secret", "store", "-p", "", code=6).stderr
    assert b"the payload is empty" in cli.run("secret", "store", "-F", "-", input=b"", code=6).stderr
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("caf\N{LATIN SMALL LETTER E WITH ACUTE}".encode("latin-1"))
    refused = cli.run("secret", "store", "--content-type", "text/plain", "-F", str(latin1), code=6)
    assert b"text/plain needs UTF-8 text" in refused.stderr
    secret_id = cli.store(b"\xff\x00binary")
    refused = cli.run("secret", "rotate", secret_id, "--content-type", "text/plain", "-F", str(latin1), code=6)
    assert b"text/plain needs UTF-8 text" in refused.stderr
    assert cli.json("secret", "lifecycle", secret_id)["versions"][-1]["version"] == 1  # type: ignore[index]
    # -f json shows a payload read back as a record: binary in base64, text as is.
    assert cli.json("secret", "get", secret_id, "--payload") == {
        "content_type": "application/octet-stream",
        "payload": base64.b64encode(b"\xff\x00binary").decode(),
        "payload_content_encoding": "base64",
    }
    text_id = cli.store(b"plain words", "--content-type", "text/plain")
    got = cli.json("secret", "get", text_id, "--payload", "--accept", "text/plain")
    assert got == {"content_type": "text/plain", "payload": "plain words"}


def test_versions_and_metadata_by_name(cli: Cli) -> None:
    name = f"db-{uuid.uuid4().hex[:8]}"
    cli.run("secret", "store", "-n", name, "-p", "v1")
    # The secret is named by its unique name in the project, in every secret command.
    assert cli.json("secret", "rotate", name, "-p", "v2")["version"] == 2  # type: ignore[index]
    assert cli.run("secret", "get", name, "--payload").stdout == b"v2"
    assert cli.run("secret", "get", name, "--payload", "--version", "1").stdout == b"v1"
    versions = cli.json("secret", "lifecycle", name)["versions"]  # type: ignore[index]
    assert [v["version"] for v in versions] == [1, 2]
    assert cli.json("secret", "metadata", name, "env=prod", "owner=db") == {"env": "prod", "owner": "db"}
    assert cli.json("secret", "metadata", name, "--remove", "owner") == {"env": "prod"}
    assert cli.json("secret", "metadata", name) == {"env": "prod"}
    cli.run("secret", "get", f"{name}-missing", code=4)
    cli.run("secret", "store", "-n", name, "-p", "twin")
    assert b"2 secrets are named" in cli.run("secret", "get", name, code=7).stderr
    cli.run("secret", "delete", f"{name}_", code=4)  # '_' is a LIKE wildcard on the server: not a match here


def test_config_file_profile(cli: Cli, tmp_path: Path) -> None:
    secret_id = cli.store(b"profiled")
    config = tmp_path / "client.toml"
    config.write_text(
        f'[default]\nurl = "http://127.0.0.1:1"\n[work]\nurl = "{cli.url}"\nproject_id = "{cli.project}"\n'
    )
    env = {"DONJON_URL": "", "DONJON_PROJECT_ID": ""}
    got = cli.run("secret", "get", secret_id, "-p", "--client-config", str(config), "--profile", "work", env=env)
    assert got.stdout == b"profiled"
    cli.run("secret", "get", secret_id, "--client-config", str(config), env=env, code=8)  # [default]: nothing there
    cli.run("secret", "list", "--client-config", str(config), "--profile", "nope", env=env, code=3)
    home_config = Path(cli.env["HOME"]) / ".config" / "donjon" / "client.toml"
    home_config.parent.mkdir(parents=True)
    home_config.write_text(config.read_text())
    assert cli.run("secret", "get", secret_id, "-p", env={**env, "DONJON_PROFILE": "work"}).stdout == b"profiled"


def test_completion(cli: Cli) -> None:
    script = cli.run("completion", "bash").stdout.decode()
    assert "_DONJON_COMPLETE" in script and "complete " in script
    words = subprocess.run(
        [DONJON],
        env={**cli.env, "_DONJON_COMPLETE": "bash_complete", "COMP_WORDS": "donjon sec", "COMP_CWORD": "1"},
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    assert "secret" in words


@pytest.fixture(scope="module")
def token_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = LiveServer(tmp_path_factory.mktemp("cli-token"), env={"DONJON_AUTH": "token"}, dev=False, workers=1)
    server.start()
    yield server
    server.stop()


def test_token_auth_and_refusals(token_server: LiveServer, tmp_path: Path) -> None:
    cli = Cli(token_server, tmp_path)
    env = {"DONJON_PROJECT_ID": "", "DONJON_AUTH": "token", "DONJON_DATA_DIR": str(token_server.data_dir)}
    tokens = {
        role: cli.run("token", "create", "--project", "p1", "--role", role, "--ttl", "1h", env=env).stdout
        for role in ("member", "reader")
    }
    member = {"DONJON_PROJECT_ID": "", "DONJON_TOKEN": tokens["member"].decode().strip()}
    reader = {"DONJON_PROJECT_ID": "", "DONJON_TOKEN": tokens["reader"].decode().strip()}
    secret_id = cli.run("secret", "store", "-F", "-", "-f", "value", input=b"x", env=member).stdout.split()[0]
    assert cli.run("secret", "get", secret_id.decode(), "-p", env=member).stdout == b"x"
    cli.run("secret", "store", "-F", "-", input=b"x", env=reader, code=5)  # a reader may not create
    cli.run("secret", "get", secret_id.decode(), "-p", env=reader, code=5)  # nor decrypt
    result = cli.run("secret", "list", env={"DONJON_PROJECT_ID": "", "DONJON_TOKEN": "djt_wrong"}, code=5)
    assert b"djt_wrong" not in result.stderr
