"""Mapping: conventions table, statsd_exporter-style rules, the default rule, and fuzzing."""

from __future__ import annotations

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from exporter import families
from exporter.model import MetricType
from exporter.statsd.config import StatsdConfig
from exporter.statsd.mapper import (
    DROP,
    DROP_UNMAPPED,
    Drop,
    Mapper,
    MappingError,
    Route,
    label_name,
    metric_name,
)
from exporter.statsd.parser import ParseError, parse_line


def route(line: bytes, mapper: Mapper | None = None) -> Route | Drop:
    [event, *_] = parse_line(line)
    return (mapper if mapper is not None else Mapper()).route(event)


CONVENTIONS = [
    (b"apm.operation:12.5|ms|#operation:checkout,outcome:ok", families.OPERATION_DURATION, ("checkout", "ok"), 0.001),
    (b"apm.operation:0.2|h|#operation:checkout,status:error", families.OPERATION_DURATION, ("checkout", "error"), 1.0),
    (b"apm.operation:0.2|d|#operation:checkout", families.OPERATION_DURATION, ("checkout", "ok"), 1.0),
    (b"apm.operation,operation=login,outcome=timeout:3|ms", families.OPERATION_DURATION, ("login", "timeout"), 0.001),
    (b"apm.cache.hit:1|c|#cache:users,level:l1", families.CACHE_REQUESTS, ("users", "l1", "hit"), 1.0),
    (b"apm.cache.miss:1|c|#cache:users", families.CACHE_REQUESTS, ("users", "", "miss"), 1.0),
    (b"apm.cache.eviction:1|c|#cache:users", families.CACHE_EVICTIONS, ("users", ""), 1.0),
    (b"apm.cache.promotion:1|c|#cache:users,level:l1", families.CACHE_PROMOTIONS, ("users", "l1"), 1.0),
    (b"apm.cache.entries:120|g|#cache:users", families.CACHE_ENTRIES, ("users", ""), 1.0),
    (b"apm.cache.capacity:1000|g|#cache:users", families.CACHE_CAPACITY, ("users", ""), 1.0),
    (b"apm.pool.active:3|g|#pool:db", families.POOL_CONNECTIONS, ("db", "active"), 1.0),
    (b"apm.pool.idle:+1|g|#pool:db", families.POOL_CONNECTIONS, ("db", "idle"), 1.0),
    (b"apm.pool.max:10|g|#pool:db", families.POOL_MAX_CONNECTIONS, ("db",), 1.0),
    (b"apm.pool.pending:0|g|#pool:db", families.POOL_PENDING, ("db",), 1.0),
    (b"apm.pool.wait:1.5|ms|#pool:db", families.POOL_WAIT_DURATION, ("db",), 0.001),
    (b"apm.pool.timeout:1|c|#pool:db", families.POOL_TIMEOUTS, ("db",), 1.0),
    (b"apm.queue.depth:42|g|#queue:emails", families.QUEUE_DEPTH, ("emails",), 1.0),
    (b"apm.batch.size:50|h|#queue:emails", families.BATCH_SIZE, ("emails",), 1.0),
    (b"apm.batch.duration:220|ms|#queue:emails", families.BATCH_DURATION, ("emails",), 0.001),
    (b"apm.batch.items:48|c|#queue:emails,outcome:ok", families.BATCH_ITEMS, ("emails", "ok"), 1.0),
    (b"apm.batch.items:48|c|#queue:emails,host:a", families.BATCH_ITEMS, ("emails", "ok"), 1.0),
]


@pytest.mark.parametrize(("line", "spec", "labels", "scale"), CONVENTIONS, ids=[c[0].decode() for c in CONVENTIONS])
def test_conventions_need_no_configuration(line: bytes, spec: object, labels: tuple[str, ...], scale: float) -> None:
    assert route(line) == Route(spec, labels, scale)  # type: ignore[arg-type]


@pytest.mark.parametrize(("line", "reason"), [
    (b"apm.operation:1|c|#operation:x", "convention_type_mismatch"),
    (b"apm.operation:1|ms", "convention_missing_tag"),
    (b"apm.cache.hit:1|c", "convention_missing_tag"),
    (b"apm.pool.active:1|ms|#pool:db", "convention_type_mismatch"),
])
def test_convention_misuse_is_an_error_not_a_new_family(line: bytes, reason: str) -> None:
    with pytest.raises(MappingError) as caught:
        route(line)
    assert caught.value.reason == reason


