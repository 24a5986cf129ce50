"""Native histogram observations beside classic ones: per call, and per line on the ingest path.

    python bench/native.py [--lines 200000] [--repeats 7]

- per call: `store.Histogram.observe` against `NativeHistogram.observe` (factor 1.1, 160
  buckets) on the same log-normal latencies;
- ingest path: the same StatsD timer lines (30 a packet, 3 decimals, as bench/ingest.py
  sends them) through `Ingest.handle` with the family classic, native and both. This is
  what a line costs the daemon: the loop inlines the native observation's common case.

Rounds alternate between the variants so the machine's noise falls on all alike;
figures are medians of --repeats rounds.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from exporter import families
from exporter.native import NativeHistogram, pick_schema
from exporter.statsd.config import StatsdConfig
from exporter.statsd.ingest import Ingest
from exporter.statsd.mapper import Mapper
from exporter.statsd.stats import StatsdStats
from exporter.store import Histogram, Store


def per_call(values: list[float], repeats: int) -> dict[str, float]:
    times: dict[str, list[float]] = {"classic": [], "native": []}
    for _ in range(repeats):
        for name in times:
            h = Histogram(families.LATENCY_BUCKETS) if name == "classic" else NativeHistogram(pick_schema(1.1))
            observe = h.observe
            start = time.perf_counter()
            for v in values:
                observe(v, 1)
            times[name].append((time.perf_counter() - start) / len(values))
    return {k: statistics.median(v) for k, v in times.items()}


def ingest_path(wire: list[str], repeats: int) -> dict[str, float]:
    packets = [("\n".join(f"svc.latency:{v}|ms|#route:/api/{i % 20}" for i, v in enumerate(wire[s:s + 30]))).encode()
               for s in range(0, len(wire), 30)]
    sinks = {}
    for kind in ("classic", "native", "both"):
        options = {"histogram_type": kind, "native_histogram_bucket_factor": 1.1}
        config = StatsdConfig.model_validate({"mappings": [
            {"match": "svc.latency", "name": "svc_latency_seconds", "histogram_options": options}]})
        ingest = Ingest(Mapper.from_config(config), Store(), StatsdStats(Store()))
        sinks[kind] = ingest.sink("udp://bench").handle_packet
        for p in packets[:10]:
            sinks[kind](p)  # routes cached, as in a running daemon
    times: dict[str, list[float]] = {k: [] for k in sinks}
    for _ in range(repeats):
        for kind, handle in sinks.items():
            start = time.perf_counter()
            for p in packets:
                handle(p)
            times[kind].append((time.perf_counter() - start) / len(wire))
    return {k: statistics.median(v) for k, v in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    rnd = random.Random(1)
    wire = [f"{rnd.lognormvariate(3, 1):.3f}" for _ in range(args.lines)]
    print(f"python {sys.version.split()[0]}; command: python " + " ".join(sys.argv))
    calls = per_call([float(v) * 0.001 for v in wire], args.repeats)
    print(f"per call:     classic {calls['classic'] * 1e9:6.0f} ns   native {calls['native'] * 1e9:6.0f} ns   "
          f"native/classic {calls['native'] / calls['classic']:.2f}x")
    lines = ingest_path(wire, args.repeats)
    print(f"ingest, per line: classic {lines['classic'] * 1e9:6.0f} ns   native {lines['native'] * 1e9:6.0f} ns "
          f"({lines['native'] / lines['classic']:.2f}x)   both {lines['both'] * 1e9:6.0f} ns "
          f"({lines['both'] / lines['classic']:.2f}x)")


if __name__ == "__main__":
    main()
