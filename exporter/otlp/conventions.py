"""OpenTelemetry semantic conventions -> the built-in families the dashboards read.

The OTLP counterpart of the StatsD conventions (statsd/mapper.py): a metric whose
name, kind and unit match one of these lands in our family with our labels; the
rest of its attributes are dropped, so an OTel app and a StatsD app fill the same
panels. Both the stable names (`db.client.connection.*`, seconds) and the older
ones current instrumentations still emit (`db.client.connections.*`,
`http.server.duration` in milliseconds) are known. Pure: no protobuf, no store.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import NamedTuple

from exporter import families
from exporter.model import FamilySpec

# Units a seconds family accepts, with the factor to seconds.
SECONDS = {"s": 1.0, "ms": 0.001, "us": 1e-6, "ns": 1e-9}
# Counts take any unit: instrumentations write `{connection}`, `connections`, `1` or nothing.
ANY: Mapping[str, float] = {}

Attributes = Mapping[str, str]  # attribute key (as sent, not sanitised) -> value as text


class Convention(NamedTuple):
    spec: FamilySpec
    kind: str  # what the OTLP metric must translate to: counter, gauge or histogram
    labels: Callable[[Attributes], tuple[str, ...]]
    units: Mapping[str, float]  # accepted units -> scale to the family's unit; ANY: any unit, as is


class Route(NamedTuple):
    spec: FamilySpec
    labels: Callable[[Attributes], tuple[str, ...]]
    scale: float


def _first(attrs: Attributes, *keys: str) -> str:
    for key in keys:
        value = attrs.get(key)
        if value:
            return value
    return ""


def _http_operation(attrs: Attributes) -> tuple[str, ...]:
    method = _first(attrs, "http.request.method", "http.method") or "_OTHER"
    route = _first(attrs, "http.route")
    # Without a route template only the method is kept: a raw path would explode cardinality.
    operation = f"{method} {route}" if route else method
    status = _first(attrs, "http.response.status_code", "http.status_code")
    failed = bool(attrs.get("error.type")) or (status.isdigit() and int(status) >= 500)
    return operation, "error" if failed else "ok"


def _rpc_operation(attrs: Attributes) -> tuple[str, ...]:
    service, method = _first(attrs, "rpc.service"), _first(attrs, "rpc.method")
    operation = f"{service}/{method}" if service or method else "unknown"
    code = _first(attrs, "rpc.grpc.status_code", "rpc.response.status_code")
    failed = bool(attrs.get("error.type")) or code not in ("", "0", "OK")
    return operation, "error" if failed else "ok"


def _pool(attrs: Attributes) -> str:
    return _first(attrs, "db.client.connection.pool.name", "pool.name", "db.client.connections.pool.name")


def _pool_only(attrs: Attributes) -> tuple[str, ...]:
    return (_pool(attrs),)


def _pool_state(attrs: Attributes) -> tuple[str, ...]:
    state = _first(attrs, "db.client.connection.state", "state", "db.client.connections.state")
    # The conventions say used/idle; our pool families (and the dashboards) say active/idle.
    return _pool(attrs), "active" if state == "used" else state


def _queue(attrs: Attributes) -> tuple[str, ...]:
    return (_first(attrs, "messaging.destination.name", "messaging.destination", "queue"),)


_OPERATION = families.OPERATION_DURATION
CONVENTIONS: dict[str, Convention] = {
    "http.server.request.duration": Convention(_OPERATION, "histogram", _http_operation, SECONDS),
    "http.server.duration": Convention(_OPERATION, "histogram", _http_operation, SECONDS),
    "rpc.server.duration": Convention(_OPERATION, "histogram", _rpc_operation, SECONDS),
}
for _prefix in ("db.client.connection.", "db.client.connections."):
    CONVENTIONS.update({
        _prefix + "max": Convention(families.POOL_MAX_CONNECTIONS, "gauge", _pool_only, ANY),
        _prefix + "pending_requests": Convention(families.POOL_PENDING, "gauge", _pool_only, ANY),
        _prefix + "wait_time": Convention(families.POOL_WAIT_DURATION, "histogram", _pool_only, SECONDS),
        _prefix + "timeouts": Convention(families.POOL_TIMEOUTS, "counter", _pool_only, ANY),
    })
CONVENTIONS["db.client.connection.count"] = Convention(families.POOL_CONNECTIONS, "gauge", _pool_state, ANY)
CONVENTIONS["db.client.connections.usage"] = Convention(families.POOL_CONNECTIONS, "gauge", _pool_state, ANY)
# No semantic convention reports a queue's depth yet; this is the name our docs ask for.
CONVENTIONS["messaging.queue.depth"] = Convention(families.QUEUE_DEPTH, "gauge", _queue, ANY)


# An instrumentation asked for both (OTEL_SEMCONV_STABILITY_OPT_IN=http/dup) reports each request
# under the old and the new name; where a scope sends the new one, the old one is skipped.
SUPERSEDED = {"http.server.duration": "http.server.request.duration"}
for _old in ("max", "pending_requests", "wait_time", "timeouts"):
    SUPERSEDED[f"db.client.connections.{_old}"] = f"db.client.connection.{_old}"
SUPERSEDED["db.client.connections.usage"] = "db.client.connection.count"


def route(name: str, kind: str, unit: str) -> Route | None:
    """Our family for this metric, or None when no convention fits its name, kind and unit
    (a mismatch keeps the metric under its translated name rather than misfiling it)."""
    conv = CONVENTIONS.get(name)
    if conv is None or conv.kind != kind:
        return None
    scale = 1.0 if conv.units is ANY else conv.units.get(unit)
    if scale is None:
        return None
    return Route(conv.spec, conv.labels, scale)
