"""A hot single-row SELECT run on the driver's cursor, with SQLAlchemy's SQL and SQLAlchemy's type conversions.

``Connection.execute`` spends ~50 µs per statement on its execution context and result object (SQLAlchemy
2.1 with its Cython extensions, measured on SQLite); the SQLite query itself takes ~8 µs. For the one
statement every secret read runs (``storage/access.py``) that was the largest single cost of a payload read.
Here the statement is compiled by SQLAlchemy once per dialect, its parameters and columns go through the
same bind and result processors SQLAlchemy would apply, and only the execution is the driver's own.

Any driver error makes the statement run again through ``Connection.execute``, so errors are raised, wrapped
and handled (disconnects invalidate the pool, ``database._reachable`` sees a 503) exactly as for any other
statement; a transient one simply gives the row.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Select
from sqlalchemy.engine import Dialect

Processor = Callable[[Any], Any] | None


@dataclass(frozen=True)
class _Plan:
    """The statement as one dialect runs it."""

    sql: str
    names: tuple[str, ...]  # the parameters, in the driver's order (positional styles) or by name
    positional: bool
    defaults: Mapping[str, Any]  # parameters the statement carries itself (a LIMIT's value)
    binds: Mapping[str, Processor]
    results: tuple[Processor, ...]
    row: type


class OneRow:
    """``first(conn, params)``: the statement's first row (a named tuple with ``_mapping``) or None."""

    def __init__(self, statement: Select[Any]) -> None:
        self._statement = statement
        self._plans: dict[tuple[str, str, str], _Plan] = {}
        self.fallbacks = 0  # statements that went through Connection.execute after a driver error (tests)

    def first(self, conn: Connection, params: Mapping[str, Any]) -> Any:
        dialect = conn.dialect
        plan = self._plans.get((dialect.name, dialect.driver, dialect.paramstyle)) or self._plan(dialect)
        values = {**plan.defaults, **params}
        for name, process in plan.binds.items():
            if process is not None and values.get(name) is not None:
                values[name] = process(values[name])
        arguments: Any = tuple(values[n] for n in plan.names) if plan.positional else values
        try:
            cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
            try:
                cursor.execute(plan.sql, arguments)
                raw = cursor.fetchone()
            finally:
                cursor.close()
        except Exception:  # noqa: BLE001 - the driver's own error class: SQLAlchemy's path raises it properly
            self.fallbacks += 1
            return conn.execute(self._statement, dict(params)).first()
        if raw is None:
            return None
        return plan.row(
            *(value if p is None or value is None else p(value) for p, value in zip(plan.results, raw, strict=True))
        )

    def _plan(self, dialect: Dialect) -> _Plan:
        compiled = self._statement.compile(dialect=dialect)
        if compiled.positional:
            names = tuple(compiled.positiontup or ())
        else:
            names = tuple(compiled.binds)
        columns = list(self._statement.selected_columns)
        keys = [str(column.key) for column in columns]
        fields = namedtuple("Row", keys)  # type: ignore[misc]  # noqa: PYI024 - the field names are the statement's, known at run time
        row = type("Row", (fields,), {"__slots__": (), "_mapping": property(lambda self: self._asdict())})
        plan = _Plan(
            sql=str(compiled),
            names=names,
            positional=bool(compiled.positional),
            defaults={name: bind.effective_value for name, bind in compiled.binds.items() if bind.value is not None},
            binds={
                name: bind.type.dialect_impl(dialect).bind_processor(dialect) for name, bind in compiled.binds.items()
            },
            results=tuple(column.type.dialect_impl(dialect).result_processor(dialect, None) for column in columns),
            row=row,
        )
        self._plans[(dialect.name, dialect.driver, dialect.paramstyle)] = plan
        return plan
