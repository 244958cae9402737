"""Hot SELECTs run on the driver's cursor, with SQLAlchemy's SQL and SQLAlchemy's type conversions.

``Connection.execute`` spends ~50 µs per statement on its execution context and result object (SQLAlchemy
2.1 with its Cython extensions, measured on SQLite); the SQLite query itself takes ~8 µs. For the statement
every secret read runs (``storage/access.py``) that was the largest single cost of a payload read, and a
secret's creation runs two more (its project's quotas, its KEK still there). Here a statement is compiled by
SQLAlchemy once per dialect, its parameters and columns go through the same bind and result processors
SQLAlchemy would apply, and only the execution is the driver's own. ``DriverInsert`` does the same for the
one hot INSERT, a new secret's row, which the group commit's thread runs once per secret of its batch.

A driver error is raised as SQLAlchemy's exception class for it, as ``Connection.execute`` would raise it; a
lost connection makes the statement run again through ``Connection.execute``, which meets the same dead
connection and invalidates the pool as for any statement (``database._reachable`` then answers 503).
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Insert, Select, Table, insert
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.compiler import SQLCompiler

Processor = Callable[[Any], Any] | None


@dataclass(frozen=True)
class _Plan:
    """The statement as one dialect runs it."""

    sql: str
    names: tuple[str, ...]  # the parameters, in the driver's order (positional styles) or by name
    positional: bool
    defaults: Mapping[str, Any]  # parameters the statement carries itself (a LIMIT's value)
    binds: Mapping[str, Callable[[Any], Any]]  # the parameters that have a bind processor
    results: tuple[Processor, ...]
    row: type


class DriverSelect:
    """A SELECT built once (at import) and run on the driver's cursor: ``first`` or ``all`` of its rows, each a
    named tuple with ``_mapping``, as ``Connection.execute(statement, params).first()`` / ``.all()`` give."""

    def __init__(self, statement: Select[Any]) -> None:
        self._statement = statement
        self._plans: dict[tuple[str, str, str], _Plan] = {}
        self.fallbacks = 0  # statements run again through Connection.execute after a lost connection (tests)

    def first(self, conn: Connection, params: Mapping[str, Any]) -> Any:
        rows = self._run(conn, params, one=True)
        return rows[0] if rows else None

    def all(self, conn: Connection, params: Mapping[str, Any]) -> list[Any]:
        return self._run(conn, params, one=False)

    def _run(self, conn: Connection, params: Mapping[str, Any], *, one: bool) -> list[Any]:
        plan = _plan_for(self._plans, conn.dialect, self._plan)

        def fetch(cursor: Any) -> Sequence[Any]:
            if one:
                first = cursor.fetchone()
                return [] if first is None else [first]
            return list(cursor.fetchall())

        try:
            raw = _on_cursor(conn, plan, params, fetch)
        except _Disconnected:
            # SQLAlchemy's own path meets the same dead connection, and invalidates the pool as it does for any
            # statement (the next checkouts replace every older connection).
            self.fallbacks += 1
            result = conn.execute(self._statement, dict(params))
            return list(result.fetchmany(1) if one else result.all())
        results, row = plan.results, plan.row
        return [
            row(*(value if p is None or value is None else p(value) for p, value in zip(results, r, strict=True)))
            for r in raw
        ]

    def _plan(self, dialect: Dialect) -> _Plan:
        compiled = self._statement.compile(dialect=dialect)
        columns = list(self._statement.selected_columns)
        keys = [str(column.key) for column in columns]
        fields = namedtuple("Row", keys)  # type: ignore[misc]  # noqa: PYI024 - the field names are the statement's, known at run time
        row = type("Row", (fields,), {"__slots__": (), "_mapping": property(lambda self: self._asdict())})
        return _Plan(
            **_parameters(compiled, dialect),
            defaults={name: bind.effective_value for name, bind in compiled.binds.items() if bind.value is not None},
            results=tuple(column.type.dialect_impl(dialect).result_processor(dialect, None) for column in columns),
            row=row,
        )


class DriverInsert:
    """An INSERT of a fixed set of a table's columns, built once and run on the driver's cursor: what
    ``Connection.execute(insert(table), params)`` does for a row with those columns, less its execution
    context. A column left out gets NULL or its server default (one with a Python-side default is refused).
    Every row gives a value for each of ``columns``."""

    def __init__(self, table: Table, columns: Sequence[str]) -> None:
        for column in table.c:
            if column.key not in columns and column.default is not None:
                # Only Connection.execute applies one; here the column would be left NULL.
                raise ValueError(f"{table.name}.{column.key} has a Python-side default: give it a value")
        self._statement: Insert = insert(table)
        self._columns = tuple(columns)
        self._plans: dict[tuple[str, str, str], _Plan] = {}
        self.fallbacks = 0  # rows inserted again through Connection.execute after a lost connection (tests)

    def execute(self, conn: Connection, params: Mapping[str, Any]) -> None:
        plan = _plan_for(self._plans, conn.dialect, self._plan)
        try:
            _on_cursor(conn, plan, params, lambda cursor: None)
        except _Disconnected:
            self.fallbacks += 1
            conn.execute(self._statement, dict(params))

    def _plan(self, dialect: Dialect) -> _Plan:
        compiled = self._statement.compile(dialect=dialect, column_keys=list(self._columns))
        return _Plan(**_parameters(compiled, dialect), defaults={}, results=(), row=tuple)


def _plan_for(plans: dict[tuple[str, str, str], _Plan], dialect: Dialect, make: Callable[[Dialect], _Plan]) -> _Plan:
    """A statement's plan for ``dialect`` (its driver and parameter style), made on first use."""
    key = (dialect.name, dialect.driver, dialect.paramstyle)
    plan = plans.get(key)
    if plan is None:
        plan = plans[key] = make(dialect)
    return plan


