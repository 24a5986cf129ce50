"""The public face of the client: Telemetry and the small handles it gives out."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable, Iterator, Sized
from contextlib import contextmanager
from time import perf_counter_ns
from types import TracebackType
from typing import TYPE_CHECKING, Any, ParamSpec, Self, TypeVar, overload

from exporter.client import _wire as wire
from exporter.client._sender import (
    COUNTER,
    DEFAULT_MAX_SAMPLES,
    HISTOGRAM,
    TIMER,
    Gauge,
    Sender,
    Series,
    Tags,
    clean_tag,
)

if TYPE_CHECKING:
    from exporter.client.integrations import Instrumented

P = ParamSpec("P")
R = TypeVar("R")
F = TypeVar("F", bound=Callable[..., Any])

OK = "ok"
ERROR = "error"
CANCELLED = "cancelled"


class Telemetry:
    """One per process (or per app): records operations, caches, pools and queues, sends to the daemon.

    Args:
        address: where the apm-exporter StatsD listener is: `host:port`, `udp://host:port`
            or `unixgram:///path`. Default: `$APM_STATSD_ADDRESS`, else `127.0.0.1:8125`.
        flush_interval: seconds between sends. Values are aggregated in between.
        max_samples: timer/histogram values per series per flush sent as-is; past it, an
            even subset goes out with its sample rate so counts stay right.
    """

    def __init__(self, address: str | None = None, *, flush_interval: float = 1.0,
                 max_samples: int = DEFAULT_MAX_SAMPLES) -> None:
        self._sender = Sender(address, flush_interval, max_samples)
        self._timers: dict[tuple[str, Tags], _TimerSeries] = {}

    def __repr__(self) -> str:
        return f"Telemetry(address={self._sender.transport.address!r})"

    # --- operations ----------------------------------------------------------------
    def timed(self, operation: str, **labels: str) -> Timed:
        """Time a function (sync or async) or a `with` block as `operation`.

        The outcome is `ok`, `error` when an exception escapes (re-raised untouched), or
        `cancelled` for BaseExceptions such as asyncio.CancelledError and KeyboardInterrupt.
        Extra `labels` travel as DogStatsD tags; the built-in conventions ignore them.
        """
        return Timed(self._timer_series(operation, labels))

    def record(self, operation: str, seconds: float, outcome: str = OK, **labels: str) -> None:
        """Record an operation timed elsewhere (a span, a log line, another thread)."""
        series = self._timer_series(operation, labels)
        target = series.ok if outcome == OK else series.error if outcome == ERROR else \
            self._sender.series(wire.OPERATION, TIMER, _op_tags(operation, outcome, labels))
        target.values.append(round(seconds * 1e9))

    def _timer_series(self, operation: str, labels: dict[str, str]) -> _TimerSeries:
        key = (operation, tuple(sorted(labels.items())) if labels else ())
        found = self._timers.get(key)
        if found is None:
            for reserved in ("operation", "outcome"):
                if reserved in labels:
                    raise ValueError(f"{reserved!r} is set by timed() itself")
            found = self._timers.setdefault(key, _TimerSeries(
                self._sender.series(wire.OPERATION, TIMER, _op_tags(operation, OK, labels)),
                self._sender.series(wire.OPERATION, TIMER, _op_tags(operation, ERROR, labels)),
                self._sender.series(wire.OPERATION, TIMER, _op_tags(operation, CANCELLED, labels)),
            ))
        return found

    # --- caches, pools, queues, batches ----------------------------------------------
    def cache(self, name: str, level: str = "") -> Cache:
        """Counters and gauges for a hand-written cache (or one level of a multi-level cache)."""
        return Cache(self._sender, name, level)

    def pool(self, name: str) -> Pool:
        """Gauges, wait times and timeouts for a hand-written connection pool."""
        return Pool(self._sender, name)

    def queue(self, name: str) -> Queue:
        """Depth of a work queue, set by hand."""
        return Queue(self._sender, name)

    def batch(self, queue: str, items: int | Sized) -> Batch:
        """Context manager around processing one batch: size, duration, items ok and failed."""
        return Batch(self._sender, queue, items if isinstance(items, int) else len(items))

    # --- integrations (exporter.client.integrations; third-party imports stay lazy) -------
    @overload
    def instrument_lru_cache(self, func: F, cache: str | None = None, level: str = "") -> F: ...
    @overload
    def instrument_lru_cache(self, func: str, cache: None = None, level: str = "") -> Callable[[F], F]: ...

    def instrument_lru_cache(self, func: Any, cache: str | None = None, level: str = "") -> Any:
        """Report a `functools.lru_cache` function's hits, misses, evictions, size, capacity.

        `tm.instrument_lru_cache(fn, "users")`, or as a decorator above `@lru_cache`:
        `@tm.instrument_lru_cache("users")` (bare, the cache is named after the function).
        """
        from exporter.client import integrations

        if isinstance(func, str):
            name = func
            return lambda fn: integrations.lru_cache(self, fn, name, level)
        return integrations.lru_cache(self, func, cache, level)

    def instrument_cachetools(self, obj: Any, cache: str, level: str = "") -> Any:
        """Report a `cachetools` cache instance's hits, misses, evictions, size and capacity."""
        from exporter.client import integrations

        return integrations.cachetools(self, obj, cache, level)

    def instrument_sqlalchemy(self, engine: Any, pool: str) -> Instrumented:
        """Report a SQLAlchemy engine's pool: connections, overflow, wait time, timeouts."""
        from exporter.client import integrations

        return integrations.sqlalchemy(self, engine, pool)

    def instrument_psycopg_pool(self, pool_obj: Any, pool: str) -> Instrumented:
        """Report a psycopg_pool ConnectionPool or AsyncConnectionPool."""
        from exporter.client import integrations

        return integrations.psycopg_pool(self, pool_obj, pool)

    def instrument_redis(self, client_or_pool: Any, pool: str) -> Instrumented:
        """Report a redis-py (sync or asyncio) client's connection pool."""
        from exporter.client import integrations

        return integrations.redis(self, client_or_pool, pool)

    def instrument_queue(self, obj: Any, queue: str) -> Instrumented:
        """Report the depth of a queue.Queue, asyncio.Queue, ThreadPoolExecutor or anything sized."""
        from exporter.client import integrations

        return integrations.queue_depth(self, obj, queue)

    # --- lifecycle -------------------------------------------------------------------
    def flush(self) -> None:
        """Send what is pending now (it is also sent every flush_interval and at exit)."""
        self._sender.flush()

    def close(self) -> None:
        """Flush and take this process's gauge contributions back. Runs at exit by itself."""
        self._sender.close()

    def stats(self) -> dict[str, int]:
        """The client's own counters: datagrams and bytes sent, send and poll errors."""
        return dict(self._sender.stats)


