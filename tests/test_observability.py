"""Metrics and access logs of a real ``donjon server`` with two worker processes (docs/operations.md).

/metrics is parsed with prometheus-client's own text parser; the server's log is read as it wrote it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import json
import logging
import logging.config
import re
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest, multiprocess
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.testclient import TestClient

from donjon.api.observability_middleware import ObservabilityMiddleware
from donjon.audit.auditor import Auditor
from donjon.audit.chain import load_audit_key
from donjon.audit.events import build_event, target_of
from donjon.audit.sinks import FileSink
from donjon.auth import Caller
from donjon.crypto import DecryptionFailed
from donjon.keystores import open_keystore
from donjon.observability import LogConfig, MetricsConfig
from donjon.observability.keystore import InstrumentedKeystore
from donjon.observability.logs import StderrHandler, logging_config
from tests import databases
from tests.live_server import LiveServer

REQUESTS = "donjon_http_requests_total"
KEYSTORE_ERRORS = "donjon_keystore_errors_total"


def samples(text: str, name: str, **labels: str) -> float:
    """The sum of the samples called ``name`` whose labels include ``labels``."""
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and labels.items() <= sample.labels.items()
    )


def scrape(http: httpx.Client, until: Callable[[str], bool]) -> str:
    """/metrics once ``until`` holds (or after 10 s): a request is counted just after its last byte is sent."""
    deadline = time.monotonic() + 10
    while True:
        text = http.get("/metrics").text
        if until(text) or time.monotonic() > deadline:
            return text
        time.sleep(0.05)


@pytest.fixture(scope="module", params=databases.selected())
def metrics_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    # A database of its own: the session's shared app runs an order worker too, and on a shared database it
    # could claim this server's orders, which would then be counted in the wrong process.
    kind = request.param
    with databases.migrated_database(kind, tmp_path_factory.mktemp(f"metrics-db-{kind}")) as url:
        server = LiveServer(tmp_path_factory.mktemp("metrics"), env={"DONJON_DATABASE_URL": url})
        yield server.start()
        server.stop()


def _store(http: httpx.Client, payload: str) -> str:
    body = {"payload": payload, "payload_content_type": "text/plain"}
    response = http.post("/v1/secrets", json=body)
    assert response.status_code == 201, response.text
    return str(response.json()["secret_ref"]).rsplit("/", 1)[-1]


def _per_worker_requests(run_dir: Path, tmp_path: Path, **labels: str) -> dict[str, float]:
    """Each worker process's own count, read from its file alone (the files /metrics sums)."""
    counts = {}
    for path in run_dir.glob("counter_*.db"):
        alone = tmp_path / path.stem
        alone.mkdir(parents=True)
        shutil.copy(path, alone / path.name)
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=str(alone))
        counts[path.stem] = samples(generate_latest(registry).decode(), REQUESTS, **labels)
    return counts


