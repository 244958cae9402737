"""Standalone bearer tokens (auth = "token").

Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from donjon.storage.migrations.columns import Timestamp, primary_key, project_id, timestamps, uuid

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    op.create_table(
        "api_tokens",
        uuid(),
        sa.Column("digest", sa.String(64), nullable=False),
        project_id(),
        sa.Column("user_id", sa.String(255), nullable=False),
        sa.Column("roles", sa.String(255), nullable=False),
        sa.Column("description", sa.String(255)),
        *timestamps("created_at"),
        sa.Column("expires_at", Timestamp),
        sa.Column("revoked_at", Timestamp),
        primary_key("api_tokens"),
    )
    op.create_index("ix_api_tokens_project_id", "api_tokens", ["project_id"])


def downgrade() -> None:
    op.drop_table("api_tokens")