def _op_tags(operation: str, outcome: str, labels: dict[str, str]) -> Tags:
    extra = tuple((clean_tag(k), clean_tag(v)) for k, v in sorted(labels.items()))
    return (("operation", clean_tag(operation)), ("outcome", outcome)) + extra


class _TimerSeries:
    __slots__ = ("cancelled", "error", "ok")

    def __init__(self, ok: Series, error: Series, cancelled: Series) -> None:
        self.ok, self.error, self.cancelled = ok, error, cancelled


class Timed:
    """What `tm.timed(...)` returns: a decorator, or a one-shot (async) context manager.

    As a context manager it holds its start time, so use a fresh `tm.timed(...)` per
    block (as with prometheus_client's `Histogram.time()`); the decorator is reusable.
    """

    __slots__ = ("_series", "_t0")

    def __init__(self, series: _TimerSeries) -> None:
        self._series = series
        self._t0 = 0

    @overload
    def __call__(self, fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]: ...
    @overload
    def __call__(self, fn: Callable[P, R]) -> Callable[P, R]: ...

    def __call__(self, fn: Callable[P, Any]) -> Callable[P, Any]:
        if inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn):
            raise TypeError(f"{fn.__qualname__} is a generator: time the code that consumes it instead")
        ok = self._series.ok.values.append
        err = self._series.error.values.append
        cancel = self._series.cancelled.values.append
        clock = perf_counter_ns

        if inspect.iscoroutinefunction(fn):
            @functools.wraps(fn)
            async def timed_async(*args: P.args, **kwargs: P.kwargs) -> Any:
                t0 = clock()
                try:
                    result = await fn(*args, **kwargs)
                except Exception:
                    err(clock() - t0)
                    raise
                except BaseException:
                    cancel(clock() - t0)
                    raise
                ok(clock() - t0)
                return result

            return timed_async

        # The hot path: two clock reads and one list.append, nothing else.
        @functools.wraps(fn)
        def timed_sync(*args: P.args, **kwargs: P.kwargs) -> Any:
            t0 = clock()
            try:
                result = fn(*args, **kwargs)
            except Exception:
                err(clock() - t0)
                raise
            except BaseException:
                cancel(clock() - t0)
                raise
            ok(clock() - t0)
            return result

        return timed_sync

    def __enter__(self) -> None:
        self._t0 = perf_counter_ns()

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        elapsed = perf_counter_ns() - self._t0
        if et is None:
            self._series.ok.values.append(elapsed)
        elif issubclass(et, Exception):
            self._series.error.values.append(elapsed)
        else:
            self._series.cancelled.values.append(elapsed)

    async def __aenter__(self) -> None:
        self.__enter__()

    async def __aexit__(self, et: type[BaseException] | None, ev: BaseException | None,
                        tb: TracebackType | None) -> None:
        self.__exit__(et, ev, tb)


class Cache:
    """One cache, or one level of a multi-level cache (`level="l1"`, `"l2"`, ...).

    `promotion()` counts an entry copied into this level from a slower one.
    """

    def __init__(self, sender: Sender, name: str, level: str = "") -> None:
        self._sender = sender
        self.tags: Tags = (("cache", clean_tag(name)),) + ((("level", clean_tag(level)),) if level else ())
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
        self.tags: Tags = (("pool", clean_tag(name)),)
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

    @contextmanager
    def waiting(self, timeout_errors: tuple[type[BaseException], ...] = (TimeoutError,)) -> Iterator[None]:
        """Wrap the code that gets a connection: counts it pending, times it, counts timeouts."""
        pending = self.pending_gauge
        pending.add(1)
        t0 = perf_counter_ns()
        try:
            yield
        except timeout_errors:
            self._timeouts(1)
            raise
        finally:
            self._waits(perf_counter_ns() - t0)
            pending.add(-1)


class Queue:
    """Depth of one work queue, set by hand (see Telemetry.instrument_queue to poll it)."""

    def __init__(self, sender: Sender, name: str) -> None:
        self.tags: Tags = (("queue", clean_tag(name)),)
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
        tags: Tags = (("queue", clean_tag(queue)),)
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
        s.series(wire.BATCH_ITEMS, COUNTER, tags + (("outcome", OK),)).values.append(self.size - failed)
        s.series(wire.BATCH_ITEMS, COUNTER, tags + (("outcome", ERROR),)).values.append(failed)

    async def __aenter__(self) -> Self:
        return self.__enter__()

    async def __aexit__(self, et: type[BaseException] | None, ev: BaseException | None,
                        tb: TracebackType | None) -> None:
        self.__exit__(et, ev, tb)
