"""OTLP metric names, units and attribute keys -> Prometheus names, as Prometheus translates them.

The rules follow Prometheus's OTLP translation with suffixes on (its default):
the name is split into tokens at anything but letters and digits, the unit's
Prometheus word (`s` -> `seconds`, `By` -> `bytes`, `1` -> nothing, `x/y` -> `x_per_y`)
is appended unless a token already says it, monotonic sums end in `_total`, gauges
of unit `1` in `_ratio`. Our exposition is ASCII-only, so "letters and digits" are
ASCII ones here (Prometheus 2 keeps other letters, which its text format then rejects).
"""

from __future__ import annotations

import re

# UCUM units (what OpenTelemetry's semantic conventions use) -> Prometheus base-unit words.
UNITS = {
    "d": "days", "h": "hours", "min": "minutes", "s": "seconds", "ms": "milliseconds",
    "us": "microseconds", "ns": "nanoseconds",
    "By": "bytes", "KiBy": "kibibytes", "MiBy": "mebibytes", "GiBy": "gibibytes", "TiBy": "tibibytes",
    "KBy": "kilobytes", "MBy": "megabytes", "GBy": "gigabytes", "TBy": "terabytes",
    "m": "meters", "V": "volts", "A": "amperes", "J": "joules", "W": "watts", "g": "grams",
    "Cel": "celsius", "Hz": "hertz", "1": "", "%": "percent",
}
PER_UNITS = {"s": "second", "m": "minute", "h": "hour", "d": "day", "w": "week", "mo": "month", "y": "year"}
MAX_NAME = 200

_TOKEN_SPLIT = re.compile(r"[^A-Za-z0-9]+")
_LABEL_INVALID = re.compile(r"[^A-Za-z0-9_]")


class BadName(ValueError):
    """A metric name that cannot become a Prometheus name; `reason` labels the counter."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


def _tokens(text: str) -> list[str]:
    return [t for t in _TOKEN_SPLIT.split(text) if t]


def unit_words(unit: str) -> tuple[str, str]:
    """(main, per) Prometheus words for a UCUM unit; "" where there is none (or `{annotation}`)."""
    main, _, per = unit.partition("/")
    main, per = main.strip(), per.strip()
    main_word = "" if not main or "{" in main or "}" in main else "_".join(_tokens(UNITS.get(main, main)))
    per_word = "" if not per or "{" in per or "}" in per else "_".join(_tokens(PER_UNITS.get(per, per)))
    return main_word, per_word


def metric_name(name: str, unit: str, *, counter: bool, ratio_gauge: bool) -> tuple[str, str]:
    """The Prometheus name and the unit word it carries ("" when none).

    `counter` appends `_total` (monotonic sums); `ratio_gauge` appends `_ratio` (gauges of unit 1).
    """
    tokens = _tokens(name)
    if not tokens:
        raise BadName("empty_name", f"metric name {name!r} has no letters or digits")
    main, per = unit_words(unit)
    unit_word = ""
    if main and main not in tokens:
        tokens.append(main)
    if main and tokens[-1] == main:
        unit_word = main
    if per and per not in tokens:
        tokens += ["per", per]
        unit_word = ""
    if counter:
        tokens = [t for t in tokens if t != "total"] + ["total"]
    if ratio_gauge and unit == "1":
        tokens = [t for t in tokens if t != "ratio"] + ["ratio"]
        unit_word = "ratio"
    out = "_".join(tokens)
    if out[0].isdigit():
        out = "_" + out
    if len(out) > MAX_NAME:
        raise BadName("name_too_long", f"metric name of {len(out)} characters")
    return out, unit_word


def label_name(key: str) -> str:
    """An attribute key as a label name, as Prometheus's OTLP translation does ("" if empty).

    Invalid characters become `_`; a leading digit gets `key_`, a leading `_` gets `key`
    (names starting with `__` are Prometheus's own, so they are prefixed too).
    """
    if not key:
        return ""
    label = _LABEL_INVALID.sub("_", key)
    if label[0].isdigit():
        return "key_" + label
    if label[0] == "_":
        return "key" + label
    return label
