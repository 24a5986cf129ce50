"""One daemon as its work grows: StatsD ingest and scrape rendering by series count, udp_workers.

    python3 bench/scale.py                           # everything, about 12 minutes
    python3 bench/scale.py --only ingest --sizes 1000,10000
    python3 bench/scale.py --only scrape             # 10k, 100k and 1M series (--sizes to choose)
    python3 bench/scale.py --only workers

- ingest: the same lines to apm-exporter and to collectd's statsd plugin (the anchor) with N
  distinct series, N = 1k, 10k, 100k, 1M: one counter name per series (`bench.k0000042.hits:1|c`;
  the daemon maps them with one glob rule into one family with a `key` label, collectd keeps one
  counter each). Every series is created first, then the highest rate with under 0.1% loss is
  searched (bench/ingest.py's search) with the sender sweeping all N names in order; the daemon's
  routing cache is sized from max_series (3M here), so at every size every line hits it. Loss is
  the kernel's drop count on the receiver's socket for both receivers (the daemon reads each
  datagram to the end before the next recv, so what it does not drop it ingests), CPU per line
  the receiver's user+system time over lines taken, as in bench/ingest.py.
- scrape: the daemon holding 10k, 100k and 1M series: median wall time and CPU of GET /metrics,
  body size, resident memory; protobuf too when the daemon serves it; then one more scrape amid
  steady StatsD traffic, with the loss and the socket's largest backlog meanwhile (a scrape must
  not stop ingestion: a backlog that grows for the whole render says it did).
- workers: bench/ingest.py's realistic mix and mapping with udp_workers 1 and 2, and 2 on one core;
  4 needs more cores than this machine has beside the sender, so it is skipped with that reason.

Everything reuses bench/ingest.py (receivers, sender, trial, search, socket buffers); the
receiver runs on CPU 0 and the sender on CPU 1. The machine may be shared: compare the ratios
against collectd in the same run rather than absolute rates across runs.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import re
import shutil
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import ingest  # noqa: E402  (bench/ingest.py, beside this file)
from ingest import Collectd, Exporter, Receiver, Trial, cpu_seconds, free_port, search, trial  # noqa: E402

LINES_PER_PACKET = 30
SIZES = (1_000, 10_000, 100_000, 1_000_000)
SCRAPE_SIZES = (10_000, 100_000, 1_000_000)
CREATE_RATE = 30_000.0  # lines/s while the series are first created (halved after a lossy pass)

# Limits raised above every size measured; one glob rule, so the daemon's work per line is the
# routing-cache lookup (or the mapper on a miss) and one counter update.
SCALE_CONFIG = """
statsd:
  listeners: ["udp://127.0.0.1:{port}"]
  udp_workers: {workers}
  defaults: {{max_series: 3000000, max_series_per_family: 3000000}}
  mappings:
    - match: "bench.*.hits"
      name: "bench_hits"
      labels: {{key: "$1"}}
collectors:
  host: {{enabled: false}}
  process: {{enabled: false}}
  container: {{enabled: false}}
