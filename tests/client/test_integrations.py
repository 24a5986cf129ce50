"""Integrations with real caches, queues, executors and a real SQLAlchemy engine on SQLite,
observed through exporter.client.testing.capture_metrics (what the app would send)."""

from __future__ import annotations

import asyncio
import functools
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cachetools
import pytest

from exporter.client import Telemetry
from exporter.client.testing import capture_metrics


@pytest.fixture
def tm(make_tm: Callable[..., Telemetry]) -> Telemetry:
    return make_tm("127.0.0.1:9")  # never reached: everything here is captured


class TestLruCache:
    def test_hits_misses_evictions_size_capacity(self, tm: Telemetry) -> None:
        """maxsize=2 and calls 1 2 1 3 4 1: 1 hit, 5 misses, 3 evictions, 2 entries of 2."""

        @functools.lru_cache(maxsize=2)
        def square(x: int) -> int:
            return x * x

        with capture_metrics() as m:
            tm.instrument_lru_cache(square, "squares")
            for x in (1, 2, 1, 3, 4, 1):
                square(x)

        assert 1 == m.count("apm.cache.hit", cache="squares")
        assert 5 == m.count("apm.cache.miss", cache="squares")
        assert 3 == m.count("apm.cache.eviction", cache="squares")
        assert 2 == m.gauge("apm.cache.entries", cache="squares")
        assert 2 == m.gauge("apm.cache.capacity", cache="squares")

    def test_call_sites_are_unchanged_and_cache_clear_is_handled(self, tm: Telemetry) -> None:
        @functools.cache
        def double(x: int) -> int:
            return 2 * x

        assert double is tm.instrument_lru_cache(double, "doubles", level="l1")
        with capture_metrics() as m:
            double(1)
            double(1)
            tm.flush()
            double.cache_clear()
            double(1)
            double(2)

        assert 1 == m.count("apm.cache.hit", cache="doubles", level="l1")
        assert 3 == m.count("apm.cache.miss", cache="doubles", level="l1")
        assert 0 == m.count("apm.cache.eviction", cache="doubles")
        assert {0.0} == {s.value for s in m.find("apm.cache.capacity")}  # unbounded: 0, as it always was

    def test_plain_function_is_refused(self, tm: Telemetry) -> None:
        with pytest.raises(TypeError, match="lru_cache"):
            tm.instrument_lru_cache(lambda: None, "x")


class TestCachetools:
    def test_cached_decorator_on_an_lru_cache(self, tm: Telemetry) -> None:
        """@cached uses cache[key]: hits, misses and evictions counted, results unchanged."""
        cache = cachetools.LRUCache(maxsize=2)

        @cachetools.cached(cache)
        def square(x: int) -> int:
            return x * x

        with capture_metrics() as m:
            assert cache is tm.instrument_cachetools(cache, "squares")
            results = [square(x) for x in (1, 2, 1, 3, 4, 1)]

        assert [1, 4, 1, 9, 16, 1] == results
        assert isinstance(cache, cachetools.LRUCache)
        assert 1 == m.count("apm.cache.hit", cache="squares")
        assert 5 == m.count("apm.cache.miss", cache="squares")
        assert 3 == m.count("apm.cache.eviction", cache="squares")
        assert 2 == m.gauge("apm.cache.entries", cache="squares")
        assert 2 == m.gauge("apm.cache.capacity", cache="squares")

    def test_locked_cached_stores_through_setdefault_without_double_counting(self, tm: Telemetry) -> None:
        cache = cachetools.TTLCache(maxsize=10, ttl=60)
        tm.instrument_cachetools(cache, "ttl")

        @cachetools.cached(cache, lock=threading.Lock())
        def f(x: int) -> int:
            return x

        with capture_metrics() as m:
            for x in (1, 1, 2, 2, 2):
                f(x)

        assert 3 == m.count("apm.cache.hit", cache="ttl")
        assert 2 == m.count("apm.cache.miss", cache="ttl")

    def test_mapping_methods(self, tm: Telemetry) -> None:
        """get() is a lookup; pop() and setdefault() are not; popitem() is an eviction."""
        cache = tm.instrument_cachetools(cachetools.FIFOCache(maxsize=3), "fifo", level="l2")
        with capture_metrics() as m:
            cache["a"] = 1
            assert 1 == cache.get("a")
            assert cache.get("zz") is None
            assert 1 == cache.pop("a")
            assert 5 == cache.setdefault("b", 5)
            assert 5 == cache.setdefault("b", 6)
            for k in "cdef":
                cache[k] = 0

        assert 1 == m.count("apm.cache.hit", cache="fifo", level="l2")
        assert 1 == m.count("apm.cache.miss", cache="fifo", level="l2")
        assert 2 == m.count("apm.cache.eviction", cache="fifo", level="l2")

    def test_instrumenting_twice_is_refused(self, tm: Telemetry) -> None:
        cache = tm.instrument_cachetools(cachetools.LRUCache(maxsize=1), "once")
        with pytest.raises(ValueError, match="already"):
            tm.instrument_cachetools(cache, "once")


