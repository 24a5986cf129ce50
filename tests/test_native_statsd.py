"""Native histograms in the push path: statsd_exporter's keys, rule over defaults, bad values with their
line, the store's series and the ingest loop's inlined observation."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter import config, families
from exporter.config import ConfigError
from exporter.model import MetricType, NativeOptions
from exporter.native import DEFAULT_ZERO_THRESHOLD, NativeHistogram
from exporter.statsd.config import StatsdConfig
from exporter.statsd.ingest import Ingest
from exporter.statsd.mapper import Mapper
from exporter.statsd.parser import parse_line
from exporter.statsd.stats import StatsdStats
from exporter.store import Histogram, Store


def _mapper(text: str) -> Mapper:
    return Mapper.from_config(config.parse(text, "c.yaml", {}).statsd)


def _spec(mapper: Mapper, line: str):  # type: ignore[no-untyped-def]
    route = mapper.route(parse_line(line.encode())[0])
    return route.spec  # type: ignore[union-attr]


RULE = """
statsd:
  defaults:
    histogram_options: {histogram_type: both, native_histogram_bucket_factor: 1.1}
  mappings:
    - match: "myapp.*.latency"
      name: "myapp_latency_seconds"
      histogram_options: {native_histogram_bucket_factor: 1.01, native_histogram_max_buckets: 50, histogram_type: native}
    - match: "legacy.*"
      name: "legacy_seconds"
      histogram_options: {buckets: [0.1, 1], histogram_type: classic}
    - match: "carried.*"
      name: "carried_seconds"
"""


def test_rule_keys_override_the_defaults_one_by_one() -> None:
    mapper = _mapper(RULE)
    native = _spec(mapper, "myapp.api.latency:5|ms")
    assert native.native == NativeOptions(7, DEFAULT_ZERO_THRESHOLD, 50, classic=False)
    assert native.buckets == ()  # native only: text shows _count, _sum and +Inf
    assert _spec(mapper, "legacy.x:5|ms").native is None
    both = _spec(mapper, "carried.x:5|ms")
    assert both.native == NativeOptions(3, DEFAULT_ZERO_THRESHOLD, 160, classic=True)
    assert both.buckets == families.LATENCY_BUCKETS
    # Conventions and the default rule take the defaults too; counters are untouched.
    assert _spec(mapper, "apm.operation.duration:5|ms|#operation:checkout").native == both.native
    assert _spec(mapper, "other.thing:5|ms").native == both.native
    assert _spec(mapper, "other.count:5|c").type is MetricType.COUNTER


def test_a_native_key_without_a_type_means_both_as_statsd_exporter() -> None:
    mapper = _mapper("statsd:\n  defaults:\n    histogram_options: {native_histogram_max_buckets: 20}\n")
    spec = _spec(mapper, "x.y:1|h")
    assert spec.native is not None and spec.native.classic and spec.native.max_buckets == 20
    assert _spec(_mapper(""), "x.y:1|h").native is None  # the default stays classic


def test_the_store_makes_native_series_for_native_specs() -> None:
    mapper = _mapper(RULE)
    store = Store()
    native = store.series(_spec(mapper, "myapp.api.latency:5|ms"), ("api",))
    classic = store.series(_spec(mapper, "legacy.x:5|ms"), ())
    assert isinstance(native, NativeHistogram) and native.bounds is None
    assert isinstance(classic, Histogram)
    both = store.series(_spec(mapper, "carried.x:5|ms"), ())
    assert isinstance(both, NativeHistogram) and both.bounds == families.LATENCY_BUCKETS


@pytest.mark.parametrize(("line", "value", "message"), [
    (4, "native_histogram_bucket_factor: 1", "greater than 1"),
    (4, "native_histogram_bucket_factor: 0.5", "greater than 1"),
    (4, "native_histogram_max_buckets: 0", "greater than or equal to 1"),
    (4, "native_histogram_zero_threshold: -1e-9", "greater than or equal to 0"),
    (4, "histogram_type: sparse", "'classic', 'native' or 'both'"),
])
def test_bad_values_are_config_errors_with_their_line(line: int, value: str, message: str) -> None:
    text = f"statsd:\n  defaults:\n    histogram_options:\n      {value}\n"
    with pytest.raises(ConfigError) as info:
        config.parse(text, "c.yaml", {})
    assert any(p.startswith(f"c.yaml:{line}: statsd.defaults.histogram_options.") and message in p
               for p in info.value.problems), info.value.problems
    rule = f"statsd:\n  mappings:\n    - match: a.*\n      name: a\n      histogram_options: {{{value}}}\n"
    with pytest.raises(ConfigError) as info:
        config.parse(rule, "c.yaml", {})
    assert any(p.startswith("c.yaml:5: statsd.mappings[0].histogram_options.") for p in info.value.problems), \
        info.value.problems


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["ms", "h", "d"]),
                          st.floats(-1e6, 1e6, allow_nan=False) | st.sampled_from([0.0, 1e-12, -0.0]),
                          st.sampled_from(["", "|@0.5", "|@0.1"])), max_size=80),
       st.sampled_from(["native", "both"]))
def test_the_ingest_loop_observes_as_the_series_does(
    lines: list[tuple[str, float, str]], kind: str
) -> None:
    """Cached lines go through the loop's inlined observation; the result must be observe()'s."""
    statsd = StatsdConfig.model_validate({"mappings": [{
        "match": "x", "name": "x_seconds", "histogram_options": {
            "histogram_type": kind, "native_histogram_max_buckets": 15, "native_histogram_zero_threshold": 1e-9}}]})
    store = Store()
    ingest = Ingest(Mapper.from_config(statsd), store, StatsdStats(Store()))
    sink = ingest.sink("udp://test")
    spec = Mapper.from_config(statsd).route(parse_line(b"x:1|h")[0]).spec  # type: ignore[union-attr]
    want = store.series(spec._replace(name="x_expected"), ())
    assert isinstance(want, NativeHistogram)
    for type_, value, rate in lines * 2:  # the second round runs on cached routes
        sink.handle_packet(f"x:{value!r}|{type_}{rate}".encode())
        want.observe(value * (0.001 if type_ == "ms" else 1.0), 1.0 / {"": 1.0, "|@0.5": 0.5, "|@0.1": 0.1}[rate])
    got = store.series(spec, ())
    assert isinstance(got, NativeHistogram)
    assert (got.schema, got.positive, got.negative, got.zero_count, got.classic) == (
        want.schema, want.positive, want.negative, want.zero_count, want.classic)
    assert got.sum == pytest.approx(want.sum, rel=1e-9, abs=1e-6)


def test_a_classic_daemon_never_imports_the_native_module() -> None:
    """Idle RSS: the default config builds, maps, stores and renders without loading exporter.native."""
    import subprocess
    import sys

    code = ("import sys\nimport exporter.daemon, exporter.cli\nfrom exporter import config\n"
            "from exporter.statsd.mapper import Mapper\nfrom exporter.statsd.parser import parse_line\n"
            "from exporter.store import Store\nfrom exporter.exposition import Renderer, Format\n"
            "m = Mapper.from_config(config.parse('', 'c.yaml', {}).statsd)\ns = Store()\n"
            "for line in (b'apm.operation:5|ms|#operation:a', b'x.y:1|h'):\n"
            "    r = m.route(parse_line(line)[0]); s.series(r.spec, r.labels).observe(0.1)\n"
            "Renderer().render(s.collect(), Format.TEXT)\n"
            "assert 'exporter.native' not in sys.modules and 'exporter.protobuf' not in sys.modules\n")
    subprocess.run([sys.executable, "-c", code], check=True)
