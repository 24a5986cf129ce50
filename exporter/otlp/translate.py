"""A decoded OTLP export request -> push-store updates, with each stream's last point kept.

Every sum and histogram is applied to the store as an increment, whatever its
temporality, because several streams may land in one series (a convention drops
attributes; two scopes may send the same metric) and the store's counters only
go up:

- delta: the point is the increment; a point not newer than the stream's last
  one is a retry or out of order and is refused (so a retried export is not
  counted twice);
- cumulative: the increment is the difference from the stream's last point; a
  new start time (a restarted SDK) or a smaller value starts a new cumulative,
  whose whole value is the increment, so nothing is counted twice or lost.

Gauges and cumulative up-down sums set their series (last write wins, as StatsD
gauges do); delta up-down sums add to it. Histograms of any layout (explicit
bounds, exponential) are re-bucketed into the family's bounds: each source bucket
goes to the family bucket holding its upper bound (exact when the bounds agree,
an over-estimate by at most one bucket otherwise). Summaries keep their count
and sum; the client's quantiles have no place in the store yet.

The caller holds the store's writer lock (the one StatsD ingest takes).
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Callable, Sequence
from itertools import accumulate
from operator import add, sub
from typing import Any, NamedTuple

from exporter import families
from exporter.model import FamilySpec, MetricType, NativeOptions
from exporter.otlp import conventions
from exporter.otlp.config import OtlpConfig
from exporter.otlp.names import BadName, label_name, metric_name
from exporter.otlp.points import (
    GAUGE,
    HISTOGRAM,
    SUM,
    Metric,
    Pairs,
    Point,
    ResourceMetrics,
)
from exporter.store import Counter, Gauge, Histogram, Refusal, Store, Summary

DELTA, CUMULATIVE = 1, 2  # AggregationTemporality values
NO_RECORDED_VALUE = 1  # DataPointFlags: the stream has no value now (Prometheus: a staleness marker)
# Buckets for exponential histograms outside our families (until native histograms land):
# our latency bounds for seconds, the SDKs' default explicit bounds for anything else.
SECONDS_BUCKETS = families.LATENCY_BUCKETS
MILLISECONDS_BUCKETS = tuple(b * 1000 for b in families.LATENCY_BUCKETS)
DEFAULT_BUCKETS = (0.0, 5.0, 10.0, 25.0, 50.0, 75.0, 100.0, 250.0, 500.0, 750.0, 1000.0, 2500.0,
                   5000.0, 7500.0, 10000.0)
# Reasons a data point is not stored; shown as 0 from the start.
REASONS = ("empty_name", "name_too_long", "no_data", "malformed_attributes", "unspecified_temporality",
           "non_finite_value",
           "negative_counter", "out_of_order", "invalid_buckets", "stream_limit",
           *(r.value for r in Refusal))
_INF = math.inf
# Streams whose series (or refusal) is remembered, so a known stream's point skips routing.
MAX_CACHE_ENTRIES = 200_000
# A stream is forgotten this long after its TTL, by when the store's own expiry (every second)
# has removed its series: forgotten first, a returning stream would add its whole cumulative
# again to a series still holding it.
EXPIRY_MARGIN = 3.0


class Result(NamedTuple):
    accepted: int
    rejected: int
    message: str  # why the first rejected points were refused ("" when none were)


class Resource(NamedTuple):
    key: tuple[tuple[str, str], ...]  # every attribute: identifies the sender's streams
    labels: tuple[str, ...]  # job, instance, then the promoted attributes' values


def _upper(index: int, log_base: float) -> float:
    """Upper bound base**index of an exponential bucket (inf past float range)."""
    try:
        return math.exp(index * log_base)
    except OverflowError:
        return _INF


def _increments(new: Sequence[float], old: Sequence[float]) -> list[float]:
    """Per-bucket increments whose cumulative sums never go down, when some bucket shrank: a
    re-scaled exponential histogram moves counts to wider buckets, which would otherwise show
    as a cumulative bucket decreasing."""
    new_cum, old_cum = list(accumulate(new)), list(accumulate(old))
    total = new_cum[-1] - old_cum[-1]
    out, floor = [], 0.0
    for n, o in zip(new_cum, old_cum):
        floor = min(max(floor, n - o), total)
        out.append(floor)
    out[-1] = total
    return [c - p for c, p in zip(out, [0.0, *out[:-1]])]


class Translator:
    """Applies export requests to the store; keeps the last point of every stream."""

    def __init__(self, config: OtlpConfig, store: Store, stats: Store,
                 counted: Callable[[], None] = lambda: None) -> None:
        self.store = store
        self._stats = stats
        self._counted = counted
        self._streams: dict[tuple[Any, ...], list[Any]] = {}
        self._specs: dict[tuple[Any, ...], FamilySpec] = {}
        self._bounds: dict[str, tuple[float, ...]] = {}  # a translated histogram keeps its first bounds
        self._maps: dict[tuple[Any, ...], list[int]] = {}
        self._label_names: dict[str, str] = {}
        self._cache: dict[tuple[Any, ...], dict[Any, list[Any]]] = {}
        self._cached = 0
        self._rejected: dict[str, Counter] = {}
        self._streams_gauge = stats.gauge(families.OTLP_STREAMS)
        for reason in REASONS:
            self._reject_counter(reason)
        self.configure(config)
        # Per request:
        self._accepted = 0
        self._refused = 0
        self._message = ""
        self._now = 0.0

    def configure(self, config: OtlpConfig) -> None:
        """New settings (reload); streams stay, so cumulative totals are not counted again."""
        self.config = config
        self._cache.clear()  # routes and labels may differ now
        self._cached = 0
        self._promoted = tuple(config.promote_resource_attributes)
        self._promoted_labels = tuple(label_name(k) for k in self._promoted)
        info = [(k, label_name(k)) for k in config.target_info_attributes]
        self._info_keys = tuple(k for k, _ in info)
        self._target_info = FamilySpec(
            "target_info", MetricType.GAUGE,
            "Resource attributes of the OTLP senders, one series per job and instance.",
            ("job", "instance", *(n for _, n in info)), namespaced=False)
        self._reserved = {"job", "instance", *self._promoted_labels}
        self._ttl = config.ttl or 0.0

    @property
    def streams(self) -> int:
        return len(self._streams)

    def expire(self, now: float | None = None) -> int:
        """Forget streams not updated within the TTL (and a margin), with their cache entries and
        the cached refusals (a limit may have room again); returns how many streams went."""
        if not self._ttl:
            return 0
        cutoff = (self.store.clock() if now is None else now) - self._ttl - EXPIRY_MARGIN
        gone = [k for k, state in self._streams.items() if state[5] < cutoff]
        for key in gone:
            del self._streams[key]
        for ident, entries in list(self._cache.items()):
            dead = [k for k, e in entries.items()
                    if e[0] is None or e[0].seen < cutoff or (e[1] is not None and e[1][5] < cutoff)]
            for key in dead:
                del entries[key]
            self._cached -= len(dead)
            if not entries:
                del self._cache[ident]
        self._streams_gauge.value = len(self._streams)
        return len(gone)

    # --- a request --------------------------------------------------------------------------
    def export(self, request: list[ResourceMetrics]) -> Result:
        """Apply a decoded export request (points.py); returns what was stored and what was not."""
        self._accepted = self._refused = 0
        self._message = ""
        self._now = self.store.clock()
        # A cached series older than this may have been expired from the store: look it up again.
        self._stale = self._now - self._ttl if self._ttl else -_INF
        for rm in request:
            resource = self._resource(rm.attributes)
            for sm in rm.scopes:
                scope = (sm.name, sm.version)
                metrics = sm.metrics
                if self.config.conventions:
                    names = {m.name for m in metrics}
                    metrics = [m for m in metrics if conventions.SUPERSEDED.get(m.name) not in names]
                for metric in metrics:
                    self._metric(metric, resource, scope)
        self._streams_gauge.value = len(self._streams)
        self._counted()
        return Result(self._accepted, self._refused, self._message)

    def _resource(self, attributes: Pairs) -> Resource:
        attrs = dict(attributes)
        name, namespace = attrs.get("service.name", ""), attrs.get("service.namespace", "")
        job = f"{namespace}/{name}" if namespace and name else name
        instance = attrs.get("service.instance.id", "")
        labels = (job, instance, *(attrs.get(k, "") for k in self._promoted))
        if job or instance:
            series = self.store.series(self._target_info, (job, instance, *(attrs.get(k, "") for k in self._info_keys)),
                                       self._ttl)
            if isinstance(series, Gauge):
                series.value = 1.0
                series.seen = self._now
        return Resource(tuple(sorted(attrs.items())), labels)

    def _metric(self, metric: Metric, resource: Resource, scope: tuple[str, str]) -> None:
        which = metric.kind
        if which is None:
            self._reject("no_data", 1, f"metric {metric.name!r} has no data")
            return
        points = metric.points
        if not points:
            return
        if which == GAUGE:
            kind, temporality = "gauge", CUMULATIVE
        elif which == "summary":
            kind, temporality = "summary", CUMULATIVE
        else:
            temporality = metric.temporality
            if which == SUM:
                kind = "counter" if metric.monotonic else "gauge"
            else:
                kind = "histogram" if which == HISTOGRAM else "exponential"
            if temporality != DELTA and temporality != CUMULATIVE:
                self._reject("unspecified_temporality", len(points),
                             f"metric {metric.name!r}: aggregation temporality is unspecified")
                return
        entries = self._cache.get((resource.key, scope, metric.name, kind, metric.unit))
        if entries is None:
            entries = self._cache[resource.key, scope, metric.name, kind, metric.unit] = {}
        apply = self._APPLY[kind]
        stale = self._stale
        misses = []
        expired: dict[Any, Any] = {}
        for dp in points:  # the hot path: a stream seen before costs a lookup and the update
            raw = dp[0]
            entry = entries.get(raw)
            if entry is None:
                misses.append((dp, raw))
            elif dp[3] & NO_RECORDED_VALUE:
                self._accepted += 1
            elif entry[0] is None:
                self._reject(entry[1], 1, entry[2])
            elif entry[0].seen < stale:  # not updated within the TTL: the store may have dropped it
                expired[raw] = entries.pop(raw)[0]
                self._cached -= 1
                misses.append((dp, raw))
            else:
                apply(self, dp, entry, temporality)
        if misses:
            self._new_streams(metric, kind, which, temporality, resource, scope, misses, entries, expired)

    def _new_streams(self, metric: Metric, kind: str, which: str, temporality: int, resource: Resource,
                     scope: tuple[str, str], misses: list[tuple[Point, Any]],
                     entries: dict[Any, list[Any]], expired: dict[Any, Any]) -> None:
        """Points of streams not in the cache: route them, find or create their series, cache them.
        A stream whose series was expired (`expired`: its old series) starts a new cumulative."""
        decoded: list[Pairs] = []
        if misses and type(misses[0][1]) is bytes:  # the hand decoder's: attributes still encoded
            from exporter.otlp import wire

            kept = []
            for dp, key in misses:
                try:
                    decoded.append(wire.pairs(key))
                except wire.WireError as err:
                    self._reject("malformed_attributes", 1, f"metric {metric.name!r}: {err}")
                    continue
                kept.append((dp, key))
            misses = kept
            if not misses:
                return
        else:
            decoded = [key for _, key in misses]
        route = (conventions.route(metric.name, "histogram" if kind == "exponential" else kind, metric.unit)
                 if self.config.conventions else None)
        raw = [dict(r) for r in decoded]
        if route is not None:
            spec, scale = route.spec, route.scale
            label_sets = [route.labels(a) for a in raw]
        else:
            try:
                spec, label_sets = self._translated(metric, kind, which, [dp for dp, _ in misses], raw, resource)
            except BadName as err:
                self._reject(err.reason, len(misses), str(err))
                return
            scale = 1.0
        ttl = 0.0 if route is not None else self._ttl  # a convention family is StatsD's too: no TTL of ours
        if self._cached + len(misses) > MAX_CACHE_ENTRIES:
            self._cache.clear()  # crude but bounded, as StatsD's routing cache; streams keep their state
            self._cache[resource.key, scope, metric.name, kind, metric.unit] = entries
            entries.clear()
            self._cached = 0
        apply = self._APPLY[kind]
        for (dp, key), pairs, labels in zip(misses, decoded, label_sets):
            entry = entries.get(key)
            if entry is None:
                series = self.store.series(spec, labels, ttl)
                if isinstance(series, Refusal):
                    entry = [None, series.value, f"metric {metric.name!r}: series refused ({series.value})"]
                else:
                    # series, stream state (made on first use), scale, stream key, the bounds as a list
                    # (a repeated field compares equal to a list, not to a tuple)
                    entry = [series, None, scale, (resource.key, scope, metric.name, spec.name, pairs),
                             series.bounds if isinstance(series, Histogram) else None]
                    if key in expired and expired[key] is not series:  # the store dropped it: start over
                        self._streams.pop(entry[3], None)
                entries[key] = entry
                self._cached += 1
            if dp[3] & NO_RECORDED_VALUE:
                self._accepted += 1
            elif entry[0] is None:
                self._reject(entry[1], 1, entry[2])
            else:
                apply(self, dp, entry, temporality)

    def _translated(self, metric: Metric, kind: str, which: str, points: Sequence[Point], raw: list[dict[str, str]],
                    resource: Resource) -> tuple[FamilySpec, list[tuple[str, ...]]]:
        """The spec under the metric's Prometheus name and each point's label values."""
        name, unit = metric_name(metric.name, metric.unit, counter=kind == "counter",
                                 ratio_gauge=which == GAUGE)
        names = self._label_names
        sanitised = []
        keys: set[str] = set()
        for attrs in raw:
            d: dict[str, str] = {}
            for key in sorted(attrs):  # sorted: values of colliding keys join in key order
                label = names.get(key)
                if label is None:
                    label = names[key] = label_name(key)
                if not label or label in self._reserved:
                    continue
                d[label] = f"{d[label]};{attrs[key]}" if label in d else attrs[key]
            keys.update(d)
            sanitised.append(d)
        label_keys = tuple(sorted(keys))
        buckets: tuple[float, ...] = ()
        native = None
        if kind == "histogram" or kind == "exponential":
            buckets = self._bounds.get(name) or self._bounds.setdefault(
                name, points[0][7] if kind == "histogram" else _exponential_bounds(unit))
        if kind == "exponential" and self.config.exponential_histograms != "classic":
            both = self.config.exponential_histograms == "both"
            native = _native_options(points[0][8], both)
            buckets = buckets if both else ()
        elif kind == "summary":  # a summary spec carries its quantiles where a histogram has bounds
            buckets = self._bounds.get(name) or self._bounds.setdefault(
                name, tuple(sorted(q for q, _ in points[0][6])))
        mtype = {"counter": MetricType.COUNTER, "gauge": MetricType.GAUGE, "summary": MetricType.SUMMARY}.get(
            kind, MetricType.HISTOGRAM)
        ident = (name, mtype, label_keys, buckets, unit, metric.description, native)
        spec = self._specs.get(ident)
        if spec is None:
            if len(self._specs) > 100_000:
                self._specs.clear()
            spec = self._specs[ident] = FamilySpec(
                name, mtype, metric.description or f"OTLP metric {metric.name}.",
                ("job", "instance", *self._promoted_labels, *label_keys), buckets, unit, namespaced=False,
                native=native)
        base = resource.labels
        return spec, [(*base, *(d.get(k, "") for k in label_keys)) for d in sanitised]

    # --- points --------------------------------------------------------------------------------
    def _stream(self, entry: list[Any], dp: Point, temporality: int) -> list[Any] | None:
        """The stream's state; None (and counted) if it is new and there is no room for another,
        or if the point is older than the stream's last (for a delta stream: not newer, a retry)."""
        state = entry[1]
        if state is None:
            state = self._streams.get(entry[3])
            if state is None:
                if len(self._streams) >= self.store.limits.max_series:
                    self._reject("stream_limit", 1, "too many streams")
                    return None
                # start, time, value (or count), sum, cumulative buckets, when last updated (store clock)
                state = entry[1] = self._streams[entry[3]] = [-1, 0, 0.0, 0.0, None, self._now]
                return state
            entry[1] = state
        state[5] = self._now
        t, last = dp[2], state[1]
        if t and last and (t < last or (t == last and temporality == DELTA)):
            self._reject("out_of_order", 1, "data point not newer than the stream's last one")
            return None
        return state

    def _counter(self, dp: Point, entry: list[Any], temporality: int) -> None:
        series, scale = entry[0], entry[2]
        v = dp[4]
        if v - v != 0:
            self._reject("non_finite_value", 1, "NaN or infinite value")
            return
        if v < 0:
            self._reject("negative_counter", 1, "negative value for a monotonic sum")
            return
        state = self._stream(entry, dp, temporality)
        if state is None:
            return
        start = dp[1]
        if temporality == DELTA or state[0] != start or v < state[2]:
            inc = v
        else:
            inc = v - state[2]
        state[0], state[1], state[2] = start, dp[2], v
        series.value += inc * scale
        series.seen = self._now
        self._accepted += 1

    def _gauge(self, dp: Point, entry: list[Any], temporality: int) -> None:
        series, scale = entry[0], entry[2]
        v = dp[4]
        if v - v != 0:
            self._reject("non_finite_value", 1, "NaN or infinite value")
            return
        if temporality == DELTA:
            state = self._stream(entry, dp, temporality)
            if state is None:
                return
            state[1] = dp[2]
            series.value += v * scale
        else:
            series.value = v * scale
        series.seen = self._now
        self._accepted += 1

    def _histogram(self, dp: Point, entry: list[Any], temporality: int) -> None:
        series, scale = entry[0], entry[2]
        counts, explicit = dp[6], dp[7]
        target = series.bounds
        total = dp[4]
        if not counts:
            counts, bounds = [total], ()
        elif scale == 1.0 and explicit == entry[4]:  # the common case: the family's own bounds
            bounds = target
        else:
            bounds = explicit
        if len(counts) != len(bounds) + 1 or sum(counts) != total:
            self._reject("invalid_buckets", 1, "bucket counts do not match the bounds or the count")
            return
        if bounds is target:
            per: Sequence[float] = counts
        else:
            per = [0] * (len(target) + 1)
            for i, c in zip(self._map(bounds, scale, target), counts):
                per[i] += c
        self._observe(dp, entry, temporality, per, dp[5] * scale)

    def _exponential(self, dp: Point, entry: list[Any], temporality: int) -> None:
        series, scale = entry[0], entry[2]
        if not -10 <= dp[6] <= 20:
            self._reject("invalid_buckets", 1, f"exponential scale {dp[6]} out of range")
            return
        if not isinstance(series, Histogram):
            self._native(dp, entry, temporality)
            return
        target = series.bounds
        per = [0] * (len(target) + 1)
        log_base = math.log(2.0) * 2.0 ** -dp[6]
        if dp[7]:
            per[bisect_left(target, 0.0)] += dp[7]
        offset = dp[9]
        for j, c in enumerate(dp[10]):
            if c:
                per[bisect_left(target, _upper(offset + j + 1, log_base) * scale)] += c
        offset = dp[11]
        for j, c in enumerate(dp[12]):
            if c:  # negative bucket j covers [-base**(offset+j+1), -base**(offset+j))
                per[bisect_left(target, -_upper(offset + j, log_base) * scale)] += c
        if sum(per) != dp[4]:
            self._reject("invalid_buckets", 1, "bucket counts do not add up to the count")
            return
        self._observe(dp, entry, temporality, per, dp[5] * entry[2])

    def _observe(self, dp: Point, entry: list[Any], temporality: int, per: Sequence[float], total: float) -> None:
        series = entry[0]
        if total - total != 0:
            self._reject("non_finite_value", 1, "NaN or infinite sum")
            return
        if not isinstance(series, Histogram):  # pragma: no cover - the spec decides the series type
            self._reject(Refusal.TYPE_CONFLICT.value, 1, "not a histogram")
            return
        state = self._stream(entry, dp, temporality)
        if state is None:
            return
        start, count = dp[1], dp[4]
        last = state[4]
        if temporality == DELTA or last is None or state[0] != start or count < state[2]:
            inc, inc_sum = per, total
        else:
            inc, inc_sum = list(map(sub, per, last)), total - state[3]
            if min(inc) < 0:  # counts moved to wider buckets (a re-scaled exponential histogram)
                inc = _increments(per, last)
        if temporality == CUMULATIVE:
            state[2], state[3], state[4] = count, total, per
        state[0], state[1] = start, dp[2]
        buckets: list[Any] = series.buckets
        buckets[:] = map(add, buckets, inc)  # in place: StatsD's routing cache may hold this list
        series.sum += inc_sum
        series.seen = self._now
        self._accepted += 1

    def _native(self, dp: Point, entry: list[Any], temporality: int) -> None:
        """An exponential point into a native histogram: the same buckets, so nothing is re-bucketed
        (OTLP's bucket i, (base**i, base**(i+1)], is Prometheus's bucket i + 1), only coarsened
        when the point's scale is finer than Prometheus's finest schema."""
        from exporter.native import MAX_SCHEMA, Change, NativeHistogram, _coarser

        series, scale = entry[0], entry[2]
        if not isinstance(series, NativeHistogram):  # pragma: no cover - the spec decides the series type
            self._reject(Refusal.TYPE_CONFLICT.value, 1, "not a histogram")
            return
        schema = min(dp[6], MAX_SCHEMA)
        shift = dp[6] - schema
        sides = []
        for offset, counts in ((dp[9], dp[10]), (dp[11], dp[12])):
            buckets: dict[int, float] = {}
            for j, c in enumerate(counts):
                if c:
                    key = ((offset + j) >> shift) + 1
                    buckets[key] = buckets.get(key, 0.0) + c
            sides.append(buckets)
        positive, negative = sides
        zero, total = float(dp[7]), dp[5] * scale
        if math.fsum(positive.values()) + math.fsum(negative.values()) + zero != dp[4]:
            self._reject("invalid_buckets", 1, "bucket counts do not add up to the count")
            return
        if total - total != 0:
            self._reject("non_finite_value", 1, "NaN or infinite sum")
            return
        classic: list[float] = []
        if series.bounds is not None:  # exposed both ways: the classic buckets as the classic path makes them
            target = series.bounds
            per = [0.0] * (len(target) + 1)
            log_base = math.log(2.0) * 2.0 ** -dp[6]
            if zero:
                per[bisect_left(target, 0.0)] += zero
            for offset, counts, sign in ((dp[9], dp[10], 1), (dp[11], dp[12], -1)):
                for j, c in enumerate(counts):
                    if c:
                        upper = _upper(offset + j + (1 if sign > 0 else 0), log_base) * sign * scale
                        per[bisect_left(target, upper)] += c
            classic = per
        state = self._stream(entry, dp, temporality)
        if state is None:
            return
        point = Change(schema, positive, negative, zero, 0.0, total, classic)
        start, last = dp[1], state[4]
        change = point
        if temporality == CUMULATIVE and last is not None and state[0] == start and dp[4] >= state[2]:
            common = min(schema, last.schema)
            now = (_coarser(positive, schema - common), _coarser(negative, schema - common))
            then = (_coarser(last.positive, last.schema - common), _coarser(last.negative, last.schema - common))
            diffs = [{k: c - was.get(k, 0.0) for k, c in n.items() if c != was.get(k, 0.0)} for n, was in zip(now, then)]
            if not any(v < 0 for d in diffs for v in d.values()) and zero >= last.zero_count:
                inc_classic = list(map(sub, classic, last.classic)) if classic else []
                if inc_classic and min(inc_classic) < 0:
                    inc_classic = _increments(classic, last.classic)
                change = Change(common, diffs[0], diffs[1], zero - last.zero_count, 0.0, total - last.sum,
                                inc_classic)
        if temporality == CUMULATIVE:
            state[2], state[4] = dp[4], point
        state[0], state[1] = start, dp[2]
        series.merge(change)
        series.seen = self._now
        self._accepted += 1

    def _summary(self, dp: Point, entry: list[Any], temporality: int) -> None:
        series, scale = entry[0], entry[2]
        total = dp[5] * scale
        if total - total != 0:
            self._reject("non_finite_value", 1, "NaN or infinite sum")
            return
        if not isinstance(series, Summary):  # pragma: no cover
            self._reject(Refusal.TYPE_CONFLICT.value, 1, "not a summary")
            return
        state = self._stream(entry, dp, temporality)
        if state is None:
            return
        start, count = dp[1], dp[4]
        if state[0] != start or count < state[2]:
            series.count += count
            series.sum += total
        else:
            series.count += count - state[2]
            series.sum += total - state[3]
        state[0], state[1], state[2], state[3] = start, dp[2], count, total
        values = {q: v * scale for q, v in dp[6]}
        series.reported = [values.get(q, math.nan) for q in series.quantiles]
        series.seen = self._now
        self._accepted += 1

    _APPLY: dict[str, Callable[..., None]] = {
        "counter": _counter, "gauge": _gauge, "histogram": _histogram,
        "exponential": _exponential, "summary": _summary,
    }

    def _map(self, bounds: tuple[float, ...], scale: float, target: tuple[float, ...]) -> list[int]:
        """For each source bucket, the target bucket holding its upper bound."""
        ident = (bounds, scale, target)
        found = self._maps.get(ident)
        if found is None:
            if len(self._maps) > 10_000:
                self._maps.clear()
            found = self._maps[ident] = [bisect_left(target, b * scale) for b in bounds] + [len(target)]
        return found

    # --- rejections ------------------------------------------------------------------------------
    def _reject_counter(self, reason: str) -> Counter:
        counter = self._rejected.get(reason)
        if counter is None:
            counter = self._rejected[reason] = self._stats.counter(families.OTLP_DATA_POINTS_REJECTED, reason)
        return counter

    def _reject(self, reason: str, points: int, message: str) -> None:
        self._reject_counter(reason).value += points
        self._refused += points
        if not self._message:
            self._message = message


def _native_options(zero_threshold: float, both: bool) -> NativeOptions:
    """A native family's settings from its first point: Prometheus's finest schema (a series
    coarsens to what its points carry), the point's zero threshold, client_golang's bucket limit."""
    from exporter.native import DEFAULT_MAX_BUCKETS, DEFAULT_ZERO_THRESHOLD, MAX_SCHEMA

    return NativeOptions(MAX_SCHEMA, zero_threshold or DEFAULT_ZERO_THRESHOLD, DEFAULT_MAX_BUCKETS, both)


def _exponential_bounds(unit: str) -> tuple[float, ...]:
    if unit == "seconds":
        return SECONDS_BUCKETS
    if unit == "milliseconds":
        return MILLISECONDS_BUCKETS
    return DEFAULT_BUCKETS
