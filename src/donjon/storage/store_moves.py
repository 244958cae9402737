"""Secrets by the store that holds their payload, and compare-and-set moves of a payload between stores."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, and_, func, or_, select, update

from donjon.storage.records import SecretRecord, secret_record
from donjon.storage.tables import secrets
from donjon.storage.transit import MARKER_ALGORITHM as TRANSIT_RING


def _in_store(store: str | None) -> Any:
    """``store`` None is the database store: its rows hold the ciphertext and no store name."""
    if store is None:
        # A transit key ring stays in the database store: the transit engine opens it on every use, and an
        # external store would hold live key material outside the envelope (storage/transit.py).
        not_a_ring = or_(secrets.c.algorithm.is_(None), secrets.c.algorithm != TRANSIT_RING)
        return and_(secrets.c.store.is_(None), secrets.c.ciphertext.is_not(None), not_a_ring)
    return and_(secrets.c.store == store, secrets.c.store_ref.is_not(None))


def _scope(store: str | None, project_id: str | None) -> list[Any]:
    conds = [_in_store(store)]
    if project_id is not None:
        conds.append(secrets.c.project_id == project_id)
    return conds


def count_in_store(conn: Connection, store: str | None, project_id: str | None) -> int:
    return int(conn.execute(select(func.count()).select_from(secrets).where(*_scope(store, project_id))).scalar() or 0)


def secrets_in_store(
    conn: Connection, store: str | None, project_id: str | None, *, after: str, limit: int
) -> list[SecretRecord]:
    """The next ``limit`` secrets (by id, after ``after``) whose payload ``store`` holds (None: the database
    store), ciphertext included."""
    rows = conn.execute(
        select(secrets).where(*_scope(store, project_id), secrets.c.id > after).order_by(secrets.c.id).limit(limit)
    )
    return [secret_record(r) for r in rows]


def move(conn: Connection, old: SecretRecord, new: SecretRecord) -> bool:
    """Point the row at its payload's new home, only if the row still points where ``old`` says."""
    same_store = secrets.c.store.is_(None) if old.store is None else secrets.c.store == old.store
    same_ref = secrets.c.store_ref.is_(None) if old.store_ref is None else secrets.c.store_ref == old.store_ref
    same_blob = secrets.c.ciphertext.is_(None) if old.ciphertext is None else secrets.c.ciphertext == old.ciphertext
    result = conn.execute(
        update(secrets)
        .where(secrets.c.id == old.id, same_store, same_ref, same_blob)
        .values(store=new.store, store_ref=new.store_ref, kek_id=new.kek_id, ciphertext=new.ciphertext)
    )
    return result.rowcount == 1
