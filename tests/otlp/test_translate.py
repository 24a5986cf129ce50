"""OTLP requests (official message classes) -> the push store: kinds, temporalities, resets, conventions.

Each request is serialised and read back by the hand decoder (wire.py), as the receiver does;
the `h` fixture runs every test a second time through the protobuf library (the reference)."""

from __future__ import annotations

import math
from typing import Any

import pytest

from exporter import families
from exporter.model import HistogramValue
from exporter.otlp import wire
from exporter.otlp.config import OtlpConfig
from exporter.otlp.points import from_message
from exporter.otlp.translate import Translator
from exporter.store import Limits, Store
from tests.otlp.build import (
    CUMULATIVE,
    DELTA,
    counter,
    expo_point,
    exponential,
    gauge,
    hist_point,
    histogram,
    number,
    request,
    summary,
)

JOB = ("shop", "i-1")


class Harness:
    def __init__(self, config: OtlpConfig | None = None, limits: Limits | None = None, decoder: str = "wire") -> None:
        self.decoder = decoder
        self.now = 0.0
        self.store = Store(limits, clock=lambda: self.now)
        self.stats = Store()
        self.translator = Translator(config or OtlpConfig(), self.store, self.stats)

    def send(self, *metrics: Any, **kw: Any) -> tuple[int, int, str]:
        message = request(*metrics, **kw)
        decoded = wire.decode(message.SerializeToString()) if self.decoder == "wire" else from_message(message)
        return tuple(self.translator.export(decoded))  # type: ignore[return-value]

    def family(self, name: str) -> dict[tuple[str, ...], Any]:
        for fam in self.store.collect():
            if fam.spec.name == name:
                return {s.labels: s.value for s in fam.samples}
        return {}

    def value(self, name: str, *labels: str) -> Any:
        return self.family(name).get(labels)

    def rejected(self, reason: str) -> float:
        for fam in self.stats.collect():
            if fam.spec == families.OTLP_DATA_POINTS_REJECTED:
                return dict((s.labels, s.value) for s in fam.samples).get((reason,), 0.0)  # type: ignore[return-value]
        return 0.0


@pytest.fixture(params=["wire", "protobuf"])
def h(request: pytest.FixtureRequest) -> Harness:
    return Harness(decoder=request.param)


# --- counters ---------------------------------------------------------------------------------------
def test_cumulative_counter_exposes_the_total_after_n_exports(h: Harness) -> None:
    for t, total in enumerate([5, 8, 12], start=2):
        assert h.send(counter("orders", number(total, {"shop": "a"}, start=1, t=t))) == (1, 0, "")
    assert h.value("orders_total", *JOB, "a") == 12


def test_a_restarted_sdk_starts_a_new_cumulative_without_double_counting(h: Harness) -> None:
    h.send(counter("orders", number(10, start=1, t=2)))
    h.send(counter("orders", number(3, start=100, t=101)))  # new process: new start time, counts from 0
    h.send(counter("orders", number(7, start=100, t=102)))
    assert h.value("orders_total", *JOB) == 17


def test_a_cumulative_that_goes_down_without_a_new_start_time_is_a_reset(h: Harness) -> None:
    h.send(counter("orders", number(10, start=0, t=2)))
    h.send(counter("orders", number(4, start=0, t=3)))
    assert h.value("orders_total", *JOB) == 14


def test_delta_counter_accumulates_and_a_retried_export_is_not_counted_twice(h: Harness) -> None:
    for t in range(2, 7):
        h.send(counter("jobs", number(2, start=t - 1, t=t), temporality=DELTA))
    accepted, rejected, message = h.send(counter("jobs", number(2, start=5, t=6), temporality=DELTA))
    assert (accepted, rejected) == (0, 1) and "not newer" in message
    assert h.value("jobs_total", *JOB) == 10
    assert h.rejected("out_of_order") == 1


def test_two_scopes_sending_the_same_stream_add_up(h: Harness) -> None:
    h.send(counter("hits", number(5, t=2)), scope="a")
    h.send(counter("hits", number(7, t=2)), scope="b")
    h.send(counter("hits", number(6, t=3)), scope="a")
    assert h.value("hits_total", *JOB) == 13


