"""Per-process aggregation and the flush thread that turns it into StatsD datagrams.

The hot path is one `list.append` on a list that lives as long as its series. The
flush takes the first n values with `values[:n]` and removes them with
`del values[:n]`: each is one C call under the GIL (and one per-object lock on
free-threaded builds), so a value appended in between lands after index n and waits
for the next flush. Nothing is lost, the hot path takes no lock, and wrappers bind
`values.append` once at decoration time.

Everything that costs something (summing, formatting, packing, the socket) happens
on the flush thread, once per interval.
"""

from __future__ import annotations

import atexit
import math
import os
import secrets
import socket
import sys
import threading
import weakref
from collections.abc import Callable, Iterable
from typing import Any, Final, Protocol

from exporter.client import _exemplars
from exporter.wire import TAG_INSTANCE

DEFAULT_ADDRESS: Final = "127.0.0.1:8125"
ADDRESS_ENV: Final = "APM_STATSD_ADDRESS"
# Fits one Ethernet MTU with IP/UDP headers and some room for tunnels, like DogStatsD's default.
UDP_PAYLOAD: Final = 1432
# Keeps a line under the daemon parser's 1024 values even for one-digit values.
UNIXGRAM_PAYLOAD: Final = 2048
DEFAULT_MAX_SAMPLES: Final = 20_000
# Unix datagram sockets push back when the daemon's buffer is full (UDP drops instead):
# the flush thread waits this long for room before it gives up on the rest of a flush.
UNIXGRAM_SEND_TIMEOUT: Final = 0.5
# UDP: a full send buffer (a burst, e.g. the flush at exit with its gauge retractions) is
# waited out this long rather than dropped at once; sends run on the flush thread or at exit.
UDP_SEND_TIMEOUT: Final = 0.05

TIMER: Final = "ms"
HISTOGRAM: Final = "h"
COUNTER: Final = "c"

Tags = tuple[tuple[str, str], ...]

_TAG_UNSAFE = str.maketrans({c: "_" for c in "|,#:@\n\r\t "})


def clean_tag(value: object) -> str:
    """Replace characters that would end a DogStatsD tag or line early."""
    return str(value).translate(_TAG_UNSAFE)


def format_tags(tags: Tags) -> str:
    return ",".join(f"{k}:{v}" for k, v in tags)


def _num(v: float) -> str:
    """Shortest text that float() reads back to the same value."""
    if isinstance(v, int):
        return str(v)
    if v.is_integer() and abs(v) < 1e15:
        return str(int(v))
    return repr(v)


class Series:
    """One wire line's identity (name, type, tags) and the values recorded since the last flush."""

    __slots__ = ("_prefix", "_tagpart", "announce", "exemplar", "kind", "name", "tags", "values", "wants_exemplar")

    def __init__(self, name: str, kind: str, tags: Tags) -> None:
        self.name = name
        self.kind = kind
        self.tags = tags
        # Timers hold integer nanoseconds, histograms and counters plain numbers.
        self.values: list[Any] = []
        # Counters go out once at 0 so that rate() works from their first increment.
        self.announce = kind == COUNTER
        self._prefix = name + ":"
        self._tagpart = "|#" + format_tags(tags) if tags else ""
        # One (value, exemplar tags) per flush goes out on a line of its own with the trace and
        # span tags; `wants_exemplar` (set at each flush while OpenTelemetry is loaded) asks the
        # code that records a value (timed(), the handles' counters) to take one.
        self.exemplar: tuple[Any, str] | None = None
        self.wants_exemplar = _exemplars.tracing()  # a new series' first values may carry one

    def take_exemplar(self, value: Any, tags: str = "") -> None:
        """`value`, just recorded, as the series' exemplar, with these tags or the current span's."""
        tags = tags or _exemplars.current()
        if tags:
            self.exemplar = (value, tags)
            self.wants_exemplar = False

    def lines(self, out: list[str], budget: int, max_samples: int) -> None:
        """Drain the values recorded so far into wire lines appended to `out`."""
        values = self.values
        n = len(values)
        if not n:
            if self.announce:
                out.append(f"{self._prefix}0|{self.kind}{self._tagpart}")
                self.announce = False
            return
        taken = values[:n]
        del values[:n]
        self.announce = False
        exemplar = self.exemplar
        if exemplar is not None:
            try:
                taken.remove(exemplar[0])  # it goes out once, on its own line below
            except ValueError:
                pass  # recorded after this flush took its values: the next one sends it
            else:
                self.exemplar = None
                tags = self._tagpart + "," if self._tagpart else "|#"
                number = f"{exemplar[0]}e-6" if self.kind == TIMER else _num(exemplar[0])
                out.append(f"{self._prefix}{number}|{self.kind}{tags}{exemplar[1]}")
                n = len(taken)
                if not n:
                    return
        if self.kind == COUNTER:
            out.append(f"{self._prefix}{_num(sum(taken))}|c{self._tagpart}")
            return
        rate = ""
        if n > max_samples:
            # Past the cap, send an even subset with its sample rate: the daemon scales the
            # counts back, so rates stay right and the flush cost stays bounded.
            taken = taken[:: math.ceil(n / max_samples)]
            rate = f"|@{len(taken) / n!r}"
        if self.kind == TIMER:
            # Nanoseconds written as an exponent are milliseconds to float(): exact, and
            # str(int) is twice as fast as formatting a float.
            body = "e-6:".join(map(str, taken)) + "e-6"
        else:
            body = ":".join(map(_num, taken))
        _split(self._prefix, body, f"|{self.kind}{rate}{self._tagpart}", budget, out)