"""


class ScaleExporter(Exporter):
    """The real daemon with SCALE_CONFIG; loss from kernel drops, as for collectd."""

    own_count = False

    def __init__(self, port: int, tmp: Path) -> None:
        super().__init__(port, tmp)
        self.name = "apm-exporter"

    def start(self) -> None:
        saved = ingest.MAPPING  # Exporter.start writes ingest.MAPPING, formatted, as the config file
        ingest.MAPPING = SCALE_CONFIG
        try:
            super().start()
        finally:
            ingest.MAPPING = saved

    def scrape(self, accept: str = "") -> tuple[float, float, bytes, str]:
        """(wall seconds, daemon CPU seconds, body, content type) of one GET /metrics."""
        assert self.proc is not None
        request = urllib.request.Request(f"http://127.0.0.1:{self.web}/metrics",
                                         headers={"Accept": accept} if accept else {})
        cpu = cpu_seconds(self.proc.pid)
        start = time.perf_counter()
        with urllib.request.urlopen(request, timeout=120) as r:
            body, kind = r.read(), r.headers.get("Content-Type", "")
        return time.perf_counter() - start, cpu_seconds(self.proc.pid) - cpu, body, kind


def rss_mib(pid: int) -> float:
    """Resident memory of the receiver process, MiB (the series-count runs use no worker processes)."""
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.M)
    return int(match.group(1)) / 1024 if match else float("nan")


def packets_for(size: int) -> list[bytes]:
    """Every one of `size` names once, in order, LINES_PER_PACKET lines a packet."""
    names = [f"bench.k{i:07d}.hits:1|c" for i in range(size)]
    return ["\n".join(names[i:i + LINES_PER_PACKET]).encode() for i in range(0, size, LINES_PER_PACKET)]


def create(receiver: Receiver, size: int, packet_file: Path) -> float:
    """Send every name until one whole pass arrives with under 0.1% loss, so (nearly) every series
    exists before the measured trials; creating series is the slowest path, so a lossy pass halves
    the rate. Returns the lines/s of the pass that succeeded."""
    rate = CREATE_RATE
    for _ in range(4):
        seconds = 1.3 * size / rate + 0.1  # the sender cycles, so a slow start still covers every name
        t = trial(receiver, packet_file, LINES_PER_PACKET, rate, seconds)
        print(f"    creating {size:,} series: a pass at {t.sent_rate:,.0f} lines/s, loss {t.loss:.4%}", flush=True)
        if t.loss < ingest.LOSS_LIMIT and t.sent_rate * seconds >= size:
            return t.sent_rate if t.loss == 0 else t.sent_rate * (1 - t.loss)
        rate /= 2
    raise RuntimeError(f"{receiver.name} lost lines in every pass creating {size:,} series")


@dataclass
class IngestResult:
    receiver: str
    size: int
    created_rate: float  # lines/s of the creating pass that kept under 0.1% loss
    cpu_per_line: float  # median over the fixed-rate trials: comparable between receivers
    fixed_rate: float
    rate: float  # highest rate with under 0.1% loss (noisy on a shared machine)
    limited: bool
    rss: float


class Sweep:
    """Each trial continues the sweep over all names where the previous one stopped.

    bench/ingest.py's sender always starts at the first packet of its file, so a trial shorter
    than the whole set would touch the same names every time and, after the first, find them
    all in the daemon's routing cache. Rewriting the file rotated before every trial keeps
    N names in play (with a routing cache smaller than N, every line would miss it).
    Installed as bench/ingest.py's `trial` while the search runs, so search() rotates too."""

    def __init__(self, packets: list[bytes], packet_file: Path) -> None:
        self.packets, self.packet_file, self.offset = packets, packet_file, 0
        self.plain = ingest.trial

    def trial(self, receiver: Receiver, packet_file: Path, lines_per_packet: int, rate: float,
              seconds: float) -> Trial:
        n = len(self.packets)
        start = self.offset % n
        self.packet_file.write_bytes(pickle.dumps(self.packets[start:] + self.packets[:start]))
        t = self.plain(receiver, self.packet_file, lines_per_packet, rate, seconds)
        self.offset += int(t.sent_rate * seconds / lines_per_packet)
        return t

    def __enter__(self) -> Sweep:
        ingest.trial = self.trial  # search() looks `trial` up in its module at each call
        return self

    def __exit__(self, *exc: object) -> None:
        ingest.trial = self.plain


