"""The `statsd:` config section: listeners, mapping rules and their defaults.

The rule vocabulary follows statsd_exporter's mapping file (match, match_type,
match_metric_type, name, labels, action, observer_type, histogram_options,
summary_options, ttl, scale, help) so its users can bring their rules over.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field, PrivateAttr, model_validator

from exporter.families import LATENCY_BUCKETS
from exporter.model import NativeOptions
from exporter.schema import LABEL_NAME, METRIC_NAME, Duration, LabelName, Section
from exporter.statsd import mapfile
from exporter.statsd.mapfile import MappingFile, MappingFileError

_TEMPLATE = re.compile(r"\$\{(\w+)\}|\$(\d+)")


def _check_listen(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme in ("udp", "tcp"):
        try:
            port = parts.port
        except ValueError:
            port = None
        if not parts.hostname or port is None:
            raise ValueError(f"invalid listener {value!r}: expected e.g. udp://127.0.0.1:8125")
    elif parts.scheme == "unixgram":
        if not parts.path.startswith("/"):
            raise ValueError(f"invalid listener {value!r}: expected unixgram:///absolute/path")
    else:
        raise ValueError(f"invalid listener {value!r}: the scheme must be udp, tcp or unixgram")
    return value


ListenAddress = Annotated[str, AfterValidator(_check_listen), Field(examples=["udp://127.0.0.1:8125"])]


def _check_buckets(value: tuple[float, ...]) -> tuple[float, ...]:
    if not value:
        raise ValueError("needs at least one bucket")
    if any(not math.isfinite(b) for b in value):
        raise ValueError("bucket bounds must be finite (+Inf is always added)")
    if list(value) != sorted(set(value)):
        raise ValueError("bucket bounds must be strictly increasing")
    return value


def _check_quantiles(value: tuple[float, ...]) -> tuple[float, ...]:
    if any(not 0.0 < q < 1.0 for q in value):
        raise ValueError("quantiles must be between 0 and 1")
    return tuple(sorted(set(value)))


Buckets = Annotated[tuple[float, ...], AfterValidator(_check_buckets)]


HistogramType = Literal["classic", "native", "both"]


class HistogramOptions(Section):
    """Classic buckets and native-histogram settings, with statsd_exporter's key names."""

    buckets: Buckets | None = None
    # classic | native | both; unset: both when a native_histogram_* key is set (as
    # statsd_exporter, which then exposes both), else classic.
    histogram_type: HistogramType | None = None
    native_histogram_bucket_factor: Annotated[float, Field(gt=1)] | None = None
    native_histogram_max_buckets: Annotated[int, Field(ge=1)] | None = None
    native_histogram_zero_threshold: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = None

    def native_keys(self) -> bool:
        return any(v is not None for v in (self.native_histogram_bucket_factor, self.native_histogram_max_buckets,
                                           self.native_histogram_zero_threshold))


class Quantile(Section):
    quantile: float
    # Accepted for statsd_exporter compatibility; our summaries keep an exact window.
    error: float = 0.0


class SummaryOptions(Section):
    quantiles: list[Quantile]


def _template_check(template: str, pattern: str, what: str) -> None:
    literal = _TEMPLATE.sub("x", template)
    if not re.match(pattern, literal):
        raise ValueError(f"{what} {template!r} is not a valid name even with its $n parts filled in")


class Mapping(Section):
    """One rule; the first rule that matches a line decides its family."""

    match: str
    match_type: Literal["glob", "regex"] | None = None
    # observer covers timers (ms), histograms (h) and distributions (d); timer is an alias.
    match_metric_type: Literal["counter", "gauge", "observer", "timer", "set"] | None = None
    action: Literal["map", "drop"] = "map"
    name: str = ""
    labels: dict[LabelName, str] = Field(default_factory=dict)
    observer_type: Literal["histogram", "summary"] | None = None
    histogram_options: HistogramOptions | None = None
    buckets: Buckets | None = None
    summary_options: SummaryOptions | None = None
    quantiles: Annotated[tuple[float, ...], AfterValidator(_check_quantiles)] | None = None
    ttl: Duration | None = None
    # Multiplies every value; timers (ms) are already converted to seconds before this.
    scale: float | None = None
    help: str | None = None

    @model_validator(mode="after")
    def _check(self) -> Mapping:
        if self.match_type == "regex":
            try:
                re.compile(self.match)
            except re.error as err:
                raise ValueError(f"invalid regular expression {self.match!r}: {err}") from None
        elif not self.match or not re.fullmatch(r"[^\s]+", self.match):
            raise ValueError(f"invalid glob {self.match!r}")
        if self.action == "map":
            if not self.name:
                raise ValueError("a rule with action: map needs a name")
            _template_check(self.name, METRIC_NAME, "name")
        for label in self.labels:
            if label.startswith("__"):
                raise ValueError(f"label {label!r}: names starting with __ are reserved")
        if self.histogram_options and self.buckets:
            raise ValueError("give buckets either directly or in histogram_options, not both")
        if self.summary_options and self.quantiles:
            raise ValueError("give quantiles either directly or in summary_options, not both")
        if self.scale is not None and (not math.isfinite(self.scale) or self.scale == 0):
            raise ValueError("scale must be a finite, non-zero number")
        return self


