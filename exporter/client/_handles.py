"""The handles Telemetry gives out for caches, pools, queues and batches (docs/client.md)."""

from __future__ import annotations

from collections.abc import Callable
from time import perf_counter_ns
from types import TracebackType
from typing import Self

from exporter import wire
from exporter.client._sender import (
    COUNTER,
    HISTOGRAM,
    TIMER,
    Gauge,
    Sender,
    Tags,
    clean_tag,
)


class Cache:
    """One cache, or one level of a multi-level cache (`level="l1"`, `"l2"`, ...).

    `promotion()` counts an entry copied into this level from a slower one.
    """

    def __init__(self, sender: Sender, name: str, level: str = "") -> None:
        self._sender = sender
        self.tags: Tags = ((wire.TAG_CACHE, clean_tag(name)),) + (((wire.TAG_LEVEL, clean_tag(level)),) if level else ())
        self._hits = sender.series(wire.CACHE_HIT, COUNTER, self.tags).values.append
        self._misses = sender.series(wire.CACHE_MISS, COUNTER, self.tags).values.append
        self._evictions = sender.series(wire.CACHE_EVICTION, COUNTER, self.tags).values.append
        self._promotions: Callable[[int], None] | None = None
        self._entries: Gauge | None = None
        self._capacity: Gauge | None = None

    def hit(self, n: int = 1) -> None:
        self._hits(n)

    def miss(self, n: int = 1) -> None:
        self._misses(n)

    def eviction(self, n: int = 1) -> None:
        self._evictions(n)

    def promotion(self, n: int = 1) -> None:
        if self._promotions is None:  # only multi-level caches have this series
            self._promotions = self._sender.series(wire.CACHE_PROMOTION, COUNTER, self.tags).values.append
        self._promotions(n)

    def size(self, entries: int) -> None:
        """Entries held now (this process's)."""
        self.entries_gauge().set(entries)

    def capacity(self, entries: int) -> None:
        """Most entries held before evicting (this process's)."""
        self.capacity_gauge().set(entries)

    def entries_gauge(self) -> Gauge:
        if self._entries is None:
            self._entries = self._sender.gauge(wire.CACHE_ENTRIES, self.tags)
        return self._entries

    def capacity_gauge(self) -> Gauge:
        if self._capacity is None:
            self._capacity = self._sender.gauge(wire.CACHE_CAPACITY, self.tags)
        return self._capacity


class Pool:
    """One connection pool. Gauges are this process's view; the daemon sums processes."""

    def __init__(self, sender: Sender, name: str) -> None:
        self._sender = sender
        self.tags: Tags = ((wire.TAG_POOL, clean_tag(name)),)
        self.active_gauge = sender.gauge(wire.POOL_ACTIVE, self.tags)
        self.idle_gauge = sender.gauge(wire.POOL_IDLE, self.tags)
        self.pending_gauge = sender.gauge(wire.POOL_PENDING, self.tags, reset_on_fork=True)
        self._max: Gauge | None = None
        self._waits = sender.series(wire.POOL_WAIT, TIMER, self.tags).values.append
        self._timeouts = sender.series(wire.POOL_TIMEOUT, COUNTER, self.tags).values.append

    def set(self, *, active: int | None = None, idle: int | None = None, max: int | None = None,
            pending: int | None = None) -> None:
        """Set any of the pool's gauges; the ones left out keep their value."""
        if active is not None:
            self.active_gauge.set(active)
        if idle is not None:
            self.idle_gauge.set(idle)
        if pending is not None:
            self.pending_gauge.set(pending)
        if max is not None:
            self.max_gauge().set(max)

    def max_gauge(self) -> Gauge:
        """Created on first use: a pool without a limit reports no max."""
        if self._max is None:
            self._max = self._sender.gauge(wire.POOL_MAX, self.tags)
        return self._max

    def wait(self, seconds: float) -> None:
        """Record one wait for a connection."""
        self._waits(round(seconds * 1e9))

    def timeout(self, n: int = 1) -> None:
        """Count requests that gave up waiting for a connection."""
        self._timeouts(n)

    def waiting(self, timeout_errors: tuple[type[BaseException], ...] = (TimeoutError,)) -> Checkout:
        """Wrap the code that gets a connection: counts it pending, times it, counts timeouts."""
        return Checkout(self, lambda e: isinstance(e, timeout_errors))


class Checkout:
    """One wait for a connection (`with pool.waiting():`, or a wrapped checkout method):
    pending while it lasts, timed, and a timeout when what escapes `is_timeout`."""

    __slots__ = ("_is_timeout", "_pool", "_t0")

    def __init__(self, pool: Pool, is_timeout: Callable[[BaseException], bool]) -> None:
        self._pool = pool
        self._is_timeout = is_timeout
        self._t0 = 0

    def __enter__(self) -> None:
        self._pool.pending_gauge.add(1)
        self._t0 = perf_counter_ns()

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        pool = self._pool
        if ev is not None and self._is_timeout(ev):
            pool._timeouts(1)
        pool._waits(perf_counter_ns() - self._t0)
        pool.pending_gauge.add(-1)


class Queue:
    """Depth of one work queue, set by hand (see Telemetry.instrument_queue to poll it)."""

    def __init__(self, sender: Sender, name: str) -> None:
        self.tags: Tags = ((wire.TAG_QUEUE, clean_tag(name)),)
        self.depth_gauge = sender.gauge(wire.QUEUE_DEPTH, self.tags)

    def depth(self, items: int) -> None:
        self.depth_gauge.set(items)

    def add(self, items: int = 1) -> None:
        """Relative change, for queues whose producers and consumers count as they go."""
        self.depth_gauge.add(items)


class Batch:
    """One batch: its size, how long it took, and how many items succeeded or failed.

    Items not marked failed count as ok when the block ends normally; if an exception
    escapes, the whole batch counts as failed and the exception propagates.
    """

    def __init__(self, sender: Sender, queue: str, size: int) -> None:
        tags: Tags = ((wire.TAG_QUEUE, clean_tag(queue)),)
        self._sender = sender
        self._tags = tags
        self.size = size
        self.failed = 0
        self._t0 = 0

    def fail(self, n: int = 1) -> None:
        """Mark n items of this batch as failed."""
        self.failed += n

    def __enter__(self) -> Self:
        self._t0 = perf_counter_ns()
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        elapsed = perf_counter_ns() - self._t0
        s, tags = self._sender, self._tags
        s.series(wire.BATCH_SIZE, HISTOGRAM, tags).values.append(self.size)
        s.series(wire.BATCH_DURATION, TIMER, tags).values.append(elapsed)
        failed = self.size if et is not None else min(self.failed, self.size)
        s.series(wire.BATCH_ITEMS, COUNTER, tags + ((wire.TAG_OUTCOME, wire.OK),)).values.append(self.size - failed)
        s.series(wire.BATCH_ITEMS, COUNTER, tags + ((wire.TAG_OUTCOME, wire.ERROR),)).values.append(failed)

    async def __aenter__(self) -> Self:
        return self.__enter__()

    async def __aexit__(self, et: type[BaseException] | None, ev: BaseException | None,
                        tb: TracebackType | None) -> None:
        self.__exit__(et, ev, tb)