def test_metrics_add_up_across_workers_and_name_no_secret(metrics_server: LiveServer, tmp_path: Path) -> None:
    project = f"obs-{uuid.uuid4()}"
    run_dir = metrics_server.data_dir / "run" / "prometheus"
    created = {"method": "POST", "route": "/v1/secrets", "status": "201"}
    payloads: list[str] = []
    ids: list[str] = []
    # A new connection per request; the kernel hands each to one worker's accept, and may favour one for a
    # while: secrets are stored in batches until each worker's own file shows some.
    headers = {"X-Project-Id": project, "Connection": "close"}
    with httpx.Client(base_url=metrics_server.url, headers=headers, timeout=30) as http:
        with ThreadPoolExecutor(8) as pool:
            per_worker: dict[str, float] = {}
            while len([n for n in per_worker.values() if n > 0]) < 2:
                assert len(ids) < 400, f"one worker served every request: {per_worker}"
                batch = [f"s3cr3t-metrics-{uuid.uuid4()}" for _ in range(20)]
                ids += pool.map(lambda p: _store(http, p), batch)
                payloads += batch
                per_worker = _per_worker_requests(run_dir, tmp_path / str(len(ids)), **created)
            reads = list(
                pool.map(lambda i: http.get(f"/v1/secrets/{i}/payload", headers={"Accept": "text/plain"}), ids)
            )
            missing = list(pool.map(lambda _: http.get(f"/v1/secrets/{uuid.uuid4()}"), range(10)))
        assert [r.text for r in reads] == payloads
        assert {r.status_code for r in missing} == {404}
        order = {"type": "key", "meta": {"algorithm": "aes", "bit_length": 256, "mode": "cbc"}}
        refs = [http.post("/v1/orders", json=order).json()["order_ref"] for _ in range(2)]
        deadline = time.monotonic() + 20
        while any(http.get(ref).json()["status"] != "ACTIVE" for ref in refs):
            assert time.monotonic() < deadline, "orders not processed"
            time.sleep(0.2)
        stored = len(ids)
        text = scrape(http, lambda t: samples(t, REQUESTS, route="/v1/secrets/{secret_id}", status="404") == 10)

        # Counted once each, whichever worker served them (both did), and whichever worker answers the scrape.
        assert sum(_per_worker_requests(run_dir, tmp_path / "after", **created).values()) == stored
        assert samples(text, REQUESTS, **created) == stored
        assert samples(text, REQUESTS, method="GET", route="/v1/secrets/{secret_id}/payload", status="200") == stored
        assert samples(text, REQUESTS, method="GET", route="/v1/secrets/{secret_id}", status="404") == 10
        assert samples(text, "donjon_http_request_duration_seconds_count", method="POST", route="/v1/secrets") == stored
        # Every POST is audited twice (pending, then outcome), a payload read of a plain secret once (its
        # outcome: it spends nothing), and each wrote its record.
        assert samples(text, "donjon_audit_write_seconds_count") >= 3 * stored
        assert samples(text, "donjon_audit_write_failures_total") == 0
        assert samples(text, "donjon_orders_queued_total") == 2
        assert samples(text, "donjon_orders_claimed_total") == 2
        assert samples(text, "donjon_orders_completed_total") == 2
        assert samples(text, "donjon_kek_cache_lookups_total", result="hit") > 0
        # The project's KEK unwrapped once per worker that used it: the misses are the keystore's unwraps.
        misses = samples(text, "donjon_kek_cache_lookups_total", result="miss")
        assert 1 <= misses == samples(text, "donjon_keystore_call_seconds_count", operation="unwrap")
        assert samples(text, "donjon_keystore_call_seconds_count", keystore="file", operation="wrap") >= 1
        assert samples(text, "donjon_db_pool_wait_seconds_count") > 0
        # Each worker's reaper makes a pass when it starts: two workers, two passes at least.
        assert samples(text, "donjon_reaper_runs_total", outcome="ok") >= 2
        if metrics_server.env["DONJON_DATABASE_URL"].startswith("sqlite"):
            assert samples(text, "donjon_db_write_lock_wait_seconds_count") > 0

        for leak in [*ids, *payloads, project]:
            assert leak not in text

        # Behind a proxy on this host, every client connects from loopback: not a local scraper.
        refused = http.get("/metrics", headers={"X-Forwarded-For": "203.0.113.9"})
        assert refused.status_code == 403
        assert set(refused.json()) == {"code", "title", "description"}


def test_the_default_log_has_one_text_access_line_per_request(metrics_server: LiveServer) -> None:
    project = f"obs-{uuid.uuid4()}"
    with httpx.Client(base_url=metrics_server.url, headers={"X-Project-Id": project}) as http:
        response = http.post("/v1/secrets", json={"payload": "s3cr3t-text-log", "payload_content_type": "text/plain"})
    request_id = response.headers["x-openstack-request-id"]
    secret_id = response.json()["secret_ref"].rsplit("/", 1)[-1]
    deadline = time.monotonic() + 5
    while request_id not in metrics_server.log.read_text():
        assert time.monotonic() < deadline
        time.sleep(0.1)
    [line] = [line for line in metrics_server.log.read_text().splitlines() if request_id in line]
    assert " INFO donjon.access: POST /v1/secrets 201 " in line
    assert line.endswith(f"ms {request_id} project={project} client=127.0.0.1")
    assert secret_id not in metrics_server.log.read_text()


