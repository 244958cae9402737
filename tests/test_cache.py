"""donjon.cache: entries leave the cache when they expire, and the cache never holds more than its bound."""

from __future__ import annotations

import gc
import weakref

import pytest

from donjon.cache import ExpiringCache


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Value:
    """Weak-referenceable, so a test can see that the cache let go of it."""


def test_an_expired_entry_is_dropped_not_only_hidden() -> None:
    clock = Clock()
    cache: ExpiringCache[str, Value] = ExpiringCache(maxsize=10, ttl=60, timer=clock)
    value = Value()
    ref = weakref.ref(value)
    cache.put("k", value)
    del value
    clock.now += 59.9
    assert cache.get("k") is ref()
    clock.now += 0.1
    cache.expire()
    gc.collect()
    assert ref() is None  # nothing in the cache refers to the value any more
    assert cache.get("k") is None and len(cache) == 0


def test_any_access_drops_every_expired_entry() -> None:
    clock = Clock()
    cache: ExpiringCache[str, int] = ExpiringCache(maxsize=10, ttl=10, timer=clock)
    cache.put("old", 1)
    clock.now += 5
    cache.put("young", 2)
    clock.now += 5  # "old" is due, "young" has 5 s left
    assert cache.get("young") == 2
    assert len(cache) == 1 and cache.get("old") is None


def test_an_entry_lives_its_own_ttl_capped_by_the_cache_ttl() -> None:
    clock = Clock()
    cache: ExpiringCache[str, int] = ExpiringCache(maxsize=10, ttl=60, timer=clock)
    cache.put("short", 1, ttl=5)  # e.g. a token with 5 s of validity left
    cache.put("long", 2, ttl=3600)  # never trusted beyond the cache's own 60 s
    clock.now += 5
    assert cache.get("short") is None and cache.get("long") == 2
    clock.now += 55
    assert cache.get("long") is None


@pytest.mark.parametrize("ttl", [0, -3])
def test_a_ttl_of_zero_or_less_keeps_nothing(ttl: float) -> None:
    cache: ExpiringCache[str, int] = ExpiringCache(maxsize=10, ttl=60, timer=Clock())
    cache.put("k", 1)
    cache.put("k", 2, ttl=ttl)  # an already expired token replaces nothing with a stale entry
    assert cache.get("k") is None and len(cache) == 0
    disabled: ExpiringCache[str, int] = ExpiringCache(maxsize=10, ttl=ttl, timer=Clock())
    disabled.put("k", 1)
    assert disabled.get("k") is None


def test_the_bound_drops_the_least_recently_used_entry() -> None:
    cache: ExpiringCache[int, str] = ExpiringCache(maxsize=3, ttl=60, timer=Clock())
    for i in range(3):
        cache.put(i, str(i))
    assert cache.get(0) == "0"  # 1 is now the least recently used
    cache.put(3, "3")
    assert len(cache) == 3
    assert cache.get(1) is None
    assert [cache.get(i) for i in (0, 2, 3)] == ["0", "2", "3"]
    for i in range(100, 200):
        cache.put(i, str(i))
    assert len(cache) == 3


def test_expired_entries_go_before_a_live_one_is_evicted() -> None:
    clock = Clock()
    cache: ExpiringCache[str, int] = ExpiringCache(maxsize=2, ttl=60, timer=clock)
    cache.put("live", 1)
    cache.put("brief", 2, ttl=1)
    clock.now += 2
    cache.put("new", 3)
    assert cache.get("live") == 1 and cache.get("new") == 3


def test_pop_clear_and_repr() -> None:
    cache: ExpiringCache[str, bytes] = ExpiringCache(maxsize=4, ttl=60, timer=Clock())
    cache.put("a", b"key bytes")
    cache.put("b", b"more key bytes")
    assert "key bytes" not in repr(cache)
    cache.pop("a")
    cache.pop("missing")
    assert cache.get("a") is None and cache.get("b") == b"more key bytes"
    cache.clear()
    assert len(cache) == 0
    with pytest.raises(ValueError):
        ExpiringCache(maxsize=0, ttl=1)
