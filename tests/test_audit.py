"""Audit (issue 6): a CADF event for every request, a tamper-evident log, fail-closed, notifications."""

from __future__ import annotations

import asyncio
import base64
import errno
import json
import multiprocessing
import os
import re
import resource
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from starlette.applications import Starlette
from starlette.testclient import TestClient

from donjon.api.app import create_app
from donjon.audit import Auditor, build_auditor
from donjon.audit.chain import Head, head_path, load_audit_key
from donjon.audit.events import OBSERVER_ID, Target, build_event, outcome_of, target_of
from donjon.audit.kernel_fdatasync import KernelFdatasync
from donjon.audit.sinks import FileSink
from donjon.audit.verify import verify
from donjon.auth import Caller
from donjon.cli.main import cli
from donjon.config import AuditConfig, KeystoreConfig, Settings
from tests.conftest import BASE
from tests.live_server import DONJON, LiveServer

# Every payload, passphrase and token these tests send starts with this; conftest greps all logs for it.
SENTINEL = "audit-sentinel-"
SECRET_TYPE = "data/security/keymanager/secret"


def make_settings(database_url: str, data_dir: Path, **audit: Any) -> Settings:
    extra = {k: audit.pop(k) for k in ("auth",) if k in audit}
    return Settings(
        database_url=database_url,
        data_dir=data_dir,
        host_href=BASE,
        keystore=KeystoreConfig(type="file", options={"path": str(data_dir / "root.key")}),
        audit=AuditConfig(**audit),
        **extra,
    )


@pytest.fixture
def audited(database_url: str, tmp_path: Path) -> Iterator[tuple[TestClient, Path]]:
    settings = make_settings(database_url, tmp_path)
    with TestClient(create_app(settings), base_url=BASE) as client:
        yield client, tmp_path


def events(data_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line)["event"] for line in (data_dir / "audit.log").read_bytes().splitlines()]


def outcomes(data_dir: Path) -> list[dict[str, Any]]:
    return [e for e in events(data_dir) if e["outcome"] != "pending"]


def headers(project: str, user: str = "alice", roles: str = "admin", **extra: str) -> dict[str, str]:
    return {"X-Project-Id": project, "X-User-Id": user, "X-Roles": roles, **extra}


def auditor_of(app: Starlette) -> Auditor:
    auditor = next(m.kwargs["auditor"] for m in app.user_middleware if "auditor" in m.kwargs)
    assert isinstance(auditor, Auditor)
    return auditor


def request_id(event: dict[str, Any]) -> str:
    [attachment] = event["attachments"]
    assert attachment["name"] == "request_id"
    return str(attachment["content"])


# --- events -------------------------------------------------------------------------------------------


def test_write_and_read_are_audited_with_initiator_target_and_outcome(audited: tuple[TestClient, Path]) -> None:
    client, data_dir = audited
    project = f"p-{uuid.uuid4()}"
    body = {"payload": f"{SENTINEL}write-read", "payload_content_type": "text/plain"}
    created = client.post("/v1/secrets", json=body, headers=headers(project))
    assert created.status_code == 201
    secret_id = created.json()["secret_ref"].rsplit("/", 1)[1]
    read = client.get(f"/v1/secrets/{secret_id}/payload", headers=headers(project, Accept="text/plain"))
    assert read.text == body["payload"]
    listed = client.get("/v1/secrets?name=" + SENTINEL + "query", headers=headers(project))
    assert listed.status_code == 200
    meta = client.put(f"/v1/secrets/{secret_id}/metadata", json={"metadata": {"k": "v"}}, headers=headers(project))
    assert meta.status_code == 201
    assert client.delete(f"/v1/secrets/{secret_id}", headers=headers(project)).status_code == 204

    all_events = events(data_dir)
    # Fail-closed (the default): a pending event before each handler that may have an effect, then its
    # outcome, same request id. Reads (this payload is not a limited secret's, and the list) have none.
    outcomes_in_order = [e["outcome"] for e in all_events]
    assert outcomes_in_order == ["pending", "success", "success", "success"] + ["pending", "success"] * 2
    assert all_events[2]["action"] == "read" and all_events[2]["target"]["id"] == secret_id
    assert all_events[3]["action"] == "read/list" and all_events[3]["target"]["name"] == "/v1/secrets"
    paired = all_events[:2] + all_events[4:]
    for pending, done in zip(paired[::2], paired[1::2], strict=True):
        assert request_id(pending) == request_id(done)
        assert pending["initiator"]["id"] == "unknown"  # not authenticated yet when it is written
        assert pending["action"] == done["action"] and pending["target"]["typeURI"] == done["target"]["typeURI"]
    create, payload, listing, metadata, delete = outcomes(data_dir)
    assert create["action"] == "create"
    assert create["reason"] == {"reasonType": "HTTP", "reasonCode": "201"}
    assert create["target"] == {"typeURI": SECRET_TYPE, "id": secret_id, "name": "/v1/secrets"}
    assert create["initiator"] == {
        "typeURI": "service/security/account/user",
        "id": "alice",
        "project_id": project,
        "roles": ["admin"],
    }
    assert create["observer"]["name"] == "donjon"
    assert create["typeURI"] == "http://schemas.dmtf.org/cloud/audit/1.0/event"
    assert create["eventType"] == "activity" and create["eventTime"]
    assert request_id(create) == created.headers["x-openstack-request-id"]
    assert payload["action"] == "read" and payload["outcome"] == "success"
    assert payload["target"] == {
        "typeURI": f"{SECRET_TYPE}/payload",
        "id": secret_id,
        "name": f"/v1/secrets/{secret_id}/payload",
    }
    assert listing["action"] == "read/list" and listing["target"]["name"] == "/v1/secrets"  # no query string
    assert metadata["action"] == "update" and metadata["target"]["typeURI"] == f"{SECRET_TYPE}/metadata"
    assert delete["action"] == "delete" and delete["reason"]["reasonCode"] == "204"
    assert delete["target"]["id"] == secret_id


