"""Exemplars from a StatsD tag: the trace id is no label, it marks the bucket its value fell in,
and OpenMetrics and protobuf carry it (text 0.0.4 does not)."""

from __future__ import annotations

from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics

from exporter.exposition import Format, Renderer
from exporter.statsd.config import StatsdConfig
from exporter.statsd.ingest import Ingest
from exporter.statsd.mapper import Mapper
from exporter.statsd.stats import StatsdStats
from exporter.store import Store
from tests.support.metrics_pb import decode

RULES = {"mappings": [
    {"match": "lat.classic", "name": "lat_classic_seconds", "histogram_options": {"buckets": [0.01, 0.1, 1]}},
    {"match": "lat.both", "name": "lat_both_seconds",
     "histogram_options": {"buckets": [0.01, 0.1, 1], "histogram_type": "both"}},
]}


def _ingest(config: dict[str, object] | None = None) -> tuple[Ingest, Store]:
    store = Store()
    ingest = Ingest(Mapper.from_config(StatsdConfig.model_validate(config or RULES)), store, StatsdStats(Store()))
    return ingest, store


def test_the_trace_tag_is_an_exemplar_not_a_label_and_lines_with_it_are_not_cached() -> None:
    ingest, store = _ingest()
    sink = ingest.sink("udp://test")
    sink.handle_packet(b"lat.classic:50|ms|#route:/a")  # cached
    for i in range(100):
        sink.handle_packet(f"lat.classic:{40 + i % 3}|ms|#route:/a,trace_id:t{i:04d}".encode())
    sink.handle_packet(b"lat.classic:500|ms|#trace_id:slow1,route:/a")
    assert len(ingest.routes.cache) == 1  # a trace id makes every key unique: none is cached
    (family,) = store.collect()
    assert family.spec.labels == ("route",)
    (value,) = family.samples.values  # type: ignore[attr-defined]
    assert value.count == 102
    by_bucket = [e and (e.labels, e.value) for e in value.exemplars]
    assert by_bucket == [None, ((("trace_id", "t0099"),), 0.04), ((("trace_id", "slow1"),), 0.5), None]


def test_openmetrics_and_protobuf_carry_the_exemplars_text_does_not() -> None:
    ingest, store = _ingest()
    sink = ingest.sink("udp://test")
    sink.handle_packet(b"lat.classic:5|ms|#trace_id:aaa\nlat.both:5|ms|#trace_id:bbb\nlat.both:300|ms|#trace_id:ccc")
    renderer = Renderer()
    families = store.collect()
    assert b"trace_id" not in renderer.render(families, Format.TEXT)
    om = renderer.render(families, Format.OPENMETRICS).decode()
    found = {(s.name, s.labels["le"]): s.exemplar.labels["trace_id"]
             for f in parse_openmetrics(om) for s in f.samples if s.exemplar}
    assert found == {("lat_classic_seconds_bucket", "0.01"): "aaa", ("lat_both_seconds_bucket", "0.01"): "bbb",
                     ("lat_both_seconds_bucket", "1.0"): "ccc"}
    decoded = {f.name: f.metric[0].histogram for f in decode(renderer.render(families, Format.PROTOBUF))}
    classic = decoded["lat_classic_seconds"]
    assert [b.exemplar.label[0].value if b.HasField("exemplar") else None for b in classic.bucket] == \
        ["aaa", None, None]
    both = decoded["lat_both_seconds"]
    assert sorted(e.label[0].value for e in both.exemplars) == ["bbb", "ccc"]  # native: its own field
    assert all(e.timestamp.seconds > 1_600_000_000 for e in both.exemplars)
    assert [b.exemplar.label[0].value if b.HasField("exemplar") else None for b in both.bucket] == \
        ["bbb", None, "ccc"]


def test_an_empty_exemplar_tag_keeps_the_tag_a_label() -> None:
    ingest, store = _ingest({**RULES, "exemplar_tag": ""})
    ingest.sink("udp://test").handle_packet(b"lat.classic:5|ms|#trace_id:aaa")
    (family,) = store.collect()
    assert family.spec.labels == ("trace_id",)
