"""Hooks into the caches, pools and queues apps already use, so call sites stay as they are.

Reached through `Telemetry.instrument_*`, which hands each one the handle it reports
through (or a function making it, once the object checks out) and `register`, which
the flush thread polls sources from. Each integration imports its third-party
library only when called, so an app pays only for what it instruments. Figures that
the library keeps itself (pool sizes, lru_cache counters) are polled on the flush
thread; figures it does not keep (how long a request waited for a connection) are
measured by wrapping the one method that hands out connections, on that instance only.
"""

from __future__ import annotations

import functools
import inspect
import weakref
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from exporter.client._handles import Cache, Checkout, Pool, Queue
from exporter.client._sender import Gauge

F = TypeVar("F", bound=Callable[..., Any])
Register = Callable[["Instrumented"], None]


class Instrumented:
    """A registered source, polled once per flush until its object is collected or `detach()`ed.

    When it stops, its gauges go back to 0 so the daemon's sum over processes drops
    this process's share.
    """

    def __init__(self, obj: Any, gauges: Iterable[Gauge], *, strong: bool = False) -> None:
        self._ref: Callable[[], Any] = (lambda: obj) if strong else weakref.ref(obj)
        self._gauges = list(gauges)
        self._detached = False

    def __repr__(self) -> str:
        return f"<{type(self).__name__} of {self._ref()!r}>"

    def alive(self) -> bool:
        return not self._detached and self._ref() is not None

    def detach(self) -> None:
        """Stop reporting this object; its gauges return to 0 at the next flush."""
        self._detached = True

    def gauges(self) -> list[Gauge]:
        return self._gauges

    def poll(self) -> None:
        obj = self._ref()
        if obj is not None:
            self._poll(obj)

    def _poll(self, obj: Any) -> None:
        raise NotImplementedError

    def after_fork_child(self) -> None:
        """Counters polled from the object: the child's copy starts from the parent's figures."""


def _registered(register: Register, source: Instrumented) -> Instrumented:
    register(source)
    return source


# --- caches -------------------------------------------------------------------------
class _LruCacheSource(Instrumented):
    """Turns `cache_info()` totals into deltas; evictions are derived (lru_cache keeps no count)."""

    def __init__(self, func: Any, cache: Cache) -> None:
        self._cache = cache
        # Held strongly: its totals are only read by polling, and a function local to main()
        # would otherwise be gone before the flush at exit reads the last of them.
        super().__init__(func, [cache.entries_gauge(), cache.capacity_gauge()], strong=True)
        self._last = func.cache_info()

    def _poll(self, func: Any) -> None:
        info = func.cache_info()
        last, self._last = self._last, info
        hits, misses, grew = info.hits - last.hits, info.misses - last.misses, info.currsize - last.currsize
        if hits < 0 or misses < 0:  # cache_clear() reset the totals
            hits, misses, grew = info.hits, info.misses, info.currsize
        if hits:
            self._cache.hit(hits)
        if misses:
            self._cache.miss(misses)
        # A miss stores its result; one that did not grow a full cache pushed an entry out.
        if info.maxsize is not None and info.currsize >= info.maxsize and misses > grew:
            self._cache.eviction(misses - max(grew, 0))
        self._cache.size(info.currsize)
        if info.maxsize is not None:
            self._cache.capacity(info.maxsize)

    def after_fork_child(self) -> None:
        func = self._ref()
        if func is not None:
            self._last = func.cache_info()


def lru_cache(register: Register, func: F, cache: Callable[[str], Cache], name: str | None) -> F:
    """`cache(name)` makes the handle; the name defaults to the function's."""
    if not callable(getattr(func, "cache_info", None)):
        raise TypeError(f"{func!r} has no cache_info(): wrap it with functools.lru_cache first")
    register(_LruCacheSource(func, cache(name or getattr(func, "__qualname__", None) or repr(func))))
    return func


_cachetools_classes: dict[type, type] = {}


