"""Latency statistics of a load-test run: exact percentiles at the end, cheap ones live."""

from __future__ import annotations

import math
from array import array
from collections import Counter
from collections.abc import Sequence

# Live percentiles use log-spaced bins 1% wide: sorting a million samples twice a
# second for a progress line would cost more than the requests it measures.
_BIN_BASE = math.log(1.01)


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """p-th percentile (0-100) by linear interpolation between order statistics.

    The same rule as numpy's default ("linear"): rank h = (n − 1)·p/100, then
    x[⌊h⌋] + (h − ⌊h⌋)·(x[⌊h⌋+1] − x[⌊h⌋]). NaN for no values.
    """
    n = len(sorted_values)
    if n == 0:
        return math.nan
    h = (n - 1) * p / 100.0
    lo = math.floor(h)
    hi = min(lo + 1, n - 1)
    return sorted_values[lo] + (h - lo) * (sorted_values[hi] - sorted_values[lo])


class LiveHistogram:
    """Approximate percentiles (within 1%) in constant memory, for the progress line."""

    def __init__(self) -> None:
        self.bins: Counter[int] = Counter()
        self.count = 0

    def add(self, seconds: float) -> None:
        self.bins[int(math.log(max(seconds, 1e-7)) / _BIN_BASE)] += 1
        self.count += 1

    def percentile(self, p: float) -> float:
        if not self.count:
            return math.nan
        rank, seen = self.count * p / 100.0, 0
        for key in sorted(self.bins):
            seen += self.bins[key]
            if seen >= rank:
                return math.exp((key + 0.5) * _BIN_BASE)
        return math.nan


class Window:
    """Outcomes of the requests completed in a span of time (one step of a step-up run)."""

    def __init__(self) -> None:
        self.latencies = array("d")
        self.errors = 0

    def add(self, seconds: float, ok: bool) -> None:
        self.latencies.append(seconds)
        if not ok:
            self.errors += 1

    @property
    def count(self) -> int:
        return len(self.latencies)

    def error_ratio(self) -> float:
        return self.errors / self.count if self.count else 0.0

    def p(self, q: float) -> float:
        return percentile(sorted(self.latencies), q)
