"""Lifecycle: limited secrets (max_reads), payload versions, tombstones, wrapped hand-off tokens.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

Timestamp = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
Blob = sa.LargeBinary().with_variant(mysql.MEDIUMBLOB(), "mysql", "mariadb")


def upgrade() -> None:
    with op.batch_alter_table("secrets", schema=None) as batch_op:
        batch_op.add_column(sa.Column("max_reads", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("reads_left", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("version", sa.Integer(), nullable=False, server_default="1"))
        batch_op.create_index(batch_op.f("ix_secrets_expiration"), ["expiration"], unique=False)

    op.create_table(
        "secret_versions",
        sa.Column("secret_id", sa.String(length=36), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.String(length=255), nullable=False),
        sa.Column("content_type", sa.String(length=64), nullable=False),
        sa.Column("kek_id", sa.String(length=36), nullable=True),
        sa.Column("ciphertext", Blob, nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("expires_at", Timestamp, nullable=False),
        sa.ForeignKeyConstraint(
            ["secret_id"], ["secrets.id"], name=op.f("fk_secret_versions_secret_id_secrets"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(["kek_id"], ["project_keks.id"], name=op.f("fk_secret_versions_kek_id_project_keks")),
        sa.PrimaryKeyConstraint("secret_id", "version", name=op.f("pk_secret_versions")),
    )
    op.create_index(op.f("ix_secret_versions_expires_at"), "secret_versions", ["expires_at"], unique=False)
    op.create_index(op.f("ix_secret_versions_project_id"), "secret_versions", ["project_id"], unique=False)

    op.create_table(
        "secret_tombstones",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("project_id", sa.String(length=255), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=True),
        sa.Column("secret_type", sa.String(length=32), nullable=False),
        sa.Column("creator_id", sa.String(length=255), nullable=True),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("expiration", Timestamp, nullable=True),
        sa.Column("deleted_at", Timestamp, nullable=False),
        sa.Column("deleted_reason", sa.String(length=16), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_secret_tombstones")),
    )
    op.create_index(
        op.f("ix_secret_tombstones_project_id_deleted_at"),
        "secret_tombstones",
        ["project_id", "deleted_at"],
        unique=False,
    )
    op.create_index(op.f("ix_secret_tombstones_deleted_at"), "secret_tombstones", ["deleted_at"], unique=False)

    op.create_table(
        "secret_wraps",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("secret_id", sa.String(length=36), nullable=False),
        sa.Column("project_id", sa.String(length=255), nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("expires_at", Timestamp, nullable=False),
        sa.ForeignKeyConstraint(
            ["secret_id"], ["secrets.id"], name=op.f("fk_secret_wraps_secret_id_secrets"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_secret_wraps")),
    )
    op.create_index(op.f("ix_secret_wraps_secret_id"), "secret_wraps", ["secret_id"], unique=False)
    op.create_index(op.f("ix_secret_wraps_expires_at"), "secret_wraps", ["expires_at"], unique=False)


def downgrade() -> None:
    op.drop_table("secret_wraps")
    op.drop_table("secret_tombstones")
    op.drop_table("secret_versions")
    with op.batch_alter_table("secrets", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_secrets_expiration"))
        batch_op.drop_column("version")
        batch_op.drop_column("reads_left")
        batch_op.drop_column("max_reads")
