"""Memory per pushed series, and whether it goes back after TTL expiry, beside prometheus_client.

    python bench/series_memory.py [--sizes 10000,100000,1000000] [--kinds counter,gauge,histogram]

Each measurement runs in a fresh interpreter: it builds the StatsD ingest path
(parser, mapper, routing cache, store) as the daemon does, sends one line per new
series through it (a counter, a gauge or a 13-bucket classic histogram), and
reads the process's RSS before and after (after gc and malloc_trim, the daemon's
own start-up trim); then it lets the series expire by TTL through `Ingest.expire`
and reads RSS again after gc alone (the expiry trims the heap itself).
The anchor is prometheus_client holding the same series (`Counter.labels(...)`,
`Gauge.labels(...)`, `Histogram.labels(...)` with the same buckets) in the same
kind of fresh interpreter. Bytes per series = RSS growth / series.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KINDS = ("counter", "gauge", "histogram")

_CHILD = r"""
import ctypes, gc, json, sys
sys.path.insert(0, {root!r})
kind, n, anchor = {kind!r}, {n}, {anchor}

def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096

def trim() -> None:
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)

if anchor:
    import prometheus_client as pc
    registry = pc.CollectorRegistry()
    args = ("bench_series", "help", ["id", "shard"])
    metric = {{"counter": lambda: pc.Counter(*args, registry=registry),
               "gauge": lambda: pc.Gauge(*args, registry=registry),
               "histogram": lambda: pc.Histogram(*args, registry=registry, buckets=BUCKETS)}}
    BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
    m = metric[kind]()
    trim()
    before = rss()
    for i in range(n):
        child = m.labels(str(i), str(i % 16))
        if kind == "counter": child.inc()
        elif kind == "gauge": child.set(i)
        else: child.observe(0.042)
    trim()
    print(json.dumps({{"grown": rss() - before, "after_expiry": None}}))
    raise SystemExit

from exporter.statsd.config import StatsdConfig
from exporter.statsd.ingest import Ingest
from exporter.statsd.mapper import Mapper
from exporter.statsd.stats import StatsdStats
from exporter.store import Limits, Store

class Clock:
    now = 1000.0
    def __call__(self) -> float:
        return self.now

clock = Clock()
store = Store(Limits(max_series=n + 10, max_series_per_family=n + 10), clock=clock)
config = StatsdConfig.model_validate({{"defaults": {{"ttl": "60s", "max_series": n + 10,
                                                   "max_series_per_family": n + 10}}}})
ingest = Ingest(Mapper.from_config(config), store, StatsdStats(Store()))  # the cache sized as the daemon sizes it
sink = ingest.sink("udp://bench")
line = {{"counter": b"bench.series:1|c|#id:%d,shard:%d", "gauge": b"bench.series:%d|g|#id:%d,shard:%d",
        "histogram": b"bench.series:42|ms|#id:%d,shard:%d"}}[kind]
trim()
before = rss()
batch = []
for i in range(n):
    batch.append(line % ((i, i, i % 16) if kind == "gauge" else (i, i % 16)))
    if len(batch) == 30:
        sink.handle_packet(b"\n".join(batch))
        batch = []
if batch:
    sink.handle_packet(b"\n".join(batch))
assert len(store) == n, (len(store), n)
trim()
grown = rss() - before
clock.now += 3600
ingest.expire()
assert len(store) == 0
gc.collect()  # no malloc_trim here: Ingest.expire trims after a big pass, as the daemon runs it
print(json.dumps({{"grown": grown, "after_expiry": rss() - before}}))
"""


def measure(kind: str, n: int, anchor: bool) -> dict[str, int | None]:
    code = _CHILD.format(root=str(ROOT), kind=kind, n=n, anchor=anchor)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=1800)
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--kinds", default=",".join(KINDS), help="a comma list of " + ", ".join(KINDS))
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    kinds = [k for k in KINDS if k in args.kinds.split(",")]
    print(f"# python bench/series_memory.py --sizes {args.sizes} --kinds {','.join(kinds)}")
    print(f"{'kind':<10} {'series':>9} {'ours B/series':>13} {'left after expiry MiB':>21} "
          f"{'prometheus_client B/series':>26} {'ratio':>6}")
    for kind in kinds:
        for n in sizes:
            ours = measure(kind, n, anchor=False)
            ref = measure(kind, n, anchor=True)
            left = ours["after_expiry"]
            ratio = (ours["grown"] or 0) / max(1, ref["grown"] or 1)
            print(f"{kind:<10} {n:>9,} {(ours['grown'] or 0) / n:>13.0f} "
                  f"{(left or 0) / 2**20:>21.1f} {(ref['grown'] or 0) / n:>26.0f} {ratio:>6.2f}")


if __name__ == "__main__":
    main()
