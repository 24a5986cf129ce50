"""Exemplars from the client: the current OpenTelemetry span's trace and span ids, never importing OpenTelemetry.

A process that traces has imported `opentelemetry.trace` already; one that does not pays
one `sys.modules` lookup per series and flush. The ids go out as the `trace_id` and
`span_id` tags of one extra line per series and flush (the daemon's default
`statsd.exemplar_tag` and `statsd.exemplar_span_tag`), so exemplars cost the wire almost nothing.
"""

from __future__ import annotations

import sys

TAG = "trace_id"
SPAN_TAG = "span_id"


def tracing() -> bool:
    """True when the process has OpenTelemetry's API loaded (then spans may be current)."""
    return "opentelemetry.trace" in sys.modules


def current() -> str:
    """The current span's ids as an exemplar line's tags, `trace_id:<32 hex>,span_id:<16 hex>`,
    or "" when there is no valid span."""
    trace = sys.modules.get("opentelemetry.trace")
    if trace is None:
        return ""
    try:
        context = trace.get_current_span().get_span_context()  # type: ignore[attr-defined]
        if not context.is_valid:
            return ""
        return f"{TAG}:{context.trace_id:032x},{SPAN_TAG}:{context.span_id:016x}"
    except Exception:  # noqa: BLE001 - a tracer in a bad state must not break the timed code
        return ""


def explicit(exemplar: dict[str, str] | None) -> str:
    """The tags of an `exemplar={"trace_id": ..., "span_id": ...}` argument ("" without a trace
    id; a dict without `trace_id` gives its first other value as the trace id)."""
    if not exemplar:
        return ""
    trace = _clean(exemplar.get(TAG) or next((v for k, v in exemplar.items() if k != SPAN_TAG), ""))
    if not trace:
        return ""
    span = _clean(exemplar.get(SPAN_TAG, ""))
    return f"{TAG}:{trace},{SPAN_TAG}:{span}" if span else f"{TAG}:{trace}"


def _clean(value: object) -> str:
    """What can travel as a tag value: letters, digits, `-` and `_`, at most 64 of them."""
    return "".join(c for c in str(value) if c.isalnum() or c in "-_")[:64]
