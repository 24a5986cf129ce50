"""OTLP ingest: data points per second of daemon CPU, beside the same points sent as StatsD lines.

    python3 bench/otlp.py              # a few minutes
    python3 bench/otlp.py --quick      # fewer requests, one repeat

Two real daemons (`python -m exporter`, OTLP/HTTP on, StatsD on TCP so that nothing is lost)
run side by side, one reading protobuf bodies with the hand decoder (exporter/otlp/wire.py,
the default), one with the protobuf library (APM_EXPORTER_OTLP_DECODER=protobuf). They take
turns, `--repeats` times per case, each pinned to CPU 0 while this process sends from CPU 1;
the table gives each decoder's median and the ratio of the medians (the machine is shared, so
single runs swing). Their resident memory is read after a first one-point request and after
the run, with whether the protobuf library is mapped.

    valgrind --tool=callgrind --callgrind-out-file=/dev/null python3 bench/otlp.py --in-process wire --rounds 11

decodes and translates in this process only (no daemon, no HTTP), for counting instructions,
which a shared machine does not disturb: the difference between --rounds 11 and --rounds 1,
less that of `--in-process none` (which only builds the requests), divided by 10 x --series,
is one cumulative counter point's cost. Every body is encoded before the clock
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
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.ingest import cpu_seconds, free_port  # noqa: E402
from bench.scale import rss_mib  # noqa: E402

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
    def __init__(self, tmp: Path, decoder: str) -> None:
        self.web, self.http, self.tcp = free_port(socket.SOCK_STREAM), free_port(socket.SOCK_STREAM), \
            free_port(socket.SOCK_STREAM)
        config = tmp / f"bench-otlp-{decoder}.yaml"
        config.write_text(
            f"statsd:\n  listeners: ['tcp://127.0.0.1:{self.tcp}']\n  defaults:\n    max_series: 1000000\n"
            f"    max_series_per_family: 1000000\n"
            f"otlp:\n  enabled: true\n  grpc:\n    enabled: false\n  http:\n    listen_address: 127.0.0.1:{self.http}\n")
        log = tmp / f"bench-otlp-{decoder}.log"
        self.log = open(log, "wb")
        self.proc = subprocess.Popen(
            ["taskset", "-c", "0", sys.executable, "-m", "exporter", "--config.file", str(config),
             "--web.listen-address", f"127.0.0.1:{self.web}", "--log.level", "warn"],
            stdout=self.log, stderr=subprocess.STDOUT, cwd=ROOT,
            env={**os.environ, "APM_EXPORTER_OTLP_DECODER": decoder})
        deadline = time.monotonic() + 30
        while True:
            try:
                self.metric("apm_exporter_series")
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(log.read_text()) from None
                time.sleep(0.1)
        run_otlp(self, otlp_bodies("warmup", 1, 1), 1)  # one small request: what OTLP loads on first use
        time.sleep(1.0)
        self.rss_started = rss_mib(self.proc.pid)

    def protobuf_loaded(self) -> bool:
        return "_upb" in Path(f"/proc/{self.proc.pid}/maps").read_text()

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
    return points / max(cpu, 1e-9), points / wall  # (a one-point request may take no measurable CPU)


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


def in_process(decoder: str, series: int, rounds: int) -> None:
    from exporter.otlp import wire
    from exporter.otlp.config import OtlpConfig
    from exporter.otlp.points import from_message
    from exporter.otlp.translate import Translator
    from exporter.store import Limits, Store

    def library(body: bytes) -> list[Any]:
        from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
            ExportMetricsServiceRequest,
        )

        return from_message(ExportMetricsServiceRequest.FromString(body))

    decode = wire.decode if decoder == "wire" else library
    bodies = otlp_bodies("cumulative", series, rounds)
    library(bodies[0])  # both load the same modules, so the difference of two runs is the points' alone
    translator = Translator(OtlpConfig(), Store(Limits(10 * series, 10 * series)), Store())
    for body in bodies if decoder != "none" else ():
        translator.export(decode(body))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--series", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--in-process", choices=["wire", "protobuf", "none"],
                        help="decode and translate --rounds cumulative counter requests here, nothing else "
                             "(none: only build the requests, the part to subtract)")
    ns = parser.parse_args()
    if ns.in_process:
        in_process(ns.in_process, ns.series, ns.rounds)
        return
    if ns.quick:
        ns.series, ns.rounds, ns.repeats = 2_000, 10, 1
    os.sched_setaffinity(0, {1})
    points = ns.series * ns.rounds
    decoders = ("wire", "protobuf")
    otlp_cases = [("cumulative counters", "cumulative"), ("delta counters", "delta"),
                  ("cumulative histograms (16 buckets)", "histogram")]
    statsd_cases = [("StatsD/TCP counters (same updates)", "counter"), ("StatsD/TCP timers (same updates)", "timer")]
    figures: dict[tuple[str, str], list[float]] = {}
    sizes: dict[str, float] = {}
    memory = {}
    with tempfile.TemporaryDirectory() as tmp:
        daemons = {d: Daemon(Path(tmp), d) for d in decoders}
        try:
            for label, kind in otlp_cases:
                # The first round creates the series; the figures are for updates of existing ones.
                first, *payload = otlp_bodies(kind, ns.series, ns.repeats * ns.rounds + 1)
                sizes[label] = sum(len(p) for p in payload) / (len(payload) * ns.series)
                for daemon in daemons.values():
                    run_otlp(daemon, [first], ns.series)
                for r in range(ns.repeats):
                    for decoder in (decoders if r % 2 == 0 else decoders[::-1]):
                        chunk = payload[r * ns.rounds:(r + 1) * ns.rounds]
                        figures.setdefault((label, decoder), []).append(run_otlp(daemons[decoder], chunk, points)[0])
            for label, kind in statsd_cases:
                daemon = daemons["wire"]
                run_statsd(daemon, statsd_chunks(kind, ns.series, 1), ns.series)
                chunks = statsd_chunks(kind, ns.series, ns.rounds)
                for _ in range(ns.repeats):
                    figures.setdefault((label, "statsd"), []).append(run_statsd(daemon, chunks, points)[0])
            for decoder, daemon in daemons.items():
                memory[decoder] = (daemon.rss_started, rss_mib(daemon.proc.pid), daemon.protobuf_loaded())
        finally:
            for daemon in daemons.values():
                daemon.stop()
    print(f"{ns.series} series x {ns.rounds} rounds = {points} data points per run, {ns.repeats} runs per case "
          "and decoder, taking turns; daemons on CPU 0\n")
    print("| OTLP/HTTP case | hand decoder, points/s per core (median; runs) | protobuf library (median; runs) "
          "| hand / library | bytes/point |")
    print("|---|---:|---:|---:|---:|")
    for label, _ in otlp_cases:
        wire_runs, pb_runs = figures[label, "wire"], figures[label, "protobuf"]
        runs = ", ".join(f"{v / 1000:.0f}k" for v in wire_runs), ", ".join(f"{v / 1000:.0f}k" for v in pb_runs)
        print(f"| {label} | {statistics.median(wire_runs):,.0f} ({runs[0]}) | {statistics.median(pb_runs):,.0f} "
              f"({runs[1]}) | {statistics.median(wire_runs) / statistics.median(pb_runs):.2f}x | {sizes[label]:.1f} |")
    print("\n| StatsD case | points/s per core (median; runs) |\n|---|---:|")
    for label, _ in statsd_cases:
        runs_ = figures[label, "statsd"]
        print(f"| {label} | {statistics.median(runs_):,.0f} ({', '.join(f'{v / 1000:.0f}k' for v in runs_)}) |")
    print("\n| daemon (OTLP/HTTP on) | RSS after one request, MiB | RSS after the run, MiB | protobuf library mapped |")
    print("|---|---:|---:|---|")
    for decoder, (started, after, loaded) in memory.items():
        print(f"| {decoder} decoder | {started:.1f} | {after:.1f} | {'yes' if loaded else 'no'} |")


if __name__ == "__main__":
    main()
