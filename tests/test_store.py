"""The series store: type and label conflicts, limits, TTL expiry, histogram and summary values,
typed getters, and the snapshot/since/merge a worker process ships its series by."""

from __future__ import annotations

import math
import sys

import pytest

from exporter.model import FamilySpec, HistogramValue, MetricType
from exporter.store import (
    MAX_SHARED_VALUES,
    Counter,
    Gauge,
    Histogram,
    Limits,
    Refusal,
    Store,
    Summary,
)

C = FamilySpec("hits_total", MetricType.COUNTER, "h", ("a",), namespaced=False)
G = FamilySpec("hits_total", MetricType.GAUGE, "h", ("a",), namespaced=False)
H = FamilySpec("lat", MetricType.HISTOGRAM, "h", (), (0.1, 1.0), namespaced=False)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_same_labels_give_the_same_series() -> None:
    store = Store()
    first = store.series(C, ("x",))
    assert isinstance(first, Counter)
    assert store.series(C, ("x",)) is first and len(store) == 1


def test_type_conflict_is_refused_and_leaves_the_existing_series() -> None:
    store = Store()
    counter = store.series(C, ("x",))
    assert isinstance(counter, Counter)
    counter.inc(3)
    assert store.series(G, ("x",)) is Refusal.TYPE_CONFLICT
    assert store.series(G, ("y",)) is Refusal.TYPE_CONFLICT
    assert store.series(H._replace(buckets=(0.5,)), ()) is not Refusal.BUCKET_CONFLICT  # H is new
    assert store.series(H._replace(buckets=(0.7,)), ()) is Refusal.BUCKET_CONFLICT
    [family, _] = store.collect()
    assert family.spec == C and [s.value for s in family.samples] == [3.0]


def test_series_with_other_label_names_join_the_family_with_the_union() -> None:
    store = Store()
    a = store.series(C, ("x",))
    both = store.series(C._replace(labels=("a", "b")), ("x", "y"))
    none = store.series(C._replace(labels=()), ())
    assert isinstance(a, Counter) and isinstance(both, Counter) and isinstance(none, Counter)
    assert len({id(a), id(both), id(none)}) == 3
    assert store.series(C._replace(labels=("b", "a")), ("y", "x")) is both  # by name, not position
    assert store.series(C, ("x",)) is a and store.series(C._replace(labels=("a", "b")), ("x", "")) is a
    [family] = store.collect()
    assert family.spec.labels == ("a", "b")
    assert sorted(s.labels for s in family.samples) == [("", ""), ("x", ""), ("x", "y")]


def test_limits() -> None:
    store = Store(Limits(max_series=3, max_series_per_family=2))
    assert all(not isinstance(store.series(C, (str(i),)), Refusal) for i in range(2))
    assert store.series(C, ("2",)) is Refusal.FAMILY_LIMIT
    assert not isinstance(store.series(H, ()), Refusal)
    assert store.series(H._replace(name="other"), ()) is Refusal.GLOBAL_LIMIT
    assert len(store) == 3


def test_ttl_only_for_families_that_have_one() -> None:
    clock = Clock()
    store = Store(clock=clock)
    short = store.series(C, ("x",), ttl=10)
    forever = store.series(H, ())
    assert isinstance(short, Counter) and isinstance(forever, Histogram)
    clock.now = 9
    short.seen = clock.now  # what the ingest path does on each update
    clock.now = 15
    assert store.expire() == 0
    clock.now = 20
    assert store.expire() == 1 and len(store) == 1
    assert [f.spec.name for f in store.collect()] == ["lat"]
    fresh = store.series(C, ("x",), ttl=10)
    assert isinstance(fresh, Counter) and fresh is not short and fresh.value == 0


def test_expiry_gives_back_the_table_of_a_family_that_shrank() -> None:
    """A dict keeps the table of its largest size after deletions (1M series: 40 MiB that stayed
    after they all expired); the family's is rebuilt once most of its series went."""
    clock = Clock()
    store = Store(Limits(max_series=20_000, max_series_per_family=20_000), clock=clock)
    for i in range(10_000):
        store.series(C, (str(i),), ttl=10.0)
    full = sys.getsizeof(store._families["hits_total"].series)
    clock.now = 5.0
    kept = store.series(C, ("0",), ttl=10.0)
    assert isinstance(kept, Counter)
    kept.seen = clock.now
    clock.now = 12.0
    gone: list[object] = []
    assert store.expire(gone=gone) == 9_999 and len(gone) == 9_999 and kept not in gone
    assert sys.getsizeof(store._families["hits_total"].series) < full / 100
    assert store.series(C, ("0",), ttl=10.0) is kept


