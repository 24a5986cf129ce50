"""The protobuf exposition and native histograms end to end: the daemon as a user starts it,
StatsD lines over UDP, real Prometheus 2.42 servers with and without native histograms."""

from __future__ import annotations

import gzip
import math
import random
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from exporter.exposition import Format
from exporter.native import NativeHistogram, pick_schema, relative_error
from tests.support.daemon import Daemon
from tests.support.metrics_pb import decode, native_buckets, proto_samples, text_samples
from tests.support.net import free_port
from tests.support.prometheus import Prometheus
from tests.test_protobuf import PROMETHEUS_CLASSIC, PROMETHEUS_NATIVE


def _send(port: int, lines: list[str]) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for start in range(0, len(lines), 20):
            sock.sendto("\n".join(lines[start:start + 20]).encode(), ("127.0.0.1", port))


def _wait_lines(d: Daemon, count: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while (d.value("apm_exporter_statsd_samples_total") or 0) < count:
        assert time.monotonic() < deadline, "the daemon did not count the lines sent"
        time.sleep(0.1)


def _statsd_daemon(daemon_factory: Callable[..., Daemon], extra: dict[str, Any] | None = None) -> tuple[Daemon, int]:
    port = free_port(socket.SOCK_DGRAM)
    return daemon_factory({"statsd": {"listeners": [f"udp://127.0.0.1:{port}"], **(extra or {})}}), port


def _identities(samples: set[Any]) -> set[tuple[str, frozenset[tuple[str, str]]]]:
    return {(name, labels) for name, labels, _ in samples}


def test_a_scrape_asking_as_prometheus_does_gets_protobuf_with_every_series(
    daemon_factory: Callable[..., Daemon],
) -> None:
    d, port = _statsd_daemon(daemon_factory)
    _send(port, [f"checkout.requests:{i}|c" for i in range(1, 6)] + [f"checkout.latency:{i * 7}|ms" for i in range(50)])
    _wait_lines(d, 55)
    status, headers, body = d.get("/metrics", {"Accept": PROMETHEUS_NATIVE, "Accept-Encoding": "gzip"})
    assert status == 200
    assert headers["Content-Type"] == Format.PROTOBUF.value
    assert headers.get("Content-Encoding") == "gzip"
    decoded = proto_samples(decode(gzip.decompress(body)))
    text = text_samples(d.scrape_text().encode())
    # Self-metrics move between two scrapes; which series exist does not, nor do the StatsD ones.
    assert _identities(decoded) == _identities(text)
    stable = {s for s in text if s[0].startswith(("checkout", "apm_checkout"))}
    assert stable and stable <= decoded
    status, headers, _ = d.get("/metrics", {"Accept": PROMETHEUS_CLASSIC})
    assert headers["Content-Type"] == Format.OPENMETRICS.value


def test_prometheus_with_and_without_native_histograms_scrapes_the_same_daemon(
    daemon_factory: Callable[..., Daemon], tmp_path: Path,
) -> None:
    d, port = _statsd_daemon(daemon_factory)
    _send(port, ["orders.created:3|c"])
    _wait_lines(d, 1)
    (tmp_path / "native").mkdir()
    (tmp_path / "classic").mkdir()
    native = Prometheus(tmp_path / "native", [f"127.0.0.1:{d.port}"], features=("native-histograms",)).start()
    classic = Prometheus(tmp_path / "classic", [f"127.0.0.1:{d.port}"]).start()
    try:
        for prom in (native, classic):
            found = prom.wait_for('orders_created_total{job="apm"}') or prom.wait_for('{__name__=~".*orders_created.*"}')
            assert found and float(found[0]["value"][1]) == 3, found
            assert prom.api("targets")["activeTargets"][0]["health"] == "up"
    finally:
        native.stop()
        classic.stop()


NATIVE_RULES = {
    "defaults": {"histogram_options": {"native_histogram_bucket_factor": 1.1}},  # both, as statsd_exporter
    "mappings": [
        {"match": "lat.native", "name": "lat_native_seconds", "histogram_options": {"histogram_type": "native"}},
        {"match": "lat.both", "name": "lat_both_seconds",
         "histogram_options": {"buckets": [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5]}},
    ],
}


def _latencies(n: int = 10_000) -> tuple[list[str], list[float]]:
    """Log-normal milliseconds (median 40 ms, a long tail) as the wire carries them, and in seconds
    as the daemon computes them (ms times 0.001)."""
    rnd = random.Random(13)
    wire = [f"{rnd.lognormvariate(math.log(40), 0.9):.3f}" for _ in range(n)]
    return wire, sorted(float(v) * 0.001 for v in wire)


def _true_quantile(values: list[float], q: float) -> float:
    return values[math.ceil(q * len(values)) - 1]


def test_native_quantiles_from_a_real_prometheus_are_within_the_schema_error(
    daemon_factory: Callable[..., Daemon], tmp_path: Path,
) -> None:
    d, port = _statsd_daemon(daemon_factory, NATIVE_RULES)
    wire, values = _latencies()
    lines = [f"lat.native:{v}|ms" for v in wire] + [f"lat.both:{v}|ms" for v in wire]
    for start in range(0, len(lines), 2000):  # in rounds, so a busy machine's socket buffer never overflows
        _send(port, lines[start:start + 2000])
        _wait_lines(d, min(start + 2000, len(lines)))
    (tmp_path / "native").mkdir()
    (tmp_path / "classic").mkdir()
    native = Prometheus(tmp_path / "native", [f"127.0.0.1:{d.port}"], features=("native-histograms",)).start()
    classic = Prometheus(tmp_path / "classic", [f"127.0.0.1:{d.port}"]).start()
    bound = relative_error(pick_schema(1.1))
    try:
        for family in ("lat_native_seconds", "lat_both_seconds"):
            count = native.wait_for(f"histogram_count({family})")
            assert count and float(count[0]["value"][1]) == len(values), count
            for q in (0.5, 0.9, 0.99):
                got = float(native.query(f"histogram_quantile({q}, {family})")[0]["value"][1])
                true = _true_quantile(values, q)
                assert abs(got - true) / true <= bound, (family, q, got, true, bound)
        # Without the flag the same daemon gives classic buckets (both) and _count/_sum (native only).
        count = classic.wait_for("lat_native_seconds_count")
        assert count and float(count[0]["value"][1]) == len(values)
        assert not classic.query("lat_native_seconds_bucket{le!='+Inf'}")
        bounds = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, math.inf]
        classic.wait_for("lat_both_seconds_bucket")
        for q in (0.5, 0.9, 0.99):
            got = float(classic.query(f"histogram_quantile({q}, sum by (le) (lat_both_seconds_bucket))")[0]["value"][1])
            true = _true_quantile(values, q)
            upper = next(b for b in bounds if b >= true)
            lower = max([0.0] + [b for b in bounds if b < true])
            assert lower <= got <= upper, (q, got, true)  # classic: only as good as its bucket
        assert not native.query("lat_both_seconds_bucket")  # 2.42 keeps the native series only
    finally:
        native.stop()
        classic.stop()


