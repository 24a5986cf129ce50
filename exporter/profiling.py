"""Profiling the daemon itself, behind `--web.enable-profiling` (off by default).

Two endpoints, for our own performance work and for users' bug reports:

- `/-/profile/cpu?seconds=N` samples every thread's Python stack ~100 times a
  second from a helper thread (`sys._current_frames`) and returns collapsed
  stacks ("folded": `thread;outer;…;inner COUNT` per line), which
  flamegraph.pl, inferno and speedscope read. Sampling works for all threads
  and never blocks the event loop; cProfile would only see the thread it is
  enabled in. `format=pstats` instead runs cProfile on the event-loop thread
  (where all the async work runs) and returns pstats text: exact call counts,
  but it slows that thread while it runs.
- `/-/profile/memory?seconds=N&top=K` returns the top allocations by size
  (tracemalloc). If tracing is not on already (PYTHONTRACEMALLOC=25 turns it
  on from the start), it traces for N seconds and reports what was allocated
  in that window and is still alive — the shape of a leak.

Handlers raise ProfilingError (a ValueError) for bad parameters.
"""

from __future__ import annotations

import asyncio
import cProfile
import io
import os
import pstats
import sys
import threading
import time
import tracemalloc
import urllib.parse
from collections import Counter
from collections.abc import Awaitable, Callable
from types import CodeType, FrameType

CPU_PATH = "/-/profile/cpu"
MEMORY_PATH = "/-/profile/memory"
MAX_SECONDS = 300.0
DEFAULT_SECONDS = 10.0
DEFAULT_HZ = 100
MAX_HZ = 1000
MAX_TOP = 1000
TRACEMALLOC_FRAMES = 25

Handler = Callable[[str], Awaitable[tuple[str, bytes]]]
TEXT = "text/plain; charset=utf-8"


class ProfilingError(ValueError):
    """A bad query parameter; the message says which and why."""


def _params(query: str) -> dict[str, str]:
    try:
        return {k: v[-1] for k, v in urllib.parse.parse_qs(query, strict_parsing=False).items()}
    except ValueError as err:
        raise ProfilingError(f"bad query string: {err}") from None


def _number(params: dict[str, str], name: str, default: float, low: float, high: float) -> float:
    text = params.get(name)
    if text is None:
        return default
    try:
        value = float(text)
    except ValueError:
        raise ProfilingError(f"{name}: not a number: {text!r}") from None
    if not low <= value <= high:
        raise ProfilingError(f"{name}: must be within {low:g}..{high:g}, got {text}")
    return value


# --- CPU: sampling ---------------------------------------------------------------------


def _frame_name(code: CodeType) -> str:
    # file:function — without the directory, so stacks from two installs compare; ';' splits frames.
    name = f"{os.path.basename(code.co_filename)}:{code.co_qualname}"
    return name.replace(";", ":").replace(" ", "_")


def _stack(frame: FrameType | None) -> list[str]:
    names = []
    while frame is not None:
        names.append(_frame_name(frame.f_code))
        frame = frame.f_back
    names.reverse()
    return names


def sample_stacks(seconds: float, hz: float = DEFAULT_HZ) -> tuple[Counter[str], int]:
    """Folded stacks of every other thread, sampled `hz` times a second; and the sample count.

    Runs in the calling thread (the endpoint gives it its own) and holds the GIL
    only while it copies the stacks.
    """
    me = threading.get_ident()
    stacks: Counter[str] = Counter()
    interval = 1.0 / hz
    deadline = time.monotonic() + seconds
    next_at = time.monotonic()
    samples = 0
    while True:
        now = time.monotonic()
        if now >= deadline:
            break
        names = {t.ident: t.name for t in threading.enumerate()}
        for ident, frame in sys._current_frames().items():
            if ident == me:
                continue
            thread = names.get(ident, f"thread-{ident}").replace(";", ":").replace(" ", "_")
            stacks[";".join([thread, *_stack(frame)])] += 1
        samples += 1
        next_at += interval
        time.sleep(max(0.0, next_at - time.monotonic()))
    return stacks, samples


def folded(stacks: Counter[str]) -> str:
    """Collapsed-stack text, most frequent first (flamegraph.pl sorts it itself)."""
    return "".join(f"{stack} {count}\n" for stack, count in stacks.most_common())


# --- memory -----------------------------------------------------------------------------

