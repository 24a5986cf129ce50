"""The heap built at start is frozen out of full garbage collections, a reload frees what it
replaced, and freed heap goes back to the OS while the daemon runs.

A full collection holds the GIL while it walks every tracked object; with the start-up
heap in it, each pass stalled the StatsD reader thread for tens of milliseconds under
load (issue 15's soak). The daemon runs in-process here so that the interpreter's own
counts can be read.
"""

from __future__ import annotations

import asyncio
import ctypes
import gc
import sys
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


M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt's parameters (malloc.h)


def _rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


@pytest.mark.skipif(not Path("/proc/self/status").exists() or not sys.platform.startswith("linux"),
                    reason="glibc and procfs")
def test_heap_freed_while_running_is_handed_back_to_the_os(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # glibc keeps freed heap resident; the soak's RSS grew so while its live Python memory
    # stayed flat. Here free() is told never to trim and 100 kB to come from the heap (not
    # mmap), so that the 64 MiB freed stay resident until the daemon's trim gives them back.
    monkeypatch.setattr(daemon, "TRIM_INTERVAL", 0.05)
    libc = ctypes.CDLL("libc.so.6")
    libc.mallopt(M_TRIM_THRESHOLD, 1 << 30)
    libc.mallopt(M_MMAP_THRESHOLD, 1 << 20)
    path = tmp_path / "config.yaml"
    path.write_text("web: {listen_address: '127.0.0.1:0'}\nstatsd: {listeners: []}\n")

    async def main() -> tuple[int, int]:
        d = daemon.Daemon(str(path), config.load(path))
        task = asyncio.create_task(d.run(Options()))
        await _ready(d, task)
        big, pins = [], []
        for _ in range(640):
            big.append(bytearray(b"x" * 100_000))
            pins.append(bytearray(1024))  # above pymalloc's 512 bytes: between them in the heap
        del big
        freed = _rss()
        async with asyncio.timeout(GUARD):  # the trim task's next pass gives the pages back
            while _rss() > freed - 32 * 2**20:
                await asyncio.sleep(0.05)
        after = _rss()
        d.stop()
        await task
        assert pins
        return freed, after

    try:
        freed, after = asyncio.run(main())
    finally:
        gc.unfreeze()
        libc.mallopt(M_TRIM_THRESHOLD, 128 * 1024)  # glibc's defaults
        libc.mallopt(M_MMAP_THRESHOLD, 128 * 1024)
    assert after <= freed - 32 * 2**20