def _counting_subclass(base: Any) -> type:
    """A subclass of the cache's own class that counts lookups; instances switch to it in place.

    Only `__getitem__` and `get` count: they are the lookups (`@cached` uses
    `cache[key]`). `pop` and `setdefault` are rewritten so they do not count (`@cached`
    with a lock stores through `setdefault`), and `popitem` is what evicts.
    """
    found = _cachetools_classes.get(base)
    if found is not None:
        return found
    base_getitem = base.__getitem__
    base_popitem = base.popitem
    marker = object()

    def __getitem__(self: Any, key: Any) -> Any:
        if key in self:
            self._apm_cache.hit()
        else:
            self._apm_cache.miss()
        return base_getitem(self, key)

    def get(self: Any, key: Any, default: Any = None) -> Any:
        if key in self:
            return self[key]
        self._apm_cache.miss()
        return default

    def pop(self: Any, key: Any, default: Any = marker) -> Any:
        if key in self:
            value = base_getitem(self, key)
            del self[key]
            return value
        if default is marker:
            raise KeyError(key)
        return default

    def setdefault(self: Any, key: Any, default: Any = None) -> Any:
        if key in self:
            return base_getitem(self, key)
        self[key] = default
        return default

    def popitem(self: Any) -> Any:
        item = base_popitem(self)
        self._apm_cache.eviction()
        return item

    sub = type(f"Counting{base.__name__}", (base,), {
        "__slots__": (), "__getitem__": __getitem__, "get": get, "pop": pop,
        "setdefault": setdefault, "popitem": popitem, "__module__": __name__,
    })
    return _cachetools_classes.setdefault(base, sub)


class _CachetoolsSource(Instrumented):
    def __init__(self, obj: Any, cache: Cache) -> None:
        self._cache = cache
        # With getsizeof, maxsize is a weight, not a number of entries: no capacity then.
        self._weighted = obj.getsizeof is not type(obj).getsizeof
        gauges = [cache.entries_gauge()] + ([] if self._weighted else [cache.capacity_gauge()])
        super().__init__(obj, gauges)

    def _poll(self, obj: Any) -> None:
        self._cache.size(len(obj))
        if not self._weighted:
            self._cache.capacity(obj.maxsize)


def cachetools(register: Register, obj: Any, cache: Callable[[], Cache]) -> Any:
    import cachetools as ct

    if not isinstance(obj, ct.Cache):
        raise TypeError(f"{obj!r} is not a cachetools cache")
    if getattr(obj, "_apm_cache", None) is not None:
        raise ValueError(f"{obj!r} is already instrumented")
    handle = cache()
    cls = type(obj)
    if cls not in _cachetools_classes.values():
        obj.__class__ = _counting_subclass(cls)
    obj._apm_cache = handle  # type: ignore[attr-defined]  # read by the counting subclass
    register(_CachetoolsSource(obj, handle))
    return obj


# --- connection pools -----------------------------------------------------------------
def _wrap_checkout(fn: Callable[..., Any], handle: Pool,
                   is_timeout: Callable[[BaseException], bool]) -> Callable[..., Any]:
    """Count the call as pending, time it, and count it as a timeout if it gives up."""
    if inspect.iscoroutinefunction(fn):
        @functools.wraps(fn)
        async def checkout_async(*args: Any, **kwargs: Any) -> Any:
            with Checkout(handle, is_timeout):
                return await fn(*args, **kwargs)

        return checkout_async

    @functools.wraps(fn)
    def checkout(*args: Any, **kwargs: Any) -> Any:
        with Checkout(handle, is_timeout):
            return fn(*args, **kwargs)

    return checkout


class _SqlAlchemySource(Instrumented):
    """QueuePool figures come from the pool; other pool classes count checkouts by events.

    Overflow connections count as active (and as idle once returned, until closed), and
    max is pool_size + max_overflow. `engine.dispose()` makes a new pool: it is
    instrumented at the next poll.
    """

    def __init__(self, engine: Any, handle: Pool) -> None:
        from sqlalchemy import event, exc

        self._handle = handle
        self._is_timeout = lambda e: isinstance(e, exc.TimeoutError)
        self._pool: Any = None
        self._events_active = False
        super().__init__(engine, [handle.active_gauge, handle.idle_gauge, handle.pending_gauge, handle.max_gauge()])
        self._instrument(engine.pool)
        if not hasattr(engine.pool, "checkedout"):
            # NullPool, StaticPool, SingletonThreadPool keep no counts: follow checkouts.
            self._events_active = True
            active = handle.active_gauge
            event.listen(engine, "checkout", lambda *a: active.add(1))
            event.listen(engine, "checkin", lambda *a: active.add(-1))

    def _instrument(self, pool: Any) -> None:
        pool.connect = _wrap_checkout(pool.connect, self._handle, self._is_timeout)
        self._pool = weakref.ref(pool)

    def _poll(self, engine: Any) -> None:
        pool = engine.pool
        if self._pool is None or self._pool() is not pool:
            self._instrument(pool)
        if self._events_active:
            return
        self._handle.active_gauge.set(pool.checkedout())
        self._handle.idle_gauge.set(pool.checkedin())
        overflow = getattr(pool, "_max_overflow", -1)
        if overflow >= 0:
            self._handle.max_gauge().set(pool.size() + overflow)


