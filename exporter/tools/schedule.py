"""Request-rate schedules for the load generator: when may request n start?

Every shape (sustained, ramp, spike, step-up) is a piecewise-linear rate r(t)
in requests per second. The number of requests allowed by time t is the
integral N(t) = ∫₀ᵗ r; request n (0-based) may start at the time N(t) reaches
n. That is a token bucket whose refill rate follows the shape and whose
tokens are handed out in order, so a worker that falls behind catches up
(the offered load is kept, as wrk2 does) instead of silently lowering it.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Segment:
    """Rate goes linearly from `r0` to `r1` req/s between `t0` and `t1` seconds."""

    t0: float
    t1: float
    r0: float
    r1: float

    def tokens(self, t: float) -> float:
        """Requests allowed between t0 and t (t within the segment)."""
        tau = min(max(t - self.t0, 0.0), self.t1 - self.t0)
        slope = (self.r1 - self.r0) / (self.t1 - self.t0) if self.t1 > self.t0 else 0.0
        return self.r0 * tau + 0.5 * slope * tau * tau

    def time_for(self, tokens: float) -> float:
        """Inverse of tokens(): the time within the segment at which `tokens` are allowed."""
        length = self.t1 - self.t0
        slope = (self.r1 - self.r0) / length if length > 0 else 0.0
        if abs(slope) < 1e-12:
            return self.t0 + (tokens / self.r0 if self.r0 > 0 else length)
        # 0.5·slope·τ² + r0·τ − tokens = 0, the root in [0, length].
        disc = self.r0 * self.r0 + 2.0 * slope * tokens
        tau = (-self.r0 + math.sqrt(max(disc, 0.0))) / slope
        return self.t0 + min(max(tau, 0.0), length)


class Schedule:
    """A rate profile over [0, duration]; `rate is None` means as fast as the workers go."""

    def __init__(self, segments: list[Segment], step: float | None = None) -> None:
        if any(s.r0 < 0 or s.r1 < 0 for s in segments):
            raise ValueError("rates must not be negative")
        self.segments = segments
        self.duration = segments[-1].t1 if segments else 0.0
        self.step = step  # step-up shapes: length of one step, for the breaking-point check
        self._starts = [s.t0 for s in segments]
        self._cumulative: list[float] = []
        total = 0.0
        for s in segments:
            self._cumulative.append(total)
            total += s.tokens(s.t1)
        self.total = total

    def rate(self, t: float) -> float:
        s = self._segment(t)
        if s is None:
            return 0.0
        length = s.t1 - s.t0
        return s.r0 + (s.r1 - s.r0) * ((t - s.t0) / length if length else 0.0)

    def _segment(self, t: float) -> Segment | None:
        if not self.segments or t < 0 or t >= self.duration:
            return None
        return self.segments[bisect.bisect_right(self._starts, t) - 1]

    def tokens(self, t: float) -> float:
        """Requests allowed from 0 to t: the integral of the rate."""
        if t <= 0 or not self.segments:
            return 0.0
        if t >= self.duration:
            return self.total
        i = bisect.bisect_right(self._starts, t) - 1
        return self._cumulative[i] + self.segments[i].tokens(t)

    def time_of(self, n: float) -> float | None:
        """When request n may start, or None if the schedule ends first."""
        if n >= self.total or not self.segments:
            return None
        i = bisect.bisect_right(self._cumulative, n) - 1
        # Skip zero-rate segments that add no tokens.
        while i + 1 < len(self.segments) and self._cumulative[i + 1] <= n:
            i += 1
        return self.segments[i].time_for(n - self._cumulative[i])


def sustained(rate: float, duration: float) -> Schedule:
    return Schedule([Segment(0.0, duration, rate, rate)])


def ramp(start: float, end: float, ramp_time: float, duration: float) -> Schedule:
    """Linear from `start` to `end` req/s over `ramp_time`, then held at `end`."""
    ramp_time = min(ramp_time, duration)
    segments = [Segment(0.0, ramp_time, start, end)]
    if duration > ramp_time:
        segments.append(Segment(ramp_time, duration, end, end))
    return Schedule(segments)


def spike(base: float, peak: float, at: float, length: float, duration: float) -> Schedule:
    """`base` req/s, jumping to `peak` for `length` seconds from `at`, then back."""
    at = min(max(at, 0.0), duration)
    end = min(at + length, duration)
    points = [(0.0, at, base), (at, end, peak), (end, duration, base)]
    return Schedule([Segment(a, b, r, r) for a, b, r in points if b > a])


def step_up(start: float, increment: float, step: float, duration: float) -> Schedule:
    """`start` req/s, plus `increment` every `step` seconds, until `duration`."""
    segments, t, r = [], 0.0, start
    while t < duration - 1e-9:
        end = min(t + step, duration)
        segments.append(Segment(t, end, r, r))
        t, r = end, r + increment
    return Schedule(segments, step=step)
