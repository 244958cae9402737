"""What the services are asked to do: typed commands, built by an API from its wire format.

A service never sees a request body or a header; each API (Barbican v1, Vault) validates its own wire
format and hands one of these over.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from donjon.storage.containers import ContainerSecret

# A secret in a container as a request names it is the row storage keeps: one type serves both.
ContainerSecretRef = ContainerSecret


@dataclass(frozen=True)
class NewSecret:
    name: str | None = None
    secret_type: str = "opaque"
    algorithm: str | None = None
    bit_length: int | None = None
    mode: str | None = None
    expiration: datetime | None = None
    content_type: str | None = None
    payload: bytes | None = field(default=None, repr=False)
    # donjon extension: the payload is served this many times, then deleted.
    max_reads: int | None = None


@dataclass(frozen=True)
class AclChange:
    """A read ACL's new state; None leaves a field as it is (PATCH) or gives it its default (PUT)."""

    project_access: bool | None
    users: list[str] | None


@dataclass(frozen=True)
class QuotaChange:
    """A project's quota overrides: resource -> limit (negative: unlimited, 0: disabled)."""

    values: dict[str, int]


@dataclass(frozen=True)
class NewConsumer:
    """A secret consumer, as registered and as removed."""

    service: str
    resource_type: str
    resource_id: str


@dataclass(frozen=True)
class Metadatum:
    """One user metadata item: the key lower-cased (keys are case-insensitive), the value as given."""

    key: str
    value: str


@dataclass(frozen=True)
class NewOrder:
    type: str
    meta: dict[str, Any]  # as stored and shown back: never holds a passphrase
    passphrase: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class NewContainer:
    name: str | None
    type: str
    refs: list[ContainerSecretRef]


@dataclass(frozen=True)
class NewPayload:
    """A payload to store, decoded: its normalised content type and its bytes."""

    content_type: str
    data: bytes = field(repr=False)


class PayloadFormat(Protocol):
    """How the API answers with a payload, chosen from its request (the Barbican API: the Accept header).

    Services call ``choose`` before opening a payload and ``render`` on its bytes, inside the transaction
    that spends a limited read, so a refusal (406) spends nothing.
    """

    def choose(self, stored: str) -> str:
        """The content type to answer with for a payload stored as ``stored``; raises NotAcceptable."""
        ...

    def render(self, payload: bytes, chosen: str) -> bytes:
        """The response body for ``chosen``; raises NotAcceptable when the payload cannot be that type."""
        ...


@dataclass(frozen=True)
class PayloadUpload:
    """The second step of a two-step secret: the body as sent, its media type (lower-case, no parameters)
    and its content encoding (lower-case; empty when none). The service decodes it only after its own checks
    (a retried PUT learns "already has data" whatever it sends)."""

    media_type: str
    data: bytes = field(repr=False)
    encoding: str = ""


def no_intent() -> None:
    """The default ``before_effect`` of a read that may spend something: nobody needs to be told first."""
    return None
