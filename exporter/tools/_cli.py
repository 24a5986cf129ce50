"""Small pieces the tools' command lines share: durations, number formats, tables."""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence

from exporter.durations import parse_duration
from exporter.tools.formats import ms, nan_to_none, num, pct

__all__ = ["duration", "ms", "nan_to_none", "non_negative", "num", "pct", "positive_int", "table"]


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


def table(header: Sequence[str], rows: Sequence[Sequence[str]], indent: str = "  ") -> str:
    """Left-align the first column, right-align the others (numbers)."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = []
    for row in [header, *rows]:
        cells = [str(c).ljust(widths[0]) if i == 0 else str(c).rjust(widths[i]) for i, c in enumerate(row)]
        lines.append(indent + "  ".join(cells).rstrip())
    return "\n".join(lines)
