"""The ingest path: packets in, exact series values out, every bad line counted, cache == no cache."""

from __future__ import annotations

import math

import pytest
import yaml
from hypothesis import example, given, settings
from hypothesis import strategies as st

from exporter import families
from exporter.model import Family, FamilySpec, HistogramValue, MetricType
from exporter.statsd.config import StatsdConfig
from exporter.statsd.ingest import Ingest
from exporter.statsd.mapper import Mapper
from exporter.statsd.stats import StatsdStats
from exporter.store import Limits, Store


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


RULES = yaml.safe_load("""
mappings:
  - match: "myapp.*.requests"
    name: "myapp_requests"
    labels: {service: "$1"}
  - match: "noisy.*"
    action: drop
  - match: "short.*"
    name: "short_$1"
    ttl: 10s
  - match: "q.*"
    match_metric_type: observer
    observer_type: summary
    quantiles: [0.5]
    name: "q_$1"
""")


class Harness:
    def __init__(self, config: dict[str, object] | None = None, limits: Limits | None = None,
                 max_cache_entries: int | None = None) -> None:
        self.clock = Clock()
        self.store = Store(limits or Limits(), clock=self.clock)
        self.stats = Store()
        self.ingest = Ingest(Mapper.from_config(StatsdConfig.model_validate(config or RULES)), self.store,
                             StatsdStats(self.stats), max_cache_entries)
        self.sink = self.ingest.sink("udp://test")

    def send(self, *lines: bytes | str) -> None:
        self.sink.handle_packet(b"\n".join(x.encode() if isinstance(x, str) else x for x in lines))

    def values(self) -> dict[tuple[str, tuple[str, ...]], object]:
        return _values(self.store.collect())

    def stat(self, name: str, *labels: str) -> float:
        return _values(self.stats.collect()).get((name, labels), 0.0)  # type: ignore[return-value]


def _values(fams: list[Family]) -> dict[tuple[str, tuple[str, ...]], object]:
    return {(f.spec.name, s.labels): s.value for f in fams for s in f.samples}


def test_counters_gauges_and_timers_are_exact() -> None:
    h = Harness()
    for _ in range(3):  # the second and third rounds run on cached routes
        h.send("apm.operation:12.5|ms|#operation:checkout,outcome:ok",
               "apm.operation:250|ms|#operation:checkout,outcome:ok",
               "apm.cache.hit:1|c|#cache:users",
               "apm.cache.hit:2|c|@0.5|#cache:users",
               "apm.pool.active:+2|g|#pool:db",
               "apm.pool.active:-1|g|#pool:db",
               "apm.queue.depth:7|g|#queue:q",
               "myapp.api.requests:1|c")
    v = h.values()
    hist = v[("operation_duration_seconds", ("checkout", "ok"))]
    assert isinstance(hist, HistogramValue)
    assert hist.count == 6 and math.isclose(hist.sum, 3 * (0.0125 + 0.25))
    bounds = families.LATENCY_BUCKETS
    assert hist.counts[bounds.index(0.025)] == 3 and hist.counts[bounds.index(0.25)] == 6
    assert v[("cache_requests_total", ("users", "", "hit"))] == 3 * (1 + 4)
    assert v[("pool_connections", ("db", "active"))] == 3
    assert v[("queue_depth", ("q",))] == 7
    assert v[("myapp_requests_total", ("api",))] == 3
    assert h.stat("exporter_statsd_lines_total", "udp://test") == 24
    assert h.stat("exporter_statsd_samples_total", "udp://test") == 24


def test_multi_value_sets_summaries_and_rates() -> None:
    h = Harness()
    for _ in range(2):
        h.send("t:1:2:3|ms", "t:4|ms|@0.5", "u:alice|s", "u:bob|s", "u:7|s", "q.wait:5|h", "q.wait:1|h")
    v = h.values()
    t = v[("t", ())]
    assert isinstance(t, HistogramValue) and t.count == 2 * (3 + 2) and math.isclose(t.sum, 2 * (0.006 + 0.008))
    assert v[("u", ())] == 3
    q = v[("q_wait", ())]
    assert q.count == 4 and q.sum == 12  # type: ignore[union-attr]
    assert h.stat("exporter_statsd_samples_total", "udp://test") == 2 * (3 + 1 + 3 + 2)
    # t (two lines) and u (three): what the default rule took, one per line however many values.
    assert h.stat("exporter_statsd_lines_unmapped_total") == 2 * (2 + 3)


