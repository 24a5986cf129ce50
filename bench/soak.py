"""Soak: the daemon under steady StatsD load for a long time, scraped every second by Prometheus.

    python bench/soak.py [--minutes 30] [--rate LINES_PER_S] [--warmup-minutes 5] [--udp-workers 1] [--read-buffer BYTES]

Without --rate the run first measures this mix's maximum rate (the highest with
under 0.1% loss, bench/ingest.py's search: daemon on CPU 0, sender on CPU 1, no
scraper) and soaks at half of it, as the issue asks: a mix's maximum depends on the
mix, so the maximum measured on bench/ingest.py's mix is not this one's. It measures
the maximum again after the soak, because a shared machine's speed drifts.

A realistic mix at a fixed rate (lines/s, 30-line packets): 1,000 operations x
ok/error timers, 50 caches (hits, misses, entries), 20 pools, 20 queues, and churn:
a `session` family whose ids change every minute, with a 60 s TTL, so series are
created and expired all along. A real Prometheus 2.42 scrapes the daemon every second.
Every 10 s the run records the daemon's RSS and the kernel's drops for the listener
(all of the loss: the total counted at the end says so); at the end it reports, per
5-minute window (1-minute windows in a run under 25 minutes), RSS, loss and the p50,
p99 and max of Prometheus's own `scrape_duration_seconds` with the scrapes that
failed (`up` 0: a timeout, as the timeout is the 1 s interval), and the RSS slope
after the warm-up (least squares, MiB per 10 minutes). With `--udp-workers` the
workers' RSS is not in the daemon's.

Placement (2-core machine): the daemon runs on CPU 0 and the sender and Prometheus on CPU 1,
as the maximum was measured (daemon on CPU 0, sender on CPU 1), so that "half the maximum"
is half of what the daemon had when it was measured; `--no-pin` lets the scheduler place
all three (a daemon sharing its core with Prometheus's bursts then loses at a rate that
has nothing to do with its own). With `--udp-workers` above 1 the daemon and its workers
may use every CPU. The drops are also read every second: the run reports how many seconds
had any, and the largest one-second bursts with when they happened and what the machine did
in that second: the share of the daemon's CPU the hypervisor took (steal, /proc/stat), the
daemon's own CPU use, and the longest scrape Prometheus recorded around it; then the same
medians over seconds with drops and seconds without, which tells a machine's stall from
the daemon's.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ingest import SENDER, Exporter, free_port, kernel_udp, mix, search  # noqa: E402  (the sibling benchmarks' helpers)
from scrape import cpu_seconds, rss_mib  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
LINES_PER_PACKET = 30
READ_BUFFER = 8 << 20  # statsd.read_buffer unless --read-buffer says otherwise
SEGMENT = 60.0  # seconds of traffic per sender run; each has fresh churn ids

CONFIG = """
statsd:
  listeners: ["udp://127.0.0.1:{port}"]
  read_buffer: {read_buffer}
  udp_workers: {workers}
  mappings:
    - match: "soak.session.*"
      name: "soak_session_requests"
      labels: {{session: "$1"}}
      ttl: 60s
collectors:
  host: {{enabled: true}}
