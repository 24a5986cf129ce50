"""The fixed cost of one scrape: our daemon with no probe and no StatsD, scraped as bench/probes.py does.

    python bench/scrape_floor.py [--scrapes 2000] [--rounds 3] [--tree DIR ...] [--prometheus]

What every probe row of bench/probes.py pays before its probe runs: accepting the
connection, reading the request, collecting the daemon's own families (26 series),
rendering and sending them. Each `--tree` is a source checkout of the exporter (for
example `git archive <commit> | tar -x -C DIR`; default: this one), run as
`python -m exporter` from this interpreter with that tree first on the path, so two
commits can be compared in one run. The daemons run at once and scrapes alternate
between them (urllib, a new connection each, as bench/probes.py scrapes), so the
machine's noise falls on all alike. Reports, per tree, the median of the rounds'
median latencies and of their CPU seconds per scrape (/proc/<pid>/stat), and the
ratio of each to the first tree. `--prometheus` sends what a Prometheus scrape sends
(Accept-Encoding: gzip, OpenMetrics preferred, the scrape timeout) instead of urllib's
plain GET (the floor row then still answers plain text). The last row is the floor under any asyncio server in this
interpreter: a bare asyncio.Protocol that answers every connection with a fixed body of the
same size, parsing nothing and collecting nothing (what no change to the daemon can go below).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from scrape import cpu_seconds, free_port  # the sibling benchmark's helpers

CONFIG = {"statsd": {"listeners": []},
          "collectors": {"host": {"enabled": False}, "process": {"enabled": False},
                         "container": {"enabled": False}},
          "probes": {}}


# The floor row: accept, read until the end of the head, one write of a fixed answer, close.
FLOOR = """
import asyncio, sys
BODY = b"x" * int(sys.argv[2])
ANSWER = b"HTTP/1.1 200 \\r\\nContent-Type: text/plain\\r\\nContent-Length: %d\\r\\n\\r\\n" % len(BODY) + BODY
class Answer(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport, self.head = transport, b""
    def data_received(self, data):
        self.head += data
        if b"\\r\\n\\r\\n" in self.head:
            self.transport.write(ANSWER)
            self.transport.close()
async def main():
    await asyncio.get_running_loop().create_server(Answer, "127.0.0.1", int(sys.argv[1]))
    await asyncio.Event().wait()
asyncio.run(main())
"""


# --prometheus: the headers a Prometheus 2.x scrape sends (gzip, text/OpenMetrics negotiation, timeout).
PROMETHEUS = {"Accept": "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;"
                        "q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
              "Accept-Encoding": "gzip", "X-Prometheus-Scrape-Timeout-Seconds": "10"}
HEADERS: dict[str, str] = {}


def scrape(url: str) -> float:
    start = time.perf_counter()
    with urllib.request.urlopen(urllib.request.Request(url, headers=HEADERS), timeout=30) as r:
        r.read()
    return time.perf_counter() - start


def start(tree: Path | None, config: Path, size: int) -> tuple[subprocess.Popen[bytes], str]:
    """The daemon from `tree`, or (None) the floor server answering `size` bytes."""
    port = free_port()
    cmd = ([sys.executable, "-m", "exporter", "--config.file", str(config), "--web.listen-address",
            f"127.0.0.1:{port}"] if tree is not None else [sys.executable, "-c", FLOOR, str(port), str(size)])
    proc = subprocess.Popen(cmd, env={**os.environ, "PYTHONPATH": str(tree or ROOT)}, cwd=tree or ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/metrics"
    deadline = time.monotonic() + 60
    while True:
        try:
            scrape(url)
            return proc, url
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the daemon from {tree} did not start") from None
            time.sleep(0.1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scrapes", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3, help="each daemon restarted per round")
    parser.add_argument("--tree", action="append", type=Path, help="a source checkout (repeat to compare)")
    parser.add_argument("--prometheus", action="store_true", help="send a Prometheus scrape's headers "
                        "(gzip, OpenMetrics, scrape timeout) instead of urllib's plain GET")
    args = parser.parse_args()
    HEADERS.update(PROMETHEUS if args.prometheus else {})
    trees: list[Path | None] = [t.resolve() for t in args.tree or [ROOT]]
    trees.append(None)  # the floor
    rounds: dict[Path | None, list[tuple[float, float]]] = {t: [] for t in trees}
    size = 4300  # about what the no-probe daemon answers
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "none.yaml"
        config.write_text(yaml.safe_dump(CONFIG))
        for _ in range(args.rounds):
            running = [(t, *start(t, config, size)) for t in trees]
            try:
                for _, _, url in running:
                    for _ in range(50):  # warm-up: the renderer's caches, the first imports
                        scrape(url)
                took: dict[Path | None, list[float]] = {t: [] for t in trees}
                before = {t: cpu_seconds(p.pid) for t, p, _ in running}
                for _ in range(args.scrapes):
                    for t, _, url in running:
                        took[t].append(scrape(url))
                for t, p, _ in running:
                    rounds[t].append((statistics.median(took[t]), (cpu_seconds(p.pid) - before[t]) / args.scrapes))
            finally:
                for _, p, _ in running:
                    p.terminate()
                    p.wait(10)
    print(f"`python bench/scrape_floor.py --scrapes {args.scrapes} --rounds {args.rounds}"
          f"{' --prometheus' if args.prometheus else ''}`, "
          f"medians of the rounds:\n")
    print("| tree | median ms | CPU ms/scrape | median / first | CPU / first |")
    print("|---|---:|---:|---:|---:|")
    first = rounds[trees[0]]
    for t in trees:
        mine = rounds[t]
        median = statistics.median(m for m, _ in mine)
        cpu = statistics.median(c for _, c in mine)
        ratio = statistics.median(a[0] / b[0] for a, b in zip(mine, first))
        cpu_ratio = statistics.median(a[1] / b[1] for a, b in zip(mine, first)) if all(b[1] for b in first) else 0
        print(f"| {t or 'asyncio floor'} | {1000 * median:.3f} | {1000 * cpu:.3f} | {ratio:.2f}x | {cpu_ratio:.2f}x |")


if __name__ == "__main__":
    main()
