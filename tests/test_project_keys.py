"""Project KEKs: one per project even under concurrent first use, stored only wrapped, cached unwrapped."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import select

from donjon.config import Settings
from donjon.keystores import Keystore, WrappedKey, open_keystore
from donjon.services.project_keys import ProjectKeys
from donjon.storage.database import Database
from donjon.storage.tables import project_active_kek, project_keks
from tests.clock import MovableClock


def _keys(settings: Settings, db: Database) -> ProjectKeys:
    return ProjectKeys(db, open_keystore("file", settings.keystore_options()), cache_seconds=60)


def test_concurrent_first_use_creates_one_kek(settings: Settings) -> None:
    db = Database(settings.effective_database_url)
    project = f"p-{uuid.uuid4()}"
    # Separate managers stand for separate worker processes: no shared cache between them.
    managers = [_keys(settings, db) for _ in range(6)]
    results: list[tuple[str, bytes]] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(managers))

    def first_use(keys: ProjectKeys) -> None:
        try:
            barrier.wait()
            kek = keys.active(project)
            results.append((kek.id, kek.key))
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=first_use, args=(m,)) for m in managers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(set(results)) == 1
    with db.read() as conn:
        rows = conn.execute(select(project_keks).where(project_keks.c.project_id == project)).all()
        active = conn.execute(
            select(project_active_kek.c.kek_id).where(project_active_kek.c.project_id == project)
        ).scalar_one()
    assert [r.id for r in rows] == [active] == [results[0][0]]
    assert results[0][1] not in rows[0].wrapped_key
    db.dispose()


def test_kek_is_found_again_by_a_fresh_process(settings: Settings) -> None:
    db = Database(settings.effective_database_url)
    project = f"p-{uuid.uuid4()}"
    kek = _keys(settings, db).active(project)
    fresh = _keys(settings, db)
    assert fresh.get(project, kek.id) == kek.key
    assert fresh.active(project) == kek
    db.dispose()


class _CountingKeystore:
    """The file keystore, counting its unwraps (each one is an HSM or KMIP round trip in production)."""

    def __init__(self, inner: Keystore) -> None:
        self._inner = inner
        self.unwraps = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def unwrap(self, wrapped: WrappedKey, context: bytes) -> bytes:
        self.unwraps += 1
        return self._inner.unwrap(wrapped, context)


def test_kek_bytes_leave_the_cache_when_their_ttl_ends(settings: Settings) -> None:
    db = Database(settings.effective_database_url)
    clock = MovableClock(frozen=True)
    keystore = _CountingKeystore(open_keystore("file", settings.keystore_options()))
    keys = ProjectKeys(db, keystore, cache_seconds=60, clock=clock)
    project = f"p-{uuid.uuid4()}"
    kek = keys.active(project)
    assert keys.get(project, kek.id) == kek.key and keys.cached_count() == 1
    unwraps = keystore.unwraps
    clock.advance(59)
    assert keys.active(project) == kek and keystore.unwraps == unwraps  # served from memory
    clock.advance(1)
    keys.expire()  # the order worker's sweep: nothing else touches the cache in an idle process
    assert keys.cached_count() == 0
    assert keys.get(project, kek.id) == kek.key and keystore.unwraps == unwraps + 1  # unwrapped again
    db.dispose()


def test_kek_cache_is_bounded_by_projects(settings: Settings) -> None:
    db = Database(settings.effective_database_url)
    keys = ProjectKeys(
        db, open_keystore("file", settings.keystore_options()), 60, max_projects=3, clock=MovableClock(frozen=True)
    )
    projects = [f"p-{uuid.uuid4()}" for _ in range(5)]
    keks = [keys.active(p) for p in projects]
    assert keys.cached_count() == 3
    # The evicted ones are unwrapped again on use, and are the same keys.
    assert [keys.get(p, k.id) for p, k in zip(projects, keks, strict=True)] == [k.key for k in keks]
    assert keys.cached_count() == 3
    db.dispose()


def test_the_kek_cache_bound_is_a_setting() -> None:
    assert Settings().kek_cache_max_projects == 10_000
    with pytest.raises(ValidationError):
        Settings(kek_cache_max_projects=0)
