"""Wrap tokens record who made them: at unwrap, that caller must still be allowed to read the payload.

Tokens minted before this revision have no creator to check, so the upgrade revokes them (they live at most
``lifecycle.wrap_max_ttl_seconds``; their recipients get the usual 404 and ask for a new one).

Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"


def upgrade() -> None:
    op.execute(sa.text("DELETE FROM secret_wraps"))
    with op.batch_alter_table("secret_wraps", schema=None) as batch_op:
        batch_op.add_column(sa.Column("creator", sa.Text(), nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("secret_wraps", schema=None) as batch_op:
        batch_op.drop_column("creator")
