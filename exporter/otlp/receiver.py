"""What both OTLP receivers share: decoding a body, applying it under the store's lock, counting.

Decoding and translation run in a worker thread, so a large request does not stall the
event loop (and with it /metrics); the store lock is the one StatsD ingest writes under.
A refusal of a whole request is a `Refused` with the reason that labels its counter.

Protobuf bodies are read by the hand decoder (wire.py), so OTLP/HTTP with protobuf loads no
protobuf library; JSON bodies go through the library's json_format. APM_EXPORTER_OTLP_DECODER=protobuf
makes the library decode protobuf bodies too (the reference the hand decoder is tested against,
kept as a fallback should a sender ever be misread).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
import zlib

from exporter import families
from exporter.otlp import wire
from exporter.otlp.points import ResourceMetrics, from_message
from exporter.otlp.translate import Result, Translator
from exporter.store import Store

log = logging.getLogger(__name__)

TRANSPORTS = ("http", "grpc")
REQUEST_REASONS = ("malformed", "too_large", "bad_gzip", "unsupported_content_type", "unsupported_encoding",
                   "unauthorized", "method_not_allowed", "internal_error")
DECODER_ENV = "APM_EXPORTER_OTLP_DECODER"


class Refused(Exception):
    """A request refused whole; nothing in it was stored."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def gunzip(body: bytes, limit: int) -> bytes:
    """The decompressed body, refusing more than `limit` bytes (a gzip bomb) or a cut-off stream."""
    inflater = zlib.decompressobj(wbits=31)
    try:
        out = inflater.decompress(body, limit + 1)
    except zlib.error as err:
        raise Refused("bad_gzip", f"invalid gzip body: {err}") from None
    if len(out) > limit:
        raise Refused("too_large", f"body larger than {limit} bytes once decompressed")
    if not inflater.eof:
        raise Refused("bad_gzip", "truncated gzip body")
    return out


class Receiver:
    def __init__(self, translator: Translator, lock: threading.Lock, stats: Store, max_request_bytes: int,
                 decoder: str | None = None) -> None:
        self.translator = translator
        self.decoder = decoder or os.environ.get(DECODER_ENV) or "wire"  # or "protobuf"
        self.max_request_bytes = max_request_bytes
        self._lock = lock
        self._stats = stats
        self._requests = {t: self._stats.counter(families.OTLP_REQUESTS, t) for t in TRANSPORTS}
        self._points = {t: self._stats.counter(families.OTLP_DATA_POINTS, t) for t in TRANSPORTS}
        self._refused = {(t, r): self._stats.counter(families.OTLP_REQUESTS_REJECTED, t, r)
                         for t in TRANSPORTS for r in REQUEST_REASONS}

    def refuse(self, transport: str, reason: str) -> None:
        """Count a request refused before its body reached `export` (by the listener itself)."""
        self._requests[transport].value += 1
        self._count_refusal(transport, reason)

    async def export(self, body: bytes, transport: str, json_body: bool = False) -> Result:
        """Decode and apply one request body; raises Refused (counted) for a bad one."""
        self._requests[transport].value += 1
        try:
            if len(body) > self.max_request_bytes:
                raise Refused("too_large", f"body of {len(body)} bytes exceeds the limit of "
                                           f"{self.max_request_bytes}")
            result = await asyncio.to_thread(self._apply, body, json_body)
        except Refused as err:
            self._count_refusal(transport, err.reason)
            raise
        except Exception:  # the daemon must outlive any bug on this path
            log.exception("otlp: failed to apply an export request")
            self._count_refusal(transport, "internal_error")
            raise Refused("internal_error", "internal error") from None
        self._points[transport].value += result.accepted
        return result

    @staticmethod
    def response(result: Result, json_body: bool = False) -> bytes:
        """The ExportMetricsServiceResponse, encoded as the library would: partial_success only
        when points were refused."""
        if not result.rejected:
            return b"{}" if json_body else b""
        if json_body:  # proto3 JSON: lowerCamelCase names, int64 as a string
            partial = {"rejectedDataPoints": str(result.rejected)}
            if result.message:
                partial["errorMessage"] = result.message
            return json.dumps({"partialSuccess": partial}).encode()
        inner = b"\x08" + wire.encode_varint(result.rejected)
        if result.message:
            text = result.message.encode()
            inner += b"\x12" + wire.encode_varint(len(text)) + text
        return b"\x0a" + wire.encode_varint(len(inner)) + inner

    def _apply(self, body: bytes, json_body: bool) -> Result:
        request = self._decode(body, json_body)
        with self._lock:
            return self.translator.export(request)

    def _decode(self, body: bytes, json_body: bool) -> list[ResourceMetrics]:
        if not json_body and self.decoder != "protobuf":
            try:
                return wire.decode(body)
            except wire.WireError as err:
                raise Refused("malformed", f"cannot decode the request: {err}") from None
        try:
            from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
        except ImportError as err:
            raise Refused("unsupported_content_type", f"{'JSON bodies' if json_body else 'the protobuf decoder'} "
                                                      f"need the otlp extra (pip install 'apm-exporter[otlp]'): {err}") from None
        message = metrics_service_pb2.ExportMetricsServiceRequest()
        try:
            if json_body:
                from google.protobuf import json_format  # type: ignore[import-untyped,unused-ignore]

                json_format.Parse(body, message, ignore_unknown_fields=True)
            else:
                message.ParseFromString(body)
        except Exception as err:  # DecodeError, ParseError, UnicodeDecodeError, RecursionError...
            raise Refused("malformed", f"cannot decode the request: {err}") from None
        return from_message(message)

    def _count_refusal(self, transport: str, reason: str) -> None:
        counter = self._refused.get((transport, reason))
        if counter is None:
            counter = self._stats.counter(families.OTLP_REQUESTS_REJECTED, transport, reason)
            self._refused[transport, reason] = counter
        counter.value += 1