def test_denials_are_audited(audited: tuple[TestClient, Path]) -> None:
    client, data_dir = audited
    owner, intruder = f"p-{uuid.uuid4()}", f"p-{uuid.uuid4()}"
    body = {"payload": f"{SENTINEL}denied", "payload_content_type": "text/plain"}
    secret_id = client.post("/v1/secrets", json=body, headers=headers(owner)).json()["secret_ref"].rsplit("/", 1)[1]
    # Another project's secret: 404 (no existence oracle), on record with who asked.
    assert client.get(f"/v1/secrets/{secret_id}/payload", headers=headers(intruder, "mallory")).status_code == 404
    # A reader may not create: 403.
    assert client.post("/v1/secrets", json=body, headers=headers(owner, "bob", "reader")).status_code == 403
    # No such route (404) and a known path with a method it does not take (405).
    assert client.get("/v1/no-such-thing/x", headers=headers(owner)).status_code == 404
    assert client.patch("/v1/secrets", headers=headers(owner)).status_code == 405
    # Discovery and health are not audited.
    assert client.get("/").status_code == 300
    assert client.get("/healthcheck").status_code == 200

    _, not_found, forbidden, no_route, not_allowed = outcomes(data_dir)
    assert not_found["outcome"] == "failure" and not_found["reason"]["reasonCode"] == "404"
    assert not_found["initiator"]["id"] == "mallory" and not_found["initiator"]["project_id"] == intruder
    assert not_found["target"]["id"] == secret_id and not_found["action"] == "read"
    assert forbidden["reason"]["reasonCode"] == "403" and forbidden["action"] == "create"
    assert forbidden["initiator"]["roles"] == ["reader"] and forbidden["initiator"]["id"] == "bob"
    assert no_route["target"] == {"typeURI": "unknown", "id": "unknown", "name": "/v1/no-such-thing/x"}
    assert no_route["reason"]["reasonCode"] == "404"
    assert not_allowed["reason"]["reasonCode"] == "405" and not_allowed["target"]["typeURI"] == SECRET_TYPE
    # Two events per request, but one for each GET (the refused payload read, no route): reads have no pending
    # event, and the refused read never reached a limited secret.
    assert len(events(data_dir)) == 8


def test_unauthenticated_requests_are_audited_without_the_token(database_url: str, tmp_path: Path) -> None:
    settings = make_settings(database_url, tmp_path, auth="token")
    token = f"djt_{uuid.uuid4().hex}_{SENTINEL}{'x' * (43 - len(SENTINEL))}"
    with TestClient(create_app(settings), base_url=BASE) as client:
        assert client.get("/v1/secrets").status_code == 401
        assert client.get("/v1/secrets", headers={"X-Auth-Token": token}).status_code == 401
    for event in outcomes(tmp_path):
        assert event["reason"]["reasonCode"] == "401"
        assert event["initiator"] == {
            "typeURI": "service/security/account/user",
            "id": "unknown",
            "project_id": "unknown",
        }
    assert SENTINEL.encode() not in (tmp_path / "audit.log").read_bytes()


def test_no_payload_passphrase_or_token_reaches_the_log(audited: tuple[TestClient, Path]) -> None:
    client, data_dir = audited
    project = f"p-{uuid.uuid4()}"
    h = headers(project, **{"X-Auth-Token": f"{SENTINEL}header-token"})
    for i in range(3):
        body = {
            "name": f"{SENTINEL}name-{i}",
            "payload": f"{SENTINEL}payload-{i}",
            "payload_content_type": "text/plain",
        }
        secret_id = client.post("/v1/secrets", json=body, headers=h).json()["secret_ref"].rsplit("/", 1)[1]
        client.get(f"/v1/secrets/{secret_id}/payload", headers={**h, "Accept": "text/plain"})
        client.put(f"/v1/secrets/{secret_id}/metadata/k{i}", json={"key": f"k{i}", "value": SENTINEL}, headers=h)
    order = {"type": "asymmetric", "meta": {"algorithm": "rsa", "bit_length": 2048, "pass_phrase": f"{SENTINEL}pp"}}
    assert client.post("/v1/orders", json=order, headers=h).status_code == 202
    client.post("/v1/secrets", content=f"{SENTINEL}not-json", headers={**h, "Content-Type": "text/plain"})
    log = (data_dir / "audit.log").read_bytes() + head_path(data_dir / "audit.log").read_bytes()
    assert len(outcomes(data_dir)) == 11
    assert SENTINEL.encode() not in log


def test_every_route_and_method_is_audited(audited: tuple[TestClient, Path]) -> None:
    client, data_dir = audited
    from starlette.routing import Route

    from donjon.api.audit_middleware import EXEMPT
    from donjon.ui import UNAUDITED  # the web console's pages and assets (tests/test_console_server.py)

    sent: list[tuple[str, str]] = []
    for route in client.app.router.routes:  # type: ignore[attr-defined]
        if not isinstance(route, Route) or route.path in EXEMPT | UNAUDITED:
            continue
        path = route.path
        for name in route.param_convertors:
            path = path.replace("{" + name + ":path}", "x").replace("{" + name + "}", str(uuid.uuid4()))
        for method in sorted((route.methods or set()) - {"HEAD"}):
            client.request(method, path, headers=headers(f"p-{uuid.uuid4()}", roles="reader"))
            sent.append((method, path))
    done = outcomes(data_dir)
    assert len(done) == len(sent) > 40
    for (method, path), event in zip(sent, done, strict=True):
        assert event["target"]["name"] == path, (method, path)
        assert event["target"]["typeURI"].startswith("data/security/keymanager"), (method, path)
        assert event["action"] != "unknown" and event["reason"]["reasonType"] == "HTTP", (method, path)


def _pycadf_event(target: Target, caller: Caller | None, status: int | None, request_id: str) -> dict[str, Any]:
    """The event as pycadf builds it (the reference the fast builder is held to)."""
    from pycadf import cadftaxonomy as taxonomy
    from pycadf import cadftype, timestamp
    from pycadf.attachment import Attachment
    from pycadf.event import Event
    from pycadf.reason import Reason
    from pycadf.resource import Resource

    initiator = Resource(typeURI=taxonomy.ACCOUNT_USER, id=(caller.user_id or "unknown") if caller else "unknown")
    initiator.project_id = caller.project_id if caller else "unknown"
    if caller is not None:
        initiator.roles = list(caller.roles)
        if caller.system_scope:
            initiator.system_scope = caller.system_scope
    event = Event(
        eventType=cadftype.EVENTTYPE_ACTIVITY,
        eventTime=timestamp.get_utc_now(),
        action=target.action,
        outcome=outcome_of(status),
        initiator=initiator,
        target=Resource(typeURI=target.type_uri, id=target.resource_id, name=target.path),
        observer=Resource(typeURI=taxonomy.SERVICE_KEYMGR, id=OBSERVER_ID, name="donjon"),
        reason=Reason(reasonType="HTTP", reasonCode=str(status) if status is not None else "pending"),
    )
    event.add_attachment(Attachment(typeURI="mime:text/plain", content=request_id, name="request_id"))
    assert event.is_valid()
    return dict(json.loads(json.dumps(event.as_dict())))


