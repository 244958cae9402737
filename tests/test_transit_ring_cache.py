"""Transit's per-process cache of unsealed rings: never a stale ring, never longer than its KEK.

Each use of a key still reads its row (existence, policy) and compares the row's sealed payload with the one
the cached ring was opened from; a change made by another process (two apps, or two services with their own
caches, on one database) is seen on the very next use. A purge, a deletion or a trim drops the key bytes.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from donjon.api.app import create_app
from donjon.auth import Caller
from donjon.config import Settings
from donjon.errors import InvalidInput, NotFound
from donjon.keystores import open_keystore
from donjon.policy import Policy
from donjon.services.project_keys import ProjectKeys
from donjon.services.purge import purge_project, shred_project_keys
from donjon.services.quotas import Quotas
from donjon.services.rotation import KekRotation
from donjon.services.transit import CryptoItem, KeyConfig, NewKey, TransitService
from donjon.storage.database import Database
from donjon.storage.tables import secrets
from tests.clock import MovableClock

BASE = "http://localhost"


@pytest.fixture(scope="module")
def db(settings: Settings) -> Iterator[Database]:
    database = Database(settings.effective_database_url)
    yield database
    database.dispose()


def _process(settings: Settings, db: Database, clock: MovableClock | None = None, ttl: float = 60) -> TransitService:
    """What one worker process holds: its own KEK cache and its own ring cache."""
    keystore = open_keystore(settings.keystore.type, settings.keystore_options())
    if clock is None:
        return TransitService(db, ProjectKeys(db, keystore, ttl), Policy(), Quotas(settings.quotas))
    keys = ProjectKeys(db, keystore, ttl, clock=clock)
    return TransitService(db, keys, Policy(), Quotas(settings.quotas), clock=clock)


@pytest.fixture
def caller() -> Caller:
    return Caller(project_id=f"p-{uuid.uuid4()}", user_id="u1", roles=("admin",))


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _encrypt(t: TransitService, c: Caller, name: str, plaintext: bytes = b"x") -> tuple[str, int]:
    [result] = t.encrypt(c, name, [CryptoItem(plaintext=_b64(plaintext))], NewKey())
    assert result.error is None, result.error
    return str(result.values["ciphertext"]), int(str(result.values["key_version"]))


def _decrypt(t: TransitService, c: Caller, name: str, ciphertext: str) -> bytes:
    [result] = t.decrypt(c, name, [CryptoItem(ciphertext=ciphertext)])
    if result.error is not None:
        raise InvalidInput(result.error)
    return base64.b64decode(str(result.values["plaintext"]))


def _count_opens(monkeypatch: pytest.MonkeyPatch, t: TransitService) -> list[int]:
    opened = [0]
    real = t._open

    def counting(record):  # type: ignore[no-untyped-def]
        opened[0] += 1
        return real(record)

    monkeypatch.setattr(t, "_open", counting)
    return opened


def test_a_ring_is_opened_once_per_payload(
    monkeypatch: pytest.MonkeyPatch, settings: Settings, db: Database, caller: Caller
) -> None:
    a = _process(settings, db)
    a.create_key(caller, "k", NewKey())
    opened = _count_opens(monkeypatch, a)
    ciphertext, _ = _encrypt(a, caller, "k", b"one")
    assert _decrypt(a, caller, "k", ciphertext) == b"one"
    assert a.read_key(caller, "k")["latest_version"] == 1
    assert opened == [1]
    assert a.cached_ring_count() == 1


def test_a_rotation_elsewhere_is_seen_at_once(settings: Settings, db: Database, caller: Caller) -> None:
    a, b = _process(settings, db), _process(settings, db)
    a.create_key(caller, "k", NewKey())
    assert _encrypt(a, caller, "k")[1] == 1
    assert _encrypt(b, caller, "k")[1] == 1
    b.rotate(caller, "k")
    assert _encrypt(a, caller, "k")[1] == 2
    assert a.read_key(caller, "k")["latest_version"] == 2
    ciphertext, _ = _encrypt(b, caller, "k", b"v2")
    assert _decrypt(a, caller, "k", ciphertext) == b"v2"


def test_a_config_and_a_trim_elsewhere_are_seen_at_once(settings: Settings, db: Database, caller: Caller) -> None:
    a, b = _process(settings, db), _process(settings, db)
    a.create_key(caller, "k", NewKey())
    old, _ = _encrypt(a, caller, "k", b"old")
    b.rotate(caller, "k")
    assert _decrypt(a, caller, "k", old) == b"old"  # cached now, with version 1
    b.configure(caller, "k", KeyConfig(min_decryption_version=2, min_encryption_version=2))
    with pytest.raises(InvalidInput, match="disallowed by policy"):
        _decrypt(a, caller, "k", old)
    b.trim(caller, "k", 2)
    info = a.read_key(caller, "k")
    assert list(info["keys"]) == ["2"]  # type: ignore[call-overload]
    assert info["min_available_version"] == 2


def test_a_deletion_elsewhere_drops_the_ring(settings: Settings, db: Database, caller: Caller) -> None:
    a, b = _process(settings, db), _process(settings, db)
    a.create_key(caller, "k", NewKey())
    old, _ = _encrypt(a, caller, "k", b"old")
    b.configure(caller, "k", KeyConfig(deletion_allowed=True))
    b.delete_key(caller, "k")
    with pytest.raises(NotFound):
        a.read_key(caller, "k")
    assert a.cached_ring_count() == 0
    # An encrypt makes a new key of that name (Vault's upsert): the old ring is not the one used.
    _encrypt(a, caller, "k")
    with pytest.raises(InvalidInput, match="message authentication failed"):
        _decrypt(a, caller, "k", old)


def test_a_purge_drops_the_ring(settings: Settings, db: Database, caller: Caller) -> None:
    a = _process(settings, db)
    a.create_key(caller, "k", NewKey())
    _encrypt(a, caller, "k")
    assert a.cached_ring_count() == 1
    # Step 1 of a purge, alone: the KEK is shredded, the row still there; the cached ring is not served.
    shred_project_keys(db, caller.project_id)
    with pytest.raises(InvalidInput, match="not readable"):
        a.read_key(caller, "k")
    assert a.cached_ring_count() == 0
    _encrypt(a, caller, "other")  # made by this encrypt (under a new KEK)
    _encrypt(a, caller, "other")  # and opened
    assert a.cached_ring_count() == 1
    purge_project(db, caller.project_id)
    with pytest.raises(NotFound):
        a.read_key(caller, "other")
    assert a.cached_ring_count() == 0


def test_a_kek_rotation_reopens_the_ring(settings: Settings, db: Database, caller: Caller) -> None:
    a = _process(settings, db)
    a.create_key(caller, "k", NewKey())
    ciphertext, _ = _encrypt(a, caller, "k", b"kept")
    keystore = open_keystore(settings.keystore.type, settings.keystore_options())
    KekRotation(db, keystore).rotate(caller.project_id, settle_seconds=0, sleep=lambda _: None)
    assert _decrypt(a, caller, "k", ciphertext) == b"kept"
    entry = a._rings.get((caller.project_id, "k"))
    with db.read() as conn:
        current = conn.execute(select(secrets.c.kek_id).where(secrets.c.project_id == caller.project_id)).scalar_one()
    assert entry is not None
    assert entry.kek_id == current  # re-opened under the new KEK, the old entry gone


def test_a_failed_change_leaves_the_cached_ring_as_it_was(settings: Settings, db: Database, caller: Caller) -> None:
    a = _process(settings, db)
    a.create_key(caller, "k", NewKey())
    a.rotate(caller, "k")
    a.rotate(caller, "k")
    assert a.read_key(caller, "k")["min_decryption_version"] == 1  # cached
    # min_decryption_version is set on the ring, then the min_encryption_version check refuses the change.
    with pytest.raises(InvalidInput, match="must be greater than or equal"):
        a.configure(caller, "k", KeyConfig(min_decryption_version=3, min_encryption_version=2))
    assert a.read_key(caller, "k")["min_decryption_version"] == 1


def test_rings_expire_with_their_kek(settings: Settings, db: Database, caller: Caller) -> None:
    clock = MovableClock(frozen=True)
    a = _process(settings, db, clock, ttl=60)
    a.create_key(caller, "k", NewKey())  # the KEK is cached from now on, for 60 s
    clock.advance(50)
    _encrypt(a, caller, "k")  # the ring is opened under a KEK with 10 s left
    assert a.cached_ring_count() == 1
    clock.advance(11)
    a.expire()
    assert a.cached_ring_count() == 0
    _encrypt(a, caller, "k")
    assert a.cached_ring_count() == 1
    clock.advance(61)
    assert a.cached_ring_count() == 0


def test_no_kek_cache_no_ring_cache(settings: Settings, db: Database, caller: Caller) -> None:
    a = _process(settings, db, ttl=0)
    a.create_key(caller, "k", NewKey())
    _encrypt(a, caller, "k")
    assert a.cached_ring_count() == 0


def test_two_apps_never_serve_a_stale_ring(
    settings: Settings, app_client: TestClient, clocked_client: TestClient
) -> None:
    """Over the Vault API: one app rotates and deletes, the other (its own caches) follows at once."""
    headers = {"X-Vault-Token": f"cache-{uuid.uuid4()}"}
    body = {"plaintext": _b64(b"hello")}
    one, two = app_client, clocked_client
    assert one.post("/v1/transit/keys/k", headers=headers, json={}).status_code in (200, 204)
    for client in (one, two):
        r = client.post("/v1/transit/encrypt/k", headers=headers, json=body)
        assert r.status_code == 200 and r.json()["data"]["key_version"] == 1, r.text
    assert one.post("/v1/transit/keys/k/rotate", headers=headers).status_code == 200
    r = two.post("/v1/transit/encrypt/k", headers=headers, json=body)
    assert r.json()["data"]["key_version"] == 2, r.text
    assert two.get("/v1/transit/keys/k", headers=headers).json()["data"]["latest_version"] == 2
    r = one.post("/v1/transit/keys/k/config", headers=headers, json={"deletion_allowed": True})
    assert r.status_code == 200, r.text
    assert one.delete("/v1/transit/keys/k", headers=headers).status_code == 204
    assert two.get("/v1/transit/keys/k", headers=headers).status_code == 404
    with TestClient(create_app(settings), base_url=BASE) as three:  # a third process, nothing cached
        assert three.get("/v1/transit/keys/k", headers=headers).status_code == 404
