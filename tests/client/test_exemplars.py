"""Exemplars from the client: the current OpenTelemetry span's trace id, or an explicit one, goes out
once per series and flush on a line of its own, and the count stays exact."""

from __future__ import annotations

import subprocess
import sys

from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from exporter.client import Telemetry
from exporter.client.testing import capture_metrics

TRACE = 0x4BF92F3577B34DA6A3CE929D0E0E4736


def _span(trace_id: int = TRACE) -> NonRecordingSpan:
    return NonRecordingSpan(SpanContext(trace_id=trace_id, span_id=0x00F067AA0BA902B7, is_remote=False,
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
    assert traced[0].endswith(f"trace_id:{TRACE:032x}") and traced[1].endswith(f"trace_id:{TRACE + 1:032x}")
    assert "operation:checkout" in traced[0] and "outcome:ok" in traced[0]


def test_an_explicit_exemplar_for_a_block_and_for_record() -> None:
    tm = Telemetry("127.0.0.1:9")
    with capture_metrics() as metrics:
        with tm.timed("pay", exemplar={"trace_id": "abc123"}):
            pass
        tm.record("ship", 0.25, exemplar={"trace_id": "def456"})
        tm.record("ship", 0.5)
        assert metrics.count("apm.operation", operation="ship") == 2
        lines = metrics.lines
    assert any(line.startswith("apm.operation:") and "operation:pay" in line and line.endswith("trace_id:abc123")
               for line in lines), lines
    assert any("operation:ship" in line and line.endswith("trace_id:def456") and "250000000e-6" in line
               for line in lines), lines


def test_without_opentelemetry_loaded_nothing_is_looked_up_or_imported() -> None:
    code = ("import sys\nfrom exporter.client import Telemetry\nfrom exporter.client.testing import capture_metrics\n"
            "tm = Telemetry('127.0.0.1:9')\nf = tm.timed('x')(lambda: None)\n"
            "with capture_metrics() as m:\n    f(); tm.flush(); f(); tm.flush()\n    lines = m.lines\n"
            "assert not any('trace_id' in l for l in lines), lines\n"
            "assert not any(k.startswith('opentelemetry') for k in sys.modules)\n")
    subprocess.run([sys.executable, "-c", code], check=True)