"""


def cpu_ticks(cpu: str) -> tuple[int, int]:
    """(all ticks, stolen ticks) of one /proc/stat line: "cpu0", or "cpu" for the whole machine."""
    for line in Path("/proc/stat").read_text().splitlines():
        name, *values = line.split()
        if name == cpu:
            ticks = [int(v) for v in values[:8]]  # user nice system idle iowait irq softirq steal
            return sum(ticks), ticks[7]
    return 0, 0


@dataclass
class Second:
    """One second of the soak as /proc saw it."""

    t: float  # seconds since the start, at the second's end
    drops: int  # datagrams the kernel dropped in it
    steal: float  # share of the daemon's CPU(s) the hypervisor took
    busy: float  # the daemon's CPU use, in cores


def packets(segment: int, count: int, seed: int) -> list[bytes]:
    rnd = random.Random(seed * 1000 + segment)
    ops = [f"op{i}" for i in range(1000)]
    caches = [f"c{i}" for i in range(50)]
    pools = [f"p{i}" for i in range(20)]
    queues = [f"q{i}" for i in range(20)]
    sessions = [f"s{segment}x{i}" for i in range(200)]  # new ids each segment: churn through TTL

    def ms() -> str:
        return f"{rnd.lognormvariate(3, 1):.3f}"

    makers = [
        (50, lambda: f"apm.operation:{ms()}|ms|#operation:{rnd.choice(ops)},outcome:{rnd.choice(['ok'] * 19 + ['error'])}"),
        (15, lambda: f"apm.cache.{rnd.choice(['hit'] * 4 + ['miss'])}:1|c|#cache:{rnd.choice(caches)}"),
        (3, lambda: f"apm.cache.entries:{rnd.randint(0, 5000)}|g|#cache:{rnd.choice(caches)}"),
        (8, lambda: f"apm.pool.{rnd.choice(['active', 'idle'])}:{rnd.randint(0, 20)}|g|#pool:{rnd.choice(pools)}"),
        (6, lambda: f"apm.pool.wait:{ms()}|ms|#pool:{rnd.choice(pools)}"),
        (8, lambda: f"apm.queue.depth:{rnd.randint(0, 300)}|g|#queue:{rnd.choice(queues)}"),
        (4, lambda: f"apm.batch.size:{rnd.randint(1, 500)}|h|#queue:{rnd.choice(queues)}"),
        (6, lambda: f"soak.session.{rnd.choice(sessions)}:1|c"),
    ]
    return mix(rnd, makers, LINES_PER_PACKET, count)


class SoakExporter(Exporter):
    template = CONFIG.replace("{read_buffer}", str(READ_BUFFER))  # main() sets --read-buffer's


def maximum_rate(tmp: Path, workers: int) -> float:
    """This mix's highest rate with under 0.1% loss, on a daemon of its own (stopped after)."""
    path = tmp / "search.pickle"
    path.write_bytes(pickle.dumps(packets(0, 2000, seed=7)))
    receiver = SoakExporter(free_port(), tmp, workers=workers, cpus="0" if workers == 1 else "0,1")
    receiver.start()
    receiver.wait_bound()
    try:
        print("# this mix's maximum rate (4 s trials):", flush=True)
        best, _, sender_limited = search(receiver, path, LINES_PER_PACKET, start=300_000, seconds=4.0, steps=3)
    finally:
        receiver.stop()
    if sender_limited:
        print("# the sender, not the daemon, was the limit: half of it understates the daemon's maximum")
    return best


def counted(web: int) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{web}/metrics", timeout=30) as r:
        text = r.read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("apm_exporter_statsd_lines_total{"))


def query(prom: int, expr: str, at: float) -> list[dict[str, object]]:
    url = f"http://127.0.0.1:{prom}/api/v1/query?" + urllib.parse.urlencode({"query": expr, "time": at})
    with urllib.request.urlopen(url, timeout=30) as r:
        return json.load(r)["data"]["result"]  # type: ignore[no-any-return]


# Per window: the p50, p99 and max of Prometheus's own scrape_duration_seconds, and the scrapes
# that failed (up 0: a timeout, as the scrape timeout is the 1 s interval).
WINDOW_EXPRS = (
    'quantile_over_time(0.5, scrape_duration_seconds{{job="apm"}}[{w}])',
    'quantile_over_time(0.99, scrape_duration_seconds{{job="apm"}}[{w}])',
    'max_over_time(scrape_duration_seconds{{job="apm"}}[{w}])',
    'count_over_time(up{{job="apm"}}[{w}]) - sum_over_time(up{{job="apm"}}[{w}])',
)


def scalar(prom: int, expr: str, at: float) -> float:
    found = query(prom, expr, at)
    return float(found[0]["value"][1]) if found else float("nan")  # type: ignore[index]