def sqlalchemy(register: Register, engine: Any, pool: Pool) -> Instrumented:
    engine = getattr(engine, "sync_engine", engine)  # AsyncEngine
    return _registered(register, _SqlAlchemySource(engine, pool))


class _PsycopgPoolSource(Instrumented):
    """Gauges from `get_stats()`; pending, wait times and timeouts from wrapping `getconn`.

    Not `requests_waiting`: psycopg_pool leaves a request that timed out in its waiting
    queue until the next connection comes back, so it would show a wait that is over.
    """

    def __init__(self, pool: Any, handle: Pool) -> None:
        from psycopg_pool import PoolTimeout

        self._handle = handle
        super().__init__(pool, [handle.active_gauge, handle.idle_gauge, handle.pending_gauge, handle.max_gauge()])
        pool.getconn = _wrap_checkout(pool.getconn, handle, lambda e: isinstance(e, PoolTimeout))

    def _poll(self, pool: Any) -> None:
        stats = pool.get_stats()
        size, available = stats.get("pool_size", 0), stats.get("pool_available", 0)
        self._handle.set(active=size - available, idle=available, max=stats.get("pool_max", 0))


def psycopg_pool(register: Register, pool_obj: Any, pool: Pool) -> Instrumented:
    return _registered(register, _PsycopgPoolSource(pool_obj, pool))


class _RedisPoolSource(Instrumented):
    """redis-py keeps its connections in plain lists and sets: read their lengths.

    Timeouts: BlockingConnectionPool's "No connection available." after waiting, and
    the plain pool's MaxConnectionsError when max_connections is reached.
    """

    def __init__(self, pool: Any, handle: Pool) -> None:
        self._handle = handle
        super().__init__(pool, [handle.active_gauge, handle.idle_gauge, handle.pending_gauge, handle.max_gauge()])

        def is_timeout(e: BaseException) -> bool:
            return type(e).__name__ == "MaxConnectionsError" or str(e) == "No connection available."

        pool.get_connection = _wrap_checkout(pool.get_connection, handle, is_timeout)

    def _poll(self, pool: Any) -> None:
        if hasattr(pool, "_in_use_connections"):
            active = len(pool._in_use_connections)
            idle = len(pool._available_connections)
        else:  # BlockingConnectionPool: a LIFO queue of connections and None placeholders
            queued = list(pool.pool.queue)
            idle = sum(1 for c in queued if c is not None)
            active = len(pool._connections) - idle
        self._handle.set(active=active, idle=idle)
        if pool.max_connections < 2**31 - 1:
            self._handle.max_gauge().set(pool.max_connections)


def redis(register: Register, client_or_pool: Any, pool: Pool) -> Instrumented:
    pool_obj = getattr(client_or_pool, "connection_pool", client_or_pool)
    return _registered(register, _RedisPoolSource(pool_obj, pool))


# --- queues ---------------------------------------------------------------------------
class _QueueSource(Instrumented):
    def __init__(self, obj: Any, depth: Callable[[Any], int], gauge: Gauge, strong: bool) -> None:
        self._depth = depth
        self._gauge = gauge
        super().__init__(obj, [gauge], strong=strong)

    def _poll(self, obj: Any) -> None:
        self._gauge.set(self._depth(obj))


def queue_depth(register: Register, obj: Any, queue: Callable[[], Queue]) -> Instrumented:
    """queue.Queue, asyncio.Queue, multiprocessing.Queue: qsize(); ThreadPoolExecutor: its
    work queue (submitted, not yet started); ProcessPoolExecutor: pending work items;
    anything with len(); or a zero-argument callable returning the depth."""
    strong = False
    depth: Callable[[Any], int]
    if hasattr(obj, "_work_queue"):
        depth = lambda e: e._work_queue.qsize()
    elif hasattr(obj, "_pending_work_items"):
        depth = lambda e: len(e._pending_work_items)
    elif callable(getattr(obj, "qsize", None)):
        depth = lambda q: q.qsize()
    elif hasattr(obj, "__len__"):
        depth = len
    elif callable(obj):
        depth, strong = (lambda f: f()), True
    else:
        raise TypeError(f"cannot read a depth from {obj!r}: pass a queue, an executor, a sized object or a callable")
    return _registered(register, _QueueSource(obj, depth, queue().depth_gauge, strong))
