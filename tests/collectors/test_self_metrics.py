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
    collected = {f.spec: f.samples for f in asyncio.run(SelfMetricsCollector().collect())}
    me = psutil.Process(os.getpid())
    assert collected[families.BUILD_INFO][0].labels == (__version__, platform.python_version())
    assert collected[families.PROCESS_START][0].value == me.create_time()
    cpu = {s.labels[0]: s.value for s in collected[families.PROCESS_CPU]}
    times = me.cpu_times()
    assert abs(cpu["user"] - times.user) <= 0.05 and abs(cpu["system"] - times.system) <= 0.05
    rss = collected[families.PROCESS_RSS][0].value
    assert abs(rss - me.memory_info().rss) <= 1 << 20  # both read the same page counts, moments apart
    assert collected[families.PROCESS_FDS][0].value >= 3