def slope_per_10min(points: list[tuple[float, float]]) -> float:
    if len(points) < 2:
        return 0.0
    ts, vs = zip(*points)
    mt, mv = statistics.fmean(ts), statistics.fmean(vs)
    den = sum((t - mt) ** 2 for t in ts)
    return 600 * sum((t - mt) * (v - mv) for t, v in points) / den if den else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--rate", type=float, default=0.0,
                        help="lines per second (default: half this mix's measured maximum)")
    parser.add_argument("--warmup-minutes", type=float, default=5.0)
    parser.add_argument("--udp-workers", type=int, default=1,
                        help="statsd.udp_workers: ingest in this many processes beside the daemon (1: in it)")
    parser.add_argument("--read-buffer", type=int, default=READ_BUFFER,
                        help="statsd.read_buffer in bytes, for the maximum's search and the soak (default 8 MiB)")
    parser.add_argument("--no-pin", action="store_true",
                        help="no CPU placement (default: daemon on CPU 0, sender and Prometheus on CPU 1)")
    args = parser.parse_args()
    SoakExporter.template = CONFIG.replace("{read_buffer}", str(args.read_buffer))
    pin = not args.no_pin and args.udp_workers == 1 and (os.cpu_count() or 1) >= 2
    daemon_cpus, others = (["taskset", "-c", "0"], ["taskset", "-c", "1"]) if pin else ([], [])
    prometheus = shutil.which("prometheus")
    if prometheus is None:
        raise SystemExit("install the scraper: apt-get install prometheus")
    ours = shutil.which("apm-exporter")
    ours_cmd = [ours] if ours else [sys.executable, "-m", "exporter"]
    port, web, prom = free_port(), free_port(socket.SOCK_STREAM), free_port(socket.SOCK_STREAM)
    samples: list[tuple[float, float, int]] = []  # (t, rss MiB, kernel drops so far)
    seconds: list[Second] = []
    watched = "cpu0" if pin else "cpu"  # the daemon's CPU
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        maximum = maximum_rate(tmp, args.udp_workers) if not args.rate else 0.0
        rate = args.rate or maximum / 2
        (tmp / "config.yaml").write_text(SoakExporter.template.format(port=port, workers=args.udp_workers))
        (tmp / "prometheus.yml").write_text(
            "global: {scrape_interval: 1s, scrape_timeout: 1s}\n"
            f"scrape_configs: [{{job_name: apm, static_configs: [{{targets: ['127.0.0.1:{web}']}}]}}]\n")
        daemon = subprocess.Popen([*daemon_cpus, *ours_cmd, "--config.file", str(tmp / "config.yaml"),
                                   "--web.listen-address", f"127.0.0.1:{web}", "--log.level", "warn"],
                                  stdout=subprocess.DEVNULL, stderr=open(tmp / "daemon.log", "wb"))
        server = subprocess.Popen([*others, prometheus, f"--config.file={tmp / 'prometheus.yml'}",
                                   f"--storage.tsdb.path={tmp / 'tsdb'}", f"--web.listen-address=127.0.0.1:{prom}"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            for _ in range(300):
                try:
                    counted(web)
                    break
                except OSError:
                    time.sleep(0.1)
            started = time.time()
            t0 = time.monotonic()
            sent_lines = 0.0
            _, drops0 = kernel_udp(port)
            segments = max(1, round(args.minutes * 60 / SEGMENT))
            pps = rate / LINES_PER_PACKET
            next_sample = 10.0
            next_tick = 1.0
            last_drops = drops0
            last_cpu, last_daemon, last_at = cpu_ticks(watched), cpu_seconds(daemon.pid), 0.0
            for segment in range(segments):
                path = tmp / f"packets-{segment}.pickle"
                path.write_bytes(pickle.dumps(packets(segment, 2000, seed=7)))
                sender = subprocess.Popen([*others, sys.executable, "-c", SENDER, str(port), str(pps), str(SEGMENT), str(path)],
                                          stdout=subprocess.PIPE, text=True)
                # Sample every 10 s across segments, and start the next segment as soon as this
                # one ends: a fixed sleep here idled the daemon for up to 10 s a segment.
                while True:
                    try:
                        out, _ = sender.communicate(timeout=max(0.0, next_tick - (time.monotonic() - t0)))
                        break
                    except subprocess.TimeoutExpired:
                        now, dropped = time.monotonic() - t0, kernel_udp(port)[1]
                        (total, stolen), used = cpu_ticks(watched), cpu_seconds(daemon.pid)
                        seconds.append(Second(now, dropped - last_drops,
                                              (stolen - last_cpu[1]) / max(1, total - last_cpu[0]),
                                              (used - last_daemon) / max(1e-3, now - last_at)))
                        last_drops, last_cpu, last_daemon, last_at = dropped, (total, stolen), used, now
                        next_tick += 1.0
                        if now >= next_sample:
                            samples.append((now, rss_mib(daemon.pid), dropped - drops0))
                            next_sample += 10.0
                sent_lines += json.loads(out)["lines"]
            time.sleep(3)  # let the last datagrams be read and counted
            total_counted = counted(web)
            _, drops = kernel_udp(port)
            ended = time.time()
            windows = []
            window = min(300.0, 60.0 * max(1.0, args.minutes // 5))  # 5 windows in a short run
            at = started + window
            while at <= ended + 1:
                windows.append((at - started, *(scalar(prom, expr.format(w=f"{window:.0f}s"), at) for expr in WINDOW_EXPRS)))
                at += window
            bursts = sorted((b for b in seconds if b.drops), key=lambda b: -b.drops)
            worst = [(b, scalar(prom, "max_over_time(scrape_duration_seconds[3s])", started + b.t)) for b in bursts[:5]]
            whole = f"{ended - started:.0f}s"
            overall = [scalar(prom, expr.format(w=whole), ended) for expr in WINDOW_EXPRS]
        finally:
            daemon.terminate()
            server.terminate()
            daemon.wait(30)
            server.wait(30)
        # Measured again once the soak is over: on a shared machine the maximum drifts, and a
        # loss is read differently when the machine had become slower than the rate's double.
        after = maximum_rate(tmp, args.udp_workers) if maximum else 0.0
    warm = [(t, rss) for t, rss, _ in samples if t >= args.warmup_minutes * 60]
    print(f"# python bench/soak.py --minutes {args.minutes:g}" + (f" --rate {args.rate:g}" if args.rate else "")
          + (f" --read-buffer {args.read_buffer}" if args.read_buffer != READ_BUFFER else "")
          + (f" --udp-workers {args.udp_workers}" if args.udp_workers > 1 else ""))
    if maximum:
        print(f"this mix's maximum {maximum:,.0f} lines/s; soaked at half: {rate:,.0f} lines/s; "
              f"the maximum measured again after the soak: {after:,.0f} lines/s")
    print(f"lines sent {sent_lines:,.0f}, counted by the daemon {total_counted:,.0f}, "
          f"loss {1 - total_counted / max(1.0, sent_lines):.5%}, kernel drops {drops - drops0:,} datagrams")
    print(f"RSS after warm-up: first {warm[0][1] if warm else float('nan'):.1f} MiB, last "
          f"{warm[-1][1] if warm else float('nan'):.1f} MiB, slope {slope_per_10min(warm):+.2f} MiB per 10 min")
    print(f"placement: {'daemon on CPU 0, sender and Prometheus on CPU 1' if pin else 'unpinned'}; "
          f"seconds with kernel drops: {len(bursts)} of {len(seconds)}")
    for b, longest in worst:
        print(f"  {b.drops:,} datagrams at {b.t / 60:.1f} min: steal {b.steal:.0%}, daemon {b.busy:.2f} cores, "
              f"longest scrape {1000 * longest:.0f} ms")
    for label, group in (("with drops", bursts), ("without", [b for b in seconds if not b.drops])):
        if group:
            print(f"  seconds {label}: median steal {statistics.median(b.steal for b in group):.1%}, "
                  f"max {max(b.steal for b in group):.0%}; median daemon {statistics.median(b.busy for b in group):.2f} cores")
    print(f"scrape duration over the run: p50 {1000 * overall[0]:.0f} ms, p99 {1000 * overall[1]:.0f} ms, "
          f"max {1000 * overall[2]:.0f} ms; failed scrapes {overall[3]:.0f}")
    print(f"{'minute':>6} {'RSS MiB':>8} {'lost %':>7} {'scrape p50 ms':>13} {'p99 ms':>7} {'max ms':>7} {'failed':>6}")
    for end, p50, p99, top, failed in windows:
        inside = [(t, r, d) for t, r, d in samples if end - window <= t <= end]
        rss = max((r for _, r, _ in inside), default=float("nan"))
        # Loss within the window: the kernel's drops (all of the loss, so far) against the rate.
        lost = ((inside[-1][2] - inside[0][2]) * LINES_PER_PACKET / (rate * (inside[-1][0] - inside[0][0]))
                if len(inside) > 1 else float("nan"))
        print(f"{end / 60:>6.1f} {rss:>8.1f} {100 * lost:>7.2f} {1000 * p50:>13.0f} {1000 * p99:>7.0f} "
              f"{1000 * top:>7.0f} {failed:>6.0f}")


if __name__ == "__main__":
    main()
