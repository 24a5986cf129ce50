"""The exposition against the reference: prometheus_client's own output and parsers, and promtool.

Every comparison parses both sides with a real parser and compares families and
samples exactly, so formatting choices that parse the same (`1` vs `1.0`) do not
matter and anything that parses differently does.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import generate_latest
from prometheus_client.openmetrics.exposition import (
    generate_latest as generate_latest_om,
)
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as parse_om,
)
from prometheus_client.parser import text_string_to_metric_families as parse_text
from prometheus_client.registry import CollectorRegistry

from exporter import families
from exporter.exposition import (
    Format,
    Renderer,
    escape_label,
    format_bound,
    format_value,
    negotiate,
    render,
)
from exporter.model import (
    Columns,
    Family,
    FamilySpec,
    HistogramValue,
    MetricType,
    Sample,
    SummaryValue,
)

C, G, H = MetricType.COUNTER, MetricType.GAUGE, MetricType.HISTOGRAM
LATENCY = families.LATENCY_BUCKETS


def histogram(observations: Iterable[float], bounds: tuple[float, ...] = LATENCY) -> HistogramValue:
    counts = [sum(1 for o in observations if o <= b) for b in bounds]
    observed = list(observations)
    return HistogramValue(counts, len(observed), sum(observed))


def mixed_families(n: int = 50) -> list[Family]:
    """A little of everything the daemon exports, with awkward label values mixed in."""
    odd = ['plain', 'with "quotes"', "back\\slash", "new\nline", "", "ünïcødé ✓", "{braces}", "a,b=c"]
    return [
        families.CACHE_REQUESTS.family(
            ((f"cache-{i}", odd[i % len(odd)], ("hit", "miss")[i % 2]), float(i * 3)) for i in range(n)
        ),
        families.POOL_CONNECTIONS.family(((f"pool-{i}", ("active", "idle")[i % 2]), i / 7) for i in range(n)),
        families.QUEUE_DEPTH.family(((odd[i % len(odd)] + str(i),), i) for i in range(n)),
        families.OPERATION_DURATION.family(
            ((f"op-{i}", odd[i % len(odd)]), histogram([(i * k % 97) / 30 for k in range(i % 6)])) for i in range(n)
        ),
        families.BATCH_SIZE.family(((f"q{i}",), histogram([i, i * 3, 7000], families.BATCH_SIZE_BUCKETS)) for i in range(5)),
        families.SCRAPES.one(12),
        families.BUILD_INFO.one(1, "0.1.0", "3.11.7"),
        families.CONFIG_LAST_RELOAD_SUCCESSFUL.one(1),
        families.PROCESS_CPU.family([(("user",), 1.25), (("system",), 0.5)]),
    ]


class _Reference:
    """The same families as prometheus_client metric families, for its own exposition."""

    def __init__(self, fams: list[Family], namespace: str = "apm") -> None:
        self.fams = fams
        self.namespace = namespace

    def collect(self) -> Iterator[Metric]:
        for family in self.fams:
            spec = family.spec
            name = spec.full_name(self.namespace)
            names = list(spec.labels)
            if spec.type is C:
                counter = CounterMetricFamily(name, spec.help, labels=names)
                for labels, value in family.samples:
                    counter.add_metric(list(labels), value)  # type: ignore[arg-type]
                yield counter
            elif spec.type is G:
                gauge = GaugeMetricFamily(name, spec.help, labels=names)
                for labels, value in family.samples:
                    gauge.add_metric(list(labels), value)  # type: ignore[arg-type]
                yield gauge
            else:
                histo = HistogramMetricFamily(name, spec.help, labels=names)
                for labels, value in family.samples:
                    assert isinstance(value, HistogramValue)
                    buckets = [(str(b), c) for b, c in zip(spec.buckets, value.counts)] + [("+Inf", value.count)]
                    histo.add_metric(list(labels), buckets, value.sum)
                yield histo


def _canon(parsed: Iterable[Metric]) -> list[tuple[Any, ...]]:
    """Families as comparable values: `le` as a number, NaN as a marker (NaN != NaN)."""
    out = []
    for metric in parsed:
        samples = []
        for s in metric.samples:
            labels: dict[str, Any] = dict(s.labels)
            if "le" in labels:
                labels["le"] = float(labels["le"])
            value = "NaN" if math.isnan(s.value) else s.value
            samples.append((s.name, tuple(sorted(labels.items())), value))
        # Sorted: prometheus_client writes _count before _sum, Go clients (and we) after.
        out.append((metric.name, metric.type, metric.documentation, metric.unit, sorted(samples, key=repr)))
    return out


def _reference_text(fams: list[Family]) -> str:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Reference(fams))  # type: ignore[arg-type]
    return generate_latest(registry).decode()


def _reference_om(fams: list[Family]) -> str:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Reference(fams))  # type: ignore[arg-type]
    return generate_latest_om(registry).decode()


def _slow_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Renderer, "_scalar_small", lambda *a: False)
    monkeypatch.setattr(Renderer, "_scalar_fast", lambda *a: False)
    monkeypatch.setattr(Renderer, "_histogram_fast", lambda *a: False)


# --- against prometheus_client -------------------------------------------------------------


def test_text_parses_to_what_prometheus_client_exposes_for_the_same_data() -> None:
    fams = mixed_families()
    ours = render(fams).decode()
    assert _canon(parse_text(ours)) == _canon(parse_text(_reference_text(fams)))


def test_openmetrics_parses_to_what_prometheus_client_exposes_for_the_same_data() -> None:
    # prometheus_client's OpenMetrics writer emits UNIT for no family: compare without units,
    # and check our UNIT lines on their own below.
    fams = mixed_families()
    ours = [(n, t, d, s) for n, t, d, _, s in _canon(parse_om(render(fams, Format.OPENMETRICS).decode()))]
    theirs = [(n, t, d, s) for n, t, d, _, s in _canon(parse_om(_reference_om(fams)))]
    assert ours == theirs


def test_values_and_labels_survive_the_round_trip_exactly() -> None:
    fams = [families.QUEUE_DEPTH.family([
        (("a\\b",), 0.1), (('say "hi"',), -2.5e-300), (("l1\nl2",), 1e300), (("",), 123456789012345678),
        (("nan",), math.nan), (("inf",), math.inf), (("-inf",), -math.inf), (("bool",), True),
    ])]
    parsed = {s.labels["queue"]: float(s.value) for m in parse_text(render(fams).decode()) for s in m.samples}
    assert math.isnan(parsed.pop("nan"))
    assert parsed == {"a\\b": 0.1, 'say "hi"': -2.5e-300, "l1\nl2": 1e300, "": 123456789012345678.0,
                      "inf": math.inf, "-inf": -math.inf, "bool": 1.0}


def test_a_large_render_is_clean_for_promtool(promtool: Callable[[str], str]) -> None:
    n = 20_000
    fams = [
        families.CACHE_REQUESTS.family(((f"c{i // 2}", "", ("hit", "miss")[i % 2]), float(i)) for i in range(n)),
        families.POOL_CONNECTIONS.family(((f"p{i // 2}", ("active", "idle")[i % 2]), i % 40) for i in range(n)),
        families.OPERATION_DURATION.family(
            ((f"GET /r/{i}", ("ok", "error")[i % 2]), histogram([i % 10 / 4, i % 7 / 3])) for i in range(n // 4)
        ),
        *(spec.one(1, *(f"v{k}" for k in range(len(spec.labels)))) if spec.type is not H
          else spec.one(histogram([0.2], spec.buckets), *(f"v{k}" for k in range(len(spec.labels))))
          for spec in families.all_specs()),
    ]
    text = render(fams).decode()
    assert text.count("\n") > 100_000
    assert promtool(text) == ""
    assert sum(len(m.samples) for m in parse_text(text)) == text.count("\n") - 2 * len(
        [line for line in text.splitlines() if line.startswith("# TYPE")])


# --- stability and the two paths -----------------------------------------------------------


def test_two_renders_are_byte_identical_and_columns_render_like_lists() -> None:
    fams = mixed_families()
    renderer = Renderer()
    first = renderer.render(fams)
    assert renderer.render(fams) == first  # warm memo
    assert Renderer().render(fams) == first  # cold memo, same bytes
    columnar = [Family(f.spec, Columns([s.labels for s in f.samples], [s.value for s in f.samples])) for f in fams]
    assert renderer.render(columnar) == first
    assert renderer.render(fams, Format.OPENMETRICS) == renderer.render(columnar, Format.OPENMETRICS)


@pytest.mark.parametrize("fmt", list(Format))
def test_the_fast_paths_write_what_the_checked_path_writes(fmt: Format, monkeypatch: pytest.MonkeyPatch) -> None:
    fams = mixed_families()
    fast = render(fams, fmt)
    _slow_only(monkeypatch)
    assert render(fams, fmt) == fast


def test_the_memo_follows_the_latest_render_and_new_values_are_used() -> None:
    renderer = Renderer()
    renderer.render([families.QUEUE_DEPTH.family([(("a",), 1.0), (("b",), 2.0)])])
    assert renderer.render([families.QUEUE_DEPTH.family([(("b",), 5.0), (("c",), 6.0)])]) == (
        b'# HELP apm_queue_depth Items waiting in the queue.\n# TYPE apm_queue_depth gauge\n'
        b'apm_queue_depth{queue="b"} 5.0\napm_queue_depth{queue="c"} 6.0\n')
    assert [set(m) for m in renderer._memo.values()] == [{("b",), ("c",)}]
    renderer.render([families.SCRAPES.one(1)])
    assert all(key[0] == "apm_exporter_scrapes_total" for key in renderer._memo)


# --- text and OpenMetrics specifics ----------------------------------------------------------


def test_openmetrics_counter_type_unit_and_eof() -> None:
    fams = [families.PROCESS_CPU.family([(("user",), 2.0)]), families.OPERATION_DURATION.one(histogram([0.3]), "x", "ok"),
            families.PROCESS_RSS.one(1e6), families.QUEUE_DEPTH.one(3, "q")]
    text = render(fams, Format.OPENMETRICS).decode()
    assert "# TYPE apm_exporter_process_cpu_seconds counter\n# UNIT apm_exporter_process_cpu_seconds seconds\n" in text
    assert 'apm_exporter_process_cpu_seconds_total{mode="user"} 2.0\n' in text
    assert "# UNIT apm_operation_duration_seconds seconds\n" in text
    assert "# UNIT apm_exporter_process_resident_memory_bytes bytes\n" in text
    assert text.count("# UNIT") == 3  # queue_depth has no unit
    assert text.endswith("# EOF\n")
    parsed = {m.name: (m.type, m.unit) for m in parse_om(text)}
    assert parsed == {
        "apm_exporter_process_cpu_seconds": ("counter", "seconds"),
        "apm_operation_duration_seconds": ("histogram", "seconds"),
        "apm_exporter_process_resident_memory_bytes": ("gauge", "bytes"),
        "apm_queue_depth": ("gauge", ""),
    }
    assert render([], Format.OPENMETRICS) == b"# EOF\n"
    assert render([]) == b""


def test_unit_only_when_the_name_ends_with_it_and_counters_without_total_are_unknown() -> None:
    odd_unit = FamilySpec("weird_size", G, "h", unit="bytes")
    bare_counter = FamilySpec("events", C, "Events without the suffix.")
    text = render([odd_unit.one(1), bare_counter.one(4)], Format.OPENMETRICS).decode()
    assert "# UNIT" not in text
    assert "# TYPE apm_events unknown\napm_events 4\n" in text
    assert [(m.name, m.type) for m in parse_om(text)] == [("apm_weird_size", "gauge"), ("apm_events", "unknown")]
    assert "# TYPE apm_events counter\napm_events 4\n" in render([bare_counter.one(4)]).decode()


def test_openmetrics_drops_what_it_forbids_and_text_keeps_it() -> None:
    fams = [families.CACHE_REQUESTS.family([(("c", "", "hit"), math.nan), (("c", "", "miss"), -1.0),
                                            (("c", "", "ok"), 2.0)])]
    om = render(fams, Format.OPENMETRICS).decode()
    assert [s.labels["result"] for m in parse_om(om) for s in m.samples] == ["ok"]
    text = render(fams).decode()
    assert [s.labels["result"] for m in parse_text(text) for s in m.samples] == ["hit", "miss", "ok"]


def test_help_escaping_per_format() -> None:
    spec = FamilySpec("odd_help", G, 'A "quoted" back\\slash\nand a newline.')
    assert b'# HELP apm_odd_help A "quoted" back\\\\slash\\nand a newline.\n' in render([spec.one(1)])
    om = render([spec.one(1)], Format.OPENMETRICS)
    assert b'# HELP apm_odd_help A \\"quoted\\" back\\\\slash\\nand a newline.\n' in om
    assert next(iter(parse_om(om.decode()))).documentation == spec.help
    assert next(iter(parse_text(render([spec.one(1)]).decode()))).documentation == spec.help


@pytest.mark.parametrize(("bound", "text", "om"), [
    (1.0, "1", "1.0"), (0.005, "0.005", "0.005"), (0.0025, "0.0025", "0.0025"), (10.0, "10", "10.0"),
    (0.0, "0", "0.0"), (1e-05, "1e-05", "1e-05"), (0.0001, "0.0001", "0.0001"), (100000.0, "100000", "100000.0"),
    (1e6, "1e+06", "1e+06"), (1234567.0, "1.234567e+06", "1.234567e+06"), (123456.7, "123456.7", "123456.7"),
    (1e-10, "1e-10", "1e-10"), (1e10, "1e+10", "1e+10"), (0.95, "0.95", "0.95"), (-2.5, "-2.5", "-2.5"),
    (math.inf, "+Inf", "+Inf"), (5000, "5000", "5000.0"),
])
def test_bounds_are_written_like_go(bound: float, text: str, om: str) -> None:
    assert format_bound(bound) == text
    assert format_bound(bound, Format.OPENMETRICS) == om


def test_le_labels_in_the_output() -> None:
    text = render([families.OPERATION_DURATION.one(histogram([0.003, 7.0]), "op", "ok")]).decode()
    assert [line.split('le="')[1].split('"')[0] for line in text.splitlines() if "_bucket" in line] == [
        "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf"]
    assert 'apm_operation_duration_seconds_sum{operation="op",outcome="ok"} 7.003\n' in text
    assert 'apm_operation_duration_seconds_count{operation="op",outcome="ok"} 2\n' in text


@pytest.mark.parametrize(("value", "text"), [
    (1.0, "1.0"), (3, "3"), (0.1, "0.1"), (math.nan, "NaN"), (math.inf, "+Inf"), (-math.inf, "-Inf"),
    (True, "1.0"), (10**400, "+Inf"), (-(10**400), "-Inf"), (1e300, "1e+300"),
])
def test_format_value(value: Any, text: str) -> None:
    assert format_value(value) == text


def test_escape_label() -> None:
    assert escape_label('a\\b"c\nd') == 'a\\\\b\\"c\\nd'
    assert escape_label("plain") == "plain"


PROMETHEUS_ACCEPT = ("application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
                     "text/plain;version=0.0.4;q=0.5,*/*;q=0.1")


@pytest.mark.parametrize(("accept", "fmt"), [
    (PROMETHEUS_ACCEPT, Format.OPENMETRICS),
    ("application/openmetrics-text; version=0.0.1,text/plain;version=0.0.4;q=0.5,*/*;q=0.1", Format.OPENMETRICS),
    ("text/plain;version=0.0.4;q=1,*/*;q=0.1", Format.TEXT),
    ("*/*", Format.TEXT),
    ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", Format.TEXT),
    (None, Format.TEXT),
    ("", Format.TEXT),
    ("application/openmetrics-text;q=0", Format.TEXT),
    ("application/openmetrics-text;q=0.2,text/plain;q=0.9", Format.TEXT),
    ("application/openmetrics-text;q=bogus", Format.TEXT),
    ("Application/OpenMetrics-Text", Format.OPENMETRICS),
])
def test_negotiate(accept: str | None, fmt: Format) -> None:
    assert negotiate(accept) is fmt


# --- merging, clashes, bad input --------------------------------------------------------------


def test_same_named_families_merge_first_spec_wins_and_duplicates_go() -> None:
    from_statsd = families.CACHE_REQUESTS.family([(("redis", "", "hit"), 5.0), (("redis", "", "miss"), 1.0)])
    other_help = families.CACHE_REQUESTS._replace(help="Another source's help.")
    from_probe = other_help.family([(("redis", "", "hit"), 99.0), (("memcached", "", "hit"), 7.0)])
    conflicting = FamilySpec("cache_requests_total", G, "A gauge by mistake.", ("cache",)).family([(("x",), 1.0)])
    text = render([from_statsd, conflicting, from_probe]).decode()
    assert text.count("# HELP") == 1 and "Cache lookups by result" in text
    parsed = [(s.labels["cache"], s.labels["result"], s.value) for m in parse_text(text) for s in m.samples]
    assert parsed == [("redis", "hit", 5.0), ("redis", "miss", 1.0), ("memcached", "hit", 7.0)]


def test_merging_families_with_other_label_names_keys_series_by_label_set() -> None:
    a = FamilySpec("jobs", G, "Jobs.", ("queue", "host")).family([(("q1", ""), 1.0), (("q2", "h"), 2.0)])
    b = FamilySpec("jobs", G, "Jobs.", ("host", "queue")).family([(("", "q1"), 10.0), (("h", "q3"), 3.0)])
    text = render([a, b]).decode()
    assert [(dict(s.labels), s.value) for m in parse_text(text) for s in m.samples] == [
        ({"queue": "q1", "host": ""}, 1.0), ({"queue": "q2", "host": "h"}, 2.0), ({"host": "h", "queue": "q3"}, 3.0)]


def test_duplicates_within_one_family_and_clashing_names_are_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    dup = families.QUEUE_DEPTH.family([(("a",), 1.0), (("b",), 2.0), (("a",), 3.0)])
    clash = FamilySpec("operation_duration_seconds_count", G, "Clashes with the histogram.").one(1)
    text = render([families.OPERATION_DURATION.one(histogram([0.1]), "x", "ok"), clash, dup]).decode()
    assert "apm_operation_duration_seconds_count 1" not in text
    assert [(s.labels.get("queue"), s.value) for m in parse_text(text) if m.name == "apm_queue_depth"
            for s in m.samples] == [("a", 1.0), ("b", 2.0)]


def test_bad_samples_are_dropped_and_the_rest_rendered() -> None:
    bad = families.QUEUE_DEPTH.family([
        (("ok",), 1.0), (("too", "many"), 2.0), ((3,), 3.0), (("none",), None), (("str",), "12"),  # type: ignore[list-item]
        (("hist",), HistogramValue([1], 1, 1.0)), (("also-ok",), 2),
    ])
    short = families.OPERATION_DURATION.family([(("op", "ok"), HistogramValue([1, 2], 2, 0.5)),
                                                 (("op", "fine"), histogram([0.2]))])
    text = render([bad, short]).decode()
    samples = [(s.name, s.labels, s.value) for m in parse_text(text) for s in m.samples]
    assert [(n, lab.get("queue")) for n, lab, _ in samples if n == "apm_queue_depth"] == [
        ("apm_queue_depth", "ok"), ("apm_queue_depth", "also-ok")]
    assert {lab.get("outcome") for n, lab, _ in samples if n.startswith("apm_operation")} == {"fine"}


def test_each_renderer_says_a_dropped_sample_once(caplog: pytest.LogCaptureFixture) -> None:
    bad = [families.QUEUE_DEPTH.family([(("x",), None)])]  # type: ignore[list-item]
    renderer = Renderer()
    with caplog.at_level("WARNING", logger="exporter.exposition"):
        renderer.render(bad)
        renderer.render(bad)
        assert len(caplog.records) == 1 and "apm_queue_depth" in caplog.records[0].getMessage()
        Renderer().render(bad)  # another renderer (another server) has said nothing yet
        assert len(caplog.records) == 2


def test_a_family_with_nothing_renderable_writes_no_header() -> None:
    assert render([families.QUEUE_DEPTH.family([(("x",), None)]), families.SCRAPES.family([])]) == b""  # type: ignore[list-item]
    nan_counter = families.SCRAPES.one(math.nan)
    assert render([nan_counter], Format.OPENMETRICS) == b"# EOF\n"


def test_invalid_specs_are_dropped() -> None:
    specs = [
        FamilySpec("bad-name", G, "h"),
        FamilySpec("ok_name", G, "h", ("bad-label",)),
        FamilySpec("h1", H, "h", ("le",), (1.0,)),
        FamilySpec("h2", H, "h", (), (2.0, 1.0)),
        FamilySpec("h3", H, "h", (), (1.0, math.inf)),
    ]
    fams = [s.family([((), 1.0)]) if s.type is G and not s.labels else s.family([(("x",), 1.0)])
            if s.type is G else s.family([((), HistogramValue([1, 1][: len(s.buckets)], 1, 1.0))]) for s in specs]
    assert render(fams) == b""


def test_summaries() -> None:
    spec = FamilySpec("rpc_seconds", MetricType.SUMMARY, "RPC latency.", ("rpc",), (0.5, 0.99))
    fam = spec.family([(("get",), SummaryValue([(0.5, 0.2), (0.99, 1.5)], 10, 4.0))])
    for fmt, parse in ((Format.TEXT, parse_text), (Format.OPENMETRICS, parse_om)):
        samples = [(s.name, s.labels.get("quantile"), s.value) for m in parse(render([fam], fmt).decode())
                   for s in m.samples]
        assert samples == [("apm_rpc_seconds", "0.5", 0.2), ("apm_rpc_seconds", "0.99", 1.5),
                           ("apm_rpc_seconds_sum", None, 4.0), ("apm_rpc_seconds_count", None, 10.0)]


def test_a_lone_surrogate_does_not_fail_the_scrape() -> None:
    text = render([families.QUEUE_DEPTH.one(1, "bad\udcff")])
    assert [s.labels["queue"] for m in parse_text(text.decode()) for s in m.samples] == ["bad?"]


def test_namespace_and_unnamespaced_specs() -> None:
    text = render([families.QUEUE_DEPTH.one(1, "q"), FamilySpec("up", G, "Up.", namespaced=False).one(1)],
                  namespace="shop").decode()
    assert [m.name for m in parse_text(text)] == ["shop_queue_depth", "up"]


# --- properties ------------------------------------------------------------------------------

label_values = st.text(st.characters(exclude_categories=["Cs"]), max_size=20)
numbers = st.one_of(st.floats(), st.integers(min_value=-(2**62), max_value=2**62))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.dictionaries(st.tuples(label_values, label_values), numbers, min_size=1, max_size=20))
def test_any_label_values_and_numbers_round_trip(monkeypatch: pytest.MonkeyPatch,
                                                 series: dict[tuple[str, str], float]) -> None:
    fams = [families.POOL_CONNECTIONS.family(series.items())]
    text = render(fams)
    parsed = {(s.labels["pool"], s.labels["state"]): s.value for m in parse_text(text.decode()) for s in m.samples}
    assert parsed.keys() == series.keys()
    for key, value in series.items():
        assert (math.isnan(parsed[key]) and math.isnan(value)) or float(parsed[key]) == float(value)
    om = render(fams, Format.OPENMETRICS).decode()
    assert len([s for m in parse_om(om) for s in m.samples]) == len(series)
    with monkeypatch.context() as m:
        _slow_only(m)
        assert render(fams) == text


# What the small-family loop must treat as the C-level passes do: ints as ints, -0.0, ints past
# float range, bools, NaN and infinities, negative counters, info values other than 1.
edge_values = st.one_of(numbers, st.sampled_from([-0.0, 0, 1, True, 2**1024, -(2**1030), math.inf, math.nan]))
BUILD = FamilySpec("build_info", MetricType.INFO, "Build.", ("version",))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.sampled_from([families.QUEUE_DEPTH, families.CACHE_EVICTIONS, BUILD]),
                          st.lists(st.tuples(st.sampled_from(["a", "b", 'q"\\', ""]), edge_values), max_size=6)),
                max_size=5), st.sampled_from([Format.TEXT, Format.OPENMETRICS]), st.booleans())
def test_the_small_family_loop_writes_what_the_column_passes_write(
        monkeypatch: pytest.MonkeyPatch, parts: list[tuple[FamilySpec, list[tuple[str, Any]]]], fmt: Format,
        columns: bool) -> None:
    fams = []
    for spec, rows in parts:
        labels = [(label,) + ("x",) * (len(spec.labels) - 1) for label, _ in rows]
        values = [v for _, v in rows]
        fams.append(Family(spec, Columns(labels, values) if columns else [Sample(*p) for p in zip(labels, values)]))
    renderer = Renderer()
    small = renderer.render(fams, fmt)
    assert renderer.render(fams, fmt) == small  # with the memo warm
    with monkeypatch.context() as m:
        m.setattr(Renderer, "_scalar_small", lambda *a: False)
        assert Renderer().render(fams, fmt) == small


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(label_values, st.lists(st.floats(0, 20, allow_nan=False), max_size=8)),
                min_size=1, max_size=10, unique_by=lambda t: t[0]))
def test_histograms_from_any_observations_are_valid_in_both_formats(rows: list[tuple[str, list[float]]]) -> None:
    fams = [families.POOL_WAIT_DURATION.family(((label,), histogram(obs)) for label, obs in rows)]
    for fmt, parse in ((Format.TEXT, parse_text), (Format.OPENMETRICS, parse_om)):
        parsed = [m for m in parse(render(fams, fmt).decode())]
        counts = {s.labels["pool"]: s.value for m in parsed for s in m.samples if s.name.endswith("_count")}
        assert counts == {label: len(obs) for label, obs in rows}


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([families.QUEUE_DEPTH, families.CACHE_EVICTIONS, families.POOL_PENDING]),
                          st.lists(st.tuples(label_values, numbers), max_size=5)), max_size=6))
def test_any_mix_of_families_parses_in_both_formats(parts: list[tuple[FamilySpec, list[tuple[str, float]]]]) -> None:
    fams = [spec.family(((label,) + ("",) * (len(spec.labels) - 1), v) for label, v in rows) for spec, rows in parts]
    list(parse_text(render(fams).decode()))
    om = render(fams, Format.OPENMETRICS).decode()
    assert om.endswith("# EOF\n")
    list(parse_om(om))


def test_sample_namedtuples_and_plain_pairs_render_alike() -> None:
    plain = Family(families.QUEUE_DEPTH, [(("a",), 1.0)])  # type: ignore[list-item]
    assert render([plain]) == render([Family(families.QUEUE_DEPTH, [Sample(("a",), 1.0)])])


def test_info_families() -> None:
    spec = FamilySpec("exporter_info", MetricType.INFO, "Which build runs.", ("version",))
    fam = spec.family([(("1.2.3",), 1)])
    text = render([fam]).decode()
    assert "# TYPE apm_exporter_info gauge\n" in text
    om = render([fam], Format.OPENMETRICS).decode()
    assert "# TYPE apm_exporter info\napm_exporter_info{version=\"1.2.3\"} 1\n" in om
    assert [(m.name, m.type, [s.labels for s in m.samples]) for m in parse_om(om)] == [
        ("apm_exporter", "info", [{"version": "1.2.3"}])]
    # An info value other than 1 cannot be OpenMetrics; text keeps it as the gauge it is there.
    assert render([spec.one(2, "x")], Format.OPENMETRICS) == b"# EOF\n"
    assert b'apm_exporter_info{version="x"} 2\n' in render([spec.one(2, "x")])


def test_a_renderer_follows_a_name_whose_spec_changes_between_renders() -> None:
    """The renderer keeps each name's spec, shape and reserved names between renders: a new
    spec under the same name (a reload's mapping rule) must render as a fresh renderer does."""
    renderer = Renderer()
    specs = [FamilySpec("jobs", MetricType.GAUGE, "Jobs queued.", ("queue",)),
             FamilySpec("jobs", MetricType.COUNTER, "Jobs done.", ("queue",)),
             FamilySpec("jobs", MetricType.GAUGE, "Jobs queued.", ("queue",))]  # equal to the first, not it
    clash = FamilySpec("jobs_total", MetricType.GAUGE, "Clashes with the counter only.")
    for spec in specs:
        for fmt in (Format.TEXT, Format.OPENMETRICS, Format.TEXT):
            rendered = [spec.family([(("q",), 2.0)]), clash.one(1.0)]
            assert renderer.render(rendered, fmt) == Renderer().render(rendered, fmt)
