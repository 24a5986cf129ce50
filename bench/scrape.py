"""Scrape cost of the daemon on the default config, side by side with node_exporter.

    python bench/scrape.py [--scrapes 300] [--idle-seconds 60]
    python bench/scrape.py --ingest-during 1000000 [--seconds 20] [--rate 20000]

Both exporters run at once on loopback; scrapes alternate between them so the
machine's noise falls on both alike. Reports median and p99 latency, CPU seconds
per scrape (from /proc/<pid>/stat), RSS and series count, and the idle CPU of each
at a 15 s scrape interval. The anchor is Debian's prometheus-node-exporter.

`--ingest-during N`: does a big scrape stop StatsD ingestion? The daemon (in this
process, its store filled directly with N counter series, so that setting up
takes seconds, not the minutes StatsD would take to create them) serves
back-to-back gzip scrapes from a client process while a sender process sends
`--rate` lines/s (30-line packets, names already routed) to its UDP listener
with an 8 MiB buffer. Reports the share of datagrams the kernel dropped, first
with no scrapes (the baseline) and then during the scrapes.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
TICKS = os.sysconf("SC_CLK_TCK")


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def wait(url: str) -> None:
    for _ in range(300):
        try:
            urllib.request.urlopen(url, timeout=1).read()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"{url} never answered")


def scrape(url: str) -> tuple[float, bytes]:
    start = time.perf_counter()
    with urllib.request.urlopen(url, timeout=10) as r:
        body = r.read()
    return time.perf_counter() - start, body


def series(body: bytes) -> int:
    return sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))


class Target:
    def __init__(self, name: str, cmd: list[str], port: int) -> None:
        self.name, self.url = name, f"http://127.0.0.1:{port}/metrics"
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait(self.url)
        self.latencies: list[float] = []
        self.cpu_per_scrape = 0.0
        self.series = 0

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


SENDER = """
import socket, sys, time
port, rate, seconds, names = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
packets = [("\\n".join(f"ingest.during.k{(i * 30 + j) % names}:1|c" for j in range(30))).encode()
           for i in range(max(100, names // 30))]
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
interval, sent, start = 30 / rate, 0, time.perf_counter()
while (now := time.perf_counter()) - start < seconds:
    due = int((now - start) / interval)
    while sent < due:
        sock.sendto(packets[sent % len(packets)], ("127.0.0.1", port))
        sent += 1
    time.sleep(0.001)
print(sent)
"""

SCRAPER = """
import sys, time, urllib.request
url, seconds = sys.argv[1], float(sys.argv[2])
took, start = [], time.perf_counter()
while time.perf_counter() - start < seconds:
    t = time.perf_counter()
    with urllib.request.urlopen(urllib.request.Request(url, headers={"Accept-Encoding": "gzip"}), timeout=120) as r:
        r.read()
    took.append(time.perf_counter() - t)
print(len(took), sorted(took)[len(took) // 2])
"""


def ingest_during(series_count: int, seconds: float, rate: float, names: int) -> None:
    """Kernel drops on the StatsD socket with and without back-to-back scrapes of a big store."""
    import asyncio
    import threading

    sys.path.insert(0, str(ROOT))
    from exporter import config as config_module
    from exporter.daemon import Daemon
    from exporter.model import FamilySpec, MetricType
    from exporter.web import Options

    udp, web = free_port(socket.SOCK_DGRAM), free_port()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "config.yaml"
        path.write_text(yaml.safe_dump({
            "web": {"listen_address": f"127.0.0.1:{web}"},
            "statsd": {"listeners": [f"udp://127.0.0.1:{udp}"], "read_buffer": 8 << 20,
                       "defaults": {"max_series": 2 * series_count + 10_000,
                                    "max_series_per_family": 2 * series_count + 10_000}},
            "collectors": {"host": {"enabled": False}, "process": {"enabled": False},
                           "container": {"enabled": False}}}))
        daemon = Daemon(str(path), config_module.load(str(path)))
        spec = FamilySpec("ingest_filler_total", MetricType.COUNTER, "Filler series.", ("key",))
        for i in range(series_count):
            daemon.store.counter(spec, f"k{i:07d}").value = float(i)
        loop = asyncio.new_event_loop()
        url = f"http://127.0.0.1:{web}/metrics"

        def drops() -> int:
            listener = daemon.statsd._listeners[0]
            return listener.kernel_drops() or 0  # type: ignore[union-attr]

        def window(with_scrapes: bool) -> tuple[int, int, str]:
            before = drops()
            sender = subprocess.Popen([sys.executable, "-c", SENDER, str(udp), str(rate), str(seconds), str(names)],
                                      stdout=subprocess.PIPE, text=True)
            scraper = (subprocess.Popen([sys.executable, "-c", SCRAPER, url, str(seconds)],
                                        stdout=subprocess.PIPE, text=True) if with_scrapes else None)
            sent = int(sender.communicate()[0])
            scraped = scraper.communicate()[0].split() if scraper is not None else ["0", "0"]
            time.sleep(1.0)  # the reader catches up with what the kernel still holds
            return sent, drops() - before, f"{scraped[0]} scrapes, median {float(scraped[1]):.2f} s"

        def measure() -> None:
            # In a thread that only waits on the processes; the daemon's loop has the main thread.
            try:
                wait(f"http://127.0.0.1:{web}/-/healthy")  # not /metrics: one takes seconds at this size
                urllib.request.urlopen(url, timeout=300).read()  # warm the renderer's caches (the first is slow)
                print(f"# python bench/scrape.py --ingest-during {series_count} --seconds {seconds:g} "
                      f"--rate {rate:g} --names {names}")
                for label, with_scrapes in (("no scrapes", False), ("back-to-back scrapes", True)):
                    sent, dropped, what = window(with_scrapes)
                    print(f"{label:<22} {sent:>7} datagrams sent, {dropped:>6} dropped by the kernel "
                          f"({100 * dropped / max(1, sent):.2f}%)" + (f"; {what}" if with_scrapes else ""),
                          flush=True)
            finally:
                loop.call_soon_threadsafe(daemon.stop)

        threading.Thread(target=measure, daemon=True).start()
        loop.run_until_complete(daemon.run(Options()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scrapes", type=int, default=300)
    parser.add_argument("--idle-seconds", type=float, default=60.0)
    parser.add_argument("--ingest-during", type=int, default=0, metavar="SERIES",
                        help="measure StatsD loss during back-to-back scrapes of this many series instead")
    parser.add_argument("--seconds", type=float, default=20.0, help="--ingest-during: length of each window")
    parser.add_argument("--rate", type=float, default=20_000.0, help="--ingest-during: StatsD lines/s")
    parser.add_argument("--names", type=int, default=500,
                        help="--ingest-during: distinct StatsD names sent in turn (above 200k, each misses the routing cache)")
    args = parser.parse_args()
    if args.ingest_during:
        ingest_during(args.ingest_during, args.seconds, args.rate, args.names)
        return

    node_bin = shutil.which("prometheus-node-exporter") or shutil.which("node_exporter")
    if node_bin is None:
        raise SystemExit("install the anchor: apt-get install prometheus-node-exporter")
    ours_bin = shutil.which("apm-exporter") or sys.executable
    with tempfile.TemporaryDirectory() as tmp:
        # The repository's config.yaml, moved to free ports so it runs beside anything else.
        cfg = yaml.safe_load((ROOT / "config.yaml").read_text())
        cfg["statsd"]["listeners"] = [f"udp://127.0.0.1:{free_port(socket.SOCK_DGRAM)}"]
        config_path = Path(tmp) / "config.yaml"
        config_path.write_text(yaml.safe_dump(cfg))
        ours_port, node_port = free_port(), free_port()
        ours_cmd = ([ours_bin] if ours_bin.endswith("apm-exporter") else [ours_bin, "-m", "exporter"])
        targets = [
            Target("apm-exporter", [*ours_cmd, "--config.file", str(config_path),
                                    "--web.listen-address", f"127.0.0.1:{ours_port}"], ours_port),
            Target("node_exporter", [node_bin, f"--web.listen-address=127.0.0.1:{node_port}"], node_port),
        ]
        try:
            for t in targets:  # warm-up: first scrapes fill caches on both sides
                for _ in range(10):
                    scrape(t.url)
            cpu_before = {t.name: cpu_seconds(t.proc.pid) for t in targets}
            for _ in range(args.scrapes):
                for t in targets:
                    took, body = scrape(t.url)
                    t.latencies.append(took)
                    t.series = series(body)
            for t in targets:
                t.cpu_per_scrape = (cpu_seconds(t.proc.pid) - cpu_before[t.name]) / args.scrapes
            rss = {t.name: rss_mib(t.proc.pid) for t in targets}
            # Idle: a scrape every 15 s (compressed: one scrape per 15 s of the window), else nothing.
            idle_before = {t.name: cpu_seconds(t.proc.pid) for t in targets}
            started = time.monotonic()
            next_scrape = started
            while time.monotonic() - started < args.idle_seconds:
                if time.monotonic() >= next_scrape:
                    for t in targets:
                        scrape(t.url)
                    next_scrape += 15.0
                time.sleep(0.2)
            window = time.monotonic() - started
            idle = {t.name: 100 * (cpu_seconds(t.proc.pid) - idle_before[t.name]) / window for t in targets}
        finally:
            for t in targets:
                t.stop()

    ours, node = targets
    print(f"# python bench/scrape.py --scrapes {args.scrapes} --idle-seconds {args.idle_seconds:g}")
    print(f"{'exporter':<14} {'series':>6} {'median ms':>9} {'p99 ms':>7} {'CPU ms/scrape':>13} "
          f"{'RSS MiB':>7} {'idle CPU %':>10}")
    for t in targets:
        lat = sorted(t.latencies)
        p99 = lat[min(len(lat) - 1, int(0.99 * len(lat)))]
        print(f"{t.name:<14} {t.series:>6} {1000 * statistics.median(lat):>9.2f} {1000 * p99:>7.2f} "
              f"{1000 * t.cpu_per_scrape:>13.2f} {rss[t.name]:>7.1f} {idle[t.name]:>10.3f}")
    ratio = statistics.median(ours.latencies) / statistics.median(node.latencies)
    print(f"median latency ratio apm-exporter / node_exporter: {ratio:.2f}")


if __name__ == "__main__":
    main()