def test_udp_workers_merge_native_buckets_into_what_one_process_would_hold(
    daemon_factory: Callable[..., Daemon],
) -> None:
    rules = {"udp_workers": 2, "mappings": [{
        "match": "lat.native", "name": "lat_native_seconds",
        "histogram_options": {"histogram_type": "native", "native_histogram_max_buckets": 12}}]}
    d, port = _statsd_daemon(daemon_factory, rules)
    wire, _ = _latencies(3000)
    for start in range(0, len(wire), 10):  # many source sockets, so the kernel spreads them over both workers
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.sendto("\n".join(f"lat.native:{v}|ms" for v in wire[start:start + 10]).encode(), ("127.0.0.1", port))
    _wait_lines(d, len(wire))
    whole = NativeHistogram(pick_schema(1.1), max_buckets=12)
    for v in wire:
        whole.observe(float(v) * 0.001)
    deadline = time.monotonic() + 30
    while True:  # the workers ship their changes on a timer
        _, _, body = d.get("/metrics", {"Accept": PROMETHEUS_NATIVE})
        family = next(f for f in decode(body) if f.name == "lat_native_seconds")
        h = family.metric[0].histogram
        if h.sample_count == len(wire) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert h.sample_count == len(wire)
    assert h.schema == whole.schema < pick_schema(1.1)  # 12 buckets forced coarser schemas
    assert native_buckets(h.positive_span, h.positive_delta) == whole.positive
    assert h.zero_count == whole.zero_count == 0