@pytest.fixture(scope="module")
def json_log_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = LiveServer(tmp_path_factory.mktemp("jsonlog"), env={"DONJON_LOG__FORMAT": "json"})
    yield server.start()
    server.stop()


def test_json_access_lines_carry_the_fields_and_nothing_sent(json_log_server: LiveServer) -> None:
    project = f"obs-{uuid.uuid4()}"
    marker = uuid.uuid4().hex
    payload, token, query = f"s3cr3t-json-log-{marker}", f"token-{marker}", f"name-{marker}"
    sent: list[httpx.Response] = []
    headers = {"X-Project-Id": project, "X-Auth-Token": token}
    with httpx.Client(base_url=json_log_server.url, headers=headers, timeout=30) as http:
        body = {
            "payload": base64.b64encode(payload.encode()).decode(),
            "payload_content_type": "application/octet-stream",
            "payload_content_encoding": "base64",
            "name": query,
        }
        sent.append(http.post("/v1/secrets", json=body))
        secret_id = sent[0].json()["secret_ref"].rsplit("/", 1)[-1]
        sent.append(http.get(f"/v1/secrets/{secret_id}/payload", headers={"Accept": "application/octet-stream"}))
        sent.append(http.get("/v1/secrets", params={"name": query}))
        sent.append(http.post(f"/v1/secrets/{secret_id}/wrap", json={"ttl": 60}))
        wrap_token = sent[-1].json()["wrap_token"]
        sent.append(http.post("/v1/unwrap", headers={"X-Wrap-Token": wrap_token}))
        sent.append(http.get(f"/v1/no-such-thing/{marker}"))
    assert [r.status_code for r in sent] == [201, 200, 200, 201, 200, 404]
    assert sent[1].content == sent[4].content == payload.encode()
    json_log_server.stop()  # every line written and flushed

    text = json_log_server.log.read_text()
    records = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    access: dict[str, dict[str, Any]] = {r["request_id"]: r for r in records if r["logger"] == "donjon.access"}
    # An unwrap's caller is whoever holds the wrap token: no project. An unknown path is not authenticated.
    expected = [
        ("POST", "/v1/secrets", 201, project),
        ("GET", "/v1/secrets/{secret_id}/payload", 200, project),
        ("GET", "/v1/secrets", 200, project),
        ("POST", "/v1/secrets/{secret_id}/wrap", 201, project),
        ("POST", "/v1/unwrap", 200, ""),
        ("GET", "unmatched", 404, ""),
    ]
    for response, fields in zip(sent, expected, strict=True):
        record = access[response.headers["x-openstack-request-id"]]
        assert (record["method"], record["route"], record["status"], record["project"]) == fields
        assert record["client"] == "127.0.0.1"
        assert record["level"] == "INFO"
        assert isinstance(record["duration_ms"], float) and record["duration_ms"] >= 0
        assert record["time"].endswith("+00:00")
    for leak in (payload, base64.b64encode(payload.encode()).decode(), token, wrap_token, query, marker, secret_id):
        assert leak not in text


def test_metrics_are_refused_to_a_client_off_the_allowed_networks(app_client: TestClient) -> None:
    # Starlette's test client connects as "testclient", no address: not on metrics.allow_from.
    response = app_client.get("/metrics")
    assert response.status_code == 403
    assert response.json()["code"] == 403


def _by_project(project: str) -> float:
    return (
        REGISTRY.get_sample_value(
            "donjon_http_requests_by_project_total", {"project": project, "method": "GET", "status": "200"}
        )
        or 0.0
    )


