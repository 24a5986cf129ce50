"""Every probe through the real daemon: config file in, /metrics out, up per target, a server stop/start."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.support.daemon import Daemon
from tests.support.servers import BlackHole, MemcachedServer, PgBouncerServer, RedisServer


def wait_for_value(daemon: Daemon, want: float, name: str, **labels: str) -> float | None:
    """Scrape until the sample has the wanted value (the probe's backoff delays recovery)."""
    deadline = time.monotonic() + 60
    got = daemon.value(name, **labels)
    while got != want and time.monotonic() < deadline:
        time.sleep(0.2)
        got = daemon.value(name, **labels)
    return got


def test_every_probe_through_the_daemon(
        daemon_factory: Callable[..., Daemon], promtool: Callable[[str], str], tmp_path: Path,
        redis_server: RedisServer, memcached_server: MemcachedServer, pgbouncer_server: PgBouncerServer,
        black_hole: BlackHole) -> None:
    postgres = pgbouncer_server.postgres
    client = redis_server.client()
    client.rpush("jobs", *range(5))
    client.get("missing")
    memcached_server.set("k", "v")
    memcached_server.get("k")
    db = tmp_path / "app.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE t (k TEXT)")
        conn.executemany("INSERT INTO t VALUES (?)", [("a",), ("a",), ("b",)])

    config: dict[str, Any] = {
        "statsd": {"listeners": []},
        "probes": {
            "redis": [{"name": "sessions", "url": redis_server.url, "queues": [{"name": "jobs"}]},
                      {"name": "dead", "url": "redis://127.0.0.1:1/0", "timeout": "500ms"}],
            "memcached": [{"name": "fragments", "address": memcached_server.address}],
            "pgbouncer": [{"name": "bouncer", "dsn": pgbouncer_server.dsn("pgbouncer")}],
            "postgres": [{"name": "main-db", "dsn": "postgresql://postgres:${PG_PASSWORD}@" + postgres.address
                          + "/postgres", "statements": 3}],
            "sql": [{"name": "app", "dsn": f"sqlite://{db}", "queries": [
                {"name": "keys", "explain": True, "sql": "SELECT k, count(*) AS n FROM t GROUP BY k",
                 "metrics": [{"name": "app_keys", "value": "n", "labels": ["k"]}]}]}],
            "http": [{"name": "self", "url": "http://127.0.0.1:1/", "timeout": "500ms"},
                     {"name": "hole", "url": f"http://{black_hole.address}/", "timeout": "500ms"}],
        },
    }
    daemon = daemon_factory(config, env={"PG_PASSWORD": postgres.password})
    text = daemon.scrape_text()

    up = {(s.labels["collector"], s.labels["target"]): s.value
          for s in daemon.scrape()["apm_up"].samples}
    assert up == {("redis", "sessions"): 1, ("redis", "dead"): 0, ("memcached", "fragments"): 1,
                  ("pgbouncer", "bouncer"): 1, ("postgres", "main-db"): 1, ("sql", "app"): 1,
                  ("http", "self"): 0, ("http", "hole"): 0}
    assert daemon.value("apm_cache_requests_total", cache="sessions", result="miss") == 1
    assert daemon.value("apm_cache_requests_total", cache="fragments", result="hit") == 1
    assert daemon.value("apm_queue_depth", queue="jobs") == 5
    assert daemon.value("apm_pool_max_connections", pool="bouncer/app") == 2
    assert daemon.value("apm_pool_max_connections", pool="main-db") == 50
    assert daemon.value("app_keys", k="a") == 2
    assert daemon.value("apm_sql_query_full_scan", query="keys", table="t") == 1
    assert daemon.value("apm_operation_duration_seconds_count", operation="keys", outcome="ok") >= 1
    # A refused HTTP request is an error observation, exported while the target is down.
    assert (daemon.value("apm_operation_duration_seconds_count", operation="self", outcome="error") or 0) >= 1
    assert promtool(text) == ""
    assert postgres.password not in text + daemon.log()


def test_redis_stop_and_start_turns_up_0_then_1_without_restarting_the_daemon(
        daemon_factory: Callable[..., Daemon], redis_server: RedisServer) -> None:
    redis_server.client().rpush("jobs", 1, 2, 3)
    daemon = daemon_factory({"statsd": {"listeners": []}, "probes": {"redis": [
        {"name": "broker", "url": redis_server.url, "timeout": "1s", "queues": [{"name": "jobs"}]}]}})
    up = {"name": "apm_up", "collector": "redis", "target": "broker"}
    try:
        assert daemon.value(**up) == 1
        assert daemon.value("apm_queue_depth", queue="jobs") == 3
        redis_server.stop()
        assert daemon.value(**up) == 0  # the very next scrape answers, with up 0
        assert daemon.value("apm_queue_depth", queue="jobs") is None  # absent, not a stale 3
        redis_server.start()
        redis_server.client().rpush("jobs", 9)
        assert wait_for_value(daemon, 1, **up) == 1
        assert daemon.value("apm_queue_depth", queue="jobs") == 1
        assert daemon.proc is not None and daemon.proc.poll() is None
    finally:
        redis_server.start()
