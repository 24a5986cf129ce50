"""Exemplars from the client: the current OpenTelemetry span's trace and span ids, or explicit ones,
go out once per series and flush on a line of its own, for timers and counters, and the counts
stay exact."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Callable

from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from exporter.client import Telemetry
from exporter.client.testing import capture_metrics

TRACE = 0x4BF92F3577B34DA6A3CE929D0E0E4736
SPAN = 0x00F067AA0BA902B7
IDS = f"trace_id:{TRACE:032x},span_id:{SPAN:016x}"


def _span(trace_id: int = TRACE) -> NonRecordingSpan:
    return NonRecordingSpan(SpanContext(trace_id=trace_id, span_id=SPAN, is_remote=False,
                                        trace_flags=TraceFlags(TraceFlags.SAMPLED)))


def test_the_current_span_becomes_one_exemplar_per_flush_and_nothing_is_counted_twice() -> None:
    tm = Telemetry("127.0.0.1:9")
    with capture_metrics() as metrics:
        @tm.timed("checkout")
        def checkout() -> None:
            pass

        checkout()
        tm.flush()  # the flush finds OpenTelemetry loaded: the next observation is asked for
        with trace.use_span(_span()):
            for _ in range(5):
                checkout()
        tm.flush()
        with trace.use_span(_span(TRACE + 1)):
            checkout()  # a new flush interval: one more exemplar
        assert metrics.count("apm.operation", operation="checkout", outcome="ok") == 7
        traced = [line for line in metrics.lines if "trace_id:" in line]
    assert len(traced) == 2, metrics.lines
    assert traced[0].endswith(IDS) and traced[1].endswith(f"trace_id:{TRACE + 1:032x},span_id:{SPAN:016x}")
    assert "operation:checkout" in traced[0] and "outcome:ok" in traced[0]


def test_an_explicit_exemplar_for_a_block_and_for_record() -> None:
    tm = Telemetry("127.0.0.1:9")
    with capture_metrics() as metrics:
        with tm.timed("pay", exemplar={"trace_id": "abc123", "span_id": "beef01"}):
            pass
        tm.record("ship", 0.25, exemplar={"trace_id": "def456"})
        tm.record("ship", 0.5)
        assert metrics.count("apm.operation", operation="ship") == 2
        lines = metrics.lines
    assert any(line.startswith("apm.operation:") and "operation:pay" in line
               and line.endswith("trace_id:abc123,span_id:beef01") for line in lines), lines
    assert any("operation:ship" in line and line.endswith("trace_id:def456") and "250000000e-6" in line
               for line in lines), lines


def test_without_opentelemetry_loaded_nothing_is_looked_up_or_imported() -> None:
    code = ("import sys\nfrom exporter.client import Telemetry\nfrom exporter.client.testing import capture_metrics\n"
            "tm = Telemetry('127.0.0.1:9')\nf = tm.timed('x')(lambda: None)\n"
            "with capture_metrics() as m:\n    f(); tm.flush(); f(); tm.flush()\n    lines = m.lines\n"
            "assert not any('trace_id' in l for l in lines), lines\n"
            "assert not any(k.startswith('opentelemetry') for k in sys.modules)\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_counters_and_the_handles_timers_take_the_current_span_once_per_flush_and_count_exactly(
    make_tm: Callable[..., Telemetry],
) -> None:
    tm = make_tm("127.0.0.1:9")  # closed after the test: its gauges must not reach other tests' captures
    with capture_metrics() as metrics:
        cache, pool = tm.cache("users"), tm.pool("db")
        cache.miss()  # outside any span: no exemplar
        with trace.use_span(_span()):
            for _ in range(3):
                cache.miss()
            cache.hit(2)
            with contextlib.suppress(TimeoutError), pool.waiting():
                raise TimeoutError
            with tm.batch("emails", 4) as batch:  # new series: the first values may carry one too
                batch.fail(1)
        tm.flush()
        with trace.use_span(_span(TRACE + 1)):
            cache.miss()  # the next flush interval: one more
        tm.flush()
        assert metrics.count("apm.cache.miss", cache="users") == 5
        assert metrics.count("apm.cache.hit", cache="users") == 2
        assert metrics.count("apm.pool.timeout", pool="db") == 1
        assert metrics.count("apm.batch.items", queue="emails", outcome="error") == 1
        assert metrics.count("apm.batch.items", queue="emails", outcome="ok") == 3
        traced = [line for line in metrics.lines if "trace_id:" in line]
    first, second = traced[:-1], traced[-1]
    assert all(line.endswith(IDS) for line in first), traced
    assert sorted(line.partition(":")[0] for line in first) == [
        "apm.batch.duration", "apm.batch.items", "apm.batch.items", "apm.batch.size", "apm.cache.hit",
        "apm.cache.miss", "apm.pool.timeout", "apm.pool.wait"]
    assert f"apm.cache.miss:1|c|#cache:users,{IDS}" in first and f"apm.cache.hit:2|c|#cache:users,{IDS}" in first
    assert second == f"apm.cache.miss:1|c|#cache:users,trace_id:{TRACE + 1:032x},span_id:{SPAN:016x}"
