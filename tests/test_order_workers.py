"""Orders run exactly once: several workers (nodes) on one database, leases that expire, and server crashes.

Each test module database here is fresh and has no server attached, so only the workers a test starts
touch its orders.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update

from donjon.api.schemas.orders import new_order
from donjon.auth import Caller
from donjon.config import OrderConfig, QuotaConfig
from donjon.keystores import open_keystore
from donjon.policy import Policy
from donjon.services.orders import ClaimLost, OrderProcessor, OrderService
from donjon.services.project_keys import ProjectKeys
from donjon.services.quotas import Quotas
from donjon.services.rotation import KekRotation
from donjon.storage import orders as order_repo
from donjon.storage.database import Database
from donjon.storage.tables import container_secrets, containers, orders, secrets
from donjon.timeutil import utcnow
from donjon.workers.orders import OrderWorker
from tests import databases
from tests.clock import MovableClock
from tests.live_server import LiveServer


@pytest.fixture(scope="module", params=databases.selected())
def quiet_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    kind = request.param
    with databases.migrated_database(kind, tmp_path_factory.mktemp(f"orders-{kind}")) as url:
        yield url


@dataclass
class Node:
    """What one donjon node holds for orders: its own engine, KEK cache and worker."""

    db: Database
    orders: OrderService
    processor: OrderProcessor
    worker: OrderWorker


@pytest.fixture
def make_node(quiet_url: str, tmp_path: Path, clock: MovableClock) -> Iterator[Any]:
    """Nodes (database pool, services, worker) on one database, sharing the test's clock."""
    made: list[Node] = []
    key_file = tmp_path / "root.key"

    def make(**config: Any) -> Node:
        db = Database(quiet_url, pool_size=4)
        keys = ProjectKeys(db, open_keystore("file", {"path": str(key_file)}), 300, clock=clock)
        processor = OrderProcessor(db, keys, clock=clock)
        service = OrderService(db, keys, Policy(), Quotas(QuotaConfig()), clock=clock)
        node = Node(db, service, processor, OrderWorker(db, processor, OrderConfig(**config), clock=clock))
        made.append(node)
        return node

    yield make
    for node in made:
        node.worker.stop()
        node.db.dispose()


def queue(node: Node, project: str, body: dict[str, Any], count: int) -> list[str]:
    caller = Caller(project, "creator", ("member",))
    return [node.orders.create(caller, new_order(body, now=utcnow())) for _ in range(count)]


def rows(node: Node, project: str) -> list[Any]:
    with node.db.read() as conn:
        return list(conn.execute(select(orders).where(orders.c.project_id == project)))


def count(node: Node, table: Any, project: str) -> int:
    with node.db.read() as conn:
        return int(conn.execute(select(func.count()).select_from(table).where(table.c.project_id == project)).scalar())


def drain(nodes: list[Node]) -> None:
    """Run every node's worker loop in its own thread, all at once, until no order is claimable."""
    barrier = threading.Barrier(len(nodes))
    errors: list[BaseException] = []

    def run(node: Node) -> None:
        try:
            barrier.wait()
            while node.worker.run_once():
                time.sleep(0)  # let the other nodes' threads have the GIL between claims, as processes would
        except BaseException as exc:  # noqa: BLE001 - reported by the test below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(n,)) for n in nodes]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors


def test_four_nodes_process_every_order_exactly_once(make_node: Any) -> None:
    nodes = [make_node() for _ in range(4)]
    project = f"p-{uuid.uuid4()}"
    ids = queue(nodes[0], project, {"type": "key", "meta": {"algorithm": "aes", "bit_length": 256}}, 40)
    ids += queue(nodes[1], project, {"type": "password", "meta": {"length": 16}}, 10)

    drain(nodes)

    done = rows(nodes[0], project)
    assert sorted(r.id for r in done) == sorted(ids)
    assert {r.status for r in done} == {"ACTIVE"}
    assert all(r.attempts == 1 for r in done), "an order was claimed twice"
    # One secret per order: no worker generated an order that another one also completed.
    assert len({r.secret_id for r in done}) == 50
    assert count(nodes[0], secrets, project) == 50
    assert len({r.claimed_by for r in done}) > 1, "only one node did any work"


