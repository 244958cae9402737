"""Counting rows and reading one page of them: the shape every list query of the repositories shares."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Row, Table, func, select
from sqlalchemy.sql.elements import ColumnElement


def count(conn: Connection, table: Table, *where: ColumnElement[bool]) -> int:
    """How many rows of ``table`` match every condition of ``where``."""
    total: int = conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one()
    return total


def page(
    conn: Connection,
    table: Table,
    where: Sequence[ColumnElement[bool]],
    order_by: Sequence[ColumnElement[Any]],
    offset: int,
    limit: int,
) -> tuple[Sequence[Row[Any]], int]:
    """The rows ``offset`` to ``offset + limit`` of ``table`` that match ``where``, and how many match in all."""
    total = count(conn, table, *where)
    if total <= offset:  # also keeps an offset past the database's integer range out of the query
        return [], total
    rows = conn.execute(select(table).where(*where).order_by(*order_by).offset(offset).limit(limit)).all()
    return rows, total