def _split(prefix: str, body: str, suffix: str, budget: int, out: list[str]) -> None:
    """Cut a multi-value body at ':' so that each line fits the datagram budget."""
    room = budget - len(prefix.encode()) - len(suffix.encode())
    start, end = 0, len(body)
    while end - start > room:
        cut = body.rfind(":", start, start + room + 1)
        if cut <= start:  # a single value longer than the room: send it alone
            cut = body.find(":", start)
            if cut < 0:
                break
        out.append(prefix + body[start:cut] + suffix)
        start = cut + 1
    out.append(prefix + body[start:] + suffix)


class Gauge:
    """This process's share of a gauge that several processes add up.

    Every flush sends the share as an absolute value tagged with the process's instance id
    (`name:5|g|#tags,apm_instance:<id>`); the daemon sums the instances it has heard from
    recently. A lost datagram is corrected by the next flush, a restarted daemon has every
    share again after one flush, and a SIGKILLed worker's share expires in the daemon
    (docs/statsd-conventions.md). Closing reports 0.
    """

    __slots__ = ("_head", "_tail", "deltas", "name", "owner", "reported", "reset_on_fork", "tags", "value")

    def __init__(self, name: str, tags: Tags, reset_on_fork: bool = False) -> None:
        self.name = name
        self.tags = tags
        self.value: float = 0
        self.reported: float = 0
        self.deltas: list[float] = []
        # In-flight counts (pending requests) belong to the parent's threads, not the child's.
        self.reset_on_fork = reset_on_fork
        self.owner: weakref.ref[Any] | None = None
        self._head = name + ":"
        self._tail = "|g|#" + (format_tags(tags) + "," if tags else "") + TAG_INSTANCE + ":"

    def set(self, value: float) -> None:
        self.deltas.clear()
        self.value = value

    def add(self, delta: float) -> None:
        self.deltas.append(delta)

    def line(self, final: bool, instance: str) -> str:
        deltas = self.deltas
        if deltas:
            n = len(deltas)
            self.value += sum(deltas[:n])
            del deltas[:n]
        self.reported = 0 if final else self.value
        return f"{self._head}{_num(self.reported)}{self._tail}{instance}"


def new_instance() -> str:
    """An id for this process's gauge shares: its pid plus random bits, new after every fork
    (a pid can be reused by the next worker; the random part cannot collide with the last)."""
    return f"{os.getpid()}.{secrets.token_hex(4)}"


class Source(Protocol):
    """Something polled once per flush (a pool, an lru_cache, a queue) that sets gauges or counts."""

    def poll(self) -> None: ...

    def alive(self) -> bool: ...

    def after_fork_child(self) -> None: ...

    def gauges(self) -> Iterable[Gauge]: ...


