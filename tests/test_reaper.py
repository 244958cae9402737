"""The expiry reaper: expired ciphertext goes, a tombstone stays for its retention; several nodes reap
each secret once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from starlette.testclient import TestClient

from donjon.config import LifecycleConfig, Settings
from donjon.storage.database import Database
from donjon.storage.tables import secret_tombstones, secrets
from tests.clock import MovableClock
from tests.conftest import Api
from tests.lifecycle_helpers import (
    ciphertext_of,
    db_fixture,  # noqa: F401  (the module's ``db`` fixture)
    new_reaper,
    reaper_of,
    tables_holding,
    tombstone,
)


def test_reaper_deletes_expired_ciphertext_and_leaves_a_tombstone(
    clocked_api: Api, db: Database, clocked_client: TestClient, clock: MovableClock
) -> None:
    api = clocked_api
    sid = api.create_secret(
        name="brief", payload="expiring", payload_content_type="text/plain", expiration=clock.iso_in(10)
    )
    keep = api.create_secret(
        name="keep", payload="staying", payload_content_type="text/plain", expiration=clock.iso_in(3600)
    )
    blob = ciphertext_of(db, sid)
    service = reaper_of(clocked_client)
    service.reap_once()
    assert tables_holding(db, blob) == ["secrets.ciphertext"]  # not expired yet
    clock.advance(10)
    # The API hides it at once, before the reaper runs (as Barbican: expired secrets are 404).
    assert api.get(f"/v1/secrets/{sid}").status_code == 404
    assert api.get(f"/v1/secrets/{sid}/payload").status_code == 404
    report = service.reap_once()
    assert report.expired >= 1
    assert tables_holding(db, blob) == []
    stone = tombstone(db, sid)
    assert (stone.deleted_reason, stone.name) == ("expired", "brief")
    assert stone.expiration is not None and stone.deleted_at >= stone.expiration
    assert api.get(f"/v1/secrets/{keep}/payload").content == b"staying"
    assert tombstone(db, keep) is None


def test_reap_delay_keeps_ciphertext_until_it_passes(
    clocked_api: Api, db: Database, settings: Settings, clock: MovableClock
) -> None:
    sid = clocked_api.create_secret(
        name="d", payload="delayed", payload_content_type="text/plain", expiration=clock.iso_in(10)
    )
    blob = ciphertext_of(db, sid)
    clock.advance(10)
    delayed = new_reaper(db, settings, LifecycleConfig(reap_delay_seconds=3600), clock)
    delayed.reap_once()
    assert tables_holding(db, blob) == ["secrets.ciphertext"]
    clock.advance(3600)
    delayed.reap_once()
    assert tables_holding(db, blob) == []


def test_reapers_on_several_nodes_reap_each_secret_once(
    clocked_api: Api, db: Database, settings: Settings, clock: MovableClock
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    soon = clock.iso_in(30)
    ids = [
        clocked_api.create_secret(name=f"n{i}", payload=f"p{i}", payload_content_type="text/plain", expiration=soon)
        for i in range(30)
    ]
    clock.advance(30)
    config = LifecycleConfig(reap_batch_size=4)
    nodes = [new_reaper(Database(db.url, pool_size=2), settings, config, clock) for _ in range(4)]
    with ThreadPoolExecutor(4) as pool:
        reports = list(pool.map(lambda s: s.reap_once(), nodes))
    with db.read() as conn:
        stones = conn.execute(
            select(secret_tombstones.c.id).where(
                secret_tombstones.c.id.in_(ids), secret_tombstones.c.deleted_reason == "expired"
            )
        ).all()
        left = conn.execute(select(secrets.c.id).where(secrets.c.id.in_(ids))).all()
    assert len(stones) == 30 and left == []
    assert sum(r.expired for r in reports) >= 30  # other tests' expired secrets may be reaped too


def test_tombstones_are_kept_for_the_retention_then_reaped(api: Api, db: Database, settings: Settings) -> None:
    sid = api.create_secret(name="t", payload="p", payload_content_type="text/plain")
    api.delete(f"/v1/secrets/{sid}")
    service = new_reaper(db, settings, LifecycleConfig(tombstone_retention_seconds=3600))
    service.reap_once()
    assert tombstone(db, sid) is not None
    service.reap_once(now=datetime.now(UTC).replace(tzinfo=None) + timedelta(seconds=3700))
    assert tombstone(db, sid) is None
