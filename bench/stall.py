"""How long a big scrape makes other requests wait: `/-/healthy` latency during 100k-series scrapes.

    python bench/stall.py [--series 100000] [--cases counters,histograms] [--seconds 20] [--scrapers 2]

The daemon runs as a user runs it (the console script, a config file); StatsD
lines over UDP give it `--series` series of the case's family. Then, per case,
`/-/healthy` is probed every 5 ms on a new connection, first with the daemon idle,
then while `--scrapers` processes scrape `/metrics` (gzip, as Prometheus does)
back to back. The probes run in this process, the scrapers in others, so the
reading of big bodies does not delay the probes here. Reports p50, p99 and max
probe latency side by side, and the scrapes' median duration.
"""

from __future__ import annotations

import argparse
import http.client
import multiprocessing
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

PROBE_EVERY = 0.005
LINES_PER_PACKET = 20
OUTCOMES = ("ok", "error", "timeout", "cancelled")


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(port: int, path: str, headers: dict[str, str] | None = None, timeout: float = 60) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def lines(case: str, n: int) -> list[bytes]:
    if case == "counters":
        return [f"apm.cache.hit:{i % 7 + 1}|c|#cache:cache-{i}".encode() for i in range(n)]
    if case == "histograms":
        return [f"apm.operation:{(i * 7) % 2500}|ms|#operation:GET /api/{i // 4},outcome:{OUTCOMES[i % 4]}".encode()
                for i in range(n)]
    raise SystemExit(f"unknown case {case}")


def family(case: str) -> bytes:
    return b"apm_cache_requests_total{" if case == "counters" else b"apm_operation_duration_seconds_count{"


def load(port: int, statsd_port: int, case: str, n: int) -> None:
    """Send the case's lines until a scrape shows all `n` series (UDP may drop some)."""
    payload = lines(case, n)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for _ in range(20):
            for i in range(0, len(payload), LINES_PER_PACKET):
                sock.sendto(b"\n".join(payload[i:i + LINES_PER_PACKET]), ("127.0.0.1", statsd_port))
                if i % (LINES_PER_PACKET * 50) == 0:
                    time.sleep(0.002)  # let the daemon drain its buffer
            time.sleep(0.5)
            _, body = get(port, "/metrics")
            if body.count(b"\n" + family(case)) >= n:
                return
    raise SystemExit(f"{case}: the daemon never showed {n} series")


def probe(port: int, seconds: float) -> list[float]:
    """`/-/healthy` every PROBE_EVERY seconds for `seconds`: each request's latency."""
    latencies = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        start = time.perf_counter()
        status, _ = get(port, "/-/healthy")
        latencies.append(time.perf_counter() - start)
        if status != 200:
            raise SystemExit(f"/-/healthy answered {status}")
        time.sleep(max(0.0, PROBE_EVERY - (time.perf_counter() - start)))
    return latencies


def scraper(port: int, seconds: float, durations: multiprocessing.Queue[float]) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        start = time.perf_counter()
        get(port, "/metrics", {"Accept-Encoding": "gzip"}, timeout=120)
        durations.put(time.perf_counter() - start)


def summary(latencies: list[float]) -> str:
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return (f"{statistics.median(ordered) * 1e3:8.1f}ms {p99 * 1e3:8.1f}ms {ordered[-1] * 1e3:8.1f}ms "
            f"{len(ordered):7d}")


def run_case(port: int, statsd_port: int, case: str, n: int, seconds: float, scrapers: int) -> None:
    load(port, statsd_port, case, n)
    get(port, "/metrics")  # warm the label-text memo, as any scrape after the first finds it
    idle = probe(port, seconds)
    durations: multiprocessing.Queue[float] = multiprocessing.Queue()
    procs = [multiprocessing.Process(target=scraper, args=(port, seconds, durations)) for _ in range(scrapers)]
    for proc in procs:
        proc.start()
    time.sleep(0.2)
    busy = probe(port, seconds)
    for proc in procs:
        proc.join()
    scrapes = []
    while not durations.empty():
        scrapes.append(durations.get())
    print(f"\n== {case}: {n} series, {scrapers} scrapers back to back for {seconds:.0f} s")
    print(f"  {'/-/healthy latency':32} {'p50':>10} {'p99':>10} {'max':>10} {'probes':>7}")
    print(f"  {'idle daemon':32} {summary(idle)}")
    print(f"  {'during scrapes':32} {summary(busy)}")
    if scrapes:
        print(f"  scrapes: {len(scrapes)}, median {statistics.median(scrapes) * 1e3:.0f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--series", type=int, default=100_000)
    parser.add_argument("--cases", default="counters,histograms")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--scrapers", type=int, default=2)
    args = parser.parse_args()
    print(f"python {sys.version.split()[0]}; command: python " + " ".join(sys.argv))
    exe = shutil.which("apm-exporter")
    cmd = [exe] if exe else [sys.executable, "-m", "exporter"]
    for case in args.cases.split(","):
        port, statsd_port = free_port(), free_port(socket.SOCK_DGRAM)
        with tempfile.TemporaryDirectory(prefix="apm-stall-") as tmp:
            config = Path(tmp) / "config.yaml"
            config.write_text(yaml.safe_dump({
                "collectors": {name: {"enabled": False} for name in ("host", "process", "container")},
                "statsd": {"listeners": [f"udp://127.0.0.1:{statsd_port}"], "read_buffer": 8 << 20,
                           "defaults": {"ttl": "1h", "max_series": 10 * args.series,
                                        "max_series_per_family": 10 * args.series}},
            }))
            daemon = subprocess.Popen([*cmd, "--config.file", str(config), "--web.listen-address",
                                       f"127.0.0.1:{port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                for _ in range(300):
                    try:
                        if get(port, "/-/ready", timeout=1)[0] == 200:
                            break
                    except OSError:
                        time.sleep(0.05)
                run_case(port, statsd_port, case, args.series, args.seconds, args.scrapers)
            finally:
                daemon.terminate()
                daemon.wait(10)


if __name__ == "__main__":
    main()
