"""Client overhead: what `@tm.timed` adds to a call, side by side with the usual alternatives.

    python bench/client.py [--calls 200000] [--rounds 7] [--json]

Every variant wraps the same empty function and is timed in the same process and
run, alternating round by round so the machine's noise falls on all alike. Figures
are the best round (the least disturbed), per call, minus the bare call: the cost
the instrumentation adds. Variants:

- `exporter.client @tm.timed`: the hot path alone (two clock reads, one list.append);
- `... incl. flush`: the same, plus the flush that formats and sends those values
  (amortised per call) to a real UDP receiver in another process;
- `with tm.timed(...)`, `cache.hit()`: the other hot-path shapes;
- anchor `prometheus_client Histogram.time()` (decorator);
- anchor `statsd @timer` (one UDP packet per call) and its pipelined form
  (`pipeline().timer`, sent every 1000 calls, send included).

The ratios compare the anchors with `@tm.timed incl. flush`, the honest figure.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import prometheus_client
import statsd

from exporter.client import Telemetry

RECEIVER = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1], flush=True)
while True:
    s.recv(65535)
"""


def empty() -> None:
    pass


def per_call(fn: Callable[[], object], calls: int, after: Callable[[], object] | None = None) -> float:
    """Seconds per call of `calls` calls, plus `after()` (a flush) amortised over them."""
    t0 = time.perf_counter()
    for _ in range(calls // 10):
        fn(); fn(); fn(); fn(); fn(); fn(); fn(); fn(); fn(); fn()
    if after is not None:
        after()
    return (time.perf_counter() - t0) / calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--json", action="store_true", help="print figures as JSON")
    args = parser.parse_args()

    receiver = subprocess.Popen([sys.executable, "-c", RECEIVER], stdout=subprocess.PIPE, text=True)
    try:
        port = int(receiver.stdout.readline())  # type: ignore[union-attr]
        run(args, port)
    finally:
        receiver.kill()
        receiver.wait()


def run(args: argparse.Namespace, port: int) -> None:
    # A flush interval longer than the run: the flush thread never wakes in the middle of a
    # measurement, and the flush we pay for is the one we call (it sends everything recorded).
    tm = Telemetry(f"127.0.0.1:{port}", flush_interval=3600)
    timed = tm.timed("bench")(empty)

    def with_block() -> None:
        with tm.timed("bench_block"):
            pass

    hit = tm.cache("bench").hit

    registry = prometheus_client.CollectorRegistry()
    histogram = prometheus_client.Histogram("bench_seconds", "bench", registry=registry)
    prom_timed = histogram.time()(empty)

    sd = statsd.StatsClient("127.0.0.1", port)
    sd_timed = sd.timer("bench")(empty)
    pipe = sd.pipeline()
    pipe_timed = pipe.timer("bench")(empty)
    pipe_calls = [0]

    def pipelined() -> None:
        pipe_timed()
        pipe_calls[0] += 1
        if pipe_calls[0] == 1000:
            pipe.send()
            pipe_calls[0] = 0

    variants: dict[str, tuple[Callable[[], object], Callable[[], object] | None]] = {
        "bare call": (empty, None),
        "exporter.client @tm.timed": (timed, tm.flush),  # flush timed separately below
        "exporter.client @tm.timed incl. flush": (timed, tm.flush),
        "exporter.client with tm.timed()": (with_block, tm.flush),
        "exporter.client cache.hit()": (hit, tm.flush),
        "prometheus_client Histogram.time()": (prom_timed, None),
        "statsd @timer": (sd_timed, None),
        "statsd pipeline().timer": (pipelined, None),
    }
    best = {name: float("inf") for name in variants}
    for _ in range(args.rounds):
        for name, (fn, after) in variants.items():
            if name == "exporter.client @tm.timed":
                took = per_call(fn, args.calls)
                tm.flush()  # outside the timing: hot path only
            else:
                took = per_call(fn, args.calls, after)
            best[name] = min(best[name], took)
    stats = tm.stats()
    tm.close()

    base = best.pop("bare call")
    added = {name: (t - base) * 1e6 for name, t in best.items()}
    ours = added["exporter.client @tm.timed incl. flush"]
    figures = {
        "command": "python bench/client.py " + " ".join(sys.argv[1:]),
        "python": sys.version.split()[0],
        "calls": args.calls,
        "rounds": args.rounds,
        "bare_call_us": base * 1e6,
        "added_us": added,
        "ratio_vs_ours_incl_flush": {
            name: added[name] / ours for name in
            ("prometheus_client Histogram.time()", "statsd @timer", "statsd pipeline().timer")},
        "client_stats": stats,
    }
    if args.json:
        print(json.dumps(figures, indent=2))
        return
    print(f"$ {figures['command']}   (Python {figures['python']}, {args.calls} calls x {args.rounds} rounds,"
          f" best round)")
    print(f"bare call: {base * 1e9:.0f} ns\n")
    print(f"{'added per call':<42}{'µs':>8}{'x ours':>9}")
    for name, us in added.items():
        print(f"{name:<42}{us:>8.3f}{us / ours:>9.1f}")
    print(f"\nclient: {stats['datagrams_sent']} datagrams, {stats['send_errors']} send errors")


if __name__ == "__main__":
    main()
