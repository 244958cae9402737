"""Rows sealed under a given KEK, and compare-and-set swaps of their ciphertext, for KEK rotation.

Every swap names the ciphertext it replaces: a row that changed in between (a concurrent rotation, a
payload written meanwhile) is left alone and picked up by the next pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Column, Connection, select, update
from sqlalchemy.sql.elements import ColumnElement

from donjon.storage.paging import count
from donjon.storage.tables import orders, secret_versions, secrets


def _swap(
    conn: Connection,
    sealed: Column[Any],
    row: Sequence[ColumnElement[bool]],
    old_kek: str,
    old: bytes,
    new_kek: str,
    new: bytes,
) -> bool:
    """Compare-and-set: ``sealed`` becomes ``new`` only while the row still holds ``old`` under ``old_kek``."""
    table = sealed.table
    match = (*row, table.c.kek_id == old_kek, sealed == old)
    return conn.execute(update(table).where(*match).values({"kek_id": new_kek, sealed.name: new})).rowcount == 1


def secrets_sealed_under(conn: Connection, project_id: str, kek_id: str, limit: int) -> list[tuple[str, bytes, int]]:
    """(secret id, ciphertext, payload version): the version is part of the payload's associated data."""
    rows = conn.execute(
        select(secrets.c.id, secrets.c.ciphertext, secrets.c.version)
        .where(secrets.c.project_id == project_id, secrets.c.kek_id == kek_id, secrets.c.ciphertext.is_not(None))
        .order_by(secrets.c.id)
        .limit(limit)
    )
    return [(r.id, r.ciphertext, r.version) for r in rows]


def swap_secret(conn: Connection, secret_id: str, *, old_kek: str, old: bytes, new_kek: str, new: bytes) -> bool:
    return _swap(conn, secrets.c.ciphertext, [secrets.c.id == secret_id], old_kek, old, new_kek, new)


def versions_sealed_under(conn: Connection, project_id: str, kek_id: str, limit: int) -> list[tuple[str, int, bytes]]:
    """Previous versions of rotated secrets (still in their grace period) sealed under ``kek_id``."""
    rows = conn.execute(
        select(secret_versions.c.secret_id, secret_versions.c.version, secret_versions.c.ciphertext)
        .where(secret_versions.c.project_id == project_id, secret_versions.c.kek_id == kek_id)
        .order_by(secret_versions.c.secret_id, secret_versions.c.version)
        .limit(limit)
    )
    return [(r.secret_id, r.version, r.ciphertext) for r in rows]


def swap_version(
    conn: Connection, secret_id: str, version: int, *, old_kek: str, old: bytes, new_kek: str, new: bytes
) -> bool:
    v = secret_versions.c
    return _swap(conn, v.ciphertext, [v.secret_id == secret_id, v.version == version], old_kek, old, new_kek, new)


def orders_sealed_under(conn: Connection, project_id: str, kek_id: str, limit: int) -> list[tuple[str, bytes]]:
    rows = conn.execute(
        select(orders.c.id, orders.c.sealed_params)
        .where(orders.c.project_id == project_id, orders.c.kek_id == kek_id, orders.c.sealed_params.is_not(None))
        .order_by(orders.c.id)
        .limit(limit)
    )
    return [(r.id, r.sealed_params) for r in rows]


def swap_order(conn: Connection, order_id: str, *, old_kek: str, old: bytes, new_kek: str, new: bytes) -> bool:
    return _swap(conn, orders.c.sealed_params, [orders.c.id == order_id], old_kek, old, new_kek, new)


def references(conn: Connection, kek_id: str) -> int:
    """How many rows still need ``kek_id`` to be read."""
    return sum(count(conn, table, table.c.kek_id == kek_id) for table in (secrets, orders, secret_versions))
