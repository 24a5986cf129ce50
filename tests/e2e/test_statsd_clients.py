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
        deadline = time.monotonic() + 30
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
        deadline = time.monotonic() + 30
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


def test_datadog_container_id_and_timestamps(running: Running, promtool: Callable[[str], str]) -> None:
    """What current datadog clients send inside containers (`|c:<id>`, DogStatsD 1.2) and with
    their *_with_timestamp calls (`|T<unix>`, 1.3): read as statsd_exporter reads them, the
    container id as a `container_id` label, the timestamp dropped."""
    client = DogStatsd(host="127.0.0.1", port=running.udp, disable_telemetry=True, origin_detection_enabled=False,
                       disable_buffering=True, container_id="c0ffee42")
    client.increment("app.jobs", 2, tags=["queue:mail"])
    client.gauge_with_timestamp("app.backlog", 17, int(time.time()) - 30, tags=["queue:mail"])
    client.count_with_timestamp("app.retries", 3, int(time.time()) - 30, tags=["queue:mail"])
    client.flush()
    client.close_socket()
    running.wait_lines(3)
    assert running.value("app_jobs_total", queue="mail", container_id="c0ffee42") == 2
    assert running.value("app_backlog", queue="mail", container_id="c0ffee42") == 17
    assert running.value("app_retries_total", queue="mail", container_id="c0ffee42") == 3
    assert not running.value("apm_exporter_statsd_parse_errors_total", reason="malformed_timestamp")
    assert promtool(running.text()) == ""


def test_pypi_statsd_client_sample_rates_and_etsy_multi_metric_lines(running: Running) -> None:
    """The `statsd` client's sampled lines, and an Etsy multi-metric line on its socket."""
    client = pystatsd.StatsClient("127.0.0.1", running.udp)
    sent = 0
    while (running.value("apm_exporter_statsd_lines_total", listener="udp://127.0.0.1:0") or 0) == 0:
        client.incr("sampled.hits", 1, rate=0.5)  # sent about every other call, as `|@0.5`
        sent += 1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(b"etsy.multi:1|c:2|c|@0.5", ("127.0.0.1", running.udp))
    deadline = time.monotonic() + 30
    while running.value("etsy_multi_total") is None:
        assert time.monotonic() < deadline, running.text()
        time.sleep(0.02)
    hits = running.value("sampled_hits_total")
    assert hits is not None and hits % 2 == 0 and hits >= 2  # each line counts 1 / 0.5
    assert running.value("etsy_multi_total") == 1 + 2 / 0.5


def test_a_family_whose_series_carry_different_tags_is_scraped_and_queried_by_prometheus(
        tmp_path: Any, promtool: Callable[[str], str]) -> None:
    """statsd_exporter drops the line with the extra tag (its issue #114); we keep it, and a real
    Prometheus scrapes the family and answers queries over both label sets."""
    from tests.support.prometheus import Prometheus

    port = free_port(socket.SOCK_DGRAM)
    (tmp_path / "d").mkdir()
    daemon = Daemon(tmp_path / "d", {"statsd": {"listeners": [f"udp://127.0.0.1:{port}"]}})
    daemon.start()
    prom = Prometheus(tmp_path, [f"127.0.0.1:{daemon.port}"]).start()
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for line in (b"jobs.done:2|c|#queue:mail", b"jobs.done:5|c|#queue:pdf,region:eu"):
                s.sendto(line, ("127.0.0.1", port))
        deadline = time.monotonic() + 30
        while daemon.value("jobs_done_total", queue="pdf", region="eu") is None:
            assert time.monotonic() < deadline, daemon.log()
            time.sleep(0.05)
        text = daemon.scrape_text()
        assert promtool(text) == ""
        assert daemon.value("jobs_done_total", queue="mail", region="") == 2  # empty: absent to Prometheus
        both = prom.wait_for('jobs_done_total{job="apm"}')
        assert sorted((s["metric"]["queue"], s["metric"].get("region"), s["value"][1]) for s in both) == [
            ("mail", None, "2"), ("pdf", "eu", "5")]
        summed = prom.wait_for('sum(jobs_done_total{job="apm"})')
        assert summed[0]["value"][1] == "7"
    finally:
        prom.stop()
        daemon.stop()
