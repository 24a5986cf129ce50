"""Typed config building blocks shared by every section.

Each component declares its own section as a subclass of `Section` next to its
code; config.py assembles them. Durations accept Prometheus-style strings
("500ms", "15s", "5m") or plain seconds, read by durations.parse_duration (also
the web config's Go-style durations and the tools' flags).
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Annotated, Any, Protocol, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
)

from exporter.durations import parse_duration

_DURATION = re.compile(r"^(?:(\d+(?:\.\d+)?)(ms|s|m|h|d))+$")  # the config's syntax, for the JSON Schema
LABEL_NAME = r"^[a-zA-Z_][a-zA-Z0-9_]*$"
METRIC_NAME = r"^[a-zA-Z_:][a-zA-Z0-9_:]*$"


class Section(BaseModel):
    """A config section: unknown keys are errors (typos must not pass silently)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _parse_duration(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return parse_duration(value.strip())
        except ValueError:
            raise ValueError(f"invalid duration {value!r}: use a number of seconds or e.g. 500ms, 15s, 5m, 1h") from None
    return value


def _positive(value: float) -> float:
    if value <= 0:
        raise ValueError("must be greater than 0")
    return value


Duration = Annotated[
    float,
    BeforeValidator(_parse_duration),
    AfterValidator(_positive),
    WithJsonSchema({"anyOf": [{"type": "number", "exclusiveMinimum": 0},
                              {"type": "string", "pattern": _DURATION.pattern}]}),
]


def _check_address(value: str) -> str:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"invalid address {value!r}: expected host:port")
    return value


Address = Annotated[str, AfterValidator(_check_address), Field(examples=["127.0.0.1:8125"])]


def _check_regex(value: str) -> str:
    try:
        re.compile(value)
    except re.error as err:
        raise ValueError(f"invalid regular expression {value!r}: {err}") from None
    return value


Regex = Annotated[str, AfterValidator(_check_regex)]
LabelName = Annotated[str, Field(pattern=LABEL_NAME)]
MetricName = Annotated[str, Field(pattern=METRIC_NAME)]
# A target's name becomes a label value; keep it readable and non-empty.
TargetName = Annotated[str, Field(min_length=1, max_length=128)]


class _Named(Protocol):
    @property
    def name(self) -> str: ...


_N = TypeVar("_N", bound=_Named)


def unique_names(items: list[_N], what: str) -> list[_N]:
    """Validator body: `items` unchanged, or ValueError naming every repeated name.

    A name becomes a label value, so two items sharing one would merge their series.
    """
    repeated = sorted(name for name, n in Counter(item.name for item in items).items() if n > 1)
    if repeated:
        raise ValueError(f"{what} names must be unique, repeated: {', '.join(repeated)}")
    return items


def split_address(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


class CollectorConfig(Section):
    """Base of a collector's section: every collector can be switched off and has a timeout."""

    enabled: bool = True
    timeout: Duration = 5.0


class Target(Section):
    """Base of one probe target: its name is the label that identifies it."""

    name: TargetName
    timeout: Duration = 5.0
    # Run at most once per interval; scrapes in between reuse the last result.
    interval: Duration | None = None
