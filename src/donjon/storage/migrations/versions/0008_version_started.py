"""Secrets record when their current payload version became current.

``GET /v1/secrets/{id}/lifecycle`` showed the current version's ``created`` as the previous version's
``readable_until`` (the end of its grace period, in the future), and the secret's creation once the previous
version was reaped. Nothing else holds the rotation time: ``updated_at`` also moves with metadata changes, and
the archived row that could hint at it is deleted after the grace period.

Existing rotated secrets get ``updated_at``, the latest time their rotation can have happened (exact unless
their metadata changed since). NULL means version 1, which started with the secret.

Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from donjon.storage.migrations.columns import Timestamp

revision = "0008"
down_revision = "0007"


def upgrade() -> None:
    with op.batch_alter_table("secrets", schema=None) as batch_op:
        batch_op.add_column(sa.Column("version_started_at", Timestamp, nullable=True))
    op.execute(sa.text("UPDATE secrets SET version_started_at = updated_at WHERE version > 1"))


def downgrade() -> None:
    with op.batch_alter_table("secrets", schema=None) as batch_op:
        batch_op.drop_column("version_started_at")
