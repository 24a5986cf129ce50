"""A statsd_exporter mapping file (`--statsd.mapping-config`), read as statsd_exporter reads it.

Top-level `defaults:` and `mappings:`, every key statsd_exporter's mapper knows, and
what it refuses refused here, each problem as `file:line: path: message`. What the
rules mean also follows statsd_exporter (pkg/mapper), where it differs from our own
`statsd.mappings`:

- glob rules are tried before regex rules, whatever their order in the file; among
  globs the first in the file wins, or with `glob_disable_ordering` the most specific
  (a literal component beats `*`, left to right);
- a regex is searched anywhere in the name (not anchored), and `match_metric_type`
  is checked after it matched;
- `$1`, `${1}`, `$name` in a name or label value: the longest run of letters, digits
  and `_` after the `$` names the capture, so `$1_total` is the capture `1_total`
  (empty); references that capture nothing expand to "";
- an unset `observer_type` is a summary (statsd_exporter's default), with its default
  quantiles 0.5, 0.9, 0.99; histograms default to Prometheus's default buckets;
- `honor_labels: true` lets a line's own tags win over the rule's labels.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal, NamedTuple

from pydantic import BeforeValidator, Field, ValidationError

from exporter import yamlsource
from exporter.model import NativeOptions
from exporter.schema import Section

# statsd_exporter's own patterns (pkg/mapper/mapper.go).
_STATSD_METRIC = r"[a-zA-Z_]([a-zA-Z0-9_\-])*"
_STATSD_METRIC_SUBSEQUENT = r"[a-zA-Z0-9_]([a-zA-Z0-9_\-])*"
_TEMPLATE_REPLACE = r"(\$\{?\d+\}?)"
METRIC_LINE = re.compile(rf"^(\*|{_STATSD_METRIC})(\.\*|\.{_STATSD_METRIC_SUBSEQUENT})*$")
METRIC_NAME = re.compile(rf"^([a-zA-Z_]|{_TEMPLATE_REPLACE})([a-zA-Z0-9_]|{_TEMPLATE_REPLACE})*$")
LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]+$")
_REFERENCE = re.compile(r"\$\{?([a-zA-Z0-9_]+)\}?")

DEFAULT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)  # client_golang's DefBuckets
DEFAULT_QUANTILES = (0.5, 0.9, 0.99)
DEFAULT_MAX_AGE = 600.0  # client_golang's summary window, which statsd_exporter keeps by default
DEFAULT_NATIVE_FACTOR, DEFAULT_NATIVE_MAX_BUCKETS = 1.1, 256  # statsd_exporter's defaults


_GO_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_GO_UNIT = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def _go_duration(value: Any) -> Any:
    """Seconds from a Go duration as statsd_exporter's YAML reads one: `90s`, `1h30m`, `0`; a
    bare number is nanoseconds (time.Duration's unit), so `ttl: 60` is 60 ns, as there."""
    if isinstance(value, bool):
        raise ValueError(f"invalid duration {value!r}")
    if isinstance(value, (int, float)):
        return value * 1e-9
    if isinstance(value, str):
        text = value.strip()
        if text in ("0", "+0", "-0"):
            return 0.0
        parts = _GO_DURATION_PART.findall(text)
        if not parts or "".join(n + u for n, u in parts) != text:
            raise ValueError(f"invalid duration {value!r}: e.g. 90s, 10m, 1h30m")
        return sum(float(n) * _GO_UNIT[u] for n, u in parts)
    return value


GoDuration = Annotated[float, BeforeValidator(_go_duration), Field(ge=0)]


class MappingFileError(Exception):
    """Every problem of a mapping file, each as `file:line: path: message`."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class Objective(Section):
    quantile: float
    error: float = 0.0  # accepted: our summaries keep an exact window, so there is no error to bound


class SummaryOptions(Section):
    quantiles: list[Objective] = Field(default_factory=list)
    # The quantiles' window (default 10m), holding at most 1024 values; age_buckets and
    # buf_cap are how client_golang approximates one: accepted, not needed.
    max_age: GoDuration | None = None
    age_buckets: Annotated[int, Field(ge=0)] = 0
    buf_cap: Annotated[int, Field(ge=0)] = 0


class HistogramOptions(Section):
    buckets: list[float] = Field(default_factory=list)
    native_histogram_bucket_factor: float = 0.0
    native_histogram_max_buckets: Annotated[int, Field(ge=0)] = 0


class FileDefaults(Section):
    observer_type: Literal["histogram", "summary", ""] = ""
    match_type: Literal["glob", "regex", ""] = ""
    glob_disable_ordering: bool = False
    ttl: GoDuration | None = None
    summary_options: SummaryOptions = SummaryOptions()
    histogram_options: HistogramOptions = HistogramOptions()


class FileMapping(Section):
    match: str
    name: str = ""
    labels: dict[str, str] = Field(default_factory=dict)
    honor_labels: bool = False
    observer_type: Literal["histogram", "summary", ""] = ""
    match_type: Literal["glob", "regex", ""] = ""
    help: str = ""
    action: Literal["map", "drop", ""] = ""
    match_metric_type: Literal["counter", "gauge", "observer", ""] = ""
    ttl: GoDuration | None = None
    summary_options: SummaryOptions | None = None
    histogram_options: HistogramOptions | None = None
    scale: float | None = None


class MappingFileSchema(Section):
    defaults: FileDefaults = FileDefaults()
    mappings: list[FileMapping] = Field(default_factory=list)


class Rule(NamedTuple):
    """One mapping, resolved against the defaults."""

    glob: tuple[str, ...] | None  # the dot-separated components of a glob, else None
    regex: re.Pattern[str] | None
    type_class: str | None  # counter | gauge | observer, None: any
    drop: bool
    name: str
    labels: tuple[tuple[str, str], ...]
    honor_labels: bool
    observer_type: str  # histogram | summary
    buckets: tuple[float, ...]
    native: NativeOptions | None  # statsd_exporter's histograms are native as well as classic
    quantiles: tuple[float, ...]
    ttl: float
    scale: float | None
    help: str | None
    max_age: float  # a summary's window, seconds


class Matched(NamedTuple):
    rule: Rule
    name: str
    labels: tuple[tuple[str, str], ...]


class MappingFile:
    """The rules of one file, and how statsd_exporter picks the one for a name."""

    def __init__(self, source: str, rules: list[Rule], ordering: bool) -> None:
        self.source = source
        self.rules = rules
        self._globs = [r for r in rules if r.glob is not None]
        self._regexes = [r for r in rules if r.regex is not None]
        self._ordering = ordering

    def __len__(self) -> int:
        return len(self.rules)

    def match(self, name: str, type_class: str) -> Matched | None:
        fields = name.split(".")
        best: tuple[tuple[int, ...], Rule, list[str]] | None = None
        for index, rule in enumerate(self._globs):
            assert rule.glob is not None
            if (rule.type_class is not None and rule.type_class != type_class) or len(rule.glob) != len(fields):
                continue
            if not all(p == "*" or p == f for p, f in zip(rule.glob, fields)):
                continue
            captures = [f for p, f in zip(rule.glob, fields) if p == "*"]
            if self._ordering:
                return _matched(rule, functools.partial(_capture, captures))
            # Most specific first: a literal component beats `*`, left to right; then file order.
            key = (*(int(p == "*") for p in rule.glob), index)
            if best is None or key < best[0]:
                best = (key, rule, captures)
        if best is not None:
            captures = best[2]
            return _matched(best[1], functools.partial(_capture, captures))
        for rule in self._regexes:
            assert rule.regex is not None
            found = rule.regex.search(name)
            if found is None:
                continue
            if rule.type_class is not None and rule.type_class != type_class:
                continue
            return _matched(rule, functools.partial(_group, found))
        return None


def _capture(captures: list[str], ref: str) -> str:
    """A glob's `$n` (from 1); anything else, or a number past the captures, is ""."""
    if not ref.isdigit():
        return ""
    index = int(ref)
    return captures[index - 1] if 1 <= index <= len(captures) else ""


def _group(found: re.Match[str], ref: str) -> str:
    try:
        value = found.group(int(ref) if ref.isdigit() else ref)
    except (IndexError, re.error):
        return ""
    return value or ""


def _matched(rule: Rule, value_of: Callable[[str], str]) -> Matched:
    def expand(template: str) -> str:
        return _REFERENCE.sub(lambda m: value_of(m.group(1)), template) if "$" in template else template

    return Matched(rule, expand(rule.name), tuple((k, expand(v)) for k, v in rule.labels))


def load(path: str) -> MappingFile:
    """Read and check a mapping file; raises MappingFileError with every problem."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise MappingFileError([f"{path}: cannot read: {err}"]) from None
    return parse(text, path)


def parse(text: str, source: str) -> MappingFile:
    try:
        doc = yamlsource.read(text, source)
    except yamlsource.YAMLSyntaxError as err:
        raise MappingFileError([str(err)]) from None
    schema = None
    try:
        schema = MappingFileSchema.model_validate(doc.data)
    except ValidationError as err:
        doc.problems += doc.validation_problems(err, "unknown key (statsd_exporter refuses it too)")
    if schema is None or doc.problems:
        raise MappingFileError(doc.problems)
    defaults = schema.defaults
    rules = []
    for i, mapping in enumerate(schema.mappings):
        def report(loc: tuple[str, ...], message: str, i: int = i) -> None:
            doc.problems.append(doc.problem(("mappings", i, *loc), message))

        rule = _rule(mapping, defaults, report)
        if rule is not None:
            rules.append(rule)
    default_buckets = defaults.histogram_options.buckets
    if default_buckets:
        problem = _bucket_problem(default_buckets)
        if problem:
            doc.problems.append(doc.problem(("defaults", "histogram_options", "buckets"), problem))
    problem = _quantile_problem(defaults.summary_options.quantiles)
    if problem:
        doc.problems.append(doc.problem(("defaults", "summary_options", "quantiles"), problem))
    if doc.problems:
        raise MappingFileError(doc.problems)
    return MappingFile(source, rules, not defaults.glob_disable_ordering)


def _bucket_problem(buckets: list[float]) -> str:
    if any(not math.isfinite(b) for b in buckets):
        return "bucket bounds must be finite (+Inf is always added)"
    if buckets != sorted(set(buckets)):
        return "histogram buckets must be in increasing order"
    return ""


def _quantile_problem(objectives: list[Objective]) -> str:
    quantiles = [o.quantile for o in objectives]
    if any(not 0.0 <= q <= 1.0 for q in quantiles):
        return "quantiles must be between 0 and 1"
    if len(set(quantiles)) != len(quantiles):
        return "duplicate quantile"
    return ""


def _rule(m: FileMapping, defaults: FileDefaults, report: Callable[[tuple[str, ...], str], None]) -> Rule | None:
    bad = False

    def fail(loc: tuple[str, ...], message: str) -> None:
        nonlocal bad
        bad = True
        report(loc, message)

    for key in m.labels:
        if not LABEL_NAME.match(key):
            fail(("labels", key), f"invalid label key: {key}")
    if not m.name:
        fail(("name",), "metric mapping didn't set a metric name")
    elif not METRIC_NAME.match(m.name):
        fail(("name",), f"metric name {m.name!r} doesn't match regex {METRIC_NAME.pattern!r}")
    match_type = m.match_type or defaults.match_type or "glob"
    glob: tuple[str, ...] | None = None
    regex = None
    if match_type == "glob":
        if not METRIC_LINE.match(m.match):
            fail(("match",), f"invalid match: {m.match}")
        glob = tuple(m.match.split("."))
    else:
        try:
            regex = re.compile(m.match)
        except re.error as err:
            fail(("match",), f"invalid regex {m.match} in mapping: {err}")
    observer_type = m.observer_type or defaults.observer_type or "summary"
    if observer_type == "histogram" and m.summary_options is not None:
        fail(("summary_options",), "cannot use histogram observer and summary options at the same time")
    if observer_type == "summary" and m.histogram_options is not None:
        fail(("histogram_options",), "cannot use summary observer and histogram options at the same time")
    buckets = (m.histogram_options.buckets if m.histogram_options and m.histogram_options.buckets
               else defaults.histogram_options.buckets or list(DEFAULT_BUCKETS))
    if m.histogram_options and m.histogram_options.buckets:
        message = _bucket_problem(m.histogram_options.buckets)
        if message:
            fail(("histogram_options", "buckets"), message)
    objectives = (m.summary_options.quantiles if m.summary_options and m.summary_options.quantiles
                  else defaults.summary_options.quantiles)
    if m.summary_options:
        message = _quantile_problem(m.summary_options.quantiles)
        if message:
            fail(("summary_options", "quantiles"), message)
    quantiles = tuple(sorted(o.quantile for o in objectives)) or DEFAULT_QUANTILES
    if m.scale is not None and not math.isfinite(m.scale):
        fail(("scale",), "scale must be a finite number")
    if bad:
        return None
    # As statsd_exporter: a mapping's 0 (or none) takes the default's.
    ttl = m.ttl or defaults.ttl or 0.0
    return Rule(glob, regex, m.match_metric_type or None, m.action == "drop", m.name, tuple(m.labels.items()),
                m.honor_labels, observer_type, tuple(buckets),
                _native(m.histogram_options, defaults) if observer_type == "histogram" else None, quantiles,
                ttl, m.scale, m.help or None,
                (m.summary_options and m.summary_options.max_age) or defaults.summary_options.max_age
                or DEFAULT_MAX_AGE)


def _native(options: HistogramOptions | None, defaults: FileDefaults) -> NativeOptions:
    """As statsd_exporter: every histogram is native too (client_golang's, with its default
    factor 1.1 and 256 buckets unless the rule or the defaults say otherwise)."""
    from exporter import native  # only where a family is native (idle RSS)

    base = defaults.histogram_options
    factor = (options.native_histogram_bucket_factor if options and options.native_histogram_bucket_factor > 0
              else base.native_histogram_bucket_factor) or DEFAULT_NATIVE_FACTOR
    max_buckets = (options.native_histogram_max_buckets if options and options.native_histogram_max_buckets > 0
                   else base.native_histogram_max_buckets) or DEFAULT_NATIVE_MAX_BUCKETS
    return NativeOptions(native.pick_schema(factor), native.DEFAULT_ZERO_THRESHOLD, max_buckets, classic=True)
