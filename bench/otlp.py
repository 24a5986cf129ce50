"""OTLP ingest: data points per second of daemon CPU, beside the same points sent as StatsD lines.

    python3 bench/otlp.py              # about a minute
    python3 bench/otlp.py --quick      # fewer requests

The real daemon (`python -m exporter`, OTLP/HTTP on, StatsD on TCP so that nothing is lost)
is pinned to CPU 0; this process sends from CPU 1. Every body is encoded before the clock
starts, so the figures are the daemon's alone: points ingested divided by the CPU seconds
the daemon used meanwhile (user + system, from /proc), i.e. points per second of one core.

Cases, each `--series` streams of three attributes (route, method, status) updated
`--rounds` times:
- OTLP cumulative counters: one request per round holding every series (the SDK's shape:
  each export carries all streams), each point the running total;
- OTLP delta counters: the same, each point the increment;
- OTLP cumulative histograms (the SDK's 15 default bounds);
- StatsD counters and timers: the same updates as `name:value|c|#tags` and `|ms` lines over
  TCP in 64 KiB writes.
Both paths end in the same store, and every run checks the totals it exposes.
"""

from __future__ import annotations

import argparse
import http.client
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.ingest import cpu_seconds, free_port  # noqa: E402

BOUNDS = [0.0, 5.0, 10.0, 25.0, 50.0, 75.0, 100.0, 250.0, 500.0, 750.0, 1000.0, 2500.0, 5000.0, 7500.0, 10000.0]
ROUTES = ["/", "/cart", "/checkout", "/users/{id}", "/search"]


def attrs(i: int) -> dict[str, str]:
    return {"http.route": f"{ROUTES[i % 5]}{i // 5}", "http.method": "GET" if i % 3 else "POST",
            "http.status_code": "200" if i % 7 else "500"}


def otlp_bodies(kind: str, series: int, rounds: int) -> list[bytes]:
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
        ExportMetricsServiceRequest,
    )
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
    from opentelemetry.proto.metrics.v1 import metrics_pb2 as pb
    from opentelemetry.proto.resource.v1.resource_pb2 import Resource

    keys = [[KeyValue(key=k, value=AnyValue(string_value=v)) for k, v in attrs(i).items()] for i in range(series)]
    resource = Resource(attributes=[KeyValue(key="service.name", value=AnyValue(string_value="bench"))])
    delta = kind == "delta"
    temporality = pb.AGGREGATION_TEMPORALITY_DELTA if delta else pb.AGGREGATION_TEMPORALITY_CUMULATIVE
    bodies = []
    for r in range(1, rounds + 1):
        t = 1_000_000_000 + r
        if kind == "histogram":
            counts = [0] * (len(BOUNDS) + 1)
            counts[3] = r
            points = [pb.HistogramDataPoint(attributes=k, start_time_unix_nano=1, time_unix_nano=t, count=r,
                                            sum=20.0 * r, explicit_bounds=BOUNDS, bucket_counts=counts) for k in keys]
            metric = pb.Metric(name="bench.latency", unit="ms", histogram=pb.Histogram(
                data_points=points, aggregation_temporality=temporality))
        else:
            value = 1 if delta else r
            points = [pb.NumberDataPoint(attributes=k, start_time_unix_nano=t - 1 if delta else 1, time_unix_nano=t,
                                         as_int=value) for k in keys]
            metric = pb.Metric(name=f"bench.requests.{kind}", sum=pb.Sum(
                data_points=points, aggregation_temporality=temporality, is_monotonic=True))
        request = ExportMetricsServiceRequest(resource_metrics=[pb.ResourceMetrics(
            resource=resource, scope_metrics=[pb.ScopeMetrics(metrics=[metric])])])
        bodies.append(request.SerializeToString())
    return bodies


def statsd_chunks(kind: str, series: int, rounds: int) -> list[bytes]:
    lines = []
    for i in range(series):
        a = attrs(i)
        tags = f"route:{a['http.route']},method:{a['http.method']},status:{a['http.status_code']}"
        lines.append(f"statsd.latency:20|ms|#{tags}" if kind == "timer" else f"statsd.requests:1|c|#{tags}")
    text = ("\n".join(lines) + "\n").encode() * rounds
    return [text[i:i + 65536] for i in range(0, len(text), 65536)]  # TCP: lines may split across writes


