"""UDP read by several processes (SO_REUSEPORT), for ingest beyond one core.

Each worker binds the same address with SO_REUSEPORT (the kernel spreads
datagrams across them by source), runs the same Ingest on a private store, and
once per FLUSH_INTERVAL sends the daemon what changed: counter and histogram
increments, gauges' current values (the daemon sums them over workers, which
is what relative `+n|g` updates from many client processes mean), and summary
counts and windows. The daemon merges those into its store, so limits, TTL and
`/metrics` work as with one process; values lag by up to one interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from exporter.heap import freeze_startup_heap
from exporter.model import Exemplar, FamilySpec
from exporter.statsd.config import StatsdConfig
from exporter.statsd.ingest import Ingest
from exporter.statsd.kernel import resolve
from exporter.statsd.listener import DatagramListener, parse_listen
from exporter.statsd.mapper import Mapper
from exporter.statsd.stats import PER_PROCESS, StatsdStats
from exporter.store import Counter, Gauge, Limits, Refusal, Store

if TYPE_CHECKING:  # imported where used: multiprocessing costs ~0.5 MiB of idle RSS otherwise
    from multiprocessing.connection import Connection

log = logging.getLogger(__name__)

FLUSH_INTERVAL = 1.0

Change = tuple[FamilySpec, float, tuple[str, ...], Any]


Walked = tuple[FamilySpec, float, tuple[str, ...], Any]  # one row of Store.walk()
# (family, TTL, labels, what the series' shipped_exemplars() gave, or a counter's Exemplar)
ExemplarChange = tuple[FamilySpec, float, tuple[str, ...], Any]


class _Tracker:
    """Turns a store's cumulative values into changes since the last call (`Series.since`)."""

    def __init__(self, skip: frozenset[str] = frozenset()) -> None:
        self._skip = skip
        self._shipped: dict[tuple[str, tuple[str, ...]], tuple[object, Any]] = {}
        self._exemplars: dict[tuple[str, tuple[str, ...]], Any] = {}

    def exemplars(self, store: Store, walked: list[Walked]) -> list[ExemplarChange]:
        """The latest exemplars that changed since the last call: histograms' per bucket,
        counters' per series (only the latest counts, so each is shipped whole). `walked` is
        the store's walk() that changes() read, so a flush walks the store once."""
        ttls = {}
        seen: dict[tuple[str, tuple[str, ...]], Any] = {}
        for spec, ttl, labels, s in walked:
            ttls[spec.name] = ttl
            get = getattr(s, "shipped_exemplars", None)
            if get is not None and (now := get()) is not None:
                seen[(spec.name, labels)] = (spec, now)
        for spec, labels, exemplar in store.counter_exemplars():
            seen[(spec.name, labels)] = (spec, exemplar)
        shipped, self._exemplars = self._exemplars, {key: now for key, (_, now) in seen.items()}
        return [(spec, ttls.get(key[0], 0.0), key[1], now) for key, (spec, now) in seen.items()
                if shipped.get(key) != now]

    def changes(self, walked: list[Walked]) -> list[Change]:
        out: list[Change] = []
        shipped = self._shipped
        for spec, ttl, labels, s in walked:
            if spec.name in self._skip:
                continue
            key = (spec.name, labels)
            prev = shipped.get(key)
            # A new object (the old one expired) starts from nothing.
            change = s.since(prev[1] if prev is not None and prev[0] is s else None)  # type: ignore[arg-type]
            if change is not None:
                out.append((spec, ttl, labels, change))
                shipped[key] = (s, s.snapshot())
        return out


class Merger:
    """The daemon's side: applies workers' changes to its stores under the ingest lock."""

    def __init__(self, ingest: Ingest) -> None:
        self._ingest = ingest
        # (worker, store id, name, labels) -> (series it went into, the worker's gauge value)
        self._gauges: dict[tuple[int, int, str, tuple[str, ...]], tuple[object, float]] = {}

    def merge(self, worker: int, data: list[Change], stats: list[Change],
              exemplars: Sequence[ExemplarChange] = ()) -> None:
        ingest = self._ingest
        with ingest.lock:
            now = ingest.store.clock()
            for store, changes in ((ingest.store, data), (ingest.stats.store, stats)):
                for spec, ttl, labels, change in changes:
                    s = store.series(spec, labels, ttl)
                    if isinstance(s, Refusal):
                        ingest.stats.dropped(s.value).value += 1
                        continue
                    if isinstance(s, Gauge):
                        key = (worker, id(store), spec.name, labels)
                        prev = self._gauges.get(key)
                        # The daemon's gauge is the sum of each worker's value; a series the
                        # daemon re-created (after expiry) takes the worker's whole value again.
                        self._gauges[key] = (s, change)
                        change -= prev[1] if prev is not None and prev[0] is s else 0.0
                    s.merge(change)
                    s.seen = now
            for spec, ttl, labels, exemplar in exemplars:  # after the counts, whose series they join
                s = ingest.store.series(spec, labels, ttl)
                if isinstance(s, Counter) and isinstance(exemplar, Exemplar):
                    ingest.store.exemplar(spec, s, exemplar)
                elif (merge := getattr(s, "merge_exemplars", None)) is not None:
                    merge(exemplar)
            ingest.counted()


