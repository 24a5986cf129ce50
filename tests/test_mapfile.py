"""statsd_exporter mapping files, read as statsd_exporter reads them (pkg/mapper): what
each key means, which rule wins, and every file it refuses refused with its line."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import pytest

from exporter.model import MetricType
from exporter.statsd.config import StatsdConfig
from exporter.statsd.mapfile import MappingFileError, parse
from exporter.statsd.mapper import DROP, Mapper, Route
from exporter.statsd.parser import parse_line
from tests.support.daemon import Daemon
from tests.support.net import free_port

# statsd_exporter's README example, as users have it.
EXAMPLE = """\
defaults:
  observer_type: histogram
  histogram_options:
    buckets: [0.01, 0.1, 1]
  ttl: 0
mappings:
- match: "test.dispatcher.*.*.*"
  name: "dispatcher_events_total"
  labels:
    processor: "$1"
    action: "$2"
    outcome: "$3"
    job: "test_dispatcher"
- match: "*.signup.*.*"
  name: "signup_events_total"
  labels:
    provider: "$2"
    outcome: "$3"
    job: "${1}_server"
- match: "test.timing.*.*.*"
  observer_type: summary
  name: "my_timer"
  labels:
    provider: "$2"
    outcome: "$3"
  summary_options:
    quantiles:
      - quantile: 0.99
        error: 0.001
      - quantile: 0.5
        error: 0.005
- match: "(.*)\\\\.(.*)--(.*)\\\\.status\\\\.(.*)\\\\.count"
  match_type: regex
  name: "request_total"
  labels:
    service: "$1"
    status: "$4"
- match: "drop.me.*"
  name: "dropped"
  action: drop
"""


def mapper(text: str) -> Mapper:
    return Mapper(file=parse(text, "mapping.yml"))


def route(m: Mapper, line: bytes) -> Route:
    r = m.route(parse_line(line)[0])
    assert isinstance(r, Route), r
    return r


def labels(r: Route) -> dict[str, str]:
    return dict(zip(r.spec.labels, r.labels))


def test_the_readme_example_maps_as_statsd_exporter_maps_it() -> None:
    m = mapper(EXAMPLE)
    r = route(m, b"test.dispatcher.FooProcessor.send.success:1|c")
    assert r.spec.name == "dispatcher_events_total" and labels(r) == {
        "processor": "FooProcessor", "action": "send", "outcome": "success", "job": "test_dispatcher"}
    r = route(m, b"foo_product.signup.facebook.failure:1|c")
    assert labels(r) == {"provider": "facebook", "outcome": "failure", "job": "foo_product_server"}
    r = route(m, b"test.timing.a.b.c:3|ms")
    assert r.spec.type is MetricType.SUMMARY and r.spec.buckets == (0.5, 0.99)
    r = route(m, b"foo.bar--baz.status.500.count:1|c")
    assert r.spec.name == "request_total" and labels(r) == {"service": "foo", "status": "500"}
    assert m.route(parse_line(b"drop.me.now:1|c")[0]) is DROP
    r = route(m, b"other.timer:1|ms")  # no rule: the default rule, with the file's observer type ignored
    assert r.unmapped


def test_histograms_are_native_too_as_statsd_exporters_are() -> None:
    r = route(mapper("mappings:\n- match: h.*\n  name: h_seconds\n  observer_type: histogram\n"), b"h.x:1|ms")
    assert r.spec.type is MetricType.HISTOGRAM and r.spec.native is not None and r.spec.native.classic
    assert r.spec.buckets == (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def test_globs_win_over_regexes_whatever_the_order_and_regexes_are_not_anchored() -> None:
    m = mapper("""
mappings:
- match: 'api\\.(\\w+)'
  match_type: regex
  name: by_regex
- match: "api.*"
  name: by_glob
- match: 'hits'
  match_type: regex
  name: anywhere
""")
    assert route(m, b"api.users:1|c").spec.name == "by_glob_total"
    assert route(m, b"my.hits.today:1|c").spec.name == "anywhere_total"


def test_glob_ordering_first_in_file_or_most_specific() -> None:
    rules = """
mappings:
- match: "a.*.c"
  name: wild
- match: "a.b.c"
  name: exact
"""
    assert route(mapper(rules), b"a.b.c:1|c").spec.name == "wild_total"
    unordered = mapper("defaults:\n  glob_disable_ordering: true\n" + rules)
    assert route(unordered, b"a.b.c:1|c").spec.name == "exact_total"
    assert route(unordered, b"a.x.c:1|c").spec.name == "wild_total"


def test_references_expand_as_go_does() -> None:
    """`$1_total` names the capture `1_total` (nothing: ""), `${1}_total` is capture 1 then text."""
    m = mapper("""
