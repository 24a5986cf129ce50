"""Assert on an app's metrics in its own tests, without a daemon.

    from exporter.client.testing import capture_metrics

    def test_checkout_is_timed():
        with capture_metrics() as metrics:
            shop.checkout(cart)
        assert metrics.count("apm.operation", operation="checkout", outcome="ok") == 1

Inside the block every Telemetry in the process (existing or new) hands its lines to
the capture instead of the network; reading the capture flushes them first. What is
captured is exactly the wire text, parsed back (`lines` holds it raw).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import NamedTuple

from exporter.client import _sender


class Sample(NamedTuple):
    """One value from a wire line (a multi-value line gives one Sample per value)."""

    name: str
    type: str  # ms, h, c or g
    value: float  # wire units: milliseconds for ms; this process's absolute value for g
    rate: float
    tags: dict[str, str]


def parse_line(line: str) -> list[Sample]:
    """The inverse of what the client writes: `name:v1:v2|type|@rate|#k:v,k:v`."""
    head, *parts = line.split("|")
    name, _, values = head.partition(":")
    kind = parts[0]
    rate, tags = 1.0, {}
    for part in parts[1:]:
        if part.startswith("@"):
            rate = float(part[1:])
        elif part.startswith("#"):
            for tag in part[1:].split(","):
                k, _, v = tag.partition(":")
                tags[k] = v
    return [Sample(name, kind, float(v), rate, tags) for v in values.split(":")]


@dataclass
class CapturedMetrics:
    """What the process would have sent while capturing."""

    lines: list[str] = field(default_factory=list)
    _open: bool = True

    def _sink(self, lines: list[str]) -> None:
        self.lines.extend(lines)

    @property
    def samples(self) -> list[Sample]:
        if self._open:
            for s in _sender.live_senders():
                s.flush()
        return [sample for line in self.lines for sample in parse_line(line)]

    def find(self, name: str, **tags: str) -> list[Sample]:
        """Samples of `name` whose tags include `tags`."""
        return [s for s in self.samples if s.name == name and all(s.tags.get(k) == v for k, v in tags.items())]

    def values(self, name: str, **tags: str) -> list[float]:
        """Timer values in seconds, other values as sent."""
        return [s.value / 1000 if s.type == "ms" else s.value for s in self.find(name, **tags)]

    def count(self, name: str, **tags: str) -> float:
        """Observations of a timer or histogram (scaled by sample rate), or a counter's total."""
        return sum(s.value / s.rate if s.type == "c" else 1 / s.rate for s in self.find(name, **tags))

    def gauge(self, name: str, **tags: str) -> float:
        """This process's gauge value: the last one sent while capturing (0 if none was)."""
        sent = [s.value for s in self.find(name, **tags) if s.type == "g"]
        return sent[-1] if sent else 0.0


@contextmanager
def capture_metrics() -> Iterator[CapturedMetrics]:
    """Capture every line Telemetry instances would send while the block runs.

    Lines pending when the block starts are sent as usual first, so the capture holds
    only what happened inside it. Gauges are absolute values, resent every flush.
    """
    captured = CapturedMetrics()
    for s in _sender.live_senders():
        s.flush()
    previous = _sender._capture_sink
    _sender.set_capture_sink(captured._sink)
    try:
        yield captured
        for s in _sender.live_senders():
            s.flush()
    finally:
        captured._open = False
        _sender.set_capture_sink(previous)