def test_an_out_of_order_cumulative_point_is_refused(h: Harness) -> None:
    h.send(counter("c", number(5, t=10)))
    assert h.send(counter("c", number(3, t=9)))[1] == 1
    assert h.value("c_total", *JOB) == 5


# --- gauges and up-down counters -------------------------------------------------------------------
def test_gauge_and_cumulative_updown_set_delta_updown_adds(h: Harness) -> None:
    h.send(gauge("temp", number(21.5), unit="Cel"))
    h.send(gauge("temp", number(19.0, t=3), unit="Cel"))
    h.send(counter("inflight", number(4), monotonic=False))
    h.send(counter("inflight", number(2, t=3), monotonic=False))
    h.send(counter("queued", number(4, t=2), monotonic=False, temporality=DELTA))
    h.send(counter("queued", number(-1, t=3), monotonic=False, temporality=DELTA))
    assert h.value("temp_celsius", *JOB) == 19.0
    assert h.value("inflight", *JOB) == 2
    assert h.value("queued", *JOB) == 3


def test_int_and_double_values_are_both_read(h: Harness) -> None:
    h.send(gauge("a", number(0)), gauge("b", number(0.25)), gauge("c", number(7)))
    assert (h.value("a", *JOB), h.value("b", *JOB), h.value("c", *JOB)) == (0, 0.25, 7)


# --- histograms ---------------------------------------------------------------------------------------
def test_explicit_histogram_cumulative_keeps_its_bounds_and_counts(h: Harness) -> None:
    bounds = (0.1, 1.0)
    h.send(histogram("lat", hist_point(bounds, [1, 2, 0], 1.5, t=2), unit="s"))
    h.send(histogram("lat", hist_point(bounds, [3, 2, 1], 9.0, t=3), unit="s"))
    assert h.value("lat_seconds", *JOB) == HistogramValue([3, 5], 6, 9.0)


def test_explicit_histogram_delta_accumulates(h: Harness) -> None:
    for t in (2, 3, 4):
        h.send(histogram("lat", hist_point((1.0,), [1, 1], 2.5, start=t - 1, t=t), temporality=DELTA))
    assert h.value("lat", *JOB) == HistogramValue([3], 6, 7.5)


def test_a_restarted_histogram_stream_adds_its_new_cumulative(h: Harness) -> None:
    h.send(histogram("lat", hist_point((1.0,), [4, 0], 2.0, start=1, t=2)))
    h.send(histogram("lat", hist_point((1.0,), [1, 1], 3.0, start=50, t=51)))
    assert h.value("lat", *JOB) == HistogramValue([5], 6, 5.0)


def test_exponential_histogram_goes_into_classic_buckets(h: Harness) -> None:
    # scale 0: bucket i covers (2**i, 2**(i+1)]; offset -3 -> (1/8, 1/4], (1/4, 1/2], (1/2, 1]
    h.send(exponential("lat", expo_point(0, -3, [1, 2, 3], 2.0, zero=1), unit="s"))
    value = h.value("lat_seconds", *JOB)
    bounds = families.LATENCY_BUCKETS
    expected = [sum(c for upper, c in ((0.0, 1), (0.25, 1), (0.5, 2), (1.0, 3)) if upper <= b) for b in bounds]
    assert value == HistogramValue(expected, 7, 2.0)


def test_a_rescaled_cumulative_exponential_histogram_never_decreases_a_bucket(h: Harness) -> None:
    h.send(exponential("size", expo_point(1, 0, [4], 4.0, t=2)))  # (1, 1.41]
    before = h.value("size", *JOB)
    h.send(exponential("size", expo_point(0, 0, [5], 6.0, t=3)))  # rescaled: (1, 2]
    after = h.value("size", *JOB)
    assert after.count == 5 and all(a >= b for a, b in zip(after.counts, before.counts))
    assert list(after.counts) == sorted(after.counts)