def test_udp_workers_ship_the_exemplars_of_the_lines_they_read(daemon_factory: Callable[..., Daemon]) -> None:
    rules = {"udp_workers": 2, "mappings": [
        {"match": "pay.latency", "name": "pay_latency_seconds", "histogram_options": {"buckets": [0.01, 0.1, 1, 10]}},
        {"match": "pay.native", "name": "pay_native_seconds", "histogram_options": {"histogram_type": "native"}},
        {"match": "pay.orders", "name": "pay_orders_total"}]}
    d, port = _statsd_daemon(daemon_factory, rules)
    # One trace per classic bucket, per native bucket and per counter series, each line from its own
    # socket (the kernel spreads sources over both workers): whichever worker read it, it must show.
    classic = {f"{i:032x}": ms for i, ms in enumerate((5, 50, 500, 5000, 50000), start=1)}
    native = {f"{i:032x}": ms for i, ms in enumerate((2, 40, 900), start=100)}
    counters = {f"{i:032x}": f"shop{i}" for i in range(200, 206)}
    lines = [f"pay.latency:{ms}|ms|#trace_id:{t}" for t, ms in classic.items()]
    lines += [f"pay.native:{ms}|ms|#trace_id:{t}" for t, ms in native.items()]
    lines += [f"pay.orders:1|c|#shop:{shop},trace_id:{t}" for t, shop in counters.items()]
    for line in lines:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.sendto(line.encode(), ("127.0.0.1", port))
    _wait_lines(d, len(lines))

    def shown() -> tuple[set[str], set[str]]:
        _, _, body = d.get("/metrics", {"Accept": Format.OPENMETRICS.value})
        text = body.decode()
        om = {t for t in (*classic, *counters) if f'trace_id="{t}"' in text}
        _, _, body = d.get("/metrics", {"Accept": PROMETHEUS_NATIVE})
        family = [f for f in decode(body) if f.name == "pay_native_seconds"]
        pb = {e.label[0].value for f in family for m in f.metric for e in m.histogram.exemplars}
        return om, pb

    want = (set(classic) | set(counters), set(native))
    deadline = time.monotonic() + 30
    while (got := shown()) != want:  # the workers ship on a timer
        assert time.monotonic() < deadline, (got, want)
        time.sleep(0.2)


def _query_exemplars(prom: Prometheus, query: str, done: Callable[[dict[str, tuple[str, float]]], bool],
                     timeout: float = 30.0) -> dict[str, tuple[str, float]]:
    """Trace id -> (span id, value) of the exemplars Prometheus holds for `query`, once `done`
    says they are all there (or the time is up: the caller's assert then says what is missing)."""
    deadline = time.monotonic() + timeout
    while True:
        now = time.time()
        found = prom.api("query_exemplars", query=query, start=str(now - 300), end=str(now + 60))
        got = {e["labels"]["trace_id"]: (e["labels"].get("span_id", ""), float(e["value"]))
               for series in found for e in series["exemplars"]}
        if done(got) or time.monotonic() > deadline:
            return got
        time.sleep(0.5)


# Prometheus 2.42 scrapes OpenMetrics with exemplar storage alone, protobuf once native histograms are on too.
SCRAPES = pytest.mark.parametrize("features", [("exemplar-storage",), ("exemplar-storage", "native-histograms")],
                                  ids=["openmetrics", "protobuf"])


