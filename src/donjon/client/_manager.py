"""The one key-manager interface every backend implements, and what they share."""

from __future__ import annotations

import builtins
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Protocol, runtime_checkable

from donjon.client import _generate
from donjon.client._errors import Conflict, InvalidRequest, NotSupported
from donjon.client._objects import ManagedObject, ObjectInfo, build


@dataclass(frozen=True)
class Consumer:
    """A service using an object (Barbican's consumers): deletion is refused while one is registered."""

    service: str
    resource_type: str
    resource_id: str


@runtime_checkable
class KeyManager(Protocol):
    """Keys and other managed objects in one backend, whatever it is.

    >>> from donjon.client import SymmetricKey, open_key_manager
    >>> with open_key_manager({"type": "donjon", "url": "http://127.0.0.1:9311", "project_id": "demo"}) as km:
    ...     key_id = km.create_key(algorithm="aes", bit_length=256, name="disk")
    ...     key = km.get(key_id)             # SymmetricKey(name='disk', ...), bytes not shown
    ...     for info in km.list(SymmetricKey):
    ...         print(info.id, info.name)
    ...     km.delete(key_id)

    Identifiers are the backend's own strings. Every method raises the SDK's errors (``donjon.client.NotFound``,
    ``Forbidden``, ``BackendError``...), never a library's.
    """

    backend: str

    def create_key(
        self,
        *,
        algorithm: str = "aes",
        bit_length: int = 256,
        name: str | None = None,
        expiration: datetime | None = None,
    ) -> str:
        """Generate a symmetric key in the backend (or, where it cannot, here) and store it; return its id.

        ``expiration`` (timezone-aware): past it the backend no longer serves the object. Backends that cannot
        enforce it raise ``NotSupported`` and store nothing.
        """
        ...

    def create_key_pair(
        self,
        *,
        algorithm: str = "rsa",
        bit_length: int = 2048,
        name: str | None = None,
        expiration: datetime | None = None,
    ) -> tuple[str, str]:
        """Generate a key pair; return ``(private_id, public_id)``. Keys are PEM (PKCS#8, SubjectPublicKeyInfo)."""
        ...

    def store(self, obj: ManagedObject, *, expiration: datetime | None = None) -> str:
        """Store ``obj`` (its bytes exactly) and return the new id."""
        ...

    def get(self, object_id: str) -> ManagedObject:
        """The object with its bytes, as the type it was stored as. ``NotFound`` if there is none."""
        ...

    def delete(self, object_id: str, *, force: bool = False) -> None:
        """Delete it. With consumers registered, ``Conflict`` unless ``force``."""
        ...

    def list(self, object_type: type[ManagedObject] | str | None = None) -> Iterator[ObjectInfo]:
        """Every object (of one type if given), all pages, metadata only."""
        ...

    def add_consumer(self, object_id: str, consumer: Consumer) -> None:
        """Register a consumer (``NotSupported`` where the backend has none)."""
        ...

    def remove_consumer(self, object_id: str, consumer: Consumer) -> None:
        """Remove a consumer (``NotSupported`` where the backend has none)."""
        ...

    def list_consumers(self, object_id: str) -> builtins.list[Consumer]:
        """The object's consumers (``NotSupported`` where the backend has none)."""
        ...

    def close(self) -> None:
        """Release connections and sessions."""
        ...

    def __enter__(self) -> KeyManager: ...

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...


class BaseKeyManager:
    """What every backend shares: the public creation methods, which check their arguments once and call the
    backend's ``_create_key``, ``_create_key_pair`` and ``_store``; ``NotSupported`` consumers (a backend with
    consumers overrides them); the context manager.
    """

    backend = "base"
    # Whether the backend enforces an expiration. If not, asking for one is NotSupported before anything is
    # stored (rather than keeping the object forever), and the backend's methods always get None.
    expires = False

    def create_key(
        self,
        *,
        algorithm: str = "aes",
        bit_length: int = 256,
        name: str | None = None,
        expiration: datetime | None = None,
    ) -> str:
        return self._create_key(algorithm, bit_length, name, self._expiration(expiration))

    def create_key_pair(
        self,
        *,
        algorithm: str = "rsa",
        bit_length: int = 2048,
        name: str | None = None,
        expiration: datetime | None = None,
    ) -> tuple[str, str]:
        return self._create_key_pair(algorithm, bit_length, name, self._expiration(expiration))

    def store(self, obj: ManagedObject, *, expiration: datetime | None = None) -> str:
        if obj.id is not None:
            raise Conflict("this object already has an id: store a copy without one")
        return self._store(obj, self._expiration(expiration))

    def _expiration(self, expiration: datetime | None) -> datetime | None:
        """``expiration`` in UTC for a backend that enforces it; ``NotSupported`` for one that cannot."""
        if expiration is None:
            return None
        if not self.expires:
            raise NotSupported(f"the {self.backend} backend cannot expire objects (the donjon backend can)")
        if expiration.tzinfo is None or expiration.utcoffset() is None:
            raise InvalidRequest("expiration must be a timezone-aware datetime")
        return expiration.astimezone(UTC)

    def _create_key(self, algorithm: str, bit_length: int, name: str | None, expiration: datetime | None) -> str:
        raise NotImplementedError

    def _create_key_pair(
        self, algorithm: str, bit_length: int, name: str | None, expiration: datetime | None
    ) -> tuple[str, str]:
        """Generated here, each half stored as any object is; a backend that generates pairs itself overrides this."""
        private, public = _generate.key_pair(algorithm, bit_length)
        private_id = self._store(
            build("private", private, name=name, algorithm=algorithm, bit_length=bit_length), expiration
        )
        public_id = self._store(
            build("public", public, name=name, algorithm=algorithm, bit_length=bit_length), expiration
        )
        return private_id, public_id

    def _store(self, obj: ManagedObject, expiration: datetime | None) -> str:
        raise NotImplementedError

    def add_consumer(self, object_id: str, consumer: Consumer) -> None:
        raise NotSupported(f"the {self.backend} backend has no consumers")

    def remove_consumer(self, object_id: str, consumer: Consumer) -> None:
        raise NotSupported(f"the {self.backend} backend has no consumers")

    def list_consumers(self, object_id: str) -> builtins.list[Consumer]:
        raise NotSupported(f"the {self.backend} backend has no consumers")

    def close(self) -> None:
        pass

    def __enter__(self) -> BaseKeyManager:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
