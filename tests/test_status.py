"""The status model: bounded history, windows from histogram deltas, resets, targets, the page."""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re

import pytest

from exporter import families as F
from exporter.model import Family, HistogramValue, Sample
from exporter.status import assets, page
from exporter.status.health import Objectives, health
from exporter.status.history import History
from exporter.status.model import Model, Sampler
from exporter.tools._cli import ms
from exporter.tools.quantiles import histogram_quantile

BOUNDS = F.LATENCY_BUCKETS


def histogram(observations: list[float]) -> HistogramValue:
    counts = [float(sum(1 for o in observations if o <= b)) for b in BOUNDS]
    return HistogramValue(counts, float(len(observations)), float(sum(observations)))


def ops(**by_operation: tuple[list[float], list[float]]) -> Family:
    """operation -> (ok latencies, error latencies), cumulative since start."""
    samples = []
    for name, (ok, bad) in by_operation.items():
        samples.append(Sample((name, "ok"), histogram(ok)))
        samples.append(Sample((name, "error"), histogram(bad)))
    return Family(F.OPERATION_DURATION, samples)


def up(**targets: float) -> list[Family]:
    rows = [(("redis", name), v) for name, v in targets.items()]
    return [F.UP.family(rows), F.COLLECTOR_DURATION.family((k, 0.01) for k, _ in rows),
            F.COLLECTOR_SUCCESS.family(rows)]


def expected_quantile(q: float, observations: list[float]) -> float:
    h = histogram(observations)
    return histogram_quantile(q, [*zip(BOUNDS, h.counts, strict=True), (math.inf, h.count)])


def test_history_is_bounded_in_rows_and_drops_keys_that_went_away() -> None:
    h = History(step=1.0, points=4)
    for t in range(10):
        h.append(float(t), {("op", "a"): [1.0], ("op", f"churn-{t}"): [1.0]})
    assert h.rows == 4
    assert h.column(("op", "a"), 0) == [1.0, 1.0, 1.0, 1.0]
    # A key seen once is kept while it is in the ring, then dropped: churn cannot grow it.
    assert sorted(k[1] for k in h.keys("op")) == ["a", "churn-6", "churn-7", "churn-8", "churn-9"]
    assert h.total(("op", "a"), 2) == [2.0]
    assert h.span(2) == 2.0


def test_history_refuses_keys_past_its_limit_and_counts_them() -> None:
    h = History(step=1.0, points=4, max_keys=2)
    h.append(0.0, {("op", "a"): [1.0], ("op", "b"): [1.0], ("op", "c"): [1.0]})
    assert len(h) == 2 and h.dropped_keys == 1


def test_operation_windows_come_from_histogram_deltas() -> None:
    history = History(step=15.0, points=60)
    sampler = Sampler(history)
    before = [0.003] * 50  # observed before the first sample: not in any window
    sampler.observe([ops(checkout=(before, []))], at=1000.0)
    fast, slow = [0.02] * 90, [0.4] * 10
    sampler.observe([ops(checkout=(before + fast, slow))], at=1015.0)
    sampler.observe([ops(checkout=(before + fast, slow))], at=1030.0)
    status = Model(history, sampler).snapshot()
    [op] = status["operations"]
    assert op["operation"] == "checkout"
    assert op["count"] == 100 and op["errors"] == 10 and op["error_ratio"] == 0.1
    assert op["rate"] == 100 / 30
    assert op["p99"] == expected_quantile(0.99, fast + slow)
    assert op["p50"] == expected_quantile(0.5, fast + slow)
    assert op["windows"]["1m"]["count"] == 100
    assert op["spark"]["rate"] == [None, pytest.approx(100 / 15), 0.0]


def test_a_counter_reset_counts_from_zero() -> None:
    history = History(step=15.0, points=60)
    sampler = Sampler(history)
    sampler.observe([ops(a=([0.01] * 500, []))], at=0.0)
    sampler.observe([ops(a=([0.01] * 7, []))], at=15.0)  # the app restarted: 7 since then
    status = Model(history, sampler).snapshot()
    assert status["operations"][0]["count"] == 7


