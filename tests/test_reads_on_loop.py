"""Reads on the event loop (donjon.blocking, api.common.run_read): served there when every step is at hand,
moved to a worker thread, before any effect, when one would wait. SQLite's read its local file there;
PostgreSQL's await psycopg there, in a greenlet (storage/loop_reads.py); MariaDB's never start there."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import event, text
from starlette.testclient import TestClient

from donjon.api.app import create_app
from donjon.blocking import WouldBlock, may_block, on_event_loop
from donjon.config import AuditConfig, KeystoreConfig, Settings
from donjon.services.payload_store import PayloadStore
from donjon.services.secrets import SecretService
from donjon.storage import migrate
from donjon.storage.database import Database
from tests.conftest import BASE, Api


def _on_loop(database_url: str) -> bool:
    """Whether this database's reads are tried on the loop: SQLite's and PostgreSQL's, not MariaDB's."""
    return not database_url.startswith("mysql")


def _count(outcome: str) -> float:
    return REGISTRY.get_sample_value("donjon_reads_on_loop_total", {"outcome": outcome}) or 0.0


class _Threads:
    """The names of the threads the payload store was read from (the loop's, or AnyIO's workers)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.names: list[str] = []
        real: Callable[..., bytes] = PayloadStore.read

        def read(store: PayloadStore, *args: Any, **kwargs: Any) -> bytes:
            self.names.append(threading.current_thread().name)
            return real(store, *args, **kwargs)

        monkeypatch.setattr(PayloadStore, "read", read)

    def workers(self) -> list[bool]:
        return ["AnyIO worker thread" in name for name in self.names]


@pytest.fixture
def audited_settings(settings: Settings, tmp_path: Any) -> Settings:
    # Fail-closed audit with fsync, as the server's defaults, in a log of this test's own.
    audit = AuditConfig(path=tmp_path / "audit.log", key_file=tmp_path / "audit.key")
    return settings.model_copy(update={"audit": audit})


@pytest.fixture
def sqlite_settings(tmp_path: Path) -> Settings:
    """A SQLite database of the test's own, whatever databases the run selected (the loop is SQLite's)."""
    url = f"sqlite:///{tmp_path / 'donjon.sqlite'}"
    db = Database(url, pool_size=1)
    migrate.upgrade(db)
    db.dispose()
    return Settings(
        database_url=url,
        data_dir=tmp_path,
        host_href=BASE,
        keystore=KeystoreConfig(type="file", options={"path": str(tmp_path / "root.key")}),
        audit=AuditConfig(path=tmp_path / "audit.log", key_file=tmp_path / "audit.key"),
    )


@pytest.fixture
def client(audited_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(audited_settings), base_url=BASE) as test_client:
        yield test_client


def test_may_block_refuses_only_on_the_loop() -> None:
    may_block("a step")  # off the loop: nothing happens
    with on_event_loop(), pytest.raises(WouldBlock):
        may_block("a step")
    may_block("a step")  # the mark does not outlive its block
    # Not an Exception: no "except Exception" on the way can turn it into an error answer.
    assert not issubclass(WouldBlock, Exception)


