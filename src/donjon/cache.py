"""One bounded, thread-safe cache whose entries expire: project KEKs and validated tokens.

Over ``cachetools.TLRUCache`` (each entry has its own time to live, e.g. a token's remaining validity): the
cache holds at most ``maxsize`` entries (the least recently used live one goes first, after every expired
one), and each access drops the entries that have expired, so a value (a KEK's bytes, a caller) is not kept
past its TTL by a cache in use; ``expire()`` sweeps one that sits idle. Python cannot wipe ``bytes``:
dropping the last reference is what we can do.

The clock is injectable (``timer``, seconds, monotonic) so that tests move time instead of sleeping.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from cachetools import TLRUCache

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


@dataclass(frozen=True)
class _Entry(Generic[V]):
    value: V = field(repr=False)  # a cached KEK is key bytes: never in a repr
    ttl: float
    deadline: float  # the timer's value at which the entry expires


class ExpiringCache(Generic[K, V]):
    """At most ``maxsize`` entries, each kept ``ttl`` seconds (or less, per ``put``)."""

    def __init__(self, *, maxsize: int, ttl: float, timer: Callable[[], float] = time.monotonic) -> None:
        if maxsize < 1:
            raise ValueError("a cache holds at least one entry")
        self._ttl = ttl
        self._timer = timer
        self._lock = threading.Lock()  # cachetools' caches are not thread-safe
        self._entries: TLRUCache[K, _Entry[V]] = TLRUCache(maxsize=maxsize, ttu=self._expiry, timer=timer)

    def __repr__(self) -> str:
        return f"ExpiringCache(maxsize={self.maxsize}, ttl={self._ttl}, size={len(self)})"

    @staticmethod
    def _expiry(_key: K, entry: _Entry[V], now: float) -> float:
        return now + entry.ttl

    @property
    def maxsize(self) -> int:
        return int(self._entries.maxsize)

    def get(self, key: K) -> V | None:
        with self._lock:
            self._entries.expire()
            entry = self._entries.get(key)
        return entry.value if entry is not None else None

    def put(self, key: K, value: V, ttl: float | None = None) -> None:
        """Keep ``value`` for ``ttl`` seconds, never more than the cache's own TTL; a TTL <= 0 keeps nothing."""
        ttl = self._ttl if ttl is None else min(ttl, self._ttl)
        with self._lock:
            if ttl <= 0:
                self._entries.pop(key, None)
                self._entries.expire()
                return
            # Expires the stale entries, then evicts past maxsize.
            self._entries[key] = _Entry(value, ttl, self._timer() + ttl)

    def time_left(self, key: K) -> float:
        """Seconds until ``key``'s entry expires; 0 if there is none (another cache's entries can be bounded
        by it: a value derived from this one's is kept no longer than it)."""
        with self._lock:
            self._entries.expire()
            entry = self._entries.get(key)
            return max(0.0, entry.deadline - self._timer()) if entry is not None else 0.0

    def expire(self) -> None:
        """Drop the expired entries now (a periodic sweep, for a cache that may sit unused)."""
        with self._lock:
            self._entries.expire()

    def pop(self, key: K) -> None:
        with self._lock:
            self._entries.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        """Live entries only (expired ones are dropped first)."""
        with self._lock:
            self._entries.expire()
            return len(self._entries)
