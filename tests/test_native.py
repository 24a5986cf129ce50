"""Native histograms: bucket placement, the bucket limit, merging, spans, quantile error."""

from __future__ import annotations

import math
import random
from itertools import accumulate

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter import native
from exporter.native import NativeHistogram, bucket_key, pick_schema, spans, upper_bound

finite = st.floats(allow_nan=False, allow_infinity=False)
observations = st.lists(finite, max_size=300)


def _observed(values: list[float], schema: int = 8, max_buckets: int = 20, zero: float = 1e-3) -> NativeHistogram:
    h = NativeHistogram(schema, zero, max_buckets)
    for v in values:
        h.observe(v)
    return h


@pytest.mark.parametrize(("factor", "schema"), [(1.0001, 8), (1.002, 8), (1.01, 7), (1.1, 3), (1.5, 1),
                                                (2, 0), (4, -1), (16, -2), (256, -3), (65536, -4), (1e9, -4)])
def test_schema_is_the_finest_whose_growth_stays_within_the_factor(factor: float, schema: int) -> None:
    assert pick_schema(factor) == schema
    if schema < native.MAX_SCHEMA:  # the next finer schema would have grown by less
        assert 2 ** (2.0 ** -schema) <= factor < 2 ** (2.0 ** -(schema - 1)) or schema == native.MIN_SCHEMA


@pytest.mark.parametrize("factor", [1, 0.5, 0, -2, math.nan])
def test_a_factor_of_one_or_less_is_refused(factor: float) -> None:
    with pytest.raises(ValueError, match="greater than 1"):
        pick_schema(factor)


def test_bad_limits_are_refused() -> None:
    with pytest.raises(ValueError, match="max buckets"):
        NativeHistogram(3, max_buckets=0)
    with pytest.raises(ValueError, match="zero threshold"):
        NativeHistogram(3, zero_threshold=-1e-9)
    with pytest.raises(ValueError, match="schema"):
        NativeHistogram(9)


# Normal floats: bounds below them round in ldexp (and sit under the default zero threshold anyway).
@given(st.floats(min_value=2.2250738585072014e-308, allow_infinity=False), st.integers(native.MIN_SCHEMA, native.MAX_SCHEMA))
def test_a_value_lands_in_the_bucket_whose_bounds_hold_it(value: float, schema: int) -> None:
    key = bucket_key(value, schema)
    assert upper_bound(key - 1, schema) < value <= upper_bound(key, schema)


@pytest.mark.parametrize("schema", range(native.MIN_SCHEMA, native.MAX_SCHEMA + 1))
def test_powers_of_two_are_upper_bounds_and_inclusive(schema: int) -> None:
    for exp in range(-20, 21):
        value = 2.0 ** exp
        key = bucket_key(value, schema)
        assert upper_bound(key, schema) == value or schema < 0  # coarse schemas skip powers of two
        assert bucket_key(math.nextafter(value, math.inf), schema) == key + 1 or schema < 0


def test_zero_bucket_negatives_and_nan() -> None:
    h = NativeHistogram(0, zero_threshold=0.5)
    for v in (0.0, 0.5, -0.5, 0.25, 1.0, -1.0, -3.0, math.nan, math.inf):
        h.observe(v)
    assert h.zero_count == 4  # |v| <= threshold, both signs
    assert h.positive == {0: 1.0, 1025: 1.0}  # 1 is the upper bound of bucket 0; +Inf beyond the largest float
    assert h.negative == {0: 1.0, 2: 1.0}  # indexed by |v|: 1 in bucket 0, 3 in (2, 4]
    assert h.nan_count == 1 and h.count == 9
    assert math.isnan(h.sum)


@settings(max_examples=300)
@given(observations, st.integers(1, 40), st.integers(native.MIN_SCHEMA, native.MAX_SCHEMA))
def test_counts_sum_to_the_count_and_the_limit_holds(values: list[float], max_buckets: int, schema: int) -> None:
    h = _observed(values, schema, max_buckets)
    populated = len(h.positive) + len(h.negative)
    assert h.zero_count + sum(h.positive.values()) + sum(h.negative.values()) == len(values) == h.count
    assert populated <= max_buckets or h.schema == native.MIN_SCHEMA
    assert all(c > 0 for c in (*h.positive.values(), *h.negative.values()))


