"""Render families as Prometheus text 0.0.4 or OpenMetrics 1.0 (protobuf: exporter/protobuf.py),
a pure function of its input.

Families from different sources may share a name (StatsD and a Redis probe both
feed `cache_requests_total`); they are merged into one block here: the first
family of a name gives HELP, TYPE and UNIT, a family of that name with another
type is dropped, and a series (label set) already rendered is not repeated.
A family whose names would clash with an earlier one (a gauge `x_count` next to
a histogram `x`, a gauge `x` next to a counter `x_total`) is dropped too, so
the output is the same set of series in both formats.

Speed matters here (a scrape of 100,000 series must stay well under a second
on one core), so each family takes a fast path built from C-level primitives
(`map`, `zip`, `str.join`, one `str.format` per histogram) over values that are
plain finite numbers; anything else (NaN, ±Inf, bools, duplicates, malformed
samples) takes a slow path that checks every sample. A family of one source
with a few series (most of a small scrape: the daemon's own families) takes one
Python loop instead, whose setup is cheaper than the passes' and which hands
anything but plain finite numbers to them. All produce the same bytes, and the
tests compare them.

A `Renderer` holds what renders share: the formatted label text of each
series, memoised between renders (keyed by family name and label values, and
only for the series of the latest render, so it never outgrows the current
output), the shape of each spec worked out once, and the problems already
logged. These are caches, not state: the output depends on the input alone.
The web server owns one; a Renderer does one render at a time.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Iterable, Sequence
from enum import Enum
from functools import lru_cache
from itertools import chain, compress, pairwise, repeat, starmap
from operator import add, is_
from typing import Any, NamedTuple

from exporter.model import (
    Columns,
    Exemplar,
    ExemplarCount,
    Family,
    FamilySpec,
    MetricType,
    Sample,
)

log = logging.getLogger(__name__)


class Format(str, Enum):
    """The exposition formats; the value is the Content-Type to send with it."""

    TEXT = "text/plain; version=0.0.4; charset=utf-8"
    OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"
    # Delimited io.prometheus.client.MetricFamily messages (exporter/protobuf.py): what
    # Prometheus asks for first when native histograms are enabled.
    PROTOBUF = "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited"


@lru_cache(maxsize=64)  # a Prometheus sends the same Accept header every scrape
def negotiate(accept: str | None) -> Format:
    """OpenMetrics or protobuf only when the client asks for them, as Prometheus does.

    Protobuf (`application/vnd.google.protobuf` with `proto=io.prometheus.client.MetricFamily`
    and `encoding=delimited`, as Prometheus sends it with native histograms enabled) wins
    with q > 0 unless another format has a strictly higher q; then
    `application/openmetrics-text` with q > 0 wins unless `text/plain` is preferred
    with a strictly higher q; anything else (no header, `*/*`, a browser) gets text.
    """
    if not accept:
        return Format.TEXT
    best_om = best_text = best_proto = -1.0
    for part in accept.split(","):
        media, *params = part.split(";")
        q = 1.0
        options = {}
        for param in params:
            key, _, value = param.partition("=")
            key = key.strip().lower()
            if key == "q":
                try:
                    q = float(value.strip())
                except ValueError:
                    q = 0.0
                # NaN and out-of-range weights are malformed: treat as "not acceptable".
                if not 0.0 <= q <= 1.0:
                    q = 0.0
            else:
                options[key] = value.strip().strip('"')
        media = media.strip().lower()
        if media == "application/openmetrics-text":
            best_om = max(best_om, q)
        elif media == "text/plain":
            best_text = max(best_text, q)
        elif (media == "application/vnd.google.protobuf" and options.get("proto") == _PROTO
              and options.get("encoding") == "delimited"):
            best_proto = max(best_proto, q)
    if best_proto > 0 and best_proto >= max(best_om, best_text):
        return Format.PROTOBUF
    return Format.OPENMETRICS if best_om > 0 and best_om >= best_text else Format.TEXT


_PROTO = "io.prometheus.client.MetricFamily"


_MAX_FLOAT = 1.7976931348623157e308


def format_value(value: Any) -> str:
    """A sample value as exposition text: ints as ints, floats as their shortest round-trip
    form, `+Inf`, `-Inf`, `NaN`. Raises TypeError or ValueError for what is not a number.

    The fast path writes `repr(value)` for plain ints and finite floats; this gives
    the same text for those, and handles everything else (bools, numpy scalars,
    ints beyond float range).
    """
    kind = type(value)
    if kind is int:
        if -_MAX_FLOAT <= value <= _MAX_FLOAT:
            return repr(value)
        return "+Inf" if value > 0 else "-Inf"
    if kind is not float:
        try:
            value = float(value)
        except OverflowError:
            return "+Inf" if value > 0 else "-Inf"
    if value - value == 0:
        return repr(value)
    if math.isnan(value):
        return "NaN"
    return "+Inf" if value > 0 else "-Inf"


def _go_float(value: float) -> str:
    """`value` as Go's strconv.FormatFloat(v, 'g', -1, 64) writes it: shortest digits,
    exponent form below 1e-4 and from 1e+06 on (Python's repr switches at 1e+16)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == 0:
        return "-0" if math.copysign(1.0, value) < 0 else "0"
    sign = "-" if value < 0 else ""
    mantissa, _, exponent = repr(abs(value)).partition("e")
    whole, _, fraction = mantissa.partition(".")
    digits = whole + fraction
    stripped = digits.lstrip("0")
    # Decimal point position relative to the first significant digit: 0.d1d2... x 10^point.
    point = len(whole) - (len(digits) - len(stripped)) + (int(exponent) if exponent else 0)
    digits = stripped.rstrip("0")
    exp = point - 1
    if exp < -4 or exp >= 6:
        rest = "." + digits[1:] if len(digits) > 1 else ""
        return f"{sign}{digits[0]}{rest}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    if point <= 0:
        return f"{sign}0.{'0' * -point}{digits}"
    if len(digits) > point:
        return f"{sign}{digits[:point]}.{digits[point:]}"
    return sign + digits + "0" * (point - len(digits))


def format_bound(bound: float, fmt: Format = Format.TEXT) -> str:
    """`le`/`quantile` label values: as Go clients write them in text ("1", "0.005", "+Inf"),
    so series from every exporter share label values and aggregate; in OpenMetrics the
    spec's canonical form, which is the same with ".0" added to integers ("1.0")."""
    text = _go_float(float(bound))
    if fmt is Format.OPENMETRICS and text[-1].isdigit() and "." not in text and "e" not in text:
        return text + ".0"
    return text


def escape_label(value: str) -> str:
    """Label values escape backslash, double quote and newline (both formats)."""
    if "\\" in value or '"' in value or "\n" in value:
        return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return value


def _escape_help(text: str, openmetrics: bool) -> str:
    text = text.replace("\\", "\\\\").replace("\n", "\\n")
    # OpenMetrics HELP is an escaped string like a label value; text 0.0.4 leaves quotes alone.
    return text.replace('"', '\\"') if openmetrics else text


_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*\Z")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")
_PLAIN = frozenset((int, float))

