"""Redis probe against a real redis-server: INFO cache stats, queue layouts, faults, slow targets."""

from __future__ import annotations

import asyncio
import time

import pytest

from exporter.collectors import ProbeError
from exporter.collectors.redis import Config, RedisCollector
from tests.collectors.helpers import framed, run, values
from tests.support.servers import BlackHole, RedisServer


def collector(url: str, **extra: object) -> RedisCollector:
    return RedisCollector(Config.model_validate({"name": "sessions", "url": url, **extra}))


def test_cache_stats_match_what_the_client_did(redis_server: RedisServer) -> None:
    client = redis_server.client()
    for i in range(3):
        client.set(f"user:{i}", "x" * 100)
    client.set("ttl", "1", px=1)
    time.sleep(0.01)
    assert client.get("ttl") is None  # lazily expired: one miss, one expired key
    for _ in range(5):
        client.get("user:1")
    client.get("nope")
    client.config_set("maxmemory", 100 * 1024 * 1024)

    async def main() -> dict:
        probe = collector(redis_server.url)
        try:
            return values(await probe.collect())
        finally:
            await probe.close()

    got = run(main)
    info = client.info()
    assert got["cache_requests_total"] == {("sessions", "", "hit"): 5, ("sessions", "", "miss"): 2}
    assert got["cache_expirations_total"] == {("sessions", ""): 1}
    assert got["cache_evictions_total"] == {("sessions", ""): 0}
    assert got["cache_entries"] == {("sessions", ""): 3}
    assert got["cache_memory_limit_bytes"] == {("sessions", ""): 100 * 1024 * 1024}
    assert 0 < got["cache_memory_bytes"][("sessions", "")] <= info["used_memory_peak"]
    assert got["cache_clients"][("sessions",)] >= 1
    assert "queue_depth" not in got


def test_evictions_are_counted(redis_server: RedisServer) -> None:
    client = redis_server.client()
    client.config_set("maxmemory-policy", "allkeys-lru")
    client.config_set("maxmemory", 2 * 1024 * 1024)
    try:
        for i in range(400):
            client.set(f"blob:{i}", "x" * 10_000)

        async def main() -> dict:
            probe = collector(redis_server.url)
            try:
                return values(await probe.collect())
            finally:
                await probe.close()

        got = run(main)
        evicted = client.info("stats")["evicted_keys"]
        assert evicted > 0
        assert got["cache_evictions_total"] == {("sessions", ""): evicted}
        assert got["cache_entries"] == {("sessions", ""): client.dbsize()}
    finally:
        client.config_set("maxmemory-policy", "noeviction")


def test_queue_depth_for_every_layout(redis_server: RedisServer) -> None:
    client = redis_server.client()
    client.rpush("jobs", *range(7))                      # plain list, L = 7
    client.rpush("celery", *range(3))                    # Celery: default priority list …
    client.rpush("celery\x06\x163", *range(2))           # … plus priority 3
    client.rpush("rq:queue:default", *range(4))          # RQ
    client.zadd("delayed", {f"m{i}": i for i in range(6)})
    for i in range(10):
        client.xadd("events", {"n": i})
    client.xgroup_create("events", "workers", id="0")
    client.xreadgroup("workers", "w1", {"events": ">"}, count=4)  # 4 delivered, not acked
    client.xgroup_create("events", "late", id="$")

    queues = [
        {"name": "jobs"},
        {"name": "celery", "layout": "celery"},
        {"name": "default", "layout": "rq", "label": "rq-default"},
        {"name": "delayed"},
        {"name": "events"},
        {"name": "drained", "key": "gone"},
    ]

    async def main() -> dict:
        probe = collector(redis_server.url, queues=queues, cache=False)
        try:
            return values(await probe.collect())
        finally:
            await probe.close()

    got = run(main)
    assert got["queue_depth"] == {("jobs",): 7, ("celery",): 5, ("rq-default",): 4, ("delayed",): 6,
                                  ("events",): 10, ("drained",): 0}
    assert got["queue_consumer_lag"] == {("events", "workers"): 6, ("events", "late"): 0}
    assert got["queue_pending"] == {("events", "workers"): 4, ("events", "late"): 0}
    assert "cache_requests_total" not in got


