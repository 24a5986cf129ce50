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

A connection starts on an asyncio Protocol (`_Connection`), not on streams: a GET or HEAD
that arrives whole in one read, with no body, valid as h11 reads it (`_simple_request`), is
answered directly, as h11 would write the answer, in one write with its body when that is
small. That is what a Prometheus scrape is, and a stream reader and writer, a task per
connection and h11's per-header checks and state machine cost more than rendering the
daemon's own families (bench/scrape_floor.py). Anything else (a body, a pipelined request,
a head in pieces, something malformed) hands the connection, with what it has read, to
streams and h11 (`Server._serve`) for the rest of its life; h11 is imported then.
"""

from __future__ import annotations

import asyncio
import logging
import re
import ssl
import zlib
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from exporter import __version__
from exporter.exposition import Renderer, negotiate
from exporter.model import Family
from exporter.webconfig import WebConfig

if TYPE_CHECKING:
    import h11  # imported where it is used: a daemon scraped only by plain GETs never loads it

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
SIMPLE_JOIN_BYTES = 64 * 1024  # a body up to this size goes out in one write with its head


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
        self._connections: set[asyncio.Task[None]] = set()  # handed to streams and h11
        self._direct: set[_Connection] = set()  # still on the Protocol
        self._server: asyncio.Server | None = None

    async def start(self, host: str, port: int) -> None:
        context = self.options.web_config.ssl_context
        self._server = await asyncio.get_running_loop().create_server(
            lambda: _Connection(self), host or None, port, ssl=context,
            ssl_handshake_timeout=HEADER_TIMEOUT if context else None, reuse_address=True)

    @property
    def ports(self) -> list[int]:
        assert self._server is not None
        return [sock.getsockname()[1] for sock in self._server.sockets]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for connection in list(self._direct):
            connection.abort()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        self._worker.shutdown(wait=False, cancel_futures=True)

    def _full(self) -> bool:
        return len(self._direct) + len(self._connections) >= MAX_CONNECTIONS

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """A connection handed over from `_Connection`, served by h11 until it closes."""
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            await self._serve(reader, writer)
        except (ConnectionError, asyncio.TimeoutError, ssl.SSLError, asyncio.IncompleteReadError):
            pass
        finally:
            self._connections.discard(task)
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        import h11

        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEADER_BYTES)
        while True:
            try:
                request = await self._read_request(conn, reader)
            except h11.RemoteProtocolError as err:
                if conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                    status = err.error_status_hint if err.error_status_hint >= 400 else 400
                    if self.options.on_refused is not None:
                        self.options.on_refused("too_large" if status == 413 else "bad_request")
                    framed = await self._framed(Response(status, b"bad request\n"), gzip_ok=False)
                    await self._send(conn, writer, status, framed, head=False, close=True)
                return
            if request is None:
                return
            method, target, headers, body = request
            status, framed = await self._answer(method, target, headers, body)
            await self._send(conn, writer, status, framed, head=method == "HEAD", close=False)
            if conn.our_state is h11.MUST_CLOSE or conn.their_state is h11.MUST_CLOSE:
                return
            try:
                conn.start_next_cycle()
            except h11.LocalProtocolError:
                return

    async def _read_request(self, conn: h11.Connection, reader: asyncio.StreamReader
                            ) -> tuple[str, str, dict[bytes, bytes], bytes] | None:
        """The next request: method, target, headers (names lowercased) and body."""
        import h11

        request: h11.Request | None = None
        body = bytearray()
        started = False
        async with asyncio.timeout(IDLE_TIMEOUT) as deadline:
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    data = await reader.read(65536)
                    if data and not started:
                        # Once a request has begun, all of it must arrive promptly (slowloris).
                        started = True
                        deadline.reschedule(asyncio.get_running_loop().time() + HEADER_TIMEOUT)
                    conn.receive_data(data)
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
                    return (request.method.decode("ascii", "replace"), request.target.decode("latin-1"), headers,
                            bytes(body))

    async def _answer(self, method: str, target: str, headers: dict[bytes, bytes], body: bytes
                      ) -> tuple[int, tuple[list[tuple[str, str]], list[bytes]]]:
        """A request's status and framed answer (gzipped if the client takes it), however it was read."""
        response = await self._dispatch(method, target, headers, body)
        accept_encoding = headers.get(b"accept-encoding", b"").decode("latin-1")
        return response.status, await self._framed(response, "gzip" in accept_encoding)

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
        if self._scrapes.locked():
            try:
                async with asyncio.timeout(SCRAPE_QUEUE_TIMEOUT):
                    await self._scrapes.acquire()
            except TimeoutError:
                return Response(503, b"Too many concurrent scrapes.\n")
        else:
            await self._scrapes.acquire()  # a turn is free: taken at once, no timer needed
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

    async def _framed(self, response: Response, gzip_ok: bool) -> tuple[list[tuple[str, str]], list[bytes]]:
        """The headers and body parts to send: gzipped if the client takes it and it is worth it."""
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
        return headers, parts

    async def _send(self, conn: h11.Connection, writer: _Writer, status: int,
                    framed: tuple[list[tuple[str, str]], list[bytes]], head: bool, close: bool) -> None:
        import h11

        headers, parts = framed
        if close:
            headers.append(("Connection", "close"))
        chunks = [conn.send(h11.Response(status_code=status, headers=headers))]
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

    async def _send_simple(self, writer: _Writer, status: int,
                           framed: tuple[list[tuple[str, str]], list[bytes]], head: bool, close: bool) -> bool:
        """The answer to a simple request, written as h11 writes it (tests compare the bytes) but
        without its per-header checks and state machine; False, with nothing written, for an
        answer only h11 should frame (a status without a body, a header that is not plain ASCII)."""
        headers, parts = framed
        if status < 200 or status in (204, 304):
            return False
        lines = "".join([f"{name}: {value}\r\n" for name, value in headers])
        if lines.count("\n") != len(headers) or lines.count("\r") != len(headers) or not lines.isascii():
            return False
        if close:
            lines += "Connection: close\r\n"
        head_bytes = f"HTTP/1.1 {status} \r\n{lines}\r\n".encode("ascii")
        if head:
            writer.write(head_bytes)
        elif len(parts) == 1 and len(parts[0]) <= SIMPLE_JOIN_BYTES:
            writer.write(head_bytes + parts[0])  # one send for a small answer, not two
        else:
            writer.write(head_bytes)
            for part in parts:
                if part:
                    writer.write(part)
        await writer.drain()
        return True


