"""Container rows, the secrets they reference (in order), and their consumers."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select, update

from donjon.storage.paging import count, page
from donjon.storage.patterns import like
from donjon.storage.tables import container_consumers, container_secrets, containers


@dataclass(frozen=True)
class ContainerRecord:
    id: str
    project_id: str
    name: str | None
    type: str
    creator_id: str | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class ContainerSecret:
    """A secret in a container: its name there (None for a generic container's unnamed one) and its id."""

    name: str | None
    secret_id: str


@dataclass(frozen=True)
class ContainerConsumer:
    name: str
    url: str
    created_at: datetime
    updated_at: datetime


def _record(row: Any) -> ContainerRecord:
    return ContainerRecord(row.id, row.project_id, row.name, row.type, row.creator_id, row.created_at, row.updated_at)


def insert_container(conn: Connection, record: ContainerRecord, refs: Sequence[ContainerSecret]) -> None:
    conn.execute(insert(containers).values(**asdict(record)))
    if refs:
        conn.execute(
            insert(container_secrets),
            [
                {
                    "id": str(uuid.uuid4()),
                    "container_id": record.id,
                    "secret_id": r.secret_id,
                    "name": r.name,
                    "position": i,
                }
                for i, r in enumerate(refs)
            ],
        )


def get_container(conn: Connection, container_id: str) -> ContainerRecord | None:
    """By id in any project: the caller's right to see it is the policy's decision."""
    row = conn.execute(select(containers).where(containers.c.id == container_id)).first()
    return _record(row) if row is not None else None


def secrets_of(conn: Connection, container_ids: Sequence[str]) -> dict[str, list[ContainerSecret]]:
    out: dict[str, list[ContainerSecret]] = {cid: [] for cid in container_ids}
    if not container_ids:
        return out
    rows = conn.execute(
        select(container_secrets.c.container_id, container_secrets.c.name, container_secrets.c.secret_id)
        .where(container_secrets.c.container_id.in_(container_ids))
        .order_by(container_secrets.c.container_id, container_secrets.c.position)
    )
    for r in rows:
        out[r.container_id].append(ContainerSecret(r.name, r.secret_id))
    return out


def consumers_of(conn: Connection, container_ids: Sequence[str]) -> dict[str, list[ContainerConsumer]]:
    out: dict[str, list[ContainerConsumer]] = {cid: [] for cid in container_ids}
    if not container_ids:
        return out
    rows = conn.execute(
        select(container_consumers)
        .where(container_consumers.c.container_id.in_(container_ids))
        .order_by(container_consumers.c.name, container_consumers.c.url)
    )
    for r in rows:
        out[r.container_id].append(ContainerConsumer(r.name, r.url, r.created_at, r.updated_at))
    return out


def list_containers(
    conn: Connection, project_id: str, *, name: str | None, type_: str | None, offset: int, limit: int
) -> tuple[list[ContainerRecord], int]:
    conds = [containers.c.project_id == project_id]
    if name:
        conds.append(like(containers.c.name, name))
    if type_:
        conds.append(containers.c.type == type_)
    rows, total = page(conn, containers, conds, (containers.c.created_at, containers.c.id), offset, limit)
    return [_record(r) for r in rows], total


def delete_container(conn: Connection, container_id: str) -> bool:
    # Children first: SQLite enforces ON DELETE CASCADE only with its pragma, the others always.
    conn.execute(delete(container_secrets).where(container_secrets.c.container_id == container_id))
    conn.execute(delete(container_consumers).where(container_consumers.c.container_id == container_id))
    return conn.execute(delete(containers).where(containers.c.id == container_id)).rowcount == 1


def count_containers(conn: Connection, project_id: str) -> int:
    return count(conn, containers, containers.c.project_id == project_id)


def add_secret(conn: Connection, container_id: str, ref: ContainerSecret, now: datetime) -> bool:
    """False if the container already holds that secret."""
    exists = conn.execute(
        select(container_secrets.c.id).where(
            container_secrets.c.container_id == container_id, container_secrets.c.secret_id == ref.secret_id
        )
    ).first()
    if exists is not None:
        return False
    position = conn.execute(
        select(func.coalesce(func.max(container_secrets.c.position), -1) + 1).where(
            container_secrets.c.container_id == container_id
        )
    ).scalar_one()
    conn.execute(
        insert(container_secrets).values(
            id=str(uuid.uuid4()), container_id=container_id, secret_id=ref.secret_id, name=ref.name, position=position
        )
    )
    conn.execute(update(containers).where(containers.c.id == container_id).values(updated_at=now))
    return True


def remove_secret(conn: Connection, container_id: str, secret_id: str, name: str | None, now: datetime) -> bool:
    conds = [container_secrets.c.container_id == container_id, container_secrets.c.secret_id == secret_id]
    if name is not None:
        conds.append(container_secrets.c.name == name)
    removed = conn.execute(delete(container_secrets).where(*conds)).rowcount > 0
    if removed:
        conn.execute(update(containers).where(containers.c.id == container_id).values(updated_at=now))
    return removed


def add_consumer(conn: Connection, container_id: str, project_id: str, name: str, url: str, now: datetime) -> None:
    """Idempotent, as in Barbican: registering a consumer again only touches ``updated``."""
    match = [
        container_consumers.c.container_id == container_id,
        container_consumers.c.name == name,
        container_consumers.c.url == url,
    ]
    if conn.execute(update(container_consumers).where(*match).values(updated_at=now)).rowcount == 0:
        conn.execute(
            insert(container_consumers).values(
                id=str(uuid.uuid4()),
                container_id=container_id,
                project_id=project_id,
                name=name,
                url=url,
                created_at=now,
                updated_at=now,
            )
        )


def consumer_project(conn: Connection, container_id: str, name: str, url: str) -> str | None:
    """The project that registered the consumer, None when there is no such consumer."""
    c = container_consumers.c
    where = (c.container_id == container_id, c.name == name, c.url == url)
    project: str | None = conn.execute(select(c.project_id).where(*where)).scalar_one_or_none()
    return project


def remove_consumer(conn: Connection, container_id: str, name: str, url: str) -> bool:
    return (
        conn.execute(
            delete(container_consumers).where(
                container_consumers.c.container_id == container_id,
                container_consumers.c.name == name,
                container_consumers.c.url == url,
            )
        ).rowcount
        > 0
    )


def list_consumers(conn: Connection, container_id: str, offset: int, limit: int) -> tuple[list[ContainerConsumer], int]:
    c = container_consumers.c
    rows, total = page(conn, container_consumers, [c.container_id == container_id], (c.name, c.url), offset, limit)
    return [ContainerConsumer(r.name, r.url, r.created_at, r.updated_at) for r in rows], total


def count_consumers(conn: Connection, project_id: str) -> int:
    return count(conn, container_consumers, container_consumers.c.project_id == project_id)