@pytest.mark.filterwarnings("ignore:Invalid uuid")
@pytest.mark.parametrize(
    "caller",
    [None, Caller("proj", "alice", ("admin", "member")), Caller("proj", None, ("reader",), system_scope="all")],
)
@pytest.mark.parametrize("status", [None, 201, 404])
def test_events_are_what_pycadf_builds(caller: Caller | None, status: int | None) -> None:
    for target in (
        target_of("GET", "/v1/secrets/{secret_id}/payload", {"secret_id": "abc"}, "/v1/secrets/abc/payload"),
        target_of("POST", "/v1/secrets", {}, "/v1/secrets"),
        target_of("GET", None, {}, "/v1/nowhere"),
    ):
        fast = build_event(target, caller, status, "req-1")
        reference = _pycadf_event(target, caller, status, "req-1")
        assert list(fast) == list(reference)  # same keys, same order: same lines as before
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+0000", fast["eventTime"])
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+0000", reference["eventTime"])
        for key in ("id", "eventTime"):
            assert isinstance(fast.pop(key), str) and reference.pop(key)
        assert fast == reference
        assert json.dumps(fast) == json.dumps(reference)


# --- the chain ------------------------------------------------------------------------------------------


def _append_many(path: str, key: bytes, n: int) -> None:
    sink = FileSink(Path(path), key, fsync=False)
    for i in range(n):
        sink.append({"n": i, "pid": multiprocessing.current_process().name})
    sink.close()


def test_processes_appending_to_one_log_keep_one_chain(tmp_path: Path) -> None:
    key = load_audit_key(tmp_path / "audit.key", create=True)
    path = tmp_path / "audit.log"
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_append_many, args=(str(path), key, 150), name=f"w{i}") for i in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    verdict = verify(path, key)
    assert verdict.ok, verdict
    assert verdict.count == 600


Tamper = Callable[[list[bytes]], list[bytes]]


def _delete(lines: list[bytes]) -> list[bytes]:
    return lines[:2] + lines[3:]


def _swap(lines: list[bytes]) -> list[bytes]:
    return lines[:2] + [lines[3], lines[2]] + lines[4:]


def _edit(lines: list[bytes]) -> list[bytes]:
    record = json.loads(lines[2])
    record["event"]["initiator"]["id"] = "someone-else"
    return lines[:2] + [json.dumps(record, separators=(",", ":")).encode() + b"\n"] + lines[3:]


def _truncate(lines: list[bytes]) -> list[bytes]:
    return lines[:-1]


TAMPERING: dict[str, tuple[Tamper, str]] = {
    "deleted line": (_delete, "line 3: sequence 4, expected 3"),
    "swapped pair": (_swap, "line 3: sequence 4, expected 3"),
    "edited field": (_edit, "line 3: MAC mismatch"),
    "truncated tail": (_truncate, "its head state says"),
}


def _verify_cli(path: Path, key: Path) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["audit", "verify", "--path", str(path), "--key", str(key)])
    return result.exit_code, result.output


def assert_tampering_detected(log: Path, key: Path, tmp_path: Path) -> None:
    lines = log.read_bytes().splitlines(keepends=True)
    assert len(lines) >= 5
    for name, (tamper, expected) in TAMPERING.items():
        copy = tmp_path / f"tampered-{name.replace(' ', '-')}.log"
        copy.write_bytes(b"".join(tamper(lines)))
        head_path(copy).write_bytes(head_path(log).read_bytes())
        code, output = _verify_cli(copy, key)
        assert code == 1, (name, output)
        assert expected in output, (name, output)


def test_verify_passes_on_an_intact_log_and_fails_on_each_tampering(
    audited: tuple[TestClient, Path], tmp_path: Path
) -> None:
    client, data_dir = audited
    project = f"p-{uuid.uuid4()}"
    for i in range(3):
        client.post(
            "/v1/secrets",
            json={"payload": f"{SENTINEL}{i}", "payload_content_type": "text/plain"},
            headers=headers(project),
        )
    log, key = data_dir / "audit.log", data_dir / "audit.key"
    code, output = _verify_cli(log, key)
    assert code == 0 and "ok: 6 records" in output
    assert_tampering_detected(log, key, tmp_path)
    # A missing head state, and a key that is not the log's.
    copy = tmp_path / "headless.log"
    copy.write_bytes(log.read_bytes())
    code, output = _verify_cli(copy, key)
    assert code == 1 and "head state" in output and "missing" in output
    other = tmp_path / "other.key"
    load_audit_key(other, create=True)
    code, output = _verify_cli(log, other)
    assert code == 1 and "MAC mismatch" in output


def test_a_crash_between_record_and_head_is_recovered_and_tolerated(tmp_path: Path) -> None:
    key = load_audit_key(tmp_path / "audit.key", create=True)
    log = tmp_path / "audit.log"
    sink = FileSink(log, key, fsync=False)
    for i in range(3):
        sink.append({"n": i})
    stale_head = head_path(log).read_bytes()
    sink.append({"n": 3})
    head_path(log).write_bytes(stale_head)  # as if the process died after the record, before the head
    assert verify(log, key).ok and "1 records after the head state" in verify(log, key).note
    sink.append({"n": 4})  # the next writer catches up from the log itself
    with log.open("ab") as f:
        f.write(b'{"v":1,"seq":6,"pr')  # a torn record: the writer died mid-line
    sink.append({"n": 5})
    verdict = verify(log, key)
    assert not verdict.ok and verdict.line == 6 and "not JSON" in verdict.problem
    lines = log.read_bytes().splitlines()
    assert len(lines) == 7 and json.loads(lines[-1])["seq"] == 6


# --- group commit ---------------------------------------------------------------------------------------


