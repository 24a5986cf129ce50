"""The pull side: the Collector interface and the registry of every collector.

A collector is built from its own config section and returns families at scrape
time; the scraper (scrape.py) runs them concurrently under timeouts and reports
their duration and success, so a collector only raises when it fails.
Adding one is one file plus one line in REGISTRY.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from exporter.model import Family
from exporter.schema import Section


class Collector(Protocol):
    async def collect(self) -> Iterable[Family]:
        """Return this source's families now; raise on failure (the scraper reports it)."""
        ...

    async def close(self) -> None:
        """Release connections; called on reload and shutdown."""
        ...


@dataclass(frozen=True)
class Entry:
    factory: Callable[[Any], Collector]
    config: type[Section]
    # A probe: its section is a list of targets under `probes:`, one collector per target,
    # and the scraper exports `up` for each.
    targets: bool = False


def _registry() -> dict[str, Entry]:
    # Imported here so each collector module stays free to import its own dependencies.
    from exporter.collectors import (
        container,
        host,
        http,
        memcached,
        pgbouncer,
        postgres,
        process,
        redis,
        sql,
    )

    return {
        "host": Entry(host.HostCollector, host.Config),
        "process": Entry(process.ProcessCollector, process.Config),
        "container": Entry(container.ContainerCollector, container.Config),
        "redis": Entry(redis.RedisCollector, redis.Config, targets=True),
        "memcached": Entry(memcached.MemcachedCollector, memcached.Config, targets=True),
        "pgbouncer": Entry(pgbouncer.PgBouncerCollector, pgbouncer.Config, targets=True),
        "postgres": Entry(postgres.PostgresCollector, postgres.Config, targets=True),
        "sql": Entry(sql.SQLCollector, sql.Config, targets=True),
        "http": Entry(http.HTTPCollector, http.Config, targets=True),
    }


REGISTRY: dict[str, Entry] = _registry()