class Daemon:
    def __init__(self, tmp: Path) -> None:
        self.web, self.http, self.tcp = free_port(socket.SOCK_STREAM), free_port(socket.SOCK_STREAM), \
            free_port(socket.SOCK_STREAM)
        config = tmp / "bench-otlp.yaml"
        config.write_text(
            f"statsd:\n  listeners: ['tcp://127.0.0.1:{self.tcp}']\n  defaults:\n    max_series: 1000000\n"
            f"    max_series_per_family: 1000000\n"
            f"otlp:\n  enabled: true\n  grpc:\n    enabled: false\n  http:\n    listen_address: 127.0.0.1:{self.http}\n")
        self.log = open(tmp / "bench-otlp.log", "wb")
        self.proc = subprocess.Popen(
            ["taskset", "-c", "0", sys.executable, "-m", "exporter", "--config.file", str(config),
             "--web.listen-address", f"127.0.0.1:{self.web}", "--log.level", "warn"],
            stdout=self.log, stderr=subprocess.STDOUT, cwd=ROOT)
        deadline = time.monotonic() + 30
        while True:
            try:
                self.metric("apm_exporter_series")
                return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError((tmp / "bench-otlp.log").read_text()) from None
                time.sleep(0.1)

    def metric(self, prefix: str) -> float:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.web}/metrics", timeout=60) as r:
            text = r.read().decode()
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(prefix))

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        self.log.close()


def run_otlp(daemon: Daemon, bodies: list[bytes], points: int) -> tuple[float, float]:
    before_points = daemon.metric('apm_exporter_otlp_data_points_total{transport="http"}')
    conn = http.client.HTTPConnection("127.0.0.1", daemon.http, timeout=120)
    cpu0, wall0 = cpu_seconds(daemon.proc.pid), time.perf_counter()
    for body in bodies:
        conn.request("POST", "/v1/metrics", body, {"Content-Type": "application/x-protobuf"})
        response = conn.getresponse()
        response.read()
        assert response.status == 200, response.status
    wall, cpu = time.perf_counter() - wall0, cpu_seconds(daemon.proc.pid) - cpu0
    conn.close()
    stored = daemon.metric('apm_exporter_otlp_data_points_total{transport="http"}') - before_points
    assert stored == points, (stored, points, daemon.metric("apm_exporter_otlp_data_points_rejected_total"),
                              daemon.metric("apm_exporter_otlp_requests_rejected_total"))
    return points / cpu, points / wall


def run_statsd(daemon: Daemon, chunks: list[bytes], points: int) -> tuple[float, float]:
    before = daemon.metric("apm_exporter_statsd_samples_total")
    sock = socket.create_connection(("127.0.0.1", daemon.tcp))
    cpu0, wall0 = cpu_seconds(daemon.proc.pid), time.perf_counter()
    for chunk in chunks:
        sock.sendall(chunk)
    sock.close()
    deadline = time.monotonic() + 120
    while daemon.metric("apm_exporter_statsd_samples_total") - before < points:
        if time.monotonic() > deadline:
            raise RuntimeError("StatsD lines did not all arrive")
        time.sleep(0.05)
    wall, cpu = time.perf_counter() - wall0, cpu_seconds(daemon.proc.pid) - cpu0
    return points / cpu, points / wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--series", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--quick", action="store_true")
    ns = parser.parse_args()
    if ns.quick:
        ns.series, ns.rounds = 2_000, 10
    os.sched_setaffinity(0, {1})
    points = ns.series * ns.rounds
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        daemon = Daemon(Path(tmp))
        try:
            cases = [("OTLP/HTTP cumulative counters", "cumulative", run_otlp, otlp_bodies),
                     ("OTLP/HTTP delta counters", "delta", run_otlp, otlp_bodies),
                     ("StatsD/TCP counters (same updates)", "counter", run_statsd, statsd_chunks),
                     ("OTLP/HTTP cumulative histograms", "histogram", run_otlp, otlp_bodies),
                     ("StatsD/TCP timers (same updates)", "timer", run_statsd, statsd_chunks)]
            for label, kind, run, build in cases:
                # The first round creates the series; the figure is for updates of existing ones.
                if run is run_otlp:
                    first, *payload = build(kind, ns.series, ns.rounds + 1)
                    run(daemon, [first], ns.series)
                else:
                    run(daemon, build(kind, ns.series, 1), ns.series)
                    payload = build(kind, ns.series, ns.rounds)
                size = sum(len(p) for p in payload)
                per_cpu, per_wall = run(daemon, payload, points)
                rows.append((label, per_cpu, per_wall, size / points))
        finally:
            daemon.stop()
    print(f"{ns.series} series x {ns.rounds} rounds = {points} data points per case; daemon on CPU 0\n")
    print("| case | points/s per core (daemon CPU) | points/s wall | bytes/point on the wire |")
    print("|---|---:|---:|---:|")
    for label, per_cpu, per_wall, size in rows:
        print(f"| {label} | {per_cpu:,.0f} | {per_wall:,.0f} | {size:.1f} |")


if __name__ == "__main__":
    main()