def _group_commit_worker(path: str, key: bytes, name: str, threads: int, per_thread: int, coroutines: int) -> None:
    """Threads (sync appends) and coroutines (async appends) of one process, all into one fsync'd sink."""
    sink = FileSink(Path(path), key, fsync=True)

    def thread_body(t: int) -> None:
        for i in range(per_thread):
            sink.append({"id": f"{name}/t{t}/{i}"})

    async def coroutine_bodies() -> None:
        await asyncio.gather(*(sink.append_async({"id": f"{name}/c/{i}"}) for i in range(coroutines)))

    workers = [threading.Thread(target=thread_body, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    asyncio.run(coroutine_bodies())
    for w in workers:
        w.join()
    # Batching happened: the coroutines' records of one loop iteration are appended together, and the appends
    # that queue up while one fdatasync runs share the next.
    assert 1 <= sink.loop_batches < coroutines
    assert sink.syncer.batches < sink.syncer.items == threads * per_thread
    assert sink.sync_batches - sink.syncer.batches <= sink.loop_batches  # the loops' syncs
    sink.close()


def test_group_commit_from_threads_and_processes_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    key = load_audit_key(tmp_path / "audit.key", create=True)
    path = tmp_path / "audit.log"
    ctx = multiprocessing.get_context("spawn")
    names = [f"p{i}" for i in range(3)]
    procs = [ctx.Process(target=_group_commit_worker, args=(str(path), key, n, 6, 40, 60)) for n in names]
    for p in procs:
        p.start()
    _group_commit_worker(str(path), key, "main", 6, 40, 60)  # this process too, at the same time
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    verdict = verify(path, key)
    assert verdict.ok and verdict.note == "", verdict
    assert verdict.count == 4 * (6 * 40 + 60)
    ids = [e["id"] for e in events(tmp_path)]
    expected = {f"{n}/t{t}/{i}" for n in [*names, "main"] for t in range(6) for i in range(40)}
    expected |= {f"{n}/c/{i}" for n in [*names, "main"] for i in range(60)}
    assert len(ids) == len(set(ids)) and set(ids) == expected
    # Each thread's records are in its own order (a caller's next record is only sent after the last).
    for n in names:
        mine = [int(i.rsplit("/", 1)[1]) for i in ids if i.startswith(f"{n}/t0/")]
        assert mine == sorted(mine)


def _fill_the_disk(path: str, key: bytes) -> dict[str, Any]:
    """In a child process: appends under a file size limit (as a full disk), then with the limit lifted."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # an EFBIG error instead of a killed process
    sink = FileSink(Path(path), key, fsync=True)
    for i in range(3):
        sink.append({"id": f"before/{i}"})
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    # Room for part of one record only: the first write of a batch is cut short, the next ones fail.
    resource.setrlimit(resource.RLIMIT_FSIZE, (os.path.getsize(path) + 100, hard))

    async def attempt(prefix: str, n: int) -> list[str]:
        results = await asyncio.gather(
            *(sink.append_async({"id": f"{prefix}/{i}"}) for i in range(n)), return_exceptions=True
        )
        return [type(r).__name__ if isinstance(r, BaseException) else "ok" for r in results]

    failed = asyncio.run(attempt("full", 20))
    thread_errors: list[str] = []

    def sync_attempt() -> None:
        try:
            sink.append({"id": "full/thread"})
            thread_errors.append("ok")
        except OSError as exc:
            thread_errors.append(f"OSError {exc.errno}")

    t = threading.Thread(target=sync_attempt)
    t.start()
    t.join()
    size_while_full = os.path.getsize(path)
    resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))  # the cause goes away
    recovered = asyncio.run(attempt("after", 20))
    sink.close()
    return {"failed": failed, "thread": thread_errors, "size_while_full": size_while_full, "recovered": recovered}


def test_a_failed_flush_fails_every_waiter_and_later_batches_recover(tmp_path: Path) -> None:
    key = load_audit_key(tmp_path / "audit.key", create=True)
    path = tmp_path / "audit.log"
    FileSink(path, key, fsync=False).open()
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        result = pool.apply(_fill_the_disk, (str(path), key))
    assert result["failed"] == ["OSError"] * 20  # every waiter of every batch while the disk was full
    assert result["thread"] == [f"OSError {errno.EFBIG}"]
    recovered_size = path.stat().st_size
    assert result["recovered"] == ["ok"] * 20
    verdict = verify(path, key)
    # The partly written batch was taken back off: no torn line, no record of a refused caller.
    assert verdict.ok and verdict.count == 23, verdict
    ids = [e["id"] for e in events(tmp_path)]
    assert ids[:3] == [f"before/{i}" for i in range(3)] and sorted(ids[3:]) == sorted(f"after/{i}" for i in range(20))
    assert result["size_while_full"] < recovered_size


def test_fail_closed_answers_503_to_every_request_of_a_failed_batch(database_url: str, tmp_path: Path) -> None:
    settings = make_settings(database_url, tmp_path)
    app = create_app(settings)
    project = f"p-{uuid.uuid4()}"
    with TestClient(app, base_url=BASE) as client:
        sink = auditor_of(app).file
        real_append = sink._append
        broken = threading.Event()
        batches: list[int] = []

        def flush(events: Any) -> Any:
            batches.append(len(events))
            if broken.is_set():
                raise OSError(5, "Input/output error")
            return real_append(events)

        sink._append = flush  # type: ignore[method-assign]
        broken.set()
        with ThreadPoolExecutor(8) as pool:
            statuses = list(
                pool.map(lambda _: client.get("/v1/secrets", headers=headers(project)).status_code, range(16))
            )
        assert statuses == [503] * 16
        broken.clear()
        with ThreadPoolExecutor(8) as pool:
            statuses = list(
                pool.map(lambda _: client.get("/v1/secrets", headers=headers(project)).status_code, range(16))
            )
        assert statuses == [200] * 16
    # A list changes nothing: no pending record, so 16 refused outcome records (the responses held back and
    # replaced by 503s), then 16 outcome records.
    assert sum(batches) == 16 + 16
    assert verify(tmp_path / "audit.log", load_audit_key(tmp_path / "audit.key", create=False)).count == 16


class _Recording:
    """The ``os`` of the sinks module, with the calls that order a batch's bytes recorded."""

    def __init__(self, real: Any, log_path: Path) -> None:
        self._real = real
        self._log_path = log_path
        self.calls: list[tuple[str, bytes]] = []
        self._guard = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def fdatasync(self, fd: int) -> None:
        self._real.fdatasync(fd)
        with self._guard:  # what the log holds once the fdatasync returned: all of it is durable
            self.calls.append(("fdatasync", self._log_path.read_bytes()))

    def pwrite(self, fd: int, data: bytes, offset: int) -> int:
        with self._guard:  # slot 0 is the durable head, slot 1 the tail the next writer continues from
            self.calls.append(("head" if offset == 0 else "tail", data))
        return int(self._real.pwrite(fd, data, offset))


def _record_kernel_fdatasyncs(monkeypatch: pytest.MonkeyPatch, recording: _Recording) -> None:
    """Record each kernel fdatasync as it returns, with what the log held when it was submitted: the kernel's
    fdatasync begins after its submission, so all of that is durable once it returned."""
    real_submit = KernelFdatasync.fdatasync

    def submit(self: KernelFdatasync, fd: int, done: Callable[[OSError | None], None]) -> None:
        seen = recording._log_path.read_bytes()

        def returned(error: OSError | None) -> None:
            if error is None:
                with recording._guard:
                    recording.calls.append(("fdatasync", seen))
            done(error)

        real_submit(self, fd, returned)

    monkeypatch.setattr(KernelFdatasync, "fdatasync", submit)


@pytest.mark.parametrize("loop_syncs", ["kernel", "thread"])
def test_an_acknowledged_record_is_durable_and_the_head_follows_the_fdatasync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, loop_syncs: str
) -> None:
    key = load_audit_key(tmp_path / "audit.key", create=True)
    path = tmp_path / "audit.log"
    recording = _Recording(os, path)
    monkeypatch.setattr("donjon.audit.sinks.os", recording)
    monkeypatch.setattr("donjon.audit.loop_sync.os", recording)  # where the loops' fdatasyncs run with a thread
    if loop_syncs == "kernel":
        _record_kernel_fdatasyncs(monkeypatch, recording)
    sink = FileSink(path, key, fsync=True, kernel_fdatasync=loop_syncs == "kernel")
    not_durable: list[str] = []

    def check(marker: str) -> None:
        # Right after the caller is answered: its record is in the file, and a completed fdatasync saw it.
        needle = f'"id":"{marker}"'.encode()
        if needle not in path.read_bytes():
            not_durable.append(f"{marker} not in the log")
        with recording._guard:
            synced = [data for kind, data in recording.calls if kind == "fdatasync"]
        if not any(needle in data for data in synced):
            not_durable.append(f"{marker} acknowledged before an fdatasync")

    def thread_body(t: int) -> None:
        for i in range(25):
            sink.append({"id": f"t{t}-{i}"})
            check(f"t{t}-{i}")

    async def coroutines() -> None:
        async def one(i: int) -> None:
            await sink.append_async({"id": f"c-{i}"})
            check(f"c-{i}")

        await asyncio.gather(*(one(i) for i in range(50)))

    workers = [threading.Thread(target=thread_body, args=(t,)) for t in range(4)]
    for w in workers:
        w.start()
    asyncio.run(coroutines())
    for w in workers:
        w.join()
    assert (sink.kernel_batches > 0) == (loop_syncs == "kernel")
    sink.close()
    assert not not_durable
    # Per sync batch: an fdatasync (unless another one already covered it), then the durable head (unless a
    # later one already moved it), which names a tail written before that fdatasync and never counts a record
    # the fdatasync did not see. Appends (tails) go on meanwhile.
    kinds = [kind for kind, _ in recording.calls]
    assert 1 <= kinds.count("head") <= kinds.count("fdatasync") <= sink.sync_batches
    synced, tails = b"", []
    for kind, data in recording.calls:
        if kind == "tail":
            tails.append(data)
        elif kind == "fdatasync":
            # Durable only grows: what any returned fdatasync saw (a kernel one's view, taken at its submission,
            # may be recorded after a thread's later view).
            synced, tails_before_sync = max(synced, data, key=len), list(tails)
        else:
            assert data in tails_before_sync
            head = Head.decode(key, data)
            assert head.size <= len(synced) and synced[: head.size].count(b"\n") == head.count
    assert verify(path, key).count == 150


def test_an_fdatasync_of_another_writer_that_covered_a_batch_spares_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two sinks on one log exclude each other as two processes do (flock is per open file).
    key = load_audit_key(tmp_path / "audit.key", create=True)
    path = tmp_path / "audit.log"
    first, second = FileSink(path, key, fsync=True), FileSink(path, key, fsync=True)
    held: list[tuple[int, int, Head, bytes]] = []
    monkeypatch.setattr(first, "_make_durable", lambda *args: held.append(args))
    first.write_batch([{"id": "first"}])  # appended, not yet synced: its wait for the disk comes later
    ((log_fd, head_fd, appended, _),) = held
    second.write_batch([{"id": "second"}])  # appended after it, synced: the durable head now covers both
    recording = _Recording(os, path)
    monkeypatch.setattr("donjon.audit.sinks.os", recording)
    FileSink._make_durable(first, log_fd, head_fd, appended, appended.encode(key))
    assert recording.calls == []  # no fdatasync, and the durable head is not moved back
    durable = Head.decode(key, head_path(path).read_bytes()[:256])
    assert (appended.count, durable.count) == (1, 2)
    assert verify(path, key).ok and verify(path, key).count == 2
    first.close()
    second.close()


def test_a_failed_fdatasync_fails_every_caller_it_would_have_answered_and_the_next_sync_recovers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = load_audit_key(tmp_path / "audit.key", create=True)
    path = tmp_path / "audit.log"
    sink = FileSink(path, key, fsync=True, kernel_fdatasync=False)  # the failure is injected in os.fdatasync
    real_fdatasync, failing = os.fdatasync, threading.Event()

    def fdatasync(fd: int) -> None:
        if failing.is_set():
            raise OSError(errno.EIO, "Input/output error")
        real_fdatasync(fd)

    monkeypatch.setattr("donjon.audit.sinks.os.fdatasync", fdatasync)

    async def attempt(prefix: str) -> list[str]:
        results = await asyncio.gather(
            *(sink.append_async({"id": f"{prefix}/{i}"}) for i in range(10)), return_exceptions=True
        )
        return [type(r).__name__ if isinstance(r, BaseException) else "ok" for r in results]

    failing.set()
    assert asyncio.run(attempt("unsynced")) == ["OSError"] * 10  # appended, but nobody is told it is durable
    # The durable head did not move: no fdatasync covered those records (its slot is still empty).
    assert head_path(path).read_bytes()[:256].strip(b"\x00") == b""
    failing.clear()
    assert asyncio.run(attempt("synced")) == ["ok"] * 10
    sink.close()
    durable = Head.decode(key, head_path(path).read_bytes()[:256])
    assert durable.count == 20 and durable.size == path.stat().st_size
    assert verify(path, key).ok


@pytest.mark.parametrize("caller", ["thread", "loop"])
def test_after_the_appends_reopen_the_log_the_sync_covers_the_file_its_path_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caller: str
) -> None:
    key = load_audit_key(tmp_path / "audit.key", create=True)
    path = tmp_path / "audit.log"
    sink = FileSink(path, key, fsync=True, kernel_fdatasync=False)  # os.fdatasync observes both paths' syncs
    synced: list[int] = []
    real_fdatasync = os.fdatasync

    def fdatasync(fd: int) -> None:
        synced.append(os.fstat(fd).st_ino)
        real_fdatasync(fd)

    monkeypatch.setattr("donjon.audit.sinks.os.fdatasync", fdatasync)  # os's own: both sync paths use it

    def replace_the_log() -> None:
        os.rename(path, tmp_path / "audit.log.old")  # the log replaced (an operator's repair, say)...
        sink._close()  # ...and the appends reopen their files, as after a failed write

    if caller == "thread":
        sink.append({"id": "before"})
        replace_the_log()
        sink.append({"id": "after"})
    else:

        async def on_one_loop() -> None:  # the loop's sync files opened once, then followed to the new log
            await sink.append_async({"id": "before"})
            replace_the_log()
            await sink.append_async({"id": "after"})

        asyncio.run(on_one_loop())
    sink.close()
    assert len(synced) == 2 and synced[-1] == path.stat().st_ino != synced[0]  # not the file moved away


