"""Numbers for people: latencies, ratios, counts; '-' for unknown. No argparse here: the status
page imports these in the daemon, where every module is idle RSS."""

from __future__ import annotations

import math


def ms(seconds: float | None) -> str:
    """A latency for humans: 0.42ms, 23.1ms, 1.25s; '-' when unknown."""
    if seconds is None or math.isnan(seconds):
        return "-"
    if math.isinf(seconds):
        return "+Inf"
    if seconds >= 1.0:
        return f"{seconds:.2f}s"
    if seconds >= 0.1:
        return f"{seconds * 1000:.0f}ms"
    if seconds >= 0.01:
        return f"{seconds * 1000:.1f}ms"
    return f"{seconds * 1000:.2f}ms"


def pct(ratio: float | None, digits: int = 2) -> str:
    if ratio is None or math.isnan(ratio):
        return "-"
    return f"{ratio * 100:.{digits}f}%"


def num(value: float | None, digits: int = 1) -> str:
    if value is None or math.isnan(value):
        return "-"
    return f"{value:,.{digits}f}"


def nan_to_none(value: float) -> float | None:
    """JSON has no NaN: unknown figures are null."""
    return None if value is None or math.isnan(value) else value
