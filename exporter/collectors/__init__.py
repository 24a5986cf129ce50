"""The pull side: the Collector and Probe interfaces and the registry of every collector.

A collector is built from its own config section and returns families at scrape
time; the scraper (scrape.py) runs them concurrently under timeouts and reports
their duration and success, so a collector only raises when it fails. A probe
reads one remote target and leaves the frame around that read (deadline,
backoff, masking its secrets in errors, dropping its connection after a failure)
to its scrape job.

A probe's implementation is imported only when a collector of it is built, so a
daemon loads only the probes it has targets for (each probe's wire code and what
it alone needs, ssl, h11, json...); its config section, which the config model
needs whether or not it has targets, lives apart in collectors/configs/. Adding
a probe is its module, its config module and one line in REGISTRY.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from exporter.model import Family
from exporter.schema import Section


class ProbeError(Exception):
    """A target answered in a way the probe cannot use; the job adds the target and masks secrets."""


class Collector(Protocol):
    async def collect(self) -> Iterable[Family]:
        """Return this source's families now; raise on failure (the scraper reports it)."""
        ...

    async def close(self) -> None:
        """Release connections; called on reload and shutdown."""
        ...


class Probe(Collector, Protocol):
    """A collector of one remote target: connect if needed, read, parse; the job does the rest.

    The job bounds `collect()` by the target's timeout, calls `reset()` after any
    failure or cancellation (a half-read reply makes a connection unusable), backs
    off a failing target and masks `secrets` in the error it reports.
    """

    @property
    def secrets(self) -> Sequence[str]:
        """Literal strings to mask wherever the target or its errors are shown (passwords)."""
        ...

    def describe(self) -> str:
        """The target as logs show it, e.g. `redis redis://:pw@db:6379/0` (the job masks it)."""
        ...

    async def reset(self) -> None:
        """Drop the connection, if one is kept; the next collect() connects again."""
        ...

    def address(self) -> tuple[str, int] | None:
        """Host and port where a TCP connect tells that a target which went away is back.

        While the target is backing off, the job tries that connect (cheap, at most
        once a second) instead of the target itself, and reads the target at once
        when a port it saw closed accepts again. None: no such check (a socket file).
        """
        ...

    def kept(self) -> Iterable[Family]:
        """Families the probe keeps exporting while its target fails: its own cumulative
        counts (an `outcome="error"` histogram), never a stale reading of the target."""
        ...


class BaseProbe:
    """Defaults for a Probe that keeps no connection, carries no secret and keeps no family."""

    secrets: Sequence[str] = ()

    async def reset(self) -> None:
        return None

    def address(self) -> tuple[str, int] | None:
        return None

    def kept(self) -> Iterable[Family]:
        return ()

    async def close(self) -> None:
        await self.reset()


@dataclass(frozen=True)
class Entry:
    factory: Callable[[Any], Collector]
    config: type[Section]
    # A probe: its section is a list of targets under `probes:`, one collector per target,
    # and the scraper exports `up` for each.
    targets: bool = False


@dataclass(frozen=True)
class Lazy:
    """A collector class named by its module, imported when the first collector of it is built."""

    module: str
    name: str

    def __call__(self, section: Any) -> Collector:
        factory: Callable[[Any], Collector] = getattr(importlib.import_module(self.module), self.name)
        return factory(section)


def _probe(module: str, name: str) -> Entry:
    """A probe's entry: its config section from collectors/configs/, its code from collectors/<module>.py."""
    config = importlib.import_module(f"exporter.collectors.configs.{module}").Config
    return Entry(Lazy(f"exporter.collectors.{module}", name), config, targets=True)


def _registry() -> dict[str, Entry]:
    # Imported here so each collector module stays free to import its own dependencies. The
    # host, process and container collectors keep their sections in their modules: the
    # default daemon runs all three.
    from exporter.collectors import container, host, process

    return {
        "host": Entry(host.HostCollector, host.Config),
        "process": Entry(process.ProcessCollector, process.Config),
        "container": Entry(container.ContainerCollector, container.Config),
        "redis": _probe("redis", "RedisCollector"),
        "memcached": _probe("memcached", "MemcachedCollector"),
        "pgbouncer": _probe("pgbouncer", "PgBouncerCollector"),
        "postgres": _probe("postgres", "PostgresCollector"),
        "sql": _probe("sql", "SQLCollector"),
        "http": _probe("http", "HTTPCollector"),
        "rabbitmq": _probe("rabbitmq", "RabbitMQCollector"),
    }


REGISTRY: dict[str, Entry] = _registry()