def _worker(index: int, config: StatsdConfig, label: str, address: str, conn: Connection) -> None:
    """A worker process: read, aggregate, ship changes; exit when the daemon goes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the daemon decides when we stop
    store = Store(Limits(config.defaults.max_series, config.defaults.max_series_per_family))
    stats = StatsdStats(Store())
    ingest = Ingest(Mapper.from_config(config), store, stats)
    listener = DatagramListener(address, ingest.sink(label), stats.listener(label), config.read_buffer,
                                reuse_port=True)
    try:
        listener.open()
    except OSError as err:
        conn.send(("error", str(err)))
        return
    conn.send(("ready", listener.port))
    freeze_startup_heap()  # as the daemon does: a full collection would stall this reader too
    data, own = _Tracker(), _Tracker(PER_PROCESS)
    try:
        while True:
            stop = False
            if conn.poll(FLUSH_INTERVAL):
                message = conn.recv()
                if message[0] == "reload":
                    new: StatsdConfig = message[1]
                    store.limits = Limits(new.defaults.max_series, new.defaults.max_series_per_family)
                    ingest.set_mapper(Mapper.from_config(new))
                    freeze_startup_heap()
                stop = message[0] == "stop"
            ingest.expire()
            with ingest.lock:
                walked = store.walk()
                changes = data.changes(walked), own.changes(stats.store.walk()), data.exemplars(store, walked)
            if changes[0] or changes[1] or changes[2]:
                conn.send(("changes", *changes))
            if stop:
                conn.send(("stopped", None))
                return
    except (EOFError, OSError, BrokenPipeError):
        return  # the daemon is gone
    finally:
        listener.close()


def _child_env() -> dict[str, str]:
    """The daemon's environment, with this copy of the package importable whatever the cwd."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": root + (os.pathsep + path if path else "")}


class WorkerListener:
    """Looks like a listener to StatsD: N worker processes behind one UDP address."""

    def __init__(self, address: str, config: StatsdConfig, workers: int, merger: Merger) -> None:
        self.address = address
        self._config = config
        self._workers = workers
        self._merger = merger
        self._procs: list[tuple[subprocess.Popen[bytes], Connection, threading.Thread | None]] = []
        self._port = 0

    @property
    def port(self) -> int:
        return self._port

    @property
    def local(self) -> tuple[str, int] | None:
        """Where every worker's socket is bound (they share it through SO_REUSEPORT)."""
        return resolve(parse_listen(self.address).host, self._port) if self._port else None

    async def start(self) -> None:
        await asyncio.to_thread(self._start)

    def _start(self) -> None:
        from multiprocessing.connection import Connection

        address = self.address
        for index in range(self._workers):
            # A fresh interpreter per worker (not multiprocessing's spawn, which would re-run
            # the daemon's __main__), talking over an inherited socket pair.
            ours, theirs = socket.socketpair()
            proc = subprocess.Popen(
                [sys.executable, "-c", "from exporter.statsd.workers import main; main()", str(index),
                 str(theirs.fileno())],
                pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL, env=_child_env())
            theirs.close()
            conn = Connection(ours.detach())
            self._procs.append((proc, conn, None))
            conn.send((self._config, self.address, address))
            if not conn.poll(30):
                self._stop_all()
                raise OSError(f"statsd: worker for {address} did not start")
            try:
                kind, detail = conn.recv()
            except EOFError:
                self._stop_all()
                raise OSError(f"statsd: worker for {address} exited at start") from None
            if kind == "error":
                self._stop_all()
                raise OSError(detail)
            if index == 0:
                # With port 0 the first worker's port is where the others must bind too.
                address = address.rsplit(":", 1)[0] + f":{detail}"
            thread = threading.Thread(target=self._receive, args=(index, conn), daemon=True,
                                      name=f"statsd worker {index} merge")
            self._procs[-1] = (proc, conn, thread)
            thread.start()
        self._port = int(address.rsplit(":", 1)[1])

    def _receive(self, index: int, conn: Connection) -> None:
        while True:
            try:
                message = conn.recv()
            except (EOFError, OSError):
                return
            if message[0] == "changes":
                try:
                    self._merger.merge(index, message[1], message[2], message[3])
                except Exception:
                    log.exception("statsd: merging worker %d's changes failed", index)
            elif message[0] == "stopped":
                return

    def reload(self, config: StatsdConfig) -> None:
        for _, conn, _ in self._procs:
            with contextlib.suppress(OSError):
                conn.send(("reload", config))

    async def stop(self) -> None:
        await asyncio.to_thread(self._stop_all)

    def _stop_all(self) -> None:
        for _, conn, _ in self._procs:
            with contextlib.suppress(OSError):
                conn.send(("stop", None))
        for proc, conn, thread in self._procs:
            if thread is not None:
                thread.join(5 + FLUSH_INTERVAL)
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            conn.close()
        self._procs = []


def main() -> None:
    """Entry point of a worker process: argv is its index and the inherited socket's fd."""
    from multiprocessing.connection import Connection

    conn = Connection(int(sys.argv[2]))
    config, label, bind = conn.recv()
    _worker(int(sys.argv[1]), config, label, bind, conn)
