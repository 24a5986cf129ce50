"""Profiling endpoints, served by the daemon's real web server, on a loop that keeps working."""

from __future__ import annotations

import asyncio
import re
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterable

import pytest

from exporter import profiling
from exporter.model import Family
from exporter.web import Options, Server


def busy_marker_function(stop: threading.Event) -> None:
    """Spins in a thread so the CPU profile has something known to find."""
    x = 0
    while not stop.is_set():
        x += sum(range(200))


_kept: list[bytes] = []


def allocation_marker_function() -> None:
    _kept.extend(bytes(10_000) for _ in range(500))  # ~5 MB that stays alive


class _App:
    namespace = "apm"
    ready = True

    async def collect(self) -> Iterable[Family]:
        return []

    async def reload(self) -> str | None:
        return None


async def _get(port: int, path: str) -> tuple[int, str]:
    def fetch() -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=60) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as err:
            return err.code, err.read().decode()
    return await asyncio.to_thread(fetch)


async def _with_server(body: object) -> None:
    server = Server(_App(), Options(routes=profiling.routes()))
    await server.start("127.0.0.1", 0)
    try:
        await body(server.ports[0])  # type: ignore[operator]
    finally:
        await server.stop()


def test_cpu_profile_folded_stacks_without_blocking_the_loop() -> None:
    stop = threading.Event()
    busy = threading.Thread(target=busy_marker_function, args=(stop,), name="busy worker")
    busy.start()
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    async def body(port: int) -> None:
        task = asyncio.create_task(ticker())
        status, text = await _get(port, profiling.CPU_PATH + "?seconds=1")
        task.cancel()
        assert status == 200
        lines = text.splitlines()
        assert lines and all(re.fullmatch(r"\S.* \d+", line) for line in lines), lines[:3]
        busy_lines = [line for line in lines if "busy_marker_function" in line]
        assert busy_lines and all(line.startswith("busy_worker;") for line in busy_lines)
        # ~100 samples in a second: the busy thread is in most of them.
        assert sum(int(line.rsplit(" ", 1)[1]) for line in busy_lines) >= 20

    try:
        asyncio.run(_with_server(body))
    finally:
        stop.set()
        busy.join()
    # The loop ran its other work while the profile was taken (it would be ~0 if blocked).
    assert ticks >= 20


def test_cpu_profile_pstats_of_the_event_loop() -> None:
    async def spin_on_the_loop() -> None:
        end = time.monotonic() + 0.5
        while time.monotonic() < end:
            sum(range(1000))
            await asyncio.sleep(0)

    async def body(port: int) -> None:
        task = asyncio.create_task(spin_on_the_loop())
        status, text = await _get(port, profiling.CPU_PATH + "?seconds=0.8&format=pstats&top=30")
        await task
        assert status == 200
        assert "cProfile of the event-loop thread" in text
        assert "function calls" in text and "spin_on_the_loop" in text

    asyncio.run(_with_server(body))


def test_memory_top_allocations_in_a_window() -> None:
    async def body(port: int) -> None:
        async def allocate_soon() -> None:
            await asyncio.sleep(0.2)
            allocation_marker_function()

        task = asyncio.create_task(allocate_soon())
        status, text = await _get(port, profiling.MEMORY_PATH + "?seconds=1&top=5")
        await task
        assert status == 200
        assert "allocations made in the last 1s and still alive" in text
        first = next(line for line in text.splitlines() if re.match(r"\s+1\.", line))
        assert "test_profiling.py" in first, text
        size = re.search(r"([\d.]+) MiB", first)
        assert size and float(size.group(1)) >= 4.5

    try:
        asyncio.run(_with_server(body))
    finally:
        _kept.clear()


async def _call(path: str, query: str) -> tuple[str, bytes]:
    return await profiling.routes()[path](query)


@pytest.mark.parametrize("query", ["seconds=abc", "seconds=0", "seconds=100000", "format=svg", "hz=0"])
def test_bad_parameters_are_clear_errors(query: str) -> None:
    with pytest.raises(profiling.ProfilingError):
        asyncio.run(_call(profiling.CPU_PATH, query))


def test_bad_memory_parameters_are_clear_errors() -> None:
    with pytest.raises(profiling.ProfilingError, match="group"):
        asyncio.run(_call(profiling.MEMORY_PATH, "group=nope"))
