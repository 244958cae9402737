"""KV v2 against OpenBao 2.7.2's captures, replayed in order: the same requests must get the same status and
the same body, byte for byte once ids and times are put back to the captures' placeholders."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from starlette.testclient import TestClient

from tests.test_vault_sys import CAPTURES

# In capture order: each file continues the state the previous ones left (app/db, app/new, ...).
AREAS = ["kv-data", "kv-delete-undelete-destroy", "kv-metadata", "kv-subkeys", "kv-v1-style-paths", "kv-config"]
DIFFERENT = {
    # donjon keeps the KV mount's configuration fixed (docs/vault-api.md): its write is refused.
    "POST secret/config",
    # Go's JSON syntax errors are approximated (the capture's text does not even match its body).
    "POST invalid JSON body",
}
# Requests the captures describe but did not record: replayed before the step that follows them.
UNRECORDED = {
    "GET metadata after trimming (only last 2 versions kept)": [
        ("POST", "/v1/secret/data/app/trim", {"data": {"n": str(n)}}) for n in (1, 2, 3)
    ],
}
TIMES = {"created_time", "deletion_time", "updated_time"}


def placeholders(value: Any) -> Any:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if key == "request_id" and isinstance(item, str) and item:
                out[key] = "<request_id>"
            elif key in TIMES and isinstance(item, str) and item:
                out[key] = "<timestamp>"
            else:
                out[key] = placeholders(item)
        return out
    if isinstance(value, list):
        return [placeholders(v) for v in value]
    return value


def exchanges() -> list[tuple[str, dict[str, Any]]]:
    found: list[tuple[str, dict[str, Any]]] = []
    for area in AREAS:
        path = CAPTURES / f"{area}.json"
        if path.exists():
            found += [(area, e) for e in json.loads(path.read_text())]
    return found


def test_kv_v2_answers_as_openbao(app_client: TestClient) -> None:
    steps = exchanges()
    if not steps:
        pytest.skip("the OpenBao captures are not on this machine")
    token = f"kv-replay-{uuid.uuid4()}"  # dev mode: a fresh project
    problems = []
    for area, exchange in steps:
        request, expected = exchange["request"], exchange["response"]
        if exchange["title"] in DIFFERENT:
            continue
        for method, path, payload in UNRECORDED.get(exchange["title"], []):
            assert app_client.request(method, path, headers={"X-Vault-Token": token}, json=payload).status_code == 200
        headers = {k: v for k, v in request["headers"].items() if k.lower() != "x-vault-token"}
        headers["X-Vault-Token"] = token
        body = request["body"]
        content = None
        if body is not None:
            content = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        r = app_client.request(request["method"], request["path"], headers=headers, content=content)
        ours = placeholders(r.json()) if r.content else None
        if r.status_code != expected["status"] or ours != expected["body"]:
            wanted = f"{expected['status']} {json.dumps(expected['body'])}"
            problems.append(f"{area}: {exchange['title']}: {r.status_code} {r.text!r}\n   expected {wanted}")
    assert not problems, "\n".join(problems)
