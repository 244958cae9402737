"""Project KEKs: one per project even under concurrent first use, stored only wrapped, cached unwrapped."""

from __future__ import annotations

import threading
import uuid

from sqlalchemy import select

from donjon.config import Settings
from donjon.crypto.keys import ProjectKeys
from donjon.keystores import open_keystore
from donjon.storage.database import Database
from donjon.storage.tables import project_active_kek, project_keks


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