@pytest.mark.parametrize("enabled", [True, False])
def test_requests_are_counted_per_project_only_when_the_operator_asks(enabled: bool) -> None:
    async def endpoint(request: Request) -> Response:
        request.state.caller = Caller(project_id=project)
        return Response("ok")

    project = f"obs-{uuid.uuid4()}"
    routes = [Route("/v1/things/{thing_id}", endpoint)]
    app = Starlette(
        routes=routes,
        middleware=[
            Middleware(
                ObservabilityMiddleware,
                routes=routes,
                log_config=LogConfig(),
                metrics=MetricsConfig(project_label=enabled),
            )
        ],
    )
    with TestClient(app) as client:
        assert client.get(f"/v1/things/{uuid.uuid4()}").status_code == 200
    assert _by_project(project) == (1.0 if enabled else 0.0)
    assert REGISTRY.get_sample_value(REQUESTS, {"method": "GET", "route": "/v1/things/{thing_id}", "status": "200"})


def test_a_restart_starts_counting_from_zero_and_no_access_log_silences_it(tmp_path: Path) -> None:
    server = LiveServer(tmp_path / "restart")
    body = {"payload": "s3cr3t-restart", "payload_content_type": "text/plain"}
    created = {"method": "POST", "route": "/v1/secrets", "status": "201"}
    try:
        server.start()
        with httpx.Client(base_url=server.url, headers={"X-Project-Id": f"obs-{uuid.uuid4()}"}) as http:
            for _ in range(3):
                assert http.post("/v1/secrets", json=body).status_code == 201
            assert samples(scrape(http, lambda t: samples(t, REQUESTS, **created) >= 3), REQUESTS, **created) == 3
        server.stop()
        lines_before = len(server.log.read_text().splitlines())
        # The previous run's files are removed at start: their counts would be added to this run's.
        server.args = ["--no-access-log"]
        server.start()
        with httpx.Client(base_url=server.url, headers={"X-Project-Id": f"obs-{uuid.uuid4()}"}) as http:
            assert samples(http.get("/metrics").text, REQUESTS, **created) == 0
            assert http.post("/v1/secrets", json=body).status_code == 201
            assert samples(scrape(http, lambda t: samples(t, REQUESTS, **created) >= 1), REQUESTS, **created) == 1
    finally:
        server.stop()
    after = server.log.read_text().splitlines()[lines_before:]
    assert after and not [line for line in after if "donjon.access" in line]


def _value(name: str, labels: dict[str, str] | None = None) -> float:
    return REGISTRY.get_sample_value(name, labels or {}) or 0.0


def test_keystore_calls_are_timed_and_their_errors_counted_by_class(tmp_path: Path) -> None:
    keystore = InstrumentedKeystore(open_keystore("file", {"path": str(tmp_path / "root.key")}), "file")
    unwraps = {"keystore": "file", "operation": "unwrap"}
    refused = {**unwraps, "error": "DecryptionFailed"}
    calls, errors = _value("donjon_keystore_call_seconds_count", unwraps), _value(KEYSTORE_ERRORS, refused)
    wrapped = keystore.wrap(b"k" * 32, b"project-a")
    assert keystore.unwrap(wrapped, b"project-a") == b"k" * 32
    with pytest.raises(DecryptionFailed):
        keystore.unwrap(wrapped, b"project-b")  # bound to another context
    assert _value("donjon_keystore_call_seconds_count", unwraps) == calls + 2
    assert _value(KEYSTORE_ERRORS, refused) == errors + 1
    keystore.close()


