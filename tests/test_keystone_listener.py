"""A project deleted in a real Keystone is crypto-shredded in donjon by ``donjon manage keystone-listener``.

Keystone (tests/components/keystone.py) publishes its notifications on the machine's RabbitMQ; the listener
runs as its own process, as an operator would run it, on each of the three databases.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO

import pytest
from sqlalchemy import func, select
from starlette.testclient import TestClient

from donjon.api.app import create_app
from donjon.config import Settings
from donjon.errors import Unavailable
from donjon.keystone_listener import HANDLED, PROJECT_DELETED, REQUEUE, ProjectDeletedEndpoint, deleted_project_id
from donjon.storage.database import Database
from donjon.storage.tables import project_keks, secrets
from tests.components.keystone import RABBITMQ_URL, Keystone, _Admin
from tests.conftest import BASE, Api
from tests.live_server import DONJON

# --- the endpoint alone -----------------------------------------------------------------------------------


def test_project_id_from_basic_and_cadf_payloads() -> None:
    assert deleted_project_id({"resource_info": "p1"}) == "p1"
    assert deleted_project_id({"target": {"id": "p2", "typeURI": "data/security/project"}}) == "p2"
    assert deleted_project_id({"resource_info": ""}) is None
    assert deleted_project_id({"target": {}}) is None
    assert deleted_project_id("p3") is None


def test_endpoint_purges_only_deletions_and_requeues_failures() -> None:
    purged: list[str] = []

    def purge(project_id: str) -> Mapping[str, int]:
        if project_id == "down":
            raise Unavailable("The database is not reachable.")
        purged.append(project_id)
        return {"secrets": 1}

    endpoint = ProjectDeletedEndpoint(purge, allow_requeue=True)
    assert endpoint.info({}, "identity.host", "identity.project.updated", {"resource_info": "p"}, {}) == HANDLED
    assert endpoint.info({}, "identity.host", PROJECT_DELETED, {"resource_info": "p"}, {}) == HANDLED
    assert endpoint.info({}, "identity.host", PROJECT_DELETED, {"nothing": 1}, {}) == HANDLED
    assert endpoint.info({}, "identity.host", PROJECT_DELETED, {"resource_info": "down"}, {}) == REQUEUE
    assert purged == ["p"]
    no_requeue = ProjectDeletedEndpoint(purge, allow_requeue=False)
    assert no_requeue.info({}, "identity.host", PROJECT_DELETED, {"resource_info": "down"}, {}) == HANDLED


def test_the_result_strings_are_oslo_messagings() -> None:
    # Checked in a child: oslo.messaging is kept out of the test process (it may import eventlet).
    code = "import oslo_messaging as m; print(m.NotificationResult.HANDLED, m.NotificationResult.REQUEUE)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == [HANDLED, REQUEUE]


# --- against Keystone and RabbitMQ ------------------------------------------------------------------------


class Listener:
    """``donjon manage keystone-listener`` as a child process; its stderr lines are collected as they come."""

    def __init__(self, env: dict[str, str]) -> None:
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        self.process = subprocess.Popen(
            [DONJON, "manage", "keystone-listener"], env=env, stderr=subprocess.PIPE, text=True
        )
        assert self.process.stderr is not None
        threading.Thread(target=self._pump, args=(self.process.stderr,), daemon=True).start()

    def _pump(self, stream: IO[str]) -> None:
        for line in stream:
            self.lines.put(line)

    def wait_for(self, text: str, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None and self.lines.empty():
                raise AssertionError(f"listener exited {self.process.returncode}:\n{''.join(self.seen)}")
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                continue
            self.seen.append(line)
            if text in line:
                return line
        raise AssertionError(f"no {text!r} from the listener within {timeout}s:\n{''.join(self.seen)}")

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(30)


def count(database_url: str, table: object, project_id: str) -> int:
    db = Database(database_url, pool_size=1)
    try:
        with db.read() as conn:
            query = select(func.count()).select_from(table).where(table.c.project_id == project_id)  # type: ignore[attr-defined]
            return int(conn.execute(query).scalar_one())
    finally:
        db.dispose()


@pytest.fixture
def admin(keystone: Keystone) -> Iterator[_Admin]:
    admin = _Admin(keystone)
    yield admin
    admin.client.close()


def test_a_project_deleted_in_keystone_is_purged(
    keystone: Keystone,
    admin: _Admin,
    database_url: str,
    tmp_path: Path,
) -> None:
    suffix = uuid.uuid4().hex[:8]
    doomed, kept = admin.project(f"doomed-{suffix}"), admin.project(f"kept-{suffix}")
    settings = Settings(database_url=database_url, data_dir=tmp_path, host_href=BASE)
    with TestClient(create_app(settings), base_url=BASE) as client:
        for project_id in (doomed, kept):
            api = Api(client, project_id)
            for i in range(3):
                api.create_secret(payload=f"{project_id}-{i}", payload_content_type="text/plain")
    assert count(database_url, secrets, doomed) == 3 and count(database_url, project_keks, doomed) == 1

    env = {k: v for k, v in os.environ.items() if not k.startswith("DONJON_")}
    env |= {
        "DONJON_DATABASE_URL": database_url,
        "DONJON_DATA_DIR": str(tmp_path),
        "DONJON_KEYSTONE_NOTIFICATIONS__TRANSPORT_URL": RABBITMQ_URL,
        "DONJON_KEYSTONE_NOTIFICATIONS__TOPIC": keystone.notification_topic,
    }
    listener = Listener(env)
    try:
        listener.wait_for("listening for identity.project.deleted")
        # Another event about the project that stays must not purge it.
        r = admin.client.patch(f"/projects/{kept}", json={"project": {"description": "still here"}})
        assert r.status_code == 200, r.text
        assert admin.client.delete(f"/projects/{doomed}").status_code == 204
        line = listener.wait_for(f"project {doomed} deleted in Keystone: purged")
        assert "3 secrets" in line and "1 project_keks" in line, line
    finally:
        assert listener.stop() == 0, "".join(listener.seen)

    assert count(database_url, secrets, doomed) == 0 and count(database_url, project_keks, doomed) == 0
    assert count(database_url, secrets, kept) == 3 and count(database_url, project_keks, kept) == 1
    assert not any(f"{doomed}-" in line or f"{kept}-" in line for line in listener.seen), "a payload was logged"
    assert not any(kept in line for line in listener.seen)
    with TestClient(create_app(settings), base_url=BASE) as client:
        api = Api(client, kept)
        listed = api.get("/v1/secrets").json()["secrets"]
        payloads = {api.get(f"{s['secret_ref']}/payload", headers={"Accept": "text/plain"}).text for s in listed}
        assert payloads == {f"{kept}-{i}" for i in range(3)}


def test_the_listener_needs_a_transport(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DONJON_")} | {"DONJON_DATA_DIR": str(tmp_path)}
    run = subprocess.run([DONJON, "manage", "keystone-listener"], env=env, capture_output=True, text=True, timeout=60)
    assert run.returncode == 1 and "keystone_notifications.transport_url is not set" in run.stderr
    assert "Traceback" not in run.stderr
