"""The collector framework: concurrency, timeouts, failure reporting, and the probe frame."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from pathlib import Path

import pytest

from exporter import families
from exporter.backoff import BackoffError
from exporter.collectors import BaseProbe, ProbeError
from exporter.model import Family, FamilySpec, MetricType
from exporter.scrape import Job, Scraper, ScraperClosed
from tests.collectors.helpers import Clock
from tests.support.net import free_port

THING = FamilySpec("thing", MetricType.GAUGE, "A test gauge.", ("source",))
GUARD = 5.0  # seconds: what a wait that should end at once may take before the test fails


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


class Target(BaseProbe):
    """A probe whose target fails, hangs or answers as the test says, and who counts what the job did."""

    secrets = ["hunter2-secret"]

    def __init__(self, answers: list[str], port: int | None = None) -> None:
        self.answers = answers  # "ok", "fail" or "hang", one per collect; the last one repeats
        self.port = port  # where the job may check that the target is back
        self.calls = 0
        self.resets = 0
        self.closed = False

    def describe(self) -> str:
        return "target tcp://admin:hunter2-secret@db:1"

    async def collect(self) -> list[Family]:
        answer = self.answers[min(self.calls, len(self.answers) - 1)]
        self.calls += 1
        if answer == "fail":
            raise ConnectionError("db:1 refused the password hunter2-secret")
        if answer == "hang":
            await asyncio.Event().wait()
        return [THING.one(float(self.calls), "target")]

    async def reset(self) -> None:
        self.resets += 1

    def address(self) -> tuple[str, int] | None:
        return ("127.0.0.1", self.port) if self.port else None

    def kept(self) -> list[Family]:
        return [THING.one(-1.0, "kept")]

    async def close(self) -> None:
        self.closed = True


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
                       Job(hanging, "hanging", timeout=0.2), Job(Target(["fail"]), "redis", "cache", is_probe=True)])

    async def scrape_twice() -> tuple[list[Family], list[Family]]:
        first = await scraper.collect()
        second = await scraper.collect()
        hanging.release.set()  # let the stuck thread finish so the loop can shut down
        return first, second

    with caplog.at_level(logging.WARNING, logger="exporter.scrape"):
        first, second = asyncio.run(scrape_twice())
    for out in (first, second):
        assert _values(out, THING) == {("fixed",): 1.0, ("kept",): -1.0}  # a failed probe exports what it keeps
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


class Sleeping(Fixed):
    async def collect(self) -> list[Family]:
        await asyncio.sleep(self.value)
        return [THING.one(self.value, str(self.value))]


def test_each_timeout_counts_from_the_start_of_the_scrape() -> None:
    """Jobs are waited for in turn: a later job's wait must end at its own deadline from the
    scrape's start, not from when its turn came (then at 0.5 s, and the 0.85 s job would pass
    as on time)."""
    hanging = Hanging()

    async def main() -> list[Family]:
        try:
            return await Scraper([Job(hanging, "first", timeout=0.5), Job(Sleeping(0.85), "second", timeout=0.6)]).collect()
        finally:
            hanging.release.set()

    out = asyncio.run(main())
    assert _values(out, families.COLLECTOR_SUCCESS) == {("first", ""): 0.0, ("second", ""): 0.0}


def test_a_fast_job_waited_for_after_a_slow_one_reports_its_own_duration() -> None:
    out = asyncio.run(Scraper([Job(Sleeping(0.3), "slow"), Job(Fixed(1.0), "fast")]).collect())
    durations = _values(out, families.COLLECTOR_DURATION)
    assert _values(out, families.COLLECTOR_SUCCESS) == {("slow", ""): 1.0, ("fast", ""): 1.0}
    assert durations[("fast", "")] < durations[("slow", "")] / 10  # not the time until its turn came


def test_recovery_is_reported_and_interval_reuses_the_result() -> None:
    class Flaky(Fixed):
        calls = 0

        async def collect(self) -> list[Family]:
            Flaky.calls += 1
            if Flaky.calls == 1:
                raise ConnectionError("refused")
            return [THING.one(float(Flaky.calls), "flaky")]

    job = Job(Flaky(0), "flaky", "t", interval=3600)
    scraper = Scraper([job])

    async def three() -> list[list[Family]]:
        return [await scraper.collect() for _ in range(3)]

    first, second, third = asyncio.run(three())
    assert _values(first, families.COLLECTOR_SUCCESS) == {("flaky", "t"): 0.0}
    assert _values(second, families.COLLECTOR_SUCCESS) == {("flaky", "t"): 1.0}
    assert _values(second, THING) == {("flaky",): 2.0}
    # Within the interval the last good result is served without running the probe.
    assert _values(third, THING) == {("flaky",): 2.0}
    assert Flaky.calls == 2


def test_close_closes_every_collector() -> None:
    collectors = [Fixed(1), Failing(2)]
    asyncio.run(Scraper([Job(c, f"c{i}") for i, c in enumerate(collectors)]).close())
    assert all(c.closed for c in collectors)


def test_a_failing_probe_is_backed_off_on_the_jobs_clock_and_its_secret_masked() -> None:
    clock = Clock()
    target = Target(["fail", "fail", "ok"])
    job = Job(target, "db", "main", is_probe=True, clock=clock)

    async def attempt() -> str:
        try:
            await job.attempt()
        except ProbeError as err:
            return f"{type(err).__name__}: {err}"
        return "ok"

    async def main() -> list[tuple[str, int, float]]:
        seen = []
        for step in (0, 0, 1, 0.5, 1.5, 0):  # seconds the clock moves before each attempt
            clock.advance(step)
            seen.append((await attempt(), target.calls, job.backoff.delay))
        return seen

    seen = asyncio.run(main())
    assert [calls for _, calls, _ in seen] == [1, 1, 2, 2, 3, 4]  # inside a delay the target is not called
    assert [delay for _, _, delay in seen] == [1.0, 1.0, 2.0, 2.0, 0.0, 0.0]
    first, backing_off = seen[0][0], seen[1][0]
    assert first == ("ProbeError: target tcp://admin:<secret>@db:1: "
                     "ConnectionError: db:1 refused the password <secret>")
    assert backing_off.startswith("BackoffError: target tcp://admin:<secret>@db:1: backoff: next attempt in 1.0s")
    assert all("hunter2" not in text for text, _, _ in seen)
    assert target.resets == 2  # once per failed read, never after a success or a skipped one


def test_a_probe_past_its_deadline_is_cut_off_reset_and_not_started_again() -> None:
    clock = Clock()
    target = Target(["hang", "ok"])
    scraper = Scraper([Job(target, "db", "main", timeout=0.2, is_probe=True, clock=clock),
                       Job(Fixed(1.0), "fixed")])

    async def main() -> tuple[list[Family], list[Family], list[Family]]:
        hung = await scraper.collect()
        backing_off = await scraper.collect()
        clock.advance(1.0)
        return hung, backing_off, await scraper.collect()

    hung, backing_off, recovered = asyncio.run(main())
    assert _values(hung, families.UP) == {("db", "main"): 0.0}
    assert _values(hung, THING) == {("fixed",): 1.0, ("kept",): -1.0}  # the rest of the scrape went on
    assert _values(backing_off, families.UP) == {("db", "main"): 0.0}
    assert _values(backing_off, THING) == {("fixed",): 1.0, ("kept",): -1.0}  # what the probe keeps, kept
    assert _values(recovered, families.UP) == {("db", "main"): 1.0}
    assert _values(recovered, THING) == {("fixed",): 1.0, ("target",): 2.0}
    assert target.calls == 2  # the backoff kept the second scrape off the target
    assert target.resets == 1  # the read cut off at its deadline dropped its connection


def test_a_probe_cancelled_by_close_is_reset_and_closed() -> None:
    target = Target(["hang"])
    job = Job(target, "db", "main", timeout=30, is_probe=True)
    scraper = Scraper([job])

    async def main() -> None:
        scrape = asyncio.create_task(scraper.collect())
        while target.calls == 0:
            await asyncio.sleep(0)
        await scraper.close()
        # Not a CancelledError, which would fail the scrape: the daemon redoes it on the new scraper.
        with pytest.raises(ScraperClosed):
            await scrape

    asyncio.run(main())
    assert target.resets == 1 and target.closed


def test_a_target_seen_closed_is_read_as_soon_as_its_port_accepts_again() -> None:
    clock = Clock()
    port = free_port()
    target = Target(["fail", "fail", "fail", "ok"], port=port)
    job = Job(target, "db", "main", is_probe=True, clock=clock)

    async def main() -> None:
        for wait in (0.0, 1.0, 2.0):  # an outage long enough for the delay to reach 4 s
            clock.advance(wait)
            with pytest.raises(ProbeError):
                await job.attempt()
        assert job.backoff.delay == 4.0 and target.calls == 3
        clock.advance(1.0)
        with pytest.raises(BackoffError):  # nothing listens: refused, the target is not read
            await job.attempt()
        server = socket.create_server(("127.0.0.1", port))
        try:
            clock.advance(0.5)
            with pytest.raises(BackoffError):  # one connect a second at most
                await job.attempt()
            assert target.calls == 3
            clock.advance(0.5)
            assert _values(await job.attempt(), THING) == {("target",): 4.0}  # 2 s before the delay ends
            assert job.backoff.delay == 0.0
        finally:
            server.close()

    asyncio.run(main())


def test_a_hung_target_whose_port_still_accepts_waits_out_its_backoff() -> None:
    clock = Clock()
    server = socket.create_server(("127.0.0.1", 0))  # listening, never accepting: a stopped server
    target = Target(["fail", "ok"], port=server.getsockname()[1])
    job = Job(target, "db", "main", is_probe=True, clock=clock)

    async def main() -> None:
        with pytest.raises(ProbeError):
            await job.attempt()
        clock.advance(0.5)
        with pytest.raises(BackoffError):  # the port accepts, but it never closed: no early read
            await job.attempt()
        clock.advance(0.5)
        assert _values(await job.attempt(), THING) == {("target",): 2.0}

    try:
        asyncio.run(main())
    finally:
        server.close()
    assert target.calls == 2


class InlineFixed(Fixed):
    """A collector that declares it never waits, and notes which task ran it."""

    inline = True

    def __init__(self, value: float, fail: bool = False) -> None:
        super().__init__(value)
        self.fail = fail
        self.ran_in: list[asyncio.Task[object] | None] = []

    async def collect(self) -> list[Family]:
        self.ran_in.append(asyncio.current_task())
        if self.fail:
            raise RuntimeError("procfs on fire")
        return await super().collect()


def test_an_inline_collector_runs_in_the_scrapes_task_and_is_reported_like_the_others(
        caplog: pytest.LogCaptureFixture) -> None:
    good, bad, tasked = InlineFixed(1.0), InlineFixed(2.0, fail=True), InlineFixed(3.0)

    async def main() -> tuple[list[Family], asyncio.Task[object] | None]:
        # A probe declaring inline still gets its own task: only its frame bounds its time.
        scraper = Scraper([Job(good, "self"), Job(Fixed(4.0), "fixed"), Job(bad, "bad"),
                           Job(Sleeping(0.05), "slow"), Job(tasked, "probe", "t", is_probe=True)])
        return await scraper.collect(), asyncio.current_task()

    with caplog.at_level(logging.WARNING, logger="exporter.scrape"):
        out, scrape_task = asyncio.run(main())
    assert good.ran_in == [scrape_task] and bad.ran_in == [scrape_task]
    assert tasked.ran_in[0] is not scrape_task
    assert sorted(s.value for f in out if f.spec is THING for s in f.samples) == [0.05, 1.0, 3.0, 4.0]
    assert _values(out, families.COLLECTOR_SUCCESS) == {
        ("self", ""): 1.0, ("fixed", ""): 1.0, ("bad", ""): 0.0, ("slow", ""): 1.0, ("probe", "t"): 1.0}
    assert any("procfs on fire" in str(r.__dict__) for r in caplog.records)


class Waiting(BaseProbe):
    """A probe whose target answers only once `answer` is set: a round trip the scrape waits on."""

    def __init__(self) -> None:
        self.answer = asyncio.Event()
        self.running = False
        self.started = threading.Event()  # for a thread to wait on

    def describe(self) -> str:
        return "waiting"

    async def collect(self) -> list[Family]:
        self.running = True
        self.started.set()
        await self.answer.wait()
        self.running = False
        return [THING.one(1.0, "probe")]


def test_the_callers_own_families_are_made_while_the_probes_wait() -> None:
    """`meanwhile` runs inside the probes' round trips, not after them (the daemon's pushed
    series then cost a scrape nothing when a probe is slower). Here the probe's target answers
    only when `meanwhile` runs: called after the wait, the probe would time out instead."""
    probe = Waiting()
    scraper = Scraper([Job(probe, "slow", "a", timeout=0.5, is_probe=True)])
    seen: list[bool] = []

    def meanwhile() -> list[Family]:
        seen.append(probe.running)
        probe.answer.set()
        return [THING.one(2.0, "pushed")]

    out = asyncio.run(scraper.collect(meanwhile))
    assert seen == [True]
    assert _values(out, families.UP) == {("slow", "a"): 1.0}
    assert [s.labels for f in out if f.spec is THING for s in f.samples] == [("probe",), ("pushed",)]  # in that order


class _BigStore:
    """A store past the daemon's inline size whose copy (on its thread) lets the probe's target answer."""

    def __init__(self, loop: asyncio.AbstractEventLoop, probe: Waiting) -> None:
        self.loop, self.probe = loop, probe
        self.copied_while_waiting: list[bool] = []

    def __len__(self) -> int:
        from exporter.daemon import INLINE_COLLECT_SERIES

        return INLINE_COLLECT_SERIES + 1

    def collect(self) -> list[Family]:
        # Started at once on its thread: it waits (bounded) for the probe's round trip to begin.
        self.copied_while_waiting.append(self.probe.started.wait(GUARD) and not self.probe.answer.is_set())
        self.loop.call_soon_threadsafe(self.probe.answer.set)
        return [THING.one(3.0, "pushed")]


def test_the_daemon_copies_a_big_store_while_the_probes_wait(tmp_path: Path) -> None:
    """The thread that copies a big store starts before the scrape waits on its probes, and its
    families keep their place after the scraper's (a copy after the wait: the probe times out)."""
    from exporter import config, daemon

    path = tmp_path / "config.yaml"
    path.write_text("statsd: {listeners: []}\ncollectors: {host: {enabled: false}, process: {enabled: false}, "
                    "container: {enabled: false}}\n")

    async def main() -> tuple[list[Family], list[bool]]:
        d = daemon.Daemon(str(path), config.load(path))
        probe = Waiting()
        d.scraper = Scraper([Job(probe, "slow", "a", timeout=GUARD, is_probe=True)])
        d.store = store = _BigStore(asyncio.get_running_loop(), probe)  # type: ignore[assignment]
        return await d.families(), store.copied_while_waiting

    out, copied_while_waiting = asyncio.run(main())
    assert _values(out, families.UP) == {("slow", "a"): 1.0}
    assert copied_while_waiting == [True]
    names = [f.spec.name for f in out]
    assert names.index("thing") < names.index("up") < len(names) - 1 - names[::-1].index("thing")