class _Writer(Protocol):
    """Where an answer is written: a StreamWriter, or a `_Connection` that writes to its transport."""

    def write(self, data: bytes) -> None: ...

    async def drain(self) -> None: ...


class _Connection(asyncio.Protocol):
    """One client connection, answered from `data_received` while its requests are simple.

    A request is simple when it arrives whole in one read (`_simple_request`); its answer runs
    as a task (collecting is async) and the connection waits for the next request only after
    it. Anything else, or data that arrives while an answer is being written, hands the
    connection to streams and h11 (`Server._accept`) with what it has read, once no answer is
    in flight: from then on the transport belongs to a StreamReaderProtocol.
    """

    def __init__(self, server: Server) -> None:
        self._server = server
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._answering: asyncio.Task[None] | None = None
        self._pending = b""  # what arrived while an answer was in flight
        self._eof = False
        self._idle: asyncio.TimerHandle | None = None
        self._paused = False
        self._drained: asyncio.Future[None] | None = None
        self._lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        if self._server._full():
            transport.close()
            self._lost = True
            return
        self._transport = transport
        self._server._direct.add(self)
        self._idle = self._loop.call_later(IDLE_TIMEOUT, transport.close)

    def data_received(self, data: bytes) -> None:
        if self._transport is None:
            return
        if self._answering is not None:
            self._pending += data
            if len(self._pending) > MAX_HEADER_BYTES and self._transport.is_reading():
                # Held, not read on: what comes after an answer is a request head, and a head
                # this long is refused anyway; a client cannot fill our memory while we answer.
                self._transport.pause_reading()
            return
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None
        simple = _simple_request(data)
        if simple is None:
            self._hand_over(data)
        else:
            self._answering = self._loop.create_task(self._answer(simple))

    def eof_received(self) -> bool:
        self._eof = True
        if self._answering is None and self._transport is not None:
            self._transport.close()
        # Plain TCP: the client may have only shut its side; the answer in flight still goes out.
        return self._transport is None or self._transport.get_extra_info("sslcontext") is None

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        self._server._direct.discard(self)
        if self._idle is not None:
            self._idle.cancel()
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    def write(self, data: bytes) -> None:
        assert self._transport is not None
        self._transport.write(data)

    async def drain(self) -> None:
        if self._paused and not self._lost:
            self._drained = self._loop.create_future()
            await self._drained
        if self._lost:
            raise ConnectionResetError("connection lost")

    def abort(self) -> None:
        if self._answering is not None:
            self._answering.cancel()
        if self._transport is not None:
            self._transport.abort()

    async def _answer(self, simple: _Simple) -> None:
        keep = False
        try:
            keep = await self._respond(simple)
        except (ConnectionError, TimeoutError, ssl.SSLError):
            pass
        except Exception:  # as an unhandled error in a streams handler: logged, the connection closed
            log.exception("error answering %s %s", simple.method, simple.target)
        finally:
            self._answering = None
        transport = self._transport
        if transport is None or self._lost:
            return
        if not keep or (self._eof and not self._pending):
            transport.close()
        elif self._pending:
            pending, self._pending = self._pending, b""
            if not transport.is_reading():
                transport.resume_reading()
            self.data_received(pending)
        else:
            self._idle = self._loop.call_later(IDLE_TIMEOUT, transport.close)

    async def _respond(self, simple: _Simple) -> bool:
        """Answer `simple`; whether the connection stays open for another request."""
        server = self._server
        status, framed = await server._answer(simple.method, simple.target, simple.headers, b"")
        head = simple.method == "HEAD"
        if await server._send_simple(self, status, framed, head, simple.close):
            return not simple.close
        # An answer only h11 frames: h11 is given the request, then writes the answer.
        import h11

        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEADER_BYTES)
        conn.receive_data(simple.raw)
        conn.next_event(), conn.next_event()
        await server._send(conn, self, status, framed, head=head, close=False)
        return h11.MUST_CLOSE not in (conn.our_state, conn.their_state)

    def _hand_over(self, data: bytes) -> None:
        """From now on streams and h11 serve this connection, starting with `data`."""
        transport = self._transport
        assert transport is not None
        self._server._direct.discard(self)
        self._transport = None
        reader = asyncio.StreamReader(loop=self._loop)
        protocol = asyncio.StreamReaderProtocol(reader, loop=self._loop)
        transport.set_protocol(protocol)
        protocol.connection_made(transport)
        protocol.data_received(data)
        if self._eof:
            protocol.eof_received()
        writer = asyncio.StreamWriter(transport, protocol, reader, self._loop)
        self._loop.create_task(self._server._accept(reader, writer))


