"""Client fixtures: a plain UDP receiver standing in for the daemon, and Telemetry instances."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from exporter.client import Telemetry
from exporter.client.testing import Sample, parse_line


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
    """Counter sum, gauge delta sum, or number of timer/histogram values (rate-scaled)."""
    found = [s for s in samples(lines) if s.name == name and all(s.tags.get(k) == v for k, v in tags.items())]
    return sum(s.value if s.type in ("c", "g") else 1 / s.rate for s in found)


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
