"""Containers, orders (also the order job queue), ACLs, quotas and preferred secret stores.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

Timestamp = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def upgrade() -> None:
    op.create_table(
        "containers",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("project_id", sa.String(length=255), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=True),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("creator_id", sa.String(length=255), nullable=True),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("updated_at", Timestamp, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_containers")),
    )
    with op.batch_alter_table("containers", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_containers_project_id_created_at_id"), ["project_id", "created_at", "id"], unique=False
        )

    op.create_table(
        "orders",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("project_id", sa.String(length=255), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("meta", sa.Text(), nullable=False),
        sa.Column("creator_id", sa.String(length=255), nullable=True),
        sa.Column("secret_id", sa.String(length=36), nullable=True),
        sa.Column("container_id", sa.String(length=36), nullable=True),
        sa.Column("error_status_code", sa.String(length=16), nullable=True),
        sa.Column("error_reason", sa.String(length=255), nullable=True),
        sa.Column("sealed_params", sa.LargeBinary(length=4096), nullable=True),
        sa.Column("kek_id", sa.String(length=36), nullable=True),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("updated_at", Timestamp, nullable=False),
        sa.Column("claimed_by", sa.String(length=64), nullable=True),
        sa.Column("claimed_until", Timestamp, nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["kek_id"], ["project_keks.id"], name=op.f("fk_orders_kek_id_project_keks")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_orders")),
    )
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_orders_project_id_created_at_id"), ["project_id", "created_at", "id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_orders_status_claimed_until"), ["status", "claimed_until"], unique=False)

    op.create_table(
        "project_locks",
        sa.Column("project_id", sa.String(length=255), nullable=False),
        sa.PrimaryKeyConstraint("project_id", name=op.f("pk_project_locks")),
    )
    op.create_table(
        "project_quotas",
        sa.Column("project_id", sa.String(length=255), nullable=False),
        sa.Column("secrets", sa.Integer(), nullable=True),
        sa.Column("orders", sa.Integer(), nullable=True),
        sa.Column("containers", sa.Integer(), nullable=True),
        sa.Column("consumers", sa.Integer(), nullable=True),
        sa.Column("cas", sa.Integer(), nullable=True),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("updated_at", Timestamp, nullable=False),
        sa.PrimaryKeyConstraint("project_id", name=op.f("pk_project_quotas")),
    )
    op.create_table(
        "project_secret_stores",
        sa.Column("project_id", sa.String(length=255), nullable=False),
        sa.Column("store_name", sa.String(length=64), nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.PrimaryKeyConstraint("project_id", name=op.f("pk_project_secret_stores")),
    )
    op.create_table(
        "container_acls",
        sa.Column("container_id", sa.String(length=36), nullable=False),
        sa.Column("project_access", sa.Boolean(), nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("updated_at", Timestamp, nullable=False),
        sa.ForeignKeyConstraint(
            ["container_id"],
            ["containers.id"],
            name=op.f("fk_container_acls_container_id_containers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("container_id", name=op.f("pk_container_acls")),
    )
    op.create_table(
        "container_consumers",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("container_id", sa.String(length=36), nullable=False),
        sa.Column("project_id", sa.String(length=255), nullable=False),
        sa.Column("name", sa.String(length=36), nullable=False),
        sa.Column("url", sa.String(length=255), nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("updated_at", Timestamp, nullable=False),
        sa.ForeignKeyConstraint(
            ["container_id"],
            ["containers.id"],
            name=op.f("fk_container_consumers_container_id_containers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_container_consumers")),
        sa.UniqueConstraint("container_id", "name", "url", name=op.f("uq_container_consumers_container_id_name_url")),
    )
    op.create_table(
        "container_acl_users",
        sa.Column("container_id", sa.String(length=36), nullable=False),
        sa.Column("user_id", sa.String(length=255), nullable=False),
        sa.ForeignKeyConstraint(
            ["container_id"],
            ["container_acls.container_id"],
            name=op.f("fk_container_acl_users_container_id_container_acls"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("container_id", "user_id", name=op.f("pk_container_acl_users")),
    )
    with op.batch_alter_table("container_acl_users", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_container_acl_users_user_id"), ["user_id"], unique=False)

    op.create_table(
        "container_secrets",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("container_id", sa.String(length=36), nullable=False),
        sa.Column("secret_id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=True),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["container_id"],
            ["containers.id"],
            name=op.f("fk_container_secrets_container_id_containers"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["secret_id"], ["secrets.id"], name=op.f("fk_container_secrets_secret_id_secrets"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_container_secrets")),
        sa.UniqueConstraint("container_id", "secret_id", name=op.f("uq_container_secrets_container_id_secret_id")),
    )
    with op.batch_alter_table("container_secrets", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_container_secrets_secret_id"), ["secret_id"], unique=False)

    op.create_table(
        "secret_acls",
        sa.Column("secret_id", sa.String(length=36), nullable=False),
        sa.Column("project_access", sa.Boolean(), nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("updated_at", Timestamp, nullable=False),
        sa.ForeignKeyConstraint(
            ["secret_id"], ["secrets.id"], name=op.f("fk_secret_acls_secret_id_secrets"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("secret_id", name=op.f("pk_secret_acls")),
    )
    op.create_table(
        "secret_acl_users",
        sa.Column("secret_id", sa.String(length=36), nullable=False),
        sa.Column("user_id", sa.String(length=255), nullable=False),
        sa.ForeignKeyConstraint(
            ["secret_id"],
            ["secret_acls.secret_id"],
            name=op.f("fk_secret_acl_users_secret_id_secret_acls"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("secret_id", "user_id", name=op.f("pk_secret_acl_users")),
    )
    with op.batch_alter_table("secret_acl_users", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_secret_acl_users_user_id"), ["user_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("secret_acl_users", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_secret_acl_users_user_id"))

    op.drop_table("secret_acl_users")
    op.drop_table("secret_acls")
    with op.batch_alter_table("container_secrets", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_container_secrets_secret_id"))

    op.drop_table("container_secrets")
    with op.batch_alter_table("container_acl_users", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_container_acl_users_user_id"))

    op.drop_table("container_acl_users")
    op.drop_table("container_consumers")
    op.drop_table("container_acls")
    op.drop_table("project_secret_stores")
    op.drop_table("project_quotas")
    op.drop_table("project_locks")
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_orders_status_claimed_until"))
        batch_op.drop_index(batch_op.f("ix_orders_project_id_created_at_id"))

    op.drop_table("orders")
    with op.batch_alter_table("containers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_containers_project_id_created_at_id"))

    op.drop_table("containers")
