"""Counters and latency histograms that a pull collector keeps from one scrape to the next.

A probe's collector lives from one reload to the next, so what it counts must
keep counting like the StatsD path's series do for rate() in PromQL to work the
same way. Plain numbers in, model values out: nothing here belongs to the push
store, and nothing here imports the daemon.
"""

from __future__ import annotations

from bisect import bisect_left
from itertools import accumulate

from exporter.model import Family, FamilySpec, HistogramValue

Labels = tuple[str, ...]


class Operations:
    """Cumulative latency histograms per label set (operation, outcome), on the spec's buckets."""

    def __init__(self, spec: FamilySpec) -> None:
        self.spec = spec
        # Per label set: a count per bucket (the last one is +Inf), not cumulative, and the sum.
        self._counts: dict[Labels, list[int]] = {}
        self._sums: dict[Labels, float] = {}

    def declare(self, *labels: str) -> None:
        """Export an empty histogram before the first observation, so rate() sees it start."""
        if labels not in self._counts:
            self._counts[labels] = [0] * (len(self.spec.buckets) + 1)
            self._sums[labels] = 0.0

    def observe(self, seconds: float, *labels: str) -> None:
        self.declare(*labels)
        # bisect_left: a value equal to a bound belongs to that bucket (le is inclusive).
        self._counts[labels][bisect_left(self.spec.buckets, seconds)] += 1
        self._sums[labels] += seconds

    def family(self) -> Family:
        return self.spec.family((labels, _histogram(counts, self._sums[labels]))
                                for labels, counts in self._counts.items())


def _histogram(counts: list[int], total: float) -> HistogramValue:
    running = list(accumulate(counts))
    return HistogramValue(running[:-1], running[-1], total)


class Counters:
    """Cumulative counters per label set."""

    def __init__(self, spec: FamilySpec) -> None:
        self.spec = spec
        self._values: dict[Labels, float] = {}

    def declare(self, *labels: str) -> None:
        """Export 0 before the first increment, so rate() sees the series start."""
        self._values.setdefault(labels, 0.0)

    def inc(self, *labels: str, amount: float = 1.0) -> None:
        self._values[labels] = self._values.get(labels, 0.0) + amount

    def family(self) -> Family:
        return self.spec.family(self._values.items())
