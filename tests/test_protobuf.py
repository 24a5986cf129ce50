"""The protobuf exposition, decoded with the official generated classes, against the text rendering.

Every family type and the edge cases the text renderer handles (merged and clashing
families, malformed and repeated samples, NaN and infinities, escapes, empty label
values, fractional counts) go through both renderers; the protobuf messages are
expanded into samples the way Prometheus reads them and must equal what
prometheus_client's parser reads from the text.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from exporter import exposition
from exporter.exposition import Format
from exporter.model import (
    Columns,
    Family,
    FamilySpec,
    HistogramValue,
    MetricType,
    Sample,
    SummaryValue,
)
from exporter.native import NativeHistogram
from exporter.protobuf import varint
from exporter.store import Histogram, Limits, Store
from tests.support.metrics_pb import (
    decode,
    metrics_pb2,
    native_buckets,
    proto_samples,
    text_samples,
)

C, G, H, S, I = MetricType.COUNTER, MetricType.GAUGE, MetricType.HISTOGRAM, MetricType.SUMMARY, MetricType.INFO
BOUNDS = (0.005, 0.1, 1.0, 10.0)


def _native(values: list[float], bounds: tuple[float, ...] = (), schema: int = 3, zero: float = 1e-3,
            max_buckets: int = 160) -> Any:
    h = NativeHistogram(schema, zero, max_buckets, bounds or None)
    for v in values:
        h.observe(v)
    value = h.sample()
    if bounds:  # the classic half counts as store.Histogram does
        classic = Histogram(bounds)
        for v in values:
            classic.observe(v)
        assert list(value.counts) == list(classic.sample().counts)
    return value


def _families() -> list[Family]:
    store = Store(Limits(max_series=1000, max_series_per_family=1000))
    requests = FamilySpec("requests_total", C, "Requests.", ("route", "code"))
    for i in range(50):
        series = store.series(requests, (f"/r/{i}", "200" if i % 3 else ""))
        series.inc(i * 2.5)  # type: ignore[union-attr]
    latency = FamilySpec("latency_seconds", H, "Latency.", ("route",), BOUNDS)
    for i in range(20):
        series = store.series(latency, (f"/r/{i}",))
        for k in range(i):
            series.observe(k / 7)  # type: ignore[union-attr]
    collected = store.collect()
    gauge = FamilySpec("temperature", G, 'Help with \\ and "quotes"\nand a newline.', ("where",))
    rnd_values = [0.0, -1.5, 1e300, 5e-324, math.inf, -math.inf, math.nan, 12, 2**70]
    native_spec = FamilySpec("wait_seconds", H, "Wait (native only).", ("pool",))
    both_spec = FamilySpec("batch_seconds", H, "Batch (both).", ("job",), BOUNDS)
    return [
        *collected,
        Family(gauge, [Sample((f"w{i}",), v) for i, v in enumerate(rnd_values)]),
        Family(gauge, [Sample(("w0",), 99.0), Sample(('quote " back \\ nl \n ünï',), 1.0)]),  # w0 repeated
        Family(FamilySpec("build_info", I, "Build.", ("version",)), [Sample(("1.2.3",), 1)]),
        Family(FamilySpec("rpc_seconds", S, "RPC.", ("m",), (0.5, 0.99)),
               [Sample(("get",), SummaryValue([(0.5, 0.1), (0.99, 2.0)], 10, 5.5)),
                Sample(("put",), SummaryValue([(0.5, math.nan), (0.99, math.nan)], 0, 0.0))]),
        Family(native_spec, Columns([("a",), ("b",), ("empty",)],
                                    [_native([0.001, 0.002, 0.3, 5.0, -2.0, 0.0]),
                                     _native([0.25] * 7 + [1e-9]),
                                     _native([], zero=0.0)])),
        Family(both_spec, [Sample(("nightly",), _native([0.01 * i for i in range(300)], BOUNDS, max_buckets=10))]),
        Family(FamilySpec("sampled_seconds", H, "Fractional counts.", (), BOUNDS),
               [Sample((), HistogramValue([0.0, 3.3, 3.3, 6.6], 6.6, 2.0))]),
        Family(FamilySpec("requests_total", C, "Same name, merged.", ("route", "code")),
               [Sample(("/extra", "500"), 1.0), Sample(("/r/1", "200"), 7.0)]),  # the second repeats
        Family(FamilySpec("requests_total", G, "Same name, other type: dropped.", ()), [Sample((), 1.0)]),
        Family(FamilySpec("latency_seconds_count", G, "Clashes with the histogram.", ()), [Sample((), 1.0)]),
        Family(FamilySpec("bad", G, "Malformed samples.", ("a",)),
               [Sample(("ok",), 1.0), Sample(("x", "y"), 1.0), Sample(("s",), "nan?"),  # type: ignore[arg-type]
                Sample(("t",), True)]),
        Family(FamilySpec("bad_histogram", H, "Wrong bucket count.", (), BOUNDS),
               [Sample((), HistogramValue([1, 2], 2, 1.0))]),
        Family(FamilySpec("0invalid", G, "Bad name.", (), namespaced=False), [Sample((), 1.0)]),
        Family(FamilySpec("empty", G, "No samples.", ()), []),
    ]


def test_every_sample_equals_the_text_rendering() -> None:
    families = _families()
    text = exposition.render(families, Format.TEXT, "apm")
    data = exposition.Renderer().render(families, Format.PROTOBUF, "apm")
    decoded = decode(data)
    assert [f.name for f in decoded] == [
        "apm_requests_total", "apm_latency_seconds", "apm_temperature", "apm_build_info", "apm_rpc_seconds",
        "apm_wait_seconds", "apm_batch_seconds", "apm_sampled_seconds", "apm_bad"]
    assert proto_samples(decoded) == text_samples(text)
    pb2 = metrics_pb2()
    by_name = {f.name: f for f in decoded}
    assert by_name["apm_temperature"].help == 'Help with \\ and "quotes"\nand a newline.'
    assert by_name["apm_build_info"].type == pb2.GAUGE
    assert [p.name for p in by_name["apm_requests_total"].metric[0].label] == ["route"]  # empty code left out


def test_native_buckets_decode_to_the_observed_ones() -> None:
    families = _families()
    decoded = {f.name: f for f in decode(exposition.Renderer().render(families, Format.PROTOBUF, "apm"))}
    natives = {f.spec.name: f for f in families if f.spec.name in ("wait_seconds", "batch_seconds")}
    for name, family in natives.items():
        for sample, metric in zip(family.samples, decoded["apm_" + name].metric):
            want, got = sample.value.native, metric.histogram
            assert got.schema == want.schema and got.zero_threshold == want.zero_threshold
            assert got.zero_count == want.zero_count
            assert native_buckets(got.positive_span, got.positive_delta) == dict(want.positive)
            assert native_buckets(got.negative_span, got.negative_delta) == dict(want.negative)
            assert got.sample_count == sample.value.count
    wait = decoded["apm_wait_seconds"].metric
    assert wait[0].histogram.negative_delta == [1]  # -2.0 in its own span
    assert wait[0].histogram.zero_count == 2  # 0 and 0.001: at or below the threshold
    empty = wait[2].histogram
    assert (empty.zero_threshold, empty.zero_count, len(empty.positive_span)) == (0.0, 0, 1)  # the no-op span
    assert (empty.positive_span[0].offset, empty.positive_span[0].length) == (0, 0)
    both = decoded["apm_batch_seconds"].metric[0].histogram
    assert [b.upper_bound for b in both.bucket] == list(BOUNDS) and both.schema < 3  # limited to 10 buckets
    assert len(both.positive_delta) <= 10 + 2 * len(both.positive_span)


def test_fractional_counts_use_the_float_fields() -> None:
    decoded = {f.name: f for f in decode(exposition.Renderer().render(_families(), Format.PROTOBUF, "apm"))}
    h = decoded["apm_sampled_seconds"].metric[0].histogram
    assert h.sample_count_float == 6.6 and h.sample_count == 0
    assert [b.cumulative_count_float for b in h.bucket] == [0.0, 3.3, 3.3, 6.6]


def test_two_renders_are_identical_and_the_memo_forgets_old_families() -> None:
    renderer = exposition.Renderer()
    families = _families()
    first = renderer.render(families, Format.PROTOBUF, "apm")
    assert renderer.render(families, Format.PROTOBUF, "apm") == first
    renderer.render(families[:1], Format.PROTOBUF, "apm")
    assert len(renderer._protobuf._memo) == 1


@pytest.mark.parametrize("n", [0, 1, 127, 128, 300, 2**32, 2**63 - 1, -1])
def test_varints_decode_with_the_reference(n: int) -> None:
    from google.protobuf.internal.decoder import _DecodeVarint  # type: ignore[attr-defined]

    value, end = _DecodeVarint(varint(n), 0)
    assert (value if n >= 0 else value - 2**64) == n and end == len(varint(n))


# The Accept headers Prometheus 2.42 sends, with and without --enable-feature=native-histograms
# (captured from the Debian binary scraping a socket).
PROMETHEUS_NATIVE = ("application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited,"
                     "application/openmetrics-text;version=1.0.0;q=0.8,application/openmetrics-text;version=0.0.1;"
                     "q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1")
PROMETHEUS_CLASSIC = ("application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;"
                      "q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1")


@pytest.mark.parametrize(("accept", "fmt"), [
    (PROMETHEUS_NATIVE, Format.PROTOBUF),
    (PROMETHEUS_CLASSIC, Format.OPENMETRICS),
    (None, Format.TEXT),
    ("*/*", Format.TEXT),
    ("application/vnd.google.protobuf", Format.TEXT),  # no proto=/encoding=: not ours to guess
    ("application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=text", Format.TEXT),
    ("application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0",
     Format.TEXT),
    ("application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited;q=0.5,"
     "application/openmetrics-text;q=0.9", Format.OPENMETRICS),
    ('application/vnd.google.protobuf;proto="io.prometheus.client.MetricFamily";encoding=delimited,text/plain',
     Format.PROTOBUF),
])
def test_negotiation_as_prometheus_asks(accept: str | None, fmt: Format) -> None:
    assert exposition.negotiate(accept) is fmt


def test_a_text_only_daemon_never_imports_the_encoder() -> None:
    import subprocess
    import sys

    code = ("import sys\nfrom exporter import exposition\nr = exposition.Renderer()\n"
            "r.render([], exposition.Format.TEXT); r.render([], exposition.Format.OPENMETRICS)\n"
            "assert 'exporter.protobuf' not in sys.modules\n"
            "r.render([], exposition.Format.PROTOBUF)\nassert 'exporter.protobuf' in sys.modules\n"
            "assert not any(m.startswith('google') for m in sys.modules)\n")
    subprocess.run([sys.executable, "-c", code], check=True)
