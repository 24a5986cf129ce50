"""OTLP/gRPC: the MetricsService Export method on grpcio's asyncio server.

The method takes raw bytes (no deserializer), so a malformed message is ours to
refuse and count like an HTTP one. grpcio refuses messages over its own receive
limit before they reach us; that limit is set well above `max_request_bytes` so
that our own check (counted, with the reason) is what senders normally meet.
TLS and basic auth come from the same --web.config.file as the HTTP side: the
certificate pair (and client CA) as grpcio credentials, the `authorization`
metadata checked by the same authenticator.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import grpc  # type: ignore[import-untyped,unused-ignore]

from exporter.otlp.receiver import Receiver, Refused
from exporter.webconfig import WebConfig

SERVICE = "opentelemetry.proto.collector.metrics.v1.MetricsService"
METHOD = f"/{SERVICE}/Export"  # the path auth_excluded_paths would name
_CODES = {"too_large": grpc.StatusCode.RESOURCE_EXHAUSTED, "internal_error": grpc.StatusCode.INTERNAL}


def credentials(web: WebConfig) -> Any | None:
    """grpcio server credentials from the web config's TLS section; None for plaintext.

    grpcio takes PEM bytes, read here from the same files (or inline PEM) the HTTP side
    loads; its TLS versions and ciphers are BoringSSL's defaults (TLS 1.2 and later)."""
    tls = web.spec.tls_server_config if web.spec is not None else None
    if web.ssl_context is None or tls is None:
        return None
    base = web.path.parent if web.path is not None else Path(".")

    def pem(file: str | None, inline: str | None) -> bytes | None:
        if inline:
            return inline.encode()
        if file:
            path = Path(file)
            return (path if path.is_absolute() else base / path).read_bytes()
        return None

    cert, key = pem(tls.cert_file, tls.cert), pem(tls.key_file, tls.key)
    ca = pem(tls.client_ca_file, tls.client_ca)
    return grpc.ssl_server_credentials(
        [(key, cert)], root_certificates=ca, require_client_auth=tls.client_auth_type == "RequireAndVerifyClientCert")


class GrpcReceiver:
    def __init__(self, receiver: Receiver, address: str, web: WebConfig | None = None) -> None:
        self.receiver = receiver
        self.address = address
        self.port = 0
        self._web = web or WebConfig()
        self._server: Any = None

    async def start(self) -> None:
        """Bind and serve; OSError naming the address if it cannot be bound."""
        limit = min(4 * self.receiver.max_request_bytes, 1 << 30)
        server = grpc.aio.server(options=[("grpc.max_receive_message_length", limit),
                                          ("grpc.so_reuseport", 0)])
        handler = grpc.unary_unary_rpc_method_handler(self._export)  # raw bytes in and out
        server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(SERVICE, {"Export": handler})])
        try:
            secure = credentials(self._web)
            if secure is None:
                self.port = server.add_insecure_port(self.address)
            else:
                self.port = server.add_secure_port(self.address, secure)
        except OSError as err:
            raise OSError(f"otlp grpc: cannot read the TLS files of the web config: {err}") from None
        except RuntimeError as err:
            raise OSError(f"otlp grpc: cannot listen on {self.address}: {err}") from None
        await server.start()
        self._server = server

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.stop(grace=1.0)
            self._server = None

    async def _export(self, body: bytes, context: Any) -> bytes:
        if self._web.authenticator is not None:
            authorization = dict(context.invocation_metadata()).get("authorization")
            if not await self._web.allows(METHOD, authorization):
                self.receiver.refuse("grpc", "unauthorized")
                await context.abort(grpc.StatusCode.UNAUTHENTICATED, "basic auth required")
        try:
            result = await self.receiver.export(body, "grpc")
        except Refused as err:
            await context.abort(_CODES.get(err.reason, grpc.StatusCode.INVALID_ARGUMENT), str(err))
            raise  # abort() raises; this line is not reached
        return self.receiver.response(result)
