"""Use-limited tokens (Vault's ``num_uses``, issue 17): how many uses a token was given and has left.

``num_uses`` is what the token was issued with (0: unlimited, every token before this revision);
``uses_left`` is decremented by each authenticated request in one ``UPDATE … WHERE uses_left > 0``, so
concurrent requests on any node spend each use once, and the request that spends the last one revokes the
token.

Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.add_column(sa.Column("num_uses", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("uses_left", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.drop_column("uses_left")
        batch_op.drop_column("num_uses")
