"""A secret's payload is in one store at most: the database itself refuses a row that says otherwise (issue 18).

The rows the code writes, and so the only ones allowed from now on:

- no payload yet (a two-step create before its PUT, or an order's secret before it completes): ``ciphertext``,
  ``kek_id``, ``store`` and ``store_ref`` all NULL;
- the built-in database store: ``ciphertext`` (and, until a project purge shreds its KEKs, ``kek_id``) set,
  ``store`` and ``store_ref`` NULL;
- an external store (Vault KV, KMIP): ``store`` and ``store_ref`` set, ``ciphertext`` and ``kek_id`` NULL.

Two CHECK constraints hold that: ``ck_secrets_payload_in_one_store`` (never a ciphertext *and* an external
reference: the readers take the reference first and would serve a stale or foreign payload, and a delete
would leave one of them behind) and ``ck_secrets_store_with_ref`` (a store name and its reference come
together: the readers look the reference up in the named store). ``kek_id`` is deliberately left out: a purge
sets it to NULL on rows it is about to delete. ``secret_versions`` keeps only sealed payloads (its
``ciphertext`` is NOT NULL and it has no external reference), so it needs no such constraint.

A database with a row breaking either rule (none of donjon's code paths writes one) stops the upgrade with the
count of such rows and changes nothing.

Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"

# Spelled as in donjon.storage.tables.
PAYLOAD_IN_ONE_STORE = "ciphertext IS NULL OR store_ref IS NULL"
STORE_WITH_REF = "(store IS NULL AND store_ref IS NULL) OR (store IS NOT NULL AND store_ref IS NOT NULL)"


def upgrade() -> None:
    broken = op.get_bind().execute(
        # Built from the two constants above only.
        sa.text(f"SELECT COUNT(*) FROM secrets WHERE NOT ({PAYLOAD_IN_ONE_STORE}) OR NOT ({STORE_WITH_REF})")  # noqa: S608
    )
    count = broken.scalar()
    if count:
        raise RuntimeError(
            f"{count} secret row(s) have both a ciphertext and an external store reference, or a store without"
            " a reference: fix or delete them, then upgrade again (revision 0010)"
        )
    # SQLite can only add a CHECK by rebuilding the table (batch mode; donjon.storage.migrate runs it with
    # foreign keys unenforced so the rebuild does not cascade); the others alter it in place.
    with op.batch_alter_table("secrets", schema=None) as batch_op:
        batch_op.create_check_constraint("ck_secrets_payload_in_one_store", PAYLOAD_IN_ONE_STORE)
        batch_op.create_check_constraint("ck_secrets_store_with_ref", STORE_WITH_REF)


def downgrade() -> None:
    with op.batch_alter_table("secrets", schema=None) as batch_op:
        batch_op.drop_constraint("ck_secrets_store_with_ref", type_="check")
        batch_op.drop_constraint("ck_secrets_payload_in_one_store", type_="check")
