"""Scrape rendering: the store's series as exposition text, side by side with prometheus_client.

    python bench/render.py [--series 100000] [--repeats 7] [--cases counters,gauges,histograms,mix]
                           [--check] [--library] [--profile CASE]

For each case the same series go into our Store (through `Store.series`, as
StatsD ingest writes them) and into a prometheus_client registry of Counter,
Gauge and Histogram objects (`_created` series off, so both print the same
lines). Renders alternate between the two so the machine's noise falls on both
alike; figures are medians. Times:

- ours, end to end: `Renderer.render(store.collect())`, what a scrape costs (the store hands
  over label tuples and values as two lists, model.Columns, not a Sample per series);
- ours, render only: `render(families)` on families collected once;
- ours, cold: the first render, before the label-text memo is
  warm: after a restart, or what series new since the last scrape cost;
- ours, protobuf: `Renderer.render(store.collect(), Format.PROTOBUF)`, what a Prometheus
  with native histograms enabled asks for (hand-encoded delimited MetricFamily messages),
  warm and cold;
- anchor: `prometheus_client.generate_latest(registry)`.

`--library` adds the same protobuf built with the `protobuf` library's generated classes
(from the vendored metrics.proto, needs the test extra): the measurement behind encoding
by hand; its output must be byte-identical to ours.

`--check` also parses our output with prometheus_client's text parser and runs
`promtool check metrics` on it, and checks two renders are byte-identical.
`--profile CASE` prints a cProfile of our render for that case.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import pstats
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import prometheus_client
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.parser import text_string_to_metric_families

from exporter import families
from exporter.exposition import Format, Renderer
from exporter.model import Family
from exporter.store import Counter as StoreCounter
from exporter.store import Gauge as StoreGauge
from exporter.store import Histogram as StoreHistogram
from exporter.store import Limits, Store

NAMESPACE = "apm"
OUTCOMES = ("ok", "error", "timeout", "cancelled")


def _counters(store: Store, registry: CollectorRegistry, n: int) -> None:
    spec = families.CACHE_REQUESTS
    ours = Counter(f"{NAMESPACE}_{spec.name}", spec.help, spec.labels, registry=registry)
    for i in range(n):
        labels = (f"cache-{i // 2}", "", "hit" if i % 2 == 0 else "miss")
        series = store.series(spec, labels)
        assert isinstance(series, StoreCounter)
        series.inc(i * 3 + 1)
        ours.labels(*labels).inc(i * 3 + 1)


def _gauges(store: Store, registry: CollectorRegistry, n: int) -> None:
    spec = families.POOL_CONNECTIONS
    ours = Gauge(f"{NAMESPACE}_{spec.name}", spec.help, spec.labels, registry=registry)
    for i in range(n):
        labels = (f"db-pool-{i // 2}", "active" if i % 2 == 0 else "idle")
        series = store.series(spec, labels)
        assert isinstance(series, StoreGauge)
        # Half integral (connection counts), half fractional, as gauges come.
        value = float(i % 50) if i % 4 < 2 else (i % 1000) / 7.0
        series.set(value)
        ours.labels(*labels).set(value)


def _histograms(store: Store, registry: CollectorRegistry, n: int) -> None:
    spec = families.OPERATION_DURATION
    ours = Histogram(
        f"{NAMESPACE}_{spec.name}", spec.help, spec.labels, buckets=spec.buckets, registry=registry
    )
    for i in range(n):
        labels = (f"GET /api/v1/resource/{i // len(OUTCOMES)}", OUTCOMES[i % len(OUTCOMES)])
        series = store.series(spec, labels)
        assert isinstance(series, StoreHistogram)
        child = ours.labels(*labels)
        for k in range(1 + i % 5):
            value = ((i * 7 + k * 13) % 1000) / 400.0  # 0 to 2.5 s, spread over the buckets
            series.observe(value)
            child.observe(value)


def build(case: str, n: int) -> tuple[Store, CollectorRegistry]:
    store = Store(Limits(max_series=n, max_series_per_family=n))
    registry = CollectorRegistry(auto_describe=False)
    if case == "counters":
        _counters(store, registry, n)
    elif case == "gauges":
        _gauges(store, registry, n)
    elif case == "histograms":
        _histograms(store, registry, n)
    elif case == "mix":
        # A service's worth: cache and batch counters, pool and queue gauges, and a
        # fifth of the series as latency histograms (which make most of the lines).
        _counters(store, registry, n * 2 // 5)
        _gauges(store, registry, n * 2 // 5)
        _histograms(store, registry, n - 2 * (n * 2 // 5))
    else:
        raise SystemExit(f"unknown case {case}")
    return store, registry


def timed(fn: Callable[[], bytes]) -> tuple[float, bytes]:
    gc.collect()
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def memo_bytes(renderer: Renderer) -> int:
    """Rough size of the label-text memo (dicts and the strings they hold)."""
    total = 0
    for memo in renderer._memo.values():
        total += sys.getsizeof(memo) + sum(sys.getsizeof(v) for v in memo.values())
    return total


def check(text: bytes) -> str:
    parsed = sum(len(f.samples) for f in text_string_to_metric_families(text.decode()))
    promtool = shutil.which("promtool")
    if promtool is None:
        return f"parser: {parsed} samples; promtool: not installed"
    result = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, check=False)
    findings = (result.stdout + result.stderr).decode().strip()
    verdict = "clean" if result.returncode == 0 and not findings else f"FINDINGS (rc={result.returncode}): {findings[:500]}"
    return f"parser: {parsed} samples; promtool check metrics: {verdict}"


def library_render(families: list[Family]) -> bytes:
    """The protobuf exposition through the protobuf library's generated classes (the alternative
    to encoding by hand): one message object per series, serialised, length-delimited."""
    from google.protobuf.internal.encoder import _VarintBytes  # type: ignore[attr-defined]

    from tests.support.metrics_pb import metrics_pb2

    pb2 = metrics_pb2()
    types = {"counter": pb2.COUNTER, "gauge": pb2.GAUGE, "histogram": pb2.HISTOGRAM}
    out = []
    for family in families:
        spec = family.spec
        message = pb2.MetricFamily(name=spec.full_name(NAMESPACE), help=spec.help, type=types[spec.type.value])
        for labels, value in zip(family.samples.labels, family.samples.values):  # type: ignore[attr-defined]
            metric = message.metric.add()
            for name, label in zip(spec.labels, labels):
                if label:
                    metric.label.add(name=name, value=label)
            if spec.type.value == "counter":
                metric.counter.value = value
            elif spec.type.value == "gauge":
                metric.gauge.value = value
            else:
                counts, count, total = value
                metric.histogram.sample_count = int(count)
                metric.histogram.sample_sum = total
                for cumulative, bound in zip(counts, spec.buckets):
                    metric.histogram.bucket.add(cumulative_count=int(cumulative), upper_bound=bound)
        data = message.SerializeToString()
        out += [_VarintBytes(len(data)), data]
    return b"".join(out)


def run_case(case: str, n: int, repeats: int, anchor_repeats: int, do_check: bool,
             library: bool = False) -> dict[str, float]:
    build_start = time.perf_counter()
    store, registry = build(case, n)
    build_seconds = time.perf_counter() - build_start
    renderer = Renderer()  # as the web server holds one, from its first scrape on
    render = renderer.render
    cold, first = timed(lambda: render(store.collect(), Format.TEXT, NAMESPACE))
    proto_cold, proto_first = timed(lambda: render(store.collect(), Format.PROTOBUF, NAMESPACE))
    collected = store.collect()
    ours_e2e: list[float] = []
    ours_render: list[float] = []
    proto: list[float] = []
    lib: list[float] = []
    anchor: list[float] = []
    anchor_out = b""
    for i in range(repeats):
        t, out = timed(lambda: render(store.collect(), Format.TEXT, NAMESPACE))
        ours_e2e.append(t)
        if out != first:
            raise SystemExit(f"{case}: two renders differ")
        t, _ = timed(lambda: render(collected, Format.TEXT, NAMESPACE))
        ours_render.append(t)
        t, out = timed(lambda: render(store.collect(), Format.PROTOBUF, NAMESPACE))
        proto.append(t)
        if out != proto_first:
            raise SystemExit(f"{case}: two protobuf renders differ")
        if library and i < anchor_repeats:
            t, out = timed(lambda: library_render(store.collect()))
            lib.append(t)
            if out != proto_first:
                raise SystemExit(f"{case}: the protobuf library's bytes differ from ours")
        if i < anchor_repeats:
            t, anchor_out = timed(lambda: generate_latest(registry))
            anchor.append(t)
    om_times = [timed(lambda: render(collected, Format.OPENMETRICS, NAMESPACE))[0] for _ in range(3)]
    lines = first.count(b"\n")
    anchor_lines = anchor_out.count(b"\n")
    med_e2e, med_render, med_anchor = (statistics.median(x) for x in (ours_e2e, ours_render, anchor))
    print(f"\n== {case}: {n} series in the store, {lines} lines ({len(first) / 1e6:.1f} MB); "
          f"prometheus_client: {anchor_lines} lines ({len(anchor_out) / 1e6:.1f} MB); built in {build_seconds:.1f} s")
    rows = [
        ("prometheus_client generate_latest", med_anchor, len(anchor)),
        ("ours: render(store.collect())", med_e2e, repeats),
        ("ours: render(families) only", med_render, repeats),
        ("ours: cold memo, render(store.collect())", cold, 1),
        ("ours: OpenMetrics render(families)", statistics.median(om_times), 3),
        ("ours: protobuf render(store.collect())", statistics.median(proto), repeats),
        ("ours: protobuf, cold memo", proto_cold, 1),
    ]
    if lib:
        rows.append(("protobuf library, store.collect()", statistics.median(lib), len(lib)))
    print(f"  {'':40} {'median':>10} {'per series':>12} {'per line':>10} {'vs anchor':>10}  runs")
    for label, seconds, runs in rows:
        print(f"  {label:40} {seconds * 1e3:8.1f}ms {seconds / n * 1e6:10.2f}µs "
              f"{seconds / lines * 1e9:8.0f}ns {med_anchor / seconds:9.1f}x  {runs}")
    print(f"  label-text memo: {memo_bytes(renderer) / 2**20:.1f} MiB; protobuf {len(proto_first) / 1e6:.1f} MB, "
          f"{med_e2e / statistics.median(proto):.2f}x the speed of our text")
    if do_check:
        print("  " + check(first) + "; two renders byte-identical: yes")
    return {"e2e": med_e2e, "render": med_render, "anchor": med_anchor, "lines": lines}


def profile(case: str, n: int) -> None:
    store, _ = build(case, n)
    render = Renderer().render
    render(store.collect())
    profiler = cProfile.Profile()
    profiler.enable()
    render(store.collect())
    profiler.disable()
    pstats.Stats(profiler).sort_stats("tottime").print_stats(15)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--series", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--anchor-repeats", type=int, default=3,
                        help="prometheus_client renders per case (its 100k-histogram case takes ~20 s each)")
    parser.add_argument("--cases", default="counters,gauges,histograms,mix")
    parser.add_argument("--check", action="store_true", help="parser + promtool on our output")
    parser.add_argument("--library", action="store_true", help="also time the protobuf library's encoding")
    parser.add_argument("--profile", metavar="CASE")
    args = parser.parse_args()
    prometheus_client.disable_created_metrics()  # same lines on both sides
    print(f"python {sys.version.split()[0]}, prometheus_client {getattr(prometheus_client, '__version__', '')}".strip(", "))
    print("command: python " + " ".join(sys.argv))
    if args.profile:
        profile(args.profile, args.series)
        return
    for case in args.cases.split(","):
        run_case(case, args.series, args.repeats, min(args.anchor_repeats, args.repeats), args.check, args.library)


if __name__ == "__main__":
    main()
