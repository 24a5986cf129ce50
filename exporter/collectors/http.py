"""HTTP endpoint probes: latency, status code and TLS certificate expiry.

One request per collect on a fresh connection (as the Prometheus blackbox
exporter does), so the latency includes connect and TLS handshake, which is
what a user of the endpoint waits for too. Written on asyncio streams with h11
(already the daemon's HTTP parser) rather than urllib in a thread: a timed-out
or cancelled probe then leaves no thread behind, and the peer certificate is at
hand on the stream for its expiry.

Outcomes: an answer with an expected status is outcome=ok; any other answer is
outcome=error with http_probe_success 0 but the target is up (it answered). No
answer at all (refused, reset, TLS failure, timeout) fails the collect: up 0, and
the latency histogram, with that outcome=error observation, is what the probe
keeps exporting meanwhile (kept()).
Redirects are not followed; expect 3xx explicitly to accept one.
"""

from __future__ import annotations

import asyncio
import base64
import ssl
import time
from datetime import datetime, timezone
from typing import Any
from urllib.parse import unquote, urlsplit

from pydantic import Field, field_validator

from exporter import __version__, families
from exporter.collectors import BaseProbe, ProbeError
from exporter.cumulative import Operations
from exporter.model import Family
from exporter.redact import dsn_secrets
from exporter.schema import Target

# What the probe reads of a body before it stops counting (it still drains to the end).
_CHUNK = 65536


class Config(Target):
    """An HTTP(S) endpoint; `expected_status` empty means any 2xx."""

    url: str = Field(pattern=r"^https?://[^/?#]+")
    method: str = Field(default="GET", pattern=r"^[A-Z]+$")
    headers: dict[str, str] = {}
    body: str | None = None
    expected_status: list[int] = []
    # A PEM bundle to verify the server with instead of the system's CAs.
    ca_file: str | None = None
    insecure_skip_verify: bool = False

    @field_validator("expected_status")
    @classmethod
    def _codes(cls, codes: list[int]) -> list[int]:
        bad = [c for c in codes if not 100 <= c <= 599]
        if bad:
            raise ValueError(f"not HTTP status codes: {bad}")
        return codes


def tls_context(ca_file: str | None, insecure_skip_verify: bool) -> ssl.SSLContext:
    """The client TLS context of a probe that speaks HTTPS (this one, RabbitMQ's management API)."""
    ctx = ssl.create_default_context(cafile=ca_file)
    if insecure_skip_verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