_IGNORE = (
    tracemalloc.Filter(False, tracemalloc.__file__),
    tracemalloc.Filter(False, "<frozen importlib._bootstrap>"),
    tracemalloc.Filter(False, "<frozen importlib._bootstrap_external>"),
    tracemalloc.Filter(False, "<unknown>"),
)


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def memory_report(snapshot: tracemalloc.Snapshot, top: int, group: str, header: str) -> str:
    snapshot = snapshot.filter_traces(_IGNORE)
    stats = snapshot.statistics(group)
    total = sum(s.size for s in stats)
    current, peak = tracemalloc.get_traced_memory() if tracemalloc.is_tracing() else (total, total)
    lines = [f"# {header}",
             (f"# {sum(s.count for s in stats):,} blocks, {_size(total)} in the traces shown; "
              f"traced now {_size(current)}, peak {_size(peak)}"),
             f"# top {min(top, len(stats))} by size, grouped by {group}", ""]
    for i, stat in enumerate(stats[:top], 1):
        where = stat.traceback[0]
        lines.append(f"{i:4}. {_size(stat.size):>10}  {stat.count:>8,} blocks  avg {_size(stat.size / stat.count):>9}"
                     f"  {where.filename}:{where.lineno}")
        if group == "traceback":
            lines += [f"        {frame.filename}:{frame.lineno}" for frame in reversed(stat.traceback)]
    return "\n".join(lines) + "\n"


# --- endpoints ---------------------------------------------------------------------------


class Profiler:
    """The two handlers and their locks: one CPU profile and one memory trace at a time."""

    def __init__(self) -> None:
        self._cpu = asyncio.Lock()
        self._memory = asyncio.Lock()

    async def cpu(self, query: str) -> tuple[str, bytes]:
        params = _params(query)
        seconds = _number(params, "seconds", DEFAULT_SECONDS, 0.01, MAX_SECONDS)
        fmt = params.get("format", "folded")
        if fmt not in ("folded", "pstats"):
            raise ProfilingError(f"format: expected folded or pstats, got {fmt!r}")
        async with self._cpu:
            if fmt == "pstats":
                return TEXT, (await self._cprofile(seconds, params)).encode()
            hz = _number(params, "hz", DEFAULT_HZ, 1, MAX_HZ)
            stacks, _ = await asyncio.to_thread(sample_stacks, seconds, hz)
            return TEXT, folded(stacks).encode()

    async def _cprofile(self, seconds: float, params: dict[str, str]) -> str:
        limit = int(_number(params, "top", 50, 1, MAX_TOP))
        sort = params.get("sort", "cumulative")
        if sort not in ("cumulative", "tottime", "ncalls"):
            raise ProfilingError(f"sort: expected cumulative, tottime or ncalls, got {sort!r}")
        profile = cProfile.Profile()
        profile.enable()
        try:
            await asyncio.sleep(seconds)
        finally:
            profile.disable()
        out = io.StringIO()
        out.write(f"# cProfile of the event-loop thread for {seconds:g}s, top {limit} by {sort}\n")
        stats = pstats.Stats(profile, stream=out)
        stats.sort_stats(sort).print_stats(limit)
        return out.getvalue()

    async def memory(self, query: str) -> tuple[str, bytes]:
        params = _params(query)
        top = int(_number(params, "top", 25, 1, MAX_TOP))
        group = params.get("group", "lineno")
        if group not in ("lineno", "filename", "traceback"):
            raise ProfilingError(f"group: expected lineno, filename or traceback, got {group!r}")
        async with self._memory:
            if tracemalloc.is_tracing() and "seconds" not in params:
                snapshot = await asyncio.to_thread(tracemalloc.take_snapshot)
                header = "live allocations traced since tracemalloc started (PYTHONTRACEMALLOC)"
            else:
                seconds = _number(params, "seconds", DEFAULT_SECONDS, 0.01, MAX_SECONDS)
                started_here = not tracemalloc.is_tracing()
                if started_here:
                    tracemalloc.start(TRACEMALLOC_FRAMES)
                try:
                    await asyncio.sleep(seconds)
                    snapshot = await asyncio.to_thread(tracemalloc.take_snapshot)
                    text = await asyncio.to_thread(
                        memory_report, snapshot, top, group,
                        f"allocations made in the last {seconds:g}s and still alive"
                        if started_here else "live allocations since tracing started")
                finally:
                    if started_here:
                        tracemalloc.stop()
                return TEXT, text.encode()
            return TEXT, (await asyncio.to_thread(memory_report, snapshot, top, group, header)).encode()


def routes() -> dict[str, Handler]:
    """Routes for web.Options.routes when profiling is enabled."""
    profiler = Profiler()
    return {CPU_PATH: profiler.cpu, MEMORY_PATH: profiler.memory}