def test_unmapped_counts_lines_the_default_rule_took_whatever_became_of_them() -> None:
    """The family's help: lines that matched neither a convention nor a rule. A multi-value
    line is one line; a line the store refuses or `unmatched: drop` drops still matched
    nothing; a bad line is a parse error, not a line the default rule took."""
    h = Harness()
    for round in (1, 2):  # the second round runs on cached routes
        h.send("plain:1|c", "plain:1|c", "multi:1:2:3|ms", "conflict:1|g", "conflict:1|ms", "set:a|s")
        assert h.stat("exporter_statsd_lines_unmapped_total") == 6 * round
        assert h.stat("exporter_statsd_samples_dropped_total", "type_conflict") == round
        h.send("plain:-1|c", "multi:1:x|ms", "myapp.api.requests:1|c", "apm.cache.hit:1|c|#cache:c", "noisy.x:1|c")
        assert h.stat("exporter_statsd_lines_unmapped_total") == 6 * round
    dropping = Harness({"defaults": {"unmatched": "drop"}})
    for _ in range(2):
        dropping.send("whatever:1|c", "whatever:1:2|ms", "apm.cache.hit:1|c|#cache:c")
    assert dropping.stat("exporter_statsd_lines_unmapped_total") == 4
    assert dropping.stat("exporter_statsd_lines_ignored_total", "mapping_drop") == 4


@pytest.mark.timeout(60)  # without the fix this line loops 10**12 times: a hang, not a slow pass
def test_tiny_sample_rate_on_a_summary_does_not_stall_ingest() -> None:
    """A summary keeps a window of the last 1024 values: `@1e-12` weighs 10**12 but stores at most that many."""
    h = Harness()
    h.send("q.wait:5|h|@0.000000000001", "q.wait:1|h")
    q = h.values()[("q_wait", ())]
    assert q.count == 10**12 + 1 and q.sum == 5 * 10**12 + 1  # type: ignore[union-attr]
    assert q.quantiles == [(0.5, 5.0)]  # type: ignore[union-attr]


BAD = [
    (b"apm.operation:12.", "parse_errors", "malformed_line"),
    (b"\xff\xfe\x00garbage", "parse_errors", "invalid_utf8"),
    (b"\x01\x02garbage", "parse_errors", "malformed_line"),
    (b"bad\xff:1|c", "parse_errors", "invalid_utf8"),
    (b"x:nan|g", "parse_errors", "non_finite_value"),
    (b"x:inf|ms", "parse_errors", "non_finite_value"),
    (b"x:-Infinity|g", "parse_errors", "non_finite_value"),
    (b"good.counter:-5|c", "parse_errors", "negative_counter"),
    (b"y" * 5000 + b":1|c", "parse_errors", "name_too_long"),
    (b"x:1|c|#" + b",".join(b"k%d:v" % i for i in range(5000)), "parse_errors", "too_many_tags"),
    (b"x:1|zz", "parse_errors", "invalid_type"),
    (b"apm.operation:1|ms", "parse_errors", "convention_missing_tag"),
    (b"noisy.thing:1|c", "lines_ignored", "mapping_drop"),
    (b"_e{1,1}:a|b", "lines_ignored", "event"),
    (b"_sc|check|0", "lines_ignored", "service_check"),
    (b"good.gauge:1|ms", "samples_dropped", "type_conflict"),
    (b"q.wait:1|h", "samples_dropped", "bucket_conflict"),  # a summary rule's family, sent first below
    (b"x:1|c|c:", "parse_errors", "malformed_container_id"),
]


@pytest.mark.parametrize(("line", "family", "reason"), BAD, ids=[repr(b[0][:30]) for b in BAD])
def test_bad_input_is_counted_and_other_series_are_undisturbed(line: bytes, family: str, reason: str) -> None:
    h = Harness()
    good = ("good.counter:2|c", "good.gauge:5|g", "apm.cache.miss:1|c|#cache:c")
    h.send(*good)
    h.store.series(FamilySpec("q_wait", MetricType.SUMMARY, "", (), (0.9,), namespaced=False), ())
    before = h.values()
    for _ in range(3):  # repeated: the second time the good keys are cached
        h.send(line)
        h.send(line, *good)
    assert h.stat(f"exporter_statsd_{family}_total", reason) == 6
    after = h.values()
    assert after[("good_counter_total", ())] == before[("good_counter_total", ())] + 6
    assert after[("good_gauge", ())] == 5
    assert after[("cache_requests_total", ("c", "", "miss"))] == 4
    assert h.stat("exporter_statsd_parse_errors_total", "internal_error") == 0


