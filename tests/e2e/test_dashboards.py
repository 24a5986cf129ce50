"""Every dashboard panel and every recording rule shows data from a real Prometheus.

One session, the way a user runs it: the daemon (console script, config file) with StatsD on
UDP and TCP, the host, process and container collectors, and a probe of every kind against real
servers (Redis with a list and a stream and two replicas, one of them cut off, memcached,
PgBouncer in front of PostgreSQL with pg_stat_statements and a streaming replica, SQLite, an
HTTPS site); a traffic generator sends StatsD lines for every
built-in convention (docs/statsd-conventions.md), bad lines included, while queries run through
PgBouncer. A real Prometheus loads rules/ and scrapes the daemon every second. Then every
expression of every panel (template variables substituted as Grafana would with "All") and every
recording rule must return at least one series with a finite value: a panel that shows nothing
or only NaN is a failure.
"""

from __future__ import annotations

import base64
import http.server
import math
import os
import random
import re
import shutil
import socket
import sqlite3
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import bcrypt
import pytest
import yaml

from tests.support.daemon import Daemon
from tests.support.net import free_port
from tests.support.prometheus import Prometheus
from tests.support.servers import (
    MemcachedServer,
    PgBouncerServer,
    PostgresReplicaServer,
    RedisServer,
    running,
    workdir,
)
from tests.support.tls import make_pki
from tests.test_rules import (
    RULE_FILES,
    alert_rules,
    dashboards,
    panels,
    recording_rules,
)

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "cgroup"
WORKER_TAG = "apm-e2e-dashboard-worker"
# What Grafana puts in place of the variables when "All" is selected (job and instance enumerate
# their values; `.*` matches them all), and a rate window of several scrapes at 1s.
SUBSTITUTIONS = {"__rate_interval": "1m", "__interval": "15s", "__range": "1h"}
DEADLINE = 120.0  # seconds for every expression to show data; typically met in well under a minute


def substitute(expr: str) -> str:
    return re.sub(r"\$(\w+)", lambda m: SUBSTITUTIONS.get(m.group(1), ".*"), expr)


# --- the things that make traffic --------------------------------------------------------------

def statsd_lines(tick: int) -> list[str]:
    """One round of every built-in convention, plus lines the exporter must count but not store."""
    r = random.Random(tick)
    lines = []
    for _ in range(5):
        lines.append(f"apm.operation:{r.uniform(5, 40):.2f}|ms|#operation:checkout,outcome:ok")
        lines.append(f"apm.operation:{r.uniform(1, 10):.2f}|ms|#operation:search,outcome:ok")
    lines.append(f"apm.operation:{r.uniform(200, 900):.2f}|ms|#operation:checkout,outcome:error")
    for level, hits, misses in (("l1", 3, 1), ("l2", 1, 1)):
        lines += [f"apm.cache.hit:{hits}|c|#cache:prices,level:{level}",
                  f"apm.cache.miss:{misses}|c|#cache:prices,level:{level}",
                  f"apm.cache.eviction:1|c|#cache:prices,level:{level}",
                  f"apm.cache.entries:{min(100, 10 + tick)}|g|#cache:prices,level:{level}",
                  f"apm.cache.capacity:100|g|#cache:prices,level:{level}"]
    lines.append("apm.cache.promotion:1|c|#cache:prices,level:l1")
    lines += ["apm.pool.active:7|g|#pool:shop-db", "apm.pool.idle:3|g|#pool:shop-db",
              "apm.pool.max:10|g|#pool:shop-db", "apm.pool.pending:2|g|#pool:shop-db",
              f"apm.pool.wait:{r.uniform(0.5, 30):.2f}|ms|#pool:shop-db", "apm.pool.timeout:1|c|#pool:shop-db"]
    lines += [f"apm.queue.depth:{100 + 3 * tick}|g|#queue:emails",
              f"apm.batch.size:{r.randint(10, 60)}|h|#queue:emails",
              f"apm.batch.duration:{r.uniform(50, 400):.1f}|ms|#queue:emails",
              "apm.batch.items:40|c|#queue:emails,outcome:ok", "apm.batch.items:1|c|#queue:emails,outcome:error"]
    lines += ["this is not statsd",        # parse error (malformed_line)
              "_e{5,4}:title|text",        # DogStatsD event: ignored
              "legacy.requests:1|c"]       # no convention: the default rule (unmapped)
    return lines


