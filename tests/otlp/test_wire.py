"""The hand decoder (wire.py) against the protobuf library (points.from_message, the reference).

Requests come from the OpenTelemetry SDK's own encoder (every instrument, both temporalities,
attributes of every kind the SDK allows), from the official message classes (summaries, maps
and bytes, which the SDK does not produce), and from hypothesis. Both decoders must give the
same thing, and bad bytes must give a WireError, never anything else.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterator
from typing import Any

import pytest
from google.protobuf.message import DecodeError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.metrics import Observation
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.common.v1.common_pb2 import (
    AnyValue,
    ArrayValue,
    InstrumentationScope,
    KeyValue,
    KeyValueList,
)
from opentelemetry.proto.metrics.v1 import metrics_pb2 as pb
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.sdk.metrics import (
    Counter,
    Histogram,
    MeterProvider,
    ObservableGauge,
    UpDownCounter,
)
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    InMemoryMetricReader,
)
from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource as SdkResource

from exporter.otlp import wire
from exporter.otlp.config import OtlpConfig
from exporter.otlp.points import from_message
from exporter.otlp.translate import Translator
from exporter.store import Store
from tests.otlp.build import counter, number, request, summary

SDK_ATTRIBUTES: list[dict[str, Any]] = [
    {"http.route": "/cart", "http.method": "GET"},
    {"ok": True, "retries": -3, "ratio": 0.25, "big": 2**62},
    {"tags": ["a", "b"], "codes": [200, 500], "flags": [True, False], "weights": [0.5, -1.5]},
    {},
]


def canonical(request: list[Any]) -> str:
    """The decoded request with attributes as text (the hand decoder keeps them encoded), as
    repr: exact for floats (-0.0, nan) and keeps ints and floats apart."""
    out = []
    for rm in request:
        for scope in rm.scopes:
            for m in scope.metrics:
                points = [((wire.pairs(p[0]) if isinstance(p[0], bytes) else p[0]), *p[1:]) for p in m.points]
                out.append((rm.attributes, scope.name, scope.version, m._replace(points=points)))
    return repr(out)


def assert_same(message: ExportMetricsServiceRequest) -> None:
    body = message.SerializeToString()
    assert canonical(wire.decode(body)) == canonical(from_message(ExportMetricsServiceRequest.FromString(body)))


# --- the SDK's own encoding ------------------------------------------------------------------------------
def sdk_requests(temporality: AggregationTemporality) -> Iterator[ExportMetricsServiceRequest]:
    preferred = {k: temporality for k in (Counter, UpDownCounter, Histogram, ObservableGauge)}
    for exponential in (False, True):
        reader = InMemoryMetricReader(preferred_temporality=preferred)
        views = [View(instrument_type=Histogram, aggregation=ExponentialBucketHistogramAggregation())] \
            if exponential else []
        provider = MeterProvider(metric_readers=[reader], views=views, resource=SdkResource.create(
            {"service.name": "shop", "service.instance.id": "i-1", "host.cores": 4, "debug": False}))
        meter = provider.get_meter("test", "1.2.3")
        c, u = meter.create_counter("orders", unit="{order}"), meter.create_up_down_counter("queue", unit="1")
        h = meter.create_histogram("latency", unit="s", description="how long")
        fc = meter.create_counter("cost")
        meter.create_observable_gauge("temperature", callbacks=[
            lambda _options: [Observation(21.5 + i, a) for i, a in enumerate(SDK_ATTRIBUTES)]])
        for round_ in range(3):
            for i, attrs in enumerate(SDK_ATTRIBUTES):
                c.add(i + round_, attrs)
                u.add(i - 2, attrs)
                fc.add(0.125 * i, attrs)
                for v in (0.0, 0.003, 1.5, 250.0, -1.0 if exponential else 7.0):
                    h.record(v * (i + 1), attrs)
            yield encode_metrics(reader.get_metrics_data())
        provider.shutdown()


@pytest.mark.parametrize("temporality", [AggregationTemporality.CUMULATIVE, AggregationTemporality.DELTA])
def test_sdk_requests_decode_as_the_protobuf_library_reads_them(temporality: AggregationTemporality) -> None:
    kinds = set()
    for message in sdk_requests(temporality):
        assert_same(message)
        kinds.update(m.WhichOneof("data") for rm in message.resource_metrics for sm in rm.scope_metrics
                     for m in sm.metrics)
    assert kinds == {"sum", "gauge", "histogram", "exponential_histogram"}


def test_summaries_maps_bytes_and_nested_values_decode_alike() -> None:
    nested = AnyValue(kvlist_value=KeyValueList(values=[
        KeyValue(key="list", value=AnyValue(array_value=ArrayValue(values=[
            AnyValue(int_value=-1), AnyValue(double_value=math.inf), AnyValue(bytes_value=b"\x00\xff"),
            AnyValue(), AnyValue(kvlist_value=KeyValueList(values=[KeyValue(key="x")]))]))),
        KeyValue(key="s", value=AnyValue(string_value="ü"))]))
    dp = number(3, {"plain": "v"})
    dp.attributes.append(KeyValue(key="nested", value=nested))
    dp.attributes.append(KeyValue(key="raw", value=AnyValue(bytes_value=b"\x01\x02")))
    dp.attributes.append(KeyValue(key="empty"))
    message = request(counter("c", dp), summary("rpc", 4, 1.5, [(0.5, 0.25), (0.99, 1.0)], {"k": "v"}))
    assert_same(message)
    pairs = dict(wire.pairs(wire.decode(message.SerializeToString())[0].scopes[0].metrics[0].points[0][0]))
    assert pairs["nested"] == r'{"list":[-1,Infinity,"00ff","",{"x":""}],"s":"\u00fc"}'  # as json.dumps writes it
    assert pairs["raw"] == "0102" and pairs["empty"] == ""


def field(number: int, payload: bytes) -> bytes:
    """A length-delimited field."""
    return wire.encode_varint(number << 3 | 2) + wire.encode_varint(len(payload)) + payload


def test_unpacked_repeated_fields_and_unknown_fields_are_read() -> None:
    """A conforming parser takes repeated scalars unpacked too and skips fields it does not know."""
    fixed = b"".join(tag + struct.pack(code, v) for tag, code, v in (
        (b"\x11", "<Q", 1), (b"\x19", "<Q", 2), (b"\x21", "<Q", 3), (b"\x29", "<d", 1.0),
        (b"\x31", "<Q", 1), (b"\x31", "<Q", 2), (b"\x39", "<d", 1.0)))  # bucket_counts, explicit_bounds unpacked
    point = fixed + b"\xf8\x07\x05" + field(1000, b"?")  # unknown fields 127 (varint) and 1000
    metric = field(1, b"h") + field(9, field(1, point) + b"\x10\x02")
    body = field(1, field(2, field(2, metric)))
    assert canonical(wire.decode(body)) == canonical(from_message(ExportMetricsServiceRequest.FromString(body)))
    assert wire.decode(body)[0].scopes[0].metrics[0].points[0][6:] == ((1, 2), (1.0,))


# --- hypothesis -------------------------------------------------------------------------------------------
u64 = st.integers(0, 2**64 - 1)
i64 = st.integers(-(2**63), 2**63 - 1)
floats = st.floats(allow_nan=True, allow_infinity=True)
text = st.text(max_size=8)


def any_values() -> st.SearchStrategy[AnyValue]:
    scalar = st.one_of(
        st.builds(lambda s: AnyValue(string_value=s), text), st.builds(lambda b: AnyValue(bool_value=b), st.booleans()),
        st.builds(lambda i: AnyValue(int_value=i), i64), st.builds(lambda f: AnyValue(double_value=f), floats),
        st.builds(lambda b: AnyValue(bytes_value=b), st.binary(max_size=6)), st.just(AnyValue()))
    return st.recursive(scalar, lambda inner: st.one_of(
        st.builds(lambda vs: AnyValue(array_value=ArrayValue(values=vs)), st.lists(inner, max_size=3)),
        st.builds(lambda kvs: AnyValue(kvlist_value=KeyValueList(values=[KeyValue(key=k, value=v) for k, v in kvs])),
                  st.lists(st.tuples(text, inner), max_size=3))), max_leaves=6)


attributes = st.lists(st.builds(lambda k, v: KeyValue(key=k, value=v), text, any_values()), max_size=4)
common = {"attributes": attributes, "start_time_unix_nano": u64, "time_unix_nano": u64,
          "flags": st.integers(0, 2**32 - 1)}
number_points = st.one_of(st.builds(pb.NumberDataPoint, as_int=i64, **common),
                          st.builds(pb.NumberDataPoint, as_double=floats, **common))
histogram_points = st.builds(pb.HistogramDataPoint, count=u64, sum=floats, bucket_counts=st.lists(u64, max_size=5),
                             explicit_bounds=st.lists(floats, max_size=4), **common)
buckets = st.builds(pb.ExponentialHistogramDataPoint.Buckets, offset=st.integers(-(2**31), 2**31 - 1),
                    bucket_counts=st.lists(u64, max_size=5))
exponential_points = st.builds(pb.ExponentialHistogramDataPoint, count=u64, sum=floats,
                               scale=st.integers(-(2**31), 2**31 - 1), zero_count=u64, zero_threshold=floats,
                               positive=buckets, negative=buckets, **common)
summary_points = st.builds(pb.SummaryDataPoint, count=u64, sum=floats, quantile_values=st.lists(st.builds(
    pb.SummaryDataPoint.ValueAtQuantile, quantile=floats, value=floats), max_size=3), **common)
temporality = st.integers(-(2**31), 2**31 - 1)
metrics = st.builds(
    lambda name, unit, desc, data: pb.Metric(name=name, unit=unit, description=desc, **data),
    text, text, text, st.one_of(
        st.just({}),
        st.builds(lambda ps, t, m: {"sum": pb.Sum(data_points=ps, aggregation_temporality=t, is_monotonic=m)},
                  st.lists(number_points, max_size=3), temporality, st.booleans()),
        st.builds(lambda ps: {"gauge": pb.Gauge(data_points=ps)}, st.lists(number_points, max_size=3)),
        st.builds(lambda ps, t: {"histogram": pb.Histogram(data_points=ps, aggregation_temporality=t)},
                  st.lists(histogram_points, max_size=3), temporality),
        st.builds(lambda ps, t: {"exponential_histogram": pb.ExponentialHistogram(
            data_points=ps, aggregation_temporality=t)}, st.lists(exponential_points, max_size=3), temporality),
        st.builds(lambda ps: {"summary": pb.Summary(data_points=ps)}, st.lists(summary_points, max_size=3))))
requests = st.builds(lambda rms: ExportMetricsServiceRequest(resource_metrics=rms), st.lists(st.builds(
    lambda attrs, sms: pb.ResourceMetrics(resource=Resource(attributes=attrs), scope_metrics=sms), attributes,
    st.lists(st.builds(lambda name, version, ms: pb.ScopeMetrics(
        scope=InstrumentationScope(name=name, version=version), metrics=ms), text, text,
        st.lists(metrics, max_size=3)), max_size=2)), max_size=2))

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(requests)
def test_generated_requests_decode_as_the_protobuf_library_reads_them(message: ExportMetricsServiceRequest) -> None:
    assert_same(message)


def library_accepts(body: bytes) -> bool:
    try:
        ExportMetricsServiceRequest.FromString(body)
        return True
    except DecodeError:
        return False


@SETTINGS
@given(requests, st.data())
def test_a_cut_request_is_refused_exactly_when_the_library_refuses_it(message: ExportMetricsServiceRequest,
                                                                       data: st.DataObject) -> None:
    body = message.SerializeToString()
    cut = body[:data.draw(st.integers(0, max(0, len(body) - 1)))]
    if library_accepts(cut):
        assert canonical(wire.decode(cut)) == canonical(from_message(ExportMetricsServiceRequest.FromString(cut)))
    else:
        with pytest.raises(wire.WireError):
            wire.decode(cut)


def flipped(message: ExportMetricsServiceRequest, at: int, byte: int) -> bytes:
    """The message's bytes with one byte replaced."""
    body = message.SerializeToString()
    at %= len(body) + 1
    return body[:at] + bytes([byte]) + body[at + 1:]


