"""Reading collector output the way a test asserts on it, and running a probe in its job's frame."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

from exporter.collectors import REGISTRY, Collector, Probe
from exporter.model import Family
from exporter.scrape import Job

T = TypeVar("T")


def values(fams: Iterable[Family]) -> dict[str, dict[tuple[str, ...], Any]]:
    """{family name: {label values: value}}; duplicate label sets fail the test."""
    out: dict[str, dict[tuple[str, ...], Any]] = {}
    for fam in fams:
        series = out.setdefault(fam.spec.name, {})
        for sample in fam.samples:
            assert sample.labels not in series, f"duplicate series {fam.spec.name}{sample.labels}"
            assert len(sample.labels) == len(fam.spec.labels), f"{fam.spec.name}: labels {sample.labels}"
            series[sample.labels] = sample.value
    return out


def run(main: Callable[[], Awaitable[T]]) -> T:
    """Run one async scenario and check it left no task or thread behind."""
    threads_before = set(threading.enumerate())

    async def wrapped() -> T:
        result = await main()
        await asyncio.sleep(0)
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        assert not others, f"tasks left running: {others}"
        return result

    result = asyncio.run(wrapped())
    # asyncio.run joins its executor's threads, so a to_thread() call still stuck shows up here.
    leaked = [t for t in set(threading.enumerate()) - threads_before if t.is_alive()]
    assert not leaked, f"threads left running: {leaked}"
    return result


async def collect_once(collector: Collector) -> dict[str, dict[tuple[str, ...], Any]]:
    """One read of a fresh collector, closed after."""
    try:
        return values(await collector.collect())
    finally:
        await collector.close()


async def families_once(collector: Collector) -> list[Family]:
    """One read of a fresh collector as families, closed after."""
    try:
        return list(await collector.collect())
    finally:
        await collector.close()


class Clock:
    """A monotonic clock the test moves by hand, so a backoff delay passes without sleeping."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def framed(probe: Probe, clock: Clock | None = None) -> Job:
    """The probe in the job the daemon would build for it: `await job.attempt()` is one framed read."""
    config: Any = getattr(probe, "config")
    name = next(name for name, entry in REGISTRY.items() if entry.config is type(config))
    return Job(probe, name, config.name, config.timeout, config.interval, is_probe=True, clock=clock or Clock())


async def failure(probe: Probe) -> str:
    """The error of one framed read that must fail; the probe is closed after."""
    import pytest

    from exporter.collectors import ProbeError

    try:
        with pytest.raises(ProbeError) as err:
            await framed(probe).attempt()
        return str(err.value)
    finally:
        await probe.close()