def test_summary_keeps_count_sum_and_the_clients_quantiles(h: Harness) -> None:
    h.send(summary("rpc", 10, 2.5, [(0.5, 0.2), (0.99, 0.9)], t=2))
    h.send(summary("rpc", 15, 4.0, [(0.99, 1.1), (0.5, 0.25)], t=3))
    value = h.value("rpc", *JOB)
    assert (value.count, value.sum) == (15, 4.0)
    assert list(value.quantiles) == [(0.5, 0.25), (0.99, 1.1)]


def test_a_restarted_summary_stream_adds_its_new_count(h: Harness) -> None:
    h.send(summary("rpc", 10, 2.5, [(0.5, 0.2)], start=1, t=2))
    h.send(summary("rpc", 4, 1.0, [(0.5, 0.3)], start=50, t=51))
    value = h.value("rpc", *JOB)
    assert (value.count, value.sum, list(value.quantiles)) == (14, 3.5, [(0.5, 0.3)])


# --- resources --------------------------------------------------------------------------------------
def test_resource_becomes_job_instance_and_target_info(h: Harness) -> None:
    resource = {"service.name": "api", "service.namespace": "shop", "service.instance.id": "pod-7",
                "service.version": "1.2", "cloud.region": "eu"}
    h.send(gauge("up.ish", number(1)), resource=resource)
    assert h.value("up_ish", "shop/api", "pod-7") == 1
    info = h.family("target_info")
    assert len(info) == 1
    (labels, value), = info.items()
    assert labels[:3] == ("shop/api", "pod-7", "1.2") and value == 1


def test_promoted_resource_attributes_become_labels() -> None:
    h = Harness(OtlpConfig(promote_resource_attributes=["deployment.environment"]))
    h.send(gauge("g", number(2, {"k": "v"})), resource={"service.name": "s", "deployment.environment": "prod"})
    assert h.value("g", "s", "", "prod", "v") == 2


def test_colliding_attribute_keys_join_their_values(h: Harness) -> None:
    h.send(gauge("g", number(1, {"a.b": "x", "a_b": "y"})))
    assert h.family("g") == {(*JOB, "x;y"): 1}  # joined in the order of the keys as sent: "a.b" < "a_b"


def test_points_with_different_attribute_sets_share_the_family(h: Harness) -> None:
    h.send(counter("req", number(1, {"route": "/a"}), number(2, {"route": "/b", "error.type": "timeout"})))
    assert h.family("req_total") == {(*JOB, "", "/a"): 1, (*JOB, "timeout", "/b"): 2}


# --- conventions ---------------------------------------------------------------------------------------
OTEL_SECONDS_BOUNDS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)


def test_http_server_duration_fills_the_operation_family(h: Harness) -> None:
    counts = [0, 2, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1]
    ok = hist_point(OTEL_SECONDS_BOUNDS, counts, 20.3, {"http.request.method": "GET", "http.route": "/users/{id}",
                                                        "http.response.status_code": 200})
    failed = hist_point(OTEL_SECONDS_BOUNDS, [1] + [0] * 14, 0.001, {
        "http.request.method": "POST", "http.route": "/orders", "http.response.status_code": 503})
    h.send(histogram("http.server.request.duration", ok, failed, unit="s"))
    family = h.family(families.OPERATION_DURATION.name)
    value = family[("GET /users/{id}", "ok")]
    assert value.count == 4 and value.sum == pytest.approx(20.3)
    assert dict(zip(families.LATENCY_BUCKETS, value.counts))[0.01] == 2
    assert family[("POST /orders", "error")].count == 1


def test_old_http_server_duration_in_milliseconds_is_scaled_to_seconds(h: Harness) -> None:
    bounds = (0.0, 5.0, 10.0, 25.0, 50.0, 75.0, 100.0, 250.0, 500.0, 750.0, 1000.0, 2500.0, 5000.0, 7500.0, 10000.0)
    counts = [0, 0, 3] + [0] * 13
    h.send(histogram("http.server.duration", hist_point(bounds, counts, 24.0, {"http.method": "GET"}), unit="ms"))
    value = h.value(families.OPERATION_DURATION.name, "GET", "ok")
    assert value.sum == pytest.approx(0.024)
    assert dict(zip(families.LATENCY_BUCKETS, value.counts))[0.01] == 3


