"""Plain values that cross the boundaries: sources build them, exposition renders them.

Nothing here knows where a sample came from or how it will be formatted.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from enum import Enum
from typing import NamedTuple


class MetricType(str, Enum):
    COUNTER = "counter"
    GAUGE = "gauge"
    HISTOGRAM = "histogram"
    SUMMARY = "summary"
    INFO = "info"


class HistogramValue(NamedTuple):
    """Cumulative counts per upper bound (the spec's buckets, +Inf excluded), count and sum."""

    counts: Sequence[float]
    count: float
    sum: float


class SummaryValue(NamedTuple):
    """Client-side quantiles: only for mapping rules that ask for them (they cannot be summed)."""

    quantiles: Sequence[tuple[float, float]]
    count: float
    sum: float


Value = float | HistogramValue | SummaryValue


class Sample(NamedTuple):
    """One series: label values in the order of the spec's label names, and its value."""

    labels: tuple[str, ...]
    value: Value


class FamilySpec(NamedTuple):
    """A metric family declared once (in families.py or by a mapping rule).

    `name` excludes the namespace when `namespaced` is true: the exposition adds it,
    so the namespace stays a setting and the specs stay constants.
    Counter names carry their `_total` suffix here, as Prometheus users read them.
    """

    name: str
    type: MetricType
    help: str
    labels: tuple[str, ...] = ()
    buckets: tuple[float, ...] = ()
    unit: str = ""
    namespaced: bool = True

    def family(self, samples: Iterable[tuple[tuple[str, ...], Value]]) -> Family:
        return Family(self, [Sample(labels, value) for labels, value in samples])

    def one(self, value: Value, *labels: str) -> Family:
        return Family(self, [Sample(labels, value)])

    def full_name(self, namespace: str) -> str:
        return f"{namespace}_{self.name}" if self.namespaced and namespace else self.name


class Family(NamedTuple):
    spec: FamilySpec
    samples: Sequence[Sample]
