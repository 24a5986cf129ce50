"""One StatsD line -> plain Event values, or a ParseError naming the reason.

Pure and stateless: no I/O, no registry, no mapping. It understands plain
StatsD and Etsy multi-metric lines (`name:1|c:2|ms`), DogStatsD (multi-value
lines, `|#tags`, `|@rate`, `|c:<container id>`, `|T<timestamp>`, events and
service checks), and the InfluxDB (`name,k=v`), Librato (`name#k=v`) and
SignalFX (`name[k=v]`) tag dialects, as statsd_exporter reads them
(docs/statsd.md says where the Datadog agent is followed instead). The ingest path only calls it once per distinct
name+tags+type (the result is cached), so clarity wins over speed here.
"""

from __future__ import annotations

import math
from enum import Enum
from typing import NamedTuple

# Limits that keep one hostile line from costing memory or exposition size.
MAX_LINE_BYTES = 65536
MAX_NAME_CHARS = 250
MAX_TAGS = 64
MAX_TAG_VALUE_CHARS = 1024
MAX_VALUES = 1024  # DogStatsD multi-value lines
CONTAINER_ID = "container_id"  # the tag a DogStatsD `|c:<id>` field becomes
# An exemplar's label names, whatever the tags that carry them are called (OpenTelemetry's and
# Grafana's names; a tag such as `dd.trace_id` would be no valid label name), and OpenMetrics'
# limit on its label set: names and values together at most 128 UTF-8 characters.
EXEMPLAR_TRACE, EXEMPLAR_SPAN = "trace_id", "span_id"
MAX_EXEMPLAR_CHARS = 128


class Kind(str, Enum):
    COUNTER = "c"
    GAUGE = "g"
    GAUGE_DELTA = "g+"
    TIMER = "ms"
    HISTOGRAM = "h"
    DISTRIBUTION = "d"
    SET = "s"


OBSERVERS = frozenset((Kind.TIMER, Kind.HISTOGRAM, Kind.DISTRIBUTION))
Tags = tuple[tuple[str, str], ...]


class Event(NamedTuple):
    """One sample: `member` is the raw value of a set line (its `value` is then 1.0)."""

    kind: Kind
    name: str
    value: float
    tags: Tags = ()
    rate: float = 1.0
    member: str = ""


class ParseError(ValueError):
    """A line that cannot become events; `reason` is the counter label (a fixed vocabulary)."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


class Ignored(ParseError):
    """A well-formed DogStatsD line that is not a metric (event, service check): counted, not an error."""


_TYPES = {
    "c": Kind.COUNTER, "g": Kind.GAUGE, "ms": Kind.TIMER, "h": Kind.HISTOGRAM,
    "d": Kind.DISTRIBUTION, "s": Kind.SET,
}


def parse_value(text: str) -> float:
    """A finite float; StatsD has no NaN or Inf, and a NaN would poison every sum it reaches."""
    # What float() accepts on bytes (the ingest hot path calls it directly), so a value
    # means the same cached or not: ASCII only, "1_000" and " 1" included.
    if not text.isascii():
        raise ParseError("invalid_value", repr(text))
    try:
        value = float(text)
    except ValueError:
        raise ParseError("invalid_value", repr(text)) from None
    if not math.isfinite(value):
        raise ParseError("non_finite_value", repr(text))
    return value


def parse_line(line: bytes, notes: list[str] | None = None) -> list[Event]:
    """Events of one line; [] for a blank line. Raises ParseError (or Ignored).

    A part that statsd_exporter sets aside without dropping the line (a bad sample rate,
    taken as 1; a malformed timestamp; a malformed non-DogStatsD tag) is left out and its
    reason appended to `notes`. A DogStatsD `|c:<id>` field becomes a `container_id` tag
    (as statsd_exporter and the OpenTelemetry Collector read it; the mapper may drop it).
    """
    if len(line) > MAX_LINE_BYTES:
        raise ParseError("line_too_long", f"{len(line)} bytes")
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        raise ParseError("invalid_utf8") from None
    text = text.rstrip("\r")
    if not text.strip():
        return []
    if text.startswith("_e{"):
        raise Ignored("event")
    if text.startswith("_sc|"):
        raise Ignored("service_check")
    found = [] if notes is None else notes

    head, sep, rest = text.partition(":")
    if not sep:
        raise ParseError("malformed_line", "no ':' between name and value")
    name, tags = _name_and_tags(head, found)
    events: list[Event] = []
    samples = _samples(rest)
    if len(samples) > MAX_VALUES:
        raise ParseError("too_many_values", str(len(samples)))
    for sample in samples:
        events += _sample(name, tags, sample, found)
    return events


def multi_metric(rest: bytes) -> bool:
    """Whether a line's part after the name is an Etsy multi-metric one (`1|c:2|c:3|ms`)."""
    try:
        return len(_samples(rest.decode("utf-8"))) > 1
    except UnicodeDecodeError:
        return False


