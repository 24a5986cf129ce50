"""StatsD ingest: listeners -> parser -> mapper -> routes -> store (docs/architecture.md).

The daemon runs `StatsD` (statsd/service.py) built from a `StatsdConfig`.
"""

from exporter.statsd.config import StatsdConfig
from exporter.statsd.service import StatsD

__all__ = ["StatsD", "StatsdConfig"]