class Transport:
    """Sends datagrams to the daemon; every failure is counted, none is raised or retried."""

    def __init__(self, address: str | None) -> None:
        raw = address if address is not None else os.environ.get(ADDRESS_ENV) or DEFAULT_ADDRESS
        self.address = raw
        self.family, self.target = parse_address(raw, from_env=address is None and ADDRESS_ENV in os.environ)
        self.payload = UNIXGRAM_PAYLOAD if self.family == socket.AF_UNIX else UDP_PAYLOAD
        self._sock: socket.socket | None = None

    def _connect(self) -> socket.socket:
        if self.family == socket.AF_UNIX:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            target: Any = self.target
        else:
            host, port = self.target
            # Resolved on the flush thread, never in the app's; retried at the next flush on failure.
            family, _, _, _, target = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)[0]
            sock = socket.socket(family, socket.SOCK_DGRAM)
        sock.settimeout(UNIXGRAM_SEND_TIMEOUT if self.family == socket.AF_UNIX else UDP_SEND_TIMEOUT)
        try:
            sock.connect(target)
        except OSError:
            sock.close()
            raise
        self._sock = sock
        return sock

    def send(self, datagrams: list[bytes], stats: dict[str, int]) -> None:
        try:
            sock = self._sock or self._connect()
        except OSError:
            stats["send_errors"] += len(datagrams)
            return
        for i, datagram in enumerate(datagrams):
            try:
                sock.send(datagram)
            except TimeoutError:  # the buffer stayed full (unixgram: the daemon is not reading); do not wait per datagram
                stats["send_errors"] += len(datagrams) - i
                return
            except ConnectionRefusedError:  # ICMP port unreachable from an earlier send: daemon down
                stats["send_errors"] += 1
            except OSError:
                stats["send_errors"] += 1
                self.reset()
                return
            else:
                stats["datagrams_sent"] += 1
                stats["bytes_sent"] += len(datagram)

    def reset(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            except OSError:
                pass
            self._sock = None


def parse_address(raw: str, from_env: bool = False) -> tuple[int, Any]:
    """`host:port`, `[v6]:port`, `udp://host:port` or `unixgram:///path`."""
    where = f"{ADDRESS_ENV}={raw!r}" if from_env else f"address {raw!r}"
    if raw.startswith("unixgram://"):
        path = raw.removeprefix("unixgram://")
        if not path:
            raise ValueError(f"{where}: unixgram:// needs a socket path")
        return socket.AF_UNIX, path
    rest = raw.removeprefix("udp://")
    host, sep, port = rest.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{where}: expected host:port, udp://host:port or unixgram:///path")
    return socket.AF_INET, (host.strip("[]"), int(port))


class Sender:
    """Owns one process's series, gauges and polled sources, and the thread that flushes them."""

    def __init__(self, address: str | None, flush_interval: float, max_samples: int) -> None:
        if flush_interval <= 0:
            raise ValueError("flush_interval must be positive")
        if max_samples < 1:
            raise ValueError("max_samples must be at least 1")
        self.transport = Transport(address)
        self.interval = flush_interval
        self.max_samples = max_samples
        self.series_by_key: dict[tuple[str, str, Tags], Series] = {}
        self.gauges_by_key: dict[tuple[str, Tags], Gauge] = {}
        self.sources: list[Source] = []
        self.stats: dict[str, int] = dict.fromkeys(
            ("flushes", "lines", "datagrams_sent", "bytes_sent", "send_errors", "poll_errors", "flush_errors"), 0)
        self.sink: Callable[[list[str]], None] | None = _capture_sink
        self.closed = False
        self.instance = new_instance()
        self._registry_lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        _install_process_hooks()
        _live.add(self)
        self._start()

    # --- registration (rare; takes a lock) ----------------------------------------
    def series(self, name: str, kind: str, tags: Tags) -> Series:
        key = (name, kind, tags)
        found = self.series_by_key.get(key)
        if found is not None:
            return found
        with self._registry_lock:
            return self.series_by_key.setdefault(key, Series(name, kind, tags))

    def gauge(self, name: str, tags: Tags, reset_on_fork: bool = False) -> Gauge:
        key = (name, tags)
        found = self.gauges_by_key.get(key)
        if found is not None:
            return found
        with self._registry_lock:
            return self.gauges_by_key.setdefault(key, Gauge(name, tags, reset_on_fork))

    def add_source(self, source: Source) -> None:
        with self._registry_lock:
            for g in source.gauges():
                owner = g.owner() if g.owner is not None else None
                if owner is not None and owner is not source and owner.alive():
                    raise ValueError(f"{g.name} {format_tags(g.tags)} is already reported by {owner!r}")
            for g in source.gauges():
                g.owner = weakref.ref(source)
            self.sources.append(source)

    # --- flushing (flush thread, flush(), close()) ------------------------------------
    def flush(self, final: bool = False) -> None:
        with self._flush_lock:
            if self.closed:
                self._discard()
                return
            self._send(self._collect(final))

    def _send(self, lines: list[str]) -> None:
        self.stats["flushes"] += 1
        if not lines:
            return
        self.stats["lines"] += len(lines)
        sink = self.sink
        if sink is not None:
            sink(lines)
        else:
            self.transport.send(pack(lines, self.transport.payload), self.stats)

    def _collect(self, final: bool) -> list[str]:
        lines: list[str] = []
        self._poll()  # at close too: polled counters (lru_cache) have a last delta to send
        budget = self.transport.payload
        tracing = _exemplars.tracing()
        for s in list(self.series_by_key.values()):
            s.lines(lines, budget, self.max_samples)
            s.wants_exemplar = tracing and s.exemplar is None
        orphans = []
        for key, g in list(self.gauges_by_key.items()):
            lines.append(g.line(final, self.instance))
            if g.owner is not None and g.owner() is None and g.reported == 0:
                orphans.append(key)
        for key in orphans:
            self.gauges_by_key.pop(key, None)
        return lines

    def _poll(self) -> None:
        dead = []
        for src in list(self.sources):
            try:
                if not src.alive():
                    dead.append(src)
                    continue
                src.poll()
            except Exception:  # noqa: BLE001 - an instrumented object in a bad state must not stop the flush
                self.stats["poll_errors"] += 1
        for src in dead:
            for g in src.gauges():
                g.set(0)  # the object is gone: take its contribution back
            with self._registry_lock:
                self.sources.remove(src)

    def _discard(self) -> None:
        for s in list(self.series_by_key.values()):
            del s.values[: len(s.values)]
        for g in list(self.gauges_by_key.values()):
            g.deltas.clear()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.flush()
            except Exception:  # noqa: BLE001 - counted; the thread must keep running for the app
                self.stats["flush_errors"] += 1

    def _start(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="apm-telemetry-flush", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Send what is pending, take this process's gauge contributions back, stop sending."""
        # One critical section: a periodic flush slipping in between the final flush and
        # `closed` would announce the gauges again after they were taken back.
        with self._flush_lock:
            if self.closed:
                return
            try:
                self._send(self._collect(final=True))
            except Exception:  # noqa: BLE001 - runs at exit: never raise into the app's shutdown
                self.stats["flush_errors"] += 1
            self.closed = True
        # The thread keeps running to discard what is recorded after close, so memory stays bounded.

    # --- fork ------------------------------------------------------------------------
    def _before_fork(self) -> None:
        self._flush_lock.acquire()
        self._registry_lock.acquire()

    def _after_fork_parent(self) -> None:
        self._registry_lock.release()
        self._flush_lock.release()

    def _after_fork_child(self) -> None:
        self._registry_lock = threading.Lock()
        self._flush_lock = threading.Lock()
        # The parent sends what it recorded before the fork; the child starts empty.
        for s in self.series_by_key.values():
            del s.values[: len(s.values)]
            s.announce = s.kind == COUNTER
        self.instance = new_instance()  # the child's shares are its own, beside the parent's
        for g in self.gauges_by_key.values():
            g.deltas.clear()
            if g.reset_on_fork:
                g.value = 0
            g.reported = 0
        for src in self.sources:
            try:
                src.after_fork_child()
            except Exception:  # noqa: BLE001 - inside fork(): must not fail the child
                self.stats["poll_errors"] += 1
        for key in self.stats:
            self.stats[key] = 0
        self.transport._sock = None  # the parent's socket stays the parent's
        if not self.closed:
            self._start()
            mp_util = sys.modules.get("multiprocessing.util")
            if mp_util is not None:
                # multiprocessing children leave with os._exit(), which skips atexit; its
                # after-fork hooks run in the child once its own registries are reset.
                mp_util.register_after_fork(self, _register_mp_finalizer)


def _register_mp_finalizer(sender: Sender) -> None:
    import multiprocessing.util

    multiprocessing.util.Finalize(sender, sender.close, exitpriority=0)


def pack(lines: list[str], budget: int) -> list[bytes]:
    """Join lines with newlines into as few datagrams as fit the budget."""
    datagrams: list[bytes] = []
    current: list[bytes] = []
    size = -1
    for line in lines:
        raw = line.encode()
        if current and size + 1 + len(raw) > budget:
            datagrams.append(b"\n".join(current))
            current, size = [], -1
        current.append(raw)
        size += 1 + len(raw)
    if current:
        datagrams.append(b"\n".join(current))
    return datagrams


# --- process-wide hooks (installed when the first Telemetry is created, not at import) ---
_live: weakref.WeakSet[Sender] = weakref.WeakSet()
_hooks_installed = False
_capture_sink: Callable[[list[str]], None] | None = None


def live_senders() -> list[Sender]:
    return list(_live)


def set_capture_sink(sink: Callable[[list[str]], None] | None) -> None:
    """Divert every sender, current and future, to `sink` (exporter.client.testing)."""
    global _capture_sink
    _capture_sink = sink
    for s in list(_live):
        s.sink = sink


def _install_process_hooks() -> None:
    global _hooks_installed
    if _hooks_installed:
        return
    _hooks_installed = True
    os.register_at_fork(before=_before_fork, after_in_parent=_after_fork_parent, after_in_child=_after_fork_child)
    atexit.register(_at_exit)


_forking: list[Sender] = []


def _before_fork() -> None:
    _forking[:] = list(_live)
    for s in _forking:
        s._before_fork()


def _after_fork_parent() -> None:
    for s in _forking:
        s._after_fork_parent()
    _forking.clear()


def _after_fork_child() -> None:
    for s in _forking:
        s._after_fork_child()
    _forking.clear()


def _at_exit() -> None:
    for s in list(_live):
        s.close()
