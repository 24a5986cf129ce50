"""The HTTP side: /metrics, lifecycle endpoints and a landing page, on asyncio + h11.

A small server we control end to end, because the exporter's promises live
here: a slow or hostile client is cut off (header and idle timeouts, header
size limit, bounded body), scrapes run at most `max_concurrent_scrapes` at a
time, and TLS and basic auth (webconfig/) cover every endpoint.

Rendering a big scrape takes up to a second or more (100,000 histogram series)
and gzip as long again, so both run on one worker thread, never on the event
loop: `/-/healthy`, other scrapes and TCP StatsD keep being served meanwhile
(bench/stall.py measures how long they wait). A small scrape (the default
config's ~140 series) renders and compresses on the loop instead: a hand-off to
the thread and back costs more CPU than such a render (bench/scrape.py).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import zlib
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol

import h11

from exporter import __version__
from exporter.exposition import Renderer, negotiate
from exporter.model import Family
from exporter.webconfig import WebConfig

log = logging.getLogger(__name__)

MAX_HEADER_BYTES = 16 * 1024
MAX_BODY_BYTES = 64 * 1024
HEADER_TIMEOUT = 10.0  # to receive a whole request head (slowloris)
IDLE_TIMEOUT = 60.0  # between requests on a kept-alive connection
SCRAPE_QUEUE_TIMEOUT = 30.0  # a scrape that waits longer for its turn gets 503
MAX_CONNECTIONS = 256
GZIP_MIN_BYTES = 1024  # smaller bodies are sent as they are
# Up to this many exposition lines (a histogram series counts its buckets) render on the loop:
# a few milliseconds at most, less than /-/healthy waits for a turn of the GIL during a big render.
INLINE_RENDER_LINES = 2000
INLINE_GZIP_BYTES = 128 * 1024  # about a millisecond of zlib level 1


class App(Protocol):
    """What the server needs from the daemon; nothing else crosses this line."""

    namespace: str
    ready: bool

    async def collect(self) -> Iterable[Family]: ...

    async def reload(self) -> str | None:
        """Reload the config; the error text on failure, None on success."""
        ...


@dataclass
class Options:
    telemetry_path: str = "/metrics"
    enable_reload: bool = True
    max_concurrent_scrapes: int = 4
    # TLS, basic auth, extra headers and the paths left open (--web.config.file); default: none.
    web_config: WebConfig = field(default_factory=WebConfig)
    # Extra GET routes (e.g. profiling) given by the daemon: path -> handler(query) -> (type, body).
    routes: dict[str, Callable[[str], Awaitable[tuple[str, bytes]]]] = field(default_factory=dict)
    # Routes that take a request body (OTLP's /v1/metrics): path -> handler(method, headers, body).
    body_routes: dict[str, Callable[[str, dict[bytes, bytes], bytes], Awaitable[Response]]] = field(
        default_factory=dict)
    max_body_bytes: int = MAX_BODY_BYTES
    # False on a listener that serves only `body_routes` (the OTLP one): no /metrics, lifecycle or landing page.
    builtin_routes: bool = True
    # Told the reason ("too_large", "bad_request") when the server refuses a request itself.
    on_refused: Callable[[str], None] | None = None


@dataclass
class Response:
    status: int
    body: bytes | list[bytes] = b""  # a list: consecutive parts, sent without joining them
    content_type: str = "text/plain; charset=utf-8"
    headers: list[tuple[str, str]] = field(default_factory=list)


class Server:
    def __init__(self, app: App, options: Options) -> None:
        self.app = app
        self.options = options
        self._scrapes = asyncio.Semaphore(options.max_concurrent_scrapes)
        self.renderer = Renderer()
        # One thread: renders share the renderer's caches and run one at a time; the loop stays free.
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="render")
        self._on_worker = 0  # renders handed to the worker and not finished (touched on the loop only)
        self._connections: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None

    async def start(self, host: str, port: int) -> None:
        context = self.options.web_config.ssl_context
        self._server = await asyncio.start_server(
            self._accept, host or None, port, ssl=context,
            ssl_handshake_timeout=HEADER_TIMEOUT if context else None, reuse_address=True)

    @property
    def ports(self) -> list[int]:
        assert self._server is not None
        return [sock.getsockname()[1] for sock in self._server.sockets]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        self._worker.shutdown(wait=False, cancel_futures=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        if len(self._connections) >= MAX_CONNECTIONS:
            writer.close()
            return
        self._connections.add(task)
        try:
            await self._serve(reader, writer)
        except (ConnectionError, asyncio.TimeoutError, ssl.SSLError, asyncio.IncompleteReadError):
            pass
        finally:
            self._connections.discard(task)
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEADER_BYTES)
        while True:
            try:
                request = await self._read_request(conn, reader)
            except h11.RemoteProtocolError as err:
                if conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                    status = err.error_status_hint if err.error_status_hint >= 400 else 400
                    if self.options.on_refused is not None:
                        self.options.on_refused("too_large" if status == 413 else "bad_request")
                    await self._send(conn, writer, Response(status, b"bad request\n"), head=False,
                                     gzip_ok=False, close=True)
                return
            if request is None:
                return
            method, target, headers, body = request
            response = await self._dispatch(method, target, headers, body)
            accept_encoding = headers.get(b"accept-encoding", b"").decode("latin-1")
            await self._send(conn, writer, response, head=method == "HEAD",
                             gzip_ok="gzip" in accept_encoding, close=False)
            if conn.our_state is h11.MUST_CLOSE or conn.their_state is h11.MUST_CLOSE:
                return
            try:
                conn.start_next_cycle()
            except h11.LocalProtocolError:
                return

    async def _read_request(self, conn: h11.Connection, reader: asyncio.StreamReader
                            ) -> tuple[str, str, dict[bytes, bytes], bytes] | None:
        request: h11.Request | None = None
        body = bytearray()
        started = False
        async with asyncio.timeout(IDLE_TIMEOUT) as deadline:
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    data = await reader.read(65536)
                    conn.receive_data(data)
                    if data and not started:
                        # Once a request has begun, all of it must arrive promptly (slowloris).
                        started = True
                        deadline.reschedule(asyncio.get_running_loop().time() + HEADER_TIMEOUT)
                    continue
                if isinstance(event, h11.ConnectionClosed):
                    return None
                if isinstance(event, h11.Request):
                    # h11 bounds only a head that arrives in pieces; a whole one in a read is checked here.
                    size = len(event.target) + sum(len(k) + len(v) + 4 for k, v in event.headers)
                    if size > MAX_HEADER_BYTES:
                        raise h11.RemoteProtocolError("request head too large", error_status_hint=431)
                    request = event
                elif isinstance(event, h11.Data):
                    body += event.data
                    if len(body) > self.options.max_body_bytes:
                        raise h11.RemoteProtocolError("body too large", error_status_hint=413)
                elif isinstance(event, h11.EndOfMessage):
                    assert request is not None
                    headers = {k.lower(): v for k, v in request.headers}
                    return request.method.decode("ascii", "replace"), request.target.decode("latin-1"), headers, bytes(body)

    async def _dispatch(self, method: str, target: str, headers: dict[bytes, bytes], body: bytes) -> Response:
        path, _, query = target.partition("?")
        limiter = self.options.web_config.rate_limiter
        if limiter is not None and not limiter.allow():
            return Response(429, b"Too Many Requests\n")
        if not await self.options.web_config.allows(path, _header(headers, b"authorization")):
            return Response(401, b"Unauthorized\n", headers=[("WWW-Authenticate", 'Basic realm="apm-exporter"')])
        handler = self.options.body_routes.get(path)
        if handler is not None:
            return await handler(method, headers, body)
        if not self.options.builtin_routes:
            return Response(404, b"Not found.\n")
        if path == self.options.telemetry_path:
            if method not in ("GET", "HEAD"):
                return _not_allowed("GET, HEAD")
            return await self._metrics(_header(headers, b"accept"), _client_deadline(headers))
        if path == "/-/healthy":
            return Response(200, b"Healthy.\n")
        if path == "/-/ready":
            return Response(200, b"Ready.\n") if self.app.ready else Response(503, b"Not ready.\n")
        if path == "/-/reload":
            if not self.options.enable_reload:
                return Response(403, b"Reload is disabled (--no-web.enable-lifecycle).\n")
            if method not in ("POST", "PUT"):
                return _not_allowed("POST, PUT")
            error = await self.app.reload()
            if error is not None:
                return Response(500, f"failed to reload config: {error}\n".encode())
            return Response(200, b"Reloaded.\n")
        if path in self.options.routes:
            try:
                content_type, payload = await self.options.routes[path](query)
            except ValueError as err:  # a bad parameter, e.g. ?seconds=abc
                return Response(400, f"{err}\n".encode())
            return Response(200, payload, content_type)
        if path == "/":
            return Response(200, self._landing(), "text/html; charset=utf-8")
        return Response(404, b"Not found.\n")

    async def _metrics(self, accept: str | None, deadline: float | None = None) -> Response:
        """`deadline`: when the client gives up (loop time), after which nothing more is done for it."""
        fmt = negotiate(accept)
        try:
            async with asyncio.timeout(SCRAPE_QUEUE_TIMEOUT):
                await self._scrapes.acquire()
        except TimeoutError:
            return Response(503, b"Too many concurrent scrapes.\n")
        loop = asyncio.get_running_loop()
        try:
            families = list(await self.app.collect())
            if deadline is not None and loop.time() > deadline:
                # The scraper has given up: rendering for it would only take the CPU (and the GIL)
                # from the StatsD reader and from the next scrape (issue 15's soak, 1 s timeouts).
                return Response(503, b"Scrape timeout passed before the render.\n")
            if self._on_worker == 0 and _lines(families) <= INLINE_RENDER_LINES:
                # Never beside a render on the worker: the renderer's caches are not thread-safe.
                body = self.renderer.render_parts(families, fmt, self.app.namespace)
            else:
                self._on_worker += 1
                try:
                    body = await loop.run_in_executor(
                        self._worker, self.renderer.render_parts, families, fmt, self.app.namespace)
                finally:
                    self._on_worker -= 1
            if deadline is not None and loop.time() > deadline:
                return Response(503, b"Scrape timeout passed during the render.\n")  # no gzip for nobody
        finally:
            self._scrapes.release()
        return Response(200, body, fmt.value)

    def _landing(self) -> bytes:
        links = [(self.options.telemetry_path, "Metrics"), ("/-/healthy", "Health"), ("/-/ready", "Readiness")]
        links += [(p, p) for p in sorted(self.options.routes)]
        items = "".join(f'<li><a href="{_escape_html(p)}">{_escape_html(t)}</a></li>' for p, t in links)
        reload = ("<p><code>POST /-/reload</code> reloads the configuration.</p>"
                  if self.options.enable_reload else "")
        return (
            "<!doctype html><html><head><meta charset='utf-8'><title>apm-exporter</title></head>"
            f"<body><h1>apm-exporter</h1><p>Version {_escape_html(__version__)}</p><ul>{items}</ul>{reload}"
            "</body></html>\n"
        ).encode()

    async def _send(self, conn: h11.Connection, writer: asyncio.StreamWriter, response: Response,
                    head: bool, gzip_ok: bool, close: bool) -> None:
        parts = response.body if isinstance(response.body, list) else [response.body]
        headers = [("Content-Type", response.content_type), *response.headers,
                   *self.options.web_config.headers.items()]
        size = sum(map(len, parts))
        if gzip_ok and size > GZIP_MIN_BYTES:
            # Level 1: most of the saving for a fraction of the CPU; a big body on the worker, off the loop.
            if size <= INLINE_GZIP_BYTES:
                parts = _gzip(parts)
            else:
                parts = await asyncio.get_running_loop().run_in_executor(self._worker, _gzip, parts)
            headers.append(("Content-Encoding", "gzip"))
        headers.append(("Content-Length", str(sum(map(len, parts)))))
        if close:
            headers.append(("Connection", "close"))
        chunks = [conn.send(h11.Response(status_code=response.status, headers=headers))]
        if not head:
            for part in parts:
                if part:
                    # Passed through as it is: joining it to the head would copy megabytes on the loop.
                    chunks += conn.send_with_data_passthrough(h11.Data(data=part)) or []
        chunks.append(conn.send(h11.EndOfMessage()))
        for chunk in chunks:
            if chunk:
                writer.write(chunk)
        await writer.drain()


def _gzip(parts: list[bytes]) -> list[bytes]:
    """The parts as one gzip stream, in parts (zlib works without holding the GIL)."""
    compressor = zlib.compressobj(1, zlib.DEFLATED, 31)  # wbits 31: the gzip container
    out = [compressor.compress(part) for part in parts]
    out.append(compressor.flush())
    return [chunk for chunk in out if chunk]


def _client_deadline(headers: dict[bytes, bytes]) -> float | None:
    """When a Prometheus scrape times out, on the loop's clock: the timeout it sends
    (X-Prometheus-Scrape-Timeout-Seconds) from now; None without a valid one."""
    try:
        timeout = float(headers.get(b"x-prometheus-scrape-timeout-seconds", b""))
    except ValueError:
        return None
    if not 0 < timeout < 86400:  # NaN, negative or absurd: no deadline
        return None
    return asyncio.get_running_loop().time() + timeout


def _lines(families: Iterable[Family]) -> int:
    """About how many lines these families render to: the measure of a render's time."""
    total = 0
    for family in families:
        buckets = family.spec.buckets
        total += len(family.samples) * (len(buckets) + 3 if buckets else 1)
    return total


def _escape_html(text: str) -> str:
    # Not html.escape: importing the html package costs ~0.5 MiB of the idle RSS budget.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def _header(headers: dict[bytes, bytes], name: bytes) -> str | None:
    value = headers.get(name)
    return value.decode("latin-1") if value is not None else None


def _not_allowed(allow: str) -> Response:
    return Response(405, b"Method not allowed.\n", headers=[("Allow", allow)])

