"""One StatsD line -> plain Event values, or a ParseError naming the reason.

Pure and stateless: no I/O, no registry, no mapping. It understands plain
StatsD, DogStatsD (multi-value lines, `|#tags`, `|@rate`, `|c:container`,
`|T<timestamp>`, events and service checks), and the InfluxDB (`name,k=v`),
Librato (`name#k=v`) and SignalFX (`name[k=v]`) tag dialects, as
statsd_exporter does. The ingest path only calls it once per distinct
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


def parse_line(line: bytes) -> list[Event]:
    """Events of one line; [] for a blank line. Raises ParseError (or Ignored)."""
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

    head, sep, rest = text.partition(":")
    if not sep:
        raise ParseError("malformed_line", "no ':' between name and value")
    values_text, sep, fields_text = rest.partition("|")
    if not sep:
        raise ParseError("malformed_line", "no '|' before the type")
    fields = fields_text.split("|")
    kind = _TYPES.get(fields[0])
    if kind is None:
        raise ParseError("invalid_type", repr(fields[0]))

    name, tags = _name_and_tags(head)
    rate = 1.0
    for field in fields[1:]:
        if not field:
            raise ParseError("malformed_line", "empty field")
        first = field[0]
        if first == "@":
            rate = _sample_rate(field[1:])
        elif first == "#":
            if tags:
                raise ParseError("mixed_tagging_styles")
            tags = _dogstatsd_tags(field[1:])
        elif field.startswith(("c:", "e:")) or (first == "T" and field[1:].isdigit()):
            pass  # DogStatsD container id, external data, timestamp: tolerated, not used
        else:
            raise ParseError("unknown_field", repr(field[:32]))

    raw_values = values_text.split(":")
    if len(raw_values) > MAX_VALUES:
        raise ParseError("too_many_values", str(len(raw_values)))
    if len(raw_values) > 1 and kind not in OBSERVERS:
        # Only timers, histograms and distributions may pack several values (DogStatsD).
        raise ParseError("malformed_line", "several values on a non-observer line")
    if kind is Kind.SET:
        if not values_text:
            raise ParseError("invalid_value", "empty set member")
        return [Event(kind, name, 1.0, tags, rate, values_text)]
    events = []
    for raw in raw_values:
        value = parse_value(raw)
        event_kind = kind
        if kind is Kind.GAUGE and raw[0] in "+-":
            event_kind = Kind.GAUGE_DELTA
        elif kind is Kind.COUNTER and value < 0:
            raise ParseError("negative_counter", raw)
        events.append(Event(event_kind, name, value, tags, rate))
    return events


def _sample_rate(text: str) -> float:
    try:
        rate = float(text)
    except ValueError:
        raise ParseError("invalid_sample_rate", repr(text)) from None
    if not 0.0 < rate <= 1.0:
        raise ParseError("invalid_sample_rate", repr(text))
    return rate


def _name_and_tags(head: str) -> tuple[str, Tags]:
    """Split the name from InfluxDB (`,`), Librato (`#`) or SignalFX (`[...]`) tags; the
    first of those characters decides the style, and only one style is allowed."""
    tags: Tags = ()
    name = head
    cut = min((i for i in (head.find(","), head.find("#"), head.find("[")) if i >= 0), default=-1)
    if cut >= 0:
        if head[cut] == "[":
            end = head.find("]", cut)
            if end < 0:
                raise ParseError("invalid_tag", "unclosed '['")
            tags = _pairs(head[cut + 1:end].split(","), "=")
            name = head[:cut] + head[end + 1:]
        else:
            name = head[:cut]
            tags = _pairs(head[cut + 1:].split(","), "=")
        if any(c in name for c in ",#[]"):
            raise ParseError("mixed_tagging_styles")
    if not name:
        raise ParseError("empty_name")
    if len(name) > MAX_NAME_CHARS:
        raise ParseError("name_too_long", f"{len(name)} characters")
    return name, tags


def _dogstatsd_tags(text: str) -> Tags:
    return _pairs(text.split(","), ":")


def _pairs(items: list[str], sep: str) -> Tags:
    if len(items) > MAX_TAGS:
        raise ParseError("too_many_tags", str(len(items)))
    pairs = []
    for item in items:
        if not item:
            continue
        key, found, value = item.partition(sep)
        if not found:
            # A bare DogStatsD tag ("#canary") has no value to become a label: skipped.
            if sep == ":":
                continue
            raise ParseError("invalid_tag", repr(item[:32]))
        if not key:
            raise ParseError("invalid_tag", repr(item[:32]))
        if len(value) > MAX_TAG_VALUE_CHARS:
            raise ParseError("tag_value_too_long", f"{len(value)} characters")
        pairs.append((key, value))
    return tuple(pairs)