def test_key_pair_orders_across_nodes_make_one_container_each(make_node: Any) -> None:
    nodes = [make_node() for _ in range(3)]
    project = f"p-{uuid.uuid4()}"
    body = {"type": "asymmetric", "meta": {"algorithm": "ec", "bit_length": 256, "passphrase": "pp"}}
    queue(nodes[0], project, body, 12)
    drain(nodes)
    done = rows(nodes[0], project)
    assert {r.status for r in done} == {"ACTIVE"}
    assert count(nodes[0], containers, project) == 12
    assert count(nodes[0], secrets, project) == 36  # private, public and passphrase per order
    with nodes[0].db.read() as conn:
        links = conn.execute(select(func.count()).select_from(container_secrets)).scalar()
    assert links is not None and links >= 36


def test_an_expired_lease_is_taken_over_and_the_late_worker_changes_nothing(
    make_node: Any, clock: MovableClock
) -> None:
    dead, alive = make_node(lease_seconds=60.0), make_node(lease_seconds=60.0)
    project = f"p-{uuid.uuid4()}"
    [order_id] = queue(dead, project, {"type": "key", "meta": {"algorithm": "aes", "bit_length": 128}}, 1)

    # The first node claims the order and then stops answering (a crash, a long GC pause).
    with dead.db.write() as conn:
        claimed = order_repo.claim_next(
            conn, worker=dead.worker.name, now=clock.now(), lease=timedelta(seconds=60), skip_locked=False
        )
    assert claimed is not None and claimed.id == order_id
    assert not alive.worker.run_once(), "a leased order was claimed before its lease ran out"
    clock.advance(50)
    assert not alive.worker.run_once(), "a leased order was claimed before its lease ran out"

    clock.advance(10)
    assert alive.worker.run_once()
    [row] = rows(alive, project)
    assert (row.status, row.claimed_by, row.attempts) == ("ACTIVE", alive.worker.name, 2)

    # The first node wakes up and finishes its stale claim: fenced, rolled back, nothing duplicated.
    with pytest.raises(ClaimLost):
        dead.processor.process(claimed, dead.worker.name)
    assert count(alive, secrets, project) == 1
    [after] = rows(alive, project)
    assert after.secret_id == row.secret_id


def test_an_order_that_keeps_failing_ends_in_error_after_max_attempts(make_node: Any, clock: MovableClock) -> None:
    node = make_node(max_attempts=2)
    project = f"p-{uuid.uuid4()}"
    [order_id] = queue(node, project, {"type": "key", "meta": {"algorithm": "aes", "bit_length": 128}}, 1)
    # Break the order's stored meta so that generation raises an unexpected error (not a validation one).
    with node.db.write() as conn:
        conn.execute(update(orders).where(orders.c.id == order_id).values(meta='{"algorithm": "aes"}'))

    assert node.worker.run_once()
    [row] = rows(node, project)
    assert (row.status, row.attempts) == ("PENDING", 1), "a failed attempt must leave the order for a retry"
    clock.advance(1)  # the failed claim is released for one second
    assert node.worker.run_once()
    [row] = rows(node, project)
    assert row.status == "ERROR"
    assert row.error_status_code == "500"
    assert row.error_reason == "Process TypeOrder failure seen - please contact site administrator."
    assert count(node, secrets, project) == 0


def test_the_worker_thread_wakes_on_new_orders(make_node: Any) -> None:
    node = make_node(poll_seconds=30.0)
    node.worker.start()
    project = f"p-{uuid.uuid4()}"
    [order_id] = queue(node, project, {"type": "key", "meta": {"algorithm": "aes", "bit_length": 128}}, 1)
    node.worker.wake()
    deadline = time.monotonic() + 10
    while rows(node, project)[0].status == "PENDING":
        assert time.monotonic() < deadline, "the woken worker did not process the order"
        time.sleep(0.05)
    assert rows(node, project)[0].id == order_id


AES = {"type": "key", "meta": {"algorithm": "aes", "bit_length": 256}}


def test_a_request_waiting_for_its_order_gets_it_done(make_node: Any) -> None:
    node = make_node(poll_seconds=30.0)  # only a request's wake-up makes this worker look
    node.worker.start()
    project = f"p-{uuid.uuid4()}"
    [order_id] = queue(node, project, AES, 1)
    assert asyncio.run(node.worker.wait_finished(order_id, 30.0))
    [row] = rows(node, project)
    assert (row.id, row.status, row.attempts, row.claimed_by) == (order_id, "ACTIVE", 1, node.worker.name)
    # Asked again once it is done: answered from what the worker remembers, without waiting.
    assert asyncio.run(node.worker.wait_finished(order_id, 30.0))


