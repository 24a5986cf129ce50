"""A decoded export request as the translator reads it, and the reference decoder: the protobuf library's.

Both decoders give the same shape: `wire.decode` walks the bytes itself (the hot path, no
protobuf import), `from_message` reads an ExportMetricsServiceRequest built by the protobuf
library (JSON bodies, and the reference the hand decoder is tested against). Data points are
plain tuples, because building an object per point is what made the library path slow:

    number       (attributes, start, time, flags, value)
    histogram    (attributes, start, time, flags, count, sum, bucket_counts, explicit_bounds)
    exponential  (attributes, start, time, flags, count, sum, scale, zero_count, zero_threshold,
                  positive_offset, positive_counts, negative_offset, negative_counts)
    summary      (attributes, start, time, flags, count, sum, ((quantile, value), ...))

A point's `attributes` identify its stream: `Pairs` from `from_message`, the point's encoded
KeyValue fields (bytes) from `wire.decode`, turned into Pairs only for a stream not seen before
(`wire.pairs`). Times are nanoseconds since the epoch.
"""

from __future__ import annotations

import json
from typing import Any, NamedTuple

Pairs = tuple[tuple[str, str], ...]  # (key, value as text) per attribute, in the order sent
Point = tuple[Any, ...]

# Metric.kind: which member of the Metric's data oneof was set (None: none was)
GAUGE, SUM, HISTOGRAM, EXPONENTIAL, SUMMARY = "gauge", "sum", "histogram", "exponential_histogram", "summary"


class Metric(NamedTuple):
    name: str
    description: str
    unit: str
    kind: str | None
    temporality: int  # AggregationTemporality (0 for gauges and summaries, which have none)
    monotonic: bool
    points: list[Point]


class Scope(NamedTuple):
    name: str
    version: str
    metrics: list[Metric]


class ResourceMetrics(NamedTuple):
    attributes: Pairs
    scopes: list[Scope]


def text(value: Any) -> str:
    """An AnyValue message as a label value, as Prometheus writes them (arrays and maps as JSON)."""
    which = value.WhichOneof("value")
    if which == "string_value":
        return str(value.string_value)
    if which == "bool_value":
        return "true" if value.bool_value else "false"
    if which == "int_value":
        return str(value.int_value)
    if which == "double_value":
        return repr(value.double_value)
    if which == "bytes_value":
        return str(value.bytes_value.hex())
    if which in ("array_value", "kvlist_value"):
        return json.dumps(_plain(value), separators=(",", ":"))
    return ""


def _plain(value: Any) -> Any:
    which = value.WhichOneof("value")
    if which == "array_value":
        return [_plain(v) for v in value.array_value.values]
    if which == "kvlist_value":
        return {kv.key: _plain(kv.value) for kv in value.kvlist_value.values}
    return text(value) if which not in ("int_value", "double_value", "bool_value") else getattr(value, which)


def pairs(kvs: Any) -> Pairs:
    return tuple([(kv.key, text(kv.value)) for kv in kvs])


def from_message(request: Any) -> list[ResourceMetrics]:
    """An ExportMetricsServiceRequest message in the translator's shape."""
    return [ResourceMetrics(pairs(rm.resource.attributes),
                            [Scope(sm.scope.name, sm.scope.version, [_metric(m) for m in sm.metrics])
                             for sm in rm.scope_metrics])
            for rm in request.resource_metrics]


def _metric(m: Any) -> Metric:
    kind = m.WhichOneof("data")
    if kind is None:
        return Metric(m.name, m.description, m.unit, None, 0, False, [])
    data = getattr(m, kind)
    temporality = data.aggregation_temporality if kind in (SUM, HISTOGRAM, EXPONENTIAL) else 0
    points: list[Point]
    if kind == GAUGE or kind == SUM:
        points = [(pairs(p.attributes), p.start_time_unix_nano, p.time_unix_nano, p.flags,
                   p.as_double if p.WhichOneof("value") == "as_double" else p.as_int) for p in data.data_points]
    elif kind == HISTOGRAM:
        points = [(pairs(p.attributes), p.start_time_unix_nano, p.time_unix_nano, p.flags, p.count, p.sum,
                   tuple(p.bucket_counts), tuple(p.explicit_bounds)) for p in data.data_points]
    elif kind == EXPONENTIAL:
        points = [(pairs(p.attributes), p.start_time_unix_nano, p.time_unix_nano, p.flags, p.count, p.sum,
                   p.scale, p.zero_count, p.zero_threshold, p.positive.offset, tuple(p.positive.bucket_counts),
                   p.negative.offset, tuple(p.negative.bucket_counts)) for p in data.data_points]
    else:
        points = [(pairs(p.attributes), p.start_time_unix_nano, p.time_unix_nano, p.flags, p.count, p.sum,
                   tuple((q.quantile, q.value) for q in p.quantile_values)) for p in data.data_points]
    return Metric(m.name, m.description, m.unit, kind, temporality, kind == SUM and data.is_monotonic, points)
