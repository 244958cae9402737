"""What several revisions create alike: the column types, the common columns, and indexes and foreign keys
named as ``tables.metadata``'s naming convention names them.

Frozen like the revisions themselves: a revision must go on producing the schema it produced when it was
written, so a helper here never changes once a revision uses it; a different shape is a new helper.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

# Naive UTC with microseconds on every backend (MariaDB's DATETIME keeps them only with fsp=6).
Timestamp = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
Blob = sa.LargeBinary().with_variant(mysql.MEDIUMBLOB(), "mysql", "mariadb")


def uuid(name: str = "id", *, nullable: bool = False) -> sa.Column[str]:
    """A uuid column: a row's own id, or a reference to another row's."""
    return sa.Column(name, sa.String(36), nullable=nullable)


def project_id() -> sa.Column[str]:
    return sa.Column("project_id", sa.String(255), nullable=False)


def timestamps(*names: str) -> list[sa.Column[object]]:
    """Required timestamp columns, ``created_at`` and ``updated_at`` unless named."""
    return [sa.Column(name, Timestamp, nullable=False) for name in names or ("created_at", "updated_at")]


def foreign_key(table: str, column: str, target: str, *, cascade: bool = False) -> sa.ForeignKeyConstraint:
    """``table.column`` references ``target`` (``"secrets.id"``); ``cascade``: deleting the target deletes the row."""
    referred = target.split(".")[0]
    return sa.ForeignKeyConstraint(
        [column], [target], name=op.f(f"fk_{table}_{column}_{referred}"), ondelete="CASCADE" if cascade else None
    )


def primary_key(table: str, *columns: str) -> sa.PrimaryKeyConstraint:
    return sa.PrimaryKeyConstraint(*(columns or ("id",)), name=op.f(f"pk_{table}"))


def create_index(table: str, *columns: str) -> None:
    op.create_index(op.f(f"ix_{table}_{'_'.join(columns)}"), table, list(columns), unique=False)


def create_acl_tables(entity: str) -> None:
    """An entity's ACL (Barbican has only the "read" operation, so one row per entity) and its users."""
    parent = f"{entity}s"
    acls, users = f"{entity}_acls", f"{entity}_acl_users"
    op.create_table(
        acls,
        uuid(f"{entity}_id"),
        sa.Column("project_access", sa.Boolean(), nullable=False),
        *timestamps(),
        foreign_key(acls, f"{entity}_id", f"{parent}.id", cascade=True),
        primary_key(acls, f"{entity}_id"),
    )
    op.create_table(
        users,
        uuid(f"{entity}_id"),
        sa.Column("user_id", sa.String(255), nullable=False),
        foreign_key(users, f"{entity}_id", f"{acls}.{entity}_id", cascade=True),
        primary_key(users, f"{entity}_id", "user_id"),
    )
    create_index(users, "user_id")
