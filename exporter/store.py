"""Pushed series: what StatsD and the exporter's own counters write, read at scrape time.

The store is written by one thread (the ingest path) and read by the scraper, so
the writers stay lock-free: a series is a small mutable object and creating one
(rare) takes the lock that `collect()` takes. Limits and type conflicts are
decided once per new series, never per sample; TTL expiry is a separate
`expire()` pass that StatsD runs on a timer.

Each series can `snapshot()` its state, say what changed `since()` an older
snapshot, and `merge()` such a change from another process's copy: that is how
StatsD's worker processes ship their figures to the daemon (statsd/workers.py).
"""

from __future__ import annotations

import math
import threading
import time
from bisect import bisect_left
from collections import deque
from collections.abc import Callable, Iterable
from enum import Enum
from itertools import accumulate, compress
from operator import attrgetter, methodcaller
from typing import TYPE_CHECKING, Any, NamedTuple, TypeAlias

from exporter.model import (
    Columns,
    Exemplar,
    ExemplarCount,
    ExemplarValue,
    Family,
    FamilySpec,
    HistogramValue,
    MetricType,
    SummaryValue,
)


class Refusal(str, Enum):
    """Why a new series was not created; the value is the `reason` label of the drop counter."""

    TYPE_CONFLICT = "type_conflict"
    BUCKET_CONFLICT = "bucket_conflict"
    FAMILY_LIMIT = "family_limit"
    GLOBAL_LIMIT = "global_limit"


class Counter:
    __slots__ = ("seen", "value")

    def __init__(self) -> None:
        self.value = 0.0
        self.seen = 0.0

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount

    def snapshot(self) -> float:
        return self.value

    def since(self, old: float | None) -> float | None:
        """The increase since `old` (None: nothing new)."""
        return self.value - (old or 0.0) if self.value != old else None

    def merge(self, change: float) -> None:
        self.value += change


class Gauge:
    # A StatsD set's members and the per-instance shares of a gauge that client processes report
    # as absolute values live in statsd/routes.py, not in slots here: 16 bytes less a gauge.
    __slots__ = ("seen", "value")

    def __init__(self) -> None:
        self.value = 0.0
        self.seen = 0.0

    def set(self, value: float) -> None:
        self.value = value

    def snapshot(self) -> float:
        return self.value

    def since(self, old: float | None) -> float | None:
        """The value itself when it changed: a gauge ships what it is, and the receiver
        turns each sender's value into its share of the sum (workers.Merger)."""
        return self.value if self.value != old else None

    def merge(self, change: float) -> None:
        """Add a change in one sender's share."""
        self.value += change