mappings:
- match: "svc.*.*"
  name: "svc_${1}_x"
  labels: {aa: "$1_total", bb: "${2}_total", cc: "$9"}
- match: 'r\\.(?P<kind>\\w+)'
  match_type: regex
  name: "r_$1"
  labels: {kk: "$kind", missing: "$3"}
""")
    r = route(m, b"svc.web.get:1|c")
    assert r.spec.name == "svc_web_x_total" and labels(r) == {"aa": "", "bb": "get_total", "cc": ""}
    r = route(m, b"r.jobs:1|c")
    assert r.spec.name == "r_jobs_total" and labels(r) == {"kk": "jobs", "missing": ""}


def test_defaults_honor_labels_match_metric_type_scale_ttl_help() -> None:
    m = mapper("""
defaults:
  ttl: 5m
mappings:
- match: "t.*"
  match_metric_type: gauge
  name: "t_gauge"
  labels: {env: "rule"}
  honor_labels: true
  scale: 2
  help: "A gauge."
- match: "t.*"
  name: "t_other"
  labels: {env: "rule"}
""")
    g = route(m, b"t.x:4|g|#env:line")
    assert g.spec.name == "t_gauge" and labels(g) == {"env": "line"} and g.scale == 2 and g.spec.help == "A gauge."
    assert g.ttl == 300
    c = route(m, b"t.x:4|c|#env:line")
    assert c.spec.name == "t_other_total" and labels(c) == {"env": "rule"}
    timer = route(m, b"t.x:4|ms")  # statsd_exporter's default observer: a summary
    assert timer.spec.type is MetricType.SUMMARY and timer.spec.buckets == (0.5, 0.9, 0.99)


BAD = [
    ("no name", "mappings:\n- match: a.b\n", 2, "didn't set a metric name"),
    ("drop needs a name too", "mappings:\n- match: a.b\n  action: drop\n", 2, "didn't set a metric name"),
    ("bad name", "mappings:\n- match: a.b\n  name: 'bad-name'\n", 3, "doesn't match regex"),
    ("name with a colon", "mappings:\n- match: a.b\n  name: 'a:b'\n", 3, "doesn't match regex"),
    ("bad metric line", "mappings:\n- match: 'a.b*c'\n  name: x\n", 2, "invalid match"),
    ("leading digit glob", "mappings:\n- match: '1a.b'\n  name: x\n", 2, "invalid match"),
    ("unknown observer type", "mappings:\n- match: a.b\n  name: x\n  observer_type: gauge\n", 4, "observer_type"),
    ("uncompilable regex", "mappings:\n- match: '(a'\n  match_type: regex\n  name: x\n", 2, "invalid regex"),
    ("unknown match type", "mappings:\n- match: a\n  match_type: fuzzy\n  name: x\n", 3, "match_type"),
    ("unknown metric type", "mappings:\n- match: a\n  match_metric_type: set\n  name: x\n", 3, "match_metric_type"),
    ("duplicate quantiles", "mappings:\n- match: a.b\n  name: x\n  summary_options:\n    quantiles:\n"
     "    - quantile: 0.5\n    - quantile: 0.5\n", 5, "duplicate quantile"),
    ("histogram and summary options", "mappings:\n- match: a.b\n  name: x\n  observer_type: histogram\n"
     "  summary_options: {quantiles: [{quantile: 0.5}]}\n", 5, "cannot use histogram observer"),
    ("unsorted buckets", "mappings:\n- match: a.b\n  name: x\n  observer_type: histogram\n"
     "  histogram_options: {buckets: [1, 0.5]}\n", 5, "increasing order"),
    ("one-letter label key", "mappings:\n- match: a.b\n  name: x\n  labels: {a: b}\n", 4, "invalid label key"),
    ("unknown key", "mappings:\n- match: a.b\n  name: x\n  timer_type: histogram\n", 4, "unknown key"),
    ("unknown top-level key", "defaults: {}\nmapings: []\n", 2, "unknown key"),
    ("not yaml", "mappings: [\n", 2, "invalid YAML"),
]


@pytest.mark.parametrize(("text", "line", "message"), [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_what_statsd_exporter_refuses_is_refused_with_the_files_line(text: str, line: int, message: str) -> None:
    with pytest.raises(MappingFileError) as caught:
        parse(text, "/etc/statsd/mapping.yml")
    assert any(p.startswith(f"/etc/statsd/mapping.yml:{line}:") and message in p for p in caught.value.problems), \
        caught.value.problems


def test_the_yaml_key_reads_the_file_and_its_problems_carry_its_path(tmp_path: Path) -> None:
    good = tmp_path / "mapping.yml"
    good.write_text(EXAMPLE)
    config = StatsdConfig.model_validate({"mapping_config": str(good)})
    assert config.mapping_file is not None and len(config.mapping_file) == 5
    bad = tmp_path / "bad.yml"
    bad.write_text("mappings:\n- match: a.b\n")
    with pytest.raises(ValueError, match=f"{bad}:2: "):
        StatsdConfig.model_validate({"mapping_config": str(bad)})


def _apm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "exporter", *args], capture_output=True, text=True, timeout=60)


def test_check_config_accepts_a_mapping_file_with_the_flag(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("statsd:\n  listeners: []\n")
    mapping = tmp_path / "mapping.yml"
    mapping.write_text(EXAMPLE)
    ok = _apm("check-config", str(config), "--statsd.mapping-config", str(mapping))
    assert ok.returncode == 0, ok.stderr
    assert f"{mapping}: OK" in ok.stdout
    mapping.write_text("mappings:\n- match: 'a.b*'\n  name: x\n")
    bad = _apm("check-config", str(config), "--statsd.mapping-config", str(mapping))
    assert bad.returncode == 1 and f"{mapping}:2: mappings[0].match: invalid match" in bad.stderr


def test_the_daemon_reads_the_file_by_flag_and_a_reload_reads_it_again(
        daemon_factory: Callable[..., Daemon], tmp_path: Path) -> None:
    mapping = tmp_path / "mapping.yml"
    mapping.write_text(EXAMPLE)
    port = free_port(socket.SOCK_DGRAM)
    d = daemon_factory({"statsd": {"listeners": [f"udp://127.0.0.1:{port}"]}},
                       "--statsd.mapping-config", str(mapping))

    def send_and_wait(line: bytes, name: str, **want: str) -> float:
        deadline = time.monotonic() + 30
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            while True:
                s.sendto(line, ("127.0.0.1", port))
                value = d.value(name, **want)
                if value is not None:
                    return value
                assert time.monotonic() < deadline, d.scrape_text()
                time.sleep(0.05)

    send_and_wait(b"test.dispatcher.Foo.send.success:1|c", "dispatcher_events_total",
                  processor="Foo", action="send", outcome="success", job="test_dispatcher")
    assert d.value("apm_exporter_statsd_mapping_rules") == 5
    mapping.write_text(EXAMPLE.replace('"dispatcher_events_total"', '"dispatched_total"'))
    status, body = d.reload()
    assert status == 200, body
    send_and_wait(b"test.dispatcher.Foo.send.success:1|c", "dispatched_total",
                  processor="Foo", action="send", outcome="success", job="test_dispatcher")
    mapping.write_text("mappings:\n- match: a.b\n")  # a bad file: the reload fails, the rules stay
    status, body = d.reload()
    assert status != 200 and b"mapping.yml:2" in body
    assert d.value("apm_exporter_config_last_reload_successful") == 0


def test_summaries_slide_over_max_age_as_statsd_exporters_do() -> None:
    from exporter.statsd.ingest import Ingest
    from exporter.statsd.stats import StatsdStats
    from exporter.store import Store

    now = [1000.0]
    store = Store(clock=lambda: now[0])
    m = Mapper(file=parse("""
mappings:
- match: "job.*"
  name: "job_seconds"
  summary_options: {max_age: 1m, quantiles: [{quantile: 0.5}]}
- match: "other.*"
  name: "other_seconds"
""", "mapping.yml"))
    sink = Ingest(m, store, StatsdStats(Store())).sink("test")
    sink.handle_packet(b"job.a:1000|ms\nother.a:1000|ms")
    now[0] += 61
    sink.handle_packet(b"job.a:3000|ms")
    values = {f.spec.name: f.samples[0].value for f in store.collect()}
    assert values["job_seconds"].quantiles == [(0.5, 3.0)]  # type: ignore[union-attr]
    assert values["job_seconds"].count == 2  # type: ignore[union-attr]
    now[0] += 530  # other_seconds has the default window, 10m: still there at 591 s
    assert {f.spec.name: f.samples[0].value for f in store.collect()}["other_seconds"].quantiles[1] == (0.9, 1.0)  # type: ignore[union-attr]