def test_rpc_server_duration_outcome_from_the_grpc_status(h: Harness) -> None:
    attrs = {"rpc.service": "shop.Cart", "rpc.method": "Add", "rpc.grpc.status_code": 14}
    h.send(histogram("rpc.server.duration", hist_point((5.0,), [1, 0], 2.0, attrs), unit="ms"))
    assert h.value(families.OPERATION_DURATION.name, "shop.Cart/Add", "error").count == 1


def test_pool_conventions_old_and_new_names(h: Harness) -> None:
    h.send(counter("db.client.connections.usage", number(3, {"pool.name": "main", "state": "used"}),
                   number(2, {"pool.name": "main", "state": "idle"}), monotonic=False, unit="{connection}"),
           counter("db.client.connection.max", number(10, {"db.client.connection.pool.name": "main"}),
                   monotonic=False),
           counter("db.client.connection.timeouts", number(4, {"db.client.connection.pool.name": "main"})),
           histogram("db.client.connection.wait_time", hist_point((0.01,), [2, 0], 0.004,
                                                                  {"db.client.connection.pool.name": "main"}), unit="s"))
    assert h.family(families.POOL_CONNECTIONS.name) == {("main", "active"): 3, ("main", "idle"): 2}
    assert h.value(families.POOL_MAX_CONNECTIONS.name, "main") == 10
    assert h.value(families.POOL_TIMEOUTS.name, "main") == 4
    assert h.value(families.POOL_WAIT_DURATION.name, "main").count == 2


def test_a_convention_name_of_the_wrong_kind_keeps_its_translated_name(h: Harness) -> None:
    h.send(gauge("http.server.request.duration", number(0.5), unit="s"))
    assert h.family(families.OPERATION_DURATION.name) == {}
    assert h.value("http_server_request_duration_seconds", *JOB) == 0.5


def test_conventions_can_be_switched_off() -> None:
    h = Harness(OtlpConfig(conventions=False))
    h.send(counter("db.client.connection.max", number(10, {"db.client.connection.pool.name": "main"}),
                   monotonic=False))
    assert h.family(families.POOL_MAX_CONNECTIONS.name) == {}
    assert h.value("db_client_connection_max", *JOB, "main") == 10


# --- bad input -----------------------------------------------------------------------------------------
def test_bad_points_are_refused_and_counted_while_the_good_ones_are_stored(h: Harness) -> None:
    accepted, rejected, message = h.send(
        gauge("g", number(math.nan), number(1.0, {"k": "ok"})),
        counter("", number(1)),
        counter("c", number(-1)),
        counter("d", number(math.inf)),
        histogram("h", hist_point((1.0,), [1, 1], 1.0)),
        pytest.importorskip("opentelemetry.proto.metrics.v1.metrics_pb2").Metric(name="nodata"),
    )
    assert accepted == 2 and rejected == 5, message  # the good gauge point and the histogram
    assert message == "NaN or infinite value"
    for reason in ("non_finite_value", "empty_name", "negative_counter", "no_data"):
        assert h.rejected(reason) >= 1, reason
    assert h.value("g", *JOB, "ok") == 1


def test_inconsistent_buckets_are_refused(h: Harness) -> None:
    dp = hist_point((1.0,), [1, 1], 1.0)
    dp.count = 5
    assert h.send(histogram("h", dp))[1] == 1
    assert h.rejected("invalid_buckets") == 1


def test_unspecified_temporality_is_refused(h: Harness) -> None:
    assert h.send(counter("c", number(1), temporality=0))[1] == 1
    assert h.rejected("unspecified_temporality") == 1


def test_a_type_conflict_is_refused_without_touching_the_first_family(h: Harness) -> None:
    h.send(gauge("thing", number(3)))
    assert h.send(counter("thing", number(1), monotonic=False, temporality=DELTA))[0] == 1  # same type: fine
    accepted, rejected, _ = h.send(histogram("thing", hist_point((1.0,), [1, 0], 0.5)))
    assert (accepted, rejected) == (0, 1)
    assert h.rejected("type_conflict") == 1
    assert h.value("thing", *JOB) == 4


