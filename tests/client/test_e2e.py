"""End to end: real instrumented things -> Telemetry -> UDP -> the real daemon -> /metrics.

Each test starts `apm-exporter --config.file` with a StatsD listener on a free port,
drives real SQLAlchemy engines (SQLite and PostgreSQL), a psycopg_pool pool, a
redis-py pool against a real Redis, lru_cache and cachetools caches and real queues,
then reads /metrics with prometheus_client's parser and asserts the exact values.
"""

from __future__ import annotations

import asyncio
import functools
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import cachetools
import pytest

from tests.client.conftest import ROOT, Sidecar
from tests.support.servers import PostgresServer, RedisServer


class TestOperations:
    def test_timed_sync_async_and_errors(self, sidecar: Sidecar) -> None:
        tm = sidecar.tm

        @tm.timed("checkout")
        def checkout(i: int) -> None:
            if i % 4 == 0:
                raise ValueError(i)

        @tm.timed("fetch")
        async def fetch() -> None:
            await asyncio.sleep(0)

        for i in range(20):
            try:
                checkout(i)
            except ValueError:
                pass

        async def main() -> None:
            await asyncio.gather(*(fetch() for _ in range(7)))

        asyncio.run(main())
        count = "apm_operation_duration_seconds_count"

        assert 15 == sidecar.settle(count, 15, operation="checkout", outcome="ok")
        assert 5 == sidecar.value(count, operation="checkout", outcome="error")
        assert 7 == sidecar.value(count, operation="fetch", outcome="ok")

    def test_buckets_and_sum_are_exact(self, sidecar: Sidecar) -> None:
        """Known durations land in the right buckets and sum exactly (ns on the wire, read as ms)."""
        for seconds in (0.0004, 0.003, 0.003, 0.2, 7.0):
            sidecar.tm.record("import", seconds)
        name = "apm_operation_duration_seconds"

        assert 5 == sidecar.settle(name + "_count", 5, operation="import")
        assert 1 == sidecar.value(name + "_bucket", operation="import", le="0.001")
        assert 3 == sidecar.value(name + "_bucket", operation="import", le="0.005")
        assert 4 == sidecar.value(name + "_bucket", operation="import", le="0.25")
        assert 5 == sidecar.value(name + "_bucket", operation="import", le="10")
        assert pytest.approx(7.2064, abs=1e-9) == sidecar.value(name + "_sum", operation="import")

    def test_extra_labels_are_ignored_by_the_conventions(self, sidecar: Sidecar) -> None:
        """One series per operation and outcome, whatever extra labels say."""
        sidecar.tm.record("pay", 0.01, region="eu")
        sidecar.tm.record("pay", 0.01, region="us")
        name = "apm_operation_duration_seconds_count"

        assert 2 == sidecar.settle(name, 2, operation="pay", outcome="ok")
        families = sidecar.daemon.scrape()
        labels = [s.labels for s in families["apm_operation_duration_seconds"].samples
                  if s.name == name and s.labels.get("operation") == "pay"]
        assert [{"operation": "pay", "outcome": "ok"}] == labels


class TestCaches:
    def test_lru_cache_and_cachetools(self, sidecar: Sidecar) -> None:
        tm = sidecar.tm

        @functools.lru_cache(maxsize=2)
        def square(x: int) -> int:
            return x * x

        ttl = tm.instrument_cachetools(cachetools.TTLCache(maxsize=2, ttl=300), "sessions", level="l2")

        @cachetools.cached(ttl)
        def session(x: int) -> int:
            return x

        tm.instrument_lru_cache(square, "squares", level="l1")
        for x in (1, 2, 1, 3, 4, 1):
            square(x)
            session(x)
        requests = "apm_cache_requests_total"

        assert 5 == sidecar.settle(requests, 5, cache="squares", level="l1", result="miss")
        for cache, level in (("squares", "l1"), ("sessions", "l2")):
            assert 1 == sidecar.value(requests, cache=cache, level=level, result="hit")
            assert 5 == sidecar.value(requests, cache=cache, level=level, result="miss")
            assert 3 == sidecar.value("apm_cache_evictions_total", cache=cache, level=level)
            assert 2 == sidecar.value("apm_cache_entries", cache=cache, level=level)
            assert 2 == sidecar.value("apm_cache_capacity_entries", cache=cache, level=level)

    def test_promotions(self, sidecar: Sidecar) -> None:
        l1 = sidecar.tm.cache("users", level="l1")
        for _ in range(3):
            l1.promotion()

        assert 3 == sidecar.settle("apm_cache_promotions_total", 3, cache="users", level="l1")


