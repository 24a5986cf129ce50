"""Sockets -> packets -> `sink.handle_packet(data)`: UDP, TCP and unix datagram listeners.

Datagram sockets (udp, unixgram) are read in a thread of their own, a batch of
queued datagrams per system call on Linux (statsd/recvmmsg.py), else by a blocking
`recv`: measured on the ingest benchmark, a thread costs a few microseconds less per
packet than asyncio's datagram protocol, and the event loop stays free for scrapes. TCP uses asyncio streams (many idle connections are cheap there).
Only how bytes are read differs; every listener hands whole lines to its sink.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import stat
import sys
import threading
from typing import NamedTuple, Protocol
from urllib.parse import urlsplit

from exporter.statsd.kernel import socket_drops
from exporter.statsd.recvmmsg import batch_receiver
from exporter.statsd.stats import ListenerCounters
from exporter.store import Counter

log = logging.getLogger(__name__)

MAX_DATAGRAM = 65536  # larger than any UDP payload, so a datagram is never truncated


class Sink(Protocol):
    def handle_packet(self, data: bytes) -> None:
        """Handle whole lines; never raises, counts its own errors."""
        ...


class Endpoint(NamedTuple):
    scheme: str  # udp | tcp | unixgram
    host: str
    port: int
    path: str


def parse_listen(address: str) -> Endpoint:
    parts = urlsplit(address)
    if parts.scheme == "unixgram":
        return Endpoint("unixgram", "", 0, parts.path)
    return Endpoint(parts.scheme, parts.hostname or "", parts.port or 0, "")


def _bind_error(address: str, err: OSError) -> OSError:
    return OSError(err.errno, f"statsd: cannot listen on {address}: {err.strerror or err}")


# Python's socket module does not name SO_RCVBUFFORCE (3.11, 3.12), so the lookup alone found
# nothing and the kernel capped every buffer at net.core.rmem_max, even with CAP_NET_ADMIN: the
# soak's 8 MiB buffer was 4 MiB. 33 is the Linux number (asm-generic/socket.h), on Linux only.
SO_RCVBUFFORCE: int | None = getattr(socket, "SO_RCVBUFFORCE", 33 if sys.platform == "linux" else None)


def _set_read_buffer(sock: socket.socket, size: int | None, address: str) -> None:
    if not size:
        return
    # SO_RCVBUFFORCE passes net.core.rmem_max when we may (CAP_NET_ADMIN); else the kernel caps.
    try:
        if SO_RCVBUFFORCE is None:
            raise PermissionError
        sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, size)
    except OSError:  # EPERM without CAP_NET_ADMIN
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)
    got = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) // 2  # Linux reports double
    if got < size:
        log.warning("statsd: %s: read buffer capped at %d bytes (asked %d); raise net.core.rmem_max",
                    address, got, size)


def datagram_socket(endpoint: Endpoint, address: str, read_buffer: int | None, reuse_port: bool = False) -> socket.socket:
    """A bound datagram socket, or OSError naming the address."""
    if endpoint.scheme == "unixgram":
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            # A socket file left by a previous run would make bind fail; anything else is kept.
            with contextlib.suppress(FileNotFoundError):
                if stat.S_ISSOCK(os.stat(endpoint.path).st_mode):
                    os.unlink(endpoint.path)
            sock.bind(endpoint.path)
        except OSError as err:
            sock.close()
            raise _bind_error(address, err) from None
    else:
        try:
            info = socket.getaddrinfo(endpoint.host, endpoint.port, type=socket.SOCK_DGRAM)[0]
        except socket.gaierror as err:
            raise OSError(f"statsd: cannot resolve {address}: {err}") from None
        sock = socket.socket(info[0], socket.SOCK_DGRAM)
        try:
            if reuse_port:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind(info[4])
        except OSError as err:
            sock.close()
            raise _bind_error(address, err) from None
    _set_read_buffer(sock, read_buffer, address)
    return sock


class DatagramListener:
    """UDP or unixgram: one blocking reader thread per socket."""

    def __init__(self, address: str, sink: Sink, counters: ListenerCounters, read_buffer: int | None = None,
                 reuse_port: bool = False) -> None:
        self.address = address
        self._reuse_port = reuse_port
        self._endpoint = parse_listen(address)
        self._sink = sink
        self._counters = counters
        self._read_buffer = read_buffer
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stopping = False

    @property
    def port(self) -> int:
        assert self._sock is not None
        return int(self._sock.getsockname()[1]) if self._endpoint.scheme == "udp" else 0

    @property
    def local(self) -> tuple[str, int] | None:
        """The bound UDP (address, port), as the kernel's socket tables show it; None for unixgram."""
        if self._sock is None or self._endpoint.scheme != "udp":
            return None
        host, port = self._sock.getsockname()[:2]
        return str(host), int(port)

    def kernel_drops(self) -> int | None:
        """Datagrams the kernel dropped for this socket's full buffer; None if it cannot say."""
        return socket_drops(self._sock) if self._sock is not None else None

    async def start(self) -> None:
        self.open()

    def open(self) -> None:
        """Bind and start reading (the synchronous half of start, for worker processes)."""
        self._sock = datagram_socket(self._endpoint, self.address, self._read_buffer, self._reuse_port)
        self._thread = threading.Thread(target=self._run, name=f"statsd {self.address}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        assert self._sock is not None
        batches = batch_receiver(self._sock, MAX_DATAGRAM)
        if batches is not None:
            receive = batches.receive
        else:  # one recv a datagram, where recvmmsg is not available
            recv = self._sock.recv

            def receive() -> list[bytes]:
                return [recv(MAX_DATAGRAM)]
        handle = self._sink.handle_packet
        packets, nbytes = self._counters.packets, self._counters.bytes
        try:
            while True:
                try:
                    batch = receive()
                except OSError as err:
                    if self._stopping:
                        return
                    log.warning("statsd: %s: receive failed: %s", self.address, err)
                    continue
                if not batch and self._stopping:
                    return
                for data in batch:
                    if not data:
                        if self._stopping:
                            return
                        continue  # an empty datagram
                    packets.value += 1
                    nbytes.value += len(data)
                    handle(data)
        finally:
            if batches is not None:
                batches.close()

    async def stop(self) -> None:
        await asyncio.to_thread(self.close)

    def close(self) -> None:
        if self._sock is None:
            return
        self._stopping = True
        # shutdown() wakes a thread blocked in recv() (Linux: it returns b"").
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(5.0)
        self._sock.close()
        self._sock = None
        if self._endpoint.scheme == "unixgram":
            with contextlib.suppress(OSError):
                os.unlink(self._endpoint.path)


class TcpListener:
    """Newline-delimited StatsD over TCP, many connections, each with an idle timeout."""

    def __init__(self, address: str, sink: Sink, counters: ListenerCounters, errors: dict[str, Counter],
                 idle_timeout: float = 300.0, max_line: int = 65536, max_connections: int = 1024) -> None:
        self.address = address
        self._endpoint = parse_listen(address)
        self._sink = sink
        self._counters = counters
        self._errors = errors  # reason -> counter
        self._idle = idle_timeout
        self._max_line = max_line
        self._max_connections = max_connections
        self._server: asyncio.Server | None = None
        self._clients: set[asyncio.Task[None]] = set()

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        try:
            self._server = await asyncio.start_server(
                self._client, self._endpoint.host, self._endpoint.port, limit=self._max_line)
        except OSError as err:
            raise _bind_error(self.address, err) from None

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.close()
        for task in list(self._clients):
            task.cancel()
        if self._clients:
            await asyncio.gather(*self._clients, return_exceptions=True)
        await self._server.wait_closed()
        self._server = None

    def _count(self, reason: str) -> None:
        self._errors[reason].value += 1

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        if len(self._clients) >= self._max_connections:
            self._count("too_many_connections")
            writer.close()
            return
        self._clients.add(task)
        try:
            await self._read(reader)
        except asyncio.CancelledError:
            pass
        except OSError:
            self._count("connection_error")
        finally:
            self._clients.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _read(self, reader: asyncio.StreamReader) -> None:
        packets, nbytes = self._counters.packets, self._counters.bytes
        handle = self._sink.handle_packet
        pending = b""
        while True:
            try:
                async with asyncio.timeout(self._idle):
                    chunk = await reader.read(MAX_DATAGRAM)
            except TimeoutError:
                self._count("idle_timeout")
                return
            if not chunk:
                if pending:
                    # The last line had no newline: still a line, but the client should know better.
                    self._count("unterminated_line")
                    handle(pending)
                return
            packets.value += 1
            nbytes.value += len(chunk)
            data = pending + chunk if pending else chunk
            cut = data.rfind(b"\n")
            if cut < 0:
                pending = data
            else:
                handle(data[:cut])
                pending = data[cut + 1:]
            if len(pending) > self._max_line:
                self._count("line_too_long")
                return
