"""A bounded ring of per-step rows: what the status page's windows and sparklines read.

Each row is a fixed-width vector under a key such as `("op", "checkout")`: per-step
deltas of counters and histogram buckets, last values of gauges. Memory is bounded
twice: `points` rows per key, and at most `max_keys` keys (a key that has not been
seen for a whole ring is dropped, so churning label values cannot grow it).

The leading `integral` columns of a key (an operation's bucket counts and errors)
are stored as uint16 while every value fits (65535 marks "no value"); the first
value that does not (a count of 65,535 or more in one step, a fractional count
from a sampled line) widens that key's ring to float32 for good. The other columns
are float32, exact for per-step counts below 16 million. With 13 buckets that is
about 2.3 KiB per operation for 15 minutes of 15 s steps (bench/status.py measures
the RSS). Each window's column sums are kept as running float64 sums, so reading a
window costs one row, not one per step.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

NAN = math.nan
MISSING = 0xFFFF  # "no value" in a uint16 column
Key = tuple[Hashable, ...]


class _Ring:
    __slots__ = ("ints", "floats", "n_int", "width", "seen", "sums")

    def __init__(self, points: int, width: int, n_int: int, windows: int) -> None:
        self.width, self.n_int = width, n_int
        self.ints: array[Any] = array("H", [MISSING]) * (points * n_int)  # "H", widened to "f" once
        self.floats = array("f", [NAN]) * (points * (width - n_int))
        self.sums = [array("d", [0.0]) * width for _ in range(windows)]
        self.seen = 0

    def row(self, i: int) -> list[float]:
        n, f = self.n_int, self.width - self.n_int
        head: list[float] = []
        if n:
            part = self.ints[i * n:(i + 1) * n]
            head = [NAN if v == MISSING else float(v) for v in part] if part.typecode == "H" else list(part)
        return head + list(self.floats[i * f:(i + 1) * f]) if f else head

    def write(self, i: int, row: Sequence[float]) -> None:
        n, f = self.n_int, self.width - self.n_int
        if n:
            part = row[:n]
            if self.ints.typecode == "H":
                if all(v != v or (0 <= v < MISSING and v == int(v)) for v in part):
                    self.ints[i * n:(i + 1) * n] = array("H", [MISSING if v != v else int(v) for v in part])
                else:
                    self.ints = array("f", [NAN if v == MISSING else float(v) for v in self.ints])
            if self.ints.typecode == "f":
                self.ints[i * n:(i + 1) * n] = array("f", part)
        if f:
            self.floats[i * f:(i + 1) * f] = array("f", row[n:])

    def blank(self, i: int) -> None:
        self.write(i, [NAN] * self.width)

    def value(self, i: int, c: int) -> float:
        n = self.n_int
        if c < n:
            v = self.ints[i * n + c]
            return NAN if self.ints.typecode == "H" and v == MISSING else float(v)
        return self.floats[i * (self.width - n) + c - n]

    def column(self, c: int) -> list[float]:
        """Column c of every row, in ring order (a strided slice, not a loop)."""
        n = self.n_int
        if c < n:
            part = self.ints[c::n]
            return [NAN if v == MISSING else float(v) for v in part] if part.typecode == "H" else list(part)
        return list(self.floats[c - n::self.width - n])

    def nbytes(self) -> int:
        return (self.ints.itemsize * len(self.ints) + self.floats.itemsize * len(self.floats)
                + sum(a.itemsize * len(a) for a in self.sums))


class History:
    def __init__(self, step: float = 15.0, points: int = 60, max_keys: int = 20_000,
                 windows: Sequence[float] = (60.0, 300.0, 900.0)) -> None:
        if step <= 0 or points < 2:
            raise ValueError("the history needs a positive step and at least two points")
        self.step = step
        self.points = points
        self.max_keys = max_keys
        # Window lengths in rows (at most points - 1: a window of k rows needs k + 1 samples).
        self.windows = sorted({self.steps(w) for w in windows})
        self.times = array("d", [NAN]) * points
        self.head = -1  # ring index of the newest row
        self.rows = 0  # rows written so far (capped at points)
        self.dropped_keys = 0  # keys refused because max_keys was reached
        self._rings: dict[Key, _Ring] = {}
        self._bytes = 0  # of all rings, kept up to date (summing 1,000 rings per page costs a millisecond)
        self._seq = -1
        self._order: list[int] = []
        self._order_at = -2
        self._kinds: dict[Hashable, list[Key]] = {}
        self._kinds_at = -2

    def steps(self, seconds: float) -> int:
        """Rows in a window of `seconds` (at least 1, at most points - 1)."""
        return min(self.points - 1, max(1, round(seconds / self.step)))

    def __len__(self) -> int:
        return len(self._rings)

    def append(self, at: float, values: Mapping[Key, Sequence[float]],
               integral: Mapping[Hashable, int] | None = None) -> None:
        """One new row per key at time `at`; keys absent from `values` get NaN for it.
        `integral` gives, per kind (a key's first element), how many leading columns hold
        whole counts (stored as uint16 while they fit)."""
        self._seq += 1
        before = self.rows
        self.head = (self.head + 1) % self.points
        self.rows = min(self.rows + 1, self.points)
        self.times[self.head] = at
        for key, row in values.items():
            ring = self._rings.get(key)
            if ring is None or ring.width != len(row):
                if ring is None and len(self._rings) >= self.max_keys:
                    self.dropped_keys += 1
                    continue
                if ring is not None:
                    self._bytes -= ring.nbytes()
                n_int = min(len(row), (integral or {}).get(key[0], 0))
                ring = self._rings[key] = _Ring(self.points, len(row), n_int, len(self.windows))
                self._bytes += ring.nbytes()
            compact = ring.ints.typecode == "H"
            ring.write(self.head, row)
            if compact and ring.ints.typecode != "H":  # widened to float32
                self._bytes += len(ring.ints) * 2
            ring.seen = self._seq
        for key in [k for k, r in self._rings.items() if r.seen != self._seq]:
            if self._seq - self._rings[key].seen >= self.points:
                self._bytes -= self._rings.pop(key).nbytes()
            else:
                self._rings[key].blank(self.head)
        self._update_sums(before)

    def _update_sums(self, before: int) -> None:
        """Add the new row to each window's sums and take out the row that left it."""
        head, points = self.head, self.points
        for ring in self._rings.values():
            new = [v if v == v else 0.0 for v in ring.row(head)]
            for k, total in zip(self.windows, ring.sums, strict=True):
                if before >= k:
                    old = ring.row((head - k) % points)
                    total[:] = array("d", [t + n - (o if o == o else 0.0) for t, n, o in zip(total, new, old)])
                else:
                    total[:] = array("d", [t + n for t, n in zip(total, new)])

    def window_sums(self, kind: Hashable, steps: int) -> list[tuple[Key, array[float]]]:
        """Every key of a kind with its running sums over one of the windows (read-only arrays)."""
        w = self.windows.index(min(self.points - 1, max(1, steps)))
        return [(k, self._rings[k].sums[w]) for k in self.keys(kind)]

    def keys(self, kind: Hashable) -> list[Key]:
        """Keys of one kind (grouped once per row: a snapshot asks for a dozen kinds)."""
        if self._kinds_at != self._seq:
            self._kinds = {}
            for k in self._rings:
                self._kinds.setdefault(k[0], []).append(k)
            self._kinds_at = self._seq
        return list(self._kinds.get(kind, ()))

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
        """Column sums over the newest `steps` rows (a window's running sums), NaN counted as 0."""
        ring = self._rings.get(key)
        if ring is None:
            return []
        steps = min(self.points - 1, max(1, steps))
        if steps in self.windows:
            return list(ring.sums[self.windows.index(steps)])
        out = [0.0] * ring.width
        for i in self._indices(steps):
            for c, v in enumerate(ring.row(i)):
                if v == v:
                    out[c] += v
        return out

    def last(self, key: Key) -> list[float]:
        ring = self._rings.get(key)
        if ring is None or self.head < 0:
            return []
        return ring.row(self.head)

    def column(self, key: Key, column: int) -> list[float]:
        """One column over the whole ring, oldest first (NaN where the key had no value)."""
        ring = self._rings.get(key)
        if ring is None or self.rows == 0:
            return []
        values = ring.column(column)
        if self.rows < self.points:  # not wrapped yet: rows 0 .. head
            return values[:self.rows]
        return values[self.head + 1:] + values[:self.head + 1]

    def last_time(self, key: Key, column: int, value: float) -> float | None:
        """When the column last held `value` (e.g. when a target was last up), within the ring."""
        values = self.column(key, column)
        for i in range(len(values) - 1, -1, -1):
            if values[i] == value:
                return self.times[self._indices(self.rows)[i]]
        return None

    def nbytes(self) -> int:
        """Bytes held by the rings and window sums (the benchmark measures RSS as well)."""
        return self._bytes + self.times.itemsize * self.points