_SCALAR, _HISTOGRAM, _SUMMARY = 0, 1, 2


class _Shape(NamedTuple):
    """How one spec renders under a full name and a format, worked out once and cached."""

    problem: str  # non-empty: the spec cannot be rendered (bad name, buckets...); its family is dropped
    header: str  # "\n# HELP ...\n# TYPE ..." (and UNIT), each line led by its newline
    kind: int
    type_name: str  # as written on the TYPE line
    om: bool
    nonneg: bool  # OpenMetrics counter: NaN and negative values are invalid there
    scalar_template: str  # str.format template of a scalar line up to its value: "\nname{a="{}"} "
    label_template: str  # str.format template of the label text alone: 'a="{}",b="{}"'
    le_suffixes: tuple[str, ...]  # histogram: '0.005"} ' per bucket, +Inf last
    with_sum: bool  # histogram: OpenMetrics forbids _sum when a bucket bound is negative


@lru_cache(maxsize=10_000)  # asked once per family block per render; the names are few and repeat
def _reserved(name: str, kind: MetricType) -> frozenset[str]:
    """Every family and sample name a block may use in either format, to find clashes."""
    if kind is MetricType.COUNTER:
        base = name.removesuffix("_total")
        return frozenset((name, base, base + "_total", base + "_created"))
    if kind is MetricType.HISTOGRAM:
        return frozenset(name + s for s in ("", "_bucket", "_count", "_sum", "_created"))
    if kind is MetricType.SUMMARY:
        return frozenset(name + s for s in ("", "_count", "_sum", "_created"))
    if kind is MetricType.INFO and name.endswith("_info"):
        return frozenset((name, name[:-5]))
    return frozenset((name,))


