"""OTLP ingest end to end: the OpenTelemetry Python SDK's own exporters push to the daemon,
started as a user starts it, over OTLP/HTTP and OTLP/gRPC; /metrics must show exactly what was sent."""

from __future__ import annotations

import gzip
import json
import math
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (
    OTLPMetricExporter as GrpcExporter,
)
from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
    OTLPMetricExporter as HttpExporter,
)
from opentelemetry.metrics import Observation
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceResponse,
)
from opentelemetry.sdk.metrics import (
    Counter,
    Histogram,
    MeterProvider,
    ObservableGauge,
    UpDownCounter,
)
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    MetricReader,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource
from prometheus_client.parser import text_string_to_metric_families

from tests.otlp.build import counter, gauge, number, request
from tests.support.daemon import Daemon
from tests.support.net import free_port
from tests.support.tls import make_pki

DELTA = {Counter: AggregationTemporality.DELTA, UpDownCounter: AggregationTemporality.DELTA,
         Histogram: AggregationTemporality.DELTA, ObservableGauge: AggregationTemporality.DELTA}
CUMULATIVE = {k: AggregationTemporality.CUMULATIVE for k in DELTA}


def otlp_config(http: int, grpc: int, **extra: Any) -> dict[str, Any]:
    return {"statsd": {"listeners": []},
            "otlp": {"enabled": True, "http": {"listen_address": f"127.0.0.1:{http}"},
                     "grpc": {"listen_address": f"127.0.0.1:{grpc}"}, **extra}}


class OtlpDaemon:
    def __init__(self, daemon: Daemon, http: int, grpc: int) -> None:
        self.daemon, self.http, self.grpc = daemon, http, grpc

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.http}/v1/metrics"

    def post(self, body: bytes, content_type: str = "application/x-protobuf",
             headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        req = urllib.request.Request(self.endpoint, data=body, method="POST",
                                     headers={"Content-Type": content_type, **(headers or {})})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, dict(r.headers), r.read()
        except urllib.error.HTTPError as err:
            return err.code, dict(err.headers), err.read()

    def value(self, name: str, **labels: str) -> float | None:
        return self.daemon.value(name, **labels)


@pytest.fixture
def otlp(daemon_factory: Callable[..., Daemon]) -> OtlpDaemon:
    http, grpc = free_port(), free_port()
    return OtlpDaemon(daemon_factory(otlp_config(http, grpc)), http, grpc)


@contextmanager
def sdk(exporter: Any, temporality: dict[type, AggregationTemporality], service: str = "shop",
        exponential: bool = False) -> Iterator[tuple[MeterProvider, MetricReader]]:
    """A MeterProvider whose reader we flush by hand: each force_flush() is one export."""
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=3_600_000)
    views = [View(instrument_type=Histogram, aggregation=ExponentialBucketHistogramAggregation())] if exponential else []
    provider = MeterProvider(metric_readers=[reader], views=views,
                             resource=Resource.create({"service.name": service, "service.instance.id": "i-1"}))
    try:
        yield provider, reader
    finally:
        provider.shutdown()


def exporters(otlp: OtlpDaemon, temporality: dict[type, AggregationTemporality]) -> dict[str, Any]:
    return {
        "http": HttpExporter(endpoint=otlp.endpoint, preferred_temporality=temporality),
        "grpc": GrpcExporter(endpoint=f"127.0.0.1:{otlp.grpc}", insecure=True, preferred_temporality=temporality),
    }


@pytest.mark.parametrize("transport", ["http", "grpc"])
@pytest.mark.parametrize("temporality", [DELTA, CUMULATIVE], ids=["delta", "cumulative"])
def test_sdk_exports_give_exact_totals(otlp: OtlpDaemon, transport: str,
                                       temporality: dict[type, AggregationTemporality]) -> None:
    exporter = exporters(otlp, temporality)[transport]
    level = {"v": 0.0}
    with sdk(exporter, temporality) as (provider, reader):
        meter = provider.get_meter("test")
        orders = meter.create_counter("orders", unit="1")
        inflight = meter.create_up_down_counter("inflight", unit="{request}")
        latency = meter.create_histogram("checkout.duration", unit="s")
        meter.create_observable_gauge("temperature", callbacks=[lambda _: [Observation(level["v"])]], unit="Cel")
        expected_orders = 0
        for n in range(1, 8):  # seven exports of known increments
            orders.add(n, {"shop": "berlin"})
            expected_orders += n
            inflight.add(3)
            inflight.add(-1)
            latency.record(0.004)
            latency.record(0.3)
            level["v"] = 20.0 + n
            assert reader.force_flush(10_000)
    assert otlp.value("orders_total", shop="berlin", job="shop", instance="i-1") == expected_orders
    assert otlp.value("inflight", job="shop") == 14
    assert otlp.value("checkout_duration_seconds_count", job="shop") == 14
    assert otlp.value("checkout_duration_seconds_sum", job="shop") == pytest.approx(7 * 0.304)
    assert otlp.value("temperature_celsius", job="shop") == 27.0
    assert otlp.value("apm_exporter_otlp_data_points_total", transport=transport) > 0
    assert otlp.value("target_info", job="shop", instance="i-1", telemetry_sdk_language="python") == 1