def test_a_loop_has_one_fdatasync_in_flight_and_what_queues_meanwhile_shares_the_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = load_audit_key(tmp_path / "audit.key", create=True)
    path = tmp_path / "audit.log"
    sink = FileSink(path, key, fsync=True, kernel_fdatasync=False)  # a slow disk, made in os.fdatasync
    real_fdatasync, running, overlaps, synced_sizes, sizes_before = os.fdatasync, [0], [0], [], []

    def slow_fdatasync(fd: int) -> None:
        running[0] += 1
        overlaps[0] = max(overlaps[0], running[0])
        sizes_before.append(os.fstat(fd).st_size)
        time.sleep(0.02)  # a slow disk: the loop serves several iterations meanwhile
        real_fdatasync(fd)
        synced_sizes.append(os.fstat(fd).st_size)
        running[0] -= 1

    monkeypatch.setattr("donjon.audit.loop_sync.os.fdatasync", slow_fdatasync)

    async def callers() -> None:
        async def one(i: int) -> None:
            await asyncio.sleep(0.002 * i)  # spread over many loop iterations
            await sink.append_async({"id": f"c-{i}"})
            # Answered only once an fdatasync that saw this record returned.
            assert f'"id":"c-{i}"'.encode() in path.read_bytes()[: max(synced_sizes)]

        await asyncio.gather(*(one(i) for i in range(40)))

    asyncio.run(callers())
    sink.close()
    assert overlaps[0] == 1  # never two at once for one loop
    # The records that came while an fdatasync ran waited unwritten, and went out together: one append per
    # fdatasync, and nothing appended while one ran.
    assert 2 <= len(synced_sizes) == sink.loop_batches < 40
    assert sizes_before == synced_sizes
    durable = Head.decode(key, head_path(path).read_bytes()[:256])
    assert durable.count == 40 and durable.size == path.stat().st_size and verify(path, key).ok