class TestPools:
    def _assert_pool(self, sidecar: Sidecar, pool: str, *, active: int, idle: int, max: int,
                     waits: int, timeouts: int) -> None:
        # Each value waits for the datagram that carries it: the counters may already show
        # theirs while the gauge deltas of the same flush are still on their way.
        assert timeouts == sidecar.settle("apm_pool_timeouts_total", timeouts, pool=pool)
        assert waits == sidecar.settle("apm_pool_wait_duration_seconds_count", waits, pool=pool)
        assert active == sidecar.settle("apm_pool_connections", active, pool=pool, state="active")
        assert idle == sidecar.settle("apm_pool_connections", idle, pool=pool, state="idle")
        assert max == sidecar.settle("apm_pool_max_connections", max, pool=pool)
        assert 0 == sidecar.settle("apm_pool_pending_requests", 0, pool=pool)

    def test_sqlalchemy_on_sqlite(self, sidecar: Sidecar, tmp_path: Path) -> None:
        import sqlalchemy as sa

        engine = sa.create_engine(f"sqlite:///{tmp_path / 'app.db'}", poolclass=sa.QueuePool,
                                  pool_size=2, max_overflow=1, pool_timeout=0.2)
        sidecar.tm.instrument_sqlalchemy(engine, "sqlite")
        held = [engine.connect() for _ in range(3)]
        with pytest.raises(sa.exc.TimeoutError):
            engine.connect()

        self._assert_pool(sidecar, "sqlite", active=3, idle=0, max=3, waits=4, timeouts=1)
        held[0].close()
        self._assert_pool(sidecar, "sqlite", active=2, idle=1, max=3, waits=4, timeouts=1)
        for c in held[1:]:
            c.close()
        engine.dispose()

    def test_sqlalchemy_on_postgresql(self, sidecar: Sidecar, postgres_server: PostgresServer) -> None:
        import sqlalchemy as sa

        url = postgres_server.dsn().replace("postgresql://", "postgresql+psycopg://")
        engine = sa.create_engine(url, pool_size=2, max_overflow=0, pool_timeout=0.2)
        sidecar.tm.instrument_sqlalchemy(engine, "pg")
        with engine.connect() as c:
            assert 1 == c.execute(sa.text("select 1")).scalar()
        held = [engine.connect() for _ in range(2)]
        with pytest.raises(sa.exc.TimeoutError):
            engine.connect()

        self._assert_pool(sidecar, "pg", active=2, idle=0, max=2, waits=4, timeouts=1)
        for c in held:
            c.close()
        self._assert_pool(sidecar, "pg", active=0, idle=2, max=2, waits=4, timeouts=1)
        engine.dispose()

    def test_psycopg_pool(self, sidecar: Sidecar, postgres_server: PostgresServer) -> None:
        from psycopg_pool import ConnectionPool, PoolTimeout

        with ConnectionPool(postgres_server.dsn(), min_size=2, max_size=2, timeout=0.3, open=True) as pool:
            pool.wait()
            sidecar.tm.instrument_psycopg_pool(pool, "psycopg")
            with pool.connection() as conn:
                conn.execute("select 1")
            held = [pool.getconn() for _ in range(2)]
            with pytest.raises(PoolTimeout), pool.connection():
                pass

            self._assert_pool(sidecar, "psycopg", active=2, idle=0, max=2, waits=4, timeouts=1)
            for conn in held:
                pool.putconn(conn)
            self._assert_pool(sidecar, "psycopg", active=0, idle=2, max=2, waits=4, timeouts=1)

    def test_psycopg_pool_pending_requests(self, sidecar: Sidecar, postgres_server: PostgresServer) -> None:
        from psycopg_pool import ConnectionPool

        with ConnectionPool(postgres_server.dsn(), min_size=1, max_size=1, timeout=30) as pool:
            pool.wait()
            sidecar.tm.instrument_psycopg_pool(pool, "waiting")
            held = pool.getconn()
            waiters = [threading.Thread(target=lambda: pool.putconn(pool.getconn())) for _ in range(3)]
            for w in waiters:
                w.start()
            pending = sidecar.settle("apm_pool_pending_requests", 3, pool="waiting")
            pool.putconn(held)
            for w in waiters:
                w.join()

            assert 3 == pending
            assert 0 == sidecar.settle("apm_pool_pending_requests", 0, pool="waiting")

    def test_redis_blocking_pool(self, sidecar: Sidecar, redis_server: RedisServer) -> None:
        import redis

        pool = redis.BlockingConnectionPool(host="127.0.0.1", port=redis_server.port, max_connections=2,
                                            timeout=0.2)
        client = redis.Redis(connection_pool=pool)
        sidecar.tm.instrument_redis(client, "redis")
        client.set("k", "v")
        assert b"v" == client.get("k")
        held = [pool.get_connection() for _ in range(2)]
        with pytest.raises(redis.ConnectionError, match="No connection available"):
            client.get("k")

        self._assert_pool(sidecar, "redis", active=2, idle=0, max=2, waits=5, timeouts=1)
        for conn in held:
            pool.release(conn)
        self._assert_pool(sidecar, "redis", active=0, idle=2, max=2, waits=5, timeouts=1)
        pool.disconnect()

    def test_redis_plain_pool(self, sidecar: Sidecar, redis_server: RedisServer) -> None:
        import redis

        client = redis.Redis(host="127.0.0.1", port=redis_server.port, max_connections=3)
        sidecar.tm.instrument_redis(client, "plain")
        for i in range(10):
            client.incr("n")

        self._assert_pool(sidecar, "plain", active=0, idle=1, max=3, waits=10, timeouts=0)
        client.close()


    def test_redis_asyncio(self, sidecar: Sidecar, redis_server: RedisServer) -> None:
        import redis.asyncio as aredis

        async def main() -> None:
            client = aredis.Redis(host="127.0.0.1", port=redis_server.port, max_connections=4)
            sidecar.tm.instrument_redis(client, "async")
            # Six at once on a pool of four: four connect, two are refused at once.
            results = await asyncio.gather(*(client.incr("n") for _ in range(6)), return_exceptions=True)
            refused = [r for r in results if isinstance(r, aredis.ConnectionError)]
            assert 2 == len(refused)
            self._assert_pool(sidecar, "async", active=0, idle=4, max=4, waits=6, timeouts=2)
            await client.aclose()

        asyncio.run(main())

    def test_psycopg_async_pool(self, sidecar: Sidecar, postgres_server: PostgresServer) -> None:
        from psycopg_pool import AsyncConnectionPool, PoolTimeout

        async def main() -> None:
            async with AsyncConnectionPool(postgres_server.dsn(), min_size=1, max_size=1, timeout=0.3) as pool:
                await pool.wait()
                sidecar.tm.instrument_psycopg_pool(pool, "apg")
                async with pool.connection() as conn:
                    await conn.execute("select 1")
                    with pytest.raises(PoolTimeout):
                        async with pool.connection():
                            pass
                    self._assert_pool(sidecar, "apg", active=1, idle=0, max=1, waits=2, timeouts=1)

        asyncio.run(main())


