"""Plain values that cross the boundaries: sources build them, exposition renders them.

Nothing here knows where a sample came from or how it will be formatted.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from enum import Enum
from typing import NamedTuple, overload


class MetricType(str, Enum):
    COUNTER = "counter"
    GAUGE = "gauge"
    HISTOGRAM = "histogram"
    SUMMARY = "summary"
    INFO = "info"


class HistogramValue(NamedTuple):
    """Cumulative counts per upper bound (the spec's buckets, +Inf excluded), count and sum."""

    counts: Sequence[float]
    count: float  # type: ignore[assignment]  # a field, shadowing tuple.count on purpose
    sum: float


class Exemplar(NamedTuple):
    """The latest observation of a bucket with the trace it came from (OpenMetrics, protobuf)."""

    labels: tuple[tuple[str, str], ...]
    value: float
    timestamp: float  # seconds since the epoch


class ExemplarCount(float):
    """A counter's value with the exemplar of its latest traced increment (OpenMetrics on the
    `_total` sample, protobuf in Counter.exemplar; text 0.0.4 shows the number alone)."""

    __slots__ = ("exemplar",)
    exemplar: Exemplar


class ExemplarValue(HistogramValue):
    """A HistogramValue with `exemplars`: one per classic bucket (+Inf last) or None, and, for a
    native histogram, `native_exemplars` (text 0.0.4 shows neither)."""

    exemplars: Sequence[Exemplar | None]
    native_exemplars: Sequence[Exemplar]


class SummaryValue(NamedTuple):
    """Client-side quantiles: only for mapping rules that ask for them (they cannot be summed)."""

    quantiles: Sequence[tuple[float, float]]
    count: float  # type: ignore[assignment]  # a field, shadowing tuple.count on purpose
    sum: float


Value = float | HistogramValue | SummaryValue


class Sample(NamedTuple):
    """One series: label values in the order of the spec's label names, and its value."""

    labels: tuple[str, ...]
    value: Value


class Columns(Sequence[Sample]):
    """Samples as two parallel sequences, label values and values, read like a list of Sample.

    What a source with many series (the store) hands over at scrape time: building a
    Sample per series costs more than rendering it (measured: 100,000 gauges, ~220 ms
    of Sample construction and garbage collection against ~15 ms for two lists), and
    the exposition reads the two sequences directly.
    """

    __slots__ = ("labels", "values")

    def __init__(self, labels: Sequence[tuple[str, ...]], values: Sequence[Value]) -> None:
        if len(labels) != len(values):
            raise ValueError(f"{len(labels)} label tuples for {len(values)} values")
        self.labels = labels
        self.values = values

    def __len__(self) -> int:
        return len(self.labels)

    @overload
    def __getitem__(self, index: int) -> Sample: ...
    @overload
    def __getitem__(self, index: slice) -> Columns: ...
    def __getitem__(self, index: int | slice) -> Sample | Columns:
        if isinstance(index, slice):
            return Columns(self.labels[index], self.values[index])
        return Sample(self.labels[index], self.values[index])

    def __iter__(self) -> Iterator[Sample]:
        return map(Sample, self.labels, self.values)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other))

    __hash__ = None  # type: ignore[assignment]  # mutable contents, like a list

    def __repr__(self) -> str:
        return f"Columns({list(self)!r})"


class NativeOptions(NamedTuple):
    """A histogram family with native buckets (exporter/native.py), from the statsd config.

    `classic` keeps the spec's classic buckets too (`both`: classic in text and
    OpenMetrics, both in protobuf); without it the spec has no classic buckets.
    """

    schema: int
    zero_threshold: float
    max_buckets: int
    classic: bool = False


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
    native: NativeOptions | None = None  # histograms only: native buckets as well or instead

    def family(self, samples: Iterable[tuple[tuple[str, ...], Value]]) -> Family:
        return Family(self, [Sample(labels, value) for labels, value in samples])

    def one(self, value: Value, *labels: str) -> Family:
        return Family(self, [Sample(labels, value)])

    def full_name(self, namespace: str) -> str:
        return f"{namespace}_{self.name}" if self.namespaced and namespace else self.name


class Family(NamedTuple):
    spec: FamilySpec
    samples: Sequence[Sample]
