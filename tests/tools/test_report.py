"""`apm-exporter report`: quantiles equal PromQL's histogram_quantile, windows, health, compare."""

from __future__ import annotations

import json
import math
import random
import re
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from exporter.families import LATENCY_BUCKETS
from exporter.tools import report
from exporter.tools._cli import ms
from exporter.tools.quantiles import histogram_quantile
from tests.support.daemon import Daemon
from tests.support.net import free_port
from tests.support.prometheus import Prometheus
from tests.tools._servers import ExpositionServer

QS = (0.0, 0.01, 0.25, 0.5, 0.9, 0.95, 0.99, 1.0)
INF = math.inf


def same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


def close(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


def _le(bound: float) -> str:
    return "+Inf" if bound == INF else repr(bound)


def histogram(name: str, labels: str, bounds: tuple[float, ...], counts: list[float], total_sum: float) -> str:
    """One histogram series in the text format; `counts` are cumulative and include +Inf."""
    lines = [f'{name}_bucket{{{labels},le="{_le(b)}"}} {c:g}' for b, c in zip((*bounds, INF), counts, strict=True)]
    lines += [f"{name}_sum{{{labels}}} {total_sum:g}", f"{name}_count{{{labels}}} {counts[-1]:g}"]
    return "\n".join(lines)


def random_histograms(seed: int = 7) -> tuple[str, dict[tuple[str, str], list[tuple[float, float]]]]:
    """Operation histograms with awkward shapes: empty, all in +Inf, gaps, one big bucket."""
    rng = random.Random(seed)
    series: dict[tuple[str, str], list[tuple[float, float]]] = {}
    out = ["# TYPE apm_operation_duration_seconds histogram"]
    shapes: list[Callable[[], list[int]]] = [
        lambda: [0] * 14,
        lambda: [0] * 13 + [rng.randint(1, 9)],
        lambda: [rng.choice([0, 0, 1, 3, 50, 1000]) for _ in range(14)],
        lambda: [rng.randint(0, 5) for _ in range(14)],
        lambda: [7] + [0] * 13,
    ]
    for i in range(30):
        for outcome in ("ok", "error"):
            increments = shapes[i % len(shapes)]() if outcome == "ok" or i % 3 == 0 else [0] * 14
            cumulative, total = [], 0
            for inc in increments:
                total += inc
                cumulative.append(float(total))
            series[(f"op{i}", outcome)] = list(zip((*LATENCY_BUCKETS, INF), cumulative, strict=True))
            out.append(histogram("apm_operation_duration_seconds", f'operation="op{i}",outcome="{outcome}"',
                                 LATENCY_BUCKETS, cumulative, total * 0.01))
    # Bounds at and below zero, where the first bucket's lower edge is not 0.
    out.append("# TYPE edge_seconds histogram")
    for j, counts in enumerate(([2.0, 5.0, 9.0, 10.0], [0.0, 0.0, 4.0, 4.0], [3.0, 3.0, 3.0, 8.0])):
        out.append(histogram("edge_seconds", f'case="{j}"', (-1.0, 0.0, 2.0), counts, 1.0))
        series[(f"edge{j}", "")] = list(zip((-1.0, 0.0, 2.0, INF), counts, strict=True))
    return "\n".join(out) + "\n", series


@pytest.fixture(scope="module")
def static_exposition() -> Iterator[tuple[ExpositionServer, dict[tuple[str, str], list[tuple[float, float]]]]]:
    text, series = random_histograms()
    with ExpositionServer(lambda n: text) as server:
        yield server, series


GROWTH = {"ok": [3, 10, 20, 40, 30, 12, 3, 1, 0, 0, 0, 0, 0, 1], "error": [0, 0, 0, 0, 1, 2, 3, 1, 0, 0, 0, 0, 0, 2]}


def growing(n: int) -> str:
    """Every request (Prometheus's scrapes and the report's alike) adds GROWTH once more."""
    out = ["# TYPE apm_operation_duration_seconds histogram"]
    for outcome, incs in GROWTH.items():
        cumulative = [float(n * sum(incs[: i + 1])) for i in range(len(incs))]
        out.append(histogram("apm_operation_duration_seconds", f'operation="pay",outcome="{outcome}"',
                             LATENCY_BUCKETS, cumulative, n * 1.5))
    return "\n".join(out) + "\n"


@pytest.fixture(scope="module")
def growing_exposition() -> Iterator[ExpositionServer]:
    with ExpositionServer(growing) as server:
        yield server


@pytest.fixture(scope="module")
def prometheus(static_exposition: tuple[ExpositionServer, Any], growing_exposition: ExpositionServer,
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    static, _ = static_exposition
    prom = Prometheus(tmp_path_factory.mktemp("prometheus"),
                      [f"127.0.0.1:{static.port}", f"127.0.0.1:{growing_exposition.port}"]).start()
    try:
        prom.wait_for("edge_seconds_bucket")
        # increase() needs two samples of the growing target in the window.
        prom.wait_for(f'count_over_time(up{{instance="127.0.0.1:{growing_exposition.port}"}}[1m]) >= 3')
        yield prom
    finally:
        prom.stop()


def promql_value(row: dict[str, Any]) -> float:
    return float(row["value"][1])


# --- the formula's edge cases, as documented in quantiles.py -------------------------------


def test_edge_cases_of_the_documented_formula() -> None:
    b = [(0.1, 2.0), (0.5, 6.0), (INF, 8.0)]
    assert histogram_quantile(0.25, b) == 0.1              # rank 2 ends the first bucket
    assert histogram_quantile(0.125, b) == 0.05            # first bucket starts at 0
    assert histogram_quantile(0.5, b) == 0.1 + 0.4 * (2 / 4)
    assert histogram_quantile(0.9, b) == 0.5               # rank in +Inf: largest finite bound
    assert histogram_quantile(-0.1, b) == -INF and histogram_quantile(1.1, b) == INF
    assert math.isnan(histogram_quantile(math.nan, b))
    assert math.isnan(histogram_quantile(0.5, [(0.1, 0.0), (INF, 0.0)]))  # no observations
    assert math.isnan(histogram_quantile(0.5, [(0.1, 2.0), (0.5, 6.0)]))  # no +Inf bucket
    assert math.isnan(histogram_quantile(0.5, [(INF, 6.0)]))              # fewer than two buckets
    assert histogram_quantile(0.1, [(-1.0, 3.0), (INF, 4.0)]) == -1.0     # first bound ≤ 0
    # Order does not matter; equal bounds are summed; a count that goes down is raised.
    assert histogram_quantile(0.5, list(reversed(b))) == histogram_quantile(0.5, b)
    assert histogram_quantile(0.5, [(0.1, 1.0), (0.1, 1.0), (0.5, 6.0), (INF, 8.0)]) == histogram_quantile(0.5, b)
    assert histogram_quantile(0.5, [(0.1, 2.0), (0.5, 1.0), (1.0, 6.0), (INF, 8.0)]) == 0.5 + 0.5 * (2 / 4)


# --- against a real Prometheus --------------------------------------------------------------


def test_quantiles_equal_prometheus_histogram_quantile(prometheus: Prometheus, static_exposition: Any) -> None:
    server, series = static_exposition
    instance = f'instance="127.0.0.1:{server.port}"'
    checked = 0
    for q in QS:
        for row in prometheus.query(f"histogram_quantile({q}, apm_operation_duration_seconds_bucket{{{instance}}})"):
            m = row["metric"]
            ours = histogram_quantile(q, series[(m["operation"], m["outcome"])])
            assert same(ours, promql_value(row)), (q, m, ours, row["value"])
            checked += 1
        for row in prometheus.query(f"histogram_quantile({q}, edge_seconds_bucket)"):
            ours = histogram_quantile(q, series[(f"edge{row['metric']['case']}", "")])
            assert same(ours, promql_value(row)), (q, row, ours)
            checked += 1
    assert checked == len(QS) * (60 + 3)


def test_report_quantiles_equal_promql_over_the_same_buckets(
        prometheus: Prometheus, static_exposition: Any, capsys: pytest.CaptureFixture[str]) -> None:
    server, _ = static_exposition
    assert report.main(["--url", server.url + "/metrics", "--interval", "0", "--json"]) == 0
    ops = {o["operation"]: o for o in json.loads(capsys.readouterr().out)["operations"]}
    assert ops, "no operations in the report"
    for q, key in ((0.5, "p50"), (0.95, "p95"), (0.99, "p99")):
        rows = prometheus.query(f"histogram_quantile({q}, sum by (operation, le) "
                                f"(apm_operation_duration_seconds_bucket{{instance=\"127.0.0.1:{server.port}\"}}))")
        for row in rows:
            name = row["metric"]["operation"]
            if name in ops:  # the report leaves out operations with no observations
                want = promql_value(row)
                got = ops[name][key]
                assert (got is None and math.isnan(want)) or same(got, want), (name, key, got, want)
            else:
                assert math.isnan(promql_value(row))


def test_windowed_report_from_two_scrapes_matches_promql_increase(
        prometheus: Prometheus, growing_exposition: ExpositionServer, capsys: pytest.CaptureFixture[str]) -> None:
    assert report.main(["--url", growing_exposition.url + "/metrics", "--interval", "1", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    (pay,) = result["operations"]
    # Errors are a fixed share of every increment, however many scrapes fell in the window.
    assert pay["error_ratio"] == pytest.approx(sum(GROWTH["error"]) / (sum(GROWTH["ok"]) + sum(GROWTH["error"])))
    assert pay["rate"] == pytest.approx(pay["count"] / result["window_seconds"])
    instance = f'instance="127.0.0.1:{growing_exposition.port}"'
    for q, key in ((0.5, "p50"), (0.95, "p95"), (0.99, "p99")):
        (row,) = prometheus.query(f"histogram_quantile({q}, sum by (operation, le) "
                                  f"(increase(apm_operation_duration_seconds_bucket{{{instance}}}[1m])))")
        assert close(pay[key], promql_value(row)), (key, pay[key], row)


def test_prometheus_source_matches_promql(prometheus: Prometheus, growing_exposition: ExpositionServer,
                                          capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    instance = f'instance="127.0.0.1:{growing_exposition.port}"'
    assert report.main(["--prometheus", prometheus.url, "--window", "1m", "--selector", instance, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    (pay,) = result["operations"]
    assert result["window_seconds"] == 60
    for q, key in ((0.5, "p50"), (0.95, "p95"), (0.99, "p99")):
        (row,) = prometheus.query(f"histogram_quantile({q}, sum by (operation, le) "
                                  f"(rate(apm_operation_duration_seconds_bucket{{{instance}}}[1m])))")
        assert close(pay[key], promql_value(row)), (key, pay[key], row)
    out = tmp_path / "window.html"
    assert report.main(["--prometheus", prometheus.url, "--window", "1m", "--selector", instance,
                        "--html", str(out)]) == 0
    html = out.read_text()
    row_html = re.search(rf"<tr><td>{pay['operation']}</td>(.*?)</tr>", html)
    assert row_html is not None and f'<td class="p99">{ms(pay["p99"])}</td>' in row_html.group(1)
    assert "Operations, slowest first (last 60.0 s)" in html and "<script>" not in html


# --- a daemon fed known timings over StatsD ---------------------------------------------------


def test_report_of_a_daemon_fed_known_timings(daemon_factory: Callable[..., Daemon],
                                              capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port(socket.SOCK_DGRAM)
    d = daemon_factory({"statsd": {"listeners": [f"udp://127.0.0.1:{port}"]}})
    lines = [f"apm.operation:{i + 0.3:.1f}|ms|#operation:checkout,outcome:ok" for i in range(100)]
    lines += ["apm.operation:300|ms|#operation:checkout,outcome:error"] * 10
    lines += ["apm.operation:2|ms|#operation:search"] * 50
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for i in range(0, len(lines), 20):
            s.sendto("\n".join(lines[i:i + 20]).encode(), ("127.0.0.1", port))
    deadline = time.monotonic() + 30
    while d.value("apm_operation_duration_seconds_count", operation="search") != 50 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert report.main(["--url", d.url + "/metrics", "--interval", "0", "--json"]) == 0
    ops = {o["operation"]: o for o in json.loads(capsys.readouterr().out)["operations"]}
    checkout = ops["checkout"]
    assert checkout["count"] == 110 and checkout["errors"] == 10
    assert checkout["error_ratio"] == 10 / 110
    # By hand, with the formula in docs/tools.md: cumulative counts 50 at le=0.05, 100 at 0.1
    # (the ok timings 0.3 … 99.3 ms), 110 at 0.5 (the 300 ms errors).
    assert checkout["p50"] == pytest.approx(0.05 + 0.05 * (55 - 50) / 50)
    assert checkout["p95"] == pytest.approx(0.25 + 0.25 * (104.5 - 100) / 10)
    assert checkout["p99"] == pytest.approx(0.25 + 0.25 * (108.9 - 100) / 10)
    # And exactly what histogram_quantile gives over the buckets the daemon exposes.
    buckets: dict[str, dict[float, float]] = {}
    for family in text_string_to_metric_families(d.scrape_text()):
        for sample in family.samples:
            if sample.name == "apm_operation_duration_seconds_bucket":
                per = buckets.setdefault(sample.labels["operation"], {})
                le = float(sample.labels["le"])
                per[le] = per.get(le, 0.0) + sample.value
    for name, key, q in (("checkout", "p50", 0.5), ("checkout", "p99", 0.99), ("search", "p95", 0.95)):
        assert ops[name][key] == histogram_quantile(q, list(buckets[name].items()))
    assert ops["search"]["p95"] == pytest.approx(0.001 + (0.0025 - 0.001) * (47.5 / 50))
    # Slowest first.
    assert list(ops) == ["checkout", "search"]


# --- health score and compare --------------------------------------------------------------


def host_and_sql(busy: float, full_scan: int) -> str:
    return "\n".join([
        "# TYPE apm_host_cpu_seconds_total counter",
        f'apm_host_cpu_seconds_total{{mode="idle"}} {100 - busy:g}',
        f'apm_host_cpu_seconds_total{{mode="user"}} {busy:g}',
        "# TYPE apm_host_memory_total_bytes gauge", "apm_host_memory_total_bytes 1000",
        "# TYPE apm_host_memory_available_bytes gauge", "apm_host_memory_available_bytes 150",
        "# TYPE apm_host_filesystem_size_bytes gauge",
        'apm_host_filesystem_size_bytes{device="sda1",mountpoint="/",fstype="ext4"} 1000',
        "# TYPE apm_host_filesystem_avail_bytes gauge",
        'apm_host_filesystem_avail_bytes{device="sda1",mountpoint="/",fstype="ext4"} 40',
        "# TYPE apm_sql_query_full_scan gauge",
        f'apm_sql_query_full_scan{{query="orders_by_customer",table="orders"}} {full_scan}',
        "# TYPE apm_pool_connections gauge",
        'apm_pool_connections{pool="db",state="active"} 9', 'apm_pool_connections{pool="db",state="idle"} 1',
        "# TYPE apm_pool_max_connections gauge", 'apm_pool_max_connections{pool="db"} 10',
        "# TYPE apm_cache_requests_total counter",
        'apm_cache_requests_total{cache="users",level="",result="hit"} 90',
        'apm_cache_requests_total{cache="users",level="",result="miss"} 10',
        "# TYPE apm_queue_depth gauge", 'apm_queue_depth{queue="emails"} 42',
        "# TYPE apm_up gauge", 'apm_up{collector="redis",target="cache"} 0',
    ]) + "\n"


def slow_then_fast(ok_bucket: int) -> str:
    counts = [0.0] * 14
    for i in range(ok_bucket, 14):
        counts[i] = 100.0
    return ("# TYPE apm_operation_duration_seconds histogram\n"
            + histogram("apm_operation_duration_seconds", 'operation="orders",outcome="ok"',
                        LATENCY_BUCKETS, counts, 10.0) + "\n"
            + histogram("apm_operation_duration_seconds", 'operation="orders",outcome="error"',
                        LATENCY_BUCKETS, [0.0] * 5 + [2.0] * 9, 0.08) + "\n")


def test_health_score_formula_and_sections(capsys: pytest.CaptureFixture[str]) -> None:
    with ExpositionServer(lambda n: slow_then_fast(10) + host_and_sql(busy=92, full_scan=1)) as server:
        assert report.main(["--url", server.url, "--interval", "0", "--json"]) == 0
        result = json.loads(capsys.readouterr().out)
        assert report.main(["--url", server.url, "--interval", "0"]) == 0
        text = capsys.readouterr().out
    penalties = [(p["points"], p["reason"]) for p in result["health"]["penalties"]]
    assert penalties == [
        (25, "CPU busy 92.0% > 90%"),
        (10, "memory used 85.0% > 80%"),
        (20, "filesystem / 96.0% full > 95%"),
        (15, "error ratio 1.96% > 1.0%"),
        (10, "1 operation(s) with p99 over 500ms: orders"),
        (10, "1 pool(s) saturated or with waiters: db"),
        (10, "1 probed target(s) down"),
    ]
    assert result["health"]["score"] == 100 - 25 - 10 - 20 - 15 - 10 - 10 - 10
    assert result["caches"][0]["hit_ratio"] == 0.9
    assert result["pools"][0]["utilisation"] == 0.9
    assert result["queues"] == [{"queue": "emails", "depth": 42, "consumer_lag": None, "unacknowledged": None}]
    assert result["sql"][0]["full_scan"] is True
    assert result["targets_down"] == [{"collector": "redis", "target": "cache"}]
    for heading in ("Health: 0/100", "Operations", "Caches", "Pools", "Queues", "SQL probes", "FULL SCAN", "Host"):
        assert heading in text


def _constant(text: str) -> Callable[[int], str]:
    return lambda n: text


def test_compare_shows_before_after_deltas(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    saved = []
    for name, bucket, scan in (("before", 10, 1), ("after", 4, 0)):
        body = slow_then_fast(bucket) + host_and_sql(10, scan)
        with ExpositionServer(_constant(body)) as server:
            assert report.main(["--url", server.url, "--interval", "0", "--json"]) == 0
        path = tmp_path / f"{name}.json"
        path.write_text(capsys.readouterr().out)
        saved.append(str(path))
    assert report.main(["--compare", *saved, "--json"]) == 0
    delta = json.loads(capsys.readouterr().out)
    (orders,) = delta["operations"]
    assert orders["p50"]["before"] > orders["p50"]["after"]
    assert orders["p50"]["change_ratio"] < 0
    assert delta["sql"][0]["full_scan"] == {"before": 1.0, "after": 0.0, "change": -1.0, "change_ratio": -1.0}
    assert delta["health"]["after"] > delta["health"]["before"]
    assert report.main(["--compare", *saved]) == 0
    text = capsys.readouterr().out
    assert "FULL SCAN → index" in text and "Health:" in text


def test_unreachable_or_bad_sources_are_clear_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert report.main(["--url", f"http://127.0.0.1:{free_port()}/metrics", "--interval", "0"]) == 1
    assert "Connection refused" in capsys.readouterr().err
    with ExpositionServer(lambda n: "this is { not an exposition\n") as server:
        assert report.main(["--url", server.url, "--interval", "0"]) == 1
    assert "not a Prometheus text exposition" in capsys.readouterr().err
    bad = tmp_path / "x.json"
    bad.write_text("{}")
    assert report.main(["--compare", str(bad), str(bad)]) == 1
    assert "not a report saved with" in capsys.readouterr().err


# --- --html ---------------------------------------------------------------------------------


def test_html_of_a_live_daemon_is_its_status_page(daemon_factory: Callable[..., Daemon], tmp_path: Path) -> None:
    port = free_port(socket.SOCK_DGRAM)
    d = daemon_factory({"statsd": {"listeners": [f"udp://127.0.0.1:{port}"]}},
                       env={"APM_STATUS_STEP_SECONDS": "1"})  # 60 samples: a 60 s window, slack on a loaded box
    # Observations from before the first samples are the baseline, rightly not counted: send once the window is open.
    deadline = time.monotonic() + 30
    while json.loads(d.get("/api/v1/status")[2])["window_seconds"] is None:
        assert time.monotonic() < deadline, "the daemon never took two status samples"
        time.sleep(0.1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto("\n".join(["apm.operation:40|ms|#operation:checkout,outcome:ok"] * 20).encode(), ("127.0.0.1", port))
    deadline = time.monotonic() + 30
    while [o["count"] for o in json.loads(d.get("/api/v1/status")[2])["operations"]] != [20]:
        assert time.monotonic() < deadline, "the status window never showed the 20 observations"
        time.sleep(0.1)
    out = tmp_path / "status.html"
    assert report.main(["--url", d.url + "/metrics", "--interval", "0", "--html", str(out)]) == 0
    html = out.read_text()
    assert "<td>checkout</td>" in html and '<svg class="spark' in html  # the daemon's own windows
    assert "/api/v1/status" in html and "<script>" not in html  # a saved page does not refresh
    p99 = histogram_quantile(0.99, [(b, 0.0 if b < 0.04 else 20.0) for b in (*LATENCY_BUCKETS, math.inf)])
    assert f'<td class="p99">{ms(p99)}</td>' in html


def test_html_from_an_exposition_shows_the_window(tmp_path: Path) -> None:
    out = tmp_path / "window.html"
    with ExpositionServer(lambda n: slow_then_fast(10) + host_and_sql(busy=92, full_scan=1)) as server:
        assert report.main(["--url", server.url, "--interval", "0", "--html", str(out)]) == 0
    html = out.read_text()
    assert "<td>orders</td>" in html and "CPU busy" in html and '<td class="down">DOWN</td>' in html
    assert "1 probed target(s) down" in html  # the health score's reasons


def test_compare_html_draws_latency_bars_before_and_after(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    saved = []
    for name, bucket in (("before", 10), ("after", 4)):
        with ExpositionServer(_constant(slow_then_fast(bucket) + host_and_sql(10, 0))) as server:
            assert report.main(["--url", server.url, "--interval", "0", "--json"]) == 0
        path = tmp_path / f"{name}.json"
        path.write_text(capsys.readouterr().out)
        saved.append(str(path))
    out = tmp_path / "change.html"
    assert report.main(["--compare", *saved, "--html", str(out)]) == 0
    html = out.read_text()
    assert '<svg class="bars"' in html and "<td>orders</td>" in html
    bars = re.findall(r'width="(\d+)" height="\d+"><title>(p\d+) (before|after): ', html)
    widths = {(q, side): int(w) for w, q, side in bars}
    for q in ("p50", "p95", "p99"):
        assert widths[(q, "after")] < widths[(q, "before")], q  # faster after: a shorter bar
