"""Operations: @tm.timed on sync and async functions, `with tm.timed(...)`, outcomes, labels."""

from __future__ import annotations

import asyncio
import time

import pytest

from exporter.client import Telemetry
from tests.client.conftest import Receiver, samples, total


class Boom(Exception):
    pass


class TestTimed:
    def test_sync_function_records_one_ok_value_per_call(self, tm: Telemetry, receiver: Receiver) -> None:
        """Each call adds one value to operation=checkout, outcome=ok; the result passes through."""

        @tm.timed("checkout")
        def checkout(n: int) -> int:
            time.sleep(0.005)
            return n * 2

        began = time.perf_counter()
        results = [checkout(i) for i in range(7)]
        elapsed_ms = (time.perf_counter() - began) * 1000
        tm.flush()
        lines = receiver.lines()

        assert [0, 2, 4, 6, 8, 10, 12] == results
        assert 7 == total(lines, "apm.operation", operation="checkout", outcome="ok")
        assert 0 == total(lines, "apm.operation", operation="checkout", outcome="error")
        # Milliseconds on the wire: each call slept 5 ms, and together they took no longer than
        # the loop around them (seconds would be 1000x too small, nanoseconds 10**6 too big).
        values = [s.value for s in samples(lines)]
        assert all(s.type == "ms" for s in samples(lines))
        assert min(values) >= 5.0 and sum(values) <= elapsed_ms

    def test_exception_is_error_and_reraised_untouched(self, tm: Telemetry, receiver: Receiver) -> None:
        """The same exception object escapes, with its traceback; the call counts as an error."""
        original = Boom("card declined")

        @tm.timed("pay")
        def pay() -> None:
            raise original

        with pytest.raises(Boom) as caught:
            pay()
        tm.flush()
        lines = receiver.lines()

        assert caught.value is original
        assert "pay" == caught.traceback[-1].name
        assert 1 == total(lines, "apm.operation", operation="pay", outcome="error")
        assert 0 == total(lines, "apm.operation", operation="pay", outcome="ok")

    def test_async_function(self, tm: Telemetry, receiver: Receiver) -> None:
        """Coroutines are timed from first await to return, errors included."""

        @tm.timed("fetch")
        async def fetch(fail: bool) -> str:
            await asyncio.sleep(0.01)
            if fail:
                raise Boom()
            return "ok"

        async def main() -> None:
            assert "ok" == await fetch(False)
            with pytest.raises(Boom):
                await fetch(True)

        asyncio.run(main())
        tm.flush()
        lines = receiver.lines()
        ok = [s for s in samples(lines) if s.tags.get("operation") == "fetch" and s.tags["outcome"] == "ok"]

        assert 1 == len(ok)
        assert ok[0].value >= 10.0  # it slept 10 ms: the await is inside the timing
        assert 1 == total(lines, "apm.operation", operation="fetch", outcome="error")

    def test_cancelled_coroutine_is_cancelled_not_error(self, tm: Telemetry, receiver: Receiver) -> None:
        """asyncio.CancelledError (a BaseException) is outcome=cancelled and still propagates."""

        @tm.timed("slow")
        async def slow() -> None:
            await asyncio.sleep(10)

        async def main() -> None:
            task = asyncio.create_task(slow())
            await asyncio.sleep(0.01)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

        asyncio.run(main())
        tm.flush()
        lines = receiver.lines()

        assert 1 == total(lines, "apm.operation", operation="slow", outcome="cancelled")
        assert 0 == total(lines, "apm.operation", operation="slow", outcome="error")

    def test_context_manager_sync_and_async(self, tm: Telemetry, receiver: Receiver) -> None:
        """`with` and `async with` blocks are operations too."""
        with tm.timed("block"):
            pass
        with pytest.raises(Boom), tm.timed("block"):
            raise Boom()

        async def main() -> None:
            async with tm.timed("ablock"):
                await asyncio.sleep(0)

        asyncio.run(main())
        tm.flush()
        lines = receiver.lines()

        assert 1 == total(lines, "apm.operation", operation="block", outcome="ok")
        assert 1 == total(lines, "apm.operation", operation="block", outcome="error")
        assert 1 == total(lines, "apm.operation", operation="ablock", outcome="ok")

    def test_extra_labels_travel_as_tags(self, tm: Telemetry, receiver: Receiver) -> None:
        """Extra labels are DogStatsD tags after operation and outcome (the conventions ignore them)."""

        @tm.timed("checkout", region="eu-west", tier="gold")
        def checkout() -> None:
            pass

        checkout()
        tm.flush()
        (sample,) = samples(receiver.lines())

        assert {"operation": "checkout", "outcome": "ok", "region": "eu-west", "tier": "gold"} == sample.tags

    def test_reserved_labels_are_refused(self, tm: Telemetry) -> None:
        with pytest.raises(ValueError, match="outcome"):
            tm.timed("x", outcome="ok")

    def test_generator_functions_are_refused(self, tm: Telemetry) -> None:
        """Timing a generator's creation would measure nothing: say so at decoration time."""
        with pytest.raises(TypeError, match="generator"):
            @tm.timed("gen")
            def gen() -> object:
                yield 1

    def test_unsafe_characters_in_names_cannot_break_the_line(self, tm: Telemetry, receiver: Receiver) -> None:
        """`|`, `,`, `#`, `:` and newlines would end a tag or a line early; they become `_`."""
        with tm.timed("a|b,c#d:e\nf"):
            pass
        tm.flush()
        (line,) = receiver.lines()

        assert "apm.operation" == line.split(":", 1)[0]
        assert line.endswith("|ms|#operation:a_b_c_d_e_f,outcome:ok")

    def test_record_takes_durations_measured_elsewhere(self, tm: Telemetry, receiver: Receiver) -> None:
        tm.record("import", 0.25)
        tm.record("import", 1.5, outcome="error")
        tm.flush()
        by_outcome = {s.tags["outcome"]: s.value for s in samples(receiver.lines())}

        assert {"ok": 250.0, "error": 1500.0} == by_outcome

    def test_decorator_keeps_the_function_identity(self, tm: Telemetry) -> None:
        @tm.timed("documented")
        def documented() -> None:
            """Docstring."""

        assert "documented" == documented.__name__
        assert "Docstring." == documented.__doc__