def test_new_series_share_a_repeated_label_value_and_nothing_unique_piles_up() -> None:
    """Issue 15: each series held its own copy of a value that thousands repeat (bytes a series);
    the table that shares them must stay bounded under unique values and let go on expiry."""
    clock = Clock()
    store = Store(Limits(max_series=20_000, max_series_per_family=20_000), clock=clock)
    two = FamilySpec("two_total", MetricType.COUNTER, "h", ("id", "shard"), namespaced=False)
    for i in range(MAX_SHARED_VALUES * 2):
        store.series(two, (str(i), "".join(["1", str(i % 2 + 4)])), ttl=10.0)  # a fresh "14" or "15" each
    keys = list(store._families["two_total"].series)
    assert len({id(shard) for _, shard in keys}) <= 2 * 3  # one copy of each per table generation
    assert [k for k in keys if k[0] == "7"] == [("7", "15")]
    assert len(store._values) <= MAX_SHARED_VALUES
    clock.now = 20.0
    assert store.expire() == MAX_SHARED_VALUES * 2
    assert not store._values


def test_histogram_le_is_inclusive_and_cumulative() -> None:
    store = Store()
    h = store.series(H, ())
    assert isinstance(h, Histogram)
    for v in (0.05, 0.1, 0.5, 1.0, 7.0):
        h.observe(v)
    value = h.sample()
    assert value == HistogramValue([2, 4], 5, 8.65) or (value.counts == [2, 4] and math.isclose(value.sum, 8.65))


def test_summary_quantiles_over_a_window() -> None:
    s = Summary((0.5, 0.99), size=100)
    for v in range(1, 201):
        s.observe(float(v))
    value = s.sample()
    assert value.count == 200 and value.sum == sum(range(1, 201))
    assert 150.0 <= dict(value.quantiles)[0.5] <= 151.0  # only the last 100 (101..200) are kept


def test_typed_getters_give_the_series_or_say_what_is_wrong() -> None:
    store = Store()
    counter = store.counter(C, "x")
    assert store.counter(C, "x") is counter and isinstance(counter, Counter)
    with pytest.raises(TypeError, match="hits_total"):
        store.gauge(G, "x")  # the family is a counter
    assert isinstance(store.gauge(G._replace(name="g"), "x"), Gauge)


@pytest.mark.parametrize("make", [Counter, Gauge, lambda: Histogram((0.1, 1.0)), lambda: Summary((0.5,), size=3)],
                         ids=["counter", "gauge", "histogram", "summary"])
def test_a_copy_merged_from_its_changes_matches_the_original(make: object) -> None:
    """What workers do: ship `since(last snapshot)` and `merge` it into the daemon's series."""
    worker, daemon = make(), make()  # type: ignore[operator]
    last = None
    for step in ([0.05, 2.0], [], [0.5, 0.5, 7.0]):
        for v in step:
            if isinstance(worker, Counter):
                worker.inc(v)
            elif isinstance(worker, Gauge):
                worker.set(worker.value + v)
            else:
                worker.observe(v)
        change = worker.since(last)
        assert (change is None) == (not step and last is not None)
        if change is not None:
            # A gauge ships its value; the receiver merges the change in that sender's share.
            daemon.merge(change - (last or 0.0) if isinstance(worker, Gauge) else change)
        last = worker.snapshot()
    if isinstance(worker, (Counter, Gauge)):
        assert daemon.value == worker.value != 0
    else:
        assert daemon.sample() == worker.sample()


def test_histogram_merge_skips_a_change_with_other_buckets() -> None:
    h = Histogram((0.1, 1.0))
    h.merge(([1, 2, 3, 4], 9.0))
    assert h.sample().count == 0


def test_summary_with_max_age_keeps_the_values_of_that_window() -> None:
    """statsd_exporter's summaries slide over time (summary_options.max_age, 10m by default)."""
    clock = Clock()
    s = Summary((0.5,), size=4)
    s.observe(100.0)  # before the window is set: kept, timed from then
    s.use_max_age(60.0, clock)
    clock.now = 30
    s.observe(1.0)
    s.observe(2.0)
    assert s.sample().quantiles == [(0.5, 2.0)] and s.sample().count == 3
    clock.now = 61  # 100.0 (timed at 0) is out of the window
    assert s.sample().quantiles == [(0.5, 1.0)]
    assert sorted(s.window) == [1.0, 2.0]
    clock.now = 95
    assert math.isnan(s.sample().quantiles[0][1]) and s.sample().count == 3  # count and sum stay cumulative
    for v in range(10):
        s.observe(float(v))
    assert s.window == [6.0, 7.0, 8.0, 9.0]  # and at most `size` of them
