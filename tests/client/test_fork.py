"""fork(): the child starts with an empty buffer and its own flush thread; nothing is sent twice."""

from __future__ import annotations

import functools
import multiprocessing
import os
import time
from collections.abc import Callable

from exporter.client import Telemetry
from tests.client.conftest import Receiver, samples, total


def _wait_child(pid: int) -> int:
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


class TestFork:
    def test_parent_pending_values_are_not_sent_by_the_child(self, tm: Telemetry, receiver: Receiver) -> None:
        """10 unflushed values in the parent, 3 recorded in the child: 13 arrive, not 23."""
        for _ in range(10):
            tm.record("op", 0.001)
        pid = os.fork()
        if pid == 0:  # child
            try:
                for _ in range(3):
                    tm.record("op", 0.002)
                tm.flush()
            finally:
                os._exit(0)
        assert 0 == _wait_child(pid)
        tm.flush()
        lines = receiver.lines()

        assert 13 == total(lines, "apm.operation", operation="op")
        assert [1.0] * 10 + [2.0] * 3 == sorted(s.value for s in samples(lines))

    def test_child_gets_its_own_flush_thread(self, make_tm: Callable[..., Telemetry],
                                             receiver: Receiver) -> None:
        """The child never calls flush(): its new thread sends on the interval."""
        tm = make_tm(receiver.address, flush_interval=0.05)
        pid = os.fork()
        if pid == 0:
            try:
                sent = tm.stats()["datagrams_sent"]
                tm.record("child", 0.001)
                # Until the child's own thread has sent it (a fixed 0.5 s was ten intervals on a
                # quiet machine and could be none on a loaded one); no thread, no datagram: the
                # wait runs out and the count below fails.
                deadline = time.monotonic() + 30
                while tm.stats()["datagrams_sent"] == sent and time.monotonic() < deadline:
                    time.sleep(0.01)
            finally:
                os._exit(0)
        assert 0 == _wait_child(pid)

        assert 1 == total(receiver.lines(), "apm.operation", operation="child")

    def test_gauges_child_reports_its_own_copy_in_flight_counts_restart(self, tm: Telemetry,
                                                                        receiver: Receiver) -> None:
        """The child holds a copy of the pool, so it reports its own active count; the parent's
        in-flight pending requests are not the child's."""
        pool = tm.pool("db")
        pool.set(active=4)
        pool.pending_gauge.add(2)
        tm.flush()
        receiver.lines()
        pid = os.fork()
        if pid == 0:
            try:
                tm.flush()
            finally:
                os._exit(0)
        assert 0 == _wait_child(pid)
        child = receiver.lines()

        assert 4 == total(child, "apm.pool.active", pool="db")
        assert 0 == total(child, "apm.pool.pending", pool="db")
        # The child reports under an instance of its own, beside the parent's.
        instances = {s.tags["apm_instance"] for s in samples(child) if s.type == "g"}
        assert len(instances) == 1 and instances != {tm._sender.instance}

    def test_lru_cache_counts_before_the_fork_are_the_parents(self, tm: Telemetry, receiver: Receiver) -> None:
        @functools.lru_cache(maxsize=100)
        def square(x: int) -> int:
            return x * x

        tm.instrument_lru_cache(square, "squares")
        for x in range(5):
            square(x)  # 5 misses, not yet flushed
        pid = os.fork()
        if pid == 0:
            try:
                square(1)  # one hit in the child
                tm.flush()
            finally:
                os._exit(0)
        assert 0 == _wait_child(pid)
        tm.flush()
        lines = receiver.lines()

        assert 5 == total(lines, "apm.cache.miss", cache="squares")
        assert 1 == total(lines, "apm.cache.hit", cache="squares")


def _worker(address: str, n: int) -> None:
    tm = _inherited[0]
    for _ in range(n):
        tm.record("mp", 0.001)
    # No flush(): multiprocessing children leave through os._exit(); the client's finalizer sends.


_inherited: list[Telemetry] = []


class TestMultiprocessing:
    def test_fork_children_flush_at_exit_without_being_asked(self, tm: Telemetry, receiver: Receiver) -> None:
        _inherited[:] = [tm]
        ctx = multiprocessing.get_context("fork")
        procs = [ctx.Process(target=_worker, args=(receiver.address, 50)) for _ in range(3)]
        for p in procs:
            p.start()
        for p in procs:
            p.join()

        assert [0, 0, 0] == [p.exitcode for p in procs]
        assert 150 == total(receiver.lines(), "apm.operation", operation="mp")