def _spec_problem(spec: FamilySpec, name: str) -> str:
    if not _METRIC_NAME.match(name):
        return "invalid metric name"
    for label in spec.labels:
        if not isinstance(label, str) or not _LABEL_NAME.match(label) or label.startswith("__"):
            return f"invalid label name {label!r}"
    if len(set(spec.labels)) != len(spec.labels):
        return "repeated label name"
    if spec.type is MetricType.HISTOGRAM:
        bounds = spec.buckets
        if "le" in spec.labels:
            return "histogram with an `le` label"
        if not all(type(b) in _PLAIN and -math.inf < b < math.inf for b in bounds):
            return "histogram bucket bound that is not a finite number"
        if any(a >= b for a, b in pairwise(bounds)):
            return "histogram buckets not strictly increasing"
    if spec.type is MetricType.SUMMARY and "quantile" in spec.labels:
        return "summary with a `quantile` label"
    return ""


def _make_shape(spec: FamilySpec, name: str, fmt: Format) -> _Shape:
    om = fmt is Format.OPENMETRICS
    kind = spec.type
    problem = _spec_problem(spec, name)
    if problem:
        return _Shape(problem, "", _SCALAR, "", om, False, "", "", (), False)

    header_name, type_name, nonneg = name, kind.value, False
    if kind is MetricType.INFO:
        if om and name.endswith("_info"):
            header_name = name[:-5]
        else:
            type_name = "gauge"  # text 0.0.4 has no info type; OpenMetrics wants the _info suffix
    elif kind is MetricType.COUNTER and om:
        if name.endswith("_total"):
            header_name, nonneg = name[:-6], True
        else:
            # An OpenMetrics counter's samples must be `<name>_total`; renaming the series would
            # make it differ between formats, so it is declared unknown instead.
            type_name = "unknown"
    lines = [
        f"\n# HELP {header_name} {_escape_help(spec.help, om)}",
        f"\n# TYPE {header_name} {type_name}",
    ]
    if om and spec.unit and header_name.endswith("_" + spec.unit) and type_name != "info":
        lines.append(f"\n# UNIT {header_name} {spec.unit}")

    label_template = ",".join(f'{label}="{{}}"' for label in spec.labels)
    braced = "{{" + label_template + "}}" if spec.labels else ""  # literal braces, doubled for format()
    scalar_template = "\n" + _braces(name) + braced + " "
    le_suffixes: tuple[str, ...] = ()
    with_sum = True
    if kind is MetricType.HISTOGRAM:
        le_suffixes = (*(format_bound(b, fmt) + '"} ' for b in spec.buckets), '+Inf"} ')
        with_sum = not (om and spec.buckets and spec.buckets[0] < 0)
    return _Shape(
        "",
        "".join(lines),
        _HISTOGRAM if kind is MetricType.HISTOGRAM else _SUMMARY if kind is MetricType.SUMMARY else _SCALAR,
        type_name,
        om,
        nonneg,
        scalar_template,
        label_template,
        le_suffixes,
        with_sum,
    )


def _braces(text: str) -> str:
    return text.replace("{", "{{").replace("}", "}}")


_SHAPES_MAX = 10_000  # mapping rules come and go with reloads: the shape cache stays bounded
_WARNED_MAX = 1000
# Series handled per C-level pass (map, join, dict): each pass then holds the GIL for a
# millisecond or so, so a render on a worker thread leaves the event loop its turns.
_CHUNK = 4096
# A scalar family of one source with up to this many series takes one Python loop over its
# samples instead of the C-level passes, whose setup costs more than such a family's lines.
_SMALL = 32
_PART_CHARS = 1 << 20  # the output is encoded in parts of about this size

# Rendered label text per series, for the families of the latest render only:
# (name, label names, kind) -> label values -> text. A scalar's text is its whole line up to
# the value ("\nname{a="x"} "); a histogram's is the label text alone ('a="x"').
_MemoKey = tuple[str, tuple[str, ...], int]


