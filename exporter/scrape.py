"""Run every collector concurrently at scrape time, each in the frame of its job.

A `Job` is one collector (or one probe target) and what the scraper remembers
about it. The frame, not each collector, measures duration and success, exports
`up` for probe targets and logs a failure once per change of state. For a probe
it also owns what every probe would otherwise repeat: the deadline on the read,
the backoff after a failure (on the job's clock, which tests replace), the reset
of the probe's connection after any failure or cancellation, and the masking of
the secrets the probe declares in the error it reports.

A run still pending when its timeout passes is not started again: the next
scrape waits on the same run (so a collector stuck in a thread never piles up
threads or connections).

A collector that declares `inline = True` (the daemon's self collector: a system call and
two reads of its own /proc entry, never a wait) is run in the scrape's own task instead of
one of its own: it cannot overrun a timeout, and a task and a loop turn cost more than its run.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import cast

from exporter import families
from exporter.backoff import Backoff, BackoffError
from exporter.collectors import Collector, Probe, ProbeError
from exporter.model import Family
from exporter.redact import describe_error, redact
from exporter.statelog import StateLog

log = logging.getLogger(__name__)

# How long a probe that ran out of time gets to drop its connection, on top of its timeout.
RESET_GRACE = 0.25
# While a target backs off: at most one reachability connect per this many seconds, each
# given at most REACH_TIMEOUT (and never past the attempt's deadline).
REACH_INTERVAL = 1.0
REACH_TIMEOUT = 0.5


@dataclass(eq=False)
class Job:
    """One collector instance, its frame, and what the scraper remembers about it."""

    collector: Collector
    name: str
    target: str = ""  # a probe's target name; "" for a plain collector
    timeout: float = 5.0
    interval: float | None = None  # reuse the last result for this long
    is_probe: bool = False  # the collector is a Probe: backoff, deadline, reset, `up`
    clock: Callable[[], float] = time.monotonic
    backoff: Backoff = field(init=False)
    _task: asyncio.Task[list[Family]] | None = None
    _last: list[Family] = field(default_factory=list)
    _last_at: float = -1e18
    _last_ok: bool = True
    _duration: float = 0.0
    _ended: float = 0.0  # perf_counter when the last run ended (scrape._timed)
    _reach_at: float = -1e18  # when the last reachability connect was made
    _seen_closed: bool = False  # since the last failure, the target's port refused a connect

    def __post_init__(self) -> None:
        self.backoff = Backoff(clock=self.clock)
        self.inline = not self.is_probe and getattr(self.collector, "inline", False) is True

    @property
    def label(self) -> str:
        return f"{self.name}/{self.target}" if self.target else self.name

    def describe(self) -> str:
        """The target as logs and errors show it, its secrets masked."""
        if not self.is_probe:
            return self.label
        probe = cast(Probe, self.collector)
        return redact(probe.describe(), probe.secrets)

    async def attempt(self) -> list[Family]:
        """One run of the collector; for a probe, in the frame every probe shares.

        A probe target that failed a moment ago is not contacted (BackoffError).
        Any failure, cancellation included, resets the probe first: a reply may be
        half read, so its connection cannot be reused. An Exception becomes a
        masked ProbeError naming the target, and starts the next delay.
        """
        if not self.is_probe:
            return list(await self.collector.collect())
        probe = cast(Probe, self.collector)
        deadline_at = asyncio.get_running_loop().time() + self.timeout
        try:
            self.backoff.check()
        except BackoffError as err:
            if not await self._came_back(probe, deadline_at):
                raise BackoffError(f"{self.describe()}: {err}") from None
        try:
            async with asyncio.timeout_at(deadline_at) as deadline:
                result = list(await probe.collect())
        except BaseException as err:
            await self._reset(probe)
            if not isinstance(err, Exception):
                raise
            if isinstance(err, TimeoutError) and deadline.expired():
                reason = f"TimeoutError: no answer within {self.timeout:g}s"
            elif isinstance(err, ProbeError):
                reason = redact(str(err), probe.secrets)
            else:
                reason = describe_error(err, probe.secrets)
            self.backoff.failed(reason)
            self._seen_closed = False
            raise ProbeError(f"{self.describe()}: {reason}") from None
        self.backoff.succeeded()
        return result

    def kept(self) -> list[Family]:
        """What a failed run still exports: the probe's own cumulative counts."""
        return list(cast(Probe, self.collector).kept()) if self.is_probe else []

    async def _came_back(self, probe: Probe, deadline_at: float) -> bool:
        """Whether a target whose port was seen closed since its failure accepts connections again.

        A restarted server is then read at once instead of after the rest of its delay
        (which reaches a minute); a hung one, whose kernel still accepts, waits out its
        backoff as before. At most one connect per REACH_INTERVAL, so a dead target
        sees a SYN a second at the most, never a full read.
        """
        address = probe.address()
        now = self.clock()
        if address is None or now - self._reach_at < REACH_INTERVAL:
            return False
        self._reach_at = now
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout_at(min(deadline_at, loop.time() + REACH_TIMEOUT)):
                _, writer = await asyncio.open_connection(*address)
        except (OSError, TimeoutError):
            self._seen_closed = True
            return False
        writer.transport.abort()  # no goodbye: the server never sees more than a connect
        if self._seen_closed:
            log.info("probe target accepts connections again, reading it now", extra={"collector": self.label})
            self.backoff.succeeded()
            return True
        return False

    async def _reset(self, probe: Probe) -> None:
        try:
            async with asyncio.timeout(RESET_GRACE):
                await probe.reset()
        except Exception as err:  # the connection is abandoned either way
            log.debug("probe reset failed", extra={"collector": self.label, "err": describe_error(err)})


