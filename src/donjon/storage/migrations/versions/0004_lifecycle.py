"""Lifecycle: limited secrets (max_reads), payload versions, tombstones, wrapped hand-off tokens.

Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from donjon.storage.migrations.columns import (
    Blob,
    Timestamp,
    create_index,
    foreign_key,
    primary_key,
    project_id,
    timestamps,
    uuid,
)

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    with op.batch_alter_table("secrets", schema=None) as batch_op:
        batch_op.add_column(sa.Column("max_reads", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("reads_left", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("version", sa.Integer(), nullable=False, server_default="1"))
        batch_op.create_index(batch_op.f("ix_secrets_expiration"), ["expiration"], unique=False)

    op.create_table(
        "secret_versions",
        uuid("secret_id"),
        sa.Column("version", sa.Integer(), nullable=False),
        project_id(),
        sa.Column("content_type", sa.String(length=64), nullable=False),
        uuid("kek_id", nullable=True),
        sa.Column("ciphertext", Blob, nullable=False),
        *timestamps("created_at", "expires_at"),
        foreign_key("secret_versions", "secret_id", "secrets.id", cascade=True),
        foreign_key("secret_versions", "kek_id", "project_keks.id"),
        primary_key("secret_versions", "secret_id", "version"),
    )
    create_index("secret_versions", "expires_at")
    create_index("secret_versions", "project_id")

    op.create_table(
        "secret_tombstones",
        uuid(),
        project_id(),
        sa.Column("name", sa.String(length=255), nullable=True),
        sa.Column("secret_type", sa.String(length=32), nullable=False),
        sa.Column("creator_id", sa.String(length=255), nullable=True),
        *timestamps("created_at"),
        sa.Column("expiration", Timestamp, nullable=True),
        *timestamps("deleted_at"),
        sa.Column("deleted_reason", sa.String(length=16), nullable=False),
        primary_key("secret_tombstones"),
    )
    create_index("secret_tombstones", "project_id", "deleted_at")
    create_index("secret_tombstones", "deleted_at")

    op.create_table(
        "secret_wraps",
        uuid(),
        sa.Column("digest", sa.String(length=64), nullable=False),
        uuid("secret_id"),
        project_id(),
        *timestamps("created_at", "expires_at"),
        foreign_key("secret_wraps", "secret_id", "secrets.id", cascade=True),
        primary_key("secret_wraps"),
    )
    create_index("secret_wraps", "secret_id")
    create_index("secret_wraps", "expires_at")


def downgrade() -> None:
    op.drop_table("secret_wraps")
    op.drop_table("secret_tombstones")
    op.drop_table("secret_versions")
    with op.batch_alter_table("secrets", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_secrets_expiration"))
        batch_op.drop_column("version")
        batch_op.drop_column("reads_left")
        batch_op.drop_column("max_reads")