def test_conventions_can_be_switched_off() -> None:
    r = route(b"apm.cache.hit:1|c|#cache:users", Mapper(conventions=False))
    assert isinstance(r, Route) and r.spec.name == "apm_cache_hit_total" and r.unmapped


DEFAULT_RULE = [
    (b"my.app.hits:1|c", "my_app_hits_total", MetricType.COUNTER, (), ()),
    (b"my.app.hits_total:1|c", "my_app_hits_total", MetricType.COUNTER, (), ()),
    (b"my-app.temp:1|g", "my_app_temp", MetricType.GAUGE, (), ()),
    (b"9lives:1|g", "_9lives", MetricType.GAUGE, (), ()),
    (b"req.time:1|ms|#route:/a,Code-X:200", "req_time", MetricType.HISTOGRAM, ("Code_X", "route"), ("200", "/a")),
    (b"req.time:1|ms|#Code-X:200,route:/a", "req_time", MetricType.HISTOGRAM, ("Code_X", "route"), ("200", "/a")),
    (b"req.time:1|ms|#le:5,__name__:x,9a:b", "req_time", MetricType.HISTOGRAM, ("_9a", "_name__"), ("b", "x")),
    (b"users:bob|s", "users", MetricType.GAUGE, (), ()),
]


@pytest.mark.parametrize(("line", "name", "kind", "labels", "values"), DEFAULT_RULE,
                         ids=[c[0].decode() for c in DEFAULT_RULE])
def test_default_rule_sanitises_names_and_turns_tags_into_labels(
        line: bytes, name: str, kind: MetricType, labels: tuple[str, ...], values: tuple[str, ...]) -> None:
    r = route(line)
    assert isinstance(r, Route) and r.unmapped
    assert (r.spec.name, r.spec.type, r.spec.labels, r.labels) == (name, kind, labels, values)
    assert not r.spec.namespaced


RULES = """
defaults:
  ttl: 10m
mappings:
  - match: "myapp.*.requests.*"
    name: "myapp_requests"
    labels: {service: "$1", code: "${2}"}
    help: "Requests by service."
  - match: "myapp.*.latency"
    match_metric_type: observer
    name: "myapp_latency_seconds"
    labels: {service: "$1"}
    histogram_options: {buckets: [0.1, 1]}
    ttl: 30s
  - match: "myapp.*.latency"
    name: "myapp_latency_misuse"
  - match: 'legacy\\.(?P<kind>[a-z]+)\\.(\\d+)'
    match_type: regex
    name: "legacy_${kind}"
    labels: {id: "$2"}
  - match: "noisy.*"
    action: drop
  - match: "q.*"
    match_metric_type: observer
    observer_type: summary
    summary_options: {quantiles: [{quantile: 0.99}, {quantile: 0.5}]}
    name: "q_$1"
  - match: "scaled"
    name: "scaled_bytes"
    scale: 1024
"""


@pytest.fixture
def mapper() -> Mapper:
    return Mapper.from_config(StatsdConfig.model_validate(yaml.safe_load(RULES)))


def test_glob_captures_fill_name_and_labels(mapper: Mapper) -> None:
    r = route(b"myapp.api.requests.200:1|c|#region:eu", mapper)
    assert isinstance(r, Route) and not r.unmapped
    assert r.spec.name == "myapp_requests_total" and r.spec.help == "Requests by service."
    # rule labels and tags together, sorted by name
    assert dict(zip(r.spec.labels, r.labels)) == {"code": "200", "region": "eu", "service": "api"}
    assert r.ttl == 600.0


def test_rule_labels_win_over_tags(mapper: Mapper) -> None:
    r = route(b"myapp.api.requests.200:1|c|#service:spoofed", mapper)
    assert isinstance(r, Route) and dict(zip(r.spec.labels, r.labels))["service"] == "api"


def test_glob_star_stays_within_one_component(mapper: Mapper) -> None:
    r = route(b"myapp.a.b.requests.200:1|c", mapper)
    assert isinstance(r, Route) and r.unmapped


