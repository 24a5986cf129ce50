"""Targets that hang or die under a running daemon: the scrape stays bounded, only that target is down.

Each real server is stopped with SIGSTOP while a scrape is in flight (a hang: the
kernel still accepts connections, nobody answers) and resumed with SIGCONT, or
killed with SIGKILL and started again on the same port. Every case: the scrape
returns within the target's timeout, that target's `apm_up` is 0, the other
targets' figures still arrive, and the target comes back by itself.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.support.daemon import Daemon
from tests.support.servers import MemcachedServer, PgBouncerServer, RedisServer, Server

TIMEOUT = 1.0  # each target's timeout in the daemon's config
# The status page samples every target on its own clock (every 15 s by default). A sample that
# lands between the fault and the test's scrapes starts the hung read itself: the scrape then
# joins it half-way (a duration under the timeout) or finds the target in backoff, and the
# hang no longer shows in the scrape's figures. One sample at start-up, then none in the test.
QUIET_STATUS = {"APM_STATUS_STEP_SECONDS": "3600"}
# What shows that a target's figures arrived: one family per target, by its labels.
FIGURES = {
    "redis": ("apm_cache_entries", {"cache": "sessions"}),
    "memcached": ("apm_cache_entries", {"cache": "fragments"}),
    "pgbouncer": ("apm_pool_max_connections", {"pool": "bouncer/app"}),
    "postgres": ("apm_pool_max_connections", {"pool": "main-db"}),
}


def timed_scrape(daemon: Daemon) -> tuple[float, dict[str, Any]]:
    start = time.monotonic()
    families = daemon.scrape()
    return time.monotonic() - start, families


def sample(families: dict[str, Any], name: str, **labels: str) -> float | None:
    for family in families.values():
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    return None


def up(families: dict[str, Any]) -> dict[str, float]:
    return {s.labels["collector"]: s.value for s in families["apm_up"].samples}


def wait_until_up(daemon: Daemon, seconds: float = 60) -> dict[str, Any]:
    """Scrape until every target is up (the first read also imports its driver, which can
    take longer than a target's timeout on a busy machine), or give up after `seconds`."""
    deadline = time.monotonic() + seconds
    families = daemon.scrape()
    while set(up(families).values()) != {1.0} and time.monotonic() < deadline:
        time.sleep(0.1)
        families = daemon.scrape()
    return families


@pytest.fixture
def servers(redis_server: RedisServer, memcached_server: MemcachedServer,
            pgbouncer_server: PgBouncerServer) -> dict[str, Server]:
    return {"redis": redis_server, "memcached": memcached_server, "pgbouncer": pgbouncer_server,
            "postgres": pgbouncer_server.postgres}


@pytest.mark.parametrize("fault", ["sigstop", "sigkill"])
@pytest.mark.parametrize("kind", list(FIGURES))
def test_a_target_that_hangs_or_dies_costs_only_its_own_figures(
        kind: str, fault: str, servers: dict[str, Server], daemon_factory: Callable[..., Daemon]) -> None:
    redis, memcached, bouncer = servers["redis"], servers["memcached"], servers["pgbouncer"]
    assert isinstance(redis, RedisServer) and isinstance(memcached, MemcachedServer)
    assert isinstance(bouncer, PgBouncerServer)
    redis.client().set("k", "v")
    memcached.set("k", "v")
    timeout = f"{TIMEOUT:g}s"
    daemon = daemon_factory({"statsd": {"listeners": []}, "probes": {
        "redis": [{"name": "sessions", "url": redis.url, "timeout": timeout}],
        "memcached": [{"name": "fragments", "address": memcached.address, "timeout": timeout}],
        "pgbouncer": [{"name": "bouncer", "dsn": bouncer.dsn("pgbouncer"), "timeout": timeout}],
        "postgres": [{"name": "main-db", "dsn": bouncer.postgres.dsn(), "statements": 0, "timeout": timeout}],
    }}, env=QUIET_STATUS)
    server = servers[kind]
    others = [k for k in FIGURES if k != kind]
    try:
        before = wait_until_up(daemon)
        assert up(before) == dict.fromkeys(FIGURES, 1.0)  # every connection is open before the fault

        # The fault lands while a scrape is in flight; that scrape must come back bounded too.
        in_flight: list[tuple[float, dict[str, Any]]] = []
        scraper = threading.Thread(target=lambda: in_flight.append(timed_scrape(daemon)))
        scraper.start()
        if fault == "sigstop":
            server.pause()
        else:
            server.kill()
        scraper.join()
        elapsed, during = timed_scrape(daemon)

        # Bounded by the timeout (plus the frame's reset grace), far below a hang's unbounded wait.
        assert max(in_flight[0][0], elapsed) < 3 * TIMEOUT
        assert up(during) == {**dict.fromkeys(others, 1.0), kind: 0.0}
        for other in others:
            name, labels = FIGURES[other]
            assert sample(during, name, **labels) is not None, other
        name, labels = FIGURES[kind]
        assert sample(during, name, **labels) is None  # absent, not a stale value
        if fault == "sigstop":
            # A hang is waited out to the deadline (by the scrape in flight if the stop caught it,
            # else by the next one), unlike a refusal: the test's pause really was a hang.
            took = [sample(f, "apm_exporter_collector_duration_seconds", collector=kind)
                    for f in (in_flight[0][1], during)]
            assert max(t or 0.0 for t in took) >= TIMEOUT * 0.9, took

        if fault == "sigstop":
            server.resume()
        else:
            server.start()
        back = wait_until_up(daemon)
        assert up(back) == dict.fromkeys(FIGURES, 1.0)
        assert sample(back, name, **labels) is not None
        assert daemon.proc is not None and daemon.proc.poll() is None
    finally:
        server.resume()
        server.start()
