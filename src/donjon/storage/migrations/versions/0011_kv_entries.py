"""KV v2 (the Vault API, issue 17): which secrets are KV entries, and each KV version's own state.

A KV entry *is* a donjon secret (name = path, payload = the JSON document, versions = donjon versions);
``kv_entries`` adds what Vault keeps per key (max_versions, cas_required, delete_version_after,
custom_metadata) and makes a path name one secret per project. ``kv_versions`` holds what donjon's versions
have no place for: a version's soft deletion (``deletion_time``) and destruction. Both go with their secret
(``ON DELETE CASCADE``): a secret deleted through the Barbican API is gone from KV too.

Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

Timestamp = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def upgrade() -> None:
    op.create_table(
        "kv_entries",
        sa.Column("secret_id", sa.String(36), nullable=False),
        sa.Column("project_id", sa.String(255), nullable=False),
        sa.Column("path", sa.String(255), nullable=False),
        sa.Column("max_versions", sa.Integer(), nullable=False),
        sa.Column("cas_required", sa.Boolean(), nullable=False),
        sa.Column("delete_version_after", sa.Integer(), nullable=False),
        sa.Column("custom_metadata", sa.Text(), nullable=True),
        sa.Column("metadata_version", sa.Integer(), nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("updated_at", Timestamp, nullable=False),
        sa.ForeignKeyConstraint(
            ["secret_id"], ["secrets.id"], name=op.f("fk_kv_entries_secret_id_secrets"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("secret_id", name=op.f("pk_kv_entries")),
        sa.UniqueConstraint("project_id", "path", name=op.f("uq_kv_entries_project_id_path")),
    )
    op.create_table(
        "kv_versions",
        sa.Column("secret_id", sa.String(36), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("deletion_time", Timestamp, nullable=True),
        sa.Column("destroyed", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["secret_id"], ["secrets.id"], name=op.f("fk_kv_versions_secret_id_secrets"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("secret_id", "version", name=op.f("pk_kv_versions")),
    )


def downgrade() -> None:
    op.drop_table("kv_versions")
    op.drop_table("kv_entries")
