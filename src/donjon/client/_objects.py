"""Managed objects: immutable typed values. Their bytes are never part of ``repr`` or ``str``.

Every object carries the bytes exactly as stored (no re-encoding: a PEM key comes back PEM, a DER key DER),
its ``name``, and the identifier the backend gave it (``None`` until stored). Keys carry ``algorithm`` and
``bit_length``. ``ObjectInfo`` is what ``KeyManager.list`` yields: the metadata without the bytes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, ClassVar, Literal, TypeVar

ObjectType = Literal["symmetric", "private", "public", "certificate", "passphrase", "opaque"]
OBJECT_TYPES: tuple[ObjectType, ...] = ("symmetric", "private", "public", "certificate", "passphrase", "opaque")

M = TypeVar("M", bound="ManagedObject")


@dataclass(frozen=True, kw_only=True)
class ManagedObject:
    """Base of the six managed object types. ``data`` is compared but never shown."""

    object_type: ClassVar[ObjectType]
    data: bytes = field(repr=False)
    name: str | None = None
    id: str | None = None
    created: datetime | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.data, bytes):
            raise TypeError(f"{type(self).__name__}.data must be bytes, not {type(self.data).__name__}")
        if not self.data:
            raise ValueError(f"{type(self).__name__}.data must not be empty")

    def with_id(self: M, object_id: str, created: datetime | None = None) -> M:
        """A copy carrying the identifier a backend gave it."""
        return replace(self, id=object_id, created=created if created is not None else self.created)

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the bytes, hex, first 16 characters: to tell objects apart without showing them."""
        return hashlib.sha256(self.data).hexdigest()[:16]


@dataclass(frozen=True, kw_only=True)
class _Key(ManagedObject):
    algorithm: str | None = None
    bit_length: int | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.bit_length is not None and (isinstance(self.bit_length, bool) or self.bit_length <= 0):
            raise ValueError("bit_length must be a positive integer")


@dataclass(frozen=True, kw_only=True)
class SymmetricKey(_Key):
    """A secret key (AES, HMAC...): ``data`` is the raw key bytes."""

    object_type: ClassVar[ObjectType] = "symmetric"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.bit_length is None:
            object.__setattr__(self, "bit_length", 8 * len(self.data))


@dataclass(frozen=True, kw_only=True)
class PrivateKey(_Key):
    """A private key, PEM or DER (PKCS#8 or the algorithm's own format) as given."""

    object_type: ClassVar[ObjectType] = "private"


@dataclass(frozen=True, kw_only=True)
class PublicKey(_Key):
    """A public key, PEM or DER (SubjectPublicKeyInfo) as given."""

    object_type: ClassVar[ObjectType] = "public"


@dataclass(frozen=True, kw_only=True)
class Certificate(ManagedObject):
    """An X.509 certificate, PEM or DER as given."""

    object_type: ClassVar[ObjectType] = "certificate"


@dataclass(frozen=True, kw_only=True)
class Passphrase(ManagedObject):
    """A password or passphrase: ``data`` is its bytes (UTF-8 for text)."""

    object_type: ClassVar[ObjectType] = "passphrase"


@dataclass(frozen=True, kw_only=True)
class OpaqueData(ManagedObject):
    """Bytes with no structure the key manager knows about."""

    object_type: ClassVar[ObjectType] = "opaque"


CLASSES: dict[ObjectType, type[ManagedObject]] = {
    cls.object_type: cls for cls in (SymmetricKey, PrivateKey, PublicKey, Certificate, Passphrase, OpaqueData)
}


def build(
    object_type: str,
    data: bytes,
    *,
    name: str | None = None,
    object_id: str | None = None,
    algorithm: str | None = None,
    bit_length: int | None = None,
    created: datetime | None = None,
) -> ManagedObject:
    """The managed object of ``object_type`` (unknown types become ``OpaqueData``)."""
    cls: type[ManagedObject] = CLASSES.get(object_type, OpaqueData)  # type: ignore[call-overload]
    if issubclass(cls, _Key):
        key: ManagedObject = cls(
            data=data, name=name, id=object_id, created=created, algorithm=algorithm, bit_length=bit_length
        )
        return key
    obj: ManagedObject = cls(data=data, name=name, id=object_id, created=created)
    return obj


def stored_time(value: object) -> datetime | None:
    """A creation time a backend keeps beside the object as ISO-8601 text; None if absent or unreadable (an
    object written by another tool still reads)."""
    try:
        return datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


@dataclass(frozen=True)
class ObjectInfo:
    """A managed object's metadata, as ``KeyManager.list`` yields it (no bytes)."""

    id: str
    object_type: ObjectType
    name: str | None = None
    algorithm: str | None = None
    bit_length: int | None = None
    created: datetime | None = None
    expiration: datetime | None = None  # set where the backend expires objects (donjon, Barbican)


def stored_info(object_id: str, record: Mapping[str, Any]) -> ObjectInfo:
    """An object's metadata from the record a backend keeps beside it (``type``, ``name``, ``algorithm``,
    ``bit_length``, ``created``)."""
    return ObjectInfo(
        id=object_id,
        object_type=record["type"],
        name=record.get("name"),
        algorithm=record.get("algorithm"),
        bit_length=record.get("bit_length"),
        created=stored_time(record.get("created")),
    )


def with_data(info: ObjectInfo, data: bytes) -> ManagedObject:
    """The object ``info`` describes, holding ``data``: what a backend's ``get`` returns."""
    return build(
        str(info.object_type),
        data,
        name=info.name,
        object_id=info.id,
        algorithm=info.algorithm,
        bit_length=info.bit_length,
        created=info.created,
    )


def type_name(object_type: type[ManagedObject] | str | None) -> ObjectType | None:
    """``SymmetricKey`` or ``"symmetric"`` -> ``"symmetric"``; ``None`` stays ``None``."""
    if object_type is None:
        return None
    if isinstance(object_type, str):
        if object_type not in OBJECT_TYPES:
            raise ValueError(f"unknown object type {object_type!r}; one of {', '.join(OBJECT_TYPES)}")
        return object_type
    if isinstance(object_type, type) and issubclass(object_type, ManagedObject) and object_type is not ManagedObject:
        return object_type.object_type
    raise TypeError(f"not a managed object type: {object_type!r}")
