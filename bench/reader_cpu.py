"""The StatsD reader's CPU per line at fixed rates below its maximum, one daemon per source tree.

    python bench/reader_cpu.py [--rates 200000,400000,700000] [--rounds 3] [--seconds 4] [--read-buffer BYTES] [--tree DIR ...]

bench/ingest.py finds the highest rate a daemon takes; this measures what a rate costs
below it, where a reader that keeps up goes idle between datagrams and every datagram
can cost a wake-up and a GIL hand-off. The soak runs at half the maximum, so the CPU a
line costs there decides how much of the core is left for scrapes and for the hypervisor's
steal. Each `--tree` is a source checkout (`git archive <commit> | tar -x -C DIR`; default:
this one), run as `python -m exporter` with that tree first on the path, on CPU 0 with the
sender on CPU 1, the same traffic as bench/ingest.py (30-line packets). Trees alternate
within each round, so the machine's drift falls on all alike. `--read-buffer` sets
`statsd.read_buffer` (default: the kernel's), which bounds the reader's nap. Reports, per tree and rate,
the median over rounds of the daemon's CPU ns per line received and the loss.
"""

from __future__ import annotations

import argparse
import pickle
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ingest import MAPPING, ROOT, Exporter, Trial, free_port, traffic, trial

LINES_PER_PACKET = 30


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="200000,400000,700000", help="lines per second, comma separated")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=4.0, help="length of one trial")
    parser.add_argument("--read-buffer", type=int, help="statsd.read_buffer in bytes (default: the kernel's)")
    parser.add_argument("--tree", action="append", type=Path, help="a source checkout (repeat to compare)")
    args = parser.parse_args()
    rates = [float(r) for r in args.rates.split(",")]
    trees = [t.resolve() for t in args.tree or [ROOT]]
    trials: dict[tuple[Path, float], list[Trial]] = {(t, r): [] for t in trees for r in rates}
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        packets = tmp / "packets.pickle"
        packets.write_bytes(pickle.dumps(traffic(LINES_PER_PACKET, 20_000)))
        daemons: list[Exporter] = []
        try:
            for tree in trees:
                daemon = Exporter(free_port(), tmp)
                daemon.tree = tree
                if args.read_buffer:
                    daemon.template = MAPPING.replace("statsd:\n", f"statsd:\n  read_buffer: {args.read_buffer}\n", 1)
                daemons.append(daemon)
                daemon.start()
                trial(daemon, packets, LINES_PER_PACKET, rates[0] / 4, 0.5)  # warm the routing caches
            for n in range(args.rounds):
                for rate in rates:
                    for daemon in daemons:
                        t = trial(daemon, packets, LINES_PER_PACKET, rate, args.seconds)
                        trials[daemon.tree, rate].append(t)
                        print(f"round {n + 1} {daemon.tree.name:>20} {rate:>10,.0f} lines/s: "
                              f"{t.cpu_per_line * 1e9:6,.0f} ns/line, loss {t.loss:.4%}", flush=True)
        finally:
            for daemon in daemons:
                daemon.stop()

    def ns(tree: Path, rate: float) -> float:
        return statistics.median(t.cpu_per_line for t in trials[tree, rate]) * 1e9

    print(f"\n# python bench/reader_cpu.py --rates {args.rates} --rounds {args.rounds} --seconds {args.seconds}"
          + (f" --read-buffer {args.read_buffer}" if args.read_buffer else ""))
    print("| tree | " + " | ".join(f"{r:,.0f} lines/s: ns/line, loss" for r in rates) + " |")
    print("|---|" + "---:|" * len(rates))
    for tree in trees:
        cells = [f"{ns(tree, r):,.0f}, {statistics.median(t.loss for t in trials[tree, r]):.3%}" for r in rates]
        print(f"| {tree.name} | " + " | ".join(cells) + " |")
    for tree in trees[1:]:
        print(f"{tree.name} / {trees[0].name}: " + ", ".join(f"{ns(tree, r) / ns(trees[0], r):.2f}x" for r in rates))

if __name__ == "__main__":
    main()
