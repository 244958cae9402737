"""Order rows, which are also the job queue: workers claim PENDING orders with a lease.

Claiming uses ``FOR UPDATE SKIP LOCKED`` on PostgreSQL and MariaDB, so N nodes never take the same order;
on SQLite writes are already serialised by the database's write lock. A worker that dies leaves a lease
that expires, and the order is claimed again. Completion is fenced: it only applies while the order is
still PENDING and claimed by the finishing worker, in the same transaction as the secrets it creates, so
an order's effects happen exactly once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, delete, insert, or_, select, update

from donjon.storage.paging import count, page
from donjon.storage.patterns import like
from donjon.storage.tables import orders

PENDING, ACTIVE, ERROR = "PENDING", "ACTIVE", "ERROR"


@dataclass(frozen=True)
class OrderRecord:
    id: str
    project_id: str
    type: str
    status: str
    meta: dict[str, Any]
    creator_id: str | None
    secret_id: str | None
    container_id: str | None
    error_status_code: str | None
    error_reason: str | None
    created_at: datetime
    updated_at: datetime
    kek_id: str | None = None
    sealed_params: bytes | None = field(default=None, repr=False)


_FIELDS = [f.name for f in fields(OrderRecord)]


def _record(row: Any) -> OrderRecord:
    # The record's fields are columns of the row (which also holds the queue's lease); meta is stored as JSON.
    values = {name: row._mapping[name] for name in _FIELDS}
    return OrderRecord(**{**values, "meta": json.loads(row.meta)})


def insert_order(
    conn: Connection,
    *,
    order_id: str,
    project_id: str,
    type_: str,
    meta: dict[str, Any],
    creator_id: str | None,
    now: datetime,
    kek_id: str | None = None,
    sealed_params: bytes | None = None,
) -> None:
    conn.execute(
        insert(orders).values(
            kek_id=kek_id,
            sealed_params=sealed_params,
            id=order_id,
            project_id=project_id,
            type=type_,
            status=PENDING,
            meta=json.dumps(meta),
            creator_id=creator_id,
            created_at=now,
            updated_at=now,
            attempts=0,
        )
    )


def get_order(conn: Connection, project_id: str, order_id: str) -> OrderRecord | None:
    row = conn.execute(select(orders).where(orders.c.id == order_id, orders.c.project_id == project_id)).first()
    return _record(row) if row is not None else None


def list_orders(
    conn: Connection, project_id: str, *, types: list[str], meta_like: str | None, offset: int, limit: int
) -> tuple[list[OrderRecord], int]:
    conds = [orders.c.project_id == project_id, orders.c.type.in_(types)]
    if meta_like:
        conds.append(like(orders.c.meta, f"%{meta_like}%"))
    rows, total = page(conn, orders, conds, (orders.c.created_at, orders.c.id), offset, limit)
    return [_record(r) for r in rows], total


def delete_order(conn: Connection, project_id: str, order_id: str) -> bool:
    return conn.execute(delete(orders).where(orders.c.id == order_id, orders.c.project_id == project_id)).rowcount == 1


def count_orders(conn: Connection, project_id: str) -> int:
    return count(conn, orders, orders.c.project_id == project_id)


def claim_next(
    conn: Connection, *, worker: str, now: datetime, lease: timedelta, skip_locked: bool, order_id: str | None = None
) -> OrderRecord | None:
    """Claim the oldest claimable order for ``worker`` (or only ``order_id``); call inside a write transaction."""
    claimable = and_(orders.c.status == PENDING, or_(orders.c.claimed_until.is_(None), orders.c.claimed_until < now))
    if order_id is not None:
        claimable = and_(claimable, orders.c.id == order_id)
    stmt = select(orders).where(claimable).order_by(orders.c.created_at, orders.c.id).limit(1)
    if skip_locked:
        stmt = stmt.with_for_update(skip_locked=True)
    row = conn.execute(stmt).first()
    if row is None:
        return None
    conn.execute(
        update(orders)
        .where(orders.c.id == row.id)
        .values(claimed_by=worker, claimed_until=now + lease, attempts=orders.c.attempts + 1)
    )
    return _record(row)


def _settle(conn: Connection, order_id: str, worker: str, **values: Any) -> bool:
    """End the order with ``values``, fenced: only while it is PENDING and ``worker`` holds its lease."""
    fence = (orders.c.id == order_id, orders.c.status == PENDING, orders.c.claimed_by == worker)
    return conn.execute(update(orders).where(*fence).values(claimed_until=None, **values)).rowcount == 1


def finish(
    conn: Connection,
    order_id: str,
    *,
    worker: str,
    now: datetime,
    secret_id: str | None = None,
    container_id: str | None = None,
) -> bool:
    """Mark the order ACTIVE if ``worker`` still holds it; False means another worker took it over."""
    return _settle(
        conn, order_id, worker, status=ACTIVE, secret_id=secret_id, container_id=container_id, updated_at=now
    )


def fail(conn: Connection, order_id: str, *, worker: str, now: datetime, status_code: int, reason: str) -> bool:
    return _settle(
        conn,
        order_id,
        worker,
        status=ERROR,
        error_status_code=str(status_code),
        error_reason=reason[:255],
        updated_at=now,
    )


def status(conn: Connection, order_id: str) -> str | None:
    """An order's status, None if it is gone (deleted)."""
    value = conn.execute(select(orders.c.status).where(orders.c.id == order_id)).scalar_one_or_none()
    return str(value) if value is not None else None


def attempts(conn: Connection, order_id: str) -> int:
    value = conn.execute(select(orders.c.attempts).where(orders.c.id == order_id)).scalar_one_or_none()
    return int(value or 0)


def release(conn: Connection, order_id: str, *, worker: str, until: datetime) -> None:
    """Shorten ``worker``'s lease so that any worker may claim the order again from ``until`` on."""
    conn.execute(
        update(orders)
        .where(orders.c.id == order_id, orders.c.claimed_by == worker, orders.c.status == PENDING)
        .values(claimed_until=until)
    )
