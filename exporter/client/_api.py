"""The public face of the client: Telemetry, and Timed for operations (other handles: _handles.py)."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable, Sized
from time import perf_counter_ns
from types import TracebackType
from typing import Any, ParamSpec, TypeVar, overload

from exporter import wire
from exporter.client import _exemplars, integrations
from exporter.client._handles import Batch, Cache, Pool, Queue
from exporter.client._sender import (
    DEFAULT_MAX_SAMPLES,
    TIMER,
    Sender,
    Series,
    Tags,
    clean_tag,
)
from exporter.client.integrations import Instrumented

P = ParamSpec("P")
R = TypeVar("R")
F = TypeVar("F", bound=Callable[..., Any])

OK, ERROR, CANCELLED = wire.OK, wire.ERROR, wire.CANCELLED


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
    def timed(self, operation: str, exemplar: dict[str, str] | None = None, **labels: str) -> Timed:
        """Time a function (sync or async) or a `with` block as `operation`.

        The outcome is `ok`, `error` when an exception escapes (re-raised untouched), or
        `cancelled` for BaseExceptions such as asyncio.CancelledError and KeyboardInterrupt.
        Extra `labels` travel as DogStatsD tags; the built-in conventions ignore them.
        While OpenTelemetry is in use, the current span's trace and span ids become the
        exemplar of one observation per series and flush; a `with` block may give its own,
        `exemplar={"trace_id": ..., "span_id": ...}` (the span id is optional).
        """
        return Timed(self._timer_series(operation, labels), _exemplars.explicit(exemplar))

    def record(self, operation: str, seconds: float, outcome: str = OK, exemplar: dict[str, str] | None = None,
               **labels: str) -> None:
        """Record an operation timed elsewhere (a span, a log line, another thread);
        `exemplar={"trace_id": ..., "span_id": ...}` links this observation to its trace."""
        series = self._timer_series(operation, labels)
        target = series.ok if outcome == OK else series.error if outcome == ERROR else \
            self._sender.series(wire.OPERATION, TIMER, _op_tags(operation, outcome, labels))
        value = round(seconds * 1e9)
        target.values.append(value)
        tags = _exemplars.explicit(exemplar)
        if tags:
            target.exemplar = (value, tags)


    def _timer_series(self, operation: str, labels: dict[str, str]) -> _TimerSeries:
        key = (operation, tuple(sorted(labels.items())) if labels else ())
        found = self._timers.get(key)
        if found is None:
            for reserved in (wire.TAG_OPERATION, wire.TAG_OUTCOME):
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
    # Each takes the handle it reports through and where to register its polled source.
    @overload
    def instrument_lru_cache(self, func: F, cache: str | None = None, level: str = "") -> F: ...
    @overload
    def instrument_lru_cache(self, func: str, cache: None = None, level: str = "") -> Callable[[F], F]: ...

    def instrument_lru_cache(self, func: Any, cache: str | None = None, level: str = "") -> Any:
        """Report a `functools.lru_cache` function's hits, misses, evictions, size, capacity.

        `tm.instrument_lru_cache(fn, "users")`, or as a decorator above `@lru_cache`:
        `@tm.instrument_lru_cache("users")` (bare, the cache is named after the function).
        """
        if isinstance(func, str):
            name = func
            return lambda fn: self.instrument_lru_cache(fn, name, level)
        return integrations.lru_cache(self._sender.add_source, func, lambda name: self.cache(name, level), cache)

    def instrument_cachetools(self, obj: Any, cache: str, level: str = "") -> Any:
        """Report a `cachetools` cache instance's hits, misses, evictions, size and capacity."""
        return integrations.cachetools(self._sender.add_source, obj, lambda: self.cache(cache, level))

    def instrument_sqlalchemy(self, engine: Any, pool: str) -> Instrumented:
        """Report a SQLAlchemy engine's pool: connections, overflow, wait time, timeouts."""
        return integrations.sqlalchemy(self._sender.add_source, engine, self.pool(pool))

    def instrument_psycopg_pool(self, pool_obj: Any, pool: str) -> Instrumented:
        """Report a psycopg_pool ConnectionPool or AsyncConnectionPool."""
        return integrations.psycopg_pool(self._sender.add_source, pool_obj, self.pool(pool))

    def instrument_redis(self, client_or_pool: Any, pool: str) -> Instrumented:
        """Report a redis-py (sync or asyncio) client's connection pool."""
        return integrations.redis(self._sender.add_source, client_or_pool, self.pool(pool))

    def instrument_queue(self, obj: Any, queue: str) -> Instrumented:
        """Report the depth of a queue.Queue, asyncio.Queue, ThreadPoolExecutor or anything sized."""
        return integrations.queue_depth(self._sender.add_source, obj, lambda: self.queue(queue))

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
    return ((wire.TAG_OPERATION, clean_tag(operation)), (wire.TAG_OUTCOME, outcome)) + extra


