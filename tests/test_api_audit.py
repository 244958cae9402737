"""``/v1/audit/records`` and ``/v1/audit/verify`` (donjon extension): a project's own audit records, newest
first, for the readers policy allows (the project's admins by default), and the local chain's verdict."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from donjon.api.app import create_app
from donjon.audit.reader import AuditLog
from donjon.config import AuditConfig, KeystoreConfig, Settings
from tests.conftest import BASE
from tests.openapi_conformance import check_responses

SENTINEL = "audit-sentinel-console"


def _settings(database_url: str, data_dir: Path, *, enabled: bool = True) -> Settings:
    return Settings(
        database_url=database_url,
        data_dir=data_dir,
        host_href=BASE,
        keystore=KeystoreConfig(type="file", options={"path": str(data_dir / "root.key")}),
        audit=AuditConfig(enabled=enabled, fsync="never"),
    )


@pytest.fixture
def audited(database_url: str, tmp_path: Path) -> Iterator[tuple[TestClient, Path]]:
    with TestClient(create_app(_settings(database_url, tmp_path)), base_url=BASE) as client:
        yield check_responses(client), tmp_path


def _as(project: str, user: str = "alice", roles: str = "admin") -> dict[str, str]:
    return {"X-Project-Id": project, "X-User-Id": user, "X-Roles": roles}


def test_an_admin_reads_the_last_records_of_their_project_only(audited: tuple[TestClient, Path]) -> None:
    client, _ = audited
    a, b = f"a-{uuid.uuid4()}", f"b-{uuid.uuid4()}"
    body = {"name": "n", "payload": SENTINEL, "payload_content_type": "text/plain"}
    created = client.post("/v1/secrets", json=body, headers=_as(a, "bob", "member"))
    secret_id = created.json()["secret_ref"].rsplit("/", 1)[1]
    assert client.get(f"/v1/secrets/{secret_id}/payload", headers=_as(a, "bob", "member")).status_code == 200
    assert client.get("/v1/secrets", headers=_as(b, "eve")).status_code == 200
    assert client.get("/v1/secrets/nope", headers=_as(a, "bob", "member")).status_code == 404

    r = client.get("/v1/audit/records?limit=3", headers=_as(a))
    assert r.status_code == 200, r.text
    records = r.json()["records"]
    events = [rec["event"] for rec in records]
    # Newest first, only project A's callers, only outcomes (a pending record has no caller yet).
    assert [(e["action"], e["reason"]["reasonCode"]) for e in events] == [
        ("read", "404"),
        ("read", "200"),
        ("create", "201"),
    ]
    assert records[0]["seq"] > records[1]["seq"] > records[2]["seq"]
    assert {e["initiator"]["project_id"] for e in events} == {a}
    assert events[2]["target"]["id"] == secret_id
    assert SENTINEL not in r.text
    # Project B's admin sees B's list, nothing of A's (a request's own outcome is recorded after it reads).
    seen = [rec["event"] for rec in client.get("/v1/audit/records", headers=_as(b)).json()["records"]]
    assert [(e["initiator"]["project_id"], e["target"]["name"]) for e in seen] == [(b, "/v1/secrets")]
    seen = [rec["event"] for rec in client.get("/v1/audit/records", headers=_as(b)).json()["records"]]
    assert [e["target"]["name"] for e in seen] == ["/v1/audit/records", "/v1/secrets"]


def test_only_readers_of_the_audit_log_and_authorisation_before_validation(audited: tuple[TestClient, Path]) -> None:
    client, _ = audited
    project = f"p-{uuid.uuid4()}"
    for path in ("/v1/audit/records", "/v1/audit/records?limit=oops", "/v1/audit/verify"):
        for role in ("member", "reader"):
            r = client.get(path, headers=_as(project, roles=role))
            assert r.status_code == 403, (path, role, r.text)
            assert r.json()["title"] == "Forbidden"
    for bad in ("0", "501", "-1", "ten"):
        r = client.get(f"/v1/audit/records?limit={bad}", headers=_as(project))
        assert r.status_code == 400, r.text
        assert r.json() == {
            "code": 400,
            "title": "Bad Request",
            "description": "'limit' must be an integer from 1 to 500.",
        }
    assert client.get("/v1/audit/records?limit=500", headers=_as(project)).status_code == 200


def test_verify_answers_the_chain_verdict_and_names_a_tampered_line(audited: tuple[TestClient, Path]) -> None:
    client, data_dir = audited
    project = f"p-{uuid.uuid4()}"
    for _ in range(3):
        client.get("/v1/secrets", headers=_as(project))
    r = client.get("/v1/audit/verify", headers=_as(project))
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "no-store"
    verdict = r.json()
    assert verdict["ok"] is True and verdict["records"] >= 3 and verdict["problem"] is None

    log = data_dir / "audit.log"
    lines = log.read_bytes().splitlines(keepends=True)
    record = json.loads(lines[1])
    record["event"]["initiator"]["id"] = "mallory"  # an edit: the line's MAC no longer matches
    lines[1] = json.dumps(record, separators=(",", ":")).encode() + b"\n"
    log.write_bytes(b"".join(lines))
    verdict = client.get("/v1/audit/verify", headers=_as(project)).json()
    assert verdict["ok"] is False and verdict["line"] == 2 and "MAC mismatch" in verdict["problem"]
    # A record whose MAC fails is not served as one of the project's records.
    users = {
        rec["event"]["initiator"]["id"]
        for rec in client.get("/v1/audit/records", headers=_as(project)).json()["records"]
    }
    assert "mallory" not in users


def test_without_auditing_the_audit_api_is_404(database_url: str, tmp_path: Path) -> None:
    with TestClient(create_app(_settings(database_url, tmp_path, enabled=False)), base_url=BASE) as client:
        check_responses(client)
        for path in ("/v1/audit/records", "/v1/audit/verify"):
            r = client.get(path, headers=_as("p"))
            assert r.status_code == 404
            assert r.json()["description"] == "Auditing is not enabled on this server."
        # Policy first: a member is refused before learning whether auditing is on.
        assert client.get("/v1/audit/verify", headers=_as("p", roles="member")).status_code == 403


def test_the_reader_walks_back_across_blocks_and_stops_at_the_limit(tmp_path: Path) -> None:
    """Records written by the real sink, read backwards over many 64 KiB blocks (lines straddle them)."""
    from donjon.audit.chain import load_audit_key
    from donjon.audit.events import Target, build_event
    from donjon.audit.sinks import FileSink
    from donjon.auth import Caller

    key_file, log_path = tmp_path / "audit.key", tmp_path / "audit.log"
    sink = FileSink(log_path, load_audit_key(key_file, create=True), fsync=False)
    target = Target("data/security/keymanager/secret", "id", "/v1/secrets/id", "read")
    for n in range(3000):
        project = "mine" if n % 100 == 0 else "other"
        sink.write_batch([build_event(target, Caller(project, f"user-{n}", ("admin",)), 200, f"req-{n}")])
    sink.close()
    assert log_path.stat().st_size > 10 * 64 * 1024
    log = AuditLog(log_path, key_file)
    mine = log.last_records("mine", 100)
    assert [r["event"]["initiator"]["id"] for r in mine] == [f"user-{n}" for n in range(2900, -1, -100)]
    assert [r["seq"] for r in log.last_records("mine", 2)] == [2901, 2801]
    assert log.last_records("nobody", 10) == []
    assert log.verify().ok and log.verify().count == 3000
