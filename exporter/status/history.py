"""A bounded ring of per-step rows: what the status page's windows and sparklines read.

Each row is a fixed-width vector of float32 (per-step deltas of counters and
histogram buckets, last values of gauges) under a key such as
`("op", "checkout")`. Memory is bounded twice: `points` rows per key, and at most
`max_keys` keys (a key that has not been seen for a whole ring is dropped, so
churning label values cannot grow it). float32 keeps 1,000 operations with 13
buckets at 15 minutes of 15 s steps under 5 MiB (bench/status.py measures it);
its 24-bit mantissa is exact for per-step counts below 16 million.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Hashable, Mapping, Sequence

NAN = math.nan
Key = tuple[Hashable, ...]


class History:
    def __init__(self, step: float = 15.0, points: int = 60, max_keys: int = 20_000,
                 windows: Sequence[float] = (60.0, 300.0, 900.0)) -> None:
        if step <= 0 or points < 2:
            raise ValueError("the history needs a positive step and at least two points")
        self.step = step
        self.points = points
        self.max_keys = max_keys
        # Window lengths in rows (at most points - 1: a window of k rows needs k + 1 samples),
        # each kept as running column sums so reading a window costs one row, not k.
        self.windows = sorted({self.steps(w) for w in windows})
        self.times = array("d", [NAN]) * points
        self.head = -1  # ring index of the newest row
        self.rows = 0  # rows written so far (capped at points)
        self.dropped_keys = 0  # keys refused because max_keys was reached
        self._data: dict[Key, array[float]] = {}
        self._width: dict[Key, int] = {}
        self._seen: dict[Key, int] = {}  # key -> sequence number of the last row it had values in
        self._sums: dict[Key, list[array[float]]] = {}  # key -> one array per window (NaN counted as 0)
        self._seq = -1
        self._order: list[int] = []
        self._order_at = -2

    def steps(self, seconds: float) -> int:
        """Rows in a window of `seconds` (at least 1, at most points - 1)."""
        return min(self.points - 1, max(1, round(seconds / self.step)))

    def __len__(self) -> int:
        return len(self._data)

    def append(self, at: float, values: Mapping[Key, Sequence[float]]) -> None:
        """One new row per key at time `at`; keys absent from `values` get NaN for it."""
        self._seq += 1
        before = self.rows
        self.head = (self.head + 1) % self.points
        self.rows = min(self.rows + 1, self.points)
        self.times[self.head] = at
        for key, row in values.items():
            width = len(row)
            data = self._data.get(key)
            if data is None or self._width[key] != width:
                if data is None and len(self._data) >= self.max_keys:
                    self.dropped_keys += 1
                    continue
                data = self._data[key] = array("f", [NAN]) * (self.points * width)
                self._width[key] = width
                self._sums[key] = [array("d", [0.0]) * width for _ in self.windows]
            start = self.head * width
            data[start:start + width] = array("f", row)
            self._seen[key] = self._seq
        blank: dict[int, array[float]] = {}
        for key in [k for k, seen in self._seen.items() if seen != self._seq]:
            if self._seq - self._seen[key] >= self.points:
                del self._data[key], self._width[key], self._seen[key], self._sums[key]
                continue
            width = self._width[key]
            if width not in blank:
                blank[width] = array("f", [NAN]) * width
            self._data[key][self.head * width:(self.head + 1) * width] = blank[width]
        self._update_sums(before)

    def _update_sums(self, before: int) -> None:
        """Add the new row to each window's sums and take out the row that left it."""
        head, points = self.head, self.points
        for key, sums in self._sums.items():
            data, width = self._data[key], self._width[key]
            new = [v if v == v else 0.0 for v in data[head * width:(head + 1) * width]]
            for k, total in zip(self.windows, sums, strict=True):
                if before >= k:
                    start = (head - k) % points * width
                    old = data[start:start + width]
                    total[:] = array("d", [t + n - (o if o == o else 0.0) for t, n, o in zip(total, new, old)])
                else:
                    total[:] = array("d", [t + n for t, n in zip(total, new)])

    def keys(self, kind: Hashable) -> list[Key]:
        return [k for k in self._data if k[0] == kind]

    def _indices(self, steps: int) -> list[int]:
        """Ring indices of the newest `steps` rows, oldest first (the full order cached per row)."""
        if self._order_at != self._seq:
            self._order = [(self.head - i) % self.points for i in range(self.rows - 1, -1, -1)]
            self._order_at = self._seq
        steps = min(steps, self.rows)
        return self._order[len(self._order) - steps:] if steps else []

    def span(self, steps: int) -> float:
        """Seconds covered by the deltas of the newest `steps` rows (each covers the time since the
        row before it, so a window of k rows needs k + 1 samples)."""
        steps = min(steps, self.rows - 1)
        if steps <= 0:
            return 0.0
        return self.times[self.head] - self.times[(self.head - steps) % self.points]

    def total(self, key: Key, steps: int) -> list[float]:
        """Column sums over the newest `steps` rows (one of the windows), NaN counted as 0."""
        sums = self._sums.get(key)
        if sums is None:
            return []
        steps = min(self.points - 1, max(1, steps))
        if steps in self.windows:
            return list(sums[self.windows.index(steps)])
        data, width = self._data[key], self._width[key]
        out = [0.0] * width
        for i in self._indices(min(steps, self.rows)):
            for c, v in enumerate(data[i * width:(i + 1) * width]):
                if v == v:
                    out[c] += v
        return out

    def last(self, key: Key) -> list[float]:
        data, width = self._data.get(key), self._width.get(key, 0)
        if data is None or self.head < 0:
            return []
        return list(data[self.head * width:(self.head + 1) * width])

    def column(self, key: Key, column: int) -> list[float]:
        """One column over the whole ring, oldest first (NaN where the key had no value)."""
        data, width = self._data.get(key), self._width.get(key, 0)
        if data is None:
            return []
        return [data[i * width + column] for i in self._indices(self.rows)]

    def last_time(self, key: Key, column: int, value: float) -> float | None:
        """When the column last held `value` (e.g. when a target was last up), within the ring."""
        data, width = self._data.get(key), self._width.get(key, 0)
        if data is None:
            return None
        for i in reversed(self._indices(self.rows)):
            if data[i * width + column] == value:
                return self.times[i]
        return None

    def nbytes(self) -> int:
        """Bytes held by the rings themselves (the benchmark measures RSS as well)."""
        rings = sum(a.itemsize * len(a) for a in self._data.values())
        sums = sum(a.itemsize * len(a) for arrays in self._sums.values() for a in arrays)
        return rings + sums + self.times.itemsize * self.points
