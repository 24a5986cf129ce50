"""The collector framework: concurrency, timeouts, failure reporting."""

from __future__ import annotations

import asyncio
import logging
import threading

import pytest

from exporter import families
from exporter.model import Family, FamilySpec, MetricType
from exporter.scrape import Job, Scraper

THING = FamilySpec("thing", MetricType.GAUGE, "A test gauge.", ("source",))


class Fixed:
    def __init__(self, value: float) -> None:
        self.value = value
        self.closed = False

    async def collect(self) -> list[Family]:
        return [THING.one(self.value, "fixed")]

    async def close(self) -> None:
        self.closed = True


class Failing(Fixed):
    async def collect(self) -> list[Family]:
        raise RuntimeError("database on fire")


class Hanging(Fixed):
    """Blocks in a thread, the way a stuck driver call does; counts how often it was started."""

    def __init__(self) -> None:
        super().__init__(0)
        self.started = 0
        self.release = threading.Event()

    async def collect(self) -> list[Family]:
        self.started += 1
        await asyncio.to_thread(self.release.wait)
        return [THING.one(7.0, "hanging")]


def _values(out: list[Family], spec: FamilySpec) -> dict[tuple[str, ...], float]:
    return {s.labels: s.value for f in out if f.spec is spec for s in f.samples}  # type: ignore[misc]


def test_failing_and_hanging_collectors_leave_the_rest_of_the_scrape(caplog: pytest.LogCaptureFixture) -> None:
    hanging = Hanging()
    scraper = Scraper([Job(Fixed(1.0), "fixed"), Job(Failing(0), "failing"),
                       Job(hanging, "hanging", timeout=0.2), Job(Failing(0), "redis", "cache", is_probe=True)])

    async def scrape_twice() -> tuple[list[Family], list[Family]]:
        first = await scraper.collect()
        second = await scraper.collect()
        hanging.release.set()  # let the stuck thread finish so the loop can shut down
        return first, second

    with caplog.at_level(logging.WARNING, logger="exporter.scrape"):
        first, second = asyncio.run(scrape_twice())
    for out in (first, second):
        assert _values(out, THING) == {("fixed",): 1.0}
        assert _values(out, families.COLLECTOR_SUCCESS) == {
            ("fixed", ""): 1.0, ("failing", ""): 0.0,
            ("hanging", ""): 0.0, ("redis", "cache"): 0.0}
        assert _values(out, families.UP) == {("redis", "cache"): 0.0}
    # The hung run is awaited again, never started twice.
    assert hanging.started == 1
    # Logged once per change of state, not once per scrape.
    failures = [r for r in caplog.records if r.getMessage() == "collector failed"]
    assert sorted(r.collector for r in failures) == ["failing", "hanging", "redis/cache"]  # type: ignore[attr-defined]


def test_collectors_run_concurrently() -> None:
    """Ten collectors that can only finish together: run one after another, all would time out."""

    async def main() -> list[Family]:
        barrier = asyncio.Barrier(10)

        class Together(Fixed):
            async def collect(self) -> list[Family]:
                await barrier.wait()
                return [THING.one(self.value, str(self.value))]

        return await Scraper([Job(Together(float(i)), f"c{i}", timeout=30) for i in range(10)]).collect()

    out = asyncio.run(main())
    assert len(_values(out, THING)) == 10
    assert set(_values(out, families.COLLECTOR_SUCCESS).values()) == {1.0}


def test_recovery_is_reported_and_interval_reuses_the_result() -> None:
    class Flaky(Fixed):
        calls = 0

        async def collect(self) -> list[Family]:
            Flaky.calls += 1
            if Flaky.calls == 1:
                raise ConnectionError("refused")
            return [THING.one(float(Flaky.calls), "flaky")]

    job = Job(Flaky(0), "flaky", "t", interval=3600, is_probe=True)
    scraper = Scraper([job])

    async def three() -> list[list[Family]]:
        return [await scraper.collect() for _ in range(3)]

    first, second, third = asyncio.run(three())
    assert _values(first, families.UP) == {("flaky", "t"): 0.0}
    assert _values(second, families.UP) == {("flaky", "t"): 1.0}
    assert _values(second, THING) == {("flaky",): 2.0}
    # Within the interval the last good result is served without running the probe.
    assert _values(third, THING) == {("flaky",): 2.0}
    assert Flaky.calls == 2


def test_close_closes_every_collector() -> None:
    collectors = [Fixed(1), Failing(2)]
    asyncio.run(Scraper([Job(c, f"c{i}") for i, c in enumerate(collectors)]).close())
    assert all(c.closed for c in collectors)
