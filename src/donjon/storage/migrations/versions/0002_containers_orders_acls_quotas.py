"""Containers, orders (also the order job queue), ACLs, quotas and preferred secret stores.

Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from donjon.storage.migrations.columns import (
    Timestamp,
    create_acl_tables,
    create_index,
    foreign_key,
    primary_key,
    project_id,
    timestamps,
    uuid,
)

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    op.create_table(
        "containers",
        uuid(),
        project_id(),
        sa.Column("name", sa.String(length=255), nullable=True),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("creator_id", sa.String(length=255), nullable=True),
        *timestamps(),
        primary_key("containers"),
    )
    create_index("containers", "project_id", "created_at", "id")

    op.create_table(
        "orders",
        uuid(),
        project_id(),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("meta", sa.Text(), nullable=False),
        sa.Column("creator_id", sa.String(length=255), nullable=True),
        uuid("secret_id", nullable=True),
        uuid("container_id", nullable=True),
        sa.Column("error_status_code", sa.String(length=16), nullable=True),
        sa.Column("error_reason", sa.String(length=255), nullable=True),
        sa.Column("sealed_params", sa.LargeBinary(length=4096), nullable=True),
        uuid("kek_id", nullable=True),
        *timestamps(),
        sa.Column("claimed_by", sa.String(length=64), nullable=True),
        sa.Column("claimed_until", Timestamp, nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        foreign_key("orders", "kek_id", "project_keks.id"),
        primary_key("orders"),
    )
    create_index("orders", "project_id", "created_at", "id")
    create_index("orders", "status", "claimed_until")

    op.create_table("project_locks", project_id(), primary_key("project_locks", "project_id"))
    op.create_table(
        "project_quotas",
        project_id(),
        *(
            sa.Column(kind, sa.Integer(), nullable=True)
            for kind in ("secrets", "orders", "containers", "consumers", "cas")
        ),
        *timestamps(),
        primary_key("project_quotas", "project_id"),
    )
    op.create_table(
        "project_secret_stores",
        project_id(),
        sa.Column("store_name", sa.String(length=64), nullable=False),
        *timestamps("created_at"),
        primary_key("project_secret_stores", "project_id"),
    )
    create_acl_tables("container")
    op.create_table(
        "container_consumers",
        uuid(),
        uuid("container_id"),
        project_id(),
        sa.Column("name", sa.String(length=36), nullable=False),
        sa.Column("url", sa.String(length=255), nullable=False),
        *timestamps(),
        foreign_key("container_consumers", "container_id", "containers.id", cascade=True),
        primary_key("container_consumers"),
        sa.UniqueConstraint("container_id", "name", "url", name=op.f("uq_container_consumers_container_id_name_url")),
    )
    op.create_table(
        "container_secrets",
        uuid(),
        uuid("container_id"),
        uuid("secret_id"),
        sa.Column("name", sa.String(length=255), nullable=True),
        sa.Column("position", sa.Integer(), nullable=False),
        foreign_key("container_secrets", "container_id", "containers.id", cascade=True),
        foreign_key("container_secrets", "secret_id", "secrets.id", cascade=True),
        primary_key("container_secrets"),
        sa.UniqueConstraint("container_id", "secret_id", name=op.f("uq_container_secrets_container_id_secret_id")),
    )
    create_index("container_secrets", "secret_id")
    create_acl_tables("secret")


def downgrade() -> None:
    # Dropping a table drops its indexes with it, on every backend.
    for table in (
        "secret_acl_users",
        "secret_acls",
        "container_secrets",
        "container_acl_users",
        "container_consumers",
        "container_acls",
        "project_secret_stores",
        "project_quotas",
        "project_locks",
        "orders",
        "containers",
    ):
        op.drop_table(table)
