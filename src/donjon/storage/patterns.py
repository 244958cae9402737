"""Barbican's ``LIKE`` list filters (``name``, ``alg``, ``mode``, orders' ``meta``), the same on every database.

``%`` and ``_`` stay wildcards, as in Barbican. A backslash is an ordinary character: PostgreSQL and MariaDB
take it as LIKE's escape by default (a pattern ending in one is an error on PostgreSQL), SQLite has no
escape at all. Doubling it under an explicit ``ESCAPE '\\'`` gives the three databases one meaning.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.sql.elements import BindParameter, ColumnElement


def like_pattern(text: str) -> str:
    """``text`` as a pattern under ``ESCAPE '\\'``: its backslashes doubled, its wildcards kept."""
    return text.replace("\\", "\\\\")


def like(column: ColumnElement[Any], pattern: str | BindParameter[Any]) -> ColumnElement[bool]:
    """``column LIKE pattern ESCAPE '\\'``; a bound pattern's value must come from ``like_pattern``."""
    return column.like(like_pattern(pattern) if isinstance(pattern, str) else pattern, escape="\\")
