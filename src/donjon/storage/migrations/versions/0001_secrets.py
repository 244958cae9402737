"""Secrets, their metadata and consumers, and per-project KEKs.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

Timestamp = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
Blob = sa.LargeBinary().with_variant(mysql.MEDIUMBLOB(), "mysql", "mariadb")


def upgrade() -> None:
    op.create_table(
        "project_keks",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("project_id", sa.String(255), nullable=False),
        sa.Column("root_key_id", sa.String(255), nullable=False),
        sa.Column("wrapped_key", sa.LargeBinary(1024), nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_project_keks"),
    )
    op.create_index("ix_project_keks_project_id", "project_keks", ["project_id"])
    op.create_table(
        "project_active_kek",
        sa.Column("project_id", sa.String(255), nullable=False),
        sa.Column("kek_id", sa.String(36), nullable=False),
        sa.ForeignKeyConstraint(["kek_id"], ["project_keks.id"], name="fk_project_active_kek_kek_id_project_keks"),
        sa.PrimaryKeyConstraint("project_id", name="pk_project_active_kek"),
    )
    op.create_table(
        "secrets",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("project_id", sa.String(255), nullable=False),
        sa.Column("name", sa.String(255)),
        sa.Column("secret_type", sa.String(32), nullable=False),
        sa.Column("algorithm", sa.String(255)),
        sa.Column("bit_length", sa.Integer()),
        sa.Column("mode", sa.String(255)),
        sa.Column("creator_id", sa.String(255)),
        sa.Column("expiration", Timestamp),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("updated_at", Timestamp, nullable=False),
        sa.Column("content_type", sa.String(64)),
        sa.Column("kek_id", sa.String(36)),
        sa.Column("ciphertext", Blob),
        sa.ForeignKeyConstraint(["kek_id"], ["project_keks.id"], name="fk_secrets_kek_id_project_keks"),
        sa.PrimaryKeyConstraint("id", name="pk_secrets"),
    )
    op.create_index("ix_secrets_project_id_created_at_id", "secrets", ["project_id", "created_at", "id"])
    op.create_table(
        "secret_metadata",
        sa.Column("secret_id", sa.String(36), nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("value", sa.String(255), nullable=False),
        sa.ForeignKeyConstraint(
            ["secret_id"], ["secrets.id"], name="fk_secret_metadata_secret_id_secrets", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("secret_id", "key", name="pk_secret_metadata"),
    )
    op.create_table(
        "secret_consumers",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("secret_id", sa.String(36), nullable=False),
        sa.Column("project_id", sa.String(255), nullable=False),
        sa.Column("service", sa.String(255), nullable=False),
        sa.Column("resource_type", sa.String(255), nullable=False),
        sa.Column("resource_id", sa.String(255), nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("updated_at", Timestamp, nullable=False),
        sa.ForeignKeyConstraint(
            ["secret_id"], ["secrets.id"], name="fk_secret_consumers_secret_id_secrets", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_secret_consumers"),
        sa.UniqueConstraint(
            "secret_id",
            "service",
            "resource_type",
            "resource_id",
            name="uq_secret_consumers_secret_id_service_resource_type_resource_id",
        ),
    )
    op.create_index("ix_secret_consumers_secret_id_created_at", "secret_consumers", ["secret_id", "created_at"])


def downgrade() -> None:
    op.drop_table("secret_consumers")
    op.drop_table("secret_metadata")
    op.drop_table("secrets")
    op.drop_table("project_active_kek")
    op.drop_table("project_keks")
