"""The exporter's own build and process figures (always on, no config)."""

from __future__ import annotations

import asyncio
import platform

import psutil

from exporter import __version__, families
from exporter.model import Family


class ExporterCollector:
    def __init__(self) -> None:
        self._process = psutil.Process()

    async def collect(self) -> list[Family]:
        return await asyncio.to_thread(self._collect)

    def _collect(self) -> list[Family]:
        p = self._process
        with p.oneshot():
            cpu = p.cpu_times()
            memory = p.memory_info()
            fds = p.num_fds()
            started = p.create_time()
        return [
            families.BUILD_INFO.one(1.0, __version__, platform.python_version()),
            families.PROCESS_CPU.family([(("user",), cpu.user), (("system",), cpu.system)]),
            families.PROCESS_RSS.one(float(memory.rss)),
            families.PROCESS_VMS.one(float(memory.vms)),
            families.PROCESS_FDS.one(float(fds)),
            families.PROCESS_START.one(started),
        ]

    async def close(self) -> None:
        return None