class Histogram:
    """Per-bucket (not cumulative) counts so an observation touches one slot."""

    __slots__ = ("bounds", "buckets", "exemplars", "seen", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.buckets = [0] * (len(bounds) + 1)
        self.sum = 0.0
        self.seen = 0.0
        # The latest exemplar per bucket, once a line brought one (statsd exemplar_tag).
        self.exemplars: list[Exemplar | None] | None = None

    def exemplar(self, value: float, exemplar: Exemplar) -> None:
        if self.exemplars is None:
            self.exemplars = [None] * len(self.buckets)
        self.exemplars[bisect_left(self.bounds, value)] = exemplar

    def observe(self, value: float, count: int = 1) -> None:
        # bisect_left: a value equal to a bound belongs to that bucket (le is inclusive).
        self.buckets[bisect_left(self.bounds, value)] += count
        self.sum += value * count

    def sample(self) -> HistogramValue:
        cumulative = list(accumulate(self.buckets))
        if self.exemplars is None:
            return HistogramValue(cumulative[:-1], cumulative[-1], self.sum)
        value = ExemplarValue(cumulative[:-1], cumulative[-1], self.sum)
        value.exemplars, value.native_exemplars = tuple(self.exemplars), ()
        return value

    def snapshot(self) -> tuple[list[int], float]:
        return list(self.buckets), self.sum

    def since(self, old: tuple[list[int], float] | None) -> tuple[list[int], float] | None:
        """Per-bucket increases and the sum's since `old`."""
        if old is None:
            return self.snapshot()
        if old[1] == self.sum and old[0] == self.buckets:
            return None
        return [a - b for a, b in zip(self.buckets, old[0])], self.sum - old[1]

    def shipped_exemplars(self) -> tuple[Exemplar | None, ...] | None:
        """What a worker ships of its exemplars (the latest per bucket), None without any."""
        return tuple(self.exemplars) if self.exemplars is not None else None

    def merge_exemplars(self, exemplars: tuple[Exemplar | None, ...]) -> None:
        """Take another copy's latest exemplars; one with other buckets is skipped."""
        if len(exemplars) != len(self.buckets) or not all(e is None or isinstance(e, Exemplar) for e in exemplars):
            return  # a native histogram's (a reload made the family classic), or other buckets
        if self.exemplars is None:
            self.exemplars = [None] * len(self.buckets)
        for i, exemplar in enumerate(exemplars):
            if exemplar is not None:
                self.exemplars[i] = exemplar

    def merge(self, change: tuple[list[int], float]) -> None:
        """Add another copy's increases; one with other buckets (a reload changed them, or made
        the family native) is skipped."""
        if len(change) != 2:
            return
        counts, total = change
        if len(counts) != len(self.buckets):
            return
        buckets = self.buckets
        for i, n in enumerate(counts):
            buckets[i] += n
        self.sum += total


class Summary:
    """Quantiles over a bounded window of recent observations, for rules that ask for them:
    the last `size` values, or after `use_max_age` those of the last max_age seconds (at most
    `size`), as statsd_exporter's summaries slide over time (summary_options.max_age)."""

    __slots__ = ("_clock", "_next", "_times", "count", "max_age", "quantiles", "reported", "seen", "size", "sum",
                 "window")

    def __init__(self, quantiles: tuple[float, ...], size: int = 1024) -> None:
        self.quantiles = quantiles
        self.window: list[float] = []
        # Quantile values a client computed itself (OTLP summaries), one per spec quantile:
        # shown as they are instead of the window's.
        self.reported: list[float] | None = None
        self.size = size
        self.count = 0
        self.sum = 0.0
        self.seen = 0.0
        self._next = 0
        self.max_age = 0.0
        self._times: deque[float] | None = None
        self._clock: Callable[[], float] = time.monotonic

    def use_max_age(self, max_age: float, clock: Callable[[], float]) -> None:
        """Quantiles over the values of the last `max_age` seconds on `clock` (those held
        already count from now)."""
        if self._times is None:
            self.window = self.window[self._next:] + self.window[:self._next]
            self._next = 0
            now = clock()
            self._times = deque(now for _ in self.window)
        self.max_age, self._clock = max_age, clock

    def observe(self, value: float, count: int = 1) -> None:
        # A sampled line weighs 1/rate, without bound (`@1e-12`); the window keeps at most
        # `size` copies of it, and once it holds nothing else their order does not matter.
        times = self._times
        if times is not None:
            now = self._clock()
            for _ in range(min(count, self.size)):
                self.window.append(value)
                times.append(now)
            self._expire(now)
        else:
            for _ in range(min(count, self.size)):
                if len(self.window) < self.size:
                    self.window.append(value)
                else:
                    self.window[self._next] = value
                    self._next = (self._next + 1) % self.size
        self.count += count
        self.sum += value * count

    def _expire(self, now: float) -> None:
        """Time window: drop what is older than max_age and, past `size`, the oldest."""
        times = self._times
        assert times is not None
        old = 0
        while old < len(times) and (now - times[old] > self.max_age or len(times) - old > self.size):
            old += 1
        if old:
            for _ in range(old):
                times.popleft()
            del self.window[:old]

    def sample(self) -> SummaryValue:
        if self._times is not None:
            self._expire(self._clock())
        if self.reported is not None:
            return SummaryValue(list(zip(self.quantiles, self.reported)), self.count, self.sum)
        ordered = sorted(self.window)
        if not ordered:
            return SummaryValue([(q, math.nan) for q in self.quantiles], self.count, self.sum)
        last = len(ordered) - 1
        return SummaryValue([(q, ordered[round(q * last)]) for q in self.quantiles], self.count, self.sum)

    def snapshot(self) -> tuple[int, float]:
        return self.count, self.sum

    def since(self, old: tuple[int, float] | None) -> tuple[int, float, list[float]] | None:
        """The count's and sum's increases, with the whole current window."""
        count, total = old or (0, 0.0)
        if old is not None and (count, total) == (self.count, self.sum):
            return None
        return self.count - count, self.sum - total, list(self.window)

    def merge(self, change: tuple[int, float, list[float]]) -> None:
        """Another copy's increases; its window replaces ours (the newest observations win)."""
        count, total, window = change
        self.count += count
        self.sum += total
        self.window = window[-self.size:]
        self._next = 0
        if self._times is not None:  # another copy's values, timed as they arrive
            now = self._clock()
            self._times = deque(now for _ in self.window)


if TYPE_CHECKING:  # imported when a family is native: a classic daemon never loads it (idle RSS)
    from exporter.native import NativeHistogram

Series: TypeAlias = "Counter | Gauge | Histogram | Summary | NativeHistogram"


# Label values that many series repeat (`GET`, `200`, a shard number) are held once: new series
# take them from a table of recent values, cleared when full so that unique values (ids) cannot
# grow it (bench/series_memory.py: 24 B a counter series less when 6 of 16 values repeat).
MAX_SHARED_VALUES = 4096


class Limits(NamedTuple):
    max_series: int = 100_000
    max_series_per_family: int = 10_000


class _Family:
    __slots__ = ("exemplars", "peak", "series", "spec", "ttl")

    def __init__(self, spec: FamilySpec, ttl: float) -> None:
        self.spec = spec
        self.series: dict[tuple[str, ...], Series] = {}
        self.ttl = ttl
        self.peak = 0  # the most series an expiry pass found since `series` was last rebuilt
        # A counter family's latest exemplar per counter, once a line brought one: kept here,
        # not in a slot of every Counter, so counters without exemplars cost nothing more.
        self.exemplars: dict[Counter, Exemplar] | None = None

    def key(self, names: tuple[str, ...], values: tuple[str, ...]) -> tuple[str, ...]:
        """The family's key for a series given with these label names: in the family's order,
        "" for a name it lacks; names new to the family are added (to every series, empty)."""
        new = tuple(n for n in names if n not in self.spec.labels)
        if new:
            self.spec = self.spec._replace(labels=self.spec.labels + new)
            pad = ("",) * len(new)
            self.series = {k + pad: s for k, s in self.series.items()}
        given = dict(zip(names, values))
        return tuple(given.get(n, "") for n in self.spec.labels)


def _new_series(spec: FamilySpec) -> Series:
    if spec.type is MetricType.COUNTER:
        return Counter()
    if spec.type is MetricType.GAUGE:
        return Gauge()
    if spec.type is MetricType.HISTOGRAM:
        if spec.native is not None:
            from exporter.native import NativeHistogram

            n = spec.native
            return NativeHistogram(n.schema, n.zero_threshold, n.max_buckets, spec.buckets if n.classic else None)
        return Histogram(spec.buckets)
    return Summary(spec.buckets)  # a summary spec carries its quantiles in `buckets`


# Counters and gauges are read as `value`; the others build their value with `sample()`.
_VALUE, _SAMPLE = attrgetter("value"), methodcaller("sample")


def _with_exemplars(exemplars: dict[Counter, Exemplar], series: Iterable[Series], values: list[Any]) -> list[Any]:
    """Counter values, those with an exemplar as an ExemplarCount that carries it (C-level
    passes over the family; Python only for the counters that have one)."""
    found = list(map(exemplars.get, series))  # type: ignore[arg-type]
    for i in compress(range(len(found)), found):
        value = values[i] = ExemplarCount(values[i])
        value.exemplar = found[i]  # type: ignore[assignment]
    return values


class Store:
    """Families of pushed series by full name; the only state StatsD writes."""

    def __init__(self, limits: Limits | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits or Limits()
        self.clock = clock
        self._families: dict[str, _Family] = {}
        self._count = 0
        self._lock = threading.Lock()
        self._values: dict[str, str] = {}  # MAX_SHARED_VALUES

    def __len__(self) -> int:
        return self._count

    def counter(self, spec: FamilySpec, *labels: str) -> Counter:
        """A counter of a family this process defines itself (self-metrics): a refusal is a bug."""
        series = self.series(spec, labels)
        if not isinstance(series, Counter):
            raise TypeError(f"{spec.name}{list(labels)}: not a counter ({series!r})")
        return series

    def gauge(self, spec: FamilySpec, *labels: str) -> Gauge:
        """A gauge of a family this process defines itself (self-metrics): a refusal is a bug."""
        series = self.series(spec, labels)
        if not isinstance(series, Gauge):
            raise TypeError(f"{spec.name}{list(labels)}: not a gauge ({series!r})")
        return series

    def series(self, spec: FamilySpec, labels: tuple[str, ...], ttl: float = 0.0) -> Series | Refusal:
        """The series for these label values, created if new; a Refusal if it may not exist.

        A family keeps the type (and buckets or quantiles) it was first created with; a
        later spec that disagrees is refused without touching the existing series. Label
        names may differ from series to series, as the exposition formats and Prometheus
        allow (statsd_exporter refuses this): the family's label names grow to the union,
        and a series without one of them has it empty, which Prometheus reads as absent.
        """
        family = self._families.get(spec.name)
        if family is not None:
            found = family.series.get(labels)
            if found is not None and family.spec == spec:
                return found
            if family.spec.type is not spec.type:
                return Refusal.TYPE_CONFLICT
            if family.spec.buckets != spec.buckets:
                return Refusal.BUCKET_CONFLICT
        with self._lock:
            family = self._families.get(spec.name)
            if family is None:
                family = self._families[spec.name] = _Family(spec, ttl)
            elif family.spec.labels != spec.labels:
                labels = family.key(spec.labels, labels)
            found = family.series.get(labels)
            if found is not None:
                return found
            if self._count >= self.limits.max_series:
                return Refusal.GLOBAL_LIMIT
            if len(family.series) >= self.limits.max_series_per_family:
                return Refusal.FAMILY_LIMIT
            created = family.series[self._shared(labels)] = _new_series(family.spec)
            created.seen = self.clock()
            self._count += 1
            return created

    def _shared(self, labels: tuple[str, ...]) -> tuple[str, ...]:
        """These label values, each the copy an earlier series holds if one was seen lately."""
        table = self._values
        if len(table) + len(labels) > MAX_SHARED_VALUES:
            table.clear()
        return tuple([table.setdefault(v, v) for v in labels])

    def exemplar(self, spec: FamilySpec, counter: Counter, exemplar: Exemplar) -> None:
        """Keep `exemplar` as the latest of this counter (of the family `spec` names)."""
        family = self._families.get(spec.name)
        if family is not None:
            if family.exemplars is None:
                family.exemplars = {}
            family.exemplars[counter] = exemplar

    def expire(self, now: float | None = None, gone: list[Series] | None = None) -> int:
        """Drop series not updated within their family's TTL; returns how many went (and appends
        them to `gone`, for a cache that holds series to forget just those)."""
        now = self.clock() if now is None else now
        expired = 0
        with self._lock:
            for family in self._families.values():
                if family.ttl <= 0:
                    continue
                series = family.series
                stale = [k for k, s in series.items() if now - s.seen > family.ttl]
                if not stale:
                    continue
                exemplars = family.exemplars
                family.peak = max(family.peak, len(series))
                for key in stale:
                    went = series.pop(key)
                    if exemplars:
                        exemplars.pop(went, None)  # type: ignore[arg-type]
                    if gone is not None:
                        gone.append(went)
                if len(series) * 2 < family.peak:
                    # A dict keeps the table of its largest size after deletions (1M keys: 40 MiB):
                    # a copy has the size its keys need, so memory goes back once series expire.
                    family.series = dict(series)
                    family.peak = len(series)
                expired += len(stale)
            self._count -= expired
            if expired:
                self._values = {}  # nothing of the series that went is held on
        return expired

    def collect(self) -> list[Family]:
        """Each family's series as two lists (model.Columns): no Sample object per series.

        Building one Sample per series cost more than rendering it (bench/render.py:
        about 2 µs a series, mostly garbage collection, against 0.15 µs for two lists).
        """
        with self._lock:
            out = []
            for f in self._families.values():
                if f.series:
                    plain = f.spec.type is MetricType.COUNTER or f.spec.type is MetricType.GAUGE
                    values = list(map(_VALUE if plain else _SAMPLE, f.series.values()))
                    if f.exemplars:
                        values = _with_exemplars(f.exemplars, f.series.values(), values)
                    out.append(Family(f.spec, Columns(list(f.series), values)))
            return out

    def walk(self) -> list[tuple[FamilySpec, float, tuple[str, ...], Series]]:
        """Every series with its family's spec and TTL (for shipping a worker's changes)."""
        with self._lock:
            return [(f.spec, f.ttl, labels, s) for f in self._families.values() for labels, s in f.series.items()]

    def counter_exemplars(self) -> list[tuple[FamilySpec, tuple[str, ...], Exemplar]]:
        """Every counter's latest exemplar with its family and labels (for a worker to ship)."""
        with self._lock:
            return [(f.spec, labels, e) for f in self._families.values() if f.exemplars
                    for labels, s in f.series.items() if (e := f.exemplars.get(s)) is not None]  # type: ignore[arg-type]