def _samples(rest: str) -> list[str]:
    """The `value|type|...` parts of a line: several in an Etsy multi-metric line, as
    statsd_exporter reads it (never with DogStatsD tags, which turn it off); one otherwise,
    a DogStatsD multi-value one (`1:2:3|ms`) included."""
    if "|#" in rest or ":" in rest.partition("|")[0]:
        return [rest]
    samples = rest.split(":")
    if len(samples) > 1 and all(s.partition("|")[2].partition("|")[0] in _TYPES for s in samples):
        return samples
    return [rest]


def _sample(name: str, name_tags: Tags, sample: str, notes: list[str]) -> list[Event]:
    values_text, sep, fields_text = sample.partition("|")
    if not sep:
        raise ParseError("malformed_line", "no '|' before the type")
    fields = fields_text.split("|")
    kind = _TYPES.get(fields[0])
    if kind is None:
        raise ParseError("invalid_type", repr(fields[0]))
    tags = list(name_tags)
    rate = 1.0
    for field in fields[1:]:
        if not field:
            raise ParseError("malformed_line", "empty field")
        first = field[0]
        if first == "@":
            rate = _sample_rate(field[1:], notes)
        elif first == "#":
            if name_tags:
                raise ParseError("mixed_tagging_styles")
            tags += _dogstatsd_tags(field[1:], notes)
        elif first == "c":
            if not field.startswith("c:") or len(field) == 2:
                raise ParseError("malformed_container_id", repr(field[:32]))
            tags.append((CONTAINER_ID, field[2:]))
        elif first == "T":
            if not field[1:].isdigit():
                notes.append("malformed_timestamp")  # the field goes, the line stays
            # A pull exporter has no use for a sample's own time (as statsd_exporter).
        elif field.startswith("e:"):
            pass  # DogStatsD external data (origin detection), as the Datadog agent accepts it
        else:
            raise ParseError("unknown_field", repr(field[:32]))
    if len(tags) > MAX_TAGS:
        raise ParseError("too_many_tags", str(len(tags)))
    tag_tuple = tuple(tags)

    raw_values = values_text.split(":")
    if len(raw_values) > MAX_VALUES:
        raise ParseError("too_many_values", str(len(raw_values)))
    if kind is Kind.SET:
        if not values_text:
            raise ParseError("invalid_value", "empty set member")
        return [Event(kind, name, 1.0, tag_tuple, rate, values_text)]
    if len(raw_values) > 1 and kind not in OBSERVERS:
        # Only timers, histograms and distributions may pack several values (DogStatsD).
        raise ParseError("malformed_line", "several values on a non-observer line")
    events = []
    for raw in raw_values:
        value = parse_value(raw)
        event_kind = kind
        if kind is Kind.GAUGE and raw[0] in "+-":
            event_kind = Kind.GAUGE_DELTA
        elif kind is Kind.COUNTER and value < 0:
            raise ParseError("negative_counter", raw)
        events.append(Event(event_kind, name, value, tag_tuple, rate))
    return events


