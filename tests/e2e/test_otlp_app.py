"""A real instrumented app pushing over OTLP fills the pool and operation panels.

A WSGI app wrapped in opentelemetry-instrumentation-wsgi's middleware, with a SQLAlchemy engine
instrumented by opentelemetry-instrumentation-sqlalchemy, exports through the SDK's OTLP/HTTP
exporter every half second to the daemon (started as a user starts it). Nobody here wrote the
instrumentation: its metric names, units and attributes are whatever it emits. A real Prometheus
loads rules/ and scrapes the daemon; every pool and operation panel query of the shipped
dashboards must show data, and the sums must be what the app did.
"""

from __future__ import annotations

import math
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest
import sqlalchemy
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
from opentelemetry.instrumentation.wsgi import OpenTelemetryMiddleware
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource

from tests.e2e.test_dashboards import substitute
from tests.e2e.test_otlp import otlp_config
from tests.support.daemon import Daemon
from tests.support.net import free_port
from tests.support.prometheus import Prometheus
from tests.test_rules import RULE_FILES, metric_names, panel_exprs, recording_rules

pytestmark = pytest.mark.slow
# What the app's instrumentation fills; a panel reading only these (directly or through the
# recording rules) must show data.
# (apm_operation_duration_seconds is the native side of the panels' `classic or native`: empty here.)
FILLED = {"apm_pool_connections", "apm_operation_duration_seconds_bucket", "apm_operation_duration_seconds_count",
          "apm_operation_duration_seconds_sum", "apm_operation_duration_seconds"}
DEADLINE = 120.0


def base_metrics(expr: str) -> set[str]:
    """The exporter's metrics an expression reads, through any recording rules."""
    rules = {r["record"]: r["expr"] for r in recording_rules()}
    out: set[str] = set()
    for name in metric_names(expr):
        out |= base_metrics(rules[name]) if name in rules else {name}
    return out


class App:
    """The instrumented WSGI app: /items reads the database, /fail answers 500."""

    def __init__(self, tmp: Path, endpoint: str) -> None:
        self.reader = PeriodicExportingMetricReader(OTLPMetricExporter(endpoint=endpoint), export_interval_millis=500)
        self.provider = MeterProvider(metric_readers=[self.reader],
                                      resource=Resource.create({"service.name": "orders-app"}))
        self.engine = sqlalchemy.create_engine(f"sqlite:///{tmp / 'orders.db'}", poolclass=sqlalchemy.pool.QueuePool,
                                               pool_size=3, max_overflow=0, pool_logging_name="orders-db")
        SQLAlchemyInstrumentor().instrument(engine=self.engine, meter_provider=self.provider)
        with self.engine.begin() as conn:
            conn.execute(sqlalchemy.text("CREATE TABLE orders (id INTEGER PRIMARY KEY)"))
            conn.execute(sqlalchemy.text("INSERT INTO orders VALUES (1), (2)"))
        app = OpenTelemetryMiddleware(self._wsgi, meter_provider=self.provider)

        class Quiet(WSGIRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

        self.server: WSGIServer = make_server("127.0.0.1", free_port(), app, handler_class=Quiet)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.held: list[Any] = []

    def _wsgi(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        if environ["PATH_INFO"] == "/fail":
            start_response("500 Internal Server Error", [("Content-Type", "text/plain")])
            return [b"failed\n"]
        with self.engine.connect() as conn:
            n = conn.execute(sqlalchemy.text("SELECT count(*) FROM orders")).scalar_one()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [f"{n}\n".encode()]

    def get(self, path: str) -> int:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.server.server_port}{path}", timeout=10) as r:
                return r.status
        except urllib.error.HTTPError as err:
            return err.code

    def hold(self, n: int) -> None:
        """Check n connections out of the pool and keep them (active), the rest stay idle."""
        self.held += [self.engine.connect() for _ in range(n)]
        for conn in self.held:
            conn.execute(sqlalchemy.text("SELECT 1"))

    def close(self) -> None:
        for conn in self.held:
            conn.close()
        self.server.shutdown()
        self.provider.shutdown()
        SQLAlchemyInstrumentor().uninstrument()


@pytest.fixture
def app_and_prometheus(daemon_factory: Callable[..., Daemon], tmp_path: Path) -> Iterator[tuple[App, Prometheus]]:
    http, grpc = free_port(), free_port()
    daemon = daemon_factory(otlp_config(http, grpc))
    app = App(tmp_path, f"http://127.0.0.1:{http}/v1/metrics")
    prom_dir = tmp_path / "prometheus"
    prom_dir.mkdir()
    prom = Prometheus(prom_dir, [f"127.0.0.1:{daemon.port}"], rule_files=[str(p) for p in RULE_FILES])
    try:
        prom.start()
        yield app, prom
    finally:
        app.close()
        prom.stop()


def finite(result: list[dict[str, Any]]) -> bool:
    return any(math.isfinite(float(r["value"][1])) for r in result)


def test_instrumented_app_fills_the_pool_and_operation_panels(app_and_prometheus: tuple[App, Prometheus]) -> None:
    app, prom = app_and_prometheus
    app.hold(3)  # the pool opens all three connections
    app.held.pop().close()  # one goes back: 2 active, 1 idle (requests below borrow and return it)
    made = {"ok": 0, "error": 0}
    stop = threading.Event()

    def traffic() -> None:  # steady requests, so rate() moves between scrapes; one failure in five
        while not stop.is_set():
            for _ in range(4):
                assert app.get("/items") == 200
                made["ok"] += 1
            assert app.get("/fail") == 500
            made["error"] += 1
            time.sleep(0.1)

    thread = threading.Thread(target=traffic, daemon=True)
    thread.start()
    try:
        exprs = [(d, t, e) for d, t, e in panel_exprs() if base_metrics(e) and base_metrics(e) <= FILLED]
        assert len(exprs) >= 8, exprs  # the pool and operation panels of the overview and pools dashboards
        missing = exprs
        deadline = time.monotonic() + DEADLINE
        while missing and time.monotonic() < deadline:
            missing = [(d, t, e) for d, t, e in missing if not finite(prom.query(substitute(e)))]
            if missing:
                time.sleep(1)
        assert missing == [], f"panels without data: {missing}"
    finally:
        stop.set()
        thread.join(10)
    assert app.reader.force_flush(10_000)

    def values(expr: str) -> dict[tuple[str, ...], float]:
        return {tuple(r["metric"].values()): float(r["value"][1]) for r in prom.query(expr)}

    expected = {("GET", "ok"): made["ok"], ("GET", "error"): made["error"]}
    counts_expr = "sum by (operation, outcome) (apm_operation_duration_seconds_count)"
    deadline = time.monotonic() + 30
    while values(counts_expr) != expected and time.monotonic() < deadline:
        time.sleep(0.5)  # the next scrape brings the last export
    assert values(counts_expr) == expected
    assert values('sum by (pool, state) (apm_pool_connections{pool="orders-db"})') == {
        ("orders-db", "active"): 2.0, ("orders-db", "idle"): 1.0}
