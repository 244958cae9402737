"""Secret rows, their user metadata and consumers. Every query is scoped to the owning project."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Integer, Select, and_, bindparam, delete, func, insert, or_, select, update
from sqlalchemy.sql.elements import ColumnElement

from donjon.storage.driver_select import DriverInsert
from donjon.storage.paging import count, page
from donjon.storage.patterns import like, like_pattern
from donjon.storage.records import ConsumerRecord, SecretRecord, secret_record
from donjon.storage.tables import secret_acl_users, secret_acls, secret_consumers, secret_metadata, secrets

_META_COLUMNS = [c for c in secrets.c if c.name != "ciphertext"]


@dataclass(frozen=True)
class TimeBound:
    """One ``created``/``updated``/``expiration`` list filter term: op is eq, gt, gte, lt or lte."""

    op: str
    value: datetime


@dataclass
class SecretQuery:
    project_id: str
    now: datetime
    name: str | None = None
    algorithm: str | None = None
    mode: str | None = None
    bit_length: int | None = None
    secret_type: str | None = None
    time_bounds: dict[str, list[TimeBound]] = field(default_factory=dict)
    sort: list[tuple[str, bool]] = field(default_factory=list)  # (column, descending)
    # acl_only=true: the secrets of any project whose read ACL lists this user, instead of the project's.
    acl_user: str | None = None
    # Set for callers who are not project admins: private secrets are listed only to their creator.
    private_visible_to: str | None = None
    offset: int = 0
    limit: int = 10


def _alive(now: datetime) -> ColumnElement[bool]:
    return or_(secrets.c.expiration.is_(None), secrets.c.expiration > now)


# Built once: a statement made per call costs more to build and to key for the compiled cache than to run.
_RECORD_FIELDS = tuple(f.name for f in fields(SecretRecord))
_INSERT_SECRET = DriverInsert(secrets, _RECORD_FIELDS)


def insert_secret(conn: Connection, record: SecretRecord) -> None:
    # Its fields are all plain values: no need for asdict's recursive copy.
    _INSERT_SECRET.execute(conn, {name: getattr(record, name) for name in _RECORD_FIELDS})


def get_secret(
    conn: Connection, project_id: str, secret_id: str, now: datetime, *, with_payload: bool = False
) -> SecretRecord | None:
    """A live (not expired) secret of the project, or None."""
    cols = list(secrets.c) if with_payload else _META_COLUMNS
    row = conn.execute(
        select(*cols).where(secrets.c.id == secret_id, secrets.c.project_id == project_id, _alive(now))
    ).first()
    return secret_record(row) if row is not None else None


def set_payload(
    conn: Connection,
    secret_id: str,
    *,
    content_type: str,
    now: datetime,
    kek_id: str | None = None,
    ciphertext: bytes | None = None,
    store: str | None = None,
    store_ref: str | None = None,
) -> bool:
    """Store the payload (sealed here, or a store's reference) of a secret that has none; False if it already
    had one (checked atomically)."""
    result = conn.execute(
        update(secrets)
        .where(secrets.c.id == secret_id, secrets.c.ciphertext.is_(None), secrets.c.store_ref.is_(None))
        .values(
            content_type=content_type,
            kek_id=kek_id,
            ciphertext=ciphertext,
            store=store,
            store_ref=store_ref,
            updated_at=now,
        )
    )
    return result.rowcount == 1


def delete_secret(conn: Connection, project_id: str, secret_id: str) -> bool:
    # Children first: not every backend enforces ON DELETE CASCADE the same way (SQLite needs a pragma).
    conn.execute(delete(secret_metadata).where(secret_metadata.c.secret_id == secret_id))
    conn.execute(delete(secret_consumers).where(secret_consumers.c.secret_id == secret_id))
    result = conn.execute(delete(secrets).where(secrets.c.id == secret_id, secrets.c.project_id == project_id))
    return result.rowcount == 1


_TIME_OPS = {
    "eq": lambda c, v: c == v,
    "gt": lambda c, v: c > v,
    "gte": lambda c, v: c >= v,
    "lt": lambda c, v: c < v,
    "lte": lambda c, v: c <= v,
}


def _conditions(query: SecretQuery) -> list[ColumnElement[bool]]:
    """The query's filters with their values as bound parameters (named as ``_parameters`` names them): the
    statement depends only on which filters the query uses, so one serves every query of that shape."""
    c = secrets.c
    conds: list[ColumnElement[bool]] = [or_(c.expiration.is_(None), c.expiration > bindparam("now"))]
    if query.acl_user is not None:
        shared = select(secret_acl_users.c.secret_id).where(secret_acl_users.c.user_id == bindparam("acl_user"))
        conds.append(c.id.in_(shared))
    else:
        conds.append(c.project_id == bindparam("project_id"))
        if query.private_visible_to is not None:
            private = select(secret_acls.c.secret_id).where(secret_acls.c.project_access.is_(False))
            conds.append(or_(c.id.not_in(private), c.creator_id == bindparam("private_visible_to")))
    conds.extend(like(c[name], bindparam(name)) for name in _LIKE_FILTERS if getattr(query, name))
    conds.extend(c[name] == bindparam(name) for name in _EQUAL_FILTERS if getattr(query, name) is not None)
    for column, bounds in query.time_bounds.items():
        conds.extend(_TIME_OPS[b.op](c[column], bindparam(f"{column}_{n}")) for n, b in enumerate(bounds))
    return conds


def _parameters(query: SecretQuery) -> dict[str, Any]:
    """The values of ``_conditions``' bound parameters."""
    params: dict[str, Any] = {"now": query.now}
    if query.acl_user is not None:
        params["acl_user"] = query.acl_user
    else:
        params["project_id"] = query.project_id
        if query.private_visible_to is not None:
            params["private_visible_to"] = query.private_visible_to
    params.update((name, like_pattern(v)) for name in _LIKE_FILTERS if (v := getattr(query, name)))
    params.update((name, v) for name in _EQUAL_FILTERS if (v := getattr(query, name)) is not None)
    for column, bounds in query.time_bounds.items():
        params.update((f"{column}_{n}", b.value) for n, b in enumerate(bounds))
    return params


_LIKE_FILTERS = ("name", "algorithm", "mode")  # Barbican's LIKE filters (an empty one filters nothing)
_EQUAL_FILTERS = ("bit_length", "secret_type")


def _shape(query: SecretQuery) -> tuple[Any, ...]:
    """What the statements of a list query depend on: which filters it uses, not their values."""
    bounds = tuple((column, tuple(b.op for b in found)) for column, found in query.time_bounds.items())
    return (
        query.acl_user is None,
        query.private_visible_to is None,
        tuple(bool(getattr(query, name)) for name in _LIKE_FILTERS),
        tuple(getattr(query, name) is None for name in _EQUAL_FILTERS),
        bounds,
        tuple(query.sort),
    )


# Query shape -> (count statement, page statement). Bounded: the shapes are few (filters used, sort keys).
_LIST_STATEMENTS: dict[tuple[Any, ...], tuple[Select[Any], Select[Any]]] = {}


def _statements(query: SecretQuery) -> tuple[Select[Any], Select[Any]]:
    """The count and page statements of ``query``'s shape: built on its first use (building a statement and
    its key for SQLAlchemy's compiled cache cost more than running it on SQLite)."""
    shape = _shape(query)
    found = _LIST_STATEMENTS.get(shape)
    if found is not None:
        return found
    where = and_(*_conditions(query))
    counting = select(func.count()).select_from(secrets).where(where)
    order = [secrets.c[col].desc() if desc else secrets.c[col].asc() for col, desc in query.sort]
    # A stable default order (created, id) makes offset paging deterministic; Barbican's list is unordered.
    order += [secrets.c.created_at.asc(), secrets.c.id.asc()]
    paging = select(*_META_COLUMNS).where(where).order_by(*order)
    paging = paging.offset(bindparam("offset", type_=Integer)).limit(bindparam("limit", type_=Integer))
    if len(_LIST_STATEMENTS) < 512:
        _LIST_STATEMENTS[shape] = (counting, paging)
    return counting, paging


def list_secrets(conn: Connection, query: SecretQuery) -> tuple[list[SecretRecord], int]:
    counting, paging = _statements(query)
    params = _parameters(query)
    total = conn.execute(counting, params).scalar_one()
    if total <= query.offset:  # also keeps an offset past the database's integer range out of the query
        return [], total
    rows = conn.execute(paging, {**params, "offset": query.offset, "limit": query.limit})
    return [secret_record(r) for r in rows], total


# --- consumers ---------------------------------------------------------------------------------------


def consumers_of(conn: Connection, secret_ids: Sequence[str]) -> dict[str, list[ConsumerRecord]]:
    if not secret_ids:
        return {}
    rows = conn.execute(
        select(secret_consumers)
        .where(secret_consumers.c.secret_id.in_(secret_ids))
        .order_by(secret_consumers.c.created_at, secret_consumers.c.id)
    )
    out: dict[str, list[ConsumerRecord]] = {sid: [] for sid in secret_ids}
    for r in rows:
        out[r.secret_id].append(ConsumerRecord(r.service, r.resource_type, r.resource_id, r.created_at, r.updated_at))
    return out


def list_consumers(conn: Connection, secret_id: str, offset: int, limit: int) -> tuple[list[ConsumerRecord], int]:
    c = secret_consumers.c
    rows, total = page(conn, secret_consumers, [c.secret_id == secret_id], (c.created_at, c.id), offset, limit)
    return [ConsumerRecord(r.service, r.resource_type, r.resource_id, r.created_at, r.updated_at) for r in rows], total


def _consumer_match(secret_id: str, service: str, resource_type: str, resource_id: str) -> ColumnElement[bool]:
    c = secret_consumers.c
    return and_(
        c.secret_id == secret_id, c.service == service, c.resource_type == resource_type, c.resource_id == resource_id
    )


def add_consumer(
    conn: Connection,
    *,
    consumer_id: str,
    secret_id: str,
    project_id: str,
    service: str,
    resource_type: str,
    resource_id: str,
    now: datetime,
) -> None:
    """Register a consumer; registering it again only touches ``updated`` (idempotent, as in Barbican)."""
    match = _consumer_match(secret_id, service, resource_type, resource_id)
    touched = conn.execute(update(secret_consumers).where(match).values(updated_at=now)).rowcount
    if touched == 0:
        conn.execute(
            insert(secret_consumers).values(
                id=consumer_id,
                secret_id=secret_id,
                project_id=project_id,
                service=service,
                resource_type=resource_type,
                resource_id=resource_id,
                created_at=now,
                updated_at=now,
            )
        )


def consumer_project(
    conn: Connection, *, secret_id: str, service: str, resource_type: str, resource_id: str
) -> str | None:
    """The project that registered the consumer, None when there is no such consumer."""
    match = _consumer_match(secret_id, service, resource_type, resource_id)
    project: str | None = conn.execute(select(secret_consumers.c.project_id).where(match)).scalar_one_or_none()
    return project


def remove_consumer(conn: Connection, *, secret_id: str, service: str, resource_type: str, resource_id: str) -> bool:
    match = _consumer_match(secret_id, service, resource_type, resource_id)
    return conn.execute(delete(secret_consumers).where(match)).rowcount > 0


def count_consumers(conn: Connection, secret_id: str) -> int:
    return count(conn, secret_consumers, secret_consumers.c.secret_id == secret_id)


# --- user metadata -----------------------------------------------------------------------------------


def get_metadata(conn: Connection, secret_id: str) -> dict[str, str]:
    rows = conn.execute(
        select(secret_metadata.c.key, secret_metadata.c.value)
        .where(secret_metadata.c.secret_id == secret_id)
        .order_by(secret_metadata.c.key)
    )
    return {r.key: r.value for r in rows}


def get_metadatum(conn: Connection, secret_id: str, key: str) -> str | None:
    return conn.execute(
        select(secret_metadata.c.value).where(secret_metadata.c.secret_id == secret_id, secret_metadata.c.key == key)
    ).scalar_one_or_none()


def replace_metadata(conn: Connection, secret_id: str, items: Iterable[tuple[str, str]]) -> None:
    conn.execute(delete(secret_metadata).where(secret_metadata.c.secret_id == secret_id))
    rows = [{"secret_id": secret_id, "key": k, "value": v} for k, v in items]
    if rows:
        conn.execute(insert(secret_metadata), rows)


def insert_metadatum(conn: Connection, secret_id: str, key: str, value: str) -> bool:
    """False if the key exists already."""
    if get_metadatum(conn, secret_id, key) is not None:
        return False
    conn.execute(insert(secret_metadata).values(secret_id=secret_id, key=key, value=value))
    return True


def update_metadatum(conn: Connection, secret_id: str, key: str, value: str) -> bool:
    result = conn.execute(
        update(secret_metadata)
        .where(secret_metadata.c.secret_id == secret_id, secret_metadata.c.key == key)
        .values(value=value)
    )
    return result.rowcount == 1


def delete_metadatum(conn: Connection, secret_id: str, key: str) -> None:
    conn.execute(delete(secret_metadata).where(secret_metadata.c.secret_id == secret_id, secret_metadata.c.key == key))


def touch_secret(conn: Connection, secret_id: str, now: datetime) -> None:
    conn.execute(update(secrets).where(secrets.c.id == secret_id).values(updated_at=now))


def count_live_secrets(conn: Connection, project_id: str, now: datetime) -> int:
    """Secrets that count against the project's quota: expired ones do not (as in Barbican)."""
    return count(conn, secrets, secrets.c.project_id == project_id, _alive(now))


def count_project_consumers(conn: Connection, project_id: str) -> int:
    return count(conn, secret_consumers, secret_consumers.c.project_id == project_id)
