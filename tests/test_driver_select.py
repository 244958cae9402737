"""``storage.driver_select``: a statement run on the driver's cursor gives what ``Connection.execute`` gives, value for
value and type for type, on every database; a driver error goes through SQLAlchemy's own path."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Column, MetaData, String, Table, bindparam, delete, insert, select
from sqlalchemy import exc as sa_exc

from donjon.storage import access
from donjon.storage.database import Database
from donjon.storage.driver_select import DriverInsert, DriverSelect
from donjon.storage.tables import secret_acl_users, secret_acls, secrets

NOW = datetime(2026, 12, 2, 10, 30, 15, 123456)


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url, pool_size=1)
    yield database
    database.dispose()


def _secret(db: Database, *, listed: str | None = None, **columns: Any) -> str:
    secret_id = str(uuid.uuid4())
    row = {
        "id": secret_id,
        "project_id": "one-row",
        "name": "née ☃",
        "secret_type": "opaque",
        "algorithm": "aes",
        "bit_length": 256,
        "creator_id": "creator",
        "created_at": NOW,
        "updated_at": NOW + timedelta(seconds=1),
        "content_type": "application/octet-stream",
        "ciphertext": b"\x00\xffsealed bytes\x00",
        "version": 3,
        "version_started_at": NOW - timedelta(days=2),
        **columns,
    }
    with db.write() as conn:
        conn.execute(insert(secrets).values(**row))
        if listed is not None:
            conn.execute(
                insert(secret_acls).values(secret_id=secret_id, project_access=False, created_at=NOW, updated_at=NOW)
            )
            conn.execute(insert(secret_acl_users).values(secret_id=secret_id, user_id=listed))
    return secret_id


def _both(db: Database, query: DriverSelect, statement: Any, params: dict[str, Any]) -> tuple[Any, Any]:
    with db.read() as conn:
        fast = query.first(conn, params)
        if db.dialect == "postgresql":  # a read runs in autocommit there: the driver's cursor opened nothing
            from psycopg import pq

            status = conn.connection.dbapi_connection.info.transaction_status  # type: ignore[union-attr]
            assert status == pq.TransactionStatus.IDLE
        slow = conn.execute(statement, params).first()
    return fast, slow


def _same(fast: Any, slow: Any) -> None:
    assert fast._fields == slow._fields
    assert tuple(fast) == tuple(slow)
    assert [type(v) for v in fast] == [type(v) for v in slow]
    assert fast._mapping == dict(slow._mapping)


@pytest.mark.parametrize("with_payload", [True, False])
def test_the_secret_statement_gives_what_sqlalchemy_gives(db: Database, with_payload: bool) -> None:
    statement = access.secret_statement(with_payload)
    query = DriverSelect(statement)
    listed = _secret(db, listed="reader", expiration=NOW + timedelta(days=30))
    plain = _secret(db, bit_length=None, algorithm=None, version_started_at=None)
    expired = _secret(db, expiration=NOW - timedelta(seconds=1))
    cases = [
        (listed, "reader"),  # ACL row, the caller listed: False and the user
        (listed, "someone-else"),  # ACL row, not listed
        (plain, None),  # no ACL, NULLs in typed columns, an anonymous caller
        (expired, "reader"),  # past its expiration: the all-NULL row of an absent secret
        (str(uuid.uuid4()), "reader"),  # absent
    ]
    for secret_id, user in cases:
        fast, slow = _both(db, query, statement, {"secret_id": secret_id, "user_id": user, "now": NOW})
        _same(fast, slow)
    assert query.fallbacks == 0
    # And what the services get from it: the same records and facts.
    with db.read() as conn:
        found = access.secret_with_access(conn, listed, "reader", NOW, with_payload=with_payload)
    assert found is not None
    record, facts = found
    assert (record.id, record.version, record.expiration, facts) == (
        listed,
        3,
        NOW + timedelta(days=30),
        access.AccessFacts(project_access=False, listed=True),
    )
    assert record.ciphertext == (b"\x00\xffsealed bytes\x00" if with_payload else None)


def test_a_statement_with_its_own_limit_and_no_row(db: Database) -> None:
    first = _secret(db, created_at=NOW - timedelta(hours=1))
    _secret(db)
    statement = (
        select(secrets.c.id, secrets.c.created_at, secrets.c.bit_length)
        .where(secrets.c.project_id == bindparam("project_id"))
        .order_by(secrets.c.created_at, secrets.c.id)
        .limit(1)
    )
    query = DriverSelect(statement)
    fast, slow = _both(db, query, statement, {"project_id": "one-row"})
    _same(fast, slow)
    with db.read() as conn:
        oldest = conn.execute(
            select(secrets.c.id).where(secrets.c.project_id == "one-row").order_by(secrets.c.created_at).limit(1)
        ).scalar_one()
    assert fast.id == oldest
    assert first  # the fixture data is this test's own (ids are fresh uuids)
    fast, slow = _both(db, query, statement, {"project_id": "no-such-project"})
    assert fast is None and slow is None
    assert query.fallbacks == 0


def test_a_driver_error_is_raised_by_sqlalchemy_as_for_any_statement(db: Database) -> None:
    secret_id = _secret(db)
    statement = select(secrets.c.id).where(secrets.c.id == bindparam("secret_id"))
    query = DriverSelect(statement)
    with db.write() as conn:
        conn.execute(delete(secrets).where(secrets.c.id == secret_id))
    with db.read() as conn:
        # A closed cursor's connection: the driver refuses; SQLAlchemy's path then says so in its own terms.
        conn.connection.dbapi_connection.close()  # type: ignore[union-attr]
        with pytest.raises(sa_exc.DBAPIError):
            query.first(conn, {"secret_id": secret_id})
        conn.invalidate()
    assert query.fallbacks == 1


def test_a_statement_error_is_sqlalchemys_exception_for_it_and_is_not_run_again(db: Database) -> None:
    missing = Table(f"never_created_{uuid.uuid4().hex[:8]}", MetaData(), Column("id", String(36)))
    query = DriverSelect(select(missing.c.id).where(missing.c.id == bindparam("id")))
    with db.read() as conn, pytest.raises(sa_exc.DBAPIError) as raised:
        query.first(conn, {"id": "x"})
    assert isinstance(raised.value.orig, db.engine.dialect.loaded_dbapi.Error)
    assert not raised.value.connection_invalidated
    assert query.fallbacks == 0


def test_all_rows_in_order_as_sqlalchemy_gives_them(db: Database) -> None:
    project = f"all-rows-{uuid.uuid4().hex[:8]}"
    for hours in (3, 1, 2):
        _secret(db, project_id=project, created_at=NOW - timedelta(hours=hours), expiration=None)
    statement = (
        select(secrets.c.id, secrets.c.created_at, secrets.c.expiration, secrets.c.ciphertext)
        .where(secrets.c.project_id == bindparam("project_id"))
        .order_by(secrets.c.created_at)
    )
    query = DriverSelect(statement)
    with db.read() as conn:
        fast = query.all(conn, {"project_id": project})
        slow = conn.execute(statement, {"project_id": project}).all()
        assert query.all(conn, {"project_id": "nobody"}) == []
    assert len(fast) == 3
    for fast_row, slow_row in zip(fast, slow, strict=True):
        _same(fast_row, slow_row)
    assert [r.created_at for r in fast] == sorted(r.created_at for r in fast)
    assert query.fallbacks == 0


# --- DriverInsert: a new secret's row ------------------------------------------------------------------------


def _row_values(**columns: Any) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "project_id": "inserted",
        "name": "née ☃",
        "secret_type": "opaque",
        "algorithm": None,
        "bit_length": 256,
        "mode": None,
        "creator_id": "creator",
        "expiration": NOW + timedelta(days=3),
        "created_at": NOW,
        "updated_at": NOW + timedelta(seconds=1),
        "content_type": "application/octet-stream",
        "kek_id": None,
        "ciphertext": b"\x00\xffsealed bytes\x00",
        "max_reads": None,
        "reads_left": None,
        "version": 1,
        "store": None,
        "store_ref": None,
        **columns,
    }


def test_an_inserted_row_is_the_row_sqlalchemy_inserts(db: Database) -> None:
    columns = list(_row_values())
    fast_insert = DriverInsert(secrets, columns)
    fast, slow = _row_values(), _row_values(name=None, max_reads=3, reads_left=3)
    fast_too = _row_values(name=None, max_reads=3, reads_left=3)
    with db.write() as conn:
        fast_insert.execute(conn, fast)
        fast_insert.execute(conn, fast_too)
        conn.execute(insert(secrets), slow)
    with db.read() as conn:
        rows = {
            row.id: row._mapping
            for row in conn.execute(select(secrets).where(secrets.c.id.in_([fast["id"], slow["id"], fast_too["id"]])))
        }
    for given in (fast, slow, fast_too):
        stored = dict(rows[given["id"]])
        # What was given comes back, value for value and type for type; the column left out is NULL.
        assert {k: stored[k] for k in given} == given
        assert [type(stored[k]) for k in given] == [type(v) for v in given.values()]
        assert stored["version_started_at"] is None
    # The two paths stored the same row for the same values.
    assert {k: v for k, v in rows[fast_too["id"]].items() if k != "id"} == {
        k: v for k, v in rows[slow["id"]].items() if k != "id"
    }
    assert fast_insert.fallbacks == 0


def test_an_insert_error_is_sqlalchemys_and_nothing_is_kept(db: Database) -> None:
    row = _row_values()
    fast_insert = DriverInsert(secrets, list(row))
    with db.write() as conn:
        fast_insert.execute(conn, row)
    with pytest.raises(sa_exc.IntegrityError), db.write() as conn:
        fast_insert.execute(conn, {**row, "name": "second"})  # the same primary key
    with db.read() as conn:
        names = conn.execute(select(secrets.c.name).where(secrets.c.id == row["id"])).scalars().all()
    assert names == [row["name"]]
    assert fast_insert.fallbacks == 0


def test_a_column_with_a_python_default_cannot_be_left_out() -> None:
    table = Table("with_default", MetaData(), Column("id", String(36)), Column("kind", String(8), default="x"))
    with pytest.raises(ValueError, match="with_default.kind has a Python-side default"):
        DriverInsert(table, ["id"])
    DriverInsert(table, ["id", "kind"])