def test_series_limits_are_the_stores() -> None:
    h = Harness(limits=Limits(max_series=100, max_series_per_family=10))
    points = [number(1, {"i": str(i)}) for i in range(50)]
    accepted, rejected, _ = h.send(gauge("many", *points))
    assert (accepted, rejected) == (10, 40)
    assert h.rejected("family_limit") == 40


def test_cumulative_total_is_exact_over_many_exports_in_both_temporalities(h: Harness) -> None:
    total = 0
    for t in range(2, 202):
        total += t % 7
        h.send(counter("cum", number(total, t=t)),
               counter("del", number(t % 7, start=t - 1, t=t), temporality=DELTA))
    assert h.value("cum_total", *JOB) == total == h.value("del_total", *JOB)


def test_no_recorded_value_points_are_skipped(h: Harness) -> None:
    dp = number(5)
    dp.flags = 1
    assert h.send(gauge("g", dp))[:2] == (1, 0)
    assert h.family("g") in ({}, {JOB: 0.0})


@pytest.mark.parametrize("temporality", [DELTA, CUMULATIVE])
def test_streams_are_counted(h: Harness, temporality: int) -> None:
    h.send(counter("c", number(1, {"a": "1"}), number(1, {"a": "2"}), temporality=temporality))
    assert h.translator.streams == 2


def test_pool_counts_take_any_unit_as_the_instrumentations_write_them(h: Harness) -> None:
    for unit in ("connections", "{connection}", "1", ""):
        h.send(counter("db.client.connections.usage", number(len(unit), {"pool.name": unit or "none",
                                                                          "state": "idle"}),
                       monotonic=False, unit=unit))
    assert h.value(families.POOL_CONNECTIONS.name, "connections", "idle") == 11
    assert len(h.family(families.POOL_CONNECTIONS.name)) == 4


def test_a_scope_sending_old_and_new_http_names_is_counted_once(h: Harness) -> None:
    attrs = {"http.method": "GET", "http.request.method": "GET"}
    h.send(histogram("http.server.duration", hist_point((100.0,), [1, 0], 30.0, attrs), unit="ms"),
           histogram("http.server.request.duration", hist_point((0.1,), [1, 0], 0.03, attrs), unit="s"))
    assert h.value(families.OPERATION_DURATION.name, "GET", "ok").count == 1


def test_streams_a_convention_folds_into_one_series_keep_their_own_cumulatives(h: Harness) -> None:
    def export(t: int, a: int, b: int) -> None:
        h.send(histogram("http.server.duration", *(
            hist_point((100.0,), [n, 0], 10.0 * n, {"http.method": "GET", "net.host.port": port}, t=t)
            for port, n in ((80, a), (81, b))), unit="ms"))

    export(2, 1, 2)
    export(3, 3, 2)  # port 80 grew by 2, port 81 did not move
    assert h.value(families.OPERATION_DURATION.name, "GET", "ok").count == 5


def test_the_route_cache_is_bounded_and_streams_survive_its_clearing(monkeypatch: pytest.MonkeyPatch) -> None:
    from exporter.otlp import translate

    monkeypatch.setattr(translate, "MAX_CACHE_ENTRIES", 10)
    h = Harness()
    for t in (2, 3):
        h.send(counter("c", *(number(t * 10, {"i": str(i)}, t=t) for i in range(25))))
    assert h.value("c_total", *JOB, "7") == 30
    assert h.translator._cached <= 25


# --- exponential histograms as native ones ------------------------------------------------------------
def test_exponential_histogram_keeps_its_buckets_as_a_native_histogram() -> None:
    h = Harness(OtlpConfig(exponential_histograms="native"))
    # scale 0, offset -3: OTLP buckets -3, -2, -1 = (1/8, 1/4], (1/4, 1/2], (1/2, 1] = Prometheus keys -2, -1, 0
    h.send(exponential("lat", expo_point(0, -3, [1, 2, 3], 2.0, zero=1), unit="s"))
    value = h.value("lat_seconds", *JOB)
    assert (value.count, value.sum) == (7, 2.0)
    assert value.native.schema == 0 and value.native.zero_count == 1
    assert dict(value.native.positive) == {-2: 1, -1: 2, 0: 3}
    assert list(value.counts) == []  # native only: no classic buckets