class _TimerSeries:
    __slots__ = ("cancelled", "error", "ok")

    def __init__(self, ok: Series, error: Series, cancelled: Series) -> None:
        self.ok, self.error, self.cancelled = ok, error, cancelled


class Timed:
    """What `tm.timed(...)` returns: a decorator, or a one-shot (async) context manager.

    As a context manager it holds its start time, so use a fresh `tm.timed(...)` per
    block (as with prometheus_client's `Histogram.time()`); the decorator is reusable.
    """

    __slots__ = ("_series", "_t0", "_trace")

    def __init__(self, series: _TimerSeries, trace: str = "") -> None:
        self._series = series
        self._t0 = 0
        self._trace = trace  # an explicit exemplar's tags

    @overload
    def __call__(self, fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]: ...
    @overload
    def __call__(self, fn: Callable[P, R]) -> Callable[P, R]: ...

    def __call__(self, fn: Callable[P, Any]) -> Callable[P, Any]:
        if inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn):
            raise TypeError(f"{fn.__qualname__} is a generator: time the code that consumes it instead")
        ok_series, err_series = self._series.ok, self._series.error
        ok = ok_series.values.append
        err = err_series.values.append
        cancel = self._series.cancelled.values.append
        clock = perf_counter_ns

        if inspect.iscoroutinefunction(fn):
            series = self._series

            @functools.wraps(fn)
            async def timed_async(*args: P.args, **kwargs: P.kwargs) -> Any:
                with Timed(series):  # a fresh one per call: calls overlap
                    return await fn(*args, **kwargs)

            return timed_async

        # The hot path: two clock reads, one list.append and one attribute test (an exemplar
        # is taken once per series and flush, and only while OpenTelemetry is loaded).
        @functools.wraps(fn)
        def timed_sync(*args: P.args, **kwargs: P.kwargs) -> Any:
            t0 = clock()
            try:
                result = fn(*args, **kwargs)
            except Exception:
                elapsed = clock() - t0
                err(elapsed)
                if err_series.wants_exemplar:
                    err_series.take_exemplar(elapsed)
                raise
            except BaseException:
                cancel(clock() - t0)
                raise
            elapsed = clock() - t0
            ok(elapsed)
            if ok_series.wants_exemplar:
                ok_series.take_exemplar(elapsed)
            return result

        return timed_sync

    def __enter__(self) -> None:
        self._t0 = perf_counter_ns()

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        elapsed = perf_counter_ns() - self._t0
        if et is None:
            series = self._series.ok
        elif issubclass(et, Exception):
            series = self._series.error
        else:
            series = self._series.cancelled
        series.values.append(elapsed)
        if self._trace or series.wants_exemplar:
            series.take_exemplar(elapsed, self._trace)

    async def __aenter__(self) -> None:
        self.__enter__()

    async def __aexit__(self, et: type[BaseException] | None, ev: BaseException | None,
                        tb: TracebackType | None) -> None:
        self.__exit__(et, ev, tb)


