"""Exemplars from StatsD tags: the trace id (and the span id beside it) is no label, it marks the
bucket a value fell in or the counter it added to, and OpenMetrics and protobuf carry it (text
0.0.4 does not)."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as parse_openmetrics,
)

from exporter.exposition import Format, Renderer
from exporter.statsd.config import StatsdConfig
from exporter.statsd.ingest import Ingest
from exporter.statsd.mapper import Mapper
from exporter.statsd.stats import StatsdStats
from exporter.store import Store
from tests.support.metrics_pb import decode

RULES = {"mappings": [
    {"match": "lat.classic", "name": "lat_classic_seconds", "histogram_options": {"buckets": [0.01, 0.1, 1]}},
    {"match": "orders.placed", "name": "orders_placed_total"},
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


TRACE, SPAN = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"


def _exemplars_by_sample(om: str) -> dict[tuple[str, str], tuple[dict[str, str], float]]:
    """(sample name, shop label) -> (exemplar labels, exemplar value), read by prometheus_client's
    strict OpenMetrics parser (it refuses an exemplar where the spec forbids one, or one past 128
    characters)."""
    return {(s.name, s.labels.get("shop", "")): (dict(s.exemplar.labels), s.exemplar.value)
            for f in parse_openmetrics(om) for s in f.samples if s.exemplar}


def test_a_counter_keeps_the_latest_exemplar_with_its_span_id_and_neither_is_a_label(
    promtool: Callable[[str], str],
) -> None:
    ingest, store = _ingest()
    sink = ingest.sink("udp://test")
    sink.handle_packet(b"orders.placed:1|c|#shop:a\norders.placed:1|c|#shop:b")  # cached, no exemplar
    sink.handle_packet(f"orders.placed:2|c|#shop:a,trace_id:old,span_id:{SPAN}".encode())
    sink.handle_packet(f"orders.placed:3|c|@0.5|#trace_id:{TRACE},shop:a,span_id:{SPAN}".encode())
    sink.handle_packet(b"orders.placed:1|c|#shop:a")
    (family,) = store.collect()
    assert family.spec.labels == ("shop",)
    assert family.samples.values == [1 + 2 + 6 + 1, 1]  # type: ignore[attr-defined]
    renderer = Renderer()
    text = renderer.render(store.collect(), Format.TEXT).decode()
    assert "trace_id" not in text and "span_id" not in text
    assert promtool(text) == ""
    om = renderer.render(store.collect(), Format.OPENMETRICS).decode()
    # The latest one, its value what that line added (3 sampled at 0.5); shop b has none.
    assert _exemplars_by_sample(om) == {("orders_placed_total", "a"): ({"trace_id": TRACE, "span_id": SPAN}, 6.0)}
    (decoded,) = decode(renderer.render(store.collect(), Format.PROTOBUF))
    counters = {m.label[0].value: m.counter for m in decoded.metric}
    assert counters["a"].value == 10 and not counters["b"].HasField("exemplar")
    exemplar = counters["a"].exemplar
    assert {p.name: p.value for p in exemplar.label} == {"trace_id": TRACE, "span_id": SPAN}
    assert exemplar.value == 6 and exemplar.timestamp.seconds > 1_600_000_000


def test_a_histogram_exemplar_carries_the_span_id_too() -> None:
    ingest, store = _ingest()
    ingest.sink("udp://test").handle_packet(f"lat.classic:50|ms|#span_id:{SPAN},trace_id:{TRACE}".encode())
    (family,) = store.collect()
    assert family.spec.labels == ()
    (value,) = family.samples.values  # type: ignore[attr-defined]
    assert [e and e.labels for e in value.exemplars] == [None, (("trace_id", TRACE), ("span_id", SPAN)), None, None]
    (decoded,) = decode(Renderer().render(store.collect(), Format.PROTOBUF))
    labels = {p.name: p.value for p in decoded.metric[0].histogram.bucket[1].exemplar.label}
    assert labels == {"trace_id": TRACE, "span_id": SPAN}


def test_past_128_characters_the_span_id_goes_first_then_the_exemplar_and_the_value_still_counts() -> None:
    ingest, store = _ingest()
    sink = ingest.sink("udp://test")
    long_trace = "t" * (128 - len("trace_id"))  # exactly at the limit alone
    sink.handle_packet(f"orders.placed:1|c|#shop:a,trace_id:{long_trace},span_id:{SPAN}".encode())
    sink.handle_packet(f"orders.placed:1|c|#shop:b,trace_id:{long_trace}x,span_id:{SPAN}".encode())
    sink.handle_packet(f"orders.placed:1|c|#shop:c,trace_id:{TRACE},span_id:{'s' * 90}".encode())
    (family,) = store.collect()
    assert family.spec.labels == ("shop",) and family.samples.values == [1, 1, 1]  # type: ignore[attr-defined]
    om = Renderer().render(store.collect(), Format.OPENMETRICS).decode()
    assert _exemplars_by_sample(om) == {("orders_placed_total", "a"): ({"trace_id": long_trace}, 1.0),
                                        ("orders_placed_total", "c"): ({"trace_id": TRACE}, 1.0)}


def test_a_lone_span_tag_is_no_label_and_no_exemplar() -> None:
    ingest, store = _ingest()
    ingest.sink("udp://test").handle_packet(f"orders.placed:1|c|#shop:a,span_id:{SPAN}".encode())
    (family,) = store.collect()
    assert family.spec.labels == ("shop",)
    assert "# {" not in Renderer().render(store.collect(), Format.OPENMETRICS).decode()


def test_tags_of_other_names_become_the_trace_id_and_span_id_exemplar_labels() -> None:
    ingest, store = _ingest({**RULES, "exemplar_tag": "dd.trace_id", "exemplar_span_tag": "dd.span_id"})
    ingest.sink("udp://test").handle_packet(
        f"orders.placed:1|c|#shop:a,dd.trace_id:{TRACE},dd.span_id:{SPAN},span_id:kept".encode())
    (family,) = store.collect()
    assert family.spec.labels == ("shop", "span_id")  # only the configured tags are taken
    om = Renderer().render(store.collect(), Format.OPENMETRICS).decode()
    assert [e for e, _ in _exemplars_by_sample(om).values()] == [{"trace_id": TRACE, "span_id": SPAN}]


def test_an_expired_counter_leaves_no_exemplar_behind() -> None:
    now = [0.0]
    store = Store(clock=lambda: now[0])
    config = {"mappings": [{"match": "orders.placed", "name": "orders_placed_total", "ttl": "10s"}]}
    ingest = Ingest(Mapper.from_config(StatsdConfig.model_validate(config)), store, StatsdStats(Store()))
    sink = ingest.sink("udp://test")
    sink.handle_packet(f"orders.placed:1|c|#trace_id:{TRACE}".encode())
    now[0] = 60.0
    assert ingest.expire() == 1
    assert not store._families["orders_placed_total"].exemplars  # nothing held for a series that is gone
    sink.handle_packet(b"orders.placed:1|c")  # the same series again, new
    assert "# {" not in Renderer().render(store.collect(), Format.OPENMETRICS).decode()


def test_a_family_on_the_checked_path_keeps_its_counters_exemplars() -> None:
    ingest, store = _ingest()
    sink = ingest.sink("udp://test")
    sink.handle_packet(f"orders.placed:2|c|#shop:a,trace_id:{TRACE},span_id:{SPAN}".encode())
    sink.handle_packet(b"orders.placed:1|c|#shop:b")
    (family,) = store.collect()
    store.series(family.spec, ("b",)).value = float("nan")  # type: ignore[union-attr]  # forces every sample checked
    renderer = Renderer()
    om = renderer.render(store.collect(), Format.OPENMETRICS).decode()
    assert 'orders_placed_total{shop="b"}' not in om  # a NaN counter is invalid in OpenMetrics: dropped
    assert _exemplars_by_sample(om) == {("orders_placed_total", "a"): ({"trace_id": TRACE, "span_id": SPAN}, 2.0)}
    (decoded,) = decode(renderer.render(store.collect(), Format.PROTOBUF))
    exemplars = {m.label[0].value: m.counter.exemplar.label[0].value for m in decoded.metric
                 if m.counter.HasField("exemplar")}
    assert exemplars == {"a": TRACE}


def test_lines_the_default_rule_maps_keep_their_exemplars() -> None:
    """The default rule's entries have their opcode raised (routes.py): the exemplar is kept before."""
    ingest, store = _ingest({})
    sink = ingest.sink("udp://test")
    sink.handle_packet(f"signups:2|c|#trace_id:{TRACE},span_id:{SPAN}\nsignups:1|c".encode())
    sink.handle_packet(f"render:3|ms|#trace_id:{TRACE},span_id:{SPAN}\nrender:4|ms".encode())
    om = Renderer().render(store.collect(), Format.OPENMETRICS).decode()
    found = {(s.name, s.labels.get("le", "")): (dict(s.exemplar.labels), s.exemplar.value)
             for f in parse_openmetrics(om) for s in f.samples if s.exemplar}
    ids = {"trace_id": TRACE, "span_id": SPAN}
    assert found == {("signups_total", ""): (ids, 2.0), ("render_bucket", "0.005"): (ids, 0.003)}
    assert ingest.stats.unmapped.value == 4