@pytest.mark.parametrize("temporality", [DELTA, CUMULATIVE], ids=["delta", "cumulative"])
def test_sdk_exponential_histograms_arrive_as_classic_buckets(otlp: OtlpDaemon,
                                                             temporality: dict[type, AggregationTemporality]) -> None:
    with sdk(exporters(otlp, temporality)["http"], temporality, exponential=True) as (provider, reader):
        latency = provider.get_meter("test").create_histogram("render.duration", unit="s")
        for _ in range(3):
            for v in (0.002, 0.02, 0.2, 2.0):
                latency.record(v)
            assert reader.force_flush(10_000)
    assert otlp.value("render_duration_seconds_count") == 12
    assert otlp.value("render_duration_seconds_bucket", le="0.0025") == 3
    assert otlp.value("render_duration_seconds_bucket", le="0.25") == 9
    assert otlp.value("render_duration_seconds_sum") == pytest.approx(3 * 2.222)


def test_a_restarted_sdk_does_not_double_count(otlp: OtlpDaemon) -> None:
    for _process in range(2):  # two processes of one service, one after the other
        with sdk(HttpExporter(endpoint=otlp.endpoint), CUMULATIVE) as (provider, reader):
            c = provider.get_meter("test").create_counter("signups")
            for _ in range(3):
                c.add(5)
                assert reader.force_flush(10_000)
    assert otlp.value("signups_total") == 30


def test_a_stream_that_stops_sending_is_forgotten_after_the_ttl_and_its_restart_not_double_counted(
        daemon_factory: Callable[..., Daemon]) -> None:
    http = free_port()
    otlp = OtlpDaemon(daemon_factory(otlp_config(http, free_port(), ttl="1s")), http, 0)
    quiet, busy = {"service.name": "quiet", "service.instance.id": "q"}, {"service.name": "busy"}

    def post(value: int, resource: dict[str, str], start: int = 1) -> None:
        body = request(counter("jobs", number(value, start=start, t=time.time_ns())), resource=resource)
        assert otlp.post(body.SerializeToString())[0] == 200

    def forgotten(busy_total: int) -> None:
        """Until the quiet stream is gone the busy one keeps sending (one more each time)."""
        deadline = time.monotonic() + 30
        while otlp.value("jobs_total", job="quiet") is not None or otlp.value("apm_exporter_otlp_streams") != 1:
            assert time.monotonic() < deadline, "the quiet stream was never forgotten"
            busy_total += 1
            post(busy_total, busy)
            time.sleep(0.2)
        assert otlp.value("jobs_total", job="busy") == busy_total

    post(5, quiet)
    post(1, busy)
    assert otlp.value("apm_exporter_otlp_streams") == 2
    forgotten(1)
    post(8, quiet)  # the same process, back after the TTL: its own total, not 5 + 8
    assert otlp.value("jobs_total", job="quiet") == 8
    forgotten(int(otlp.value("jobs_total", job="busy") or 0))
    post(2, quiet, start=2)  # restarted after the TTL
    assert otlp.value("jobs_total", job="quiet") == 2
    assert (otlp.value("apm_exporter_series_expired_total") or 0) >= 2


# --- bad input ---------------------------------------------------------------------------------------
def good_body(value: int = 1, name: str = "kept") -> bytes:
    return request(counter(name, number(value, t=value + 1))).SerializeToString()


def rejected(otlp: OtlpDaemon, reason: str, transport: str = "http") -> float:
    return otlp.value("apm_exporter_otlp_requests_rejected_total", transport=transport, reason=reason) or 0.0