@settings(max_examples=300)
@given(observations, st.integers(1, 40), st.integers(1, 4), st.randoms(use_true_random=False))
def test_merging_workers_equals_one_histogram_of_every_observation(
    values: list[float], max_buckets: int, workers: int, rnd: random.Random
) -> None:
    whole = _observed(values, 8, max_buckets)
    parts: list[list[float]] = [[] for _ in range(workers)]
    for v in values:
        parts[rnd.randrange(workers)].append(v)
    merged = _observed(parts[0], 8, max_buckets)
    for part in parts[1:]:
        merged.merge(_observed(part, 8, max_buckets).snapshot())
    assert (merged.schema, merged.positive, merged.negative, merged.zero_count) == (
        whole.schema, whole.positive, whole.negative, whole.zero_count)
    assert merged.count == whole.count
    # Float addition is not associative: the sums agree to rounding of the magnitudes added.
    magnitude = sum(map(abs, values))
    assert abs(merged.sum - whole.sum) <= 1e-12 * magnitude or not math.isfinite(magnitude)


@settings(max_examples=200)
@given(st.lists(observations, max_size=6), st.integers(1, 30))
def test_a_worker_shipping_its_changes_gives_the_parent_every_observation(
    batches: list[list[float]], max_buckets: int
) -> None:
    """As statsd/workers.py ships them: `since(last snapshot)` after each batch, merged in the parent."""
    bounds = (0.1, 1.0, 10.0)
    worker = NativeHistogram(8, 1e-3, max_buckets, bounds)
    parent = NativeHistogram(8, 1e-3, max_buckets, bounds)
    whole = NativeHistogram(8, 1e-3, max_buckets, bounds)
    last = None
    for batch in batches:
        for v in batch:
            worker.observe(v)
            whole.observe(v)
        change = worker.since(last)
        last = worker.snapshot()
        if change is not None:
            parent.merge(change)
    assert last is None or worker.since(last) is None  # nothing new, nothing shipped
    assert (parent.schema, parent.positive, parent.negative, parent.zero_count, parent.classic) == (
        whole.schema, whole.positive, whole.negative, whole.zero_count, whole.classic)


@given(st.dictionaries(st.integers(-500, 500), st.integers(1, 10**6), max_size=60))
def test_spans_and_deltas_give_back_the_buckets(buckets: dict[int, int]) -> None:
    pairs = tuple(sorted((k, float(c)) for k, c in buckets.items()))
    layout = spans(pairs)
    assert sum(length for _, length in layout.spans) == len(layout.deltas)
    keys: list[int] = []
    index = 0
    for offset, length in layout.spans:
        index += offset
        keys += range(index, index + length)
        index += length
    counts = list(accumulate(layout.deltas))
    assert {k: c for k, c in zip(keys, counts) if c} == dict(pairs)
    assert all(offset > 2 for offset, _ in layout.spans[1:])  # gaps of 1 or 2 stay inside a span


@pytest.mark.parametrize("factor", [1.01, 1.1, 1.5])
def test_quantiles_stay_within_the_promised_relative_error(factor: float) -> None:
    rnd = random.Random(7)
    values = sorted(rnd.lognormvariate(-3, 1.2) for _ in range(10_000))
    h = _observed(values, pick_schema(factor), max_buckets=2000, zero=native.DEFAULT_ZERO_THRESHOLD)
    assert h.schema == pick_schema(factor)  # room enough: the resolution asked for is kept
    bound = native.relative_error(h.schema)
    assert bound <= factor - 1
    for q in (0.5, 0.9, 0.99):
        true = values[math.ceil(q * len(values)) - 1]
        assert abs(native.quantile(h.buckets(), q) - true) / true <= bound, q