def _gzip(parts: list[bytes]) -> list[bytes]:
    """The parts as one gzip stream, in parts (zlib works without holding the GIL).

    The window and hash table are sized to the body: zlib's default 32 KiB window and
    memLevel 8 take ~25 us to set up, longer than compressing a small scrape's 4 KiB, and a
    window as big as the body finds the same matches (a body over 32 KiB gets the defaults)."""
    bits = max(10, min(15, sum(map(len, parts)).bit_length()))
    compressor = zlib.compressobj(1, zlib.DEFLATED, 16 + bits, max(1, bits - 7))  # 16+: the gzip container
    out = [compressor.compress(part) for part in parts]
    out.append(compressor.flush())
    return [chunk for chunk in out if chunk]


@dataclass
class _Simple:
    """A request read whole in one piece that the server answers without h11 (see `_simple_request`)."""

    method: str
    target: str
    headers: dict[bytes, bytes]
    close: bool  # the client asked for the connection to close (or speaks HTTP/1.0, as h11 treats it)
    raw: bytes  # the request as read: for h11, should the answer need it after all


# A GET or HEAD whose head is exactly what h11 accepts (method, target and header names, values
# made of visible characters and inner blanks), and nothing after it: no body, no second request.
_SIMPLE_HEAD = re.compile(
    rb"(GET|HEAD) ([\x21-\x7e]+) HTTP/1\.([01])\r\n"
    rb"((?:[!#$%&'*+.^_`|~0-9A-Za-z-]+:[ \t]*(?:[\x21-\x7e\x80-\xff]+(?:[ \t]+[\x21-\x7e\x80-\xff]+)*)?[ \t]*\r\n)*)"
    rb"\r\n\Z")
_SIMPLE_HEADER = re.compile(rb"([^:]+):[ \t]*(.*?)[ \t]*\r\n")


def _simple_request(data: bytes) -> _Simple | None:
    """`data` as a request the server may answer without h11: a whole GET or HEAD head, valid
    as h11 reads it, that frames no body and is the only request in `data`; None for anything
    else (h11 then reads it, and answers what is malformed as it always has)."""
    if len(data) > MAX_HEADER_BYTES:
        return None
    match = _SIMPLE_HEAD.match(data)
    if match is None:
        return None
    close = match[3] == b"0"  # h11 keeps no HTTP/1.0 connection alive
    headers: dict[bytes, bytes] = {}
    hosts = 0
    for name, value in _SIMPLE_HEADER.findall(match[4]):
        name = name.lower()
        if name == b"host":
            hosts += 1
        elif name == b"connection":
            close = close or b"close" in [token.strip().lower() for token in value.split(b",")]
        elif name in (b"content-length", b"transfer-encoding"):
            return None  # h11 frames (or refuses) a body
        headers[name] = value
    if hosts > 1 or (hosts == 0 and match[3] == b"1"):
        return None  # h11 refuses these with 400
    return _Simple(match[1].decode("ascii"), match[2].decode("latin-1"), headers, close, data)


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