def test_bad_requests_get_clear_errors_and_counters_and_nothing_is_lost(otlp: OtlpDaemon) -> None:
    assert otlp.post(good_body(4))[0] == 200
    status, headers, body = otlp.post(b"\xff\xff\xff\xff garbage")
    assert status == 400 and b"cannot decode" in body
    status, _, body = otlp.post(good_body(5)[:-3])  # truncated
    assert status == 400
    status, _, body = otlp.post(good_body(), content_type="text/plain")
    assert status == 415 and b"unsupported content type" in body
    status, _, body = otlp.post(gzip.compress(good_body())[:-8], headers={"Content-Encoding": "gzip"})
    assert status == 400 and b"gzip" in body
    status, _, _ = otlp.post(good_body(), headers={"Content-Encoding": "br"})
    assert status == 415
    status, _, _ = otlp.post(b"\0" * (9 * 1024 * 1024))  # over the 8 MiB default
    assert status == 413
    bomb = gzip.compress(b"\0" * (64 * 1024 * 1024))  # small on the wire, 64 MiB inflated
    status, _, _ = otlp.post(bomb, headers={"Content-Encoding": "gzip"})
    assert status == 413
    assert otlp.daemon.get("/-/healthy")[0] == 200
    assert otlp.value("kept_total") == 4
    for reason in ("malformed", "unsupported_content_type", "bad_gzip", "unsupported_encoding", "too_large"):
        assert rejected(otlp, reason) >= 1, reason
    assert rejected(otlp, "malformed") == 2 and rejected(otlp, "too_large") == 2


def test_gzip_and_json_bodies_are_accepted(otlp: OtlpDaemon) -> None:
    assert otlp.post(gzip.compress(good_body(3)), headers={"Content-Encoding": "gzip"})[0] == 200
    from google.protobuf import json_format

    doc = json_format.MessageToJson(request(gauge("json.gauge", number(2.5))))
    status, headers, body = otlp.post(doc.encode(), content_type="application/json")
    assert status == 200 and headers["Content-Type"] == "application/json"
    assert json.loads(body) == {}
    assert otlp.value("kept_total") == 3 and otlp.value("json_gauge") == 2.5
    status, _, body = otlp.post(b"{not json", content_type="application/json")
    assert status == 400 and json.loads(body)["code"] == 3


def test_partial_success_reports_the_rejected_points(otlp: OtlpDaemon) -> None:
    body = request(gauge("g", number(math.nan), number(1.0, {"k": "v"})), counter("", number(1))).SerializeToString()
    status, _, raw = otlp.post(body)
    response = ExportMetricsServiceResponse.FromString(raw)
    assert status == 200
    assert response.partial_success.rejected_data_points == 2
    assert response.partial_success.error_message == "NaN or infinite value"
    assert otlp.value("g", k="v") == 1.0
    assert otlp.value("apm_exporter_otlp_data_points_rejected_total", reason="empty_name") == 1


def test_grpc_bad_payload_is_invalid_argument(otlp: OtlpDaemon) -> None:
    import grpc

    with grpc.insecure_channel(f"127.0.0.1:{otlp.grpc}") as channel:
        export = channel.unary_unary("/opentelemetry.proto.collector.metrics.v1.MetricsService/Export")
        with pytest.raises(grpc.RpcError) as err:
            export(b"\xff\xff\xff garbage", timeout=10)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "cannot decode" in (err.value.details() or "")
        assert ExportMetricsServiceResponse.FromString(export(good_body(6), timeout=10)) == ExportMetricsServiceResponse()
    assert rejected(otlp, "malformed", "grpc") == 1
    assert otlp.value("kept_total") == 6


def test_a_100k_series_burst_is_cut_at_the_limit_and_the_daemon_keeps_serving(otlp: OtlpDaemon) -> None:
    assert otlp.post(good_body(2))[0] == 200
    points = [number(1.0, {"user": str(i)}) for i in range(100_000)]
    status, _, raw = otlp.post(request(gauge("burst", *points)).SerializeToString())
    response = ExportMetricsServiceResponse.FromString(raw)
    assert status == 200
    assert response.partial_success.rejected_data_points == 90_000  # statsd.defaults.max_series_per_family
    assert otlp.value("apm_exporter_otlp_data_points_rejected_total", reason="family_limit") == 90_000
    assert otlp.value("kept_total") == 2
    assert otlp.daemon.get("/-/ready")[0] == 200


