"""Transport keys: Barbican's cloud-wide table of opaque keys, served as Barbican 23 serves them (issue 15).

Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from donjon.storage.migrations.columns import create_index, primary_key, timestamps, uuid

revision = "0009"
down_revision = "0008"


def upgrade() -> None:
    op.create_table(
        "transport_keys",
        uuid(),
        sa.Column("plugin_name", sa.String(255), nullable=False),
        sa.Column("transport_key", sa.Text(), nullable=False),
        *timestamps(),
        primary_key("transport_keys"),
    )
    create_index("transport_keys", "created_at", "id")


def downgrade() -> None:
    op.drop_index(op.f("ix_transport_keys_created_at_id"), table_name="transport_keys")
    op.drop_table("transport_keys")
