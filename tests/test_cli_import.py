"""``donjon import``, run as a user would: 1 000+ secrets from a real Barbican 23 into a live donjon, interrupted
and resumed, verified byte for byte; and a Vault KV import from a real OpenBao."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import hvac
import pytest

from donjon.client import Passphrase, open_key_manager
from donjon.client._http import BarbicanAPI, DevAuth
from tests.components.openbao import OpenBao
from tests.live_server import LiveServer

if TYPE_CHECKING:
    from tests.components.barbican import Barbican

pytest_plugins = ["tests.components.barbican"]
pytestmark = pytest.mark.live
DONJON = str(Path(sys.executable).with_name("donjon"))
COUNT = 1000
TYPES = ("opaque", "symmetric", "passphrase", "private", "public", "certificate")


def payload(i: int) -> bytes:
    """Deterministic, varied: binary of 1..~1500 bytes, every 7th UTF-8 text (no edge whitespace)."""
    if i % 7 == 0:
        return f"text secret n°{i} \N{SNOWMAN} with inner  spaces".encode()
    return hashlib.shake_256(str(i).encode()).digest(1 + (i * 37) % 1500)


def seed(url: str, project: str, count: int) -> tuple[dict[str, int], float]:
    """Seed Barbican sequentially on one keep-alive connection, retrying its sporadic SQLite 500s."""
    t0 = time.monotonic()
    index: dict[str, int] = {}
    with httpx.Client(base_url=url, headers={"X-Project-Id": project}, timeout=30) as client:
        for i in range(count):
            data = payload(i)
            body: dict[str, object] = {"name": f"imported-{i}-é", "secret_type": TYPES[i % len(TYPES)]}
            if i % 7 == 0:
                body.update(payload=data.decode(), payload_content_type="text/plain")
            else:
                body.update(
                    payload=base64.b64encode(data).decode(),
                    payload_content_type="application/octet-stream",
                    payload_content_encoding="base64",
                )
            if i % 3 == 0:
                body.update(algorithm="aes", bit_length=256, mode="cbc")
            for attempt in range(5):
                r = client.post("/v1/secrets", json=body)
                if r.status_code == 201:
                    break
                assert r.status_code >= 500, r.text
                time.sleep(0.2 * (attempt + 1))  # a back-off for the real Barbican's SQLite, not a clock
            else:
                raise AssertionError(f"seeding secret {i} failed: {r.status_code}")
            secret_id = r.json()["secret_ref"].rsplit("/", 1)[1]
            index[secret_id] = i
            if i % 250 == 0:
                r = client.put(f"/v1/secrets/{secret_id}/metadata", json={"metadata": {"owner": f"team-{i}"}})
                assert r.status_code == 201, r.text
        # One secret without a payload.
        r = client.post("/v1/secrets", json={"name": "empty"})
        index[r.json()["secret_ref"].rsplit("/", 1)[1]] = -1
    return index, time.monotonic() - t0


def run_import(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([DONJON, "import", *args], env=env, capture_output=True, text=True, timeout=1200)


def test_barbican_to_donjon_1000_secrets_resumable(barbican: Barbican, live_server: LiveServer, tmp_path: Path) -> None:
    source_project, target_project = f"src-{uuid.uuid4()}", f"dst-{uuid.uuid4()}"
    index, seed_seconds = seed(barbican.url, source_project, COUNT)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DONJON_", "OS_"))}
    env.update(HOME=str(tmp_path), DONJON_URL=live_server.url, DONJON_PROJECT_ID=target_project)
    log = tmp_path / "import.jsonl"
    args = ["barbican", "--source-url", barbican.url, "--source-project-id", source_project, "--log", str(log)]

    # First run, interrupted part-way.
    t0 = time.monotonic()
    process = subprocess.Popen(
        [DONJON, "import", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        # A shell without job control starts background jobs with SIGINT ignored, and Python keeps an ignored
        # SIGINT ignored: under `pytest &` (as CI may run) Ctrl-C would never reach the import.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    while process.poll() is None and (not log.exists() or log.read_text().count('"target"') < 200):
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    process.communicate(timeout=60)
    # Counted by source: a copy finishing as Ctrl-C lands may be logged twice (the same line), which is harmless.
    first = len({entry["source"] for entry in map(json.loads, log.read_text().splitlines()) if "target" in entry})
    assert 200 <= first < COUNT + 1, "the import finished before it could be interrupted"

    # Resumed: only the rest is copied.
    result = run_import(env, *args)
    import_seconds = time.monotonic() - t0
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"already done {first}" in result.stderr

    mapping: dict[str, str] = {}
    for line in log.read_text().splitlines():
        entry = json.loads(line)
        assert "error" not in entry, entry
        if "target" in entry:
            assert mapping.setdefault(entry["source"], entry["target"]) == entry["target"], "copied twice"
    assert set(mapping) == set(index)

    target = BarbicanAPI(live_server.url, auth=DevAuth(target_project))
    listed = {s["secret_ref"].rsplit("/", 1)[1]: s for s in target.list_secrets()}
    # Ctrl-C finished and logged the copies under way: nothing was copied twice, nothing lost.
    assert len(listed) == COUNT + 1
    t1 = time.monotonic()
    for source_id, target_id in mapping.items():
        i = index[source_id]
        meta = listed[target_id]
        if i < 0:
            assert "content_types" not in meta and meta["name"] == "empty"
            continue
        assert target.get_payload(target_id).data == payload(i), f"secret {i} differs"
        assert meta["name"] == f"imported-{i}-é" and meta["secret_type"] == TYPES[i % len(TYPES)]
        expected_type = "text/plain" if i % 7 == 0 else "application/octet-stream"
        assert meta["content_types"]["default"] == expected_type
        if i % 3 == 0:
            assert (meta["algorithm"], meta["bit_length"], meta["mode"]) == ("aes", 256, "cbc")
        if i % 250 == 0:
            assert target.secret_metadata(target_id) == {"owner": f"team-{i}"}
    verify_seconds = time.monotonic() - t1

    # Nothing left to do: a third run copies nothing.
    again = run_import(env, *args)
    assert again.returncode == 0 and f"copied 0, already done {COUNT + 1}" in again.stderr
    print(
        f"\nimport of {COUNT + 1} secrets: seed {seed_seconds:.1f}s, import (interrupted + resumed) "
        f"{import_seconds:.1f}s, byte-exact check {verify_seconds:.1f}s",
        file=sys.stderr,
    )


def test_import_refuses_another_imports_log(barbican: Barbican, live_server: LiveServer, tmp_path: Path) -> None:
    log = tmp_path / "other.jsonl"
    log.write_text(json.dumps({"kind": "vault", "source_url": "http://elsewhere"}) + "\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DONJON_", "OS_"))}
    env.update(HOME=str(tmp_path), DONJON_URL=live_server.url, DONJON_PROJECT_ID="x")
    result = run_import(env, "barbican", "--source-url", barbican.url, "--source-project-id", "p", "--log", str(log))
    assert result.returncode == 3 and "another import" in result.stderr
    result = run_import(env, "barbican", "--source-url", barbican.url, "--log", str(log))
    assert result.returncode == 2


def test_vault_kv_to_donjon(openbao: OpenBao, live_server: LiveServer, tmp_path: Path) -> None:  # noqa: F811
    path = f"import-{uuid.uuid4()}"
    client = hvac.Client(url=openbao.url, token=openbao.token)
    client.secrets.kv.v2.create_or_update_secret(path=f"{path}/db", secret={"user": "app", "password": "p@ss"})
    client.secrets.kv.v2.create_or_update_secret(path=f"{path}/nested/api", secret={"key": "k3y"})
    with open_key_manager({"type": "vault", "url": openbao.url, "token": openbao.token, "path": path}) as km:
        sdk_id = km.store(Passphrase(data=b"\x00sdk bytes\xff", name="from-sdk"))
    token_file = tmp_path / "token"
    token_file.write_text(openbao.token)
    project = f"vault-{uuid.uuid4()}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DONJON_", "OS_", "VAULT_"))}
    env.update(HOME=str(tmp_path), DONJON_URL=live_server.url, DONJON_PROJECT_ID=project)
    log = tmp_path / "vault.jsonl"
    args = ["vault", "--source-url", openbao.url, "--source-token-file", str(token_file), "--path", path]
    result = run_import(env, *args, "--log", str(log), "--verify")
    assert result.returncode == 0, result.stderr
    assert "copied 3" in result.stderr and openbao.token not in result.stderr + log.read_text()
    target = BarbicanAPI(live_server.url, auth=DevAuth(project))
    by_name = {s["name"]: s for s in target.list_secrets()}
    assert set(by_name) == {"db", "nested/api", "from-sdk"}
    db = by_name["db"]["secret_ref"]
    assert json.loads(target.get_payload(db).data) == {"user": "app", "password": "p@ss"}
    assert by_name["from-sdk"]["secret_type"] == "passphrase"
    assert target.get_payload(by_name["from-sdk"]["secret_ref"]).data == b"\x00sdk bytes\xff"
    assert sdk_id in log.read_text()


def test_barbican_containers_acls_and_consumers_come_along(
    barbican: Barbican, live_server: LiveServer, tmp_path: Path
) -> None:
    source_project, target_project = f"src-{uuid.uuid4()}", f"dst-{uuid.uuid4()}"
    source = BarbicanAPI(barbican.url, auth=DevAuth(source_project))
    key = source.store_bytes(b"k" * 32, secret_type="symmetric", name="key")
    cert = source.store_bytes(b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n", name="cert")
    private = source.store_bytes(b"private key bytes", secret_type="private", name="private")
    source.set_acl("secrets", key, ["alice", "bob"], False)
    source.add_consumer("secrets", key, {"service": "nova", "resource_type": "instance", "resource_id": "vm-1"})
    bundle = source.create_container("generic", {"one": key, "two": private}, name="bundle")
    source.set_acl("containers", bundle, ["carol"], True)
    source.add_consumer("containers", bundle, {"name": "octavia", "URL": "https://lb.example/1"})
    tls = source.create_container("certificate", {"certificate": cert, "private_key": private}, name="tls")

    env = {k: v for k, v in os.environ.items() if not k.startswith(("DONJON_", "OS_"))}
    env.update(HOME=str(tmp_path), DONJON_URL=live_server.url, DONJON_PROJECT_ID=target_project)
    log = tmp_path / "import.jsonl"
    args = ["barbican", "--source-url", barbican.url, "--source-project-id", source_project, "--log", str(log)]
    result = run_import(env, *args)
    assert result.returncode == 0, result.stderr
    assert "copied 5, already done 0, failed 0" in result.stderr

    done = {e["source"]: e["target"] for e in map(json.loads, log.read_text().splitlines()) if "target" in e}
    target = BarbicanAPI(live_server.url, auth=DevAuth(target_project))
    copy = {ref.rsplit("/", 1)[1]: done[ref.rsplit("/", 1)[1]] for ref in (key, cert, private)}
    key_copy = copy[key.rsplit("/", 1)[1]]
    assert target.get_acl("secrets", key_copy)["read"]["users"] == ["alice", "bob"]
    assert target.get_acl("secrets", key_copy)["read"]["project-access"] is False
    assert [(c["service"], c["resource_id"]) for c in target.list_consumers("secrets", key_copy)] == [("nova", "vm-1")]

    containers = {c["name"]: c for c in target.list_containers()}
    assert set(containers) == {"bundle", "tls"} and containers["tls"]["type"] == "certificate"
    for name, source_ref in (("bundle", bundle), ("tls", tls)):
        assert done[f"container:{source_ref.rsplit('/', 1)[1]}"] == containers[name]["container_ref"].rsplit("/", 1)[1]
    refs = {r["name"]: r["secret_ref"].rsplit("/", 1)[1] for r in containers["bundle"]["secret_refs"]}
    assert refs == {"one": key_copy, "two": copy[private.rsplit("/", 1)[1]]}
    assert target.get_payload(refs["two"]).data == b"private key bytes"
    bundle_copy = containers["bundle"]["container_ref"]
    assert target.get_acl("containers", bundle_copy)["read"]["users"] == ["carol"]
    consumers = [(c["name"], c["URL"]) for c in target.list_consumers("containers", bundle_copy)]
    assert consumers == [("octavia", "https://lb.example/1")]
    assert target.get_acl("containers", containers["tls"]["container_ref"]).get("read", {}).get("users", []) == []

    again = run_import(env, *args)
    assert again.returncode == 0 and "copied 0, already done 5" in again.stderr