def test_otlp_listener_serves_only_v1_metrics(otlp: OtlpDaemon) -> None:
    for path in ("/metrics", "/-/reload", "/"):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{otlp.http}{path}", timeout=10)
            raise AssertionError(path)
        except urllib.error.HTTPError as err:
            assert err.code == 404, path
    assert otlp.post(good_body(), content_type="application/x-protobuf")[0] == 200
    status, _, _ = otlp.daemon.get("/v1/metrics")  # not on the metrics port
    assert status == 404



def test_tls_and_basic_auth_from_the_web_config_cover_the_otlp_http_listener(
        daemon_factory: Callable[..., Daemon], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import base64
    import ssl

    import bcrypt

    # requests prefers these to the exporter's certificate_file; the test's CA is the one to trust.
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    pki = make_pki(tmp_path / "pki")
    web = tmp_path / "web.yml"
    digest = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=4)).decode()
    web.write_text(f"tls_server_config:\n  cert_file: {pki.server.cert}\n  key_file: {pki.server.key}\n"
                   f"basic_auth_users:\n  app: {digest}\n")
    http, grpc_port = free_port(), free_port()
    daemon = daemon_factory(otlp_config(http, grpc_port), "--web.config.file", str(web), wait=False)
    endpoint = f"https://127.0.0.1:{http}/v1/metrics"
    wait_for_port(http, daemon)
    token = base64.b64encode(b"app:s3cret").decode()
    with sdk(HttpExporter(endpoint=endpoint, certificate_file=str(pki.ca.cert),
                          headers={"Authorization": f"Basic {token}"}), CUMULATIVE) as (provider, reader):
        provider.get_meter("t").create_counter("secure.hits").add(3)
        assert reader.force_flush(10_000)
    context = ssl.create_default_context(cafile=str(pki.ca.cert))

    def post(auth: str | None) -> int:
        req = urllib.request.Request(endpoint, data=good_body(), method="POST",
                                     headers={"Content-Type": "application/x-protobuf",
                                              **({"Authorization": auth} if auth else {})})
        try:
            with urllib.request.urlopen(req, timeout=30, context=context) as r:
                return r.status
        except urllib.error.HTTPError as err:
            return err.code

    assert post(None) == 401
    assert post("Basic " + base64.b64encode(b"app:wrong").decode()) == 401
    with pytest.raises(OSError):  # plain HTTP on the TLS port: the connection is dropped
        urllib.request.urlopen(urllib.request.Request(endpoint.replace("https", "http"), data=b"", method="POST"),
                               timeout=10)
    req = urllib.request.Request(f"https://127.0.0.1:{daemon.port}/metrics",
                                 headers={"Authorization": f"Basic {token}"})
    with urllib.request.urlopen(req, timeout=30, context=context) as r:
        text = r.read().decode()
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for f in text_string_to_metric_families(text) for s in f.samples}
    assert samples[("secure_hits_total", (("instance", "i-1"), ("job", "shop")))] == 3

    # OTLP/gRPC: the same certificate and users.
    import grpc

    ca = grpc.ssl_channel_credentials(pki.ca.cert.read_bytes())
    with sdk(GrpcExporter(endpoint=f"https://127.0.0.1:{grpc_port}", credentials=ca,
                          headers={"authorization": f"Basic {token}"}), CUMULATIVE) as (provider, reader):
        provider.get_meter("t").create_counter("secure.grpc.hits").add(4)
        assert reader.force_flush(10_000)
    with grpc.secure_channel(f"127.0.0.1:{grpc_port}", ca) as channel:
        export = channel.unary_unary("/opentelemetry.proto.collector.metrics.v1.MetricsService/Export")
        with pytest.raises(grpc.RpcError) as err:
            export(good_body(), timeout=10)
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with urllib.request.urlopen(req, timeout=30, context=context) as r:
        samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
                   for f in text_string_to_metric_families(r.read().decode()) for s in f.samples}
    assert samples[("secure_grpc_hits_total", (("instance", "i-1"), ("job", "shop")))] == 4
    assert samples[("apm_exporter_otlp_requests_rejected_total", (("reason", "unauthorized"),
                                                                   ("transport", "grpc")))] == 1


def test_a_reload_moves_the_listener_and_keeps_the_totals(otlp: OtlpDaemon) -> None:
    assert otlp.post(good_body(4))[0] == 200
    new_http = free_port()
    otlp.daemon.write_config(otlp_config(new_http, otlp.grpc))
    assert otlp.daemon.reload()[0] == 200
    otlp.http = new_http
    assert otlp.post(request(counter("kept", number(9, t=20))).SerializeToString())[0] == 200
    assert otlp.value("kept_total") == 9  # the stream's last point (4) survived the reload: 4 + 5


