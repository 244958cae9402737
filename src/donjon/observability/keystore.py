"""A keystore that times its calls: the server's keystore, seen by ``donjon_keystore_*`` metrics."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from donjon.keystores import Keystore, WrappedKey
from donjon.observability import metrics

T = TypeVar("T")


class InstrumentedKeystore:
    """Wraps ``keystore`` (of configured type ``name``); labels carry the type and operation, nothing else."""

    def __init__(self, keystore: Keystore, name: str) -> None:
        self.keystore = keystore
        self.name = name

    def __repr__(self) -> str:
        return f"InstrumentedKeystore({self.keystore!r})"

    def root_key_id(self) -> str:
        return self.keystore.root_key_id()

    def wrap(self, key: bytes, context: bytes) -> WrappedKey:
        return self._timed("wrap", lambda: self.keystore.wrap(key, context))

    def unwrap(self, wrapped: WrappedKey, context: bytes) -> bytes:
        return self._timed("unwrap", lambda: self.keystore.unwrap(wrapped, context))

    def close(self) -> None:
        self.keystore.close()

    def _timed(self, operation: str, call: Callable[[], T]) -> T:
        started = time.perf_counter()
        try:
            return call()
        except Exception as exc:
            # The class name only: a driver's message may quote a key handle or a PIN prompt.
            metrics.KEYSTORE_ERRORS.labels(self.name, operation, type(exc).__name__).inc()
            raise
        finally:
            metrics.KEYSTORE_CALL.labels(self.name, operation).observe(time.perf_counter() - started)
