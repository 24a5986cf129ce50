"""The exporter's own process figures agree with psutil's reading of the same process."""

from __future__ import annotations

import asyncio
import os
import platform
import threading
import time

import psutil

from exporter import __version__, families
from exporter.collectors.self_metrics import SelfMetricsCollector
from exporter.model import Family


def _burn_cpu_in_a_thread() -> None:
    """CPU time spent by another thread than the collecting one, so that a reading of the calling
    thread's time alone would be off by more than the tolerance below."""
    def burn() -> None:
        while time.thread_time() < 0.2:
            pass
    worker = threading.Thread(target=burn)
    worker.start()
    worker.join()


def test_self_metrics_match_psutil() -> None:
    _burn_cpu_in_a_thread()
    collector = SelfMetricsCollector()
    me = psutil.Process(os.getpid())

    async def collect() -> tuple[list[Family], int]:
        return await collector.collect(), me.num_fds()  # while the loop's descriptors are open too

    out, fds = asyncio.run(collect())
    collected = {f.spec: f.samples for f in out}
    assert collected[families.BUILD_INFO][0].labels == (__version__, platform.python_version())
    assert collected[families.PROCESS_START][0].value == me.create_time()
    cpu = {s.labels[0]: s.value for s in collected[families.PROCESS_CPU]}
    times = me.cpu_times()
    assert abs(cpu["user"] - times.user) <= 0.05 and abs(cpu["system"] - times.system) <= 0.05
    rss = collected[families.PROCESS_RSS][0].value
    assert abs(rss - me.memory_info().rss) <= 1 << 20  # both read the same page counts, moments apart
    # Both count the directory's listing, each through a descriptor of its own (its two included).
    assert collected[families.PROCESS_FDS][0].value == fds
    asyncio.run(collector.close())


def test_each_collect_reads_the_figures_anew_and_close_lets_go_of_the_files() -> None:
    collector = SelfMetricsCollector()
    before = psutil.Process(os.getpid()).num_fds()

    def figures() -> tuple[float, float]:
        collected = {f.spec: f.samples for f in asyncio.run(collector.collect())}
        return collected[families.PROCESS_RSS][0].value, collected[families.PROCESS_FDS][0].value

    rss, fds = figures()
    held = bytearray(64 << 20)  # touched: resident
    with open(os.devnull) as extra:
        grown, more = figures()
        assert grown >= rss + (60 << 20) and more == fds + 1 and extra and held
    asyncio.run(collector.close())
    assert psutil.Process(os.getpid()).num_fds() == before - 2