def test_a_64k_datagram_of_lines() -> None:
    h = Harness()
    line = b"big.packet:1|c|#k:" + b"v" * 40
    packet = b"\n".join([line] * (65000 // (len(line) + 1)))
    h.send(packet)
    n = packet.count(b"\n") + 1
    assert h.values()[("big_packet_total", ("v" * 40,))] == n
    assert h.stat("exporter_statsd_lines_total", "udp://test") == n


def test_series_limits_refuse_and_count() -> None:
    h = Harness(limits=Limits(max_series=5, max_series_per_family=3))
    for i in range(10):
        h.send(f"fam.a:1|c|#id:{i}")
    for i in range(10):
        h.send(f"fam.b{i}:1|c")
    assert len(h.store) == 5
    assert h.stat("exporter_statsd_samples_dropped_total", "family_limit") == 7
    assert h.stat("exporter_statsd_samples_dropped_total", "global_limit") == 8
    assert h.stat("exporter_series") == 5


def test_ttl_expires_stale_series_and_they_come_back() -> None:
    h = Harness()
    h.send("short.lived:1|c", "long.lived:1|c")
    h.clock.now += 5
    h.send("short.lived:1|c")  # cached route, refreshes `seen`
    h.clock.now += 8
    assert h.ingest.expire() == 0
    h.clock.now += 3
    assert h.ingest.expire() == 1
    assert ("short_lived_total", ()) not in h.values() and ("long_lived_total", ()) in h.values()
    h.send("short.lived:4|c")
    assert h.values()[("short_lived_total", ())] == 4
    assert h.stat("exporter_series_expired_total") == 1


def test_reload_swaps_rules_and_keeps_series() -> None:
    h = Harness()
    h.send("myapp.api.requests:1|c")
    h.ingest.set_mapper(Mapper.from_config(StatsdConfig.model_validate(
        {"mappings": [{"match": "myapp.*.requests", "name": "renamed", "labels": {"svc": "$1"}}]})))
    h.send("myapp.api.requests:1|c")
    v = h.values()
    assert v[("myapp_requests_total", ("api",))] == 1 and v[("renamed_total", ("api",))] == 1
    assert h.stat("exporter_statsd_mapping_rules") == 1


def test_bounded_cache_still_exact() -> None:
    h = Harness(max_cache_entries=4)
    for _ in range(3):
        h.send(*[f"many.c{i}:1|c" for i in range(20)])
    v = h.values()
    assert all(v[(f"many_c{i}_total", ())] == 3 for i in range(20))
    routes = h.ingest.routes
    assert len(routes.cache) <= 4 and len(routes.old) <= 4
    assert h.stat("exporter_statsd_mapping_cache_entries") == len(routes.cache) + len(routes.old)


def _cached(h: Harness, name: bytes, rest: bytes) -> object:
    routes = h.ingest.routes
    return routes.cache.get((name, rest)) or routes.old.get((name, rest))


def test_a_hot_key_outlives_a_full_cache() -> None:
    """Issue 19: a full cache was cleared whole, so every hot key was parsed and mapped again;
    now a full generation becomes the old one and a hot key is promoted from it, the same entry."""
    h = Harness(max_cache_entries=4)
    h.send("hot.key:1|c")
    entry = _cached(h, b"hot.key", b"c")
    for i in range(40):  # ten times the cache's size in new keys, the hot key between them
        h.send(f"cold.c{i}:1|c", "hot.key:1|c")
    assert _cached(h, b"hot.key", b"c") is entry
    assert h.values()[("hot_key_total", ())] == 41
    assert all(h.values()[(f"cold_c{i}_total", ())] == 1 for i in range(40))


def test_a_hot_key_outlives_the_expiry_of_churning_series() -> None:
    """Issue 19: any expired series cleared the whole cache, so with a session id family churning
    through TTL every hot key missed once a second; now only the routes of the series that went go."""
    h = Harness()
    h.send("short.hot:1|c", "short.session:1|c|#id:1", "short.users:a|s", "long.lived:1|c")
    hot, long_lived = _cached(h, b"short.hot", b"c"), _cached(h, b"long.lived", b"c")
    h.clock.now += 11
    h.send("short.hot:1|c")
    assert h.ingest.expire() == 2  # the session and the set went, the hot key stayed
    assert _cached(h, b"short.hot", b"c") is hot and _cached(h, b"long.lived", b"c") is long_lived
    assert _cached(h, b"short.session", b"c|#id:1") is None and _cached(h, b"short.users", b"s") is None
    # The expired series start again (a set's entry holds its gauge elsewhere than a counter's).
    h.send("short.session:5|c|#id:1", "short.users:b|s", "short.hot:1|c")
    v = h.values()
    assert v[("short_session_total", ("1",))] == 5 and v[("short_hot_total", ())] == 3
    assert v[("short_users", ())] == 1


def test_the_cache_keeps_names_and_rests_apart_and_an_expiry_leaves_no_empty_level() -> None:
    """Issue 15: the cache holds a tagged line's entry by name then rest and an untagged one's by
    rest then name (no key tuple); a name that is another line's rest must not find its entry,
    a tagged and an untagged line of one name must keep their own, and the routes of expired
    series must not leave their (emptied) inner dicts held."""
    h = Harness()
    for _ in range(2):  # the second time from the cache
        h.send("c:1|c|#t:x", "x:2|c", "c:3|c", "short.s:1|c|#id:1", "short.s:1|c|#id:2")
    v = h.values()
    assert v[("c_total", ("x",))] == 2 and v[("c_total", ("",))] == 6 and v[("x_total", ())] == 4
    assert v[("short_s_total", ("1",))] == 2 and v[("short_s_total", ("2",))] == 2
    cache = h.ingest.routes.cache
    assert len(cache) == 5 and set(cache.by_name) == {b"c", b"short.s"} and set(cache.by_rest) == {b"c"}
    h.clock.now += 11
    h.send("c:1|c|#t:x", "x:2|c", "c:3|c")
    assert h.ingest.expire() == 2
    assert len(cache) == 3 and b"short.s" not in cache.by_name
    assert h.stat("exporter_statsd_mapping_cache_entries") == 3


def test_an_expired_set_or_instance_gauge_leaves_nothing_held_for_it() -> None:
    """Issue 15: a set's members and a gauge's per-instance shares are kept beside the gauges
    (routes.py, 16 bytes a gauge less); they must go when their series expire, or neither the
    memory nor those gauges are ever freed, and a series created again must start from zero."""
    h = Harness()
    h.send("short.users:a|s", "short.users:b|s", "short.pool:3|g|#apm_instance:1.a", "short.pool:4|g|#apm_instance:2.b")
    assert h.values()[("short_users", ())] == 2 and h.values()[("short_pool", ())] == 7
    routes = h.ingest.routes
    assert len(routes.members) == 1 and len(routes.shares) == 1
    h.clock.now += 11
    assert h.ingest.expire() == 2
    assert not routes.members and not routes.shares
    h.send("short.users:c|s", "short.pool:5|g|#apm_instance:1.a")
    assert h.values()[("short_users", ())] == 1 and h.values()[("short_pool", ())] == 5


def test_a_refused_key_is_retried_once_series_expired() -> None:
    """A key refused at the series limit is cached as refused; the room an expiry leaves must let it in."""
    h = Harness(limits=Limits(max_series=1, max_series_per_family=1))
    h.send("short.a:1|c", "short.b:1|c")
    assert ("short_b_total", ()) not in h.values()
    h.clock.now += 11
    assert h.ingest.expire() == 1
    h.send("short.b:1|c")
    assert h.values()[("short_b_total", ())] == 1


def test_the_routing_cache_has_room_for_every_series_the_store_may_hold() -> None:
    """Issue 19: with a fixed 200k-entry cache, a daemon holding 1M series missed the cache on
    every line of a sweep over them (parse and map each time, 13x collectd's CPU per line)."""
    h = Harness(limits=Limits(max_series=1_000_000, max_series_per_family=1_000_000))
    assert h.ingest.routes.cache_limit() >= 1_000_000
    h.store.limits = Limits(max_series=2_000_000, max_series_per_family=10)  # a reload raising it
    assert h.ingest.routes.cache_limit() >= 2_000_000
    h.send("a:1|c", "b:1|c|#t:x", "a:1|c")
    assert len(h.ingest.routes.cache) == 2 and h.values()[("a_total", ())] == 2


def test_a_family_whose_series_carry_different_tags_keeps_them_all() -> None:
    """statsd_exporter drops the line with the extra tag (its issue #114); the text format and
    Prometheus accept a family whose series have different label names, so we keep it."""
    h = Harness()
    for _ in range(2):  # the second round runs on cached routes
        h.send("jobs:1|c|#queue:a", "jobs:1|c|#queue:b,region:eu", "jobs:1|c")
    assert h.values() == {("jobs_total", ("a", "")): 2, ("jobs_total", ("b", "eu")): 2, ("jobs_total", ("", "")): 2}
    [family] = h.store.collect()
    assert family.spec.labels == ("queue", "region")
    assert h.stat("exporter_statsd_samples_dropped_total", "type_conflict") == 0
    h.send("jobs_total:1|g|#queue:a")  # another type stays refused
    assert h.stat("exporter_statsd_samples_dropped_total", "type_conflict") == 1


def test_dogstatsd_container_id_is_a_label_or_dropped() -> None:
    """As statsd_exporter and the OpenTelemetry Collector: `|c:<id>` is a container_id label."""
    line = "web.hits:1|c|#route:/a|c:3f9a"
    labelled, dropped = Harness(), Harness({"dogstatsd_container_id": "drop"})
    for _ in range(2):
        labelled.send(line)
        dropped.send(line)
    assert labelled.values() == {("web_hits_total", ("3f9a", "/a")): 2}
    [family] = labelled.store.collect()
    assert family.spec.labels == ("container_id", "route")
    assert dropped.values() == {("web_hits_total", ("/a",)): 2}


def test_etsy_multi_metric_lines_store_every_metric() -> None:
    """statsd_exporter reads `name:1|c:2|c:3|ms` as three samples of `name`."""
    h = Harness()
    for _ in range(2):
        h.send("multi.metric:1|c:2|c|@0.5", "timed:1|ms:2|ms")
    v = h.values()
    assert v[("multi_metric_total", ())] == 2 * (1 + 4)
    t = v[("timed", ())]
    assert isinstance(t, HistogramValue) and t.count == 4
    assert h.stat("exporter_statsd_lines_total", "udp://test") == 4
    assert h.stat("exporter_statsd_samples_total", "udp://test") == 8


def test_a_bad_sample_rate_keeps_the_line_at_rate_1_and_is_counted_each_time() -> None:
    """Both peers keep such lines; the reason is counted per line, cached key or not."""
    h = Harness()
    for _ in range(3):
        h.send("rated:2|c|@0", "rated:2|c|@x", "rated:2|c|@1.5", "stamped:1|g|Tsoon")
    assert h.values()[("rated_total", ())] == 3 * 3 * 2
    assert h.values()[("stamped", ())] == 1
    assert h.stat("exporter_statsd_parse_errors_total", "invalid_sample_rate") == 9
    assert h.stat("exporter_statsd_parse_errors_total", "malformed_timestamp") == 3
    assert h.stat("exporter_statsd_samples_total", "udp://test") == 12


_LINE = st.builds(
    lambda name, value, kind, rate, tags: (
        f"{name}:{value}|{kind}" + (f"|@{rate}" if rate else "") + (f"|#{tags}" if tags else "")).encode(),
    st.sampled_from(["a", "b.c", "apm.cache.hit", "apm.pool.active", "q.x", "noisy.x", "u"]),
    st.one_of(st.integers(-5, 1000).map(str), st.sampled_from(["+1", "-2", "1.5", "1:2", "x", "nan", ""])),
    st.sampled_from(["c", "g", "ms", "h", "d", "s"]),
    st.sampled_from(["", "0.5", "1"]),
    st.sampled_from(["", "cache:x", "pool:p", "k:v", "k:w,cache:x"]),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_LINE, max_size=40))
@example([b"a:1:2|ms|#pool:p", b"a:3|ms|#pool:p"])  # a multi-value line's values, in their place
def test_cached_path_equals_uncached_path(lines: list[bytes]) -> None:
    cached, uncached = Harness(), Harness()
    cached.send(*lines)
    cached.send(*lines)
    for line in lines + lines:
        uncached.ingest.routes.cache.clear()
        uncached.ingest.routes.values.clear()
        uncached.send(line)
    assert _values(cached.store.collect()) == _values(uncached.store.collect())
    def stats(h: Harness) -> dict[tuple[str, tuple[str, ...]], object]:
        return {k: v for k, v in _values(h.stats.collect()).items() if "cache_entries" not in k[0]}

    assert stats(cached) == stats(uncached)


@settings(max_examples=1000, deadline=None)
@given(st.lists(st.binary(max_size=80), max_size=10))
def test_arbitrary_packets_never_raise(chunks: list[bytes]) -> None:
    h = Harness()
    h.send(*chunks)
    h.send(*chunks)
    assert h.stat("exporter_statsd_parse_errors_total", "internal_error") == 0
