"""Client fixtures: a plain UDP receiver standing in for the daemon, and Telemetry instances."""

from __future__ import annotations

import socket
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from exporter.client import Telemetry
from exporter.client.testing import Sample, parse_line
from tests.support.daemon import Daemon
from tests.support.net import free_port

ROOT = Path(__file__).resolve().parents[2]


class Receiver:
    """A UDP socket on a free loopback port that keeps every datagram it gets."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = int(self.sock.getsockname()[1])
        self.address = f"127.0.0.1:{self.port}"

    def datagrams(self, quiet: float = 0.2) -> list[bytes]:
        """Everything received until nothing arrives for `quiet` seconds."""
        got = []
        self.sock.settimeout(quiet)
        while True:
            try:
                got.append(self.sock.recv(65535))
            except TimeoutError:
                return got

    def lines(self, quiet: float = 0.2) -> list[str]:
        return [line for d in self.datagrams(quiet) for line in d.decode().split("\n")]

    def close(self) -> None:
        self.sock.close()


def samples(lines: list[str]) -> list[Sample]:
    return [s for line in lines for s in parse_line(line)]


def total(lines: list[str], name: str, **tags: str) -> float:
    """Counter sum, number of timer/histogram values (rate-scaled), or for a gauge what the
    daemon makes of it: the last value of each instance, summed."""
    found = [s for s in samples(lines) if s.name == name and all(s.tags.get(k) == v for k, v in tags.items())]
    shares = {s.tags.get("apm_instance"): s.value for s in found if s.type == "g"}
    return sum(shares.values()) + sum(s.value if s.type == "c" else 1 / s.rate for s in found if s.type != "g")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def make_tm() -> Iterator[Callable[..., Telemetry]]:
    """Telemetry instances that flush only when told (long interval); closed after the test."""
    made: list[Telemetry] = []

    def make(address: str | None = None, **kwargs: Any) -> Telemetry:
        kwargs.setdefault("flush_interval", 3600)
        tm = Telemetry(address, **kwargs)
        made.append(tm)
        return tm

    yield make
    for tm in made:
        tm.close()


@pytest.fixture
def tm(make_tm: Callable[..., Telemetry], receiver: Receiver) -> Telemetry:
    return make_tm(receiver.address)


class Sidecar:
    """The daemon with a StatsD listener, and the Telemetry that talks to it."""

    def __init__(self, daemon: Daemon, statsd: str, tm: Telemetry) -> None:
        self.daemon, self.statsd, self.tm = daemon, statsd, tm

    def value(self, name: str, **labels: str) -> float | None:
        return self.daemon.value(name, **labels)

    def settle(self, name: str, expected: float, timeout: float = 30.0, **labels: str) -> float | None:
        """Flush, then read `name` until it shows `expected` (UDP is asynchronous) or time runs out."""
        self.tm.flush()
        deadline = time.monotonic() + timeout
        while True:
            got = self.value(name, **labels)
            if got == expected or time.monotonic() > deadline:
                return got
            time.sleep(0.05)


@pytest.fixture
def sidecar(daemon_factory: Callable[..., Daemon]) -> Iterator[Sidecar]:
    port = free_port(socket.SOCK_DGRAM)
    statsd = f"127.0.0.1:{port}"
    daemon = daemon_factory({"statsd": {"listeners": [f"udp://{statsd}"]},
                             "collectors": {"host": {"enabled": False}}})
    tm = Telemetry(statsd, flush_interval=3600)
    yield Sidecar(daemon, statsd, tm)
    tm.close()


@pytest.fixture(params=["udp", "unixgram"])
def busy_sidecar(request: pytest.FixtureRequest, daemon_factory: Callable[..., Daemon]) -> Iterator[Sidecar]:
    """A daemon sized for bursts: UDP with a 4 MiB read buffer (the kernel's 208 KiB default
    drops datagrams when several processes flush at once), or a unix datagram socket, where
    a full buffer makes the client's flush thread wait instead of losing data."""
    if request.param == "udp":
        statsd = f"127.0.0.1:{free_port(socket.SOCK_DGRAM)}"
        listener, address = f"udp://{statsd}", statsd
    else:
        directory = tempfile.mkdtemp(prefix="apm-")  # short: socket paths are limited to 108 bytes
        listener = address = f"unixgram://{directory}/statsd.sock"
    daemon = daemon_factory({"statsd": {"listeners": [listener], "read_buffer": 4 << 20},
                             "collectors": {"host": {"enabled": False}}})
    tm = Telemetry(address, flush_interval=3600)
    yield Sidecar(daemon, address, tm)
    tm.close()