class TestQueues:
    def test_queue_depths_and_batches(self, sidecar: Sidecar) -> None:
        import queue
        from concurrent.futures import ThreadPoolExecutor

        tm = sidecar.tm
        q: queue.Queue[int] = queue.Queue()
        for i in range(12):
            q.put(i)
        tm.instrument_queue(q, "jobs")
        gate = threading.Event()
        with ThreadPoolExecutor(max_workers=2) as executor:
            futures = [executor.submit(gate.wait) for _ in range(6)]  # 2 running, 4 queued
            tm.instrument_queue(executor, "executor")
            while q.qsize() > 2:
                items = [q.get() for _ in range(5)]
                with tm.batch("jobs", items) as batch:
                    batch.fail(1)
            assert 2 == sidecar.settle("apm_queue_depth", 2, queue="jobs")
            assert 4 == sidecar.value("apm_queue_depth", queue="executor")
            gate.set()
            for f in futures:
                f.result()

        assert 2 == sidecar.value("apm_batch_size_count", queue="jobs")
        assert 10 == sidecar.value("apm_batch_size_sum", queue="jobs")
        assert 2 == sidecar.value("apm_batch_duration_seconds_count", queue="jobs")
        assert 8 == sidecar.value("apm_batch_items_total", queue="jobs", outcome="ok")
        assert 2 == sidecar.value("apm_batch_items_total", queue="jobs", outcome="error")


