"""Real StatsD clients nobody here wrote (PyPI `statsd`, Datadog's DogStatsD) against our listener.

What is scraped (rendered by the exposition, read back by prometheus_client's
parser and checked by promtool) must equal exactly what the clients sent.
"""

from __future__ import annotations

import asyncio
import math
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import statsd as pystatsd
from datadog.dogstatsd import DogStatsd
from prometheus_client.parser import text_string_to_metric_families

from exporter.exposition import render
from exporter.statsd import StatsD, StatsdConfig
from exporter.store import Store
from tests.support.daemon import Daemon
from tests.support.net import free_port

TIMINGS_MS = [0.5, 3.0, 12.5, 40.0, 99.9, 250.0, 1200.0] * 20


class Running:
    """A StatsD ingest on free ports in a background event loop, scraped through the exposition."""

    def __init__(self) -> None:
        self.store, self.stats = Store(), Store()
        config = StatsdConfig(listeners=["udp://127.0.0.1:0", "tcp://127.0.0.1:0"],
                              mappings=[{"match": "shop.*.orders", "name": "shop_orders", "labels": {"shop": "$1"}}])
        self.statsd = StatsD(config, self.store, self.stats)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.statsd.start(), self.loop).result(10)
        ports = self.statsd.ports
        self.udp, self.tcp = ports["udp://127.0.0.1:0"], ports["tcp://127.0.0.1:0"]

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.statsd.stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)

    def text(self) -> str:
        return render([*self.store.collect(), *self.stats.collect()]).decode()

    def samples(self) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        return {(s.name, frozenset(s.labels.items())): s.value
                for f in text_string_to_metric_families(self.text()) for s in f.samples}

    def value(self, name: str, **labels: str) -> float | None:
        return self.samples().get((name, frozenset(labels.items())))

    def wait_lines(self, n: int, listener: str = "udp://127.0.0.1:0") -> None:
        deadline = time.monotonic() + 10
        while (self.value("apm_exporter_statsd_lines_total", listener=listener) or 0) < n:
            if time.monotonic() > deadline:
                raise AssertionError(f"only {self.value('apm_exporter_statsd_lines_total', listener=listener)} "
                                     f"of {n} lines arrived")
            time.sleep(0.02)


@pytest.fixture
def running() -> Iterator[Running]:
    r = Running()
    yield r
    r.stop()


def hist(r: Running, name: str, **labels: str) -> tuple[float | None, float | None]:
    return r.value(name + "_count", **labels), r.value(name + "_sum", **labels)


def test_pypi_statsd_client_udp(running: Running, promtool: Callable[[str], str]) -> None:
    client = pystatsd.StatsClient("127.0.0.1", running.udp)
    # The `statsd` package has no tags; InfluxDB-style tags in the name are how its users add them.
    for ms in TIMINGS_MS:
        client.timing("apm.operation,operation=checkout,outcome=ok", ms)
    for _ in range(50):
        client.incr("shop.eu.orders", 3)
    client.gauge("queue.depth", 40)
    client.gauge("queue.depth", 2, delta=True)
    client.gauge("queue.depth", -5, delta=True)
    client.incr("apm.cache.hit,cache=users")
    client.incr("apm.cache.miss,cache=users", 2)
    running.wait_lines(len(TIMINGS_MS) + 50 + 3 + 2)

    count, total = hist(running, "apm_operation_duration_seconds", operation="checkout", outcome="ok")
    assert count == len(TIMINGS_MS)
    assert total is not None and math.isclose(total, sum(TIMINGS_MS) / 1000, rel_tol=1e-9)
    assert running.value("apm_operation_duration_seconds_bucket", operation="checkout", outcome="ok",
                         le="0.05") == 4 * 20
    assert running.value("shop_orders_total", shop="eu") == 150
    assert running.value("queue_depth") == 37
    assert running.value("apm_cache_requests_total", cache="users", level="", result="hit") == 1
    assert running.value("apm_cache_requests_total", cache="users", level="", result="miss") == 2
    assert promtool(running.text()) == ""


def test_pypi_statsd_client_tcp_and_pipeline(running: Running) -> None:
    client = pystatsd.TCPStatsClient("127.0.0.1", running.tcp)
    with client.pipeline() as pipe:
        for ms in TIMINGS_MS:
            pipe.timing("apm.pool.wait,pool=db", ms)
        pipe.gauge("apm.pool.max,pool=db", 10)
    client.close()
    running.wait_lines(len(TIMINGS_MS) + 1, "tcp://127.0.0.1:0")
    count, total = hist(running, "apm_pool_wait_duration_seconds", pool="db")
    assert count == len(TIMINGS_MS) and total is not None
    assert math.isclose(total, sum(TIMINGS_MS) / 1000, rel_tol=1e-9)
    assert running.value("apm_pool_max_connections", pool="db") == 10


