"""Transport key rows: cloud-wide (Barbican keeps no project on them), listed oldest first."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, delete, insert, select

from donjon.storage.paging import page
from donjon.storage.tables import transport_keys


@dataclass(frozen=True)
class TransportKeyRecord:
    id: str
    plugin_name: str
    transport_key: str
    created_at: datetime
    updated_at: datetime


def create(conn: Connection, record: TransportKeyRecord) -> None:
    conn.execute(insert(transport_keys).values(**record.__dict__))


def get(conn: Connection, key_id: str) -> TransportKeyRecord | None:
    row = conn.execute(select(transport_keys).where(transport_keys.c.id == key_id)).first()
    return TransportKeyRecord(**row._mapping) if row is not None else None


def remove(conn: Connection, key_id: str) -> bool:
    return conn.execute(delete(transport_keys).where(transport_keys.c.id == key_id)).rowcount > 0


def list_ids(conn: Connection, plugin_name: str | None, offset: int, limit: int) -> tuple[list[str], int]:
    where = [transport_keys.c.plugin_name == plugin_name] if plugin_name is not None else []
    rows, total = page(conn, transport_keys, where, (transport_keys.c.created_at, transport_keys.c.id), offset, limit)
    return [r.id for r in rows], total