class Traffic:
    """Background threads that keep every family moving until stop()."""

    def __init__(self, udp: int, tcp: int, pgbouncer: PgBouncerServer) -> None:
        self.udp, self.tcp, self.pgbouncer = udp, tcp, pgbouncer
        self.stopping = threading.Event()
        self.errors: list[BaseException] = []
        self.threads = [threading.Thread(target=self._guard, args=(f,), daemon=True)
                        for f in (self._statsd, self._queries)]

    def start(self) -> Traffic:
        for t in self.threads:
            t.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        for t in self.threads:
            t.join(10)

    def _guard(self, work: Callable[[], None]) -> None:
        try:
            work()
        except BaseException as err:  # noqa: BLE001  (reported by the test, not lost in a thread)
            self.errors.append(err)

    def _statsd(self) -> None:
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        tick = 0
        while not self.stopping.is_set():
            for line in statsd_lines(tick):  # one line a datagram, as most clients send
                udp.sendto(line.encode(), ("127.0.0.1", self.udp))
            with socket.create_connection(("127.0.0.1", self.tcp), timeout=5) as tcp:
                tcp.sendall(b"apm.operation:3|ms|#operation:search,outcome:ok\n")
            tick += 1
            self.stopping.wait(0.25)
        udp.close()

    def _queries(self) -> None:
        with self.pgbouncer.connect("app") as conn:
            conn.autocommit = True
            while not self.stopping.is_set():
                conn.execute("SELECT count(*) FROM pg_class WHERE relname LIKE 'pg%'").fetchone()
                self.stopping.wait(0.1)


class LiveCgroup:
    """A copy of the v2 fixture cgroup whose CPU counters advance, so rate() and throttling move."""

    def __init__(self, root: Path) -> None:
        shutil.copytree(FIXTURES / "v2", root)
        self.root = root
        self.cpu_stat = root / "sys" / "kubepods.slice" / "pod1" / "app" / "cpu.stat"
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        usage, periods, throttled, throttled_us = 12_500_000, 400, 25, 1_500_000
        while not self.stopping.is_set():
            usage, periods, throttled, throttled_us = usage + 50_000, periods + 10, throttled + 2, throttled_us + 4_000
            tmp = self.cpu_stat.with_suffix(".tmp")
            tmp.write_text(f"usage_usec {usage}\nuser_usec {usage * 4 // 5}\nsystem_usec {usage // 5}\n"
                           f"nr_periods {periods}\nnr_throttled {throttled}\nthrottled_usec {throttled_us}\n")
            os.replace(tmp, self.cpu_stat)  # a reader never sees half a file
            self.stopping.wait(0.5)


