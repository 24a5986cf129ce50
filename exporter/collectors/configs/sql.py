"""The SQL probe's target section: a SQLite or PostgreSQL DSN and its named queries' metrics."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from exporter.collectors.pgdsn import readable
from exporter.schema import (
    Duration,
    LabelName,
    MetricName,
    Section,
    Target,
    unique_names,
)

_DSN = r"^(sqlite|postgresql|postgres)://"


class Metric(Section):
    """A column of the query's rows exported as a metric; `labels` are columns too."""

    name: MetricName
    value: str = Field(min_length=1)
    labels: list[LabelName] = []
    help: str = ""
    type: Literal["gauge", "counter"] = "gauge"


class Query(Section):
    name: str = Field(min_length=1, max_length=128)
    sql: str = Field(min_length=1)
    # Run at most once per interval (default: every collect); scrapes in between reuse the result.
    interval: Duration | None = None
    # Default: the target's timeout.
    timeout: Duration | None = None
    # Default: the target's slow_threshold.
    slow_threshold: Duration | None = None
    explain: bool = False
    metrics: list[Metric] = []


class Config(Target):
    """A database: `sqlite:///path/to/file.db` (opened read-only) or `postgresql://…`."""

    dsn: str = Field(pattern=_DSN)
    slow_threshold: Duration = 1.0
    queries: list[Query] = Field(min_length=1)

    @field_validator("queries")
    @classmethod
    def _unique(cls, queries: list[Query]) -> list[Query]:
        unique_names(queries, "query")
        metrics: dict[str, str] = {}
        for query in queries:
            for metric in query.metrics:
                if metric.name in metrics:
                    raise ValueError(f"metric {metric.name!r} is defined by queries {metrics[metric.name]!r} "
                                     f"and {query.name!r}")
                metrics[metric.name] = query.name
        return queries

    @model_validator(mode="after")
    def _readable(self) -> Config:
        if self.dsn.startswith("sqlite://"):
            if not sqlite_path(self.dsn):
                raise ValueError("sqlite DSN needs a path: sqlite:///path/to/file.db")
        else:
            readable(self.dsn)  # what the PostgreSQL client cannot read is refused at load
        return self


def sqlite_path(dsn: str) -> str:
    path = dsn[len("sqlite://"):]
    # sqlite:///abs/path and SQLAlchemy's sqlite:////abs/path both mean /abs/path.
    return "/" + path.lstrip("/") if path.startswith("/") else path
