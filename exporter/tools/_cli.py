"""Small pieces the tools' command lines share: durations, number formats, tables."""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence

from exporter.durations import parse_duration

def duration(text: str) -> float:
    """argparse type: `10`, `1.5`, `500ms`, `30s`, `5m`, `1h30m` → seconds (> 0)."""
    text = text.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            seconds = parse_duration(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"invalid duration {text!r}: use seconds or e.g. 500ms, 15s, 5m, 1h") from None
    if not seconds > 0 or math.isinf(seconds):
        raise argparse.ArgumentTypeError(f"duration must be greater than 0: {text!r}")
    return seconds


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0: {text!r}")
    return value


def non_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value >= 0 or math.isinf(value):
        raise argparse.ArgumentTypeError(f"must be a finite number ≥ 0: {text!r}")
    return value


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


def table(header: Sequence[str], rows: Sequence[Sequence[str]], indent: str = "  ") -> str:
    """Left-align the first column, right-align the others (numbers)."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = []
    for row in [header, *rows]:
        cells = [str(c).ljust(widths[0]) if i == 0 else str(c).rjust(widths[i]) for i, c in enumerate(row)]
        lines.append(indent + "  ".join(cells).rstrip())
    return "\n".join(lines)


def nan_to_none(value: float) -> float | None:
    """JSON has no NaN: unknown figures are null."""
    return None if value is None or math.isnan(value) else value
