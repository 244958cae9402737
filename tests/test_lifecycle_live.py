"""Lifecycle against a real server with two worker processes, per database: a 1-read secret read by 20
concurrent clients is served exactly once; a wrap token used by 20 clients at once serves once; the reaper
thread of the server reaps; python-barbicanclient is unaffected by limited secrets in the project."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from threading import Barrier

import httpx
import pytest
from barbicanclient import client as barbican
from sqlalchemy import select

from donjon.storage.database import Database
from donjon.storage.tables import secret_tombstones, secrets
from tests.live_server import LiveServer

pytestmark = pytest.mark.live
CLIENTS = 20


@pytest.fixture(scope="module")
def race_server(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    env = {"DONJON_DATABASE_URL": database_url, "DONJON_LIFECYCLE__REAP_INTERVAL_SECONDS": "0.5"}
    server = LiveServer(tmp_path_factory.mktemp("lifecycle-race"), workers=2, env=env)
    server.start()
    yield server
    server.stop()


def _headers(project: str) -> dict[str, str]:
    return {"X-Project-Id": project, "X-User-Id": "u"}


def _burst(server: LiveServer, request: dict[str, object]) -> list[httpx.Response]:
    """CLIENTS clients, each with its own connection, released together by a barrier."""
    gate = Barrier(CLIENTS)

    def one(_: int) -> httpx.Response:
        with httpx.Client(base_url=server.url, timeout=60) as http:
            http.get("/")  # connect before the gate, so the requests really overlap
            gate.wait()
            return http.request(**request)  # type: ignore[arg-type]

    with ThreadPoolExecutor(CLIENTS) as pool:
        return list(pool.map(one, range(CLIENTS)))


@pytest.mark.parametrize("round_", range(3))
def test_a_one_read_secret_is_served_exactly_once(race_server: LiveServer, round_: int) -> None:
    project = f"once-{uuid.uuid4()}"
    payload = f"one-time-{uuid.uuid4().hex}"
    with httpx.Client(base_url=race_server.url, headers=_headers(project), timeout=30) as http:
        r = http.post(
            "/v1/secrets",
            json={"name": "otp", "payload": payload, "payload_content_type": "text/plain", "max_reads": 1},
        )
        assert r.status_code == 201, r.text
        sid = r.json()["secret_ref"].rsplit("/", 1)[1]
    answers = _burst(
        race_server,
        {
            "method": "GET",
            "url": f"/v1/secrets/{sid}/payload",
            "headers": {**_headers(project), "Accept": "text/plain"},
        },
    )
    assert Counter(a.status_code for a in answers) == Counter({200: 1, 404: CLIENTS - 1})
    assert [a.text for a in answers if a.status_code == 200] == [payload]
    assert all(a.json()["description"] == "Secret not found." for a in answers if a.status_code == 404)


def test_a_three_read_secret_is_served_three_times(race_server: LiveServer, database_url: str) -> None:
    project = f"thrice-{uuid.uuid4()}"
    with httpx.Client(base_url=race_server.url, headers=_headers(project), timeout=30) as http:
        r = http.post(
            "/v1/secrets", json={"name": "t", "payload": "three", "payload_content_type": "text/plain", "max_reads": 3}
        )
        sid = r.json()["secret_ref"].rsplit("/", 1)[1]
    answers = _burst(race_server, {"method": "GET", "url": f"/v1/secrets/{sid}/payload", "headers": _headers(project)})
    assert Counter(a.status_code for a in answers) == Counter({200: 3, 404: CLIENTS - 3})
    db = Database(database_url, pool_size=1)
    try:
        with db.read() as conn:
            assert conn.execute(select(secrets).where(secrets.c.id == sid)).first() is None
            reason = conn.execute(select(secret_tombstones.c.deleted_reason).where(secret_tombstones.c.id == sid))
            assert reason.scalar_one() == "read-limit"
    finally:
        db.dispose()


def test_a_wrap_token_used_by_many_clients_serves_once(race_server: LiveServer) -> None:
    project = f"wrap-{uuid.uuid4()}"
    with httpx.Client(base_url=race_server.url, headers=_headers(project), timeout=30) as http:
        r = http.post("/v1/secrets", json={"name": "w", "payload": "handed-off", "payload_content_type": "text/plain"})
        sid = r.json()["secret_ref"].rsplit("/", 1)[1]
        token = http.post(f"/v1/secrets/{sid}/wrap", json={"ttl": 60}).json()["wrap_token"]
    answers = _burst(race_server, {"method": "POST", "url": "/v1/unwrap", "headers": {"X-Wrap-Token": token}})
    assert Counter(a.status_code for a in answers) == Counter({200: 1, 404: CLIENTS - 1})
    assert [a.text for a in answers if a.status_code == 200] == ["handed-off"]


def test_the_servers_reaper_deletes_expired_ciphertext(race_server: LiveServer, database_url: str) -> None:
    project = f"reap-{uuid.uuid4()}"
    expiration = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    with httpx.Client(base_url=race_server.url, headers=_headers(project), timeout=30) as http:
        r = http.post(
            "/v1/secrets",
            json={"name": "e", "payload": "x", "payload_content_type": "text/plain", "expiration": expiration},
        )
        sid = r.json()["secret_ref"].rsplit("/", 1)[1]
    race_server.expire_now(sid)  # the expiration passes without waiting for the machine's clock
    db = Database(database_url, pool_size=1)
    try:
        deadline = time.monotonic() + 15
        reason = None
        while time.monotonic() < deadline and reason is None:
            time.sleep(0.3)  # the server's reaper thread runs every 0.5 s: poll for its pass
            with db.read() as conn:
                reason = conn.execute(
                    select(secret_tombstones.c.deleted_reason).where(secret_tombstones.c.id == sid)
                ).scalar_one_or_none()
        assert reason == "expired"
        with db.read() as conn:
            assert conn.execute(select(secrets).where(secrets.c.id == sid)).first() is None
    finally:
        db.dispose()


def test_barbicanclient_is_unaffected_by_limited_secrets(race_server: LiveServer) -> None:
    """python-barbicanclient builds Secret(**item) from list items and raises TypeError on unknown keys:
    limited secrets must look like any other secret to it."""
    project = f"client-{uuid.uuid4()}"
    with httpx.Client(base_url=race_server.url, headers=_headers(project), timeout=30) as http:
        r = http.post(
            "/v1/secrets",
            json={"name": "limited", "payload": "p", "payload_content_type": "text/plain", "max_reads": 5},
        )
        ref = r.json()["secret_ref"]
    c = barbican.Client(endpoint=race_server.url, project_id=project)
    c.client._default_headers["X-User-Id"] = "u"
    listed = c.secrets.list()
    assert [s.name for s in listed] == ["limited"]
    secret = c.secrets.get(ref)
    assert (secret.name, secret.payload) == ("limited", "p")
    consumer_client = barbican.Client(endpoint=race_server.url, project_id=project, microversion="1.1")
    after = consumer_client.secrets.register_consumer(ref, service="nova", resource_type="vm", resource_id="i-1")
    assert after.name == "limited"
    with httpx.Client(base_url=race_server.url, headers=_headers(project), timeout=30) as http:
        assert http.get(ref.split(race_server.url, 1)[1] + "/lifecycle").json()["reads_left"] == 4
