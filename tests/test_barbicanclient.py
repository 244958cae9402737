"""Unmodified python-barbicanclient (library and ``barbican`` CLI) against a live donjon process."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from barbicanclient import client as barbican
from barbicanclient import exceptions as barbican_errors

from tests.live_server import LiveServer

pytestmark = pytest.mark.live
BARBICAN = str(Path(sys.executable).with_name("barbican"))
ALL_BYTES = bytes(range(256))


def lib(server: LiveServer, project: str, user: str = "user-1") -> Any:
    c = barbican.Client(endpoint=server.url, project_id=project)
    # The no-auth client sends X-Project-Id; X-User-Id makes the creator visible, as a Keystone user would.
    c.client._default_headers["X-User-Id"] = user
    return c


def cli(server: LiveServer, project: str, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    command = [BARBICAN, "--no-auth", "--endpoint", server.url, "--os-project-id", project, *args]
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    return subprocess.run(command, input=stdin, capture_output=True, timeout=60, env=env)


def cli_json(server: LiveServer, project: str, *args: str) -> Any:
    done = cli(server, project, *args, "-f", "json")
    assert done.returncode == 0, done.stderr.decode()
    return json.loads(done.stdout)


# --- library --------------------------------------------------------------------------------------------


def test_library_text_and_binary_round_trips(live_server: LiveServer) -> None:
    c = lib(live_server, f"lib-{uuid.uuid4()}")
    text = " multi-line\n\ttext with  spaces and ünïcode ✓\n"
    text_ref = c.secrets.create(name="text", payload=text).store()
    binary = os.urandom(64)
    binary_ref = c.secrets.create(
        name="bin", payload=binary, secret_type="symmetric", algorithm="aes", bit_length=512
    ).store()
    every_ref = c.secrets.create(name="every", payload=ALL_BYTES).store()
    assert c.secrets.get(text_ref).payload == text
    fetched = c.secrets.get(binary_ref)
    assert fetched.payload == binary
    assert (fetched.name, fetched.secret_type, fetched.algorithm, fetched.bit_length) == (
        "bin",
        "symmetric",
        "aes",
        512,
    )
    assert c.secrets.get(every_ref).payload == ALL_BYTES


def test_library_list_filters_and_paging(live_server: LiveServer) -> None:
    c = lib(live_server, f"lib-{uuid.uuid4()}")
    refs = [c.secrets.create(name=f"item-{i}", payload=f"v{i}").store() for i in range(7)]
    c.secrets.create(name="other", payload=b"k" * 16, secret_type="symmetric").store()
    page1 = c.secrets.list(limit=3, offset=0)
    page2 = c.secrets.list(limit=3, offset=3)
    page3 = c.secrets.list(limit=3, offset=6)
    seen = [s.secret_ref for s in page1 + page2 + page3]
    assert len(seen) == 8 and len(set(seen)) == 8
    assert seen[:7] == refs, "the default order is creation order"
    assert [s.name for s in c.secrets.list(name="item-3")] == ["item-3"]
    assert [s.name for s in c.secrets.list(secret_type="symmetric")] == ["other"]


def test_library_consumers_and_delete(live_server: LiveServer) -> None:
    c = lib(live_server, f"lib-{uuid.uuid4()}")
    ref = c.secrets.create(name="used", payload="p").store()
    secret = c.secrets.register_consumer(ref, service="image", resource_type="image", resource_id="img-1")
    assert secret.consumers == [{"service": "image", "resource_type": "image", "resource_id": "img-1"}]
    assert len(c.secrets.list_consumers(ref)) == 1
    with pytest.raises(barbican_errors.SecretHasConsumers):
        c.secrets.delete(ref)  # refused while consumers exist, unless forced
    c.secrets.remove_consumer(ref, service="image", resource_type="image", resource_id="img-1")
    c.secrets.delete(ref)
    with pytest.raises(barbican_errors.HTTPClientError) as info:
        c.secrets.get(ref).payload  # noqa: B018 - the lazy fetch is the call under test
    assert info.value.status_code == 404


def test_library_cannot_see_another_project(live_server: LiveServer) -> None:
    ref = lib(live_server, f"lib-{uuid.uuid4()}").secrets.create(name="mine", payload="x").store()
    other = lib(live_server, f"lib-{uuid.uuid4()}")
    with pytest.raises(barbican_errors.HTTPClientError) as info:
        other.secrets.get(ref).name  # noqa: B018
    assert info.value.status_code == 404
    assert other.secrets.list() == []


# --- CLI ------------------------------------------------------------------------------------------------


def test_cli_store_get_list_delete(live_server: LiveServer) -> None:
    project = f"cli-{uuid.uuid4()}"
    stored = cli_json(live_server, project, "secret", "store", "-n", "db-password", "-p", "s3cr3t value")
    ref = stored["Secret href"]
    assert ref.startswith(live_server.url + "/v1/secrets/")
    meta = cli_json(live_server, project, "secret", "get", ref)
    assert meta["Name"] == "db-password"
    assert meta["Content types"] is not None

    payload = cli(live_server, project, "secret", "get", ref, "-p", "-f", "value")
    assert payload.returncode == 0, payload.stderr
    assert payload.stdout.decode().rstrip("\n") == "s3cr3t value"

    text_ref = cli_json(live_server, project, "secret", "store", "-n", "txt", "-p", "plain", "-t", "text/plain")[
        "Secret href"
    ]
    text = cli(live_server, project, "secret", "get", text_ref, "-p", "-t", "text/plain", "-f", "value")
    assert text.stdout.decode().rstrip("\n") == "plain"

    listed = cli_json(live_server, project, "secret", "list")
    assert {row["Name"] for row in listed} == {"db-password", "txt"}
    assert [row["Name"] for row in cli_json(live_server, project, "secret", "list", "-n", "txt")] == ["txt"]
    paged = cli_json(live_server, project, "secret", "list", "-l", "1", "-o", "1")
    assert len(paged) == 1

    assert cli(live_server, project, "secret", "delete", ref).returncode == 0
    gone = cli(live_server, project, "secret", "get", ref)
    assert gone.returncode != 0
    assert b"404" in gone.stderr or b"Not Found" in gone.stderr


def test_cli_binary_payload_from_file_is_byte_exact(live_server: LiveServer, tmp_path: Path) -> None:
    project = f"cli-{uuid.uuid4()}"
    source = tmp_path / "key.bin"
    source.write_bytes(ALL_BYTES)
    ref = cli_json(live_server, project, "secret", "store", "-n", "file", "-F", str(source))["Secret href"]
    out = tmp_path / "out.bin"
    done = cli(live_server, project, "secret", "get", ref, "-F", str(out), "-t", "application/octet-stream")
    assert done.returncode == 0, done.stderr
    assert out.read_bytes() == ALL_BYTES
    # The same bytes through the raw API, base64 on the wire.
    c = lib(live_server, project)
    assert base64.b64encode(c.secrets.get(ref).payload) == base64.b64encode(ALL_BYTES)
