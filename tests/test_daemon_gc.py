"""The heap built at start is frozen out of full garbage collections, and a reload frees what it replaced.

A full collection holds the GIL while it walks every tracked object; with the start-up
heap in it, each pass stalled the StatsD reader thread for tens of milliseconds under
load (issue 15's soak). The daemon runs in-process here so that the interpreter's own
counts can be read.
"""

from __future__ import annotations

import asyncio
import gc
import weakref
from pathlib import Path
from typing import ClassVar

import pytest

from exporter import config, daemon
from exporter.collectors import Entry
from exporter.schema import CollectorConfig
from exporter.web import Options

GUARD = 30.0


class CycleCollector:
    """A collector in a reference cycle: only the cyclic collector can free it."""

    instances: ClassVar[list[weakref.ref[CycleCollector]]] = []

    def __init__(self, section: CollectorConfig) -> None:
        self.me = self
        CycleCollector.instances.append(weakref.ref(self))

    async def collect(self) -> list:
        return []

    async def close(self) -> None:
        return None


async def _ready(d: daemon.Daemon, task: asyncio.Task[None]) -> None:
    async with asyncio.timeout(GUARD):
        while not d.ready:
            assert not task.done(), task.exception()
            await asyncio.sleep(0.01)


def test_the_start_up_heap_is_frozen_and_a_reload_frees_the_collectors_it_replaced(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(daemon, "REGISTRY", {"host": Entry(CycleCollector, CollectorConfig)})
    path = tmp_path / "config.yaml"
    path.write_text("web: {listen_address: '127.0.0.1:0'}\nstatsd: {listeners: []}\ncollectors: {host: {enabled: true}}\n")

    async def main() -> tuple[int, bool, bool]:
        d = daemon.Daemon(str(path), config.load(path))
        task = asyncio.create_task(d.run(Options()))
        await _ready(d, task)
        frozen = gc.get_freeze_count()
        started = CycleCollector.instances[-1]
        path.write_text("web: {listen_address: '127.0.0.1:0'}\nstatsd: {listeners: []}\n"
                        "collectors: {host: {enabled: false}}\n")
        assert await d.reload() is None
        gc.collect()
        freed = started() is None
        d.stop()
        await task
        return frozen, freed, gc.get_freeze_count() > 0

    try:
        frozen, freed, still_frozen = asyncio.run(main())
    finally:
        gc.unfreeze()
    assert frozen > 10_000  # the modules, schema and config loaded at start
    assert freed, "the collector built at start outlived the reload that replaced it"
    assert still_frozen
