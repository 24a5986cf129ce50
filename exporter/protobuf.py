"""Render families as delimited `io.prometheus.client.MetricFamily` protobuf messages.

What Prometheus asks for when native histograms are enabled: the only format
that carries them. Encoded by hand (a few tags, varints and little-endian
doubles) rather than through the `protobuf` library: building one message
object per series cost more than our whole text rendering (bench/render.py
measures both), and the daemon then imports nothing new. Same input, same
series as the text format: families of one name merge, clashing names and
malformed samples are dropped by the same rules; a histogram whose value
carries native buckets (`native.NativeValue`) gets them beside its classic
buckets. Label pairs with an empty value are left out (Prometheus drops them).

Like the text renderer, the encoded label pairs of each series are memoised
for the families of the latest render only.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Iterable, Sequence
from itertools import accumulate, chain
from operator import add
from typing import Any

from exporter.exposition import (
    _reserved,
    _series_key,
    _spec_problem,
    _split_exemplars,
    group,
)
from exporter.model import Columns, Exemplar, ExemplarCount, Family, MetricType
from exporter.native import NativeBuckets, spans

_double = struct.Struct("<d").pack
_TYPES = {
    MetricType.COUNTER: 0,
    MetricType.GAUGE: 1,
    MetricType.SUMMARY: 2,
    MetricType.HISTOGRAM: 4,
    MetricType.INFO: 1,  # no info type in this format: a gauge, as in text 0.0.4
}
# Metric's field for each type: gauge 2, counter 3, summary 4, histogram 7 (length-delimited).
_FIELD = {0: b"\x1a", 1: b"\x12", 2: b"\x22", 4: b"\x3a"}
_PLAIN = frozenset((int, float))


def varint(n: int) -> bytes:
    """An unsigned base-128 varint (negative int64s as their two's complement, as protobuf does)."""
    if n < 0:
        n += 1 << 64
    if n < 0x80:
        return _SMALL[n] if n < len(_SMALL) else bytes((n,))
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


_SMALL = [bytes((i,)) for i in range(0x80)]


def _zigzag(n: int) -> bytes:
    return varint(n << 1 if n >= 0 else ((-n) << 1) - 1)


def _field(tag: bytes, body: bytes) -> bytes:
    return tag + varint(len(body)) + body


class _Counts(dict[Any, bytes]):
    """Varint text per whole count, made on first use: bucket counts repeat across series."""

    def __missing__(self, count: Any) -> bytes:
        if count < 0 or (type(count) is float and not count.is_integer()):
            raise _Fractional
        encoded = self[count] = varint(int(count))
        return encoded


class _Fractional(Exception):
    """A count that is not a whole number: the series takes the float fields instead."""


def _integral(values: Iterable[float]) -> bool:
    return all(float(v).is_integer() for v in values)


def _labels(names: tuple[str, ...], values: tuple[str, ...]) -> bytes:
    parts = []
    for name, value in zip(names, values):
        if value:
            pair = _field(b"\x0a", name.encode()) + _field(b"\x12", value.encode("utf-8", "replace"))
            parts.append(_field(b"\x0a", pair))
    return b"".join(parts)


def _valid_labels(names: tuple[str, ...], labels: Any) -> bool:
    return (type(labels) is tuple and len(labels) == len(names)
            and all(type(v) is str for v in labels))


class ProtobufRenderer:
    """Keeps the label memo; `exposition.Renderer` owns one and lends it its warn-once `drop`."""

    def __init__(self, drop: Callable[[str, str], None]) -> None:
        self._memo: dict[tuple[str, tuple[str, ...], int], dict[Any, bytes]] = {}
        self._drop = drop
        self._counts = _Counts()

    def render(self, families: Iterable[Family], namespace: str = "apm") -> bytes:
        grouped = group(families, namespace, self._drop)
        out: list[bytes] = []
        taken: set[str] = set()
        touched: set[tuple[str, tuple[str, ...], int]] = set()
        for name, same in grouped.items():
            reserved = _reserved(name, same[0].spec.type)
            if not reserved.isdisjoint(taken):
                self._drop(name, "a name that clashes with an earlier family's")
                continue
            block = self._family(name, same, touched)
            if block:
                out.append(varint(len(block)))
                out.append(block)
                taken |= reserved
        for key in [k for k in self._memo if k not in touched]:
            del self._memo[key]
        if len(self._counts) > 100_000:
            self._counts.clear()
        return b"".join(out)

    def _family(self, name: str, group: list[Family], touched: set[tuple[str, tuple[str, ...], int]]) -> bytes:
        kept = []
        for family in group:
            problem = _spec_problem(family.spec, name)
            if problem:
                self._drop(name, problem)
            else:
                kept.append(family)
        if not kept:
            return b""
        spec = kept[0].spec
        kind = _TYPES[spec.type]
        metrics = None
        names = spec.labels
        if all(f.spec.labels == names for f in kept):
            metrics = self._fast(name, kind, kept, touched)
        if metrics is None:
            metrics = self._slow(name, kind, kept)
        if not metrics:
            return b""
        head = _field(b"\x0a", name.encode()) + _field(b"\x12", spec.help.encode("utf-8", "replace"))
        return head + b"\x18" + varint(kind) + metrics

    # --- fast path: whole families of well-formed series, label pairs from the memo ---------
    def _prefixes(self, key: tuple[str, tuple[str, ...], int], labels: Sequence[Any],
                  touched: set[tuple[str, tuple[str, ...], int]]) -> list[bytes] | None:
        """Encoded bytes per series through the memo, None if any is malformed or repeated: a
        scalar's whole Metric up to its 8 value bytes, a histogram's label pairs."""
        names, kind = key[1], key[2]
        memo = self._memo.get(key, {})
        try:
            found: list[Any] = list(map(memo.get, labels))
            missing = [i for i, text in enumerate(found) if text is None] if None in found else ()
            for i in missing:
                if not _valid_labels(names, labels[i]):
                    return None
                pairs = _labels(names, labels[i])
                # A scalar Metric is its labels and (gauge|counter){value}: 11 bytes after them.
                found[i] = pairs if kind == 4 else b"\x22" + varint(len(pairs) + 11) + pairs + _FIELD[kind] + b"\x09\x09"
            fresh = dict(zip(labels, found))
        except TypeError:  # an unhashable label tuple
            return None
        # Within one tuple of label names, distinct value tuples are distinct series.
        if len(fresh) != len(labels):
            return None
        self._memo[key] = fresh
        touched.add(key)
        return found

    def _fast(self, name: str, kind: int, families: Sequence[Family],
              touched: set[tuple[str, tuple[str, ...], int]]) -> bytes | None:
        labels: list[Any] = []
        values: list[Any] = []
        for family in families:
            samples = family.samples
            if type(samples) is Columns:
                labels += samples.labels
                values += samples.values
            else:
                try:
                    split_labels, split_values = zip(*samples)
                except (TypeError, ValueError):
                    return None
                labels += split_labels
                values += split_values
        names = families[0].spec.labels
        if kind == 2:  # summaries are rare: the slow path is fast enough
            return None
        exemplars = None
        if kind != 4 and not _PLAIN.issuperset(map(type, values)):
            # Counters with exemplars (rare) come here; plain ones pay nothing for them.
            found = _split_exemplars(values) if kind == 0 else None
            if found is None or not _PLAIN.issuperset(map(type, found[0])):
                return None
            values, exemplars = found
        prefixes = self._prefixes((name, names, kind), labels, touched)
        if prefixes is None:
            return None
        field = _FIELD[kind]
        if kind != 4:
            try:
                doubles = list(map(_double, values))
            except OverflowError:
                return None
            if exemplars is not None:
                for i, exemplar in exemplars.items():
                    # Its own Metric: the memoised prefix holds a length without the exemplar.
                    metric = _labels(names, labels[i]) + _field(field, _counter(values[i], exemplar))
                    prefixes[i], doubles[i] = _field(b"\x22", metric), b""
            return b"".join(chain.from_iterable(zip(prefixes, doubles)))
        bounds = families[0].spec.buckets
        if any(f.spec.buckets != bounds for f in families):
            return None
        suffixes = [b"\x11" + _double(b) for b in bounds]
        out = []
        histogram = self._histogram
        for prefix, value in zip(prefixes, values):
            body = histogram(value, suffixes)
            if body is None:
                return None
            body = prefix + field + varint(len(body)) + body
            out.append(b"\x22" + varint(len(body)) + body)
        return b"".join(out)

    def _histogram(self, value: Any, suffixes: list[bytes]) -> bytes | None:
        """The Histogram message of one series, or None if its value is malformed."""
        try:
            counts, count, total = value
            if len(counts) != len(suffixes) or not _PLAIN.issuperset(map(type, (*counts, count, total))):
                return None
            native = getattr(value, "native", None)
            if getattr(value, "exemplars", None) or getattr(value, "native_exemplars", None):
                return self._histogram_general(counts, count, total, native, suffixes, value.exemplars,
                                               value.native_exemplars)
            try:
                encoded = self._counts
                lengths = list(map(encoded.__getitem__, counts))
                head = b"\x08" + encoded[count] + b"\x11" + _double(total)
                buckets = b"".join(map(add, [b"\x1a" + _SMALL[10 + len(v)] + b"\x08" + v for v in lengths],
                                       suffixes))
                if native is None:
                    return head + buckets
            except _Fractional:
                pass
        except (TypeError, ValueError, OverflowError):
            return None
        return self._histogram_general(counts, count, total, native, suffixes)

    def _histogram_general(self, counts: Sequence[Any], count: Any, total: Any, native: NativeBuckets | None,
                           suffixes: list[bytes], exemplars: Sequence[Any] = (),
                           native_exemplars: Sequence[Any] = ()) -> bytes | None:
        """Any well-formed histogram: float counts where a count is not whole, native buckets,
        exemplars (per classic bucket; a native histogram's in its own field, with timestamps)."""
        try:
            numbers = [float(c) for c in (*counts, count, total)]
        except (TypeError, ValueError, OverflowError):
            return None
        if any(map(math.isnan, numbers[:-1])) or min(numbers[:-1], default=0) < 0:
            return None
        whole = _integral(numbers[:-1]) and (native is None or native.integral())
        parts = []
        if whole:
            parts.append(b"\x08" + varint(int(numbers[-2])))
        else:
            parts.append(b"\x21" + _double(numbers[-2]))
        parts.append(b"\x11" + _double(numbers[-1]))
        for i, (c, suffix) in enumerate(zip(numbers, suffixes)):
            bucket = (b"\x08" + varint(int(c)) if whole else b"\x21" + _double(c)) + suffix
            if i < len(exemplars) and exemplars[i] is not None:
                bucket += _field(b"\x1a", _exemplar(exemplars[i]))
            parts.append(_field(b"\x1a", bucket))
        if native is not None:
            parts.append(_native(native, whole))
            parts += [_field(b"\x82\x01", _exemplar(e)) for e in native_exemplars]
        return b"".join(parts)

    # --- slow path: every sample checked, malformed ones and repeated series dropped ----------
    def _slow(self, name: str, kind: int, families: Sequence[Family]) -> bytes:
        seen: set[frozenset[tuple[str, str]]] = set()
        out = []
        field = _FIELD[kind]
        for family in families:
            names = family.spec.labels
            suffixes = [b"\x11" + _double(b) for b in family.spec.buckets]
            for sample in family.samples:
                try:
                    labels, value = sample
                except (TypeError, ValueError):
                    self._drop(name, "a sample that is not (labels, value)")
                    continue
                if type(labels) is list:
                    labels = tuple(labels)
                if not _valid_labels(names, labels):
                    self._drop(name, "label values that do not match the label names")
                    continue
                key = _series_key(names, labels)
                if key in seen:
                    self._drop(name, "a repeated label set")
                    continue
                body = self._value(name, kind, value, suffixes)
                if body is None:
                    continue
                seen.add(key)
                metric = _labels(names, labels) + _field(field, body)
                out.append(_field(b"\x22", metric))
        return b"".join(out)

    def _value(self, name: str, kind: int, value: Any, suffixes: list[bytes]) -> bytes | None:
        if kind == 4:
            try:
                counts, count, total = value
                body = self._histogram_general(counts, count, total, getattr(value, "native", None), suffixes)
                if len(counts) != len(suffixes):
                    body = None
            except (TypeError, ValueError):
                body = None
            if body is None:
                self._drop(name, "a histogram value that does not match its buckets")
            return body
        if kind == 2:
            return self._summary(name, value)
        number = _number(value)
        if number is None:
            self._drop(name, "a value that is not a number")
            return None
        if kind == 0 and type(value) is ExemplarCount:
            return _counter(number, value.exemplar)
        return b"\x09" + _double(number)

    def _summary(self, name: str, value: Any) -> bytes | None:
        try:
            quantiles, count, total = value
            pairs = [(float(q), _number(v)) for q, v in quantiles]
            count_number, sum_number = _number(count), _number(total)
        except (TypeError, ValueError, OverflowError):
            pairs, count_number, sum_number = [], None, None
        if count_number is None or sum_number is None or any(v is None for _, v in pairs):
            self._drop(name, "a summary value that is not numbers")
            return None
        parts = [b"\x08" + varint(int(count_number)) if count_number >= 0 and count_number < math.inf else b"",
                 b"\x11" + _double(sum_number)]
        for q, v in pairs:
            if math.isnan(q):
                self._drop(name, "a NaN quantile")
                continue
            parts.append(_field(b"\x1a", b"\x09" + _double(q) + b"\x11" + _double(v)))  # type: ignore[arg-type]
        return b"".join(parts)


def _number(value: Any) -> float | None:
    if isinstance(value, (tuple, str, bytes)):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None
    except OverflowError:
        return math.inf if value > 0 else -math.inf


def _counter(value: float, exemplar: Exemplar) -> bytes:
    """A Counter message with its exemplar (field 2)."""
    return b"\x09" + _double(value) + _field(b"\x12", _exemplar(exemplar))


def _exemplar(exemplar: Any) -> bytes:
    """An Exemplar message: label pairs, value, timestamp (seconds and nanoseconds)."""
    pairs = b"".join(_field(b"\x0a", _field(b"\x0a", k.encode()) + _field(b"\x12", v.encode("utf-8", "replace")))
                     for k, v in exemplar.labels)
    seconds = math.floor(exemplar.timestamp)
    stamp = b"\x08" + varint(seconds) + b"\x10" + varint(int((exemplar.timestamp - seconds) * 1e9))
    return pairs + b"\x11" + _double(exemplar.value) + _field(b"\x1a", stamp)


def _native(native: NativeBuckets, whole: bool) -> bytes:
    """Histogram fields 5 to 14: schema, zero bucket, spans and counts of each sign."""
    parts = [b"\x28" + _zigzag(native.schema), b"\x31" + _double(native.zero_threshold)]
    parts.append(b"\x38" + varint(int(native.zero_count)) if whole else b"\x41" + _double(native.zero_count))
    empty = True
    for span_tag, delta_tag, count_tag, buckets in ((b"\x4a", b"\x52", b"\x5a", native.negative),
                                                    (b"\x62", b"\x6a", b"\x72", native.positive)):
        if not buckets:
            continue
        empty = False
        layout = spans(buckets)
        for offset, length in layout.spans:
            parts.append(_field(span_tag, b"\x08" + _zigzag(offset) + b"\x10" + varint(length)))
        if whole:
            parts.append(_field(delta_tag, b"".join(_zigzag(int(d)) for d in layout.deltas)))
        else:
            # Float histograms carry absolute counts: the deltas summed back up.
            parts.append(_field(count_tag, b"".join(map(_double, accumulate(layout.deltas)))))
    if empty and native.zero_threshold == 0 and native.zero_count == 0:
        # A no-op span: without it a native histogram with nothing in it reads as a classic one.
        parts.append(_field(b"\x62", b"\x08\x00\x10\x00"))
    return b"".join(parts)