def test_the_waited_for_order_is_claimed_before_older_ones(make_node: Any) -> None:
    node = make_node(poll_seconds=30.0)
    project = f"p-{uuid.uuid4()}"
    older = queue(node, project, AES, 5)
    [mine] = queue(node, project, AES, 1)
    node.worker.start()
    assert asyncio.run(node.worker.wait_finished(mine, 30.0))
    by_id = {r.id: r for r in rows(node, project)}
    assert by_id[mine].status == "ACTIVE"
    # The older ones are not starved either: the woken worker goes on with them.
    deadline = time.monotonic() + 30
    while any(r.status == "PENDING" for r in rows(node, project)):
        assert time.monotonic() < deadline, "the older orders were not processed"
        time.sleep(0.05)
    assert all(r.attempts == 1 for r in rows(node, project)) and len(older) == 5


def test_an_order_another_node_holds_is_followed_in_the_database(make_node: Any) -> None:
    waiting, other = make_node(poll_seconds=30.0), make_node()
    project = f"p-{uuid.uuid4()}"
    [order_id] = queue(waiting, project, AES, 1)
    with other.db.write() as conn:  # the other node claimed it first
        claimed = order_repo.claim_next(
            conn, worker=other.worker.name, now=utcnow(), lease=timedelta(seconds=60), skip_locked=False
        )
    assert claimed is not None and claimed.id == order_id
    # Started only now: a worker thread started before the claim could take the order first (its first poll
    # may come after the insert), and this test would fail for a reason that is not its subject.
    waiting.worker.start()

    async def wait_while_the_other_node_works() -> bool:
        waiter = asyncio.ensure_future(waiting.worker.wait_finished(order_id, 30.0))
        await asyncio.to_thread(other.processor.process, claimed, other.worker.name)
        return await waiter

    assert asyncio.run(wait_while_the_other_node_works())
    [row] = rows(waiting, project)
    assert (row.status, row.claimed_by, row.attempts) == ("ACTIVE", other.worker.name, 1)


def test_waiting_is_bounded(make_node: Any) -> None:
    project = f"p-{uuid.uuid4()}"
    stopped = make_node()
    [order_id] = queue(stopped, project, AES, 1)
    # No worker running in this process: nothing to wait for.
    assert not asyncio.run(stopped.worker.wait_finished(order_id, 30.0))
    # A bound of 0 (orders.answer_within_seconds = 0) never waits, nor does a request past the waiters' limit.
    running = make_node(poll_seconds=30.0, max_waiting_answers=0)
    running.worker.start()
    assert not asyncio.run(running.worker.wait_finished(order_id, 0))
    assert not asyncio.run(running.worker.wait_finished(order_id, 30.0))


@pytest.mark.live
def test_orders_posted_to_several_server_processes_are_done_at_the_first_get_and_run_once(
    quiet_url: str, tmp_path: Path
) -> None:
    env = {"DONJON_DATABASE_URL": quiet_url, "DONJON_ORDERS__POLL_SECONDS": "0.2"}
    server = LiveServer(tmp_path / "node", workers=3, env=env).start()
    project = {"X-Project-Id": f"p-{uuid.uuid4()}", "X-User-Id": "u"}
    bodies: list[dict[str, Any]] = [AES] * 18 + [
        {"type": "asymmetric", "meta": {"algorithm": "ec", "bit_length": 256}}
    ] * 6
    bodies += [{"type": "password", "meta": {"length": 20}}] * 6
    try:
        with httpx.Client(base_url=server.url, headers=project, timeout=30) as http:

            def post_then_get(body: dict[str, Any]) -> dict[str, Any]:
                r = http.post("/v1/orders", json=body)
                assert r.status_code == 202, r.text
                got: dict[str, Any] = http.get(r.json()["order_ref"]).json()
                return got

            with ThreadPoolExecutor(6) as pool:
                firsts = list(pool.map(post_then_get, bodies))
            assert [o["status"] for o in firsts] == ["ACTIVE"] * 30, "an order was not done at its first GET"
            assert http.get("/v1/secrets", params={"limit": 1}).json()["total"] == 18 + 12 + 6
            assert http.get("/v1/containers", params={"limit": 1}).json()["total"] == 6
        db = Database(quiet_url, pool_size=1)
        try:
            with db.read() as conn:
                done = list(conn.execute(select(orders).where(orders.c.project_id == project["X-Project-Id"])))
        finally:
            db.dispose()
        assert len(done) == 30 and all(r.attempts == 1 for r in done), "an order was claimed twice"
        assert len({r.secret_id or r.container_id for r in done}) == 30
    finally:
        server.stop()


