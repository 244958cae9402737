"""No existence oracle in timing (issue 12, finding 12): asking for another project's secret or container costs
what asking for an id that does not exist costs. Checked structurally, not with a stopwatch (a timing
assertion would flap on a shared machine): both run the same SQL statements (which answer one row either
way), the same policy decisions, and hit or miss the decision cache alike, a first probe and a repeated one.
bench/existence_oracle.py measures the timing itself (bench/README.md).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event
from starlette.testclient import TestClient

from tests.conftest import Api

BACKGROUND = ("donjon-order-worker", "donjon-expiry-reaper")
SECRET_PATHS = [
    ("GET", "/v1/secrets/{}"),
    ("GET", "/v1/secrets/{}/payload"),
    ("DELETE", "/v1/secrets/{}"),
    ("GET", "/v1/secrets/{}/metadata"),
    ("GET", "/v1/secrets/{}/metadata/k"),
    ("GET", "/v1/secrets/{}/consumers"),
    ("GET", "/v1/secrets/{}/acl"),
    ("GET", "/v1/secrets/{}/lifecycle"),
    ("POST", "/v1/secrets/{}/wrap"),
]
CONTAINER_PATHS = [
    ("GET", "/v1/containers/{}"),
    ("DELETE", "/v1/containers/{}"),
    ("GET", "/v1/containers/{}/consumers"),
    ("GET", "/v1/containers/{}/acl"),
]


@contextmanager
def traced(client: TestClient) -> Iterator[dict[str, Any]]:
    """What one request does: its SQL statements, its policy decisions, and the decision cache's misses."""
    context = client.app.state.ctx  # type: ignore[attr-defined]
    engine = context.secrets._db.engine
    policy = context.policy
    trace: dict[str, Any] = {"sql": [], "rules": []}

    def on_execute(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if not threading.current_thread().name.startswith(BACKGROUND):  # the order worker, the reaper
            trace["sql"].append(statement)

    allowed = policy.allowed

    def counting(rule: str, *args: Any, **kwargs: Any) -> bool:
        trace["rules"].append(rule)
        return bool(allowed(rule, *args, **kwargs))

    misses = policy._decide.cache_info().misses
    event.listen(engine, "before_cursor_execute", on_execute)
    policy.allowed = counting
    try:
        yield trace
    finally:
        del policy.allowed
        event.remove(engine, "before_cursor_execute", on_execute)
        trace["cache_misses"] = policy._decide.cache_info().misses - misses


def probe(api: Api, method: str, path: str, resource_id: str) -> dict[str, Any]:
    with traced(api.client) as trace:
        r = api.request(method, path.format(resource_id))
    trace["answer"] = (r.status_code, r.json())
    return trace


def assert_same_cost(api: Api, method: str, path: str, foreign: str) -> None:
    unknown = str(uuid.uuid4())
    for misses in (1, 0):  # a first probe (the decision cache misses) and a repeated one (it hits)
        seen_foreign, seen_unknown = probe(api, method, path, foreign), probe(api, method, path, unknown)
        assert seen_foreign["answer"] == seen_unknown["answer"]
        assert seen_foreign["answer"][0] == 404
        assert seen_foreign["sql"] == seen_unknown["sql"]
        assert seen_foreign["rules"] == seen_unknown["rules"] and seen_foreign["rules"]
        assert seen_foreign["cache_misses"] == seen_unknown["cache_misses"] == misses


@pytest.mark.parametrize("method,path", SECRET_PATHS)
def test_another_projects_secret_costs_what_an_unknown_id_costs(api: Api, method: str, path: str) -> None:
    owner = api.other_project()
    foreign = owner.create_secret(name="theirs", payload="p", payload_content_type="text/plain")
    assert_same_cost(api, method, path, foreign)


@pytest.mark.parametrize("method,path", CONTAINER_PATHS)
def test_another_projects_container_costs_what_an_unknown_id_costs(api: Api, method: str, path: str) -> None:
    owner = api.other_project()
    foreign = owner.post("/v1/containers", json={"type": "generic", "name": "theirs"}).json()["container_ref"]
    assert_same_cost(api, method, path, foreign.rsplit("/", 1)[1])