class TestMultiLevel:
    def test_levels_and_promotions(self, tm: Telemetry) -> None:
        """A two-level read-through cache: an L2 hit is promoted into L1."""
        l1, l2 = tm.cache("users", level="l1"), tm.cache("users", level="l2")
        fast: dict[int, str] = {}
        slow = {1: "ann", 2: "bob"}

        def get(uid: int) -> str | None:
            if uid in fast:
                l1.hit()
                return fast[uid]
            l1.miss()
            if uid in slow:
                l2.hit()
                fast[uid] = slow[uid]
                l1.promotion()
                return slow[uid]
            l2.miss()
            return None

        with capture_metrics() as m:
            for uid in (1, 1, 2, 3):
                get(uid)

        assert (1, 3) == (m.count("apm.cache.hit", level="l1"), m.count("apm.cache.miss", level="l1"))
        assert (2, 1) == (m.count("apm.cache.hit", level="l2"), m.count("apm.cache.miss", level="l2"))
        assert 2 == m.count("apm.cache.promotion", cache="users", level="l1")


class TestQueues:
    def test_queue_asyncio_queue_and_executor_depth(self, tm: Telemetry) -> None:
        q: queue.Queue[int] = queue.Queue()
        aq: asyncio.Queue[int] = asyncio.Queue()
        for i in range(3):
            q.put(i)
        for i in range(5):
            aq.put_nowait(i)
        gate = threading.Event()
        with ThreadPoolExecutor(max_workers=1) as pool:
            futures = [pool.submit(gate.wait) for _ in range(4)]  # one runs and blocks, three wait
            with capture_metrics() as m:
                tm.instrument_queue(q, "q")
                tm.instrument_queue(aq, "aq")
                tm.instrument_queue(pool, "executor")
                tm.instrument_queue(lambda: 7, "callable")
            gate.set()
            for f in futures:
                f.result()

        assert 3 == m.gauge("apm.queue.depth", queue="q")
        assert 5 == m.gauge("apm.queue.depth", queue="aq")
        assert 3 == m.gauge("apm.queue.depth", queue="executor")
        assert 7 == m.gauge("apm.queue.depth", queue="callable")

    def test_unreadable_object_is_refused(self, tm: Telemetry) -> None:
        with pytest.raises(TypeError, match="depth"):
            tm.instrument_queue(object(), "x")


class TestBatch:
    def test_batch_size_duration_items(self, tm: Telemetry) -> None:
        with capture_metrics() as m:
            with tm.batch("emails", ["a", "b", "c", "d"]) as batch:
                batch.fail()
            with pytest.raises(RuntimeError), tm.batch("emails", 2):
                raise RuntimeError("smtp down")

        assert [4, 2] == m.values("apm.batch.size", queue="emails")
        assert 2 == m.count("apm.batch.duration", queue="emails")
        assert 3 == m.count("apm.batch.items", queue="emails", outcome="ok")
        assert 3 == m.count("apm.batch.items", queue="emails", outcome="error")


