"""Run every collector concurrently at scrape time, under its own timeout.

The framework, not each collector, measures duration and success, exports `up`
for probe targets and logs a failure once per change of state. A collector still
running when its timeout passes is not started again: the next scrape waits on
the same run (so a hung target never piles up threads or connections).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from exporter import families
from exporter.collectors import Collector
from exporter.model import Family

log = logging.getLogger(__name__)


@dataclass(eq=False)
class Job:
    """One collector instance and what the scraper remembers about it."""

    collector: Collector
    name: str
    target: str = ""  # a probe's target name; "" for a plain collector
    timeout: float = 5.0
    interval: float | None = None  # reuse the last result for this long
    is_probe: bool = False
    _task: asyncio.Task[Iterable[Family]] | None = None
    _last: list[Family] = field(default_factory=list)
    _last_at: float = -1e18
    _last_ok: bool = True
    _duration: float = 0.0

    @property
    def label(self) -> str:
        return f"{self.name}/{self.target}" if self.target else self.name


class Scraper:
    def __init__(self, jobs: Iterable[Job] = ()) -> None:
        self.jobs: list[Job] = list(jobs)

    async def collect(self) -> list[Family]:
        results = await asyncio.gather(*(self._run(job) for job in self.jobs))
        out: list[Family] = [fam for fams in results for fam in fams]
        out.append(families.COLLECTOR_DURATION.family(
            ((job.name, job.target), job._duration) for job in self.jobs))
        out.append(families.COLLECTOR_SUCCESS.family(
            ((job.name, job.target), 1.0 if job._last_ok else 0.0) for job in self.jobs))
        out.append(families.UP.family(
            ((job.name, job.target), 1.0 if job._last_ok else 0.0) for job in self.jobs if job.is_probe))
        return out

    async def _run(self, job: Job) -> list[Family]:
        now = time.monotonic()
        if job.interval and job._last_ok and now - job._last_at < job.interval:
            return job._last
        start = time.perf_counter()
        if job._task is None:
            job._task = asyncio.create_task(_collect(job.collector))
        task = job._task
        done, _ = await asyncio.wait({task}, timeout=job.timeout)
        job._duration = time.perf_counter() - start
        if not done:
            self._report(job, False, f"timed out after {job.timeout:g}s")
            return []
        job._task = None
        error = task.exception()
        if error is not None:
            self._report(job, False, f"{type(error).__name__}: {error}")
            return []
        job._last, job._last_at = list(task.result()), now
        self._report(job, True, "")
        return job._last

    @staticmethod
    def _report(job: Job, ok: bool, why: str) -> None:
        if ok and not job._last_ok:
            log.info("collector recovered", extra={"collector": job.label})
        elif not ok and job._last_ok:
            log.warning("collector failed", extra={"collector": job.label, "err": why})
        job._last_ok = ok

    async def close(self) -> None:
        """Close every collector; a collector run still pending is cancelled first."""
        for job in self.jobs:
            if job._task is not None:
                job._task.cancel()
        await asyncio.gather(*(_close(job) for job in self.jobs))


async def _collect(collector: Collector) -> Iterable[Family]:
    return await collector.collect()


async def _close(job: Job) -> None:
    try:
        await job.collector.close()
    except Exception as err:  # a collector that fails to close must not stop the others
        log.warning("collector close failed", extra={"collector": job.label, "err": str(err)})
