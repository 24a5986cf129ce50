"""The handles Telemetry gives out for caches, pools, queues and batches (docs/client.md).

While OpenTelemetry is loaded, each counter and timer here takes the current span's trace and
span ids as its exemplar once per flush (`Series.wants_exemplar`), as `timed()` does; without
it, recording a value costs one attribute test more than the bare `list.append`.
"""

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
    Series,
    Tags,
    clean_tag,
)


def _add(series: Series, value: int) -> None:
    """Record a value with an exemplar when one is wanted: for pools and batches, where a call
    more costs little beside what they time (cache hits and misses inline the same test)."""
    series.values.append(value)
    if series.wants_exemplar and value:  # a batch with no failures: no exemplar on its 0
        series.take_exemplar(value)


class Cache:
    """One cache, or one level of a multi-level cache (`level="l1"`, `"l2"`, ...).

    `promotion()` counts an entry copied into this level from a slower one.
    """

    def __init__(self, sender: Sender, name: str, level: str = "") -> None:
        self._sender = sender
        self.tags: Tags = ((wire.TAG_CACHE, clean_tag(name)),) + (((wire.TAG_LEVEL, clean_tag(level)),) if level else ())
        self._hit = sender.series(wire.CACHE_HIT, COUNTER, self.tags)
        self._miss = sender.series(wire.CACHE_MISS, COUNTER, self.tags)
        self._eviction = sender.series(wire.CACHE_EVICTION, COUNTER, self.tags)
        self._hits, self._misses = self._hit.values.append, self._miss.values.append
        self._evictions = self._eviction.values.append
        self._promotion: Series | None = None
        self._entries: Gauge | None = None
        self._capacity: Gauge | None = None

    def hit(self, n: int = 1) -> None:
        self._hits(n)
        if self._hit.wants_exemplar:
            self._hit.take_exemplar(n)

    def miss(self, n: int = 1) -> None:
        self._misses(n)
        if self._miss.wants_exemplar:
            self._miss.take_exemplar(n)

    def eviction(self, n: int = 1) -> None:
        self._evictions(n)
        if self._eviction.wants_exemplar:
            self._eviction.take_exemplar(n)

    def promotion(self, n: int = 1) -> None:
        if self._promotion is None:  # only multi-level caches have this series
            self._promotion = self._sender.series(wire.CACHE_PROMOTION, COUNTER, self.tags)
        _add(self._promotion, n)

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
        self._wait = sender.series(wire.POOL_WAIT, TIMER, self.tags)
        self._timeout = sender.series(wire.POOL_TIMEOUT, COUNTER, self.tags)

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
        _add(self._wait, round(seconds * 1e9))

    def timeout(self, n: int = 1) -> None:
        """Count requests that gave up waiting for a connection."""
        _add(self._timeout, n)

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
            _add(pool._timeout, 1)
        _add(pool._wait, perf_counter_ns() - self._t0)
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
        _add(s.series(wire.BATCH_SIZE, HISTOGRAM, tags), self.size)
        _add(s.series(wire.BATCH_DURATION, TIMER, tags), elapsed)
        failed = self.size if et is not None else min(self.failed, self.size)
        _add(s.series(wire.BATCH_ITEMS, COUNTER, tags + ((wire.TAG_OUTCOME, wire.OK),)), self.size - failed)
        _add(s.series(wire.BATCH_ITEMS, COUNTER, tags + ((wire.TAG_OUTCOME, wire.ERROR),)), failed)

    async def __aenter__(self) -> Self:
        return self.__enter__()

    async def __aexit__(self, et: type[BaseException] | None, ev: BaseException | None,
                        tb: TracebackType | None) -> None:
        self.__exit__(et, ev, tb)