@SCRAPES
def test_query_exemplars_returns_the_trace_and_span_ids_sent_for_histograms_and_counters(
    daemon_factory: Callable[..., Daemon], tmp_path: Path, features: tuple[str, ...],
) -> None:
    rules = {"mappings": [{"match": "checkout.latency", "name": "checkout_latency_seconds",
                           "histogram_options": {"buckets": [0.01, 0.1, 1, 10]}},
                          {"match": "checkout.orders", "name": "checkout_orders_total"}]}
    d, port = _statsd_daemon(daemon_factory, rules)
    sent = {"4bf92f3577b34da6a3ce929d0e0e4736": (5, "00f067aa0ba902b7"),
            "00f067aa0ba902b7a3ce929d0e0e4736": (250, "a3ce929d0e0e4736"),
            "a1b2c3d4e5f60718293a4b5c6d7e8f90": (3000, "293a4b5c6d7e8f90")}
    lines = [f"checkout.latency:{ms}|ms|#trace_id:{trace},span_id:{span}" for trace, (ms, span) in sent.items()]
    # A counter keeps its latest exemplar only: the second line's, with what that line added.
    lines += ["checkout.orders:1|c|#shop:eu,trace_id:0af7651916cd43dd8448eb211c80319c,span_id:b7ad6b7169203331",
              "checkout.orders:3|c|#trace_id:5b8efff798038103d269b633813fc60c,shop:eu,span_id:eee19b7ec3c1b174",
              "checkout.orders:1|c|#shop:eu"]
    _send(port, lines)
    _wait_lines(d, len(lines))
    prom = Prometheus(tmp_path, [f"127.0.0.1:{d.port}"], features=features).start()
    try:
        prom.wait_for("checkout_latency_seconds_count")
        buckets = _query_exemplars(prom, "checkout_latency_seconds_bucket", lambda got: len(got) == len(sent))
        assert buckets == {trace: (span, ms / 1000) for trace, (ms, span) in sent.items()}
        orders = _query_exemplars(prom, "checkout_orders_total", lambda got: bool(got))
        assert orders == {"5b8efff798038103d269b633813fc60c": ("eee19b7ec3c1b174", 3.0)}
        (total,) = prom.query("checkout_orders_total")
        assert total["metric"]["shop"] == "eu" and float(total["value"][1]) == 5  # one series, every line counted
        assert not prom.query('{__name__=~"checkout.*", trace_id!=""}')  # never a label
        assert not prom.query('{__name__=~"checkout.*", span_id!=""}')
    finally:
        prom.stop()


@SCRAPES
def test_query_exemplars_returns_the_trace_and_span_ids_the_client_sent(
    daemon_factory: Callable[..., Daemon], tmp_path: Path, features: tuple[str, ...],
) -> None:
    from opentelemetry import trace
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

    from exporter.client import Telemetry

    d, port = _statsd_daemon(daemon_factory)
    tm = Telemetry(f"127.0.0.1:{port}", flush_interval=3600)  # flushed by hand below
    checkout = tm.timed("checkout")(lambda: time.sleep(0.002))
    cache = tm.cache("carts")
    checkout()
    cache.miss()
    tm.flush()  # from here on each flush asks for one exemplar per series
    sent = {}
    for i in range(3):
        trace_id, span_id = 0x4BF92F3577B34DA6A3CE929D0E0E4700 + i, 0x00F067AA0BA90200 + i
        context = SpanContext(trace_id=trace_id, span_id=span_id, is_remote=False,
                              trace_flags=TraceFlags(TraceFlags.SAMPLED))
        with trace.use_span(NonRecordingSpan(context)):
            checkout()
            checkout()
            cache.miss()
        tm.flush()
        sent[f"{trace_id:032x}"] = f"{span_id:016x}"
    _wait_lines(d, 11)
    prom = Prometheus(tmp_path, [f"127.0.0.1:{d.port}"], features=features).start()
    try:
        last = list(sent)[-1]
        timed = _query_exemplars(prom, "apm_operation_duration_seconds_bucket", lambda got: last in got)
        # The latest per bucket: all three when they fell in different buckets, else the last.
        assert last in timed and set(timed) <= set(sent), (timed, sent)
        assert all(span == sent[trace] for trace, (span, _) in timed.items()), (timed, sent)
        misses = _query_exemplars(prom, 'apm_cache_requests_total{result="miss"}', lambda got: last in got)
        assert misses == {last: (sent[last], 1.0)}  # a counter's latest
        count = prom.query('sum(apm_operation_duration_seconds_count{operation="checkout"})')
        assert float(count[0]["value"][1]) == 7  # the exemplar lines are observations, counted once
        (missed,) = prom.query('apm_cache_requests_total{cache="carts",result="miss"}')
        assert float(missed["value"][1]) == 4  # and increments, counted once
    finally:
        prom.stop()
        tm.close()
