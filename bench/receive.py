"""Reading StatsD datagrams: one `recv` each against recvmmsg batches (statsd/recvmmsg.py).

    python bench/receive.py [--rounds 3] [--rate 450000] [--seconds 5]

Two measurements, each side by side in the same run, rounds interleaved, medians:

1. **Read cost**: the reader thread's CPU per datagram to empty a socket queue of
   2,000 soak-mix datagrams (30 lines each) with nothing else running in the
   process: the system calls and the bytes objects, no parsing.
2. **Beside a render**: a sender process sends the soak's mix at `--rate` lines/s for
   `--seconds` into a socket read by the real ingest path (Ingest.handle_packet on
   bench/soak.py's config), while another thread renders the store's families as a
   scrape does (Renderer.render of store.collect(), text), back to back: the worst case
   of a scrape storm. The reader's share of the GIL decides whether it keeps up: the
   figures are the kernel's drops, the queue's peak, and the renders the other thread
   finished. Drops are what the soak loses; nothing else in this bench can lose a line.

The interpreter runs with the daemon's switch interval (daemon.SWITCH_INTERVAL, 0.5 ms),
unless `--switch-interval` says otherwise (Python's default is 5 ms).
"""

from __future__ import annotations

import argparse
import contextlib
import pickle
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import yaml
from ingest import SENDER, kernel_udp
from soak import CONFIG, LINES_PER_PACKET, packets

from exporter.daemon import SWITCH_INTERVAL
from exporter.exposition import Renderer
from exporter.statsd import StatsdConfig
from exporter.statsd.ingest import Ingest
from exporter.statsd.listener import MAX_DATAGRAM
from exporter.statsd.mapper import Mapper
from exporter.statsd.recvmmsg import BatchReceiver
from exporter.statsd.stats import StatsdStats
from exporter.store import Store

BUFFER = 8 << 20  # the soak's read_buffer
SO_RCVBUFFORCE = 33


def bound_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, BUFFER)
    except OSError:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, BUFFER)
    return sock


def reader(mode: str, sock: socket.socket) -> Callable[[], list[bytes]]:
    """What the listener's loop calls: one datagram as a list of one, or a batch."""
    if mode == "recv":
        recv = sock.recv
        return lambda: [recv(MAX_DATAGRAM)]
    return BatchReceiver(sock, MAX_DATAGRAM).receive


def read_cost(mode: str, data: list[bytes]) -> float:
    """Thread CPU ns per datagram to empty a queue of these datagrams."""
    sock = bound_socket()
    out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    out.connect(sock.getsockname())
    for d in data:
        out.send(d)
    receive = reader(mode, sock)
    left = len(data)
    start = time.thread_time()
    while left:
        left -= len(receive())
    used = time.thread_time() - start
    sock.close()
    out.close()
    return used / len(data) * 1e9


def ingest() -> Ingest:
    config = StatsdConfig.model_validate(yaml.safe_load(CONFIG.format(port=1, workers=1))["statsd"])
    return Ingest(Mapper.from_config(config), Store(), StatsdStats(Store()))


def beside_render(mode: str, packet_file: Path, rate: float, seconds: float, interval: float,
                  warm: list[bytes]) -> tuple[int, int, int]:
    """(kernel drops, peak queue in datagrams, renders finished) for one trial."""
    sock = bound_socket()
    port = sock.getsockname()[1]
    target = ingest()
    sink = target.sink("bench")
    for d in warm:  # the series exist before the trial, as in a soak past its first second
        sink.handle_packet(d)
    receive = reader(mode, sock)
    stop = threading.Event()
    renders = [0]

    def read() -> None:
        handle = sink.handle_packet
        while True:
            for d in receive():
                if not d:
                    return
                handle(d)

    def render() -> None:
        renderer = Renderer()
        while not stop.wait(interval):
            renderer.render(target.store.collect())
            renders[0] += 1

    threads = [threading.Thread(target=read, daemon=True), threading.Thread(target=render, daemon=True)]
    for t in threads:
        t.start()
    _, drops0 = kernel_udp(port)
    sender = subprocess.Popen([sys.executable, "-c", SENDER, str(port), str(rate / LINES_PER_PACKET), str(seconds),
                               str(packet_file)], stdout=subprocess.DEVNULL)
    peak = 0
    while sender.poll() is None:
        peak = max(peak, kernel_udp(port)[0])
        time.sleep(0.01)
    stop.set()
    threads[1].join()
    while kernel_udp(port)[0]:
        time.sleep(0.01)
    _, drops = kernel_udp(port)
    with contextlib.suppress(OSError):  # ENOTCONN on an unconnected UDP socket, but it wakes the reader
        sock.shutdown(socket.SHUT_RDWR)
    threads[0].join(5)
    sock.close()
    return drops - drops0, peak // 2304, renders[0]  # ~2,304 bytes of buffer a 1.2 KB datagram on loopback


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rate", type=float, default=450_000.0, help="lines per second in the render trial")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--interval", type=float, default=0.0,
                        help="seconds between renders (0: back to back, a scrape storm)")
    parser.add_argument("--switch-interval", type=float, default=SWITCH_INTERVAL,
                        help="sys.setswitchinterval for the run (default: the daemon's; Python's own is 0.005)")
    args = parser.parse_args()
    sys.setswitchinterval(args.switch_interval)
    data = packets(0, 2000, seed=7)
    modes = ("recv", "recvmmsg")
    cost: dict[str, list[float]] = {m: [] for m in modes}
    trials: dict[str, list[tuple[int, int, int]]] = {m: [] for m in modes}
    with tempfile.TemporaryDirectory() as tmp:
        packet_file = Path(tmp) / "packets.pickle"
        packet_file.write_bytes(pickle.dumps(data))
        for _ in range(args.rounds):
            for mode in modes:
                cost[mode].append(read_cost(mode, data))
            for mode in modes:
                trials[mode].append(beside_render(mode, packet_file, args.rate, args.seconds, args.interval, data))
                print(f"  {mode:8} drops {trials[mode][-1][0]:>7,} peak queue {trials[mode][-1][1]:>6,} datagrams, "
                      f"renders {trials[mode][-1][2]:>5}", flush=True)
    sent = args.rate * args.seconds / LINES_PER_PACKET
    print(f"# python bench/receive.py --rounds {args.rounds} --rate {args.rate:g} --seconds {args.seconds:g} "
          f"--interval {args.interval:g} --switch-interval {args.switch_interval:g}")
    print(f"{'reader':9} {'read ns/datagram':>17} {'drops (median)':>15} {'lost %':>7} {'peak queue':>11} {'renders':>8}")
    for mode in modes:
        drops = statistics.median(t[0] for t in trials[mode])
        print(f"{mode:9} {statistics.median(cost[mode]):>17,.0f} {drops:>15,.0f} {100 * drops / sent:>7.2f} "
              f"{statistics.median(t[1] for t in trials[mode]):>11,.0f} {statistics.median(t[2] for t in trials[mode]):>8,.0f}")


if __name__ == "__main__":
    main()