def test_datadog_dogstatsd(running: Running, promtool: Callable[[str], str]) -> None:
    client = DogStatsd(host="127.0.0.1", port=running.udp, disable_telemetry=True,
                       origin_detection_enabled=False, disable_buffering=True)
    for ms in TIMINGS_MS:
        client.timing("apm.operation", ms, tags=["operation:login", "status:error", "env:prod"])
    for seconds in (0.02, 0.2, 2.0):
        client.distribution("apm.batch.duration", seconds, tags=["queue:emails"])
        client.histogram("apm.batch.size", seconds * 100, tags=["queue:emails"])
    for _ in range(30):
        client.increment("apm.batch.items", 4, tags=["queue:emails", "outcome:ok"])
    client.gauge("apm.pool.active", 3, tags=["pool:db"])
    client.increment("apm.pool.active", tags=["pool:db"])  # a counter on a gauge convention: rejected, counted
    client.gauge("app.temperature", 21.5, tags=["room:lab"])
    client.set("app.users", "alice", tags=["room:lab"])
    client.set("app.users", "bob", tags=["room:lab"])
    client.set("app.users", "alice", tags=["room:lab"])
    client.event("deploy", "v1.2 rolled out", tags=["env:prod"])
    client.service_check("app.ok", 0)
    client.flush()
    client.close_socket()
    running.wait_lines(len(TIMINGS_MS) + 6 + 30 + 2 + 1 + 3 + 2)

    count, total = hist(running, "apm_operation_duration_seconds", operation="login", outcome="error")
    assert count == len(TIMINGS_MS)
    assert total is not None and math.isclose(total, sum(TIMINGS_MS) / 1000, rel_tol=1e-9)
    count, total = hist(running, "apm_batch_duration_seconds", queue="emails")
    assert count == 3 and total is not None and math.isclose(total, 2.22)
    count, total = hist(running, "apm_batch_size", queue="emails")
    assert count == 3 and total is not None and math.isclose(total, 222.0)
    assert running.value("apm_batch_items_total", queue="emails", outcome="ok") == 120
    assert running.value("apm_pool_connections", pool="db", state="active") == 3
    assert running.value("app_temperature", room="lab") == 21.5
    assert running.value("app_users", room="lab") == 2
    assert running.value("apm_exporter_statsd_parse_errors_total", reason="convention_type_mismatch") == 1
    assert running.value("apm_exporter_statsd_lines_ignored_total", reason="event") == 1
    assert running.value("apm_exporter_statsd_lines_ignored_total", reason="service_check") == 1
    assert promtool(running.text()) == ""


def test_through_the_daemon(tmp_path: Any) -> None:
    """One pass through the real daemon: console script, config file, /metrics."""
    port = free_port(socket.SOCK_DGRAM)
    daemon = Daemon(tmp_path, {"statsd": {"listeners": [f"udp://127.0.0.1:{port}"], "mappings": [
        {"match": "shop.*.orders", "name": "shop_orders", "labels": {"shop": "$1"}}]}})
    daemon.start()
    try:
        client = DogStatsd(host="127.0.0.1", port=port, disable_telemetry=True, origin_detection_enabled=False,
                           disable_buffering=True)
        for ms in TIMINGS_MS:
            client.timing("apm.operation", ms, tags=["operation:checkout"])
        client.increment("shop.eu.orders", 7)
        client.gauge("apm.queue.depth", 12, tags=["queue:emails"])
        client.flush()
        deadline = time.monotonic() + 10
        lines = f"udp://127.0.0.1:{port}"
        while (daemon.value("apm_exporter_statsd_lines_total", listener=lines) or 0) < len(TIMINGS_MS) + 2:
            assert time.monotonic() < deadline, daemon.log()
            time.sleep(0.05)
        assert daemon.value("apm_operation_duration_seconds_count", operation="checkout", outcome="ok") == len(
            TIMINGS_MS)
        total = daemon.value("apm_operation_duration_seconds_sum", operation="checkout", outcome="ok")
        assert total is not None and math.isclose(total, sum(TIMINGS_MS) / 1000, rel_tol=1e-9)
        assert daemon.value("shop_orders_total", shop="eu") == 7
        assert daemon.value("apm_queue_depth", queue="emails") == 12
    finally:
        daemon.stop()
