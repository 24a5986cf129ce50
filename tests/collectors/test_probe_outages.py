"""One outage, every server probe: a real server stops and starts again under a probe that stays built.

The frame is the job's (scrape.Job), so the same story holds for each probe: the
read that meets the dead server fails with the driver's error, reads inside the
backoff window (on the job's clock, moved by the test) only try a connect to the
server's port, and once that port, seen closed, accepts again the restarted
server is read at once rather than when the delay ends.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from exporter.backoff import BackoffError
from exporter.collectors import Probe, ProbeError
from exporter.collectors.memcached import Config as MemcachedConfig
from exporter.collectors.memcached import MemcachedCollector
from exporter.collectors.pgbouncer import Config as PgBouncerConfig
from exporter.collectors.pgbouncer import PgBouncerCollector
from exporter.collectors.postgres import Config as PostgresConfig
from exporter.collectors.postgres import PostgresCollector
from exporter.collectors.redis import Config as RedisConfig
from exporter.collectors.redis import RedisCollector
from exporter.collectors.sql import Config as SQLConfig
from exporter.collectors.sql import SQLCollector
from tests.collectors.helpers import Clock, framed, run, values


@dataclass(frozen=True)
class Outage:
    fixture: str
    probe: Callable[[Any], Probe]
    before: Callable[[Any], None]  # what the server holds before the probe first reads it
    up: Callable[[dict[str, Any]], bool]  # the first read's figures are right
    error: str  # what the read that meets the stopped server says
    restarted: Callable[[Any], None]  # what the test does on the restarted server
    back: Callable[[dict[str, Any]], bool]  # the figures after recovery are the new server's


OUTAGES = {
    "redis": Outage(
        "redis_server",
        lambda s: RedisCollector(RedisConfig.model_validate(
            {"name": "sessions", "url": s.url, "queues": [{"name": "jobs"}]})),
        lambda s: s.client().rpush("jobs", 1, 2, 3),
        lambda got: got["queue_depth"] == {("jobs",): 3},
        "ConnectionError",
        lambda s: s.client().rpush("jobs", 4, 5),
        lambda got: got["queue_depth"] == {("jobs",): 2},  # a fresh server: only what was pushed since
    ),
    "memcached": Outage(
        "memcached_server",
        lambda s: MemcachedCollector(MemcachedConfig.model_validate({"name": "fragments", "address": s.address})),
        lambda s: s.get("before"),  # flush_all leaves curr_items to lazy reclaim: count a miss instead
        lambda got: got["cache_requests_total"][("fragments", "", "miss")] == 1,
        "ConnectionRefusedError",
        lambda s: s.set("k", "v"),
        lambda got: got["cache_entries"] == {("fragments", ""): 1},
    ),
    "pgbouncer": Outage(
        "pgbouncer_server",
        lambda s: PgBouncerCollector(PgBouncerConfig.model_validate({"name": "bouncer", "dsn": s.dsn("pgbouncer")})),
        lambda s: None,
        lambda got: ("bouncer/app", "active") in got["pool_clients"],
        "pgbouncer postgresql://postgres@127.0.0.1",
        lambda s: None,
        lambda got: got["pool_max_connections"] == {("bouncer/app",): 2},
    ),
    "postgres": Outage(
        "postgres_server",
        lambda s: PostgresCollector(PostgresConfig.model_validate(
            {"name": "main-db", "dsn": s.dsn(), "statements": 0})),
        lambda s: None,
        lambda got: got["pool_max_connections"].get(("main-db",)) == 50,
        "terminating connection due to administrator command",  # the server ends the open connection going down
        lambda s: None,
        lambda got: got["pool_max_connections"].get(("main-db",)) == 50,
    ),
    "sql": Outage(
        "postgres_server",
        lambda s: SQLCollector(SQLConfig.model_validate({"name": "shop", "dsn": s.dsn(password=s.password), "queries": [
            {"name": "n", "sql": "SELECT count(*) AS n FROM pg_database WHERE datname = 'postgres'",
             "metrics": [{"name": "shop_n", "value": "n"}]}]})),
        lambda s: None,
        lambda got: got["shop_n"] == {(): 1},
        "connection lost",
        lambda s: None,
        # The run the shutdown interrupted is counted; the target stays the same collector.
        lambda got: got["shop_n"] == {(): 1} and got["sql_query_errors_total"] == {("n",): 1},
    ),
}


@pytest.mark.parametrize("kind", OUTAGES)
def test_stop_and_start_the_server_without_rebuilding_the_probe(kind: str, request: pytest.FixtureRequest) -> None:
    outage = OUTAGES[kind]
    server = request.getfixturevalue(outage.fixture)
    outage.before(server)
    clock = Clock()

    async def main() -> None:
        job = framed(outage.probe(server), clock)
        try:
            assert outage.up(values(await job.attempt()))
            server.stop()
            with pytest.raises(ProbeError, match=outage.error) as failed:
                await job.attempt()
            assert not isinstance(failed.value, BackoffError)
            assert all(secret not in str(failed.value) for secret in job.collector.secrets)  # type: ignore[attr-defined]
            for wait in (1.0, 2.0):  # each delay passed, the target is tried again and is still down
                clock.advance(wait)
                with pytest.raises(ProbeError) as failed:
                    await job.attempt()
                assert not isinstance(failed.value, BackoffError)
            assert job.backoff.delay == 4.0
            # Inside the delay the target gets only a connect to its port, which is refused.
            clock.advance(1.0)
            with pytest.raises(BackoffError):
                await job.attempt()
            server.start()
            outage.restarted(server)
            # The port that was closed accepts again: read now, not when the delay ends 2 s later.
            clock.advance(1.0)
            assert outage.back(values(await job.attempt()))
            assert job.backoff.delay == 0.0
        finally:
            await job.collector.close()

    try:
        run(main)
    finally:
        server.start()