def test_reads_are_served_on_the_loop_where_the_database_allows_and_others_in_a_thread(
    client: TestClient, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = Api(client, f"project-{uuid.uuid4()}")
    secret_id = api.create_secret(payload="on the loop", payload_content_type="text/plain")
    threads = _Threads(monkeypatch)
    served, moved = _count("served"), _count("moved")
    assert api.get(f"/v1/secrets/{secret_id}/payload", headers={"Accept": "text/plain"}).text == "on the loop"
    assert api.get(f"/v1/secrets/{secret_id}", headers={"Accept": "text/plain"}).text == "on the loop"
    assert api.get(f"/v1/secrets/{secret_id}").json()["status"] == "ACTIVE"
    assert api.get("/v1/secrets").json()["total"] == 1
    loop = _on_loop(database_url)
    # SQLite and PostgreSQL: four reads on the loop; MariaDB (PyMySQL cannot await): none tried there at all.
    assert (_count("served") - served, _count("moved") - moved) == ((4, 0) if loop else (0, 0))
    assert threads.workers() == [not loop, not loop]


def test_a_limited_read_moves_to_a_thread_before_it_spends_anything(
    sqlite_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    with TestClient(create_app(sqlite_settings), base_url=BASE) as client:
        _limited_read(client, sqlite_settings, monkeypatch)


def _limited_read(client: TestClient, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    api = Api(client, f"project-{uuid.uuid4()}")
    secret_id = api.create_secret(payload="twice", payload_content_type="text/plain", max_reads=2)
    threads = _Threads(monkeypatch)
    moved = _count("moved")
    assert api.get(f"/v1/secrets/{secret_id}/payload", headers={"Accept": "text/plain"}).text == "twice"
    assert _count("moved") - moved == 1
    assert threads.workers() == [True]  # the spent read and its payload: in the worker thread only
    # Its pending audit record written once, and one read spent, not two: the loop's attempt stopped before
    # both.
    assert settings.audit.path is not None
    records = [json.loads(line)["event"] for line in settings.audit.path.read_text().splitlines()]
    reads = [e for e in records if e["action"] == "read" and secret_id in json.dumps(e)]
    assert sorted(e["outcome"] for e in reads) == ["pending", "success"]
    assert api.get(f"/v1/secrets/{secret_id}/lifecycle").json()["reads_left"] == 1


def test_a_kek_to_unwrap_moves_the_read_to_a_thread(
    settings: Settings, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    uncached = settings.model_copy(update={"kek_cache_seconds": 0})  # every read unwraps its KEK in the keystore
    with TestClient(create_app(uncached), base_url=BASE) as client:
        api = Api(client, f"project-{uuid.uuid4()}")
        secret_id = api.create_secret(payload="unwrapped", payload_content_type="text/plain")
        threads = _Threads(monkeypatch)
        moved = _count("moved")
        for _ in range(2):  # the second: a loop connection given back after the first's WouldBlock is usable
            assert api.get(f"/v1/secrets/{secret_id}/payload", headers={"Accept": "text/plain"}).text == "unwrapped"
        loop = _on_loop(database_url)
        assert _count("moved") - moved == (2 if loop else 0)
        # On the loop, the attempt read the row and reached the store, then stepped aside to a thread.
        assert threads.workers() == ([False, True] * 2 if loop else [True, True])


def test_the_loop_keeps_one_connection_and_lets_a_failed_one_go(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'loop.sqlite'}")
    checkouts: list[int] = []
    event.listen(db.engine, "checkout", lambda *_: checkouts.append(1))
    with db.read() as conn:  # off the loop: a checkout per read, and an idle connection in the pool after it
        conn.execute(text("SELECT 1"))
    with on_event_loop():
        for _ in range(3):
            with db.read() as conn:
                assert conn.execute(text("SELECT 1")).scalar_one() == 1
        assert len(checkouts) == 2  # the loop's connection was checked out once, then kept
        with pytest.raises(ZeroDivisionError), db.read() as conn:
            conn.execute(text("SELECT 1"))
            raise ZeroDivisionError
        with pytest.raises(WouldBlock), db.read():
            may_block("a later step")  # not the connection's fault: it is kept
        with db.read() as conn:
            conn.execute(text("SELECT 1"))
        assert len(checkouts) == 3  # after the failure, a fresh one; after WouldBlock, the same
        assert db.engine.pool.checkedout() == 1  # type: ignore[attr-defined]
    db.dispose()
    assert db.engine.pool.checkedout() == 0  # type: ignore[attr-defined]


def test_vault_kv_reads_and_transit_encrypts_on_the_loop(client: TestClient, database_url: str) -> None:
    """A KV v2 read and a single-item transit encrypt: on the loop with SQLite; a batch goes to a thread."""
    headers = {"X-Vault-Token": f"loop-{uuid.uuid4()}"}
    assert client.post("/v1/secret/data/a/b", headers=headers, json={"data": {"k": "v"}}).status_code == 200
    assert client.post("/v1/transit/keys/k", headers=headers, json={}).status_code in (200, 204)
    served, moved = _count("served"), _count("moved")
    assert client.get("/v1/secret/data/a/b", headers=headers).json()["data"]["data"] == {"k": "v"}
    one = {"plaintext": "aGVsbG8="}
    r = client.post("/v1/transit/encrypt/k", headers=headers, json=one)
    assert r.status_code == 200 and r.json()["data"]["ciphertext"].startswith("vault:v1:"), r.text
    r = client.post("/v1/transit/encrypt/k", headers=headers, json={"batch_input": [one, one]})
    assert r.status_code == 200 and len(r.json()["data"]["batch_results"]) == 2, r.text
    assert (_count("served") - served, _count("moved") - moved) == ((2, 0) if _on_loop(database_url) else (0, 0))


def test_an_encrypt_that_creates_its_key_moves_to_a_thread_first(sqlite_settings: Settings) -> None:
    """Vault's upsert: the loop's attempt stops at the write, before any effect; one key is made, in a thread."""
    with TestClient(create_app(sqlite_settings), base_url=BASE) as client:
        headers = {"X-Vault-Token": f"loop-{uuid.uuid4()}"}
        assert client.post("/v1/secret/data/warm", headers=headers, json={"data": {}}).status_code == 200  # a KEK
        moved = _count("moved")
        r = client.post("/v1/transit/encrypt/new", headers=headers, json={"plaintext": "aGVsbG8="})
        assert r.status_code == 200, r.text
        assert _count("moved") - moved == 1
        key = client.get("/v1/transit/keys/new", headers=headers).json()["data"]
        assert key["latest_version"] == 1 and list(key["keys"]) == ["1"]
        assert client.request("LIST", "/v1/transit/keys", headers=headers).json()["data"]["keys"] == ["new"]


def test_a_transit_key_whose_kek_must_be_unwrapped_moves_to_a_thread(sqlite_settings: Settings) -> None:
    uncached = sqlite_settings.model_copy(update={"kek_cache_seconds": 0})
    with TestClient(create_app(uncached), base_url=BASE) as client:
        headers = {"X-Vault-Token": f"loop-{uuid.uuid4()}"}
        assert client.post("/v1/transit/keys/k", headers=headers, json={}).status_code in (200, 204)
        moved = _count("moved")
        r = client.post("/v1/transit/encrypt/k", headers=headers, json={"plaintext": "aGVsbG8="})
        assert r.status_code == 200, r.text
        assert _count("moved") - moved == 1


def test_a_secret_is_created_from_the_loop_once_its_project_kek_is_at_hand(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every database: over the network too, the row is built on the loop and its insert grouped (no thread).
    in_thread: list[str] = []
    real_create = SecretService.create

    def create(service: SecretService, caller: Any, new: Any) -> Any:
        in_thread.append(threading.current_thread().name)
        return real_create(service, caller, new)

    monkeypatch.setattr(SecretService, "create", create)
    with TestClient(create_app(settings), base_url=BASE) as client:
        api = Api(client, f"p-{uuid.uuid4()}")

        def store(text: str) -> str:
            r = api.post("/v1/secrets", json={"payload": text, "payload_content_type": "text/plain"})
            assert r.status_code == 201, r.text
            return str(r.json()["secret_ref"]).rsplit("/", 1)[1]

        first = store("first")  # the project's KEK is made on the way: a write, so all of it in a thread
        assert len(in_thread) == 1 and "AnyIO worker thread" in in_thread[0]
        others = [store(f"next-{i}") for i in range(3)]  # the KEK is cached: the loop builds, the committer commits
        assert len(in_thread) == 1
        group = client.app.state.ctx.secrets._db._group_commit
        assert group is not None and group.async_writes == 3
        for secret_id, text in zip([first, *others], ["first", "next-0", "next-1", "next-2"], strict=True):
            r = api.get(f"/v1/secrets/{secret_id}/payload", headers={"Accept": "text/plain"})
            assert r.status_code == 200 and r.text == text


def test_a_secret_whose_kek_must_be_unwrapped_is_created_in_a_thread(sqlite_settings: Settings) -> None:
    uncached = sqlite_settings.model_copy(update={"kek_cache_seconds": 0})
    with TestClient(create_app(uncached), base_url=BASE) as client:
        api = Api(client, f"p-{uuid.uuid4()}")
        for i in range(2):
            r = api.post("/v1/secrets", json={"payload": f"s{i}", "payload_content_type": "text/plain"})
            assert r.status_code == 201, r.text
        group = client.app.state.ctx.secrets._db._group_commit
        assert group is not None and group.async_writes == 0


def test_kv_writes_join_the_group_commit_from_the_loop_and_keep_check_and_set(sqlite_settings: Settings) -> None:
    with TestClient(create_app(sqlite_settings), base_url=BASE) as client:
        headers = {"X-Vault-Token": f"loop-{uuid.uuid4()}"}

        def write(value: str, cas: int | None = None) -> Any:
            body: dict[str, Any] = {"data": {"v": value}}
            if cas is not None:
                body["options"] = {"cas": cas}
            return client.post("/v1/secret/data/app/db", headers=headers, json=body)

        group = client.app.state.ctx.secrets._db._group_commit
        assert group is not None
        assert write("one").status_code == 200  # the project's KEK is made on the way: in a thread
        assert group.async_writes == 0
        assert write("two").json()["data"]["version"] == 2
        assert write("three", cas=2).json()["data"]["version"] == 3
        refused = write("stale", cas=2)  # check-and-set against a version that is no longer the latest
        assert refused.status_code == 400, refused.text
        assert group.async_writes == 3
        read = client.get("/v1/secret/data/app/db", headers=headers).json()["data"]
        assert read["data"] == {"v": "three"} and read["metadata"]["version"] == 3