def test_the_probes_own_queue_reads_are_not_counted_as_the_apps_hits(redis_server: RedisServer) -> None:
    client = redis_server.client()
    client.rpush("jobs", 1, 2)
    client.rpush("celery", 1)
    client.xadd("events", {"n": 1})
    client.xgroup_create("events", "workers", id="0")
    for _ in range(5):
        client.get("jobs:lock") or client.set("jobs:lock", "1")  # 1 miss, then 4 hits
    client.get("nothing")
    queues = [{"name": "jobs"}, {"name": "celery", "layout": "celery"}, {"name": "x", "layout": "rq"},
              {"name": "events"}, {"name": "gone"}]

    async def main() -> list[dict]:
        probe = collector(redis_server.url, queues=queues)
        try:
            seen = [values(await probe.collect()) for _ in range(3)]
            client.get("jobs:lock")  # one more hit by the app
            seen.append(values(await probe.collect()))
            return seen
        finally:
            await probe.close()

    *same, later = run(main)
    for got in same:
        assert got["cache_requests_total"] == {("sessions", "", "hit"): 4, ("sessions", "", "miss"): 2}
    assert later["cache_requests_total"] == {("sessions", "", "hit"): 5, ("sessions", "", "miss"): 2}
    info = client.info("stats")
    assert info["keyspace_hits"] > 5 and info["keyspace_misses"] > 2  # Redis itself counts the probe's reads


def test_a_key_of_the_wrong_type_is_an_error_not_a_zero(redis_server: RedisServer) -> None:
    redis_server.client().set("jobs", "not a queue")

    async def main() -> str:
        probe = collector(redis_server.url, queues=[{"name": "jobs"}])
        try:
            with pytest.raises(ProbeError) as err:
                await framed(probe).attempt()
            return str(err.value)
        finally:
            await probe.close()

    assert "is a string" in run(main)


def test_a_paused_redis_does_not_hold_the_collect_beyond_its_timeout(redis_server: RedisServer) -> None:
    import redis.asyncio

    async def main() -> None:
        probe = collector(redis_server.url, timeout="300ms")
        pauser = redis.asyncio.Redis(port=redis_server.port)
        try:
            await probe.collect()  # connected before the pause
            pause = asyncio.create_task(pauser.execute_command("DEBUG", "SLEEP", "2"))
            await asyncio.sleep(0.1)
            # The job's deadline (or the driver's socket timeout) ends the read, not the outer wait_for.
            with pytest.raises(ProbeError, match="TimeoutError"):
                await asyncio.wait_for(framed(probe).attempt(), timeout=10)
            await pause
        finally:
            await probe.close()
            await pauser.aclose()

    run(main)


def test_a_socket_that_never_answers_times_out(black_hole: BlackHole) -> None:
    async def main() -> None:
        probe = collector(f"redis://127.0.0.1:{black_hole.port}/0", timeout="200ms")
        try:
            with pytest.raises(ProbeError, match="Timeout"):
                await asyncio.wait_for(framed(probe).attempt(), timeout=10)
            assert black_hole.connections == 1
        finally:
            await probe.close()

    run(main)


def test_cancellation_by_the_scraper_leaves_nothing_behind(black_hole: BlackHole) -> None:
    async def main() -> None:
        probe = collector(f"redis://127.0.0.1:{black_hole.port}/0", timeout="30s")
        try:
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(framed(probe).attempt(), timeout=0.2)
        finally:
            await probe.close()

    run(main)  # run() fails on a leftover task or thread


def test_the_password_never_appears_in_an_error(redis_server: RedisServer) -> None:
    async def main() -> list[str]:
        messages = []
        for url in (f"redis://admin:hunter2secret@127.0.0.1:{redis_server.port}/0",  # no such user
                    "redis://admin:hunter2secret@127.0.0.1:1/0"):                 # nothing listens
            probe = collector(url)
            try:
                with pytest.raises(ProbeError) as err:
                    await framed(probe).attempt()
                messages.append(str(err.value))
            finally:
                await probe.close()
        return messages

    for message in run(main):
        assert "hunter2secret" not in message
        assert "<secret>" in message
