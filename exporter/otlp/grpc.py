"""OTLP/gRPC: the MetricsService Export method on grpcio's asyncio server.

The method takes raw bytes (no deserializer), so a malformed message is ours to
refuse and count like an HTTP one. grpcio refuses messages over its own receive
limit before they reach us; that limit is set well above `max_request_bytes` so
that our own check (counted, with the reason) is what senders normally meet.
"""

from __future__ import annotations

from typing import Any

import grpc  # type: ignore[import-untyped,unused-ignore]

from exporter.otlp.receiver import Receiver, Refused

SERVICE = "opentelemetry.proto.collector.metrics.v1.MetricsService"
_CODES = {"too_large": grpc.StatusCode.RESOURCE_EXHAUSTED, "internal_error": grpc.StatusCode.INTERNAL}


class GrpcReceiver:
    def __init__(self, receiver: Receiver, address: str) -> None:
        self.receiver = receiver
        self.address = address
        self.port = 0
        self._server: Any = None

    async def start(self) -> None:
        """Bind and serve; OSError naming the address if it cannot be bound."""
        limit = min(4 * self.receiver.max_request_bytes, 1 << 30)
        server = grpc.aio.server(options=[("grpc.max_receive_message_length", limit),
                                          ("grpc.so_reuseport", 0)])
        handler = grpc.unary_unary_rpc_method_handler(self._export)  # raw bytes in and out
        server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(SERVICE, {"Export": handler})])
        try:
            self.port = server.add_insecure_port(self.address)
        except RuntimeError as err:
            raise OSError(f"otlp grpc: cannot listen on {self.address}: {err}") from None
        await server.start()
        self._server = server

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.stop(grace=1.0)
            self._server = None

    async def _export(self, body: bytes, context: Any) -> bytes:
        try:
            result = await self.receiver.export(body, "grpc")
        except Refused as err:
            await context.abort(_CODES.get(err.reason, grpc.StatusCode.INVALID_ARGUMENT), str(err))
            raise  # abort() raises; this line is not reached
        return bytes(self.receiver.response(result).SerializeToString())