WORKER = textwrap.dedent("""
    import atexit, sys
    from exporter.client import Telemetry

    # Registered first, so it runs last: after the client's own exit flush.
    atexit.register(lambda: print(tm.stats(), file=sys.stderr))

    tm = Telemetry(flush_interval=0.02)  # address from APM_STATSD_ADDRESS; sends while working

    @tm.timed("work")
    def work(i):
        if i % 10 == 0:
            raise ValueError(i)

    hits = tm.cache("shared").hit
    for i in range(int(sys.argv[1])):
        try:
            work(i)
        except ValueError:
            pass
        hits()
    tm.pool("db").set(active=3, idle=1)
    tm.flush()
    print("ready", flush=True)
    sys.stdin.readline()  # exit when told; atexit sends the rest and takes the gauges back
""")


class TestWorkerProcesses:
    def test_several_processes_merge_exactly(self, busy_sidecar: Sidecar) -> None:
        """4 processes x 5000 calls, flushing every 20 ms while they run: totals are exact;
        their gauges add up while they live and go back to 0 when they exit."""
        sidecar = busy_sidecar
        n, calls = 4, 5000
        env = {**os.environ, "APM_STATSD_ADDRESS": sidecar.statsd, "PYTHONPATH": str(ROOT)}
        workers = [subprocess.Popen([sys.executable, "-c", WORKER, str(calls)], env=env, cwd=ROOT,
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    text=True)
                   for _ in range(n)]
        client_stats: list[str] = []
        try:
            for w in workers:
                assert "ready" == w.stdout.readline().strip()  # type: ignore[union-attr]
            count = "apm_operation_duration_seconds_count"

            assert n * calls * 9 // 10 == sidecar.settle(count, n * calls * 9 // 10, operation="work", outcome="ok")
            assert n * calls // 10 == sidecar.value(count, operation="work", outcome="error")
            assert n * calls == sidecar.value("apm_cache_requests_total", cache="shared", result="hit")
            assert 3 * n == sidecar.value("apm_pool_connections", pool="db", state="active")
            assert n == sidecar.value("apm_pool_connections", pool="db", state="idle")
        finally:
            for w in workers:
                client_stats.append(w.communicate("exit\n", timeout=30)[1].strip())

        assert [0] * n == [w.returncode for w in workers], client_stats
        # On failure, the workers' own counters say whether a send failed (see send_errors).
        assert 0 == sidecar.settle("apm_pool_connections", 0, pool="db", state="active"), client_stats
        assert 0 == sidecar.value("apm_pool_connections", pool="db", state="idle"), client_stats
