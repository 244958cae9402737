"""MariaDB/MySQL: every table compares text byte for byte (utf8mb4_bin), as PostgreSQL and SQLite do.

The server's default collation (utf8mb4_general_ci on MariaDB) compares case- and accent-insensitively, so
project "P1" listed project "p1"'s secrets, an ACL naming user "Alice" also admitted "alice", and an ACL
with users "A" and "a" was a duplicate-key 500. Ids are opaque strings: only the same bytes are the same id.
The database's default is changed too, so that tables made by later revisions are binary from the start.

Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"

TABLES = (
    "project_keks",
    "project_active_kek",
    "secrets",
    "secret_metadata",
    "secret_consumers",
    "containers",
    "container_secrets",
    "container_consumers",
    "secret_acls",
    "secret_acl_users",
    "container_acls",
    "container_acl_users",
    "orders",
    "project_quotas",
    "project_locks",
    "project_secret_stores",
    "api_tokens",
    "secret_versions",
    "secret_tombstones",
    "secret_wraps",
    "alembic_version",
)


def _convert(collation: str) -> None:
    bind = op.get_bind()
    if bind.dialect.name != "mysql":
        return
    # MariaDB will not change the collation of a column a foreign key joins, even with the checks off:
    # the keys are dropped, every table converted, and the same keys made again.
    inspector = sa.inspect(bind)
    keys = [(table, fk) for table in TABLES for fk in inspector.get_foreign_keys(table)]
    for table, fk in keys:
        op.drop_constraint(str(fk["name"]), table, type_="foreignkey")
    op.execute(sa.text(f"ALTER DATABASE CHARACTER SET utf8mb4 COLLATE {collation}"))
    for table in TABLES:
        op.execute(sa.text(f"ALTER TABLE {table} CONVERT TO CHARACTER SET utf8mb4 COLLATE {collation}"))
    for table, fk in keys:
        op.create_foreign_key(
            fk["name"],
            table,
            fk["referred_table"],
            fk["constrained_columns"],
            fk["referred_columns"],
            ondelete=fk.get("options", {}).get("ondelete"),
        )


def upgrade() -> None:
    _convert("utf8mb4_bin")


def downgrade() -> None:
    _convert("utf8mb4_general_ci")
