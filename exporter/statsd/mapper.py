"""Event -> Route: which family and label values a StatsD sample belongs to.

Order: the built-in conventions (the `apm.*` names of docs/statsd.md, which
the client library emits and the dashboards read), then the user's rules in
file order (first match wins), then the default rule. Pure and immutable: a
reload builds a new Mapper; statsd/routes.py caches routes per name+tags+type.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import NamedTuple

from exporter import families, wire
from exporter.model import FamilySpec, MetricType, NativeOptions
from exporter.statsd.config import Defaults, Mapping, StatsdConfig, native_options
from exporter.statsd.mapfile import MappingFile
from exporter.statsd.mapfile import Rule as FileRule
from exporter.statsd.parser import CONTAINER_ID, OBSERVERS, Event, Kind, ParseError

MS = 0.001  # StatsD timers are milliseconds; Prometheus wants seconds.
MAX_METRIC_NAME = 200
_INVALID_NAME_CHARS = re.compile(r"[^a-zA-Z0-9_:]")
_INVALID_LABEL_CHARS = re.compile(r"[^a-zA-Z0-9_]")
_TEMPLATE = re.compile(r"\$\{(\w+)\}|\$(\d+)")


class Route(NamedTuple):
    """Where a sample goes. `scale` multiplies the value (ms -> s, rule scale);
    `unmapped` marks the default rule, so its lines are counted."""

    spec: FamilySpec
    labels: tuple[str, ...]
    scale: float = 1.0
    ttl: float = 0.0
    unmapped: bool = False
    max_age: float = 0.0  # a summary's time window (statsd_exporter's summary_options.max_age); 0: none


class Drop(NamedTuple):
    """A line not to store: a rule's `action: drop` or, `unmapped`, the default rule's under
    `unmatched: drop` (still counted as unmapped)."""

    unmapped: bool


DROP, DROP_UNMAPPED = Drop(False), Drop(True)


class MappingError(ParseError):
    """A line whose mapped name or labels cannot be made valid (counted like a parse error)."""


def metric_name(raw: str) -> str:
    """Sanitise a StatsD name the way statsd_exporter does: invalid characters (dots
    included) become `_`, and a leading digit gets a `_` prefix."""
    name = _INVALID_NAME_CHARS.sub("_", raw)
    if not name:
        raise MappingError("invalid_name", "empty name")
    if name[0].isdigit():
        name = "_" + name
    if len(name) > MAX_METRIC_NAME:
        raise MappingError("name_too_long", f"{len(name)} characters")
    return name


def label_name(raw: str) -> str:
    """Sanitise a tag key into a label name; "" means the tag cannot be a label (dropped).
    `__` is reserved by Prometheus, so such a prefix shrinks to one `_`."""
    name = _INVALID_LABEL_CHARS.sub("_", raw)
    if name.startswith("__"):
        name = "_" + name.lstrip("_")
    if name == "_":
        return ""
    if name and name[0].isdigit():
        name = "_" + name
    return name


def _type_class(kind: Kind) -> str:
    if kind is Kind.COUNTER:
        return "counter"
    if kind is Kind.GAUGE or kind is Kind.GAUGE_DELTA:
        return "gauge"
    if kind is Kind.SET:
        return "set"
    return "observer"


# --- built-in conventions (their wire names: exporter/wire.py) ----------------------
class _Convention(NamedTuple):
    spec: FamilySpec
    type_class: str  # counter | gauge | observer
    # Per label of the spec, in its order: (tags that supply it, default or None when
    # required); a label the wire name fixes has no tags and its value as the default.
    labels: tuple[tuple[tuple[str, ...], str | None], ...]


_TYPE_CLASS = {"c": "counter", "g": "gauge", "ms": "observer", "h": "observer", "d": "observer"}


def _convention(conv: wire.Convention) -> _Convention:
    spec = next(s for s in families.all_specs() if s.name == conv.family and s.namespaced)
    labels: list[tuple[tuple[str, ...], str | None]] = []
    for label in spec.labels:
        if label in conv.fixed:
            labels.append(((), conv.fixed[label]))
        else:
            aliases = wire.OUTCOME_ALIASES if label == wire.TAG_OUTCOME else ()
            labels.append(((label, *aliases), conv.tags[label]))
    return _Convention(spec, _TYPE_CLASS[conv.type], tuple(labels))


CONVENTIONS: dict[str, _Convention] = {name: _convention(conv) for name, conv in wire.CONVENTIONS.items()}


def _convention_route(conv: _Convention, event: Event, ttl: float) -> Route:
    if _type_class(event.kind) != conv.type_class:
        raise MappingError("convention_type_mismatch", f"{event.name} must be a {conv.type_class}")
    tags = dict(event.tags)
    values = []
    for keys, default in conv.labels:
        value = next((tags[k] for k in keys if k in tags), default)
        if value is None:
            raise MappingError("convention_missing_tag", f"{event.name} needs a {keys[0]!r} tag")
        values.append(value)
    # Durations: ms timers become seconds; h and d are taken as given (seconds).
    scale = MS if event.kind is Kind.TIMER and conv.spec.unit == "seconds" else 1.0
    return Route(conv.spec, tuple(values), scale, ttl)


# --- user rules ------------------------------------------------------------------------
class _Rule(NamedTuple):
    pattern: re.Pattern[str]
    type_class: str | None
    drop: bool
    name: str
    labels: tuple[tuple[str, str], ...]
    observer_type: str
    buckets: tuple[float, ...]
    native: NativeOptions | None
    quantiles: tuple[float, ...]
    ttl: float
    scale: float | None
    help: str | None


def _glob(pattern: str) -> re.Pattern[str]:
    # As statsd_exporter: `*` matches within one dot-separated component and is a capture.
    return re.compile("^" + re.escape(pattern).replace(r"\*", "([^.]*)") + "$")


def _rule(mapping: Mapping, defaults: Defaults) -> _Rule:
    match_type = mapping.match_type or defaults.match_type
    pattern = re.compile(mapping.match) if match_type == "regex" else _glob(mapping.match)
    type_class = "observer" if mapping.match_metric_type == "timer" else mapping.match_metric_type
    buckets = (mapping.histogram_options.buckets if mapping.histogram_options and mapping.histogram_options.buckets
               else mapping.buckets or defaults.buckets)
    quantiles = (tuple(sorted(q.quantile for q in mapping.summary_options.quantiles))
                 if mapping.summary_options else mapping.quantiles or defaults.quantiles)
    ttl = mapping.ttl if mapping.ttl is not None else (defaults.ttl or 0.0)
    return _Rule(pattern, type_class, mapping.action == "drop", mapping.name, tuple(mapping.labels.items()),
                 mapping.observer_type or defaults.observer_type, tuple(buckets),
                 native_options(mapping.histogram_options, defaults), tuple(quantiles), ttl,
                 mapping.scale, mapping.help)


def with_native(spec: FamilySpec, options: NativeOptions | None) -> FamilySpec:
    """A histogram spec exposed natively too (`both`) or instead (`native`: no classic buckets)."""
    if options is None or spec.type is not MetricType.HISTOGRAM:
        return spec
    return spec._replace(native=options, buckets=spec.buckets if options.classic else ())


def _expand(template: str, match: re.Match[str]) -> str:
    def group(m: re.Match[str]) -> str:
        key = m.group(1) or m.group(2)
        try:
            value = match.group(int(key) if key.isdigit() else key)
        except (IndexError, re.error):
            return ""
        return value or ""

    return _TEMPLATE.sub(group, template) if "$" in template else template



class Mapper:
    """Immutable routing table built from the `statsd:` section."""

    def __init__(self, rules: Sequence[Mapping] = (), defaults: Defaults | None = None,
                 conventions: bool = True, container_id: bool = True, file: MappingFile | None = None,
                 instance_expiry: float = 10.0, exemplar_tag: str = "trace_id",
                 exemplar_span_tag: str = "span_id") -> None:
        # routes.py takes these off a line before mapping it (parser.exemplar)
        self.exemplar_tag = exemplar_tag
        self.exemplar_span_tag = exemplar_span_tag
        defaults = defaults or Defaults()
        # How long an instance's share of a per-instance gauge counts without news (routes.py).
        self.instance_expiry = instance_expiry
        self._file = file
        # Whether a DogStatsD container id (the parser's `container_id` tag) becomes a label.
        self._skip_tags = frozenset() if container_id else frozenset((CONTAINER_ID,))
        self._defaults = defaults
        self._rules = [_rule(m, defaults) for m in rules]
        self._conventions = CONVENTIONS if conventions else {}
        self._native = native_options(None, defaults)
        if self._native is not None:  # the observer conventions take the defaults' native settings
            self._conventions = {name: conv._replace(spec=with_native(conv.spec, self._native))
                                 for name, conv in self._conventions.items()}
        self._default_ttl = defaults.ttl or 0.0
        self._unmatched_drop = defaults.unmatched == "drop"

    @classmethod
    def from_config(cls, config: StatsdConfig) -> Mapper:
        return cls(config.mappings, config.defaults, config.conventions,
                   config.dogstatsd_container_id == "label", config.mapping_file, config.instance_expiry,
                   config.exemplar_tag, config.exemplar_span_tag)

    def __len__(self) -> int:
        return len(self._rules) + (len(self._file) if self._file else 0)

    def route(self, event: Event) -> Route | Drop:
        """The route for this event, or a Drop. Raises MappingError."""
        conv = self._conventions.get(event.name)
        if conv is not None:
            return _convention_route(conv, event, self._default_ttl)
        type_class = _type_class(event.kind)
        for rule in self._rules:
            if rule.type_class is not None and rule.type_class != type_class:
                continue
            match = rule.pattern.match(event.name)
            if match is None:
                continue
            if rule.drop:
                return DROP
            name = metric_name(_expand(rule.name, match))
            fixed = tuple((label, _expand(template, match)) for label, template in rule.labels)
            return self._build(event, name, fixed, rule, unmapped=False)
        if self._file is not None:
            found = self._file.match(event.name, type_class)
            if found is not None:
                if found.rule.drop:
                    return DROP
                return self._build(event, metric_name(found.name), found.labels, found.rule, unmapped=False,
                                   honor_labels=found.rule.honor_labels)
        if self._unmatched_drop:
            return DROP_UNMAPPED
        return self._build(event, metric_name(event.name), (), None, unmapped=True)

    def _build(self, event: Event, name: str, fixed: tuple[tuple[str, str], ...],
               rule: _Rule | FileRule | None, unmapped: bool, honor_labels: bool = False) -> Route:
        kind = event.kind
        observer_type = rule.observer_type if rule else self._defaults.observer_type
        reserved = {"le"} if observer_type == "histogram" else {"quantile"}
        labels = dict(fixed)
        for key, value in event.tags:
            if key in self._skip_tags:
                continue
            label = label_name(key)
            # Rule labels win over tags, unless the rule honors them (statsd_exporter's honor_labels).
            if label and label not in reserved and (honor_labels or label not in dict(fixed)):
                labels[label] = value
        names = tuple(sorted(labels))
        values = tuple(labels[n] for n in names)
        scale = MS if kind is Kind.TIMER else 1.0
        if rule is not None and rule.scale is not None:
            scale *= rule.scale
        help_text = (rule.help if rule and rule.help else f"StatsD {_type_class(kind)} {event.name}")
        if kind is Kind.COUNTER:
            if not name.endswith("_total"):
                name += "_total"  # so `promtool check metrics` accepts it
            spec = FamilySpec(name, MetricType.COUNTER, help_text, names, namespaced=False)
        elif kind in OBSERVERS:
            if observer_type == "summary":
                quantiles = rule.quantiles if rule else self._defaults.quantiles
                spec = FamilySpec(name, MetricType.SUMMARY, help_text, names, quantiles, namespaced=False)
            else:
                buckets = rule.buckets if rule else self._defaults.buckets
                spec = with_native(FamilySpec(name, MetricType.HISTOGRAM, help_text, names, buckets, namespaced=False),
                                   rule.native if rule else self._native)
        else:  # gauges, and sets (their value is the number of distinct members)
            spec = FamilySpec(name, MetricType.GAUGE, help_text, names, namespaced=False)
        ttl = rule.ttl if rule else self._default_ttl
        max_age = rule.max_age if isinstance(rule, FileRule) and spec.type is MetricType.SUMMARY else 0.0
        return Route(spec, values, scale, ttl, unmapped, max_age)
