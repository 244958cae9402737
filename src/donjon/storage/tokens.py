"""Rows of donjon-issued bearer tokens (keyed hashes only, never the tokens)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select, update

from donjon.storage.paging import count
from donjon.storage.tables import api_tokens


@dataclass(frozen=True)
class TokenRecord:
    id: str
    digest: str
    project_id: str
    user_id: str
    roles: tuple[str, ...]
    description: str | None
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    num_uses: int = 0  # Vault's use limit; 0 is unlimited
    uses_left: int = 0

    def __repr__(self) -> str:
        return f"TokenRecord(id={self.id!r}, project_id={self.project_id!r}, roles={self.roles!r})"


def _record(row: Any) -> TokenRecord:
    # The row is the record, but for the roles: stored as one comma-separated string.
    return TokenRecord(**{**row._mapping, "roles": tuple(r for r in row.roles.split(",") if r)})


def insert_token(conn: Connection, record: TokenRecord) -> None:
    conn.execute(insert(api_tokens).values({**asdict(record), "roles": ",".join(record.roles)}))


def get_token(conn: Connection, token_id: str) -> TokenRecord | None:
    row = conn.execute(select(api_tokens).where(api_tokens.c.id == token_id)).first()
    return _record(row) if row is not None else None


def list_tokens(conn: Connection, project_id: str | None) -> list[TokenRecord]:
    stmt = select(api_tokens).order_by(api_tokens.c.created_at, api_tokens.c.id)
    if project_id is not None:
        stmt = stmt.where(api_tokens.c.project_id == project_id)
    return [_record(r) for r in conn.execute(stmt)]


def revoke(conn: Connection, token_id: str, now: datetime) -> bool:
    result = conn.execute(
        update(api_tokens).where(api_tokens.c.id == token_id, api_tokens.c.revoked_at.is_(None)).values(revoked_at=now)
    )
    return result.rowcount == 1


def count_tokens(conn: Connection) -> int:
    return count(conn, api_tokens)


def set_expiry(conn: Connection, token_id: str, expires_at: datetime) -> bool:
    """A live token's new expiry (a renewal); False if it is gone or revoked."""
    result = conn.execute(
        update(api_tokens)
        .where(api_tokens.c.id == token_id, api_tokens.c.revoked_at.is_(None))
        .values(expires_at=expires_at)
    )
    return result.rowcount == 1


def use_once(conn: Connection, token_id: str, now: datetime) -> int | None:
    """Spend one use of a live use-limited token: the uses left after it, or None if none was left.

    One conditional UPDATE: concurrent requests on any node (and database) spend each use once. Spending the
    last one revokes the token in the same transaction, so it is gone for every later request.
    """
    spent = conn.execute(
        update(api_tokens)
        .where(api_tokens.c.id == token_id, api_tokens.c.revoked_at.is_(None), api_tokens.c.uses_left > 0)
        .values(uses_left=api_tokens.c.uses_left - 1)
    )
    if spent.rowcount != 1:
        return None
    left: int = conn.execute(select(api_tokens.c.uses_left).where(api_tokens.c.id == token_id)).scalar_one()
    if left == 0:
        revoke(conn, token_id, now)
    return left