def test_native_cumulative_points_add_their_increments_and_a_finer_scale_is_coarsened() -> None:
    h = Harness(OtlpConfig(exponential_histograms="both"))
    h.send(exponential("size", expo_point(10, 0, [2, 1], 3.0, t=2)))  # scale 10 > schema 8: coarsened by 2
    h.send(exponential("size", expo_point(10, 0, [5, 1], 6.0, t=3)))
    value = h.value("size", *JOB)
    assert (value.count, value.sum) == (6, 6.0)
    assert value.native.schema == 8 and dict(value.native.positive) == {1: 6}
    assert value.counts[-1] == 6  # both: the classic buckets as well


def test_a_restarted_native_stream_adds_its_new_cumulative() -> None:
    h = Harness(OtlpConfig(exponential_histograms="native"))
    h.send(exponential("size", expo_point(0, 0, [4], 4.0, start=1, t=2)))
    h.send(exponential("size", expo_point(0, 0, [1], 1.5, start=50, t=51)))
    value = h.value("size", *JOB)
    assert (value.count, value.sum, dict(value.native.positive)) == (5, 5.5, {1: 5})


# --- expiry ---------------------------------------------------------------------------------------------
def test_a_stream_that_stops_sending_is_forgotten_after_the_ttl() -> None:
    h = Harness(OtlpConfig(ttl=10))
    h.send(counter("c", number(5, {"s": "quiet"}, t=2), number(5, {"s": "busy"}, t=2)))
    for t in (3, 4, 5):
        h.now += 6
        h.send(counter("c", number(5 + t, {"s": "busy"}, t=t)))
    assert h.translator.expire() == 1  # 18 s without a point: past the TTL and its margin
    h.store.expire()
    assert h.translator.streams == 1
    assert h.family("c_total") == {(*JOB, "busy"): 10}


def test_a_stream_back_after_its_series_expired_starts_over_and_a_restart_is_not_double_counted() -> None:
    h = Harness(OtlpConfig(ttl=10))
    h.send(counter("c", number(5, start=1, t=2)))
    h.now += 11
    h.store.expire()  # the series went; the stream's state has not been swept yet
    h.send(counter("c", number(8, start=1, t=3)))
    assert h.value("c_total", *JOB) == 8  # the sender's total, not 5 + 8
    h.now += 20
    h.store.expire()
    h.translator.expire()
    assert h.translator.streams == 0 and h.family("c_total") == {}
    h.send(counter("c", number(2, start=50, t=51)))  # a restarted process
    assert h.value("c_total", *JOB) == 2


def test_a_late_stream_whose_series_is_still_there_carries_on() -> None:
    h = Harness(OtlpConfig(ttl=10))
    h.send(counter("c", number(5, start=1, t=2)))
    h.now += 11  # past the TTL, but the store has not expired the series
    h.send(counter("c", number(8, start=1, t=3)))
    assert h.value("c_total", *JOB) == 8


def test_without_a_ttl_streams_and_series_stay() -> None:
    h = Harness(OtlpConfig(ttl=None))
    h.send(counter("c", number(5)))
    h.now += 1e9
    assert h.translator.expire() == 0 and h.store.expire() == 0
    assert h.translator.streams == 1


def test_convention_series_take_no_ttl_of_ours() -> None:
    h = Harness(OtlpConfig(ttl=10))
    h.send(histogram("http.server.request.duration", hist_point((0.1,), [1, 0], 0.03, {"http.request.method": "GET"}),
                     unit="s"))
    h.now += 100
    h.translator.expire()
    h.store.expire()
    assert h.value(families.OPERATION_DURATION.name, "GET", "ok").count == 1
    assert h.translator.streams == 0