class HTTPCollector(BaseProbe):
    """A fresh connection per collect, so reset() has nothing to drop."""

    def __init__(self, config: Config) -> None:
        self.config = config
        parts = urlsplit(config.url)
        self._tls = parts.scheme == "https"
        self._host = parts.hostname or ""
        self._port = parts.port or (443 if self._tls else 80)
        self._target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        default_port = (parts.scheme, self._port) in (("http", 80), ("https", 443))
        host = f"[{self._host}]" if ":" in self._host else self._host
        self._host_header = host if default_port else f"{host}:{self._port}"
        self.secrets = dsn_secrets(config.url)
        self._auth = None
        if parts.username is not None:
            user_pass = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            self._auth = "Basic " + base64.b64encode(user_pass.encode()).decode()
        self._ssl = tls_context(config.ca_file, config.insecure_skip_verify) if self._tls else None
        self._latency = Operations(families.OPERATION_DURATION)
        self._latency.declare(config.name, "ok")
        self._latency.declare(config.name, "error")

    def describe(self) -> str:
        return f"http {self.config.url}"

    def address(self) -> tuple[str, int] | None:
        return self._host, self._port

    def kept(self) -> list[Family]:
        # A request that got no answer is an error observation: exported while the target is down too.
        return [self._latency.family()]

    async def collect(self) -> list[Family]:
        name = self.config.name
        start = time.perf_counter()
        try:
            status, der = await self._request()
        except BaseException:  # no answer, timed out by the job included: a failed request is an error
            self._latency.observe(time.perf_counter() - start, name, "error")
            raise
        elapsed = time.perf_counter() - start
        ok = status in self.config.expected_status if self.config.expected_status else 200 <= status < 300
        self._latency.observe(elapsed, name, "ok" if ok else "error")
        out = [
            self._latency.family(),
            families.HTTP_STATUS.one(float(status), name),
            families.HTTP_SUCCESS.one(1.0 if ok else 0.0, name),
        ]
        if der:
            try:
                out.append(families.HTTP_CERT_EXPIRY.one(cert_not_after(der), name))
            except ProbeError:
                pass  # an unreadable certificate leaves the expiry out, not the answer
        return out

    async def _request(self) -> tuple[int, bytes | None]:
        import h11

        reader, writer = await asyncio.open_connection(
            self._host, self._port, ssl=self._ssl, server_hostname=self._host if self._tls else None,
            limit=_CHUNK)
        try:
            der = None
            if self._tls:
                ssl_object = writer.get_extra_info("ssl_object")
                der = ssl_object.getpeercert(binary_form=True) if ssl_object else None
            conn = h11.Connection(h11.CLIENT)
            body = self.config.body.encode() if self.config.body is not None else b""
            headers = [("Host", self._host_header), ("User-Agent", f"apm-exporter/{__version__}"),
                       ("Accept", "*/*"), ("Connection", "close")]
            if self._auth:
                headers.append(("Authorization", self._auth))
            headers += list(self.config.headers.items())
            if body or self.config.method in ("POST", "PUT", "PATCH"):
                headers.append(("Content-Length", str(len(body))))
            data = conn.send(h11.Request(method=self.config.method, target=self._target, headers=headers)) or b""
            if body:
                data += conn.send(h11.Data(data=body)) or b""
            data += conn.send(h11.EndOfMessage()) or b""
            writer.write(data)
            await writer.drain()
            status = 0
            while True:
                event: Any = conn.next_event()
                if event is h11.NEED_DATA:
                    conn.receive_data(await reader.read(_CHUNK))
                elif isinstance(event, h11.Response):
                    status = event.status_code
                elif isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
                    break
                # InformationalResponse (1xx) and Data: read on.
            if not status:
                raise ProbeError("connection closed before a response")
            return status, der
        finally:
            writer.close()
            try:
                await writer.wait_closed()
            except (OSError, ssl.SSLError):
                pass


# --- certificate expiry from DER -----------------------------------------------------
# The stdlib decodes a peer certificate to a dict only when it was verified; with
# insecure_skip_verify only the DER bytes are available. notAfter sits at a fixed
# place in the structure, so a few lines of DER walking beat a cryptography dependency.

def _tlv(der: bytes, pos: int) -> tuple[int, int, int]:
    """(tag, content start, content end) of the DER element at pos."""
    tag, length = der[pos], der[pos + 1]
    pos += 2
    if length & 0x80:
        size = length & 0x7F
        length = int.from_bytes(der[pos:pos + size], "big")
        pos += size
    if pos + length > len(der):
        raise ValueError("truncated DER")
    return tag, pos, pos + length


def cert_not_after(der: bytes) -> float:
    """Unix time of an X.509 certificate's notAfter."""
    try:
        _, cert, _ = _tlv(der, 0)
        _, pos, _ = _tlv(der, cert)                    # tbsCertificate
        tag, _, end = _tlv(der, pos)
        if tag == 0xA0:                                # [0] version, optional
            pos = end
        for _ in range(3):                             # serialNumber, signature, issuer
            _, _, pos = _tlv(der, pos)
        _, validity, _ = _tlv(der, pos)
        _, _, after = _tlv(der, validity)              # notBefore
        tag, start, end = _tlv(der, after)             # notAfter
        text = der[start:end].decode("ascii")
        if tag == 0x17:                                # UTCTime YYMMDDHHMMSSZ, RFC 5280 century rule
            year = int(text[:2])
            text = f"{1900 + year if year >= 50 else 2000 + year}{text[2:]}"
        elif tag != 0x18:                              # GeneralizedTime YYYYMMDDHHMMSSZ
            raise ValueError(f"unexpected tag {tag:#x} for notAfter")
        when = datetime.strptime(text, "%Y%m%d%H%M%SZ").replace(tzinfo=timezone.utc)
    except (IndexError, ValueError, UnicodeDecodeError) as err:
        raise ProbeError(f"cannot read the certificate's expiry: {err}") from None
    return when.timestamp()