class ScraperClosed(Exception):
    """A collector's run was cancelled because a reload closed its scraper mid-scrape.

    The scrape is then redone by whoever holds the new scraper (Daemon.families), so a
    reload never turns an in-flight scrape into a failed one.
    """


class Scraper:
    def __init__(self, jobs: Iterable[Job] = ()) -> None:
        self.jobs: list[Job] = list(jobs)
        self.closed = False
        self._states = StateLog(log, "collector failed", "collector recovered")

    async def collect(self, meanwhile: Callable[[], list[Family]] | None = None) -> list[Family]:
        """Every job's families, the jobs run at once, each within its own timeout; then
        `meanwhile()`'s, called while the jobs wait on their targets.

        Each job's run is started first (a task, or its last result while its interval
        holds) and then waited for in turn: they all run meanwhile, so the scrape takes as
        long as the slowest, and each wait ends at the job's own deadline from the start.
        This costs less than a gather of one coroutine per job (a task and a loop turn
        each, ~30 us a job: a third of a no-probe scrape's collect, bench/scrape_floor.py).
        `meanwhile` is the caller's own work that needs no I/O (the daemon's pushed series):
        done in the probes' round trips, it leaves the scrape's critical path.
        """
        started = [None if job.inline else self._start(job) for job in self.jobs]
        if any(run is not None and not isinstance(run, list) for run in started):
            await asyncio.sleep(0)  # one loop turn: what needs no I/O is done after it
        local = meanwhile() if meanwhile is not None else []
        out: list[Family] = []
        for job, run in zip(self.jobs, started):
            if run is None:
                out.extend(await self._inline(job))
            else:
                out.extend(run if isinstance(run, list) else await self._finish(job, *run))
        out.append(families.COLLECTOR_DURATION.family(
            ((job.name, job.target), job._duration) for job in self.jobs))
        out.append(families.COLLECTOR_SUCCESS.family(
            ((job.name, job.target), 1.0 if job._last_ok else 0.0) for job in self.jobs))
        out.append(families.UP.family(
            ((job.name, job.target), 1.0 if job._last_ok else 0.0) for job in self.jobs if job.is_probe))
        return out + local

    def _start(self, job: Job) -> list[Family] | tuple[asyncio.Task[list[Family]], float, float]:
        """The job's last result while its interval holds, else its run (one still pending from an
        earlier scrape that timed out, or a new one), when it started and when it was asked for."""
        now = job.clock()
        if job.interval and job._last_ok and now - job._last_at < job.interval:
            return job._last
        if job._task is None:
            job._task = asyncio.create_task(_timed(job))
        return job._task, time.perf_counter(), now

    async def _inline(self, job: Job) -> list[Family]:
        """An inline job's run, in this task, reported as `_finish` reports a task's."""
        start = time.perf_counter()
        try:
            result = await job.attempt()
        except Exception as err:  # any failure is the job's, as a task's exception is
            job._duration = time.perf_counter() - start
            self._report(job, False, f"{type(err).__name__}: {err}")
            return job.kept()
        job._duration = time.perf_counter() - start
        job._last, job._last_at = result, job.clock()
        self._report(job, True, "")
        return result

    async def _finish(self, job: Job, task: asyncio.Task[list[Family]], start: float, now: float) -> list[Family]:
        if not task.done():
            # A probe's own deadline fires at the timeout; the grace lets its reset finish in this scrape.
            limit = job.timeout + (RESET_GRACE if job.is_probe else 0.0)
            await asyncio.wait({task}, timeout=max(0.0, start + limit - time.perf_counter()))
        if not task.done():
            job._duration = time.perf_counter() - start
            self._report(job, False, f"timed out after {job.timeout:g}s")
            return job.kept()
        job._duration = max(job._ended, start) - start
        job._task = None
        if task.cancelled():
            if self.closed:
                raise ScraperClosed(job.label)
            self._report(job, False, "cancelled")
            return job.kept()
        error = task.exception()
        if error is not None:
            self._report(job, False, f"{type(error).__name__}: {error}")
            return job.kept()
        job._last, job._last_at = task.result(), now
        self._report(job, True, "")
        return job._last

    def _report(self, job: Job, ok: bool, why: str) -> None:
        if ok:
            self._states.ok(job, collector=job.label)
        else:
            self._states.failed(job, why, collector=job.label)
        job._last_ok = ok

    async def close(self) -> None:
        """Close every collector; a collector run still pending is cancelled first."""
        self.closed = True
        for job in self.jobs:
            if job._task is not None:
                job._task.cancel()
        await asyncio.gather(*(_close(job) for job in self.jobs))


async def _timed(job: Job) -> list[Family]:
    """The job's run, noting when it ended: a job waited for after a slower one still reports
    its own duration, not the time until its turn came."""
    try:
        return await job.attempt()
    finally:
        job._ended = time.perf_counter()


async def _close(job: Job) -> None:
    try:
        await job.collector.close()
    except Exception as err:  # a collector that fails to close must not stop the others
        log.warning("collector close failed", extra={"collector": job.label, "err": str(err)})