class Defaults(Section):
    """Values a rule does not set itself, and the default rule for lines no rule matches."""

    match_type: Literal["glob", "regex"] = "glob"
    observer_type: Literal["histogram", "summary"] = "histogram"
    buckets: Buckets = LATENCY_BUCKETS
    quantiles: Annotated[tuple[float, ...], AfterValidator(_check_quantiles)] = (0.5, 0.9, 0.99)
    # Native histograms for every observer family a rule does not configure itself
    # (docs/statsd.md, "Native histograms"); buckets may be given here instead of above.
    histogram_options: HistogramOptions | None = None
    # How long a series lives without updates; unset means forever (as statsd_exporter).
    ttl: Duration | None = None
    # Lines that match neither a convention nor a rule: exported under their own
    # sanitised name with tags as labels (map), or dropped and counted (drop).
    unmatched: Literal["map", "drop"] = "map"
    max_series: Annotated[int, Field(ge=1)] = 100_000
    max_series_per_family: Annotated[int, Field(ge=1)] = 10_000


    @model_validator(mode="after")
    def _check(self) -> Defaults:
        if self.histogram_options is not None and self.histogram_options.buckets is not None:
            if "buckets" in self.model_fields_set:
                raise ValueError("give buckets either directly or in histogram_options, not both")
            self.buckets = self.histogram_options.buckets
        return self


def native_options(rule: HistogramOptions | None, defaults: Defaults) -> NativeOptions | None:
    """A histogram family's native settings: the rule's keys over the defaults', one by one;
    None for a classic family."""
    layers = [o for o in (rule, defaults.histogram_options) if o is not None]

    def first(key: str) -> Any:
        return next((getattr(o, key) for o in layers if getattr(o, key) is not None), None)

    kind = first("histogram_type") or ("both" if any(o.native_keys() for o in layers) else "classic")
    if kind == "classic":
        return None
    from exporter import native  # only for native families: a classic daemon never loads it

    factor = first("native_histogram_bucket_factor") or native.DEFAULT_BUCKET_FACTOR
    max_buckets = first("native_histogram_max_buckets") or native.DEFAULT_MAX_BUCKETS
    zero = first("native_histogram_zero_threshold")
    return NativeOptions(native.pick_schema(factor), native.DEFAULT_ZERO_THRESHOLD if zero is None else zero,
                         max_buckets, classic=kind == "both")


class StatsdConfig(Section):
    """The `statsd:` section. Default: on, UDP on 127.0.0.1:8125, built-in conventions, no rules."""

    enabled: bool = True
    listeners: list[ListenAddress] = Field(default_factory=lambda: ["udp://127.0.0.1:8125"])
    # SO_RCVBUF for datagram listeners, in bytes; unset keeps the kernel default
    # (net.core.rmem_default). The kernel caps it at net.core.rmem_max.
    read_buffer: Annotated[int, Field(ge=4096)] | None = None
    # Map the apm.* names of docs/statsd.md onto the built-in families.
    conventions: bool = True
    # A DogStatsD 1.2 container id (`|c:<id>`, sent by current datadog clients in
    # containers): a `container_id` label (as statsd_exporter), or dropped.
    dogstatsd_container_id: Literal["label", "drop"] = "label"
    # A gauge reported per process instance (the `apm_instance` tag the client adds) counts
    # towards the sum while its instance was heard from this recently: a few flush intervals
    # of the client (1 s by default), so a SIGKILLed worker's share goes within this time.
    instance_expiry: Duration = 10.0
    # Close a TCP connection that sends nothing for this long.
    tcp_idle_timeout: Duration = 300.0
    tcp_max_connections: Annotated[int, Field(ge=1)] = 1024
    # Longest TCP line; a longer one closes the connection (it is counted).
    max_line_length: Annotated[int, Field(ge=64, le=1 << 20)] = 65536
    # Datagram listeners read in this many processes (SO_REUSEPORT, udp only);
    # 1 reads in a thread of the daemon. See BENCHMARKS.md for what more gives.
    udp_workers: Annotated[int, Field(ge=1, le=64)] = 1
    # A tag whose value is a trace id: kept as the exemplar of the bucket the line's value
    # falls in, or of the counter it adds to (OpenMetrics and protobuf), never a label.
    # "" turns exemplars off (both tags are then labels like any other).
    exemplar_tag: Annotated[str, Field(pattern=r"^([a-zA-Z_][a-zA-Z0-9_.-]*)?$")] = "trace_id"
    # A tag whose value is the span id of that trace: the exemplar's `span_id`, never a label.
    exemplar_span_tag: Annotated[str, Field(pattern=r"^([a-zA-Z_][a-zA-Z0-9_.-]*)?$")] = "span_id"
    defaults: Defaults = Defaults()
    mappings: list[Mapping] = Field(default_factory=list)
    # A statsd_exporter mapping file, read as it is (statsd/mapfile.py); its rules come
    # after `mappings`. Relative to the working directory, as statsd_exporter's flag.
    # `--statsd.mapping-config FILE` sets it too. Re-read on every reload.
    mapping_config: str | None = None
    _mapping_file: MappingFile | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _check(self) -> StatsdConfig:
        if len(set(self.listeners)) != len(self.listeners):
            raise ValueError("a listener address is given twice")
        if self.mapping_config:
            try:
                self._mapping_file = mapfile.load(self.mapping_config)
            except MappingFileError as err:
                raise ValueError("the mapping file has problems:\n  " + "\n  ".join(err.problems)) from None
        return self

    def with_mapping_config(self, path: str) -> StatsdConfig:
        """This section reading `path` (the flag): validated again, so the file is read and checked.
        Raises ValueError (pydantic's ValidationError) with the file's problems."""
        return StatsdConfig.model_validate({**self.model_dump(), "mapping_config": path})

    @property
    def mapping_file(self) -> MappingFile | None:
        """The rules of `mapping_config`, read when this section was validated."""
        return self._mapping_file


__all__ = ["LABEL_NAME", "Defaults", "Mapping", "StatsdConfig"]
