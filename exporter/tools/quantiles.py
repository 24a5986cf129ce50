"""Quantiles from cumulative histogram buckets, exactly as PromQL's histogram_quantile.

The report prints p50/p95/p99 from a daemon's `/metrics`, and a tuner compares
them with Grafana panels that run `histogram_quantile` in Prometheus; the two
must agree to the last digit, so this is the same algorithm (Prometheus 2.x,
`promql/quantile.go`, classic buckets), not an approximation of it.

Formula, for φ in [0, 1] and buckets sorted by upper bound `le` with
cumulative counts c_0 ≤ c_1 ≤ … ≤ c_n, the last one `le="+Inf"`:

    rank = φ · c_n
    b    = the first bucket (among all but +Inf) with c_b ≥ rank
    if no such bucket (rank lies in +Inf): answer = the largest finite `le`
    if b is the first bucket and its le ≤ 0: answer = its le
    else: answer = start + (le_b − start) · (rank − c_{b−1}) / (c_b − c_{b−1})
          where start = le_{b−1} (0 for the first bucket) and c_{−1} = 0

Edge cases (as Prometheus): φ < 0 → −Inf; φ > 1 → +Inf; φ NaN → NaN; no
`+Inf` bucket → NaN; fewer than two buckets → NaN; zero observations → NaN;
φ = 0 with an empty first bucket → NaN (0/0, as in Go's float division).
Buckets with the same `le` are summed, and counts that go down (a scrape
racing an update) are raised to the running maximum before interpolating.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Iterable, Sequence
from itertools import accumulate


def histogram_quantile(q: float, buckets: Iterable[tuple[float, float]]) -> float:
    """φ-quantile of cumulative `(upper_bound, count)` buckets (order does not matter)."""
    if math.isnan(q):
        return math.nan
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    merged = _coalesce(buckets)
    return sorted_quantiles((q,), [le for le, _ in merged], [c for _, c in merged])[0]


def sorted_quantiles(qs: Sequence[float], bounds: Sequence[float], counts: Sequence[float]) -> list[float]:
    """Quantiles in [0, 1] of buckets already sorted by distinct upper bound (the status page's
    hot path: one pass to prepare, a binary search per quantile; the same arithmetic as above)."""
    if not bounds or not math.isinf(bounds[-1]) or bounds[-1] < 0 or len(bounds) < 2:
        return [math.nan] * len(qs)
    counts = list(counts)
    if counts != sorted(counts):  # already monotonic (the usual case) needs no raising; NaN never compares equal
        counts = _monotonic(counts)
    observations = counts[-1]
    if observations == 0 or math.isnan(observations):
        return [math.nan] * len(qs)
    out = []
    for q in qs:
        if math.isnan(q) or q < 0 or q > 1:
            out.append(math.nan if math.isnan(q) else (-math.inf if q < 0 else math.inf))
            continue
        rank = q * observations
        b = bisect_left(counts, rank, 0, len(counts) - 1)  # Go's sort.Search: first counts[i] >= rank
        if b == len(counts) - 1:
            out.append(bounds[-2])
            continue
        if b == 0 and bounds[0] <= 0:
            out.append(bounds[0])
            continue
        start, end, count = 0.0, bounds[b], counts[b]
        if b > 0:
            start = bounds[b - 1]
            count -= counts[b - 1]
            rank -= counts[b - 1]
        out.append(start + (end - start) * _divide(rank, count))
    return out


def quantiles(qs: Sequence[float], buckets: Iterable[tuple[float, float]]) -> list[float]:
    """Several quantiles of one histogram."""
    pairs = list(buckets)
    return [histogram_quantile(q, pairs) for q in qs]


def _divide(a: float, b: float) -> float:
    """IEEE division as Go does it: q = 0 over an empty first bucket is 0/0 = NaN, not an exception."""
    if b == 0:
        return math.nan if a == 0 or math.isnan(a) else math.copysign(math.inf, a)
    return a / b


def _coalesce(buckets: Iterable[tuple[float, float]]) -> list[tuple[float, float]]:
    totals: dict[float, float] = {}
    for le, count in buckets:
        totals[le] = totals.get(le, 0.0) + count
    return sorted(totals.items())


def _monotonic(counts: list[float]) -> list[float]:
    """Running maximum (a NaN count keeps the maximum so far, as max() would)."""
    if counts and counts[0] == counts[0]:  # max(top, NaN) is top: the same as the loop below
        return list(accumulate(counts, max))
    out, top = [], -math.inf
    for c in counts:
        if c > top:
            top = c
        out.append(top)
    return out
