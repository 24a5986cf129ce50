"""The `otlp:` section: two listeners, a body limit and how resources become labels."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from exporter.schema import Address, Duration, Section

DEFAULT_HTTP_ADDRESS = "127.0.0.1:4318"
DEFAULT_GRPC_ADDRESS = "127.0.0.1:4317"
# Resource attributes kept on target_info. A list rather than "all of them": the SDKs add
# attributes (process.command_args, os.description, ...) nobody queries, each a label per sender.
DEFAULT_TARGET_INFO = [
    "service.version", "deployment.environment", "deployment.environment.name",
    "telemetry.sdk.language", "telemetry.sdk.name", "telemetry.sdk.version",
    "host.name", "process.pid", "k8s.namespace.name", "k8s.pod.name", "container.id",
]


class Listener(Section):
    enabled: bool = True
    listen_address: Address


class HttpListener(Listener):
    listen_address: Address = DEFAULT_HTTP_ADDRESS


class GrpcListener(Listener):
    listen_address: Address = DEFAULT_GRPC_ADDRESS


class OtlpConfig(Section):
    # Off by default: the receivers import protobuf (and grpcio), which the default daemon does not load.
    enabled: bool = False
    http: HttpListener = HttpListener()
    grpc: GrpcListener = GrpcListener()
    # Largest request body (after gzip is undone, too); the SDKs' batches are far smaller.
    max_request_bytes: Annotated[int, Field(ge=1024, le=256 * 1024 * 1024)] = 8 * 1024 * 1024
    # Exponential histograms outside the conventions: native buckets (protobuf scrapes), classic
    # ones (text scrapes), or both, as statsd's histogram_type says it.
    exponential_histograms: Literal["classic", "native", "both"] = "both"
    # Semantic conventions -> the built-in families (docs/otlp.md), like the StatsD conventions.
    conventions: bool = True
    # Resource attributes added as labels to every translated (non-convention) series.
    promote_resource_attributes: list[str] = []
    target_info_attributes: list[str] = Field(default_factory=lambda: list(DEFAULT_TARGET_INFO))
    # A stream (and a translated series) not updated for this long is forgotten, as a StatsD
    # series past its ttl; null keeps them forever. Senders come and go (every restarted pod is a
    # new service.instance.id), so the default is finite: 5m, the Collector's metric_expiration.
    ttl: Duration | None = 300.0