@pytest.mark.live
def test_orders_pending_at_a_crash_complete_once_after_restart(quiet_url: str, tmp_path: Path) -> None:
    # answer_within_seconds 0: the POSTs answer at once (PENDING), so that orders are pending at the crash.
    env = {
        "DONJON_DATABASE_URL": quiet_url,
        "DONJON_ORDERS__LEASE_SECONDS": "2",
        "DONJON_ORDERS__POLL_SECONDS": "0.2",
        "DONJON_ORDERS__ANSWER_WITHIN_SECONDS": "0",
    }
    server = LiveServer(tmp_path / "node", workers=2, env=env).start()
    project_id = f"p-{uuid.uuid4()}"
    project = {"X-Project-Id": project_id, "X-User-Id": "u"}
    try:
        with httpx.Client(base_url=server.url, headers=project, timeout=30) as http:
            # The six key pairs (RSA-3072, tens to hundreds of milliseconds each) last, then the kill at once:
            # the last one posted is still being generated, or queued, when the server dies.
            for i in range(30):
                body: dict[str, Any] = (
                    {"type": "asymmetric", "meta": {"algorithm": "rsa", "bit_length": 3072}}
                    if i >= 24
                    else {"type": "key", "meta": {"algorithm": "aes", "bit_length": 256}}
                )
                r = http.post("/v1/orders", json=body)
                assert r.status_code == 202, r.text
    finally:
        server.kill()
    db = Database(quiet_url, pool_size=1)
    try:
        with db.read() as conn:  # the orders as the crash left them
            statuses = list(conn.scalars(select(orders.c.status).where(orders.c.project_id == project_id)))
    finally:
        db.dispose()
    assert len(statuses) == 30
    assert "PENDING" in statuses, "every order finished before the crash: the test proves nothing"

    server = LiveServer(tmp_path / "node", workers=2, env=env).start()
    try:
        with httpx.Client(base_url=server.url, headers=project, timeout=30) as http:
            deadline = time.monotonic() + 120
            while True:
                listed = [o for o in http.get("/v1/orders", params={"limit": 100}).json()["orders"]]
                if all(o["status"] != "PENDING" for o in listed):
                    break
                assert time.monotonic() < deadline, "orders pending at the crash never completed"
                time.sleep(0.2)
            assert len(listed) == 30
            assert {o["status"] for o in listed} == {"ACTIVE"}
            # Exactly once: 24 key orders make 24 secrets, 6 key-pair orders 12 secrets and 6 containers.
            assert http.get("/v1/secrets", params={"limit": 1}).json()["total"] == 24 + 12
            assert http.get("/v1/containers", params={"limit": 1}).json()["total"] == 6
            assert len({o.get("secret_ref") or o["container_ref"] for o in listed}) == 30
    finally:
        server.stop()


def test_an_order_processed_with_a_retired_kek_cached_lands_under_the_new_one(make_node: Any, tmp_path: Path) -> None:
    # The worker's node caches the project's KEK as active; another node's rotation (no settle wait) retires
    # it. The next order's key was sealed under the retired KEK and its insert hit the foreign key (the order
    # ended in ERROR); the worker now generates it again under the new KEK.
    node = make_node()
    project = f"p-{uuid.uuid4()}"
    body = {"type": "key", "meta": {"algorithm": "aes", "bit_length": 256}}
    queue(node, project, body, 1)
    while node.worker.run_once():
        pass
    keystore = open_keystore("file", {"path": str(tmp_path / "root.key")})
    report = KekRotation(make_node().db, keystore).rotate(project, settle_seconds=0)
    assert len(report.retired) == 1 and report.new_kek_id is not None
    [order_id] = queue(node, project, body, 1)
    while node.worker.run_once():
        pass
    with node.db.read() as conn:
        row = conn.execute(select(orders.c.status, orders.c.secret_id).where(orders.c.id == order_id)).one()
        assert row.status == "ACTIVE"
        assert conn.execute(select(secrets.c.kek_id).where(secrets.c.id == row.secret_id)).scalar() == (
            report.new_kek_id
        )