def test_audit_writes_that_the_log_refuses_are_counted(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"  # root ignores file modes: nothing can be created under a file
    blocker.write_text("")
    key = load_audit_key(tmp_path / "audit.key", create=True)
    auditor = Auditor(FileSink(blocker / "audit.log", key, fsync=False), None, fail_closed=True)
    failures, writes = _value("donjon_audit_write_failures_total"), _value("donjon_audit_write_seconds_count")
    event = build_event(target_of("GET", "/v1/secrets", {}, "/v1/secrets"), None, 200, "req-1")
    assert asyncio.run(auditor.record(event)) is False
    assert _value("donjon_audit_write_failures_total") == failures + 1
    assert _value("donjon_audit_write_seconds_count") == writes + 1


def test_a_project_name_cannot_forge_log_lines_or_escape_sequences(caplog: pytest.LogCaptureFixture) -> None:
    async def endpoint(request: Request) -> Response:
        request.state.caller = Caller(project_id="p\x1b[2J\nforged INFO donjon.access: GET / 200")
        return Response("ok")

    routes = [Route("/v1/things", endpoint)]
    middleware = Middleware(ObservabilityMiddleware, routes=routes, log_config=LogConfig(), metrics=MetricsConfig())
    with (
        caplog.at_level(logging.INFO, logger="donjon.access"),
        TestClient(Starlette(routes=routes, middleware=[middleware])) as client,
    ):
        client.get("/v1/things")
    [record] = [r for r in caplog.records if r.name == "donjon.access"]
    assert "\n" not in record.getMessage() and "\x1b" not in record.getMessage()
    assert "project=p\\x1b[2J\\nforged" in record.getMessage()


@pytest.fixture
def server_logging(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    """The server's own text log set-up (as a worker applies it), on a buffer; the loggers restored after."""
    names = ["donjon", "uvicorn", "uvicorn.access"]
    loggers = [logging.getLogger(name) for name in names]
    saved = [(logger, logger.handlers[:], logger.propagate, logger.level) for logger in loggers]
    buffer = io.StringIO()
    monkeypatch.setattr("sys.stderr", buffer)
    logging.config.dictConfig(logging_config(LogConfig(), "info"))
    yield buffer
    for logger, handlers, propagate, level in saved:
        logger.handlers[:], logger.propagate, logger.level = handlers, propagate, level


@contextlib.contextmanager
def server_handler_only() -> Iterator[None]:
    """Without the capture handlers pytest adds around each test, as in a server's worker."""
    donjon = logging.getLogger("donjon")
    others = [h for h in donjon.handlers if not isinstance(h, StderrHandler)]
    for handler in others:
        donjon.removeHandler(handler)
    try:
        yield
    finally:
        for handler in others:
            donjon.addHandler(handler)


def test_the_direct_access_line_is_the_line_logging_writes(server_logging: io.StringIO) -> None:
    access = logging.getLogger("donjon.access")
    assert StderrHandler.for_access(access) is None  # pytest's capture handlers are something attached
    with server_handler_only():
        _the_direct_line_is_the_logged_line(access, server_logging)


def _the_direct_line_is_the_logged_line(access: logging.Logger, server_logging: io.StringIO) -> None:
    assert StderrHandler.for_access(access) is not None  # the server's set-up: access lines skip the LogRecord
    args = ("GET", "/v1/secrets/{secret_id}/payload", 200, 1.2, "req-1", "p", "127.0.0.1")
    ObservabilityMiddleware._access_line(
        "GET", "/v1/secrets/{secret_id}/payload", 200, 0.0012, "req-1", "p", ("127.0.0.1", 5)
    )
    access.info("%s %s %d %.1fms %s project=%s client=%s", *args)
    direct, logged = server_logging.getvalue().splitlines()
    stamp = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} "
    assert re.fullmatch(
        stamp
        + r"INFO donjon\.access: GET /v1/secrets/\{secret_id\}/payload 200 1\.2ms req-1 project=p client=127\.0\.0\.1",
        direct,
    )
    assert direct[24:] == logged[24:]  # the same bytes after the time stamp (made a few µs apart)


def test_anything_attached_to_the_access_log_gets_its_records(server_logging: io.StringIO) -> None:
    access = logging.getLogger("donjon.access")
    seen: list[logging.LogRecord] = []

    class Collector(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    collector = Collector()
    with server_handler_only():
        access.addHandler(collector)
        try:
            assert StderrHandler.for_access(access) is None
            ObservabilityMiddleware._access_line("GET", "/v1", 200, 0.001, "req-2", "", None)
        finally:
            access.removeHandler(collector)
    assert [r.getMessage() for r in seen] == ["GET /v1 200 1.0ms req-2 project=- client=-"]
    assert "req-2" in server_logging.getvalue()  # and the server's log still has it, through logging
    logging.getLogger("donjon").setLevel(logging.WARNING)
    with server_handler_only():
        assert StderrHandler.for_access(access) is None  # INFO off: nothing written at all