def _label_text(names: tuple[str, ...], labels: Any) -> str | None:
    """`a="x",b="y"` for these label values, or None if they do not fit the names."""
    if type(labels) is not tuple or len(labels) != len(names) or not all(type(v) is str for v in labels):
        return None
    return ",".join([f'{n}="{escape_label(v)}"' for n, v in zip(names, labels)])


def _texts_for(template: str, width: int, labels: Sequence[Any]) -> list[str] | None:
    """`template` filled with each tuple of label values, checked and escaped a whole family at
    a time (C-level passes), or None if any tuple is malformed."""
    if set(map(type, labels)) != {tuple} or set(map(len, labels)) != {width}:
        return None
    flat = list(chain.from_iterable(labels))
    if flat:
        if set(map(type, flat)) != {str}:
            return None
        blob = "".join(flat)
        if "\\" in blob or '"' in blob or "\n" in blob:
            labels = [tuple(map(escape_label, values)) for values in labels]
    return list(starmap(template.format, labels))


def _plain_finite(values: Sequence[Any]) -> bool:
    """True when every value is an int or a float and finite: then `repr` is its exposition text."""
    types = set(map(type, values))
    if not _PLAIN.issuperset(types):
        return False
    try:
        total = float(sum(values))
        if int in types:  # huge ints can cancel out in the sum yet not fit a float
            float(max(values)), float(min(values))
    except OverflowError:
        return False
    return total - total == 0


def _split(families: Sequence[Family]) -> tuple[Sequence[Any], Sequence[Any]] | None:
    """All label tuples and all values of these families, as two sequences (None if malformed).

    `Columns` already holds them so; a list of samples is split with one C-level zip.
    """
    labels: list[Any] = []
    values: list[Any] = []
    for family in families:
        samples = family.samples
        if type(samples) is Columns:
            if len(families) == 1:
                return samples.labels, samples.values
            labels += samples.labels
            values += samples.values
            continue
        try:
            split_labels, split_values = zip(*samples)
        except (TypeError, ValueError):  # not (labels, value) pairs
            return None
        if len(families) == 1:
            return split_labels, split_values
        labels += split_labels
        values += split_values
    return labels, values


def _histogram_series(name: str, shape: _Shape, text: str, numbers: Sequence[str],
                      buckets: Sequence[str] | None = None) -> str:
    """One histogram series from its label text and its numbers as text (buckets, count, sum);
    `buckets`, if given, is what follows each bucket's `le` (its count and an exemplar)."""
    if text:
        prefix = f'\n{name}_bucket{{{text},le="'
        braced = "{" + text + "} "
    else:
        prefix = f'\n{name}_bucket{{le="'
        braced = " "
    # le_suffixes has one entry per bucket and +Inf: map() stops there, so +Inf gets `count`.
    body = prefix + prefix.join(map(add, shape.le_suffixes, buckets or numbers))
    if shape.with_sum:
        body = f"{body}\n{name}_sum{braced}{numbers[-1]}"
    return f"{body}\n{name}_count{braced}{numbers[-2]}"


def _with_exemplars(counts: list[str], exemplars: Sequence[Any]) -> list[str]:
    """Bucket counts as text, each followed by its bucket's exemplar where it has one."""
    out = list(counts)
    for i, exemplar in enumerate(exemplars[:len(out)]):
        if exemplar is not None:
            out[i] += _exemplar_text(exemplar)
    return out


def _exemplar_text(exemplar: Exemplar) -> str:
    """What follows a sample's value in OpenMetrics: ` # {trace_id="..."} 0.43 1700000000.1`."""
    labels = ",".join(f'{k}="{escape_label(v)}"' for k, v in exemplar.labels)
    return f" # {{{labels}}} {format_value(exemplar.value)} {format_value(exemplar.timestamp)}"


def _split_exemplars(values: Sequence[Any]) -> tuple[list[Any], dict[int, Exemplar]] | None:
    """Counter values some of which carry an exemplar (model.ExemplarCount) as plain floats, and
    those exemplars by position; None when no value carries one."""
    where = list(compress(range(len(values)), map(is_, map(type, values), repeat(ExemplarCount))))
    if not where:
        return None
    plain = list(values)
    for i in where:
        plain[i] = float(values[i])
    return plain, {i: values[i].exemplar for i in where}


