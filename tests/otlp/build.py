"""OTLP export requests built with the official message classes, for the translation tests."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.metrics.v1 import metrics_pb2 as pb

DELTA = pb.AGGREGATION_TEMPORALITY_DELTA
CUMULATIVE = pb.AGGREGATION_TEMPORALITY_CUMULATIVE
SERVICE = {"service.name": "shop", "service.instance.id": "i-1"}


def kvs(attrs: Mapping[str, Any]) -> list[KeyValue]:
    out = []
    for key, value in attrs.items():
        if isinstance(value, bool):
            v = AnyValue(bool_value=value)
        elif isinstance(value, int):
            v = AnyValue(int_value=value)
        elif isinstance(value, float):
            v = AnyValue(double_value=value)
        else:
            v = AnyValue(string_value=value)
        out.append(KeyValue(key=key, value=v))
    return out


def number(value: float, attrs: Mapping[str, Any] | None = None, start: int = 1, t: int = 2) -> pb.NumberDataPoint:
    dp = pb.NumberDataPoint(attributes=kvs(attrs or {}), start_time_unix_nano=start, time_unix_nano=t)
    if isinstance(value, int):
        dp.as_int = value
    else:
        dp.as_double = value
    return dp


def counter(name: str, *points: pb.NumberDataPoint, temporality: int = CUMULATIVE, unit: str = "",
            monotonic: bool = True) -> pb.Metric:
    return pb.Metric(name=name, unit=unit, sum=pb.Sum(data_points=points, aggregation_temporality=temporality,
                                                      is_monotonic=monotonic))


def gauge(name: str, *points: pb.NumberDataPoint, unit: str = "") -> pb.Metric:
    return pb.Metric(name=name, unit=unit, gauge=pb.Gauge(data_points=points))


def hist_point(bounds: Sequence[float], counts: Sequence[int], total: float, attrs: Mapping[str, Any] | None = None,
               start: int = 1, t: int = 2) -> pb.HistogramDataPoint:
    return pb.HistogramDataPoint(attributes=kvs(attrs or {}), start_time_unix_nano=start, time_unix_nano=t,
                                 explicit_bounds=bounds, bucket_counts=counts, count=sum(counts), sum=total)


def histogram(name: str, *points: pb.HistogramDataPoint, temporality: int = CUMULATIVE, unit: str = "") -> pb.Metric:
    return pb.Metric(name=name, unit=unit,
                     histogram=pb.Histogram(data_points=points, aggregation_temporality=temporality))


def expo_point(scale: int, offset: int, counts: Sequence[int], total: float, zero: int = 0,
               attrs: Mapping[str, Any] | None = None, start: int = 1, t: int = 2) -> pb.ExponentialHistogramDataPoint:
    return pb.ExponentialHistogramDataPoint(
        attributes=kvs(attrs or {}), start_time_unix_nano=start, time_unix_nano=t, scale=scale, zero_count=zero,
        positive=pb.ExponentialHistogramDataPoint.Buckets(offset=offset, bucket_counts=counts),
        count=sum(counts) + zero, sum=total)


def exponential(name: str, *points: pb.ExponentialHistogramDataPoint, temporality: int = CUMULATIVE,
                unit: str = "") -> pb.Metric:
    return pb.Metric(name=name, unit=unit, exponential_histogram=pb.ExponentialHistogram(
        data_points=points, aggregation_temporality=temporality))


def summary(name: str, count: int, total: float, quantiles: Sequence[tuple[float, float]] = (),
            attrs: Mapping[str, Any] | None = None, start: int = 1, t: int = 2) -> pb.Metric:
    dp = pb.SummaryDataPoint(attributes=kvs(attrs or {}), start_time_unix_nano=start, time_unix_nano=t,
                             count=count, sum=total, quantile_values=[
                                 pb.SummaryDataPoint.ValueAtQuantile(quantile=q, value=v) for q, v in quantiles])
    return pb.Metric(name=name, summary=pb.Summary(data_points=[dp]))


def request(*metrics: pb.Metric, resource: Mapping[str, Any] | None = None,
            scope: str = "test") -> ExportMetricsServiceRequest:
    from opentelemetry.proto.common.v1.common_pb2 import InstrumentationScope
    from opentelemetry.proto.resource.v1.resource_pb2 import Resource

    return ExportMetricsServiceRequest(resource_metrics=[pb.ResourceMetrics(
        resource=Resource(attributes=kvs(SERVICE if resource is None else resource)),
        scope_metrics=[pb.ScopeMetrics(scope=InstrumentationScope(name=scope), metrics=metrics)])])