class TestSqlAlchemySqlite:
    def test_pool_gauges_waits_and_timeouts(self, tm: Telemetry, tmp_path: Path) -> None:
        """pool_size=2, max_overflow=1: three checked out fills it; a fourth times out."""
        import sqlalchemy as sa
        from sqlalchemy.exc import TimeoutError as PoolTimeout

        engine = sa.create_engine(f"sqlite:///{tmp_path / 'app.db'}", poolclass=sa.QueuePool,
                                  pool_size=2, max_overflow=1, pool_timeout=0.2)
        with capture_metrics() as m:
            tm.instrument_sqlalchemy(engine, "sqlite")
            held = [engine.connect() for _ in range(3)]
            for c in held:
                c.execute(sa.text("select 1"))
            tm.flush()
            with pytest.raises(PoolTimeout):
                engine.connect()
            busy = (m.gauge("apm.pool.active", pool="sqlite"), m.gauge("apm.pool.idle", pool="sqlite"))
            for c in held[:2]:
                c.close()
        engine.dispose()

        assert (3, 0) == busy
        assert 3 == m.gauge("apm.pool.max", pool="sqlite")
        assert 1 == m.gauge("apm.pool.active", pool="sqlite")
        assert 2 == m.gauge("apm.pool.idle", pool="sqlite")
        assert 4 == m.count("apm.pool.wait", pool="sqlite")
        assert 1 == m.count("apm.pool.timeout", pool="sqlite")
        assert max(m.values("apm.pool.wait", pool="sqlite")) >= 0.2  # the one that timed out waited

    def test_pending_while_a_request_waits(self, tm: Telemetry, tmp_path: Path) -> None:
        import sqlalchemy as sa

        engine = sa.create_engine(f"sqlite:///{tmp_path / 'app.db'}", poolclass=sa.QueuePool,
                                  pool_size=1, max_overflow=0, pool_timeout=30)
        tm.instrument_sqlalchemy(engine, "sqlite")
        held = engine.connect()
        waiter = threading.Thread(target=lambda: engine.connect().close())
        with capture_metrics() as m:
            waiter.start()
            deadline = time.monotonic() + 30
            while m.gauge("apm.pool.pending", pool="sqlite") < 1 and time.monotonic() < deadline:
                time.sleep(0.01)
            pending_while_held = m.gauge("apm.pool.pending", pool="sqlite")
            held.close()
            waiter.join()
        engine.dispose()

        assert 1 == pending_while_held
        assert 0 == m.gauge("apm.pool.pending", pool="sqlite")

    def test_dispose_instruments_the_new_pool(self, tm: Telemetry, tmp_path: Path) -> None:
        import sqlalchemy as sa

        engine = sa.create_engine(f"sqlite:///{tmp_path / 'app.db'}", poolclass=sa.QueuePool)
        tm.instrument_sqlalchemy(engine, "sqlite")
        engine.dispose()
        with capture_metrics() as m:
            tm.flush()  # polls: sees the new pool
            with engine.connect() as c:
                c.execute(sa.text("select 1"))
        engine.dispose()

        assert 1 == m.count("apm.pool.wait", pool="sqlite")

    def test_static_pool_follows_checkouts(self, tm: Telemetry) -> None:
        """In-memory SQLite uses a pool without counts: active comes from checkout events."""
        import sqlalchemy as sa

        engine = sa.create_engine("sqlite://")
        with capture_metrics() as m:
            tm.instrument_sqlalchemy(engine, "memory")
            conn = engine.connect()
            tm.flush()
            active = m.gauge("apm.pool.active", pool="memory")
            conn.close()
        engine.dispose()

        assert 1 == active
        assert 0 == m.gauge("apm.pool.active", pool="memory")


class TestCapture:
    def test_capture_holds_only_what_happened_inside(self, tm: Telemetry) -> None:
        tm.record("before", 0.001)
        with capture_metrics() as m:
            tm.record("inside", 0.001)
        tm.record("after", 0.001)

        assert {"inside"} == {s.tags["operation"] for s in m.find("apm.operation")}

    def test_gauges_after_a_capture_are_what_the_process_holds(self, tm: Telemetry) -> None:
        from exporter.client import _sender

        seen: list[str] = []
        q = tm.queue("jobs")
        q.depth(3)
        with capture_metrics() as m:
            q.depth(5)
        _sender.set_capture_sink(seen.extend)  # stand-in for the network
        try:
            tm.flush()
        finally:
            _sender.set_capture_sink(None)

        me = tm._sender.instance
        assert [f"apm.queue.depth:5|g|#queue:jobs,apm_instance:{me}"] == m.lines
        assert m.gauge("apm.queue.depth", queue="jobs") == 5
        # Absolute shares: what the capture took cannot leave the daemon behind.
        assert [f"apm.queue.depth:5|g|#queue:jobs,apm_instance:{me}"] == seen