@SETTINGS
@given(st.one_of(st.binary(max_size=200), st.builds(flipped, requests, st.integers(0, 10_000), st.integers(0, 255))))
def test_any_bytes_decode_or_raise_wire_error_and_never_crash_the_translator(body: bytes) -> None:
    try:
        decoded = wire.decode(body)
    except wire.WireError:
        return
    translator = Translator(OtlpConfig(), Store(), Store())
    accepted, rejected, _ = translator.export(decoded)  # attributes that do not decode: points refused
    assert accepted >= 0 and rejected >= 0


def test_a_point_whose_attributes_do_not_decode_is_refused_and_counted_alone() -> None:
    body = request(counter("c", number(1, {"k": "BAD!"}), number(2, {"k": "good"}))).SerializeToString()
    body = body.replace(b"BAD!", b"\xff\xfe\xfd\xfc")  # not UTF-8: the library refuses the whole request
    assert not library_accepts(body)
    stats = Store()
    translator = Translator(OtlpConfig(), Store(), stats)
    accepted, rejected, message = translator.export(wire.decode(body))
    assert (accepted, rejected) == (1, 1) and "malformed attributes" in message
    values = {s.labels: s.value for f in stats.collect() if f.spec.name.endswith("data_points_rejected_total")
              for s in f.samples}
    assert values[("malformed_attributes",)] == 1


@pytest.mark.parametrize("body", [b"\x0a\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", b"\x0a\x05ab",
                                  b"\x0b", b"\x00\x01", b"\x0a\x02\x12\x05"])
def test_malformed_bodies_raise_a_clear_wire_error(body: bytes) -> None:
    assert not library_accepts(body)
    with pytest.raises(wire.WireError, match="varint|length|past|wire type|field number|truncated"):
        wire.decode(body)