def measure_ingest(receiver: Receiver, size: int, packets: list[bytes], packet_file: Path,
                   args: argparse.Namespace) -> IngestResult:
    """CPU per line at one fixed rate for every receiver (the same work per wake-up, so the figures
    compare), then the highest lossless rate; both sweep all names (Sweep)."""
    assert receiver.proc is not None
    created = create(receiver, size, packet_file)
    with Sweep(packets, packet_file) as sweep:
        fixed = [sweep.trial(receiver, packet_file, LINES_PER_PACKET, args.fixed, args.fixed_seconds)
                 for _ in range(3)]
        for t in fixed:
            print(f"    fixed {t.sent_rate:>10,.0f} lines/s, loss {t.loss:.4%},"
                  f" CPU {t.cpu_per_line * 1e9:,.0f} ns/line", flush=True)
        best, _, limited = search(receiver, packet_file, LINES_PER_PACKET, args.start, args.seconds, args.steps)
    cost = statistics.median(t.cpu_per_line for t in fixed)
    return IngestResult(receiver.name, size, created, cost, statistics.median(t.sent_rate for t in fixed), best,
                        limited, rss_mib(receiver.proc.pid))


@dataclass
class ScrapeResult:
    size: int
    series: float
    wall: float
    cpu: float
    body_mib: float
    rss: float
    protobuf_wall: float | None
    loss_during: float
    rate_during: float
    backlog_mib: float  # the most unread bytes on the daemon's socket during that one scrape


def measure_scrapes(daemon: ScaleExporter, size: int, packet_file: Path, ingest_rate: float) -> ScrapeResult:
    """Median scrape at this size, then StatsD loss and socket backlog around one more scrape."""
    assert daemon.proc is not None
    repeats = 3 if size >= 1_000_000 else 5
    daemon.scrape()  # warm the renderer's caches, as every scrape after the first is
    runs = [daemon.scrape() for _ in range(repeats)]
    wall = statistics.median(r[0] for r in runs)
    cpu = statistics.median(r[1] for r in runs)
    body = runs[-1][2]
    held = re.search(rb"^apm_exporter_series (\S+)$", body, re.M)
    series = float(held.group(1)) if held else float("nan")
    protobuf = daemon.scrape("application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;"
                             "encoding=delimited")
    protobuf_wall: float | None = None
    if protobuf[3].startswith("application/vnd.google.protobuf"):
        protobuf_wall = statistics.median([protobuf[0], *(daemon.scrape(protobuf[3])[0] for _ in range(repeats - 1))])
    # One scrape amid steady traffic, as Prometheus scrapes once an interval: the socket's backlog
    # sampled every 20 ms shows whether the daemon kept reading while it rendered.
    during: list[Trial] = []
    span = wall + 3.0
    sender = threading.Thread(target=lambda: during.append(
        trial(daemon, packet_file, LINES_PER_PACKET, ingest_rate, span)))
    sender.start()
    time.sleep(1.0)
    backlog = [0]
    scraping = threading.Thread(target=daemon.scrape)
    scraping.start()
    while scraping.is_alive():
        backlog.append(ingest.kernel_udp(daemon.port)[0])
        time.sleep(0.02)
    scraping.join()
    sender.join()
    return ScrapeResult(size, series, wall, cpu, len(body) / 2**20, rss_mib(daemon.proc.pid), protobuf_wall,
                        during[0].loss, during[0].sent_rate, max(backlog) / 2**20)


def run_sizes(args: argparse.Namespace, tmp: Path, sizes: list[int], do_ingest: bool,
              do_scrape: bool) -> tuple[list[IngestResult], list[ScrapeResult]]:
    ingests: list[IngestResult] = []
    scrapes: list[ScrapeResult] = []
    collectd = shutil.which("collectd") or Path("/usr/sbin/collectd").exists()
    for size in sizes:
        packet_file = tmp / f"packets-{size}.pickle"
        packets = packets_for(size)
        packet_file.write_bytes(pickle.dumps(packets))
        kinds: list[type[Receiver]] = [ScaleExporter]
        if do_ingest and collectd:
            kinds.append(Collectd)
        for kind in kinds:
            receiver = kind(free_port(), tmp)
            print(f"{receiver.name}, {size:,} series:", flush=True)
            receiver.start()
            try:
                if do_ingest:
                    try:
                        result = measure_ingest(receiver, size, packets, packet_file, args)
                    except RuntimeError as err:  # no lossless pass creating the series: no row, the rest still runs
                        print(f"  => {err}\n", flush=True)
                        continue
                    ingests.append(result)
                    print(f"  => {result.rate:,.0f} lines/s, {result.cpu_per_line * 1e9:,.0f} ns/line, "
                          f"RSS {result.rss:.0f} MiB\n", flush=True)
                elif isinstance(receiver, ScaleExporter):
                    create(receiver, size, packet_file)
                if do_scrape and isinstance(receiver, ScaleExporter) and size in SCRAPE_SIZES:
                    scrape = measure_scrapes(receiver, size, packet_file, args.during)
                    scrapes.append(scrape)
                    print(f"  scrape: {scrape.wall * 1e3:,.0f} ms median, {scrape.cpu * 1e3:,.0f} ms CPU, "
                          f"{scrape.body_mib:.1f} MiB, RSS {scrape.rss:.0f} MiB, loss around a scrape "
                          f"{scrape.loss_during:.4%} at {scrape.rate_during:,.0f} lines/s, socket backlog up to "
                          f"{scrape.backlog_mib:.2f} MiB\n", flush=True)
            finally:
                receiver.stop()
        packet_file.unlink()
    return ingests, scrapes