class _Ok(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def https_site(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """An HTTPS server with a certificate from a test CA: (url, CA file)."""
    pki = make_pki(tmp_path / "pki")
    server = http.server.HTTPServer(("127.0.0.1", 0), _Ok)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki.server.cert, pki.server.key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{server.server_address[1]}/health", pki.ca.cert
    server.shutdown()
    server.server_close()


@pytest.fixture
def orphan_redis_replica() -> Iterator[RedisServer]:
    """A Redis replica of a primary that never runs: its link stays down (ApmReplicationBroken)."""
    never_started = RedisServer(workdir("redis-absent"))
    with running(RedisServer(workdir("redis-orphan"), replica_of=never_started)) as server:
        yield server  # type: ignore[misc]
    shutil.rmtree(never_started.workdir, ignore_errors=True)


@pytest.fixture
def worker() -> Iterator[subprocess.Popen[bytes]]:
    """A child process for the `process` collector's group to find."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)", WORKER_TAG])
    yield proc
    proc.kill()
    proc.wait()


# --- the test ------------------------------------------------------------------------------------

def _has_data(result: list[dict[str, Any]]) -> bool:
    values = [s["value"][1] for s in result if "value" in s]
    return any(math.isfinite(float(v)) for v in values)


def _auth(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


USER, PASSWORD = "prometheus", "e2e-dashboards"
AUTH = _auth(USER, PASSWORD)


def _wait_ready(daemon: Daemon, timeout: float = 30.0) -> None:
    """/-/ready with credentials (the fixture's own wait is anonymous, so it cannot be used here)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert daemon.proc is not None
        if daemon.proc.poll() is not None:
            raise RuntimeError(f"daemon exited with {daemon.proc.returncode}; log:\n{daemon.log()}")
        try:
            if daemon.get("/-/ready", AUTH)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"daemon not ready; log:\n{daemon.log()}")


def _query(prom: Prometheus, expr: str) -> list[dict[str, Any]]:
    """Instant query; a query Prometheus rejects fails the test with its error, not a bare 400."""
    try:
        return prom.query(expr)
    except urllib.error.HTTPError as err:
        pytest.fail(f"Prometheus rejected {expr!r}: {err.read().decode(errors='replace')}")


def _active_alerts(prom: Prometheus) -> set[str]:
    """Alerts pending or firing."""
    return {a["labels"]["alertname"] for a in prom.api("alerts")["alerts"]}


def _prepare_servers(redis: RedisServer, memcached: MemcachedServer, tmp_path: Path) -> Path:
    client = redis.client()
    client.rpush("jobs", *range(25))
    client.set("user:1", "a")
    for key in ("user:1", "user:1", "user:2"):
        client.get(key)
    client.xgroup_create("events", "workers", id="0", mkstream=True)
    for i in range(10):
        client.xadd("events", {"n": i})
    client.xreadgroup("workers", "w1", {"events": ">"}, count=4)  # 4 pending, 6 not delivered
    memcached.set("k", "v")
    memcached.get("k")
    memcached.get("absent")
    db = tmp_path / "app.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE orders (status TEXT)")
        conn.executemany("INSERT INTO orders VALUES (?)", [("paid",), ("paid",), ("shipped",)])
    return db


# Bucket rates of families only StatsD feeds (the HTTP and SQL probes keep classic operation
# histograms): with native histograms they are empty by design.
CLASSIC_ONLY = {"instance_pool_le:apm_pool_wait_duration_seconds_bucket:rate5m",
                "instance_queue_le:apm_batch_size_bucket:rate5m", "instance_queue_le:apm_batch_duration_seconds_bucket:rate5m"}


# classic: histograms as classic buckets; native: every StatsD observer family exposed both
# ways (`histogram_type: both`) to a Prometheus with native histograms, which then stores
# only the native series, so every histogram panel and rule takes its native side.
@pytest.mark.parametrize("histograms", ["classic", "native"])
def test_every_panel_and_recording_rule_shows_data(
        daemon_factory: Callable[..., Daemon], tmp_path: Path, redis_server: RedisServer,
        redis_replica: RedisServer, orphan_redis_replica: RedisServer,
        memcached_server: MemcachedServer, pgbouncer_server: PgBouncerServer,
        postgres_replica: PostgresReplicaServer,
        https_site: tuple[str, Path], worker: subprocess.Popen[bytes], histograms: str) -> None:
    postgres = pgbouncer_server.postgres
    db = _prepare_servers(redis_server, memcached_server, tmp_path)
    cgroup = LiveCgroup(tmp_path / "cgroup")
    url, ca = https_site
    udp, tcp = free_port(socket.SOCK_DGRAM), free_port()
    config: dict[str, Any] = {
        "statsd": {"listeners": [f"udp://127.0.0.1:{udp}", f"tcp://127.0.0.1:{tcp}"],
                   **({"defaults": {"histogram_options": {"histogram_type": "both"}}}
                      if histograms == "native" else {})},
        "collectors": {
            "host": {"enabled": True},
            "process": {"enabled": True, "groups": [{"name": "worker", "cmdline_regex": WORKER_TAG}]},
            "container": {"enabled": True, "cgroup_root": str(cgroup.root / "sys"),
                          "proc_root": str(cgroup.root / "proc")},
        },
        "probes": {
            "redis": [{"name": "sessions", "url": redis_server.url,
                       "queues": [{"name": "jobs"}, {"name": "events", "key": "events"}]},
                      {"name": "sessions-replica", "url": redis_replica.url},
                      {"name": "orphan-replica", "url": orphan_redis_replica.url}],
            "memcached": [{"name": "fragments", "address": memcached_server.address}],
            "pgbouncer": [{"name": "bouncer", "dsn": pgbouncer_server.dsn("pgbouncer")}],
            "postgres": [{"name": "main-db", "statements": 5,
                          "dsn": "postgresql://postgres:${PG_PASSWORD}@" + postgres.address + "/postgres"},
                         {"name": "replica-db", "statements": 0, "dsn": postgres_replica.dsn()}],
            "sql": [{"name": "app", "dsn": f"sqlite://{db}", "queries": [
                {"name": "orders_by_status", "explain": True,
                 "sql": "SELECT status, count(*) AS n FROM orders GROUP BY status",
                 "metrics": [{"name": "app_orders", "value": "n", "labels": ["status"]}]}]}],
            "http": [{"name": "api", "url": url, "ca_file": str(ca), "timeout": "2s"}],
        },
    }
    # Behind basic auth, as a production scrape is (and so the auth-failure panel has data).
    web = tmp_path / "web.yml"
    web.write_text(f"basic_auth_users:\n  {USER}: {bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode()}\n")
    daemon = daemon_factory(config, "--web.config.file", str(web), wait=False, env={"PG_PASSWORD": postgres.password})
    _wait_ready(daemon)
    assert daemon.get("/-/reload", AUTH, method="POST")[0] == 200  # so the reload counter has a series
    assert daemon.get("/metrics", _auth(USER, "wrong"))[0] == 401
    prom_dir = tmp_path / "prometheus"
    prom_dir.mkdir()
    prom = Prometheus(prom_dir, [f"127.0.0.1:{daemon.port}"], rule_files=[str(p) for p in RULE_FILES],
                      features=("native-histograms",) if histograms == "native" else ())
    scrape = yaml.safe_load(prom.config_path.read_text())
    scrape["scrape_configs"][0]["basic_auth"] = {"username": USER, "password": PASSWORD}
    prom.config_path.write_text(yaml.safe_dump(scrape))
    cgroup.thread.start()
    traffic = Traffic(udp, tcp, pgbouncer_server).start()
    prom.start()
    try:
        # Every rule loaded and evaluates without error.
        assert prom.wait_for('up{job="apm"} == 1'), "Prometheus never scraped the daemon"
        expressions: dict[str, str] = {}
        for name, d in dashboards().items():
            for p in panels(d):
                for t in p["targets"]:
                    expressions[f"{name} / {p['title']} / {t['refId']}"] = substitute(t["expr"])
            for v in d["templating"]["list"]:
                if v["type"] == "query":
                    m = re.fullmatch(r"label_values\(([\w:]+)(?:\{(.*)\})?, *(\w+)\)", v["definition"])
                    assert m, v["definition"]
                    metric, matchers, label = m.groups()
                    selector = ", ".join(filter(None, [matchers, f'{label}!=""']))
                    expressions[f"{name} / ${v['name']}"] = substitute(f"count by ({label}) ({metric}{{{selector}}})")
        for rule in recording_rules():
            if histograms == "native" and rule["record"] in CLASSIC_ONLY:
                continue
            expressions[f"rule {rule['record']}"] = "{__name__=" + f'"{rule["record"]}"' + "}"

        missing = dict(expressions)
        deadline = time.monotonic() + DEADLINE
        while missing and time.monotonic() < deadline and not traffic.errors:
            for key, expr in list(missing.items()):
                if _has_data(_query(prom, expr)):
                    del missing[key]
            time.sleep(1)
        assert not traffic.errors, traffic.errors
        assert not missing, "no data (or only NaN) for:\n" + "\n".join(f"  {k}: {e}" for k, e in missing.items())

        groups = prom.api("rules")["groups"]
        loaded = [r for g in groups for r in g["rules"]]
        assert len(loaded) == len(recording_rules()) + len(alert_rules())
        assert all(r["health"] == "ok" for r in loaded), [(r["name"], r.get("lastError")) for r in loaded
                                                         if r["health"] != "ok"]
        # The alerts read the same data: what the traffic does on purpose makes them pending
        # (their `for` is minutes), and nothing about the exporter or its targets is wrong.
        # The orphan replica's primary never existed: ApmReplicationBroken is pending on purpose.
        expected = {"ApmOperationErrorRatioHigh", "ApmPoolClientsWaiting", "ApmPoolTimeouts",
                    "ApmQueueBacklogGrowing", "ApmStatsdParseErrors", "ApmReplicationBroken"}
        active = _active_alerts(prom)
        while not expected <= active and time.monotonic() < deadline + 30:
            time.sleep(1)
            active = _active_alerts(prom)
        assert expected <= active, active
        assert not active & {"ApmTargetDown", "ApmExporterDown", "ApmCollectorFailing",
                             "ApmExporterConfigReloadFailed", "ApmStatsdSamplesDropped"}, active
    finally:
        traffic.stop()
        cgroup.stopping.set()
        prom.stop()