def _om_counts_ok(counts: Sequence[Any], count: Any) -> bool:
    """OpenMetrics wants bucket counts (and _count) integral, non-negative and non-decreasing."""
    try:
        cumulative = [float(c) for c in (*counts, count)]
    except (TypeError, ValueError, OverflowError):
        return False
    if any(map(math.isnan, cumulative)) or cumulative[0] < 0 or cumulative != sorted(cumulative):
        return False
    return all(c.is_integer() or c == math.inf for c in cumulative)


def _series_key(names: tuple[str, ...], labels: tuple[str, ...]) -> frozenset[tuple[str, str]]:
    """A series' identity as Prometheus sees it: its non-empty label pairs, in any order."""
    return frozenset((n, v) for n, v in zip(names, labels) if v != "")


def _number(value: Any) -> str | None:
    try:
        return format_value(value)
    except (TypeError, ValueError):
        return None


def group(families: Iterable[Family], namespace: str, drop: Callable[[str, str], None]) -> dict[str, list[Family]]:
    """Families with samples by full name, in order; one of another type than the first of its
    name is dropped (both formats merge families this way)."""
    grouped: dict[str, list[Family]] = {}
    for family in families:
        if not family.samples:
            continue
        name = family.spec.full_name(namespace)
        same = grouped.get(name)
        if same is None:
            grouped[name] = [family]
        elif same[0].spec.type is family.spec.type:
            same.append(family)
        else:
            drop(name, f"a {family.spec.type.value} family under the name of a {same[0].spec.type.value}")
    return grouped


