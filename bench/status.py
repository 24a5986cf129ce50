"""Cost of the status page at 1,000 operations and 200 targets, against a 100k-series scrape.

    python bench/status.py [--operations 1000] [--targets 200] [--repeats 5]

In-process, on one core, both sides measured the same way (median CPU time of
`--repeats` runs after a warm-up, garbage collected before each):

- the scrape: `render(store.collect())` of 100,000 gauge series in the store
  (the `gauges` case of bench/render.py, what a /metrics request costs);
- one status sample: `Sampler.observe` of the families of 1,000 operations (two
  outcomes each, 13 buckets) and 200 probe targets plus the daemon's own;
- the page: `page.render(model.snapshot())`, built once per sample, and
  `json.dumps` of the same model (/api/v1/status); a request between two samples
  is served from that cache;
- the history's memory: RSS of a fresh process before and after filling the
  ring (60 samples), after gc and malloc_trim, beside the rings' own bytes.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from exporter import families as F  # noqa: E402
from exporter.model import Family, HistogramValue, Sample  # noqa: E402
from exporter.status import page  # noqa: E402
from exporter.status.history import History  # noqa: E402
from exporter.status.model import Model, Sampler  # noqa: E402
from exporter.status.service import Status  # noqa: E402


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def trim() -> None:
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


class Load:
    """Cumulative families of `ops` operations and `targets` targets that grow every step."""

    def __init__(self, ops: int, targets: int, seed: int = 1) -> None:
        self.random = random.Random(seed)
        self.ops = [f"operation_{i:04d}" for i in range(ops)]
        self.targets = [f"target-{i:03d}" for i in range(targets)]
        nb = len(F.LATENCY_BUCKETS)
        self.counts = {(op, o): [0.0] * (nb + 2) for op in self.ops for o in ("ok", "error")}

    def step(self) -> list[Family]:
        r, nb = self.random, len(F.LATENCY_BUCKETS)
        samples = []
        for (op, outcome), c in self.counts.items():
            n = r.randint(0, 40) if outcome == "ok" else r.randint(0, 2)
            first = r.randint(0, nb)
            for i in range(first, nb):
                c[i] += n
            c[nb] += n
            c[nb + 1] += n * 0.01
            samples.append(Sample((op, outcome), HistogramValue(list(c[:nb]), c[nb], c[nb + 1])))
        up = [(("http", t), 0.0 if i % 20 == 0 else 1.0) for i, t in enumerate(self.targets)]
        return [
            Family(F.OPERATION_DURATION, samples), F.UP.family(up), F.COLLECTOR_SUCCESS.family(up),
            F.COLLECTOR_DURATION.family((k, r.uniform(0.001, 0.05)) for k, _ in up),
            F.PROCESS_RSS.one(40e6), F.SERIES.one(2000.0),
            F.STATSD_PARSE_ERRORS.family([(("malformed_line",), float(r.randint(0, 9)))]),
        ]


def median_ms(fn: Callable[[], object], repeats: int) -> float:
    """Median CPU time of this process (not wall time: the machine's other load stays out of it)."""
    fn()
    times = []
    for _ in range(repeats):
        gc.collect()
        start = time.process_time()
        fn()
        times.append(time.process_time() - start)
    return statistics.median(times) * 1000


def scrape_ms(series: int, repeats: int) -> float:
    from exporter.exposition import render
    from exporter.store import Gauge, Limits, Store

    store = Store(Limits(max_series=series, max_series_per_family=series))
    for i in range(series):
        g = store.series(F.POOL_CONNECTIONS, (f"pool-{i // 2}", "active" if i % 2 else "idle"))
        assert isinstance(g, Gauge)
        g.set(i * 0.5)
    return median_ms(lambda: render(store.collect()), repeats)


def memory(ops: int, targets: int) -> dict[str, float]:
    """Run in a fresh process: RSS before and after the ring fills (families built beforehand)."""
    load = Load(ops, targets)
    steps = [load.step() for _ in range(61)]
    history = History(15.0, 60)
    sampler = Sampler(history)
    trim()
    before = rss_bytes()
    for i, fams in enumerate(steps):
        sampler.observe(fams, at=15.0 * i)
    del steps, fams
    trim()
    after = rss_bytes()
    return {"rss_added_mib": (after - before) / 2**20, "ring_mib": history.nbytes() / 2**20, "keys": len(history)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--operations", type=int, default=1000)
    p.add_argument("--targets", type=int, default=200)
    p.add_argument("--series", type=int, default=100_000, help="series of the scrape it is compared with")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--memory-only", action="store_true", help=argparse.SUPPRESS)
    ns = p.parse_args()
    if ns.memory_only:
        print(json.dumps(memory(ns.operations, ns.targets)))
        return
    load = Load(ns.operations, ns.targets)
    history = History(15.0, 60)
    sampler = Sampler(history)
    steps = [load.step() for _ in range(61)]
    for i, fams in enumerate(steps[:60]):
        sampler.observe(fams, at=15.0 * i)
    last = steps[60]
    clock = [15.0 * 60]

    def observe_once() -> None:  # the ring is full: each call rolls it one row on, as every 15 s
        clock[0] += 15.0
        sampler.observe(last, at=clock[0])

    observe = median_ms(observe_once, ns.repeats)
    model = Model(history, sampler)
    snapshot = median_ms(lambda: model.snapshot(spark_rows=page.MAX_ROWS), ns.repeats)
    full = median_ms(model.snapshot, ns.repeats)
    status = model.snapshot(spark_rows=page.MAX_ROWS)
    html = median_ms(lambda: page.render(status, live=True), ns.repeats)
    everything = model.snapshot()
    body = median_ms(lambda: json.dumps(everything, separators=(",", ":"), allow_nan=False), ns.repeats)
    size_html = len(page.render(status, live=True))
    size_json = len(json.dumps(everything, separators=(",", ":")))
    scrape = scrape_ms(ns.series, ns.repeats)
    mem = json.loads(subprocess.run(
        [sys.executable, __file__, "--memory-only", "--operations", str(ns.operations), "--targets", str(ns.targets)],
        capture_output=True, text=True, check=True).stdout)
    page_ms = snapshot + html
    print(f"{ns.operations} operations, {ns.targets} targets, history 60 x 15 s; medians of {ns.repeats}")
    print(f"  scrape of {ns.series:,} gauge series, render(store.collect()): {scrape:8.1f} ms")
    print(f"  status sample (Sampler.observe: rows, deltas, ring, window sums): {observe:8.1f} ms per 15 s")
    print(f"  model snapshot for the page (all windows for the shown rows):  {snapshot:8.1f} ms")
    print(f"  model snapshot with everything (for the JSON):                 {full:8.1f} ms")
    print(f"  page render (HTML, {size_html / 1024:.0f} KiB):                               {html:8.1f} ms")
    print(f"  JSON body ({size_json / 1024:.0f} KiB), json.dumps only:                   {body:8.1f} ms")
    print(f"  page = snapshot + render (once per sample):                    {page_ms:8.1f} ms, "
          f"{page_ms / scrape:.3f} of the scrape (goal < 0.1)")
    service = Status(15.0, 60)
    for i, fams in enumerate(steps[:60]):
        service.observe(fams, at=15.0 * i)
    cached = median_ms(service.html, ns.repeats)
    print(f"  a page request between samples (cached body):                 {cached:8.3f} ms")
    print(f"  history: {mem['keys']} rows, rings {mem['ring_mib']:.2f} MiB, RSS added {mem['rss_added_mib']:.2f} MiB "
          "(goal < 5 MiB)")


if __name__ == "__main__":
    main()