def test_records_a_power_loss_took_before_their_fdatasync_leave_no_gap(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    key = load_audit_key(tmp_path / "audit.key", create=True)
    path = tmp_path / "audit.log"
    sink = FileSink(path, key, fsync=True)
    for i in range(3):
        sink.append({"id": f"durable-{i}"})
    durable_slot, durable_size = head_path(path).read_bytes()[:256], path.stat().st_size
    sink.append({"id": "lost-0"})
    sink.append({"id": "lost-1"})
    tail_slot = head_path(path).read_bytes()[256:512]
    sink.close()
    # What the disk holds after the power went: the log as of an fdatasync that the durable head counted,
    # and a tail naming two records that never reached the disk (nobody was answered for them).
    head_path(path).write_bytes(durable_slot + tail_slot)
    os.truncate(path, durable_size)
    with caplog.at_level("ERROR", logger="donjon.audit"):
        FileSink(path, key, fsync=True).append({"id": "after"})
    assert not caplog.records  # a power loss is not tampering
    verdict = verify(path, key)
    assert verdict.ok and verdict.note == "" and verdict.count == 4
    assert [e["id"] for e in events(tmp_path)] == ["durable-0", "durable-1", "durable-2", "after"]


@pytest.mark.live
def test_verify_on_a_live_two_worker_server_under_concurrent_requests(tmp_path: Path) -> None:
    server = LiveServer(tmp_path / "live", workers=2).start()
    errors: list[str] = []
    try:

        def client(n: int) -> None:
            project = f"p-{n}"
            with httpx.Client(base_url=server.url, headers={"X-Project-Id": project}, timeout=30) as c:
                for i in range(15):
                    body = {"payload": f"{SENTINEL}live-{n}-{i}", "payload_content_type": "text/plain"}
                    r = c.post("/v1/secrets", json=body)
                    if r.status_code != 201:
                        errors.append(r.text)
                        continue
                    ref = r.json()["secret_ref"]
                    if c.get(ref + "/payload", headers={"Accept": "text/plain"}).text != body["payload"]:
                        errors.append("payload")
                    c.get("/v1/secrets", params={"limit": 2})

        threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        server.stop()
    assert not errors
    data_dir = server.data_dir
    log, key = data_dir / "audit.log", data_dir / "audit.key"
    assert key.stat().st_mode & 0o777 == 0o600
    done = subprocess.run([DONJON, "audit", "verify", "--path", str(log), "--key", str(key)], capture_output=True)
    assert done.returncode == 0, done.stdout + done.stderr
    # 8 clients x 15 x (create: pending and outcome; payload read and list: outcome only)
    assert b"ok: 480 records" in done.stdout
    log_bytes = log.read_bytes() + server.log.read_bytes()
    assert SENTINEL.encode() not in log_bytes
    # `donjon audit verify` with no options finds the log and key through the settings.
    env_done = subprocess.run(
        [DONJON, "audit", "verify"], capture_output=True, env={"DONJON_DATA_DIR": str(data_dir), "PATH": ""}
    )
    assert env_done.returncode == 0, env_done.stdout + env_done.stderr
    assert_tampering_detected(log, key, tmp_path)


# --- fail closed ----------------------------------------------------------------------------------------


def _unwritable(tmp_path: Path) -> Path:
    # Root ignores file modes: a path under a regular file can never be created, whoever runs the tests.
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    return blocker / "audit.log"


def _secret_count(database_url: str, tmp_path: Path, project: str) -> int:
    settings = make_settings(database_url, tmp_path, enabled=False)
    with TestClient(create_app(settings), base_url=BASE) as client:
        return int(client.get("/v1/secrets", headers=headers(project)).json()["total"])


def test_fail_closed_refuses_with_503_and_creates_nothing(database_url: str, tmp_path: Path) -> None:
    settings = make_settings(database_url, tmp_path, path=_unwritable(tmp_path))
    project = f"p-{uuid.uuid4()}"
    with TestClient(create_app(settings), base_url=BASE) as client:
        body = {"payload": f"{SENTINEL}fail-closed", "payload_content_type": "text/plain"}
        r = client.post("/v1/secrets", json=body, headers=headers(project))
        assert r.status_code == 503
        assert r.json() == {
            "code": 503,
            "title": "Service Unavailable",
            "description": "The audit log is unavailable. Please try again later.",
        }
        assert r.headers["x-openstack-request-id"].startswith("req-")
        assert client.get("/v1/secrets", headers=headers(project)).status_code == 503
        assert client.get("/healthcheck").status_code == 200
    assert _secret_count(database_url, tmp_path, project) == 0


def test_fail_open_serves_without_a_log(database_url: str, tmp_path: Path) -> None:
    settings = make_settings(database_url, tmp_path, path=_unwritable(tmp_path), fail_closed=False)
    project = f"p-{uuid.uuid4()}"
    with TestClient(create_app(settings), base_url=BASE) as client:
        body = {"payload": f"{SENTINEL}fail-open", "payload_content_type": "text/plain"}
        assert client.post("/v1/secrets", json=body, headers=headers(project)).status_code == 201
    assert _secret_count(database_url, tmp_path, project) == 1


def test_a_response_is_not_released_when_its_outcome_cannot_be_recorded(database_url: str, tmp_path: Path) -> None:
    settings = make_settings(database_url, tmp_path)
    app = create_app(settings)
    project = f"p-{uuid.uuid4()}"
    with TestClient(app, base_url=BASE) as client:
        body = {"payload": f"{SENTINEL}withheld", "payload_content_type": "text/plain"}
        ref = client.post("/v1/secrets", json=body, headers=headers(project)).json()["secret_ref"]
        limited = client.post("/v1/secrets", json={**body, "max_reads": 2}, headers=headers(project))
        sink = auditor_of(app).file
        real_append, calls = sink.append_async, []

        async def append_then_fail(event: dict[str, Any]) -> None:
            calls.append(event["outcome"])
            if event["outcome"] != "pending":
                raise OSError(28, "No space left on device")
            await real_append(event)

        sink.append_async = append_then_fail  # type: ignore[method-assign]
        r = client.get(ref.removeprefix(BASE) + "/payload", headers=headers(project, Accept="text/plain"))
        assert r.status_code == 503 and SENTINEL not in r.text
        assert calls == ["success"]  # a plain payload read has no effect, hence no pending event
        # A limited secret's read spends a read: its pending event goes first, then the outcome.
        calls.clear()
        r = client.get(limited.json()["secret_ref"].removeprefix(BASE) + "/payload", headers=headers(project))
        assert r.status_code == 503 and SENTINEL not in r.text
        assert calls == ["pending", "success"]
    # The attempt that spent a read is on record: its pending event.
    assert [e["outcome"] for e in events(tmp_path)][-1] == "pending"


def test_a_limited_read_spends_nothing_when_its_intent_cannot_be_recorded(database_url: str, tmp_path: Path) -> None:
    settings = make_settings(database_url, tmp_path)
    app = create_app(settings)
    project = f"p-{uuid.uuid4()}"
    with TestClient(app, base_url=BASE) as client:
        body = {"payload": f"{SENTINEL}limited", "payload_content_type": "text/plain", "max_reads": 1}
        ref = client.post("/v1/secrets", json=body, headers=headers(project)).json()["secret_ref"]
        path = ref.removeprefix(BASE)
        sink = auditor_of(app).file
        real_append, calls = sink.append_async, []

        async def refuse_pending(event: dict[str, Any]) -> None:
            calls.append(event["outcome"])
            if event["outcome"] == "pending":
                raise OSError(28, "No space left on device")
            await real_append(event)

        sink.append_async = refuse_pending  # type: ignore[method-assign]
        for url in (path + "/payload", path + "?version=1", path):  # every way a payload is read
            accept = "application/json" if url == path else "text/plain"
            r = client.get(url.replace("?version=1", "/payload?version=1"), headers=headers(project, Accept=accept))
            if url == path:
                assert r.status_code == 200  # the metadata: no effect, no pending event needed
                continue
            assert r.status_code == 503 and SENTINEL not in r.text
            assert r.json()["description"] == "The audit log is unavailable. Please try again later."
        assert calls.count("pending") == 2
        sink.append_async = real_append  # type: ignore[method-assign]
        # Nothing was spent: its one read is still there, and serves the payload once.
        assert client.get(path + "/payload", headers=headers(project, Accept="text/plain")).text == body["payload"]
        assert client.get(path + "/payload", headers=headers(project, Accept="text/plain")).status_code == 404


def _outcomes_of_appends(app: Starlette, monkeypatch: pytest.MonkeyPatch, refuse_pending: bool = False) -> list[str]:
    """The outcome of every event the app's audit log is handed from now on (a pending one refused if asked)."""
    sink = auditor_of(app).file
    real_append, calls = sink.append_async, []

    async def append(event: dict[str, Any]) -> None:
        calls.append(event["outcome"])
        if refuse_pending and event["outcome"] == "pending":
            raise OSError(28, "No space left on device")
        await real_append(event)

    monkeypatch.setattr(sink, "append_async", append)
    return calls


def test_transit_uses_record_their_outcome_and_a_key_creation_its_intent_first(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = create_app(make_settings(database_url, tmp_path))
    vault = {"X-Vault-Token": f"p-{uuid.uuid4()}"}  # dev mode: the token names the project
    plaintext = {"plaintext": base64.b64encode(b"not a secret").decode()}
    with TestClient(app, base_url=BASE) as client:
        assert client.post("/v1/transit/keys/k", headers=vault, json={}).status_code in (200, 204)
        calls = _outcomes_of_appends(app, monkeypatch)
        encrypted = client.post("/v1/transit/encrypt/k", headers=vault, json=plaintext)
        assert encrypted.status_code == 200, encrypted.text
        ciphertext = encrypted.json()["data"]["ciphertext"]
        r = client.post("/v1/transit/decrypt/k", headers=vault, json={"ciphertext": ciphertext})
        assert r.status_code == 200 and r.json()["data"] == plaintext
        assert (
            client.post("/v1/transit/hmac/k", headers=vault, json={"input": plaintext["plaintext"]}).status_code == 200
        )
        assert calls == ["success"] * 3  # uses of a key change nothing: no pending event
        calls.clear()
        # Effects: a key made by its first encrypt (Vault's upsert), an answer wrapped into a token, a key's
        # rotation (not a use: its pending event goes first, as for any write).
        assert client.post("/v1/transit/encrypt/upserted", headers=vault, json=plaintext).status_code == 200
        wrapped = client.post("/v1/transit/encrypt/k", headers={**vault, "X-Vault-Wrap-TTL": "60"}, json=plaintext)
        assert wrapped.status_code == 200 and wrapped.json()["wrap_info"]["token"]
        assert client.post("/v1/transit/keys/k/rotate", headers=vault, json={}).status_code == 200
        assert calls == ["pending", "success"] * 3
    # In the log, each request's pending event comes before its outcome, with the same request id.
    logged = events(tmp_path)[-6:]
    assert [e["outcome"] for e in logged] == ["pending", "success"] * 3
    assert all(request_id(logged[i]) == request_id(logged[i + 1]) for i in (0, 2, 4))


def test_no_transit_key_nor_wrapped_answer_is_made_when_its_intent_cannot_be_recorded(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = create_app(make_settings(database_url, tmp_path))
    vault = {"X-Vault-Token": f"p-{uuid.uuid4()}"}
    plaintext = {"plaintext": base64.b64encode(b"not a secret").decode()}
    with TestClient(app, base_url=BASE) as client:
        assert client.post("/v1/transit/keys/k", headers=vault, json={}).status_code in (200, 204)
        calls = _outcomes_of_appends(app, monkeypatch, refuse_pending=True)
        assert client.post("/v1/transit/encrypt/k", headers=vault, json=plaintext).status_code == 200
        assert client.post("/v1/transit/encrypt/fresh", headers=vault, json=plaintext).status_code == 503
        wrapped = client.post("/v1/transit/encrypt/k", headers={**vault, "X-Vault-Wrap-TTL": "60"}, json=plaintext)
        assert wrapped.status_code == 503 and "wrap_info" not in wrapped.text
        assert calls == ["success", "pending", "failure", "pending", "failure"]
        monkeypatch.undo()
        assert client.get("/v1/transit/keys/fresh", headers=vault).status_code == 404  # never created


def test_a_use_limited_token_spends_nothing_when_its_intent_cannot_be_recorded(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = create_app(make_settings(database_url, tmp_path, auth="token"))
    with TestClient(app, base_url=BASE) as client:
        tokens = app.state.ctx.tokens
        token = tokens.issue(project_id=f"p-{uuid.uuid4()}", user_id="u", roles=["admin"], ttl=None, num_uses=2).token
        cached = tokens.issue(project_id=f"p-{uuid.uuid4()}", user_id="u", roles=["admin"], ttl=None).token
        assert client.get("/v1/secrets", headers={"X-Auth-Token": cached}).status_code == 200  # validated once
        calls = _outcomes_of_appends(app, monkeypatch, refuse_pending=True)
        # Reading spends a use: refused before it, on either API, and nothing is spent.
        assert client.get("/v1/secrets", headers={"X-Auth-Token": token}).status_code == 503
        assert client.get("/v1/auth/token/lookup-self", headers={"X-Vault-Token": token}).status_code == 503
        assert client.post("/v1/transit/hash", headers={"X-Vault-Token": token}, json={"input": ""}).status_code == 503
        # A token validated lately spends nothing: no pending event needed.
        assert client.get("/v1/secrets", headers={"X-Auth-Token": cached}).status_code == 200
        assert calls.count("pending") == 3 and calls[-1] == "success"
    record = tokens.describe(token)
    assert record.uses_left == 2 and record.revoked_at is None


def test_server_refuses_to_start_when_the_audit_log_cannot_be_opened(tmp_path: Path) -> None:
    server = LiveServer(tmp_path / "d", env={"DONJON_AUDIT__PATH": str(_unwritable(tmp_path))})
    with pytest.raises(RuntimeError, match="audit log .* cannot be opened"):
        server.start(timeout=20)


def test_audit_can_be_disabled(database_url: str, tmp_path: Path) -> None:
    settings = make_settings(database_url, tmp_path, enabled=False)
    assert build_auditor(settings) is None
    with TestClient(create_app(settings), base_url=BASE) as client:
        assert client.get("/v1/secrets", headers=headers("p")).status_code == 200
    assert not (tmp_path / "audit.log").exists() and not (tmp_path / "audit.key").exists()


# --- notifications --------------------------------------------------------------------------------------


@pytest.mark.live
@pytest.mark.rabbitmq
def test_a_live_server_publishes_events_as_oslo_messaging_notifications(tmp_path: Path) -> None:
    # In a server process: oslo.messaging imports eventlet, which is better kept out of the test process.
    # The machine's RabbitMQ (scripts/test starts it): not reachable is a failure, not a skip.
    import kombu

    topic = f"donjon-audit-test-{uuid.uuid4().hex[:8]}"
    queue = f"{topic}.info"
    env = {
        "DONJON_AUDIT__NOTIFICATIONS": "true",
        "DONJON_AUDIT__TRANSPORT_URL": "rabbit://guest:guest@127.0.0.1:5672/",
        "DONJON_AUDIT__TOPIC": topic,
    }
    project = f"p-{uuid.uuid4()}"
    with kombu.Connection("amqp://guest:guest@127.0.0.1:5672//") as conn:
        channel = conn.default_channel
        # Declared before publishing, as an operator's consumer would be, so nothing is dropped.
        exchange = kombu.Exchange("openstack", type="topic", durable=False)
        kombu.Queue(queue, exchange, routing_key=queue, durable=False, auto_delete=False)(channel).declare()
        try:
            server = LiveServer(tmp_path / "live", env=env).start()
            try:
                with httpx.Client(base_url=server.url, headers={"X-Project-Id": project}, timeout=30) as client:
                    body = {"payload": f"{SENTINEL}notified", "payload_content_type": "text/plain"}
                    assert client.post("/v1/secrets", json=body).status_code == 201
                    assert client.get("/v1/secrets/nope").status_code == 404
            finally:
                server.stop()  # the lifespan's shutdown flushes the notification queue
            received: list[dict[str, Any]] = []
            deadline = time.monotonic() + 20
            while len(received) < 3 and time.monotonic() < deadline:
                message = channel.basic_get(queue=queue, no_ack=True)
                if message is None:
                    time.sleep(0.1)
                    continue
                received.append(json.loads(json.loads(message.body)["oslo.message"]))
        finally:
            channel.queue_delete(queue)
    # The create's pending event and outcome; the read (a GET) changes nothing, so its outcome only.
    assert sorted(m["event_type"] for m in received) == ["audit.http.request"] + ["audit.http.response"] * 2
    assert all(m["publisher_id"].startswith("donjon.") and m["priority"] == "INFO" for m in received)
    by_outcome = {(m["payload"]["outcome"], m["payload"]["action"]): m["payload"] for m in received}
    created, missing = by_outcome[("success", "create")], by_outcome[("failure", "read")]
    assert created["initiator"]["project_id"] == project and created["reason"]["reasonCode"] == "201"
    assert missing["reason"]["reasonCode"] == "404" and missing["target"]["id"] == "nope"
    # The same events as in the file.
    assert sorted(json.dumps(m["payload"], sort_keys=True) for m in received) == sorted(
        json.dumps(e, sort_keys=True) for e in events(server.data_dir)
    )
    assert SENTINEL not in json.dumps(received)