@dataclass
class WorkersResult:
    name: str
    rate: float
    limited: bool
    cpu_per_line: float


def run_workers(args: argparse.Namespace, tmp: Path) -> tuple[list[WorkersResult], str]:
    packet_file = tmp / "packets-mix.pickle"
    packet_file.write_bytes(pickle.dumps(ingest.traffic(LINES_PER_PACKET, 20_000)))
    cores = len(os.sched_getaffinity(0))
    setups = [(1, "0"), (2, "0"), (2, "0,1")]
    if cores >= 5:
        setups.append((4, ",".join(str(c) for c in range(4))))
        skipped = ""
    else:
        skipped = (f"udp_workers 4 not run: {cores} CPUs here, and the sender needs one of its own "
                   "(4 workers on fewer cores only measure their contention)")
    results = []
    for workers, cpus in setups:
        receiver = Exporter(free_port(), tmp, workers=workers, cpus=cpus)
        receiver.name = f"udp_workers {workers}, CPUs {cpus}"
        print(f"{receiver.name}:", flush=True)
        receiver.start()
        try:
            trial(receiver, packet_file, LINES_PER_PACKET, args.start / 4, 0.5)
            best, trials, limited = search(receiver, packet_file, LINES_PER_PACKET, args.start, args.seconds,
                                           args.steps)
        finally:
            receiver.stop()
        ok = [t for t in trials if t.ok]
        cost = max(ok, key=lambda t: t.rate).cpu_per_line if ok else float("nan")
        results.append(WorkersResult(receiver.name, best, limited, cost))
        print(f"  => {best:,.0f} lines/s{' (sender-limited)' if limited else ''}\n", flush=True)
    return results, skipped


# --- report ----------------------------------------------------------------------------------

