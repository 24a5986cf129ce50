"""OTLP/HTTP: `POST /v1/metrics` with a protobuf or JSON body, gzip allowed, as a web.py route.

Answers follow the OTLP/HTTP spec: 200 with an ExportMetricsServiceResponse (a partial
success when points were refused), 400 with a google.rpc.Status giving the reason for a
body that cannot be decoded, 413 for one over the limit, 415 for a content type or
encoding we do not speak; errors are encoded like the request (protobuf or JSON).
"""

from __future__ import annotations

import json

from exporter.otlp.receiver import Receiver, Refused, gunzip
from exporter.otlp.wire import encode_varint
from exporter.web import Response

PATH = "/v1/metrics"
PROTOBUF, JSON = "application/x-protobuf", "application/json"
_STATUS = {"too_large": 413, "unsupported_content_type": 415, "unsupported_encoding": 415,
           "method_not_allowed": 405, "internal_error": 500}
# google.rpc.Code values for the Status body
_RPC_CODE = {"too_large": 8, "internal_error": 13}
_INVALID_ARGUMENT = 3


def status_body(code: int, message: str, json_body: bool) -> bytes:
    """A google.rpc.Status (code = 1, message = 2): two fields, encoded by hand rather than
    pulling in googleapis-common-protos for them."""
    if json_body:
        return json.dumps({"code": code, "message": message}).encode()
    text = message.encode()
    return b"\x08" + encode_varint(code) + b"\x12" + encode_varint(len(text)) + text


class HttpReceiver:
    """The handler web.py calls for POST /v1/metrics on the OTLP listener."""

    def __init__(self, receiver: Receiver) -> None:
        self.receiver = receiver

    async def handle(self, method: str, headers: dict[bytes, bytes], body: bytes) -> Response:
        content_type = headers.get(b"content-type", b"").decode("latin-1").partition(";")[0].strip().lower()
        json_body = content_type == JSON
        try:
            if method != "POST":
                self.receiver.refuse("http", "method_not_allowed")
                return Response(405, b"Method not allowed.\n", headers=[("Allow", "POST")])
            if content_type not in (PROTOBUF, JSON):
                raise Refused("unsupported_content_type",
                              f"unsupported content type {content_type!r}: use {PROTOBUF} or {JSON}")
            encoding = headers.get(b"content-encoding", b"identity").decode("latin-1").strip().lower()
            if encoding == "gzip":
                body = gunzip(body, self.receiver.max_request_bytes)
            elif encoding not in ("identity", ""):
                raise Refused("unsupported_encoding", f"unsupported content encoding {encoding!r}: use gzip")
        except Refused as err:
            self.receiver.refuse("http", err.reason)
            return self._error(err, json_body)
        try:
            result = await self.receiver.export(body, "http", json_body)
        except Refused as err:
            return self._error(err, json_body)
        return Response(200, self.receiver.response(result, json_body), JSON if json_body else PROTOBUF)

    def refused_by_server(self, reason: str) -> None:
        """web.py refused the request itself (e.g. a body over its limit)."""
        self.receiver.refuse("http", reason)

    @staticmethod
    def _error(err: Refused, json_body: bool) -> Response:
        status = _STATUS.get(err.reason, 400)
        if status == 415 or status == 405:
            return Response(status, f"{err}\n".encode())
        body = status_body(_RPC_CODE.get(err.reason, _INVALID_ARGUMENT), str(err), json_body)
        return Response(status, body, JSON if json_body else PROTOBUF)
