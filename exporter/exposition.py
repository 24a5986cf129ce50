"""Render families as Prometheus text 0.0.4 or OpenMetrics 1.0: a pure function of its input.

Families from different sources may share a name (StatsD and a Redis probe both
feed `cache_requests_total`); they are merged into one block here, the first
spec giving HELP and TYPE, and a series already rendered is not repeated.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from enum import Enum

from exporter.model import Family, FamilySpec, HistogramValue, MetricType, SummaryValue


class Format(str, Enum):
    TEXT = "text/plain; version=0.0.4; charset=utf-8"
    OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"


def negotiate(accept: str | None) -> Format:
    """OpenMetrics only when the client asks for it, as Prometheus does with its Accept header."""
    if accept:
        for part in accept.split(","):
            if part.split(";", 1)[0].strip() == "application/openmetrics-text":
                return Format.OPENMETRICS
    return Format.TEXT


def format_value(value: float) -> str:
    if value == math.inf:
        return "+Inf"
    if value == -math.inf:
        return "-Inf"
    if value != value:
        return "NaN"
    return repr(float(value))


def format_bound(bound: float) -> str:
    """`le`/`quantile` values as Go clients write them ("0.5", "1", "+Inf"), so series from
    every exporter share label values and aggregate."""
    text = format_value(bound)
    return text[:-2] if text.endswith(".0") else text


def escape_label(value: str) -> str:
    if "\\" in value or '"' in value or "\n" in value:
        return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return value


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _label_text(names: tuple[str, ...], values: tuple[str, ...]) -> str:
    return ",".join(f'{n}="{escape_label(v)}"' for n, v in zip(names, values))


def _braced(text: str) -> str:
    return "{" + text + "}" if text else ""


def _render_family(spec: FamilySpec, name: str, families: list[Family], fmt: Format, out: list[str]) -> None:
    openmetrics = fmt is Format.OPENMETRICS
    kind = spec.type
    header = name
    if openmetrics and kind is MetricType.COUNTER and name.endswith("_total"):
        header = name[:-6]
    out.append(f"# HELP {header} {_escape_help(spec.help)}\n# TYPE {header} {kind.value}\n")
    if openmetrics and spec.unit and header.endswith("_" + spec.unit):
        out.append(f"# UNIT {header} {spec.unit}\n")
    seen: set[tuple[str, ...]] | None = set() if len(families) > 1 else None
    for family in families:
        names = family.spec.labels
        for labels, value in family.samples:
            if seen is not None:
                if labels in seen:
                    continue
                seen.add(labels)
            text = _label_text(names, labels)
            if kind is MetricType.HISTOGRAM:
                assert isinstance(value, HistogramValue)
                sep = "," if text else ""
                for bound, count in zip(family.spec.buckets, value.counts):
                    out.append(f'{name}_bucket{{{text}{sep}le="{format_bound(bound)}"}} {format_value(count)}\n')
                count_text = format_value(value.count)
                out.append(f'{name}_bucket{{{text}{sep}le="+Inf"}} {count_text}\n')
                out.append(f"{name}_sum{_braced(text)} {format_value(value.sum)}\n")
                out.append(f"{name}_count{_braced(text)} {count_text}\n")
            elif kind is MetricType.SUMMARY:
                assert isinstance(value, SummaryValue)
                sep = "," if text else ""
                for q, v in value.quantiles:
                    out.append(f'{name}{{{text}{sep}quantile="{format_bound(q)}"}} {format_value(v)}\n')
                out.append(f"{name}_sum{_braced(text)} {format_value(value.sum)}\n")
                out.append(f"{name}_count{_braced(text)} {format_value(value.count)}\n")
            else:
                assert not isinstance(value, tuple)
                out.append(f"{name}{_braced(text)} {format_value(value)}\n")


def render(families: Iterable[Family], fmt: Format = Format.TEXT, namespace: str = "apm") -> bytes:
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
        # A family whose type disagrees with the first of its name cannot be rendered; drop it.
    out: list[str] = []
    for name, group in grouped.items():
        _render_family(group[0].spec, name, group, fmt, out)
    if fmt is Format.OPENMETRICS:
        out.append("# EOF\n")
    return "".join(out).encode()
