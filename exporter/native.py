"""Native (sparse, exponential) histograms with client_golang's semantics.

A bucket of schema `s` with index `k` holds the observations in
(2^((k-1)·2^-s), 2^(k·2^-s)]: every power of two is split into 2^s buckets for
s > 0, and 2^-s powers of two share one bucket for s ≤ 0 (s runs from -4 to 8).
The schema is the finest whose growth factor does not exceed the configured
bucket factor, so a quantile is off by at most (factor - 1) of its value. Values with |v| at or below the zero threshold count in a zero
bucket, negative values in buckets of their own indexed by |v|. When more
buckets are populated than `max_buckets`, adjacent pairs are merged (the schema
drops by one) until they fit: so the schema is always the finest at which
everything observed so far fits, which makes the result a function of the
observations alone and lets a merge of two histograms equal one histogram that
saw both streams (workers).

The bucket index comes from `math.frexp` and a bisection over the fractions of
one power of two, exact at the boundaries (a logarithm is not), as client_golang
does. Imports only the model: the store holds these series, the exposition reads their
`NativeValue`.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Sequence
from functools import cache
from itertools import accumulate, chain
from typing import NamedTuple

from exporter.model import Exemplar, ExemplarValue, HistogramValue

MIN_SCHEMA, MAX_SCHEMA = -4, 8
# client_golang's DefNativeHistogramZeroThreshold: 2^-128, below any latency yet above denormals.
DEFAULT_ZERO_THRESHOLD = 2.938735877055719e-39
DEFAULT_BUCKET_FACTOR = 1.1  # statsd_exporter's default when native histograms are on
DEFAULT_MAX_BUCKETS = 160
MAX_EXEMPLARS = 16  # per native series: the latest, one per bucket  # client_golang's recommended limit, the same in statsd_exporter's docs


def pick_schema(factor: float) -> int:
    """The finest schema whose bucket growth 2^(2^-s) is at most `factor` (client_golang's pickSchema)."""
    if not factor > 1:
        raise ValueError(f"bucket factor must be greater than 1, not {factor!r}")
    floor = math.floor(math.log2(math.log2(factor)))
    return max(MIN_SCHEMA, min(MAX_SCHEMA, -floor))


def relative_error(schema: int) -> float:
    """The largest relative error of a quantile estimated within one bucket of this schema: the
    estimate and the true value share a bucket, whose width is (growth - 1) times its lower end."""
    return 2.0 ** (2.0**-schema) - 1


@cache
def _fractions(schema: int) -> tuple[float, ...]:
    """Lower boundaries of a power of two's buckets as frexp fractions in [0.5, 1), correctly rounded.

    2^(i/n)/2 computed in 40 digits and rounded once, so a value that is exactly a
    boundary lands where client_golang's table puts it.
    """
    from decimal import Decimal, localcontext  # once per schema, and only when a native histogram exists

    n = 1 << max(schema, 0)
    with localcontext() as ctx:
        ctx.prec = 40
        return tuple(float(Decimal(2) ** (Decimal(i) / n) / 2) for i in range(n))


def bucket_key(value: float, schema: int) -> int:
    """The index of the bucket holding |value| (> 0) at this schema."""
    frac, exp = math.frexp(abs(value))
    fractions = _fractions(schema)
    shift = -schema if schema < 0 else 0
    if frac == math.inf:  # beyond every finite bucket: one past the largest float's
        return bucket_key(1.7976931348623157e308, schema) + 1
    return (bisect_left(fractions, frac) + (exp - 1) * len(fractions) + (1 << shift) - 1) >> shift


def upper_bound(key: int, schema: int) -> float:
    """The inclusive upper boundary of bucket `key` (for quantiles in tests and tools)."""
    try:
        if schema > 0:
            whole, part = divmod(key, 1 << schema)
            return math.ldexp(_fractions(schema)[part] * 2, whole)
        return math.ldexp(1.0, key << -schema)
    except OverflowError:  # the bucket past the largest float, where +Inf goes
        return math.inf


def _halve(buckets: dict[int, float]) -> dict[int, float]:
    """The same counts one schema coarser: buckets 2k-1 and 2k become bucket k."""
    wider: dict[int, float] = {}
    for key, count in buckets.items():
        key = (key + 1) >> 1
        wider[key] = wider.get(key, 0.0) + count
    return wider


class NativeBuckets(NamedTuple):
    """A native histogram's buckets as exposed: sorted (index, count) pairs of each sign."""

    schema: int
    zero_threshold: float
    zero_count: float
    positive: tuple[tuple[int, float], ...]
    negative: tuple[tuple[int, float], ...]

    def integral(self) -> bool:
        """True when every count is whole (then they are sent as integers, else as floats)."""
        return float(self.zero_count).is_integer() and all(
            float(c).is_integer() for _, c in chain(self.positive, self.negative))


class NativeValue(ExemplarValue):
    """A histogram value with native buckets: (classic counts, count, sum) to whatever reads it
    as a HistogramValue (the text formats), and `native` for the protobuf format.

    The classic counts are those of the family's classic buckets when it is exposed both
    ways, and empty when it is native only (text then shows `_count`, `_sum` and +Inf).
    """

    native: NativeBuckets


def native_value(counts: Sequence[float], count: float, total: float, buckets: NativeBuckets) -> NativeValue:
    value = NativeValue(counts, count, total)
    value.native = buckets
    value.exemplars, value.native_exemplars = (), ()
    return value


class Change(NamedTuple):
    """What a worker ships (or a snapshot holds): buckets at one schema, the zero bucket, the
    NaNs, the sum, and the classic per-bucket counts when the family is exposed both ways."""

    schema: int
    positive: dict[int, float]
    negative: dict[int, float]
    zero_count: float
    nan_count: float
    sum: float
    classic: list[float]


class NativeHistogram:
    """One series. `observe` is on the ingest path: a frexp, a bisection and a dict update.

    The ingest loop inlines `observe` for finite positive values above the zero threshold
    (its hot case) from the public geometry `fractions`, `width`, `base` and `shift`:
    `key = (bisect_left(fractions, frac) + exp * width + base) >> shift`, then the
    bucket update, calling `add_bucket` when the key is new; anything else goes to
    `place` (the loop adds the sum itself). The count is not kept
    per observation (the buckets, the zero bucket and the NaNs add up to it).

    With classic `bounds` (a family exposed both ways) it also keeps per-bucket classic
    counts, as store.Histogram does; `sample()` gives them cumulative in the NativeValue.
    """

    __slots__ = ("base", "bounds", "classic", "classic_exemplars", "exemplars", "fractions", "max_buckets",
                 "nan_count", "negative", "positive", "schema", "seen", "shift", "sum", "width", "zero_count",
                 "zero_threshold")

    def __init__(self, schema: int, zero_threshold: float = DEFAULT_ZERO_THRESHOLD,
                 max_buckets: int = DEFAULT_MAX_BUCKETS, bounds: tuple[float, ...] | None = None) -> None:
        if not MIN_SCHEMA <= schema <= MAX_SCHEMA:
            raise ValueError(f"schema must be within [{MIN_SCHEMA}, {MAX_SCHEMA}], not {schema}")
        if not zero_threshold >= 0:
            raise ValueError(f"zero threshold must be 0 or more, not {zero_threshold!r}")
        if max_buckets < 1:
            raise ValueError(f"max buckets must be at least 1, not {max_buckets}")
        self.zero_threshold = float(zero_threshold)
        self.max_buckets = max_buckets
        self.bounds = bounds
        self.classic: list[float] | None = None if bounds is None else [0.0] * (len(bounds) + 1)
        self.positive: dict[int, float] = {}
        self.negative: dict[int, float] = {}
        self.zero_count = 0.0
        self.nan_count = 0.0
        self.sum = 0.0
        self.seen = 0.0
        # The latest exemplar per native bucket (at most MAX_EXEMPLARS, oldest dropped) and,
        # exposed both ways, per classic bucket; None until a line brings one.
        self.exemplars: dict[int, Exemplar] | None = None
        self.classic_exemplars: list[Exemplar | None] | None = None
        self._set_schema(schema)

    def _set_schema(self, schema: int) -> None:
        self.schema = schema
        self.fractions = _fractions(schema)
        self.width = len(self.fractions)
        # (bisect + (exp - 1) * width + (2^shift - 1)) >> shift rounds up to the coarser bucket.
        self.shift = -schema if schema < 0 else 0
        self.base = (1 << self.shift) - 1 - self.width

    @property
    def count(self) -> float:
        return (self.zero_count + self.nan_count + math.fsum(self.positive.values())
                + math.fsum(self.negative.values()))

    def observe(self, value: float, weight: float = 1.0) -> None:
        self.sum += value * weight
        self.place(value, weight)

    def place(self, value: float, weight: float) -> None:
        """Count one value in its buckets (classic ones too); the sum is the caller's."""
        if self.classic is not None:
            self.classic[bisect_left(self.bounds, value)] += weight  # type: ignore[arg-type]
        if value > self.zero_threshold:
            buckets = self.positive
        elif value < -self.zero_threshold:
            buckets = self.negative
            value = -value
        elif value == value:
            self.zero_count += weight
            return
        else:  # NaN counts and sums (as client_golang) but has no bucket
            self.nan_count += weight
            return
        frac, exp = math.frexp(value)
        if frac == math.inf:
            key = bucket_key(value, self.schema)
        else:
            key = (bisect_left(self.fractions, frac) + exp * self.width + self.base) >> self.shift
        found = buckets.get(key)
        if found is None:
            self.add_bucket(buckets, key, weight)
        else:
            buckets[key] = found + weight

    def add_bucket(self, buckets: dict[int, float], key: int, weight: float) -> None:
        """A newly populated bucket: past `max_buckets`, the resolution halves until all fit."""
        buckets[key] = weight
        if len(self.positive) + len(self.negative) > self.max_buckets:
            self._fit()

    def _fit(self) -> None:
        while len(self.positive) + len(self.negative) > self.max_buckets and self.schema > MIN_SCHEMA:
            self.positive = _halve(self.positive)
            self.negative = _halve(self.negative)
            self._set_schema(self.schema - 1)

    def exemplar(self, value: float, exemplar: Exemplar) -> None:
        """Keep `exemplar` as the latest of the bucket `value` went into."""
        if self.classic is not None:
            if self.classic_exemplars is None:
                self.classic_exemplars = [None] * len(self.classic)
            self.classic_exemplars[bisect_left(self.bounds, value)] = exemplar  # type: ignore[arg-type]
        if self.exemplars is None:
            self.exemplars = {}
        magnitude = abs(value)
        key = bucket_key(value, self.schema) if magnitude > self.zero_threshold else 0
        key = -key if value < 0 else key  # negative buckets apart from positive ones
        self.exemplars.pop(key, None)
        self.exemplars[key] = exemplar
        if len(self.exemplars) > MAX_EXEMPLARS:
            del self.exemplars[next(iter(self.exemplars))]

    # --- what the store and the workers call ---------------------------------------------
    def shipped_exemplars(self) -> tuple[tuple[Exemplar | None, ...], dict[int, Exemplar]] | None:
        """What a worker ships of its exemplars (classic buckets', native buckets'), None without any."""
        if self.exemplars is None:
            return None
        return tuple(self.classic_exemplars or ()), dict(self.exemplars)

    def merge_exemplars(self, exemplars: tuple[tuple[Exemplar | None, ...], dict[int, Exemplar]]) -> None:
        """Take another copy's latest exemplars. Native bucket keys are those of the worker's
        schema; a schema that differs here only places the exemplar in a neighbouring bucket."""
        if not (isinstance(exemplars, tuple) and len(exemplars) == 2 and isinstance(exemplars[1], dict)):
            return  # a classic histogram's exemplars (a reload made the family native)
        classic, native = exemplars
        if self.classic is not None and len(classic) == len(self.classic):
            if self.classic_exemplars is None:
                self.classic_exemplars = [None] * len(self.classic)
            for i, exemplar in enumerate(classic):
                if exemplar is not None:
                    self.classic_exemplars[i] = exemplar
        if self.exemplars is None:
            self.exemplars = {}
        for key, exemplar in native.items():
            self.exemplars.pop(key, None)
            self.exemplars[key] = exemplar
        while len(self.exemplars) > MAX_EXEMPLARS:
            del self.exemplars[next(iter(self.exemplars))]

    def buckets(self) -> NativeBuckets:
        return NativeBuckets(self.schema, self.zero_threshold, self.zero_count,
                             tuple(sorted(self.positive.items())), tuple(sorted(self.negative.items())))

    def sample(self) -> NativeValue:
        counts: Sequence[float] = ()
        if self.classic is not None:
            counts = list(accumulate(self.classic))[:-1]
        value = native_value(counts, self.count, self.sum, self.buckets())
        if self.exemplars is not None:
            value.exemplars = tuple(self.classic_exemplars or ())
            value.native_exemplars = tuple(self.exemplars.values())
        return value

    def snapshot(self) -> Change:
        return Change(self.schema, dict(self.positive), dict(self.negative), self.zero_count, self.nan_count,
                      self.sum, list(self.classic or ()))

    def since(self, old: Change | None) -> Change | None:
        """What was observed since `old` (a snapshot of this series), at the current schema."""
        if old is None:
            return self.snapshot()
        if old.sum == self.sum and old.zero_count == self.zero_count and old.nan_count == self.nan_count \
                and old.schema == self.schema and old.positive == self.positive and old.negative == self.negative:
            return None
        then = (_coarser(old.positive, old.schema - self.schema), _coarser(old.negative, old.schema - self.schema))
        now = (self.positive, self.negative)
        positive, negative = ({k: c - was.get(k, 0.0) for k, c in current.items() if c != was.get(k, 0.0)}
                              for current, was in zip(now, then))
        classic = [a - b for a, b in zip(self.classic or (), old.classic)]
        return Change(self.schema, positive, negative, self.zero_count - old.zero_count,
                      self.nan_count - old.nan_count, self.sum - old.sum, classic)

    def merge(self, change: Change) -> None:
        """Add another copy's observations (a worker's change, or a snapshot of another series).

        Both are brought to the coarser schema and then fitted: the result is the one a
        single series would hold after every observation of both. A classic histogram's
        change (a reload made the family native) is skipped.
        """
        if not isinstance(change, Change):
            return
        schema = min(self.schema, change.schema)
        mine = (_coarser(self.positive, self.schema - schema), _coarser(self.negative, self.schema - schema))
        theirs = (_coarser(change.positive, change.schema - schema), _coarser(change.negative, change.schema - schema))
        for into, source in zip(mine, theirs):
            for key, count in source.items():
                into[key] = into.get(key, 0.0) + count
        self.positive, self.negative = mine
        self._set_schema(schema)
        self.zero_count += change.zero_count
        self.nan_count += change.nan_count
        self.sum += change.sum
        if self.classic is not None and len(change.classic) == len(self.classic):
            for i, n in enumerate(change.classic):
                self.classic[i] += n
        self._fit()


def _coarser(buckets: dict[int, float], steps: int) -> dict[int, float]:
    """A copy of these buckets `steps` schemas coarser."""
    buckets = dict(buckets)
    for _ in range(steps):
        buckets = _halve(buckets)
    return buckets


class Spans(NamedTuple):
    """Buckets as the exposition encodes them: (offset, length) spans and count deltas."""

    spans: tuple[tuple[int, int], ...]
    deltas: tuple[float, ...]


def spans(buckets: tuple[tuple[int, float], ...]) -> Spans:
    """Sorted (index, count) pairs as spans and deltas; gaps of one or two empty buckets stay
    inside a span (cheaper to encode than a new span), as client_golang does."""
    out: list[list[int]] = []
    deltas: list[float] = []
    previous = 0.0
    following = 0
    for key, count in buckets:
        gap = key - following
        if not out or gap > 2:
            out.append([gap, 0])
        else:
            for _ in range(gap):
                out[-1][1] += 1
                deltas.append(-previous)
                previous = 0.0
        out[-1][1] += 1
        deltas.append(count - previous)
        previous = count
        following = key + 1
    return Spans(tuple((offset, length) for offset, length in out), tuple(deltas))


def quantile(value: NativeBuckets, q: float) -> float:
    """`histogram_quantile` as Prometheus 2.42 computes it over a native histogram (for tests
    and tools): linear interpolation within the bucket that holds the rank."""
    count = value.zero_count + sum(c for _, c in chain(value.positive, value.negative))
    if count == 0:
        return math.nan
    rank = q * count
    ordered = [(-upper_bound(k, value.schema), -upper_bound(k - 1, value.schema), c)
               for k, c in reversed(value.negative)]
    if value.zero_count:
        ordered.append((-value.zero_threshold, value.zero_threshold, value.zero_count))
    ordered += [(upper_bound(k - 1, value.schema), upper_bound(k, value.schema), c) for k, c in value.positive]
    seen = 0.0
    for lower, upper, c in ordered:
        if seen + c >= rank:
            return lower + (upper - lower) * (rank - seen) / c
        seen += c
    return ordered[-1][1]
