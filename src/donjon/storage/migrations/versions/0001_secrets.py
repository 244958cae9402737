"""Secrets, their metadata and consumers, and per-project KEKs.

Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from donjon.storage.migrations.columns import Blob, Timestamp, foreign_key, primary_key, project_id, timestamps, uuid

revision = "0001"
down_revision = None


def upgrade() -> None:
    op.create_table(
        "project_keks",
        uuid(),
        project_id(),
        sa.Column("root_key_id", sa.String(255), nullable=False),
        sa.Column("wrapped_key", sa.LargeBinary(1024), nullable=False),
        *timestamps("created_at"),
        primary_key("project_keks"),
    )
    op.create_index("ix_project_keks_project_id", "project_keks", ["project_id"])
    op.create_table(
        "project_active_kek",
        project_id(),
        uuid("kek_id"),
        foreign_key("project_active_kek", "kek_id", "project_keks.id"),
        primary_key("project_active_kek", "project_id"),
    )
    op.create_table(
        "secrets",
        uuid(),
        project_id(),
        sa.Column("name", sa.String(255)),
        sa.Column("secret_type", sa.String(32), nullable=False),
        sa.Column("algorithm", sa.String(255)),
        sa.Column("bit_length", sa.Integer()),
        sa.Column("mode", sa.String(255)),
        sa.Column("creator_id", sa.String(255)),
        sa.Column("expiration", Timestamp),
        *timestamps(),
        sa.Column("content_type", sa.String(64)),
        uuid("kek_id", nullable=True),
        sa.Column("ciphertext", Blob),
        foreign_key("secrets", "kek_id", "project_keks.id"),
        primary_key("secrets"),
    )
    op.create_index("ix_secrets_project_id_created_at_id", "secrets", ["project_id", "created_at", "id"])
    op.create_table(
        "secret_metadata",
        uuid("secret_id"),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("value", sa.String(255), nullable=False),
        foreign_key("secret_metadata", "secret_id", "secrets.id", cascade=True),
        primary_key("secret_metadata", "secret_id", "key"),
    )
    op.create_table(
        "secret_consumers",
        uuid(),
        uuid("secret_id"),
        project_id(),
        sa.Column("service", sa.String(255), nullable=False),
        sa.Column("resource_type", sa.String(255), nullable=False),
        sa.Column("resource_id", sa.String(255), nullable=False),
        *timestamps(),
        foreign_key("secret_consumers", "secret_id", "secrets.id", cascade=True),
        primary_key("secret_consumers"),
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