def test_metric_type_match_buckets_and_ttl(mapper: Mapper) -> None:
    r = route(b"myapp.api.latency:250|ms", mapper)
    assert isinstance(r, Route)
    assert (r.spec.name, r.spec.type, r.spec.buckets, r.scale, r.ttl) == (
        "myapp_latency_seconds", MetricType.HISTOGRAM, (0.1, 1.0), 0.001, 30.0)
    # the same name as a gauge skips the observer-only rule and takes the next one
    g = route(b"myapp.api.latency:3|g", mapper)
    assert isinstance(g, Route) and g.spec.name == "myapp_latency_misuse"


def test_regex_with_named_and_numbered_groups(mapper: Mapper) -> None:
    r = route(b"legacy.jobs.42:1|g", mapper)
    assert isinstance(r, Route) and (r.spec.name, r.spec.labels, r.labels) == ("legacy_jobs", ("id",), ("42",))


def test_drop_rule(mapper: Mapper) -> None:
    assert route(b"noisy.thing:1|c", mapper) is DROP


def test_summary_rule(mapper: Mapper) -> None:
    r = route(b"q.wait:5|h", mapper)
    assert isinstance(r, Route) and r.spec.type is MetricType.SUMMARY and r.spec.buckets == (0.5, 0.99)


def test_scale(mapper: Mapper) -> None:
    r = route(b"scaled:2|g", mapper)
    assert isinstance(r, Route) and r.scale == 1024.0


def test_unmatched_drop() -> None:
    config = StatsdConfig.model_validate({"defaults": {"unmatched": "drop"}})
    assert route(b"whatever:1|c", Mapper.from_config(config)) is DROP_UNMAPPED
    assert isinstance(route(b"apm.pool.max:1|g|#pool:p", Mapper.from_config(config)), Route)


@pytest.mark.parametrize("bad", [
    {"mappings": [{"match": "a.*"}]},  # map without name
    {"mappings": [{"match": "(", "match_type": "regex", "name": "x"}]},
    {"mappings": [{"match": "a", "name": "1bad"}]},
    {"mappings": [{"match": "a", "name": "x", "labels": {"bad-label": "v"}}]},
    {"mappings": [{"match": "a", "name": "x", "labels": {"__x": "v"}}]},
    {"mappings": [{"match": "a", "name": "x", "buckets": [2, 1]}]},
    {"mappings": [{"match": "a", "name": "x", "quantiles": [1.5]}]},
    {"mappings": [{"match": "a", "name": "x", "ttl": "soon"}]},
    {"mappings": [{"match": "a", "name": "x", "unknown_key": 1}]},
    {"listeners": ["http://127.0.0.1:8125"]},
    {"listeners": ["udp://127.0.0.1"]},
    {"listeners": ["udp://127.0.0.1:1", "udp://127.0.0.1:1"]},
])
def test_bad_rules_are_config_errors(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        StatsdConfig.model_validate(bad)


def test_default_config() -> None:
    config = StatsdConfig()
    assert config.enabled and config.listeners == ["udp://127.0.0.1:8125"] and config.conventions


@pytest.mark.parametrize(("raw", "name"), [("a.b-c", "a_b_c"), ("1a", "_1a"), ("ok:name", "ok:name"), ("é", "_")])
def test_metric_name_sanitising(raw: str, name: str) -> None:
    assert metric_name(raw) == name


@pytest.mark.parametrize(("raw", "name"), [("a-b", "a_b"), ("__x", "_x"), ("1", "_1"), ("_", ""), ("a:b", "a_b")])
def test_label_name_sanitising(raw: str, name: str) -> None:
    assert label_name(raw) == name


@settings(max_examples=1500, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_through_parser_and_mapper(data: bytes) -> None:
    mapper = Mapper.from_config(StatsdConfig.model_validate(yaml.safe_load(RULES)))
    try:
        events = parse_line(data)
    except ParseError:
        return
    for event in events:
        try:
            r = mapper.route(event)
        except MappingError as err:
            assert err.reason
            continue
        if isinstance(r, Route):
            import re
            assert re.fullmatch(r"[a-zA-Z_:][a-zA-Z0-9_:]*", r.spec.name)
            assert all(re.fullmatch(r"[a-zA-Z_][a-zA-Z0-9_]*", n) and not n.startswith("__") for n in r.spec.labels)
            assert len(r.spec.labels) == len(r.labels) == len(set(r.spec.labels))
