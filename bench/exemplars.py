"""Exemplars on counters: what they cost the scrape, and that counters without them cost nothing.

    python bench/exemplars.py [--series 100000] [--repeats 12] [--root DIR] [--plain-only] [--client]

A store of --series counters (10 families, as StatsD ingest writes them) rendered warm as
text, OpenMetrics and protobuf, `store.collect()` included; figures are the least CPU time
(`time.process_time`) of --repeats renders, which other load on the machine barely moves.
Cases: no exemplars; 1% of the counters with one; every counter with one (the exemplars are
set through `Store.exemplar`, as statsd/routes.py does for a counter line with a trace id).

`--root DIR --plain-only` imports the daemon from another checkout (`git archive <commit> |
tar -x -C DIR`) and measures the first case only: run it on the commit before exemplars on
counters and on this one, alternating, for the before-and-after ratio.

`--client` measures instead what the client's counters cost per call without OpenTelemetry
loaded (`cache.hit()`, `pool.timeout()`: the test for a wanted exemplar), less a bare call,
the best of 25 rounds of 200,000 calls.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from pathlib import Path
from typing import Any


def measure(series: int, repeats: int, share: float) -> dict[str, float]:
    from exporter.exposition import Format, Renderer
    from exporter.model import Exemplar, FamilySpec, MetricType
    from exporter.store import Limits, Store

    store = Store(Limits(max_series=series * 2, max_series_per_family=series))
    specs = [FamilySpec(f"requests{f}_total", MetricType.COUNTER, "Requests.", ("route", "code")) for f in range(10)]
    every = round(1 / share) if share else 0
    for n in range(series):
        spec = specs[n % len(specs)]
        counter: Any = store.series(spec, (f"/route/{n}", str(200 + n % 5)))
        counter.value = float(n)
        if every and n % every == 0:
            exemplar = Exemplar((("trace_id", f"{n:032x}"), ("span_id", f"{n:016x}")), 1.0, 1764612345.5)
            store.exemplar(spec, counter, exemplar)
    renderer = Renderer()
    out = {}
    for name, fmt in (("text", Format.TEXT), ("openmetrics", Format.OPENMETRICS), ("protobuf", Format.PROTOBUF)):
        renderer.render(store.collect(), fmt)  # warm the label memo, as every scrape after the first
        best = float("inf")
        for _ in range(repeats):
            gc.collect()
            start = time.process_time()
            renderer.render(store.collect(), fmt)
            best = min(best, time.process_time() - start)
        out[name] = best
    return out


def client() -> None:
    from exporter.client import Telemetry

    tm = Telemetry("127.0.0.1:9", flush_interval=3600)
    cache, pool = tm.cache("bench"), tm.pool("bench")

    def best(fn: Any, calls: int = 200_000, rounds: int = 25) -> float:
        least = float("inf")
        for _ in range(rounds):
            start = time.process_time()
            for _ in range(calls):
                fn()
            least = min(least, time.process_time() - start)
            tm.flush()
        return least / calls * 1e9

    bare = best(lambda: None)
    print(f"  cache.hit() {best(cache.hit) - bare:.0f} ns, pool.timeout() {best(pool.timeout) - bare:.0f} ns"
          f" a call more than a bare call ({bare:.0f} ns)")
    tm.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--series", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=12)
    parser.add_argument("--root", default=str(Path(__file__).resolve().parent.parent),
                        help="the checkout whose exporter package is measured")
    parser.add_argument("--plain-only", action="store_true", help="only counters without exemplars")
    parser.add_argument("--client", action="store_true", help="the client's counters per call instead")
    args = parser.parse_args()
    sys.path.insert(0, args.root)
    if args.client:
        print(f"client, {args.root}:")
        client()
        return
    cases = [("no exemplars", 0.0)] if args.plain_only else [("no exemplars", 0.0), ("1% with one", 0.01),
                                                             ("all with one", 1.0)]
    print(f"{args.series} counters, {args.root}: least CPU ms of {args.repeats} warm renders, collect() included")
    print(f"  {'case':<14} {'text':>8} {'openmetrics':>12} {'protobuf':>9}")
    for name, share in cases:
        got = measure(args.series, args.repeats, share)
        print(f"  {name:<14} {got['text'] * 1e3:8.1f} {got['openmetrics'] * 1e3:12.1f} {got['protobuf'] * 1e3:9.1f}",
              flush=True)


if __name__ == "__main__":
    main()