def test_operations_are_slowest_first() -> None:
    history = History(step=15.0, points=60)
    sampler = Sampler(history)
    sampler.observe([], at=0.0)
    sampler.observe([ops(fast=([0.001] * 10, []), slow=([2.0] * 10, []), mid=([0.2] * 10, []))], at=15.0)
    assert [o["operation"] for o in Model(history, sampler).snapshot()["operations"]] == ["slow", "mid", "fast"]


def test_a_down_target_shows_its_last_error_and_last_success() -> None:
    history = History(step=15.0, points=60)
    sampler = Sampler(history)
    sampler.observe(up(cache=1.0, broker=1.0), at=100.0)
    sampler.observe(up(cache=1.0, broker=0.0), at=115.0)
    status = Model(history, sampler).snapshot({("redis", "broker"): (110.0, "ConnectionError: refused")})
    broker, cache = status["targets"]  # down first
    assert (broker["target"], broker["up"], broker["last_error"]) == ("broker", 0.0, "ConnectionError: refused")
    assert broker["last_success_at"] == 100.0
    assert cache["up"] == 1.0 and cache["last_success_at"] == 115.0
    assert status["targets_down"] == [{"collector": "redis", "target": "broker"}]
    assert any("1 probed target(s) down" in p["reason"] for p in status["health"]["penalties"])


def test_parse_errors_by_reason_and_the_health_score_is_the_reports() -> None:
    history = History(step=15.0, points=60)
    sampler = Sampler(history)
    parse = F.STATSD_PARSE_ERRORS
    sampler.observe([parse.family([(("malformed_line",), 2.0)])], at=0.0)
    sampler.observe([parse.family([(("malformed_line",), 5.0), (("invalid_value",), 1.0)]),
                     ops(a=([0.9] * 10, []))], at=15.0)
    status = Model(history, sampler).snapshot()
    reasons = {r["reason"]: r["count"] for r in status["statsd"]["parse_errors"]}
    assert reasons == {"malformed_line": 3.0, "invalid_value": 1.0}
    # One scoring function: the report's own, fed the same keys.
    assert status["health"] == health(status, Objectives())
    assert any("p99 over 500ms" in p["reason"] for p in status["health"]["penalties"])


def test_the_page_shows_the_figures_and_its_script_and_style_match_the_policy() -> None:
    history = History(step=15.0, points=60)
    sampler = Sampler(history)
    sampler.observe(up(broker=1.0), at=0.0)
    sampler.observe([ops(checkout=([0.02] * 99, [0.4])), *up(broker=0.0)], at=15.0)
    status = Model(history, sampler).snapshot({("redis", "broker"): (10.0, "refused <by> peer")})
    html = page.render(status, [("/metrics", "Metrics")], live=True).decode()
    row = re.search(r"<tr><td>checkout</td>(.*?)</tr>", html)
    assert row is not None
    assert "<td>6.67</td>" in row.group(1)  # 99 + 1 in 15 s
    assert f'<td class="p99">{ms(expected_quantile(0.99, [0.02] * 99 + [0.4]))}</td>' in row.group(1)
    assert '<td class="down">DOWN</td>' in html and "refused &lt;by&gt; peer" in html
    assert '<a href="/metrics">Metrics</a>' in html
    for tag, text in (("script", assets.SCRIPT), ("style", assets.STYLE)):
        digest = base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()
        assert f"<{tag}>{text}</{tag}>" in html and f"'sha256-{digest}'" in assets.CSP
    assert "http://" not in html and "https://" not in html  # nothing loaded from anywhere
    json.dumps(status, allow_nan=False)  # the API's body: strict JSON


def test_a_saved_page_has_no_script_and_compare_draws_bars() -> None:
    history = History(step=15.0, points=60)
    sampler = Sampler(history)
    sampler.observe([], at=0.0)
    sampler.observe([ops(a=([0.02] * 10, []))], at=15.0)
    status = Model(history, sampler).snapshot()
    assert b"<script>" not in page.render(status)


