"""Transport keys: Barbican's cloud-wide table of opaque keys, served as Barbican 23 serves them (issue 15).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

Timestamp = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def upgrade() -> None:
    op.create_table(
        "transport_keys",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("plugin_name", sa.String(255), nullable=False),
        sa.Column("transport_key", sa.Text(), nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("updated_at", Timestamp, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_transport_keys")),
    )
    op.create_index(op.f("ix_transport_keys_created_at_id"), "transport_keys", ["created_at", "id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_transport_keys_created_at_id"), table_name="transport_keys")
    op.drop_table("transport_keys")
