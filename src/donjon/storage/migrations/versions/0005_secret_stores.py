"""Secret stores: which external store holds a secret's payload, and its reference there.

Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"


def upgrade() -> None:
    with op.batch_alter_table("secrets", schema=None) as batch_op:
        batch_op.add_column(sa.Column("store", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("store_ref", sa.String(length=255), nullable=True))
        batch_op.create_index(batch_op.f("ix_secrets_store"), ["store"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("secrets", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_secrets_store"))
        batch_op.drop_column("store_ref")
        batch_op.drop_column("store")
