"""Reading collector output the way a test asserts on it: by family name and labels."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

from exporter.model import Family

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


async def until_ok(collect: Callable[[], Awaitable[T]], attempts: int = 200, pause: float = 0.1) -> T:
    """Call collect until it stops raising (the probe's backoff delays the first tries)."""
    for _ in range(attempts - 1):
        try:
            return await collect()
        except Exception:
            await asyncio.sleep(pause)
    return await collect()
