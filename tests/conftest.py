"""Fixtures: a migrated database per backend, the app in-process over it, and a fresh project per test."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from donjon.api.app import create_app
from donjon.config import KeystoreConfig, LifecycleConfig, Settings
from tests import databases
from tests.clock import MovableClock
from tests.components import NO_RABBITMQ, rabbitmq_wanted
from tests.openapi_conformance import check_responses

BASE = "http://localhost:9311"

# The real servers shared by the whole session (one each: a test module importing a fixture function instead
# would start its own server for that module).
pytest_plugins = ["tests.live_server", "tests.components.keystone", "tests.components.kmip", "tests.components.openbao"]

# Payloads that tests send and that must never be written to a log: checked after the whole run.
LEAK_SENTINELS = (b"audit-sentinel-", b"s3cr3t")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if rabbitmq_wanted():
        return
    for item in items:
        if "rabbitmq" in item.keywords:
            item.add_marker(pytest.mark.skip(reason=NO_RABBITMQ))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run if an audit log or a live server's log under this run's tmp dirs holds a sentinel."""
    factory = getattr(session.config, "_tmp_path_factory", None)
    base: Path | None = getattr(factory, "_basetemp", None)  # None: no test used a tmp dir
    if base is None or not base.is_dir():
        return
    leaks = [
        f"{path}: {sentinel.decode()}"
        for path in sorted(base.rglob("*.log*"))
        if path.is_file() and (path.name.startswith("audit.log") or path.name == "server.log")
        for sentinel in LEAK_SENTINELS
        if sentinel in path.read_bytes()
    ]
    if leaks:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line("secret payloads found in logs:\n  " + "\n  ".join(leaks), red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(scope="session", params=databases.selected())
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    kind = request.param
    with databases.migrated_database(kind, tmp_path_factory.mktemp(f"db-{kind}")) as url:
        yield url


@pytest.fixture(scope="session")
def settings(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    data_dir = tmp_path_factory.mktemp("data")
    return Settings(
        database_url=database_url,
        data_dir=data_dir,
        host_href=BASE,
        keystore=KeystoreConfig(type="file", options={"path": str(data_dir / "root.key")}),
        # The shared in-process app runs no reaper thread: its pass (every 30 s) would race the tests that
        # drive reap_once themselves and count what they reaped. test_lifecycle_live covers the server's own.
        lifecycle=LifecycleConfig(run_in_server=False),
    )


@pytest.fixture(scope="session")
def app_client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings), base_url=BASE) as client:
        yield check_responses(client)


class Api:
    """A TestClient bound to one project (and user), as python-barbicanclient's no-auth mode would send."""

    def __init__(self, client: TestClient, project_id: str, user_id: str = "user-1", version: str | None = None):
        self.client = client
        self.project_id = project_id
        self.user_id = user_id
        self.version = version

    def headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        h = {"X-Project-Id": self.project_id, "X-User-Id": self.user_id}
        if self.version:
            h["OpenStack-API-Version"] = f"key-manager {self.version}"
        h.update(extra or {})
        return h

    def request(self, method: str, path: str, *, headers: dict[str, str] | None = None, **kw: Any) -> Any:
        return self.client.request(method, path, headers=self.headers(headers), **kw)

    def get(self, path: str, **kw: Any) -> Any:
        return self.request("GET", path, **kw)

    def post(self, path: str, **kw: Any) -> Any:
        return self.request("POST", path, **kw)

    def put(self, path: str, **kw: Any) -> Any:
        return self.request("PUT", path, **kw)

    def delete(self, path: str, **kw: Any) -> Any:
        return self.request("DELETE", path, **kw)

    def at(self, version: str) -> Api:
        return Api(self.client, self.project_id, self.user_id, version)

    def other_project(self) -> Api:
        return Api(self.client, f"other-{uuid.uuid4()}", "user-2", self.version)

    def create_secret(self, **body: Any) -> str:
        """POST a secret and return its id."""
        r = self.post("/v1/secrets", json=body)
        assert r.status_code == 201, r.text
        return str(r.json()["secret_ref"].rsplit("/", 1)[1])


@pytest.fixture
def api(app_client: TestClient) -> Api:
    return Api(app_client, f"project-{uuid.uuid4()}")


@pytest.fixture
def clock() -> MovableClock:
    """The clock of ``clocked_client``: a test advances it instead of sleeping until a time has passed."""
    return MovableClock()


@pytest.fixture
def clocked_client(settings: Settings, clock: MovableClock) -> Iterator[TestClient]:
    """The app on the session's database with the test's own clock (the shared app keeps the machine's)."""
    with TestClient(create_app(settings, clock=clock), base_url=BASE) as client:
        yield client


@pytest.fixture
def clocked_api(clocked_client: TestClient) -> Api:
    return Api(clocked_client, f"project-{uuid.uuid4()}")


@pytest.fixture
def data_dir(settings: Settings) -> Path:
    return settings.data_dir