class Renderer:
    """Renders families; keeps the label-text memo, the shape cache and the problems said once.

    Not thread-safe: one render at a time (the web server runs them one after another).
    """

    def __init__(self) -> None:
        self._memo: dict[_MemoKey, dict[Any, str]] = {}
        self._shapes: dict[tuple[FamilySpec, str, Format], _Shape] = {}
        # Per full name, the spec and format it last rendered with, that spec's shape and the
        # names its block reserves: found by the name (a str, its hash cached) and checked by
        # identity, where a `_shapes` lookup hashes the whole spec (its type's Enum hash is a
        # Python call) and `_reserved` hashes the type again: a tenth of a small render.
        self._blocks: dict[str, tuple[FamilySpec, Format, _Shape, frozenset[str]]] = {}
        self._warned: set[tuple[str, str]] = set()
        self._protobuf: Any = None

    def render(self, families: Iterable[Family], fmt: Format = Format.TEXT, namespace: str = "apm") -> bytes:
        """The exposition of these families, in their order: same input, same bytes."""
        return b"".join(self.render_parts(families, fmt, namespace))

    def render_parts(self, families: Iterable[Family], fmt: Format = Format.TEXT,
                     namespace: str = "apm") -> list[bytes]:
        """`render()` as consecutive parts of about a megabyte: what the server sends, without
        joining (and so copying) a whole scrape of up to hundreds of megabytes at once."""
        if fmt is Format.PROTOBUF:
            if self._protobuf is None:
                # Imported on the first protobuf scrape only: a text-only daemon never loads it.
                from exporter.protobuf import ProtobufRenderer

                self._protobuf = ProtobufRenderer(self._drop)
            return [self._protobuf.render(families, namespace)]
        grouped = group(families, namespace, self._drop)
        out: list[str] = []
        taken: set[str] = set()
        touched: set[_MemoKey] = set()
        blocks = self._blocks
        for name, same in grouped.items():
            spec = same[0].spec
            block = blocks.get(name)
            if block is None or block[0] is not spec or block[1] is not fmt:
                if len(blocks) >= _SHAPES_MAX:
                    blocks.clear()
                block = blocks[name] = (spec, fmt, self._shape(spec, name, fmt), _reserved(name, spec.type))
            reserved = block[3]
            if not reserved.isdisjoint(taken):
                self._drop(name, "a name that clashes with an earlier family's")
                continue
            before = len(out)
            self._render_group(name, same, fmt, touched, out, block[2])
            if len(out) > before:
                taken |= reserved
        for key in [k for k in self._memo if k not in touched]:
            self._memo.pop(key, None)
        if out:
            out[0] = out[0][1:]  # every line is led by its newline; the first has nothing before it
            out.append("\n")
        if fmt is Format.OPENMETRICS:
            out.append("# EOF\n")
        return _encode(out)

    def _render_group(self, name: str, families: list[Family], fmt: Format, touched: set[_MemoKey],
                      out: list[str], first: _Shape | None = None) -> None:
        """One family block, header and samples; nothing at all when none of its samples can be
        rendered. `first`: the shape of the first family's spec, if the caller has it."""
        if len(families) == 1 and len(families[0].samples) <= _SMALL:
            # Most families of a small scrape: one source, a few series; no lists of shapes for them.
            shape = first or self._shape(families[0].spec, name, fmt)
            if not shape.problem and shape.kind == _SCALAR:
                mark = len(out)
                out.append(shape.header)
                if self._scalar_small(name, families[0].spec.labels, families[0].samples, shape, touched, out):
                    return
                del out[mark:]
        shapes: list[_Shape] = []
        kept: list[Family] = []
        for family in families:
            shape = self._shape(family.spec, name, fmt)
            if shape.problem:
                self._drop(name, shape.problem)
                continue
            shapes.append(shape)
            kept.append(family)
        if not kept:
            return
        mark = len(out)
        out.append(shapes[0].header)
        names = kept[0].spec.labels
        same_names = all(f.spec.labels == names for f in kept)
        kind = shapes[0].kind
        done = False
        if same_names and kind == _SCALAR:
            done = self._scalar_fast(name, names, kept, shapes[0], touched, out)
        elif same_names and kind == _HISTOGRAM:
            done = self._histogram_fast(name, names, kept, shapes, touched, out)
        if not done:
            del out[mark + 1 :]
            self._render_slow(name, kept, shapes, out)
        if len(out) == mark + 1:  # every sample was dropped: no header without samples
            del out[mark:]

    def _scalar_fast(self, name: str, names: tuple[str, ...], families: Sequence[Family], shape: _Shape,
                     touched: set[_MemoKey], out: list[str]) -> bool:
        split = _split(families)
        if split is None:
            return False
        labels, values = split
        exemplars = None
        if not _plain_finite(values):
            # Counters with exemplars (rare) come here; plain ones pay nothing for them.
            found = _split_exemplars(values)
            if found is None or not _plain_finite(found[0]):
                return False
            values, exemplars = found
        if shape.nonneg and min(values) < 0:
            return False
        if shape.type_name == "info" and set(values) != {1}:  # OpenMetrics: an info value is 1
            return False
        texts = self._memoised((name, names, _SCALAR), shape.scalar_template, labels, touched)
        if texts is None:
            return False
        numbers = None
        if exemplars is not None:
            numbers = list(map(repr, values))
            if shape.nonneg:  # an OpenMetrics counter's `_total`: the one scalar exemplars may follow
                for i, exemplar in exemplars.items():
                    numbers[i] += _exemplar_text(exemplar)
        for start in range(0, len(texts), _CHUNK):
            end = start + _CHUNK
            part = map(repr, values[start:end]) if numbers is None else numbers[start:end]
            out.append("".join(map(add, texts[start:end], part)))
        return True

    def _scalar_small(self, name: str, names: tuple[str, ...], samples: Sequence[Sample], shape: _Shape,
                      touched: set[_MemoKey], out: list[str]) -> bool:
        """A small family's lines, or False for the C-level path to decide (anything but plain
        finite numbers under unique, valid label tuples): the same bytes as that path writes."""
        key = (name, names, _SCALAR)
        memo = self._memo.get(key) or {}
        fresh: dict[Any, str] = {}
        lines: list[str] = []
        nonneg, info = shape.nonneg, shape.type_name == "info"
        pairs: Iterable[tuple[Any, Any]] = (
            zip(samples.labels, samples.values) if type(samples) is Columns else samples)
        try:
            for labels, value in pairs:
                kind = type(value)
                if kind is float:
                    if value - value != 0:  # NaN or an infinity
                        return False
                elif kind is not int or not -_MAX_FLOAT <= value <= _MAX_FLOAT:
                    return False
                if (nonneg and value < 0) or (info and value != 1) or labels in fresh:
                    return False
                text = memo.get(labels)
                if text is None:
                    made = _texts_for(shape.scalar_template, len(names), (labels,))
                    if made is None:
                        return False
                    text = made[0]
                fresh[labels] = text
                lines.append(text + repr(value))
        except (TypeError, ValueError):  # not (labels, value) pairs, or unhashable labels
            return False
        self._memo[key] = fresh
        touched.add(key)
        out.append("".join(lines))
        return True

    def _histogram_fast(self, name: str, names: tuple[str, ...], families: Sequence[Family],
                        shapes: Sequence[_Shape], touched: set[_MemoKey], out: list[str]) -> bool:
        split = _split(families)
        if split is None:
            return False
        labels, values = split
        texts = self._memoised((name, names, _HISTOGRAM), shapes[0].label_template, labels, touched)
        if texts is None:
            return False
        plain = _PLAIN.issuperset
        series = _histogram_series
        start = 0
        for family, shape in zip(families, shapes):
            end = start + len(family.samples)
            width = len(family.spec.buckets) + 2
            for text, value in zip(texts[start:end], values[start:end]):
                try:
                    counts, count, total = value
                    row = (*counts, count, total)
                except (TypeError, ValueError):
                    return False
                if len(row) != width or not plain(map(type, row)):
                    return False
                check = sum(row)
                if check - check != 0 or (shape.om and not _om_counts_ok(counts, count)):
                    return False
                numbers = list(map(repr, row))
                exemplars = getattr(value, "exemplars", None) if shape.om else None
                if exemplars:  # OpenMetrics: `... 3 # {trace_id="..."} 0.43 1700000000.1` per bucket
                    out.append(series(name, shape, text, numbers, _with_exemplars(numbers[:-1], exemplars)))
                    continue
                out.append(series(name, shape, text, numbers))
            start = end
        return True

    def _memoised(self, key: _MemoKey, template: str, labels: Sequence[Any],
                  touched: set[_MemoKey]) -> list[str] | None:
        """The text for each label tuple, through the memo; None if any tuple is malformed or
        repeated (the caller then takes the slow path, which drops those)."""
        width = len(key[1])
        memo = self._memo.get(key)
        texts: list[str] = []
        fresh: dict[Any, str] = {}
        try:
            for start in range(0, len(labels), _CHUNK):
                part = labels[start:start + _CHUNK]
                made: list[Any] | None
                if memo is None:
                    made = _texts_for(template, width, part)
                    if made is None:
                        return None
                else:
                    made = list(map(memo.get, part))
                    if None in made:
                        missing = [i for i, text in enumerate(made) if text is None]
                        filled = _texts_for(template, width, [part[i] for i in missing])
                        if filled is None:
                            return None
                        for i, text in zip(missing, filled):
                            made[i] = text
                texts += made
                fresh.update(zip(part, made))
        except TypeError:  # an unhashable label tuple
            return None
        self._memo[key] = fresh
        touched.add(key)
        return texts if len(fresh) == len(labels) else None

    def _sample_lines(self, name: str, shape: _Shape, text: str, value: Any) -> str | None:
        """One series checked value by value, or None (dropped, and said once) if it cannot be
        rendered validly in this format."""
        om = shape.om
        braced = "{" + text + "}" if text else ""
        if shape.kind == _SCALAR:
            number = None if isinstance(value, (tuple, str, bytes)) else _number(value)
            if number is None:
                self._drop(name, "a value that is not a number")
                return None
            if shape.nonneg and (number == "NaN" or number.startswith("-")):
                self._drop(name, "a NaN or negative counter (invalid in OpenMetrics)")
                return None
            if shape.type_name == "info" and number not in ("1", "1.0"):
                self._drop(name, "an info value other than 1 (invalid in OpenMetrics)")
                return None
            if shape.nonneg and type(value) is ExemplarCount:
                return f"\n{name}{braced} {number}{_exemplar_text(value.exemplar)}"
            return f"\n{name}{braced} {number}"
        if shape.kind == _HISTOGRAM:
            try:
                counts, count, total = value
                numbers = [_number(c) for c in (*counts, count, total)]
            except (TypeError, ValueError):
                numbers = []
            if not numbers or None in numbers or len(numbers) != len(shape.le_suffixes) + 1:
                self._drop(name, "a histogram value that does not match its buckets")
                return None
            if om and (not _om_counts_ok(counts, count) or numbers[-1] == "NaN"):
                self._drop(name, "histogram counts or sum invalid in OpenMetrics")
                return None
            return _histogram_series(name, shape, text, numbers)  # type: ignore[arg-type]
        # Summary: rare (only mapping rules that ask for one), so never on a fast path.
        try:
            quantiles, count, total = value
            pairs = [(float(q), _number(v)) for q, v in quantiles]
            count_text, sum_text = _number(count), _number(total)
        except (TypeError, ValueError, OverflowError):
            pairs, count_text, sum_text = [], None, None
        if count_text is None or sum_text is None or any(v is None for _, v in pairs):
            self._drop(name, "a summary value that is not numbers")
            return None
        if om and (not _om_counts_ok([], count) or sum_text == "NaN"):
            self._drop(name, "summary count or sum invalid in OpenMetrics")
            return None
        sep = "," if text else ""
        lines = []
        for q, v in pairs:
            if om and (not 0 <= q <= 1 or (v or "").startswith("-")):
                self._drop(name, "a quantile outside [0, 1] or a negative quantile value (invalid in OpenMetrics)")
                continue
            if math.isnan(q):
                self._drop(name, "a NaN quantile")
                continue
            bound = format_bound(q, Format.OPENMETRICS if om else Format.TEXT)
            lines.append(f'\n{name}{{{text}{sep}quantile="{bound}"}} {v}')
        lines.append(f"\n{name}_sum{braced} {sum_text}")
        lines.append(f"\n{name}_count{braced} {count_text}")
        return "".join(lines)

    def _render_slow(self, name: str, families: Sequence[Family], shapes: Sequence[_Shape], out: list[str]) -> None:
        """Every sample checked on its own: malformed ones and repeated series are dropped."""
        seen: set[frozenset[tuple[str, str]]] = set()
        for family, shape in zip(families, shapes):
            names = family.spec.labels
            for sample in family.samples:
                try:
                    labels, value = sample
                except (TypeError, ValueError):
                    self._drop(name, "a sample that is not (labels, value)")
                    continue
                if type(labels) is list:
                    labels = tuple(labels)
                text = _label_text(names, labels)
                if text is None:
                    self._drop(name, "label values that do not match the label names")
                    continue
                key = _series_key(names, labels)
                if key in seen:
                    self._drop(name, "a repeated label set")
                    continue
                lines = self._sample_lines(name, shape, text, value)
                if lines is not None:
                    seen.add(key)
                    out.append(lines)

    def _shape(self, spec: FamilySpec, name: str, fmt: Format) -> _Shape:
        key = (spec, name, fmt)
        shape = self._shapes.get(key)
        if shape is None:
            if len(self._shapes) >= _SHAPES_MAX:
                self._shapes.clear()
            shape = self._shapes[key] = _make_shape(spec, name, fmt)
        return shape

    def _drop(self, name: str, reason: str) -> None:
        """Say once per family and reason what was left out (the exposition is pure: it cannot count)."""
        if (name, reason) not in self._warned and len(self._warned) < _WARNED_MAX:
            self._warned.add((name, reason))
            log.warning("exposition: dropped from %s: %s", name, reason)


def _encode(out: list[str]) -> list[bytes]:
    """The pieces as UTF-8, joined into parts of about _PART_CHARS characters each."""
    parts: list[bytes] = []
    group: list[str] = []
    size = 0
    for piece in out:
        group.append(piece)
        size += len(piece)
        if size >= _PART_CHARS:
            # Label values are str from anywhere; a lone surrogate must not fail the whole scrape.
            parts.append("".join(group).encode("utf-8", "replace"))
            group, size = [], 0
    if group:
        parts.append("".join(group).encode("utf-8", "replace"))
    return parts


def render(families: Iterable[Family], fmt: Format = Format.TEXT, namespace: str = "apm") -> bytes:
    """One render with a fresh Renderer: the same bytes as `Renderer.render`, with nothing kept."""
    return Renderer().render(families, fmt, namespace)