def test_without_the_section_nothing_listens_and_protobuf_is_not_loaded(daemon_factory: Callable[..., Daemon]) -> None:
    port = free_port()
    daemon = daemon_factory({"statsd": {"listeners": []}, "otlp": {"http": {"listen_address": f"127.0.0.1:{port}"}}})
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    assert daemon.proc is not None
    maps = Path(f"/proc/{daemon.proc.pid}/maps").read_text()
    assert "_upb" not in maps and "cygrpc" not in maps and "_message" not in maps


def test_otlp_http_with_protobuf_bodies_loads_no_protobuf(daemon_factory: Callable[..., Daemon]) -> None:
    http = free_port()
    config = otlp_config(http, free_port())
    config["otlp"]["grpc"]["enabled"] = False
    otlp = OtlpDaemon(daemon_factory(config), http, 0)
    status, _, raw = otlp.post(request(counter("c", number(1)), gauge("g", number(math.nan))).SerializeToString())
    assert status == 200
    assert ExportMetricsServiceResponse.FromString(raw).partial_success.rejected_data_points == 1
    assert otlp.value("c_total") == 1
    assert otlp.daemon.proc is not None
    maps = Path(f"/proc/{otlp.daemon.proc.pid}/maps").read_text()
    assert "_upb" not in maps and "cygrpc" not in maps and "_message" not in maps


def wait_for_port(port: int, daemon: Daemon, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert daemon.proc is not None and daemon.proc.poll() is None, daemon.log()
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(daemon.log())


def test_a_reload_can_turn_the_receivers_on(daemon_factory: Callable[..., Daemon]) -> None:
    http, grpc = free_port(), free_port()
    daemon = daemon_factory({"statsd": {"listeners": []}})
    daemon.write_config(otlp_config(http, grpc))
    assert daemon.reload()[0] == 200
    otlp = OtlpDaemon(daemon, http, grpc)
    assert otlp.post(good_body(3))[0] == 200
    assert otlp.value("kept_total") == 3


def test_every_kind_renders_a_clean_exposition(otlp: OtlpDaemon, promtool: Callable[[str], str]) -> None:
    from tests.otlp.build import expo_point, exponential, hist_point, histogram, summary

    body = request(
        counter("http.requests", number(3, {"http.route": "/a"}), unit="{request}"),
        counter("queue.size", number(2), monotonic=False),
        gauge("cpu.utilization", number(0.5), unit="1"),
        histogram("db.duration", hist_point((0.01, 0.1), [1, 2, 0], 0.15), unit="s"),
        exponential("payload.size", expo_point(0, 3, [1, 1], 30.0), unit="By"),
        summary("gc.pause", 4, 0.02, [(0.5, 0.004), (0.99, 0.009)]),
    ).SerializeToString()
    status, _, raw = otlp.post(body)
    assert status == 200 and ExportMetricsServiceResponse.FromString(raw) == ExportMetricsServiceResponse()
    text = otlp.daemon.scrape_text()
    assert promtool(text) == ""
    assert otlp.value("gc_pause", quantile="0.99") == 0.009 and otlp.value("gc_pause_count") == 4
    assert otlp.value("cpu_utilization_ratio") == 0.5
    assert otlp.value("payload_size_bytes_count") == 2


def test_sdk_exponential_histograms_reach_prometheus_as_native_histograms(otlp: OtlpDaemon, tmp_path: Path) -> None:
    from tests.support.prometheus import Prometheus

    with sdk(exporters(otlp, DELTA)["http"], DELTA, exponential=True) as (provider, reader):
        latency = provider.get_meter("test").create_histogram("render.duration", unit="s")
        for v in (0.002, 0.02, 0.2, 2.0, 2.0):
            latency.record(v)
        assert reader.force_flush(10_000)
    prom = Prometheus(tmp_path, [f"127.0.0.1:{otlp.daemon.port}"], features=("native-histograms",)).start()
    try:
        result = prom.wait_for("histogram_count(render_duration_seconds)")
        assert [float(r["value"][1]) for r in result] == [5.0]
        # The native buckets hold what the SDK recorded: 2 of the 5 values lie between 1 s and 10 s.
        above = prom.query("histogram_fraction(1, 10, render_duration_seconds)")
        assert float(above[0]["value"][1]) == pytest.approx(0.4)
    finally:
        prom.stop()