def _sample_rate(text: str, notes: list[str]) -> float:
    """A rate in (0, 1]; anything else is taken as 1 and noted (both peers keep such lines)."""
    try:
        rate = float(text)
    except ValueError:
        rate = math.nan
    if not 0.0 < rate <= 1.0:
        notes.append("invalid_sample_rate")
        return 1.0
    return rate


def _name_and_tags(head: str, notes: list[str]) -> tuple[str, Tags]:
    """Split the name from SignalFX (`[...]`), Librato (`#`) or InfluxDB (`,`) tags, in
    statsd_exporter's order: brackets first (a lone or reversed one leaves the name as it
    is, noted), else the first `#` or `,`."""
    tags: Tags = ()
    name = head
    start, end = head.find("["), head.find("]")
    if start >= 0 and end > start:
        tags = _pairs(head[start + 1:end], notes)
        name = head[:start] + head[end + 1:]
    elif start >= 0 or end >= 0:
        notes.append("invalid_tag")
    else:
        cut = min((i for i in (head.find(","), head.find("#")) if i >= 0), default=-1)
        if cut >= 0:
            name = head[:cut]
            tags = _pairs(head[cut + 1:], notes)
    if not name:
        raise ParseError("empty_name")
    if len(name) > MAX_NAME_CHARS:
        raise ParseError("name_too_long", f"{len(name)} characters")
    return name, tags


def _dogstatsd_tags(text: str, notes: list[str]) -> Tags:
    """`k:v` pairs; a `#` on a key is dropped (the PHP client writes `#a:1,#b:2`). A bare tag
    or an empty value is legal DogStatsD with nothing to become a label: skipped."""
    items = text.split(",")
    if len(items) > MAX_TAGS:
        raise ParseError("too_many_tags", str(len(items)))
    pairs = []
    for item in items:
        key, found, value = item.removeprefix("#").partition(":")
        if not found or not value:
            continue
        if not key:
            notes.append("invalid_tag")
            continue
        pairs.append(_pair(key, value))
    return tuple(pairs)


def _pairs(text: str, notes: list[str]) -> Tags:
    """`k=v` pairs (InfluxDB, Librato, SignalFX); a malformed one is skipped and noted."""
    items = text.split(",")
    if items[-1] == "":
        items.pop()  # a trailing comma ends the list
    if len(items) > MAX_TAGS:
        raise ParseError("too_many_tags", str(len(items)))
    pairs = []
    for item in items:
        key, found, value = item.partition("=")
        if not (found and key and value):
            notes.append("invalid_tag")
            continue
        pairs.append(_pair(key, value))
    return tuple(pairs)


def _pair(key: str, value: str) -> tuple[str, str]:
    if len(value) > MAX_TAG_VALUE_CHARS:
        raise ParseError("tag_value_too_long", f"{len(value)} characters")
    return key, value


def exemplar(tags: Tags, trace_tag: str, span_tag: str) -> tuple[Tags, Tags]:
    """A line's tags without its trace and span tags (`tags` itself when it has neither), and
    the exemplar labels they make: none without a trace id (a lone span id is still no label),
    and past the OpenMetrics limit the span id is left out first, then the whole exemplar
    (the value counts either way). `trace_tag` "" turns exemplars off: every tag is a label."""
    if not trace_tag or not any(key == trace_tag or key == span_tag for key, _ in tags):
        return tags, ()
    trace = span = ""
    kept = []
    for key, value in tags:
        if key == trace_tag:
            trace = value
        elif key == span_tag:
            span = value
        else:
            kept.append((key, value))
    size = len(EXEMPLAR_TRACE) + len(trace)
    if not trace or size > MAX_EXEMPLAR_CHARS:
        return tuple(kept), ()
    if span and size + len(EXEMPLAR_SPAN) + len(span) <= MAX_EXEMPLAR_CHARS:
        return tuple(kept), ((EXEMPLAR_TRACE, trace), (EXEMPLAR_SPAN, span))
    return tuple(kept), ((EXEMPLAR_TRACE, trace),)