def report(ingests: list[IngestResult], scrapes: list[ScrapeResult], workers: list[WorkersResult],
           skipped: str, args: argparse.Namespace) -> str:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), "?")
    out = [f"`python3 bench/scale.py {' '.join(sys.argv[1:])}`".replace(" `", "`") +
           f" — {os.cpu_count()} CPUs ({model}), load average {Path('/proc/loadavg').read_text().split()[0]}"
           f" at the end, Python {sys.version.split()[0]}, {args.seconds:g} s trials, receiver on CPU 0,"
           f" sender on CPU 1, socket buffers {args.rmem:,} bytes.", ""]
    if ingests:
        out += [f"CPU per line at {args.fixed:,.0f} lines/s (median of 3 trials of {args.fixed_seconds:g} s),"
                " the lines/s one core would take at that cost, the highest rate with under 0.1% loss,"
                " the rate at which all series were created, resident memory after:", "",
                "| series | receiver | CPU/line | vs collectd | lines/s per core | highest lossless lines/s |"
                " vs collectd | creating series | RSS |",
                "|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
        for size in sorted({r.size for r in ingests}):
            row = [r for r in ingests if r.size == size]
            anchor = next((r for r in row if r.receiver != "apm-exporter"), None)
            for r in row:
                cost = f"{r.cpu_per_line / anchor.cpu_per_line:.2f}x" if anchor else "–"
                rate = f"{r.rate / anchor.rate:.2f}x" if anchor else "–"
                out.append(f"| {size:,} | {r.receiver} | {r.cpu_per_line * 1e9:,.0f} ns | {cost} |"
                           f" {1 / r.cpu_per_line:,.0f} | {r.rate:,.0f}{' (sender-limited)' if r.limited else ''} |"
                           f" {rate} | {r.created_rate:,.0f} lines/s | {r.rss:.0f} MiB |")
        out.append("")
    if scrapes:
        out += ["| series | series held | scrape (median) | scrape CPU | body | RSS | protobuf |"
                " StatsD loss around one scrape | socket backlog during it |",
                "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for s in scrapes:
            protobuf = f"{s.protobuf_wall * 1e3:,.0f} ms" if s.protobuf_wall is not None else "not served"
            out.append(f"| {s.size:,} | {s.series:,.0f} | {s.wall * 1e3:,.0f} ms | {s.cpu * 1e3:,.0f} ms |"
                       f" {s.body_mib:.1f} MiB | {s.rss:.0f} MiB | {protobuf} |"
                       f" {s.loss_during:.3%} at {s.rate_during:,.0f} lines/s | {s.backlog_mib:.2f} MiB |")
        out.append("")
    if workers:
        base = workers[0].rate
        out += ["| udp_workers | lines/s (realistic mix) | vs 1 worker | CPU/line |", "|---|---:|---:|---:|"]
        for w in workers:
            out.append(f"| {w.name} | {w.rate:,.0f}{' (sender-limited)' if w.limited else ''} |"
                       f" {w.rate / base:.2f}x | {w.cpu_per_line * 1e9:,.0f} ns |")
        if skipped:
            out += ["", skipped + "."]
        out.append("")
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default="", help="comma list: ingest,scrape,workers")
    parser.add_argument("--sizes", default=",".join(str(s) for s in SIZES),
                        help="series counts (scrapes at those of 10k, 100k, 1M)")
    parser.add_argument("--seconds", type=float, default=1.0, help="length of one search trial")
    parser.add_argument("--steps", type=int, default=2, help="bisection steps after the first loss")
    parser.add_argument("--start", type=float, default=60_000.0, help="first rate of each search (lines/s)")
    parser.add_argument("--fixed", type=float, default=40_000.0,
                        help="lines/s of the CPU-per-line trials (below the sender's ceiling on a busy machine)")
    parser.add_argument("--fixed-seconds", type=float, default=2.0, help="length of one fixed-rate trial")
    parser.add_argument("--during", type=float, default=20_000.0, help="lines/s sent while scrapes run")
    parser.add_argument("--rmem", type=int, default=8 << 20, help="socket receive buffer (net.core.rmem_default)")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    args = parser.parse_args()
    only = set(filter(None, args.only.split(","))) or {"ingest", "scrape", "workers"}
    sizes = sorted(int(s) for s in args.sizes.split(","))
    if "ingest" not in only:
        sizes = [s for s in sizes if s in SCRAPE_SIZES]
    saved = ingest._set_rmem(args.rmem) if args.rmem else None
    tmp = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    ingests: list[IngestResult] = []
    scrapes: list[ScrapeResult] = []
    workers: list[WorkersResult] = []
    skipped = ""
    try:
        if only & {"ingest", "scrape"}:
            ingests, scrapes = run_sizes(args, tmp, sizes, "ingest" in only, "scrape" in only)
        if "workers" in only:
            workers, skipped = run_workers(args, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if saved:
            ingest._restore_rmem(saved)
    table = report(ingests, scrapes, workers, skipped, args)
    print(table)
    if args.json:
        results = {"ingest": [r.__dict__ for r in ingests], "scrape": [r.__dict__ for r in scrapes],
                   "workers": [r.__dict__ for r in workers], "skipped": skipped}
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