def test_a_family_from_two_sources_is_read_as_one() -> None:
    # /metrics can carry the same family twice: pushed series from the store, probed ones.
    history = History(step=15.0, points=60)
    sampler = Sampler(history)
    requests = F.CACHE_REQUESTS
    for at, n in ((0.0, 0.0), (15.0, 10.0)):
        sampler.observe([requests.family([(("prices", "l1", "hit"), 3 * n), (("prices", "l1", "miss"), n)]),
                         requests.family([(("sessions", "", "hit"), n), (("sessions", "", "miss"), n)])], at=at)
    caches = {c["cache"]: c["hit_ratio"] for c in Model(history, sampler).snapshot()["caches"]}
    assert caches == {"prices": 0.75, "sessions": 0.5}


def test_compact_counts_widen_when_a_step_does_not_fit() -> None:
    h = History(step=1.0, points=4)
    h.append(0.0, {("op", "a"): [1.0, 2.0, 0.5]}, integral={"op": 2})
    h.append(1.0, {("op", "a"): [70000.0, 2.0, 0.5]}, integral={"op": 2})  # more than uint16 holds
    h.append(2.0, {("op", "a"): [1.5, math.nan, 0.25]}, integral={"op": 2})  # a sampled line's fraction
    assert h.column(("op", "a"), 0) == [1.0, 70000.0, 1.5]
    assert math.isnan(h.column(("op", "a"), 1)[2]) and h.column(("op", "a"), 2) == [0.5, 0.5, 0.25]
    assert h.total(("op", "a"), 3) == [70002.5, 4.0, 1.25]


def test_otlp_intake_rates_and_rejections() -> None:
    history = History(step=10.0, points=60)
    sampler = Sampler(history)
    for at, n in ((0.0, 0.0), (10.0, 1.0)):
        sampler.observe([F.OTLP_REQUESTS.family([(("http",), 20 * n)]),
                         F.OTLP_DATA_POINTS.family([(("http",), 500 * n)]),
                         F.OTLP_DATA_POINTS_REJECTED.family([(("unsupported_type",), 3 * n)])], at=at)
    statsd = Model(history, sampler).snapshot()["statsd"]
    [http] = statsd["otlp"]
    assert (http["requests_per_second"], http["data_points_per_second"]) == (2.0, 50.0)
    assert [(r["reason"], r["count"]) for r in statsd["otlp_rejected"]] == [("data point: unsupported_type", 3.0)]
    assert "OTLP transport" in page.render(Model(history, sampler).snapshot()).decode()


def test_the_history_counts_its_own_bytes_as_rings_come_widen_and_go() -> None:
    h = History(step=1.0, points=4)

    def counted() -> int:
        return sum(r.nbytes() for r in h._rings.values()) + h.times.itemsize * h.points

    h.append(0.0, {("op", "a"): [1.0, 0.5], ("op", "b"): [1.0, 0.5]}, integral={"op": 1})
    assert h.nbytes() == counted()
    h.append(1.0, {("op", "a"): [0.5, 0.5]}, integral={"op": 1})  # a widens, b goes quiet
    assert h.nbytes() == counted()
    for t in range(2, 8):
        h.append(float(t), {("op", "a"): [0.5, 0.5]}, integral={"op": 1})
    assert h.keys("op") == [("op", "a")] and h.nbytes() == counted()


def test_kernel_drops_by_listener() -> None:
    history = History(step=10.0, points=60)
    sampler = Sampler(history)
    for at, n in ((0.0, 4.0), (10.0, 10.0)):
        sampler.observe([F.STATSD_KERNEL_DROPS.family([(("udp://127.0.0.1:8125",), n)])], at=at)
    status = Model(history, sampler).snapshot()
    assert [(r["reason"], r["count"]) for r in status["statsd"]["kernel_drops"]] == [("udp://127.0.0.1:8125", 6.0)]
    assert "kernel drops (full receive buffer) by listener" in page.render(status).decode()