def _parameters(compiled: SQLCompiler, dialect: Dialect) -> dict[str, Any]:
    """A compiled statement's SQL and how its parameters are passed: the _Plan fields every statement has."""
    return {
        "sql": str(compiled),
        "names": tuple(compiled.positiontup or ()) if compiled.positional else tuple(compiled.binds),
        "positional": bool(compiled.positional),
        "binds": {
            name: process
            for name, bind in compiled.binds.items()
            if (process := bind.type.dialect_impl(dialect).bind_processor(dialect)) is not None
        },
    }


class _Disconnected(Exception):
    """The driver lost the connection: the statement goes through SQLAlchemy's own path instead."""


def _on_cursor(conn: Connection, plan: _Plan, params: Mapping[str, Any], fetch: Callable[[Any], Any]) -> Any:
    """``fetch(cursor)`` after running ``plan`` with ``params`` (bound as SQLAlchemy binds them) on the driver's
    cursor. A driver error is raised as SQLAlchemy's exception for it; a lost connection as _Disconnected."""
    dialect = conn.dialect
    values = {**plan.defaults, **params}
    for name, process in plan.binds.items():
        if values.get(name) is not None:
            values[name] = process(values[name])
    arguments: Any = tuple(values[n] for n in plan.names) if plan.positional else values
    driver = conn.connection.dbapi_connection
    cursor = None
    try:
        cursor = driver.cursor()  # type: ignore[union-attr]
        cursor.execute(plan.sql, arguments)
        return fetch(cursor)
    except dialect.loaded_dbapi.Error as exc:
        if dialect.is_disconnect(exc, driver, cursor):
            raise _Disconnected from exc
        # Not run again: in a PostgreSQL transaction the error aborted it. Raised as SQLAlchemy raises it (its
        # text quotes the parameters unless the engine hides them, as Connection.execute would).
        raise sa_exc.DBAPIError.instance(
            plan.sql,
            arguments,
            exc,
            dialect.loaded_dbapi.Error,
            hide_parameters=conn.engine.hide_parameters,
            dialect=dialect,
        ) from exc
    finally:
        if cursor is not None:
            cursor.close()
