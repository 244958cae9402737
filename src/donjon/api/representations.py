"""Response bodies, key for key as python-barbicanclient builds objects from them (spec §2.1)."""

from __future__ import annotations

from typing import Any

from donjon.services.secrets import SecretView
from donjon.storage.records import ConsumerRecord
from donjon.timeutil import isoformat


def secret_ref(base: str, secret_id: str) -> str:
    return f"{base}/v1/secrets/{secret_id}"


def consumer_location(base: str, entity_id: str) -> str:
    """The ``Location`` of a consumer registration, as Barbican builds it (``hrefs.convert_consumer_to_href``
    of the secret's or container's id): ``{host_href}/v1/consumers/{id}/consumers``. It names no resource, in
    Barbican either; it is sent because Barbican's clients and tests may read it."""
    return f"{base}/v1/consumers/{entity_id}/consumers"


def consumer_brief(c: ConsumerRecord) -> dict[str, str]:
    return {"service": c.service, "resource_type": c.resource_type, "resource_id": c.resource_id}


def consumer_full(c: ConsumerRecord) -> dict[str, Any]:
    return {
        **consumer_brief(c),
        "created": isoformat(c.created_at),
        "updated": isoformat(c.updated_at),
        "status": "ACTIVE",
    }


def secret_body(base: str, view: SecretView, *, with_consumers: bool) -> dict[str, Any]:
    s = view.secret
    body: dict[str, Any] = {
        "secret_ref": secret_ref(base, s.id),
        "name": s.name,
        "secret_type": s.secret_type,
        "status": "ACTIVE",
        "created": isoformat(s.created_at),
        "updated": isoformat(s.updated_at),
        "expiration": isoformat(s.expiration),
        "algorithm": s.algorithm,
        "bit_length": s.bit_length,
        "mode": s.mode,
        "creator_id": s.creator_id,
    }
    if with_consumers:
        body["consumers"] = [consumer_brief(c) for c in view.consumers]
    if s.content_type is not None:
        body["content_types"] = {"default": s.content_type}
    return body
